//! The indexer's integration tests: one binary, a module per concern.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

mod shop_server;
mod shopify;
mod shopify_admin;
mod tokens;
