//! End-to-end tests with the real all-MiniLM-L6-v2 on ONNX Runtime (prepared by
//! scripts/setup-model.sh; `scripts/test.sh` exports where it is).
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use dartmouth_engine::embed::{OnnxEmbedder, OnnxOptions};
use dartmouth_engine::{DomainSettings, Embedder, Mode, Shard};
use dartmouth_eval::{
    RunConfig, embed_queries, evaluate_mode, evaluate_query, load_collection, rank_queries,
    understand_queries,
};
use dartmouth_indexer::{Chunker, IndexJob, Progress, Sizer, SourceReader};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn model_dir() -> PathBuf {
    std::env::var_os("DARTMOUTH_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("models/all-minilm-l6-v2"))
}

fn minilm() -> &'static dartmouth_engine::embed::ModelCard {
    dartmouth_engine::embed::model_card("all-minilm-l6-v2").unwrap()
}

fn ort_library() -> PathBuf {
    std::env::var_os("ORT_DYLIB_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("models/onnxruntime/libonnxruntime.so"))
}

/// Where setup-model.sh installs the catalogue: one directory per model id.
fn models_dir() -> PathBuf {
    std::env::var_os("DARTMOUTH_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("models"))
}

fn embedder() -> OnnxEmbedder {
    let ort = ort_library();
    OnnxEmbedder::load(&OnnxOptions::new(minilm(), model_dir(), ort)).unwrap_or_else(|e| {
        panic!("the real model is required for these tests; run scripts/setup-model.sh first: {e}")
    })
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn conversion_is_right() {
    let e = embedder();
    assert_eq!(e.spec().dim, 384);
    let sentences = [
        "A man is eating food.",
        "A man is eating a piece of bread.",
        "A monkey is playing drums.",
        "Dartmouth Knowledge answers questions with cited passages.",
    ];
    let v = e.embed_batch(&sentences).unwrap();
    let close = cosine(&v[0], &v[1]);
    let far = cosine(&v[0], &v[2]);
    assert!(close > 0.7, "cos(food, bread) = {close}");
    assert!(far < close, "cos(food, drums) = {far} >= {close}");

    // An independent numpy forward pass of the same weights must agree.
    let python = std::env::var_os("DARTMOUTH_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv/bin/python"));
    let mut child = Command::new(&python)
        .arg(repo().join("scripts/model/reference.py"))
        .args(["embed", "--model-dir"])
        .arg(model_dir())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(sentences.join("\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference: Vec<Vec<f32>> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(reference.len(), sentences.len());
    for (ours, theirs) in v.iter().zip(&reference) {
        let max_diff = ours
            .iter()
            .zip(theirs)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(max_diff < 1e-4, "max abs difference to numpy {max_diff}");
    }
    // Batching and padding do not change a text's vector.
    let alone = e.embed_batch(&[sentences[3]]).unwrap();
    assert!(cosine(&alone[0], &v[3]) > 0.99999);
}

#[test]
fn a_missing_runtime_library_is_a_clear_error() {
    let err = OnnxEmbedder::load(&OnnxOptions::new(
        minilm(),
        model_dir(),
        "/nowhere/libonnxruntime.so",
    ))
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("/nowhere/libonnxruntime.so") && err.contains("setup-model"),
        "{err}"
    );
    let err = OnnxEmbedder::load(&OnnxOptions::new(
        minilm(),
        "/nowhere/model",
        "/nowhere/libonnxruntime.so",
    ))
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("/nowhere"), "{err}");
}

/// A collection's corpus indexed with the real model into a new shard in `dir`.
fn index(
    collection: &dartmouth_eval::Collection,
    e: &OnnxEmbedder,
    dir: &std::path::Path,
) -> (Arc<Shard>, dartmouth_indexer::IndexSummary) {
    index_with(collection, e, &model_dir(), dir)
}

/// The same with the tokenizer of the model in `model_dir` measuring the chunks.
fn index_with(
    collection: &dartmouth_eval::Collection,
    e: &OnnxEmbedder,
    model_dir: &std::path::Path,
    dir: &std::path::Path,
) -> (Arc<Shard>, dartmouth_indexer::IndexSummary) {
    let settings = DomainSettings::new(e.spec().clone());
    let shard = Arc::new(Shard::create(&dir.join("shard"), "shard", settings.clone()).unwrap());
    let summary = IndexJob {
        sink: shard.clone(),
        embedder: e,
        chunker: Chunker::new(
            Sizer::from_model_dir(model_dir).unwrap(),
            settings.chunk_tokens,
            settings.chunk_overlap,
        ),
        batch_docs: 256,
        stop_on_error: true,
        full_sync: false,
    }
    .run(
        SourceReader::open(std::slice::from_ref(&collection.corpus), None).unwrap(),
        &Progress::hidden(),
    )
    .unwrap();
    (shard, summary)
}

/// Indexes SciFact with the real model and checks nDCG@10 of every mode.
#[test]
fn scifact_ndcg() {
    let root = repo().join("../shared/datasets/ir/scifact");
    let collection = load_collection(&root, "queries.jsonl", "test").unwrap();
    assert_eq!(collection.queries.len(), 300);
    let e = embedder();
    let tmp = tempfile::tempdir().unwrap();
    let (shard, summary) = index(&collection, &e, tmp.path());
    assert_eq!(summary.documents, 5183);
    eprintln!("indexed scifact: {summary:?}");
    let vectors = embed_queries(&collection, &e).unwrap();
    let config = RunConfig::default();
    let mut scores = Vec::new();
    for mode in [Mode::Bm25, Mode::Vector, Mode::Hybrid] {
        let report = evaluate_mode(&shard, &collection, Some(&vectors), mode, &config).unwrap();
        eprintln!("scifact {mode:?}: {:?}", report.mean);
        scores.push(report.mean.ndcg_at_10);
    }
    cross_check_with_trec_eval(&shard, &collection, &vectors);
    // Issue 6's targets (measured here: 0.686 / 0.652 / 0.732 with z-score fusion), and hybrid above LanceDB's 0.716.
    assert!(scores[0] >= 0.68, "bm25 nDCG@10 {}", scores[0]);
    assert!(scores[1] >= 0.64, "vector nDCG@10 {}", scores[1]);
    // The converted model reproduces the published dense-only figure (0.645) within 0.015.
    assert!(
        (scores[1] - 0.645).abs() <= 0.015,
        "vector nDCG@10 {} vs published 0.645",
        scores[1]
    );
    assert!(scores[2] >= 0.72, "hybrid nDCG@10 {}", scores[2]);
    assert!(
        scores[2] >= scores[0].max(scores[1]) + 0.02,
        "hybrid {scores:?} not 0.02 above the best single mode"
    );
}

/// The judged catalog set (`eval/catalog`: 53 queries over a real Shopify export, a third with
/// filters, a third with constraints in their words) indexed as a catalog upload indexes it;
/// query understanding lifts hybrid nDCG@10 over 0.9.
#[test]
fn catalog_ndcg_with_and_without_query_understanding() {
    let root = repo().join("eval/catalog");
    let collection = load_collection(&root, "queries.jsonl", "test").unwrap();
    assert_eq!(collection.queries.len(), 53);
    let filtered = collection
        .queries
        .iter()
        .filter(|q| q.filter.is_some())
        .count();
    assert!(
        filtered * 3 >= collection.queries.len(),
        "{filtered} with filters"
    );
    let e = embedder();
    let tmp = tempfile::tempdir().unwrap();
    let (shard, summary) = index(&collection, &e, tmp.path());
    assert_eq!(summary.documents, 338);
    let config = RunConfig::default();
    let ndcg = |collection: &dartmouth_eval::Collection| -> Vec<f64> {
        let vectors = embed_queries(collection, &e).unwrap();
        [Mode::Bm25, Mode::Vector, Mode::Hybrid]
            .map(|m| {
                evaluate_mode(&shard, collection, Some(&vectors), m, &config)
                    .unwrap()
                    .mean
                    .ndcg_at_10
            })
            .to_vec()
    };
    let plain = ndcg(&collection);
    let mut parsed = load_collection(&root, "queries.jsonl", "test").unwrap();
    understand_queries(&mut parsed, &shard);
    let understood = ndcg(&parsed);
    eprintln!("catalog nDCG@10 bm25/vector/hybrid: {plain:?}; with parsing: {understood:?}");
    // Measured: 0.816 / 0.783 / 0.864 and, parsed, 0.901 / 0.905 / 0.939.
    assert!(understood[2] >= 0.9, "hybrid with parsing {understood:?}");
    for m in 0..3 {
        assert!(
            understood[m] > plain[m] + 0.03,
            "{plain:?} → {understood:?}"
        );
    }
    assert!(plain[2] > plain[0].max(plain[1]), "{plain:?}");
}

/// Our metrics on a real hybrid run agree with trec_eval's (through pytrec_eval) per query.
fn cross_check_with_trec_eval(
    shard: &Shard,
    collection: &dartmouth_eval::Collection,
    vectors: &[dartmouth_engine::Embedding],
) {
    let runs = rank_queries(
        shard,
        collection,
        Some(vectors),
        Mode::Hybrid,
        &RunConfig::default(),
    )
    .unwrap();
    let mut run_json = serde_json::Map::new();
    let mut ours = serde_json::Map::new();
    for (q, ranked) in &runs {
        // Scores strictly decreasing by rank, so trec_eval's tie-breaking cannot reorder.
        let scored: serde_json::Map<String, serde_json::Value> = ranked
            .iter()
            .enumerate()
            .map(|(i, d)| (d.clone(), serde_json::json!((ranked.len() - i) as f64)))
            .collect();
        run_json.insert(q.clone(), scored.into());
        let m = evaluate_query(ranked, &collection.qrels[q]);
        ours.insert(q.clone(), serde_json::json!({"ndcg_cut_10": m.ndcg_at_10, "recall_100": m.recall_at_100, "P_10": m.p_at_10}));
    }
    let qrels: serde_json::Map<String, serde_json::Value> = collection
        .qrels
        .iter()
        .map(|(q, docs)| (q.clone(), serde_json::to_value(docs).unwrap()))
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.json");
    std::fs::write(
        &input,
        serde_json::json!({"run": run_json, "qrels": qrels}).to_string(),
    )
    .unwrap();
    let script = r#"
import json, sys, pytrec_eval
d = json.load(open(sys.argv[1]))
ev = pytrec_eval.RelevanceEvaluator(d["qrels"], {"ndcg_cut.10", "recall.100", "P.10"})
print(json.dumps(ev.evaluate(d["run"])))
"#;
    let python = std::env::var_os("DARTMOUTH_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv/bin/python"));
    let out = Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pytrec_eval: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(theirs.len(), ours.len());
    for (q, t) in &theirs {
        for metric in ["ndcg_cut_10", "recall_100", "P_10"] {
            let (a, b) = (
                ours[q][metric].as_f64().unwrap(),
                t[metric].as_f64().unwrap(),
            );
            assert!(
                (a - b).abs() < 1e-6,
                "query {q} {metric}: ours {a}, trec_eval {b}"
            );
        }
    }
}

/// One catalogue model end to end on the judged catalog set (53 queries, 338 products): its
/// files, its tokenizer for the chunks, its pooling and prefixes, indexed and searched; returns
/// nDCG@10 of BM25, vector and hybrid, and the shard and query vectors for more runs.
fn catalog_with_model(
    id: &str,
    tmp: &std::path::Path,
) -> (
    [f64; 3],
    Arc<Shard>,
    dartmouth_eval::Collection,
    Vec<dartmouth_engine::Embedding>,
) {
    let card = dartmouth_engine::embed::model_card(id).unwrap();
    let dir = models_dir().join(id);
    assert!(
        matches!(
            card.check_files(&dir),
            dartmouth_engine::embed::FilesState::Ok
        ),
        "{id}"
    );
    let e = OnnxEmbedder::load(&OnnxOptions::new(card, &dir, ort_library())).unwrap();
    assert_eq!(e.spec().id, id);
    let root = repo().join("eval/catalog");
    let collection = load_collection(&root, "queries.jsonl", "test").unwrap();
    let (shard, summary) = index_with(&collection, &e, &dir, tmp);
    assert_eq!(summary.documents, 338);
    let vectors = embed_queries(&collection, &e).unwrap();
    let config = RunConfig::default();
    let ndcg = [Mode::Bm25, Mode::Vector, Mode::Hybrid].map(|m| {
        evaluate_mode(&shard, &collection, Some(&vectors), m, &config)
            .unwrap()
            .mean
            .ndcg_at_10
    });
    eprintln!("{id} on eval/catalog: bm25/vector/hybrid nDCG@10 {ndcg:?}");
    (ndcg, shard, collection, vectors)
}

/// MiniLM quantized to int8 by setup-model.sh searches about as well as the f32 model (whose
/// figures the test above checks: vector 0.783, hybrid 0.864).
#[test]
fn minilm_int8_on_the_catalog_set() {
    let tmp = tempfile::tempdir().unwrap();
    let (ndcg, ..) = catalog_with_model("all-minilm-l6-v2-int8", tmp.path());
    // Measured: 0.816 / 0.785 / 0.853 (f32: 0.816 / 0.781 / 0.854).
    assert!(ndcg[1] >= 0.76, "vector {ndcg:?}");
    assert!(ndcg[2] >= 0.83, "hybrid {ndcg:?}");
}

#[test]
fn e5_small_on_the_catalog_set() {
    let tmp = tempfile::tempdir().unwrap();
    let (ndcg, ..) = catalog_with_model("e5-small-v2", tmp.path());
    // Measured: 0.816 / 0.823 / 0.856.
    assert!(ndcg[1] >= 0.80, "vector {ndcg:?}");
    assert!(ndcg[2] >= 0.835, "hybrid {ndcg:?}");
}

/// bge-small (CLS pooling, the query instruction) and the cross-encoder over its hybrid top 20,
/// alone and blended with the fused score.
#[test]
fn bge_small_and_the_cross_encoder_on_the_catalog_set() {
    use dartmouth_engine::embed::CrossEncoder;
    use dartmouth_eval::{CachedReranker, RerankMode, evaluate_reranked};
    let tmp = tempfile::tempdir().unwrap();
    let (ndcg, shard, collection, vectors) = catalog_with_model("bge-small-en-v1.5", tmp.path());
    // Measured: 0.816 / 0.827 / 0.863.
    assert!(ndcg[1] >= 0.80, "vector {ndcg:?}");
    assert!(ndcg[2] >= 0.84, "hybrid {ndcg:?}");
    let id = "ms-marco-minilm-l-12-v2";
    let card = dartmouth_engine::embed::model_card(id).unwrap();
    // Both rows re-order the same first 20: each pair is scored once, as `dartmouth eval` does.
    let reranker = CachedReranker::new(Arc::new(
        CrossEncoder::load(&OnnxOptions::new(
            card,
            models_dir().join(id),
            ort_library(),
        ))
        .unwrap(),
    ));
    let modes = [
        RerankMode::new(20, 1.0).unwrap(),
        RerankMode::new(20, 0.5).unwrap(),
    ];
    let rows = evaluate_reranked(
        &shard,
        &collection,
        Some(&vectors),
        &RunConfig::default(),
        &reranker,
        &modes,
    )
    .unwrap();
    let counts = reranker.counts();
    assert!(
        counts.scored > 0 && counts.reused >= counts.scored,
        "{counts:?}"
    );
    let reranked: Vec<f64> = rows.iter().map(|r| r.mean.ndcg_at_10).collect();
    eprintln!(
        "bge-small hybrid {} + rerank 20 alone / blended: {reranked:?}",
        ndcg[2]
    );
    // Measured: 0.842 alone, 0.867 blended (hybrid 0.863).
    assert!(reranked[0] >= 0.82, "{reranked:?}");
    assert!(reranked[1] >= 0.845, "{reranked:?}");
    // The cross-encoder re-orders: its order is not the fused one.
    assert!(
        (reranked[0] - ndcg[2]).abs() > 1e-6,
        "{reranked:?} vs {ndcg:?}"
    );
}
