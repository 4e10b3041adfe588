//! The synchronous core of Dartmouth Knowledge.
//!
//! A knowledge domain is a [`Shard`]: a tantivy BM25 index on disk, an HNSW graph over the chunk
//! embeddings, roaring bitmaps for tombstones and attribute filters, and a manifest. The engine
//! knows nothing about transports, SQL or access control: callers hand it documents that are
//! already chunked and embedded, and queries that already carry their vector.
//!
//! Invariants kept here:
//! - a write batch is applied completely or not at all (one tantivy commit is the commit point);
//! - the applied change sequence is recorded inside that same commit;
//! - the same shards and request give the same ranking (equal scores break on shard, then ordinal);
//! - a query vector from another model or of another dimension is an error.

mod attrs;
mod document;
pub mod embed;
mod error;
mod filter;
mod fusion;
mod highlight;
mod hnsw;
mod schema;
mod search;
mod shard;
mod shards;
pub mod validate;
mod vectors;

pub use attrs::{AttrValue, Attributes, Decimal, attributes_to_json};
pub use embed::{Embedder, Embedding, ModelSpec};
pub use error::{Error, ErrorKind, Result};
pub use filter::{CompareOp, Filter, MAX_FILTER_DEPTH};
pub use fusion::{Fused, Fusion, RRF_K_DEFAULT, fuse};
pub use highlight::{Highlighter, snippet, term_ranges};
pub use search::{
    BranchHit, CANDIDATES_DEFAULT, EmbedQuery, FACET_SIZE_DEFAULT, FacetCount, Hit, K_DEFAULT,
    MAX_FACET_SIZE, MAX_FACETS, MAX_K, MAX_QUERY_BYTES, Mode, RerankScore, SearchRequest,
    SearchResponse, SearchTimings, SortBy, rerank_hits, rerank_passage, search, search_embedding,
};
pub use shard::{
    ApplyTimings, Chunk, CommitInfo, Document, DomainSettings, Manifest, Shard, ShardStats,
    WriteBatch, WriteOp,
};
pub use shards::{SECOND_GENERATION, Shards, shard_key, validate_domain_name, validate_shard_key};
