//! HNSW recall against exact search on random vectors (the oracle is brute force).
#![allow(
    clippy::disallowed_methods,
    reason = "the engine's own tests search shards directly"
)]

use dartmouth_engine::embed::FakeEmbedder;
use dartmouth_engine::{
    Chunk, Document, DomainSettings, Embedder, Mode, SearchRequest, Shard, WriteBatch, WriteOp,
    search,
};
use dartmouth_engine::{Embedding, ModelSpec};
use rand::SeedableRng;
use rand_distr_free::gaussian;

mod rand_distr_free {
    use rand::Rng;
    /// Box-Muller, to avoid a dependency for one distribution.
    pub fn gaussian(rng: &mut impl Rng) -> f32 {
        let u1: f32 = rng.random::<f32>().max(1e-7);
        let u2: f32 = rng.random();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
    }
}

#[test]
fn hnsw_recall_at_10_is_at_least_095_on_20k_random_vectors() {
    const N: usize = 20_000;
    const DIM: usize = 64;
    const QUERIES: usize = 200;
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let mut random_unit = || {
        let mut v: Vec<f32> = (0..DIM).map(|_| gaussian(&mut rng)).collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= n);
        v
    };
    let vectors: Vec<Vec<f32>> = (0..N).map(|_| random_unit()).collect();
    let queries: Vec<Vec<f32>> = (0..QUERIES).map(|_| random_unit()).collect();

    let tmp = tempfile::tempdir().unwrap();
    let model = ModelSpec {
        id: "random".into(),
        dim: DIM,
    };
    let shard = Shard::create(&tmp.path().join("r"), "r", DomainSettings::new(model)).unwrap();
    let _ = FakeEmbedder::new(DIM).spec();
    // Large batches, then small ones; the graph worker inserts them beside the writes.
    let mut start = 0;
    while start < N {
        let size = if start < 18_000 { 6000 } else { 100 };
        let block = &vectors[start..(start + size).min(N)];
        let ops = block
            .iter()
            .enumerate()
            .map(|(i, v)| {
                WriteOp::Upsert(Document {
                    id: format!("v{}", start + i),
                    title: String::new(),
                    url: None,
                    attributes: Default::default(),
                    chunks: vec![Chunk {
                        text: "x".into(),
                        char_start: 0,
                        char_end: 1,
                        heading: None,
                        embedding: v.clone(),
                    }],
                })
            })
            .collect();
        shard
            .apply(WriteBatch {
                model_id: "random".into(),
                ops,
                seq: None,
            })
            .unwrap();
        start += size;
    }
    let recall = |shard: &Shard| {
        let mut found = 0usize;
        for q in &queries {
            let mut exact: Vec<(f32, usize)> = vectors
                .iter()
                .enumerate()
                .map(|(i, v)| (v.iter().zip(q).map(|(a, b)| a * b).sum(), i))
                .collect();
            exact.sort_by(|a, b| b.0.total_cmp(&a.0));
            let truth: Vec<String> = exact[..10].iter().map(|(_, i)| format!("v{i}")).collect();
            let mut req = SearchRequest::new("");
            req.mode = Mode::Vector;
            req.k = 10;
            req.vectors = vec![Embedding {
                model_id: "random".into(),
                values: q.clone(),
            }];
            let got = search(&[shard], &req).unwrap();
            found += got
                .hits
                .iter()
                .filter(|h| truth.contains(&h.doc_id))
                .count();
        }
        found as f64 / (QUERIES * 10) as f64
    };
    // Every row in the graph: recall of the graph walk alone.
    shard.checkpoint().unwrap();
    assert_eq!(shard.stats().graph_points, N as u64);
    let graph_recall = recall(&shard);
    eprintln!("hnsw recall@10 over {N} random {DIM}-d vectors: {graph_recall:.4}");
    assert!(graph_recall >= 0.95, "recall@10 = {graph_recall}");

    // The saved graph loads as it was: the same answers, no rebuild.
    let dir = tmp.path().join("r");
    drop(shard);
    let shard = Shard::open(&dir, "r").unwrap();
    assert_eq!(shard.stats().graph_points, N as u64, "loaded, not rebuilt");
    assert_eq!(recall(&shard), graph_recall);
    drop(shard);

    // Without a saved graph the shard opens at once and the worker rebuilds it; meanwhile the
    // rows it has not reached are scanned exactly, so nothing is missing from the answers.
    std::fs::remove_dir_all(dir.join("graph")).unwrap();
    let shard = Shard::open(&dir, "r").unwrap();
    assert!(shard.stats().graph_points < N as u64, "rebuilding");
    let during = recall(&shard);
    eprintln!("recall@10 while the graph rebuilds: {during:.4}");
    assert!(during >= 0.95, "recall@10 while rebuilding = {during}");
    shard.checkpoint().unwrap();
    assert_eq!(shard.stats().graph_points, N as u64);
}
