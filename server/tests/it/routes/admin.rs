//! The admin routes: domain stats, update and reindex; groups and their members; deleting a
//! principal; the audit log and its filters; live figures scoped to what the caller
//! administers.

use dartmouth_domains::{PrincipalKind, Role};
use serde_json::{Value, json};

use crate::inproc::{help_centre, message};

const SEARCH_HELP: &str = r#"{"query":"refund","domains":["help"]}"#;

#[test]
fn domain_stats_count_the_documents_for_a_reader() {
    let (p, keys) = help_centre();
    let (status, stats) = p.call("GET", "/v1/domains/help", Some(&keys.reader), None);
    assert_eq!(status, 200, "{stats}");
    assert_eq!(
        (&stats["documents"], &stats["stored_documents"]),
        (&json!(5), &json!(5)),
        "{stats}"
    );
    let (status, _) = p.call("GET", "/v1/domains/secret", Some(&keys.reader), None);
    assert_eq!(status, 404, "a domain it cannot read does not exist for it");
}

#[test]
fn an_admin_of_a_domain_updates_its_description_and_option_names() {
    let (p, keys) = help_centre();
    let (status, updated) = p.call(
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
    let (status, _) = p.call(
        "PATCH",
        "/v1/domains/secret",
        Some(&keys.restricted),
        Some(r#"{"description":"mine"}"#),
    );
    assert_eq!(status, 404, "outside the key's domains");
}

#[test]
fn a_refused_update_names_its_field_and_changes_nothing() {
    let (p, keys) = help_centre();
    for (body, want) in [
        (r#"{"option_names":{"x":"not a field!"}}"#, "option_names"),
        (r#"{"colour":"red"}"#, "unknown field `colour`"),
    ] {
        let (status, reply) = p.call("PATCH", "/v1/domains/help", Some(&keys.admin), Some(body));
        assert_eq!(status, 400, "{body}: {reply}");
        assert!(message(&reply).contains(want), "{body}: {reply}");
    }
    let (_, listed) = p.call("GET", "/v1/domains", Some(&keys.admin), None);
    let help = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "help")
        .unwrap();
    assert_eq!(help["description"], "", "{help}");
    assert!(help["settings"].get("catalog").is_none(), "{help}");
}

#[test]
fn reindex_rebuilds_the_shard_from_the_store() {
    let (p, keys) = help_centre();
    let (status, rebuilt) = p.call("POST", "/v1/domains/help/reindex", Some(&keys.admin), None);
    assert_eq!(status, 200, "{rebuilt}");
    assert_eq!(rebuilt["documents"], 5, "{rebuilt}");
    let (status, found) = p.call("POST", "/v1/search", Some(&keys.reader), Some(SEARCH_HELP));
    assert_eq!(status, 200);
    assert!(!found["hits"].as_array().unwrap().is_empty(), "{found}");
    let (status, _) = p.call("POST", "/v1/domains/help/reindex", Some(&keys.writer), None);
    assert_eq!(status, 403, "a writer is not an admin");
}

#[test]
fn a_member_reads_through_its_group_until_removed() {
    let (p, keys) = help_centre();
    p.principal("staff", PrincipalKind::Group, &[("help", Role::Read)]);
    let a = Some(keys.admin.as_str());
    assert_eq!(
        p.call("POST", "/v1/search", Some(&keys.other), Some(SEARCH_HELP))
            .0,
        404
    );
    let (status, reply) = p.call(
        "POST",
        "/v1/groups/staff/members",
        a,
        Some(r#"{"member":"other"}"#),
    );
    assert_eq!(status, 200, "{reply}");
    let (_, members) = p.call("GET", "/v1/groups/staff/members", a, None);
    assert_eq!(members, json!(["other"]));
    assert_eq!(
        p.call("POST", "/v1/search", Some(&keys.other), Some(SEARCH_HELP))
            .0,
        200
    );
    let (status, _) = p.call("DELETE", "/v1/groups/staff/members/other", a, None);
    assert_eq!(status, 204);
    assert_eq!(
        p.call("POST", "/v1/search", Some(&keys.other), Some(SEARCH_HELP))
            .0,
        404
    );
}

#[test]
fn only_a_group_has_members() {
    let (p, keys) = help_centre();
    let (status, reply) = p.call("GET", "/v1/groups/reader/members", Some(&keys.admin), None);
    assert_eq!(status, 400, "{reply}");
    assert!(message(&reply).contains("not a group"), "{reply}");
}

#[test]
fn deleting_a_principal_takes_its_keys_and_grants() {
    let (p, keys) = help_centre();
    let a = Some(keys.admin.as_str());
    assert_eq!(
        p.call("POST", "/v1/search", Some(&keys.reader), Some(SEARCH_HELP))
            .0,
        200
    );
    let (status, deleted) = p.call("DELETE", "/v1/principals/reader", a, None);
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(
        p.call("POST", "/v1/search", Some(&keys.reader), Some(SEARCH_HELP))
            .0,
        401
    );
    let (_, grants) = p.call("GET", "/v1/grants", a, None);
    assert!(!grants.to_string().contains("\"reader\""), "{grants}");
    let (status, refused) = p.call("DELETE", "/v1/principals/admin", a, None);
    assert_eq!(status, 400, "the superuser stays: {refused}");
    assert_eq!(p.call("DELETE", "/v1/principals/nobody", a, None).0, 404);
}

#[test]
fn the_audit_log_filters_newest_first() {
    let (p, keys) = help_centre();
    let a = Some(keys.admin.as_str());
    p.call("DELETE", "/v1/principals/other", a, None);
    p.call("DELETE", "/v1/principals/admin", a, None);
    let (status, entries) = p.call("GET", "/v1/audit?action=delete-principal&limit=10", a, None);
    assert_eq!(status, 200, "{entries}");
    let entries = entries.as_array().unwrap();
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert_eq!(
        (&entries[0]["target"], &entries[0]["outcome"]),
        (&json!("admin"), &json!("denied"))
    );
    assert_eq!(
        (&entries[1]["target"], &entries[1]["outcome"]),
        (&json!("other"), &json!("ok"))
    );
    let (_, denied) = p.call("GET", "/v1/audit?outcome=denied&actor=admin", a, None);
    let denied = denied.as_array().unwrap();
    assert!(!denied.is_empty());
    assert!(
        denied
            .iter()
            .all(|e| e["outcome"] == "denied" && e["actor"] == "admin"),
        "{denied:?}"
    );
}

#[test]
fn bad_audit_queries_are_refused_and_only_superusers_read_the_log() {
    let (p, keys) = help_centre();
    for query in [
        "?outcome=maybe",
        "?limit=0",
        "?limit=5000",
        "?since=yesterday",
    ] {
        let (status, reply) = p.call("GET", &format!("/v1/audit{query}"), Some(&keys.admin), None);
        assert_eq!(status, 400, "{query}: {reply}");
    }
    assert_eq!(
        p.call("GET", "/v1/audit", Some(&keys.restricted), None).0,
        403
    );
}

#[test]
fn live_figures_cover_the_domains_the_caller_administers() {
    let (p, keys) = help_centre();
    for _ in 0..12 {
        p.call("POST", "/v1/search", Some(&keys.reader), Some(SEARCH_HELP));
    }
    let (status, live) = p.call("GET", "/v1/stats", Some(&keys.admin), None);
    assert_eq!(status, 200, "{live}");
    assert!(
        live["requests_last_minute"].as_u64().unwrap() >= 12,
        "{live}"
    );
    assert!(live["p99_ms"].as_f64().unwrap() >= live["p50_ms"].as_f64().unwrap());
    let names = |v: &Value| -> Vec<String> {
        v["domains"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["domain"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(names(&live).contains(&"secret".to_string()), "{live}");
    let (_, restricted) = p.call("GET", "/v1/stats", Some(&keys.restricted), None);
    assert_eq!(
        names(&restricted),
        ["help"],
        "only the domains it administers"
    );
}

#[test]
fn an_encrypted_snapshot_needs_a_node_key() {
    let (p, keys) = help_centre();
    let (status, reply) = p.call(
        "POST",
        "/v1/snapshots",
        Some(&keys.admin),
        Some(r#"{"name":"s","encrypt":true}"#),
    );
    assert_eq!(status, 400, "{reply}");
    assert!(
        message(&reply).starts_with("encrypt: this node has no snapshot key"),
        "{reply}"
    );
    let (_, listed) = p.call("GET", "/v1/snapshots", Some(&keys.admin), None);
    assert_eq!(listed, json!({"snapshots": []}), "nothing written");
}
