//! What a shard is made of and answers with: its settings and manifest, what a commit
//! reports. (The documents and batches it takes are in `crate::document`.)

use serde::{Deserialize, Serialize};

use crate::embed::ModelSpec;
use crate::{Error, Result};

/// Per-domain settings fixed at creation: the model its vectors come from and how text is chunked.
/// Keys it does not know are ignored: the store keeps other settings of the domain beside these
/// (its catalog settings, `dartmouth_catalog`), and manifests written before those moved out of
/// the engine carry them too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainSettings {
    pub model: ModelSpec,
    /// Token budget of a chunk.
    pub chunk_tokens: usize,
    /// Tokens shared by consecutive chunks.
    pub chunk_overlap: usize,
    /// The BM25 analyzer (only "english" today).
    pub language: String,
    /// How searches of this domain rerank when a request does not say (none: they do not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerank: Option<crate::embed::RerankSettings>,
}

impl DomainSettings {
    pub fn new(model: ModelSpec) -> Self {
        DomainSettings {
            model,
            chunk_tokens: 256,
            chunk_overlap: 32,
            language: "english".into(),
            rerank: None,
        }
    }

    pub fn validate(&self) -> Result<()> {
        if self.model.dim == 0 || self.model.dim > 8192 {
            return Err(Error::invalid(format!(
                "model dimension must be 1 to 8192, got {}",
                self.model.dim
            )));
        }
        if self.chunk_tokens < 16 || self.chunk_overlap >= self.chunk_tokens {
            return Err(Error::invalid(format!(
                "chunking needs chunk_tokens >= 16 and chunk_overlap < chunk_tokens, got {} and {}",
                self.chunk_tokens, self.chunk_overlap
            )));
        }
        if let Some(r) = &self.rerank {
            r.validate()?;
        }
        if self.language != "english" {
            return Err(Error::invalid(format!(
                "language `{}` is not supported (only english)",
                self.language
            )));
        }
        Ok(())
    }
}

/// What `manifest.json` holds, plus the applied sequence read from the last commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub domain: String,
    /// Which incarnation of the domain this shard was built for (the store's domain uid):
    /// a domain deleted and created again under the same name must not meet the old shard.
    /// `None` for shards made without a store (evaluation, benchmarks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    pub settings: DomainSettings,
    /// Last change-log sequence applied (recorded inside the tantivy commit, not in the file).
    #[serde(skip)]
    pub applied_seq: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CommitInfo {
    pub applied_seq: u64,
    pub upserted: usize,
    pub deleted: usize,
    pub chunks: usize,
    /// True when the batch's sequence had been applied already and nothing was done.
    pub skipped: bool,
    pub timings: ApplyTimings,
}

/// Where an apply spent its time, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ApplyTimings {
    /// Checking and normalising the batch.
    pub validate_us: u64,
    /// Appending and syncing the vector rows.
    pub vectors_us: u64,
    /// tantivy: adding the chunk documents and committing (the BM25 index).
    pub index_us: u64,
    /// Reloading the searcher and publishing the new snapshot.
    pub publish_us: u64,
}

pub(super) fn micros(since: std::time::Instant) -> u64 {
    since.elapsed().as_micros() as u64
}

/// A domain's shard on this node.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ShardStats {
    /// The domain's name.
    pub domain: String,
    /// Live documents in the shard.
    pub documents: u64,
    /// Live chunks in the shard.
    pub chunks: u64,
    /// Points in its vector graph (live chunks with a vector).
    pub graph_points: u64,
    /// The changelog sequence the shard has applied.
    pub applied_seq: u64,
    /// The model its vectors are from.
    pub model: ModelSpec,
}
