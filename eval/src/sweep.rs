//! Parameter sweeps for fusion tuning: `--sweep rrf_k=10,30,60 --sweep vector_weight=0.3,0.7`.

use dartmouth_engine::Fusion;
use serde::Serialize;

use crate::Error;
use crate::run::RunConfig;

/// One swept parameter and the values to try.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sweep {
    pub name: String,
    pub values: Vec<String>,
}

pub const PARAMETERS: &[&str] = &[
    "rrf_k",
    "bm25_weight",
    "vector_weight",
    "fusion",
    "candidates",
    "title_boost",
];

impl std::str::FromStr for Sweep {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let (name, values) = s
            .split_once('=')
            .ok_or_else(|| Error::Parameter(format!("--sweep `{s}`: expected NAME=V1,V2,…")))?;
        let name = name.trim().to_string();
        if !PARAMETERS.contains(&name.as_str()) {
            return Err(Error::Parameter(format!(
                "--sweep `{name}`: unknown parameter (known: {})",
                PARAMETERS.join(", ")
            )));
        }
        let values: Vec<String> = values
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect();
        if values.is_empty() {
            return Err(Error::Parameter(format!("--sweep `{name}`: no values")));
        }
        let sweep = Sweep { name, values };
        for v in &sweep.values {
            apply(&mut RunConfig::default(), &sweep.name, v)?;
        }
        Ok(sweep)
    }
}

/// Sets one parameter on a configuration.
pub fn apply(config: &mut RunConfig, name: &str, value: &str) -> Result<(), Error> {
    let number = || -> Result<f32, Error> {
        value
            .parse::<f32>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| Error::Parameter(format!("{name}: `{value}` is not a number >= 0")))
    };
    let k = match config.fusion {
        Fusion::Rrf { k, .. } => k,
        _ => dartmouth_engine::RRF_K_DEFAULT,
    };
    match name {
        "rrf_k" => config.fusion = config.fusion.with_rrf_k(Some(number()?)),
        "bm25_weight" => config.fusion = config.fusion.with_weights(Some(number()?), None),
        "vector_weight" => config.fusion = config.fusion.with_weights(None, Some(number()?)),
        // Another method keeps the weights (and k) set so far.
        "fusion" => {
            let (bw, vw) = weights(&config.fusion);
            config.fusion = Fusion::parse(value, Some(k), Some(bw), Some(vw))
                .map_err(|e| Error::Parameter(format!("fusion: {e}")))?;
        }
        "candidates" => {
            config.candidates = value
                .parse()
                .ok()
                .filter(|c| (1..=10_000).contains(c))
                .ok_or_else(|| {
                    Error::Parameter(format!("candidates: `{value}` is not 1 to 10000"))
                })?
        }
        "title_boost" => config.title_boost = number()?,
        other => return Err(Error::Parameter(format!("unknown parameter `{other}`"))),
    }
    Ok(())
}

/// Every combination of the sweeps' values, applied on top of `base`.
pub fn grid(base: &RunConfig, sweeps: &[Sweep]) -> Vec<(Vec<(String, String)>, RunConfig)> {
    let mut out = vec![(Vec::new(), *base)];
    for sweep in sweeps {
        let mut next = Vec::with_capacity(out.len() * sweep.values.len());
        for (params, config) in &out {
            for v in &sweep.values {
                let mut c = *config;
                if apply(&mut c, &sweep.name, v).is_ok() {
                    let mut p = params.clone();
                    p.push((sweep.name.clone(), v.clone()));
                    next.push((p, c));
                }
            }
        }
        out = next;
    }
    out
}

fn weights(f: &Fusion) -> (f32, f32) {
    match *f {
        Fusion::Rrf {
            bm25_weight,
            vector_weight,
            ..
        }
        | Fusion::Weighted {
            bm25_weight,
            vector_weight,
        }
        | Fusion::Zscore {
            bm25_weight,
            vector_weight,
        } => (bm25_weight, vector_weight),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_are_cartesian_products() {
        let sweeps: Vec<Sweep> = ["rrf_k=10,60", "vector_weight=0.3,0.5,0.7"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let base = RunConfig {
            fusion: Fusion::rrf(),
            ..RunConfig::default()
        };
        let g = grid(&base, &sweeps);
        assert_eq!(g.len(), 6);
        assert!(matches!(
            g[5].1.fusion,
            Fusion::Rrf { k, vector_weight, .. } if k == 60.0 && (vector_weight - 0.7).abs() < 1e-6
        ));
        assert!("nope=1".parse::<Sweep>().is_err());
        assert!("rrf_k=abc".parse::<Sweep>().is_err());
        assert!("rrf_k".parse::<Sweep>().is_err());
        let mut c = RunConfig::default();
        apply(&mut c, "fusion", "weighted").unwrap();
        assert!(matches!(c.fusion, Fusion::Weighted { .. }));
        apply(&mut c, "vector_weight", "0.4").unwrap();
        apply(&mut c, "fusion", "zscore").unwrap();
        assert_eq!(
            c.fusion,
            Fusion::Zscore {
                bm25_weight: 1.0,
                vector_weight: 0.4
            }
        );
        assert!(apply(&mut c, "fusion", "nope").is_err());
    }
}
