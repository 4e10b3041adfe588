//! Crash safety: an indexing process (the CLI, 20 times) and a serving process taking writes
//! over HTTP (50 times) are killed (SIGKILL) at random points. After each kill the store and
//! shards are opened again and checked: the shard opens, every acknowledged document is
//! searchable, and nothing is half-present (the shard holds exactly the store's documents and
//! chunks once the changelog is applied).
#![allow(
    clippy::disallowed_methods,
    reason = "checks the shard itself after a crash"
)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use dartmouth_domains::{Role, Store};
use dartmouth_engine::{Mode, SearchRequest, Shards, search};
use dartmouth_views::Applier;
use rand::{Rng, SeedableRng};

const DOCS: usize = 300;

fn dartmouth(data: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dartmouth"));
    c.arg("--data-dir").arg(data);
    c
}

#[test]
fn killed_indexing_loses_nothing_acknowledged() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // Documents of several chunks each, every one with a unique token to find it by.
    let corpus = tmp.path().join("corpus.jsonl");
    let mut lines = String::new();
    for i in 0..DOCS {
        let text = format!(
            "uniq{i:04} opens the record. {} It closes with uniq{i:04} again.",
            "Filler words about orders, returns, refunds and shipping times. ".repeat(6)
        );
        lines.push_str(
            &serde_json::json!({"_id": format!("d{i}"), "title": format!("Doc {i}"), "text": text})
                .to_string(),
        );
        lines.push('\n');
    }
    std::fs::write(&corpus, lines).unwrap();
    let status = dartmouth(&data)
        .args([
            "domain",
            "create",
            "crash",
            "--embedder",
            "fake",
            "--dim",
            "16",
        ])
        .args(["--chunk-tokens", "32", "--chunk-overlap", "0"])
        .status()
        .unwrap();
    assert!(status.success());

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut acked_total = 0;
    for round in 0..20 {
        let mut child = dartmouth(&data)
            .args([
                "index",
                "--domain",
                "crash",
                "--batch-docs",
                "5",
                "--print-acks",
            ])
            .arg(&corpus)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut acks = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(seq) = line.strip_prefix("ack ") {
                    acks.push(seq.trim().parse::<u64>().unwrap());
                }
            }
            acks
        });
        std::thread::sleep(Duration::from_millis(rng.random_range(20..600)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let acks = reader.join().unwrap();
        acked_total += acks.len();

        // Restart: open the store and the shard, apply what the store holds.
        let store = rt.block_on(Store::open(&Store::sqlite_url(&data))).unwrap();
        let shards = Shards::open(&data).unwrap();
        let admin = rt.block_on(store.local_admin()).unwrap();
        let pass = rt
            .block_on(store.authorize(&admin, &["crash".into()], Role::Read))
            .unwrap();
        let domain = &pass.domains()[0];
        let last = rt
            .block_on(store.last_seq(&store.system(), domain.id))
            .unwrap();
        // Every acknowledgement is durable in the store.
        if let Some(max) = acks.iter().max() {
            assert!(
                *max <= last,
                "round {round}: acknowledged {max} but the store ends at {last}"
            );
        }
        let applier = Applier {
            store: &store,
            shards: &shards,
            runtime: rt.handle().clone(),
            events: None,
        };
        let applied = applier.catch_up(domain).unwrap();
        assert_eq!(applied, last, "round {round}");
        let shard = shards.get("crash").unwrap();
        // Nothing half-present: the shard holds exactly the store's documents and chunks.
        let docs = rt
            .block_on(store.all_documents(&store.system(), domain.id, 1))
            .unwrap();
        let stats = shard.stats();
        assert_eq!(stats.documents as usize, docs.len(), "round {round}");
        assert_eq!(
            stats.chunks as usize,
            docs.iter().map(|d| d.chunks.len()).sum::<usize>(),
            "round {round}"
        );
        // Every acknowledged document (all stored ones include them) is searchable.
        let acked_docs: std::collections::BTreeSet<String> = rt
            .block_on(store.changes_since(&store.system(), domain.id, 1, 0, u32::MAX))
            .unwrap()
            .into_iter()
            .filter(|c| acks.iter().max().is_some_and(|m| c.seq <= *m))
            .map(|c| c.external_id)
            .collect();
        for id in &acked_docs {
            let n: usize = id[1..].parse().unwrap();
            let mut req = SearchRequest::new(format!("uniq{n:04}"));
            req.mode = Mode::Bm25;
            req.k = 1;
            let hits = search(&[&shard], &req).unwrap().hits;
            assert_eq!(
                hits.first().map(|h| h.doc_id.as_str()),
                Some(id.as_str()),
                "round {round}"
            );
        }
        drop(shard);
        drop(shards);
        rt.block_on(store.close());
    }
    // The kills landed at different points: some rounds acknowledged work.
    assert!(acked_total > 0);
}

/// The same over HTTP, 50 times: a client ingests batches through `dartmouth serve` while the
/// server is killed (SIGKILL) at a random moment; every batch the server acknowledged (200 with
/// its sequence) is searchable once it is restarted, and the shard holds exactly what the store
/// holds.
#[test]
fn killed_serving_loses_nothing_acknowledged_over_http() {
    use crate::support::{call, cli, key_for, start_on};
    use serde_json::{Value, json};

    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    cli(
        &data,
        &[
            "domain",
            "create",
            "live",
            "--embedder",
            "fake",
            "--dim",
            "16",
            "--chunk-tokens",
            "32",
            "--chunk-overlap",
            "0",
        ],
    );
    let key = key_for(&data, "admin");
    let flags = ["--rate-limit", "0", "--ip-rate-limit", "0"];
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    // (batch token, its acknowledged sequence), over all rounds.
    let mut acked: Vec<(String, u64)> = Vec::new();
    let mut checked = 0;
    // How many acknowledgements the rounds waited for before killing, in all.
    let mut wanted = 0;
    let check = |server: &crate::support::Server, batches: &[(String, u64)], round: usize| {
        let Some(last) = batches.iter().map(|(_, s)| *s).max() else {
            return;
        };
        for (token, _) in batches {
            let body = json!({"query": token, "domains": ["live"], "mode": "bm25", "k": 10, "min_seq": {"live": last}});
            let (status, out) = call(
                server,
                "POST",
                "/v1/search",
                Some(&key),
                Some(&body.to_string()),
            );
            assert_eq!(status, 200, "round {round}: {out}");
            let hits: std::collections::BTreeSet<&str> = out["hits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["doc_id"].as_str().unwrap())
                .collect();
            assert_eq!(
                hits.len(),
                5,
                "round {round}: batch {token} lost documents: {out}"
            );
        }
    };
    for round in 0..50 {
        let server = start_on(&data, &flags);
        // What the last round acknowledged is searchable after the restart.
        check(&server, &acked[checked..], round);
        checked = acked.len();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let acks_so_far = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let client = {
            let http = server.http.clone();
            let key = key.clone();
            let stop = std::sync::Arc::clone(&stop);
            let acks_so_far = std::sync::Arc::clone(&acks_so_far);
            std::thread::spawn(move || {
                let agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(5)))
                    .build()
                    .new_agent();
                let mut acks = Vec::new();
                for n in 0.. {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let token = format!("tok{round}x{n}");
                    let docs: Vec<Value> = (0..5)
                        .map(|i| json!({"id": format!("{token}-{i}"), "text": format!("{token} opens. {} {token} closes.", "Filler about orders and returns. ".repeat(4))}))
                        .collect();
                    let reply = agent
                        .post(format!("{http}/v1/domains/live/documents"))
                        .header("Authorization", &format!("Bearer {key}"))
                        .header("Content-Type", "application/json")
                        .send(json!({ "documents": docs }).to_string().as_bytes());
                    let Ok(mut reply) = reply else { break };
                    if reply.status().as_u16() != 200 {
                        break;
                    }
                    let Ok(text) = reply.body_mut().read_to_string() else {
                        break;
                    };
                    let v: Value = serde_json::from_str(&text).unwrap();
                    acks.push((token, v["seq"].as_u64().unwrap()));
                    acks_so_far.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                acks
            })
        };
        // The kill lands at a random moment after the round has acknowledged a few batches
        // (waiting for them, not for a fixed time, so a slow machine still acknowledges work),
        // mostly in the middle of a request.
        let want = rng.random_range(1..=3);
        let waited = std::time::Instant::now();
        while acks_so_far.load(std::sync::atomic::Ordering::Relaxed) < want
            && waited.elapsed() < Duration::from_secs(30)
        {
            std::thread::sleep(Duration::from_millis(2));
        }
        wanted += want;
        std::thread::sleep(Duration::from_millis(rng.random_range(0..150)));
        server.kill();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        acked.extend(client.join().unwrap());
    }
    assert!(
        acked.len() >= wanted,
        "only {} batches acknowledged, the rounds waited for {wanted}",
        acked.len()
    );
    // After the last kill: the shard, caught up, holds exactly what the store holds.
    let out = cli(&data, &["domain", "stats", "live", "--json"]);
    let stats: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(stats["documents"], stats["stored_documents"], "{stats}");
    assert_eq!(stats["chunks"], stats["stored_chunks"], "{stats}");
    assert_eq!(stats["applied_seq"], stats["last_seq"], "{stats}");
    assert!(stats["documents"].as_u64().unwrap() >= 5 * acked.len() as u64);
    eprintln!(
        "50 kills; {} batches ({} documents) acknowledged, all searchable; {} documents stored",
        acked.len(),
        5 * acked.len(),
        stats["stored_documents"]
    );
}
