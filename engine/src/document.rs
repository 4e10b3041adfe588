//! What a write is: a document chunked and embedded by the caller, and the batch of upserts
//! and deletes a shard applies atomically. The validator (`crate::validate`) and the shard
//! (`crate::shard`) both read these; neither imports the other for them.

use crate::attrs::Attributes;

/// A document ready for the index: chunked and embedded by the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub id: String,
    pub title: String,
    pub url: Option<String>,
    pub attributes: Attributes,
    pub chunks: Vec<Chunk>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    pub text: String,
    /// Character range of the chunk in the source text, for citations.
    pub char_start: u64,
    pub char_end: u64,
    /// The heading path the chunk sits under (`Returns > Sale items`), if any.
    pub heading: Option<String>,
    pub embedding: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum WriteOp {
    /// Replaces every chunk of the document.
    Upsert(Document),
    Delete(String),
}

/// Operations applied in order, atomically. `seq` is the change-log sequence they come from:
/// a batch whose `seq` is not above the shard's applied sequence is skipped (idempotent replay).
#[derive(Debug, Clone, PartialEq)]
pub struct WriteBatch {
    pub model_id: String,
    pub ops: Vec<WriteOp>,
    pub seq: Option<u64>,
}
