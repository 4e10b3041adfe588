//! `bench store`: the write path through the store. Acknowledged single-document writes per
//! second, batched writes in chunks per second (embeddings given, random unit vectors), and how
//! long after its acknowledgement a write is searchable while an applier thread tails the
//! changelog, as the server does.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use clap::Args;
use dartmouth_domains::{Role, Store, StoredChunk, StoredDocument, Write};
use dartmouth_engine::{DomainSettings, ModelSpec, SearchRequest, Shards};
use dartmouth_views::Applier;
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::json;

#[derive(Args)]
pub struct StoreArgs {
    /// Store URL; a fresh SQLite store in a temporary directory when absent.
    #[arg(long)]
    pub store: Option<String>,
    /// Single-document writes, each acknowledged before the next.
    #[arg(long, default_value_t = 2000)]
    pub singles: usize,
    /// Offered rate of the single-document writes per second (0: as fast as acknowledged).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Batched writes.
    #[arg(long, default_value_t = 40)]
    pub batches: usize,
    #[arg(long, default_value_t = 100)]
    pub batch_docs: usize,
    #[arg(long, default_value_t = 5)]
    pub chunks_per_doc: usize,
    #[arg(long, default_value_t = 384)]
    pub dim: usize,
    /// Also write the figures as JSON here.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

fn document(rng: &mut StdRng, id: usize, chunks: usize, dim: usize) -> Write {
    let chunks = (0..chunks)
        .map(|c| {
            let mut v: Vec<f32> = (0..dim).map(|_| rng.random_range(-1.0..1.0)).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter_mut().for_each(|x| *x /= norm);
            let text = format!(
                "document{id} part {c}: returns within thirty days, shipping to every region, \
                 warranty for two years on batteries and chargers"
            );
            StoredChunk {
                char_start: (c * text.len()) as u64,
                char_end: ((c + 1) * text.len()) as u64,
                text,
                heading: None,
                embedding: v,
            }
        })
        .collect();
    Write::Upsert(StoredDocument {
        external_id: format!("doc-{id}"),
        title: format!("Document {id}"),
        url: None,
        attributes: json!({}),
        content_hash: format!("h{id}"),
        chunks,
        ..Default::default()
    })
}

fn quantiles(mut v: Vec<Duration>) -> (f64, f64, f64) {
    v.sort();
    let at = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3;
    (at(0.5), at(0.99), at(1.0))
}

pub fn run(args: &StoreArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let tmp = tempfile::tempdir()?;
    let url = args
        .store
        .clone()
        .unwrap_or_else(|| Store::sqlite_url(tmp.path()));
    let store = rt.block_on(Store::open(&url)).context("open the store")?;
    let shards = Shards::open(&tmp.path().join("shards"))?;
    let spec = ModelSpec {
        id: format!("bench-{}", args.dim),
        dim: args.dim,
    };
    let settings = serde_json::to_value(DomainSettings::new(spec.clone()))?;
    let name = format!("bench-{}", std::process::id());
    let admin = rt.block_on(store.local_admin())?;
    let domain = rt.block_on(store.create_domain(&admin, &name, "bench store", &settings))?;
    let pass = rt.block_on(store.authorize(&admin, std::slice::from_ref(&name), Role::Write))?;
    let applier = Applier {
        store: &store,
        shards: &shards,
        runtime: rt.handle().clone(),
        events: None,
    };
    applier.shard(&domain)?;
    let mut rng = StdRng::seed_from_u64(7);
    let mut report = json!({ "store": if args.store.is_some() { "given" } else { "sqlite" } });

    // 1. Single-document writes (one chunk each), acknowledged one after another, while an
    // applier thread tails the changelog; each write's visibility is the moment the applier's
    // commit containing it returned (the shard's searcher is reloaded by then).
    let acked: Mutex<Vec<(u64, Instant)>> = Mutex::new(Vec::with_capacity(args.singles));
    let visible: Mutex<Vec<(u64, Instant)>> = Mutex::new(Vec::new());
    let done = AtomicBool::new(false);
    let mut ack_latency = Vec::with_capacity(args.singles);
    let singles_secs = std::thread::scope(|s| -> Result<f64> {
        let tail = s.spawn(|| -> Result<()> {
            loop {
                let finished = done.load(Ordering::Acquire);
                let seq = applier.catch_up(&domain)?;
                visible
                    .lock()
                    .map_err(|_| anyhow::anyhow!("poisoned"))?
                    .push((seq, Instant::now()));
                if finished {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        let t = Instant::now();
        for i in 0..args.singles {
            if args.rate > 0.0 {
                let due = t + Duration::from_secs_f64(i as f64 / args.rate);
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
            }
            let doc = document(&mut rng, i, 1, args.dim);
            let t0 = Instant::now();
            #[allow(
                clippy::disallowed_methods,
                reason = "measures the store's own write; the documents are valid by construction"
            )]
            let seq = rt.block_on(store.write(&pass, &name, &spec.id, &[doc]))?;
            let now = Instant::now();
            ack_latency.push(now - t0);
            acked
                .lock()
                .map_err(|_| anyhow::anyhow!("poisoned"))?
                .push((seq, now));
        }
        let secs = t.elapsed().as_secs_f64();
        done.store(true, Ordering::Release);
        tail.join()
            .map_err(|_| anyhow::anyhow!("applier panicked"))??;
        Ok(secs)
    })?;
    let visible = visible
        .into_inner()
        .map_err(|_| anyhow::anyhow!("poisoned"))?;
    let to_visible: Vec<Duration> = acked
        .into_inner()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .into_iter()
        .map(|(seq, at)| {
            let seen = visible
                .iter()
                .find(|(s, _)| *s >= seq)
                .map(|(_, t)| *t)
                .context("a write never became visible")?;
            Ok(seen.saturating_duration_since(at))
        })
        .collect::<Result<_>>()?;
    let (ack50, ack99, _) = quantiles(ack_latency);
    let (vis50, vis99, vismax) = quantiles(to_visible);
    let rate = args.singles as f64 / singles_secs;
    println!(
        "single-document writes{}: {} in {singles_secs:.2} s = {rate:.0}/s acknowledged (ack p50 {ack50:.2} ms, p99 {ack99:.2} ms)",
        if args.rate > 0.0 {
            format!(" offered at {}/s", args.rate)
        } else {
            String::new()
        },
        args.singles
    );
    println!(
        "  ack → searchable (applier tailing): p50 {vis50:.1} ms, p99 {vis99:.1} ms, max {vismax:.1} ms"
    );
    // The last write is really there.
    let reader = applier.reader(&rt.block_on(store.authorize(
        &admin,
        std::slice::from_ref(&name),
        Role::Read,
    ))?)?;
    let last = format!("document{}", args.singles - 1);
    let mut req = SearchRequest::new(last.clone());
    req.mode = dartmouth_engine::Mode::Bm25;
    let hits = reader.search(&req)?.hits;
    ensure!(
        hits.first()
            .is_some_and(|h| h.doc_id == format!("doc-{}", args.singles - 1)),
        "{last} is not the top hit after the applier caught up"
    );
    report["single_writes_per_sec"] = json!(rate);
    report["offered_rate"] = json!(args.rate);
    report["single_ack_ms"] = json!({ "p50": ack50, "p99": ack99 });
    report["ack_to_searchable_ms"] = json!({ "p50": vis50, "p99": vis99, "max": vismax });

    // 2. Batched writes: acknowledged chunks per second, then how fast the applier makes them
    // searchable (the HNSW inserts dominate).
    let chunks = args.batches * args.batch_docs * args.chunks_per_doc;
    let batches: Vec<Vec<Write>> = (0..args.batches)
        .map(|b| {
            (0..args.batch_docs)
                .map(|d| {
                    document(
                        &mut rng,
                        args.singles + b * args.batch_docs + d,
                        args.chunks_per_doc,
                        args.dim,
                    )
                })
                .collect()
        })
        .collect();
    let mut batch_latency = Vec::with_capacity(args.batches);
    let t = Instant::now();
    for batch in &batches {
        let t0 = Instant::now();
        #[allow(
            clippy::disallowed_methods,
            reason = "measures the store's own write; the documents are valid by construction"
        )]
        rt.block_on(store.write(&pass, &name, &spec.id, batch))?;
        batch_latency.push(t0.elapsed());
    }
    let batch_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    applier.catch_up(&domain)?;
    let apply_secs = t.elapsed().as_secs_f64();
    let (b50, b99, _) = quantiles(batch_latency);
    let batch_rate = chunks as f64 / batch_secs;
    let apply_rate = chunks as f64 / apply_secs;
    println!(
        "batched writes: {} batches of {} docs × {} chunks (dim {}) = {chunks} chunks in {batch_secs:.2} s = {batch_rate:.0} chunks/s acknowledged (batch p50 {b50:.1} ms, p99 {b99:.1} ms)",
        args.batches, args.batch_docs, args.chunks_per_doc, args.dim
    );
    println!(
        "  applier: {chunks} chunks searchable in {apply_secs:.2} s = {apply_rate:.0} chunks/s"
    );
    report["batched_chunks_per_sec"] = json!(batch_rate);
    report["batch_ms"] = json!({ "p50": b50, "p99": b99 });
    report["applier_chunks_per_sec"] = json!(apply_rate);

    rt.block_on(store.delete_domain(&admin, &name))?;
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(())
}
