//! What callers send and get back, the same over every adapter (HTTP JSON, gRPC messages built
//! from these, the CLI's `--json`).

use std::collections::BTreeMap;

use dartmouth_catalog::understand::Understood;
use dartmouth_domains::{KeyInfo, PrincipalKind, Role};
use dartmouth_engine::{BranchHit, FacetCount, Mode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Fusion)]
pub struct FusionInput {
    /// "zscore" (default), "weighted" or "rrf".
    #[serde(default)]
    pub method: Option<String>,
    /// Weight of the BM25 branch (default 1).
    #[serde(default)]
    pub bm25_weight: Option<f32>,
    /// Weight of the vector branch (default: zscore 1.2, weighted 0.7, rrf 1).
    #[serde(default)]
    pub vector_weight: Option<f32>,
    /// rrf's rank constant k (default 60); the other methods ignore it.
    #[serde(default)]
    pub rrf_k: Option<f32>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchInput {
    /// The query text (optional with `vector`, `similar_to` or `sort`).
    #[serde(default)]
    pub query: String,
    /// Empty: every domain the caller may read.
    #[serde(default)]
    pub domains: Vec<String>,
    /// Hits returned: 1 to the server's limit (100 unless configured); default 10.
    #[serde(default)]
    pub k: Option<usize>,
    /// Which branches run: bm25, vector or hybrid (default; vector when there is a `vector` or
    /// `similar_to` and no query text).
    #[serde(default)]
    pub mode: Option<Mode>,
    /// How hybrid mode fuses the two branches (default: zscore, the vector branch weighted 1.2).
    #[serde(default)]
    pub fusion: Option<FusionInput>,
    /// Candidates each branch takes before fusion, hybrid mode: at most 10 000 (default 100).
    #[serde(default)]
    pub candidates: Option<usize>,
    /// Only documents whose attributes pass it: `in_stock = true AND price <= 50`.
    #[serde(default)]
    pub filter: Option<String>,
    /// Attribute fields to count the values of over the documents passing the filter (at most 32).
    #[serde(default)]
    pub facets: Vec<String>,
    /// Values reported per facet, the most frequent first: 1 to 1000 (default 10).
    #[serde(default)]
    pub facet_size: Option<usize>,
    /// Give each hit an `explain`: its branches' ranks and scores and the fusion formula.
    #[serde(default)]
    pub explain: bool,
    /// Read your own writes: domain → the sequence its write was acknowledged with.
    #[serde(default)]
    pub min_seq: BTreeMap<String, u64>,
    /// One hit per document.
    #[serde(default)]
    pub collapse: bool,
    /// Catalog query understanding: price bounds, sizes, colours and stock wording in the
    /// query become a filter (with `filter`, both apply) and the rest of the text is searched.
    #[serde(default)]
    pub parse: bool,
    /// A query vector given by the caller (from the domains' model, of its dimension): vector
    /// mode without a query text, hybrid with one.
    #[serde(default)]
    pub vector: Option<Vec<f32>>,
    /// "More like this": the documents nearest to this one (the mean of its chunks' vectors),
    /// itself left out.
    #[serde(default)]
    pub similar_to: Option<SimilarTo>,
    /// Order by an attribute instead of relevance: `price`, `price:asc`, `price:desc` (the
    /// documents passing the filter that match a word of the query, or all of them without one).
    #[serde(default)]
    pub sort: Option<String>,
    /// Hits skipped before the `k` returned (paging).
    #[serde(default)]
    pub offset: Option<usize>,
    /// A second stage: a cross-encoder re-orders the best candidates (after access control and
    /// the filter). Without it, the searched domains' default applies (when they share one).
    #[serde(default)]
    pub rerank: Option<RerankInput>,
}

/// Reranking asked for by a request; what it leaves out comes from the searched domains' shared
/// default, else the built-in one (ms-marco-minilm-l-12-v2, top 10, 1 000 ms).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Rerank)]
pub struct RerankInput {
    /// Candidates re-ordered, the first `top_n` of the fused order: 1 to 100 (0: no reranking,
    /// whatever the domains' default).
    #[serde(default)]
    pub top_n: Option<usize>,
    /// The reranker, a catalogue id (`GET /v1/models`).
    #[serde(default)]
    pub model: Option<String>,
    /// Weight of the cross-encoder's score against the fused score (each min-max normalised
    /// over the candidates), 0 to 1; 1 orders by the cross-encoder alone.
    #[serde(default)]
    pub blend: Option<f32>,
    /// The budget: when it runs out, the fused order is returned and `rerank.applied` is false.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// What the second stage did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = RerankInfo)]
pub struct RerankOut {
    /// The reranker (its catalogue id).
    pub model: String,
    /// Candidates it re-ordered, the first of the fused order.
    pub top_n: usize,
    /// Weight of its score against the fused score (1: its score alone).
    pub blend: f32,
    /// False when the budget ran out first: the hits are in the fused order.
    pub applied: bool,
    /// Why it was not applied (the budget ran out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Time it took, in milliseconds.
    pub took_ms: f64,
}

/// A document to find the like of.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimilarTo {
    /// The document's domain (one the caller may read, of the searched domains' model).
    pub domain: String,
    /// The document's id.
    pub doc_id: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Hit)]
pub struct HitOut {
    /// The domain it was found in.
    pub domain: String,
    /// Its document's id.
    pub doc_id: String,
    /// The chunk's id: `<doc_id>#<chunk_idx>`.
    pub chunk_id: String,
    /// The chunk's position in its document, from 0.
    pub chunk_idx: u64,
    /// Its document's title.
    pub title: String,
    /// Its document's URL, if it has one.
    pub url: Option<String>,
    /// The heading path the chunk sits under (`Returns > Sale items`), if any.
    pub heading: Option<String>,
    /// The chunk's text.
    pub text: String,
    /// `text` around the query terms, each wrapped in `<em>…</em>`, HTML-escaped: safe to
    /// render (the marks are its only markup).
    pub snippet: String,
    /// Where the chunk starts in its document's text, in characters (inclusive).
    pub char_start: u64,
    /// Where the chunk ends in its document's text, in characters (exclusive).
    pub char_end: u64,
    /// The score the hits are ordered by: the fused one, or with reranking the reranked one (0
    /// with `sort`, which orders by the attribute).
    pub score: f32,
    /// Its rank and score in the BM25 branch (`null`: not among its candidates, or the branch did
    /// not run).
    pub bm25: Option<BranchHit>,
    /// Its rank and cosine similarity in the vector branch (`null`: not among its candidates, or
    /// the branch did not run).
    pub vector: Option<BranchHit>,
    /// The embedding model of its domain (the serving generation's).
    pub model: String,
    /// The changelog sequence of the shard state it was read from.
    pub index_seq: u64,
    /// Its document's filterable attributes.
    #[schema(value_type = Object)]
    pub attributes: Value,
    /// With reranking: the cross-encoder's score, and the hit's rank and score before it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rerank: Option<dartmouth_engine::RerankScore>,
    /// With `explain`: the fusion, its formula, the branches' ranks and scores (and the
    /// reranking's).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub explain: Option<Value>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Totals {
    /// Documents passing the filter (all of them without one) in the domains searched; the query
    /// text does not narrow it.
    pub documents: u64,
    /// Chunks passing the filter (all of them without one) in the domains searched.
    pub chunks: u64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SearchOutput {
    /// The hits, best first: at most `k`, after the `offset` skipped.
    pub hits: Vec<HitOut>,
    /// What passes the filter, whatever the query text.
    pub total: Totals,
    /// Per facet field asked for, its most frequent values over the documents passing the filter,
    /// with their counts.
    pub facets: BTreeMap<String, Vec<FacetCount>>,
    /// The domains searched.
    pub domains: Vec<String>,
    /// With `parse`: the text searched, the filter made, and each constraint recognised.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub understood: Option<Understood>,
    /// With reranking (asked for, or the domains' default): what it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rerank: Option<RerankOut>,
    /// Time the search took, in milliseconds.
    pub took_ms: f64,
    /// The model of the first domain searched (context packs measure with its tokenizer).
    #[serde(skip)]
    pub model_spec: Option<dartmouth_engine::ModelSpec>,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContextInput {
    /// The question or search text.
    pub query: String,
    /// Empty: every domain the caller may read.
    #[serde(default)]
    pub domains: Vec<String>,
    /// Token budget of `context`: 1 to the server's limit (16 000 unless configured); default 1000.
    #[serde(default)]
    pub max_tokens: Option<usize>,
    /// Which branches run, as on search (default hybrid).
    #[serde(default)]
    pub mode: Option<Mode>,
    /// Only documents whose attributes pass it, as on search.
    #[serde(default)]
    pub filter: Option<String>,
    /// Read your own writes: domain → the sequence its write was acknowledged with.
    #[serde(default)]
    pub min_seq: BTreeMap<String, u64>,
    /// Catalog query understanding, as on search.
    #[serde(default)]
    pub parse: bool,
    /// Reranking, as on search: the pack takes the reranked order.
    #[serde(default)]
    pub rerank: Option<RerankInput>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Passage)]
pub struct PassageOut {
    /// Its number in `context` (`[1]`, `[2]`, …), to cite it by.
    pub marker: usize,
    /// The domain of its document.
    pub domain: String,
    /// Its document's id.
    pub doc_id: String,
    /// The chunks it is made of, in text order.
    pub chunk_ids: Vec<String>,
    /// Its document's title.
    pub title: String,
    /// Its document's URL, if it has one.
    pub url: Option<String>,
    /// Its chunks' text in order, overlaps removed and gaps marked ` … ` (cut, ending in `…`, when
    /// not even the best passage fits the budget).
    pub text: String,
    /// Where it starts in its document's text, in characters (inclusive).
    pub char_start: u64,
    /// Where it ends in its document's text, in characters (exclusive).
    pub char_end: u64,
    /// The score of its document's best hit.
    pub score: f32,
    /// Tokens of `text` (without its heading line in `context`).
    pub tokens: usize,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ContextOutput {
    /// The passages, each headed by `[marker]` and its provenance, ready to paste into a prompt.
    pub context: String,
    /// The passages in `context`, in its order, each with its provenance.
    pub passages: Vec<PassageOut>,
    /// Tokens of `context` by the domains' model's tokenizer (characters / 4 for a model without
    /// one); never over `max_tokens`.
    pub tokens: usize,
    /// With `parse`: what was understood (see `SearchOutput::understood`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub understood: Option<Understood>,
    /// With reranking: what it did (see `SearchOutput::rerank`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rerank: Option<RerankOut>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Chunk)]
pub struct ChunkOut {
    /// Its id: `<doc_id>#<idx>`.
    pub chunk_id: String,
    /// Its position in the document, from 0.
    pub idx: usize,
    /// Its text.
    pub text: String,
    /// Where it starts in the document's text, in characters (inclusive).
    pub char_start: u64,
    /// Where it ends in the document's text, in characters (exclusive).
    pub char_end: u64,
    /// The heading path it sits under (`Returns > Sale items`), if any.
    pub heading: Option<String>,
}

/// One chunk of a document, with the document's provenance.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChunkWithDocument {
    /// The document's domain.
    pub domain: String,
    /// The document's id.
    pub doc_id: String,
    /// The document's title.
    pub title: String,
    /// The document's URL, if it has one.
    pub url: Option<String>,
    /// The chunk.
    pub chunk: ChunkOut,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Document)]
pub struct DocumentOut {
    /// Its domain.
    pub domain: String,
    /// Its id.
    pub doc_id: String,
    /// Its title.
    pub title: String,
    /// Its URL, if it has one.
    pub url: Option<String>,
    /// Its filterable attributes, as hits show them.
    #[schema(value_type = Object)]
    pub attributes: Value,
    /// Its chunks, in order.
    pub chunks: Vec<ChunkOut>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IngestDocument {
    /// The document's id in the domain: writing it again replaces it.
    pub id: String,
    /// Its title: searched, embedded with each chunk, shown with its hits.
    #[serde(default)]
    pub title: String,
    /// Its text, chunked and embedded.
    #[serde(default)]
    pub text: String,
    /// Where it lives, shown with its hits and passages.
    #[serde(default)]
    pub url: Option<String>,
    /// Filterable attributes: `{"vendor": "Acme", "price": 19.99, "tags": ["a", "b"]}`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub attributes: serde_json::Map<String, Value>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IngestInput {
    /// The documents: 1 to the server's limit (1000 unless configured); one invalid and none is
    /// written.
    pub documents: Vec<IngestDocument>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IngestOutput {
    /// The domain written.
    pub domain: String,
    /// Documents written (new or changed; unchanged ones are not rewritten).
    pub documents: usize,
    /// Chunks written.
    pub chunks: usize,
    /// The domain's changelog sequence this ingest was acknowledged with: pass it as
    /// `min_seq` to read your own writes.
    pub seq: u64,
}

/// A catalog upload's parameters (the query string, and the request's Content-Type).
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CatalogUpload {
    /// json, csv or bulk; by default from the Content-Type (text/csv, application/jsonl),
    /// then the body (`{`/`[`: JSON; a first line with `__typename`: bulk; else CSV).
    #[serde(default)]
    pub format: Option<String>,
    /// Delete the domain's documents the catalog does not mention (only when no record failed).
    #[serde(default)]
    pub full_sync: bool,
    /// The shop's address; product URLs become `<base_url>/products/<handle>`.
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(skip)]
    pub content_type: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainInput {
    /// Its name: 1 to 64 of `a-z 0-9 . _ -`, starting with a letter or digit.
    pub name: String,
    /// What it holds, in words (at most 1000 characters).
    #[serde(default)]
    pub description: String,
    /// A local embedding model of the catalogue (`GET /v1/models`; default all-minilm-l6-v2).
    #[serde(default)]
    pub model: Option<String>,
    /// "local" (default: `model` on ONNX Runtime), "minilm" (local all-minilm-l6-v2), "openai"
    /// (an OpenAI-compatible endpoint the server is configured with; needs `openai_model` and
    /// `dim`) or "fake" (deterministic hashing, for tests).
    #[serde(default)]
    pub embedder: Option<String>,
    /// The endpoint's embedding model (embedder `openai`).
    #[serde(default)]
    pub openai_model: Option<String>,
    /// The vector size (openai; fake: default 384).
    #[serde(default)]
    pub dim: Option<usize>,
    /// Token budget of a chunk (default 256).
    #[serde(default)]
    pub chunk_tokens: Option<usize>,
    /// Tokens shared by consecutive chunks (default 32).
    #[serde(default)]
    pub chunk_overlap: Option<usize>,
    /// Catalogs: a shop's option (as a filter field, `case_size`) → the canonical field its
    /// values are also filed under (`device`), or `""` for none.
    #[serde(default)]
    pub option_names: BTreeMap<String, String>,
    /// How its searches rerank when a request does not say (what is left out: the built-in
    /// reranking's; absent: no reranking by default).
    #[serde(default)]
    pub rerank: Option<RerankInput>,
}

/// A domain's state: its shard (on this node), its store, and what the applier quarantined.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = DomainStats)]
pub struct DomainStatsOut {
    #[serde(flatten)]
    pub shard: dartmouth_engine::ShardStats,
    /// Variants of a catalog (secondary keys `variant:`).
    pub variants: u64,
    /// Documents in the store.
    pub stored_documents: u64,
    /// Chunks in the store.
    pub stored_chunks: u64,
    /// The domain's last changelog sequence in the store.
    pub last_seq: u64,
    /// When the domain was last written (RFC 3339, UTC).
    pub last_sync: Option<String>,
    /// Stored documents the shard refused, with why.
    pub quarantined: Vec<dartmouth_domains::Quarantined>,
    /// Its embedding generations: the serving one, and one being built or kept.
    pub generations: dartmouth_domains::Generations,
    /// The other generation's vectors so far (while a switch builds it, or kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other_generation: Option<dartmouth_domains::Progress>,
    /// The shop connected for pull sync, with its last run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shop: Option<super::ConnectionOut>,
}

/// What a rebuild of a domain's shard from the store made.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReindexOut {
    /// The domain rebuilt.
    pub domain: String,
    /// Live documents in the rebuilt shard.
    pub documents: u64,
    /// Live chunks in the rebuilt shard.
    pub chunks: u64,
    /// The changelog sequence the shard was rebuilt to.
    pub seq: u64,
    /// Wall time of the rebuild.
    pub seconds: f64,
}

/// A snapshot of the store and of a node's shards.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Snapshot)]
pub struct SnapshotOut {
    /// Its name, the directory it is in under the snapshot directory.
    pub name: String,
    /// RFC 3339.
    pub created_at: String,
    /// The store it was taken from (`sqlite` or `postgres`); it restores into either.
    pub backend: String,
    /// The store schema's version it was taken at.
    pub schema_version: i64,
    /// Its size on disk, in bytes.
    pub bytes: u64,
    /// The domains it holds, with their sequences.
    pub domains: Vec<SnapshotDomainOut>,
    /// Rows per store table.
    pub rows: BTreeMap<String, u64>,
    /// Encrypted with the node's snapshot key: its domains and rows are then sealed too, and
    /// listed empty.
    pub encrypted: bool,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = SnapshotDomain)]
pub struct SnapshotDomainOut {
    /// The domain's name.
    pub name: String,
    /// The domain's sequence in the store copy.
    pub store_seq: u64,
    /// The sequence its shard copy had applied (it catches up from there on restore); absent
    /// when the shard was not copied (held by another node): rebuilt from the store instead.
    pub shard_seq: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotInput {
    /// Default: the time it is taken (`2026-11-29T19-30-00Z`).
    pub name: Option<String>,
    /// Encrypt it with the node's snapshot key (`serve --snapshot-key-env`).
    #[serde(default)]
    pub encrypt: bool,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrincipalInput {
    /// Its name: 1 to 64 of `a-z 0-9 . _ -`, starting with a letter or digit.
    pub name: String,
    /// What it is: agent, user, service or group.
    pub kind: PrincipalKind,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantInput {
    /// The principal (or group) granted.
    pub principal: String,
    /// The domain.
    pub domain: String,
    /// The role: read, write or admin (each includes the ones before it).
    pub role: Role,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyInput {
    /// The principal the key authenticates as (another than the caller: superusers only).
    pub principal: String,
    /// Restrict the key to these domains (default: the creating credential's restriction).
    #[serde(default)]
    pub domains: Option<Vec<String>>,
    /// Seconds from now.
    #[serde(default)]
    pub expires_in: Option<u64>,
    /// The highest role the key may use (default: the creating credential's).
    #[serde(default)]
    pub role: Option<Role>,
}

/// A delegated token's request: the end user an agent acts for.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DelegateInput {
    /// The principal the agent acts for: the token reads what both may read.
    pub end_user: String,
    /// Narrow to these domains (default: every domain both may read).
    #[serde(default)]
    pub domains: Vec<String>,
    /// 1 to 900 seconds (default 300).
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NewKey {
    /// The key as listed.
    pub key: KeyInfo,
    /// Shown once; only its SHA-256 is stored.
    pub secret: String,
}

/// What a Shopify webhook delivery's headers say besides its signature.
#[derive(Debug, Clone, Default)]
pub struct ShopifyDelivery {
    /// `X-Shopify-Topic`.
    pub topic: Option<String>,
    /// `X-Shopify-Webhook-Id`: the same for every retry of one delivery.
    pub id: Option<String>,
}

/// Files to index into a domain (`dartmouth index`).
pub struct FileIndex {
    pub paths: Vec<std::path::PathBuf>,
    pub options: dartmouth_indexer::SourceOptions,
    /// Documents per atomic batch.
    pub batch_docs: usize,
    /// Delete what the files do not mention (only when no record failed).
    pub full_sync: bool,
    /// Check every record first; write nothing when any fails.
    pub strict: bool,
    pub progress: dartmouth_indexer::Progress,
    /// Called with each batch's acknowledged sequence.
    pub on_ack: Option<Box<dyn Fn(u64) + Send + Sync>>,
}

/// A domain's changes: each part given replaces the stored one.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainUpdate {
    /// What it holds, in words (at most 1000 characters).
    #[serde(default)]
    pub description: Option<String>,
    /// Catalogs: the shop's option names → canonical fields (see `DomainInput`); applies to
    /// what is written from now on (upload the catalog again to re-file what is stored).
    #[serde(default)]
    pub option_names: Option<BTreeMap<String, String>>,
    /// Its searches' default reranking (`top_n: 0` removes it).
    #[serde(default)]
    pub rerank: Option<RerankInput>,
    /// Switch the domain to this embedding model of the catalogue, online: a task builds the
    /// new generation while the old one serves (the answer names it).
    #[serde(default)]
    pub model: Option<String>,
}

/// A domain, and the task an update started (a model switch).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = DomainUpdated)]
pub struct DomainOut {
    #[serde(flatten)]
    pub domain: dartmouth_domains::Domain,
    /// With `model`: the task building the new generation (`GET /v1/tasks/{id}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<super::TaskOut>,
}

/// Which audit entries to read (newest first): each part given must match exactly.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditInput {
    /// Unix milliseconds, inclusive.
    #[serde(default)]
    pub since: Option<i64>,
    /// Unix milliseconds, exclusive.
    #[serde(default)]
    pub until: Option<i64>,
    #[serde(default)]
    pub actor: Option<String>,
    #[serde(default)]
    pub action: Option<String>,
    #[serde(default)]
    pub target: Option<String>,
    /// ok, denied or failed.
    #[serde(default)]
    pub outcome: Option<String>,
    /// 1 to 1000 (default 100).
    #[serde(default)]
    pub limit: Option<usize>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberInput {
    /// The principal (or group) to add.
    pub member: String,
}

/// Documents to delete: by id, or every document a filter matches (one of the two).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteInput {
    /// The documents' ids (at most 1000 unless configured).
    #[serde(default)]
    pub ids: Vec<String>,
    /// Every document it matches, once the shard has caught up (`in_stock = false`).
    #[serde(default)]
    pub filter: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeleteOutput {
    /// The domain written.
    pub domain: String,
    /// Documents deleted (ids the domain does not hold are not counted).
    pub deleted: usize,
    /// The sequence the deletes were acknowledged with (`min_seq` reads after them).
    pub seq: u64,
}

/// A domain's applier on this node: how far its shard is behind the store.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DomainLag {
    /// The domain's name.
    pub domain: String,
    /// The changelog sequence its shard on this node has applied.
    pub applied_seq: u64,
    /// The domain's last changelog sequence in the store.
    pub last_seq: u64,
    /// How far the shard is behind: `last_seq - applied_seq`.
    pub lag: u64,
}

/// Live figures for the admin page: this node's last minute of requests, and the applier's lag
/// on the domains the caller administers.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LiveStats {
    /// Seconds since this node's service started.
    pub uptime_seconds: f64,
    #[serde(flatten)]
    pub requests: crate::metrics::RecentFigures,
    /// The applier's lag on each domain the caller administers that this node holds.
    pub domains: Vec<DomainLag>,
}

/// A file to index (`POST /v1/domains/{d}/files`): its name is the document id of a Markdown,
/// HTML, text or PDF file and tells its format when `format` does not.
#[derive(Debug, Clone, Default)]
pub struct UploadedFile {
    pub name: String,
    pub format: Option<String>,
    pub bytes: Vec<u8>,
}

/// How uploaded files are indexed (the query string; gRPC fields).
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UploadOptions {
    /// The format of every file (markdown, html, text, pdf, json, jsonl, shopify-csv, …);
    /// default: from each file's name.
    #[serde(default)]
    pub format: Option<String>,
    /// Delete the domain's documents the files do not mention (only when no record failed).
    #[serde(default)]
    pub full_sync: bool,
    /// Answer at once with a task (202) instead of the summary.
    #[serde(default, rename = "async")]
    pub background: bool,
    /// A raw (not multipart, not JSON) body's file name.
    #[serde(default)]
    pub name: Option<String>,
    /// A Shopify file's shop address (product URLs).
    #[serde(default)]
    pub base_url: Option<String>,
}

/// Files as a JSON body: text in `content`, or any bytes (PDF) in `content_base64`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FilesInput {
    /// The files: 1 to the server's limit (1000 unless configured).
    pub files: Vec<FileInput>,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FileInput {
    /// Its name: the document id of a Markdown, HTML, text or PDF file, and its format when
    /// `format` does not say.
    pub name: String,
    /// Its format (markdown, html, text, pdf, json, jsonl, shopify-csv, …); default: the query's
    /// `format`, else from its name.
    #[serde(default)]
    pub format: Option<String>,
    /// Its text (give this or `content_base64`).
    #[serde(default)]
    pub content: Option<String>,
    /// Its bytes in base64, for a PDF (give this or `content`).
    #[serde(default)]
    pub content_base64: Option<String>,
}

/// What an upload did, or the task doing it.
#[derive(Debug, Clone)]
pub enum UploadOutcome {
    Done(Box<dartmouth_indexer::IndexSummary>),
    Started(Box<super::TaskOut>),
}

/// `GET /v1/snapshots`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SnapshotList {
    /// Oldest first.
    pub snapshots: Vec<SnapshotOut>,
}

/// `GET /v1/models`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ModelList {
    /// The catalogue, in its order.
    pub models: Vec<crate::models::ModelInfo>,
}

/// A principal deleted.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PrincipalDeleted {
    /// Its name.
    pub deleted: String,
}

/// A member added to a group.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Membership {
    /// The group.
    pub group: String,
    /// The member added (a principal or another group).
    pub member: String,
}
