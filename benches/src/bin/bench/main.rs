//! `bench`: end-to-end figures for the closing notes and the README.
//!
//! - `bench embed`: bare embedder throughput vs the full indexing pipeline on the same chunks.
//! - `bench query`: indexing throughput, in-process query latency (p50/p99) per mode, ANN
//!   recall/QPS and peak RSS on a shard of 100k or 1M chunks built from the benchmark corpus
//!   (real text of the judged collections and real-model vectors, blended; see `corpus.rs`).
//! - `bench load`: `dartmouth serve` over the 100k shard, driven over HTTP at concurrency 1, 16
//!   and 64; p50/p99 and QPS per mode, with the query embedded per request and cached.
//! - `bench shopify`: catalog parse + normalise + chunk in products/s per export format, and an
//!   inventory webhook's time from receipt to visible through the store.
//! - `bench store`: acknowledged writes through the store (single and batched) and the delay
//!   from acknowledgement to searchable while an applier tails the changelog.
#![allow(clippy::print_stdout, reason = "a benchmark program reports on stdout")]

mod corpus;
mod load;
mod nodes;
// The tests' throwaway PostgreSQL cluster (`bench nodes`).
#[path = "../../../../domains/tests/it/pg.rs"]
mod pg;
mod query;
mod shopify;
mod store;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use clap::{Parser, Subcommand};
use dartmouth_engine::embed::{OnnxEmbedder, OnnxOptions};
use dartmouth_engine::{DomainSettings, Embedder, Shard};
use dartmouth_indexer::{
    Chunker, Format, IndexJob, Progress, Sizer, SourceReader, embedding_input,
};

#[derive(Parser)]
struct Cli {
    #[arg(
        long,
        env = "DARTMOUTH_MODEL_DIR",
        default_value = "models/all-minilm-l6-v2"
    )]
    model_dir: PathBuf,
    #[arg(
        long = "ort-lib",
        env = "ORT_DYLIB_PATH",
        default_value = "models/onnxruntime/libonnxruntime.so"
    )]
    ort_library: PathBuf,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Bare embedder chunks/s, then the whole index pipeline on the same documents.
    Embed {
        #[arg(long, default_value = "../shared/datasets/ir/scifact/corpus.jsonl")]
        corpus: PathBuf,
        /// Documents to use.
        #[arg(long, default_value_t = 500)]
        docs: usize,
        #[arg(long, default_value_t = 2)]
        sessions: usize,
        #[arg(long, default_value_t = 1)]
        threads: usize,
        #[arg(long, default_value_t = 8)]
        batch: usize,
    },
    /// Query latency per mode on a shard of `chunks` chunks.
    Query(query::QueryArgs),
    /// Acknowledged writes through the store, and how soon they are searchable.
    Store(store::StoreArgs),
    /// `dartmouth serve` under load over HTTP on loopback at several concurrencies.
    Load(load::LoadArgs),
    /// Several `dartmouth serve` nodes over one PostgreSQL: QPS, p50, p99 over 1–3 nodes.
    Nodes(nodes::NodesArgs),
    /// Catalog parse + normalise + chunk throughput; inventory webhook → visible latency.
    Shopify(shopify::ShopifyArgs),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let options = |sessions: usize, threads: usize, batch: usize| {
        let mut o = OnnxOptions::new(&cli.model_dir, &cli.ort_library);
        o.sessions = sessions;
        o.intra_threads = threads;
        o.batch_size = batch;
        o
    };
    match cli.command {
        Cmd::Embed {
            corpus,
            docs,
            sessions,
            threads,
            batch,
        } => {
            let embedder = OnnxEmbedder::load(&options(sessions, threads, batch))?;
            let settings = DomainSettings::new(embedder.spec().clone());
            let chunker = || -> Result<Chunker> {
                Ok(Chunker::new(
                    Sizer::from_model_dir(&cli.model_dir)?,
                    settings.chunk_tokens,
                    settings.chunk_overlap,
                ))
            };
            let c = chunker()?;
            let source: Vec<_> =
                SourceReader::open(std::slice::from_ref(&corpus), Some(Format::BeirJsonl))?
                    .documents()
                    .take(docs)
                    .collect::<Result<_, _>>()?;
            let mut inputs = Vec::new();
            for d in &source {
                for ch in c.chunk(&d.title, &d.text, d.format)? {
                    inputs.push(embedding_input(&d.title, &ch.text));
                }
            }
            let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
            let t = Instant::now();
            for batch in refs.chunks(256) {
                embedder.embed_batch(batch)?;
            }
            let bare = refs.len() as f64 / t.elapsed().as_secs_f64();
            println!(
                "bare embedder: {} chunks in {:.1} s = {bare:.1} chunks/s (sessions {sessions}, threads {threads}, batch {batch})",
                refs.len(),
                t.elapsed().as_secs_f64()
            );

            let tmp = std::env::temp_dir().join(format!("dk-bench-{}", std::process::id()));
            let shard = Arc::new(Shard::create(&tmp, "bench", settings.clone())?);
            let subset = tmp.with_extension("jsonl");
            let lines: Vec<String> = std::fs::read_to_string(&corpus)?
                .lines()
                .take(docs)
                .map(str::to_string)
                .collect();
            std::fs::write(&subset, lines.join("\n"))?;
            let summary = IndexJob {
                sink: shard,
                embedder: &embedder,
                chunker: chunker()?,
                batch_docs: 256,
                stop_on_error: true,
                full_sync: false,
            }
            .run(
                SourceReader::open(std::slice::from_ref(&subset), None)?,
                &Progress::hidden(),
            )?;
            println!(
                "index pipeline: {} chunks in {:.1} s = {:.1} chunks/s; ratio to bare embedder {:.3}",
                summary.chunks,
                summary.seconds,
                summary.chunks_per_second,
                summary.chunks_per_second / bare
            );
            std::fs::remove_dir_all(&tmp).ok();
            std::fs::remove_file(&subset).ok();
        }
        Cmd::Store(args) => store::run(&args)?,
        Cmd::Shopify(args) => shopify::run(
            &args,
            &cli.model_dir,
            Arc::new(OnnxEmbedder::load(&options(2, 1, 8))?),
        )?,
        Cmd::Load(args) => load::run(
            &OnnxEmbedder::load(&options(2, 1, 8))?,
            dartmouth_server::models::ModelArgs {
                model_dir: Some(cli.model_dir.clone()),
                ort_library: Some(cli.ort_library.clone()),
                openai_url: None,
                openai_key: None,
            },
            &args,
        )?,
        Cmd::Nodes(args) => nodes::run(&OnnxEmbedder::load(&options(2, 1, 8))?, &args)?,
        Cmd::Query(args) => query::run(&OnnxEmbedder::load(&options(2, 1, 8))?, &args)?,
    }
    Ok(())
}
