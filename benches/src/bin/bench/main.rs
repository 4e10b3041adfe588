//! `bench`: end-to-end figures for the closing notes and the README.
//!
//! - `bench embed --model M`: a catalogue model's chunks/s beside a bare ONNX Runtime session on
//!   the same inputs, its query embedding p50, then the full indexing pipeline.
//! - `bench switch`: a domain's model switched online under load (p50/p99 before, during,
//!   after; failed requests; writes searchable afterwards).
//! - `bench rerank --model M`: a cross-encoder's p50/p99 for the top 10/20/50 beside a bare session.
//! - `bench query`: indexing throughput, in-process query latency (p50/p99) per mode, ANN
//!   recall/QPS and peak RSS on a shard of 100k or 1M chunks built from the benchmark corpus
//!   (real text of the judged collections and real-model vectors, blended; see `corpus.rs`).
//! - `bench load`: `dartmouth serve` over the 100k shard, driven over HTTP at concurrency 1, 16
//!   and 64; p50/p99 and QPS per mode, with the query embedded per request and cached.
//! - `bench shopify`: catalog parse + normalise + chunk in products/s per export format, and an
//!   inventory webhook's time from receipt to visible through the store.
//! - `bench pull`: a shop's full sync pulled from the tests' Shopify-compatible Admin API beside
//!   `dartmouth index` of the same bulk file (products/s, peak memory at two sizes), and an
//!   incremental sync of 100 changed products against their embedding time.
//! - `bench store`: acknowledged writes through the store (single and batched) and the delay
//!   from acknowledgement to searchable while an applier tails the changelog.
#![allow(clippy::print_stdout, reason = "a benchmark program reports on stdout")]

mod corpus;
mod load;
mod models;
mod nodes;
// The tests' throwaway PostgreSQL cluster (`bench nodes`).
#[path = "../../../../domains/tests/it/pg.rs"]
mod pg;
mod pull;
mod query;
// The tests' Shopify-compatible Admin API (`bench pull`).
#[path = "../../../../indexer/tests/it/shop_server.rs"]
#[allow(
    dead_code,
    clippy::unwrap_used,
    reason = "the tests' server, whose every failure is a panic; the benchmark uses part of it"
)]
mod shop_server;
mod shopify;
mod store;
mod switch;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
struct Cli {
    #[arg(long, env = "DARTMOUTH_MODELS_DIR", default_value = "models")]
    models_dir: PathBuf,
    #[arg(
        long = "ort-lib",
        env = "ORT_DYLIB_PATH",
        default_value = "models/onnxruntime/libonnxruntime.so"
    )]
    ort_library: PathBuf,
    /// The embedding model of the query, load, nodes and shopify benchmarks.
    #[arg(long, default_value = "all-minilm-l6-v2", global = true)]
    embedding_model: String,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// A model's chunks/s through our embedder beside a bare ONNX Runtime session on the same
    /// inputs, the query embedding p50, then the whole index pipeline on the same documents.
    Embed(models::EmbedArgs),
    /// A cross-encoder's latency for the top 10 / 20 / 50, beside a bare session.
    Rerank(models::RerankArgs),
    /// Query latency per mode on a shard of `chunks` chunks.
    Query(query::QueryArgs),
    /// Acknowledged writes through the store, and how soon they are searchable.
    Store(store::StoreArgs),
    /// `dartmouth serve` under load over HTTP on loopback at several concurrencies.
    Load(load::LoadArgs),
    /// Several `dartmouth serve` nodes over one PostgreSQL: QPS, p50, p99 over 1–3 nodes.
    Nodes(nodes::NodesArgs),
    /// A domain's model switched online under load: p50/p99 before, during, after.
    Switch(switch::SwitchArgs),
    /// Catalog parse + normalise + chunk throughput; inventory webhook → visible latency.
    Shopify(shopify::ShopifyArgs),
    /// A shop's full sync pulled over the Admin API beside an upload of the same bulk file;
    /// an incremental sync of changed products.
    Pull(pull::PullArgs),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let place = models::Place {
        models_dir: cli.models_dir.clone(),
        ort_library: cli.ort_library.clone(),
    };
    let model_dir = cli.models_dir.join(&cli.embedding_model);
    let embedder = || place.embedder(&cli.embedding_model);
    match cli.command {
        Cmd::Embed(args) => models::embed(&place, &args)?,
        Cmd::Rerank(args) => models::rerank(&place, &args)?,
        Cmd::Store(args) => store::run(&args)?,
        Cmd::Switch(args) => switch::run(&args)?,
        Cmd::Pull(args) => pull::run(&args)?,
        Cmd::Shopify(args) => shopify::run(&args, &model_dir, Arc::new(embedder()?))?,
        Cmd::Load(args) => load::run(
            &embedder()?,
            dartmouth_server::models::ModelArgs {
                models_dir: Some(cli.models_dir.clone()),
                ort_library: Some(cli.ort_library.clone()),
                openai_url: None,
                openai_key: None,
            },
            &args,
        )?,
        Cmd::Nodes(args) => nodes::run(&embedder()?, &args)?,
        Cmd::Query(args) => query::run(&embedder()?, &args)?,
    }
    Ok(())
}
