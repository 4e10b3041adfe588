//! Sources → normalise → chunk → embed → write.
//!
//! The indexer turns files into [`dartmouth_engine::Document`]s: it reads a source, splits each
//! document into chunks that fit the model's token budget (keeping char ranges and heading paths
//! for citations), embeds them in batches and writes them to a [`Sink`] — a shard, or the store
//! through `dartmouth_views::StoreSink`. It knows no store and no transport.

mod chunk;
mod doc;
mod error;
mod job;
mod records;
pub mod shopify;
mod source;

pub use chunk::{Chunker, Sizer, TextChunk};
pub use doc::{Format, SourceDoc};
pub use error::{Error, ErrorKind, Result};
pub use job::{
    DocMeta, IndexJob, IndexSummary, MAX_REPORTED_FAILURES, Progress, Reusable, Sink, SinkOp,
    content_hash, embedding_input,
};
pub use records::{BeirQuery, RecordFields, read_beir_queries};
pub use source::{Item, SourceOptions, SourceReader, shopify_item};
pub mod html;
pub mod pdf;
