//! What monitoring and clients read without a credential: health, readiness, metrics, the
//! OpenAPI document; an unknown route; a missing or unknown credential.

use crate::inproc::{InProcess, help_centre};

#[test]
fn health_readiness_and_metrics_need_no_credential() {
    let p = InProcess::new(&[]);
    assert_eq!(p.call("GET", "/healthz", None, None).0, 200);
    assert_eq!(p.call("GET", "/readyz", None, None).0, 200);
    let (status, metrics) = p.call("GET", "/metrics", None, None);
    assert_eq!(status, 200);
    assert!(
        metrics.as_str().unwrap().contains("dartmouth_"),
        "{metrics}"
    );
}

#[test]
fn the_openapi_document_is_served_as_derived() {
    let p = InProcess::new(&[]);
    let (status, doc) = p.call("GET", "/openapi.json", None, None);
    assert_eq!(status, 200);
    assert_eq!(doc, dartmouth_server::http::openapi::document());
}

#[test]
fn an_unknown_route_is_a_404_pointing_at_the_document() {
    let p = InProcess::new(&[]);
    let (status, reply) = p.call("GET", "/v1/nothing-here", None, None);
    assert_eq!(status, 404, "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/openapi.json")
    );
}

#[test]
fn a_missing_or_unknown_credential_is_a_401_without_detail() {
    let (p, _keys) = help_centre();
    let search = r#"{"query":"refund","domains":["help"]}"#;
    let (s1, none) = p.call("POST", "/v1/search", None, Some(search));
    let (s2, unknown) = p.call(
        "POST",
        "/v1/search",
        Some("dk_0000000000_nope"),
        Some(search),
    );
    assert_eq!((s1, s2), (401, 401), "{none} {unknown}");
    assert_eq!(none["error"]["code"], "unauthenticated");
    assert_eq!(unknown["error"]["code"], "unauthenticated");
}

#[test]
fn models_are_listed_with_their_cards() {
    let (p, keys) = help_centre();
    let (status, models) = p.call("GET", "/v1/models", Some(&keys.reader), None);
    assert_eq!(status, 200, "{models}");
    let ids: Vec<&str> = models["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    for id in [
        "all-minilm-l6-v2",
        "all-minilm-l6-v2-int8",
        "bge-small-en-v1.5",
    ] {
        assert!(ids.contains(&id), "{models}");
    }
}
