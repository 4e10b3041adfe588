//! Hybrid retrieval over one or more shards: BM25 ‖ ANN under the same filter, fusion, hydration.

//!
//! - `request.rs`: the request, its limits, hits and the response.
//! - `branches.rs`: BM25 and the vector branch over one snapshot.
//! - `hydrate.rs`: hits from fused candidates.
//! - `rerank.rs`: the best hits re-ordered by a reranker.

mod branches;
mod hydrate;
mod maxscore;
mod request;
mod rerank;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use roaring::RoaringBitmap;

use crate::attrs::AttrValue;
use crate::embed::{Embedding, check_and_normalise};
use crate::fusion::fuse;
use crate::shard::{Shard, Snapshot};
use crate::{Error, Result};

pub(crate) use branches::Level;
use branches::analyze;
use hydrate::hydrate;
pub use rerank::{rerank_hits, rerank_passage};

/// A candidate's key across shards: shard position, then chunk ordinal (or, when collapsing,
/// the shard's document number).
type Key = (usize, u32);
pub use request::{
    BranchHit, CANDIDATES_DEFAULT, FACET_SIZE_DEFAULT, FacetCount, Hit, K_DEFAULT, MAX_CANDIDATES,
    MAX_FACET_SIZE, MAX_FACETS, MAX_K, MAX_QUERY_BYTES, Mode, RerankScore, SearchRequest,
    SearchResponse, SearchTimings, SortBy,
};

/// A filter that keeps at most this many chunks is served by an exact scan (recall 1.0).
pub(super) const EXACT_SCAN_MAX_ROWS: u64 = 10_000;
/// A shard this small is always scanned exactly: as fast as the graph walk, and a graph of a
/// handful of points built by parallel inserts can leave one unreachable.
pub(super) const EXACT_SCAN_SMALL_SHARD: u64 = 1_000;
/// The graph walk's beam: recall@10 ≥ 0.95 at a million chunks of the benchmark corpus
/// (`bench query --chunks 1000000`: 0.952 at 128, 0.979 at 256).
pub(super) const EF_SEARCH_DEFAULT: usize = 160;

fn micros(since: Instant) -> u64 {
    since.elapsed().as_micros() as u64
}

/// Searches `shards` (already scoped to what the caller may read) and returns the top `k`.
pub fn search(shards: &[&Shard], req: &SearchRequest) -> Result<SearchResponse> {
    req.validate()?;
    search_inner(shards, req, None)
}

/// A query's embeddings (one per model the request lacks a vector of), computed on demand.
pub type EmbedQuery<'a> = Box<dyn FnOnce() -> Result<Vec<Embedding>> + Send + 'a>;

/// [`search`] for a request without its query vector: `embed` computes it. In hybrid mode the
/// BM25 branch runs while the query is embedded (the embedding takes longer than either
/// branch), then the vector branch; the hits are those [`search`] returns with the vector given.
pub fn search_embedding(
    shards: &[&Shard],
    req: &SearchRequest,
    embed: EmbedQuery<'_>,
) -> Result<SearchResponse> {
    req.validate_parameters()?;
    if req.mode == Mode::Bm25 {
        return Err(Error::invalid(
            "search_embedding: a request in bm25 mode is a plain search",
        ));
    }
    search_inner(shards, req, Some(embed))
}

fn search_inner(
    shards: &[&Shard],
    req: &SearchRequest,
    embed: Option<EmbedQuery<'_>>,
) -> Result<SearchResponse> {
    let snapshots: Vec<Arc<Snapshot>> = shards.iter().map(|s| s.snapshot()).collect();
    // Each shard's query vector, from the vectors given (the rest come from `embed`).
    let given_vector: Vec<Option<Vec<f32>>> = match req.mode {
        Mode::Vector | Mode::Hybrid if embed.is_none() && !req.vectors.is_empty() => {
            query_vectors(&req.vectors, &snapshots)?
        }
        _ => vec![None; snapshots.len()],
    };
    // Candidates exist for fusion; a single branch only needs the top k.
    let wanted = req.offset + req.k;
    let depth = match req.mode {
        Mode::Hybrid => req.candidates.max(wanted),
        Mode::Bm25 | Mode::Vector => wanted,
    };
    // Collapsing keeps one chunk per document, so look deeper to still fill `depth` documents.
    let chunk_depth = if req.collapse {
        depth.saturating_mul(3).min(MAX_CANDIDATES)
    } else {
        depth
    };
    // Document retrieval (collapse) scores BM25 over whole documents: pooling chunk scores by
    // max favours a document's short tail chunk, whose length normalisation inflates its score
    // (SciFact nDCG@10 0.675 chunk-max vs 0.686 whole-document; see ARCHITECTURE.md).
    let level = if req.collapse {
        Level::Document
    } else {
        Level::Chunk
    };
    let terms = if req.mode == Mode::Vector {
        Vec::new()
    } else {
        analyze(&req.query)
    };
    let mut bm25: Vec<(Key, f32)> = Vec::new();
    let mut vector: Vec<(Key, f32)> = Vec::new();
    let mut timings = SearchTimings::default();
    let mut filtered_chunks = 0;
    let mut filtered_documents = 0;
    let mut facet_counts: BTreeMap<String, BTreeMap<AttrValue, u64>> = BTreeMap::new();
    // Per shard: the chunks passing the filter, the counts and facets.
    let mut allowed_of = Vec::with_capacity(snapshots.len());
    for snap in &snapshots {
        let allowed = req
            .filter
            .as_ref()
            .map(|f| Arc::new(f.eval(&snap.attrs, &snap.live)));
        filtered_chunks += allowed.as_ref().map_or(snap.live.len(), |a| a.len());
        filtered_documents += allowed
            .as_ref()
            .map_or(snap.heads.len(), |a| snap.heads.intersection_len(a));
        // The documents passing the filter are only materialised when facets are asked for.
        if !req.facets.is_empty() {
            let passing_heads = match &allowed {
                Some(a) => &snap.heads & a.as_ref(),
                None => snap.heads.clone(),
            };
            for field in &req.facets {
                let counts = facet_counts.entry(field.clone()).or_default();
                for (value, n) in snap.attrs.value_counts(field, &passing_heads) {
                    *counts.entry(value).or_default() += n;
                }
            }
        }
        allowed_of.push(allowed);
    }
    if let Some(sort) = &req.sort {
        let t = Instant::now();
        let mut ordered: Vec<(AttrValue, usize, u32)> = Vec::new();
        for (si, snap) in snapshots.iter().enumerate() {
            let mut within = match &allowed_of[si] {
                Some(a) => &snap.heads & a.as_ref(),
                None => snap.heads.clone(),
            };
            if !terms.is_empty() {
                // Documents matching one of the query's words (document-level BM25 answers
                // with first chunks, the heads).
                let matched: RoaringBitmap = snap
                    .bm25(
                        &terms,
                        Level::Document,
                        MAX_CANDIDATES,
                        0.0,
                        allowed_of[si].as_ref(),
                    )?
                    .into_iter()
                    .map(|(o, _)| o)
                    .collect();
                within &= matched;
            }
            ordered.extend(
                snap.attrs
                    .ordered(&sort.field, &within, sort.descending, wanted)
                    .into_iter()
                    .map(|(v, o)| (v, si, o)),
            );
        }
        ordered.sort_by(|a, b| {
            let by_value = if sort.descending {
                b.0.cmp(&a.0)
            } else {
                a.0.cmp(&b.0)
            };
            by_value.then_with(|| (a.1, a.2).cmp(&(b.1, b.2)))
        });
        timings.bm25_us = micros(t);
        let _stage = tracing::info_span!("hydrate").entered();
        let t = Instant::now();
        let hits = ordered
            .into_iter()
            .skip(req.offset)
            .take(req.k)
            .map(|(_, si, ordinal)| {
                let f = crate::fusion::Fused {
                    key: (si, ordinal),
                    score: 0.0,
                    bm25: None,
                    vector: None,
                };
                hydrate(&snapshots, shards, (si, ordinal), &f, req.with_payload)
            })
            .collect::<Result<Vec<Hit>>>()?;
        timings.hydrate_us = micros(t);
        return Ok(SearchResponse {
            timings,
            hits,
            filtered_chunks,
            filtered_documents,
            facets: facet_lists(facet_counts, req.facet_size),
        });
    }
    let bm25_depth = if level == Level::Document {
        depth
    } else {
        chunk_depth
    };
    // Each stage is a span (a child of the caller's, e.g. a request's): they are made here, in
    // the caller's thread, and entered wherever the work runs.
    let caller = tracing::Span::current();
    let bm25_branch = |si: usize| {
        if req.mode == Mode::Vector {
            return (Ok(Vec::new()), 0);
        }
        let _stage = tracing::info_span!(parent: &caller, "bm25", shard = si).entered();
        let t = Instant::now();
        let hits = snapshots[si].bm25(
            &terms,
            level,
            bm25_depth,
            req.title_boost,
            allowed_of[si].as_ref(),
        );
        (hits, micros(t))
    };
    let vector_branch = |si: usize, query_vector: &[Option<Vec<f32>>]| match &query_vector[si] {
        Some(q) => {
            let _stage = tracing::info_span!(parent: &caller, "ann", shard = si).entered();
            let t = Instant::now();
            let hits =
                snapshots[si].vector(q, chunk_depth, req.ef_search, allowed_of[si].as_deref());
            (hits, micros(t))
        }
        None => (Vec::new(), 0),
    };
    let shard_count = snapshots.len();
    let embed_now = |embed: EmbedQuery<'_>| -> Result<Vec<Option<Vec<f32>>>> {
        let mut all = req.vectors.clone();
        all.extend(embed()?);
        query_vectors(&all, &snapshots)
    };
    let per_shard: Vec<_> = match (embed, req.mode) {
        // The query embeds while BM25 runs over every shard; then the vector branch.
        (Some(embed), Mode::Hybrid) => {
            let (query_vector, bm25_lists) = rayon::join(
                || embed_now(embed),
                || (0..shard_count).map(bm25_branch).collect::<Vec<_>>(),
            );
            let query_vector = query_vector?;
            bm25_lists
                .into_iter()
                .enumerate()
                .map(|(si, b)| (b, vector_branch(si, &query_vector)))
                .collect()
        }
        (Some(embed), _) => {
            let query_vector = embed_now(embed)?;
            (0..shard_count)
                .map(|si| (bm25_branch(si), vector_branch(si, &query_vector)))
                .collect()
        }
        // The two branches are independent: run them on both cores, the vector branch's thread
        // joining BM25 when the graph walk is done. A single branch runs here (handing it to
        // the pool would only add a thread wake-up).
        (None, mode) => (0..shard_count)
            .map(|si| match (mode, &given_vector[si]) {
                (Mode::Hybrid, Some(q)) => snapshots[si].hybrid(
                    &terms,
                    level,
                    bm25_depth,
                    req.title_boost,
                    allowed_of[si].as_ref(),
                    q,
                    chunk_depth,
                    req.ef_search,
                ),
                (Mode::Hybrid, None) => (bm25_branch(si), (Vec::new(), 0)),
                (Mode::Bm25, _) => (bm25_branch(si), (Vec::new(), 0)),
                (Mode::Vector, _) => ((Ok(Vec::new()), 0), vector_branch(si, &given_vector)),
            })
            .collect(),
    };
    for (si, ((bm25_hits, bm25_us), (vector_hits, ann_us))) in per_shard.into_iter().enumerate() {
        timings.bm25_us += bm25_us;
        timings.ann_us += ann_us;
        bm25.extend(bm25_hits?.into_iter().map(|(o, s)| ((si, o), s)));
        vector.extend(vector_hits.into_iter().map(|(o, s)| ((si, o), s)));
    }
    normalise_per_model(&mut vector, &snapshots);
    // With `collapse`, keys become (shard, document number) and each branch remembers the
    // ordinal of the document's best chunk in that branch.
    let stage = tracing::info_span!("fuse").entered();
    let t = Instant::now();
    let mut best_chunk: HashMap<Key, [Option<u32>; 2]> = HashMap::new();
    for (branch, list) in [&mut bm25, &mut vector].into_iter().enumerate() {
        list.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        if req.collapse {
            let mut collapsed = Vec::with_capacity(list.len());
            for &((si, ordinal), score) in list.iter() {
                let key = (si, snapshots[si].docs.doc_of[ordinal as usize]);
                let slot = &mut best_chunk.entry(key).or_default()[branch];
                if slot.is_none() {
                    *slot = Some(ordinal);
                    collapsed.push((key, score));
                }
            }
            *list = collapsed;
        }
        list.truncate(depth);
    }
    let fused = fuse(&req.fusion, &bm25, &vector);
    timings.fuse_us = micros(t);
    drop(stage);
    let _stage = tracing::info_span!("hydrate").entered();
    let t = Instant::now();
    let hits = fused
        .into_iter()
        .skip(req.offset)
        .take(req.k)
        .map(|f| {
            let (si, id) = f.key;
            // The chunk from the branch where the document ranks higher represents it.
            let [from_bm25, from_vector] = best_chunk.get(&f.key).copied().unwrap_or_default();
            let vector_ranks_higher =
                matches!((f.bm25, f.vector), (Some((rb, _)), Some((rv, _))) if rv < rb);
            let ordinal = match (vector_ranks_higher, from_bm25, from_vector) {
                (true, _, Some(v)) => v,
                // A document-level BM25 hit is represented by its best-scoring chunk.
                (_, Some(b), _) if level == Level::Document => {
                    let name = &snapshots[si].docs.names[id as usize];
                    snapshots[si].best_chunk_of(&terms, name)?.unwrap_or(b)
                }
                (_, Some(b), _) => b,
                (_, None, Some(v)) => v,
                (_, None, None) => id,
            };
            hydrate(&snapshots, shards, (si, ordinal), &f, req.with_payload)
        })
        .collect::<Result<Vec<Hit>>>()?;
    timings.hydrate_us = micros(t);
    Ok(SearchResponse {
        timings,
        hits,
        filtered_chunks,
        filtered_documents,
        facets: facet_lists(facet_counts, req.facet_size),
    })
}

/// Per facet field, its most frequent values (ties in value order, so the answer is
/// deterministic).
fn facet_lists(
    facet_counts: BTreeMap<String, BTreeMap<AttrValue, u64>>,
    facet_size: usize,
) -> BTreeMap<String, Vec<FacetCount>> {
    facet_counts
        .into_iter()
        .map(|(field, counts)| {
            let mut counts: Vec<(AttrValue, u64)> = counts.into_iter().collect();
            counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            counts.truncate(facet_size);
            let values = counts
                .into_iter()
                .map(|(v, count)| FacetCount {
                    value: v.to_json(),
                    count,
                })
                .collect();
            (field, values)
        })
        .collect()
}

/// Each shard's query vector: the given vector of its own model, normalised. A shard whose
/// model has no vector, a vector of a model no shard uses, or two vectors of one model are
/// errors (a query vector is never searched against another model's rows).
fn query_vectors(
    vectors: &[Embedding],
    snapshots: &[Arc<Snapshot>],
) -> Result<Vec<Option<Vec<f32>>>> {
    for (i, v) in vectors.iter().enumerate() {
        if vectors[..i].iter().any(|w| w.model_id == v.model_id) {
            return Err(Error::invalid(format!(
                "two query vectors of model `{}`",
                v.model_id
            )));
        }
        if !snapshots.iter().any(|s| s.model.id == v.model_id) {
            let expected = snapshots
                .first()
                .map_or(String::new(), |s| s.model.id.clone());
            return Err(Error::ModelMismatch {
                expected,
                got: v.model_id.clone(),
            });
        }
    }
    snapshots
        .iter()
        .map(|snap| {
            let v = vectors
                .iter()
                .find(|v| v.model_id == snap.model.id)
                .ok_or_else(|| Error::ModelMismatch {
                    expected: snap.model.id.clone(),
                    got: vectors
                        .iter()
                        .map(|v| v.model_id.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
            let mut values = v.values.clone();
            check_and_normalise(&mut values, snap.model.dim, "query vector")?;
            Ok(Some(values))
        })
        .collect()
}

/// Vector scores of shards of different models are on different scales (one model's cosines
/// gather higher than another's): each model's candidates are min-max normalised on their own
/// before they are merged, so each model's best counts as 1. Shards of one model are untouched.
fn normalise_per_model(vector: &mut [(Key, f32)], snapshots: &[Arc<Snapshot>]) {
    let first = snapshots.first().map(|s| &s.model.id);
    if snapshots.iter().all(|s| Some(&s.model.id) == first) {
        return;
    }
    let mut spans: HashMap<&str, (f32, f32)> = HashMap::new();
    for &((si, _), score) in vector.iter() {
        let span = spans
            .entry(&snapshots[si].model.id)
            .or_insert((f32::INFINITY, f32::NEG_INFINITY));
        *span = (span.0.min(score), span.1.max(score));
    }
    for ((si, _), score) in vector.iter_mut() {
        let (lo, hi) = spans[snapshots[*si].model.id.as_str()];
        *score = if hi > lo {
            (*score - lo) / (hi - lo)
        } else {
            1.0
        };
    }
}

/// A deterministic xorshift stream of `u64`s from `state`, for tests' generated rows.
#[cfg(test)]
fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}
