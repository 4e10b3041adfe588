//! One contract over HTTP and gRPC's wire: the same hits on both; the endpoint × credential
//! matrix on every route and method (none, expired, another domain's reader, reader, writer,
//! admin, a restricted admin key, an expiring key, a delegated token), with the webhook's
//! signature and the operations endpoints that count what the matrix did; reflection and
//! health. Each route's own cases are tested in process in `routes/`.

use std::time::{Duration, Instant};

use dartmouth_server::proto::retrieval_client::RetrievalClient;
use dartmouth_server::proto::{self as pb};
use serde_json::{Value, json};
use tonic::transport::Channel;

use crate::support::*;

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
        "ListModels" => a.list_models(with_key(pb::ListRequest {}, key)).await.map(drop),
        "CreateDomain" => a
            .create_domain(with_key(pb::CreateDomainRequest {
                name: "made-grpc".into(),
                description: String::new(),
                embedder: "fake".into(),
                option_names: Default::default(),
                model: String::new(),
                rerank: None,
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
        "GetDomainStats" => a
            .get_domain_stats(with_key(pb::DomainRequest { name: "help".into() }, key))
            .await
            .map(drop),
        "UpdateDomain" => a
            .update_domain(with_key(pb::UpdateDomainRequest {
                name: "help".into(),
                description: Some("Help".into()),
                ..Default::default()
            }, key))
            .await
            .map(drop),
        "Reindex" => a
            .reindex(with_key(pb::DomainRequest { name: "help".into() }, key))
            .await
            .map(drop),
        "RollbackModel" => a
            .rollback_model(with_key(pb::DomainRequest { name: "help".into() }, key))
            .await
            .map(drop),
        "DropOldGeneration" => a
            .drop_old_generation(with_key(pb::DomainRequest { name: "help".into() }, key))
            .await
            .map(drop),
        "DeletePrincipal" => a
            .delete_principal(with_key(pb::DeletePrincipalRequest {
                name: "newbie-grpc".into(),
            }, key))
            .await
            .map(drop),
        "ListMembers" => a
            .list_members(with_key(pb::GroupRequest { group: "staff".into() }, key))
            .await
            .map(drop),
        "AddMember" => a
            .add_member(with_key(pb::MembershipRequest {
                group: "staff".into(),
                member: "reader".into(),
            }, key))
            .await
            .map(drop),
        "RemoveMember" => a
            .remove_member(with_key(pb::MembershipRequest {
                group: "staff".into(),
                member: "reader".into(),
            }, key))
            .await
            .map(drop),
        "QueryAudit" => a
            .query_audit(with_key(pb::AuditRequest::default(), key))
            .await
            .map(drop),
        "LiveStats" => a.live_stats(with_key(pb::ListRequest {}, key)).await.map(drop),
        "ListSnapshots" => a.list_snapshots(with_key(pb::ListRequest {}, key)).await.map(drop),
        "CreateSnapshot" => a
            .create_snapshot(with_key(pb::CreateSnapshotRequest { name: String::new(), encrypt: false }, key))
            .await
            .map(drop),
        "RestoreSnapshot" => a
            .restore_snapshot(with_key(pb::SnapshotRequest { name: "none".into() }, key))
            .await
            .map(drop),
        "UploadFiles" => i
            .upload_files(with_key(pb::UploadFilesRequest {
                domain: "help".into(),
                files: vec![pb::UploadedFile {
                    name: "matrix-grpc.md".into(),
                    content: b"# Matrix\n\nA page over gRPC.".to_vec(),
                    format: String::new(),
                }],
                ..Default::default()
            }, key))
            .await
            .map(drop),
        "DeleteDocument" => i
            .delete_document(with_key(pb::DeleteDocumentRequest {
                domain: "help".into(),
                doc_id: "grpc.md".into(),
            }, key))
            .await
            .map(drop),
        "DeleteDocuments" => i
            .delete_documents(with_key(pb::DeleteDocumentsRequest {
                domain: "help".into(),
                ids: vec!["grpc.md".into()],
                filter: String::new(),
            }, key))
            .await
            .map(drop),
        "ListTasks" => i.list_tasks(with_key(pb::ListRequest {}, key)).await.map(drop),
        "GetTask" => i
            .get_task(with_key(pb::TaskRequest { id: "t0000000000000000".into() }, key))
            .await
            .map(drop),
        "CancelTask" => i
            .cancel_task(with_key(pb::TaskRequest { id: "t0000000000000000".into() }, key))
            .await
            .map(drop),
        other => panic!("no call for {other}"),
    };
    outcome.map_or_else(|e| e.code(), |()| tonic::Code::Ok)
}

#[test]
fn search_hits_and_explanations_are_the_same_over_http_and_grpc() {
    let (dir, data, keys) = setup();
    let s = start(dir, data, &[]);
    let rt = runtime();
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
    // The explanation is the hit's: its branches, its score, the default fusion's formula.
    let explain = &first["explain"];
    let f32_of = |v: &Value| v.as_f64().map(|x| x as f32);
    assert_eq!(
        f32_of(&explain["score"]),
        f32_of(&first["score"]),
        "{explain}"
    );
    for branch in ["bm25", "vector"] {
        assert_eq!(explain[branch]["rank"], first[branch]["rank"], "{explain}");
        assert_eq!(
            f32_of(&explain[branch]["score"]),
            f32_of(&first[branch]["score"]),
            "{explain}"
        );
        assert!(explain[branch]["rank"].is_u64(), "{explain}");
    }
    let formula = explain["formula"].as_str().unwrap_or_default();
    assert!(
        formula.starts_with("zscore: 1 × z(bm25.score) + 1.2 × z(vector.score)"),
        "{explain}"
    );
}

#[test]
fn the_access_matrix_over_http_and_grpc_and_what_the_metrics_count() {
    let (dir, data, keys) = setup();
    cli(&data, &["principal", "create", "staff", "--kind", "group"]);
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
    const ADMIN_OF_HELP: [u16; 9] = [401, 401, 404, 403, 403, 200, 200, 403, 403];
    const HELP_ADMIN_CONFLICT: [u16; 9] = [401, 401, 404, 403, 403, 409, 409, 403, 403];
    const ANYONE: [u16; 9] = [401, 401, 200, 200, 200, 200, 200, 200, 200];
    const NO_SUCH: [u16; 9] = [401, 401, 404, 404, 404, 404, 404, 404, 404];
    let files =
        r##"{"files":[{"name":"matrix.md","content":"# Matrix\n\nA page from the matrix."}]}"##;
    let mcp_init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"matrix","version":"1"}}}"#;
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
        ("DELETE", "/v1/principals/newbie", None, SUPER),
        ("GET", "/v1/groups/staff/members", None, SUPER),
        (
            "POST",
            "/v1/groups/staff/members",
            Some(r#"{"member":"reader"}"#),
            SUPER,
        ),
        (
            "DELETE",
            "/v1/groups/staff/members/reader",
            None,
            [401, 401, 403, 403, 403, 204, 403, 403, 403],
        ),
        ("GET", "/v1/audit", None, SUPER),
        ("GET", "/v1/stats", None, ANYONE),
        // The model catalogue names no domain: anyone authenticated reads it.
        ("GET", "/v1/models", None, ANYONE),
        // Snapshots hold every domain and key hash: superusers only (a missing one is a 404).
        ("GET", "/v1/snapshots", None, SUPER),
        ("POST", "/v1/snapshots", Some("{}"), SUPER_CREATE),
        (
            "POST",
            "/v1/snapshots/none/restore",
            None,
            [401, 401, 403, 403, 403, 404, 403, 403, 403],
        ),
        ("GET", "/v1/domains/help", None, READ),
        (
            "PATCH",
            "/v1/domains/help",
            Some(r#"{"description":"Help"}"#),
            ADMIN_OF_HELP,
        ),
        ("POST", "/v1/domains/help/reindex", None, ADMIN_OF_HELP),
        // help has no other generation: its admins get the 409 that says so.
        (
            "POST",
            "/v1/domains/help/rollback-model",
            None,
            HELP_ADMIN_CONFLICT,
        ),
        (
            "POST",
            "/v1/domains/help/drop-old-generation",
            None,
            HELP_ADMIN_CONFLICT,
        ),
        ("POST", "/v1/domains/help/files", Some(files), WRITE),
        ("DELETE", "/v1/domains/help/documents/new.md", None, WRITE),
        (
            "POST",
            "/v1/domains/help/delete",
            Some(r#"{"ids":["new.md"]}"#),
            WRITE,
        ),
        ("GET", "/v1/tasks", None, ANYONE),
        // Another's task and a missing one are the same 404.
        ("GET", "/v1/tasks/t0000000000000000", None, NO_SUCH),
        ("POST", "/v1/tasks/t0000000000000000/cancel", None, NO_SUCH),
        // MCP: any credential may start a session; its tools act as the credential.
        ("POST", "/mcp", Some(mcp_init), ANYONE),
        ("GET", "/admin", None, [200; 9]),
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
        ("DeletePrincipal", ("DELETE", "/v1/principals/newbie")),
        ("ListMembers", ("GET", "/v1/groups/staff/members")),
        ("AddMember", ("POST", "/v1/groups/staff/members")),
        (
            "RemoveMember",
            ("DELETE", "/v1/groups/staff/members/reader"),
        ),
        ("QueryAudit", ("GET", "/v1/audit")),
        ("LiveStats", ("GET", "/v1/stats")),
        ("ListModels", ("GET", "/v1/models")),
        ("ListSnapshots", ("GET", "/v1/snapshots")),
        ("CreateSnapshot", ("POST", "/v1/snapshots")),
        ("RestoreSnapshot", ("POST", "/v1/snapshots/none/restore")),
        ("GetDomainStats", ("GET", "/v1/domains/help")),
        ("UpdateDomain", ("PATCH", "/v1/domains/help")),
        ("Reindex", ("POST", "/v1/domains/help/reindex")),
        ("RollbackModel", ("POST", "/v1/domains/help/rollback-model")),
        (
            "DropOldGeneration",
            ("POST", "/v1/domains/help/drop-old-generation"),
        ),
        ("UploadFiles", ("POST", "/v1/domains/help/files")),
        (
            "DeleteDocument",
            ("DELETE", "/v1/domains/help/documents/new.md"),
        ),
        ("DeleteDocuments", ("POST", "/v1/domains/help/delete")),
        ("ListTasks", ("GET", "/v1/tasks")),
        ("GetTask", ("GET", "/v1/tasks/t0000000000000000")),
        ("CancelTask", ("POST", "/v1/tasks/t0000000000000000/cancel")),
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
        409 => tonic::Code::AlreadyExists,
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
            .replace("/help/documents/new.md", "/{domain}/documents/{id}")
            .replace(
                "/help/documents/returns.md/chunks/0",
                "/{domain}/documents/{id}/chunks/{idx}",
            )
            .replace("/help/documents/returns.md", "/{domain}/documents/{id}")
            .replace("/help/documents", "/{domain}/documents")
            .replace("/help/shopify", "/{domain}/shopify")
            .replace("/v1/grants/other/help", "/v1/grants/{principal}/{domain}")
            .replace("/v1/domains/scratch", "/v1/domains/{domain}")
            .replace(&keys.spare[0], "{id}")
            .replace("/v1/domains/help", "/v1/domains/{domain}")
            .replace("/v1/principals/newbie", "/v1/principals/{name}")
            .replace(
                "/v1/groups/staff/members/reader",
                "/v1/groups/{group}/members/{member}",
            )
            .replace("/v1/groups/staff/members", "/v1/groups/{group}/members")
            .replace("t0000000000000000", "{id}")
            .replace("/v1/snapshots/none/", "/v1/snapshots/{name}/");
        assert!(
            !openapi["paths"][&templated].is_null(),
            "openapi lacks {templated}"
        );
    }
}

#[test]
fn grpc_health_and_reflection_answer() {
    let (dir, data, _keys) = setup();
    let s = start(dir, data, &[]);
    let rt = runtime();
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
            .server_reflection_info(tokio_stream::iter(requests))
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
