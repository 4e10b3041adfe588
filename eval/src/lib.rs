//! Relevance evaluation: BEIR-layout collections, trec_eval-style metrics, runs through the engine.

mod beir;
mod metrics;
mod run;

pub use beir::{Collection, Error, Qrels, load_collection, load_qrels};
pub use metrics::{
    Metrics, evaluate_query, map_at, mean, mrr_at, ndcg_at, precision_at, recall_at,
};
pub use run::{ModeReport, RunConfig, embed_queries, evaluate_mode};
