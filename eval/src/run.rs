//! Runs a collection's queries through the engine (not over HTTP) and scores them.

use std::collections::BTreeMap;

use dartmouth_engine::{Embedder, Embedding, Filter, Fusion, Mode, SearchRequest, Shard, search};
use serde::Serialize;

use crate::beir::Collection;
use crate::metrics::{Metrics, evaluate_query, mean};

#[derive(Debug, Clone, Copy, Serialize)]
pub struct RunConfig {
    /// Documents ranked per query.
    pub depth: usize,
    /// Candidates per branch before fusion.
    pub candidates: usize,
    pub fusion: Fusion,
    /// Extra BM25 weight of title matches.
    pub title_boost: f32,
    /// Catalog query understanding on every query (see `understand_queries`).
    #[serde(default)]
    pub parse: bool,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            depth: 100,
            candidates: 100,
            fusion: Fusion::default(),
            title_boost: 0.0,
            parse: false,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ModeReport {
    pub mode: Mode,
    pub mean: Metrics,
    pub per_query: BTreeMap<String, Metrics>,
}

/// Catalog query understanding applied to every query, as `parse: true` does on search:
/// the recognised constraints join the query's filter, the rest of the text is searched.
pub fn understand_queries(collection: &mut Collection, shard: &Shard) {
    let vocabulary = dartmouth_engine::understand::Vocabulary {
        sizes: shard.keyword_values("size").into_iter().collect(),
        colors: shard.keyword_values("color").into_iter().collect(),
    };
    for q in &mut collection.queries {
        let u = dartmouth_engine::understand::understand(&q.text, &vocabulary);
        q.text = u.query;
        q.filter = match (q.filter.take(), u.filter) {
            (Some(given), Some(made)) => Some(format!("({given}) AND {made}")),
            (given, made) => given.or(made),
        };
    }
}

/// Embeds every query once (they are reused across modes and sweeps).
pub fn embed_queries(
    collection: &Collection,
    embedder: &dyn Embedder,
) -> dartmouth_engine::Result<Vec<Embedding>> {
    let texts: Vec<&str> = collection.queries.iter().map(|q| q.text.as_str()).collect();
    Ok(embedder
        .embed_batch(&texts)?
        .into_iter()
        .map(|values| Embedding {
            model_id: embedder.spec().id.clone(),
            values,
        })
        .collect())
}

/// Ranks documents for every query in `mode`: query id -> document ids, best first.
pub fn rank_queries(
    shard: &Shard,
    collection: &Collection,
    query_vectors: Option<&[Embedding]>,
    mode: Mode,
    config: &RunConfig,
) -> dartmouth_engine::Result<BTreeMap<String, Vec<String>>> {
    let mut runs = BTreeMap::new();
    for (i, q) in collection.queries.iter().enumerate() {
        let mut req = SearchRequest::new(q.text.clone());
        req.filter = q.filter.as_deref().map(Filter::parse).transpose()?;
        req.mode = mode;
        req.k = config.depth;
        req.candidates = config.candidates.max(config.depth);
        req.fusion = config.fusion;
        req.title_boost = config.title_boost;
        req.collapse = true;
        req.with_payload = false;
        req.vector = query_vectors.map(|v| v[i].clone());
        #[allow(
            clippy::disallowed_methods,
            reason = "evaluation shards are catalog-only `eval-*` domains, outside the store"
        )]
        let ranked: Vec<String> = search(&[shard], &req)?
            .hits
            .into_iter()
            .map(|h| h.doc_id)
            .collect();
        runs.insert(q.id.clone(), ranked);
    }
    Ok(runs)
}

/// Ranks documents for every query in `mode` and scores the ranking against the qrels.
pub fn evaluate_mode(
    shard: &Shard,
    collection: &Collection,
    query_vectors: Option<&[Embedding]>,
    mode: Mode,
    config: &RunConfig,
) -> dartmouth_engine::Result<ModeReport> {
    let mut per_query = BTreeMap::new();
    for (q, ranked) in rank_queries(shard, collection, query_vectors, mode, config)? {
        let judged = &collection.qrels[&q];
        per_query.insert(q, evaluate_query(&ranked, judged));
    }
    let all: Vec<Metrics> = per_query.values().copied().collect();
    Ok(ModeReport {
        mode,
        mean: mean(&all),
        per_query,
    })
}
