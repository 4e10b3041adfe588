//! Product search a shopping agent can use without knowing the shop's option names, over a real
//! export (338 products whose options are "Sizes", "Size", "Sizes (garments)", "Mug size",
//! "Colors", "Color", …): canonical variant fields, conditions one variant must meet together,
//! query understanding over both transports, and a domain's own option names.

use std::path::Path;

use dartmouth_server::proto as pb;
use serde_json::{Value, json};

use crate::support::*;

const EXPORT: &str = "../../shared/datasets/shopify/csv/products_export_life_made_magic.csv";
const UNITED_BY_BLUE: &str =
    "../../shared/datasets/shopify/admin_rest/products_united_by_blue_demo.json";

/// A shop's file, relative to this crate, uploaded to `domain`'s catalog endpoint: the answer.
fn upload(s: &Server, key: &str, domain: &str, file: &str, content_type: &str) -> Value {
    let body = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap();
    let format = if content_type == "text/csv" {
        "?format=csv"
    } else {
        ""
    };
    let (status, ack) = post_raw(
        s,
        &format!("/v1/domains/{domain}/shopify{format}"),
        &[
            ("Authorization", &format!("Bearer {key}")),
            ("Content-Type", content_type),
        ],
        &body,
    );
    assert_eq!(status, 200, "{ack}");
    ack
}

fn search(s: &Server, key: &str, body: Value) -> Value {
    let (status, found) = call(s, "POST", "/v1/search", Some(key), Some(&body.to_string()));
    assert_eq!(status, 200, "{body}: {found}");
    found
}

fn doc_ids(found: &Value) -> std::collections::BTreeSet<String> {
    found["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["doc_id"].as_str().unwrap().to_string())
        .collect()
}

/// Whether one of a hit's variants satisfies `test`.
fn some_variant(hit: &Value, test: impl Fn(&Value) -> bool) -> bool {
    hit["attributes"]["variants"]
        .as_array()
        .is_some_and(|vs| vs.iter().any(test))
}

fn is(v: &Value, field: &str, want: &str) -> bool {
    v[field]
        .as_str()
        .is_some_and(|s| s.eq_ignore_ascii_case(want))
}

fn price(v: &Value) -> f64 {
    v["price"].as_f64().unwrap_or(f64::MAX)
}

#[test]
fn canonical_variant_fields_one_variant_filters_and_query_understanding() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    cli(&data, &["domain", "create", "shop", "--embedder", "fake"]);
    let admin = key_for(&data, "admin");
    let s = start(dir, data, &["--rate-limit", "0"]);
    let ack = upload(&s, &admin, "shop", EXPORT, "text/csv");
    assert_eq!(
        (&ack["added"], &ack["failed_count"]),
        (&json!(338), &json!(0)),
        "{ack}"
    );
    let seq = ack["seq"].clone();
    let q = |query: &str, filter: &str| {
        json!({"query": query, "domains": ["shop"], "k": 100, "collapse": true, "mode": "bm25",
               "filter": filter, "facets": ["size", "color"], "min_seq": {"shop": seq}})
    };

    // 3XL garments sit under the shop's "Sizes"; the canonical `size` finds them, and the shop's
    // own name still works.
    let total = |found: &Value| found["total"]["documents"].as_u64().unwrap();
    let canonical = search(&s, &admin, q("shirt", r#"size = "3XL""#));
    let own = search(&s, &admin, q("shirt", r#"option.sizes = "3xl""#));
    assert!(total(&own) > 0, "{own}");
    assert_eq!(total(&canonical), total(&own), "every 3XL is under `Sizes`");
    // M is under "Sizes", "Sizes (garments)", "Socks size", and "Medium" under "Bag size".
    let m = search(&s, &admin, q("shirt", r#"size = "m""#));
    let m_own = search(&s, &admin, q("shirt", r#"option.sizes = "M""#));
    assert!(
        total(&m) > total(&m_own),
        "{} vs {}",
        total(&m),
        total(&m_own)
    );
    let sizes = canonical["facets"]["size"].to_string();
    assert!(
        sizes.contains("\"3XL\""),
        "facets show values as the shop wrote them: {sizes}"
    );

    // One variant must satisfy every variant condition. This export's products come in full
    // grids at one price, so a second shop shows it: United By Blue's Ayers Chambray has an S
    // at 98 in stock, an M at 98 sold out and an XL at 102.
    let ubb_ack = upload(&s, &admin, "shop", UNITED_BY_BLUE, "application/json");
    let seq = ubb_ack["seq"].clone();
    let q = |query: &str, filter: &str| {
        json!({"query": query, "domains": ["shop"], "k": 100, "collapse": true, "mode": "bm25",
               "filter": filter, "facets": ["size", "color"], "min_seq": {"shop": seq}})
    };
    let ayers = |filter: &str| {
        total(&search(
            &s,
            &admin,
            q(
                "chambray",
                &format!(r#"handle = "ayers-chambray" AND {filter}"#),
            ),
        ))
    };
    assert_eq!(ayers(r#"size = "XL""#), 1);
    assert_eq!(ayers("price < 100"), 1);
    assert_eq!(ayers(r#"size = "XL" AND price < 100"#), 0, "its XL is 102");
    assert_eq!(ayers(r#"size = "xl" AND price >= 100"#), 1);
    assert_eq!(
        ayers(r#"size = "M" AND in_stock = true"#),
        0,
        "its M is sold out"
    );
    assert_eq!(ayers(r#"size = "S" AND in_stock = true"#), 1);
    assert_eq!(
        ayers(r#"(size = "M" OR size = "S") AND in_stock = true AND price < 100"#),
        1
    );
    let navy_xl = search(
        &s,
        &admin,
        q(
            "coat",
            r#"color = "navy" AND size = "XL" AND in_stock = true"#,
        ),
    );
    // No product of the shop has a navy XL in stock (two have one sold out), so nothing.
    assert_eq!(navy_xl["hits"], json!([]), "{navy_xl}");
    // The Foraker coat has navy (S in stock), XL (Harvest in stock), but its navy XL is sold out.
    let navy = search(
        &s,
        &admin,
        q("coat", r#"color = "navy" AND in_stock = true"#),
    );
    assert!(
        navy["hits"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["attributes"]["handle"] == "foraker-canvas-coat"),
        "{navy}"
    );
    let xl = search(&s, &admin, q("coat", r#"size = "XL" AND in_stock = true"#));
    assert!(
        xl["hits"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["attributes"]["handle"] == "foraker-canvas-coat"),
        "{xl}"
    );
    // NOT is about the product: none of its variants in stock.
    let sold_out = search(&s, &admin, q("shirt", "NOT in_stock = true"));
    assert!(!doc_ids(&sold_out).is_empty());
    for hit in sold_out["hits"].as_array().unwrap() {
        assert!(
            !some_variant(hit, |v| v["in_stock"] == json!(true)),
            "{hit}"
        );
    }

    // Query understanding: the constraints become the filter, the rest is searched, and what
    // was understood comes back.
    let body = json!({"query": "sweatshirt in light pink, size M under $60", "domains": ["shop"],
                      "k": 50, "collapse": true, "mode": "bm25", "parse": true});
    let found = search(&s, &admin, body.clone());
    let u = &found["understood"];
    assert_eq!(u["query"], "sweatshirt", "{u}");
    assert_eq!(
        u["filter"], r#"color IN ("Light Pink") AND size = "M" AND price < 60"#,
        "{u}"
    );
    assert_eq!(u["constraints"].as_array().unwrap().len(), 3, "{u}");
    assert!(!found["hits"].as_array().unwrap().is_empty(), "{found}");
    for hit in found["hits"].as_array().unwrap() {
        assert!(
            some_variant(hit, |v| is(v, "color", "light pink")
                && is(v, "size", "M")
                && price(v) < 60.0),
            "{hit}"
        );
    }
    // Without parsing the same words are only searched.
    let plain = search(
        &s,
        &admin,
        json!({"query": "sweatshirt in light pink, size M under $60",
        "domains": ["shop"], "k": 50, "collapse": true, "mode": "bm25"}),
    );
    assert!(plain.get("understood").is_none(), "{plain}");
    // The context pack understands the same way.
    let (status, ctx) = call(
        &s,
        "POST",
        "/v1/context",
        Some(&admin),
        Some(
            &json!({"query": "sweatshirt in light pink, size M under $60", "domains": ["shop"],
                     "parse": true, "max_tokens": 400})
            .to_string(),
        ),
    );
    assert_eq!(status, 200, "{ctx}");
    assert_eq!(ctx["understood"], found["understood"], "{ctx}");

    // gRPC: the same understanding and the same hits.
    let rt = runtime();
    let grpc = rt.block_on(async {
        grpc_client(&s)
            .await
            .search(with_key(
                pb::SearchRequest {
                    query: body["query"].as_str().unwrap().into(),
                    domains: vec!["shop".into()],
                    k: 50,
                    mode: "bm25".into(),
                    collapse: true,
                    parse: true,
                    ..Default::default()
                },
                Some(&admin),
            ))
            .await
            .unwrap()
            .into_inner()
    });
    let gu = grpc.understood.expect("understood over gRPC");
    assert_eq!(
        (gu.query.as_str(), gu.filter.as_str()),
        (u["query"].as_str().unwrap(), u["filter"].as_str().unwrap())
    );
    let grpc_ids: std::collections::BTreeSet<String> =
        grpc.hits.iter().map(|h| h.doc_id.clone()).collect();
    assert_eq!(grpc_ids, doc_ids(&found));
}

#[test]
fn a_domain_files_a_shops_option_under_its_own_canonical_name() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    cli(&data, &["domain", "create", "plain", "--embedder", "fake"]);
    let admin_key = key_for(&data, "admin");
    let s = start(dir, data, &["--rate-limit", "0"]);
    // Over HTTP: "Case size" is a device here, and "Mug size" no size at all.
    let (status, made) = call(
        &s,
        "POST",
        "/v1/domains",
        Some(&admin_key),
        Some(
            &json!({"name": "cases", "embedder": "fake",
                     "option_names": {"case_size": "device", "phone_case_size": "device",
                                      "mug_size": ""}})
            .to_string(),
        ),
    );
    assert_eq!(status, 201, "{made}");
    let (status, bad) = call(
        &s,
        "POST",
        "/v1/domains",
        Some(&admin_key),
        Some(
            &json!({"name": "bad", "embedder": "fake",
                     "option_names": {"Case Size": "device"}})
            .to_string(),
        ),
    );
    assert_eq!(status, 400, "{bad}");
    assert!(
        bad["error"]["message"]
            .as_str()
            .unwrap()
            .contains("option_names"),
        "{bad}"
    );
    let mut seqs = json!({});
    for domain in ["plain", "cases"] {
        let ack = upload(&s, &admin_key, domain, EXPORT, "text/csv");
        seqs[domain] = ack["seq"].clone();
    }
    let count = |domain: &str, filter: &str| {
        let found = search(
            &s,
            &admin_key,
            json!({"query": "case mug", "domains": [domain], "k": 100, "collapse": true,
                   "mode": "bm25", "filter": filter, "min_seq": {domain: seqs[domain]}}),
        );
        found["total"]["documents"].as_u64().unwrap()
    };
    assert!(count("plain", r#"size = "iPhone 12""#) > 0);
    assert_eq!(count("cases", r#"size = "iPhone 12""#), 0);
    assert_eq!(
        count("cases", r#"device = "iphone 12""#),
        count("plain", r#"size = "iPhone 12""#)
    );
    assert!(count("plain", r#"size = "11oz""#) > 0);
    assert_eq!(count("cases", r#"size = "11oz""#), 0);
    assert_eq!(
        count("cases", r#"option.mug_size = "11oz""#),
        count("plain", r#"size = "11oz""#)
    );
}

/// Similar items: "more like this" by a product's id and search by a given vector, over both
/// transports; the product itself is left out, and the rights and shapes are checked.
#[test]
fn similar_items_by_document_and_by_vector() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    cli(&data, &["domain", "create", "shop", "--embedder", "fake"]);
    cli(
        &data,
        &[
            "domain",
            "create",
            "other",
            "--embedder",
            "fake",
            "--dim",
            "16",
        ],
    );
    cli(
        &data,
        &["principal", "create", "outsider", "--kind", "agent"],
    );
    cli(&data, &["grant", "outsider", "other", "read"]);
    let admin = key_for(&data, "admin");
    let outsider = key_for(&data, "outsider");
    let s = start(dir, data, &["--rate-limit", "0"]);
    let ack = upload(&s, &admin, "shop", UNITED_BY_BLUE, "application/json");
    let seq = ack["seq"].clone();
    let chambray = search(
        &s,
        &admin,
        json!({"query": "chambray", "domains": ["shop"], "mode": "bm25", "k": 1,
               "filter": "handle = \"ayers-chambray\"", "min_seq": {"shop": seq}}),
    );
    let id = chambray["hits"][0]["doc_id"].as_str().unwrap().to_string();

    let like = json!({"domains": ["shop"], "k": 5, "collapse": true,
                      "similar_to": {"domain": "shop", "doc_id": id}, "min_seq": {"shop": seq}});
    let found = search(&s, &admin, like.clone());
    let ids: Vec<&str> = found["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["doc_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 5, "{found}");
    assert!(
        !ids.contains(&id.as_str()),
        "the product itself is left out: {ids:?}"
    );
    assert!(found["hits"][0]["vector"]["rank"].is_u64(), "{found}");
    // With a filter, as any search.
    let shirts = search(
        &s,
        &admin,
        json!({"domains": ["shop"], "k": 5, "collapse": true, "filter": "size = \"M\"",
               "similar_to": {"domain": "shop", "doc_id": id}}),
    );
    let shirts = shirts["hits"].as_array().unwrap();
    assert!(!shirts.is_empty(), "no similar item in size M");
    for hit in shirts {
        assert!(some_variant(hit, |v| is(v, "size", "M")), "{hit}");
    }
    // gRPC: the same hits.
    let rt = runtime();
    let grpc = rt.block_on(async {
        grpc_client(&s)
            .await
            .search(with_key(
                pb::SearchRequest {
                    domains: vec!["shop".into()],
                    k: 5,
                    collapse: true,
                    similar_to: Some(pb::SimilarTo {
                        domain: "shop".into(),
                        doc_id: id.clone(),
                    }),
                    ..Default::default()
                },
                Some(&admin),
            ))
            .await
            .unwrap()
            .into_inner()
    });
    let grpc_ids: Vec<&str> = grpc.hits.iter().map(|h| h.doc_id.as_str()).collect();
    assert_eq!(grpc_ids, ids);

    // A given vector of the domains' dimension; a wrong one is refused with its size.
    let unit: Vec<f32> = (0..384)
        .map(|i| if i % 7 == 0 { 1.0 } else { 0.0 })
        .collect();
    let by_vector = search(
        &s,
        &admin,
        json!({"domains": ["shop"], "k": 3, "vector": unit, "collapse": true}),
    );
    assert_eq!(
        by_vector["hits"].as_array().unwrap().len(),
        3,
        "{by_vector}"
    );
    let grpc = rt.block_on(async {
        grpc_client(&s)
            .await
            .search(with_key(
                pb::SearchRequest {
                    domains: vec!["shop".into()],
                    k: 3,
                    collapse: true,
                    vector: unit.clone(),
                    ..Default::default()
                },
                Some(&admin),
            ))
            .await
            .unwrap()
            .into_inner()
    });
    assert_eq!(
        grpc.hits
            .iter()
            .map(|h| h.doc_id.as_str())
            .collect::<Vec<_>>(),
        by_vector["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["doc_id"].as_str().unwrap())
            .collect::<Vec<_>>()
    );
    let refused = |key: &str, body: Value| {
        let (status, out) = call(&s, "POST", "/v1/search", Some(key), Some(&body.to_string()));
        (
            status,
            out["error"]["message"].as_str().unwrap_or("").to_string(),
        )
    };
    let (status, msg) = refused(&admin, json!({"domains": ["shop"], "vector": [0.5, 0.5]}));
    assert_eq!(status, 400, "{msg}");
    assert!(msg.contains("dimension") || msg.contains("384"), "{msg}");
    let (status, msg) = refused(&admin, json!({"domains": ["shop"], "vector": []}));
    assert_eq!((status, msg.contains("vector")), (400, true), "{msg}");
    let (status, msg) = refused(
        &admin,
        json!({"domains": ["shop"], "mode": "bm25", "similar_to": {"domain": "shop", "doc_id": id}}),
    );
    assert_eq!((status, msg.contains("bm25")), (400, true), "{msg}");
    // Another model's domain: refused, naming both.
    let (status, msg) = refused(
        &admin,
        json!({"domains": ["other"], "similar_to": {"domain": "shop", "doc_id": id}}),
    );
    assert_eq!(status, 400, "{msg}");
    // A missing document is 404; an unreadable domain's document answers as a missing domain.
    let (status, msg) = refused(
        &admin,
        json!({"domains": ["shop"], "similar_to": {"domain": "shop", "doc_id": "nope"}}),
    );
    assert_eq!((status, msg.contains("nope")), (404, true), "{msg}");
    let unreadable = refused(
        &outsider,
        json!({"domains": ["other"], "similar_to": {"domain": "shop", "doc_id": id}}),
    );
    let missing = refused(
        &outsider,
        json!({"domains": ["other"], "similar_to": {"domain": "nowhere", "doc_id": id}}),
    );
    assert_eq!(
        unreadable,
        (missing.0, missing.1.replace("nowhere", "shop")),
        "an unreadable domain reads as a missing one"
    );
}

/// Catalog browsing: documents ordered by price (a product at its lowest variant price
/// ascending, its highest descending), paged with `offset`, under a filter and a query's words;
/// relevance paging agrees with one longer page.
#[test]
fn catalog_browsing_sorted_by_price_and_paged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    cli(&data, &["domain", "create", "shop", "--embedder", "fake"]);
    let admin = key_for(&data, "admin");
    let s = start(dir, data, &["--rate-limit", "0"]);
    let ack = upload(&s, &admin, "shop", UNITED_BY_BLUE, "application/json");
    let seq = ack["seq"].clone();
    let prices = |hit: &Value| -> Vec<f64> {
        hit["attributes"]["variants"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v["price"].as_f64())
            .collect()
    };
    let page = |sort: &str, filter: &str, offset: usize| {
        search(
            &s,
            &admin,
            json!({"query": "", "domains": ["shop"], "k": 5, "offset": offset, "sort": sort,
                   "filter": filter, "min_seq": {"shop": seq}}),
        )
    };
    for (sort, descending) in [("price", false), ("price:desc", true)] {
        let mut keys = Vec::new();
        let mut ids = std::collections::BTreeSet::new();
        let mut offset = 0;
        let total = loop {
            let found = page(sort, "in_stock = true", offset);
            let hits = found["hits"].as_array().unwrap();
            for h in hits {
                let p = prices(h);
                let key = if descending {
                    p.iter().cloned().fold(f64::MIN, f64::max)
                } else {
                    p.iter().cloned().fold(f64::MAX, f64::min)
                };
                keys.push(key);
                assert!(ids.insert(h["doc_id"].as_str().unwrap().to_string()), "{h}");
            }
            if hits.len() < 5 {
                break found["total"]["documents"].as_u64().unwrap();
            }
            offset += 5;
        };
        assert_eq!(ids.len() as u64, total, "every product once over the pages");
        let mut sorted = keys.clone();
        sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
        if descending {
            sorted.reverse();
        }
        assert_eq!(keys, sorted, "{sort}");
        assert!(keys.len() > 10, "{keys:?}");
    }
    // With the query's words: only documents matching one of them, still in price order.
    let backpacks = search(
        &s,
        &admin,
        json!({"query": "backpack", "domains": ["shop"], "k": 20, "sort": "price",
               "min_seq": {"shop": seq}}),
    );
    let matching = search(
        &s,
        &admin,
        json!({"query": "backpack", "domains": ["shop"], "k": 20, "mode": "bm25", "collapse": true,
               "min_seq": {"shop": seq}}),
    );
    let sorted_ids: std::collections::BTreeSet<_> = backpacks["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["doc_id"].as_str().unwrap())
        .collect();
    let matched_ids: std::collections::BTreeSet<_> = matching["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["doc_id"].as_str().unwrap())
        .collect();
    assert!(!sorted_ids.is_empty());
    assert_eq!(sorted_ids, matched_ids);
    // gRPC: the same order.
    let rt = runtime();
    let grpc = rt.block_on(async {
        grpc_client(&s)
            .await
            .search(with_key(
                pb::SearchRequest {
                    domains: vec!["shop".into()],
                    k: 5,
                    offset: 5,
                    sort: "price:desc".into(),
                    filter: "in_stock = true".into(),
                    ..Default::default()
                },
                Some(&admin),
            ))
            .await
            .unwrap()
            .into_inner()
    });
    let http = page("price:desc", "in_stock = true", 5);
    assert_eq!(
        grpc.hits
            .iter()
            .map(|h| h.doc_id.as_str())
            .collect::<Vec<_>>(),
        http["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["doc_id"].as_str().unwrap())
            .collect::<Vec<_>>()
    );
    // Relevance paging: two pages of 5 are the first 10.
    let ranked = |k: usize, offset: usize| -> Vec<String> {
        search(
            &s,
            &admin,
            json!({"query": "organic cotton shirt", "domains": ["shop"], "k": k, "offset": offset,
                   "collapse": true, "mode": "bm25", "min_seq": {"shop": seq}}),
        )["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["doc_id"].as_str().unwrap().to_string())
            .collect()
    };
    let mut two_pages = ranked(5, 0);
    two_pages.extend(ranked(5, 5));
    assert_eq!(two_pages, ranked(10, 0));
    // Bad sorts and pages are refused, naming the parameter.
    for (body, word) in [
        (
            json!({"query": "", "domains": ["shop"], "sort": "price:up"}),
            "sort",
        ),
        (
            json!({"query": "", "domains": ["shop"], "sort": ":asc"}),
            "sort",
        ),
        (
            json!({"query": "x", "domains": ["shop"], "k": 10, "offset": 9995}),
            "offset",
        ),
    ] {
        let (status, out) = call(
            &s,
            "POST",
            "/v1/search",
            Some(&admin),
            Some(&body.to_string()),
        );
        assert_eq!(status, 400, "{body}: {out}");
        assert!(
            out["error"]["message"].as_str().unwrap().contains(word),
            "{out}"
        );
    }
}
