//! The indexer's integration tests: one binary, a module per concern.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

mod shopify;
mod shopify_admin;
mod tokens;
