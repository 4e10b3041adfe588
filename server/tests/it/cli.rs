//! The `dartmouth` binary end to end, with the deterministic embedder (the real model is
//! exercised by eval's tests).

use std::ffi::OsStr;
use std::fmt::Debug;
use std::path::Path;
use std::process::{Command, Output};

fn dartmouth<S: AsRef<OsStr>>(data: &Path, args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dartmouth"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .unwrap()
}

fn ok<S: AsRef<OsStr> + Debug>(data: &Path, args: &[S]) -> String {
    let out = dartmouth(data, args);
    assert!(
        out.status.success(),
        "dartmouth {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails<S: AsRef<OsStr> + Debug>(data: &Path, args: &[S]) -> String {
    let out = dartmouth(data, args);
    assert!(!out.status.success(), "dartmouth {args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn create_index_search_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sample/help-centre");
    ok(&data, &["domain", "create", "help", "--embedder", "fake"]);
    assert!(
        fails(&data, &["domain", "create", "help", "--embedder", "fake"])
            .contains("already exists")
    );
    assert_eq!(ok(&data, &["domain", "list"]).trim(), "help");

    let summary = ok(
        &data,
        &[
            "index",
            "--domain",
            "help",
            sample.to_str().unwrap(),
            "--json",
        ],
    );
    let summary: serde_json::Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(summary["documents"], 5);
    let stats: serde_json::Value =
        serde_json::from_str(&ok(&data, &["domain", "stats", "help", "--json"])).unwrap();
    assert_eq!(stats["documents"], 5);

    for mode in ["bm25", "vector", "hybrid"] {
        let out = ok(
            &data,
            &[
                "search",
                "--domain",
                "help",
                "--mode",
                mode,
                "-k",
                "3",
                "--json",
                "are sale items final sale",
            ],
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let hits = v["hits"].as_array().unwrap();
        assert!(!hits.is_empty(), "{mode}");
        assert_eq!(hits[0]["doc_id"], "returns.md", "{mode}: {out}");
        assert_eq!(hits[0]["domain"], "help");
        // The hit is the HTTP hit, field for field.
        for key in [
            "chunk_id", "score", "title", "text", "snippet", "bm25", "vector",
        ] {
            assert!(hits[0].get(key).is_some(), "{key} missing");
        }
        match mode {
            "bm25" => assert!(hits[0]["bm25"]["rank"].is_u64() && hits[0]["vector"].is_null()),
            "vector" => assert!(hits[0]["vector"]["rank"].is_u64() && hits[0]["bm25"].is_null()),
            _ => assert!(hits[0]["bm25"]["rank"].is_u64() || hits[0]["vector"]["rank"].is_u64()),
        }
        assert!(v["total"]["chunks"].is_u64(), "{out}");
    }
    let human = ok(&data, &["search", "--domain", "help", "express shipping"]);
    assert!(human.contains("Shipping"), "{human}");

    // --queries: one JSON line per query, hits collapsed to documents.
    let queries = tmp.path().join("q.jsonl");
    std::fs::write(&queries, "{\"_id\":\"q1\",\"text\":\"return sale items\"}\n{\"_id\":\"q2\",\"text\":\"organic cotton washing\"}\n").unwrap();
    let out = ok(
        &data,
        &[
            "search",
            "--domain",
            "help",
            "--queries",
            queries.to_str().unwrap(),
            "--json",
            "-k",
            "5",
        ],
    );
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["query_id"], "q2");
    let docs: Vec<&str> = lines[0]["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["doc_id"].as_str().unwrap())
        .collect();
    let unique: std::collections::HashSet<_> = docs.iter().collect();
    assert_eq!(unique.len(), docs.len(), "{docs:?}");

    // Errors name the input and the place, and exit non-zero.
    assert!(
        fails(&data, &["search", "--domain", "nope", "x"]).contains("domain `nope` does not exist")
    );
    let bad = tmp.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"_id\":\"1\",\"text\":\"fine\"}\n{\"text\":\"no id\"}\n",
    )
    .unwrap();
    let err = fails(&data, &["index", "--domain", "help", bad.to_str().unwrap()]);
    assert!(err.contains("bad.jsonl:2: missing field `_id`"), "{err}");
    let err = fails(&data, &["index", "--domain", "help", "/no/such/file.jsonl"]);
    assert!(err.contains("/no/such/file.jsonl"), "{err}");
    let empty = tmp.path().join("empty.jsonl");
    std::fs::write(&empty, "\n").unwrap();
    assert!(
        fails(
            &data,
            &["index", "--domain", "help", empty.to_str().unwrap()]
        )
        .contains("no documents")
    );
    assert!(fails(&data, &["search", "--domain", "help", ""]).contains("empty"));
    assert!(
        fails(
            &data,
            &["search", "--domain", "help", "--filter", "price <", "x"]
        )
        .contains("filter")
    );

    ok(&data, &["domain", "delete", "help"]);
    assert_eq!(ok(&data, &["domain", "list"]).trim(), "");
}

#[test]
fn domains_are_access_controlled_through_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sample/help-centre");
    let sample = sample.to_str().unwrap();
    ok(
        &data,
        &[
            "domain",
            "create",
            "kb",
            "--embedder",
            "fake",
            "--description",
            "Help centre",
        ],
    );
    ok(&data, &["domain", "create", "secret", "--embedder", "fake"]);
    ok(&data, &["index", "--domain", "kb", sample]);
    ok(&data, &["index", "--domain", "secret", sample]);
    ok(&data, &["principal", "create", "agent", "--kind", "agent"]);
    ok(&data, &["grant", "agent", "kb", "read"]);

    let query = ["search", "--json", "-k", "3", "--domain"];
    let mine = ok(
        &data,
        &[&["--as", "agent"], &query[..], &["kb", "refund"]].concat(),
    );
    let hits: serde_json::Value = serde_json::from_str(&mine).unwrap();
    assert!(!hits["hits"].as_array().unwrap().is_empty());
    // Another domain's content is indistinguishable from a domain that does not exist.
    let hidden = fails(
        &data,
        &[&["--as", "agent"], &query[..], &["secret", "refund"]].concat(),
    );
    let absent = fails(
        &data,
        &[&["--as", "agent"], &query[..], &["nope", "refund"]].concat(),
    );
    assert_eq!(hidden.replace("secret", "X"), absent.replace("nope", "X"));
    assert!(!hidden.contains("permission"), "{hidden}");
    // A reader cannot write, and cannot administer.
    assert!(
        fails(&data, &["--as", "agent", "index", "--domain", "kb", sample])
            .contains("principal `agent` may not write to kb")
    );
    assert!(
        !fails(
            &data,
            &["--as", "agent", "grant", "agent", "secret", "read"]
        )
        .is_empty()
    );
    assert_eq!(
        ok(&data, &["--as", "agent", "domain", "list", "--json"]).trim(),
        r#"{"domains":["kb"]}"#
    );
    assert!(
        fails(&data, &["--as", "nobody", "domain", "list"])
            .contains("principal `nobody` does not exist")
    );

    // Keys: shown once, listed by id, revocable.
    let secret = ok(
        &data,
        &[
            "key",
            "create",
            "--principal",
            "agent",
            "--expires-in",
            "1d",
        ],
    );
    let secret = secret.trim();
    assert!(secret.starts_with("dk_") && secret.len() == 67, "{secret}");
    let listed = ok(&data, &["key", "list"]);
    assert!(listed.contains(&secret[..11]) && !listed.contains(secret));
    ok(&data, &["key", "revoke", &secret[..11]]);
    assert!(ok(&data, &["key", "list"]).contains("revoked"));

    // Rebuilding from the store gives the same shard and the same answers.
    let before = ok(&data, &[&query[..], &["kb", "refund"]].concat());
    let rebuilt = ok(&data, &["reindex", "--domain", "kb"]);
    assert!(rebuilt.contains("5 documents"), "{rebuilt}");
    let after = ok(&data, &[&query[..], &["kb", "refund"]].concat());
    let ids = |s: &str| -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(s).unwrap();
        v["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["chunk_id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&before), ids(&after));
    // A shard lost from disk is rebuilt from the changelog on next use.
    std::fs::remove_dir_all(data.join("shards/kb")).unwrap();
    assert_eq!(
        ids(&ok(&data, &[&query[..], &["kb", "refund"]].concat())),
        ids(&before)
    );

    // The audit shows the admin actions and the refusals.
    let audit = ok(&data, &["audit", "--since", "1h", "--json"]);
    assert!(audit.contains(r#""action":"grant""#));
    assert!(
        audit
            .lines()
            .any(|l| l.contains(r#""outcome":"denied""#) && l.contains(r#""target":"secret""#))
    );
    assert!(fails(&data, &["--as", "agent", "audit"]).contains("admin"));
    assert!(fails(&data, &["audit", "--since", "5 minutes"]).contains("duration"));

    ok(&data, &["domain", "delete", "kb"]);
    assert!(!ok(&data, &["domain", "list"]).contains("kb"));
    assert!(!data.join("shards/kb").exists());
}

/// The same commands on PostgreSQL (`--store postgres://…`) over TLS, the server verified in
/// full against the cluster's CA: the shards stay local, the store is the cluster. Asking for
/// no TLS from a cluster that requires it is a clear error.
#[test]
fn the_cli_runs_on_postgresql() {
    let cluster = crate::pg::PgCluster::start();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sample/help-centre");
    let sample = sample.to_str().unwrap();
    let plain = format!("{}?sslmode=disable", cluster.url);
    let refused = fails(&data, &["--store", plain.as_str(), "domain", "list"]);
    assert!(
        refused.contains("store 127.0.0.1") && refused.contains("no encryption"),
        "{refused}"
    );
    let url = cluster.verified_url();
    let on_pg = |args: &[&str]| -> Vec<String> {
        ["--store", url.as_str()]
            .iter()
            .chain(args)
            .map(|s| (*s).to_string())
            .collect()
    };
    ok(
        &data,
        &on_pg(&["domain", "create", "kb", "--embedder", "fake"]),
    );
    ok(
        &data,
        &on_pg(&["domain", "create", "secret", "--embedder", "fake"]),
    );
    let listed = ok(&data, &on_pg(&["domain", "list"]));
    let names: Vec<&str> = listed.lines().map(str::trim).collect();
    assert_eq!(names, ["kb", "secret"]);
    assert!(
        !data.join("store.sqlite3").exists(),
        "the SQLite store was used"
    );
    ok(&data, &on_pg(&["index", "--domain", "kb", sample]));
    ok(
        &data,
        &on_pg(&["principal", "create", "agent", "--kind", "agent"]),
    );
    ok(&data, &on_pg(&["grant", "agent", "kb", "read"]));
    let search = |domain: &str| -> Vec<String> {
        on_pg(&[
            "--as", "agent", "search", "--json", "--domain", domain, "refund",
        ])
    };
    let hits: serde_json::Value = serde_json::from_str(&ok(&data, &search("kb"))).unwrap();
    assert!(!hits["hits"].as_array().unwrap().is_empty());
    let hidden = fails(&data, &search("secret"));
    let absent = fails(&data, &search("nope"));
    assert_eq!(hidden.replace("secret", "X"), absent.replace("nope", "X"));
    // The shard is a view: lose it, and it is rebuilt from the cluster.
    std::fs::remove_dir_all(data.join("shards/kb")).unwrap();
    ok(&data, &on_pg(&["reindex", "--domain", "kb"]));
    let again: serde_json::Value = serde_json::from_str(&ok(&data, &search("kb"))).unwrap();
    assert_eq!(again["hits"], hits["hits"]);
    assert!(ok(&data, &on_pg(&["audit", "--since", "1h"])).contains("denied"));
}

fn shopify(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/datasets/shopify")
        .join(rel)
        .to_str()
        .unwrap()
        .to_string()
}

fn json_out<S: AsRef<OsStr> + Debug>(data: &Path, args: &[S]) -> serde_json::Value {
    serde_json::from_str(&ok(data, args)).unwrap()
}

fn doc_ids(v: &serde_json::Value) -> Vec<String> {
    v["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["doc_id"].as_str().unwrap().to_string())
        .collect()
}

/// The Shopify workflow of the indexer issue through the binary: detected formats, an
/// idempotent rerun, filters and facets, an inventory webhook, `--strict`, `--full-sync` and
/// `domain stats`.
#[test]
fn shopify_catalog_sync() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ok(&data, &["domain", "create", "store", "--embedder", "fake"]);
    let catalog = shopify("admin_rest/products_united_by_blue_demo.json");
    let s = json_out(&data, &["index", "--domain", "store", &catalog, "--json"]);
    assert_eq!(
        (s["added"].as_u64(), s["failed_count"].as_u64()),
        (Some(25), Some(0))
    );
    let s = json_out(&data, &["index", "--domain", "store", &catalog, "--json"]);
    assert_eq!(
        (s["unchanged"].as_u64(), s["embedded_chunks"].as_u64()),
        (Some(25), Some(0))
    );

    // Ayres Chambray (8557565018278) has size M at 0 units: not "available in M" until restocked.
    let query = [
        "search",
        "--domain",
        "store",
        "--filter",
        "size = \"M\" AND in_stock = true AND price <= 100",
        "--facets",
        "vendor,product_type",
        "--collapse",
        "-k",
        "50",
        "--json",
        "shirt",
    ];
    let before = json_out(&data, &query);
    assert!(!doc_ids(&before).contains(&"8557565018278".to_string()));
    assert_eq!(before["facets"]["vendor"][0]["value"], "United By Blue");
    let hook = tmp.path().join("inventory_levels_update.json");
    std::fs::write(
        &hook,
        r#"{"inventory_item_id": 48717909655718, "location_id": 1, "available": 5}"#,
    )
    .unwrap();
    let s = json_out(
        &data,
        &[
            "index",
            "--domain",
            "store",
            "--webhook",
            hook.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(
        (s["updated"].as_u64(), s["embedded_chunks"].as_u64()),
        (Some(1), Some(0))
    );
    let after = json_out(&data, &query);
    assert!(doc_ids(&after).contains(&"8557565018278".to_string()));

    // A malformed record under --strict writes nothing; without it the rest is written and
    // the command fails naming the record.
    let bad = tmp.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"[{"id": 1, "title": "Mug", "handle": "mug", "variants": [{"id": 2, "price": "4.00"}]},
            {"id": 3, "title": "Cup", "handle": "cup", "variants": [{"id": 4, "price": "four"}]}]"#,
    )
    .unwrap();
    let err = fails(
        &data,
        &[
            "index",
            "--domain",
            "store",
            "--strict",
            bad.to_str().unwrap(),
        ],
    );
    assert!(
        err.contains("bad.json: products[1]: variant 1: field `price`"),
        "{err}"
    );
    assert!(err.contains("nothing was written"), "{err}");
    let stats = json_out(&data, &["domain", "stats", "store", "--json"]);
    assert_eq!(stats["documents"], 25);
    assert_eq!(stats["variants"], 96);
    assert!(stats["last_sync"].as_str().unwrap().ends_with('Z'));
    let err = fails(
        &data,
        &["index", "--domain", "store", bad.to_str().unwrap()],
    );
    assert!(err.contains("1 records failed"), "{err}");
    assert_eq!(
        json_out(&data, &["domain", "stats", "store", "--json"])["documents"],
        26
    );

    // A full sync from the CSV template leaves exactly its three products.
    let s = json_out(
        &data,
        &[
            "index",
            "--domain",
            "store",
            "--full-sync",
            &shopify("csv/product_template_official.csv"),
            "--json",
        ],
    );
    assert_eq!(
        (s["added"].as_u64(), s["deleted"].as_u64()),
        (Some(3), Some(26))
    );
    let stats = json_out(&data, &["domain", "stats", "store", "--json"]);
    assert_eq!(
        (stats["documents"].as_u64(), stats["variants"].as_u64()),
        (Some(3), Some(16))
    );
    // A file whose format cannot be told is refused naming it.
    let odd = tmp.path().join("catalog.xml");
    std::fs::write(&odd, "<x/>").unwrap();
    let err = fails(
        &data,
        &["index", "--domain", "store", odd.to_str().unwrap()],
    );
    assert!(err.contains("catalog.xml: cannot tell the format"), "{err}");
}
