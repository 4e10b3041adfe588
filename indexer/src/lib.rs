//! Sources → normalise → chunk → embed → write.
//!
//! The indexer turns files into [`dartmouth_engine::Document`]s: it reads a source, splits each
//! document into chunks that fit the model's token budget (keeping char ranges and heading paths
//! for citations), embeds them in batches and applies them to a shard. It never talks to a
//! transport; the CLI and the server drive it.

mod applier;
mod chunk;
mod error;
mod job;
pub mod shopify;
mod source;

pub use applier::{
    Applier, ApplierEvents, CatchUp, Reader, StoreSink, commit, domain_settings,
    new_domain_settings, to_document,
};
pub use chunk::{Chunker, Sizer, TextChunk};
pub use error::{Error, Result};
pub use job::{
    DocMeta, IndexJob, IndexSummary, MAX_REPORTED_FAILURES, Progress, Sink, SinkOp, content_hash,
    embedding_input,
};
pub use source::{
    BeirQuery, Format, Item, RecordFields, SourceDoc, SourceOptions, SourceReader,
    read_beir_queries, shopify_item,
};
pub mod html;
pub mod pdf;
