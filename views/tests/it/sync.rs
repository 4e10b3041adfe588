//! The catalog and document sync through a real SQLite store and shard: idempotent reruns that
//! embed nothing, inventory webhooks that flip availability without re-embedding, full syncs
//! that remove what is missing, filters and facets. (Parsing every Shopify shape is the
//! indexer's own test, `indexer/tests/shopify.rs`.)

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dartmouth_domains::{Role, Store};
use dartmouth_engine::embed::FakeEmbedder;
use dartmouth_engine::{DomainSettings, Embedder, Filter, Mode, ModelSpec, SearchRequest, Shards};
use dartmouth_indexer::{
    Chunker, Format, IndexJob, IndexSummary, Item, Progress, Sizer, SourceOptions, SourceReader,
};
use dartmouth_views::{Applier, StoreSink};

fn shopify(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/datasets/shopify")
        .join(rel)
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
    shards: Shards,
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
        let shards = Shards::open(&dir.path().join("shards")).unwrap();
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
            shards,
            embedder,
        }
    }

    fn applier(&self) -> Applier<'_> {
        Applier {
            store: &self.store,
            shards: &self.shards,
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
        self.index_into(&self.shards, domain, paths, opts, full_sync)
    }

    /// [`World::index`] with the shards of `catalog` (another node's, say) caught up.
    fn index_into(
        &self,
        shards: &Shards,
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
        let applier = Applier {
            shards,
            ..self.applier()
        };
        let target = pass.domains()[0].clone();
        let paths: Vec<PathBuf> = paths.iter().map(|p| p.to_path_buf()).collect();
        IndexJob {
            sink: Arc::new(StoreSink::open(&applier, pass, target).unwrap()),
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
        req.vectors = vec![self.embedder.inner.embed_query(query).unwrap()];
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
    let shards = shopify("admin_rest/products_united_by_blue_demo.json");
    let first = w.index("store", &[&shards], SourceOptions::default(), false);
    assert_eq!((first.added, first.updated, first.failed_count), (25, 0, 0));
    let embedded = w.embedded();
    assert!(embedded >= 25);
    // A rerun writes and embeds nothing.
    let again = w.index("store", &[&shards], SourceOptions::default(), false);
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
            "handle = \"5-panel-hat\" AND color = \"heather green\" AND in_stock = true",
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
        serde_json::from_str(&std::fs::read_to_string(&shards).unwrap()).unwrap();
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
    let shards = shopify("admin_rest/products_united_by_blue_demo.json");
    w.index("store", &[&shards], SourceOptions::default(), false);
    let filter = "handle = \"foraker-canvas-coat\"";
    let chunks = |mode: Mode| {
        let admin = w.rt.block_on(w.store.local_admin()).unwrap();
        let pass =
            w.rt.block_on(w.store.authorize(&admin, &["store".into()], Role::Read))
                .unwrap();
        let reader = w.applier().reader(&pass).unwrap();
        let mut req = SearchRequest::new("canvas coat");
        req.mode = mode;
        req.vectors = vec![w.embedder.inner.embed_query("canvas coat").unwrap()];
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
    let shards = shopify("admin_rest/products_united_by_blue_demo.json");
    w.index("store", &[&shards], SourceOptions::default(), false);
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

/// A snapshot taken while this node's shard is behind the store (another node wrote) restores
/// into an empty store and data directory: the shard copy swaps in at its own sequence and
/// catches up from the restored changelog, and the restored node answers exactly as the
/// original once both are caught up. Then: names, a restore into a store that is not empty,
/// and a snapshot without a shard (rebuilt from the changelog).
#[test]
fn a_snapshot_restores_and_its_shards_resume_from_the_changelog() {
    use dartmouth_views::snapshot;
    let w = World::new();
    let help = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../sample/help-centre");
    let catalog_file = shopify("admin_rest/products_united_by_blue_demo.json");
    w.index("help-centre", &[&help], SourceOptions::default(), false);
    // Another node writes the catalog: the store moves on, this node's `store` shard does not.
    let elsewhere = tempfile::tempdir().unwrap();
    let other = Shards::open(elsewhere.path()).unwrap();
    w.index_into(
        &other,
        "store",
        &[&catalog_file],
        SourceOptions::default(),
        false,
    );
    let admin = w.rt.block_on(w.store.local_admin()).unwrap();
    let domains = w.rt.block_on(w.store.list_domains(&admin)).unwrap();
    let applier = w.applier();
    // The `store` shard exists here, empty.
    let store_domain = domains.iter().find(|d| d.name == "store").unwrap();
    applier.shard(store_domain).unwrap();

    let root = tempfile::tempdir().unwrap();
    let info = snapshot::create(
        &applier,
        &domains,
        root.path(),
        "s1",
        1_795_000_000_000,
        None,
    )
    .unwrap();
    let of = |name: &str| {
        info.domains
            .iter()
            .find(|d| d.name == name)
            .unwrap()
            .clone()
    };
    assert_eq!(
        of("help-centre").shard_seq,
        Some(of("help-centre").store_seq)
    );
    assert_eq!(of("store").shard_seq, Some(0), "{info:?}");
    assert!(of("store").store_seq > 0);
    assert_eq!(snapshot::list(root.path()).unwrap(), vec![info.clone()]);
    assert!(
        snapshot::create(&applier, &domains, root.path(), "s1", 0, None)
            .unwrap_err()
            .to_string()
            .contains("already exists")
    );
    for bad in ["", ".hidden", "a/b", "../up", &"x".repeat(65)] {
        assert!(
            snapshot::create(&applier, &domains, root.path(), bad, 0, None).is_err(),
            "{bad:?}"
        );
    }

    // Restored elsewhere: a new store and data directory.
    let there = tempfile::tempdir().unwrap();
    let store2 =
        w.rt.block_on(Store::open(&Store::sqlite_url(there.path())))
            .unwrap();
    let catalog2 = Shards::open(there.path()).unwrap();
    let applier2 = Applier {
        store: &store2,
        shards: &catalog2,
        runtime: w.rt.handle().clone(),
        events: None,
    };
    let dir = root.path().join("s1");
    let restored = snapshot::restore(&applier2, &dir, None, root.path()).unwrap();
    assert_eq!(restored, info);
    let admin2 = w.rt.block_on(store2.local_admin()).unwrap();
    let domains2 = w.rt.block_on(store2.list_domains(&admin2)).unwrap();
    assert_eq!(
        domains2
            .iter()
            .map(|d| (&d.name, &d.uid))
            .collect::<Vec<_>>(),
        domains
            .iter()
            .map(|d| (&d.name, &d.uid))
            .collect::<Vec<_>>()
    );
    // The copied shards are in place at their sequences; catching up replays the rest.
    for d in &domains2 {
        let shard = applier2.existing_shard(d).unwrap().expect("restored shard");
        assert_eq!(Some(shard.applied_seq()), of(&d.name).shard_seq);
    }
    for (a, b) in domains.iter().zip(&domains2) {
        assert_eq!(applier.catch_up(a).unwrap(), applier2.catch_up(b).unwrap());
    }
    let search = |store: &Store, applier: &Applier<'_>, domain: &str, query: &str| {
        let admin = w.rt.block_on(store.local_admin()).unwrap();
        let pass =
            w.rt.block_on(store.authorize(&admin, &[domain.into()], Role::Read))
                .unwrap();
        let mut req = SearchRequest::new(query);
        req.mode = Mode::Hybrid;
        req.vectors = vec![w.embedder.inner.embed_query(query).unwrap()];
        req.k = 50;
        applier
            .reader(&pass)
            .unwrap()
            .search(&req)
            .unwrap()
            .hits
            .into_iter()
            .map(|h| (h.chunk_id, format!("{:.5}", h.score)))
            .collect::<Vec<_>>()
    };
    for (domain, query) in [
        ("store", "organic cotton shirt"),
        ("help-centre", "returns within days"),
    ] {
        let here = search(&w.store, &applier, domain, query);
        assert!(!here.is_empty(), "{domain}: {query}");
        assert_eq!(
            search(&store2, &applier2, domain, query),
            here,
            "{domain}: {query}"
        );
    }

    // A store that is not empty any more refuses a restore, and keeps what it has.
    let err = snapshot::restore(&applier2, &dir, None, root.path()).unwrap_err();
    assert!(
        err.to_string()
            .contains("restores only into an empty store"),
        "{err}"
    );
    assert_eq!(
        w.rt.block_on(store2.list_domains(&admin2)).unwrap().len(),
        domains.len()
    );

    // Without its shards (taken on a node that held none), every domain is rebuilt from the
    // store's changelog and answers the same.
    let bare = tempfile::tempdir().unwrap();
    let store3 =
        w.rt.block_on(Store::open(&Store::sqlite_url(bare.path())))
            .unwrap();
    let catalog3 = Shards::open(bare.path()).unwrap();
    let applier3 = Applier {
        store: &store3,
        shards: &catalog3,
        runtime: w.rt.handle().clone(),
        events: None,
    };
    let nowhere = tempfile::tempdir().unwrap();
    let no_shards = Shards::open(nowhere.path()).unwrap();
    let without = Applier {
        shards: &no_shards,
        ..w.applier()
    };
    let info3 = snapshot::create(&without, &domains, root.path(), "none", 2, None).unwrap();
    assert!(info3.domains.iter().all(|d| d.shard_seq.is_none()));
    snapshot::restore(&applier3, &root.path().join("none"), None, root.path()).unwrap();
    let admin3 = w.rt.block_on(store3.local_admin()).unwrap();
    for d in w.rt.block_on(store3.list_domains(&admin3)).unwrap() {
        applier3.catch_up(&d).unwrap();
    }
    for (domain, query) in [
        ("store", "organic cotton shirt"),
        ("help-centre", "returns within days"),
    ] {
        assert_eq!(
            search(&store3, &applier3, domain, query),
            search(&w.store, &applier, domain, query),
            "{domain}: {query}"
        );
    }
}

/// An encrypted snapshot: no file holds the store's or the shards' text, `snapshot.json` names
/// no domain; without the key, with another key, or with one byte of any file flipped, a restore
/// says so and restores nothing; with its key it restores what a plain one does.
#[test]
fn an_encrypted_snapshot_restores_only_with_its_key_and_unaltered() {
    use base64::Engine as _;
    use dartmouth_views::seal::SnapshotKey;
    use dartmouth_views::snapshot;
    let w = World::new();
    let help = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../sample/help-centre");
    w.index("help-centre", &[&help], SourceOptions::default(), false);
    let admin = w.rt.block_on(w.store.local_admin()).unwrap();
    let domains = w.rt.block_on(w.store.list_domains(&admin)).unwrap();
    let applier = w.applier();
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = SnapshotKey::parse(&b64.encode([42u8; 32])).unwrap();
    let other = SnapshotKey::parse(&b64.encode([43u8; 32])).unwrap();
    let root = tempfile::tempdir().unwrap();
    let info = snapshot::create(&applier, &domains, root.path(), "sealed", 5, Some(&key)).unwrap();
    assert!(info.sealing.is_some() && !info.domains.is_empty());
    let dir = root.path().join("sealed");
    // No file holds a word of the help centre, nor a domain's name in the clear.
    let mut files = Vec::new();
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                files.push(e.path());
            }
        }
    }
    assert!(files.len() > 5, "{files:?}");
    for f in &files {
        assert!(
            !f.to_string_lossy().contains("help-centre"),
            "a name in the clear: {f:?}"
        );
        let bytes = std::fs::read(f).unwrap();
        for word in ["refund", "warranty", "help-centre", "admin"] {
            assert!(
                !bytes.windows(word.len()).any(|w| w == word.as_bytes()),
                "{} holds `{word}`",
                f.display()
            );
        }
    }
    let listed = snapshot::list(root.path()).unwrap();
    assert!(listed[0].domains.is_empty() && listed[0].sealing.is_some());

    let fresh = || {
        let there = tempfile::tempdir().unwrap();
        let store =
            w.rt.block_on(Store::open(&Store::sqlite_url(there.path())))
                .unwrap();
        (there, store)
    };
    let restore = |store: &Store, there: &tempfile::TempDir, key: Option<&SnapshotKey>| {
        let shards = Shards::open(there.path()).unwrap();
        let applier = Applier {
            store,
            shards: &shards,
            runtime: w.rt.handle().clone(),
            events: None,
        };
        snapshot::restore(&applier, &dir, key, &there.path().join("work"))
    };
    let empty = |store: &Store| {
        let admin = w.rt.block_on(store.local_admin()).unwrap();
        w.rt.block_on(store.list_domains(&admin))
            .unwrap()
            .is_empty()
    };
    let (there, store) = fresh();
    let e = restore(&store, &there, None).unwrap_err().to_string();
    assert!(e.contains("is encrypted: give its key"), "{e}");
    let e = restore(&store, &there, Some(&other))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not the key it was encrypted with"), "{e}");
    assert!(empty(&store));
    // One flipped byte in each file in turn: refused, naming the file, nothing restored, and
    // no opened copy left behind.
    for f in &files {
        if f.ends_with("snapshot.json") {
            continue;
        }
        let original = std::fs::read(f).unwrap();
        let mut flipped = original.clone();
        let at = original.len() / 2;
        flipped[at] ^= 0x01;
        std::fs::write(f, &flipped).unwrap();
        let e = restore(&store, &there, Some(&key)).unwrap_err().to_string();
        std::fs::write(f, &original).unwrap();
        let rel = f.strip_prefix(&dir).unwrap().to_string_lossy().into_owned();
        assert!(
            e.contains(&rel) && e.contains("damaged or was altered"),
            "{rel}: {e}"
        );
        assert!(empty(&store), "{rel}");
        let work = there.path().join("work");
        assert!(
            std::fs::read_dir(&work).map_or(true, |mut d| d.next().is_none()),
            "{rel}: scratch left"
        );
    }
    // snapshot.json altered (its clear name no longer the sealed one's): refused.
    let info_path = dir.join("snapshot.json");
    let clear = std::fs::read_to_string(&info_path).unwrap();
    std::fs::write(&info_path, clear.replace("\"sealed\"", "\"other\"")).unwrap();
    let e = restore(&store, &there, Some(&key)).unwrap_err().to_string();
    assert!(e.contains("does not match its sealed manifest"), "{e}");
    std::fs::write(&info_path, &clear).unwrap();
    assert!(empty(&store));
    // A key given for a plain snapshot: refused (it could be anything).
    let plain = snapshot::create(&applier, &domains, root.path(), "plain", 6, None).unwrap();
    let plain_dir = root.path().join(&plain.name);
    let shards_here = Shards::open(there.path()).unwrap();
    let applier_here = Applier {
        store: &store,
        shards: &shards_here,
        runtime: w.rt.handle().clone(),
        events: None,
    };
    let e = snapshot::restore(
        &applier_here,
        &plain_dir,
        Some(&key),
        &there.path().join("work"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("is not encrypted, and a snapshot key was given"),
        "{e}"
    );
    drop(applier_here);
    drop(shards_here);
    assert!(empty(&store));
    // With its key: everything back, and the same answers as the original.
    let restored = restore(&store, &there, Some(&key)).unwrap();
    assert_eq!(restored.domains, info.domains);
    let admin2 = w.rt.block_on(store.local_admin()).unwrap();
    let names: Vec<String> =
        w.rt.block_on(store.list_domains(&admin2))
            .unwrap()
            .into_iter()
            .map(|d| d.name)
            .collect();
    let before: Vec<&str> = domains.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, before);
}
