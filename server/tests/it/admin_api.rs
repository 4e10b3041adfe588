//! Every admin action over HTTP and gRPC, the CLI calling the same service: domain stats and
//! update, reindex, audit queries, group membership, deleting a principal, live figures.

use dartmouth_server::proto::{self as pb, admin_client::AdminClient};
use serde_json::Value;

use crate::support::*;

#[test]
fn admin_actions_over_http_grpc_and_the_cli() {
    let (dir, data, keys) = setup();
    cli(&data, &["principal", "create", "staff", "--kind", "group"]);
    cli(&data, &["principal", "create", "temp", "--kind", "agent"]);
    cli(&data, &["grant", "temp", "help", "read"]);
    let temp_key = key_for(&data, "temp");
    // The data directory outlives the server: the CLI uses it afterwards.
    let s = start_on(&data, &[]);
    let a = keys.admin.as_str();

    // Domain stats and update.
    let (status, stats) = call(&s, "GET", "/v1/domains/help", Some(&keys.reader), None);
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["documents"], 5, "{stats}");
    assert_eq!(stats["stored_documents"], 5, "{stats}");
    let (status, updated) = call(
        &s,
        "PATCH",
        "/v1/domains/help",
        Some(&keys.restricted),
        Some(r#"{"description":"The help centre","option_names":{"case_size":"device"}}"#),
    );
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["description"], "The help centre");
    assert_eq!(
        updated["settings"]["catalog"]["option_names"]["case_size"],
        "device"
    );
    for (body, want) in [
        (r#"{"option_names":{"x":"not a field!"}}"#, "option_names"),
        (r#"{"colour":"red"}"#, "unknown field `colour`"),
    ] {
        let (status, reply) = call(&s, "PATCH", "/v1/domains/help", Some(a), Some(body));
        assert_eq!(status, 400, "{body}: {reply}");
        assert!(
            reply["error"]["message"].as_str().unwrap().contains(want),
            "{reply}"
        );
    }
    let (_, listed) = call(&s, "GET", "/v1/domains", Some(a), None);
    let help = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "help")
        .unwrap();
    assert_eq!(
        help["description"], "The help centre",
        "a refused update left it"
    );

    // Reindex.
    let (status, rebuilt) = call(&s, "POST", "/v1/domains/help/reindex", Some(a), None);
    assert_eq!(status, 200, "{rebuilt}");
    assert_eq!(rebuilt["documents"], 5, "{rebuilt}");

    // Group membership: add, list, remove; a member reads through the group.
    for (method, path, body) in [
        (
            "POST",
            "/v1/groups/staff/members",
            Some(r#"{"member":"other"}"#),
        ),
        (
            "POST",
            "/v1/grants",
            Some(r#"{"principal":"staff","domain":"help","role":"read"}"#),
        ),
    ] {
        let (status, reply) = call(&s, method, path, Some(a), body);
        assert_eq!(status, 200, "{path}: {reply}");
    }
    let (_, members) = call(&s, "GET", "/v1/groups/staff/members", Some(a), None);
    assert_eq!(members, serde_json::json!(["other"]));
    let search = r#"{"query":"refund","domains":["help"]}"#;
    assert_eq!(
        call(&s, "POST", "/v1/search", Some(&keys.other), Some(search)).0,
        200
    );
    let (status, _) = call(
        &s,
        "DELETE",
        "/v1/groups/staff/members/other",
        Some(a),
        None,
    );
    assert_eq!(status, 204);
    assert_eq!(
        call(&s, "POST", "/v1/search", Some(&keys.other), Some(search)).0,
        404
    );
    let (status, reply) = call(&s, "GET", "/v1/groups/temp/members", Some(a), None);
    assert_eq!(status, 400, "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not a group")
    );

    // Deleting a principal takes its keys, grants and memberships with it.
    assert_eq!(
        call(&s, "POST", "/v1/search", Some(&temp_key), Some(search)).0,
        200
    );
    let (status, deleted) = call(&s, "DELETE", "/v1/principals/temp", Some(a), None);
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(
        call(&s, "POST", "/v1/search", Some(&temp_key), Some(search)).0,
        401
    );
    let (_, grants) = call(&s, "GET", "/v1/grants", Some(a), None);
    assert!(!grants.to_string().contains("\"temp\""), "{grants}");
    let (status, refused) = call(&s, "DELETE", "/v1/principals/admin", Some(a), None);
    assert_eq!(status, 400, "{refused}");
    let (status, _) = call(&s, "DELETE", "/v1/principals/nobody", Some(a), None);
    assert_eq!(status, 404);

    // The audit log, filtered, newest first.
    let (status, entries) = call(
        &s,
        "GET",
        "/v1/audit?action=delete-principal&limit=10",
        Some(a),
        None,
    );
    assert_eq!(status, 200, "{entries}");
    let entries = entries.as_array().unwrap();
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert_eq!(entries[0]["target"], "admin");
    assert_eq!(entries[0]["outcome"], "denied");
    assert_eq!(entries[1]["target"], "temp");
    let (_, denied) = call(
        &s,
        "GET",
        "/v1/audit?outcome=denied&actor=admin",
        Some(a),
        None,
    );
    assert!(
        denied
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["outcome"] == "denied" && e["actor"] == "admin"),
        "{denied}"
    );
    for query in [
        "?outcome=maybe",
        "?limit=0",
        "?limit=5000",
        "?since=yesterday",
    ] {
        let (status, reply) = call(&s, "GET", &format!("/v1/audit{query}"), Some(a), None);
        assert_eq!(status, 400, "{query}: {reply}");
    }
    assert_eq!(
        call(&s, "GET", "/v1/audit", Some(&keys.restricted), None).0,
        403
    );

    // Live figures: this node's requests and the applier's lag on the caller's domains.
    let (status, live) = call(&s, "GET", "/v1/stats", Some(a), None);
    assert_eq!(status, 200, "{live}");
    assert!(
        live["requests_last_minute"].as_u64().unwrap() > 10,
        "{live}"
    );
    assert!(live["p99_ms"].as_f64().unwrap() >= live["p50_ms"].as_f64().unwrap());
    let names: Vec<&str> = live["domains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["domain"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"secret"), "{live}");
    let (_, restricted) = call(&s, "GET", "/v1/stats", Some(&keys.restricted), None);
    let names: Vec<&Value> = restricted["domains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["domain"])
        .collect();
    assert_eq!(names, vec!["help"], "only the domains it administers");

    // gRPC: the same actions.
    let rt = runtime();
    rt.block_on(async {
        let mut admin = AdminClient::new(channel(&s).await);
        let stats = admin
            .get_domain_stats(with_key(
                pb::DomainRequest {
                    name: "help".into(),
                },
                Some(a),
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (stats.documents, stats.model.as_str()),
            (5, "fake-hash-384")
        );
        let d = admin
            .update_domain(with_key(
                pb::UpdateDomainRequest {
                    name: "help".into(),
                    description: Some("Help, over gRPC".into()),
                    ..Default::default()
                },
                Some(a),
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(d.description, "Help, over gRPC");
        assert!(d.settings_json.contains("case_size"), "option names kept");
        admin
            .add_member(with_key(
                pb::MembershipRequest {
                    group: "staff".into(),
                    member: "reader".into(),
                },
                Some(a),
            ))
            .await
            .unwrap();
        let members = admin
            .list_members(with_key(
                pb::GroupRequest {
                    group: "staff".into(),
                },
                Some(a),
            ))
            .await
            .unwrap()
            .into_inner()
            .members;
        assert_eq!(members, vec!["reader".to_string()]);
        admin
            .remove_member(with_key(
                pb::MembershipRequest {
                    group: "staff".into(),
                    member: "reader".into(),
                },
                Some(a),
            ))
            .await
            .unwrap();
        let audit = admin
            .query_audit(with_key(
                pb::AuditRequest {
                    action: "remove-member".into(),
                    ..Default::default()
                },
                Some(a),
            ))
            .await
            .unwrap()
            .into_inner()
            .entries;
        assert_eq!(audit[0].detail, "reader");
        let rebuilt = admin
            .reindex(with_key(
                pb::DomainRequest {
                    name: "help".into(),
                },
                Some(a),
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(rebuilt.documents, 5);
        let live = admin
            .live_stats(with_key(pb::ListRequest {}, Some(a)))
            .await
            .unwrap()
            .into_inner();
        assert!(
            live.domains
                .iter()
                .any(|d| d.domain == "help" && d.lag == 0)
        );
        let e = admin
            .delete_principal(with_key(
                pb::DeletePrincipalRequest {
                    name: "admin".into(),
                },
                Some(a),
            ))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    });
    drop(s);

    // The CLI calls the same service.
    cli(&data, &["principal", "create", "crew", "--kind", "group"]);
    cli(&data, &["principal", "add-member", "crew", "writer"]);
    assert_eq!(
        cli(&data, &["principal", "members", "crew"]).trim(),
        "writer"
    );
    cli(&data, &["principal", "remove-member", "crew", "writer"]);
    assert_eq!(cli(&data, &["principal", "members", "crew"]).trim(), "");
    cli(
        &data,
        &["domain", "update", "help", "--description", "From the CLI"],
    );
    assert!(cli(&data, &["domain", "list"]).contains("From the CLI"));
    cli(&data, &["principal", "delete", "crew"]);
    let audit = cli(&data, &["audit", "--action", "delete-principal", "--json"]);
    let last: Value = serde_json::from_str(audit.lines().last().unwrap()).unwrap();
    assert_eq!(last["target"], "crew", "{audit}");
    let out = cli(
        &data,
        &["delete", "--domain", "help", "--filter", "tier = \"none\""],
    );
    assert!(out.starts_with("deleted 0 documents from help"), "{out}");
    let out = cli(
        &data,
        &["delete", "--domain", "help", "returns.md", "nope.md"],
    );
    assert!(out.starts_with("deleted 1 documents from help"), "{out}");
    let (ok, _, err) = cli_run(
        &data,
        &["delete", "--domain", "help", "--filter", "price >"],
    );
    assert!(!ok);
    assert!(err.contains("filter:"), "{err}");
    drop(dir);
}
