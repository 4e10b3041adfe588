//! `bench switch`: a domain's embedding model switched online under load. `dartmouth serve` on
//! loopback over a domain of the whole SciFact corpus (10 329 chunks) embedded with `--from`;
//! searchers (hybrid, the query embedded per request) and a writer run before, during and after
//! `PATCH /v1/domains/bench {"model": TO}`; search p50/p99 per phase, failed requests, and
//! whether every write made meanwhile is searchable afterwards.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::{Value, json};

use crate::load::start;
use crate::query::p50_p99;

#[derive(Args)]
pub struct SwitchArgs {
    #[arg(long, default_value = "../shared/datasets/ir/scifact")]
    pub collection: PathBuf,
    #[arg(long, default_value = "all-minilm-l6-v2")]
    pub from: String,
    #[arg(long, default_value = "all-minilm-l6-v2-int8")]
    pub to: String,
    /// Concurrent searchers.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Seconds of load before and after the switch.
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// Hybrid searches with `rerank` top 10 timed at the end, one at a time (0: none).
    #[arg(long, default_value_t = 30)]
    pub reranked: usize,
    #[arg(long, default_value = "target/bench-data/switch")]
    pub dir: PathBuf,
    #[arg(long, default_value = "target/release/dartmouth")]
    pub dartmouth: PathBuf,
}

/// `dartmouth --data-dir DATA ARGS…`: its stdout, or its stderr as the error.
pub(crate) fn cli(binary: &Path, data: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(binary)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .with_context(|| format!("run {}", binary.display()))?;
    if !out.status.success() {
        bail!(
            "dartmouth {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A request's phase (0 before, 1 during, 2 after), whether it succeeded, and how long it took.
type Sample = (u8, bool, Duration);

pub fn run(args: &SwitchArgs) -> Result<()> {
    let data = args.dir.join(format!("data-{}", std::process::id()));
    std::fs::create_dir_all(&data)?;
    let corpus = args.collection.join("corpus.jsonl");
    println!("indexing {} with {} …", corpus.display(), args.from);
    cli(
        &args.dartmouth,
        &data,
        &["domain", "create", "bench", "--model", &args.from],
    )?;
    let t = Instant::now();
    cli(
        &args.dartmouth,
        &data,
        &[
            "index",
            "--domain",
            "bench",
            corpus.to_str().context("path")?,
        ],
    )?;
    println!("indexed in {:.0} s", t.elapsed().as_secs_f64());
    let key = cli(
        &args.dartmouth,
        &data,
        &["key", "create", "--principal", "admin"],
    )?
    .split_whitespace()
    .find(|w| w.starts_with("dk_"))
    .context("no key")?
    .to_string();
    let queries: Vec<String> = std::fs::read_to_string(args.collection.join("queries.jsonl"))?
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["text"].as_str().map(str::to_string))
        .collect();
    let server = start(&args.dartmouth, &data, 64 << 20)?;
    let url = server.1.clone();
    let phase = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let written: Arc<Mutex<Vec<String>>> = Arc::default();
    let failed_writes = Arc::new(AtomicU64::new(0));
    let last_seq = Arc::new(AtomicU64::new(0));
    let agent = || {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .new_agent()
    };
    let auth = format!("Bearer {key}");
    let mut threads = Vec::new();
    for c in 0..args.clients {
        let (phase, stop, samples, queries, url, auth, agent) = (
            Arc::clone(&phase),
            Arc::clone(&stop),
            Arc::clone(&samples),
            queries.clone(),
            url.clone(),
            auth.clone(),
            agent(),
        );
        threads.push(std::thread::spawn(move || {
            let mut i = c * 100_000;
            while !stop.load(Ordering::Acquire) {
                // A new text every time: each request embeds its query.
                let q = format!("{} {i}", queries[i % queries.len()]);
                i += 1;
                let body = json!({"query": q, "domains": ["bench"], "k": 10}).to_string();
                let p = phase.load(Ordering::Acquire) as u8;
                let t = Instant::now();
                let ok = agent
                    .post(format!("{url}/v1/search"))
                    .header("Authorization", &auth)
                    .header("Content-Type", "application/json")
                    .send(body.as_bytes())
                    .is_ok_and(|r| r.status() == 200);
                if let Ok(mut s) = samples.lock() {
                    s.push((p, ok, t.elapsed()));
                }
            }
        }));
    }
    {
        let (stop, written, failed, last, url, auth, agent) = (
            Arc::clone(&stop),
            Arc::clone(&written),
            Arc::clone(&failed_writes),
            Arc::clone(&last_seq),
            url.clone(),
            auth.clone(),
            agent(),
        );
        threads.push(std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Acquire) {
                n += 1;
                let id = format!("live-{n}");
                let body = json!({"documents": [{"id": id, "text": format!("Benchswitch note {n}: vitamin D and bone density in older adults."), "attributes": {"batch": "live"}}]}).to_string();
                let reply = agent
                    .post(format!("{url}/v1/domains/bench/documents"))
                    .header("Authorization", &auth)
                    .header("Content-Type", "application/json")
                    .send(body.as_bytes());
                match reply {
                    Ok(mut r) if r.status() == 200 => {
                        let v: Value = r.body_mut().read_json().unwrap_or(Value::Null);
                        last.fetch_max(v["seq"].as_u64().unwrap_or(0), Ordering::AcqRel);
                        if let Ok(mut w) = written.lock() {
                            w.push(id);
                        }
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::AcqRel);
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }));
    }
    std::thread::sleep(Duration::from_secs(args.seconds));
    let client = agent();
    let mut r = client
        .patch(format!("{url}/v1/domains/bench"))
        .header("Authorization", &auth)
        .header("Content-Type", "application/json")
        .send(json!({"model": args.to}).to_string().as_bytes())?;
    let started: Value = r.body_mut().read_json()?;
    let task = started["task"]["id"]
        .as_str()
        .with_context(|| format!("no task in {started}"))?
        .to_string();
    phase.store(1, Ordering::Release);
    let t = Instant::now();
    let last = loop {
        std::thread::sleep(Duration::from_millis(500));
        let mut r = client
            .get(format!("{url}/v1/tasks/{task}"))
            .header("Authorization", &auth)
            .call()?;
        let v: Value = r.body_mut().read_json()?;
        if matches!(
            v["status"].as_str(),
            Some("succeeded" | "failed" | "canceled")
        ) {
            break v;
        }
    };
    let switch_secs = t.elapsed().as_secs_f64();
    phase.store(2, Ordering::Release);
    std::thread::sleep(Duration::from_secs(args.seconds));
    stop.store(true, Ordering::Release);
    for t in threads {
        t.join().map_err(|_| anyhow::anyhow!("a client panicked"))?;
    }
    println!(
        "switch {} → {}: task {} in {switch_secs:.0} s ({} chunks)",
        args.from, args.to, last["status"], last["progress"]["chunks"]
    );
    let samples = samples
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    for (p, name) in [(0u8, "before"), (1, "during"), (2, "after")] {
        let mut lat: Vec<Duration> = samples
            .iter()
            .filter(|s| s.0 == p && s.1)
            .map(|s| s.2)
            .collect();
        let failed = samples.iter().filter(|s| s.0 == p && !s.1).count();
        let n = lat.len();
        if n == 0 {
            println!("{name:>6}: no search answered, {failed} failed");
            continue;
        }
        let (p50, p99) = p50_p99(&mut lat);
        println!("{name:>6}: {n} searches, {failed} failed, p50 {p50:.1} ms, p99 {p99:.1} ms");
    }
    let written = written
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    let body = json!({"query": "benchswitch", "domains": ["bench"], "mode": "bm25", "k": 1,
        "filter": "batch = \"live\"", "min_seq": {"bench": last_seq.load(Ordering::Acquire)}})
    .to_string();
    let mut r = client
        .post(format!("{url}/v1/search"))
        .header("Authorization", &auth)
        .header("Content-Type", "application/json")
        .send(body.as_bytes())?;
    let v: Value = r.body_mut().read_json()?;
    println!(
        "writes: {} acknowledged, {} failed, {} searchable afterwards; model now {}",
        written.len(),
        failed_writes.load(Ordering::Acquire),
        v["total"]["documents"],
        v["hits"][0]["model"]
    );
    if args.reranked > 0 {
        // Hybrid + the query's embedding + the cross-encoder over the top 10, end to end.
        let mut lat = Vec::new();
        for (i, q) in queries.iter().take(args.reranked).enumerate() {
            let body = json!({"query": format!("{q} {i}"), "domains": ["bench"], "k": 10,
                "rerank": {"top_n": 10, "timeout_ms": 60000}})
            .to_string();
            let t = Instant::now();
            let mut r = client
                .post(format!("{url}/v1/search"))
                .header("Authorization", &auth)
                .header("Content-Type", "application/json")
                .send(body.as_bytes())?;
            let elapsed = t.elapsed();
            let v: Value = r.body_mut().read_json()?;
            if v["rerank"]["applied"] != true {
                bail!("reranking was not applied: {v}");
            }
            lat.push(elapsed);
        }
        let (p50, p99) = p50_p99(&mut lat);
        println!(
            "hybrid + query embedding + rerank top 10 over HTTP, one client: p50 {p50:.1} ms, p99 {p99:.1} ms over {}",
            lat.len()
        );
    }
    drop(server);
    std::fs::remove_dir_all(&data).ok();
    Ok(())
}
