//! Engine integration tests: real tantivy index on disk, real HNSW graph, fake embedder.
#![allow(
    clippy::disallowed_methods,
    reason = "the engine's own tests search shards directly"
)]

use std::collections::BTreeMap;

use dartmouth_engine::embed::FakeEmbedder;
use dartmouth_engine::{
    AttrValue, Chunk, Document, DomainSettings, Embedder, Error, Filter, Fusion, Mode,
    SearchRequest, Shard, Shards, WriteBatch, WriteOp, search,
};
use rand::{Rng, SeedableRng};

const DIM: usize = 64;

fn embedder() -> FakeEmbedder {
    FakeEmbedder::new(DIM)
}

fn doc(id: &str, title: &str, chunks: &[&str], attrs: &[(&str, AttrValue)]) -> Document {
    let e = embedder();
    let texts: Vec<&str> = chunks.to_vec();
    let vectors = e.embed_batch(&texts).unwrap();
    let mut attributes = BTreeMap::new();
    for (k, v) in attrs {
        attributes
            .entry(k.to_string())
            .or_insert_with(Vec::new)
            .push(v.clone());
    }
    Document {
        id: id.into(),
        title: title.into(),
        url: Some(format!("https://example.test/{id}")),
        attributes,
        chunks: chunks
            .iter()
            .zip(vectors)
            .scan(0u64, |pos, (t, v)| {
                let start = *pos;
                *pos += t.chars().count() as u64;
                Some(Chunk {
                    text: t.to_string(),
                    char_start: start,
                    char_end: *pos,
                    heading: None,
                    embedding: v,
                })
            })
            .collect(),
    }
}

fn batch(ops: Vec<WriteOp>) -> WriteBatch {
    WriteBatch {
        model_id: embedder().spec().id.clone(),
        ops,
        seq: None,
    }
}

fn request(shard_query: &str, mode: Mode) -> SearchRequest {
    let mut r = SearchRequest::new(shard_query);
    r.mode = mode;
    r.vectors = vec![embedder().embed_query(shard_query).unwrap()];
    r
}

fn new_shard(dir: &std::path::Path) -> Shard {
    Shard::create(
        &dir.join("kb"),
        "kb",
        DomainSettings::new(embedder().spec().clone()),
    )
    .unwrap()
}

fn ids(shard: &Shard, req: &SearchRequest) -> Vec<String> {
    search(&[shard], req)
        .unwrap()
        .hits
        .into_iter()
        .map(|h| h.chunk_id)
        .collect()
}

fn sample_docs() -> Vec<WriteOp> {
    vec![
        WriteOp::Upsert(doc(
            "returns",
            "Return policy",
            &[
                "Items can be returned within 30 days.",
                "Sale items are final sale and cannot be returned.",
            ],
            &[("type", AttrValue::Keyword("policy".into()))],
        )),
        WriteOp::Upsert(doc(
            "hoodie",
            "Blue hoodie",
            &["A warm blue hoodie made of organic cotton."],
            &[
                ("type", AttrValue::Keyword("product".into())),
                ("price", AttrValue::Number("45.00".parse().unwrap())),
                ("size", AttrValue::Keyword("M".into())),
                ("size", AttrValue::Keyword("L".into())),
            ],
        )),
        WriteOp::Upsert(doc(
            "jacket",
            "Rain jacket",
            &["A blue rain jacket, waterproof and light."],
            &[
                ("type", AttrValue::Keyword("product".into())),
                ("price", AttrValue::Number("120".parse().unwrap())),
                ("size", AttrValue::Keyword("M".into())),
            ],
        )),
    ]
}

#[test]
fn upsert_replace_delete_and_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let shard = new_shard(tmp.path());
    let info = shard.apply(batch(sample_docs())).unwrap();
    assert_eq!((info.upserted, info.chunks, info.applied_seq), (3, 4, 1));
    assert_eq!(shard.stats().documents, 3);
    assert_eq!(shard.stats().chunks, 4);

    let hits = ids(&shard, &request("sale items returned", Mode::Bm25));
    assert_eq!(hits[0], "returns#1");

    // Replacing a document replaces all its chunks.
    shard
        .apply(batch(vec![WriteOp::Upsert(doc(
            "returns",
            "Return policy",
            &["Refunds are issued within 14 days."],
            &[],
        ))]))
        .unwrap();
    assert_eq!(shard.stats().chunks, 3);
    let hits = ids(&shard, &request("sale items returned", Mode::Hybrid));
    assert!(!hits.iter().any(|h| h == "returns#1"), "{hits:?}");
    let hits = ids(&shard, &request("refunds", Mode::Bm25));
    assert_eq!(hits, vec!["returns#0"]);

    shard
        .apply(batch(vec![WriteOp::Delete("jacket".into())]))
        .unwrap();
    for mode in [Mode::Bm25, Mode::Vector, Mode::Hybrid] {
        let hits = ids(&shard, &request("blue rain jacket", mode));
        assert!(
            !hits.iter().any(|h| h.starts_with("jacket")),
            "{mode:?}: {hits:?}"
        );
    }
    let before: Vec<Vec<String>> = [Mode::Bm25, Mode::Vector, Mode::Hybrid]
        .iter()
        .map(|m| ids(&shard, &request("blue hoodie refunds", *m)))
        .collect();
    let seq = shard.manifest().applied_seq;
    drop(shard);

    let shard = Shard::open(&tmp.path().join("kb"), "kb").unwrap();
    assert_eq!(shard.manifest().applied_seq, seq);
    let after: Vec<Vec<String>> = [Mode::Bm25, Mode::Vector, Mode::Hybrid]
        .iter()
        .map(|m| ids(&shard, &request("blue hoodie refunds", *m)))
        .collect();
    assert_eq!(before, after);
    assert_eq!(shard.stats().chunks, 2);
}

#[test]
fn a_failed_batch_leaves_the_shard_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let shard = new_shard(tmp.path());
    shard.apply(batch(sample_docs())).unwrap();
    let before = ids(&shard, &request("blue", Mode::Hybrid));

    let mut bad = doc("new", "New", &["fresh text"], &[]);
    bad.chunks[0].embedding[3] = f32::NAN;
    let err = shard
        .apply(batch(vec![
            WriteOp::Delete("hoodie".into()),
            WriteOp::Upsert(bad),
        ]))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("operation 1 (document `new`), chunk 0"),
        "{err}"
    );

    let mut short = doc("new", "New", &["fresh text"], &[]);
    short.chunks[0].embedding.truncate(10);
    let err = shard
        .apply(batch(vec![WriteOp::Upsert(short)]))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::DimensionMismatch {
                expected: DIM,
                got: 10,
                ..
            }
        ),
        "{err}"
    );

    let mut wrong_model = batch(vec![WriteOp::Delete("hoodie".into())]);
    wrong_model.model_id = "other-model".into();
    assert!(matches!(
        shard.apply(wrong_model).unwrap_err(),
        Error::ModelMismatch { .. }
    ));

    let err = shard
        .apply(batch(vec![WriteOp::Upsert(doc("", "t", &["x"], &[]))]))
        .unwrap_err();
    assert!(err.to_string().contains("id: must not be empty"), "{err}");

    assert_eq!(ids(&shard, &request("blue", Mode::Hybrid)), before);
    assert_eq!(shard.stats().documents, 3);
    assert_eq!(shard.manifest().applied_seq, 1);
    drop(shard);
    let shard = Shard::open(&tmp.path().join("kb"), "kb").unwrap();
    assert_eq!(ids(&shard, &request("blue", Mode::Hybrid)), before);
}

#[test]
fn replayed_sequences_are_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let shard = new_shard(tmp.path());
    let mut b = batch(sample_docs());
    b.seq = Some(7);
    assert!(!shard.apply(b.clone()).unwrap().skipped);
    let again = shard.apply(b).unwrap();
    assert!(again.skipped);
    assert_eq!(again.applied_seq, 7);
    assert_eq!(shard.stats().chunks, 4);
}

#[test]
fn filters_apply_before_top_k_on_both_branches() {
    let tmp = tempfile::tempdir().unwrap();
    let shard = new_shard(tmp.path());
    // Many strong matches without the attribute, one weak match with it: a post-filter on the
    // top k would lose it.
    let mut ops = Vec::new();
    for i in 0..300 {
        ops.push(WriteOp::Upsert(doc(
            &format!("noise{i}"),
            "Blue blue hoodie",
            &["blue hoodie blue hoodie warm blue hoodie"],
            &[("color", AttrValue::Keyword("blue".into()))],
        )));
    }
    ops.push(WriteOp::Upsert(doc(
        "target",
        "Garden hose",
        &["a garden hose that is not a hoodie"],
        &[("color", AttrValue::Keyword("green".into()))],
    )));
    shard.apply(batch(ops)).unwrap();
    for mode in [Mode::Bm25, Mode::Vector, Mode::Hybrid] {
        let mut req = request("blue hoodie", mode);
        req.k = 5;
        req.filter = Some(Filter::parse(r#"color = "green""#).unwrap());
        let hits = search(&[&shard], &req).unwrap();
        assert_eq!(
            hits.hits
                .iter()
                .map(|h| h.doc_id.as_str())
                .collect::<Vec<_>>(),
            vec!["target"],
            "{mode:?}"
        );
        assert_eq!(hits.filtered_chunks, 1);
        assert_eq!(hits.hits[0].attributes["color"], "green");
    }
    // A numeric range and NOT work on the same bitmaps.
    let mut req = request("hoodie", Mode::Hybrid);
    req.filter = Some(Filter::parse(r#"NOT color = "blue""#).unwrap());
    assert_eq!(search(&[&shard], &req).unwrap().hits.len(), 1);
}

#[test]
fn filtered_vector_search_has_full_recall() {
    let tmp = tempfile::tempdir().unwrap();
    let shard = new_shard(tmp.path());
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let words = [
        "alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta", "iota", "kappa",
    ];
    let mut ops = Vec::new();
    for i in 0..2000 {
        let text: Vec<&str> = (0..6)
            .map(|_| words[rng.random_range(0..words.len())])
            .collect();
        let text = text.join(" ");
        ops.push(WriteOp::Upsert(doc(
            &format!("d{i}"),
            "",
            &[text.as_str()],
            &[("bucket", AttrValue::Number(rust_decimal(i % 50)))],
        )));
    }
    shard.apply(batch(ops)).unwrap();
    let mut req = request("alpha beta gamma", Mode::Vector);
    req.k = 10;
    req.filter = Some(Filter::parse("bucket < 3").unwrap());
    let got = search(&[&shard], &req).unwrap();
    assert_eq!(got.filtered_chunks, 120);
    // Oracle: score every matching chunk by hand.
    let q = embedder().embed_query("alpha beta gamma").unwrap().values;
    let mut all: Vec<(f32, String)> = Vec::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for i in 0..2000 {
        let text: Vec<&str> = (0..6)
            .map(|_| words[rng.random_range(0..words.len())])
            .collect();
        if i % 50 < 3 {
            let v = embedder()
                .embed_batch(&[text.join(" ").as_str()])
                .unwrap()
                .remove(0);
            let s: f32 = q.iter().zip(&v).map(|(a, b)| a * b).sum();
            all.push((s, format!("d{i}")));
        }
    }
    all.sort_by(|a, b| b.0.total_cmp(&a.0));
    let cutoff = all[9].0;
    // Ten hits, every one in the filter and among the exact top 10.
    assert_eq!(got.hits.len(), 10);
    for h in &got.hits {
        let s = h.vector.unwrap().score;
        let i: usize = h.doc_id.trim_start_matches('d').parse().unwrap();
        assert!(i % 50 < 3, "hit {} is outside the filter", h.doc_id);
        assert!(
            s >= cutoff - 1e-5,
            "hit {} scored {s} below the exact 10th {cutoff}",
            h.doc_id
        );
    }
}

fn rust_decimal(i: i64) -> dartmouth_engine::Decimal {
    dartmouth_engine::Decimal::from_int(i).unwrap()
}

#[test]
fn ranking_is_deterministic_and_carries_branch_ranks() {
    let tmp = tempfile::tempdir().unwrap();
    let shard = new_shard(tmp.path());
    let mut ops = Vec::new();
    for i in 0..50 {
        // Identical texts: every score ties, so only the tie-break orders them.
        ops.push(WriteOp::Upsert(doc(
            &format!("same{i:02}"),
            "Same",
            &["identical text here"],
            &[],
        )));
    }
    shard.apply(batch(ops)).unwrap();
    for mode in [Mode::Bm25, Mode::Vector, Mode::Hybrid] {
        let req = request("identical text", mode);
        let first = ids(&shard, &req);
        for _ in 0..5 {
            assert_eq!(ids(&shard, &req), first, "{mode:?}");
        }
    }
    let hits = search(&[&shard], &request("identical text", Mode::Hybrid))
        .unwrap()
        .hits;
    assert!(hits.iter().all(|h| h.bm25.is_some() && h.vector.is_some()));
    assert_eq!(hits[0].bm25.unwrap().rank, 1);
    let mut weighted = request("identical text", Mode::Hybrid);
    weighted.fusion = Fusion::Weighted {
        bm25_weight: 0.5,
        vector_weight: 0.5,
    };
    assert_eq!(search(&[&shard], &weighted).unwrap().hits.len(), 10);
}

#[test]
fn bad_queries_get_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let shard = new_shard(tmp.path());
    shard.apply(batch(sample_docs())).unwrap();
    let mut r = request("   ", Mode::Bm25);
    assert!(
        search(&[&shard], &r)
            .unwrap_err()
            .to_string()
            .contains("empty")
    );
    r = request("blue", Mode::Vector);
    r.vectors[0].values[0] = f32::NAN;
    assert!(
        search(&[&shard], &r)
            .unwrap_err()
            .to_string()
            .contains("not a finite")
    );
    r = request("blue", Mode::Vector);
    r.vectors[0].values.pop();
    assert!(matches!(
        search(&[&shard], &r).unwrap_err(),
        Error::DimensionMismatch { .. }
    ));
    r = request("blue", Mode::Hybrid);
    r.vectors[0].model_id = "other".into();
    assert!(matches!(
        search(&[&shard], &r).unwrap_err(),
        Error::ModelMismatch { .. }
    ));
    r = request("blue", Mode::Hybrid);
    r.vectors = Vec::new();
    assert!(
        search(&[&shard], &r)
            .unwrap_err()
            .to_string()
            .contains("needs a query vector")
    );
    r = request("blue", Mode::Bm25);
    r.k = 0;
    assert!(search(&[&shard], &r).is_err());
}

#[test]
fn shards_create_list_and_delete() {
    let tmp = tempfile::tempdir().unwrap();
    let shards = Shards::open(tmp.path()).unwrap();
    let settings = DomainSettings::new(embedder().spec().clone());
    shards.create("support-kb", settings.clone()).unwrap();
    shards.create("store", settings.clone()).unwrap();
    assert!(matches!(
        shards.create("store", settings.clone()),
        Err(Error::DomainExists(_))
    ));
    assert!(shards.create("Bad Name", settings.clone()).is_err());
    assert!(shards.create("../etc", settings).is_err());
    assert_eq!(shards.list().unwrap(), vec!["store", "support-kb"]);
    shards.delete("store").unwrap();
    assert_eq!(shards.list().unwrap(), vec!["support-kb"]);
    assert!(matches!(shards.get("store"), Err(Error::DomainNotFound(_))));
    assert!(matches!(
        shards.get("../etc"),
        Err(Error::DomainNotFound(_))
    ));
}

#[test]
fn graph_checkpoint_reloads_and_survives_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let shard = new_shard(tmp.path());
    shard.apply(batch(sample_docs())).unwrap();
    shard.checkpoint().unwrap();
    shard
        .apply(batch(vec![WriteOp::Upsert(doc(
            "late",
            "Late",
            &["added after the checkpoint"],
            &[],
        ))]))
        .unwrap();
    let expect = ids(&shard, &request("checkpoint added", Mode::Vector));
    drop(shard);
    let shard = Shard::open(&tmp.path().join("kb"), "kb").unwrap();
    assert_eq!(
        ids(&shard, &request("checkpoint added", Mode::Vector)),
        expect
    );
    drop(shard);
    // A damaged graph file is rebuilt from the vectors.
    let graph_dir = tmp.path().join("kb/graph");
    let mut damaged = 0;
    for entry in std::fs::read_dir(&graph_dir).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "dkg") {
            std::fs::write(&p, b"garbage").unwrap();
            damaged += 1;
        }
    }
    assert_eq!(damaged, 1, "one saved graph");
    let shard = Shard::open(&tmp.path().join("kb"), "kb").unwrap();
    assert_eq!(
        ids(&shard, &request("checkpoint added", Mode::Vector)),
        expect
    );
}

/// A copy taken while the shard serves opens at the copied commit: the same sequence and the
/// same answers, untouched by later writes to the original (and their vector rows).
#[test]
fn a_copy_opens_at_the_commit_it_copied() {
    let tmp = tempfile::tempdir().unwrap();
    let shard = new_shard(tmp.path());
    let mut first = batch(sample_docs());
    first.seq = Some(7);
    shard.apply(first).unwrap();
    shard.checkpoint().unwrap();
    let mut tail = batch(vec![WriteOp::Upsert(doc(
        "tail",
        "Tail",
        &["written after the checkpoint, before the copy"],
        &[],
    ))]);
    tail.seq = Some(8);
    shard.apply(tail).unwrap();
    let hybrid = request("returned within days", Mode::Hybrid);
    let vector = request("written after the checkpoint", Mode::Vector);
    let expect = (ids(&shard, &hybrid), ids(&shard, &vector));
    let copy = tmp.path().join("copy");
    assert_eq!(shard.copy_to(&copy).unwrap(), 8);
    assert!(
        shard.copy_to(&copy).is_err(),
        "an existing directory is refused"
    );
    let mut later = batch(vec![WriteOp::Upsert(doc(
        "later",
        "Later",
        &["written after the copy was taken"],
        &[],
    ))]);
    later.seq = Some(9);
    shard.apply(later).unwrap();
    let copied = Shard::open(&copy, "kb").unwrap();
    assert_eq!(copied.applied_seq(), 8);
    assert_eq!(copied.stats().documents, shard.stats().documents - 1);
    assert_eq!((ids(&copied, &hybrid), ids(&copied, &vector)), expect);
    let has = |hits: Vec<String>, doc: &str| hits.iter().any(|c| c.starts_with(doc));
    assert!(!has(
        ids(&copied, &request("taken after the copy", Mode::Hybrid)),
        "later"
    ));
    // The copy is a shard of its own: it takes writes.
    let mut own = batch(vec![WriteOp::Delete("tail".into())]);
    own.seq = Some(9);
    copied.apply(own).unwrap();
    assert!(!has(ids(&copied, &vector), "tail"));
    assert!(has(ids(&shard, &vector), "tail"));
}

/// A one-thread OpenAI-compatible embeddings server on loopback, answering `requests` requests.
fn fake_openai_server(requests: usize) -> (String, std::thread::JoinHandle<Vec<String>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let mut auth_headers = Vec::new();
        for _ in 0..requests {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut len = 0;
            let mut path = String::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if path.is_empty() {
                    path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
                if lower.starts_with("authorization:") {
                    auth_headers.push(line.trim().to_string());
                }
                if line == "\r\n" || line.is_empty() {
                    break;
                }
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            let request: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let inputs: Vec<String> = request["input"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect();
            let (status, answer) = if inputs.iter().any(|t| t == "fail") {
                (
                    "500 Internal Server Error",
                    r#"{"error":"boom"}"#.to_string(),
                )
            } else {
                let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
                let vectors = embedder().embed_batch(&refs).unwrap();
                // Answer out of order: the client must use `index`.
                let data: Vec<serde_json::Value> = vectors
                    .iter()
                    .enumerate()
                    .rev()
                    .map(|(i, v)| serde_json::json!({"object": "embedding", "index": i, "embedding": v}))
                    .collect();
                (
                    "200 OK",
                    serde_json::json!({ "data": data, "model": request["model"] }).to_string(),
                )
            };
            assert_eq!(path, "/v1/embeddings");
            let mut stream = stream;
            write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            )
            .unwrap();
        }
        auth_headers
    });
    (url, handle)
}

#[test]
fn openai_compatible_embedder_talks_to_a_real_http_server() {
    use dartmouth_engine::embed::OpenAiEmbedder;
    let (url, server) = fake_openai_server(2);
    let remote = OpenAiEmbedder::new(&url, "text-embed", DIM, Some("sk-test".into()));
    assert_eq!(remote.spec().id, "openai-compatible:text-embed");
    let texts = ["blue hoodie", "return policy", "blue hoodie in size M"];
    let got = remote.embed_batch(&texts).unwrap();
    let want = embedder().embed_batch(&texts).unwrap();
    for (g, w) in got.iter().zip(&want) {
        assert!(g.iter().zip(w).all(|(a, b)| (a - b).abs() < 1e-6));
    }
    let err = remote.embed_batch(&["fail"]).unwrap_err().to_string();
    assert!(err.contains("500") && err.contains("boom"), "{err}");
    let auth = server.join().unwrap();
    assert_eq!(auth.len(), 2);
    assert!(
        auth.iter()
            .all(|h| h.eq_ignore_ascii_case("authorization: Bearer sk-test")),
        "{auth:?}"
    );
}

#[test]
fn document_retrieval_scores_whole_documents_and_cites_the_best_chunk() {
    let tmp = tempfile::tempdir().unwrap();
    let shard = new_shard(tmp.path());
    let filler = "orchards need water sunlight pruning and patience every season ".repeat(20);
    let long_first = format!("{filler} kiwi");
    shard
        .apply(batch(vec![
            // Two mentions spread over a long document, one of them in a short tail chunk.
            WriteOp::Upsert(doc("long", "Orchard", &[&long_first, "kiwi"], &[])),
            // One mention in a short document.
            WriteOp::Upsert(doc(
                "short",
                "Fruit",
                &["a kiwi is a fuzzy brown berry from vines"],
                &[],
            )),
        ]))
        .unwrap();
    let mut req = request("kiwi", Mode::Bm25);
    // Chunk level: the two-word tail chunk wins on length normalisation.
    let chunks = search(&[&shard], &req).unwrap();
    assert_eq!(chunks.hits[0].chunk_id, "long#1");
    // Document level: the short document, where kiwi is denser, wins; the long document is
    // still cited by its best chunk, not its first.
    req.collapse = true;
    let docs = search(&[&shard], &req).unwrap();
    let got: Vec<&str> = docs.hits.iter().map(|h| h.chunk_id.as_str()).collect();
    assert_eq!(got, ["short#0", "long#1"]);
    assert!(docs.hits[1].text.contains("kiwi") && docs.hits[1].url.is_some());
    // Without payload: the same ids, ranks and scores, nothing read from the document store.
    req.with_payload = false;
    let bare = search(&[&shard], &req).unwrap();
    for (a, b) in bare.hits.iter().zip(&docs.hits) {
        assert_eq!(
            (&a.chunk_id, &a.doc_id, a.chunk_idx),
            (&b.chunk_id, &b.doc_id, b.chunk_idx)
        );
        assert_eq!((a.score, a.bm25, a.vector), (b.score, b.bm25, b.vector));
        assert!(a.text.is_empty() && a.url.is_none());
    }
    req.with_payload = true;
    assert_eq!(shard.stats().documents, 2);
    shard
        .apply(batch(vec![WriteOp::Delete("short".into())]))
        .unwrap();
    assert_eq!(shard.stats().documents, 1);
    let docs = search(&[&shard], &req).unwrap();
    assert_eq!(docs.hits.len(), 1);
    assert_eq!(docs.hits[0].chunk_id, "long#1");
}

/// Document-level BM25 counts documents by their first chunks while tantivy's term counts
/// include rows deleted by updates and the title on every chunk: a document updated many times,
/// or a title boost over many-chunk documents, once failed tantivy's IDF assertion (a panic
/// that took the search down).
#[test]
fn document_level_scoring_survives_updates_and_title_boosts() {
    let tmp = tempfile::tempdir().unwrap();
    let shard = new_shard(tmp.path());
    for round in 0..12u32 {
        let body = format!("kettle round {round} boils water fast");
        shard
            .apply(batch(vec![WriteOp::Upsert(doc(
                "k",
                "Kettle",
                &[&body, "kettle spare lid", "kettle cable"],
                &[],
            ))]))
            .unwrap();
    }
    let mut req = request("kettle", Mode::Bm25);
    req.collapse = true;
    for boost in [0.0, 2.0] {
        req.title_boost = boost;
        let found = search(&[&shard], &req).unwrap();
        assert_eq!(found.hits.len(), 1, "boost {boost}");
        assert_eq!(found.hits[0].doc_id, "k");
    }
}

/// A search whose query is embedded during the search (BM25 running meanwhile in hybrid mode)
/// returns exactly what the search with the vector given returns, over several shards and with a
/// filter; an embedding failure is the search's error; a request it does not fit is refused.
#[test]
fn embedding_during_the_search_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let a = new_shard(&tmp.path().join("a"));
    let b = new_shard(&tmp.path().join("b"));
    a.apply(batch(sample_docs())).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let words = [
        "blue", "hoodie", "rain", "jacket", "return", "sale", "cotton", "warm",
    ];
    let ops = (0..200)
        .map(|i| {
            let text: Vec<&str> = (0..12)
                .map(|_| words[rng.random_range(0..words.len())])
                .collect();
            let colour = if i % 3 == 0 { "green" } else { "blue" };
            WriteOp::Upsert(doc(
                &format!("d{i}"),
                &format!("Doc {i}"),
                &[&text.join(" ")],
                &[("color", AttrValue::Keyword(colour.into()))],
            ))
        })
        .collect();
    b.apply(batch(ops)).unwrap();
    let shards = [&a, &b];
    let summary = |r: dartmouth_engine::SearchResponse| {
        (
            r.hits
                .into_iter()
                .map(|h| (h.chunk_id, h.score.to_bits(), h.bm25, h.vector))
                .collect::<Vec<_>>(),
            r.filtered_chunks,
            r.filtered_documents,
        )
    };
    for mode in [Mode::Hybrid, Mode::Vector] {
        for filter in [None, Some(r#"color = "green""#)] {
            for query in ["blue hoodie", "warm cotton jacket for rain"] {
                let mut given = request(query, mode);
                given.k = 20;
                given.filter = filter.map(|f| Filter::parse(f).unwrap());
                let mut lazy = given.clone();
                lazy.vectors = Vec::new();
                let embedded = dartmouth_engine::search_embedding(
                    &shards,
                    &lazy,
                    Box::new(|| embedder().embed_query(query).map(|e| vec![e])),
                )
                .unwrap();
                assert!(!embedded.hits.is_empty(), "{mode:?} {query}");
                assert_eq!(
                    summary(embedded),
                    summary(search(&shards, &given).unwrap()),
                    "{mode:?} {filter:?} {query}"
                );
            }
        }
    }
    let mut lazy = request("blue hoodie", Mode::Hybrid);
    lazy.vectors = Vec::new();
    let failed = dartmouth_engine::search_embedding(
        &shards,
        &lazy,
        Box::new(|| Err(Error::ModelUnavailable("the model is gone".into()))),
    );
    assert!(
        matches!(&failed, Err(Error::ModelUnavailable(m)) if m == "the model is gone"),
        "{failed:?}"
    );
    // A vector from another model is refused as when given.
    let other = FakeEmbedder::new(DIM + 1);
    let wrong = dartmouth_engine::search_embedding(
        &shards,
        &lazy,
        Box::new(move || other.embed_query("blue hoodie").map(|e| vec![e])),
    );
    assert!(wrong.is_err(), "{wrong:?}");
    // With the vector already given, or in bm25 mode, it is a plain search.
    for req in [
        request("blue hoodie", Mode::Hybrid),
        request("blue hoodie", Mode::Bm25),
    ] {
        let refused = dartmouth_engine::search_embedding(
            &shards,
            &req,
            Box::new(|| embedder().embed_query("blue hoodie").map(|e| vec![e])),
        );
        assert!(
            matches!(refused, Err(Error::InvalidInput(_))),
            "{refused:?}"
        );
    }
}

/// Invariant 2: a document deleted and written again gets new ordinals, never its old ones nor
/// another's, so equal scores keep the order of writing: the re-written twin ranks last.
#[test]
fn ordinals_are_never_reused() {
    let tmp = tempfile::tempdir().unwrap();
    let shard = new_shard(tmp.path());
    let twin = |id: &str| WriteOp::Upsert(doc(id, "", &["identical words in every twin"], &[]));
    shard
        .apply(batch(vec![twin("a"), twin("b"), twin("c")]))
        .unwrap();
    let order = |shard: &Shard| -> Vec<String> {
        let mut req = request("identical words", Mode::Bm25);
        req.k = 10;
        search(&[shard], &req)
            .unwrap()
            .hits
            .into_iter()
            .map(|h| h.doc_id)
            .collect()
    };
    assert_eq!(order(&shard), ["a", "b", "c"]);
    shard
        .apply(batch(vec![WriteOp::Delete("a".into())]))
        .unwrap();
    assert_eq!(order(&shard), ["b", "c"]);
    // Written again: a new ordinal, after the others' (its old one is not reused), on both
    // branches.
    shard.apply(batch(vec![twin("a")])).unwrap();
    assert_eq!(order(&shard), ["b", "c", "a"]);
    let mut req = request("identical words in every twin", Mode::Vector);
    req.k = 10;
    let by_vector: Vec<String> = search(&[&shard], &req)
        .unwrap()
        .hits
        .into_iter()
        .map(|h| h.doc_id)
        .collect();
    assert_eq!(by_vector, ["b", "c", "a"]);
    // And across a reopen.
    drop(shard);
    let shard = Shard::open(&tmp.path().join("kb"), "kb").unwrap();
    assert_eq!(order(&shard), ["b", "c", "a"]);
    shard.apply(batch(vec![twin("d")])).unwrap();
    assert_eq!(order(&shard), ["b", "c", "a", "d"]);
}
