//! One dataset end to end: index it into a domain once (reused while the corpus is unchanged),
//! evaluate each mode on the report split, optionally tune fusion on another split.

use std::path::Path;
use std::sync::Arc;

use dartmouth_engine::{Catalog, DomainSettings, Embedder, Embedding, Mode, Shard};
use dartmouth_indexer::{Chunker, IndexJob, Progress, Sizer, SourceReader};

use crate::Error;
use crate::beir::{Collection, load_collection};
use crate::report::{DatasetReport, TuningPoint, TuningReport, checksum};
use crate::run::{RunConfig, embed_queries, evaluate_mode, understand_queries};
use crate::sweep::{Sweep, grid};

pub struct EvalOptions {
    pub modes: Vec<Mode>,
    pub config: RunConfig,
    /// The split reported (qrels/<split>.tsv with queries.jsonl or queries_<split>.jsonl).
    pub split: String,
    /// Tune fusion on this split (e.g. `train`) over `sweeps`, then report the best on `split`.
    pub tune_on: Option<String>,
    pub sweeps: Vec<Sweep>,
}

/// The queries of `split`: `queries_<split>.jsonl` when the collection has one, else `queries.jsonl`.
pub fn queries_file(root: &Path, split: &str) -> String {
    let specific = format!("queries_{split}.jsonl");
    if root.join(&specific).is_file() {
        specific
    } else {
        "queries.jsonl".into()
    }
}

/// The domain name a collection is indexed into: `eval-<directory name>`.
pub fn domain_name(root: &Path) -> String {
    let base: String = root
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("eval-{}", base.trim_matches('-'))
}

/// Opens the collection's domain, (re)indexing it when the corpus checksum or model changed.
pub fn prepare_domain(
    catalog: &Catalog,
    data_dir: &Path,
    collection: &Collection,
    embedder: &dyn Embedder,
    sizer: Sizer,
    progress: &Progress,
) -> Result<Arc<Shard>, Error> {
    let name = domain_name(&collection.root);
    let corpus_sum = checksum(&[&collection.corpus])?;
    let marker_dir = data_dir.join("eval");
    let marker = marker_dir.join(format!("{name}.indexed"));
    let expected = format!("{corpus_sum} {}", embedder.spec().id);
    if std::fs::read_to_string(&marker).is_ok_and(|m| m.trim() == expected)
        && let Ok(shard) = catalog.get(&name)
    {
        return Ok(shard);
    }
    if catalog.list()?.contains(&name) {
        catalog.delete(&name)?;
    }
    let settings = DomainSettings::new(embedder.spec().clone());
    let shard = catalog.create(&name, settings.clone())?;
    IndexJob {
        sink: shard.clone(),
        embedder,
        chunker: Chunker::new(sizer, settings.chunk_tokens, settings.chunk_overlap),
        batch_docs: 256,
        stop_on_error: true,
        full_sync: false,
    }
    .run(
        SourceReader::open(std::slice::from_ref(&collection.corpus), None)?,
        progress,
    )?;
    std::fs::create_dir_all(&marker_dir).map_err(Error::io(&marker_dir))?;
    std::fs::write(&marker, expected).map_err(Error::io(&marker))?;
    Ok(shard)
}

/// Evaluates one prepared dataset.
pub fn evaluate_dataset(
    shard: &Shard,
    root: &Path,
    embedder: &dyn Embedder,
    options: &EvalOptions,
) -> Result<DatasetReport, Error> {
    let report_queries = queries_file(root, &options.split);
    let mut collection = load_collection(root, &report_queries, &options.split)?;
    if options.config.parse {
        understand_queries(&mut collection, shard);
    }
    let vectors = embed_queries(&collection, embedder)?;
    let mut modes = Vec::new();
    for mode in &options.modes {
        modes.push(evaluate_mode(
            shard,
            &collection,
            Some(&vectors),
            *mode,
            &options.config,
        )?);
    }
    let tuning = match &options.tune_on {
        None => None,
        Some(split) => {
            if split == &options.split {
                return Err(Error::Parameter(format!(
                    "--tune-on {split} is the reported split; tune on another one (e.g. train)"
                )));
            }
            let mut tune = load_collection(root, &queries_file(root, split), split)?;
            if options.config.parse {
                understand_queries(&mut tune, shard);
            }
            let tune_vectors = embed_queries(&tune, embedder)?;
            Some(tune_fusion(
                shard,
                &tune,
                &tune_vectors,
                &collection,
                &vectors,
                split,
                options,
            )?)
        }
    };
    let files = [
        collection.corpus.as_path(),
        &root.join(&report_queries),
        &root.join("qrels").join(format!("{}.tsv", options.split)),
    ];
    Ok(DatasetReport {
        name: root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        path: root.display().to_string(),
        checksum: checksum(&files)?,
        queries: collection.queries.len(),
        config: options.config,
        modes,
        tuning,
    })
}

fn tune_fusion(
    shard: &Shard,
    tune: &Collection,
    tune_vectors: &[Embedding],
    report: &Collection,
    report_vectors: &[Embedding],
    split: &str,
    options: &EvalOptions,
) -> Result<TuningReport, Error> {
    let mut points = Vec::new();
    let mut best: Option<(f64, RunConfig)> = None;
    for (params, config) in grid(&options.config, &options.sweeps) {
        let score = evaluate_mode(shard, tune, Some(tune_vectors), Mode::Hybrid, &config)?
            .mean
            .ndcg_at_10;
        if best.as_ref().is_none_or(|(b, _)| score > *b) {
            best = Some((score, config));
        }
        points.push(TuningPoint {
            params,
            ndcg_at_10: score,
        });
    }
    let (best_score, best_config) =
        best.ok_or_else(|| Error::Parameter("the sweep grid is empty".into()))?;
    let best_params = points
        .iter()
        .find(|p| p.ndcg_at_10 == best_score)
        .map(|p| p.params.clone())
        .unwrap_or_default();
    let on_report = evaluate_mode(
        shard,
        report,
        Some(report_vectors),
        Mode::Hybrid,
        &best_config,
    )?;
    Ok(TuningReport {
        tuned_on: split.to_string(),
        grid: points,
        best: best_params,
        best_on_report_split: on_report.mean,
    })
}
