//! Every admin action over gRPC's wire and the CLI, which call the same service as HTTP (whose
//! routes are tested in process in `routes/admin.rs`): domain stats and update, reindex, audit
//! queries, group membership, deleting a principal, live figures.

use dartmouth_server::proto::{self as pb, admin_client::AdminClient};
use serde_json::Value;

use crate::support::*;

#[test]
fn admin_actions_over_grpc() {
    let (dir, data, keys) = setup();
    cli(&data, &["principal", "create", "staff", "--kind", "group"]);
    let s = start(dir, data, &[]);
    let a = keys.admin.as_str();
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
        admin
            .update_domain(with_key(
                pb::UpdateDomainRequest {
                    name: "help".into(),
                    set_option_names: true,
                    option_names: [("case_size".to_string(), "device".to_string())].into(),
                    ..Default::default()
                },
                Some(a),
            ))
            .await
            .unwrap();
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
}

#[test]
fn admin_actions_from_the_cli() {
    let (dir, data, _keys) = setup();
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
