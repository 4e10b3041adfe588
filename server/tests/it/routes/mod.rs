//! The HTTP API in process, one small test per route and case (tables where they fit): the
//! service over a temporary SQLite store with fake embedders, driven through `http::router`
//! (`crate::inproc`). What needs a process — crashes, several nodes, TLS, the browser, the MCP
//! SDK, the CLI, gRPC's wire — stays in the end-to-end modules.

mod admin;
mod documents;
mod domains;
mod files;
mod ops;
mod search;
mod tasks;
