//! The hardening issue's defects, each as a test that fails on the code before it: a write the
//! store accepts and a shard refuses, a credential that mints a wider one (in `serve.rs`'s
//! matrix), a deleted domain served again, a shard ahead of its store, unbounded inputs,
//! unescaped snippets, replayed and late webhooks, NUL on PostgreSQL. Real servers on
//! loopback, real stores (SQLite; a throwaway PostgreSQL), the deterministic embedder.

use std::path::Path;
use std::time::Duration;

use crate::support::*;
use dartmouth_server::proto as pb;
use dartmouth_server::proto::ingest_client::IngestClient;
use serde_json::{Value, json};

/// A data directory with domain `kb` (fake embedder), `writer` (write) and `reader` (read).
fn data_with_kb(dir: &Path) -> (std::path::PathBuf, String, String) {
    let data = dir.join("data");
    cli(&data, &["domain", "create", "kb", "--embedder", "fake"]);
    for (p, role) in [("writer", "write"), ("reader", "read")] {
        cli(&data, &["principal", "create", p, "--kind", "agent"]);
        cli(&data, &["grant", p, "kb", role]);
    }
    let writer = key_for(&data, "writer");
    let reader = key_for(&data, "reader");
    (data, writer, reader)
}

fn ingest(s: &Server, key: &str, domain: &str, docs: Value) -> (u16, Value) {
    call(
        s,
        "POST",
        &format!("/v1/domains/{domain}/documents"),
        Some(key),
        Some(&json!({ "documents": docs }).to_string()),
    )
}

/// The doc ids a search finds (reading its own writes up to `seq` when given).
fn found(s: &Server, key: &str, domain: &str, query: &str, seq: Option<&Value>) -> Vec<String> {
    let mut body = json!({"query": query, "domains": [domain], "mode": "bm25", "k": 20});
    if let Some(seq) = seq {
        body["min_seq"] = json!({ domain: seq });
    }
    let (status, out) = call(s, "POST", "/v1/search", Some(key), Some(&body.to_string()));
    assert_eq!(status, 200, "{body}: {out}");
    out["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["doc_id"].as_str().unwrap().to_string())
        .collect()
}

/// A product whose one option has a 125-character name (Shopify allows 255).
fn long_option_product(id: u64, updated_at: &str) -> Value {
    json!({
        "id": id, "title": "Long option mug", "handle": format!("mug-{id}"), "vendor": "Acme",
        "updated_at": updated_at,
        "options": [{"name": "O".repeat(125), "values": ["Small"]}],
        "variants": [{"id": id + 1, "price": "9.00", "option1": "Small", "inventory_item_id": id + 2}]
    })
}

#[test]
fn a_write_a_shard_would_refuse_is_refused_before_the_store_on_every_path() {
    let dir = tempfile::tempdir().unwrap();
    let (data, writer, reader) = data_with_kb(dir.path());
    let hook = format!("kb=writer={SHOPIFY_SECRET_ENV}");
    let s = start_on(&data, &["--shopify-webhook", &hook, "--ip-rate-limit", "0"]);

    // Each bad document rides with a good one: the request is refused whole, nothing stored.
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "an empty attribute name",
            json!({"id": "p1", "text": "hi", "attributes": {"": "x"}}),
            "attributes[\"\"]",
        ),
        (
            "an id with a tab",
            json!({"id": "a\tb", "text": "hi"}),
            "id",
        ),
        (
            "an id of 300 × é (600 bytes)",
            json!({"id": "é".repeat(300), "text": "hi"}),
            "id",
        ),
        (
            "a 1,100-byte attribute",
            json!({"id": "p1", "text": "hi", "attributes": {"k": "v".repeat(1100)}}),
            "attributes[\"k\"]",
        ),
        (
            "a 130-byte attribute name",
            json!({"id": "p1", "text": "hi", "attributes": {"n".repeat(130): 1}}),
            "attributes[",
        ),
        (
            "NUL in a title",
            json!({"id": "p1", "title": "a\u{0}b", "text": "hi"}),
            "title",
        ),
        (
            "NUL in the text",
            json!({"id": "p1", "text": "h\u{0}i"}),
            "text",
        ),
        (
            "NUL in an attribute value",
            json!({"id": "p1", "text": "hi", "attributes": {"k": "\u{0}"}}),
            "attributes[\"k\"]",
        ),
        (
            "a url with a space",
            json!({"id": "p1", "text": "hi", "url": "https://x.test/a b"}),
            "url",
        ),
    ];
    let rt = runtime();
    for (i, (what, bad, field)) in cases.iter().enumerate() {
        let good = json!({"id": format!("good-{i}"), "text": "a good page"});
        let (status, reply) = ingest(&s, &writer, "kb", json!([good, bad]));
        assert_eq!(status, 400, "{what}: {reply}");
        let message = reply["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("documents[1]") && message.contains(field),
            "{what}: {message}"
        );
        for id in [format!("good-{i}"), "p1".to_string()] {
            let (status, _) = call(
                &s,
                "GET",
                &format!("/v1/domains/kb/documents/{id}"),
                Some(&reader),
                None,
            );
            assert_eq!(status, 404, "{what}: {id} was stored");
        }
        // The same over gRPC.
        let status = rt.block_on(async {
            IngestClient::new(channel(&s).await)
                .index_documents(with_key(
                    pb::IndexDocumentsRequest {
                        domain: "kb".into(),
                        documents: vec![pb::IngestDocument {
                            id: bad["id"].as_str().unwrap().into(),
                            title: bad["title"].as_str().unwrap_or("").into(),
                            text: bad["text"].as_str().unwrap().into(),
                            url: bad["url"].as_str().map(str::to_string),
                            attributes_json: bad
                                .get("attributes")
                                .map(Value::to_string)
                                .unwrap_or_default(),
                        }],
                    },
                    Some(&writer),
                ))
                .await
                .unwrap_err()
        });
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{what}");
        assert!(status.message().contains(field), "{what}: {status:?}");
    }

    // The domain takes writes as before, and what it serves is safe to render.
    let (status, ack) = ingest(
        &s,
        &writer,
        "kb",
        json!([{"id": "policy", "title": "Policy <b>", "text": "<script>alert(1)</script> Our refund policy & \"terms\"."}]),
    );
    assert_eq!(status, 200, "{ack}");
    let body = json!({"query": "refund policy", "domains": ["kb"], "min_seq": {"kb": ack["seq"]}});
    let (status, out) = call(
        &s,
        "POST",
        "/v1/search",
        Some(&reader),
        Some(&body.to_string()),
    );
    assert_eq!(status, 200, "{out}");
    let snippet = out["hits"][0]["snippet"].as_str().unwrap();
    assert!(
        snippet.contains("&lt;script&gt;alert(1)&lt;/script&gt;")
            && snippet.contains("<em>refund</em> <em>policy</em> &amp; &quot;terms&quot;"),
        "{snippet}"
    );
    assert!(
        !snippet
            .replace("<em>", "")
            .replace("</em>", "")
            .contains('<'),
        "{snippet}"
    );
    // The hit's text stays the data it is.
    assert!(
        out["hits"][0]["text"]
            .as_str()
            .unwrap()
            .contains("<script>")
    );

    // A real Shopify product with a 125-character option name: uploaded and by webhook.
    let (status, up) = call(
        &s,
        "POST",
        "/v1/domains/kb/shopify",
        Some(&writer),
        Some(&json!({"products": [long_option_product(5001, "2024-01-01T00:00:00Z")]}).to_string()),
    );
    assert_eq!(status, 200, "{up}");
    assert_eq!(up["added"], 1, "{up}");
    let (status, hooked) = webhook(
        &s,
        "kb",
        "products/update",
        &long_option_product(6001, "2024-01-01T00:00:00Z"),
    );
    assert_eq!(status, 200, "{hooked}");
    assert_eq!(hooked["added"], 1, "{hooked}");
    let ids = found(&s, &reader, "kb", "long option mug", Some(&hooked["seq"]));
    assert!(
        ids.contains(&"5001".to_string()) && ids.contains(&"6001".to_string()),
        "{ids:?}"
    );
    let (status, ack) = ingest(
        &s,
        &writer,
        "kb",
        json!([{"id": "after", "text": "still writable"}]),
    );
    assert_eq!(status, 200, "{ack}");
    assert_eq!(
        found(&s, &reader, "kb", "writable", Some(&ack["seq"])),
        ["after"]
    );
    s.kill();

    // The CLI: a bad record fails alone, named with its line and field; the rest is stored.
    let corpus = dir.path().join("corpus.jsonl");
    std::fs::write(
        &corpus,
        "{\"_id\":\"cli-good\",\"title\":\"Good\",\"text\":\"zanzibar ferries\"}\n\
         {\"_id\":\"cli\\tbad\",\"title\":\"Bad\",\"text\":\"zanzibar\"}\n",
    )
    .unwrap();
    let (ok, out, err) = cli_run(
        &data,
        &["index", "--domain", "kb", corpus.to_str().unwrap()],
    );
    assert!(!ok, "a failed record makes the run fail: {out}");
    assert!(
        format!("{out}{err}").contains("corpus.jsonl:2") && format!("{out}{err}").contains("id"),
        "{out}{err}"
    );
    let out = cli(
        &data,
        &[
            "search", "--domain", "kb", "--mode", "bm25", "--json", "zanzibar",
        ],
    );
    assert!(
        out.contains("cli-good") && !out.contains("cli\\tbad"),
        "{out}"
    );
    // And the domain rebuilds from its store.
    let out = cli(&data, &["reindex", "--domain", "kb"]);
    assert!(out.contains("rebuilt kb"), "{out}");
}

/// Writes rows straight into the SQLite store that no writer would have accepted: a document
/// with an empty attribute name, and one whose id has a tab and whose vector has 3 numbers.
fn poison(data: &Path) {
    use sqlx::Row;
    let rt = runtime();
    rt.block_on(async {
        let url = format!("sqlite://{}", data.join("store.sqlite3").display());
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        let mut tx = pool.begin().await.unwrap();
        let row = sqlx::query("SELECT id, settings FROM domains WHERE name = 'kb'")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        let domain: i64 = row.get("id");
        let settings: Value = serde_json::from_str(row.get::<&str, _>("settings")).unwrap();
        let dim = settings["model"]["dim"].as_u64().unwrap() as usize;
        let last: i64 = sqlx::query(
            "UPDATE domains SET last_seq = last_seq + 2 WHERE id = $1 RETURNING last_seq",
        )
        .bind(domain)
        .fetch_one(&mut *tx)
        .await
        .unwrap()
        .get("last_seq");
        let rows: [(&str, &str, usize, i64); 2] = [
            ("bad-attr", r#"{"":[{"k":"x"}]}"#, dim, last - 1),
            ("bad\tid", "{}", 3, last),
        ];
        for (id, attributes, n, seq) in rows {
            sqlx::query(
                "INSERT INTO documents (domain_id, external_id, content_hash, title, url, attributes, seq) \
                 VALUES ($1, $2, 'x', 'Poison', NULL, $3, $4)",
            )
            .bind(domain)
            .bind(id)
            .bind(attributes)
            .bind(seq)
            .execute(&mut *tx)
            .await
            .unwrap();
            let vector: Vec<u8> = (0..n).flat_map(|_| 1.0f32.to_le_bytes()).collect();
            sqlx::query(
                "INSERT INTO chunks (domain_id, external_id, idx, text, char_start, char_end, heading, embedding) \
                 VALUES ($1, $2, 0, 'poisoned row', 0, 12, NULL, $3)",
            )
            .bind(domain)
            .bind(id)
            .bind(vector)
            .execute(&mut *tx)
            .await
            .unwrap();
            sqlx::query(
                "INSERT INTO changelog (domain_id, domain_seq, op, external_id, at) VALUES ($1, $2, 'upsert', $3, 0)",
            )
            .bind(domain)
            .bind(seq)
            .bind(id)
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
        pool.close().await;
    });
}

/// `min_seq` alone makes another node's write readable: node B's applier sleeps for a minute
/// (the longest interval there is), so a search on B without it does not see what node A wrote
/// (nothing else applied it there), and the same search with it does, on BM25 and on the
/// vector branch. (On the writing node a write is applied before it is acknowledged.)
#[test]
fn min_seq_reads_a_write_the_applier_has_not_applied() {
    let dir = tempfile::tempdir().unwrap();
    let (data_a, writer, reader) = data_with_kb(dir.path());
    let store = format!(
        "sqlite://{}?mode=rwc",
        data_a.join("store.sqlite3").display()
    );
    let a = start_on(&data_a, &[]);
    let b = start_on(
        &dir.path().join("b"),
        &["--store", &store, "--apply-interval-ms", "60000"],
    );
    // B's first tick is over once it answers (it built its empty shard of kb then); the next
    // is a minute away.
    let (status, ack) = ingest(
        &a,
        &writer,
        "kb",
        json!([{"id": "fresh", "text": "quokka migration season"}]),
    );
    assert_eq!(status, 200, "{ack}");
    assert_eq!(found(&a, &reader, "kb", "quokka", None), ["fresh"]);
    assert_eq!(
        found(&b, &reader, "kb", "quokka", None),
        Vec::<String>::new(),
        "node B applied the write without min_seq: this test would prove nothing"
    );
    assert_eq!(
        found(&b, &reader, "kb", "quokka", Some(&ack["seq"])),
        ["fresh"]
    );
    let (status, more) = ingest(
        &a,
        &writer,
        "kb",
        json!([{"id": "later", "text": "wombat burrows"}]),
    );
    assert_eq!(status, 200, "{more}");
    let body = json!({"query": "wombat burrows", "domains": ["kb"], "mode": "vector", "k": 1,
                      "min_seq": {"kb": more["seq"]}});
    let (status, out) = call(
        &b,
        "POST",
        "/v1/search",
        Some(&reader),
        Some(&body.to_string()),
    );
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["hits"][0]["doc_id"], "later", "{out}");
}

#[test]
fn a_stored_document_a_shard_refuses_is_quarantined_and_the_domain_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (data, writer, reader) = data_with_kb(dir.path());
    let s = start_on(&data, &["--ip-rate-limit", "0"]);
    let (status, ack) = ingest(
        &s,
        &writer,
        "kb",
        json!([{"id": "p1", "text": "first page"}]),
    );
    assert_eq!(status, 200, "{ack}");
    poison(&data);
    // Later writes are applied and searchable, over the poisoned changes.
    let (status, ack) = ingest(
        &s,
        &writer,
        "kb",
        json!([{"id": "p2", "text": "second page"}]),
    );
    assert_eq!(status, 200, "{ack}");
    assert_eq!(
        found(&s, &reader, "kb", "second", Some(&ack["seq"])),
        ["p2"]
    );
    assert_eq!(found(&s, &reader, "kb", "page", None).len(), 2);
    assert!(eventually(10, || metric(
        &s,
        "dartmouth_applier_events_total{event=\"quarantined\"}"
    ) >= 2.0));
    s.kill();

    let stats: Value =
        serde_json::from_str(&cli(&data, &["domain", "stats", "kb", "--json"])).unwrap();
    let quarantined = stats["quarantined"].as_array().unwrap();
    assert_eq!(quarantined.len(), 2, "{stats}");
    assert_eq!(quarantined[0]["external_id"], "bad\tid", "{stats}");
    assert!(
        quarantined[0]["reason"].as_str().unwrap().contains("id"),
        "{stats}"
    );
    assert_eq!(quarantined[1]["external_id"], "bad-attr", "{stats}");
    assert!(
        quarantined[1]["reason"]
            .as_str()
            .unwrap()
            .contains("attributes[\"\"]"),
        "{stats}"
    );
    let audit = cli(&data, &["audit", "--json"]);
    assert!(
        audit
            .lines()
            .any(|l| l.contains("\"action\":\"quarantine\"") && l.contains("bad-attr")),
        "{audit}"
    );
    // The domain rebuilds from its store, without the poisoned rows.
    let out = cli(&data, &["reindex", "--domain", "kb"]);
    assert!(out.contains("2 documents"), "{out}");
    // A new version of a quarantined document ends its quarantine.
    let fixed = dir.path().join("fixed.jsonl");
    std::fs::write(
        &fixed,
        "{\"_id\":\"bad-attr\",\"title\":\"Fixed\",\"text\":\"mended page\"}\n",
    )
    .unwrap();
    cli(&data, &["index", "--domain", "kb", fixed.to_str().unwrap()]);
    let stats: Value =
        serde_json::from_str(&cli(&data, &["domain", "stats", "kb", "--json"])).unwrap();
    assert_eq!(stats["quarantined"].as_array().unwrap().len(), 1, "{stats}");
    let out = cli(
        &data,
        &[
            "search", "--domain", "kb", "--mode", "bm25", "--json", "mended",
        ],
    );
    assert!(out.contains("bad-attr"), "{out}");
}

#[test]
fn a_domain_deleted_and_created_again_never_serves_the_old_content() {
    let dir = tempfile::tempdir().unwrap();
    let data_a = dir.path().join("a");
    let data_b = dir.path().join("b");
    cli(&data_a, &["domain", "create", "seed", "--embedder", "fake"]);
    let admin = key_for(&data_a, "admin");
    let store = format!(
        "sqlite://{}?mode=rwc",
        data_a.join("store.sqlite3").display()
    );
    let unlimited = ["--ip-rate-limit", "0", "--rate-limit", "0"];
    let a = start_on(&data_a, &unlimited);
    // A second node on the same store, with its own shards.
    let b = start_on(&data_b, &[&unlimited[..], &["--store", &store]].concat());
    let create = |s: &Server| {
        let (status, reply) = call(
            s,
            "POST",
            "/v1/domains",
            Some(&admin),
            Some(r#"{"name":"x","embedder":"fake"}"#),
        );
        assert_eq!(status, 201, "{reply}");
    };
    create(&a);
    let (status, old) = ingest(
        &a,
        &admin,
        "x",
        json!([{"id": "old", "text": "zebra stripes, the old secret"}]),
    );
    assert_eq!(status, 200, "{old}");
    let ask =
        json!({"query": "zebra", "domains": ["x"], "mode": "bm25", "min_seq": {"x": old["seq"]}})
            .to_string();
    let result_hits =
        |s: &Server| metric(s, "dartmouth_cache_total{cache=\"result\",outcome=\"hit\"}");
    for s in [&a, &b] {
        let cached_before = result_hits(s);
        for _ in 0..2 {
            // Twice: the second answer comes from the result cache.
            let (status, out) = call(s, "POST", "/v1/search", Some(&admin), Some(&ask));
            assert_eq!(status, 200, "{out}");
            assert_eq!(out["hits"][0]["doc_id"], "old", "{out}");
        }
        assert_eq!(
            result_hits(s),
            cached_before + 1.0,
            "the second answer is the result cache's (what the old domain's entry must not serve below)"
        );
    }
    let (status, gone) = call(&a, "DELETE", "/v1/domains/x", Some(&admin), None);
    assert_eq!(status, 200, "{gone}");
    let (status, _) = call(&b, "POST", "/v1/search", Some(&admin), Some(&ask));
    assert_eq!(status, 404, "the other node serves a deleted domain");
    create(&a);
    let (status, new) = ingest(&a, &admin, "x", json!([{"id": "new", "text": "yak wool"}]));
    assert_eq!(status, 200, "{new}");
    // The new domain's first write has the old one's sequence: the same request, the same
    // applied sequence, the same name; neither node may answer from the old one.
    assert_eq!(new["seq"], old["seq"]);
    for (node, s) in [("a", &a), ("b", &b)] {
        let (status, out) = call(s, "POST", "/v1/search", Some(&admin), Some(&ask));
        assert_eq!(status, 200, "{out}");
        assert_eq!(
            out["hits"],
            json!([]),
            "node {node} served the deleted domain: {out}"
        );
        assert_eq!(
            found(s, &admin, "x", "yak", Some(&new["seq"])),
            ["new"],
            "node {node}"
        );
        let (status, _) = call(s, "GET", "/v1/domains/x/documents/old", Some(&admin), None);
        assert_eq!(status, 404, "node {node}");
    }

    // Searches racing deletes never leave a shard of a deleted domain behind, on any node.
    for round in 0..16 {
        let name = format!("race-{round}");
        let (status, _) = call(
            &a,
            "POST",
            "/v1/domains",
            Some(&admin),
            Some(&json!({"name": name, "embedder": "fake"}).to_string()),
        );
        assert_eq!(status, 201);
        let (_, ack) = ingest(&a, &admin, &name, json!([{"id": "d", "text": "ephemeral"}]));
        let body = json!({"query": "ephemeral", "domains": [name], "min_seq": {name.as_str(): ack["seq"]}}).to_string();
        std::thread::scope(|scope| {
            for s in [&a, &b, &b] {
                let body = &body;
                let admin = &admin;
                scope.spawn(move || {
                    for _ in 0..10 {
                        let (status, out) = call(s, "POST", "/v1/search", Some(admin), Some(body));
                        assert!(status == 200 || status == 404, "{status} {out}");
                    }
                });
            }
            std::thread::sleep(Duration::from_millis(3 * round));
            let (status, _) = call(
                &a,
                "DELETE",
                &format!("/v1/domains/{name}"),
                Some(&admin),
                None,
            );
            assert_eq!(status, 200);
        });
        for data in [&data_a, &data_b] {
            let shard = data.join("shards").join(&name);
            assert!(
                eventually(5, || !shard.exists()),
                "{} outlived its domain",
                shard.display()
            );
        }
    }
}

#[test]
fn a_shard_ahead_of_its_store_is_rebuilt_not_left_skipping_writes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    cli(&data, &["domain", "create", "kb", "--embedder", "fake"]);
    let docs = |name: &str, ids: &[&str]| {
        let path = dir.path().join(name);
        let lines: String = ids
            .iter()
            .map(|id| {
                format!(
                    "{}\n",
                    json!({"_id": id, "title": id, "text": format!("token{id} text")})
                )
            })
            .collect();
        std::fs::write(&path, lines).unwrap();
        path
    };
    let index = |path: &Path| {
        cli(
            &data,
            &[
                "index",
                "--domain",
                "kb",
                "--batch-docs",
                "1",
                path.to_str().unwrap(),
            ],
        );
    };
    index(&docs("first.jsonl", &["d1", "d2", "d3"]));
    // A file backup of the store, at sequence 3, taken with no process using it: the database
    // and its write-ahead log together.
    let files = ["store.sqlite3", "store.sqlite3-wal"];
    let backup = dir.path().join("backup");
    std::fs::create_dir_all(&backup).unwrap();
    for f in files {
        if data.join(f).exists() {
            std::fs::copy(data.join(f), backup.join(f)).unwrap();
        }
    }
    index(&docs("second.jsonl", &["d4", "d5"]));
    // The store is restored from the backup; the shard has applied sequence 5.
    for f in ["store.sqlite3", "store.sqlite3-wal", "store.sqlite3-shm"] {
        let _ = std::fs::remove_file(data.join(f));
    }
    for f in files {
        if backup.join(f).exists() {
            std::fs::copy(backup.join(f), data.join(f)).unwrap();
        }
    }
    // The next write takes sequence 4: a shard that kept its own sequence would skip it.
    index(&docs("third.jsonl", &["fresh"]));
    let search = |q: &str| {
        cli(
            &data,
            &["search", "--domain", "kb", "--mode", "bm25", "--json", q],
        )
    };
    assert!(
        search("tokenfresh").contains("\"fresh\""),
        "the new write was skipped"
    );
    assert!(
        !search("tokend5").contains("\"d5\""),
        "the shard serves writes its store lost"
    );
    assert!(search("tokend2").contains("\"d2\""));
    let stats: Value =
        serde_json::from_str(&cli(&data, &["domain", "stats", "kb", "--json"])).unwrap();
    assert_eq!(stats["documents"], 4, "{stats}");
    assert_eq!(stats["applied_seq"], stats["last_seq"], "{stats}");
}

#[test]
fn inputs_have_byte_limits_and_floods_stop_before_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let (data, writer, reader) = data_with_kb(dir.path());
    let config = dir.path().join("serve.toml");
    std::fs::write(
        &config,
        "max_batch_bytes = 4096\nmax_webhook_bytes = 2048\n",
    )
    .unwrap();
    let hook = format!("kb=writer={SHOPIFY_SECRET_ENV}");
    let s = start_on(
        &data,
        &[
            "--config",
            config.to_str().unwrap(),
            "--shopify-webhook",
            &hook,
            "--ip-rate-limit",
            "40",
        ],
    );
    let search = |body: Value| {
        call(
            &s,
            "POST",
            "/v1/search",
            Some(&reader),
            Some(&body.to_string()),
        )
    };
    let (status, reply) = search(json!({"query": "a", "facets": ["f".repeat(200)]}));
    assert_eq!(status, 400, "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("facets[0]"),
        "{reply}"
    );
    let many: Vec<String> = (0..40).map(|i| format!("f{i}")).collect();
    let (status, reply) = search(json!({"query": "a", "facets": many}));
    assert_eq!(status, 400, "{reply}");
    let (status, reply) = ingest(
        &s,
        &writer,
        "kb",
        json!([{"id": "big", "text": "x".repeat(5000)}]),
    );
    assert_eq!(status, 413, "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("documents:"),
        "{reply}"
    );
    // A webhook body over its limit is refused before its signature is computed.
    let verified = || {
        metric(
            &s,
            "dartmouth_webhook_verifications_total{outcome=\"ok\",source=\"shopify\"}",
        ) + metric(
            &s,
            "dartmouth_webhook_verifications_total{outcome=\"bad_signature\",source=\"shopify\"}",
        )
    };
    let before = verified();
    let mut big = long_option_product(7001, "2024-01-01T00:00:00Z");
    big["body_html"] = json!("y".repeat(3000));
    let (status, reply) = webhook(&s, "kb", "products/update", &big);
    assert_eq!(status, 413, "{reply}");
    assert_eq!(verified(), before);

    // A flood of bad credentials from one address: refused 401 until the address's budget is
    // spent, then 429 before authentication; the refusals are audited as one counted row.
    let mut unauthenticated = 0;
    let mut limited = 0;
    for i in 0..60 {
        let bad = format!("dk_{:064x}", i);
        let (status, _, retry) = call_full(
            &s,
            "POST",
            "/v1/search",
            Some(&bad),
            Some(r#"{"query":"a"}"#),
        );
        match status {
            401 => unauthenticated += 1,
            429 => {
                limited += 1;
                assert!(retry.is_some());
            }
            other => panic!("a bad key got {other}"),
        }
    }
    assert!(
        unauthenticated > 0 && limited > 0,
        "{unauthenticated} / {limited}"
    );
    // Webhooks from the same address are refused before their HMAC, too.
    let before = verified();
    let (status, _) = webhook(
        &s,
        "kb",
        "products/update",
        &long_option_product(7002, "2024-01-01T00:00:00Z"),
    );
    assert_eq!(status, 429);
    assert_eq!(verified(), before);
    // Written within the server's five-second flush, one row per kind of refusal.
    let counted = |audit: &str| -> Vec<Value> {
        audit
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["action"] == "authenticate" && e["detail"] == "unknown key")
            .collect()
    };
    assert!(
        eventually(15, || counted(&cli(&data, &["audit", "--json"]))
            .iter()
            .map(|e| e["count"].as_i64().unwrap())
            .sum::<i64>()
            == unauthenticated),
        "{}",
        cli(&data, &["audit", "--json"])
    );
    assert!(counted(&cli(&data, &["audit", "--json"])).len() < unauthenticated as usize);
}

#[test]
fn replayed_and_late_shopify_deliveries_never_revert_newer_state() {
    let dir = tempfile::tempdir().unwrap();
    let (data, _, reader) = data_with_kb(dir.path());
    let hook = format!("kb=writer={SHOPIFY_SECRET_ENV}");
    let s = start_on(&data, &["--shopify-webhook", &hook, "--ip-rate-limit", "0"]);
    let product = |at: &str, price: &str, quantity: i64, title: &str| {
        json!({
            "id": 9001, "title": title, "handle": "kettle", "vendor": "Acme", "updated_at": at,
            "variants": [{"id": 9002, "price": price, "inventory_item_id": 9003,
                          "inventory_management": "shopify", "inventory_quantity": quantity}]
        })
    };
    let level = |at: &str, available: i64| json!({"inventory_item_id": 9003, "location_id": 1, "available": available, "updated_at": at});
    let attributes = |seq: &Value| -> Value {
        let _ = found(&s, &reader, "kb", "kettle", Some(seq));
        let (status, doc) = call(
            &s,
            "GET",
            "/v1/domains/kb/documents/9001",
            Some(&reader),
            None,
        );
        assert_eq!(status, 200, "{doc}");
        doc["attributes"].clone()
    };
    let deliver = |topic: &str, id: &str, payload: &Value| {
        let (status, out) = webhook_delivery(&s, "kb", topic, Some(id), payload);
        assert_eq!(status, 200, "{out}");
        out
    };
    let out = deliver(
        "products/create",
        "w1",
        &product("2024-05-01T10:00:00Z", "20.00", 5, "Kettle"),
    );
    assert_eq!(out["added"], 1, "{out}");
    // The same delivery again: acknowledged, not processed.
    let out = deliver(
        "products/create",
        "w1",
        &product("2024-05-01T10:00:00Z", "20.00", 5, "Kettle"),
    );
    assert_eq!(out["duplicate"], true, "{out}");
    // An update older than the stored product is not applied.
    let out = deliver(
        "products/update",
        "w2",
        &product("2024-05-01T09:00:00-00:00", "10.00", 5, "Kettle"),
    );
    assert_eq!(out["stale"], 1, "{out}");
    let a = attributes(&out["seq"]);
    assert_eq!(a["variants"][0]["price"], json!(20), "{a}");
    // Stock sold out at 10:30; a late delivery of an older level changes nothing.
    let out = deliver(
        "inventory_levels/update",
        "w3",
        &level("2024-05-01T10:30:00Z", 0),
    );
    assert_eq!(out["updated"], 1, "{out}");
    let out = deliver(
        "inventory_levels/update",
        "w4",
        &level("2024-05-01T10:20:00Z", 7),
    );
    assert_eq!(out["stale"], 1, "{out}");
    assert_eq!(
        attributes(&out["seq"])["variants"][0]["in_stock"],
        json!(false)
    );
    // A product edit made at 10:15 (before the stock level) arrives now: the edit applies,
    // the newer stock level stays.
    let out = deliver(
        "products/update",
        "w5",
        &product("2024-05-01T10:15:00Z", "20.00", 5, "Kettle, steel"),
    );
    assert_eq!(out["updated"], 1, "{out}");
    let a = attributes(&out["seq"]);
    assert_eq!(a["variants"][0]["in_stock"], json!(false), "{a}");
    let (_, doc) = call(
        &s,
        "GET",
        "/v1/domains/kb/documents/9001",
        Some(&reader),
        None,
    );
    assert_eq!(doc["title"], "Kettle, steel");
    // One made after it carries its own stock.
    let out = deliver(
        "products/update",
        "w6",
        &product("2024-05-01T11:00:00Z", "20.00", 4, "Kettle, steel"),
    );
    assert_eq!(
        attributes(&out["seq"])["variants"][0]["in_stock"],
        json!(true)
    );
}

#[test]
fn nul_on_postgresql_is_a_client_error_naming_the_field() {
    let pg = crate::pg::PgCluster::start();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = ["--store", pg.url.as_str()];
    let with_store = |args: &[&str]| -> Vec<String> {
        store.iter().chain(args).map(|a| a.to_string()).collect()
    };
    let run = |args: &[&str]| {
        cli(
            &data,
            &with_store(args)
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        )
    };
    run(&["domain", "create", "kb", "--embedder", "fake"]);
    run(&["principal", "create", "writer", "--kind", "agent"]);
    run(&["grant", "writer", "kb", "write"]);
    let writer = run(&["key", "create", "--principal", "writer"])
        .split_whitespace()
        .find(|w| w.starts_with("dk_"))
        .unwrap()
        .to_string();
    let admin = run(&["key", "create", "--principal", "admin"])
        .split_whitespace()
        .find(|w| w.starts_with("dk_"))
        .unwrap()
        .to_string();
    let s = start_on(&data, &["--store", &pg.url, "--ip-rate-limit", "0"]);
    let nul = "a\u{0}b";
    let cases: Vec<(&str, Value, &str)> = vec![
        ("id", json!({"id": nul, "text": "t"}), "id"),
        (
            "title",
            json!({"id": "t1", "title": nul, "text": "t"}),
            "title",
        ),
        ("text", json!({"id": "t2", "text": nul}), "text"),
        ("url", json!({"id": "t3", "text": "t", "url": nul}), "url"),
        (
            "attribute name",
            json!({"id": "t4", "text": "t", "attributes": {nul: "v"}}),
            "attributes[",
        ),
        (
            "attribute value",
            json!({"id": "t5", "text": "t", "attributes": {"k": nul}}),
            "attributes[\"k\"]",
        ),
    ];
    for (what, doc, field) in cases {
        let (status, reply) = ingest(&s, &writer, "kb", json!([doc]));
        assert_eq!(status, 400, "{what}: {reply}");
        assert!(
            reply["error"]["message"].as_str().unwrap().contains(field),
            "{what}: {reply}"
        );
    }
    let posts: [(&str, &str, Value); 5] = [
        (
            "a principal",
            "/v1/principals",
            json!({"name": nul, "kind": "agent"}),
        ),
        (
            "a domain",
            "/v1/domains",
            json!({"name": nul, "embedder": "fake"}),
        ),
        (
            "a grant",
            "/v1/grants",
            json!({"principal": nul, "domain": "kb", "role": "read"}),
        ),
        ("a key", "/v1/keys", json!({"principal": nul})),
        (
            "an end user",
            "/v1/tokens/delegate",
            json!({"end_user": nul}),
        ),
    ];
    for (what, path, body) in posts {
        let (status, reply) = call(&s, "POST", path, Some(&admin), Some(&body.to_string()));
        assert_eq!(status, 400, "{what}: {reply}");
    }
    // Names that go only into lookups and the audit log: answered as missing, never 500.
    let (status, reply) = call(
        &s,
        "POST",
        "/v1/search",
        Some(&admin),
        Some(&json!({"query": "q", "domains": [nul]}).to_string()),
    );
    assert_eq!(status, 404, "{reply}");
    for path in ["/v1/keys/dk_%00", "/v1/domains/a%00b", "/v1/grants/a%00/kb"] {
        let (status, reply) = call(&s, "DELETE", path, Some(&admin), None);
        assert!(status == 404 || status == 400, "{path}: {status} {reply}");
    }
    let (status, reply) = call(
        &s,
        "GET",
        "/v1/domains/kb/documents/a%00b",
        Some(&admin),
        None,
    );
    assert_eq!(status, 400, "{reply}");
    // PostgreSQL keeps serving: a good write and its search.
    let (status, ack) = ingest(
        &s,
        &writer,
        "kb",
        json!([{"id": "ok", "text": "postgres works"}]),
    );
    assert_eq!(status, 200, "{ack}");
    assert_eq!(
        found(&s, &admin, "kb", "postgres", Some(&ack["seq"])),
        ["ok"]
    );
}
