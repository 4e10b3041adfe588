//! `bench load`: `dartmouth serve` on loopback over the 100k-chunk benchmark shard, driven by a
//! Rust HTTP client at several concurrencies; p50/p99 and QPS for bm25, vector and hybrid, with
//! the query embedded on every request and with query vectors cached. The engine alone comes
//! first; HTTP's cost is measured against the service in process (the handler's own call:
//! authentication, authorisation, search, snippets) in interleaved blocks, so both see the
//! same machine.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use dartmouth_domains::{Role, Store};
use dartmouth_engine::{Embedder, Embedding, Mode, SearchRequest, Shard, Shards};
use dartmouth_server::models::ModelArgs;
use dartmouth_server::service::{Limits, SearchInput, Service, ServiceConfig};
use serde_json::json;

use crate::query::{ensure_shard, p50_p99};

#[derive(Args)]
pub struct LoadArgs {
    /// The judged collections whose documents and queries make the corpus (BEIR layout).
    #[arg(
        long = "collections",
        value_delimiter = ',',
        default_value = "../shared/datasets/ir/scifact,../shared/datasets/ir/cranfield,../shared/datasets/ir/cacm"
    )]
    pub collections: Vec<PathBuf>,
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
    /// Only HTTPS against HTTP: the same searches over TLS (a certificate made here) and over
    /// plain HTTP, keep-alive, at each concurrency; and a new connection per request (what a
    /// handshake costs).
    #[arg(long)]
    pub tls: bool,
    /// Only span export on against off: the same searches over HTTP, keep-alive, with the
    /// server exporting every request's spans over OTLP/gRPC (to a collector in this process
    /// that counts them) and without.
    #[arg(long, conflicts_with = "tls")]
    pub otlp: bool,
}

pub(crate) struct Server(Child, pub(crate) String);

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
        let (_, secret) = store
            .create_key(&admin, "admin", dartmouth_domains::KeyScope::default())
            .await?;
        store.close().await;
        anyhow::Ok(secret)
    })?;
    std::fs::write(&key_file, &secret)?;
    Ok(secret)
}

/// A copy of the data directory for the in-process service, which cannot share the server's
/// shards (a shard has one writer): shard files hard-linked, the store copied.
fn copy_for_in_process(data: &Path) -> Result<PathBuf> {
    let copy = data.with_extension("in-process");
    if copy.exists() {
        std::fs::remove_dir_all(&copy)?;
    }
    link_tree(&data.join("shards"), &copy.join("shards"))?;
    // Lock files are locked by inode: the copy gets its own.
    unlink_locks(&copy.join("shards"))?;
    for entry in std::fs::read_dir(data)? {
        let entry = entry?;
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with("store.sqlite3")
        {
            std::fs::copy(entry.path(), copy.join(entry.file_name()))?;
        }
    }
    Ok(copy)
}

fn unlink_locks(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            unlink_locks(&path)?;
        } else if entry.file_name().to_string_lossy().ends_with(".lock") {
            let bytes = std::fs::read(&path)?;
            std::fs::remove_file(&path)?;
            std::fs::write(&path, bytes)?;
        }
    }
    Ok(())
}

/// `embedding_cache`: bytes the query-embedding cache may hold (0: off).
pub(crate) fn start(binary: &Path, data: &Path, embedding_cache: usize) -> Result<Server> {
    start_with(binary, data, embedding_cache, &[], &plain_agent(1))
}

fn plain_agent(idle: usize) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_idle_connections_per_host(idle)
        .max_idle_connections(idle.max(1) * 4)
        .build()
        .new_agent()
}

/// An agent that trusts only `ca` (PEM), keeping `idle` connections per host (0: a new
/// connection, and so a handshake, per request).
fn tls_agent(ca: &str, idle: usize) -> Result<ureq::Agent> {
    let root = ureq::tls::Certificate::from_pem(ca.as_bytes())?;
    Ok(ureq::Agent::config_builder()
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::Specific(Arc::new(vec![root])))
                .build(),
        )
        .http_status_as_error(false)
        .max_idle_connections_per_host(idle)
        .max_idle_connections(idle.max(1) * 4)
        .build()
        .new_agent())
}

/// A CA (PEM) and a server certificate and key for `localhost` it signed, written to `dir`.
fn certificates(dir: &Path) -> Result<(String, PathBuf, PathBuf)> {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let issuer = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;
    let key = KeyPair::generate()?;
    let cert = CertificateParams::new(vec!["localhost".to_string()])?.signed_by(&key, &issuer)?;
    let (c, k) = (dir.join("bench-tls.crt"), dir.join("bench-tls.key"));
    std::fs::write(&c, cert.pem())?;
    std::fs::write(&k, key.serialize_pem())?;
    Ok((issuer.pem(), c, k))
}

/// `dartmouth serve` with `extra` flags, ready once `/readyz` answers through `agent`.
fn start_with(
    binary: &Path,
    data: &Path,
    embedding_cache: usize,
    extra: &[&str],
    agent: &ureq::Agent,
) -> Result<Server> {
    let mut child = Command::new(binary)
        .arg("--data-dir")
        .arg(data)
        .args(["serve", "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"])
        .args(["--rate-limit", "0", "--ip-rate-limit", "0"])
        .args(["--result-cache-bytes", "0"])
        .arg("--embedding-cache-bytes")
        .arg(embedding_cache.to_string())
        .args(extra)
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
    let server = if line.contains("tls=on") {
        // The certificate names localhost.
        Server(
            child,
            format!("https://{}", http.replace("127.0.0.1", "localhost")),
        )
    } else {
        Server(child, format!("http://{http}"))
    };
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

pub(crate) struct Row {
    pub p50: f64,
    pub p99: f64,
    pub qps: f64,
    pub latencies: Vec<Duration>,
}

/// `n` searches of `mode` from `c` clients, request i going to `urls[i % len]` (several nodes
/// behind a balancer, or one server).
pub(crate) fn drive(
    urls: &[&str],
    key: &str,
    queries: &[String],
    mode: &str,
    c: usize,
    n: usize,
) -> Result<Row> {
    drive_with(&plain_agent(c.max(1) * 2), urls, key, queries, mode, c, n)
}

/// [`drive`] through `agent` (TLS, or no keep-alive).
fn drive_with(
    agent: &ureq::Agent,
    urls: &[&str],
    key: &str,
    queries: &[String],
    mode: &str,
    c: usize,
    n: usize,
) -> Result<Row> {
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
                            .post(format!("{}/v1/search", urls[i % urls.len()]))
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
        latencies: lat,
    })
}

/// `Service` in this process, set up as `dartmouth serve` sets it up (two runtime workers, no
/// rate limit, result cache off, query vectors cached), called as the HTTP handler calls it:
/// authenticate, then search (authorisation, search, snippets).
struct InProcess {
    rt: tokio::runtime::Runtime,
    svc: Arc<Service>,
    auth: String,
}

impl InProcess {
    fn open(data: &Path, models: ModelArgs, key: &str) -> Result<InProcess> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let shards = Shards::open(data)?;
        let svc = rt.block_on(async {
            let store = Store::open(&Store::sqlite_url(data)).await?;
            let svc = Arc::new(
                Service::new(ServiceConfig {
                    store,
                    shards: Arc::new(shards),
                    models,
                    preloaded: Default::default(),
                    jwt: None,
                    rate_limits: Default::default(),
                    limits: Limits::default(),
                    embedding_cache_bytes: 256 << 20,
                    result_cache_bytes: 0,
                    shopify: Vec::new(),
                    read_mode: Default::default(),
                    placement: None,
                    snapshot_dir: data.join("snapshots"),
                    snapshot_key: None,
                })
                .map_err(|e| anyhow::anyhow!("{}", e.message))?,
            );
            let applier = Arc::clone(&svc);
            tokio::task::spawn_blocking(move || applier.apply_all())
                .await?
                .map_err(|e| anyhow::anyhow!("{}", e.message))?;
            anyhow::Ok(svc)
        })?;
        Ok(InProcess {
            rt,
            svc,
            auth: format!("Bearer {key}"),
        })
    }

    /// One hybrid search per query, one at a time: (authentication alone, the whole call).
    fn run(&self, queries: &[String]) -> Result<(Vec<Duration>, Vec<Duration>)> {
        let fail = |e: dartmouth_server::error::ApiError| anyhow::anyhow!("{}", e.message);
        self.rt.block_on(async {
            let (mut auth, mut total) = (Vec::new(), Vec::new());
            for q in queries {
                let input = SearchInput {
                    query: q.clone(),
                    domains: vec!["bench".into()],
                    mode: Some(Mode::Hybrid),
                    k: Some(10),
                    ..SearchInput::default()
                };
                let t = Instant::now();
                let caller = self
                    .svc
                    .authenticate(Some(self.auth.as_bytes()))
                    .await
                    .map_err(fail)?;
                auth.push(t.elapsed());
                std::hint::black_box(self.svc.search(&caller, input).await.map_err(fail)?);
                total.push(t.elapsed());
            }
            Ok((auth, total))
        })
    }
}

/// HTTP's cost: the same hybrid queries (vectors cached) alternately in process and over HTTP
/// at concurrency 1, in `rounds` interleaved blocks so both see the same machine; returns
/// what each side took.
struct HttpCost {
    authenticate_p50: f64,
    /// (p50, p99) in process and over HTTP.
    local: (f64, f64),
    http: (f64, f64),
}

fn http_cost(
    inproc: &InProcess,
    url: &str,
    key: &str,
    queries: &[String],
    n: usize,
) -> Result<HttpCost> {
    let rounds = 6;
    let block = (n / rounds).max(1);
    // Warm both sides: every query embedded once by each.
    inproc.run(queries)?;
    drive(&[url], key, queries, "hybrid", 2, queries.len())?;
    let (mut auth, mut local, mut http) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..rounds {
        let qs: Vec<String> = queries
            .iter()
            .cycle()
            .skip(r * block)
            .take(block)
            .cloned()
            .collect();
        let (a, t) = inproc.run(&qs)?;
        auth.extend(a);
        local.extend(t);
        http.extend(drive(&[url], key, &qs, "hybrid", 1, qs.len())?.latencies);
    }
    Ok(HttpCost {
        authenticate_p50: p50_p99(&mut auth).0,
        local: p50_p99(&mut local),
        http: p50_p99(&mut http),
    })
}

/// HTTPS against HTTP on the same data with query vectors cached (what TLS adds is the point):
/// keep-alive at each concurrency, then a new connection per request.
fn tls_compare(
    args: &LoadArgs,
    data: &Path,
    key: &str,
    queries: &[String],
    mut report: serde_json::Value,
) -> Result<()> {
    let (ca, cert, tls_key) = certificates(&args.dir)?;
    let (cert, tls_key) = (
        cert.to_str().context("utf-8 path")?.to_string(),
        tls_key.to_str().context("utf-8 path")?.to_string(),
    );
    let tls_flags = ["--tls-cert", cert.as_str(), "--tls-key", tls_key.as_str()];
    println!(
        "\nHTTPS against HTTP ({} requests per row, k 10, query vectors cached, result cache off)",
        args.requests
    );
    println!(
        "{:>6} {:>8} {:>12} {:>10} {:>10} {:>9}",
        "scheme", "mode", "concurrency", "p50 ms", "p99 ms", "QPS"
    );
    for (scheme, extra) in [("http", &[][..]), ("https", &tls_flags[..])] {
        let agent = |idle: usize| -> Result<ureq::Agent> {
            if scheme == "https" {
                tls_agent(&ca, idle)
            } else {
                Ok(plain_agent(idle))
            }
        };
        let server = start_with(&args.dartmouth, data, 256 << 20, extra, &agent(1)?)?;
        let url = [server.1.as_str()];
        keep_alive_rows(
            args,
            &agent,
            &url,
            key,
            queries,
            scheme,
            &mut report["tls"][scheme],
        )?;
        // No keep-alive: each request a new connection (over TLS, a full handshake).
        let row = drive_with(&agent(0)?, &url, key, queries, "bm25", 16, args.requests)?;
        println!(
            "{scheme:>6} new connection per request, bm25, c=16: {:.0} connections/s, p50 {:.2} ms, p99 {:.2} ms",
            row.qps, row.p50, row.p99
        );
        report["tls"][scheme]["new_connection_bm25@16"] =
            json!({ "p50_ms": row.p50, "p99_ms": row.p99, "qps": row.qps });
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(())
}

/// Every query embedded once, then bm25 and hybrid at each concurrency over keep-alive
/// connections from `agent`: a printed line (labelled `label`) and a `mode@c` entry of `out`
/// each.
fn keep_alive_rows(
    args: &LoadArgs,
    agent: &dyn Fn(usize) -> Result<ureq::Agent>,
    url: &[&str],
    key: &str,
    queries: &[String],
    label: &str,
    out: &mut serde_json::Value,
) -> Result<()> {
    drive_with(&agent(4)?, url, key, queries, "vector", 2, queries.len())?;
    for &c in &args.concurrency {
        for mode in ["bm25", "hybrid"] {
            let row = drive_with(&agent(c * 2)?, url, key, queries, mode, c, args.requests)?;
            println!(
                "{label:>6} {mode:>8} {c:>12} {:>10.2} {:>10.2} {:>9.0}",
                row.p50, row.p99, row.qps
            );
            out[format!("{mode}@{c}")] =
                json!({ "p50_ms": row.p50, "p99_ms": row.p99, "qps": row.qps });
        }
    }
    Ok(())
}

/// Span export off against on, over HTTP with keep-alive and query vectors cached (the
/// request's own work is the point).
fn otlp_compare(
    args: &LoadArgs,
    data: &Path,
    key: &str,
    queries: &[String],
    mut report: serde_json::Value,
) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let counter = {
        let _entered = rt.enter();
        dartmouth_server::trace::span_counter(addr)
    };
    let endpoint = format!("http://{addr}");
    println!(
        "\nSpan export off against on ({} requests per row, k 10, query vectors cached, result cache off)",
        args.requests
    );
    println!(
        "{:>6} {:>8} {:>12} {:>10} {:>10} {:>9}",
        "export", "mode", "concurrency", "p50 ms", "p99 ms", "QPS"
    );
    for (label, extra) in [
        ("off", &[][..]),
        ("on", &["--otlp-endpoint", endpoint.as_str()][..]),
    ] {
        let server = start_with(&args.dartmouth, data, 256 << 20, extra, &plain_agent(1))?;
        let url = [server.1.as_str()];
        keep_alive_rows(
            args,
            &|idle| Ok(plain_agent(idle)),
            &url,
            key,
            queries,
            label,
            &mut report["otlp"][label],
        )?;
    }
    // The last batches leave when the server stops (or within the batch delay).
    let deadline = Instant::now() + Duration::from_secs(10);
    while counter.load(Ordering::Relaxed) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let spans = counter.load(Ordering::Relaxed);
    println!("spans received by the collector: {spans}");
    if spans == 0 {
        bail!("span export on: the collector received no span");
    }
    report["otlp"]["spans_received"] = json!(spans);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(())
}

pub fn run(embedder: &dyn Embedder, models: ModelArgs, args: &LoadArgs) -> Result<()> {
    let (corpus, shard_dir, _) = ensure_shard(embedder, &args.dir, &args.collections, args.chunks)?;
    let n = corpus.chunks;
    let data = args.dir.join(format!("serve-{n}"));
    let key = prepare(&shard_dir, &data)?;
    let inproc_data = copy_for_in_process(&data)?;
    let queries = &corpus.queries;
    let mut report = json!({ "chunks": n, "requests": args.requests });
    if args.tls {
        return tls_compare(args, &data, &key, queries, report);
    }
    if args.otlp {
        return otlp_compare(args, &data, &key, queries, report);
    }

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
            req.vectors = vec![Embedding {
                model_id: corpus.model.clone(),
                values: v.clone(),
            }];
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
    for (label, cache) in [
        ("query embedded per request", 0),
        ("query vectors cached", 256 << 20),
    ] {
        let server = start(&args.dartmouth, &data, cache)?;
        if cache > 0 {
            // Warm: every query embedded once.
            drive(
                &[server.1.as_str()],
                &key,
                queries,
                "vector",
                2,
                queries.len(),
            )?;
            // What HTTP adds to the same work in process (the service's own search path).
            let inproc = InProcess::open(&inproc_data, models.clone(), &key)?;
            let HttpCost {
                authenticate_p50: auth,
                local,
                http,
            } = http_cost(&inproc, &server.1, &key, queries, args.requests)?;
            println!(
                "\nhybrid, vectors cached, c=1, interleaved: service in process p50 {:.2} ms (p99 {:.2}; authentication {:.3}), over HTTP p50 {:.2} ms (p99 {:.2}): HTTP adds {:.2} ms",
                local.0,
                local.1,
                auth,
                http.0,
                http.1,
                http.0 - local.0
            );
            report["http_cost_hybrid"] = json!({
                "in_process_p50_ms": local.0, "in_process_p99_ms": local.1,
                "authenticate_p50_ms": auth,
                "http_p50_ms": http.0, "http_p99_ms": http.1,
                "http_adds_ms": http.0 - local.0,
            });
            drop(inproc);
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
                let row = drive(&[server.1.as_str()], &key, queries, mode, c, args.requests)?;
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
