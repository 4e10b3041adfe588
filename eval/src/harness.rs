//! One dataset end to end: index it into a domain once (reused while the corpus is unchanged),
//! evaluate each mode on the report split, optionally tune fusion on another split.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use dartmouth_engine::embed::Reranker;
use dartmouth_engine::{DomainSettings, Embedder, Embedding, Fusion, Mode, Shard, Shards};
use dartmouth_indexer::{Chunker, IndexJob, Progress, Sizer, SourceReader};

use crate::Error;
use crate::beir::{Collection, load_collection, queries_file};
use crate::dump::dump_runs;
use crate::report::{DatasetReport, TuningPoint, TuningReport, checksum};
use crate::rerank::{RerankMode, evaluate_reranked};
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
    /// More hybrid rows, each with another fusion and number of candidates per branch: (the
    /// row's variant, e.g. `(rrf)`, fusion, candidates).
    pub fusions: Vec<(String, Fusion, usize)>,
    /// Hybrid (the configured fusion) re-ordered by `reranker`, one row per mode.
    pub reranks: Vec<RerankMode>,
    pub reranker: Option<Arc<dyn Reranker>>,
    /// Write both branches' candidate lists here (see `dump.rs`).
    pub dump_runs: Option<PathBuf>,
}

impl EvalOptions {
    /// The options of a plain run: `modes` on `split` with `config`, nothing more.
    pub fn new(modes: Vec<Mode>, config: RunConfig, split: impl Into<String>) -> Self {
        EvalOptions {
            modes,
            config,
            split: split.into(),
            tune_on: None,
            sweeps: Vec::new(),
            fusions: Vec::new(),
            reranks: Vec::new(),
            reranker: None,
            dump_runs: None,
        }
    }
}

/// The domain name a collection is indexed into with a model: `eval-<directory>-<model id>`.
pub fn domain_name(root: &Path, model_id: &str) -> String {
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
    let model: String = model_id
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let name = format!("eval-{}-{model}", base.trim_matches('-'));
    name.chars().take(64).collect()
}

/// Opens the collection's domain, (re)indexing it when the corpus checksum or model changed.
pub fn prepare_domain(
    shards: &Shards,
    data_dir: &Path,
    collection: &Collection,
    embedder: &dyn Embedder,
    sizer: Sizer,
    progress: &Progress,
) -> Result<Arc<Shard>, Error> {
    let name = domain_name(&collection.root, &embedder.spec().id);
    let corpus_sum = checksum(&[&collection.corpus])?;
    let marker_dir = data_dir.join("eval");
    let marker = marker_dir.join(format!("{name}.indexed"));
    let expected = format!("{corpus_sum} {}", embedder.spec().id);
    if std::fs::read_to_string(&marker).is_ok_and(|m| m.trim() == expected)
        && let Ok(shard) = shards.get(&name)
    {
        return Ok(shard);
    }
    if shards.list()?.contains(&name) {
        shards.delete(&name)?;
    }
    let settings = DomainSettings::new(embedder.spec().clone());
    let shard = shards.create(&name, settings.clone())?;
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
    let mut seconds = BTreeMap::new();
    let t = Instant::now();
    let vectors = embed_queries(&collection, embedder)?;
    seconds.insert("embed queries".to_string(), t.elapsed().as_secs_f64());
    let mut modes = Vec::new();
    for mode in &options.modes {
        let t = Instant::now();
        let report = evaluate_mode(shard, &collection, Some(&vectors), *mode, &options.config)?;
        seconds.insert(report.label(), t.elapsed().as_secs_f64());
        modes.push(report);
    }
    for (variant, fusion, candidates) in &options.fusions {
        let t = Instant::now();
        let config = RunConfig {
            fusion: *fusion,
            candidates: *candidates,
            ..options.config
        };
        let mut report = evaluate_mode(shard, &collection, Some(&vectors), Mode::Hybrid, &config)?;
        report.variant = Some(variant.clone());
        seconds.insert(report.label(), t.elapsed().as_secs_f64());
        modes.push(report);
    }
    if let (Some(reranker), false) = (&options.reranker, options.reranks.is_empty()) {
        let t = Instant::now();
        modes.extend(evaluate_reranked(
            shard,
            &collection,
            Some(&vectors),
            &options.config,
            reranker.as_ref(),
            &options.reranks,
        )?);
        seconds.insert(
            "Hybrid + every rerank row".to_string(),
            t.elapsed().as_secs_f64(),
        );
    }
    if let Some(dir) = &options.dump_runs {
        let t = Instant::now();
        let top_n = options.reranks.iter().map(|r| r.top_n).max();
        let rerank = options.reranker.as_deref().zip(top_n);
        dump_runs(
            shard,
            root,
            embedder,
            &options.config,
            &options.split,
            dir,
            rerank,
        )?;
        seconds.insert("dump runs".to_string(), t.elapsed().as_secs_f64());
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
        model: embedder.spec().id.clone(),
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
        seconds,
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
