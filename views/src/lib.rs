//! The indexes as views of the store ("the store is the log, the indexes are views"): the only
//! code that knows both the store (`domains`) and the shards (`engine`).
//!
//! - `write.rs`: [`commit`], the one door to `Store::write` (every document checked by the
//!   engine's validator first), and [`StoreSink`], the indexing job's sink through it.
//! - `applier.rs`: [`Applier`] brings a domain's shard up to the changelog — the shard of that
//!   incarnation of the domain, quarantining what a shard refuses, rebuilding a shard ahead of
//!   its store, removing shards of deleted domains.
//! - `reader.rs`: [`Reader`], the read gate: the shards a `Pass` opens, the only way to search.
//! - `snapshot.rs`: snapshots of the store and the shards, and their restore.
//! - `settings.rs`: a domain's engine settings and documents in the store's JSON form.

mod applier;
mod error;
mod reader;
pub mod seal;
mod settings;
pub mod snapshot;
mod write;

pub use applier::{Applier, ApplierEvents, CatchUp};
pub use error::{Error, ErrorKind, Result, engine_kind};
pub use reader::Reader;
pub use settings::{
    Generation, catalog_settings, domain_settings, new_domain_settings, to_document,
};
pub use write::{StoreSink, commit};
