//! The views' integration tests (a real SQLite store and real shards): one binary.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

mod access;
mod seal;
mod sync;
