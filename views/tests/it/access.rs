//! Property: whatever the domains, principals, groups, grants, key restrictions and queries, a
//! search never reveals a domain its caller cannot read — no hit, no count, no error message —
//! in BM25, vector and hybrid mode. Real SQLite store, real shards (tantivy + HNSW) fed by the
//! applier from the changelog; the deterministic fake embedder stands in for the model.

use std::collections::{BTreeMap, BTreeSet};

use dartmouth_domains::{
    Caller, Error as StoreError, PrincipalKind, Role, Store, StoredChunk, StoredDocument, Write,
};
use dartmouth_engine::embed::FakeEmbedder;
use dartmouth_engine::{DomainSettings, Embedder, Filter, Mode, SearchRequest, Shards};
use dartmouth_views::{Applier, Error};
use proptest::prelude::*;
use serde_json::json;

const DOMAINS: [&str; 4] = ["kb-a", "kb-b", "kb-c", "kb-d"];
const PRINCIPALS: [&str; 3] = ["agent-0", "agent-1", "agent-2"];
const GROUP: &str = "team";
/// Words every domain shares, so the same query can match everywhere.
const SHARED: [&str; 4] = ["refund", "shipping", "warranty", "battery"];
/// A word only domain i contains: a hit or snippet carrying it exposes that domain.
fn secret(i: usize) -> String {
    format!("secret{i}word")
}

#[derive(Debug, Clone)]
struct World {
    domains: usize,
    /// Documents per domain (1..=3), each one chunk; `gold` on the even ones.
    docs: Vec<usize>,
    /// (principal index or GROUP when == PRINCIPALS.len(), domain index) → role.
    grants: BTreeMap<(usize, usize), Role>,
    /// Which principals belong to the group.
    members: Vec<bool>,
    /// Each principal's key restriction, if any.
    only: Vec<Option<BTreeSet<usize>>>,
    queries: Vec<Query>,
}

#[derive(Debug, Clone)]
struct Query {
    principal: usize,
    /// Requested domain indexes; DOMAINS.len() names a domain that does not exist.
    requested: Vec<usize>,
    words: Vec<String>,
    mode: Mode,
    gold_only: bool,
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Read), Just(Role::Write), Just(Role::Admin)]
}

fn world() -> impl Strategy<Value = World> {
    (1..=DOMAINS.len()).prop_flat_map(|n| {
        let grant_keys: Vec<(usize, usize)> = (0..=PRINCIPALS.len())
            .flat_map(|p| (0..n).map(move |d| (p, d)))
            .collect();
        let word = prop_oneof![
            proptest::sample::select(SHARED.to_vec()).prop_map(String::from),
            (0..DOMAINS.len()).prop_map(secret),
        ];
        let query = (
            0..PRINCIPALS.len(),
            proptest::collection::vec(0..=DOMAINS.len(), 0..=3),
            proptest::collection::vec(word, 1..=3),
            prop_oneof![Just(Mode::Bm25), Just(Mode::Vector), Just(Mode::Hybrid)],
            any::<bool>(),
        )
            .prop_map(|(principal, requested, words, mode, gold_only)| Query {
                principal,
                requested,
                words,
                mode,
                gold_only,
            });
        (
            Just(n),
            proptest::collection::vec(1..=3usize, n),
            proptest::collection::vec(proptest::option::of(role()), grant_keys.len()),
            proptest::collection::vec(any::<bool>(), PRINCIPALS.len()),
            proptest::collection::vec(
                proptest::option::weighted(0.3, proptest::collection::btree_set(0..n, 0..=n)),
                PRINCIPALS.len(),
            ),
            proptest::collection::vec(query, 1..=8),
        )
            .prop_map(
                move |(domains, docs, roles, members, only, queries)| World {
                    domains,
                    docs,
                    grants: grant_keys
                        .iter()
                        .zip(roles)
                        .filter_map(|(k, r)| r.map(|r| (*k, r)))
                        .collect(),
                    members,
                    only,
                    queries,
                },
            )
    })
}

impl World {
    /// The domains principal `p` can read, computed from the model, not the store.
    fn readable(&self, p: usize) -> BTreeSet<usize> {
        (0..self.domains)
            .filter(|d| {
                self.grants.contains_key(&(p, *d))
                    || (self.members[p] && self.grants.contains_key(&(PRINCIPALS.len(), *d)))
            })
            .filter(|d| self.only[p].as_ref().is_none_or(|o| o.contains(d)))
            .collect()
    }

    fn text(domain: usize, doc: usize) -> String {
        format!(
            "{} {} policy {doc} for {}",
            SHARED[doc % SHARED.len()],
            secret(domain),
            SHARED[(doc + domain + 1) % SHARED.len()]
        )
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    shards: Shards,
    callers: Vec<Caller>,
}

fn build(rt: &tokio::runtime::Runtime, embedder: &FakeEmbedder, w: &World) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = rt
        .block_on(Store::open(&Store::sqlite_url(dir.path())))
        .unwrap();
    let shards = Shards::open(&dir.path().join("shards")).unwrap();
    let settings = serde_json::to_value(DomainSettings::new(embedder.spec().clone())).unwrap();
    let callers = rt.block_on(async {
        let admin = store.local_admin().await.unwrap();
        for name in &DOMAINS[..w.domains] {
            store
                .create_domain(&admin, name, "", &settings)
                .await
                .unwrap();
        }
        store
            .create_principal(&admin, GROUP, PrincipalKind::Group)
            .await
            .unwrap();
        for (p, name) in PRINCIPALS.iter().enumerate() {
            store
                .create_principal(&admin, name, PrincipalKind::Agent)
                .await
                .unwrap();
            if w.members[p] {
                store.add_member(&admin, GROUP, name).await.unwrap();
            }
        }
        for ((p, d), role) in &w.grants {
            let who = PRINCIPALS.get(*p).copied().unwrap_or(GROUP);
            store.grant(&admin, who, DOMAINS[*d], *role).await.unwrap();
        }
        for (d, name) in DOMAINS[..w.domains].iter().enumerate() {
            let pass = store
                .authorize(&admin, &[(*name).to_string()], Role::Write)
                .await
                .unwrap();
            let writes: Vec<Write> = (0..w.docs[d])
                .map(|i| {
                    let text = World::text(d, i);
                    let embedding = embedder.embed_batch(&[&text]).unwrap().remove(0);
                    let tier = if i % 2 == 0 { "gold" } else { "basic" };
                    Write::Upsert(StoredDocument {
                        external_id: format!("{name}-doc{i}"),
                        title: format!("{} title {i}", secret(d)),
                        url: None,
                        attributes: json!({ "tier": [{ "k": tier }] }),
                        content_hash: format!("{d}-{i}"),
                        chunks: vec![StoredChunk {
                            char_end: text.len() as u64,
                            text,
                            char_start: 0,
                            heading: None,
                            embedding,
                        }],
                        ..Default::default()
                    })
                })
                .collect();
            #[allow(
                clippy::disallowed_methods,
                reason = "documents of the test's own making, valid by construction"
            )]
            store
                .write(&pass, name, &embedder.spec().id, &writes)
                .await
                .unwrap();
        }
        // Callers authenticate with keys, restricted where the world says so.
        let mut callers = Vec::new();
        for (p, name) in PRINCIPALS.iter().enumerate() {
            let only = w.only[p]
                .as_ref()
                .map(|o| o.iter().map(|d| DOMAINS[*d].to_string()).collect());
            let operator = store.act_as(&admin, name).await.unwrap();
            let (_, secret) = store
                .create_key(
                    &operator,
                    name,
                    dartmouth_domains::KeyScope {
                        domains: only,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            callers.push(store.authenticate_key(&secret).await.unwrap());
        }
        callers
    });
    Fixture {
        _dir: dir,
        store,
        shards,
        callers,
    }
}

/// The message of a domain that does not exist, with its name replaced by `name`.
fn missing_message(
    rt: &tokio::runtime::Runtime,
    f: &Fixture,
    caller: &Caller,
    name: &str,
) -> String {
    let absent = "no-such-domain";
    let err = rt
        .block_on(f.store.authorize(caller, &[absent.to_string()], Role::Read))
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    err.to_string().replace(absent, name)
}

fn check(
    rt: &tokio::runtime::Runtime,
    embedder: &FakeEmbedder,
    w: &World,
) -> Result<(), TestCaseError> {
    let f = build(rt, embedder, w);
    let applier = Applier {
        store: &f.store,
        shards: &f.shards,
        runtime: rt.handle().clone(),
        events: None,
    };
    for q in &w.queries {
        let caller = &f.callers[q.principal];
        let readable = w.readable(q.principal);
        let names: Vec<String> = q
            .requested
            .iter()
            .map(|d| DOMAINS.get(*d).copied().unwrap_or("kb-ghost").to_string())
            .collect();
        let pass = rt.block_on(f.store.authorize(caller, &names, Role::Read));
        let first_unreadable = q
            .requested
            .iter()
            .zip(&names)
            .find(|(d, _)| !readable.contains(d))
            .map(|(_, n)| n.clone());
        let pass = match (pass, first_unreadable) {
            (Err(err), Some(name)) => {
                // Unreadable and missing domains are the same error, word for word.
                prop_assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
                prop_assert_eq!(err.to_string(), missing_message(rt, &f, caller, &name));
                continue;
            }
            (Ok(pass), None) => pass,
            (Err(err), None) => return Err(TestCaseError::fail(format!("denied: {err}"))),
            (Ok(pass), Some(name)) => {
                return Err(TestCaseError::fail(format!(
                    "{name} opened for {}: {:?}",
                    PRINCIPALS[q.principal],
                    pass.domains()
                )));
            }
        };
        let searched: BTreeSet<usize> = if q.requested.is_empty() {
            readable.clone()
        } else {
            q.requested.iter().copied().collect()
        };
        let opened: BTreeSet<&str> = pass.domains().iter().map(|d| d.name.as_str()).collect();
        let expected: BTreeSet<&str> = searched.iter().map(|d| DOMAINS[*d]).collect();
        prop_assert_eq!(&opened, &expected);

        let reader = applier
            .reader(&pass)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let text = q.words.join(" ");
        let mut req = SearchRequest::new(text.clone());
        req.mode = q.mode;
        req.k = 50;
        if q.gold_only {
            req.filter = Some(Filter::parse(r#"tier = "gold""#).unwrap());
        }
        if q.mode != Mode::Bm25 {
            req.vectors = vec![embedder.embed_query(&text).unwrap()];
        }
        let response = match reader.search(&req) {
            Ok(r) => r,
            Err(Error::Engine(e)) => return Err(TestCaseError::fail(format!("{text}: {e}"))),
            Err(e) => return Err(TestCaseError::fail(e.to_string())),
        };
        // Counts: exactly the searched domains' chunks that pass the filter.
        let expected_count: usize = searched
            .iter()
            .map(|d| {
                (0..w.docs[*d])
                    .filter(|i| !q.gold_only || i % 2 == 0)
                    .count()
            })
            .sum();
        prop_assert_eq!(response.filtered_chunks, expected_count as u64);
        // Hits: only searched (hence readable) domains, and no unreadable domain's words.
        for hit in &response.hits {
            prop_assert!(
                expected.contains(hit.domain.as_str()),
                "hit from {}",
                hit.domain
            );
            for d in (0..DOMAINS.len()).filter(|d| !readable.contains(d)) {
                prop_assert!(!hit.text.contains(&secret(d)) && !hit.title.contains(&secret(d)));
            }
        }
        // Every searched document that can match is found (vector mode ranks them all).
        if q.mode == Mode::Vector {
            prop_assert_eq!(response.hits.len(), expected_count);
        }
    }
    let pass = rt.block_on(f.store.authorize(&f.callers[0], &[], Role::Read));
    prop_assert!(pass.is_ok());
    Ok(())
}

/// The applier blocks on the store's futures from plain threads: a multi-thread runtime.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn no_search_reveals_an_unreadable_domain() {
    let rt = runtime();
    let embedder = FakeEmbedder::new(16);
    let config = ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest::test_runner::TestRunner::new(config)
        .run(&world(), |w| check(&rt, &embedder, &w))
        .unwrap();
}

/// A caller with no grant searching "everything it may read" finds nothing, and no error says
/// what exists.
#[test]
fn a_caller_without_grants_finds_nothing() {
    let rt = runtime();
    let embedder = FakeEmbedder::new(16);
    let w = World {
        domains: 2,
        docs: vec![2, 2],
        grants: BTreeMap::new(),
        members: vec![false; PRINCIPALS.len()],
        only: vec![None; PRINCIPALS.len()],
        queries: Vec::new(),
    };
    let f = build(&rt, &embedder, &w);
    let applier = Applier {
        store: &f.store,
        shards: &f.shards,
        runtime: rt.handle().clone(),
        events: None,
    };
    let pass = rt
        .block_on(f.store.authorize(&f.callers[0], &[], Role::Read))
        .unwrap();
    let reader = applier.reader(&pass).unwrap();
    assert!(reader.model().unwrap().is_none());
    let response = reader.search(&SearchRequest::new("refund")).unwrap();
    assert!(response.hits.is_empty());
    assert_eq!(response.filtered_chunks, 0);
}
