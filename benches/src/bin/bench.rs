//! `bench`: end-to-end figures for the closing notes and the README.
//!
//! - `bench embed`: bare embedder throughput vs the full indexing pipeline on the same chunks.
//! - `bench query`: in-process query latency (p50/p99) per mode on a large synthetic shard built
//!   from real SciFact text and real-model vectors perturbed with noise.
#![allow(clippy::print_stdout, reason = "a benchmark program reports on stdout")]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use dartmouth_engine::embed::{OnnxEmbedder, OnnxOptions};
use dartmouth_engine::{
    Chunk, Document, DomainSettings, Embedder, Embedding, Mode, SearchRequest, Shard, WriteBatch,
    WriteOp, search,
};
use dartmouth_indexer::{
    Chunker, Format, IndexJob, Progress, Sizer, SourceReader, embedding_input,
};
use rand::{Rng, SeedableRng};

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
    Query {
        #[arg(long, default_value = "../shared/datasets/ir/scifact")]
        collection: PathBuf,
        #[arg(long, default_value_t = 100_000)]
        chunks: usize,
        #[arg(long, default_value_t = 2000)]
        queries: usize,
        /// Where the synthetic shard is kept between runs.
        #[arg(long, default_value = "target/bench-data")]
        dir: PathBuf,
        /// Candidates per branch before fusion.
        #[arg(long, default_value_t = 100)]
        candidates: usize,
        /// Cut each query to its first N words (agents' queries are short; SciFact claims are not).
        #[arg(long)]
        max_query_words: Option<usize>,
    },
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
                shard,
                embedder: &embedder,
                chunker: chunker()?,
                batch_docs: 256,
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
        Cmd::Query {
            collection,
            chunks,
            queries,
            dir,
            candidates,
            max_query_words,
        } => query_bench(
            &options(2, 1, 8),
            &collection,
            chunks,
            queries,
            &dir,
            candidates,
            max_query_words,
        )?,
    }
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Builds (once) a shard of `n` chunks: SciFact documents repeated, each copy's text perturbed by
/// word dropout and its vector (embedded once by the real model) by Gaussian noise.
fn query_bench(
    options: &OnnxOptions,
    collection: &std::path::Path,
    n: usize,
    nq: usize,
    dir: &std::path::Path,
    candidates: usize,
    max_query_words: Option<usize>,
) -> Result<()> {
    let embedder = OnnxEmbedder::load(options)?;
    let shard_dir = dir.join(format!("shard-{n}"));
    let base_vectors_path = dir.join("scifact-doc-vectors.json");
    let corpus: Vec<_> =
        SourceReader::open(&[collection.join("corpus.jsonl")], Some(Format::BeirJsonl))?
            .collect::<Result<_, _>>()?;
    std::fs::create_dir_all(dir)?;
    let base_vectors: Vec<Vec<f32>> = if base_vectors_path.exists() {
        serde_json::from_slice(&std::fs::read(&base_vectors_path)?)?
    } else {
        eprintln!(
            "embedding {} SciFact documents once (cached in {})",
            corpus.len(),
            base_vectors_path.display()
        );
        let inputs: Vec<String> = corpus
            .iter()
            .map(|d| embedding_input(&d.title, &d.text))
            .collect();
        let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let v = embedder.embed_batch(&refs)?;
        std::fs::write(&base_vectors_path, serde_json::to_vec(&v)?)?;
        v
    };
    let shard = if shard_dir.exists() {
        Shard::open(&shard_dir, "bench")?
    } else {
        let shard = Shard::create(
            &shard_dir,
            "bench",
            DomainSettings::new(embedder.spec().clone()),
        )?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let t = Instant::now();
        let mut made = 0;
        let mut copy = 0;
        let (mut index_us, mut graph_us, mut vectors_us) = (0u64, 0u64, 0u64);
        while made < n {
            let mut ops = Vec::new();
            for (d, v) in corpus.iter().zip(&base_vectors) {
                if made >= n || ops.len() >= 5000 {
                    break;
                }
                let words: Vec<&str> = d
                    .text
                    .split_whitespace()
                    .filter(|_| rng.random::<f32>() > 0.1)
                    .collect();
                let embedding: Vec<f32> = v
                    .iter()
                    .map(|x| x + 0.02 * (rng.random::<f32>() - 0.5))
                    .collect();
                ops.push(WriteOp::Upsert(Document {
                    id: format!("{}-{copy}-{made}", d.id),
                    title: d.title.clone(),
                    url: None,
                    attributes: Default::default(),
                    chunks: vec![Chunk {
                        text: words.join(" "),
                        char_start: 0,
                        char_end: 0,
                        heading: None,
                        embedding,
                    }],
                }));
                made += 1;
            }
            copy += 1;
            let info = shard.apply(WriteBatch {
                model_id: embedder.spec().id.clone(),
                ops,
                seq: None,
            })?;
            index_us += info.timings.index_us;
            graph_us += info.timings.graph_us;
            vectors_us += info.timings.vectors_us;
            eprint!("\r{made}/{n} chunks");
        }
        shard.checkpoint()?;
        let secs = t.elapsed().as_secs_f64();
        println!(
            "\nbuilt {n} chunks in {secs:.1} s = {:.0} chunks/s (tantivy + vector file + HNSW, vectors given)",
            n as f64 / secs
        );
        let rate = |us: u64| n as f64 / (us.max(1) as f64 / 1e6);
        println!(
            "  BM25 index (tantivy add + commit): {:.0} chunks/s",
            rate(index_us)
        );
        println!(
            "  vector file append + fsync:        {:.0} chunks/s",
            rate(vectors_us)
        );
        println!(
            "  HNSW insert:                       {:.0} chunks/s",
            rate(graph_us)
        );
        shard
    };
    let query_file = collection.join("queries_train.jsonl");
    let qs = dartmouth_indexer::read_beir_queries(if query_file.exists() {
        &query_file
    } else {
        collection
    })
    .context("queries")?;
    let qs: Vec<_> = qs.into_iter().cycle().take(nq).collect();
    let cut: Vec<String> = qs
        .iter()
        .map(|q| match max_query_words {
            Some(n) => q
                .text
                .split_whitespace()
                .take(n)
                .collect::<Vec<_>>()
                .join(" "),
            None => q.text.clone(),
        })
        .collect();
    let texts: Vec<&str> = cut.iter().map(String::as_str).collect();
    let t = Instant::now();
    let vectors = embedder.embed_batch(&texts[..texts.len().min(300)])?;
    let _ = t;
    for mode in [Mode::Bm25, Mode::Vector, Mode::Hybrid] {
        let mut lat = Vec::with_capacity(nq);
        for (i, q) in texts.iter().enumerate() {
            let mut req = SearchRequest::new(*q);
            req.mode = mode;
            req.candidates = candidates;
            req.vector = Some(Embedding {
                model_id: embedder.spec().id.clone(),
                values: vectors[i % vectors.len()].clone(),
            });
            let t = Instant::now();
            let r = search(&[&shard], &req)?;
            lat.push(t.elapsed());
            std::hint::black_box(r);
        }
        lat.sort();
        println!(
            "{mode:?} (vector given): p50 {:.3} ms  p99 {:.3} ms  over {nq} queries, {n} chunks",
            percentile(&lat, 0.5).as_secs_f64() * 1e3,
            percentile(&lat, 0.99).as_secs_f64() * 1e3
        );
    }
    // ANN recall@10 against brute force over the shard's vector file (ordinal = row).
    let raw = std::fs::read(shard_dir.join("vectors.f32"))?;
    let dim = embedder.spec().dim;
    let rows: Vec<f32> = raw[8..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let mut found = 0;
    let probes = vectors.len().min(200);
    for q in vectors.iter().take(probes) {
        let mut exact: Vec<(f32, usize)> = rows
            .chunks_exact(dim)
            .enumerate()
            .map(|(i, r)| (r.iter().zip(q).map(|(a, b)| a * b).sum::<f32>(), i))
            .collect();
        exact.select_nth_unstable_by(10, |a, b| b.0.total_cmp(&a.0));
        let mut req = SearchRequest::new("");
        req.mode = Mode::Vector;
        req.vector = Some(Embedding {
            model_id: embedder.spec().id.clone(),
            values: q.clone(),
        });
        let got = search(&[&shard], &req)?;
        // Compare by score: copies of a document can tie, so ids alone would undercount.
        let tenth = exact[..10]
            .iter()
            .map(|e| e.0)
            .fold(f32::INFINITY, f32::min);
        let n = q.iter().map(|x| x * x).sum::<f32>().sqrt();
        found += got
            .hits
            .iter()
            .filter(|h| h.vector.is_some_and(|v| v.score >= tenth / n - 1e-4))
            .count();
    }
    println!(
        "ANN recall@10 vs brute force: {:.4} over {probes} queries",
        found as f64 / (probes * 10) as f64
    );

    // With query embedding (short queries, one at a time).
    let mut lat = Vec::new();
    for q in texts.iter().take(300) {
        let t = Instant::now();
        let mut req = SearchRequest::new(*q);
        req.candidates = candidates;
        req.vector = Some(embedder.embed_query(q)?);
        std::hint::black_box(search(&[&shard], &req)?);
        lat.push(t.elapsed());
    }
    lat.sort();
    println!(
        "Hybrid with query embedding: p50 {:.3} ms  p99 {:.3} ms  over {} queries",
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        lat.len()
    );
    Ok(())
}
