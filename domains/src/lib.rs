//! Knowledge domains as an access-controlled unit: principals, groups, grants, API keys, JWT
//! verification, audit, and the transactional store (SQLite / PostgreSQL) whose changelog the
//! engine's shards apply.
//!
//! Empty on purpose until that work lands: the engine already records the applied changelog
//! sequence in every shard commit and skips replayed sequences, which is what this crate's
//! applier will rely on. This crate depends on no other member.
