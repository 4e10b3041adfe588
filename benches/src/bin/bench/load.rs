//! `bench load`: `dartmouth serve` on loopback over the 100k-chunk benchmark shard, driven by a
//! Rust HTTP client at several concurrencies; p50/p99 and QPS for bm25, vector and hybrid, with
//! the query embedded on every request and with query vectors cached. The in-process figure for
//! the same queries comes first, so the cost of HTTP is a difference on the same run.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use dartmouth_domains::{Role, Store};
use dartmouth_engine::{Catalog, Embedder, Embedding, Mode, SearchRequest, Shard};
use dartmouth_server::models::ModelArgs;
use dartmouth_server::service::{Limits, SearchInput, Service, ServiceConfig};
use serde_json::json;

use crate::query::{ensure_shard, p50_p99};

#[derive(Args)]
pub struct LoadArgs {
    #[arg(long, default_value = "../shared/datasets/ir/scifact")]
    pub collection: PathBuf,
    #[arg(long, default_value_t = 100_000)]
    pub chunks: usize,
    #[arg(long, default_value = "target/bench-data")]
    pub dir: PathBuf,
    /// The server binary (built with `cargo build --release -p dartmouth-server`).
    #[arg(long, default_value = "target/release/dartmouth")]
    pub dartmouth: PathBuf,
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    pub concurrency: Vec<usize>,
    /// Requests per (mode, concurrency); the SciFact claims, cycled.
    #[arg(long, default_value_t = 600)]
    pub requests: usize,
    #[arg(long)]
    pub json: Option<PathBuf>,
}

struct Server(Child, String);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Hard-links a directory tree (the shard files are never modified in place).
fn link_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            link_tree(&entry.path(), &target)?;
        } else if std::fs::hard_link(entry.path(), &target).is_err() {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// A data directory whose store knows the benchmark shard as domain `bench`; returns the path
/// and an admin key.
fn prepare(shard_dir: &Path, data: &Path) -> Result<String> {
    let key_file = data.join("bench.key");
    if key_file.exists() {
        return Ok(std::fs::read_to_string(&key_file)?.trim().to_string());
    }
    if data.exists() {
        std::fs::remove_dir_all(data)?;
    }
    let settings = Shard::open(shard_dir, "bench")?.settings().clone();
    link_tree(shard_dir, &data.join("shards").join("bench"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let secret = rt.block_on(async {
        let store = Store::open(&Store::sqlite_url(data)).await?;
        let admin = store.local_admin().await?;
        store
            .create_domain(
                &admin,
                "bench",
                "benchmark corpus",
                &serde_json::to_value(&settings)?,
            )
            .await?;
        store
            .authorize(&admin, &["bench".into()], Role::Read)
            .await?;
        let (_, secret) = store.create_key(&admin, "admin", None, None).await?;
        store.close().await;
        anyhow::Ok(secret)
    })?;
    std::fs::write(&key_file, &secret)?;
    Ok(secret)
}

fn start(binary: &Path, data: &Path, embedding_cache: usize) -> Result<Server> {
    let mut child = Command::new(binary)
        .arg("--data-dir")
        .arg(data)
        .args(["serve", "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"])
        .args(["--rate-limit", "0", "--result-cache-entries", "0"])
        .arg("--embedding-cache-entries")
        .arg(embedding_cache.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("start {}", binary.display()))?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
    let http = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http="))
        .with_context(|| format!("no address in {line:?}"))?
        .to_string();
    let server = Server(child, format!("http://{http}"));
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(r) = agent.get(format!("{}/readyz", server.1)).call()
            && r.status() == 200
        {
            return Ok(server);
        }
        if Instant::now() > deadline {
            bail!("the server did not become ready");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Row {
    p50: f64,
    p99: f64,
    qps: f64,
}

fn drive(url: &str, key: &str, queries: &[String], mode: &str, c: usize, n: usize) -> Result<Row> {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_idle_connections_per_host(c.max(1) * 2)
        .build()
        .new_agent();
    let next = AtomicUsize::new(0);
    let latencies = Mutex::new(Vec::with_capacity(n));
    let auth = format!("Bearer {key}");
    let started = Instant::now();
    std::thread::scope(|s| -> Result<()> {
        let workers: Vec<_> = (0..c)
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            break;
                        }
                        let body = json!({
                            "query": queries[i % queries.len()],
                            "domains": ["bench"],
                            "mode": mode,
                            "k": 10,
                        })
                        .to_string();
                        let t = Instant::now();
                        let mut r = agent
                            .post(format!("{url}/v1/search"))
                            .header("Authorization", &auth)
                            .header("Content-Type", "application/json")
                            .send(body.as_bytes())?;
                        let text = r.body_mut().read_to_string()?;
                        mine.push(t.elapsed());
                        if r.status() != 200 {
                            bail!("HTTP {}: {text}", r.status());
                        }
                    }
                    latencies
                        .lock()
                        .map_err(|_| anyhow::anyhow!("poisoned"))?
                        .extend(mine);
                    Ok(())
                })
            })
            .collect();
        for w in workers {
            w.join().map_err(|_| anyhow::anyhow!("client panicked"))??;
        }
        Ok(())
    })?;
    let secs = started.elapsed().as_secs_f64();
    let mut lat = latencies
        .into_inner()
        .map_err(|_| anyhow::anyhow!("poisoned"))?;
    let (p50, p99) = p50_p99(&mut lat);
    Ok(Row {
        p50,
        p99,
        qps: n as f64 / secs,
    })
}

/// Authenticates and searches through `Service` as the HTTP handler does, one request at a
/// time, on a runtime shaped like the server's; returns (p50, p99) of authentication alone and
/// of the whole call.
fn in_process_service(
    data: &Path,
    models: ModelArgs,
    key: &str,
    queries: &[String],
    n: usize,
) -> Result<((f64, f64), (f64, f64))> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let catalog = Catalog::open(data)?;
    rt.block_on(async {
        let store = Store::open(&Store::sqlite_url(data)).await?;
        let svc = Arc::new(
            Service::new(ServiceConfig {
                store,
                catalog: Arc::new(catalog),
                models,
                jwt: None,
                rate_limit: None,
                limits: Limits::default(),
                embedding_cache_entries: 100_000,
                result_cache_entries: 0,
                shopify: Vec::new(),
            })
            .map_err(|e| anyhow::anyhow!("{}", e.message))?,
        );
        let applier = Arc::clone(&svc);
        tokio::task::spawn_blocking(move || applier.apply_all())
            .await?
            .map_err(|e| anyhow::anyhow!("{}", e.message))?;
        let auth = format!("Bearer {key}");
        let input = |q: &str| SearchInput {
            query: q.to_string(),
            domains: vec!["bench".into()],
            mode: Some(Mode::Hybrid),
            k: Some(10),
            ..SearchInput::default()
        };
        // Warm: every query embedded once.
        for q in queries {
            let caller = svc
                .authenticate(Some(&auth))
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.message))?;
            svc.search(&caller, input(q))
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.message))?;
        }
        let (mut auth_lat, mut lat) = (Vec::new(), Vec::new());
        for q in queries.iter().cycle().take(n) {
            let t = Instant::now();
            let caller = svc
                .authenticate(Some(&auth))
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.message))?;
            auth_lat.push(t.elapsed());
            std::hint::black_box(
                svc.search(&caller, input(q))
                    .await
                    .map_err(|e| anyhow::anyhow!("{}", e.message))?,
            );
            lat.push(t.elapsed());
        }
        svc.store().close().await;
        anyhow::Ok((p50_p99(&mut auth_lat), p50_p99(&mut lat)))
    })
}

pub fn run(embedder: &dyn Embedder, models: ModelArgs, args: &LoadArgs) -> Result<()> {
    let (corpus, shard_dir, _) = ensure_shard(embedder, &args.dir, &args.collection, args.chunks)?;
    let n = corpus.chunks;
    let data = args.dir.join(format!("serve-{n}"));
    let key = prepare(&shard_dir, &data)?;
    let queries = &corpus.queries;
    let mut report = json!({ "chunks": n, "requests": args.requests });

    // In process, query vector given: the floor HTTP adds to.
    {
        let shard = Shard::open(&shard_dir, "bench")?;
        let mut lat = Vec::new();
        for (q, v) in queries
            .iter()
            .zip(&corpus.query_vectors)
            .take(args.requests)
        {
            let mut req = SearchRequest::new(q.as_str());
            req.vector = Some(Embedding {
                model_id: corpus.model.clone(),
                values: v.clone(),
            });
            req.mode = Mode::Hybrid;
            let t = Instant::now();
            #[allow(clippy::disallowed_methods, reason = "the in-process baseline")]
            std::hint::black_box(dartmouth_engine::search(&[&shard], &req)?);
            lat.push(t.elapsed());
        }
        let (p50, p99) = p50_p99(&mut lat);
        println!("engine in process, hybrid, vector given: p50 {p50:.2} ms, p99 {p99:.2} ms");
        report["in_process_hybrid"] = json!({ "p50_ms": p50, "p99_ms": p99 });
    }
    // The service in process: what the HTTP handler calls (authentication, authorisation, the
    // search, snippets), with query vectors cached, so the HTTP figures differ from it by the
    // transport alone (sockets, HTTP framing, JSON, the client).
    {
        let (auth, search) = in_process_service(&data, models, &key, queries, args.requests)?;
        println!(
            "service in process, hybrid, vectors cached: authenticate p50 {:.3} ms; authenticate + search p50 {:.2} ms, p99 {:.2} ms",
            auth.0, search.0, search.1
        );
        report["in_process_service_hybrid"] =
            json!({ "authenticate_p50_ms": auth.0, "p50_ms": search.0, "p99_ms": search.1 });
    }

    for (label, cache) in [
        ("query embedded per request", 0),
        ("query vectors cached", 100_000),
    ] {
        let server = start(&args.dartmouth, &data, cache)?;
        if cache > 0 {
            // Warm: every query embedded once.
            drive(&server.1, &key, queries, "vector", 2, queries.len())?;
        }
        println!("\n{label} (HTTP, {n} chunks, k 10, result cache off)");
        println!(
            "{:>8} {:>12} {:>10} {:>10} {:>9}",
            "mode", "concurrency", "p50 ms", "p99 ms", "QPS"
        );
        for &c in &args.concurrency {
            for mode in ["bm25", "vector", "hybrid"] {
                if cache > 0 && mode == "bm25" && c > 0 {
                    // bm25 never embeds: the first table already has it.
                    continue;
                }
                let row = drive(&server.1, &key, queries, mode, c, args.requests)?;
                println!(
                    "{mode:>8} {c:>12} {:>10.2} {:>10.2} {:>9.0}",
                    row.p50, row.p99, row.qps
                );
                report[label][format!("{mode}@{c}")] =
                    json!({ "p50_ms": row.p50, "p99_ms": row.p99, "qps": row.qps });
            }
        }
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(())
}
