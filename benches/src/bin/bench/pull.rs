//! `bench pull`: a shop's full sync pulled from the tests' Shopify-compatible Admin API (a bulk
//! operation whose JSONL result is streamed from a file on disk) beside `dartmouth index` of the
//! same bulk file, in products/s and peak memory, at two catalog sizes (is memory flat in the
//! file's size?); with the fake embedder (embedding excluded) and with a real model (included);
//! then an incremental sync of `changed` products against the time their embedding took.
//!
//! Every figure runs the release `dartmouth` binary: `serve` for the pull, `index` for the
//! upload; memory is each process's largest anonymous resident set (`RssAnon` in
//! `/proc/PID/status`, sampled every 20 ms: the heap, not the index files it maps).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::{Value, json};

use crate::shop_server::{ShopServer, TOKEN, bulk_jsonl, copy, real_products};
use crate::switch::cli;

#[derive(Args)]
pub struct PullArgs {
    /// Products of the large catalog (the small one is a tenth).
    #[arg(long, default_value_t = 100_000)]
    pub products: u64,
    /// Products synced with the real model (embedding included).
    #[arg(long, default_value_t = 500)]
    pub embedded_products: u64,
    /// Products changed before the incremental sync.
    #[arg(long, default_value_t = 100)]
    pub changed: u64,
    /// The real model of the embedding-included figures.
    #[arg(long, default_value = "all-minilm-l6-v2-int8")]
    pub model: String,
    /// How often the server polls the bulk operation (Shopify's pace is seconds).
    #[arg(long, default_value_t = 200)]
    pub poll_ms: u64,
    #[arg(long, default_value = "target/bench-data/pull")]
    pub dir: PathBuf,
    #[arg(long, default_value = "target/release/dartmouth")]
    pub dartmouth: PathBuf,
    /// Also write the figures as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Writes a bulk result of `n` products (copies of the real ones) to `path`, one copy at a
/// time; its object count.
fn write_catalog(path: &Path, n: u64) -> Result<u64> {
    let (real, _) = real_products();
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let (mut products, mut objects, mut k) = (0u64, 0u64, 1u64);
    while products < n {
        let mut batch = copy(&real, k);
        let keep = (n - products).min(batch.len() as u64) as usize;
        let cut: Vec<u64> = batch.keys().skip(keep).copied().collect();
        for id in cut {
            batch.remove(&id);
        }
        let (text, count) = bulk_jsonl(&batch, None);
        out.write_all(text.as_bytes())?;
        products += batch.len() as u64;
        objects += count;
        k += 1;
    }
    out.flush()?;
    Ok(objects)
}

/// A domain in a fresh data directory, and an admin key.
fn fresh(binary: &Path, data: &Path, embedder: &[&str]) -> Result<String> {
    if data.exists() {
        std::fs::remove_dir_all(data)?;
    }
    let mut create = vec!["domain", "create", "store"];
    create.extend_from_slice(embedder);
    cli(binary, data, &create)?;
    let out = cli(binary, data, &["key", "create", "--principal", "admin"])?;
    out.split_whitespace()
        .find(|w| w.starts_with("dk_"))
        .map(str::to_string)
        .context("no key printed")
}

struct Serve {
    child: Child,
    url: String,
    agent: ureq::Agent,
    key: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    fn start(binary: &Path, data: &Path, key: &str, host: &str, poll_ms: u64) -> Result<Serve> {
        let mut child = Command::new(binary)
            .arg("--data-dir")
            .arg(data)
            .args(["serve", "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"])
            .args(["--rate-limit", "0", "--ip-rate-limit", "0"])
            .env("ACME_TOKEN", TOKEN)
            .env("DARTMOUTH_SHOPIFY_PLAIN_HOSTS", host)
            .env("DARTMOUTH_SHOPIFY_POLL_MS", poll_ms.to_string())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(data.with_extension("log"))?)
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
        let http = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("http="))
            .with_context(|| format!("no address in {line:?}"))?;
        let s = Serve {
            url: format!("http://{http}"),
            child,
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .new_agent(),
            key: key.to_string(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while s.call("GET", "/readyz", None)?.0 != 200 {
            if Instant::now() > deadline {
                bail!("the server did not become ready");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(s)
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<(u16, Value)> {
        let url = format!("{}{path}", self.url);
        let auth = format!("Bearer {}", self.key);
        let mut r = match (method, body) {
            ("GET", _) => self.agent.get(&url).header("Authorization", &auth).call()?,
            (_, body) => self
                .agent
                .post(&url)
                .header("Authorization", &auth)
                .header("Content-Type", "application/json")
                .send(body.unwrap_or(json!({})).to_string())?,
        };
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string()?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// Syncs the shop (connecting it first if needed) and waits for the task: (wall seconds,
    /// the task's summary).
    fn sync(&self, full: bool) -> Result<(f64, Value)> {
        let started = Instant::now();
        let (status, task) = self.call(
            "POST",
            "/v1/domains/store/shopify/sync",
            Some(json!({ "full": full })),
        )?;
        if status != 202 {
            bail!("sync answered {status}: {task}");
        }
        let id = task["id"].as_str().context("task id")?.to_string();
        loop {
            let (_, t) = self.call("GET", &format!("/v1/tasks/{id}"), None)?;
            match t["status"].as_str() {
                Some("succeeded") => {
                    return Ok((started.elapsed().as_secs_f64(), t["summary"].clone()));
                }
                Some("failed" | "canceled") => bail!("the sync ended {t}"),
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    fn connect(&self, host: &str) -> Result<()> {
        let (status, c) = self.call(
            "POST",
            "/v1/domains/store/shopify/connection",
            Some(json!({"shop": host, "token_env": "ACME_TOKEN"})),
        )?;
        if status != 200 {
            bail!("connect answered {status}: {c}");
        }
        Ok(())
    }
}

/// The largest anonymous resident memory (`RssAnon`: the heap, not the mapped index files)
/// of process `pid`, sampled every 20 ms until `done`, in MiB.
fn sample_anon(pid: u32, done: &std::sync::atomic::AtomicBool) -> f64 {
    let mut peak = 0f64;
    while !done.load(std::sync::atomic::Ordering::Acquire) {
        let kb = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("RssAnon:"))
                    .and_then(|v| v.split_whitespace().next())
                    .and_then(|v| v.parse::<f64>().ok())
            });
        match kb {
            Some(kb) => peak = peak.max(kb / 1024.0),
            None => break,
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    peak
}

/// Runs `work` while sampling `pid`'s anonymous memory: its outcome and the peak, MiB.
fn sampled<T>(pid: u32, work: impl FnOnce() -> Result<T>) -> Result<(T, f64)> {
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let sampler = scope.spawn(|| sample_anon(pid, &done));
        let out = work();
        done.store(true, std::sync::atomic::Ordering::Release);
        let peak = sampler
            .join()
            .map_err(|_| anyhow::anyhow!("sampler panicked"))?;
        Ok((out?, peak))
    })
}

/// `dartmouth index` of the bulk file: (seconds, peak anonymous memory MiB).
fn upload(binary: &Path, data: &Path, file: &Path) -> Result<(f64, f64)> {
    let started = Instant::now();
    let mut child = Command::new(binary)
        .arg("--data-dir")
        .arg(data)
        .args(["index", "--domain", "store"])
        .arg(file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("run {}", binary.display()))?;
    let pid = child.id();
    let mut stderr = child.stderr.take().context("stderr")?;
    let (status, peak) = sampled(pid, || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut text)?;
        let status = child.wait()?;
        if !status.success() {
            bail!("dartmouth index: {text}");
        }
        Ok(status)
    })?;
    let _ = status;
    Ok((started.elapsed().as_secs_f64(), peak))
}

pub fn run(args: &PullArgs) -> Result<()> {
    std::fs::create_dir_all(&args.dir)?;
    let binary = &args.dartmouth;
    let shop = ShopServer::start(BTreeMap::new());
    let host = shop.base.trim_start_matches("http://").to_string();
    let mut report = json!({});
    println!("full sync pulled from the test shop vs `dartmouth index` of the same bulk file:");
    println!(
        "| catalog | embedder | pull products/s | pull peak heap MiB | served at rest, heap MiB | index products/s | index peak heap MiB |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    let fake = ["--embedder", "fake"];
    let model = ["--model", args.model.as_str()];
    let sizes = [
        (args.products / 10, &fake[..], "fake (excluded)"),
        (args.products, &fake[..], "fake (excluded)"),
        (args.embedded_products, &model[..], args.model.as_str()),
    ];
    for (n, embedder, label) in sizes {
        let file = args.dir.join(format!("products-{n}.jsonl"));
        let objects = write_catalog(&file, n)?;
        shop.state
            .lock()
            .map_err(|_| anyhow::anyhow!("lock"))?
            .result_file = Some((file.clone(), objects));
        let data = args.dir.join("pull-data");
        let key = fresh(binary, &data, embedder)?;
        let s = Serve::start(binary, &data, &key, &host, args.poll_ms)?;
        s.connect(&host)?;
        let ((pull_secs, summary), pull_peak) = sampled(s.child.id(), || s.sync(true))?;
        let added = summary["added"].as_u64().unwrap_or(0);
        if added != n {
            bail!("the pull added {added} of {n}: {summary}");
        }
        drop(s);
        // The same domain served at rest (its shard opened by a search): what the catalog
        // itself costs, beside what the sync did.
        let s = Serve::start(binary, &data, &key, &host, args.poll_ms)?;
        let (_, rest_peak) = sampled(s.child.id(), || {
            let body = json!({"query": "coat", "domains": ["store"], "mode": "bm25", "k": 10});
            let (status, hits) = s.call("POST", "/v1/search", Some(body))?;
            if status != 200 {
                bail!("search answered {status}: {hits}");
            }
            std::thread::sleep(Duration::from_millis(500));
            Ok(())
        })?;
        drop(s);
        let up_data = args.dir.join("upload-data");
        fresh(binary, &up_data, embedder)?;
        let (up_secs, up_peak) = upload(binary, &up_data, &file)?;
        let bytes = std::fs::metadata(&file)?.len();
        println!(
            "| {n} products ({:.0} MiB) | {label} | {:.0} | {pull_peak:.0} | {rest_peak:.0} | {:.0} | {up_peak:.0} |",
            bytes as f64 / 1048576.0,
            n as f64 / pull_secs,
            n as f64 / up_secs,
        );
        report[format!("{n}")] = json!({"embedder": label, "bytes": bytes,
            "pull_seconds": pull_secs, "pull_products_per_s": n as f64 / pull_secs,
            "pull_peak_mib": pull_peak, "at_rest_mib": rest_peak, "pull_embed_seconds": summary["embed_seconds"],
            "index_seconds": up_secs, "index_products_per_s": n as f64 / up_secs,
            "index_peak_mib": up_peak});
        std::fs::remove_file(&file)?;
    }

    // Incremental: the embedded catalog served from the shop's products, `changed` of them
    // edited; the run against the time its embedding took.
    let (real, _) = real_products();
    let mut products = BTreeMap::new();
    let mut k = 1;
    while (products.len() as u64) < args.embedded_products {
        products.extend(copy(&real, k));
        k += 1;
    }
    {
        let mut st = shop.state.lock().map_err(|_| anyhow::anyhow!("lock"))?;
        st.result_file = None;
        st.products = products;
    }
    let data = args.dir.join("pull-data");
    let key = fresh(binary, &data, &model)?;
    let s = Serve::start(binary, &data, &key, &host, args.poll_ms)?;
    s.connect(&host)?;
    s.sync(true)?;
    let mut runs = Vec::new();
    for round in 0..3 {
        {
            let mut st = shop.state.lock().map_err(|_| anyhow::anyhow!("lock"))?;
            let now = format!("2099-01-01T00:00:{round:02}Z");
            for p in st.products.values_mut().take(args.changed as usize) {
                p["title"] = json!(format!(
                    "{} (edit {round})",
                    p["title"].as_str().unwrap_or("")
                ));
                p["updatedAt"] = json!(now);
            }
        }
        let (secs, summary) = s.sync(false)?;
        let updated = summary["updated"].as_u64().unwrap_or(0);
        if updated != args.changed {
            bail!(
                "the incremental sync updated {updated} of {}: {summary}",
                args.changed
            );
        }
        let embed = summary["embed_seconds"].as_f64().unwrap_or(0.0);
        runs.push((secs, embed));
    }
    runs.sort_by(|a, b| (a.0 - a.1).total_cmp(&(b.0 - b.1)));
    let (secs, embed) = runs[1];
    println!(
        "incremental sync of {} changed products ({}; median of 3): {secs:.2} s, of which embedding {embed:.2} s: {:.2} s beside it",
        args.changed,
        args.model,
        secs - embed
    );
    report["incremental"] = json!({"changed": args.changed, "seconds": secs, "embed_seconds": embed,
        "other_seconds": secs - embed, "model": args.model});
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(())
}
