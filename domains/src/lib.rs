//! Knowledge domains as an access-controlled unit, on a transactional store whose changelog the
//! shards apply ("the store is the log, the indexes are views").
//!
//! - `Store` (`store.rs`): SQLite (default, in the data directory) or PostgreSQL through sqlx,
//!   each with its own migrations; the bootstrap admin on a new store.
//! - `admin.rs`: domains, principals, groups, grants, API keys (256-bit secrets, stored as
//!   SHA-256, a short public id, revocable, optional expiry and domain restriction), audit.
//! - `access.rs`: `Caller` (who; only from a credential or the local operator) and `Pass`
//!   (which domains; only from `Store::authorize`). A domain the caller may not use is reported
//!   exactly as one that does not exist.
//! - `jwt.rs`: JWT verification (algorithm pinned per key, selected by `kid`; `exp`, `aud`,
//!   `iss`, `sub` required) and delegated tokens that can only narrow a principal's grants.
//! - `content/`: documents, chunks with embeddings (`write.rs`, `read.rs`), the changelog
//!   (`changelog.rs`) and webhook delivery ids (`deliveries.rs`); writes acknowledge with their
//!   sequence.
//! - `keys.rs`: API keys (secrets stored as SHA-256, public ids, narrowing).
//! - `model.rs`: the stored rows (domains, principals, grants, keys, audit entries, documents).
//! - `names.rs`: every name and free-text field validated before it reaches SQL.
//! - `shops.rs`: shop connections and the lease one sync per shop holds.
//! - `error.rs`: the store's errors, each of a kind the server maps to one code.
//! - `generations.rs`: a domain's embedding generations, for switching its model online.
//! - `fallback.rs`: the read path's answers a node keeps (keys, principals, grants with their
//!   domains) so that searches answer while the store is unreachable, within a staleness bound.
//! - `dump.rs`: every table as JSON lines from one read transaction, restored into an empty
//!   store in one transaction (SQLite and PostgreSQL alike).
//!
//! This crate depends on no other member: settings and attributes are carried as JSON.

mod access;
mod admin;
mod content;
mod dump;
mod error;
mod fallback;
mod generations;
mod jwt;
mod keys;
mod model;
pub mod names;
mod shops;
mod store;

pub use access::{Caller, Pass, System};
pub use admin::AuditQuery;
pub use dump::{DumpInfo, DumpedDomain};
pub use error::{Error, ErrorKind, Missing, Result};
pub use generations::{PendingDocument, Progress, slot_column};
pub use jwt::{Delegation, JwtConfig, JwtKey, MAX_DELEGATION_SECS};
pub use model::{
    AuditEntry, Change, Domain, DomainStats, GenerationState, Generations, Grant, KeyInfo,
    KeyScope, Lease, OtherGeneration, Principal, PrincipalKind, Quarantined, Reusable, Role,
    StoredChunk, StoredDocument, Write, now_millis,
};
pub use shops::{MIN_EVERY_MS, ShopBinding, ShopConnection};
pub use store::{BOOTSTRAP_ADMIN, Backend, ChangeListener, Store, StoreOptions};
