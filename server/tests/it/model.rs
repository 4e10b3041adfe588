//! The real all-MiniLM-L6-v2 end to end over both transports.

use std::path::Path;

use dartmouth_server::proto::{self as pb};
use serde_json::json;

use crate::support::*;

/// The real model end to end: a domain created with the default embedder (all-MiniLM-L6-v2 on
/// ONNX Runtime, from `scripts/setup-model.sh`), indexed by the CLI and served; a query that
/// shares no word with its answer finds it on the vector branch, over HTTP and gRPC alike, and
/// the second ask is answered from the query-embedding cache.
#[test]
fn the_real_model_serves_meaning_over_both_transports() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sample/help-centre");
    cli(&data, &["domain", "create", "help"]);
    cli(
        &data,
        &["index", "--domain", "help", sample.to_str().unwrap()],
    );
    cli(&data, &["principal", "create", "reader", "--kind", "agent"]);
    cli(&data, &["grant", "reader", "help", "read"]);
    let key = key_for(&data, "reader");
    // Result cache off: every ask below reaches the query-embedding cache.
    let s = start(dir, data, &["--result-cache-bytes", "0"]);

    // No word of the query is in any page of the sample (BM25 finds nothing); the returns page
    // speaks of refunds.
    let query = "reimburse an unwanted purchase";
    let bm25 = json!({"query": query, "domains": ["help"], "mode": "bm25"}).to_string();
    let (status, none) = call(&s, "POST", "/v1/search", Some(&key), Some(&bm25));
    assert_eq!(status, 200, "{none}");
    assert_eq!(none["hits"], json!([]), "{none}");
    let body = json!({"query": query, "domains": ["help"], "mode": "vector", "k": 3}).to_string();
    let (status, http) = call(&s, "POST", "/v1/search", Some(&key), Some(&body));
    assert_eq!(status, 200, "{http}");
    let top = &http["hits"][0];
    assert_eq!(top["doc_id"], "returns.md", "{http}");
    assert_eq!(top["model"], "all-minilm-l6-v2", "{top}");
    assert_eq!(top["vector"]["rank"], 1, "{top}");
    assert!(top["bm25"].is_null(), "{top}");

    let rt = runtime();
    let grpc = rt.block_on(async {
        grpc_client(&s)
            .await
            .search(with_key(
                pb::SearchRequest {
                    query: query.into(),
                    domains: vec!["help".into()],
                    mode: "vector".into(),
                    k: 3,
                    ..Default::default()
                },
                Some(&key),
            ))
            .await
            .unwrap()
            .into_inner()
    });
    let grpc_hits: Vec<(String, String)> = grpc
        .hits
        .iter()
        .map(|h| (h.chunk_id.clone(), format!("{:.5}", h.score)))
        .collect();
    let http_hits: Vec<(String, String)> = http["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["chunk_id"].as_str().unwrap().to_string(),
                format!("{:.5}", h["score"].as_f64().unwrap()),
            )
        })
        .collect();
    assert_eq!(grpc_hits, http_hits);

    // Hybrid: the query embedded once per scope; the HTTP and gRPC asks above and this one
    // share it.
    let hybrid = json!({"query": query, "domains": ["help"], "k": 3}).to_string();
    let (status, found) = call(&s, "POST", "/v1/search", Some(&key), Some(&hybrid));
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["hits"][0]["doc_id"], "returns.md", "{found}");
    // A hybrid query not cached yet is embedded while its BM25 branch runs.
    let fresh =
        json!({"query": "compensation for goods I no longer want", "domains": ["help"], "k": 3})
            .to_string();
    let (status, found) = call(&s, "POST", "/v1/search", Some(&key), Some(&fresh));
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["hits"][0]["doc_id"], "returns.md", "{found}");
    assert!(!found["hits"][0]["vector"].is_null(), "{found}");
    let (_, metrics) = call(&s, "GET", "/metrics", None, None);
    let counter = |outcome: &str| -> u64 {
        metrics
            .as_str()
            .unwrap()
            .lines()
            .find(|l| {
                l.starts_with("dartmouth_cache_total{")
                    && l.contains("cache=\"embedding\"")
                    && l.contains(&format!("outcome=\"{outcome}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    assert_eq!((counter("miss"), counter("hit")), (2, 2), "{metrics}");

    // Context packs are measured in the model's own word pieces and never exceed the budget,
    // headers and separators included.
    let model_dir = std::env::var_os("DARTMOUTH_MODEL_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/all-minilm-l6-v2")
        });
    let sizer = dartmouth_indexer::Sizer::from_model_dir(&model_dir).unwrap();
    let mut sizes = Vec::new();
    for budget in [24, 60, 150, 400, 1500] {
        let body = json!({"query": "how do I return a sale item", "domains": ["help"],
                          "max_tokens": budget})
        .to_string();
        let (status, pack) = call(&s, "POST", "/v1/context", Some(&key), Some(&body));
        assert_eq!(status, 200, "{pack}");
        let context = pack["context"].as_str().unwrap();
        let measured = sizer.count(context);
        assert!(
            measured <= budget,
            "{budget}: {measured} word pieces: {context}"
        );
        assert_eq!(pack["tokens"], measured, "{pack}");
        assert!(
            !pack["passages"].as_array().unwrap().is_empty(),
            "{budget}: {pack}"
        );
        sizes.push(measured);
    }
    assert!(sizes[4] > sizes[0], "{sizes:?}");
}
