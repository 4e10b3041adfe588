//! The engine's integration tests: one binary, a module per concern.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

mod ann_recall;
mod engine;
