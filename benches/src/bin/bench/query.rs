//! `bench query`: builds (once) a shard from the benchmark corpus and measures indexing
//! throughput, query latency per mode, ANN recall/QPS against brute force over an ef sweep, and
//! peak RSS while building and while serving.
#![allow(
    clippy::disallowed_methods,
    reason = "benchmarks search catalog-only shards directly"
)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use dartmouth_engine::{
    Chunk, Document, DomainSettings, Embedder, Embedding, Mode, SearchRequest, Shard, WriteBatch,
    WriteOp, search,
};
use rayon::prelude::*;
use serde_json::{Value, json};

use crate::corpus::Corpus;

#[derive(clap::Args)]
pub struct QueryArgs {
    /// The judged collections whose documents and queries make the corpus (BEIR layout).
    #[arg(
        long = "collections",
        value_delimiter = ',',
        default_value = "../shared/datasets/ir/scifact,../shared/datasets/ir/cranfield,../shared/datasets/ir/cacm"
    )]
    pub collections: Vec<PathBuf>,
    #[arg(long, default_value_t = 100_000)]
    pub chunks: usize,
    /// Queries to time (at most as many as the collection has).
    #[arg(long, default_value_t = 2000)]
    pub queries: usize,
    /// Where the synthetic shard is kept between runs.
    #[arg(long, default_value = "target/bench-data")]
    pub dir: PathBuf,
    /// Candidates per branch before fusion.
    #[arg(long, default_value_t = 100)]
    pub candidates: usize,
    /// ef_search values for the ANN recall/QPS sweep.
    #[arg(long, value_delimiter = ',', default_value = "16,32,64,96,128,160,256")]
    pub efs: Vec<usize>,
    /// Also write the figures as JSON here (read by benches/compare/compare.py).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Only the per-mode latencies (for comparing two builds quickly): no footprint, ANN sweep
    /// or embedded-query run.
    #[arg(long)]
    pub latency_only: bool,
}

/// The benchmark corpus of `chunks` chunks and its shard, built once into `dir`; returns the
/// corpus, the shard's directory and the build figures.
pub fn ensure_shard(
    embedder: &dyn Embedder,
    dir: &Path,
    collections: &[PathBuf],
    chunks: usize,
) -> Result<(Corpus, PathBuf, Value)> {
    let corpus = Corpus::ensure(dir, collections, chunks, embedder)?;
    let n = corpus.chunks;
    let shard_dir = dir.join(format!("index-v3-{n}"));
    let complete = dir.join(format!("index-v3-{n}.complete"));
    let report = if !complete.exists() {
        if shard_dir.exists() {
            std::fs::remove_dir_all(&shard_dir)?;
        }
        reset_peak_rss();
        let mut build = build(embedder, &corpus, &shard_dir)?;
        build["peak_rss_mib"] = peak_rss_mib().into();
        std::fs::write(&complete, build.to_string())?;
        build
    } else {
        let build: Value = serde_json::from_slice(&std::fs::read(&complete)?)?;
        println!("shard {} already built: {build}", shard_dir.display());
        build
    };
    Ok((corpus, shard_dir, report))
}

pub fn run(embedder: &dyn Embedder, args: &QueryArgs) -> Result<()> {
    let (corpus, shard_dir, build) =
        ensure_shard(embedder, &args.dir, &args.collections, args.chunks)?;
    let n = corpus.chunks;
    let mut report = json!({ "chunks": n, "model": corpus.model, "candidates": args.candidates });
    report["build"] = build;

    // Serving footprint: a fresh open, then every query below.
    reset_peak_rss();
    let t = Instant::now();
    let shard = Shard::open(&shard_dir, "bench")?;
    report["open_ms"] = (t.elapsed().as_secs_f64() * 1e3).into();
    let model_id = embedder.spec().id.clone();
    let nq = args.queries.min(corpus.queries.len()).max(1);
    let texts = &corpus.queries[..nq];
    let vectors = &corpus.query_vectors[..nq];

    for mode in [Mode::Bm25, Mode::Vector, Mode::Hybrid] {
        let mut lat = Vec::with_capacity(nq);
        // Where the time goes: the engine's own stage timings, per query.
        let mut stages: [Vec<Duration>; 4] = Default::default();
        // Twice over the queries, timing the second pass: the first brings the pages the mode
        // reads into the page cache, which the kernel may have reclaimed since they were written.
        let passes = texts.iter().zip(vectors).map(|q| (false, q));
        for (timed, (q, v)) in passes.clone().chain(passes.map(|(_, q)| (true, q))) {
            let mut req = SearchRequest::new(q.as_str());
            req.mode = mode;
            req.candidates = args.candidates;
            req.vectors = vec![Embedding {
                model_id: model_id.clone(),
                values: v.clone(),
            }];
            let t = Instant::now();
            let r = std::hint::black_box(search(&[&shard], &req)?);
            if !timed {
                continue;
            }
            lat.push(t.elapsed());
            let tm = &r.timings;
            for (slot, us) in
                stages
                    .iter_mut()
                    .zip([tm.bm25_us, tm.ann_us, tm.fuse_us, tm.hydrate_us])
            {
                slot.push(Duration::from_micros(us));
            }
        }
        let (p50, p99) = p50_p99(&mut lat);
        let [bm25_ms, ann_ms, fuse_ms, hydrate_ms] = stages.map(|mut s| p50_p99(&mut s).0);
        println!(
            "{mode:?} (vector given): p50 {p50:.3} ms  p99 {p99:.3} ms  over {nq} queries, {n} chunks \
             (stage medians: bm25 {bm25_ms:.2}, ann {ann_ms:.2}, fuse {fuse_ms:.2}, hydrate {hydrate_ms:.2} ms)"
        );
        report["modes"][format!("{mode:?}").to_lowercase()] = json!({
            "p50_ms": p50, "p99_ms": p99, "queries": nq,
            "stage_p50_ms": {"bm25": bm25_ms, "ann": ann_ms, "fuse": fuse_ms, "hydrate": hydrate_ms},
        });
    }

    if args.latency_only {
        return Ok(());
    }
    // Serving footprint: open plus every query above (before the brute-force truth below, whose
    // copy of the vectors is the benchmark's, not the engine's).
    report["serve_peak_rss_mib"] = peak_rss_mib().into();
    // What is resident now, split: the process's own memory (graph, tables, model) and pages of
    // mapped files (index, vectors), which the kernel drops and re-reads under pressure.
    let (anon, file) = (status_mib("RssAnon:"), status_mib("RssFile:"));
    report["serve_rss_anon_mib"] = anon.into();
    report["serve_rss_file_mib"] = file.into();
    println!("resident after the queries: {anon} MiB own memory, {file} MiB of mapped files");

    // ANN at equal recall: brute-force truth, then recall@10 and QPS for each ef.
    let probes = nq.min(300);
    let rows = corpus.vectors()?;
    let truth: Vec<f32> = vectors[..probes]
        .par_iter()
        .map(|q| tenth_best(&rows, q))
        .collect();
    drop(rows);
    let mut ann = Vec::new();
    for &ef in &args.efs {
        let mut found = 0;
        let t = Instant::now();
        for (q, &tenth) in vectors[..probes].iter().zip(&truth) {
            let mut req = SearchRequest::new("");
            req.mode = Mode::Vector;
            req.ef_search = ef;
            // Ids and scores, as hnswlib returns; the per-mode latencies above include payloads.
            req.with_payload = false;
            req.vectors = vec![Embedding {
                model_id: model_id.clone(),
                values: q.clone(),
            }];
            let got = search(&[&shard], &req)?;
            // By score, not id: copies of a document nearly tie.
            found += got
                .hits
                .iter()
                .filter(|h| h.vector.is_some_and(|v| v.score >= tenth - 1e-4))
                .count();
        }
        let qps = probes as f64 / t.elapsed().as_secs_f64();
        let recall = found as f64 / (probes * 10) as f64;
        println!(
            "ANN ef {ef}: recall@10 {recall:.4}  {qps:.0} QPS (engine search, ids and scores, k 10)"
        );
        ann.push(json!({"ef": ef, "recall_at_10": recall, "qps": qps}));
    }
    report["ann"] = ann.into();

    // Hybrid including the query embedding, one query at a time.
    let mut lat = Vec::new();
    for q in texts.iter().take(300) {
        let t = Instant::now();
        let mut req = SearchRequest::new(q.as_str());
        req.candidates = args.candidates;
        req.vectors = vec![embedder.embed_query(q)?];
        std::hint::black_box(search(&[&shard], &req)?);
        lat.push(t.elapsed());
    }
    let (p50, p99) = p50_p99(&mut lat);
    println!("Hybrid with query embedding: p50 {p50:.3} ms  p99 {p99:.3} ms");
    report["hybrid_with_embedding"] = json!({"p50_ms": p50, "p99_ms": p99});
    println!(
        "peak RSS: building {} MiB, open + all queries {} MiB",
        report["build"]["peak_rss_mib"], report["serve_peak_rss_mib"]
    );
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| path.display().to_string())?;
    }
    Ok(())
}

fn build(embedder: &dyn Embedder, corpus: &Corpus, dir: &Path) -> Result<Value> {
    let shard = Shard::create(dir, "bench", DomainSettings::new(embedder.spec().clone()))?;
    let model_id = embedder.spec().id.clone();
    let t = Instant::now();
    let (mut index_us, mut vectors_us, mut made) = (0u64, 0u64, 0usize);
    let mut ops = Vec::new();
    let mut flush = |ops: &mut Vec<WriteOp>| -> Result<()> {
        let info = shard.apply(WriteBatch {
            model_id: model_id.clone(),
            ops: std::mem::take(ops),
            seq: None,
        })?;
        index_us += info.timings.index_us;
        vectors_us += info.timings.vectors_us;
        Ok(())
    };
    corpus.for_each_chunk(|c, embedding| {
        ops.push(WriteOp::Upsert(Document {
            id: c.id,
            title: c.title,
            url: None,
            attributes: Default::default(),
            chunks: vec![Chunk {
                text: c.text,
                char_start: 0,
                char_end: 0,
                heading: None,
                embedding,
            }],
        }));
        made += 1;
        if ops.len() == 5000 {
            flush(&mut ops)?;
            eprint!("\r{made}/{} chunks", corpus.chunks);
        }
        Ok(())
    })?;
    flush(&mut ops)?;
    // Applied (BM25, vector file) and searchable: rows the graph worker has not reached yet
    // are scanned exactly. The graph builds beside the writes; the checkpoint waits for it.
    let applied = t.elapsed().as_secs_f64();
    let before_wait = shard.stats().graph_points;
    shard.checkpoint()?;
    let secs = t.elapsed().as_secs_f64();
    let n = made as f64;
    let rate = |us: u64| n / (us.max(1) as f64 / 1e6);
    let report = json!({
        "seconds": secs,
        "chunks_per_s": n / secs,
        "applied_seconds": applied,
        "graph_points_when_applied": before_wait,
        "bm25_chunks_per_s": rate(index_us),
        "vector_file_chunks_per_s": rate(vectors_us),
    });
    println!(
        "\nbuilt {made} chunks in {secs:.1} s = {:.0} chunks/s (vectors given, graph built and saved): applied in {applied:.1} s with {before_wait} rows in the graph; BM25 {:.0}/s, vector file {:.0}/s",
        n / secs,
        rate(index_us),
        rate(vectors_us),
    );
    Ok(report)
}

/// The 10th best cosine similarity of `q` (unit length) over `rows` (normalised here).
fn tenth_best(rows: &[Vec<f32>], q: &[f32]) -> f32 {
    let mut sims: Vec<f32> = rows
        .iter()
        .map(|r| {
            let norm = r
                .iter()
                .map(|x| x * x)
                .sum::<f32>()
                .sqrt()
                .max(f32::MIN_POSITIVE);
            r.iter().zip(q).map(|(a, b)| a * b).sum::<f32>() / norm
        })
        .collect();
    let qn = q
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::MIN_POSITIVE);
    sims.select_nth_unstable_by(9, |a, b| b.total_cmp(a));
    sims[9] / qn
}

pub fn p50_p99(lat: &mut [Duration]) -> (f64, f64) {
    lat.sort();
    let at = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3;
    (at(0.5), at(0.99))
}

/// Resets the kernel's peak-RSS mark for this process (Linux: `/proc/self/clear_refs`).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident set size since the last reset, in MiB (`VmHWM`).
fn peak_rss_mib() -> u64 {
    status_mib("VmHWM:")
}

/// A `kB` line of `/proc/self/status`, in MiB.
fn status_mib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}
