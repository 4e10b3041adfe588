//! Reads survive a store outage: PostgreSQL is killed (SIGKILL, postmaster and backends) and
//! started again under a mixed load on two nodes. Searches keep answering from the shards with
//! the credentials and grants each node keeps — none fails, none waits past the store timeout
//! — while each write is either acknowledged (and found afterwards on both nodes) or answered
//! 503 with Retry-After within the timeout; `/readyz` and the metrics say the store is away,
//! and everything resumes by itself.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::*;

/// The store timeout the nodes run with (`--store-timeout-ms`).
const TIMEOUT_MS: u64 = 1000;
/// What a loaded, shared test machine may add to it.
const SLACK: Duration = Duration::from_millis(1500);

/// A write's document id, status, time taken and Retry-After.
type Write = (String, u16, Duration, Option<String>);

fn node(data: &std::path::Path, url: &str) -> Server {
    start_on(
        data,
        &[
            "--store",
            url,
            "--store-timeout-ms",
            &TIMEOUT_MS.to_string(),
            "--ip-rate-limit",
            "0",
            "--rate-limit",
            "0",
        ],
    )
}

#[test]
fn postgresql_killed_under_load_on_two_nodes_fails_no_search() {
    let mut pg = crate::pg::PgCluster::start();
    // An acknowledged commit survives the server's SIGKILL.
    pg.durable_commits();
    let root = tempfile::tempdir().unwrap();
    let dirs: Vec<_> = (0..2)
        .map(|i| root.path().join(format!("node{i}")))
        .collect();
    let admin = |args: &[&str]| {
        let all: Vec<&str> = ["--store", pg.url.as_str()]
            .iter()
            .chain(args)
            .copied()
            .collect();
        cli(&dirs[0], &all)
    };
    admin(&["domain", "create", "kb", "--embedder", "fake"]);
    admin(&["principal", "create", "agent", "--kind", "agent"]);
    admin(&["grant", "agent", "kb", "write"]);
    let key = admin(&["key", "create", "--principal", "agent"])
        .split_whitespace()
        .find(|w| w.starts_with("dk_"))
        .unwrap()
        .to_string();
    let nodes: Vec<Server> = dirs.iter().map(|d| node(d, &pg.url)).collect();
    let seed = json!({"documents": [
        {"id": "refunds", "text": "Refunds are paid within five days of the return."},
        {"id": "shipping", "text": "Shipping takes two days within the country."}
    ]});
    let (status, _) = call(
        &nodes[0],
        "POST",
        "/v1/domains/kb/documents",
        Some(&key),
        Some(&seed.to_string()),
    );
    assert_eq!(status, 200);

    let query = json!({"query": "refunds paid", "domains": ["kb"], "mode": "hybrid"}).to_string();
    for s in &nodes {
        assert!(eventually(10, || {
            let (_, found) = call(s, "POST", "/v1/search", Some(&key), Some(&query));
            found["hits"][0]["doc_id"] == "refunds"
        }));
    }
    let stop = AtomicBool::new(false);
    let bound = Duration::from_millis(TIMEOUT_MS) + SLACK;
    // (node, status, elapsed) of every search; (id, status, elapsed, retry-after) of every write.
    let searches: Mutex<Vec<(usize, u16, Duration, String)>> = Mutex::default();
    let writes: Mutex<Vec<Write>> = Mutex::default();
    let degraded = Mutex::new((false, false));
    std::thread::scope(|scope| {
        for (i, s) in nodes.iter().enumerate() {
            let (stop, searches, key, body) = (&stop, &searches, &key, query.as_str());
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let (status, found) = call(s, "POST", "/v1/search", Some(key), Some(body));
                    let first = found["hits"][0]["doc_id"]
                        .as_str()
                        .unwrap_or("")
                        .to_string();
                    searches
                        .lock()
                        .unwrap()
                        .push((i, status, t.elapsed(), first));
                    std::thread::sleep(Duration::from_millis(20));
                }
            });
        }
        let (stop, writes, key, nodes) = (&stop, &writes, &key, &nodes);
        scope.spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let id = format!("w{n}");
                let body = json!({"documents": [{"id": id, "text": format!("Write number {n} made during the outage test.")}]});
                let t = Instant::now();
                let (status, _, retry) = call_full(&nodes[n % 2], "POST", "/v1/domains/kb/documents", Some(key), Some(&body.to_string()));
                writes.lock().unwrap().push((id, status, t.elapsed(), retry));
                n += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        std::thread::sleep(Duration::from_millis(1500));
        pg.kill();
        std::thread::sleep(Duration::from_millis(1500));
        // The store is away: both nodes say so, and keep answering reads.
        for s in nodes {
            let (status, text) = call(s, "GET", "/readyz", None, None);
            assert_eq!(status, 200, "{text}");
            assert!(
                text.as_str().unwrap_or("").starts_with("degraded"),
                "{text}"
            );
            assert_eq!(metric(s, "dartmouth_store_up "), 0.0);
        }
        degraded.lock().unwrap().0 = true;
        std::thread::sleep(Duration::from_millis(1500));
        pg.restart();
        // Everything resumes by itself: a write is acknowledged again on both nodes.
        let resumed = eventually(30, || {
            let w = writes.lock().unwrap();
            let acked_after: Vec<_> = w
                .iter()
                .rev()
                .take(4)
                .filter(|(_, s, ..)| *s == 200)
                .collect();
            acked_after.len() >= 2
        });
        degraded.lock().unwrap().1 = resumed;
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, Ordering::Relaxed);
    });
    assert_eq!(
        *degraded.lock().unwrap(),
        (true, true),
        "the writes did not resume"
    );

    let searches = searches.into_inner().unwrap();
    assert!(searches.len() > 40, "{} searches", searches.len());
    for (i, status, took, first) in &searches {
        assert_eq!(*status, 200, "a search on node {i} failed");
        assert!(*took <= bound, "a search on node {i} took {took:?}");
        assert_eq!(
            first, "refunds",
            "node {i} answered without the seeded document"
        );
    }
    let writes = writes.into_inner().unwrap();
    let refused: Vec<_> = writes.iter().filter(|w| w.1 == 503).collect();
    assert!(!refused.is_empty(), "no write met the outage: {writes:?}");
    for (id, status, took, retry) in &writes {
        assert!(matches!(status, 200 | 503), "write {id}: {status}");
        if *status == 503 {
            assert!(*took <= bound, "write {id} answered 503 after {took:?}");
            assert_eq!(retry.as_deref(), Some("1"), "write {id}: no Retry-After");
        }
    }
    // Every acknowledged write is in the store and searchable on both nodes.
    for s in &nodes {
        assert_eq!(metric(s, "dartmouth_store_up "), 1.0);
        assert!(metric(s, "dartmouth_store_fallback_reads_total ") > 0.0);
        for (id, ..) in writes.iter().filter(|w| w.1 == 200) {
            let (status, doc) = call(
                s,
                "GET",
                &format!("/v1/domains/kb/documents/{id}"),
                Some(&key),
                None,
            );
            assert_eq!(status, 200, "acknowledged write {id} lost: {doc}");
        }
    }
}
