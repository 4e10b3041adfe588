//! The store's integration tests: one binary (the conformance suite runs on SQLite and on a
//! throwaway PostgreSQL cluster, `pg.rs`).
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

mod jwt;
mod pg;
mod store;
