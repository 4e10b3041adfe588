//! `POST /v1/domains`, `GET /v1/domains`, `DELETE /v1/domains/{d}`: names and settings checked
//! before anything is stored; a deleted domain is gone for everyone.

use crate::inproc::{help_centre, message};

#[test]
fn bad_domains_are_refused_naming_the_field_and_nothing_is_stored() {
    let (p, keys) = help_centre();
    let admin = Some(keys.admin.as_str());
    for (body, want) in [
        // A name the store would take but a shard directory cannot.
        (r#"{"name":"a.b","embedder":"fake"}"#, "name"),
        (r#"{"name":"","embedder":"fake"}"#, "name"),
        (r#"{"name":"ok","embedder":"psychic"}"#, "embedder"),
        (r#"{"name":"ok","model":"no-such-model"}"#, "model"),
        (
            r#"{"name":"ok","embedder":"fake","chunk_tokens":0}"#,
            "chunk_tokens",
        ),
        (
            r#"{"name":"ok","embedder":"fake","option_names":{"x":"not a field!"}}"#,
            "option_names",
        ),
    ] {
        let (status, reply) = p.call("POST", "/v1/domains", admin, Some(body));
        assert_eq!(status, 400, "{body}: {reply}");
        assert!(message(&reply).contains(want), "{body}: {reply}");
    }
    let (_, domains) = p.call("GET", "/v1/domains", admin, None);
    let names: Vec<&str> = domains
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["help", "scratch", "secret"], "{domains}");
}

#[test]
fn a_domain_twice_is_a_conflict() {
    let (p, keys) = help_centre();
    let (status, reply) = p.call(
        "POST",
        "/v1/domains",
        Some(&keys.admin),
        Some(r#"{"name":"help","embedder":"fake"}"#),
    );
    assert_eq!(status, 409, "{reply}");
}

#[test]
fn only_a_superuser_creates_domains_and_a_reader_lists_what_it_reads() {
    let (p, keys) = help_centre();
    for key in [&keys.restricted, &keys.writer, &keys.reader] {
        let (status, reply) = p.call(
            "POST",
            "/v1/domains",
            Some(key),
            Some(r#"{"name":"mine","embedder":"fake"}"#),
        );
        assert_eq!(status, 403, "{reply}");
    }
    let (_, listed) = p.call("GET", "/v1/domains", Some(&keys.reader), None);
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["help"], "{listed}");
}

#[test]
fn a_deleted_domain_is_gone_for_everyone() {
    let (p, keys) = help_centre();
    let (status, reply) = p.call("DELETE", "/v1/domains/help", Some(&keys.admin), None);
    assert_eq!(status, 200, "{reply}");
    let search = r#"{"query":"refund","domains":["help"]}"#;
    for key in [&keys.reader, &keys.admin] {
        let (status, reply) = p.call("POST", "/v1/search", Some(key), Some(search));
        assert_eq!(status, 404, "{reply}");
    }
    let (status, _) = p.call("GET", "/v1/domains/help", Some(&keys.admin), None);
    assert_eq!(status, 404);
}
