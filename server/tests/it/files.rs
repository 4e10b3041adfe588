//! Documents over the API in every format the CLI reads — multipart, JSON and raw bodies, and
//! gRPC — with the same idempotent sync; asynchronous tasks with status and cancel; deletes by
//! id and by filter. A real server on loopback over a real store and shards.

use base64::Engine as _;
use dartmouth_server::proto::{self as pb, ingest_client::IngestClient};
use serde_json::{Value, json};

use crate::support::*;

fn upload(s: &Server, key: &str, query: &str, files: &[(&str, &[u8])]) -> (u16, Value) {
    let (content_type, body) = multipart(files);
    let auth = format!("Bearer {key}");
    post_raw(
        s,
        &format!("/v1/domains/scratch/files{query}"),
        &[("Authorization", &auth), ("Content-Type", &content_type)],
        &body,
    )
}

fn ids_found(s: &Server, key: &str, query: &str) -> Vec<String> {
    let body =
        json!({"query": query, "domains": ["scratch"], "mode": "bm25", "k": 20, "collapse": true});
    let (status, found) = call(s, "POST", "/v1/search", Some(key), Some(&body.to_string()));
    assert_eq!(status, 200, "{found}");
    found["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["doc_id"].as_str().unwrap().to_string())
        .collect()
}

/// Task `id` once it has succeeded (fails the test if it has not within a minute).
fn succeeded(s: &Server, key: &str, id: &str) -> Value {
    let mut done = Value::Null;
    assert!(
        eventually(60, || {
            done = call(s, "GET", &format!("/v1/tasks/{id}"), Some(key), None).1;
            done["status"] == "succeeded"
        }),
        "{done}"
    );
    done
}

#[test]
fn files_in_every_format_tasks_and_deletes() {
    let (dir, data, keys) = setup();
    cli(&data, &["grant", "writer", "scratch", "write"]);
    let read_only = key_with(&data, &["--principal", "writer", "--role", "read"]);
    // Polling tasks every 20 ms would spend the default budgets (100 a minute per principal,
    // 1000 per address) on a slow machine; budgets are tested in limits.rs.
    let s = start(dir, data, &["--rate-limit", "0", "--ip-rate-limit", "0"]);
    let w = keys.writer.as_str();

    // Every format the CLI reads, in one multipart upload: ids are the file names, records
    // carry their own ids.
    let pdf = dartmouth_indexer::pdf::make_pdf(&[&["Quasar warranty terms", "Two years."]]);
    let files: Vec<(&str, &[u8])> = vec![
        ("guide.md", b"# Nebula guide\n\nThe nebula lamp needs a USB-C cable."),
        (
            "page.html",
            b"<html><head><title>Pulsar page</title></head><body><p>Pulsar clocks tick.</p></body></html>",
        ),
        ("notes.txt", b"Comet notes: the comet vacuum is loud."),
        ("terms.pdf", &pdf),
        (
            "records.json",
            br#"[{"id":"r1","title":"Meteor mug","text":"A meteor mug holds tea."}]"#,
        ),
        (
            "more.jsonl",
            b"{\"_id\":\"r2\",\"title\":\"Galaxy kite\",\"text\":\"The galaxy kite flies.\"}\n",
        ),
    ];
    let (status, summary) = upload(&s, w, "", &files);
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["added"], 6, "{summary}");
    assert_eq!(summary["failed_count"], 0, "{summary}");
    for (word, id) in [
        ("nebula", "guide.md"),
        ("pulsar", "page.html"),
        ("comet", "notes.txt"),
        ("quasar", "terms.pdf"),
        ("meteor", "r1"),
        ("galaxy", "r2"),
    ] {
        assert_eq!(ids_found(&s, w, word), vec![id.to_string()], "{word}");
    }
    let (_, page) = call(
        &s,
        "GET",
        "/v1/domains/scratch/documents/page.html",
        Some(w),
        None,
    );
    assert_eq!(page["title"], "Pulsar page", "{page}");

    // The same files again: nothing written (the idempotent sync of `dartmouth index`).
    let (status, again) = upload(&s, w, "", &files);
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        (again["unchanged"].as_u64(), again["added"].as_u64()),
        (Some(6), Some(0))
    );

    // JSON bodies: text in `content`, bytes (a PDF) in `content_base64`; a raw body named by
    // `?name=`. A full sync deletes what the upload does not mention.
    let b64 = base64::engine::general_purpose::STANDARD.encode(&pdf);
    let body = json!({"files": [
        {"name": "guide.md", "content": "# Nebula guide\n\nThe nebula lamp needs a USB-C cable."},
        {"name": "terms.pdf", "content_base64": b64}
    ]});
    let (status, synced) = call(
        &s,
        "POST",
        "/v1/domains/scratch/files?full_sync=true",
        Some(w),
        Some(&body.to_string()),
    );
    assert_eq!(status, 200, "{synced}");
    assert_eq!(synced["unchanged"], 2, "{synced}");
    assert_eq!(synced["deleted"], 4, "{synced}");
    assert!(ids_found(&s, w, "comet").is_empty());
    let auth = format!("Bearer {w}");
    let (status, raw) = post_raw(
        &s,
        "/v1/domains/scratch/files?name=faq.md",
        &[("Authorization", &auth), ("Content-Type", "text/markdown")],
        b"# Orbit FAQ\n\nOrbit returns take 30 days.",
    );
    assert_eq!(status, 200, "{raw}");
    assert_eq!(ids_found(&s, w, "orbit"), vec!["faq.md".to_string()]);

    // Bad input names the input and the place; nothing is written.
    let before = call(&s, "GET", "/v1/domains/scratch", Some(w), None).1["last_seq"].clone();
    let bad: Vec<(&str, Option<&str>, &str)> = vec![
        (
            r#"{"files":[{"name":"x.md","content_base64":"%%%"}]}"#,
            None,
            "files[0].content_base64:",
        ),
        (
            r#"{"files":[{"name":"x.md"}]}"#,
            None,
            "files[0]: give one of `content`",
        ),
        (
            r#"{"files":[{"name":"blob.bin","content":"x"}]}"#,
            None,
            "blob.bin: cannot tell the format",
        ),
        (
            r#"{"files":[{"name":"x.md","format":"docx","content":"x"}]}"#,
            None,
            "files[0].format: format `docx` is not one of",
        ),
        (
            r#"{"files":[{"name":"a\tb.md","content":"x"}]}"#,
            None,
            "files[0].name:",
        ),
        (r#"{"files":[]}"#, None, "files: send 1 to"),
        (
            r#"{"files":[{"name":"x.md","content":"x"}]}"#,
            Some("?async=maybe"),
            "query:",
        ),
    ];
    for (body, query, want) in bad {
        let path = format!("/v1/domains/scratch/files{}", query.unwrap_or(""));
        let (status, reply) = call(&s, "POST", &path, Some(w), Some(body));
        assert_eq!(status, 400, "{body}: {reply}");
        let message = reply["error"]["message"].as_str().unwrap();
        assert!(message.contains(want), "{body}: {message}");
    }
    // A malformed record is reported with its file and line; the good ones are written.
    let (status, partial) = upload(
        &s,
        w,
        "",
        &[(
            "lines.jsonl",
            b"{\"_id\":\"ok1\",\"text\":\"fine line\"}\n{\"text\":\"no id\"}\n",
        )],
    );
    assert_eq!(status, 200, "{partial}");
    assert_eq!(partial["failed_count"], 1, "{partial}");
    assert!(
        partial["failed"][0]
            .as_str()
            .unwrap()
            .starts_with("lines.jsonl:2: missing field"),
        "{partial}"
    );
    let (status, raw) = post_raw(
        &s,
        "/v1/domains/scratch/files",
        &[("Authorization", &auth), ("Content-Type", "text/plain")],
        b"no name",
    );
    assert_eq!(status, 400, "{raw}");
    assert!(raw["error"]["message"].as_str().unwrap().contains("?name="));
    // A reader may not upload; a domain it cannot see is missing.
    let (status, _) = upload(&s, &keys.reader, "", &files[..1]);
    assert_eq!(status, 404);
    let after = call(&s, "GET", "/v1/domains/scratch", Some(w), None).1["last_seq"].clone();
    assert_eq!(
        after.as_u64().unwrap(),
        before.as_u64().unwrap() + 1,
        "only ok1 was written by the requests above"
    );

    let documents = |s: &Server| {
        call(s, "GET", "/v1/domains/scratch", Some(w), None).1["documents"]
            .as_u64()
            .unwrap()
    };
    let held = |s: &Server, id: &str| {
        call(
            s,
            "GET",
            &format!("/v1/domains/scratch/documents/{id}"),
            Some(w),
            None,
        )
        .0 == 200
    };
    let before_tasks = documents(&s);

    // An asynchronous task: 202 at once, then its status until it finishes.
    let many: Vec<(String, Vec<u8>)> = (0..300)
        .map(|i| {
            (
                format!("bulk-{i:03}.txt"),
                format!("Bulk page {i} about asteroid mining.").into_bytes(),
            )
        })
        .collect();
    let refs: Vec<(&str, &[u8])> = many
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let (status, task) = upload(&s, w, "?async=true", &refs);
    assert_eq!(status, 202, "{task}");
    let id = task["id"].as_str().unwrap().to_string();
    assert!(matches!(
        task["status"].as_str(),
        Some("queued" | "running")
    ));
    let done = succeeded(&s, w, &id);
    assert_eq!(done["summary"]["added"], 300, "{done}");
    assert!(done["batches"].as_u64().unwrap() >= 1, "{done}");
    assert_eq!(documents(&s), before_tasks + 300);
    assert!(held(&s, "bulk-000.txt") && held(&s, "bulk-299.txt"));
    // Another principal sees no such task (as for one that does not exist); the admin does.
    let (status, hidden) = call(
        &s,
        "GET",
        &format!("/v1/tasks/{id}"),
        Some(&keys.reader),
        None,
    );
    assert_eq!(status, 404, "{hidden}");
    let (_, missing) = call(
        &s,
        "GET",
        "/v1/tasks/t0000000000000000",
        Some(&keys.reader),
        None,
    );
    assert_eq!(
        hidden.to_string().replace(&id, "X"),
        missing.to_string().replace("t0000000000000000", "X")
    );
    // The creator's read-only key sees the task, but may not cancel it.
    let (status, _) = call(
        &s,
        "GET",
        &format!("/v1/tasks/{id}"),
        Some(&read_only),
        None,
    );
    assert_eq!(status, 200);
    let (status, _) = call(
        &s,
        "POST",
        &format!("/v1/tasks/{id}/cancel"),
        Some(&read_only),
        None,
    );
    assert_eq!(status, 404);
    let (_, all) = call(&s, "GET", "/v1/tasks", Some(&keys.admin), None);
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == id.as_str())
    );
    assert_eq!(
        call(&s, "GET", "/v1/tasks", Some(&keys.reader), None).1,
        json!([])
    );

    // Cancel: a second task behind a long one is cancelled while queued, and a running one
    // stops between batches; neither runs its full sync's deletions.
    let big: String = (0..100_000)
        .map(|i| format!("{{\"_id\":\"big-{i:05}\",\"text\":\"Big page {i} on lunar soil.\"}}\n"))
        .collect();
    let (_, running) = upload(
        &s,
        w,
        "?async=true&full_sync=true",
        &[("big.jsonl", big.as_bytes())],
    );
    let (_, queued) = upload(&s, w, "?async=true&full_sync=true", &refs[..10]);
    assert_eq!(queued["status"], "queued", "{queued}");
    // Two more behind it: tasks run one at a time in the order they were created, whichever
    // request's runner the scheduler happens to poll first.
    let later: Vec<String> = (0..2)
        .map(|i| {
            let name = format!("later-{i}.txt");
            let (_, t) = upload(
                &s,
                w,
                "?async=true",
                &[(name.as_str(), b"A later page on comet tails.".as_slice())],
            );
            assert_eq!(t["status"], "queued", "{t}");
            t["id"].as_str().unwrap().to_string()
        })
        .collect();
    let queued_id = queued["id"].as_str().unwrap();
    let (status, cancelled) = call(
        &s,
        "POST",
        &format!("/v1/tasks/{queued_id}/cancel"),
        Some(w),
        None,
    );
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "canceled", "{cancelled}");
    let running_id = running["id"].as_str().unwrap().to_string();
    assert!(eventually(60, || {
        call(&s, "GET", &format!("/v1/tasks/{running_id}"), Some(w), None).1["status"] == "running"
    }));
    call(
        &s,
        "POST",
        &format!("/v1/tasks/{running_id}/cancel"),
        Some(w),
        None,
    );
    let mut stopped = Value::Null;
    assert!(
        eventually(120, || {
            stopped = call(&s, "GET", &format!("/v1/tasks/{running_id}"), Some(w), None).1;
            stopped["status"] == "canceled"
        }),
        "{stopped}"
    );
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
        let done = succeeded(&s, w, id);
        assert_eq!(done["summary"]["added"], 1, "{done}");
        seqs.push(done["seq"].as_u64().unwrap());
    }
    assert!(seqs.windows(2).all(|p| p[0] < p[1]), "{seqs:?}");
    // What was acknowledged stays, and so does everything the full sync would have deleted.
    assert_eq!(documents(&s), before_tasks + 300 + written + 2);
    assert!(held(&s, "bulk-000.txt") && held(&s, "faq.md"));

    // Deletes: one id (again: nothing, still 200), ids, and a filter.
    let (status, one) = call(
        &s,
        "DELETE",
        "/v1/domains/scratch/documents/faq.md",
        Some(w),
        None,
    );
    assert_eq!((status, one["deleted"].as_u64()), (200, Some(1)), "{one}");
    let (status, again) = call(
        &s,
        "DELETE",
        "/v1/domains/scratch/documents/faq.md",
        Some(w),
        None,
    );
    assert_eq!(
        (status, again["deleted"].as_u64()),
        (200, Some(0)),
        "{again}"
    );
    let (_, gone) = call(
        &s,
        "GET",
        "/v1/domains/scratch/documents/faq.md",
        Some(w),
        None,
    );
    assert_eq!(gone["error"]["code"], "not_found", "{gone}");
    let ingest = json!({"documents": [
        {"id": "p1", "text": "Red planet poster", "attributes": {"vendor": "Acme", "price": 10}},
        {"id": "p2", "text": "Red planet mug", "attributes": {"vendor": "Acme", "price": 30}},
        {"id": "p3", "text": "Red planet cap", "attributes": {"vendor": "Zenith", "price": 20}}
    ]});
    call(
        &s,
        "POST",
        "/v1/domains/scratch/documents",
        Some(w),
        Some(&ingest.to_string()),
    );
    let (status, by_filter) = call(
        &s,
        "POST",
        "/v1/domains/scratch/delete",
        Some(w),
        Some(r#"{"filter":"vendor = \"acme\" AND price > 5"}"#),
    );
    assert_eq!(status, 200, "{by_filter}");
    assert_eq!(by_filter["deleted"], 2, "{by_filter}");
    let body = json!({"query": "red planet", "domains": ["scratch"], "mode": "bm25", "min_seq": {"scratch": by_filter["seq"]}});
    let (_, left) = call(&s, "POST", "/v1/search", Some(w), Some(&body.to_string()));
    let left: Vec<&str> = left["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["doc_id"].as_str().unwrap())
        .collect();
    assert_eq!(left, vec!["p3"]);
    for (body, want) in [
        (r#"{"filter":"vendor = "}"#, "filter:"),
        (
            r#"{"ids":["p3"],"filter":"price > 1"}"#,
            "either `ids` or `filter`",
        ),
        (r#"{}"#, "either `ids` or `filter`"),
        (r#"{"ids":[""]}"#, "ids[0]:"),
    ] {
        let (status, reply) = call(
            &s,
            "POST",
            "/v1/domains/scratch/delete",
            Some(w),
            Some(body),
        );
        assert_eq!(status, 400, "{body}: {reply}");
        assert!(
            reply["error"]["message"].as_str().unwrap().contains(want),
            "{reply}"
        );
    }
    let (status, _) = call(
        &s,
        "POST",
        "/v1/domains/scratch/delete",
        Some(&keys.reader),
        Some(r#"{"ids":["p3"]}"#),
    );
    assert_eq!(status, 404, "a reader of help cannot see scratch");

    // gRPC: the same upload, a task, deletes.
    let rt = runtime();
    rt.block_on(async {
        let mut ingest = IngestClient::new(channel(&s).await);
        let done = ingest
            .upload_files(with_key(
                pb::UploadFilesRequest {
                    domain: "scratch".into(),
                    files: vec![pb::UploadedFile {
                        name: "grpc.md".into(),
                        content: b"# Satellite\n\nSatellite dishes over gRPC.".to_vec(),
                        format: String::new(),
                    }],
                    ..Default::default()
                },
                Some(w),
            ))
            .await
            .unwrap()
            .into_inner();
        let Some(pb::upload_files_response::Outcome::SummaryJson(summary)) = done.outcome else {
            panic!("a summary: {done:?}")
        };
        let summary: Value = serde_json::from_str(&summary).unwrap();
        assert_eq!(summary["added"], 1, "{summary}");
        let started = ingest
            .upload_files(with_key(
                pb::UploadFilesRequest {
                    domain: "scratch".into(),
                    files: vec![pb::UploadedFile {
                        name: "later".into(),
                        content: b"Telescope text.".to_vec(),
                        format: "text".into(),
                    }],
                    background: true,
                    ..Default::default()
                },
                Some(w),
            ))
            .await
            .unwrap()
            .into_inner();
        let Some(pb::upload_files_response::Outcome::Task(task)) = started.outcome else {
            panic!("a task: {started:?}")
        };
        let mut status = String::new();
        for _ in 0..600 {
            let t = ingest
                .get_task(with_key(
                    pb::TaskRequest {
                        id: task.id.clone(),
                    },
                    Some(w),
                ))
                .await
                .unwrap()
                .into_inner();
            status = t.status;
            if status == "succeeded" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(status, "succeeded");
        let deleted = ingest
            .delete_documents(with_key(
                pb::DeleteDocumentsRequest {
                    domain: "scratch".into(),
                    ids: vec!["grpc.md".into(), "later".into(), "never".into()],
                    filter: String::new(),
                },
                Some(w),
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(deleted.deleted, 2);
        let e = ingest
            .delete_documents(with_key(
                pb::DeleteDocumentsRequest {
                    domain: "scratch".into(),
                    ids: vec![],
                    filter: "price >".into(),
                },
                Some(w),
            ))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().starts_with("filter:"), "{}", e.message());
    });
}
