//! Relevance evaluation: BEIR-layout collections, trec_eval-style metrics, runs through the
//! engine (never over HTTP), fusion sweeps tuned on a training split, reports.

mod beir;
mod dump;
mod error;
mod harness;
mod metrics;
mod report;
mod rerank;
mod run;
mod sweep;

pub use beir::{Collection, Qrels, load_collection, load_qrels, queries_file};
pub use dump::{DUMP_DEPTH, DumpManifest, DumpedSplit, dump_runs, dump_splits};
pub use error::{Error, ErrorKind};
pub use harness::{EvalOptions, domain_name, evaluate_dataset, prepare_domain};
pub use metrics::{
    Metrics, evaluate_query, map_at, mean, mrr_at, ndcg_at, precision_at, recall_at,
};
pub use report::{
    DatasetReport, Report, TuningPoint, TuningReport, checksum, model_dir_name, regressions,
};
pub use rerank::{CachedReranker, RerankCounts, RerankMode, evaluate_reranked};
pub use run::{
    ModeReport, RunConfig, embed_queries, evaluate_mode, rank_queries, score_runs, search_query,
    understand_queries,
};
pub use sweep::{PARAMETERS, Sweep, apply as apply_parameter, grid};
