//! `bench nodes`: several `dartmouth serve` nodes over one PostgreSQL (a throwaway cluster, or
//! `--store`), each applying the changelog into its own shards; hybrid searches spread
//! round-robin over 1, 2 and 3 of them (as a balancer would) at several concurrencies: QPS, p50
//! and p99. Then how soon a write acknowledged on one node is searchable on another, and (on the
//! throwaway cluster) a snapshot of the first node restored over HTTP by a node on an empty
//! database.
//!
//! On one machine the nodes share its cores, so the figures show what the extra nodes cost and
//! how the latency tail behaves, not a scale-out gain (which needs a machine per node).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use dartmouth_domains::{KeyScope, Role, Store, StoredChunk, StoredDocument, Write};
use dartmouth_engine::{Embedder, Shard};
use serde_json::{Value, json};

use crate::load::drive;
use crate::query::{ensure_shard, p50_p99};

#[derive(Args)]
pub struct NodesArgs {
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
    #[arg(long, default_value = "target/release/dartmouth")]
    pub dartmouth: PathBuf,
    /// A PostgreSQL URL whose database is empty; a throwaway cluster when absent.
    #[arg(long)]
    pub store: Option<String>,
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    pub nodes: Vec<usize>,
    #[arg(long, value_delimiter = ',', default_value = "16,64")]
    pub concurrency: Vec<usize>,
    /// Hybrid requests per (nodes, concurrency).
    #[arg(long, default_value_t = 1200)]
    pub requests: usize,
    #[arg(long)]
    pub json: Option<PathBuf>,
}

struct Node(Child, String);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn agent(connections: usize) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_idle_connections_per_host(connections.max(1) * 2)
        .build()
        .new_agent()
}

fn start(binary: &Path, data: &Path, store: &str) -> Result<Node> {
    let mut child = Command::new(binary)
        .arg("--data-dir")
        .arg(data)
        .args(["serve", "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"])
        .args(["--store", store])
        .args(["--rate-limit", "0", "--ip-rate-limit", "0"])
        .args(["--result-cache-bytes", "0"])
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
    Ok(Node(child, format!("http://{http}")))
}

fn get(agent: &ureq::Agent, url: &str, key: &str) -> Result<Value> {
    let mut r = agent
        .get(url)
        .header("Authorization", &format!("Bearer {key}"))
        .call()?;
    let text = r.body_mut().read_to_string()?;
    if r.status() != 200 {
        bail!("GET {url}: HTTP {}: {text}", r.status());
    }
    Ok(serde_json::from_str(&text)?)
}

fn post(agent: &ureq::Agent, url: &str, key: &str, body: &Value) -> Result<Value> {
    let mut r = agent
        .post(url)
        .header("Authorization", &format!("Bearer {key}"))
        .header("Content-Type", "application/json")
        .send(body.to_string().as_bytes())?;
    let text = r.body_mut().read_to_string()?;
    if !matches!(r.status().as_u16(), 200 | 201) {
        bail!("POST {url}: HTTP {}: {text}", r.status());
    }
    Ok(serde_json::from_str(&text)?)
}

/// A key for the bootstrap admin of the store at `url`, made by the CLI.
fn admin_key(binary: &Path, data: &Path, url: &str) -> Result<String> {
    let out = Command::new(binary)
        .arg("--data-dir")
        .arg(data)
        .args(["--store", url, "key", "create", "--principal", "admin"])
        .output()?;
    String::from_utf8(out.stdout)?
        .split_whitespace()
        .find(|w| w.starts_with("dk_") && w.len() > 40)
        .map(str::to_string)
        .context("no key in the CLI's output")
}

/// The corpus into the store as domain `bench` (one document per chunk, vectors given);
/// returns an admin key and the domain's last sequence.
fn load_store(
    rt: &tokio::runtime::Runtime,
    url: &str,
    corpus: &crate::corpus::Corpus,
    settings: &Value,
) -> Result<(String, u64)> {
    rt.block_on(async {
        let store = Store::open(url).await?;
        let admin = store.local_admin().await?;
        store
            .create_domain(&admin, "bench", "benchmark corpus", settings)
            .await?;
        let (_, key) = store
            .create_key(&admin, "admin", KeyScope::default())
            .await?;
        let pass = store
            .authorize(&admin, &["bench".into()], Role::Write)
            .await?;
        let started = Instant::now();
        let mut batch = Vec::new();
        let mut seq = 0;
        let mut pending = Vec::new();
        corpus.for_each_chunk(|c, v| {
            let chars = c.text.chars().count() as u64;
            pending.push(Write::Upsert(StoredDocument {
                external_id: c.id,
                title: c.title,
                attributes: json!({}),
                content_hash: format!("bench-{}", pending.len()),
                chunks: vec![StoredChunk {
                    text: c.text,
                    char_start: 0,
                    char_end: chars,
                    heading: None,
                    embedding: v,
                }],
                ..Default::default()
            }));
            if pending.len() == 1000 {
                batch.push(std::mem::take(&mut pending));
            }
            Ok(())
        })?;
        batch.push(pending);
        for writes in batch {
            #[allow(
                clippy::disallowed_methods,
                reason = "the benchmark loads rows the engine's validator already accepts (the corpus builds a shard)"
            )]
            {
                let model = settings["model"]["id"].as_str().unwrap_or_default();
                seq = store.write(&pass, "bench", model, &writes).await?;
            }
        }
        println!(
            "store: {} chunks written to PostgreSQL in {:.1} s",
            corpus.chunks,
            started.elapsed().as_secs_f64()
        );
        store.close().await;
        anyhow::Ok((key, seq))
    })
}

pub fn run(embedder: &dyn Embedder, args: &NodesArgs) -> Result<()> {
    let (corpus, shard_dir, _) = ensure_shard(embedder, &args.dir, &args.collections, args.chunks)?;
    let settings = serde_json::to_value(Shard::open(&shard_dir, "bench")?.settings())?;
    let max_nodes = args.nodes.iter().copied().max().unwrap_or(1);
    let cluster = match &args.store {
        Some(_) => None,
        None => Some(crate::pg::PgCluster::start()),
    };
    let url = match (&args.store, &cluster) {
        (Some(u), _) => u.clone(),
        // Verified TLS, as a deployment over a network would run.
        (None, Some(c)) => c.verified_url(),
        (None, None) => unreachable!("a cluster is started when no store is given"),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (key, last_seq) = load_store(&rt, &url, &corpus, &settings)?;
    let root = tempfile::Builder::new().prefix("dk-nodes-").tempdir()?;
    let started = Instant::now();
    let nodes: Vec<Node> = (0..max_nodes)
        .map(|i| start(&args.dartmouth, &root.path().join(format!("n{i}")), &url))
        .collect::<Result<_>>()?;
    let urls: Vec<&str> = nodes.iter().map(|n| n.1.as_str()).collect();
    // Each node applies the changelog into its own shard.
    let a = agent(4);
    for u in &urls {
        loop {
            let stats = get(&a, &format!("{u}/v1/domains/bench"), &key)?;
            let applied = stats["applied_seq"]
                .as_u64()
                .with_context(|| format!("no applied_seq in {stats}"))?;
            if applied == last_seq {
                break;
            }
            if started.elapsed() > Duration::from_secs(3600) {
                bail!("{u} did not catch up within an hour");
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    let catch_up = started.elapsed().as_secs_f64();
    println!(
        "{max_nodes} nodes applied {} chunks from the changelog side by side in {catch_up:.1} s",
        corpus.chunks
    );
    // Warm every node's query-embedding cache (each embeds every query once).
    for u in &urls {
        drive(
            &[u],
            &key,
            &corpus.queries,
            "hybrid",
            2,
            corpus.queries.len(),
        )?;
    }
    let mut report =
        json!({ "chunks": corpus.chunks, "requests": args.requests, "catch_up_seconds": catch_up });
    println!(
        "\nhybrid search, k 10, query vectors cached, result cache off, requests round-robin over the nodes"
    );
    println!(
        "{:>6} {:>12} {:>9} {:>9} {:>9}",
        "nodes", "concurrency", "QPS", "p50 ms", "p99 ms"
    );
    for &n in &args.nodes {
        for &c in &args.concurrency {
            let row = drive(
                &urls[..n],
                &key,
                &corpus.queries,
                "hybrid",
                c,
                args.requests,
            )?;
            println!(
                "{n:>6} {c:>12} {:>9.0} {:>9.2} {:>9.2}",
                row.qps, row.p50, row.p99
            );
            report[format!("{n}@{c}")] =
                json!({ "qps": row.qps, "p50_ms": row.p50, "p99_ms": row.p99 });
        }
    }
    // A write acknowledged on the first node, searched on the last (woken by NOTIFY).
    let mut visible = Vec::new();
    let last = urls[urls.len() - 1];
    for i in 0..20 {
        let word = format!("nodeprobe{i}x");
        let doc = json!({"documents": [{"id": format!("probe-{i}"), "title": "Probe", "text": format!("{word} across nodes")}]});
        let ack = post(
            &a,
            &format!("{}/v1/domains/bench/documents", urls[0]),
            &key,
            &doc,
        )?;
        let t = Instant::now();
        let _ = ack["seq"].as_u64().context("seq")?;
        loop {
            let found = post(
                &a,
                &format!("{last}/v1/search"),
                &key,
                &json!({"query": word, "domains": ["bench"], "mode": "bm25", "k": 1}),
            )?;
            if found["hits"].as_array().is_some_and(|h| !h.is_empty()) {
                visible.push(t.elapsed());
                break;
            }
            if t.elapsed() > Duration::from_secs(30) {
                bail!("a write on the first node never became searchable on the last");
            }
        }
    }
    let (p50, p99) = p50_p99(&mut visible);
    println!(
        "\nacknowledged on node 1 → found on node {max_nodes} (polling its search): p50 {p50:.1} ms, max of 20 {p99:.1} ms"
    );
    report["ack_to_other_node_ms"] = json!({ "p50": p50, "max": p99 });

    // A snapshot on node 1, restored over HTTP by a node on an empty database.
    if let Some(cluster) = &cluster {
        let t = Instant::now();
        let snap = post(
            &a,
            &format!("{}/v1/snapshots", urls[0]),
            &key,
            &json!({"name": "bench"}),
        )?;
        let create = t.elapsed().as_secs_f64();
        let bytes = snap["bytes"].as_u64().unwrap_or(0);
        let restored_url = cluster.database("restored");
        let data = root.path().join("restored");
        let restored_key = admin_key(&args.dartmouth, &data, &restored_url)?;
        let snapshots = root.path().join("n0").join("snapshots");
        let mut child = Command::new(&args.dartmouth)
            .arg("--data-dir")
            .arg(&data)
            .args(["serve", "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"])
            .args([
                "--store",
                &restored_url,
                "--rate-limit",
                "0",
                "--ip-rate-limit",
                "0",
            ])
            .arg("--snapshot-dir")
            .arg(&snapshots)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
        let node = Node(
            child,
            format!(
                "http://{}",
                line.split_whitespace()
                    .find_map(|w| w.strip_prefix("http="))
                    .with_context(|| format!("no address in {line:?}"))?
            ),
        );
        let t = Instant::now();
        post(
            &a,
            &format!("{}/v1/snapshots/bench/restore", node.1),
            &restored_key,
            &json!({}),
        )?;
        let restore = t.elapsed().as_secs_f64();
        // Served at once with the snapshot's keys: the shard came with it.
        let found = post(
            &a,
            &format!("{}/v1/search", node.1),
            &key,
            &json!({"query": corpus.queries[0], "domains": ["bench"], "mode": "hybrid", "k": 10}),
        )?;
        let hits = found["hits"].as_array().map_or(0, Vec::len);
        println!(
            "\nsnapshot of node 1 ({} chunks, store on PostgreSQL): created in {create:.1} s, {:.0} MiB; restored over HTTP into a node on an empty database in {restore:.1} s ({hits} hits for the first query at once)",
            corpus.chunks,
            bytes as f64 / (1 << 20) as f64
        );
        report["snapshot"] =
            json!({ "create_seconds": create, "bytes": bytes, "restore_seconds": restore });
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    drop(nodes);
    Ok(())
}
