//! Snapshots end to end: taken over HTTP, gRPC and the CLI while writes go on, listed,
//! refused to the wrong callers and names; restored by the CLI into an empty data directory on
//! SQLite (holding exactly the writes acknowledged up to its sequence, the keys of the
//! snapshot working there), and over HTTP into a running node on PostgreSQL.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use dartmouth_server::proto::{self as pb, admin_client::AdminClient};
use serde_json::{Value, json};

use crate::support::*;

const NO_LIMITS: [&str; 4] = ["--rate-limit", "0", "--ip-rate-limit", "0"];

/// The ids of `domain`'s documents holding `word` (every chunk up to 100).
fn ids_with(s: &Server, key: &str, domain: &str, word: &str) -> Vec<String> {
    let body =
        json!({"query": word, "domains": [domain], "k": 100, "mode": "bm25", "collapse": true});
    let (status, found) = call(s, "POST", "/v1/search", Some(key), Some(&body.to_string()));
    assert_eq!(status, 200, "{found}");
    let mut ids: Vec<String> = found["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["doc_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

fn domain_of<'a>(snapshot: &'a Value, name: &str) -> &'a Value {
    snapshot["domains"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {snapshot}"))
}

#[test]
fn snapshots_are_taken_while_writing_and_restore_at_their_sequence() {
    let (dir, data, keys) = setup();
    let s = start(dir, data.clone(), &NO_LIMITS);

    // A writer adds one document at a time; each acknowledged sequence is kept.
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let writer = {
        let (stop, acked) = (Arc::clone(&stop), Arc::clone(&acked));
        let (http, key) = (s.http.clone(), keys.writer.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Acquire) {
                let id = format!("during-{i}.md");
                let body = json!({"documents": [{"id": id, "title": "During", "text": format!("zebracorn note {i}")}]});
                let response = ureq::post(&format!("{http}/v1/domains/help/documents"))
                    .header("Authorization", &format!("Bearer {key}"))
                    .send(body.to_string())
                    .unwrap()
                    .into_body()
                    .read_to_string()
                    .unwrap();
                let response: Value = serde_json::from_str(&response).unwrap();
                acked
                    .lock()
                    .unwrap()
                    .push((id, response["seq"].as_u64().unwrap()));
                i += 1;
            }
        })
    };
    assert!(eventually(30, || acked.lock().unwrap().len() >= 5));
    let before: Vec<(String, u64)> = acked.lock().unwrap().clone();
    let (status, first) = call(
        &s,
        "POST",
        "/v1/snapshots",
        Some(&keys.admin),
        Some(r#"{"name":"first"}"#),
    );
    assert_eq!(status, 201, "{first}");
    assert!(eventually(30, || acked.lock().unwrap().len() >= before.len() + 5));
    stop.store(true, Ordering::Release);
    writer.join().unwrap();
    let acked = acked.lock().unwrap().clone();

    let help = domain_of(&first, "help");
    let store_seq = help["store_seq"].as_u64().unwrap();
    let shard_seq = help["shard_seq"].as_u64().unwrap();
    assert!(shard_seq <= store_seq, "{first}");
    assert!(
        before.iter().all(|(_, seq)| *seq <= store_seq),
        "acknowledged before it, in it"
    );
    assert!(first["rows"]["chunks"].as_u64().unwrap() > 0);
    assert_eq!(first["backend"], "sqlite");

    // Who may, and which names.
    for key in [&keys.reader, &keys.writer, &keys.restricted] {
        let (status, body) = call(&s, "POST", "/v1/snapshots", Some(key), Some("{}"));
        assert_eq!(status, 403, "{body}");
        assert_eq!(call(&s, "GET", "/v1/snapshots", Some(key), None).0, 403);
    }
    let (status, body) = call(
        &s,
        "POST",
        "/v1/snapshots",
        Some(&keys.admin),
        Some(r#"{"name":"first"}"#),
    );
    assert_eq!(status, 409, "{body}");
    for bad in [
        r#"{"name":"../up"}"#,
        r#"{"name":".hidden"}"#,
        r#"{"nom":"x"}"#,
        "[1]",
    ] {
        let (status, body) = call(&s, "POST", "/v1/snapshots", Some(&keys.admin), Some(bad));
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains("name") || bad == "[1]",
            "{body}"
        );
    }

    // gRPC: an unnamed snapshot (named by its time), then the list.
    let rt = runtime();
    let (grpc_made, listed) = rt.block_on(async {
        let mut admin = AdminClient::new(channel(&s).await);
        let made = admin
            .create_snapshot(with_key(
                pb::CreateSnapshotRequest {
                    name: String::new(),
                    encrypt: false,
                },
                Some(&keys.admin),
            ))
            .await
            .unwrap()
            .into_inner();
        let denied = admin
            .list_snapshots(with_key(pb::ListRequest {}, Some(&keys.reader)))
            .await
            .unwrap_err();
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
        let listed = admin
            .list_snapshots(with_key(pb::ListRequest {}, Some(&keys.admin)))
            .await
            .unwrap()
            .into_inner();
        (made, listed)
    });
    assert!(
        grpc_made.name.starts_with("20") && grpc_made.name.ends_with('Z'),
        "{}",
        grpc_made.name
    );
    assert!(
        grpc_made
            .domains
            .iter()
            .any(|d| d.name == "help" && d.shard_seq.is_some())
    );
    let names: Vec<&str> = listed.snapshots.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(names, ["first", grpc_made.name.as_str()]);
    let (_, http_list) = call(&s, "GET", "/v1/snapshots", Some(&keys.admin), None);
    assert_eq!(http_list["snapshots"].as_array().unwrap().len(), 2);
    assert_eq!(http_list["snapshots"][0], first);
    // The CLI sees the same directory.
    let listed_cli = cli(&data, &["snapshot", "list", "--json"]);
    assert_eq!(listed_cli.lines().count(), 2, "{listed_cli}");

    // Restoring into a store that holds data is refused; a missing snapshot is a 404.
    let (status, body) = call(
        &s,
        "POST",
        "/v1/snapshots/first/restore",
        Some(&keys.admin),
        None,
    );
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("empty store"),
        "{body}"
    );
    assert_eq!(
        call(
            &s,
            "POST",
            "/v1/snapshots/none/restore",
            Some(&keys.admin),
            None
        )
        .0,
        404
    );

    // Restored by the CLI on "another machine": a new data directory, the snapshot's path.
    let elsewhere = tempfile::tempdir().unwrap();
    let restored_data = elsewhere.path().join("data");
    let snapshot_path = data.join("snapshots/first");
    let out = cli(
        &restored_data,
        &["snapshot", "restore", snapshot_path.to_str().unwrap()],
    );
    assert!(out.contains("restored") && out.contains("help"), "{out}");
    let (ok, _, err) = cli_run(
        &restored_data,
        &["snapshot", "restore", snapshot_path.to_str().unwrap()],
    );
    assert!(!ok && err.contains("empty store"), "{err}");
    let (ok, _, err) = cli_run(
        &restored_data,
        &["snapshot", "restore", "/nonexistent/snap"],
    );
    assert!(!ok && err.contains("not a snapshot"), "{err}");

    let r = start(elsewhere, restored_data.clone(), &NO_LIMITS);
    // Exactly the writes acknowledged up to the snapshot's sequence, with the snapshot's keys.
    let mut expected: Vec<String> = acked
        .iter()
        .filter(|(_, seq)| *seq <= store_seq)
        .map(|(id, _)| id.clone())
        .collect();
    expected.sort();
    let min_seq = json!({"query": "zebracorn", "domains": ["help"], "k": 100, "mode": "bm25", "collapse": true, "min_seq": {"help": store_seq}});
    assert_eq!(
        call(
            &r,
            "POST",
            "/v1/search",
            Some(&keys.reader),
            Some(&min_seq.to_string())
        )
        .0,
        200
    );
    assert_eq!(ids_with(&r, &keys.reader, "help", "zebracorn"), expected);
    assert!(
        expected.len() < acked.len(),
        "writes after the snapshot are not in it"
    );
    assert_eq!(
        ids_with(&r, &keys.reader, "help", "refund"),
        ids_with(&s, &keys.reader, "help", "refund")
    );
    // The `other` reader still cannot read help there: the grants came along too.
    let body = json!({"query": "refund", "domains": ["help"]});
    assert_eq!(
        call(
            &r,
            "POST",
            "/v1/search",
            Some(&keys.other),
            Some(&body.to_string())
        )
        .0,
        404
    );
    // It goes on: a write on the restored node takes the next sequence and is found.
    let doc = json!({"documents": [{"id": "after.md", "title": "After", "text": "zebracorn after the restore"}]});
    let (status, ack) = call(
        &r,
        "POST",
        "/v1/domains/help/documents",
        Some(&keys.writer),
        Some(&doc.to_string()),
    );
    assert_eq!(status, 200, "{ack}");
    assert_eq!(ack["seq"].as_u64().unwrap(), store_seq + 1);
    assert!(ids_with(&r, &keys.reader, "help", "zebracorn").contains(&"after.md".to_string()));
    let (_, audit) = call(
        &r,
        "GET",
        "/v1/audit?action=snapshot-restore",
        Some(&keys.admin),
        None,
    );
    assert_eq!(audit.as_array().map(Vec::len), Some(1), "{audit}");
}

#[test]
fn a_postgresql_node_restores_a_snapshot_over_http() {
    let pg = crate::pg::PgCluster::start();
    let root = tempfile::tempdir().unwrap();
    let (a_data, b_data) = (root.path().join("a"), root.path().join("b"));
    let shared = root.path().join("snapshots");
    let a_url = pg.url.clone();
    let b_url = pg.database("restored");
    let on = |data: &std::path::Path, url: &str, args: &[&str]| {
        let mut all = vec!["--store", url, "--snapshot-dir", shared.to_str().unwrap()];
        all.extend_from_slice(args);
        cli(data, &all)
    };
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../sample/help-centre");
    on(
        &a_data,
        &a_url,
        &["domain", "create", "kb", "--embedder", "fake"],
    );
    on(
        &a_data,
        &a_url,
        &["index", "--domain", "kb", sample.to_str().unwrap()],
    );
    on(&a_data, &a_url, &["principal", "create", "agent"]);
    on(&a_data, &a_url, &["grant", "agent", "kb", "read"]);
    let agent = key_with(&a_data, &["--store", &a_url, "--principal", "agent"]);
    let a_admin = key_with(&a_data, &["--store", &a_url, "--principal", "admin"]);
    let b_admin = key_with(&b_data, &["--store", &b_url, "--principal", "admin"]);
    let flags = |url: &str| -> Vec<String> {
        [
            "--store",
            url,
            "--snapshot-dir",
            shared.to_str().unwrap(),
            "--rate-limit",
            "0",
            "--ip-rate-limit",
            "0",
        ]
        .map(String::from)
        .to_vec()
    };
    let a_flags = flags(&a_url);
    let a = start_on(
        &a_data,
        &a_flags.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let (status, snap) = call(
        &a,
        "POST",
        "/v1/snapshots",
        Some(&a_admin),
        Some(r#"{"name":"pg"}"#),
    );
    assert_eq!(status, 201, "{snap}");
    assert_eq!(snap["backend"], "postgres");

    // B: a running node on an empty database, restoring the snapshot from the shared directory.
    let b_flags = flags(&b_url);
    let b = start_on(
        &b_data,
        &b_flags.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let (status, body) = call(&b, "POST", "/v1/snapshots/pg/restore", Some(&agent), None);
    assert_eq!(status, 401, "not B's key yet: {body}");
    let (status, restored) = call(&b, "POST", "/v1/snapshots/pg/restore", Some(&b_admin), None);
    assert_eq!(status, 200, "{restored}");
    assert_eq!(restored, snap);
    // B's principals and keys are now the snapshot's: its own admin key is gone.
    assert_eq!(call(&b, "GET", "/v1/domains", Some(&b_admin), None).0, 401);
    let seq = domain_of(&snap, "kb")["store_seq"].as_u64().unwrap();
    let body = json!({"query": "refund", "domains": ["kb"], "k": 100, "mode": "bm25", "min_seq": {"kb": seq}});
    assert_eq!(
        call(
            &b,
            "POST",
            "/v1/search",
            Some(&agent),
            Some(&body.to_string())
        )
        .0,
        200
    );
    for q in ["refund", "shipping", "warranty"] {
        assert_eq!(
            ids_with(&b, &agent, "kb", q),
            ids_with(&a, &agent, "kb", q),
            "{q}"
        );
        assert!(!ids_with(&b, &agent, "kb", q).is_empty(), "{q}");
    }
    assert_eq!(
        call(&b, "GET", "/v1/snapshots", Some(&a_admin), None).0,
        200
    );
}

/// `dartmouth … ARGS` with `env` set: (succeeded, stdout, stderr).
fn cli_env(data: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = std::process::Command::new(binary())
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Encrypted snapshots: taken over HTTP and gRPC with the node's key (`--snapshot-key-env`)
/// and by the CLI (`--encrypt-key-env`), listed as encrypted without their contents, holding
/// no document text in any file; a restore without the key, with another key, or from a
/// snapshot with one flipped byte says so and restores nothing; with the key, everything is
/// back. The key never appears in the server's log, even at trace level.
#[test]
fn an_encrypted_snapshot_restores_only_with_its_key() {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64.encode([7u8; 32]);
    let wrong = b64.encode([8u8; 32]);
    let (dir, data, keys) = setup();
    let log = dir.path().join("server.log");
    let s = start_logged(
        &data,
        &["--snapshot-key-env", "SNAPSHOT_KEY"],
        &[("SNAPSHOT_KEY", &key)],
        &log,
    );
    let a = Some(keys.admin.as_str());
    let (status, made) = call(
        &s,
        "POST",
        "/v1/snapshots",
        a,
        Some(r#"{"name":"sealed","encrypt":true}"#),
    );
    assert_eq!(status, 201, "{made}");
    assert_eq!(made["encrypted"], true, "{made}");
    assert!(!made["domains"].as_array().unwrap().is_empty(), "{made}");
    let rt = runtime();
    let grpc_made = rt.block_on(async {
        AdminClient::new(channel(&s).await)
            .create_snapshot(with_key(
                pb::CreateSnapshotRequest {
                    name: "sealed-grpc".into(),
                    encrypt: true,
                },
                a,
            ))
            .await
            .unwrap()
            .into_inner()
    });
    assert!(grpc_made.encrypted);
    let (_, listed) = call(&s, "GET", "/v1/snapshots", a, None);
    let sealed = listed["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "sealed")
        .unwrap();
    assert_eq!(
        (&sealed["encrypted"], &sealed["domains"]),
        (&json!(true), &json!([])),
        "{sealed}"
    );
    drop(s);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(!logged.is_empty());
    assert!(!logged.contains(&key), "the snapshot key is in the log");

    // No file of the snapshot holds a word of the help centre.
    let snap = data.join("snapshots/sealed");
    let mut files = Vec::new();
    let mut stack = vec![snap.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                files.push(e.path());
            }
        }
    }
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        assert!(!bytes.windows(6).any(|w| w == b"refund"), "{f:?}");
    }

    // The CLI: another data directory, restored from the snapshot's directory.
    let root = tempfile::tempdir().unwrap();
    let there = root.path().join("there");
    let path = snap.to_str().unwrap();
    let restore = |env: &[(&str, &str)], args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&["snapshot", "restore", path]);
        cli_env(&there, &all, env)
    };
    let (ok, _, err) = restore(&[], &[]);
    assert!(!ok && err.contains("is encrypted: give its key"), "{err}");
    let (ok, _, err) = restore(
        &[("SNAPSHOT_KEY", &wrong)],
        &["--snapshot-key-env", "SNAPSHOT_KEY"],
    );
    assert!(
        !ok && err.contains("not the key it was encrypted with"),
        "{err}"
    );
    assert!(!err.contains(&wrong), "the key in an error: {err}");
    let (ok, _, err) = restore(
        &[("SNAPSHOT_KEY", "too short")],
        &["--snapshot-key-env", "SNAPSHOT_KEY"],
    );
    assert!(
        !ok && err.contains("SNAPSHOT_KEY: the snapshot key is not base64"),
        "{err}"
    );
    let target = snap.join("sealed/000001");
    let original = std::fs::read(&target).unwrap();
    let mut flipped = original.clone();
    flipped[original.len() / 2] ^= 0x20;
    std::fs::write(&target, &flipped).unwrap();
    let (ok, _, err) = restore(
        &[("SNAPSHOT_KEY", &key)],
        &["--snapshot-key-env", "SNAPSHOT_KEY"],
    );
    assert!(
        !ok && err.contains("sealed/000001: the snapshot's file is damaged"),
        "{err}"
    );
    std::fs::write(&target, &original).unwrap();
    assert_eq!(
        cli(&there, &["domain", "list"]).trim(),
        "",
        "nothing restored"
    );
    let (ok, out, err) = restore(
        &[("SNAPSHOT_KEY", &key)],
        &["--snapshot-key-env", "SNAPSHOT_KEY"],
    );
    assert!(ok, "{err}");
    assert!(out.contains("encrypted"), "{out}");
    let found = cli(&there, &["search", "--json", "--domain", "help", "refund"]);
    let found: Value = serde_json::from_str(&found).unwrap();
    assert!(!found["hits"].as_array().unwrap().is_empty(), "{found}");

    // The CLI encrypts with a variable of its own choosing.
    let (ok, out, err) = cli_env(
        &there,
        &[
            "snapshot",
            "create",
            "--name",
            "mine",
            "--encrypt-key-env",
            "MY_KEY",
        ],
        &[("MY_KEY", &key)],
    );
    assert!(ok && out.contains("encrypted"), "{out}{err}");
}
