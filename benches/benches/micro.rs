//! Criterion micro-benchmarks: fusion, snippets, filtered search, BM25, ANN, batch embedding.
//! Fixed seeds; the shard is built once per run in a temporary directory.
//! `cargo bench -p dartmouth-benches` (the embedding group needs scripts/setup-model.sh's
//! ORT_DYLIB_PATH and DARTMOUTH_MODEL_DIR and is skipped without them).
#![allow(clippy::unwrap_used, reason = "benchmark setup fails loudly")]
#![allow(
    clippy::disallowed_methods,
    reason = "benchmarks search catalog-only shards directly"
)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use dartmouth_engine::embed::{FakeEmbedder, OnnxEmbedder, OnnxOptions};
use dartmouth_engine::{
    AttrValue, Chunk, Document, DomainSettings, Embedder, Filter, Fusion, Highlighter, Mode,
    SearchRequest, Shard, WriteBatch, WriteOp, fuse, search,
};
use rand::{Rng, SeedableRng};

const DIM: usize = 384;
const CHUNKS: usize = 10_000;
const WORDS: &[&str] = &[
    "return", "policy", "sale", "item", "hoodie", "blue", "cotton", "shipping", "express", "size",
    "refund", "warranty", "jacket", "rain", "order", "delivery", "gift", "card", "exchange",
    "wash",
];

fn text(rng: &mut impl Rng, n: usize) -> String {
    (0..n)
        .map(|_| WORDS[rng.random_range(0..WORDS.len())])
        .collect::<Vec<_>>()
        .join(" ")
}

fn build_shard(dir: &std::path::Path) -> Shard {
    let embedder = FakeEmbedder::new(DIM);
    let shard = Shard::create(
        &dir.join("bench"),
        "bench",
        DomainSettings::new(embedder.spec().clone()),
    )
    .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    for block in 0..CHUNKS / 2000 {
        let ops = (0..2000)
            .map(|i| {
                let t = text(&mut rng, 40);
                let embedding = embedder.embed_batch(&[t.as_str()]).unwrap().remove(0);
                let n = block * 2000 + i;
                WriteOp::Upsert(Document {
                    id: format!("d{n}"),
                    title: text(&mut rng, 4),
                    url: None,
                    attributes: [
                        (
                            "bucket".to_string(),
                            vec![AttrValue::Number(
                                dartmouth_engine::Decimal::from_int((n % 100) as i64).unwrap(),
                            )],
                        ),
                        ("in_stock".to_string(), vec![AttrValue::Bool(n % 3 == 0)]),
                    ]
                    .into(),
                    chunks: vec![Chunk {
                        text: t,
                        char_start: 0,
                        char_end: 0,
                        heading: None,
                        embedding,
                    }],
                })
            })
            .collect();
        shard
            .apply(WriteBatch {
                model_id: embedder.spec().id.clone(),
                ops,
                seq: None,
            })
            .unwrap();
    }
    shard
}

fn benches(c: &mut Criterion) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let bm25: Vec<(u32, f32)> = (0..100)
        .map(|i| (rng.random_range(0..10_000), 100.0 - i as f32))
        .collect();
    let vector: Vec<(u32, f32)> = (0..100)
        .map(|i| (rng.random_range(0..10_000), 1.0 - i as f32 / 100.0))
        .collect();
    c.bench_function("fusion/rrf 100+100", |b| {
        b.iter(|| fuse(&Fusion::rrf(), black_box(&bm25), black_box(&vector)))
    });
    c.bench_function("fusion/weighted 100+100", |b| {
        b.iter(|| fuse(&Fusion::default(), black_box(&bm25), black_box(&vector)))
    });
    // A served search's snippets: ten hits of about 200 words (a 256-token chunk).
    let hits: Vec<String> = (0..10).map(|_| text(&mut rng, 200)).collect();
    c.bench_function("highlight/10 snippets of 200 words", |b| {
        b.iter(|| {
            let h = Highlighter::new("returned hoodies after the sale");
            hits.iter()
                .map(|t| h.snippet(black_box(t), 240, "<em>", "</em>").len())
                .sum::<usize>()
        })
    });

    let tmp = tempfile::tempdir().unwrap();
    let shard = build_shard(tmp.path());
    let embedder = FakeEmbedder::new(DIM);
    let query = "blue hoodie return policy";
    let request = |mode: Mode, filter: Option<&str>| {
        let mut r = SearchRequest::new(query);
        r.mode = mode;
        r.vectors = vec![embedder.embed_query(query).unwrap()];
        r.filter = filter.map(|f| Filter::parse(f).unwrap());
        r
    };
    for (name, mode) in [
        ("bm25", Mode::Bm25),
        ("ann", Mode::Vector),
        ("hybrid", Mode::Hybrid),
    ] {
        let r = request(mode, None);
        c.bench_function(&format!("search/{name} 10k chunks"), |b| {
            b.iter(|| search(&[&shard], black_box(&r)).unwrap())
        });
    }
    let selective = request(Mode::Hybrid, Some("bucket < 5 AND in_stock = true"));
    c.bench_function("filter/hybrid, 1.7% pass (exact scan)", |b| {
        b.iter(|| search(&[&shard], black_box(&selective)).unwrap())
    });
    let broad = request(Mode::Hybrid, Some("NOT in_stock = true"));
    c.bench_function("filter/hybrid, 67% pass (filtered graph)", |b| {
        b.iter(|| search(&[&shard], black_box(&broad)).unwrap())
    });
    c.bench_function("filter/parse", |b| {
        b.iter(|| {
            Filter::parse(black_box(
                r#"in_stock = true AND price <= 50 AND (size IN ("M", "L") OR NOT vendor = "x")"#,
            ))
            .unwrap()
        })
    });

    if let (Some(model), Some(ort)) = (
        std::env::var_os("DARTMOUTH_MODEL_DIR"),
        std::env::var_os("ORT_DYLIB_PATH"),
    ) {
        let card = dartmouth_engine::embed::model_card("all-minilm-l6-v2").unwrap();
        let onnx = OnnxEmbedder::load(&OnnxOptions::new(card, model, ort)).unwrap();
        let texts: Vec<String> = (0..32).map(|_| text(&mut rng, 100)).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let mut group = c.benchmark_group("embed");
        group.sample_size(10);
        group.bench_function("minilm batch of 32 × 100 words", |b| {
            b.iter(|| onnx.embed_batch(black_box(&refs)).unwrap())
        });
        group.bench_function("minilm one query", |b| {
            b.iter(|| {
                onnx.embed_query(black_box("blue hoodie in size M under 50"))
                    .unwrap()
            })
        });
        group.finish();
    } else {
        eprintln!(
            "embed benchmarks skipped: set DARTMOUTH_MODEL_DIR and ORT_DYLIB_PATH (scripts/setup-model.sh prints them)"
        );
    }
}

criterion_group!(micro, benches);
criterion_main!(micro);
