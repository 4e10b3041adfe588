//! `POST /v1/search` and `POST /v1/context`: bad input named by its field, context packs
//! within their budget, a write found at once with its facet.

use serde_json::json;

use crate::inproc::{help_centre, message};

#[test]
fn bad_search_input_is_a_400_naming_its_field() {
    let (p, keys) = help_centre();
    let deep = |n: usize| format!("{}a = 1{}", "(".repeat(n), ")".repeat(n));
    let cases: [(&str, String, &str); 8] = [
        ("malformed JSON", r#"{"query": "#.to_string(), "EOF"),
        ("wrong type", r#"{"query": 5}"#.to_string(), "query"),
        (
            "unknown field",
            r#"{"query": "a", "colour": 1}"#.to_string(),
            "colour",
        ),
        (
            "k = 1,000,000",
            r#"{"query": "a", "k": 1000000}"#.to_string(),
            "k",
        ),
        (
            "a 1 MB query",
            json!({"query": "a".repeat(1 << 20)}).to_string(),
            "query",
        ),
        (
            "a filter nested 100,000 deep",
            json!({"query": "a", "filter": deep(100_000)}).to_string(),
            "filter",
        ),
        (
            "a filter nested 40 deep",
            json!({"query": "a", "filter": deep(40)}).to_string(),
            "filter",
        ),
        (
            "a bad mode",
            r#"{"query": "a", "mode": "psychic"}"#.to_string(),
            "mode",
        ),
    ];
    for (what, body, field) in &cases {
        let (status, reply) = p.call("POST", "/v1/search", Some(&keys.reader), Some(body));
        assert_eq!(status, 400, "{what}: {reply}");
        assert_eq!(reply["error"]["code"], "invalid_argument", "{what}");
        assert!(
            message(&reply).contains(field),
            "{what}: {reply} does not name {field}"
        );
    }
}

#[test]
fn a_context_pack_cites_one_passage_per_document_within_its_budget() {
    let (p, keys) = help_centre();
    let (status, ctx) = p.call(
        "POST",
        "/v1/context",
        Some(&keys.reader),
        Some(r#"{"query":"refund for a damaged item","domains":["help"],"max_tokens":300}"#),
    );
    assert_eq!(status, 200, "{ctx}");
    assert!(ctx["tokens"].as_u64().unwrap() <= 300, "{ctx}");
    assert!(
        ctx["context"].as_str().unwrap().starts_with("[1] "),
        "{ctx}"
    );
    let docs: Vec<&str> = ctx["passages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["doc_id"].as_str().unwrap())
        .collect();
    assert!(!docs.is_empty(), "{ctx}");
    let mut unique = docs.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        docs.len(),
        unique.len(),
        "one passage per document: {docs:?}"
    );
}

#[test]
fn a_written_document_is_found_with_its_facet() {
    let (p, keys) = help_centre();
    let (status, ack) = p.call(
        "POST",
        "/v1/domains/help/documents",
        Some(&keys.writer),
        Some(
            r#"{"documents":[{"id":"fresh.md","title":"Fresh","text":"Zanzibar shipping is free this week.","attributes":{"tier":"gold"}}]}"#,
        ),
    );
    assert_eq!(status, 200, "{ack}");
    let body = json!({"query": "zanzibar shipping", "domains": ["help"], "mode": "bm25",
                      "min_seq": {"help": ack["seq"]}, "facets": ["tier"]});
    let (status, found) = p.call(
        "POST",
        "/v1/search",
        Some(&keys.reader),
        Some(&body.to_string()),
    );
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["hits"][0]["doc_id"], "fresh.md", "{found}");
    assert_eq!(
        found["facets"]["tier"][0],
        json!({"value": "gold", "count": 1}),
        "{found}"
    );
}

#[test]
fn an_unreadable_domain_answers_exactly_like_a_missing_one() {
    let (p, keys) = help_centre();
    let (s1, hidden) = p.call(
        "POST",
        "/v1/search",
        Some(&keys.other),
        Some(r#"{"query":"refund","domains":["help"]}"#),
    );
    let (s2, missing) = p.call(
        "POST",
        "/v1/search",
        Some(&keys.other),
        Some(r#"{"query":"refund","domains":["nope"]}"#),
    );
    assert_eq!((s1, s2), (404, 404));
    assert_eq!(
        hidden.to_string().replace("help", "X"),
        missing.to_string().replace("nope", "X")
    );
}
