//! Evaluation reports: JSON (everything, per query), a Markdown table and an SVG chart.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use plotters::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Error;
use crate::metrics::Metrics;
use crate::run::{ModeReport, RunConfig};

/// One dataset's results.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetReport {
    pub name: String,
    /// The embedding model of the vector and hybrid modes.
    pub model: String,
    pub path: String,
    /// sha256 over corpus.jsonl, the queries file and the qrels file.
    pub checksum: String,
    pub queries: usize,
    pub config: RunConfig,
    pub modes: Vec<ModeReport>,
    pub tuning: Option<TuningReport>,
    /// Wall-clock seconds of each step (indexing, embedding the queries, each row).
    #[serde(default)]
    pub seconds: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TuningReport {
    /// The split the grid was scored on (never the one reported).
    pub tuned_on: String,
    /// Every configuration tried with its hybrid nDCG@10 on the tuning split.
    pub grid: Vec<TuningPoint>,
    pub best: Vec<(String, String)>,
    /// Hybrid on the reported split with the best configuration.
    pub best_on_report_split: Metrics,
}

#[derive(Debug, Clone, Serialize)]
pub struct TuningPoint {
    pub params: Vec<(String, String)>,
    pub ndcg_at_10: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub git_revision: String,
    pub model_id: String,
    pub created_unix: u64,
    pub datasets: Vec<DatasetReport>,
}

/// A model id as a directory name: its last path segment, lower case, `-` for anything else.
pub fn model_dir_name(model_id: &str) -> String {
    model_id
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// sha256 of the files, in order, as hex.
pub fn checksum(files: &[&Path]) -> Result<String, Error> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    for path in files {
        let mut f = std::fs::File::open(path).map_err(Error::io(*path))?;
        loop {
            let n = f.read(&mut buf).map_err(Error::io(*path))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

impl Report {
    pub fn markdown(&self) -> String {
        let mut s = String::from(
            "| dataset | model | mode | nDCG@10 | Recall@100 | MRR@10 | MAP@100 | P@10 |\n|---|---|---|---:|---:|---:|---:|---:|\n",
        );
        for d in &self.datasets {
            for m in &d.modes {
                let x = &m.mean;
                s.push_str(&format!(
                    "| {} | {} | {} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} |\n",
                    d.name,
                    d.model,
                    m.label(),
                    x.ndcg_at_10,
                    x.recall_at_100,
                    x.mrr_at_10,
                    x.map_at_100,
                    x.p_at_10
                ));
            }
            if let Some(t) = &d.tuning {
                let params: Vec<String> = t.best.iter().map(|(k, v)| format!("{k}={v}")).collect();
                s.push_str(&format!(
                    "| {} | {} | Hybrid tuned on {} ({}) | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} |\n",
                    d.name,
                    d.model,
                    t.tuned_on,
                    params.join(" "),
                    t.best_on_report_split.ndcg_at_10,
                    t.best_on_report_split.recall_at_100,
                    t.best_on_report_split.mrr_at_10,
                    t.best_on_report_split.map_at_100,
                    t.best_on_report_split.p_at_10
                ));
            }
        }
        s
    }

    /// The wall-clock seconds of each dataset's steps, as a Markdown table.
    pub fn timings_markdown(&self) -> String {
        let mut s = String::from("| dataset | model | step | seconds |\n|---|---|---|---:|\n");
        for d in &self.datasets {
            for (step, secs) in &d.seconds {
                s.push_str(&format!(
                    "| {} | {} | {step} | {secs:.1} |\n",
                    d.name, d.model
                ));
            }
        }
        s
    }

    /// Writes report.json, report.md and chart.svg into `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), Error> {
        std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
        let json = serde_json::to_vec_pretty(self).expect("a report serialises");
        let write = |name: &str, bytes: &[u8]| {
            std::fs::write(dir.join(name), bytes).map_err(Error::io(dir.join(name)))
        };
        write("report.json", &json)?;
        let md = format!(
            "# Relevance report\n\nrevision `{}`, model `{}`\n\n{}\n## Wall-clock\n\n{}",
            self.git_revision,
            self.model_id,
            self.markdown(),
            self.timings_markdown()
        );
        write("report.md", md.as_bytes())?;
        self.chart(&dir.join("chart.svg"))
    }

    /// Grouped bars: nDCG@10 per mode, per dataset.
    fn chart(&self, path: &Path) -> Result<(), Error> {
        let modes: Vec<String> = self
            .datasets
            .iter()
            .flat_map(|d| d.modes.iter().map(|m| m.label()))
            .fold(Vec::new(), |mut acc, m| {
                if !acc.contains(&m) {
                    acc.push(m);
                }
                acc
            });
        let groups = self.datasets.len().max(1);
        let per = modes.len().max(1);
        let width = (40 * per as u32).max(220);
        let root = SVGBackend::new(path, (width * groups as u32 + 240, 460)).into_drawing_area();
        let err = |e: &dyn std::fmt::Display| Error::Chart {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption("nDCG@10 by mode", ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..groups as f64, 0f64..1f64)
            .map_err(|e| err(&e))?;
        let several_models = self
            .datasets
            .iter()
            .any(|d| self.datasets.first().is_some_and(|f| f.model != d.model));
        let names: Vec<String> = self
            .datasets
            .iter()
            .map(|d| {
                if several_models {
                    format!("{} · {}", d.name, d.model)
                } else {
                    d.name.clone()
                }
            })
            .collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(groups * 2 + 1)
            .x_label_formatter(&|x| {
                let i = x.floor() as usize;
                if (x - i as f64 - 0.5).abs() < 0.26 {
                    names.get(i).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_desc("nDCG@10")
            .draw()
            .map_err(|e| err(&e))?;
        let palette = [
            RGBColor(66, 133, 244),
            RGBColor(234, 67, 53),
            RGBColor(52, 168, 83),
            RGBColor(251, 188, 5),
            RGBColor(142, 36, 170),
            RGBColor(0, 172, 193),
            RGBColor(255, 112, 67),
            RGBColor(124, 179, 66),
            RGBColor(92, 107, 192),
            RGBColor(120, 144, 156),
        ];
        for (mi, mode) in modes.iter().enumerate() {
            let color = palette[mi % palette.len()];
            let bars: Vec<Rectangle<(f64, f64)>> = self
                .datasets
                .iter()
                .enumerate()
                .filter_map(|(di, d)| {
                    let m = d.modes.iter().find(|m| &m.label() == mode)?;
                    let width = 0.8 / per as f64;
                    let x0 = di as f64 + 0.1 + mi as f64 * width;
                    Some(Rectangle::new(
                        [(x0, 0.0), (x0 + width * 0.9, m.mean.ndcg_at_10)],
                        color.filled(),
                    ))
                })
                .collect();
            chart
                .draw_series(bars)
                .map_err(|e| err(&e))?
                .label(mode.clone())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
                });
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
        Ok(())
    }
}

#[derive(Deserialize)]
struct BaselineMode {
    mode: String,
    /// Rows of the same mode (another fusion, a reranking) are told apart by it.
    #[serde(default)]
    variant: Option<String>,
    mean: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct BaselineDataset {
    name: String,
    /// Absent in reports from before there were several models: it matches any.
    #[serde(default)]
    model: Option<String>,
    modes: Vec<BaselineMode>,
}

#[derive(Deserialize)]
struct Baseline {
    datasets: Vec<BaselineDataset>,
}

/// Metrics that dropped more than `max_drop` below the baseline report (a JSON file written by
/// [`Report::write`]), as human-readable lines; empty when nothing regressed.
pub fn regressions(
    current: &Report,
    baseline_json: &[u8],
    max_drop: f64,
) -> Result<Vec<String>, Error> {
    let baseline: Baseline =
        serde_json::from_slice(baseline_json).map_err(|e| Error::Baseline(e.to_string()))?;
    let current_json = serde_json::to_value(current).expect("a report serialises");
    let current: Baseline =
        serde_json::from_value(current_json).expect("a report reads as a baseline");
    let mut out = Vec::new();
    let mut compared = 0;
    for bd in &baseline.datasets {
        let current_of = current.datasets.iter().filter(|d| {
            d.name == bd.name && (bd.model.is_none() || d.model.is_none() || d.model == bd.model)
        });
        for cd in current_of {
            for bm in &bd.modes {
                let Some(cm) = cd
                    .modes
                    .iter()
                    .find(|m| m.mode.eq_ignore_ascii_case(&bm.mode) && m.variant == bm.variant)
                else {
                    continue;
                };
                for (metric, bv) in &bm.mean {
                    let (Some(b), Some(c)) =
                        (bv.as_f64(), cm.mean.get(metric).and_then(|v| v.as_f64()))
                    else {
                        continue;
                    };
                    compared += 1;
                    if c < b - max_drop {
                        let row = match &bm.variant {
                            Some(v) => format!("{} {v}", bm.mode),
                            None => bm.mode.clone(),
                        };
                        let model = cd
                            .model
                            .as_deref()
                            .map(|m| format!(" ({m})"))
                            .unwrap_or_default();
                        out.push(format!(
                            "{}{model} {row} {metric}: {c:.4} < baseline {b:.4} - {max_drop}",
                            bd.name
                        ));
                    }
                }
            }
        }
    }
    if compared == 0 {
        return Err(Error::Baseline(
            "it shares no dataset and mode with this run".into(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dartmouth_engine::Mode;

    fn report(ndcg: f64) -> Report {
        Report {
            git_revision: "test".into(),
            model_id: "m".into(),
            created_unix: 0,
            datasets: vec![DatasetReport {
                name: "tiny".into(),
                model: "m".into(),
                path: "/tiny".into(),
                checksum: "00".into(),
                queries: 1,
                config: RunConfig::default(),
                modes: vec![ModeReport {
                    mode: Mode::Hybrid,
                    variant: None,
                    mean: Metrics {
                        ndcg_at_10: ndcg,
                        ..Metrics::default()
                    },
                    per_query: Default::default(),
                }],
                tuning: None,
                seconds: Default::default(),
            }],
        }
    }

    #[test]
    fn writes_reports_and_flags_regressions() {
        let tmp = tempfile::tempdir().unwrap();
        report(0.70).write(tmp.path()).unwrap();
        let baseline = std::fs::read(tmp.path().join("report.json")).unwrap();
        assert!(
            std::fs::read_to_string(tmp.path().join("chart.svg"))
                .unwrap()
                .contains("<svg")
        );
        assert!(
            std::fs::read_to_string(tmp.path().join("report.md"))
                .unwrap()
                .contains("| tiny | m | Hybrid | 0.7000")
        );
        assert!(
            regressions(&report(0.696), &baseline, 0.005)
                .unwrap()
                .is_empty()
        );
        let dropped = regressions(&report(0.69), &baseline, 0.005).unwrap();
        assert_eq!(dropped.len(), 1);
        assert!(dropped[0].contains("ndcg_at_10"), "{dropped:?}");
        let mut other = report(0.7);
        other.datasets[0].name = "else".into();
        assert!(regressions(&other, &baseline, 0.005).is_err());
    }
}
