//! Connecting a shop and syncing it over HTTP, against the local Shopify-compatible Admin API
//! of `indexer/tests/it/shop_server.rs` serving the real products of
//! `../shared/datasets/shopify/admin_rest/`: bad connections named by field, a full sync equal
//! to uploading the same catalog, an incremental sync after edits and a deletion, a failing
//! shop that changes nothing, and the token never in an answer, the store or the shards.

use serde_json::{Value, json};

use crate::shop_server::{ShopServer, TOKEN, graphql_product, real_products};
use crate::support::*;

fn finished(s: &Server, key: &str, task: &Value) -> Value {
    let id = task["id"].as_str().unwrap_or_else(|| panic!("{task}"));
    let mut last = Value::Null;
    let done = eventually(60, || {
        last = call(s, "GET", &format!("/v1/tasks/{id}"), Some(key), None).1;
        matches!(
            last["status"].as_str(),
            Some("succeeded" | "failed" | "canceled")
        )
    });
    assert!(done, "{last}");
    last
}

/// Syncs `domain`'s shop (`full` or incremental) as a task: accepted (202), then followed to
/// its end; the finished task.
fn sync(s: &Server, key: &str, domain: &str, full: bool) -> Value {
    let body = json!({ "full": full }).to_string();
    let path = format!("/v1/domains/{domain}/shopify/sync");
    let (status, task) = call(s, "POST", &path, Some(key), Some(&body));
    assert_eq!(status, 202, "{task}");
    finished(s, key, &task)
}

fn doc_texts(s: &Server, key: &str, domain: &str, ids: &[String]) -> Vec<(String, Value)> {
    ids.iter()
        .map(|id| {
            let (status, d) = call(
                s,
                "GET",
                &format!("/v1/domains/{domain}/documents/{id}"),
                Some(key),
                None,
            );
            assert_eq!(status, 200, "{domain}/{id}: {d}");
            let texts: Vec<Value> = d["chunks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| json!([c["text"], c["attributes"]]))
                .collect();
            (id.clone(), json!({"title": d["title"], "chunks": texts}))
        })
        .collect()
}

fn count(s: &Server, key: &str, domain: &str) -> u64 {
    let (_, v) = call(s, "GET", &format!("/v1/domains/{domain}"), Some(key), None);
    v["documents"].as_u64().unwrap_or_else(|| panic!("{v}"))
}

#[test]
fn a_connected_shop_syncs_full_then_incremental() {
    let (products, rest) = real_products();
    let ids: Vec<String> = products.keys().map(u64::to_string).collect();
    let shop = ShopServer::start(products);
    let host = shop.base.trim_start_matches("http://").to_string();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for d in ["store", "uploaded"] {
        cli(&data, &["domain", "create", d, "--embedder", "fake"]);
    }
    let admin = key_for(&data, "admin");
    let hook = format!("store=admin={SHOPIFY_SECRET_ENV}");
    let log = dir.path().join("server.log");
    let s = start_logged(
        &data,
        &[
            "--rate-limit",
            "0",
            "--ip-rate-limit",
            "0",
            "--shopify-webhook",
            &hook,
        ],
        &[
            ("ACME_TOKEN", TOKEN),
            ("WRONG_TOKEN", "shpat_not_the_right_one"),
            ("DARTMOUTH_SHOPIFY_PLAIN_HOSTS", host.as_str()),
            ("DARTMOUTH_SHOPIFY_POLL_MS", "20"),
            ("DARTMOUTH_SHOPIFY_BACKOFF_MS", "10"),
        ],
        &log,
    );
    let connect = |body: Value| {
        call(
            &s,
            "POST",
            "/v1/domains/store/shopify/connection",
            Some(&admin),
            Some(&body.to_string()),
        )
    };
    // Bad connections: each a 400 naming its field; nothing stored.
    for (body, starts) in [
        (
            json!({"shop": "acme.example.com", "token_env": "ACME_TOKEN"}),
            "shop:",
        ),
        (
            json!({"shop": host, "token_env": "NO_SUCH_VARIABLE_HERE"}),
            "token_env:",
        ),
        (
            json!({"shop": host, "token_env": "WRONG_TOKEN"}),
            "token_env:",
        ),
        (
            json!({"shop": host, "token_env": "ACME_TOKEN", "api_version": "2026-02"}),
            "api_version:",
        ),
        (
            json!({"shop": host, "token_env": "ACME_TOKEN", "api_version": "2025-07"}),
            "api_version:",
        ),
        (
            json!({"shop": host, "token_env": "ACME_TOKEN", "every": "30s"}),
            "every:",
        ),
        (
            json!({"shop": host, "token_env": "ACME_TOKEN", "every": "soon"}),
            "every:",
        ),
        (
            json!({"shop": host, "token_env": "ACME_TOKEN", "metafields": ["material"]}),
            "metafields:",
        ),
        (
            json!({"shop": host, "token_env": "ACME_TOKEN", "register_webhooks": "http://search.example.com"}),
            "register_webhooks:",
        ),
    ] {
        let (status, v) = connect(body.clone());
        assert_eq!(status, 400, "{body}: {v}");
        let message = v["error"]["message"].as_str().unwrap_or_default();
        assert!(message.starts_with(starts), "{body}: {v}");
        assert!(!v.to_string().contains("shpat_"), "{v}");
    }
    assert_eq!(
        call(
            &s,
            "GET",
            "/v1/domains/store/shopify/status",
            Some(&admin),
            None
        )
        .0,
        404
    );
    // Connected with a metafield and the shop's webhooks subscribed to this service; again,
    // the subscriptions exist already.
    let body = json!({"shop": host, "token_env": "ACME_TOKEN", "every": "15m",
        "metafields": ["custom.material"], "register_webhooks": "https://search.example.com/"});
    let (status, c) = connect(body.clone());
    assert_eq!(status, 200, "{c}");
    assert_eq!(
        (c["every_ms"].as_i64(), c["api_version"].as_str()),
        (Some(900_000), Some("2026-01"))
    );
    let topics = |c: &Value, outcome: &str| {
        c["webhooks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|w| w[1] == outcome)
            .count()
    };
    assert_eq!(topics(&c, "created"), 5, "{c}");
    let (status, c) = connect(body);
    assert_eq!((status, topics(&c, "existed")), (200, 5), "{c}");
    {
        let st = shop.state.lock().unwrap();
        assert_eq!(st.webhooks.len(), 5);
        assert!(
            st.webhooks
                .iter()
                .all(|(_, uri)| uri == "https://search.example.com/v1/webhooks/shopify/store")
        );
        let topics: Vec<&str> = st.webhooks.iter().map(|(t, _)| t.as_str()).collect();
        assert!(topics.contains(&"PRODUCTS_DELETE") && topics.contains(&"INVENTORY_LEVELS_UPDATE"));
    }
    assert_eq!(c["metafields"], json!(["custom.material"]));
    // A full sync: one bulk operation, the catalog streamed in.
    let done = sync(&s, &admin, "store", true);
    assert_eq!(done["status"], "succeeded", "{done}");
    let (_, st) = call(
        &s,
        "GET",
        "/v1/domains/store/shopify/status",
        Some(&admin),
        None,
    );
    assert_eq!(st["state"]["last"]["kind"], "full", "{st}");
    assert_eq!(st["state"]["last"]["added"], 27, "{st}");
    assert!(
        st["state"]["mark"].is_i64() && st["next_run"].is_i64() && st["syncing"] == false,
        "{st}"
    );
    // It equals uploading the same catalog.
    let (status, up) = call(
        &s,
        "POST",
        "/v1/domains/uploaded/shopify?format=json",
        Some(&admin),
        Some(&json!({ "products": rest }).to_string()),
    );
    assert_eq!(status, 200, "{up}");
    assert_eq!(
        doc_texts(&s, &admin, "store", &ids),
        doc_texts(&s, &admin, "uploaded", &ids)
    );
    // The shop changes: a product edited, one deleted, one's stock gone.
    let (edited, gone, stock) = (
        ids[0].parse::<u64>().unwrap(),
        ids[1].parse::<u64>().unwrap(),
        ids[2].parse::<u64>().unwrap(),
    );
    {
        let mut st = shop.state.lock().unwrap();
        let now = "2099-01-01T00:00:00Z";
        let p = st.products.get_mut(&edited).unwrap();
        p["title"] = json!("Renamed by the merchant");
        p["updatedAt"] = json!(now);
        p["collections"] = json!({"nodes": [{"title": "Summer Sale"}]});
        p["metafields"] = json!({"nodes": [
            {"namespace": "custom", "key": "material", "value": "Recycled wool"},
            {"namespace": "custom", "key": "supplier_cost", "value": "not asked for"}]});
        // The shop is busy: a tight cost budget, a 429 and a 503 on the way.
        st.budget = Some((40.0, 25.0, 400.0));
        st.fail_next_with = vec![429, 503];
        st.products.remove(&gone);
        st.deletions.push((gone, now.into()));
        let mut r = rest.iter().find(|r| r["id"] == stock).unwrap().clone();
        for v in r["variants"].as_array_mut().unwrap() {
            v["inventory_quantity"] = json!(0);
            v["inventory_management"] = json!("shopify");
        }
        r["updated_at"] = json!(now);
        st.products.insert(stock, graphql_product(&r));
    }
    assert_eq!(sync(&s, &admin, "store", false)["status"], "succeeded");
    let (_, st) = call(
        &s,
        "GET",
        "/v1/domains/store/shopify/status",
        Some(&admin),
        None,
    );
    let last = &st["state"]["last"];
    assert_eq!(last["kind"], "incremental", "{st}");
    assert_eq!(
        (last["updated"].as_u64(), last["deleted"].as_u64()),
        (Some(2), Some(1)),
        "{st}"
    );
    assert_eq!(count(&s, &admin, "store"), 26);
    let (_, d) = call(
        &s,
        "GET",
        &format!("/v1/domains/store/documents/{edited}"),
        Some(&admin),
        None,
    );
    assert_eq!(d["title"], "Renamed by the merchant", "{d}");
    let attributes = &d["attributes"];
    assert_eq!(attributes["collections"], "Summer Sale", "{d}");
    assert_eq!(
        attributes["metafield.custom.material"], "Recycled wool",
        "{d}"
    );
    assert!(!d.to_string().contains("not asked for"), "{d}");
    // Throttled and failed calls were waited for and retried; the metrics say so.
    for outcome in ["throttled", "retried"] {
        let n = metric(
            &s,
            &format!("dartmouth_shopify_api_requests_total{{outcome=\"{outcome}\"}}"),
        );
        assert!(n >= 1.0, "{outcome}: {n}");
    }
    assert_eq!(
        metric(
            &s,
            "dartmouth_shopify_syncs_total{kind=\"incremental\",outcome=\"succeeded\"}"
        ),
        1.0
    );
    shop.state.lock().unwrap().budget = None;
    let (status, _) = call(
        &s,
        "GET",
        &format!("/v1/domains/store/documents/{gone}"),
        Some(&admin),
        None,
    );
    assert_eq!(status, 404);
    let title = rest.iter().find(|r| r["id"] == stock).unwrap()["title"]
        .as_str()
        .unwrap()
        .to_string();
    let found = |filter: String| {
        let body =
            json!({"query": title, "mode": "bm25", "domains": ["store"], "filter": filter, "k": 5});
        let (_, hits) = call(
            &s,
            "POST",
            "/v1/search",
            Some(&admin),
            Some(&body.to_string()),
        );
        hits["total"]["documents"]
            .as_u64()
            .unwrap_or_else(|| panic!("{hits}"))
    };
    assert_eq!(found(format!("product_id = \"{stock}\"")), 1);
    assert_eq!(
        found(format!("product_id = \"{stock}\" AND in_stock = true")),
        0
    );
    // A shop that keeps failing: the run fails, says why, and changes nothing.
    shop.state.lock().unwrap().fail_next_with = vec![502; 40];
    let failed = sync(&s, &admin, "store", true);
    assert_eq!(failed["status"], "failed", "{failed}");
    let (_, st) = call(
        &s,
        "GET",
        "/v1/domains/store/shopify/status",
        Some(&admin),
        None,
    );
    assert!(
        st["state"]["error"]
            .as_str()
            .unwrap_or("")
            .contains("(502)"),
        "{st}"
    );
    assert_eq!(count(&s, &admin, "store"), 26);
    // Over gRPC: the same status; a full sync as a task that puts the shop back (the failing
    // shop recovered).
    shop.state.lock().unwrap().fail_next_with.clear();
    let rt = runtime();
    let (grpc_state, grpc_task) = rt.block_on(async {
        use dartmouth_server::proto::{
            self as pb, admin_client::AdminClient, ingest_client::IngestClient,
        };
        let channel = tonic::transport::Channel::from_shared(s.grpc.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let status = AdminClient::new(channel.clone())
            .get_shop_status(with_key(
                pb::DomainRequest {
                    name: "store".into(),
                },
                Some(&admin),
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (status.shop.as_str(), status.metafields.len()),
            (host.as_str(), 1)
        );
        let task = IngestClient::new(channel)
            .sync_shop(with_key(
                pb::SyncShopRequest {
                    domain: "store".into(),
                    full: true,
                },
                Some(&admin),
            ))
            .await
            .unwrap()
            .into_inner();
        (status.state_json, task.id)
    });
    assert_eq!(
        serde_json::from_str::<Value>(&grpc_state).unwrap(),
        st["state"]
    );
    let done = finished(&s, &admin, &json!({ "id": grpc_task }));
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["summary"]["unchanged"], 26, "{done}");
    // The token is in no answer, no audit entry, no file of the store or the shards.
    let (_, audit) = call(&s, "GET", "/v1/audit", Some(&admin), None);
    assert!(audit.to_string().contains("shopify-connect"));
    for v in [&audit, &st, &failed] {
        assert!(!v.to_string().contains(TOKEN), "{v}");
    }
    // Nor in a snapshot, nor in the log (at trace level).
    let (status, snapshot) = call(&s, "POST", "/v1/snapshots", Some(&admin), Some("{}"));
    assert_eq!(status, 201, "{snapshot}");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("shopify") && logged.contains("TRACE"),
        "the log is not at trace level"
    );
    let mut files = vec![data.clone(), log.clone()];
    while let Some(f) = files.pop() {
        if f.is_dir() {
            files.extend(std::fs::read_dir(&f).unwrap().map(|e| e.unwrap().path()));
        } else {
            let bytes = std::fs::read(&f).unwrap();
            assert!(
                !bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()),
                "{} holds the token",
                f.display()
            );
        }
    }
}

/// Two nodes on PostgreSQL and one scheduled shop: when its time comes both nodes see it due,
/// one syncs it (one bulk operation at the shop), the other is refused while it runs; the run
/// missed meanwhile is run once, and the next is a schedule's length later.
#[test]
fn two_nodes_never_sync_one_shop_at_once() {
    let pg = crate::pg::PgCluster::start();
    let (products, _) = real_products();
    let shop = ShopServer::start(products);
    // Slow enough that both nodes' appliers see the run due while it goes on.
    shop.state.lock().unwrap().budget = Some((1000.0, 10.0, 1000.0));
    let host = shop.base.trim_start_matches("http://").to_string();
    let dir = tempfile::tempdir().unwrap();
    let store = ["--store", pg.url.as_str()];
    let with = |args: &[&str]| {
        let all: Vec<&str> = store.iter().chain(args).copied().collect();
        cli(&dir.path().join("a"), &all)
    };
    with(&["domain", "create", "store", "--embedder", "fake"]);
    let admin = with(&["key", "create", "--principal", "admin"])
        .split_whitespace()
        .find(|w| w.starts_with("dk_"))
        .unwrap()
        .to_string();
    let env = [
        ("ACME_TOKEN", TOKEN),
        ("DARTMOUTH_SHOPIFY_PLAIN_HOSTS", host.as_str()),
        ("DARTMOUTH_SHOPIFY_POLL_MS", "300"),
        ("DARTMOUTH_SHOPIFY_BACKOFF_MS", "10"),
    ];
    let flags = [
        "--store",
        pg.url.as_str(),
        "--rate-limit",
        "0",
        "--ip-rate-limit",
        "0",
    ];
    let a = start_with_env(&dir.path().join("a"), &flags, &env);
    let b = start_with_env(&dir.path().join("b"), &flags, &env);
    let body = json!({"shop": host, "token_env": "ACME_TOKEN", "every": "1h"}).to_string();
    let (status, c) = call(
        &a,
        "POST",
        "/v1/domains/store/shopify/connection",
        Some(&admin),
        Some(&body),
    );
    assert_eq!(status, 200, "{c}");
    // Due now, on both nodes.
    let rt = runtime();
    rt.block_on(async {
        let s = dartmouth_domains::Store::open(&pg.url).await.unwrap();
        let system = s.system();
        let id = s.shop_connections(&system).await.unwrap()[0].domain_id;
        s.reschedule_shop_sync(&system, id, 0).await.unwrap();
        s.close().await;
    });
    assert!(eventually(30, || {
        call(
            &b,
            "GET",
            "/v1/domains/store/shopify/status",
            Some(&admin),
            None,
        )
        .1["syncing"]
            == true
    }));
    // While it runs, a sync asked of either node is refused.
    for node in [&a, &b] {
        let (status, v) = call(
            node,
            "POST",
            "/v1/domains/store/shopify/sync",
            Some(&admin),
            None,
        );
        assert_eq!(status, 409, "{v}");
    }
    let mut st = Value::Null;
    assert!(
        eventually(60, || {
            st = call(
                &a,
                "GET",
                "/v1/domains/store/shopify/status",
                Some(&admin),
                None,
            )
            .1;
            st["state"]["last"].is_object() && st["syncing"] == false
        }),
        "{st}"
    );
    assert_eq!(st["state"]["last"]["added"], 27, "{st}");
    let next = st["next_run"].as_i64().unwrap();
    let finished = st["state"]["last"]["finished"].as_i64().unwrap();
    assert!(next >= finished + 3_600_000, "{st}");
    // Both appliers ran many times meanwhile: one bulk operation.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(shop.state.lock().unwrap().bulk_started, 1);
}

/// A node killed (SIGKILL) while a full sync streams the bulk result: what it acknowledged
/// stays, nothing is half-written; started again, the node gives back its lease and the next
/// full sync finishes the job, writing only the products the killed run had not, embedding
/// nothing twice, with no duplicates.
#[test]
fn a_sync_killed_midway_is_finished_by_the_next_run() {
    let (real, _) = real_products();
    let products = crate::shop_server::copies(&real, 24);
    let total = products.len() as u64;
    let shop = ShopServer::start(products);
    shop.state.lock().unwrap().drip = Some(std::time::Duration::from_millis(1));
    let host = shop.base.trim_start_matches("http://").to_string();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    cli(&data, &["domain", "create", "store", "--embedder", "fake"]);
    let admin = key_for(&data, "admin");
    // A lease of 1.2 s: the killed run renews it several times before it dies.
    let env = [
        ("ACME_TOKEN", TOKEN),
        ("DARTMOUTH_SHOPIFY_PLAIN_HOSTS", host.as_str()),
        ("DARTMOUTH_SHOPIFY_POLL_MS", "20"),
        ("DARTMOUTH_SHOPIFY_LEASE_MS", "1200"),
    ];
    let flags = ["--rate-limit", "0", "--ip-rate-limit", "0"];
    let s = start_with_env(&data, &flags, &env);
    let body = json!({"shop": host, "token_env": "ACME_TOKEN"}).to_string();
    let path = "/v1/domains/store/shopify";
    assert_eq!(
        call(
            &s,
            "POST",
            &format!("{path}/connection"),
            Some(&admin),
            Some(&body)
        )
        .0,
        200
    );
    let (_, task) = call(&s, "POST", &format!("{path}/sync"), Some(&admin), None);
    let id = task["id"].as_str().unwrap().to_string();
    let mut t = Value::Null;
    let started = std::time::Instant::now();
    assert!(eventually(60, || {
        t = call(&s, "GET", &format!("/v1/tasks/{id}"), Some(&admin), None).1;
        (t["batches"].as_u64().unwrap_or(0) >= 1 && started.elapsed().as_millis() > 3000)
            || t["status"] != "running"
    }));
    assert_eq!(
        t["status"], "running",
        "the sync ended before the kill: {t}"
    );
    s.kill();
    // Started again: the acknowledged products (a batch is 256) are there, each once.
    let s = start_with_env(&data, &flags, &env);
    let written = count(&s, &admin, "store");
    assert!(written > 0 && written < total, "{written} of {total}");
    assert!(eventually(10, || {
        call(&s, "GET", &format!("{path}/status"), Some(&admin), None).1["syncing"] == false
    }));
    shop.state.lock().unwrap().drip = None;
    let done = sync(&s, &admin, "store", false);
    assert_eq!(done["status"], "succeeded", "{done}");
    let summary = &done["summary"];
    assert_eq!(summary["unchanged"].as_u64(), Some(written), "{done}");
    assert_eq!(summary["added"].as_u64(), Some(total - written), "{done}");
    assert_eq!(count(&s, &admin, "store"), total);
    // Only the new products' chunks were embedded (at least one each), none of the rest.
    let embedded = summary["embedded_chunks"].as_u64().unwrap();
    assert!(embedded >= total - written, "{done}");
    assert_eq!(summary["chunks"], summary["embedded_chunks"], "{done}");
    // No duplicates: a copy's title finds its one product.
    let body = json!({"query": "\"#7\"", "mode": "bm25", "domains": ["store"], "k": 100,
        "filter": "handle = \"ipod-nano-7\""});
    let (_, hits) = call(
        &s,
        "POST",
        "/v1/search",
        Some(&admin),
        Some(&body.to_string()),
    );
    assert_eq!(hits["total"]["documents"], 1, "{hits}");
}

/// The real bulk JSONL files of `../shared/datasets/shopify/graphql_bulk_jsonl/` served as a
/// bulk operation's result: a full sync of each reads what uploading the same file reads.
#[test]
fn the_real_bulk_files_pull_as_they_upload() {
    let shop = ShopServer::start(Default::default());
    let host = shop.base.trim_start_matches("http://").to_string();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for d in ["pulled", "uploaded"] {
        cli(&data, &["domain", "create", d, "--embedder", "fake"]);
    }
    let admin = key_for(&data, "admin");
    let s = start_with_env(
        &data,
        &["--rate-limit", "0", "--ip-rate-limit", "0"],
        &[
            ("ACME_TOKEN", TOKEN),
            ("DARTMOUTH_SHOPIFY_PLAIN_HOSTS", host.as_str()),
            ("DARTMOUTH_SHOPIFY_POLL_MS", "20"),
        ],
    );
    let body = json!({"shop": host, "token_env": "ACME_TOKEN"}).to_string();
    let connected = call(
        &s,
        "POST",
        "/v1/domains/pulled/shopify/connection",
        Some(&admin),
        Some(&body),
    );
    assert_eq!(connected.0, 200, "{}", connected.1);
    let files = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/datasets/shopify/graphql_bulk_jsonl");
    for name in ["products.jsonl", "product_images.jsonl"] {
        let path = files.join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        shop.state.lock().unwrap().result_file = Some((path, text.lines().count() as u64));
        let done = sync(&s, &admin, "pulled", true);
        assert_eq!(done["status"], "succeeded", "{name}: {done}");
        let (status, up) = call(
            &s,
            "POST",
            "/v1/domains/uploaded/shopify?format=bulk&full_sync=true",
            Some(&admin),
            Some(&text),
        );
        if status == 400 {
            // No record can be read (the images file's products have no title): the upload is
            // refused, and the pull writes nothing and names the same fault at the same line.
            let refused = up["error"]["message"].as_str().unwrap();
            let fault = refused
                .strip_prefix("body")
                .unwrap()
                .split(" (and")
                .next()
                .unwrap();
            let summary = &done["summary"];
            assert_eq!(summary["documents"], 0, "{name}: {done}");
            assert_eq!(
                summary["failed"][0]
                    .as_str()
                    .unwrap()
                    .strip_prefix("bulk result"),
                Some(fault),
                "{name}: {done} vs {up}"
            );
            continue;
        }
        assert_eq!(status, 200, "{name}: {up}");
        let ids: Vec<String> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["__typename"] == "Product")
            .map(|v| {
                v["id"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert!(!ids.is_empty(), "{name}");
        assert_eq!(count(&s, &admin, "pulled"), ids.len() as u64, "{name}");
        assert_eq!(
            doc_texts(&s, &admin, "pulled", &ids),
            doc_texts(&s, &admin, "uploaded", &ids),
            "{name}"
        );
    }
}
