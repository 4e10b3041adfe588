//! Runs a collection's queries through the engine (not over HTTP) and scores them.

use std::collections::BTreeMap;

use dartmouth_engine::{
    Embedder, Embedding, Filter, Fusion, Hit, Mode, SearchRequest, Shard, search,
};
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
    /// What the row adds to the mode as configured: another fusion (`(rrf)`) or a second stage
    /// (`+ rerank 20`, `+ rerank 20 (blend 0.5)`); absent for the mode itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    pub mean: Metrics,
    pub per_query: BTreeMap<String, Metrics>,
}

impl ModeReport {
    /// How reports name the row: the mode, then its variant (`Hybrid + rerank 20`).
    pub fn label(&self) -> String {
        match &self.variant {
            None => format!("{:?}", self.mode),
            Some(v) => format!("{:?} {v}", self.mode),
        }
    }
}

/// Catalog query understanding applied to every query, as `parse: true` does on search:
/// the recognised constraints join the query's filter, the rest of the text is searched.
pub fn understand_queries(collection: &mut Collection, shard: &Shard) {
    let mut vocabulary = dartmouth_catalog::understand::Vocabulary::default();
    vocabulary.add(|field| shard.keyword_values(field));
    for q in &mut collection.queries {
        let (u, filter) = dartmouth_catalog::understand::understand_with_filter(
            &q.text,
            q.filter.as_deref(),
            &vocabulary,
        );
        q.text = u.query;
        q.filter = filter;
    }
}

/// Embeds every query once (they are reused across modes and sweeps).
pub fn embed_queries(
    collection: &Collection,
    embedder: &dyn Embedder,
) -> dartmouth_engine::Result<Vec<Embedding>> {
    let texts: Vec<&str> = collection.queries.iter().map(|q| q.text.as_str()).collect();
    Ok(embedder
        .embed_queries(&texts)?
        .into_iter()
        .map(|values| Embedding {
            model_id: embedder.spec().id.clone(),
            values,
        })
        .collect())
}

/// The documents of query `i` of the collection in `mode`, `depth` of them (collapsed: one hit
/// per document), with or without their payload.
pub fn search_query(
    shard: &Shard,
    collection: &Collection,
    query_vectors: Option<&[Embedding]>,
    i: usize,
    mode: Mode,
    config: &RunConfig,
    with_payload: bool,
) -> dartmouth_engine::Result<Vec<Hit>> {
    let q = &collection.queries[i];
    let mut req = SearchRequest::new(q.text.clone());
    req.filter = q.filter.as_deref().map(Filter::parse).transpose()?;
    req.mode = mode;
    req.k = config.depth;
    req.candidates = config.candidates.max(config.depth);
    req.fusion = config.fusion;
    req.title_boost = config.title_boost;
    req.collapse = true;
    req.with_payload = with_payload;
    req.vectors = query_vectors
        .map(|v| vec![v[i].clone()])
        .unwrap_or_default();
    #[allow(
        clippy::disallowed_methods,
        reason = "evaluation shards are shard-only `eval-*` domains, outside the store"
    )]
    let response = search(&[shard], &req)?;
    Ok(response.hits)
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
        let ranked: Vec<String> =
            search_query(shard, collection, query_vectors, i, mode, config, false)?
                .into_iter()
                .map(|h| h.doc_id)
                .collect();
        runs.insert(q.id.clone(), ranked);
    }
    Ok(runs)
}

/// Scores rankings (query id -> document ids, best first) against the collection's qrels.
pub fn score_runs(
    collection: &Collection,
    mode: Mode,
    variant: Option<String>,
    runs: BTreeMap<String, Vec<String>>,
) -> ModeReport {
    let mut per_query = BTreeMap::new();
    for (q, ranked) in runs {
        let judged = &collection.qrels[&q];
        per_query.insert(q, evaluate_query(&ranked, judged));
    }
    let all: Vec<Metrics> = per_query.values().copied().collect();
    ModeReport {
        mode,
        variant,
        mean: mean(&all),
        per_query,
    }
}

/// Ranks documents for every query in `mode` and scores the ranking against the qrels.
pub fn evaluate_mode(
    shard: &Shard,
    collection: &Collection,
    query_vectors: Option<&[Embedding]>,
    mode: Mode,
    config: &RunConfig,
) -> dartmouth_engine::Result<ModeReport> {
    let runs = rank_queries(shard, collection, query_vectors, mode, config)?;
    Ok(score_runs(collection, mode, None, runs))
}
