//! `bench shopify`: the catalog pipeline without embedding (parse + normalise + chunk with the
//! model's tokenizer) in products/s on one and on two threads, per real export format; then how
//! long an inventory webhook takes from receipt to visible in a filtered search, through the
//! store, with the real model (which the update must not call).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use dartmouth_domains::{Role, Store};
use dartmouth_engine::{DomainSettings, Embedder, Filter, Mode, SearchRequest, Shards};
use dartmouth_indexer::shopify::webhook;
use dartmouth_indexer::{Chunker, IndexJob, Item, Progress, Sizer, SourceReader, shopify_item};
use dartmouth_views::{Applier, StoreSink};
use serde_json::json;

#[derive(clap::Args)]
pub struct ShopifyArgs {
    /// The Shopify sample directory (its CSV and REST exports are parsed).
    #[arg(long, default_value = "../shared/datasets/shopify")]
    pub data: PathBuf,
    /// Seconds each throughput figure runs for (repeating the file).
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Inventory webhooks sent one after another.
    #[arg(long, default_value_t = 100)]
    pub webhooks: usize,
    /// Also write the figures as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Parses, normalises and chunks `file` repeatedly for `seconds`; products per second.
fn throughput(file: &Path, model_dir: &Path, seconds: f64, chunk: bool) -> Result<(f64, usize)> {
    let settings_tokens = 256;
    let chunker = Chunker::new(Sizer::from_model_dir(model_dir)?, settings_tokens, 32);
    let started = Instant::now();
    let mut products = 0usize;
    let mut chunks = 0usize;
    while started.elapsed().as_secs_f64() < seconds {
        for item in SourceReader::open(&[file.to_path_buf()], None)? {
            if let Item::Doc(d) = item? {
                products += 1;
                if chunk {
                    chunks += chunker.chunk(&d.title, &d.text, d.format)?.len();
                }
            }
        }
    }
    Ok((products as f64 / started.elapsed().as_secs_f64(), chunks))
}

fn quantiles(mut v: Vec<Duration>) -> (f64, f64, f64) {
    v.sort();
    let at = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3;
    (at(0.5), at(0.99), at(1.0))
}

pub fn run(args: &ShopifyArgs, model_dir: &Path, embedder: Arc<dyn Embedder>) -> Result<()> {
    let mut report = json!({});
    println!("parse + normalise + chunk (model tokenizer, 256-token chunks), products/s:");
    for (name, rel) in [
        ("csv export", "csv/products_export_life_made_magic.csv"),
        ("admin REST", "admin_rest/products_united_by_blue_demo.json"),
        ("storefront", "storefront/products_annies_farm.json"),
    ] {
        let file = args.data.join(rel);
        let (parse_only, _) = throughput(&file, model_dir, args.seconds, false)?;
        let (one, chunks) = throughput(&file, model_dir, args.seconds, true)?;
        let two: Vec<f64> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..2)
                .map(|_| s.spawn(|| throughput(&file, model_dir, args.seconds, true)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .map_err(|_| anyhow::anyhow!("thread panicked"))?
                        .map(|r| r.0)
                })
                .collect::<Result<Vec<f64>>>()
        })?;
        let two: f64 = two.iter().sum();
        println!(
            "  {name:<11} parse+normalise {parse_only:>8.0}/s   +chunk 1 thread {one:>7.0}/s   2 threads {two:>7.0}/s   ({chunks} chunks)"
        );
        report[name] = json!({
            "parse_normalise_per_s": parse_only,
            "with_chunking_1_thread_per_s": one,
            "with_chunking_2_threads_per_s": two,
        });
    }

    // Inventory webhook → visible, through a SQLite store with the real model.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let tmp = tempfile::tempdir()?;
    let store = rt.block_on(Store::open(&Store::sqlite_url(tmp.path())))?;
    let shards = Shards::open(&tmp.path().join("shards"))?;
    let settings = DomainSettings::new(embedder.spec().clone());
    let admin = rt.block_on(store.local_admin())?;
    let domain =
        rt.block_on(store.create_domain(&admin, "store", "", &serde_json::to_value(&settings)?))?;
    let applier = Applier {
        store: &store,
        shards: &shards,
        runtime: rt.handle().clone(),
        events: None,
    };
    let sizer = Sizer::from_model_dir(model_dir)?;
    let job = |items: Vec<Result<Item, dartmouth_indexer::Error>>| -> Result<_> {
        let pass = rt.block_on(store.authorize(&admin, &["store".into()], Role::Write))?;
        Ok(IndexJob {
            sink: Arc::new(StoreSink::open(&applier, pass, domain.clone())?),
            embedder: embedder.as_ref(),
            chunker: Chunker::new(sizer.clone(), 256, 32),
            batch_docs: 64,
            stop_on_error: true,
            full_sync: false,
        }
        .run(items, &Progress::hidden())?)
    };
    let catalog_file = args
        .data
        .join("admin_rest/products_united_by_blue_demo.json");
    let loaded = job(SourceReader::open(std::slice::from_ref(&catalog_file), None)?.collect())?;
    println!(
        "catalog loaded: {} products, {} chunks embedded in {:.1} s",
        loaded.added, loaded.embedded_chunks, loaded.seconds
    );
    let products: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&catalog_file)?)?;
    // (product title, handle, variant line prefix, inventory item) of every variant.
    let items: Vec<(String, String, String, u64)> = products
        .as_array()
        .context("a bare array of products")?
        .iter()
        .flat_map(|p| {
            p["variants"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| {
                    let title = p["title"].as_str().unwrap_or("").to_string();
                    let variant = match v["title"].as_str() {
                        Some("Default Title") | None => title.clone(),
                        Some(t) => t.to_string(),
                    };
                    Some((
                        title,
                        p["handle"].as_str().unwrap_or("").to_string(),
                        format!("- {variant}"),
                        v["inventory_item_id"].as_u64()?,
                    ))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let reader_pass = rt.block_on(store.authorize(&admin, &["store".into()], Role::Read))?;
    let mut latencies = Vec::with_capacity(args.webhooks);
    let mut embedded = 0;
    for n in 0..args.webhooks {
        let (title, handle, line, item) = &items[n % items.len()];
        // Every variant sells out, then every one comes back: each webhook flips in_stock of
        // some product at least once per round.
        let available = if (n / items.len()).is_multiple_of(2) {
            0
        } else {
            5
        };
        let payload = format!(
            r#"{{"inventory_item_id": {item}, "location_id": 1, "available": {available}}}"#
        );
        // The query vector is embedded before the clock starts: a vector search restricted to
        // the product returns all its chunks, the variant lines among them.
        let vector = embedder.embed_query(title)?;
        let t = Instant::now();
        let change = webhook(
            serde_json::from_str(&payload)?,
            Some("inventory_levels/update"),
            "bench",
        );
        let s = job(vec![shopify_item(change, "bench", None)])?;
        embedded += s.embedded_chunks;
        // Visible: the variant's line in the product's chunks shows the new availability.
        let reader = applier.reader_as_is(&reader_pass)?;
        let mut req = SearchRequest::new(title.as_str());
        req.mode = Mode::Vector;
        req.vectors = vec![vector];
        req.k = 50;
        req.filter = Some(Filter::parse(&format!("handle = \"{handle}\""))?);
        let hits = reader.search(&req)?;
        let text: String = hits
            .hits
            .iter()
            .map(|h| h.text.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        let marker = if available == 0 {
            "[sold out]"
        } else {
            "[in stock]"
        };
        if !text.lines().any(|l| {
            l.strip_prefix(line.as_str())
                .is_some_and(|rest| rest.starts_with([' ', ':']))
                && l.ends_with(marker)
        }) {
            bail!(
                "webhook {n}: `{handle}` does not show `{line}… {marker}` in {} hits of {} chunks:\n{text}",
                hits.hits.len(),
                hits.filtered_chunks
            );
        }
        latencies.push(t.elapsed());
    }
    let (p50, p99, max) = quantiles(latencies);
    println!(
        "inventory webhook → visible in a filtered search: p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms over {} webhooks; chunks embedded {embedded}",
        args.webhooks
    );
    report["webhook_visible_ms"] =
        json!({ "p50": p50, "p99": p99, "max": max, "embedded": embedded });
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(())
}
