//! `dartmouth serve` on loopback, with real HTTP (ureq) and gRPC (tonic) clients: the same hits
//! on both transports, the endpoint × role matrix, bad input, rate limits shared by both
//! transports, read-your-writes, operations endpoints. The deterministic embedder stands in for
//! the model (the real one is exercised by eval's tests).
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dartmouth_server::proto::retrieval_client::RetrievalClient;
use dartmouth_server::proto::{self as pb};
use serde_json::{Value, json};
use support::*;
use tonic::transport::Channel;

/// Two domains (help, secret) with the sample help centre; principals and keys per role.
fn setup() -> (tempfile::TempDir, PathBuf, Keys) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sample/help-centre");
    let sample = sample.to_str().unwrap();
    for d in ["help", "secret", "scratch", "scratch-grpc"] {
        cli(&data, &["domain", "create", d, "--embedder", "fake"]);
    }
    cli(&data, &["index", "--domain", "help", sample]);
    cli(&data, &["index", "--domain", "secret", sample]);
    for (p, domain, role) in [
        ("reader", "help", "read"),
        ("writer", "help", "write"),
        ("other", "secret", "read"),
    ] {
        cli(&data, &["principal", "create", p, "--kind", "agent"]);
        cli(&data, &["grant", p, domain, role]);
    }
    // The end user agents act for with delegated tokens.
    cli(&data, &["principal", "create", "enduser", "--kind", "user"]);
    cli(&data, &["grant", "enduser", "help", "read"]);
    let keys = Keys {
        reader: key_for(&data, "reader"),
        writer: key_for(&data, "writer"),
        other: key_for(&data, "other"),
        admin: key_for(&data, "admin"),
        // The superuser's key restricted to one domain: an admin of help, no superuser.
        restricted: key_with(&data, &["--principal", "admin", "--domain", "help"]),
        expiring: key_with(&data, &["--principal", "reader", "--expires-in", "1h"]),
        // Spare keys of `writer` for the matrix's revocations (HTTP, gRPC), by their ids.
        spare: [0, 1].map(|_| key_for(&data, "writer")[..11].to_string()),
    };
    (dir, data, keys)
}

struct Keys {
    reader: String,
    writer: String,
    other: String,
    admin: String,
    restricted: String,
    expiring: String,
    spare: [String; 2],
}

/// Calls one gRPC method of the matrix with a fixed, valid request; the answer's code.
async fn grpc_call(ch: Channel, method: &str, key: Option<&str>, spare_key: &str) -> tonic::Code {
    use dartmouth_server::proto::admin_client::AdminClient;
    use dartmouth_server::proto::ingest_client::IngestClient;
    let mut r = RetrievalClient::new(ch.clone());
    let mut i = IngestClient::new(ch.clone());
    let ch2 = ch.clone();
    let mut a = AdminClient::new(ch);
    let search = || pb::SearchRequest {
        query: "refund".into(),
        domains: vec!["help".into()],
        ..Default::default()
    };
    let outcome: Result<(), tonic::Status> = match method {
        "Search" => r.search(with_key(search(), key)).await.map(drop),
        "Context" => r
            .context(with_key(pb::ContextRequest {
                query: "refund".into(),
                domains: vec!["help".into()],
                ..Default::default()
            }, key))
            .await
            .map(drop),
        "GetDocument" => r
            .get_document(with_key(pb::GetDocumentRequest {
                domain: "help".into(),
                doc_id: "returns.md".into(),
            }, key))
            .await
            .map(drop),
        "GetChunk" => r
            .get_chunk(with_key(pb::GetChunkRequest {
                domain: "help".into(),
                doc_id: "returns.md".into(),
                idx: 0,
            }, key))
            .await
            .map(drop),
        "IndexDocuments" => i
            .index_documents(with_key(pb::IndexDocumentsRequest {
                domain: "help".into(),
                documents: vec![pb::IngestDocument {
                    id: "grpc.md".into(),
                    title: "From gRPC".into(),
                    text: "A page written over gRPC.".into(),
                    url: None,
                    attributes_json: r#"{"tier":"silver"}"#.into(),
                }],
            }, key))
            .await
            .map(drop),
        "UploadCatalog" => i
            .upload_catalog(with_key(pb::UploadCatalogRequest {
                domain: "help".into(),
                body: br#"{"products":[{"id":7101,"title":"gRPC mug","handle":"grpc-mug","variants":[{"id":7102,"price":"9.00"}]}]}"#.to_vec(),
                ..Default::default()
            }, key))
            .await
            .map(drop),
        "ListDomains" => a.list_domains(with_key(pb::ListRequest {}, key)).await.map(drop),
        "CreateDomain" => a
            .create_domain(with_key(pb::CreateDomainRequest {
                name: "made-grpc".into(),
                description: String::new(),
                embedder: "fake".into(),
            }, key))
            .await
            .map(drop),
        "DeleteDomain" => a
            .delete_domain(with_key(pb::DeleteDomainRequest {
                name: "scratch-grpc".into(),
            }, key))
            .await
            .map(drop),
        "ListPrincipals" => a.list_principals(with_key(pb::ListRequest {}, key)).await.map(drop),
        "CreatePrincipal" => a
            .create_principal(with_key(pb::CreatePrincipalRequest {
                name: "newbie-grpc".into(),
                kind: "agent".into(),
            }, key))
            .await
            .map(drop),
        "ListGrants" => a.list_grants(with_key(pb::ListRequest {}, key)).await.map(drop),
        "Grant" => a
            .grant(with_key(pb::GrantInfo {
                principal: "other".into(),
                domain: "help".into(),
                role: "read".into(),
            }, key))
            .await
            .map(drop),
        "RevokeGrant" => a
            .revoke_grant(with_key(pb::RevokeGrantRequest {
                principal: "other".into(),
                domain: "help".into(),
            }, key))
            .await
            .map(drop),
        "ListKeys" => a.list_keys(with_key(pb::ListRequest {}, key)).await.map(drop),
        "CreateKey" => a
            .create_key(with_key(pb::CreateKeyRequest {
                principal: "reader".into(),
                ..Default::default()
            }, key))
            .await
            .map(drop),
        "RevokeKey" => a
            .revoke_key(with_key(pb::RevokeKeyRequest {
                id: spare_key.into(),
            }, key))
            .await
            .map(drop),
        "Delegate" => dartmouth_server::proto::auth_client::AuthClient::new(ch2)
            .delegate(with_key(pb::DelegateRequest {
                end_user: "enduser".into(),
                domains: vec!["help".into()],
                ttl_seconds: None,
            }, key))
            .await
            .map(drop),
        other => panic!("no call for {other}"),
    };
    outcome.map_or_else(|e| e.code(), |()| tonic::Code::Ok)
}

#[test]
fn one_contract_over_http_and_grpc_with_access_control() {
    let (dir, data, keys) = setup();
    let hook = format!("help=writer={SHOPIFY_SECRET_ENV}");
    let s = start(
        dir,
        data,
        &[
            "--rate-limit",
            "0",
            "--ip-rate-limit",
            "0",
            "--shopify-webhook",
            hook.as_str(),
        ],
    );
    let rt = runtime();

    // The same request gives the same hits on both transports.
    let (status, http) = call(
        &s,
        "POST",
        "/v1/search",
        Some(&keys.reader),
        Some(
            r#"{"query":"return policy for sale items","domains":["help"],"k":5,"explain":true,"facets":["none"]}"#,
        ),
    );
    assert_eq!(status, 200, "{http}");
    let grpc = rt.block_on(async {
        grpc_client(&s)
            .await
            .search(with_key(
                pb::SearchRequest {
                    query: "return policy for sale items".into(),
                    domains: vec!["help".into()],
                    k: 5,
                    explain: true,
                    ..Default::default()
                },
                Some(&keys.reader),
            ))
            .await
            .unwrap()
            .into_inner()
    });
    let http_hits: Vec<(String, String, f32)> = http["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["chunk_id"].as_str().unwrap().to_string(),
                h["snippet"].as_str().unwrap().to_string(),
                h["score"].as_f64().unwrap() as f32,
            )
        })
        .collect();
    let grpc_hits: Vec<(String, String, f32)> = grpc
        .hits
        .iter()
        .map(|h| (h.chunk_id.clone(), h.snippet.clone(), h.score))
        .collect();
    assert!(!http_hits.is_empty());
    assert_eq!(http_hits, grpc_hits);
    assert_eq!(http["total"]["documents"], grpc.total_documents);
    let first = &http["hits"][0];
    for field in [
        "domain",
        "doc_id",
        "chunk_id",
        "title",
        "text",
        "snippet",
        "char_start",
        "char_end",
        "score",
        "model",
        "index_seq",
        "explain",
    ] {
        assert!(!first[field].is_null(), "hit without {field}: {first}");
    }
    assert!(first["snippet"].as_str().unwrap().contains("<em>"));
    assert_eq!(first["model"], "fake-hash-384");

    // Context: cited passages within the budget.
    let (status, ctx) = call(
        &s,
        "POST",
        "/v1/context",
        Some(&keys.reader),
        Some(r#"{"query":"refund for a damaged item","domains":["help"],"max_tokens":300}"#),
    );
    assert_eq!(status, 200, "{ctx}");
    assert!(ctx["tokens"].as_u64().unwrap() <= 300, "{ctx}");
    assert!(ctx["context"].as_str().unwrap().starts_with("[1] "));
    let docs: Vec<&str> = ctx["passages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["doc_id"].as_str().unwrap())
        .collect();
    let mut unique = docs.clone();
    unique.dedup();
    assert_eq!(docs.len(), unique.len(), "one passage per document");

    // The matrix: every route × {none, expired token, reader of another domain, reader,
    // writer, admin, the admin's key restricted to help, an expiring reader key, the writer's
    // token delegated for an end user who reads help}. An unreadable domain answers exactly
    // like a missing one (404); a credential never does more than it narrows to.
    let expired = jwt("reader", -3600);
    let (status, minted) = call(
        &s,
        "POST",
        "/v1/tokens/delegate",
        Some(&keys.writer),
        Some(r#"{"end_user":"enduser","domains":["help"]}"#),
    );
    assert_eq!(status, 201, "{minted}");
    let delegated = minted["token"].as_str().unwrap().to_string();
    let creds: [(&str, Option<&str>); 9] = [
        ("none", None),
        ("expired", Some(&expired)),
        ("other", Some(&keys.other)),
        ("reader", Some(&keys.reader)),
        ("writer", Some(&keys.writer)),
        ("admin", Some(&keys.admin)),
        ("restricted admin", Some(&keys.restricted)),
        ("expiring reader", Some(&keys.expiring)),
        ("delegated", Some(&delegated)),
    ];
    let search = r#"{"query":"refund","domains":["help"]}"#;
    let ingest =
        r#"{"documents":[{"id":"new.md","title":"New","text":"A brand new returns page."}]}"#;
    let catalog = r#"{"products":[{"id":7001,"title":"Matrix mug","handle":"matrix-mug","vendor":"Acme","variants":[{"id":7002,"price":"12.00","inventory_item_id":7003}]}]}"#;
    let revoke_spare = format!("/v1/keys/{}", keys.spare[0]);
    let delegate = r#"{"end_user":"enduser","domains":["help"]}"#;
    const READ: [u16; 9] = [401, 401, 404, 200, 200, 200, 200, 200, 200];
    const WRITE: [u16; 9] = [401, 401, 404, 403, 200, 200, 200, 403, 403];
    const SUPER: [u16; 9] = [401, 401, 403, 403, 403, 200, 403, 403, 403];
    const SUPER_CREATE: [u16; 9] = [401, 401, 403, 403, 403, 201, 403, 403, 403];
    let matrix: Vec<(&str, &str, Option<&str>, [u16; 9])> = vec![
        ("POST", "/v1/search", Some(search), READ),
        ("POST", "/v1/context", Some(search), READ),
        ("GET", "/v1/domains/help/documents/returns.md", None, READ),
        (
            "GET",
            "/v1/domains/help/documents/returns.md/chunks/0",
            None,
            READ,
        ),
        ("POST", "/v1/domains/help/documents", Some(ingest), WRITE),
        ("POST", "/v1/domains/help/shopify", Some(catalog), WRITE),
        (
            "GET",
            "/v1/domains",
            None,
            [401, 401, 200, 200, 200, 200, 200, 200, 200],
        ),
        (
            "POST",
            "/v1/domains",
            Some(r#"{"name":"made","embedder":"fake"}"#),
            SUPER_CREATE,
        ),
        ("GET", "/v1/principals", None, SUPER),
        (
            "POST",
            "/v1/principals",
            Some(r#"{"name":"newbie","kind":"agent"}"#),
            SUPER_CREATE,
        ),
        ("GET", "/v1/grants", None, SUPER),
        // The restricted admin key administers help, and only help.
        (
            "POST",
            "/v1/grants",
            Some(r#"{"principal":"other","domain":"help","role":"read"}"#),
            [401, 401, 404, 403, 403, 200, 200, 403, 403],
        ),
        // `other` can read help by now (the row above granted it): 403, not 404.
        (
            "DELETE",
            "/v1/grants/other/help",
            None,
            [401, 401, 403, 403, 403, 204, 204, 403, 403],
        ),
        ("GET", "/v1/keys", None, SUPER),
        // A key for another principal needs a superuser; a principal's own key may be made by
        // its own credential (narrowed to it: the expiring reader's expires too); a delegated
        // token makes none.
        (
            "POST",
            "/v1/keys",
            Some(r#"{"principal":"reader"}"#),
            [401, 401, 403, 201, 403, 201, 403, 201, 403],
        ),
        // Only the key's owner (writer) or a superuser may revoke it; revoking twice is fine;
        // the owner's delegated token may not.
        (
            "DELETE",
            &revoke_spare,
            None,
            [401, 401, 403, 403, 204, 204, 403, 403, 403],
        ),
        (
            "DELETE",
            "/v1/domains/scratch",
            None,
            [401, 401, 404, 404, 404, 200, 404, 404, 404],
        ),
        // Delegation: for the domains both the caller and the end user read; never again
        // from a delegated token.
        (
            "POST",
            "/v1/tokens/delegate",
            Some(delegate),
            [401, 401, 404, 201, 201, 201, 201, 201, 403],
        ),
        ("GET", "/healthz", None, [200; 9]),
        ("GET", "/readyz", None, [200; 9]),
        ("GET", "/metrics", None, [200; 9]),
        ("GET", "/openapi.json", None, [200; 9]),
    ];
    let mut failures = Vec::new();
    for (method, path, body, expected) in &matrix {
        for ((who, key), want) in creds.iter().zip(expected) {
            let (got, reply) = call(&s, method, path, *key, *body);
            if got != *want {
                failures.push(format!(
                    "{method} {path} as {who}: {got} (want {want}) {reply}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The webhook route takes no bearer credential: only the shop's signature over the raw
    // body. Missing or wrong: 401 without detail; right: 200, written as `writer`.
    let payload = br#"{"id":7001,"title":"Matrix mug, blue","handle":"matrix-mug","vendor":"Acme","variants":[{"id":7002,"price":"12.00","inventory_item_id":7003}]}"#;
    let good = shopify_signature(SHOPIFY_SECRET, payload);
    let wrong = shopify_signature("another-secret", payload);
    let admin_bearer = format!("Bearer {}", keys.admin);
    let topic = ("X-Shopify-Topic", "products/update");
    let hook_path = "/v1/webhooks/shopify/help";
    type Headers<'a> = Vec<(&'a str, &'a str)>;
    let cases: [(&str, Headers, u16); 5] = [
        ("no signature", vec![topic], 401),
        (
            "an admin key, no signature",
            vec![topic, ("Authorization", &admin_bearer)],
            401,
        ),
        (
            "not base64",
            vec![topic, ("X-Shopify-Hmac-Sha256", "%%%")],
            401,
        ),
        (
            "another secret's signature",
            vec![topic, ("X-Shopify-Hmac-Sha256", &wrong)],
            401,
        ),
        ("signed", vec![topic, ("X-Shopify-Hmac-Sha256", &good)], 200),
    ];
    let mut unauthenticated = Vec::new();
    for (what, headers, want) in &cases {
        let (got, reply) = post_raw(&s, hook_path, headers, payload);
        assert_eq!(got, *want, "webhook, {what}: {reply}");
        if got == 401 {
            assert_eq!(reply["error"]["code"], "unauthenticated", "{what}");
            unauthenticated.push(reply);
        } else {
            assert_eq!(reply["updated"], 1, "{reply}");
            assert_eq!(reply["topic"], "products/update", "{reply}");
        }
    }
    assert!(
        unauthenticated.windows(2).all(|w| w[0] == w[1]),
        "401s differ: {unauthenticated:?}"
    );
    // A signature over other bytes (the same JSON re-serialised) is wrong: the raw body counts.
    let reserialised = serde_json::from_slice::<Value>(payload)
        .unwrap()
        .to_string();
    let (got, _) = post_raw(
        &s,
        hook_path,
        &[topic, ("X-Shopify-Hmac-Sha256", &good)],
        reserialised.as_bytes(),
    );
    assert_eq!(got, 401);
    // A domain without webhooks answers exactly like a missing one, signed or not.
    let (status, unconfigured) = webhook(&s, "secret", "products/update", &json!({"id": 1}));
    assert_eq!(status, 404, "{unconfigured}");
    let (_, missing) = webhook(&s, "nope", "products/update", &json!({"id": 1}));
    assert_eq!(
        unconfigured.to_string().replace("secret", "X"),
        missing.to_string().replace("nope", "X")
    );

    // 404 for an unreadable domain is byte-identical to a missing one.
    let (_, hidden) = call(&s, "POST", "/v1/search", Some(&keys.other), Some(search));
    let (_, missing) = call(
        &s,
        "POST",
        "/v1/search",
        Some(&keys.other),
        Some(r#"{"query":"refund","domains":["nope"]}"#),
    );
    assert_eq!(
        hidden.to_string().replace("help", "X"),
        missing.to_string().replace("nope", "X")
    );
    // A valid JWT works like the principal's key.
    assert_eq!(
        call(
            &s,
            "POST",
            "/v1/search",
            Some(&jwt("reader", 600)),
            Some(search)
        )
        .0,
        200
    );

    // The same matrix over gRPC: every method of the three services, each expected to answer
    // with the gRPC code of the HTTP status its route answers (one error table). The HTTP rows
    // above have run: names differ where a row creates something, and `other`'s grant on help
    // was revoked again, so the expectations are the same.
    let grpc_matrix: Vec<(&str, (&str, &str))> = vec![
        ("Search", ("POST", "/v1/search")),
        ("Context", ("POST", "/v1/context")),
        (
            "GetDocument",
            ("GET", "/v1/domains/help/documents/returns.md"),
        ),
        (
            "GetChunk",
            ("GET", "/v1/domains/help/documents/returns.md/chunks/0"),
        ),
        ("IndexDocuments", ("POST", "/v1/domains/help/documents")),
        ("UploadCatalog", ("POST", "/v1/domains/help/shopify")),
        ("ListDomains", ("GET", "/v1/domains")),
        ("CreateDomain", ("POST", "/v1/domains")),
        ("ListPrincipals", ("GET", "/v1/principals")),
        ("CreatePrincipal", ("POST", "/v1/principals")),
        ("ListGrants", ("GET", "/v1/grants")),
        ("Grant", ("POST", "/v1/grants")),
        ("RevokeGrant", ("DELETE", "/v1/grants/other/help")),
        ("ListKeys", ("GET", "/v1/keys")),
        ("CreateKey", ("POST", "/v1/keys")),
        ("RevokeKey", ("DELETE", &revoke_spare)),
        ("DeleteDomain", ("DELETE", "/v1/domains/scratch")),
        ("Delegate", ("POST", "/v1/tokens/delegate")),
    ];
    let expected_of = |route: &(&str, &str)| -> [u16; 9] {
        matrix
            .iter()
            .find(|(m, p, _, _)| (*m, *p) == *route)
            .map(|row| row.3)
            .unwrap_or_else(|| panic!("no HTTP row for {route:?}"))
    };
    let grpc_code = |status: u16| match status {
        200 | 201 | 204 => tonic::Code::Ok,
        401 => tonic::Code::Unauthenticated,
        403 => tonic::Code::PermissionDenied,
        404 => tonic::Code::NotFound,
        other => panic!("no gRPC code for {other} in this matrix"),
    };
    let failures = rt.block_on(async {
        let channel = Channel::from_shared(s.grpc.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut failures = Vec::new();
        for (method, route) in &grpc_matrix {
            for ((who, key), want) in creds.iter().zip(expected_of(route)) {
                let got = grpc_call(channel.clone(), method, *key, &keys.spare[1]).await;
                if got != grpc_code(want) {
                    failures.push(format!("{method} as {who}: {got:?} (want {want})"));
                }
            }
        }
        failures
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        grpc_matrix.len(),
        matrix
            .iter()
            .filter(|(_, p, _, _)| p.starts_with("/v1/") && !p.starts_with("/v1/webhooks"))
            .count(),
        "every HTTP route but the webhook has a gRPC method"
    );

    // Read your own writes: the ingest acknowledges a sequence; min_seq waits for it.
    let (status, ack) = call(
        &s,
        "POST",
        "/v1/domains/help/documents",
        Some(&keys.writer),
        Some(
            r#"{"documents":[{"id":"fresh.md","title":"Fresh","text":"Zanzibar shipping is free this week.","attributes":{"tier":"gold"}}]}"#,
        ),
    );
    assert_eq!(status, 200, "{ack}");
    let body = json!({"query":"zanzibar shipping","domains":["help"],"mode":"bm25","min_seq":{"help": ack["seq"]},"facets":["tier"]}).to_string();
    let (status, found) = call(&s, "POST", "/v1/search", Some(&keys.reader), Some(&body));
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["hits"][0]["doc_id"], "fresh.md", "{found}");
    assert_eq!(found["facets"]["tier"][0]["count"], 1, "{found}");

    // Operations. The writes above were made searchable (by the applier or by `min_seq`) and
    // their delay from acknowledgement recorded.
    let searchable_count = |m: &Value| -> u64 {
        m.as_str()
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("dartmouth_ingest_to_searchable_seconds_count "))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let metrics = loop {
        let (_, m) = call(&s, "GET", "/metrics", None, None);
        if searchable_count(&m) > 0 || Instant::now() > deadline {
            break m;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(searchable_count(&metrics) > 0, "{metrics}");
    let metrics = metrics.as_str().unwrap();
    for name in [
        "dartmouth_request_duration_seconds_bucket",
        "dartmouth_stage_duration_seconds_bucket{stage=\"bm25\"",
        "dartmouth_denied_total{code=\"unauthenticated\"}",
        "dartmouth_cache_total",
        "dartmouth_applier_lag_changes",
    ] {
        assert!(metrics.contains(name), "metrics lack {name}");
    }
    let webhooks = |outcome: &str| -> u64 {
        metrics
            .lines()
            .find(|l| {
                l.starts_with("dartmouth_webhook_verifications_total{")
                    && l.contains(&format!("outcome=\"{outcome}\""))
                    && l.contains("source=\"shopify\"")
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no webhook {outcome} counter in {metrics}"))
    };
    assert_eq!(webhooks("ok"), 1);
    assert_eq!(webhooks("bad_signature"), 5);
    assert!(!metrics.contains("secret"), "metrics name a domain");
    assert!(!metrics.contains("help\""), "metrics name a domain");
    let (_, openapi) = call(&s, "GET", "/openapi.json", None, None);
    assert!(!openapi["paths"]["/v1/webhooks/shopify/{domain}"].is_null());
    for (_, path, _, _) in &matrix {
        let templated = path
            .replace(
                "/help/documents/returns.md/chunks/0",
                "/{domain}/documents/{id}/chunks/{idx}",
            )
            .replace("/help/documents/returns.md", "/{domain}/documents/{id}")
            .replace("/help/documents", "/{domain}/documents")
            .replace("/help/shopify", "/{domain}/shopify")
            .replace("/v1/grants/other/help", "/v1/grants/{principal}/{domain}")
            .replace("/v1/domains/scratch", "/v1/domains/{domain}")
            .replace(&keys.spare[0], "{id}");
        assert!(
            !openapi["paths"][&templated].is_null(),
            "openapi lacks {templated}"
        );
    }
    let health = rt.block_on(async {
        let channel = Channel::from_shared(s.grpc.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        tonic_health::pb::health_client::HealthClient::new(channel)
            .check(tonic_health::pb::HealthCheckRequest {
                service: "dartmouth.v1.Retrieval".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status
    });
    assert_eq!(
        health,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    // Reflection (what grpcurl uses): the services are listed, and the retrieval service's file
    // descriptor names its methods.
    let (services, descriptor) = rt.block_on(async {
        use tonic_reflection::pb::v1::ServerReflectionRequest;
        use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
        let channel = Channel::from_shared(s.grpc.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let requests = [
            MessageRequest::ListServices(String::new()),
            MessageRequest::FileContainingSymbol("dartmouth.v1.Retrieval".into()),
        ]
        .map(|m| ServerReflectionRequest {
            host: String::new(),
            message_request: Some(m),
        });
        let mut stream = ServerReflectionClient::new(channel)
            .server_reflection_info(tonic::codegen::tokio_stream::iter(requests))
            .await
            .unwrap()
            .into_inner();
        let mut services = Vec::new();
        let mut descriptor = Vec::new();
        while let Some(r) = stream.message().await.unwrap() {
            match r.message_response {
                Some(MessageResponse::ListServicesResponse(l)) => {
                    services.extend(l.service.into_iter().map(|s| s.name));
                }
                Some(MessageResponse::FileDescriptorResponse(f)) => {
                    descriptor.extend(f.file_descriptor_proto.into_iter().flatten());
                }
                other => panic!("unexpected reflection answer {other:?}"),
            }
        }
        (services, descriptor)
    });
    assert!(
        [
            "dartmouth.v1.Retrieval",
            "dartmouth.v1.Ingest",
            "dartmouth.v1.Admin",
            "dartmouth.v1.Auth",
            "grpc.health.v1.Health"
        ]
        .iter()
        .all(|want| services.iter().any(|n| n == want)),
        "{services:?}"
    );
    let descriptor = String::from_utf8_lossy(&descriptor);
    for method in ["Search", "Context", "GetDocument", "GetChunk"] {
        assert!(descriptor.contains(method), "reflection lacks {method}");
    }
    let _ = &s.data;
}

/// Raw bytes over TCP: a request that announces 100 MB is refused without being read.
fn raw_http(addr: &str, head: &str, body_prefix: &[u8]) -> (String, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr.trim_start_matches("http://")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    let _ = stream.write_all(body_prefix);
    let mut buf = [0u8; 4096];
    let n = stream.read(&mut buf).unwrap_or(0);
    (
        String::from_utf8_lossy(&buf[..n]).to_string(),
        started.elapsed(),
    )
}

#[test]
fn bad_input_gets_a_clear_4xx_and_the_server_keeps_serving() {
    let (dir, data, keys) = setup();
    let s = start(dir, data, &["--rate-limit", "0"]);
    let k = Some(keys.reader.as_str());
    let cases: [(&str, String, &str); 8] = [
        ("malformed JSON", r#"{"query": "#.to_string(), "EOF"),
        ("wrong type", r#"{"query": 5}"#.to_string(), "query"),
        ("unknown field", r#"{"query": "a", "colour": 1}"#.to_string(), "colour"),
        ("k = 1,000,000", r#"{"query": "a", "k": 1000000}"#.to_string(), "k"),
        (
            "a 1 MB query",
            json!({"query": "a".repeat(1 << 20)}).to_string(),
            "query",
        ),
        (
            "a filter nested 100,000 deep",
            json!({"query": "a", "filter": format!("{}a = 1{}", "(".repeat(100_000), ")".repeat(100_000))}).to_string(),
            "filter",
        ),
        (
            "a filter nested 40 deep",
            json!({"query": "a", "filter": format!("{}a = 1{}", "(".repeat(40), ")".repeat(40))}).to_string(),
            "filter",
        ),
        ("a bad mode", r#"{"query": "a", "mode": "psychic"}"#.to_string(), "mode"),
    ];
    for (what, body, field) in &cases {
        let started = Instant::now();
        let (status, reply) = call(&s, "POST", "/v1/search", k, Some(body));
        assert_eq!(status, 400, "{what}: {reply}");
        assert_eq!(reply["error"]["code"], "invalid_argument", "{what}");
        let message = reply["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(field),
            "{what}: `{message}` does not name {field}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{what} took {:?}",
            started.elapsed()
        );
    }
    // A 100 MB body: refused from its announced length, before it is read.
    let addr = s.http.clone();
    let head = format!(
        "POST /v1/search HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        keys.reader,
        100 * 1024 * 1024
    );
    let (reply, took) = raw_http(&addr, &head, &vec![b' '; 64 * 1024]);
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.contains("payload_too_large"), "{reply}");
    assert!(took < Duration::from_secs(2), "{took:?}");

    // Invalid UTF-8 in a gRPC string field: INVALID_ARGUMENT, not INTERNAL.
    #[derive(Clone, PartialEq, prost::Message)]
    struct RawSearch {
        #[prost(bytes = "vec", tag = "1")]
        query: Vec<u8>,
    }
    let rt = runtime();
    let status = rt.block_on(async {
        let channel = Channel::from_shared(s.grpc.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.unwrap();
        let path =
            tonic::codegen::http::uri::PathAndQuery::from_static("/dartmouth.v1.Retrieval/Search");
        let codec: tonic_prost::ProstCodec<RawSearch, pb::SearchResponse> =
            tonic_prost::ProstCodec::default();
        grpc.unary(
            with_key(
                RawSearch {
                    query: vec![b'a', 0xff, 0xfe],
                },
                k,
            ),
            path,
            codec,
        )
        .await
        .unwrap_err()
    });
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");

    // Bad input to the ingest and admin services: INVALID_ARGUMENT naming the field.
    let (w, a) = (Some(keys.writer.as_str()), Some(keys.admin.as_str()));
    let refusals = rt.block_on(async {
        use dartmouth_server::proto::admin_client::AdminClient;
        use dartmouth_server::proto::ingest_client::IngestClient;
        let channel = Channel::from_shared(s.grpc.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut ingest = IngestClient::new(channel.clone());
        let mut admin = AdminClient::new(channel.clone());
        let mut retrieval = RetrievalClient::new(channel);
        let doc = |attributes_json: &str| pb::IngestDocument {
            id: "d".into(),
            title: "D".into(),
            text: "text".into(),
            url: None,
            attributes_json: attributes_json.into(),
        };
        let index = |docs: Vec<pb::IngestDocument>| {
            with_key(
                pb::IndexDocumentsRequest {
                    domain: "help".into(),
                    documents: docs,
                },
                w,
            )
        };
        vec![
            ingest
                .index_documents(index(vec![doc("{"), doc("")]))
                .await
                .map(drop),
            ingest
                .index_documents(index(vec![doc("{}"), doc("[1]")]))
                .await
                .map(drop),
            ingest.index_documents(index(vec![])).await.map(drop),
            ingest
                .upload_catalog(with_key(
                    pb::UploadCatalogRequest {
                        domain: "help".into(),
                        body: vec![b'{', 0xff],
                        ..Default::default()
                    },
                    w,
                ))
                .await
                .map(drop),
            ingest
                .upload_catalog(with_key(
                    pb::UploadCatalogRequest {
                        domain: "help".into(),
                        body: b"{}".to_vec(),
                        format: "xml".into(),
                        ..Default::default()
                    },
                    w,
                ))
                .await
                .map(drop),
            admin
                .grant(with_key(
                    pb::GrantInfo {
                        principal: "reader".into(),
                        domain: "help".into(),
                        role: "owner".into(),
                    },
                    a,
                ))
                .await
                .map(drop),
            admin
                .create_principal(with_key(
                    pb::CreatePrincipalRequest {
                        name: "p".into(),
                        kind: "robot".into(),
                    },
                    a,
                ))
                .await
                .map(drop),
            retrieval
                .get_chunk(with_key(
                    pb::GetChunkRequest {
                        domain: "help".into(),
                        doc_id: "returns.md".into(),
                        idx: 10_000,
                    },
                    k,
                ))
                .await
                .map(drop),
            // Over the 8 MiB limit: tonic refuses it while decoding, before the service.
            ingest
                .upload_catalog(with_key(
                    pb::UploadCatalogRequest {
                        domain: "help".into(),
                        body: vec![b' '; 9 << 20],
                        ..Default::default()
                    },
                    w,
                ))
                .await
                .map(drop),
        ]
    });
    let expected = [
        (tonic::Code::InvalidArgument, "documents[0].attributes_json"),
        (
            tonic::Code::InvalidArgument,
            "documents[1].attributes_json: expected a JSON object",
        ),
        (tonic::Code::InvalidArgument, "documents: send 1 to"),
        (tonic::Code::InvalidArgument, "UTF-8"),
        (tonic::Code::InvalidArgument, "format"),
        (tonic::Code::InvalidArgument, "role: `owner` is not"),
        (tonic::Code::InvalidArgument, "kind: `robot` is not"),
        (tonic::Code::NotFound, "chunk 10000 does not exist"),
        (tonic::Code::OutOfRange, "message length too large"),
    ];
    for (got, (code, names)) in refusals.into_iter().zip(expected) {
        let e = got.unwrap_err();
        assert_eq!(e.code(), code, "{e:?}");
        assert!(e.message().contains(names), "{names}: {}", e.message());
        assert!(
            !e.message().contains("kind: kind") && !e.message().contains("role: role"),
            "{}",
            e.message()
        );
    }

    // A name the store would take but a shard directory cannot: refused, nothing stored.
    let admin = Some(keys.admin.as_str());
    let (status, reply) = call(
        &s,
        "POST",
        "/v1/domains",
        admin,
        Some(r#"{"name":"a.b","embedder":"fake"}"#),
    );
    assert_eq!(status, 400, "{reply}");
    let (_, domains) = call(&s, "GET", "/v1/domains", admin, None);
    assert!(!domains.to_string().contains("a.b"), "{domains}");

    // Still serving.
    let (status, reply) = call(&s, "POST", "/v1/search", k, Some(r#"{"query":"refund"}"#));
    assert_eq!(status, 200, "{reply}");
}

#[test]
fn one_rate_limit_budget_across_http_and_grpc() {
    let (dir, data, keys) = setup();
    let s = start(dir, data, &["--rate-limit", "1", "--rate-burst", "2"]);
    let body = r#"{"query":"refund","domains":["help"],"mode":"bm25"}"#;
    let k = Some(keys.reader.as_str());
    assert_eq!(call(&s, "POST", "/v1/search", k, Some(body)).0, 200);
    assert_eq!(call(&s, "POST", "/v1/search", k, Some(body)).0, 200);
    // The budget is spent: gRPC is refused too.
    let rt = runtime();
    let status = rt.block_on(async {
        grpc_client(&s)
            .await
            .search(with_key(
                pb::SearchRequest {
                    query: "refund".into(),
                    ..Default::default()
                },
                k,
            ))
            .await
            .unwrap_err()
    });
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    let (status, reply, retry) = call_full(&s, "POST", "/v1/search", k, Some(body));
    assert_eq!(status, 429, "{reply}");
    assert_eq!(reply["error"]["code"], "rate_limited");
    assert!(retry.is_some_and(|r| r.parse::<u64>().unwrap() >= 1));
    // Another principal has its own budget.
    assert_eq!(
        call(&s, "POST", "/v1/search", Some(&keys.writer), Some(body)).0,
        200
    );
}

fn search_ids(s: &Server, key: &str, body: &Value) -> (Vec<String>, Value) {
    let (status, found) = call(s, "POST", "/v1/search", Some(key), Some(&body.to_string()));
    assert_eq!(status, 200, "{body}: {found}");
    let mut ids: Vec<String> = found["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["doc_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids.dedup();
    (ids, found)
}

#[test]
fn shopify_catalog_upload_then_signed_webhooks_keep_filters_current() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for d in ["store", "locked"] {
        cli(&data, &["domain", "create", d, "--embedder", "fake"]);
    }
    for (p, kind) in [("merchant", "agent"), ("shopify-sync", "service")] {
        cli(&data, &["principal", "create", p, "--kind", kind]);
        cli(&data, &["grant", p, "store", "write"]);
    }
    let merchant = key_for(&data, "merchant");
    let admin = key_for(&data, "admin");
    let store_hook = format!("store=shopify-sync={SHOPIFY_SECRET_ENV}");
    // `merchant` may not write to `locked`: its webhooks are refused by the normal grants.
    let locked_hook = format!("locked=merchant={SHOPIFY_SECRET_ENV}");
    let s = start(
        dir,
        data,
        &[
            "--rate-limit",
            "0",
            "--shopify-webhook",
            store_hook.as_str(),
            "--shopify-webhook",
            locked_hook.as_str(),
        ],
    );
    let datasets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets/shopify");
    let catalog = std::fs::read(datasets.join("admin_rest/products_docs_example.json")).unwrap();
    let auth = format!("Bearer {merchant}");
    let upload = |query: &str, content_type: &str, body: &[u8]| {
        post_raw(
            &s,
            &format!("/v1/domains/store/shopify{query}"),
            &[("Authorization", &auth), ("Content-Type", content_type)],
            body,
        )
    };

    // The Admin REST example: the iPod Nano (four colours) and the iPod Touch, both $199.
    let (status, ack) = upload("", "application/json", &catalog);
    assert_eq!(status, 200, "{ack}");
    assert_eq!(
        (&ack["format"], &ack["added"], &ack["failed_count"]),
        (&json!("json"), &json!(2), &json!(0)),
        "{ack}"
    );
    // Sending it again writes nothing.
    let (status, again) = upload("?format=json", "application/octet-stream", &catalog);
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        (&again["added"], &again["unchanged"]),
        (&json!(0), &json!(2))
    );
    assert!(again["seq"].as_u64().unwrap() >= ack["seq"].as_u64().unwrap());

    let nano = "632910392";
    let touch = "921728736";
    let query = |filter: &str, seq: &Value| {
        json!({"query": "ipod", "domains": ["store"], "k": 20, "filter": filter,
               "facets": ["vendor", "available.color", "in_stock"], "min_seq": {"store": seq}})
    };
    let (ids, found) = search_ids(
        &s,
        &admin,
        &query("price <= 200 AND in_stock = true", &ack["seq"]),
    );
    assert_eq!(ids, [nano, touch], "{found}");
    assert_eq!(found["total"]["documents"], 2, "{found}");
    assert_eq!(found["facets"]["vendor"][0]["value"], "Apple", "{found}");
    assert_eq!(found["facets"]["vendor"][0]["count"], 2, "{found}");
    let colours = found["facets"]["available.color"].to_string();
    assert!(
        colours.contains("Pink") && colours.contains("Black"),
        "{colours}"
    );
    let (ids, _) = search_ids(
        &s,
        &admin,
        &query("available.color = \"Pink\"", &ack["seq"]),
    );
    assert_eq!(ids, [nano]);

    // The shop stops selling the Nano when out of stock (products/update), then sells out
    // its pink one (inventory_levels/update).
    let value: Value = serde_json::from_slice(&catalog).unwrap();
    let mut product = value["products"][0].clone();
    for v in product["variants"].as_array_mut().unwrap() {
        v["inventory_policy"] = json!("deny");
    }
    let (status, updated) = webhook(&s, "store", "products/update", &product);
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["updated"], 1, "{updated}");
    let sold_out = |item: u64| {
        json!({"inventory_item_id": item, "location_id": 905684977, "available": 0,
               "updated_at": "2026-04-01T10:00:00-04:00"})
    };
    let (status, pink) = webhook(&s, "store", "inventory_levels/update", &sold_out(808950810));
    assert_eq!(status, 200, "{pink}");
    assert_eq!(
        (&pink["updated"], &pink["failed_count"]),
        (&json!(1), &json!(0)),
        "{pink}"
    );
    let (ids, _) = search_ids(
        &s,
        &admin,
        &query("available.color = \"Pink\"", &pink["seq"]),
    );
    assert!(ids.is_empty(), "{ids:?}");
    let (ids, _) = search_ids(
        &s,
        &admin,
        &query("available.color = \"Red\"", &pink["seq"]),
    );
    assert_eq!(ids, [nano]);
    let (ids, _) = search_ids(&s, &admin, &query("in_stock = true", &pink["seq"]));
    assert_eq!(ids, [nano, touch], "other colours are still in stock");
    // Shopify retries: the same delivery again changes nothing.
    let (status, retry) = webhook(&s, "store", "inventory_levels/update", &sold_out(808950810));
    assert_eq!(status, 200, "{retry}");
    assert_eq!(
        (&retry["updated"], &retry["unchanged"]),
        (&json!(0), &json!(1)),
        "{retry}"
    );
    // The other three sell out at once (Shopify delivers concurrently): no update is lost, so
    // the Nano is out of stock.
    let seqs: Vec<u64> = std::thread::scope(|scope| {
        let sends: Vec<_> = [49148385, 39072856, 457924702]
            .map(|item| {
                let s = &s;
                let payload = sold_out(item);
                scope.spawn(move || webhook(s, "store", "inventory_levels/update", &payload))
            })
            .into_iter()
            .collect();
        sends
            .into_iter()
            .map(|h| {
                let (status, r) = h.join().unwrap();
                assert_eq!((status, &r["updated"]), (200, &json!(1)), "{r}");
                r["seq"].as_u64().unwrap()
            })
            .collect()
    });
    let last = json!(seqs.iter().max().unwrap());
    let (ids, found) = search_ids(
        &s,
        &admin,
        &query("price <= 200 AND in_stock = true", &last),
    );
    assert_eq!(ids, [touch], "{found}");
    let (ids, _) = search_ids(&s, &admin, &query("in_stock = false", &last));
    assert_eq!(ids, [nano]);

    // Stock of an item no product holds: 200 with the failure listed (a 4xx would be retried).
    let (status, unknown) = webhook(&s, "store", "inventory_levels/update", &sold_out(1234));
    assert_eq!(status, 200, "{unknown}");
    assert_eq!(unknown["failed_count"], 1, "{unknown}");
    assert!(
        unknown["failed"][0]
            .as_str()
            .unwrap()
            .contains("inventory item 1234"),
        "{unknown}"
    );
    // An unsupported topic, signed: listed the same way.
    let (status, other) = webhook(&s, "store", "orders/create", &json!({"id": 1}));
    assert_eq!(status, 200, "{other}");
    assert!(
        other["failed"][0]
            .as_str()
            .unwrap()
            .contains("orders/create"),
        "{other}"
    );

    // products/delete: gone from search and from the document route.
    let (status, deleted) = webhook(&s, "store", "products/delete", &json!({"id": 921728736}));
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["deleted"], 1, "{deleted}");
    let (ids, _) = search_ids(&s, &admin, &query("", &deleted["seq"]));
    assert_eq!(ids, [nano]);
    let (status, _) = call(
        &s,
        "GET",
        &format!("/v1/domains/store/documents/{touch}"),
        Some(&admin),
        None,
    );
    assert_eq!(status, 404);

    // Grants apply to the webhook's principal: `merchant` cannot write to `locked`.
    let (status, refused) = webhook(&s, "locked", "products/update", &product);
    assert_eq!(status, 404, "{refused}");

    // A full sync of the Touch alone: the Nano goes.
    let touch_only = json!({"products": [value["products"][1].clone()]}).to_string();
    let (status, sync) = upload("?full_sync=true", "application/json", touch_only.as_bytes());
    assert_eq!(status, 200, "{sync}");
    assert_eq!(
        (&sync["added"], &sync["deleted"]),
        (&json!(1), &json!(1)),
        "{sync}"
    );
    let (ids, _) = search_ids(&s, &admin, &query("", &sync["seq"]));
    assert_eq!(ids, [touch]);

    // One bad product among good ones: 200, the bad one named by its place and field.
    let mixed = r#"{"products":[{"id":1,"title":"Good","variants":[{"id":2,"price":"5.00"}]},{"id":3,"title":"Bad","variants":[{"id":4,"price":"five"}]}]}"#;
    let (status, partial) = upload("", "application/json", mixed.as_bytes());
    assert_eq!(status, 200, "{partial}");
    assert_eq!(
        (&partial["added"], &partial["failed_count"]),
        (&json!(1), &json!(1))
    );
    let failure = partial["failed"][0].as_str().unwrap();
    assert!(
        failure.starts_with("body: products[1]") && failure.contains("price"),
        "{failure}"
    );

    // Bodies that are not a catalog: 400 naming the problem, nothing written.
    let cases: [(&str, &str, &[u8], &str); 5] = [
        (
            "",
            "application/json",
            b"{\"products\": [\n{\"id\": 1,,}]}",
            "body:2: malformed JSON",
        ),
        (
            "",
            "text/csv",
            b"Handle,Title\nok,\xff\xfe\n",
            "body:2: invalid UTF-8",
        ),
        (
            "",
            "text/csv",
            b"Name,Price\nmug,5\n",
            "body:1: unknown header dialect",
        ),
        ("?format=xml", "application/json", b"{}", "format: `xml`"),
        ("?colour=red", "application/json", b"{}", "colour"),
    ];
    for (query, content_type, body, want) in cases {
        let (status, reply) = upload(query, content_type, body);
        assert_eq!(status, 400, "{want}: {reply}");
        let message = reply["error"]["message"].as_str().unwrap();
        assert!(message.contains(want), "`{message}` lacks `{want}`");
    }

    // The other shapes: a CSV export (Content-Type) and GraphQL bulk JSONL (sniffed).
    let (status, _) = call(
        &s,
        "POST",
        "/v1/domains",
        Some(&admin),
        Some(r#"{"name":"shapes","embedder":"fake"}"#),
    );
    assert_eq!(status, 201);
    let admin_auth = format!("Bearer {admin}");
    for (file, content_type, format) in [
        ("csv/product_template_official.csv", "text/csv", "csv"),
        (
            "graphql_bulk_jsonl/products.jsonl",
            "application/json",
            "bulk",
        ),
    ] {
        let body = std::fs::read(datasets.join(file)).unwrap();
        let (status, reply) = post_raw(
            &s,
            "/v1/domains/shapes/shopify",
            &[
                ("Authorization", &admin_auth),
                ("Content-Type", content_type),
            ],
            &body,
        );
        assert_eq!(status, 200, "{file}: {reply}");
        assert_eq!(reply["format"], format, "{file}: {reply}");
        assert!(reply["added"].as_u64().unwrap() >= 1, "{file}: {reply}");
    }
}

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
    assert_eq!(
        top["model"],
        dartmouth_engine::embed::MINILM_MODEL_ID,
        "{top}"
    );
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
}
