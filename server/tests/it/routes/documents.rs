//! A domain's documents: `POST …/documents` (JSON ingest), `GET`/`DELETE …/documents/{id}`,
//! `POST …/delete` by ids or by a filter; bad deletes named, readers refused.

use serde_json::json;

use crate::inproc::{InProcess, Keys, help_centre_with_scratch_writer, message};

fn with_products() -> (InProcess, Keys) {
    let (p, keys) = help_centre_with_scratch_writer();
    let ingest = json!({"documents": [
        {"id": "p1", "text": "Red planet poster", "attributes": {"vendor": "Acme", "price": 10}},
        {"id": "p2", "text": "Red planet mug", "attributes": {"vendor": "Acme", "price": 30}},
        {"id": "p3", "text": "Red planet cap", "attributes": {"vendor": "Zenith", "price": 20}}
    ]});
    let (status, out) = p.call(
        "POST",
        "/v1/domains/scratch/documents",
        Some(&keys.writer),
        Some(&ingest.to_string()),
    );
    assert_eq!(status, 200, "{out}");
    (p, keys)
}

fn found(p: &InProcess, key: &str) -> Vec<String> {
    let body = json!({"query": "red planet", "domains": ["scratch"], "mode": "bm25"});
    let (_, out) = p.call("POST", "/v1/search", Some(key), Some(&body.to_string()));
    let mut ids: Vec<String> = out["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["doc_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

#[test]
fn a_stored_document_is_read_back_by_id() {
    let (p, keys) = with_products();
    let (status, doc) = p.call(
        "GET",
        "/v1/domains/scratch/documents/p2",
        Some(&keys.writer),
        None,
    );
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["chunks"][0]["text"], "Red planet mug", "{doc}");
    assert_eq!(
        doc["attributes"],
        json!({"price": 30, "vendor": "Acme"}),
        "{doc}"
    );
    let (status, chunk) = p.call(
        "GET",
        "/v1/domains/scratch/documents/p2/chunks/0",
        Some(&keys.writer),
        None,
    );
    assert_eq!(status, 200, "{chunk}");
    assert_eq!(
        (
            &chunk["doc_id"],
            &chunk["chunk"]["chunk_id"],
            &chunk["chunk"]["text"]
        ),
        (&json!("p2"), &json!("p2#0"), &json!("Red planet mug")),
        "{chunk}"
    );
    let (status, reply) = p.call(
        "GET",
        "/v1/domains/scratch/documents/p2/chunks/first",
        Some(&keys.writer),
        None,
    );
    assert_eq!(status, 400, "{reply}");
    assert!(message(&reply).starts_with("idx:"), "{reply}");
}

#[test]
fn deleting_one_id_twice_deletes_once() {
    let (p, keys) = with_products();
    let path = "/v1/domains/scratch/documents/p1";
    let (status, one) = p.call("DELETE", path, Some(&keys.writer), None);
    assert_eq!((status, &one["deleted"]), (200, &json!(1)), "{one}");
    let (status, again) = p.call("DELETE", path, Some(&keys.writer), None);
    assert_eq!((status, &again["deleted"]), (200, &json!(0)), "{again}");
    let (status, gone) = p.call("GET", path, Some(&keys.writer), None);
    assert_eq!(
        (status, &gone["error"]["code"]),
        (404, &json!("not_found")),
        "{gone}"
    );
    assert_eq!(found(&p, &keys.writer), ["p2", "p3"]);
}

#[test]
fn deleting_by_ids_and_by_filter() {
    let (p, keys) = with_products();
    let (status, by_filter) = p.call(
        "POST",
        "/v1/domains/scratch/delete",
        Some(&keys.writer),
        Some(r#"{"filter":"vendor = \"acme\" AND price > 5"}"#),
    );
    assert_eq!(
        (status, &by_filter["deleted"]),
        (200, &json!(2)),
        "{by_filter}"
    );
    assert_eq!(found(&p, &keys.writer), ["p3"]);
    let (status, by_ids) = p.call(
        "POST",
        "/v1/domains/scratch/delete",
        Some(&keys.writer),
        Some(r#"{"ids":["p3","p9"]}"#),
    );
    assert_eq!((status, &by_ids["deleted"]), (200, &json!(1)), "{by_ids}");
    assert!(found(&p, &keys.writer).is_empty());
}

#[test]
fn bad_deletes_name_their_field_and_delete_nothing() {
    let (p, keys) = with_products();
    for (body, want) in [
        (r#"{"filter":"vendor = "}"#, "filter:"),
        (
            r#"{"ids":["p3"],"filter":"price > 1"}"#,
            "either `ids` or `filter`",
        ),
        (r#"{}"#, "either `ids` or `filter`"),
        (r#"{"ids":[""]}"#, "ids[0]:"),
    ] {
        let (status, reply) = p.call(
            "POST",
            "/v1/domains/scratch/delete",
            Some(&keys.writer),
            Some(body),
        );
        assert_eq!(status, 400, "{body}: {reply}");
        assert!(message(&reply).contains(want), "{body}: {reply}");
    }
    assert_eq!(found(&p, &keys.writer), ["p1", "p2", "p3"]);
}

#[test]
fn a_reader_of_another_domain_cannot_delete() {
    let (p, keys) = with_products();
    let (status, _) = p.call(
        "POST",
        "/v1/domains/scratch/delete",
        Some(&keys.reader),
        Some(r#"{"ids":["p3"]}"#),
    );
    assert_eq!(status, 404, "a reader of help cannot see scratch");
    let (status, _) = p.call(
        "DELETE",
        "/v1/domains/scratch/documents/p3",
        Some(&keys.reader),
        None,
    );
    assert_eq!(status, 404);
    assert_eq!(found(&p, &keys.writer), ["p1", "p2", "p3"]);
}
