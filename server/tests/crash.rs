//! Crash safety: an indexing process is killed (SIGKILL) at random points, 20 times. After each
//! kill the store and shards are opened again and checked: the shard opens, every acknowledged
//! document is searchable, and nothing is half-present (the shard holds exactly the store's
//! documents and chunks once the changelog is applied).
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]
#![allow(
    clippy::disallowed_methods,
    reason = "checks the shard itself after a crash"
)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use dartmouth_domains::{Role, Store};
use dartmouth_engine::{Catalog, Mode, SearchRequest, search};
use dartmouth_indexer::Applier;
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
        let catalog = Catalog::open(&data).unwrap();
        let admin = rt.block_on(store.local_admin()).unwrap();
        let pass = rt
            .block_on(store.authorize(&admin, &["crash".into()], Role::Read))
            .unwrap();
        let domain = &pass.domains()[0];
        let last = rt.block_on(store.last_seq(domain.id)).unwrap();
        // Every acknowledgement is durable in the store.
        if let Some(max) = acks.iter().max() {
            assert!(
                *max <= last,
                "round {round}: acknowledged {max} but the store ends at {last}"
            );
        }
        let applier = Applier {
            store: &store,
            catalog: &catalog,
            runtime: rt.handle().clone(),
            events: None,
        };
        let applied = applier.catch_up(domain).unwrap();
        assert_eq!(applied, last, "round {round}");
        let shard = catalog.get("crash").unwrap();
        // Nothing half-present: the shard holds exactly the store's documents and chunks.
        let docs = rt.block_on(store.all_documents(domain.id)).unwrap();
        let stats = shard.stats();
        assert_eq!(stats.documents as usize, docs.len(), "round {round}");
        assert_eq!(
            stats.chunks as usize,
            docs.iter().map(|d| d.chunks.len()).sum::<usize>(),
            "round {round}"
        );
        // Every acknowledged document (all stored ones include them) is searchable.
        let acked_docs: std::collections::BTreeSet<String> = rt
            .block_on(store.changes_since(domain.id, 0, u32::MAX))
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
        drop(catalog);
        rt.block_on(store.close());
    }
    // The kills landed at different points: some rounds acknowledged work.
    assert!(acked_total > 0);
}
