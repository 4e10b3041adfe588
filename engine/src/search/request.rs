//! What a search is asked and answers: the request, its limits and modes, hits, facets,
//! timings.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::EF_SEARCH_DEFAULT;
use crate::embed::Embedding;
use crate::filter::Filter;
use crate::fusion::Fusion;
use crate::{Error, Result};

pub const MAX_K: usize = 1000;
pub const MAX_CANDIDATES: usize = 10_000;
pub const MAX_QUERY_BYTES: usize = 16 * 1024;
pub(super) const MAX_QUERY_TERMS: usize = 256;
pub const MAX_FACETS: usize = 32;
pub const MAX_FACET_SIZE: usize = 1000;
/// The defaults of a request that leaves them out (every adapter's too: they start from
/// [`SearchRequest::new`]).
pub const K_DEFAULT: usize = 10;
pub const CANDIDATES_DEFAULT: usize = 100;
pub const FACET_SIZE_DEFAULT: usize = 10;

/// Which retrieval branches run: BM25 alone, the vector index alone, or both fused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Bm25,
    Vector,
    #[default]
    Hybrid,
}

impl std::str::FromStr for Mode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "bm25" => Ok(Mode::Bm25),
            "vector" => Ok(Mode::Vector),
            "hybrid" => Ok(Mode::Hybrid),
            other => Err(Error::invalid(format!(
                "mode `{other}` is not one of bm25, vector, hybrid"
            ))),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub query: String,
    /// The query's embedding by each model of the shards searched (one vector per model; each
    /// shard takes the one of its own model); required by vector and hybrid modes.
    pub vectors: Vec<Embedding>,
    pub mode: Mode,
    pub k: usize,
    /// Candidates taken from each branch before fusion (at least `k`); hybrid mode only.
    pub candidates: usize,
    pub fusion: Fusion,
    pub filter: Option<Filter>,
    /// HNSW beam width.
    pub ef_search: usize,
    /// Extra weight of title matches in BM25 (0 = title and text scored as one field).
    pub title_boost: f32,
    /// Keep only the best chunk of each document (before cutting to `k`).
    pub collapse: bool,
    /// Read each hit's stored payload (title, text, url, heading, char range, attributes). Without
    /// it hits carry ids, ranks and scores only, read from in-memory tables, as Qdrant's
    /// `with_payload: false` or Elasticsearch's `_source: false` (evaluation, id-only callers).
    pub with_payload: bool,
    /// Attribute fields to count values of, over the documents that pass the filter.
    pub facets: Vec<String>,
    /// Values reported per facet (the most frequent first).
    pub facet_size: usize,
    /// Order documents by an attribute instead of relevance (see [`SortBy`]).
    pub sort: Option<SortBy>,
    /// Hits skipped before the `k` returned (paging); `offset + k` is at most `MAX_CANDIDATES`.
    pub offset: usize,
}

/// Documents ordered by an attribute: those passing the filter and, when the query has text,
/// matching one of its words; a document with several values (a product's variant prices) sorts
/// at its lowest ascending and its highest descending; documents without the attribute are left
/// out. One hit per document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortBy {
    pub field: String,
    pub descending: bool,
}

impl std::str::FromStr for SortBy {
    type Err = Error;
    /// `price`, `price:asc`, `price:desc`.
    fn from_str(s: &str) -> Result<Self> {
        let (field, direction) = s.rsplit_once(':').unwrap_or((s, "asc"));
        let descending = match direction.to_ascii_lowercase().as_str() {
            "asc" => false,
            "desc" => true,
            other => {
                return Err(Error::invalid(format!(
                    "sort: direction `{other}` is not asc or desc"
                )));
            }
        };
        let field = field.trim();
        if field.is_empty() || field.len() > crate::validate::MAX_ATTR_NAME_BYTES {
            return Err(Error::invalid(format!(
                "sort: an attribute name of 1 to {} bytes, got `{field}`",
                crate::validate::MAX_ATTR_NAME_BYTES
            )));
        }
        Ok(SortBy {
            field: field.to_string(),
            descending,
        })
    }
}

impl SearchRequest {
    pub fn new(query: impl Into<String>) -> Self {
        SearchRequest {
            query: query.into(),
            vectors: Vec::new(),
            mode: Mode::Hybrid,
            k: K_DEFAULT,
            candidates: CANDIDATES_DEFAULT,
            fusion: Fusion::default(),
            filter: None,
            ef_search: EF_SEARCH_DEFAULT,
            title_boost: 0.0,
            collapse: false,
            with_payload: true,
            facets: Vec::new(),
            facet_size: FACET_SIZE_DEFAULT,
            sort: None,
            offset: 0,
        }
    }

    pub fn validate(&self) -> Result<()> {
        self.validate_parameters()?;
        if self.mode != Mode::Bm25 && self.vectors.is_empty() && self.sort.is_none() {
            return Err(Error::invalid(format!(
                "{:?} mode needs a query vector",
                self.mode
            )));
        }
        Ok(())
    }

    /// Everything `validate` checks except the query vector, which only a caller that knows
    /// the domains' model can supply.
    pub fn validate_parameters(&self) -> Result<()> {
        if self.k == 0 || self.k > MAX_K {
            return Err(Error::invalid(format!(
                "k must be 1 to {MAX_K}, got {}",
                self.k
            )));
        }
        if self.candidates > MAX_CANDIDATES {
            return Err(Error::invalid(format!(
                "candidates must be at most {MAX_CANDIDATES}, got {}",
                self.candidates
            )));
        }
        if self.query.len() > MAX_QUERY_BYTES {
            return Err(Error::invalid(format!(
                "query is {} bytes; the limit is {MAX_QUERY_BYTES}",
                self.query.len()
            )));
        }
        if self.mode != Mode::Vector && self.query.trim().is_empty() && self.sort.is_none() {
            return Err(Error::invalid("query: the query text is empty"));
        }
        if self.offset.saturating_add(self.k) > MAX_CANDIDATES {
            return Err(Error::invalid(format!(
                "offset + k must be at most {MAX_CANDIDATES}, got {}",
                self.offset.saturating_add(self.k)
            )));
        }
        if self.sort.is_some() && self.mode == Mode::Vector && !self.query.trim().is_empty() {
            return Err(Error::invalid(
                "sort: orders the documents matching the query's words; a vector query has no \
                 such set (use bm25 or hybrid, or no query text)",
            ));
        }
        if self.facets.len() > MAX_FACETS
            || self.facet_size == 0
            || self.facet_size > MAX_FACET_SIZE
        {
            return Err(Error::invalid(format!(
                "facets: at most {MAX_FACETS} fields and 1 to {MAX_FACET_SIZE} values each"
            )));
        }
        if !(self.title_boost.is_finite() && self.title_boost >= 0.0) {
            return Err(Error::invalid("title_boost must be a finite number >= 0"));
        }
        self.fusion.validate().map_err(Error::InvalidInput)
    }
}

/// A hit's standing in one branch.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BranchHit {
    /// 1-based rank in the branch's own order.
    pub rank: usize,
    /// The branch's score (BM25; cosine similarity).
    pub score: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    pub domain: String,
    pub doc_id: String,
    pub chunk_id: String,
    pub chunk_idx: u64,
    pub score: f32,
    pub bm25: Option<BranchHit>,
    pub vector: Option<BranchHit>,
    pub title: String,
    pub text: String,
    pub url: Option<String>,
    pub heading: Option<String>,
    pub char_start: u64,
    pub char_end: u64,
    pub attributes: serde_json::Value,
    /// The change-log sequence of the shard state the hit was read from.
    pub index_seq: u64,
    /// The second stage's verdict, when the hit was among the candidates it re-ordered.
    pub rerank: Option<RerankScore>,
}

/// A hit's standing before and after reranking.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RerankScore {
    /// The cross-encoder's score of (query, title + passage).
    pub score: f32,
    /// The hit's 1-based rank in the fused order.
    pub rank_before: usize,
    /// Its fused score.
    pub score_before: f32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SearchResponse {
    pub hits: Vec<Hit>,
    /// Chunks that passed the filter (all live chunks without one), over every shard searched.
    pub filtered_chunks: u64,
    /// Documents that passed the filter, over every shard searched.
    pub filtered_documents: u64,
    /// Per requested facet field, its most frequent values among the documents that passed the
    /// filter (the query text does not narrow them: the vector branch matches every document).
    pub facets: BTreeMap<String, Vec<FacetCount>>,
    pub timings: SearchTimings,
}

/// Where a search spent its time, in microseconds (branches summed over shards; in hybrid mode
/// the two branches run in parallel, so their sum can exceed the wall time).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SearchTimings {
    pub bm25_us: u64,
    pub ann_us: u64,
    pub fuse_us: u64,
    pub hydrate_us: u64,
}

/// One value of a facet field and how many documents have it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FacetCount {
    /// The attribute value (a string, number or boolean).
    pub value: serde_json::Value,
    /// Documents that passed the filter with this value.
    pub count: u64,
}
