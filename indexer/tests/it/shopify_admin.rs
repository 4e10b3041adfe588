//! The pull-sync client against the local Shopify-compatible Admin API of `shop_server.rs`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use dartmouth_indexer::shopify::admin::AdminApi;
use dartmouth_indexer::shopify::pull::{
    await_bulk, deletions_page, products_bulk_query, products_page, start_bulk, stream_result,
};
use dartmouth_indexer::shopify::{Change, Product, read_json};
use serde_json::json;

use crate::shop_server::*;

fn upserts(changes: Vec<dartmouth_indexer::Result<Change>>) -> BTreeMap<String, Product> {
    changes
        .into_iter()
        .map(|c| match c.unwrap() {
            Change::Upsert(p) => (p.doc_id(), *p),
            other => panic!("{other:?}"),
        })
        .collect()
}

/// Starts the full-sync bulk query, polling every 10 ms while the app's slot is taken.
fn start(api: &mut AdminApi) -> dartmouth_indexer::Result<String> {
    start_bulk(
        api,
        &products_bulk_query(&[]),
        Duration::from_millis(10),
        Duration::from_secs(5),
        &|| false,
    )
}

fn full(api: &mut AdminApi) -> dartmouth_indexer::Result<Vec<dartmouth_indexer::Result<Change>>> {
    let never = || false;
    let id = start(api)?;
    let done = await_bulk(api, &id, Duration::from_millis(10), &never, &mut |_| {})?;
    let url = done.url.expect("a result");
    Ok(stream_result(&url)?.expect("not expired").collect())
}

/// A full sync through a bulk operation gives the products an upload of the same catalog
/// gives: the same documents, text and attributes (stock from the levels per location).
#[test]
fn a_bulk_sync_reads_what_an_upload_of_the_same_catalog_reads() {
    let (products, rest) = real_products();
    let shop = ShopServer::start(products);
    let pulled = upserts(full(&mut shop.api(TOKEN)).unwrap());
    let uploaded = upserts(read_json(json!({ "products": rest }), "upload"));
    assert_eq!(pulled.len(), 27, "{:?}", pulled.keys());
    assert_eq!(
        pulled.keys().collect::<Vec<_>>(),
        uploaded.keys().collect::<Vec<_>>()
    );
    for (id, p) in &pulled {
        let u = &uploaded[id];
        assert_eq!(p.render(), u.render(), "{id}");
        assert_eq!(p.attributes(), u.attributes(), "{id}");
        assert_eq!(p.variants.len(), u.variants.len());
        for (a, b) in p.variants.iter().zip(&u.variants) {
            assert_eq!(
                (a.quantity(), a.in_stock()),
                (b.quantity(), b.in_stock()),
                "{id}"
            );
        }
    }
    // One bulk operation, the token in its header only.
    let s = shop.state.lock().unwrap();
    assert_eq!(s.bulk_started, 1);
    assert!(
        s.seen
            .iter()
            .all(|r| r.contains("groupObjects: true") || !r.contains("bulkOperationRunQuery"))
    );
}

/// The cost budget is obeyed: with room for one query at a time the client waits for the
/// restore rate, and every query succeeds.
#[test]
fn the_cost_budget_is_waited_for_and_throttled_queries_are_retried() {
    let (products, _) = real_products();
    let shop = ShopServer::start(products);
    shop.state.lock().unwrap().budget = Some((100.0, 60.0, 300.0));
    let mut api = shop.api(TOKEN);
    for _ in 0..6 {
        let page = products_page(&mut api, &[], None, None, 5).unwrap();
        assert_eq!(page.changes.len(), 5);
    }
    // The first query finds the budget full; the second would overdraw it and is throttled
    // once at most, the others wait for the refill before asking.
    assert!(api.stats.waited_secs > 0.0, "{:?}", api.stats);
    assert!(api.stats.throttled <= 1, "{:?}", api.stats);
    assert!(api.stats.cost >= 360.0, "{:?}", api.stats);
}

#[test]
fn transient_failures_are_retried_then_fail_cleanly() {
    let (products, _) = real_products();
    let shop = ShopServer::start(products);
    shop.state.lock().unwrap().fail_next_with = vec![429, 500, 503];
    let mut api = shop.api(TOKEN);
    assert_eq!(
        products_page(&mut api, &[], None, None, 3)
            .unwrap()
            .changes
            .len(),
        3
    );
    assert_eq!(
        (api.stats.throttled, api.stats.retried),
        (1, 2),
        "{:?}",
        api.stats
    );
    // A server that keeps failing: a clear error after the last attempt.
    shop.state.lock().unwrap().fail_next_with = vec![502; 10];
    let e = products_page(&mut shop.api(TOKEN), &[], None, None, 3)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("shop acme.myshopify.com") && e.contains("failed (502) 4 times"),
        "{e}"
    );
}

#[test]
fn a_refused_token_or_an_unknown_version_is_a_clear_error() {
    let shop = ShopServer::start(BTreeMap::new());
    let e = products_page(&mut shop.api("shpat_wrong"), &[], None, None, 3)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("refused the access token (401: [API] Invalid API key"),
        "{e}"
    );
    assert!(!e.contains("shpat_wrong"), "{e}");
    let mut old = AdminApi::new(&shop.base, SHOP, "2019-04", TOKEN, quick());
    let e = products_page(&mut old, &[], None, None, 3)
        .unwrap_err()
        .to_string();
    assert!(e.contains("404") && e.contains("2019-04"), "{e}");
    assert!(!format!("{old:?}").contains(TOKEN));
}

/// A bulk operation already running is waited for; a failed one, an expired result and a
/// cancelled sync end with errors that say so.
#[test]
fn the_bulk_operation_lifecycle() {
    let (products, _) = real_products();
    let shop = ShopServer::start(products);
    let mut api = shop.api(TOKEN);
    let never = || false;
    let first = start(&mut api).unwrap();
    // The app's slot is taken until the first completes: the second waits for it (the first
    // is polled to its end meanwhile, as another sync of the app would).
    let state = Arc::clone(&shop.state);
    let base = shop.base.clone();
    let poller = std::thread::spawn(move || {
        let mut other = AdminApi::new(&base, SHOP, VERSION, TOKEN, quick());
        std::thread::sleep(Duration::from_millis(100));
        await_bulk(
            &mut other,
            &first,
            Duration::from_millis(10),
            &|| false,
            &mut |_| {},
        )
        .unwrap()
    });
    let second = start_bulk(
        &mut api,
        &products_bulk_query(&[]),
        Duration::from_millis(20),
        Duration::from_secs(5),
        &never,
    )
    .unwrap();
    assert_eq!(
        poller.join().unwrap().object_count,
        state.lock().unwrap().ops[&1].objects
    );
    assert_ne!(second, gid("BulkOperation", 1));
    let mut counts = Vec::new();
    let done = await_bulk(
        &mut api,
        &second,
        Duration::from_millis(10),
        &never,
        &mut |n| counts.push(n),
    )
    .unwrap();
    assert!(done.object_count > 27 && counts.last() == Some(&done.object_count));
    // Expired: the caller is told to run it again.
    state.lock().unwrap().expire_urls = true;
    assert!(
        stream_result(done.url.as_deref().unwrap())
            .unwrap()
            .is_none()
    );
    state.lock().unwrap().expire_urls = false;
    // Failed at the shop.
    state.lock().unwrap().fail_bulk = true;
    let id = start(&mut api).unwrap();
    let e = await_bulk(
        &mut api,
        &id,
        Duration::from_millis(10),
        &never,
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("ended FAILED, error code INTERNAL_SERVER_ERROR"),
        "{e}"
    );
    state.lock().unwrap().fail_bulk = false;
    // Cancelled here: cancelled at the shop too.
    let id = start(&mut api).unwrap();
    let e = await_bulk(
        &mut api,
        &id,
        Duration::from_millis(10),
        &|| true,
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("cancelled"), "{e}");
    let n: u64 = id.rsplit('/').next().unwrap().parse().unwrap();
    assert_eq!(state.lock().unwrap().ops[&n].status, "CANCELED");
}

/// Incremental: only products updated since the mark, a page at a time; deletions by event.
#[test]
fn products_changed_since_a_time_page_by_page_and_deletions() {
    let (mut products, _) = real_products();
    let ids: Vec<u64> = products.keys().copied().take(3).collect();
    for (i, id) in ids.iter().enumerate() {
        let p = products.get_mut(id).unwrap();
        p["updatedAt"] = json!(format!("2026-11-0{}T10:00:00Z", i + 1));
        p["title"] = json!(format!("Edited {i}"));
    }
    let shop = ShopServer::start(products);
    shop.state.lock().unwrap().deletions = vec![
        (42, "2026-11-02T00:00:00Z".into()),
        (43, "2020-01-01T00:00:00Z".into()),
    ];
    let mut api = shop.api(TOKEN);
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = products_page(
            &mut api,
            &[],
            Some("2026-11-01T00:00:00Z"),
            after.as_deref(),
            2,
        )
        .unwrap();
        seen.extend(upserts(page.changes).into_values().map(|p| p.title));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, ["Edited 0", "Edited 1", "Edited 2"]);
    let (deleted, next) = deletions_page(&mut api, "2026-11-01T00:00:00Z", None, 250).unwrap();
    assert_eq!((deleted, next), (vec![42], None));
}

/// A grouped result read a line at a time gives what the whole file gives; an object before
/// its parent is named by its line.
#[test]
fn a_grouped_result_streams_as_the_whole_file_reads() {
    use dartmouth_indexer::shopify::{BulkStream, read_bulk};
    let (mut products, _) = real_products();
    // A product in a collection, with two metafields of which the query asks for one.
    let first = products.values_mut().next().unwrap();
    first["collections"] = json!({"nodes": [{"title": "Summer"}, {"title": "Organic"}]});
    first["metafields"] = json!({"nodes": [
        {"namespace": "custom", "key": "material", "value": "Organic cotton"},
        {"namespace": "custom", "key": "internal_note", "value": "not asked for"}]});
    let (text, lines) = bulk_jsonl(&products, Some(&["custom.material".to_string()]));
    let streamed = upserts(BulkStream::new(text.as_bytes(), "result").collect());
    let whole = upserts(read_bulk(&text, "result"));
    assert_eq!(streamed, whole);
    assert_eq!(streamed.len(), 27);
    assert!(lines > 27 * 2);
    let p = streamed
        .values()
        .find(|p| !p.collections.is_empty())
        .unwrap();
    assert_eq!(p.collections, ["Summer", "Organic"]);
    assert_eq!(
        p.metafields.iter().collect::<Vec<_>>(),
        [(
            &"custom.material".to_string(),
            &"Organic cotton".to_string()
        )]
    );
    assert!(
        p.image
            .as_deref()
            .is_some_and(|u| u.starts_with("https://")),
        "{:?}",
        p.image
    );
    let attributes = p.attributes();
    assert_eq!(attributes["collections"].len(), 2);
    assert!(attributes.contains_key("metafield.custom.material"));
    assert!(
        p.render().contains("Collections: Summer, Organic")
            && p.render().contains("material: Organic cotton")
    );
    let variant = text
        .lines()
        .find(|l| l.contains(r#""__typename":"ProductVariant""#))
        .unwrap();
    let out: Vec<_> = BulkStream::new(format!("{variant}\n{text}").as_bytes(), "result").collect();
    let e = out[0].as_ref().unwrap_err().to_string();
    assert!(
        e.starts_with("result:1: ProductVariant") && e.contains("not before it"),
        "{e}"
    );
    assert_eq!(out.iter().filter(|c| c.is_ok()).count(), 27);
    // Copies under new ids (the larger catalogs of the sync tests) are products of their own.
    let (text, _) = bulk_jsonl(&copies(&products, 2), None);
    let copied = upserts(BulkStream::new(text.as_bytes(), "result").collect());
    assert_eq!(copied.len(), 54);
    assert!(copied.values().any(|p| p.title.ends_with(" #2")));
}
