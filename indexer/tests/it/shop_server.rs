//! A local Shopify-compatible Admin GraphQL server that serves the
//! real product data of `../shared/datasets/shopify/admin_rest/` in GraphQL's shapes. The server
//! implements exactly the calls the client makes, as Shopify's Admin GraphQL reference documents
//! them:
//! - authentication: `X-Shopify-Access-Token`; a bad token is 401 with
//!   `{"errors":"[API] Invalid API key or access token (unrecognized login or wrong password)"}`
//!   (<https://shopify.dev/docs/api/admin-graphql#authentication>);
//! - rate limits: every answer's `extensions.cost { requestedQueryCost, actualQueryCost,
//!   throttleStatus { maximumAvailable, currentlyAvailable, restoreRate } }`, a query over the
//!   budget answered `errors: [{message: "Throttled", extensions: {code: "THROTTLED"}}]`, and
//!   429 with `Retry-After` (<https://shopify.dev/docs/api/usage/rate-limits>);
//! - bulk operations: `bulkOperationRunQuery(query:, groupObjects:)` with `userErrors { code }`
//!   (`OPERATION_IN_PROGRESS` while the app's one runs), the `BulkOperation` polled by
//!   `node(id:)` from CREATED through RUNNING to COMPLETED or FAILED with `errorCode`,
//!   `objectCount` as a string, a grouped JSONL `url` that expires, `bulkOperationCancel`
//!   (<https://shopify.dev/docs/api/admin-graphql/2026-01/mutations/bulkOperationRunQuery>,
//!   <https://shopify.dev/docs/api/admin-graphql/2026-07/objects/BulkOperation>,
//!   <https://shopify.dev/docs/api/usage/bulk-operations/queries>);
//! - `products(first:, after:, query: "updated_at:>='…'", sortKey: UPDATED_AT)` with `pageInfo`
//!   (<https://shopify.dev/docs/api/admin-graphql/2026-01/queries/products>) and
//!   `deletionEvents(subjectTypes: [PRODUCT])`
//!   (<https://shopify.dev/docs/api/admin-graphql/2027-01/queries/deletionEvents>).
//!
//! Failures are injected on demand: 429s, 5xx, a failed bulk operation, expired result URLs.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dartmouth_indexer::shopify::admin::{AdminApi, RetryPolicy};
use serde_json::{Value, json};

pub const TOKEN: &str = "shpat_test_0123456789abcdef";
pub const SHOP: &str = "acme.myshopify.com";
pub const VERSION: &str = "2026-01";

/// The shop's state and the failures to inject.
#[derive(Default)]
pub struct ShopState {
    /// Products in GraphQL's shape, by numeric id.
    pub products: BTreeMap<u64, Value>,
    pub deletions: Vec<(u64, String)>,
    /// Bulk operations: id → (status, polls until it moves on, result, errorCode).
    pub ops: BTreeMap<u64, Op>,
    next_op: u64,
    pub fail_next_with: Vec<u16>,
    /// Cost budget: points, what each query costs, points restored per second.
    pub budget: Option<(f64, f64, f64)>,
    available: f64,
    refilled: Option<Instant>,
    pub fail_bulk: bool,
    pub expire_urls: bool,
    pub requests: u64,
    pub bulk_started: u64,
    /// Every request's headers and body, to prove what the client sent.
    pub seen: Vec<String>,
    /// Webhook subscriptions: (topic, uri).
    pub webhooks: Vec<(String, String)>,
    /// Results are written a line at a time, this long apart (a slow download).
    pub drip: Option<Duration>,
    /// A bulk result on disk (and its object count) that bulk operations answer instead of
    /// `products`: a catalog too large to hold, streamed from the file.
    pub result_file: Option<(PathBuf, u64)>,
}

pub struct Op {
    pub status: &'static str,
    pub polls: u32,
    pub result: String,
    pub objects: u64,
    /// The result as a file, streamed (instead of `result`).
    pub file: Option<PathBuf>,
}

pub struct ShopServer {
    pub base: String,
    pub state: Arc<Mutex<ShopState>>,
}

pub fn gid(kind: &str, id: u64) -> String {
    format!("gid://shopify/{kind}/{id}")
}

/// A REST product (Admin REST or webhook shape) in the GraphQL shape the queries ask for.
pub fn graphql_product(rest: &Value) -> Value {
    let id = rest["id"].as_u64().unwrap();
    let options: Vec<Value> = rest["options"]
        .as_array()
        .map(|o| {
            o.iter()
                .map(|o| json!({"name": o["name"], "values": o["values"]}))
                .collect()
        })
        .unwrap_or_default();
    let names: Vec<String> = options
        .iter()
        .map(|o| o["name"].as_str().unwrap_or("").to_string())
        .collect();
    let variants: Vec<Value> = rest["variants"]
        .as_array()
        .map(|vs| {
            vs.iter()
                .map(|v| {
                    let selected: Vec<Value> = ["option1", "option2", "option3"]
                        .iter()
                        .zip(&names)
                        .filter_map(|(k, n)| v[*k].as_str().map(|x| json!({"name": n, "value": x})))
                        .collect();
                    let item = v["inventory_item_id"].as_u64().unwrap_or(id + 1);
                    // As the REST reader reads it: `shopify`, or no manager but a quantity.
                    let tracked = v["inventory_management"] == "shopify"
                        || (v["inventory_management"].is_null() && v["inventory_quantity"].is_i64());
                    let q = v["inventory_quantity"].as_i64().unwrap_or(0);
                    json!({
                        "id": gid("ProductVariant", v["id"].as_u64().unwrap()),
                        "title": v["title"], "sku": v["sku"], "barcode": v["barcode"],
                        "price": v["price"], "compareAtPrice": v["compare_at_price"],
                        "inventoryQuantity": q,
                        "inventoryPolicy": v["inventory_policy"].as_str().unwrap_or("deny").to_uppercase(),
                        "updatedAt": v["updated_at"],
                        "selectedOptions": selected,
                        "inventoryItem": {
                            "id": gid("InventoryItem", item),
                            "tracked": tracked,
                            "inventoryLevels": {"nodes": if tracked { vec![json!({
                                "id": format!("gid://shopify/InventoryLevel/1?inventory_item_id={item}"),
                                "location": {"id": gid("Location", 1)},
                                "quantities": [{"name": "available", "quantity": q}]
                            })] } else { vec![] }}
                        }
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let tags: Vec<String> = rest["tags"]
        .as_str()
        .unwrap_or("")
        .split(',')
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect();
    json!({
        "id": gid("Product", id),
        "handle": rest["handle"], "title": rest["title"], "descriptionHtml": rest["body_html"],
        "vendor": rest["vendor"], "productType": rest["product_type"], "tags": tags,
        "status": rest["status"].as_str().map(str::to_uppercase),
        "updatedAt": rest["updated_at"],
        "options": options,
        "featuredMedia": rest["image"]["src"].as_str().or(rest["images"][0]["src"].as_str())
            .map(|u| json!({"preview": {"image": {"url": u}}})),
        "collections": {"nodes": []},
        "metafields": {"nodes": []},
        "variants": {"nodes": variants},
    })
}

/// The metafield keys a query asks for (`metafields(keys: ["ns.key", …])`); `None` when it
/// asks for no metafields.
fn asked_metafields(query: &str) -> Option<Vec<String>> {
    let at = query.find("metafields(")?;
    let rest = &query[at..];
    let keys = rest.find("keys: ")? + "keys: ".len();
    let end = rest[keys..].find(']')? + keys + 1;
    serde_json::from_str(&rest[keys..end]).ok()
}

/// A product as a query sees it: its metafields only those asked for, by `namespace.key`.
fn as_asked(p: &Value, keys: Option<&[String]>) -> Value {
    let mut p = p.clone();
    let o = p.as_object_mut().unwrap();
    match keys {
        None => {
            o.remove("metafields");
        }
        Some(keys) => {
            let kept: Vec<Value> = o["metafields"]["nodes"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|m| {
                    let name = format!(
                        "{}.{}",
                        m["namespace"].as_str().unwrap_or(""),
                        m["key"].as_str().unwrap_or("")
                    );
                    keys.contains(&name)
                })
                .collect();
            o.insert("metafields".into(), json!({ "nodes": kept }));
        }
    }
    p
}

/// The grouped JSONL a bulk operation over `products` writes: each product, then each of its
/// variants, then that variant's inventory levels, each naming its parent.
pub fn bulk_jsonl(products: &BTreeMap<u64, Value>, keys: Option<&[String]>) -> (String, u64) {
    let mut out = String::new();
    let mut n = 0;
    for p in products.values() {
        let mut product = as_asked(p, keys);
        let o = product.as_object_mut().unwrap();
        let variants = o.remove("variants").unwrap()["nodes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        // Nested connections become lines of their own, each naming its parent.
        let mut children = Vec::new();
        for (field, typename) in [("collections", "Collection"), ("metafields", "Metafield")] {
            if let Some(c) = o.remove(field) {
                for (i, mut node) in c["nodes"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .enumerate()
                {
                    node["__typename"] = json!(typename);
                    if node.get("id").is_none() {
                        let product: u64 = p["id"]
                            .as_str()
                            .unwrap()
                            .rsplit('/')
                            .next()
                            .unwrap()
                            .parse()
                            .unwrap();
                        node["id"] = json!(gid(typename, product * 100 + i as u64));
                    }
                    node["__parentId"] = p["id"].clone();
                    children.push(node);
                }
            }
        }
        product["__typename"] = json!("Product");
        out.push_str(&product.to_string());
        out.push('\n');
        n += 1;
        for c in children {
            out.push_str(&c.to_string());
            out.push('\n');
            n += 1;
        }
        for v in variants {
            let mut variant = v.clone();
            let levels = variant["inventoryItem"]["inventoryLevels"]["nodes"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            variant["inventoryItem"]
                .as_object_mut()
                .unwrap()
                .remove("inventoryLevels");
            variant["__typename"] = json!("ProductVariant");
            variant["__parentId"] = p["id"].clone();
            out.push_str(&variant.to_string());
            out.push('\n');
            n += 1;
            for mut l in levels {
                l["__typename"] = json!("InventoryLevel");
                l["__parentId"] = v["id"].clone();
                out.push_str(&l.to_string());
                out.push('\n');
                n += 1;
            }
        }
    }
    (out, n)
}

/// Copy `k` (1, 2, …) of each product under new ids (every id moved by k × 10^14), handles
/// and titles: a larger catalog of the real products' shapes.
pub fn copy(products: &BTreeMap<u64, Value>, k: u64) -> BTreeMap<u64, Value> {
    let moved = k * 100_000_000_000_000;
    let shift = |g: &Value| {
        let g = g.as_str().unwrap();
        let (kind, id) = g.rsplit_once('/').unwrap();
        let (id, rest) = id.split_once('?').unwrap_or((id, ""));
        let id = id.parse::<u64>().unwrap() + moved;
        json!(if rest.is_empty() {
            format!("{kind}/{id}")
        } else {
            format!("{kind}/{id}?{rest}")
        })
    };
    let mut out = BTreeMap::new();
    for (id, p) in products {
        let mut p = p.clone();
        p["id"] = shift(&p["id"]);
        p["handle"] = json!(format!("{}-{k}", p["handle"].as_str().unwrap_or("")));
        p["title"] = json!(format!("{} #{k}", p["title"].as_str().unwrap_or("")));
        for v in p["variants"]["nodes"].as_array_mut().unwrap() {
            v["id"] = shift(&v["id"]);
            v["inventoryItem"]["id"] = shift(&v["inventoryItem"]["id"]);
            for l in v["inventoryItem"]["inventoryLevels"]["nodes"]
                .as_array_mut()
                .unwrap()
            {
                l["id"] = shift(&l["id"]);
            }
        }
        out.insert(id + moved, p);
    }
    out
}

/// Copies 1 to `n` of each product (see [`copy`]).
pub fn copies(products: &BTreeMap<u64, Value>, n: u64) -> BTreeMap<u64, Value> {
    (1..=n).flat_map(|k| copy(products, k)).collect()
}

/// The real products of the Admin REST files, in GraphQL's shape.
pub fn real_products() -> (BTreeMap<u64, Value>, Vec<Value>) {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets/shopify/admin_rest");
    let mut products = BTreeMap::new();
    let mut rest = Vec::new();
    for f in [
        "products_united_by_blue_demo.json",
        "products_docs_example.json",
    ] {
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(f)).unwrap()).unwrap();
        let list = v.get("products").unwrap_or(&v);
        for p in list.as_array().unwrap() {
            products.insert(p["id"].as_u64().unwrap(), graphql_product(p));
            rest.push(p.clone());
        }
    }
    (products, rest)
}

impl ShopServer {
    pub fn start(products: BTreeMap<u64, Value>) -> ShopServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(ShopState {
            products,
            ..ShopState::default()
        }));
        let (s, b) = (Arc::clone(&state), base.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (s, b) = (Arc::clone(&s), b.clone());
                std::thread::spawn(move || serve(conn, &s, &b));
            }
        });
        ShopServer { base, state }
    }

    pub fn api(&self, token: &str) -> AdminApi {
        AdminApi::new(&self.base, SHOP, VERSION, token, quick())
    }
}

pub fn quick() -> RetryPolicy {
    RetryPolicy {
        attempts: 4,
        backoff: Duration::from_millis(20),
        max_wait: Duration::from_secs(2),
    }
}

fn respond(conn: &mut TcpStream, status: u16, headers: &[(&str, String)], body: &str) {
    let reason = match status {
        200 => "OK",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        _ => "Error",
    };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nConnection: close\r\nContent-Type: application/json\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(body.as_bytes());
}

fn serve(mut conn: TcpStream, state: &Mutex<ShopState>, base: &str) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut headers = BTreeMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    let _ = reader.read_exact(&mut body);
    let body = String::from_utf8_lossy(&body).to_string();
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut s = state.lock().unwrap();
    s.requests += 1;
    s.seen.push(format!("{request_line}{headers:?}\n{body}"));
    // Results of bulk operations: signed URLs that stop working once expired.
    if let Some(op) = path
        .strip_prefix("/results/")
        .and_then(|p| p.strip_suffix(".jsonl"))
    {
        let op: u64 = op.parse().unwrap_or(0);
        if s.expire_urls {
            drop(s);
            return respond(
                &mut conn,
                403,
                &[],
                "<Error><Code>ExpiredToken</Code></Error>",
            );
        }
        if let Some(path) = s.ops.get(&op).and_then(|o| o.file.clone()) {
            drop(s);
            let Ok(mut file) = std::fs::File::open(&path) else {
                return respond(&mut conn, 404, &[], "");
            };
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\nContent-Type: application/jsonl\r\n\r\n"
            );
            let _ = conn.write_all(head.as_bytes());
            let _ = std::io::copy(&mut file, &mut conn);
            return;
        }
        let result = s.ops.get(&op).map(|o| o.result.clone()).unwrap_or_default();
        let drip = s.drip;
        drop(s);
        let Some(pause) = drip else {
            return respond(&mut conn, 200, &[], &result);
        };
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\nContent-Type: application/jsonl\r\n\r\n",
            result.len()
        );
        let _ = conn.write_all(head.as_bytes());
        for line in result.split_inclusive('\n') {
            if conn.write_all(line.as_bytes()).is_err() {
                return;
            }
            std::thread::sleep(pause);
        }
        return;
    }
    if let Some(status) = (!s.fail_next_with.is_empty()).then(|| s.fail_next_with.remove(0)) {
        drop(s);
        let headers = if status == 429 {
            vec![("Retry-After", "0.05".to_string())]
        } else {
            vec![]
        };
        return respond(
            &mut conn,
            status,
            &headers,
            r#"{"errors":"Internal error"}"#,
        );
    }
    let Some(version) = path
        .strip_prefix("/admin/api/")
        .and_then(|p| p.strip_suffix("/graphql.json"))
    else {
        drop(s);
        return respond(&mut conn, 404, &[], r#"{"errors":"Not Found"}"#);
    };
    if method != "POST" || !["2025-10", "2026-01", "2026-04"].contains(&version) {
        drop(s);
        return respond(&mut conn, 404, &[], r#"{"errors":"Not Found"}"#);
    }
    if headers.get("x-shopify-access-token").map(String::as_str) != Some(TOKEN) {
        drop(s);
        return respond(
            &mut conn,
            401,
            &[],
            r#"{"errors":"[API] Invalid API key or access token (unrecognized login or wrong password)"}"#,
        );
    }
    let request: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let query = request["query"].as_str().unwrap_or("");
    let vars = &request["variables"];
    // The cost budget, refilled at the restore rate since the last request.
    let mut extensions = json!({});
    if let Some((max, cost, rate)) = s.budget {
        let now = Instant::now();
        let since = s
            .refilled
            .map_or(f64::INFINITY, |t| now.duration_since(t).as_secs_f64());
        s.available = (s.available + since * rate).min(max);
        s.refilled = Some(now);
        let status = |available: f64| json!({"maximumAvailable": max, "currentlyAvailable": available, "restoreRate": rate});
        if s.available < cost {
            let answer = json!({
                "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED",
                    "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
                "extensions": {"cost": {"requestedQueryCost": cost, "actualQueryCost": null,
                    "throttleStatus": status(s.available)}}
            });
            drop(s);
            return respond(&mut conn, 200, &[], &answer.to_string());
        }
        s.available -= cost;
        extensions = json!({"cost": {"requestedQueryCost": cost, "actualQueryCost": cost,
            "throttleStatus": status(s.available)}});
    }
    let data = if query.contains("bulkOperationRunQuery") {
        if s.ops
            .values()
            .any(|o| matches!(o.status, "CREATED" | "RUNNING"))
        {
            json!({"bulkOperationRunQuery": {"bulkOperation": null, "userErrors": [{
                "field": null, "code": "OPERATION_IN_PROGRESS",
                "message": "A bulk query operation for this app and shop is already in progress"}]}})
        } else {
            s.next_op += 1;
            s.bulk_started += 1;
            let id = s.next_op;
            let keys = asked_metafields(vars["query"].as_str().unwrap_or(""));
            let (result, objects, file) = match &s.result_file {
                Some((path, objects)) => (String::new(), *objects, Some(path.clone())),
                None => {
                    let (result, objects) = bulk_jsonl(&s.products, keys.as_deref());
                    (result, objects, None)
                }
            };
            s.ops.insert(
                id,
                Op {
                    status: "CREATED",
                    polls: 2,
                    result,
                    objects,
                    file,
                },
            );
            json!({"bulkOperationRunQuery": {"bulkOperation": {"id": gid("BulkOperation", id),
                "status": "CREATED"}, "userErrors": []}})
        }
    } else if query.contains("webhookSubscriptionCreate") {
        // <https://shopify.dev/docs/api/admin-graphql/2025-10/mutations/webhooksubscriptioncreate>
        let topic = vars["topic"].as_str().unwrap_or("").to_string();
        let uri = vars["uri"].as_str().unwrap_or("").to_string();
        if !uri.starts_with("https://") {
            json!({"webhookSubscriptionCreate": {"webhookSubscription": null, "userErrors": [
                {"field": ["webhookSubscription", "uri"], "message": "Address protocol http:// is not supported"}]}})
        } else if s.webhooks.contains(&(topic.clone(), uri.clone())) {
            json!({"webhookSubscriptionCreate": {"webhookSubscription": null, "userErrors": [
                {"field": ["webhookSubscription", "uri"], "message": "Address for this topic has already been taken"}]}})
        } else {
            s.webhooks.push((topic.clone(), uri.clone()));
            let id = s.webhooks.len() as u64;
            json!({"webhookSubscriptionCreate": {"webhookSubscription": {
                "id": gid("WebhookSubscription", id), "topic": topic, "uri": uri}, "userErrors": []}})
        }
    } else if query.contains("publicApiVersions") {
        json!({"shop": {"name": "Acme"}, "publicApiVersions": [
            {"handle": "2025-10", "supported": true}, {"handle": "2026-01", "supported": true},
            {"handle": "2026-04", "supported": true}]})
    } else if query.contains("bulkOperationCancel") {
        let id = vars["id"]
            .as_str()
            .and_then(|g| g.rsplit('/').next()?.parse().ok())
            .unwrap_or(0);
        if let Some(op) = s.ops.get_mut(&id) {
            op.status = "CANCELED";
        }
        json!({"bulkOperationCancel": {"bulkOperation": {"id": gid("BulkOperation", id), "status": "CANCELING"}, "userErrors": []}})
    } else if query.contains("node(id:") {
        let id = vars["id"]
            .as_str()
            .and_then(|g| g.rsplit('/').next()?.parse().ok())
            .unwrap_or(0);
        let fail = s.fail_bulk;
        match s.ops.get_mut(&id) {
            None => json!({"node": null}),
            Some(op) => {
                if op.polls > 0 {
                    op.polls -= 1;
                    if op.status == "CREATED" {
                        op.status = "RUNNING";
                    }
                } else if op.status == "RUNNING" {
                    op.status = if fail { "FAILED" } else { "COMPLETED" };
                }
                let done = op.status == "COMPLETED";
                json!({"node": {"id": gid("BulkOperation", id), "status": op.status,
                    "errorCode": if op.status == "FAILED" { json!("INTERNAL_SERVER_ERROR") } else { Value::Null },
                    "objectCount": if done { op.objects.to_string() } else { "0".into() },
                    "url": if done && op.objects > 0 { json!(format!("{base}/results/{id}.jsonl")) } else { Value::Null },
                    "partialDataUrl": null}})
            }
        }
    } else if query.contains("deletionEvents(") {
        let nodes: Vec<Value> = s
            .deletions
            .iter()
            .map(|(id, at)| json!({"occurredAt": at, "subjectId": gid("Product", *id), "subjectType": "PRODUCT"}))
            .collect();
        json!({"deletionEvents": {"nodes": nodes, "pageInfo": {"hasNextPage": false, "endCursor": null}}})
    } else if query.contains("products(") {
        let since = vars["query"]
            .as_str()
            .and_then(|q| q.strip_prefix("updated_at:>='"))
            .and_then(|q| q.strip_suffix('\''))
            .map(|t| dartmouth_indexer::shopify::parse_time(t).unwrap());
        let mut all: Vec<&Value> = s
            .products
            .values()
            .filter(|p| {
                since.is_none_or(|from| {
                    dartmouth_indexer::shopify::parse_time(p["updatedAt"].as_str().unwrap())
                        .unwrap()
                        >= from
                })
            })
            .collect();
        all.sort_by_key(|p| {
            (
                dartmouth_indexer::shopify::parse_time(p["updatedAt"].as_str().unwrap()),
                p["id"].as_str().unwrap().to_string(),
            )
        });
        let start: usize = vars["after"]
            .as_str()
            .and_then(|c| c.strip_prefix("cursor-"))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let first = vars["first"].as_u64().unwrap_or(50).min(250) as usize;
        let keys = asked_metafields(query);
        let page: Vec<Value> = all
            .iter()
            .skip(start)
            .take(first)
            .map(|p| as_asked(p, keys.as_deref()))
            .collect();
        let end = start + page.len();
        json!({"products": {"nodes": page, "pageInfo": {"hasNextPage": end < all.len(),
            "endCursor": format!("cursor-{end}")}}})
    } else {
        json!(null)
    };
    drop(s);
    respond(
        &mut conn,
        200,
        &[],
        &json!({"data": data, "extensions": extensions}).to_string(),
    );
}
