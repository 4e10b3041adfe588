//! One conformance suite, run against SQLite and a real PostgreSQL server.
#![allow(
    clippy::disallowed_methods,
    reason = "the store's own conformance suite writes to it directly"
)]

use dartmouth_domains::{
    Error, KeyScope, PrincipalKind, Role, Store, StoredChunk, StoredDocument, Write,
};
use serde_json::json;

fn doc(id: &str, text: &str) -> StoredDocument {
    StoredDocument {
        external_id: id.into(),
        title: format!("Title {id}"),
        url: Some(format!("https://example.test/{id}")),
        attributes: json!({"vendor": [{"keyword": "acme"}]}),
        content_hash: format!("hash-{text}"),
        chunks: vec![
            StoredChunk {
                text: text.into(),
                char_start: 0,
                char_end: text.chars().count() as u64,
                heading: Some("Intro".into()),
                embedding: vec![0.25, -1.5, 3.0],
            },
            StoredChunk {
                text: format!("{text} (more)"),
                char_start: 3,
                char_end: 9,
                heading: None,
                embedding: vec![1.0, 0.0, -0.5],
            },
        ],
        ..Default::default()
    }
}

async fn conformance(url: &str) {
    let store = Store::open(url).await.unwrap();
    // Reopening runs no migration twice and keeps one bootstrap admin.
    let store2 = Store::open(url).await.unwrap();
    store2.close().await;
    let admin = store.local_admin().await.unwrap();
    assert!(admin.is_superuser());
    let settings = json!({"model": {"id": "fake-hash-3", "dim": 3}});

    // Domains.
    let kb = store
        .create_domain(&admin, "support-kb", "Help centre articles", &settings)
        .await
        .unwrap();
    assert_eq!(kb.settings, settings);
    store
        .create_domain(&admin, "store-catalog", "", &settings)
        .await
        .unwrap();
    let dup = store
        .create_domain(&admin, "support-kb", "again", &settings)
        .await
        .unwrap_err();
    assert!(matches!(dup, Error::Conflict { .. }), "{dup}");
    for bad in [
        "Bad Name",
        "x'; DROP TABLE domains; --",
        &"a".repeat(10_000),
    ] {
        let err = store
            .create_domain(&admin, bad, "", &settings)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Invalid { .. }), "{err}");
        assert!(err.to_string().len() < 300);
    }
    let long_description = "d".repeat(10_000);
    assert!(matches!(
        store
            .create_domain(&admin, "long", &long_description, &settings)
            .await
            .unwrap_err(),
        Error::Invalid { .. }
    ));
    assert_eq!(store.list_domains(&admin).await.unwrap().len(), 2);

    // Principals, groups, grants.
    store
        .create_principal(&admin, "support-agent", PrincipalKind::Agent)
        .await
        .unwrap();
    store
        .create_principal(&admin, "shopper", PrincipalKind::Agent)
        .await
        .unwrap();
    store
        .create_principal(&admin, "staff", PrincipalKind::Group)
        .await
        .unwrap();
    assert!(matches!(
        store
            .create_principal(&admin, "shopper", PrincipalKind::User)
            .await
            .unwrap_err(),
        Error::Conflict { .. }
    ));
    store
        .grant(&admin, "support-agent", "support-kb", Role::Read)
        .await
        .unwrap();
    let unknown = store
        .grant(&admin, "nobody", "support-kb", Role::Read)
        .await
        .unwrap_err();
    assert!(
        matches!(
            unknown,
            Error::NotFound {
                what: dartmouth_domains::Missing::Principal,
                ..
            }
        ),
        "{unknown}"
    );
    let missing = store
        .grant(&admin, "shopper", "no-such-domain", Role::Read)
        .await
        .unwrap_err();
    assert!(
        matches!(
            missing,
            Error::NotFound {
                what: dartmouth_domains::Missing::Domain,
                ..
            }
        ),
        "{missing}"
    );

    let agent = store.act_as(&admin, "support-agent").await.unwrap();
    let shopper = store.act_as(&admin, "shopper").await.unwrap();
    assert!(store.act_as(&agent, "admin").await.is_err());

    // Reads: requested ∩ readable; an unreadable domain looks exactly like a missing one.
    let pass = store
        .authorize(&agent, &["support-kb".into()], Role::Read)
        .await
        .unwrap();
    assert_eq!(pass.domains().len(), 1);
    let hidden = store
        .authorize(&agent, &["store-catalog".into()], Role::Read)
        .await
        .unwrap_err()
        .to_string();
    let absent = store
        .authorize(&agent, &["no-such-domain".into()], Role::Read)
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        hidden.replace("store-catalog", "X"),
        absent.replace("no-such-domain", "X")
    );
    assert!(
        store
            .authorize(&shopper, &[], Role::Read)
            .await
            .unwrap()
            .domains()
            .is_empty()
    );
    // A group's grant reaches its members.
    store.add_member(&admin, "staff", "shopper").await.unwrap();
    store
        .grant(&admin, "staff", "store-catalog", Role::Write)
        .await
        .unwrap();
    let names: Vec<String> = store
        .authorize(&shopper, &[], Role::Read)
        .await
        .unwrap()
        .domains()
        .iter()
        .map(|d| d.name.clone())
        .collect();
    assert_eq!(names, ["store-catalog"]);
    // Non-admins cannot administer.
    assert!(matches!(
        store
            .create_domain(&agent, "mine", "", &settings)
            .await
            .unwrap_err(),
        Error::Forbidden(_)
    ));
    assert!(matches!(
        store
            .grant(&agent, "support-agent", "support-kb", Role::Admin)
            .await
            .unwrap_err(),
        Error::NotFound { .. }
    ));

    // Keys.
    let (info, secret) = store
        .create_key(&admin, "support-agent", KeyScope::default())
        .await
        .unwrap();
    assert!(secret.starts_with(&info.id) && secret.len() == 67);
    let caller = store.authenticate_key(&secret).await.unwrap();
    assert_eq!(caller.name(), "support-agent");
    for bad in [
        "",
        "dk_",
        "not-a-key",
        &secret.replace('a', "b"),
        &"x".repeat(10_000),
    ] {
        if bad == secret {
            continue;
        }
        assert!(matches!(
            store.authenticate_key(bad).await.unwrap_err(),
            Error::Unauthenticated(_)
        ));
    }
    store.revoke_key(&admin, &info.id).await.unwrap();
    assert!(matches!(
        store.authenticate_key(&secret).await.unwrap_err(),
        Error::Unauthenticated(_)
    ));
    let (_, expired) = store
        .create_key(
            &admin,
            "support-agent",
            KeyScope {
                expires_at: Some(1),
                ..KeyScope::default()
            },
        )
        .await
        .unwrap();
    assert!(
        store
            .authenticate_key(&expired)
            .await
            .unwrap_err()
            .to_string()
            .contains("expired")
    );
    // A key restricted to some domains narrows the principal's grants.
    store
        .grant(&admin, "support-agent", "store-catalog", Role::Read)
        .await
        .unwrap();
    let (_, narrow) = store
        .create_key(
            &admin,
            "support-agent",
            KeyScope {
                domains: Some(vec!["support-kb".into()]),
                ..KeyScope::default()
            },
        )
        .await
        .unwrap();
    let narrow = store.authenticate_key(&narrow).await.unwrap();
    assert!(
        store
            .authorize(&narrow, &["store-catalog".into()], Role::Read)
            .await
            .is_err()
    );
    assert_eq!(store.list_keys(&admin).await.unwrap().len(), 3);

    // Writes acknowledge with increasing sequences; the changelog replays them.
    let write = store
        .authorize(&admin, &["support-kb".into()], Role::Write)
        .await
        .unwrap();
    let s1 = store
        .write(
            &write,
            "support-kb",
            "fake-hash-3",
            &[Write::Upsert(doc("a", "alpha"))],
        )
        .await
        .unwrap();
    let s2 = store
        .write(
            &write,
            "support-kb",
            "fake-hash-3",
            &[
                Write::Upsert(doc("b", "beta")),
                Write::Upsert(doc("a", "alpha2")),
            ],
        )
        .await
        .unwrap();
    let s3 = store
        .write(
            &write,
            "support-kb",
            "fake-hash-3",
            &[Write::Delete("b".into())],
        )
        .await
        .unwrap();
    assert!(s1 < s2 && s2 < s3);
    assert_eq!(
        (s1, s2, s3),
        (1, 3, 4),
        "one sequence per change, counted per domain"
    );
    assert_eq!(store.last_seq(&store.system(), kb.id).await.unwrap(), s3);
    // Another domain's writes neither take nor reveal support-kb's sequences.
    let other = store
        .authorize(&admin, &["store-catalog".into()], Role::Write)
        .await
        .unwrap();
    let o1 = store
        .write(
            &other,
            "store-catalog",
            "fake-hash-3",
            &[Write::Upsert(doc("x", "xi"))],
        )
        .await
        .unwrap();
    assert_eq!(o1, 1);
    assert_eq!(store.last_seq(&store.system(), kb.id).await.unwrap(), s3);
    let changes = store
        .changes_since(&store.system(), kb.id, 1, 0, 100)
        .await
        .unwrap();
    assert_eq!(changes.len(), 4);
    assert_eq!(changes[3].seq, s3);
    // Each upsert carries the current state: "a" is alpha2 even at its first entry; "b" was
    // deleted later, so its upsert replays as a delete.
    assert_eq!(
        changes[0].document.as_ref().unwrap().content_hash,
        "hash-alpha2"
    );
    assert!(changes[1].document.is_none());
    let a = changes[2].document.as_ref().unwrap();
    assert_eq!(a.chunks.len(), 2);
    assert_eq!(a.chunks[0].embedding, vec![0.25, -1.5, 3.0]);
    assert_eq!(a.chunks[1].char_start, 3);
    assert_eq!(a.attributes, json!({"vendor": [{"keyword": "acme"}]}));
    assert_eq!(
        store
            .changes_since(&store.system(), kb.id, 1, s1, 1)
            .await
            .unwrap()
            .len(),
        1
    );
    // When the first pending change was acknowledged (the applier's lag): a time from this
    // run for the oldest change, none past the last.
    let first = store
        .first_change_at(&store.system(), kb.id, 0)
        .await
        .unwrap()
        .unwrap();
    let now = dartmouth_domains::now_millis();
    assert!(first <= now && first > now - 600_000, "{first} vs {now}");
    assert!(
        store
            .first_change_at(&store.system(), kb.id, s1)
            .await
            .unwrap()
            .unwrap()
            >= first
    );
    assert_eq!(
        store
            .first_change_at(&store.system(), kb.id, s3)
            .await
            .unwrap(),
        None
    );
    let all = store
        .all_documents(&store.system(), kb.id, 1)
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].external_id, "a");
    // Sources and secondary keys: a key finds its document (the latest writer owns it), a
    // delete frees it; reusable vectors and ids for indexing jobs; stats count keys.
    let mut keyed = doc("p1", "product one");
    keyed.source = Some("{\"title\":\"one\"}".into());
    keyed.keys = vec!["inventory_item:7".into(), "variant:1".into()];
    let mut moved = doc("p2", "product two");
    moved.keys = vec!["inventory_item:7".into(), "variant:2".into()];
    store
        .write(
            &write,
            "support-kb",
            "fake-hash-3",
            &[Write::Upsert(keyed), Write::Upsert(moved)],
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .document_by_key(&write, "support-kb", "inventory_item:7")
            .await
            .unwrap(),
        Some(("p2".into(), None))
    );
    assert_eq!(
        store
            .document_sources(&write, "support-kb", &["p1".into(), "a".into()])
            .await
            .unwrap()
            .get("p1")
            .map(String::as_str),
        Some("{\"title\":\"one\"}")
    );
    let reuse = store
        .reusable(
            &write,
            "support-kb",
            &["p1".into(), "a".into(), "nope".into()],
        )
        .await
        .unwrap();
    assert_eq!(reuse.len(), 2);
    assert_eq!(reuse["a"].content_hash, "hash-alpha2");
    assert_eq!(
        reuse["a"].chunks[0],
        ("alpha2".into(), vec![0.25, -1.5, 3.0])
    );
    assert_eq!(
        store.document_ids(&write, "support-kb").await.unwrap(),
        vec!["a".to_string(), "p1".into(), "p2".into()]
    );
    let stats = store
        .domain_stats(&write, "support-kb", "variant:")
        .await
        .unwrap();
    assert_eq!((stats.documents, stats.chunks, stats.keyed), (3, 6, 2));
    assert!(stats.last_write_at.is_some());
    store
        .write(
            &write,
            "support-kb",
            "fake-hash-3",
            &[Write::Delete("p2".into())],
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .document_by_key(&write, "support-kb", "inventory_item:7")
            .await
            .unwrap(),
        None
    );
    store
        .write(
            &write,
            "support-kb",
            "fake-hash-3",
            &[Write::Delete("p1".into())],
        )
        .await
        .unwrap();
    let s3 = store.last_seq(&store.system(), kb.id).await.unwrap();
    // A reader cannot write; a bad document writes nothing.
    let read_only = store
        .authorize(&agent, &["support-kb".into()], Role::Read)
        .await
        .unwrap();
    assert!(
        store
            .write(
                &read_only,
                "support-kb",
                "fake-hash-3",
                &[Write::Delete("a".into())]
            )
            .await
            .is_err()
    );
    let mut empty = doc("c", "gamma");
    empty.chunks.clear();
    assert!(
        store
            .write(
                &write,
                "support-kb",
                "fake-hash-3",
                &[Write::Upsert(doc("d", "delta")), Write::Upsert(empty)]
            )
            .await
            .is_err()
    );
    assert_eq!(store.last_seq(&store.system(), kb.id).await.unwrap(), s3);
    assert!(store.writer_denied_for_other_domain(&write).await);

    // Audit: admin actions and denials.
    let audit = store.audit_since(&admin, 0).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "create-domain" && e.outcome == "ok")
    );
    assert!(audit.iter().any(|e| e.outcome == "denied"
        && e.target == "store-catalog"
        && e.actor == "support-agent"));
    assert!(audit.iter().any(|e| e.detail == "revoked key"));
    assert!(store.audit_since(&agent, 0).await.is_err());

    // Deleting a domain removes its rows.
    store.delete_domain(&admin, "support-kb").await.unwrap();
    assert!(
        store
            .changes_since(&store.system(), kb.id, 1, 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .all_documents(&store.system(), kb.id, 1)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.list_domains(&admin).await.unwrap().len(), 1);
    store.close().await;
}

trait WriterCheck {
    async fn writer_denied_for_other_domain(&self, pass: &dartmouth_domains::Pass) -> bool;
}

impl WriterCheck for Store {
    /// A pass for one domain cannot write another.
    async fn writer_denied_for_other_domain(&self, pass: &dartmouth_domains::Pass) -> bool {
        matches!(
            self.write(
                pass,
                "store-catalog",
                "fake-hash-3",
                &[Write::Delete("x".into())]
            )
            .await,
            Err(Error::NotFound { .. })
        )
    }
}

/// Each file's header, then its rows sorted (the backends list rows in their own orders).
fn dumped(dir: &std::path::Path) -> Vec<(String, Vec<String>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
            lines[1..].sort();
            (p.file_name().unwrap().to_string_lossy().into_owned(), lines)
        })
        .collect()
}

/// The store after the conformance suite, dumped and restored into `to_url` (an empty store,
/// possibly the other backend): the restored store dumps to the same rows, refuses a second
/// restore, and goes on where the first left off (sequences, ids). A damaged dump or one of
/// another schema version is refused naming the place, and leaves the target empty.
async fn snapshot_round_trip(from_url: &str, to_url: &str) {
    let from = Store::open(from_url).await.unwrap();
    let to = Store::open(to_url).await.unwrap();
    let admin = from.local_admin().await.unwrap();
    if !from
        .list_domains(&admin)
        .await
        .unwrap()
        .iter()
        .any(|d| d.name == "snap-kb")
    {
        let settings = json!({"model": {"id": "fake-hash-3", "dim": 3}});
        from.create_domain(&admin, "snap-kb", "kept", &settings)
            .await
            .unwrap();
        from.create_principal(&admin, "snap-agent", PrincipalKind::Agent)
            .await
            .unwrap();
        from.grant(&admin, "snap-agent", "snap-kb", Role::Read)
            .await
            .unwrap();
        from.create_key(&admin, "snap-agent", KeyScope::default())
            .await
            .unwrap();
        let pass = from
            .authorize(&admin, &["snap-kb".into()], Role::Write)
            .await
            .unwrap();
        for id in ["s1", "s2", "s3"] {
            from.write(
                &pass,
                "snap-kb",
                "fake-hash-3",
                &[Write::Upsert(doc(id, id))],
            )
            .await
            .unwrap();
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let info = from.dump(&from.system(), &a).await.unwrap();
    let rows = |t: &str| info.rows.iter().find(|(n, _)| n == t).unwrap().1;
    assert!(
        rows("chunks") >= 2 && rows("api_keys") >= 1 && rows("grants") >= 1,
        "{info:?}"
    );
    assert!(
        info.domains
            .iter()
            .any(|d| d.name == "snap-kb" && d.last_seq >= 3)
    );

    let bad = tmp.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    for e in std::fs::read_dir(&a).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), bad.join(e.file_name())).unwrap();
    }
    let chunks = bad.join("chunks.jsonl");
    let text = std::fs::read_to_string(&chunks).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[2] = r#"[1, "x", "not a number", "t", 0, 0, null, "AAAA", null]"#;
    std::fs::write(&chunks, lines.join("\n")).unwrap();
    let err = to.restore(&to.system(), &bad, &info).await.unwrap_err();
    assert!(
        err.to_string().contains("chunks.jsonl:3") && err.to_string().contains("idx"),
        "{err}"
    );
    // Cut short at a line boundary: every line reads, the count does not.
    let audit = bad.join("audit.jsonl");
    std::fs::copy(a.join("chunks.jsonl"), &chunks).unwrap();
    let text = std::fs::read_to_string(a.join("audit.jsonl")).unwrap();
    let kept: Vec<&str> = text.lines().collect();
    std::fs::write(&audit, kept[..kept.len() - 1].join("\n")).unwrap();
    let err = to.restore(&to.system(), &bad, &info).await.unwrap_err();
    assert!(
        err.to_string().contains("rows where the snapshot lists"),
        "{err}"
    );
    let mut other = info.clone();
    other.schema_version += 1;
    let err = to.restore(&to.system(), &a, &other).await.unwrap_err();
    assert!(err.to_string().contains("schema version"), "{err}");

    to.restore(&to.system(), &a, &info).await.unwrap();
    let b = tmp.path().join("b");
    let again = to.dump(&to.system(), &b).await.unwrap();
    assert_eq!(again, info);
    assert_eq!(dumped(&b), dumped(&a));
    let err = to.restore(&to.system(), &a, &info).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");

    // It goes on where the original left off.
    let admin = to.local_admin().await.unwrap();
    let pass = to
        .authorize(&admin, &["snap-kb".into()], Role::Write)
        .await
        .unwrap();
    let kb = info.domains.iter().find(|d| d.name == "snap-kb").unwrap();
    let seq = to
        .write(
            &pass,
            "snap-kb",
            "fake-hash-3",
            &[Write::Upsert(doc("after", "restored"))],
        )
        .await
        .unwrap();
    assert_eq!(seq, kb.last_seq + 1);
    // New ids do not collide with restored ones (PostgreSQL's sequences moved past them).
    let after = format!("after-restore-{}", info.domains.len());
    let fresh = to
        .create_domain(
            &admin,
            &after,
            "",
            &json!({"model": {"id": "fake-hash-3", "dim": 3}}),
        )
        .await
        .unwrap();
    assert!(fresh.id > info.domains.len() as i64);
    to.create_principal(&admin, &after, PrincipalKind::Agent)
        .await
        .unwrap();
    from.close().await;
    to.close().await;
}

/// A model switch as the store sees it: writes fill the serving slot only, the backfill fills
/// the other (skipping a document rewritten meanwhile), a write embedded with a model the
/// domain no longer serves is refused, the flip waits for every vector, then rollback and drop.
async fn generations(url: &str) {
    use dartmouth_domains::GenerationState;
    let store = Store::open(url).await.unwrap();
    let admin = store.local_admin().await.unwrap();
    let system = store.system();
    let old = json!({"id": "fake-hash-3", "dim": 3});
    let new = json!({"id": "other-3", "dim": 3});
    let d = store
        .create_domain(&admin, "gens", "", &json!({ "model": old }))
        .await
        .unwrap();
    assert_eq!(d.generations.active, 1);
    let pass = store
        .authorize(&admin, &["gens".into()], Role::Write)
        .await
        .unwrap();
    for id in ["a", "b", "c"] {
        store
            .write(&pass, "gens", "fake-hash-3", &[Write::Upsert(doc(id, id))])
            .await
            .unwrap();
    }
    // The model it serves already, and a second switch, are refused.
    let same = store
        .start_switch(&admin, "gens", &old, "node-1", 60_000)
        .await
        .unwrap_err();
    assert!(
        matches!(same, Error::Invalid { field: "model", .. }),
        "{same}"
    );
    let d = store
        .start_switch(&admin, "gens", &new, "node-1", 60_000)
        .await
        .unwrap();
    let building = d.generations.building().unwrap().clone();
    assert_eq!(building.slot, 2);
    let again = store
        .start_switch(&admin, "gens", &new, "node-1", 60_000)
        .await
        .unwrap_err();
    assert!(matches!(again, Error::Busy(_)), "{again}");
    // The lease: one node at a time, held from the start by the node that started it.
    assert_eq!(building.lease.as_ref().unwrap().owner, "node-1");
    assert!(
        store
            .claim_building(&system, d.id, &building.id, "node-1", 60_000)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .claim_building(&system, d.id, &building.id, "node-2", 60_000)
            .await
            .unwrap()
            .is_none()
    );
    let progress = store.slot_progress(&system, d.id, 2).await.unwrap();
    assert_eq!((progress.embedded, progress.chunks), (0, 6));
    let pending = store.pending_backfill(&system, d.id, 2, 2).await.unwrap();
    assert_eq!(
        pending
            .iter()
            .map(|p| p.external_id.as_str())
            .collect::<Vec<_>>(),
        ["a", "b"]
    );
    // `b` is rewritten after the backfill read it: its vectors are not stored.
    store
        .write(
            &pass,
            "gens",
            "fake-hash-3",
            &[Write::Upsert(doc("b", "b2"))],
        )
        .await
        .unwrap();
    let vectors =
        |p: &dartmouth_domains::PendingDocument| vec![vec![0.5, 0.5, 0.5]; p.chunks.len()];
    let docs: Vec<_> = pending.iter().map(|p| (p.clone(), vectors(p))).collect();
    let (stored, seq) = store
        .store_backfill(&system, d.id, &building.id, &docs)
        .await
        .unwrap();
    assert_eq!(stored, 1);
    // The backfill's change is for slot 2's shards, with slot 2's vectors.
    let changes = store
        .changes_since(&system, d.id, 2, seq - 1, 10)
        .await
        .unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].slot, Some(2));
    assert_eq!(
        changes[0].document.as_ref().unwrap().chunks[0].embedding,
        [0.5, 0.5, 0.5]
    );
    // Slot 1 still serves its own vectors; `b` and `c` lack slot 2's: no flip yet.
    let slot1 = store.all_documents(&system, d.id, 1).await.unwrap();
    assert!(
        slot1
            .iter()
            .all(|x| x.chunks.iter().all(|c| c.embedding.len() == 3))
    );
    assert!(
        store
            .flip_generation(&system, d.id, &building.id)
            .await
            .unwrap()
            .is_none()
    );
    let rest = store.pending_backfill(&system, d.id, 2, 10).await.unwrap();
    assert_eq!(rest.len(), 2);
    let docs: Vec<_> = rest.iter().map(|p| (p.clone(), vectors(p))).collect();
    store
        .store_backfill(&system, d.id, &building.id, &docs)
        .await
        .unwrap();
    let last = store.last_seq(&system, d.id).await.unwrap();
    let flipped = store
        .flip_generation(&system, d.id, &building.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(flipped.settings["model"], new);
    assert_eq!(flipped.generations.active, 2);
    let kept = flipped.generations.kept().unwrap();
    assert_eq!((kept.slot, kept.flip_seq, &kept.model), (1, last, &old));
    // A write embedded with the old model is refused (the writer embeds again), and one
    // with the new model empties slot 1's vectors of what it writes.
    let refused = store
        .write(
            &pass,
            "gens",
            "fake-hash-3",
            &[Write::Upsert(doc("d", "d"))],
        )
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::ModelChanged { .. }), "{refused}");
    store
        .write(&pass, "gens", "other-3", &[Write::Upsert(doc("d", "d"))])
        .await
        .unwrap();
    let slot1 = store.all_documents(&system, d.id, 1).await.unwrap();
    let d_in_1 = slot1.iter().find(|x| x.external_id == "d").unwrap();
    assert!(d_in_1.chunks.iter().all(|c| c.embedding.is_empty()));
    // Rollback: slot 1 builds again, lacking only `d`.
    let back = store
        .rollback_switch(&admin, "gens", "node-1", 60_000)
        .await
        .unwrap();
    let b = back.generations.building().unwrap();
    assert_eq!((b.slot, b.state), (1, GenerationState::Building));
    let missing = store.pending_backfill(&system, d.id, 1, 10).await.unwrap();
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0].external_id, "d");
    // Dropping abandons it; nothing left to drop after that.
    let dropped = store.drop_other_generation(&admin, "gens").await.unwrap();
    assert!(dropped.generations.other.is_none());
    assert_eq!(dropped.generations.active, 2);
    let none = store
        .drop_other_generation(&admin, "gens")
        .await
        .unwrap_err();
    assert!(matches!(none, Error::Busy(_)), "{none}");
    // A reader may not switch (and learns nothing of the domain).
    store
        .create_principal(&admin, "gens-reader", PrincipalKind::Agent)
        .await
        .unwrap();
    store
        .grant(&admin, "gens-reader", "gens", Role::Read)
        .await
        .unwrap();
    let reader = store.act_as(&admin, "gens-reader").await.unwrap();
    let denied = store
        .start_switch(&reader, "gens", &old, "node-1", 60_000)
        .await
        .unwrap_err();
    assert!(denied.is_missing_domain(), "{denied}");
    store.close().await;
}

/// A shop bound to a domain: checked, never holding a token, replaced keeping its state when
/// the shop is the same; one node at a time holds the sync lease; admins only; gone with the
/// domain.
async fn shops(url: &str) {
    use dartmouth_domains::ShopBinding;
    let store = Store::open(url).await.unwrap();
    let admin = store.local_admin().await.unwrap();
    let system = store.system();
    store
        .create_domain(
            &admin,
            "shop",
            "",
            &json!({"model": {"id": "fake-hash-3", "dim": 3}}),
        )
        .await
        .unwrap();
    let binding = ShopBinding {
        shop: "acme.myshopify.com".into(),
        api_version: "2026-01".into(),
        token_env: "ACME_SHOPIFY_TOKEN".into(),
        every_ms: Some(15 * 60_000),
        metafields: vec!["custom.material".into()],
    };
    for (bad, field) in [
        (
            ShopBinding {
                metafields: vec!["material".into()],
                ..binding.clone()
            },
            "metafields",
        ),
        (
            ShopBinding {
                shop: "acme shop".into(),
                ..binding.clone()
            },
            "shop",
        ),
        (
            ShopBinding {
                api_version: "2026-02".into(),
                ..binding.clone()
            },
            "api_version",
        ),
        (
            ShopBinding {
                token_env: "shpat_abc-def".into(),
                ..binding.clone()
            },
            "token_env",
        ),
        (
            ShopBinding {
                every_ms: Some(30_000),
                ..binding.clone()
            },
            "every",
        ),
    ] {
        let e = store.connect_shop(&admin, "shop", &bad).await.unwrap_err();
        assert!(
            matches!(&e, Error::Invalid { field: f, .. } if *f == field),
            "{e}"
        );
    }
    let c = store.connect_shop(&admin, "shop", &binding).await.unwrap();
    assert_eq!(c.binding.metafields, ["custom.material"]);
    assert_eq!(
        (c.binding.clone(), c.state.clone(), c.syncing.clone()),
        (binding.clone(), json!({}), None)
    );
    assert!(c.next_run.unwrap() > dartmouth_domains::now_millis());
    // The lease: one sync at a time.
    assert!(
        store
            .claim_shop_sync(&system, c.domain_id, "node-a", 60_000)
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_shop_sync(&system, c.domain_id, "node-b", 60_000)
            .await
            .unwrap()
    );
    // Its own second sync is refused too; the holder renews it, no one else.
    assert!(
        !store
            .claim_shop_sync(&system, c.domain_id, "node-a", 60_000)
            .await
            .unwrap()
    );
    assert!(
        store
            .renew_shop_sync(&system, c.domain_id, "node-a", 60_000)
            .await
            .unwrap()
    );
    assert!(
        !store
            .renew_shop_sync(&system, c.domain_id, "node-b", 60_000)
            .await
            .unwrap()
    );
    let all = store.shop_connections(&system).await.unwrap();
    assert_eq!(all[0].syncing.as_deref(), Some("node-a"));
    // Only the holder records a run.
    let state = json!({"last": {"added": 3}, "mark": "2026-12-01T00:00:00Z"});
    assert!(
        !store
            .finish_shop_sync(&system, c.domain_id, "node-b", &state, None)
            .await
            .unwrap()
    );
    assert!(
        store
            .finish_shop_sync(&system, c.domain_id, "node-a", &state, Some(1))
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_shop_sync(&system, c.domain_id, "node-b", 1)
            .await
            .unwrap()
    );
    // An expired lease is anyone's.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert!(
        store
            .claim_shop_sync(&system, c.domain_id, "node-a", 60_000)
            .await
            .unwrap()
    );
    // Connecting the same shop again keeps its state; another shop starts afresh.
    let again = store
        .connect_shop(
            &admin,
            "shop",
            &ShopBinding {
                every_ms: None,
                metafields: vec![],
                ..binding.clone()
            },
        )
        .await
        .unwrap();
    assert_eq!((again.state.clone(), again.next_run), (state.clone(), None));
    assert!(again.binding.metafields.is_empty());
    let other = store
        .connect_shop(
            &admin,
            "shop",
            &ShopBinding {
                shop: "other.myshopify.com".into(),
                ..binding.clone()
            },
        )
        .await
        .unwrap();
    assert_eq!(other.state, json!({}));
    // Readers see it; they may not bind or unbind.
    store
        .create_principal(&admin, "shop-reader", PrincipalKind::Agent)
        .await
        .unwrap();
    store
        .grant(&admin, "shop-reader", "shop", Role::Read)
        .await
        .unwrap();
    let reader = store.act_as(&admin, "shop-reader").await.unwrap();
    let pass = store
        .authorize(&reader, &["shop".into()], Role::Read)
        .await
        .unwrap();
    assert_eq!(
        store
            .shop_connection(&pass, "shop")
            .await
            .unwrap()
            .unwrap()
            .binding
            .shop,
        "other.myshopify.com"
    );
    assert!(
        store
            .connect_shop(&reader, "shop", &binding)
            .await
            .unwrap_err()
            .is_missing_domain()
    );
    assert!(
        store
            .disconnect_shop(&reader, "shop")
            .await
            .unwrap_err()
            .is_missing_domain()
    );
    store.disconnect_shop(&admin, "shop").await.unwrap();
    assert!(
        store
            .shop_connection(&pass, "shop")
            .await
            .unwrap()
            .is_none()
    );
    // Gone with its domain.
    store.connect_shop(&admin, "shop", &binding).await.unwrap();
    store.delete_domain(&admin, "shop").await.unwrap();
    assert!(store.shop_connections(&system).await.unwrap().is_empty());
    store.close().await;
}

#[tokio::test]
async fn sqlite_shops() {
    let dir = tempfile::tempdir().unwrap();
    shops(&Store::sqlite_url(dir.path())).await;
}

#[tokio::test]
async fn sqlite_generations() {
    let dir = tempfile::tempdir().unwrap();
    generations(&Store::sqlite_url(dir.path())).await;
}

#[tokio::test]
async fn sqlite_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let url = Store::sqlite_url(dir.path());
    conformance(&url).await;
    let restored = tempfile::tempdir().unwrap();
    snapshot_round_trip(&url, &Store::sqlite_url(restored.path())).await;
}

#[tokio::test]
async fn postgres_conformance() {
    let cluster = crate::pg::PgCluster::start();
    conformance(&cluster.url).await;
    generations(&cluster.database("generations")).await;
    shops(&cluster.database("shops")).await;
    // PostgreSQL to PostgreSQL, and to SQLite and back (a snapshot restores on either).
    snapshot_round_trip(&cluster.url, &cluster.database("restored")).await;
    let sqlite = tempfile::tempdir().unwrap();
    let sqlite_url = Store::sqlite_url(sqlite.path());
    snapshot_round_trip(&cluster.url, &sqlite_url).await;
    snapshot_round_trip(&sqlite_url, &cluster.database("back")).await;
}

#[tokio::test]
async fn a_bad_store_url_is_a_clear_error() {
    let err = Store::open("mysql://x").await.err().unwrap().to_string();
    assert!(err.contains("neither sqlite"), "{err}");
}

/// The test cluster serves TLS only, with a certificate its own CA signed: a client verifying
/// in full connects and works; one that does not trust that CA, or asks for no TLS at all, is
/// refused with an error that says why.
#[tokio::test]
async fn postgres_over_tls_verified_in_full() {
    let cluster = crate::pg::PgCluster::start();
    let store = Store::open(&cluster.verified_url()).await.unwrap();
    let admin = store.local_admin().await.unwrap();
    store.list_domains(&admin).await.unwrap();
    store.close().await;
    // The host name is checked too: `localhost` is in the certificate, as is 127.0.0.1.
    let by_name = cluster.verified_url().replace("127.0.0.1", "localhost");
    Store::open(&by_name).await.unwrap().close().await;

    let plain = format!("{}?sslmode=disable", cluster.url);
    let err = Store::open(&plain).await.err().unwrap().to_string();
    assert!(
        err.contains("no encryption") || err.contains("pg_hba.conf"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let other_ca = dir.path().join("other-ca.pem");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let other = params
        .self_signed(&rcgen::KeyPair::generate().unwrap())
        .unwrap();
    std::fs::write(&other_ca, other.pem()).unwrap();
    let untrusted = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        cluster.url,
        other_ca.display()
    );
    let err = Store::open(&untrusted).await.err().unwrap().to_string();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}

/// A verified client certificate's name authenticates a principal that is not a group, until
/// the certificate expires (and the caller carries that expiry).
#[tokio::test]
async fn a_certificate_names_a_principal_until_it_expires() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&Store::sqlite_url(dir.path())).await.unwrap();
    let admin = store.local_admin().await.unwrap();
    store
        .create_principal(&admin, "svc", PrincipalKind::Service)
        .await
        .unwrap();
    store
        .create_principal(&admin, "crew", PrincipalKind::Group)
        .await
        .unwrap();
    let later = dartmouth_domains::now_millis() + 60_000;
    let caller = store
        .authenticate_certificate("svc", Some(later))
        .await
        .unwrap();
    assert_eq!((caller.name(), caller.expires_at()), ("svc", Some(later)));
    for (name, expires) in [
        ("svc", Some(dartmouth_domains::now_millis() - 1)),
        ("crew", None),
        ("nobody", None),
    ] {
        let e = store
            .authenticate_certificate(name, expires)
            .await
            .err()
            .unwrap();
        assert!(
            e.to_string().contains("invalid client certificate"),
            "{name}: {e}"
        );
    }
    store.close().await;
}
