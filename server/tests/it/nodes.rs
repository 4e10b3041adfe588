//! Several nodes over one PostgreSQL: each applies the changelog into its own shards, woken by
//! LISTEN/NOTIFY (the polling fallback is set to its longest, 60 s, longer than any wait here,
//! so only notifications can make another node's writes searchable in time). Writes go through all three while searches run; one node
//! is killed with SIGKILL and brought back, another comes back on an empty data directory; every
//! node then answers identically, and nothing acknowledged is lost.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::support::*;

/// The longest polling interval `serve` takes.
const NO_POLLING: &str = "60000";

fn node(data: &std::path::Path, url: &str) -> Server {
    start_on(
        data,
        &[
            "--store",
            url,
            "--ip-rate-limit",
            "0",
            "--rate-limit",
            "0",
            "--apply-interval-ms",
            NO_POLLING,
        ],
    )
}

/// Every BM25 hit of a query that matches a few documents, as sorted (chunk, score): the same
/// on every node once they hold the same data (nodes apply in different orders, so ties are
/// compared as sets).
fn answer(s: &Server, key: &str, query: &str, min_seq: u64) -> Vec<(String, String)> {
    let body = json!({"query": query, "domains": ["kb"], "k": 100, "mode": "bm25", "min_seq": {"kb": min_seq}});
    let (status, found) = call(s, "POST", "/v1/search", Some(key), Some(&body.to_string()));
    assert_eq!(status, 200, "{found}");
    found["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["chunk_id"].as_str().unwrap().to_string(),
                format!("{:.5}", h["score"].as_f64().unwrap()),
            )
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[test]
fn three_nodes_on_postgresql_survive_a_kill_and_an_empty_disk() {
    let pg = crate::pg::PgCluster::start();
    let root = tempfile::tempdir().unwrap();
    let dirs: Vec<_> = (0..3)
        .map(|i| root.path().join(format!("node{i}")))
        .collect();
    let store = ["--store", pg.url.as_str()];
    let setup = |args: &[&str]| {
        let all: Vec<&str> = store.iter().chain(args).copied().collect();
        cli(&dirs[0], &all)
    };
    setup(&["domain", "create", "kb", "--embedder", "fake"]);
    let key = setup(&["key", "create", "--principal", "admin"])
        .split_whitespace()
        .find(|w| w.starts_with("dk_"))
        .unwrap()
        .to_string();
    let mut nodes: Vec<Option<Server>> = dirs.iter().map(|d| Some(node(d, &pg.url))).collect();

    // A write on node 0 becomes searchable on node 2 without `min_seq` and without polling:
    // only the notification can have woken node 2's applier.
    let body = json!({"documents": [{"id": "first", "text": "Notified nodes apply at once."}]});
    let (status, ack) = call(
        nodes[0].as_ref().unwrap(),
        "POST",
        "/v1/domains/kb/documents",
        Some(&key),
        Some(&body.to_string()),
    );
    assert_eq!(status, 200, "{ack}");
    let applied = |s: &Server| {
        call(s, "GET", "/v1/stats", Some(&key), None).1["domains"][0]["applied_seq"]
            .as_u64()
            .unwrap_or(0)
    };
    let seq = ack["seq"].as_u64().unwrap();
    assert!(
        eventually(30, || applied(nodes[2].as_ref().unwrap()) >= seq),
        "node 2 never applied sequence {seq} (LISTEN/NOTIFY)"
    );

    // Writers on every node and a searcher, while node 1 is killed and brought back.
    let acknowledged = Arc::new(Mutex::new(BTreeSet::from(["first".to_string()])));
    let last_seq = Arc::new(Mutex::new(seq));
    let stop = Arc::new(AtomicBool::new(false));
    let urls: Vec<String> = nodes
        .iter()
        .map(|n| n.as_ref().unwrap().http.clone())
        .collect();
    let worker = |i: usize| {
        let (acknowledged, last_seq, stop, key) = (
            Arc::clone(&acknowledged),
            Arc::clone(&last_seq),
            Arc::clone(&stop),
            key.clone(),
        );
        let url = urls[i].clone();
        std::thread::spawn(move || {
            let agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(std::time::Duration::from_secs(30)))
                .build()
                .new_agent();
            let mut n = 0;
            while !stop.load(Ordering::Acquire) {
                n += 1;
                let id = format!("w{i}-{n}");
                let body = json!({"documents": [{"id": id, "text": format!("Writer {i} page {n} about replicated kiwis.")}]});
                // A node being killed may refuse or drop the request: only an acknowledged
                // write (200 with its sequence) counts.
                let Ok(mut r) = agent
                    .post(format!("{url}/v1/domains/kb/documents"))
                    .header("Authorization", &format!("Bearer {key}"))
                    .send(body.to_string().as_bytes())
                else {
                    break; // the node is gone (killed): this writer stops
                };
                let content_type = content_type(&r);
                if r.status().as_u16() == 200
                    && let Ok(v) = r.body_mut().read_json::<Value>()
                    && let Some(seq) = v["seq"].as_u64()
                {
                    crate::openapi::check_answer(
                        "POST",
                        "/v1/domains/kb/documents",
                        200,
                        content_type.as_deref(),
                        &v,
                    );
                    acknowledged.lock().unwrap().insert(id);
                    let mut last = last_seq.lock().unwrap();
                    *last = (*last).max(seq);
                }
            }
        })
    };
    let writers: Vec<_> = [0, 2].into_iter().map(worker).collect();
    let node1_writer = worker(1);
    let searches_ok = Arc::new(Mutex::new(0u64));
    let searcher = {
        let (stop, key, ok) = (Arc::clone(&stop), key.clone(), Arc::clone(&searches_ok));
        let targets = [urls[0].clone(), urls[2].clone()];
        std::thread::spawn(move || {
            let agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .new_agent();
            while !stop.load(Ordering::Acquire) {
                for url in &targets {
                    let mut r = agent
                        .post(format!("{url}/v1/search"))
                        .header("Authorization", &format!("Bearer {key}"))
                        .send(r#"{"query":"replicated kiwis","domains":["kb"]}"#.as_bytes())
                        .unwrap();
                    assert_eq!(
                        r.status().as_u16(),
                        200,
                        "{:?}",
                        r.body_mut().read_to_string()
                    );
                    *ok.lock().unwrap() += 1;
                }
            }
        })
    };
    let count = || acknowledged.lock().unwrap().len();
    assert!(eventually(60, || count() > 30), "writes go through");
    nodes[1].take().unwrap().kill();
    let at_kill = count();
    assert!(
        eventually(60, || count() > at_kill + 30),
        "the other nodes keep taking writes with node 1 down"
    );
    node1_writer.join().unwrap();
    nodes[1] = Some(node(&dirs[1], &pg.url));
    let back = count();
    assert!(eventually(60, || count() > back + 30));
    stop.store(true, Ordering::Release);
    for w in writers {
        w.join().unwrap();
    }
    searcher.join().unwrap();
    assert!(*searches_ok.lock().unwrap() > 0);

    // Node 2 comes back on an empty data directory: it rebuilds every shard from the store.
    nodes[2].take().unwrap().kill();
    std::fs::remove_dir_all(&dirs[2]).unwrap();
    std::fs::create_dir_all(&dirs[2]).unwrap();
    nodes[2] = Some(node(&dirs[2], &pg.url));

    // Every node holds every acknowledged document, and answers alike.
    let last = *last_seq.lock().unwrap();
    let acknowledged = acknowledged.lock().unwrap().clone();
    let mut answers = Vec::new();
    for s in nodes.iter().map(|n| n.as_ref().unwrap()) {
        let stats = call(s, "GET", "/v1/domains/kb", Some(&key), None).1;
        assert!(stats["applied_seq"].as_u64().unwrap() >= last, "{stats}");
        for id in &acknowledged {
            let (status, doc) = call(
                s,
                "GET",
                &format!("/v1/domains/kb/documents/{id}"),
                Some(&key),
                None,
            );
            assert_eq!(status, 200, "{id} on {}: {doc}", s.http);
        }
        assert_eq!(
            stats["documents"].as_u64().unwrap(),
            stats["stored_documents"].as_u64().unwrap(),
            "{stats}"
        );
        assert!(
            stats["documents"].as_u64().unwrap() >= acknowledged.len() as u64,
            "{stats}"
        );
        answers.push([
            answer(s, &key, "7", last),
            answer(s, &key, "12", last),
            answer(s, &key, "notified nodes", last),
        ]);
    }
    assert!(!answers[0][0].is_empty() && !answers[0][2].is_empty());
    assert_eq!(
        answers[0], answers[1],
        "node 1 after SIGKILL answers as node 0"
    );
    assert_eq!(
        answers[0], answers[2],
        "node 2 from an empty disk answers as node 0"
    );
}

/// `serve --domains`: each node holds its own domains; a domain held elsewhere is 503 (after
/// the access check: one the caller may not read stays a 404), and "every readable domain"
/// means those the node holds.
#[test]
fn nodes_hold_the_domains_they_are_given() {
    let pg = crate::pg::PgCluster::start();
    let root = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (root.path().join("a"), root.path().join("b"));
    let run = |args: &[&str]| {
        let all: Vec<&str> = ["--store", pg.url.as_str()]
            .iter()
            .chain(args)
            .copied()
            .collect();
        cli(&a_dir, &all)
    };
    for d in ["kb", "other"] {
        run(&["domain", "create", d, "--embedder", "fake"]);
    }
    run(&["principal", "create", "outsider", "--kind", "agent"]);
    run(&["grant", "outsider", "other", "read"]);
    let secret = |principal: &str| {
        run(&["key", "create", "--principal", principal])
            .split_whitespace()
            .find(|w| w.starts_with("dk_"))
            .unwrap()
            .to_string()
    };
    let (admin, outsider) = (secret("admin"), secret("outsider"));
    let with = |domains: &str| {
        vec![
            "--store".to_string(),
            pg.url.clone(),
            "--domains".to_string(),
            domains.to_string(),
        ]
    };
    let a_args = with("kb");
    let b_args = with("other");
    let a = start_on(
        &a_dir,
        &a_args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let b = start_on(
        &b_dir,
        &b_args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    for (s, domain) in [(&a, "kb"), (&b, "other")] {
        let body = json!({"documents": [{"id": "d", "text": format!("held {domain} page")}]});
        let (status, ack) = call(
            s,
            "POST",
            &format!("/v1/domains/{domain}/documents"),
            Some(&admin),
            Some(&body.to_string()),
        );
        assert_eq!(status, 200, "{ack}");
    }
    // Held elsewhere: 503, naming the domain, for reads and writes alike.
    let search = |s: &Server, key: &str, domains: Value| {
        let body = json!({"query": "held page", "domains": domains});
        call(s, "POST", "/v1/search", Some(key), Some(&body.to_string()))
    };
    let (status, reply) = search(&b, &admin, json!(["kb"]));
    assert_eq!(status, 503, "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`kb` is not held")
    );
    let body = json!({"documents": [{"id": "x", "text": "t"}]}).to_string();
    let (status, _) = call(
        &b,
        "POST",
        "/v1/domains/kb/documents",
        Some(&admin),
        Some(&body),
    );
    assert_eq!(status, 503);
    // A domain the caller may not read is missing, on the node that holds it and elsewhere.
    assert_eq!(search(&a, &outsider, json!(["kb"])).0, 404);
    assert_eq!(search(&b, &outsider, json!(["kb"])).0, 404);
    // Every readable domain: those this node holds.
    let (status, found) = search(&b, &admin, json!([]));
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["domains"], json!(["other"]));
    assert_eq!(search(&a, &outsider, json!([])).0, 503);
    // Each node keeps shards of its own domains only, and reports their lag only.
    let (_, stats) = call(&a, "GET", "/v1/stats", Some(&admin), None);
    let names: Vec<&str> = stats["domains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["domain"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["kb"], "{stats}");
    let (_, held) = search(&a, &admin, json!(["kb"]));
    assert_eq!(held["hits"][0]["doc_id"], "d", "{held}");
}
