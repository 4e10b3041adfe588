//! The server's integration tests: one binary, a module per concern. Most run the real
//! `dartmouth` binary (as a CLI or a server on loopback) over real stores and shards;
//! `routes/` and `rerank.rs` drive the service in process (`inproc.rs`).
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]
#![allow(
    dead_code,
    reason = "not every module uses every helper of the support"
)]

mod inproc;
#[path = "../../../domains/tests/it/pg.rs"]
mod pg;
#[path = "../../../indexer/tests/it/shop_server.rs"]
mod shop_server;
mod support;

mod access;
mod admin_api;
mod admin_ui;
mod catalog;
mod cli;
mod clients;
mod contract;
mod crash;
mod files;
mod hardening;
mod inputs;
mod layering;
mod limits;
mod logs;
mod mcp;
mod model;
mod nodes;
mod openapi;
mod outage;
mod products;
mod rerank;
mod routes;
mod shopify_pull;
mod snapshots;
mod switch;
mod tidy;
mod tls;
