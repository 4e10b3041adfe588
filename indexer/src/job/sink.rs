//! Where a job's batches go: a shard, or the store behind `dartmouth_views::StoreSink`.

use std::collections::HashMap;

use dartmouth_catalog::CatalogSettings;
use dartmouth_engine::{Document, DomainSettings, Shard, WriteBatch, WriteOp};

use crate::Result;

/// A stored document as a job sees it: what decides whether it changed, and the vectors of its
/// chunks (text, embedding) to reuse.
#[derive(Debug, Clone, PartialEq)]
pub struct Reusable {
    pub content_hash: String,
    pub title: String,
    pub chunks: Vec<(String, Vec<f32>)>,
}

/// One write for a sink: the engine's operation plus what the store keeps beside it.
#[derive(Debug, Clone, PartialEq)]
pub enum SinkOp {
    Upsert(Document, DocMeta),
    Delete(String),
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct DocMeta {
    /// Decides whether a re-sent document changed (see [`content_hash`]).
    pub content_hash: String,
    pub source: Option<String>,
    pub keys: Vec<String>,
    /// Where the document came from (a file and line, `documents[2]`), for errors.
    pub place: String,
}

impl SinkOp {
    pub fn into_write_op(self) -> WriteOp {
        match self {
            SinkOp::Upsert(doc, _) => WriteOp::Upsert(doc),
            SinkOp::Delete(id) => WriteOp::Delete(id),
        }
    }
}

static NO_CATALOG_SETTINGS: CatalogSettings = CatalogSettings {
    option_names: std::collections::BTreeMap::new(),
};

/// Where an indexing job's batches go: straight into a shard, or through the store, whose
/// changelog the shard then applies.
pub trait Sink: Send + Sync {
    fn name(&self) -> &str;
    fn settings(&self) -> &DomainSettings;
    /// How the domain files catalogs (none of its own by default: the built-in vocabulary).
    fn catalog(&self) -> &CatalogSettings {
        &NO_CATALOG_SETTINGS
    }
    /// The sequence already acknowledged before the job (0 for a new domain).
    fn acknowledged(&self) -> u64;
    /// Durably writes one batch; returns the sequence that acknowledges it.
    fn write(&self, model_id: &str, ops: Vec<SinkOp>) -> Result<u64>;
    /// Called once after the last batch.
    fn finish(&self) -> Result<()>;
    /// Stored state of `ids`, to skip unchanged documents and reuse vectors (none by default).
    fn reusable(&self, _ids: &[String]) -> Result<HashMap<String, Reusable>> {
        Ok(HashMap::new())
    }
    /// The document owning a secondary key, with its stored source.
    fn by_key(&self, _key: &str) -> Result<Option<(String, Option<String>)>> {
        Ok(None)
    }
    /// Every document id (for a full sync); `None` when the sink cannot list them.
    fn document_ids(&self) -> Result<Option<Vec<String>>> {
        Ok(None)
    }
    /// The stored sources of `ids` (those that have one), to reconcile an update with.
    fn sources(&self, _ids: &[String]) -> Result<HashMap<String, String>> {
        Ok(HashMap::new())
    }
}

impl Sink for Shard {
    fn name(&self) -> &str {
        Shard::name(self)
    }

    fn settings(&self) -> &DomainSettings {
        Shard::settings(self)
    }

    fn acknowledged(&self) -> u64 {
        self.applied_seq()
    }

    fn write(&self, model_id: &str, ops: Vec<SinkOp>) -> Result<u64> {
        Ok(self
            .apply(WriteBatch {
                model_id: model_id.to_string(),
                ops: ops.into_iter().map(SinkOp::into_write_op).collect(),
                seq: None,
            })?
            .applied_seq)
    }

    fn finish(&self) -> Result<()> {
        Ok(self.checkpoint()?)
    }
}
