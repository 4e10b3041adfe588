//! Every file in `../shared/datasets/shopify/` parsed with the product and variant counts of
//! its README; one malformed file per format; and the sync itself through a real SQLite store
//! and shard: idempotent reruns that embed nothing, inventory webhooks that flip availability
//! without re-embedding, full syncs that remove what is missing, filters and facets.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dartmouth_domains::{Role, Store};
use dartmouth_engine::embed::FakeEmbedder;
use dartmouth_engine::{
    AttrValue, Catalog, DomainSettings, Embedder, Filter, Mode, ModelSpec, SearchRequest,
};
use dartmouth_indexer::shopify::{Change, Product, read_bulk, read_csv, read_json, webhook};
use dartmouth_indexer::{
    Applier, Chunker, Format, IndexJob, IndexSummary, Item, Progress, Sizer, SourceOptions,
    SourceReader, StoreSink,
};

fn shopify(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/datasets/shopify")
        .join(rel)
}

fn products(changes: &[dartmouth_indexer::Result<Change>]) -> Vec<&Product> {
    changes
        .iter()
        .filter_map(|c| match c {
            Ok(Change::Upsert(p)) => Some(p.as_ref()),
            _ => None,
        })
        .collect()
}

fn counts(changes: &[dartmouth_indexer::Result<Change>]) -> (usize, usize) {
    let p = products(changes);
    (p.len(), p.iter().map(|p| p.variants.len()).sum())
}

fn json_file(rel: &str) -> Vec<dartmouth_indexer::Result<Change>> {
    let text = std::fs::read_to_string(shopify(rel)).unwrap();
    read_json(serde_json::from_str(&text).unwrap(), rel)
}

#[test]
fn admin_rest_files() {
    let docs = json_file("admin_rest/products_docs_example.json");
    assert_eq!(counts(&docs), (2, 5));
    let ipod = products(&docs)[0];
    assert_eq!(ipod.id, Some(632910392));
    assert_eq!(ipod.tags, ["Emotive", "Flash Memory", "MP3", "Music"]);
    assert!(!ipod.description.contains('<'), "{}", ipod.description);
    let demo = json_file("admin_rest/products_united_by_blue_demo.json");
    assert_eq!(counts(&demo), (25, 96));
    assert!(demo.iter().all(Result::is_ok));
    let cap = products(&demo)[0];
    assert_eq!(cap.variants[0].price.unwrap().micros(), 48_000_000);
    assert_eq!(cap.variants[0].inventory_quantity, Some(2));
    assert_eq!(cap.variants[0].inventory_item_id, Some(48717910966438));
    assert_eq!(cap.status.as_deref(), Some("active"));
}

#[test]
fn storefront_file() {
    let changes = json_file("storefront/products_annies_farm.json");
    assert_eq!(counts(&changes), (17, 17));
    let p = products(&changes)[0];
    assert_eq!(p.variants[0].available, Some(true));
    assert_eq!(p.status, None);
    // Storefront tags arrive as an array; a trailing space in the vendor is trimmed.
    assert_eq!(p.vendor, "Annie's Organic Farm");
}

#[test]
fn csv_exports_both_files() {
    let f = std::fs::File::open(shopify("csv/product_template_official.csv")).unwrap();
    let template: Vec<_> = read_csv(f, "template.csv").collect();
    assert!(template.iter().all(Result::is_ok), "{template:?}");
    assert_eq!(counts(&template), (3, 16));
    let shirt = products(&template)[0];
    assert_eq!(shirt.handle, "example-shirt");
    assert_eq!(shirt.options[0].name, "Color");
    assert_eq!(
        shirt.category.as_deref().map(|c| c.starts_with("Apparel")),
        Some(true)
    );
    let f = std::fs::File::open(shopify("csv/products_export_life_made_magic.csv")).unwrap();
    let export: Vec<_> = read_csv(f, "export.csv").collect();
    assert!(export.iter().all(Result::is_ok));
    assert_eq!(counts(&export), (338, 3675));
    // Multi-line quoted HTML descriptions come out as text.
    assert!(
        products(&export)
            .iter()
            .any(|p| p.description.contains('\n') && !p.description.contains("<p>"))
    );
}

#[test]
fn csv_2025_dialect_and_malformed_rows() {
    let csv = "Title,URL handle,Description,Vendor,Product category,Type,Tags,Published on online store,Status,SKU,Barcode,Option1 name,Option1 value,Option2 name,Option2 value,Price,Compare-at price,Inventory tracker,Inventory quantity,Continue selling when out of stock\n\
Blue Hoodie,blue-hoodie,\"<p>Warm.</p>\n<p>Fleece lined.</p>\",Acme,Apparel,Hoodies,\"winter, fleece\",TRUE,Active,HD-M,,Size,M,Color,Blue,45.00,60.00,shopify,3,FALSE\n\
,blue-hoodie,,,,,,,,HD-L,,,L,,Blue,45.00,,shopify,0,FALSE\n\
Red Cap,red-cap,Cap,Acme,,Hats,,TRUE,Active,RC-1,,,,,,abc,,,,\n\
Green Mug,green-mug,Mug,Acme,,Mugs,,TRUE,Active,GM-1,,,,,,12.5,,,,\n\
Short,short,\n";
    let items: Vec<_> = read_csv(csv.as_bytes(), "new.csv").collect();
    assert_eq!(items.len(), 4, "{items:?}");
    let hoodie = match &items[0] {
        Ok(Change::Upsert(p)) => p,
        other => panic!("{other:?}"),
    };
    assert_eq!(hoodie.variants.len(), 2);
    assert_eq!(hoodie.tags, ["winter", "fleece"]);
    assert_eq!(hoodie.variants[1].options, ["L", "Blue"]);
    assert!(hoodie.variants[0].in_stock() && !hoodie.variants[1].in_stock());
    let attrs = hoodie.attributes();
    assert_eq!(attrs["available.size"], [AttrValue::Keyword("M".into())]);
    assert_eq!(attrs["status"], [AttrValue::Keyword("active".into())]);
    // A bad price fails its product with the line and the column; the next product goes on.
    let e = items[1].as_ref().unwrap_err().to_string();
    assert!(e.starts_with("new.csv:5: field `Price`"), "{e}");
    assert!(matches!(&items[2], Ok(Change::Upsert(p)) if p.handle == "green-mug"));
    let e = items[3].as_ref().unwrap_err().to_string();
    assert!(e.starts_with("new.csv:7: row has 3 fields"), "{e}");

    let unknown: Vec<_> = read_csv("Name,Price\nx,1\n".as_bytes(), "other.csv").collect();
    assert_eq!(unknown.len(), 1);
    let e = unknown[0].as_ref().unwrap_err().to_string();
    assert!(e.starts_with("other.csv:1: unknown header dialect"), "{e}");
}

#[test]
fn bulk_files_join_children_in_any_order() {
    let read = |rel: &str| {
        read_bulk(
            &std::fs::read_to_string(shopify(&format!("graphql_bulk_jsonl/{rel}"))).unwrap(),
            rel,
        )
    };
    let products_file = read("products.jsonl");
    assert_eq!(counts(&products_file), (1, 2));
    let p = products(&products_file)[0];
    assert_eq!(p.id, Some(123));
    assert_eq!(p.status.as_deref(), Some("active"));
    // The images file selects no titles: its two products are reported, not indexed blank.
    let images = read("product_images.jsonl");
    assert_eq!(images.len(), 2);
    assert!(
        images
            .iter()
            .all(|r| r.as_ref().is_err_and(|e| e.to_string().contains("`title`")))
    );
    // Variants whose product is not in the file are reported with their line.
    let variants = read("product_variants.jsonl");
    let errors: Vec<String> = variants
        .iter()
        .filter_map(|r| r.as_ref().err().map(ToString::to_string))
        .collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].starts_with("product_variants.jsonl:1: ProductVariant"));
    assert!(errors[0].contains("gid://shopify/Product/111, which is not in the file"));
    let levels = read("inventory_levels.jsonl");
    assert_eq!(levels.len(), 2);
    match &levels[0] {
        Ok(Change::Inventory(u)) => {
            assert_eq!(u.inventory_item_id, 42185200631997);
            assert_eq!(u.location_id, Some(63590301885));
            assert_eq!(u.available, Some(15));
        }
        other => panic!("{other:?}"),
    }
    // Children before their parent, and a child whose parent is missing.
    let shuffled = "{\"__typename\":\"ProductVariant\",\"id\":\"gid://shopify/ProductVariant/2\",\"title\":\"M\",\"price\":\"9.50\",\"__parentId\":\"gid://shopify/Product/1\"}\n\
{\"__typename\":\"Product\",\"id\":\"gid://shopify/Product/1\",\"title\":\"Mug\",\"tags\":[\"a\"]}\n\
{\"__typename\":\"ProductVariant\",\"id\":\"gid://shopify/ProductVariant/3\",\"__parentId\":\"gid://shopify/Product/9\"}\n\
not json\n";
    let got = read_bulk(shuffled, "b.jsonl");
    assert_eq!(counts(&got), (1, 1));
    let errors: Vec<String> = got
        .iter()
        .filter_map(|r| r.as_ref().err().map(ToString::to_string))
        .collect();
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("b.jsonl:4: malformed JSON")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("b.jsonl:3: ProductVariant")),
        "{errors:?}"
    );
}

#[test]
fn webhook_payloads() {
    let read = |rel: &str| {
        let text = std::fs::read_to_string(shopify(&format!("webhooks/{rel}"))).unwrap();
        webhook(serde_json::from_str(&text).unwrap(), None, rel)
    };
    match read("products_update.metadata.2026-04.json").unwrap() {
        // The gid wins over the JSON number JavaScript rounded.
        Change::Upsert(p) => {
            assert_eq!(p.id, Some(788032119674292922));
            assert_eq!(p.variants.len(), 2);
            assert_eq!(p.variants[0].compare_at_price.unwrap().micros(), 24_990_000);
        }
        other => panic!("{other:?}"),
    }
    // The anonymised exemplar says "example string" for every price: refused, naming it.
    let e = read("products_webhook.anonymized_exemplar.2025-04.json").unwrap_err();
    assert!(e.to_string().contains("variant 1: field `price`"), "{e}");
    assert!(matches!(
        read("products_delete.metadata.2026-04.json").unwrap(),
        Change::Delete(788032119674292900)
    ));
    match read("inventory_levels_webhook.anonymized_exemplar.2025-04.json").unwrap() {
        Change::Inventory(u) => assert_eq!((u.inventory_item_id, u.available), (123, Some(123))),
        other => panic!("{other:?}"),
    }
    match read("inventory_levels_update.metadata.2024-01.json").unwrap() {
        Change::Inventory(u) => assert_eq!(u.available, None),
        other => panic!("{other:?}"),
    }
    match read("inventory_items_update.metadata.2026-04.json").unwrap() {
        Change::Inventory(u) => assert_eq!(u.tracked, Some(true)),
        other => panic!("{other:?}"),
    }
    let e = webhook(serde_json::json!({"x": 1}), None, "w.json").unwrap_err();
    assert!(
        e.to_string()
            .contains("w.json: cannot tell the webhook topic"),
        "{e}"
    );
    let e = webhook(
        serde_json::json!({"id": 1.5}),
        Some("products/delete"),
        "w.json",
    )
    .unwrap_err();
    assert!(e.to_string().contains("field `id`"), "{e}");
}

#[test]
fn malformed_json_names_the_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("products.json");
    std::fs::write(&p, "{\"products\": [\n{\"title\": \"a\",\n").unwrap();
    let items: Vec<_> = SourceReader::open(&[p], None).unwrap().collect();
    assert_eq!(items.len(), 1);
    let e = items[0].as_ref().unwrap_err().to_string();
    assert!(e.contains("products.json:3: malformed JSON"), "{e}");
}

/// Counts what the model is asked to embed.
struct Counting {
    inner: FakeEmbedder,
    texts: AtomicUsize,
}

impl Embedder for Counting {
    fn spec(&self) -> &ModelSpec {
        self.inner.spec()
    }

    fn embed_batch(&self, texts: &[&str]) -> dartmouth_engine::Result<Vec<Vec<f32>>> {
        self.texts.fetch_add(texts.len(), Ordering::SeqCst);
        self.inner.embed_batch(texts)
    }
}

struct World {
    _dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    store: Store,
    catalog: Catalog,
    embedder: Counting,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let store = rt
            .block_on(Store::open(&Store::sqlite_url(dir.path())))
            .unwrap();
        let catalog = Catalog::open(&dir.path().join("shards")).unwrap();
        let embedder = Counting {
            inner: FakeEmbedder::new(32),
            texts: AtomicUsize::new(0),
        };
        let settings = serde_json::to_value(DomainSettings::new(embedder.spec().clone())).unwrap();
        rt.block_on(async {
            let admin = store.local_admin().await.unwrap();
            for d in ["store", "help-centre"] {
                store.create_domain(&admin, d, "", &settings).await.unwrap();
            }
        });
        World {
            _dir: dir,
            rt,
            store,
            catalog,
            embedder,
        }
    }

    fn applier(&self) -> Applier<'_> {
        Applier {
            store: &self.store,
            catalog: &self.catalog,
            runtime: self.rt.handle().clone(),
            events: None,
        }
    }

    fn index(
        &self,
        domain: &str,
        paths: &[&Path],
        opts: SourceOptions,
        full_sync: bool,
    ) -> IndexSummary {
        let admin = self.rt.block_on(self.store.local_admin()).unwrap();
        let pass = self
            .rt
            .block_on(self.store.authorize(&admin, &[domain.into()], Role::Write))
            .unwrap();
        let applier = self.applier();
        let target = pass.domains()[0].clone();
        let shard = applier.shard(&target).unwrap();
        let paths: Vec<PathBuf> = paths.iter().map(|p| p.to_path_buf()).collect();
        IndexJob {
            sink: Arc::new(StoreSink {
                applier: &applier,
                pass,
                domain: target,
                shard,
            }),
            embedder: &self.embedder,
            chunker: Chunker::new(Sizer::ApproxChars, 256, 32),
            batch_docs: 64,
            stop_on_error: false,
            full_sync,
        }
        .run(
            SourceReader::open_with(&paths, opts).unwrap(),
            &Progress::hidden(),
        )
        .unwrap()
    }

    fn search(
        &self,
        domain: &str,
        query: &str,
        filter: &str,
        facets: &[&str],
    ) -> dartmouth_engine::SearchResponse {
        let admin = self.rt.block_on(self.store.local_admin()).unwrap();
        let pass = self
            .rt
            .block_on(self.store.authorize(&admin, &[domain.into()], Role::Read))
            .unwrap();
        let reader = self.applier().reader(&pass).unwrap();
        let mut req = SearchRequest::new(query);
        req.mode = Mode::Hybrid;
        // Query vectors are not counted: only what indexing embeds is.
        req.vector = Some(self.embedder.inner.embed_query(query).unwrap());
        req.k = 20;
        req.collapse = true;
        if !filter.is_empty() {
            req.filter = Some(Filter::parse(filter).unwrap());
        }
        req.facets = facets.iter().map(|f| f.to_string()).collect();
        reader.search(&req).unwrap()
    }

    fn embedded(&self) -> usize {
        self.embedder.texts.load(Ordering::SeqCst)
    }
}

#[test]
fn catalog_sync_is_idempotent_and_inventory_flips_without_embedding() {
    let w = World::new();
    let catalog = shopify("admin_rest/products_united_by_blue_demo.json");
    let first = w.index("store", &[&catalog], SourceOptions::default(), false);
    assert_eq!((first.added, first.updated, first.failed_count), (25, 0, 0));
    let embedded = w.embedded();
    assert!(embedded >= 25);
    // A rerun writes and embeds nothing.
    let again = w.index("store", &[&catalog], SourceOptions::default(), false);
    assert_eq!((again.added, again.updated, again.unchanged), (0, 0, 25));
    assert_eq!(w.embedded(), embedded);

    // The cap's Heather Green variant (inventory item 48717910966438) sells out.
    let cap_filter = "handle = \"5-panel-hat\"";
    let before = w.search("store", "camp cap", cap_filter, &[]);
    assert!(
        before.hits[0]
            .text
            .contains("Heather Green (SKU 4255): 48.00 [in stock]"),
        "{}",
        before.hits[0].text
    );
    let tmp = tempfile::tempdir().unwrap();
    let hook = tmp.path().join("inventory.json");
    std::fs::write(
        &hook,
        r#"{"inventory_item_id": 48717910966438, "location_id": 5, "available": 0}"#,
    )
    .unwrap();
    let s = w.index(
        "store",
        &[&hook],
        SourceOptions {
            format: Some(Format::ShopifyWebhook),
            ..Default::default()
        },
        false,
    );
    assert_eq!((s.updated, s.embedded_chunks), (1, 0));
    assert_eq!(w.embedded(), embedded, "a stock change re-embedded");
    let after = w.search("store", "camp cap", cap_filter, &[]);
    assert!(
        after.hits[0]
            .text
            .contains("Heather Green (SKU 4255): 48.00 [sold out]")
    );
    assert!(
        w.search(
            "store",
            "camp cap",
            "handle = \"5-panel-hat\" AND available.color = \"Heather Green\"",
            &[]
        )
        .hits
        .is_empty()
    );
    // An update for an item no product holds is a failure with its place.
    std::fs::write(
        &hook,
        r#"{"inventory_item_id": 1, "location_id": 5, "available": 3}"#,
    )
    .unwrap();
    let s = w.index("store", &[&hook], SourceOptions::default(), false);
    assert_eq!(s.failed_count, 1);
    assert!(s.failed[0].contains("no product in the domain has inventory item 1"));

    // Filters and facets over the catalog.
    let r = w.search(
        "store",
        "shirt",
        "in_stock = true AND price <= 50 AND NOT (product_type IN (\"Accessories\"))",
        &["vendor", "product_type"],
    );
    assert!(!r.hits.is_empty());
    assert_eq!(
        r.facets["vendor"][0].value,
        serde_json::json!("United By Blue")
    );
    let total: u64 = r.facets["product_type"].iter().map(|c| c.count).sum();
    assert_eq!(total, r.filtered_documents);

    // A full sync with two products keeps them and removes the other 23.
    let two = tmp.path().join("two.json");
    let all: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&catalog).unwrap()).unwrap();
    std::fs::write(
        &two,
        serde_json::to_string(&all.as_array().unwrap()[..2]).unwrap(),
    )
    .unwrap();
    let s = w.index("store", &[&two], SourceOptions::default(), true);
    assert_eq!((s.deleted, s.unchanged + s.updated), (23, 2));
    assert_eq!(w.search("store", "the", "", &[]).filtered_documents, 2);
    // A products/delete webhook removes one.
    let del = tmp.path().join("delete.json");
    let id = all[0]["id"].as_u64().unwrap();
    std::fs::write(&del, format!(r#"{{"id": {id}}}"#)).unwrap();
    let s = w.index(
        "store",
        &[&del],
        SourceOptions {
            format: Some(Format::ShopifyWebhook),
            ..Default::default()
        },
        false,
    );
    assert_eq!(s.deleted, 1);
    assert_eq!(w.search("store", "the", "", &[]).filtered_documents, 1);
}

#[test]
fn documents_of_every_kind_with_headings_and_ranges() {
    let w = World::new();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("docs");
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(
        dir.join("policies/returns.md"),
        "# Returns\n\nReturn within 30 days.\n\n## Sale items\n\nSale items are final sale.\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("shipping.html"),
        "<html><head><title>Shipping</title><script>var secret=1;</script></head><body>\
         <h1>Shipping</h1><p>We ship worldwide.</p><h2>Express</h2><p>Express delivery takes two days.</p></body></html>",
    )
    .unwrap();
    std::fs::write(dir.join("care.txt"), "Wash cold. Tumble dry low.").unwrap();
    // Long enough that each section is its own chunk.
    let sections: String = ["Sizing", "Fabrics", "Laundry"]
        .iter()
        .map(|s| {
            format!(
                "<h2>{s}</h2><p>{}</p>",
                format!("{s} advice sentence here. ").repeat(60)
            )
        })
        .collect();
    std::fs::write(
        dir.join("guide.html"),
        format!("<body><h1>Guide</h1>{sections}</body>"),
    )
    .unwrap();
    std::fs::write(
        dir.join("warranty.pdf"),
        dartmouth_indexer::pdf::make_pdf(&[
            &["Warranty terms"],
            &["Two year limited warranty on all hoodies."],
        ]),
    )
    .unwrap();
    std::fs::write(
        dir.join("faq.jsonl"),
        "{\"id\":\"faq-1\",\"question\":\"Do you gift wrap?\",\"answer\":\"Yes, for 5 dollars.\",\"topic\":\"gifts\"}\n",
    )
    .unwrap();
    let s = w.index(
        "help-centre",
        &[&dir],
        SourceOptions {
            fields: dartmouth_indexer::RecordFields {
                title: "question".into(),
                text: "answer".into(),
                ..Default::default()
            },
            ..Default::default()
        },
        false,
    );
    assert_eq!((s.added, s.failed_count), (6, 0), "{:?}", s.failed);
    let r = w.search("help-centre", "laundry advice", "", &[]);
    let hit = r.hits.iter().find(|h| h.doc_id == "guide.html").unwrap();
    assert_eq!(hit.heading.as_deref(), Some("Guide > Laundry"));
    assert!(hit.char_start > 0);
    let r = w.search("help-centre", "express delivery", "", &[]);
    let hit = r.hits.iter().find(|h| h.doc_id == "shipping.html").unwrap();
    // One chunk holds the page; its text keeps the headings as Markdown.
    assert_eq!(hit.heading.as_deref(), Some("Shipping"));
    assert!(
        hit.text.contains("## Express\n\nExpress delivery"),
        "{}",
        hit.text
    );
    assert_eq!(hit.title, "Shipping");
    assert!(!hit.text.contains("secret"));
    let r = w.search("help-centre", "sale items final", "", &[]);
    let hit = r
        .hits
        .iter()
        .find(|h| h.doc_id == "policies/returns.md")
        .unwrap();
    assert_eq!(hit.heading.as_deref(), Some("Returns"));
    assert!(hit.text.contains("## Sale items"));
    let r = w.search("help-centre", "warranty hoodies", "", &[]);
    assert!(
        r.hits
            .iter()
            .any(|h| h.doc_id == "warranty.pdf" && h.text.contains("Two year"))
    );
    let r = w.search("help-centre", "gift wrap", "topic = \"gifts\"", &[]);
    assert_eq!(r.hits[0].doc_id, "faq-1");
    assert_eq!(r.hits[0].title, "Do you gift wrap?");
}

#[test]
fn a_bad_record_is_reported_and_the_rest_written() {
    let w = World::new();
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("catalog.json");
    std::fs::write(
        &p,
        r#"{"products":[{"id":1,"title":"Mug","variants":[{"id":2,"price":"9.00"}]},
                         {"id":3,"title":"Cup","variants":[{"id":4,"price":"nine"}]}]}"#,
    )
    .unwrap();
    let s = w.index("store", &[&p], SourceOptions::default(), true);
    assert_eq!((s.added, s.failed_count, s.deleted), (1, 1, 0));
    assert!(
        s.failed[0].contains("products[1]: variant 1: field `price`"),
        "{:?}",
        s.failed
    );
    assert!(s.notes[0].contains("full sync deleted nothing"));
    let items: Vec<Item> = SourceReader::open(&[p], None)
        .unwrap()
        .filter_map(Result::ok)
        .collect();
    assert_eq!(items.len(), 1);
}

#[test]
fn every_chunk_of_an_updated_product_is_found() {
    let w = World::new();
    let catalog = shopify("admin_rest/products_united_by_blue_demo.json");
    w.index("store", &[&catalog], SourceOptions::default(), false);
    let filter = "handle = \"foraker-canvas-coat\"";
    let chunks = |mode: Mode| {
        let admin = w.rt.block_on(w.store.local_admin()).unwrap();
        let pass =
            w.rt.block_on(w.store.authorize(&admin, &["store".into()], Role::Read))
                .unwrap();
        let reader = w.applier().reader(&pass).unwrap();
        let mut req = SearchRequest::new("canvas coat");
        req.mode = mode;
        req.vector = Some(w.embedder.inner.embed_query("canvas coat").unwrap());
        req.k = 50;
        req.filter = Some(Filter::parse(filter).unwrap());
        reader.search(&req).unwrap().hits.len()
    };
    let before = chunks(Mode::Vector);
    assert!(before >= 2, "{before}");
    let tmp = tempfile::tempdir().unwrap();
    let hook = tmp.path().join("inventory.json");
    for (n, available) in [0, 4, 0].into_iter().enumerate() {
        std::fs::write(
            &hook,
            format!(r#"{{"inventory_item_id": 48717911228582, "location_id": 1, "available": {available}}}"#),
        )
        .unwrap();
        let s = w.index("store", &[&hook], SourceOptions::default(), false);
        assert_eq!(s.updated, 1);
        assert_eq!(chunks(Mode::Vector), before, "vector, update {n}");
        assert_eq!(chunks(Mode::Hybrid), before, "hybrid, update {n}");
    }
}

#[test]
fn a_stock_change_after_a_delete_does_not_resurrect_and_full_sync_needs_documents() {
    let w = World::new();
    let catalog = shopify("admin_rest/products_united_by_blue_demo.json");
    w.index("store", &[&catalog], SourceOptions::default(), false);
    let tmp = tempfile::tempdir().unwrap();
    let delete = tmp.path().join("1-delete.json");
    std::fs::write(&delete, r#"{"id": 8557565378726}"#).unwrap();
    let stock = tmp.path().join("2-stock.json");
    std::fs::write(
        &stock,
        r#"{"inventory_item_id": 48717910966438, "location_id": 1, "available": 3}"#,
    )
    .unwrap();
    let webhooks = SourceOptions {
        format: Some(Format::ShopifyWebhook),
        ..Default::default()
    };
    let s = w.index("store", &[&delete, &stock], webhooks.clone(), false);
    assert_eq!((s.deleted, s.updated, s.failed_count), (1, 0, 1), "{s:?}");
    assert!(
        s.failed[0].contains("was deleted earlier"),
        "{:?}",
        s.failed
    );
    assert_eq!(w.search("store", "the", "", &[]).filtered_documents, 24);
    // A full sync whose input holds only stock changes deletes nothing.
    let other = tmp.path().join("3-stock.json");
    std::fs::write(
        &other,
        r#"{"inventory_item_id": 48717909655718, "location_id": 1, "available": 3}"#,
    )
    .unwrap();
    let s = w.index("store", &[&other], webhooks, true);
    assert_eq!((s.updated, s.deleted), (1, 0));
    assert!(s.notes[0].contains("deleted nothing"), "{:?}", s.notes);
    assert_eq!(w.search("store", "the", "", &[]).filtered_documents, 24);
}
