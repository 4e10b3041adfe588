//! Shopify over the API: catalog uploads in every format, then signed webhooks that keep
//! filters and facets current.

use std::path::Path;

use serde_json::{Value, json};

use crate::support::*;

fn search_ids(s: &Server, key: &str, body: &Value) -> (Vec<String>, Value) {
    let (status, found) = call(s, "POST", "/v1/search", Some(key), Some(&body.to_string()));
    assert_eq!(status, 200, "{body}: {found}");
    let mut ids: Vec<String> = found["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["doc_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids.dedup();
    (ids, found)
}

#[test]
fn shopify_catalog_upload_then_signed_webhooks_keep_filters_current() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for d in ["store", "locked"] {
        cli(&data, &["domain", "create", d, "--embedder", "fake"]);
    }
    for (p, kind) in [("merchant", "agent"), ("shopify-sync", "service")] {
        cli(&data, &["principal", "create", p, "--kind", kind]);
        cli(&data, &["grant", p, "store", "write"]);
    }
    let merchant = key_for(&data, "merchant");
    let admin = key_for(&data, "admin");
    let store_hook = format!("store=shopify-sync={SHOPIFY_SECRET_ENV}");
    // `merchant` may not write to `locked`: its webhooks are refused by the normal grants.
    let locked_hook = format!("locked=merchant={SHOPIFY_SECRET_ENV}");
    let s = start(
        dir,
        data,
        &[
            "--rate-limit",
            "0",
            "--shopify-webhook",
            store_hook.as_str(),
            "--shopify-webhook",
            locked_hook.as_str(),
        ],
    );
    let datasets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets/shopify");
    let catalog = std::fs::read(datasets.join("admin_rest/products_docs_example.json")).unwrap();
    let auth = format!("Bearer {merchant}");
    let upload = |query: &str, content_type: &str, body: &[u8]| {
        post_raw(
            &s,
            &format!("/v1/domains/store/shopify{query}"),
            &[("Authorization", &auth), ("Content-Type", content_type)],
            body,
        )
    };

    // The Admin REST example: the iPod Nano (four colours) and the iPod Touch, both $199.
    let (status, ack) = upload("", "application/json", &catalog);
    assert_eq!(status, 200, "{ack}");
    assert_eq!(
        (&ack["format"], &ack["added"], &ack["failed_count"]),
        (&json!("json"), &json!(2), &json!(0)),
        "{ack}"
    );
    // Sending it again writes nothing.
    let (status, again) = upload("?format=json", "application/octet-stream", &catalog);
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        (&again["added"], &again["unchanged"]),
        (&json!(0), &json!(2))
    );
    assert!(again["seq"].as_u64().unwrap() >= ack["seq"].as_u64().unwrap());

    let nano = "632910392";
    let touch = "921728736";
    let query = |filter: &str, seq: &Value| {
        json!({"query": "ipod", "domains": ["store"], "k": 20, "filter": filter,
               "facets": ["vendor", "color", "in_stock"], "min_seq": {"store": seq}})
    };
    let (ids, found) = search_ids(
        &s,
        &admin,
        &query("price <= 200 AND in_stock = true", &ack["seq"]),
    );
    assert_eq!(ids, [nano, touch], "{found}");
    assert_eq!(found["total"]["documents"], 2, "{found}");
    assert_eq!(found["facets"]["vendor"][0]["value"], "Apple", "{found}");
    assert_eq!(found["facets"]["vendor"][0]["count"], 2, "{found}");
    let colours = found["facets"]["color"].to_string();
    assert!(
        colours.contains("Pink") && colours.contains("Black"),
        "{colours}"
    );
    let (ids, _) = search_ids(
        &s,
        &admin,
        &query("color = \"pink\" AND in_stock = true", &ack["seq"]),
    );
    assert_eq!(ids, [nano]);

    // The shop stops selling the Nano when out of stock (products/update), then sells out
    // its pink one (inventory_levels/update).
    let value: Value = serde_json::from_slice(&catalog).unwrap();
    let mut product = value["products"][0].clone();
    for v in product["variants"].as_array_mut().unwrap() {
        v["inventory_policy"] = json!("deny");
    }
    let (status, updated) = webhook(&s, "store", "products/update", &product);
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["updated"], 1, "{updated}");
    let sold_out = |item: u64| {
        json!({"inventory_item_id": item, "location_id": 905684977, "available": 0,
               "updated_at": "2026-04-01T10:00:00-04:00"})
    };
    let (status, pink) = webhook(&s, "store", "inventory_levels/update", &sold_out(808950810));
    assert_eq!(status, 200, "{pink}");
    assert_eq!(
        (&pink["updated"], &pink["failed_count"]),
        (&json!(1), &json!(0)),
        "{pink}"
    );
    let (ids, _) = search_ids(
        &s,
        &admin,
        &query("color = \"Pink\" AND in_stock = true", &pink["seq"]),
    );
    assert!(ids.is_empty(), "{ids:?}");
    let (ids, _) = search_ids(
        &s,
        &admin,
        &query("color = \"Red\" AND in_stock = true", &pink["seq"]),
    );
    assert_eq!(ids, [nano]);
    let (ids, _) = search_ids(&s, &admin, &query("in_stock = true", &pink["seq"]));
    assert_eq!(ids, [nano, touch], "other colours are still in stock");
    // Shopify retries: the same delivery again changes nothing.
    let (status, retry) = webhook(&s, "store", "inventory_levels/update", &sold_out(808950810));
    assert_eq!(status, 200, "{retry}");
    assert_eq!(
        (&retry["updated"], &retry["unchanged"]),
        (&json!(0), &json!(1)),
        "{retry}"
    );
    // The other three sell out at once (Shopify delivers concurrently): no update is lost, so
    // the Nano is out of stock.
    let seqs: Vec<u64> = std::thread::scope(|scope| {
        let sends: Vec<_> = [49148385, 39072856, 457924702]
            .map(|item| {
                let s = &s;
                let payload = sold_out(item);
                scope.spawn(move || webhook(s, "store", "inventory_levels/update", &payload))
            })
            .into_iter()
            .collect();
        sends
            .into_iter()
            .map(|h| {
                let (status, r) = h.join().unwrap();
                assert_eq!((status, &r["updated"]), (200, &json!(1)), "{r}");
                r["seq"].as_u64().unwrap()
            })
            .collect()
    });
    let last = json!(seqs.iter().max().unwrap());
    let (ids, found) = search_ids(
        &s,
        &admin,
        &query("price <= 200 AND in_stock = true", &last),
    );
    assert_eq!(ids, [touch], "{found}");
    let (ids, _) = search_ids(&s, &admin, &query("NOT in_stock = true", &last));
    assert_eq!(ids, [nano], "no variant in stock");

    // Stock of an item no product holds: 200 with the failure listed (a 4xx would be retried).
    let (status, unknown) = webhook(&s, "store", "inventory_levels/update", &sold_out(1234));
    assert_eq!(status, 200, "{unknown}");
    assert_eq!(unknown["failed_count"], 1, "{unknown}");
    assert!(
        unknown["failed"][0]
            .as_str()
            .unwrap()
            .contains("inventory item 1234"),
        "{unknown}"
    );
    // An unsupported topic, signed: listed the same way.
    let (status, other) = webhook(&s, "store", "orders/create", &json!({"id": 1}));
    assert_eq!(status, 200, "{other}");
    assert!(
        other["failed"][0]
            .as_str()
            .unwrap()
            .contains("orders/create"),
        "{other}"
    );

    // products/delete: gone from search and from the document route.
    let (status, deleted) = webhook(&s, "store", "products/delete", &json!({"id": 921728736}));
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["deleted"], 1, "{deleted}");
    let (ids, _) = search_ids(&s, &admin, &query("", &deleted["seq"]));
    assert_eq!(ids, [nano]);
    let (status, _) = call(
        &s,
        "GET",
        &format!("/v1/domains/store/documents/{touch}"),
        Some(&admin),
        None,
    );
    assert_eq!(status, 404);

    // Grants apply to the webhook's principal: `merchant` cannot write to `locked`.
    let (status, refused) = webhook(&s, "locked", "products/update", &product);
    assert_eq!(status, 404, "{refused}");

    // A full sync of the Touch alone: the Nano goes.
    let touch_only = json!({"products": [value["products"][1].clone()]}).to_string();
    let (status, sync) = upload("?full_sync=true", "application/json", touch_only.as_bytes());
    assert_eq!(status, 200, "{sync}");
    assert_eq!(
        (&sync["added"], &sync["deleted"]),
        (&json!(1), &json!(1)),
        "{sync}"
    );
    let (ids, _) = search_ids(&s, &admin, &query("", &sync["seq"]));
    assert_eq!(ids, [touch]);

    // One bad product among good ones: 200, the bad one named by its place and field.
    let mixed = r#"{"products":[{"id":1,"title":"Good","variants":[{"id":2,"price":"5.00"}]},{"id":3,"title":"Bad","variants":[{"id":4,"price":"five"}]}]}"#;
    let (status, partial) = upload("", "application/json", mixed.as_bytes());
    assert_eq!(status, 200, "{partial}");
    assert_eq!(
        (&partial["added"], &partial["failed_count"]),
        (&json!(1), &json!(1))
    );
    let failure = partial["failed"][0].as_str().unwrap();
    assert!(
        failure.starts_with("body: products[1]") && failure.contains("price"),
        "{failure}"
    );

    // Bodies that are not a catalog: 400 naming the problem, nothing written.
    let cases: [(&str, &str, &[u8], &str); 5] = [
        (
            "",
            "application/json",
            b"{\"products\": [\n{\"id\": 1,,}]}",
            "body:2: malformed JSON",
        ),
        (
            "",
            "text/csv",
            b"Handle,Title\nok,\xff\xfe\n",
            "body:2: invalid UTF-8",
        ),
        (
            "",
            "text/csv",
            b"Name,Price\nmug,5\n",
            "body:1: unknown header dialect",
        ),
        ("?format=xml", "application/json", b"{}", "format: `xml`"),
        ("?colour=red", "application/json", b"{}", "colour"),
    ];
    for (query, content_type, body, want) in cases {
        let (status, reply) = upload(query, content_type, body);
        assert_eq!(status, 400, "{want}: {reply}");
        let message = reply["error"]["message"].as_str().unwrap();
        assert!(message.contains(want), "`{message}` lacks `{want}`");
    }

    // The other shapes: a CSV export (Content-Type) and GraphQL bulk JSONL (sniffed).
    let (status, _) = call(
        &s,
        "POST",
        "/v1/domains",
        Some(&admin),
        Some(r#"{"name":"shapes","embedder":"fake"}"#),
    );
    assert_eq!(status, 201);
    let admin_auth = format!("Bearer {admin}");
    for (file, content_type, format) in [
        ("csv/product_template_official.csv", "text/csv", "csv"),
        (
            "graphql_bulk_jsonl/products.jsonl",
            "application/json",
            "bulk",
        ),
    ] {
        let body = std::fs::read(datasets.join(file)).unwrap();
        let (status, reply) = post_raw(
            &s,
            "/v1/domains/shapes/shopify",
            &[
                ("Authorization", &admin_auth),
                ("Content-Type", content_type),
            ],
            &body,
        );
        assert_eq!(status, 200, "{file}: {reply}");
        assert_eq!(reply["format"], format, "{file}: {reply}");
        assert!(reply["added"].as_u64().unwrap() >= 1, "{file}: {reply}");
    }
}
