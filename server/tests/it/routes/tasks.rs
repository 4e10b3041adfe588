//! `/v1/tasks`: an upload with `?async=true` is a task, seen by its creator and admins only,
//! cancelled queued or running (between batches, without its full sync's deletions), tasks of
//! a domain running one at a time in the order they were created.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::inproc::{InProcess, help_centre_with_scratch_writer};

const FILES: &str = "/v1/domains/scratch/files";

/// Task `id` once `done` says so (fails the test if not within `secs`).
fn wait_for(p: &InProcess, key: &str, id: &str, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (_, task) = p.call("GET", &format!("/v1/tasks/{id}"), Some(key), None);
        if done(&task) {
            return task;
        }
        assert!(Instant::now() < deadline, "task {id}: {task}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn succeeded(p: &InProcess, key: &str, id: &str) -> Value {
    wait_for(p, key, id, 60, |t| t["status"] == "succeeded")
}

fn pages(n: usize, prefix: &str) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|i| {
            (
                format!("{prefix}-{i:03}.txt"),
                format!("Page {i} about asteroid mining.").into_bytes(),
            )
        })
        .collect()
}

fn refs(files: &[(String, Vec<u8>)]) -> Vec<(&str, &[u8])> {
    files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect()
}

fn start(p: &InProcess, key: &str, query: &str, files: &[(&str, &[u8])]) -> String {
    let (status, task) = p.upload(&format!("{FILES}?async=true{query}"), key, files);
    assert_eq!(status, 202, "{task}");
    task["id"].as_str().unwrap().to_string()
}

fn held(p: &InProcess, key: &str, id: &str) -> bool {
    let path = format!("/v1/domains/scratch/documents/{id}");
    p.call("GET", &path, Some(key), None).0 == 200
}

#[test]
fn an_async_upload_answers_202_and_its_task_succeeds() {
    let (p, keys) = help_centre_with_scratch_writer();
    let w = keys.writer.as_str();
    let many = pages(300, "bulk");
    let (status, task) = p.upload(&format!("{FILES}?async=true"), w, &refs(&many));
    assert_eq!(status, 202, "{task}");
    assert!(
        matches!(task["status"].as_str(), Some("queued" | "running")),
        "{task}"
    );
    let done = succeeded(&p, w, task["id"].as_str().unwrap());
    assert_eq!(done["summary"]["added"], 300, "{done}");
    assert!(done["batches"].as_u64().unwrap() >= 1, "{done}");
    assert!(held(&p, w, "bulk-000.txt") && held(&p, w, "bulk-299.txt"));
}

#[test]
fn another_principal_sees_no_such_task_and_an_admin_sees_every_task() {
    let (p, keys) = help_centre_with_scratch_writer();
    let id = start(&p, &keys.writer, "", &[("a.txt", b"Asteroid text.")]);
    succeeded(&p, &keys.writer, &id);
    let (status, hidden) = p.call("GET", &format!("/v1/tasks/{id}"), Some(&keys.reader), None);
    assert_eq!(status, 404, "{hidden}");
    // The same answer as for a task that does not exist.
    let (_, missing) = p.call(
        "GET",
        "/v1/tasks/t0000000000000000",
        Some(&keys.reader),
        None,
    );
    assert_eq!(
        hidden.to_string().replace(&id, "X"),
        missing.to_string().replace("t0000000000000000", "X")
    );
    let (_, all) = p.call("GET", "/v1/tasks", Some(&keys.admin), None);
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == id.as_str()),
        "{all}"
    );
    assert_eq!(
        p.call("GET", "/v1/tasks", Some(&keys.reader), None).1,
        json!([])
    );
}

#[test]
fn the_creators_read_only_key_sees_a_task_but_may_not_cancel_it() {
    let (p, keys) = help_centre_with_scratch_writer();
    let read_only = p.key("writer", None, Some(dartmouth_domains::Role::Read));
    let id = start(&p, &keys.writer, "", &[("a.txt", b"Asteroid text.")]);
    let (status, _) = p.call("GET", &format!("/v1/tasks/{id}"), Some(&read_only), None);
    assert_eq!(status, 200);
    let (status, reply) = p.call(
        "POST",
        &format!("/v1/tasks/{id}/cancel"),
        Some(&read_only),
        None,
    );
    assert_eq!(status, 404, "{reply}");
    succeeded(&p, &keys.writer, &id);
}

#[test]
fn cancelled_tasks_stop_without_deleting_and_the_rest_run_in_order() {
    let (p, keys) = help_centre_with_scratch_writer();
    let w = keys.writer.as_str();
    p.upload(
        FILES,
        w,
        &[("kept.md", b"# Kept\n\nA page a full sync would delete.")],
    );
    let big: String = (0..100_000)
        .map(|i| format!("{{\"_id\":\"big-{i:05}\",\"text\":\"Big page {i} on lunar soil.\"}}\n"))
        .collect();
    let running = start(&p, w, "&full_sync=true", &[("big.jsonl", big.as_bytes())]);
    let ten = pages(10, "queued");
    let (_, queued) = p.upload(
        &format!("{FILES}?async=true&full_sync=true"),
        w,
        &refs(&ten),
    );
    assert_eq!(queued["status"], "queued", "{queued}");
    // Two more behind it.
    let later: Vec<String> = (0..2)
        .map(|i| {
            let name = format!("later-{i}.txt");
            start(
                &p,
                w,
                "",
                &[(name.as_str(), b"A later page on comet tails.".as_slice())],
            )
        })
        .collect();
    // A queued task is cancelled at once.
    let queued_id = queued["id"].as_str().unwrap();
    let (status, cancelled) = p.call(
        "POST",
        &format!("/v1/tasks/{queued_id}/cancel"),
        Some(w),
        None,
    );
    assert_eq!(
        (status, &cancelled["status"]),
        (200, &json!("canceled")),
        "{cancelled}"
    );
    // A running one stops between batches.
    wait_for(&p, w, &running, 60, |t| t["status"] == "running");
    p.call(
        "POST",
        &format!("/v1/tasks/{running}/cancel"),
        Some(w),
        None,
    );
    let stopped = wait_for(&p, w, &running, 120, |t| t["status"] == "canceled");
    let written = stopped["summary"]["added"].as_u64().unwrap();
    assert!(written < 100_000, "cancelled before the end: {stopped}");
    assert_eq!(
        stopped["summary"]["deleted"], 0,
        "no full-sync deletions: {stopped}"
    );
    // The later tasks ran after the long one, in order: each one's batches were acknowledged
    // after the one before it (sequences rise).
    let mut seqs = vec![stopped["seq"].as_u64().unwrap()];
    for id in &later {
        let done = succeeded(&p, w, id);
        assert_eq!(done["summary"]["added"], 1, "{done}");
        seqs.push(done["seq"].as_u64().unwrap());
    }
    assert!(seqs.windows(2).all(|s| s[0] < s[1]), "{seqs:?}");
    // What was acknowledged stays, and so does everything the full sync would have deleted.
    let (_, stats) = p.call("GET", "/v1/domains/scratch", Some(w), None);
    assert_eq!(
        stats["documents"].as_u64().unwrap(),
        1 + written + 2,
        "{stats}"
    );
    assert!(held(&p, w, "kept.md") && !held(&p, w, "queued-000.txt"));
}
