//! Switching a domain's embedding model online, with the real models (all-MiniLM-L6-v2 in f32
//! and its int8 quantization): writes and searches run in a loop through the switch, through a
//! rollback, through a SIGKILL in the middle of a switch, and over two nodes on PostgreSQL with
//! the node building the switch killed; nothing fails, nothing acknowledged is lost, and the
//! domain ends on the model asked for.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

const F32: &str = "all-minilm-l6-v2";
const INT8: &str = "all-minilm-l6-v2-int8";

/// The first `n` documents of the CACM collection (short titles and abstracts) as a corpus file.
fn corpus(dir: &Path, n: usize) -> std::path::PathBuf {
    let source =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets/ir/cacm/corpus.jsonl");
    let text =
        std::fs::read_to_string(&source).unwrap_or_else(|e| panic!("{}: {e}", source.display()));
    let path = dir.join("corpus.jsonl");
    let lines: Vec<&str> = text.lines().take(n).collect();
    std::fs::write(&path, lines.join("\n")).unwrap();
    path
}

/// Writers and searchers against some nodes until stopped: what was acknowledged, and every
/// request that failed (a node being killed on purpose is left out by the caller).
struct Load {
    stop: Arc<AtomicBool>,
    acknowledged: Arc<Mutex<BTreeSet<String>>>,
    last_seq: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<String>>>,
    searches: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(write_to: &[String], search_on: &[String], key: &str, tag: &str) -> Load {
        let load = Load {
            stop: Arc::default(),
            acknowledged: Arc::default(),
            last_seq: Arc::default(),
            failures: Arc::default(),
            searches: Arc::default(),
            threads: Vec::new(),
        };
        let mut threads = Vec::new();
        for (w, url) in write_to.iter().enumerate() {
            let (stop, acked, last, failures) = (
                Arc::clone(&load.stop),
                Arc::clone(&load.acknowledged),
                Arc::clone(&load.last_seq),
                Arc::clone(&load.failures),
            );
            let (url, key, tag) = (url.clone(), key.to_string(), tag.to_string());
            threads.push(std::thread::spawn(move || {
                let agent = agent();
                let mut n = 0;
                while !stop.load(Ordering::Acquire) {
                    n += 1;
                    let id = format!("{tag}-{w}-{n}");
                    let body = json!({"documents": [{
                        "id": id,
                        "text": format!("Switchcanary {tag} note {n}: a compiler for {} registers.", n % 97),
                        "attributes": {"batch": tag}
                    }]});
                    match post(&agent, &url, "/v1/domains/kb/documents", &key, &body) {
                        Ok((200, v)) => {
                            acked.lock().unwrap().insert(id);
                            last.fetch_max(v["seq"].as_u64().unwrap(), Ordering::AcqRel);
                        }
                        Ok((status, v)) => failures.lock().unwrap().push(format!("write {status}: {v}")),
                        Err(e) => failures.lock().unwrap().push(format!("write: {e}")),
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }));
        }
        for url in search_on {
            let (stop, failures, searches) = (
                Arc::clone(&load.stop),
                Arc::clone(&load.failures),
                Arc::clone(&load.searches),
            );
            let (url, key) = (url.clone(), key.to_string());
            threads.push(std::thread::spawn(move || {
                let agent = agent();
                let mut n = 0;
                while !stop.load(Ordering::Acquire) {
                    n += 1;
                    let body = json!({"query": format!("compiler registers {}", n % 13), "domains": ["kb"], "k": 5});
                    match post(&agent, &url, "/v1/search", &key, &body) {
                        Ok((200, v)) if v["hits"].as_array().is_some_and(|h| !h.is_empty()) => {
                            searches.fetch_add(1, Ordering::AcqRel);
                        }
                        Ok((status, v)) => failures.lock().unwrap().push(format!("search {status}: {v}")),
                        Err(e) => failures.lock().unwrap().push(format!("search: {e}")),
                    }
                }
            }));
        }
        Load { threads, ..load }
    }

    fn stop(self) -> (BTreeSet<String>, u64, Vec<String>, u64) {
        self.stop.store(true, Ordering::Release);
        for t in self.threads {
            t.join().unwrap();
        }
        (
            self.acknowledged.lock().unwrap().clone(),
            self.last_seq.load(Ordering::Acquire),
            self.failures.lock().unwrap().clone(),
            self.searches.load(Ordering::Acquire),
        )
    }

    fn acknowledged(&self) -> usize {
        self.acknowledged.lock().unwrap().len()
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .new_agent()
}

fn post(
    agent: &ureq::Agent,
    url: &str,
    path: &str,
    key: &str,
    body: &Value,
) -> Result<(u16, Value), ureq::Error> {
    let mut r = agent
        .post(format!("{url}{path}"))
        .header("Authorization", &format!("Bearer {key}"))
        .header("Content-Type", "application/json")
        .send(body.to_string().as_bytes())?;
    let status = r.status().as_u16();
    let content_type = content_type(&r);
    let v = r.body_mut().read_json::<Value>().unwrap_or(Value::Null);
    crate::openapi::check_answer("POST", path, status, content_type.as_deref(), &v);
    Ok((status, v))
}

fn stats(s: &Server, key: &str) -> Value {
    let (status, v) = call(s, "GET", "/v1/domains/kb", Some(key), None);
    assert_eq!(status, 200, "{v}");
    v
}

/// Waits for a task to end; its final state.
fn finished(s: &Server, key: &str, task: &str, secs: u64) -> Value {
    let mut last = Value::Null;
    let done = eventually(secs, || {
        let (status, t) = call(s, "GET", &format!("/v1/tasks/{task}"), Some(key), None);
        assert_eq!(status, 200, "{t}");
        last = t;
        matches!(
            last["status"].as_str(),
            Some("succeeded" | "failed" | "canceled")
        )
    });
    assert!(done, "task {task} did not end: {last}");
    last
}

/// Every acknowledged write is in the serving shard (each read back by id; the tag's filter
/// counts them, read with `min_seq`, plus at most `in_flight` writes stored whose answer a kill
/// cut off), and a sample is found by its own text on the vector branch: the new model's
/// vectors are there.
fn all_there(
    s: &Server,
    key: &str,
    tag: &str,
    acked: &BTreeSet<String>,
    last_seq: u64,
    model: &str,
    in_flight: usize,
) {
    let body = json!({"query": "switchcanary", "domains": ["kb"], "mode": "bm25", "filter": format!("batch = \"{tag}\""),
        "min_seq": {"kb": last_seq}, "k": 1});
    let (status, v) = call(s, "POST", "/v1/search", Some(key), Some(&body.to_string()));
    assert_eq!(status, 200, "{v}");
    let found = v["total"]["documents"].as_u64().unwrap() as usize;
    assert!(
        (acked.len()..=acked.len() + in_flight).contains(&found),
        "{} acknowledged, {in_flight} in flight: {v}",
        acked.len()
    );
    for id in acked {
        let (status, doc) = call(
            s,
            "GET",
            &format!("/v1/domains/kb/documents/{id}"),
            Some(key),
            None,
        );
        assert_eq!(status, 200, "{id}: {doc}");
    }
    for id in acked.iter().step_by((acked.len() / 8).max(1)) {
        let (_, doc) = call(
            s,
            "GET",
            &format!("/v1/domains/kb/documents/{id}"),
            Some(key),
            None,
        );
        let text = doc["chunks"][0]["text"].as_str().unwrap().to_string();
        let body = json!({"query": text, "domains": ["kb"], "mode": "vector", "k": 3, "filter": format!("batch = \"{tag}\"")});
        let (status, v) = call(s, "POST", "/v1/search", Some(key), Some(&body.to_string()));
        assert_eq!(status, 200, "{v}");
        let hits = v["hits"].as_array().unwrap();
        assert!(
            hits.iter().any(|h| h["doc_id"] == id.as_str()),
            "{id} by its own text: {v}"
        );
        assert!(hits.iter().all(|h| h["model"] == model), "{v}");
    }
}

fn setup(docs: usize, store: &[&str]) -> (tempfile::TempDir, std::path::PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = corpus(dir.path(), docs);
    let with = |args: &[&str]| {
        let all: Vec<&str> = store.iter().chain(args).copied().collect();
        cli(&data, &all)
    };
    with(&["domain", "create", "kb", "--model", F32]);
    with(&["index", "--domain", "kb", file.to_str().unwrap()]);
    let key = with(&["key", "create", "--principal", "admin"])
        .split_whitespace()
        .find(|w| w.starts_with("dk_"))
        .unwrap()
        .to_string();
    (dir, data, key)
}

#[test]
fn a_switch_and_a_rollback_under_load_fail_nothing_and_lose_nothing() {
    let (dir, data, key) = setup(150, &[]);
    let s = start(dir, data, &["--rate-limit", "0", "--ip-rate-limit", "0"]);
    let url = vec![s.http.clone()];

    // Refused before anything starts: the model it has, one not in the catalogue, a rollback
    // with nothing kept.
    for (body, status, says) in [
        (json!({"model": F32}), 400, "already uses"),
        (json!({"model": "gpt-9"}), 400, "model: `gpt-9`"),
        (json!({"model": "ms-marco-minilm-l-12-v2"}), 400, "model:"),
    ] {
        let (got, v) = call(
            &s,
            "PATCH",
            "/v1/domains/kb",
            Some(&key),
            Some(&body.to_string()),
        );
        assert_eq!(got, status, "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(says),
            "{v}"
        );
    }
    let (got, v) = call(
        &s,
        "POST",
        "/v1/domains/kb/rollback-model",
        Some(&key),
        None,
    );
    assert_eq!(got, 409, "{v}");

    let load = Load::start(&url, &url, &key, "a");
    assert!(eventually(60, || load.acknowledged() > 10));
    let (status, started) = call(
        &s,
        "PATCH",
        "/v1/domains/kb",
        Some(&key),
        Some(&json!({"model": INT8}).to_string()),
    );
    assert_eq!(status, 200, "{started}");
    let task = started["task"]["id"].as_str().unwrap().to_string();
    assert_eq!(started["task"]["kind"], "switch-model");
    // A second switch while this one runs is a conflict.
    let (got, v) = call(
        &s,
        "PATCH",
        "/v1/domains/kb",
        Some(&key),
        Some(&json!({"model": "bge-small-en-v1.5"}).to_string()),
    );
    assert_eq!(got, 409, "{v}");
    let during = stats(&s, &key);
    assert_eq!(
        during["generations"]["other"]["state"], "building",
        "{during}"
    );
    let done = finished(&s, &key, &task, 300);
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        done["progress"]["embedded"], done["progress"]["chunks"],
        "{done}"
    );
    let at_flip = load.acknowledged();
    assert!(
        eventually(60, || load.acknowledged() > at_flip + 10),
        "writes go on after the flip"
    );
    let (acked, last_seq, failures, searches) = load.stop();
    assert!(failures.is_empty(), "{failures:?}");
    assert!(searches > 0);
    let after = stats(&s, &key);
    assert_eq!(after["model"]["id"], INT8, "{after}");
    assert_eq!(after["generations"]["other"]["state"], "kept", "{after}");
    assert_eq!(after["generations"]["other"]["model"]["id"], F32, "{after}");
    all_there(&s, &key, "a", &acked, last_seq, INT8, 0);

    // Back to f32: only what was written since the flip is embedded again.
    let load = Load::start(&url, &url, &key, "b");
    let (status, back) = call(
        &s,
        "POST",
        "/v1/domains/kb/rollback-model",
        Some(&key),
        None,
    );
    assert_eq!(status, 200, "{back}");
    let done = finished(&s, &key, back["task"]["id"].as_str().unwrap(), 300);
    assert_eq!(done["status"], "succeeded", "{done}");
    let (acked_b, last_seq, failures, _) = load.stop();
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(stats(&s, &key)["model"]["id"], F32);
    all_there(&s, &key, "a", &acked, last_seq, F32, 0);
    all_there(&s, &key, "b", &acked_b, last_seq, F32, 0);

    // Dropping the kept generation ends rollback; its shard goes.
    let (status, dropped) = call(
        &s,
        "POST",
        "/v1/domains/kb/drop-old-generation",
        Some(&key),
        None,
    );
    assert_eq!(status, 200, "{dropped}");
    assert!(dropped["generations"]["other"].is_null(), "{dropped}");
    let gone = s.data.join("shards/kb.g2");
    assert!(
        eventually(10, || !gone.exists()),
        "{} stays",
        gone.display()
    );
    let (got, _) = call(
        &s,
        "POST",
        "/v1/domains/kb/drop-old-generation",
        Some(&key),
        None,
    );
    assert_eq!(got, 409);
}

#[test]
fn a_switch_killed_mid_way_resumes_on_restart() {
    let (dir, data, key) = setup(400, &[]);
    let flags = ["--rate-limit", "0", "--ip-rate-limit", "0"];
    let s = start_on(&data, &flags);
    let url = vec![s.http.clone()];
    let load = Load::start(&url, &[], &key, "k");
    assert!(eventually(60, || load.acknowledged() > 10));
    let (status, started) = call(
        &s,
        "PATCH",
        "/v1/domains/kb",
        Some(&key),
        Some(&json!({"model": INT8}).to_string()),
    );
    assert_eq!(status, 200, "{started}");
    let task = started["task"]["id"].as_str().unwrap().to_string();
    let chunks = |t: &Value| {
        (
            t["progress"]["embedded"].as_u64().unwrap_or(0),
            t["progress"]["chunks"].as_u64().unwrap_or(0),
        )
    };
    assert!(
        eventually(120, || {
            let (_, t) = call(&s, "GET", &format!("/v1/tasks/{task}"), Some(&key), None);
            let (done, all) = chunks(&t);
            done > 50 && done < all
        }),
        "the switch never got under way"
    );
    // The writer's requests to the killed node fail on purpose: only its acknowledged ones count.
    s.kill();
    let (acked, last_seq, _, _) = load.stop();
    let s = start(dir, data, &flags);
    // The restarted node is the same node (its id is in its data directory): it takes its own
    // switch back at once and finishes it.
    assert!(
        eventually(300, || stats(&s, &key)["model"]["id"] == INT8),
        "the switch was not resumed: {}",
        stats(&s, &key)
    );
    let (_, tasks) = call(&s, "GET", "/v1/tasks", Some(&key), None);
    assert!(
        tasks
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["kind"] == "switch-model"),
        "{tasks}"
    );
    let after = stats(&s, &key);
    assert_eq!(after["generations"]["other"]["state"], "kept", "{after}");
    assert_eq!(after["chunks"], after["stored_chunks"], "{after}");
    // The one writer's request cut off by the kill may have been stored.
    all_there(&s, &key, "k", &acked, last_seq, INT8, 1);
}

/// Two nodes on PostgreSQL: node A starts the switch and is killed while it builds; node B,
/// which took every request meanwhile, finds the lease run out and finishes it; A comes back
/// and serves the new generation. Nothing B answered failed; nothing acknowledged is lost.
#[test]
fn two_nodes_on_postgresql_finish_a_switch_whose_node_died() {
    let pg = crate::pg::PgCluster::start();
    let store = ["--store", pg.url.as_str()];
    let (dir, data_a, key) = setup(400, &store);
    let data_b = dir.path().join("b");
    let flags = [
        "--store",
        pg.url.as_str(),
        "--rate-limit",
        "0",
        "--ip-rate-limit",
        "0",
    ];
    let a = start_on(&data_a, &flags);
    let b = start_on(&data_b, &flags);
    let on_b = vec![b.http.clone()];
    let load = Load::start(&on_b, &on_b, &key, "p");
    assert!(eventually(60, || load.acknowledged() > 10));
    let (status, started) = call(
        &a,
        "PATCH",
        "/v1/domains/kb",
        Some(&key),
        Some(&json!({"model": INT8}).to_string()),
    );
    assert_eq!(status, 200, "{started}");
    let task = started["task"]["id"].as_str().unwrap().to_string();
    assert!(
        eventually(120, || {
            let (_, t) = call(&a, "GET", &format!("/v1/tasks/{task}"), Some(&key), None);
            t["progress"]["embedded"].as_u64().unwrap_or(0) > 50
        }),
        "the switch never got under way on A"
    );
    a.kill();
    assert!(
        eventually(300, || stats(&b, &key)["model"]["id"] == INT8),
        "node B did not finish the switch: {}",
        stats(&b, &key)
    );
    let a = start_on(&data_a, &flags);
    let (acked, last_seq, failures, searches) = load.stop();
    assert!(failures.is_empty(), "{failures:?}");
    assert!(searches > 0);
    for node in [&b, &a] {
        all_there(node, &key, "p", &acked, last_seq, INT8, 0);
    }
}
