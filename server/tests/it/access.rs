//! Property, end to end: whatever the grants, groups, credentials (plain, restricted, read-only,
//! expiring and delegated keys and tokens) and requests, nothing a caller gets over HTTP or
//! gRPC depends on a domain it cannot read — no hit, count, facet, snippet, passage, document,
//! chunk or error — on every read path: search in bm25, vector and hybrid mode, with and without
//! a filter and facets, sorted by an attribute, "more like this" a document (of a readable or an
//! unreadable domain), `min_seq`, context packs, documents and chunks. A real `dartmouth
//! serve` (result and embedding caches on, so cached answers are checked too) over a real
//! SQLite store and shards; the worlds change between cases through the store's own API.
//!
//! Cases: `DARTMOUTH_ACCESS_CASES` (500 by default; the nightly-size run is 10,000).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::support::*;
use dartmouth_domains::{KeyScope, PrincipalKind, Role, Store};
use dartmouth_server::proto as pb;
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use serde_json::{Value, json};
use tonic::transport::Channel;

const DOMAINS: [&str; 4] = ["kb-a", "kb-b", "kb-c", "kb-d"];
/// A name no domain has.
const GHOST: &str = "kb-ghost";
/// Documents per domain; the even ones are `gold`.
const DOCS: [usize; 4] = [3, 2, 1, 3];
/// Words every domain shares, so one query can match everywhere.
const SHARED: [&str; 4] = ["refund", "shipping", "warranty", "battery"];
/// A word only domain `d` holds: any output carrying it exposes that domain.
fn secret(d: usize) -> String {
    format!("secret{d}word")
}

fn text(d: usize, i: usize) -> String {
    format!(
        "{} {} policy {i} for {}",
        SHARED[i % SHARED.len()],
        secret(d),
        SHARED[(i + d + 1) % SHARED.len()]
    )
}

/// How a query's caller authenticates.
#[derive(Debug, Clone)]
enum Credential {
    Key,
    /// A key restricted to these domains.
    Restricted(BTreeSet<usize>),
    /// A key whose role is read.
    ReadRole,
    Expiring,
    Jwt,
    /// A token the principal's key obtains for the case's end user.
    Delegated,
}

#[derive(Debug, Clone)]
enum Read {
    Search {
        words: Vec<String>,
        mode: &'static str,
        gold_only: bool,
        /// Read-your-writes on the requested domains.
        min_seq: bool,
        how: How,
    },
    Context {
        words: Vec<String>,
    },
    Document {
        domain: usize,
        doc: usize,
        chunk: bool,
    },
}

/// How a search orders what it finds.
#[derive(Debug, Clone)]
enum How {
    Ranked,
    /// Ordered by the `tier` attribute (`sort`).
    Sorted,
    /// "More like this" document of that domain (`similar_to`), maybe unreadable.
    Like(usize, usize),
}

#[derive(Debug, Clone)]
struct Query {
    principal: usize,
    credential: Credential,
    /// Requested domains; `DOMAINS.len()` is the ghost.
    requested: Vec<usize>,
    read: Read,
}

#[derive(Debug, Clone)]
struct World {
    /// (principal, or 3 for the group, or 4 for the end user; domain) → role.
    grants: BTreeMap<(usize, usize), Role>,
    members: [bool; 3],
    queries: Vec<Query>,
}

const GROUP: usize = 3;
const USER: usize = 4;

fn world() -> impl Strategy<Value = World> {
    let role = prop_oneof![Just(Role::Read), Just(Role::Write), Just(Role::Admin)];
    let keys: Vec<(usize, usize)> = (0..=USER)
        .flat_map(|p| (0..DOMAINS.len()).map(move |d| (p, d)))
        .collect();
    let word = prop_oneof![
        proptest::sample::select(SHARED.to_vec()).prop_map(String::from),
        (0..DOMAINS.len()).prop_map(secret),
    ];
    let words = proptest::collection::vec(word, 1..=3);
    let credential = prop_oneof![
        Just(Credential::Key),
        proptest::collection::btree_set(0..DOMAINS.len(), 0..=3).prop_map(Credential::Restricted),
        Just(Credential::ReadRole),
        Just(Credential::Expiring),
        Just(Credential::Jwt),
        Just(Credential::Delegated),
    ];
    let read = prop_oneof![
        4 => (
            words.clone(),
            prop_oneof![Just("bm25"), Just("vector"), Just("hybrid")],
            any::<bool>(),
            any::<bool>(),
            prop_oneof![
                3 => Just(How::Ranked),
                1 => Just(How::Sorted),
                1 => (0..DOMAINS.len(), 0..3usize).prop_map(|(d, i)| How::Like(d, i % DOCS[d])),
            ]
        )
            .prop_map(|(words, mode, gold_only, min_seq, how)| Read::Search {
                words,
                mode,
                gold_only,
                min_seq,
                how,
            }),
        1 => words.prop_map(|words| Read::Context { words }),
        1 => (0..DOMAINS.len(), 0..3usize, any::<bool>())
            .prop_map(|(domain, doc, chunk)| Read::Document {
                domain,
                doc: doc % DOCS[domain],
                chunk
            }),
    ];
    let query = (
        0..3usize,
        credential,
        proptest::collection::vec(0..=DOMAINS.len(), 0..=3),
        read,
    )
        .prop_map(|(principal, credential, requested, read)| Query {
            principal,
            credential,
            requested,
            read,
        });
    (
        proptest::collection::vec(proptest::option::weighted(0.4, role), keys.len()),
        any::<[bool; 3]>(),
        proptest::collection::vec(query, 1..=5),
    )
        .prop_map(move |(roles, members, queries)| World {
            grants: keys
                .iter()
                .zip(roles)
                .filter_map(|(k, r)| r.map(|r| (*k, r)))
                .collect(),
            members,
            queries,
        })
}

impl World {
    fn granted(&self, who: usize) -> BTreeSet<usize> {
        (0..DOMAINS.len())
            .filter(|d| self.grants.contains_key(&(who, *d)))
            .collect()
    }

    /// The domains a query's caller may read, from the model alone.
    fn readable(&self, q: &Query) -> BTreeSet<usize> {
        let mut mine = self.granted(q.principal);
        if self.members[q.principal] {
            mine.extend(self.granted(GROUP));
        }
        match &q.credential {
            Credential::Restricted(only) => mine.intersection(only).copied().collect(),
            Credential::Delegated => mine.intersection(&self.granted(USER)).copied().collect(),
            _ => mine,
        }
    }
}

struct Fixture {
    server: Server,
    _dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    store: Store,
    /// Each domain's sequence after its documents were written.
    seqs: Vec<u64>,
    cases: AtomicUsize,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for d in DOMAINS {
        cli(
            &data,
            &["domain", "create", d, "--embedder", "fake", "--dim", "16"],
        );
    }
    let admin_key = key_for(&data, "admin");
    let server = start_on(&data, &["--rate-limit", "0", "--ip-rate-limit", "0"]);
    let mut seqs = Vec::new();
    for (d, name) in DOMAINS.iter().enumerate() {
        let docs: Vec<Value> = (0..DOCS[d])
            .map(|i| {
                json!({
                    "id": format!("{name}-doc{i}"),
                    "title": format!("{} title {i}", secret(d)),
                    "text": text(d, i),
                    "attributes": {"tier": if i % 2 == 0 { "gold" } else { "basic" }}
                })
            })
            .collect();
        let (status, ack) = call(
            &server,
            "POST",
            &format!("/v1/domains/{name}/documents"),
            Some(&admin_key),
            Some(&json!({ "documents": docs }).to_string()),
        );
        assert_eq!(status, 200, "{ack}");
        seqs.push(ack["seq"].as_u64().unwrap());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let store = rt.block_on(Store::open(&Store::sqlite_url(&data))).unwrap();
    Fixture {
        server,
        _dir: dir,
        rt,
        store,
        seqs,
        cases: AtomicUsize::new(0),
    }
}

/// Names and credentials of one case's principals (fresh names per case).
struct Case {
    principals: [String; 3],
    user: String,
    keys: Vec<BTreeMap<String, String>>,
}

fn role_credential(c: &Credential) -> &'static str {
    match c {
        Credential::Key => "key",
        Credential::Restricted(_) => "restricted",
        Credential::ReadRole => "read-role",
        Credential::Expiring => "expiring",
        Credential::Jwt => "jwt",
        Credential::Delegated => "delegated",
    }
}

fn setup(f: &Fixture, w: &World) -> Case {
    let n = f.cases.fetch_add(1, Ordering::Relaxed);
    let principals = [0, 1, 2].map(|p| format!("c{n}-p{p}"));
    let group = format!("c{n}-team");
    let user = format!("c{n}-user");
    let keys = f.rt.block_on(async {
        let s = &f.store;
        let admin = s.local_admin().await.unwrap();
        s.create_principal(&admin, &group, PrincipalKind::Group)
            .await
            .unwrap();
        s.create_principal(&admin, &user, PrincipalKind::User)
            .await
            .unwrap();
        for (p, name) in principals.iter().enumerate() {
            s.create_principal(&admin, name, PrincipalKind::Agent)
                .await
                .unwrap();
            if w.members[p] {
                s.add_member(&admin, &group, name).await.unwrap();
            }
        }
        for ((who, d), role) in &w.grants {
            let name = match *who {
                GROUP => group.clone(),
                USER => user.clone(),
                p => principals[p].clone(),
            };
            s.grant(&admin, &name, DOMAINS[*d], *role).await.unwrap();
        }
        // The keys the queries use, made by each principal itself (narrowing its own).
        let mut keys = vec![BTreeMap::new(); 3];
        for q in &w.queries {
            let kind = role_credential(&q.credential).to_string();
            let p = q.principal;
            let scope = match &q.credential {
                Credential::Key | Credential::Delegated => KeyScope::default(),
                Credential::Restricted(only) => KeyScope {
                    domains: Some(only.iter().map(|d| DOMAINS[*d].to_string()).collect()),
                    ..KeyScope::default()
                },
                Credential::ReadRole => KeyScope {
                    role: Some(Role::Read),
                    ..KeyScope::default()
                },
                Credential::Expiring => KeyScope {
                    expires_at: Some(dartmouth_domains::now_millis() + 3_600_000),
                    ..KeyScope::default()
                },
                Credential::Jwt => continue,
            };
            let key = match &q.credential {
                Credential::Restricted(only) => format!(
                    "{kind}:{}",
                    only.iter().map(ToString::to_string).collect::<String>()
                ),
                _ => kind,
            };
            if keys[p].contains_key(&key) {
                continue;
            }
            let me = s.act_as(&admin, &principals[p]).await.unwrap();
            let (_, secret) = s.create_key(&me, &principals[p], scope).await.unwrap();
            keys[p].insert(key, secret);
        }
        keys
    });
    Case {
        principals,
        user,
        keys,
    }
}

/// The bearer credential a query sends.
fn bearer(f: &Fixture, case: &Case, q: &Query) -> String {
    let p = q.principal;
    let kind = role_credential(&q.credential);
    match &q.credential {
        Credential::Jwt => jwt(&case.principals[p], 600),
        Credential::Restricted(only) => case.keys[p][&format!(
            "{kind}:{}",
            only.iter().map(ToString::to_string).collect::<String>()
        )]
            .clone(),
        Credential::Delegated => {
            let (status, minted) = call(
                &f.server,
                "POST",
                "/v1/tokens/delegate",
                Some(&case.keys[p]["delegated"]),
                Some(&json!({"end_user": case.user}).to_string()),
            );
            match status {
                201 => minted["token"].as_str().unwrap().to_string(),
                // Nothing in common: the agent gets no token, so it reads nothing; a key
                // restricted to no domain stands for that.
                400 => {
                    assert!(
                        minted.to_string().contains("no domain in common"),
                        "{minted}"
                    );
                    String::new()
                }
                other => panic!("delegate: {other} {minted}"),
            }
        }
        _ => case.keys[p][kind].clone(),
    }
}

fn name(d: usize) -> &'static str {
    DOMAINS.get(d).copied().unwrap_or(GHOST)
}

/// The answer to the same request naming a domain that does not exist, with that name
/// replaced: what an unreadable domain must look like, byte for byte.
fn as_missing(body: &Value, hidden: &str) -> String {
    body.to_string().replace(hidden, GHOST)
}

fn hits_of(v: &Value) -> Vec<(String, String, String)> {
    v["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["domain"].as_str().unwrap().to_string(),
                h["chunk_id"].as_str().unwrap().to_string(),
                format!("{} {} {}", h["title"], h["text"], h["snippet"]),
            )
        })
        .collect()
}

async fn grpc_search(
    ch: Channel,
    token: &str,
    body: &Value,
) -> Result<pb::SearchResponse, tonic::Status> {
    let req = pb::SearchRequest {
        query: body["query"].as_str().unwrap().into(),
        domains: body["domains"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap().to_string())
            .collect(),
        k: 50,
        mode: body["mode"].as_str().unwrap().into(),
        filter: body["filter"].as_str().unwrap_or("").into(),
        facets: vec!["tier".into()],
        sort: body["sort"].as_str().unwrap_or("").into(),
        similar_to: body.get("similar_to").map(|l| pb::SimilarTo {
            domain: l["domain"].as_str().unwrap().into(),
            doc_id: l["doc_id"].as_str().unwrap().into(),
        }),
        min_seq: body["min_seq"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
                    .collect()
            })
            .unwrap_or_default(),
        ..Default::default()
    };
    pb::retrieval_client::RetrievalClient::new(ch)
        .search(with_key(req, Some(token)))
        .await
        .map(tonic::Response::into_inner)
}

fn check(f: &Fixture, ch: &Channel, w: &World) -> Result<(), TestCaseError> {
    let case = setup(f, w);
    for q in &w.queries {
        let token = bearer(f, &case, q);
        let readable = if token.is_empty() {
            BTreeSet::new()
        } else {
            w.readable(q)
        };
        let names: Vec<&str> = q.requested.iter().map(|d| name(*d)).collect();
        let hidden = q
            .requested
            .iter()
            .find(|d| !readable.contains(d))
            .map(|d| name(*d));
        let searched: BTreeSet<usize> = if q.requested.is_empty() {
            readable.clone()
        } else {
            q.requested.iter().copied().collect()
        };
        let unreadable: Vec<usize> = (0..DOMAINS.len())
            .filter(|d| !readable.contains(d))
            .collect();
        let leaks = |text: &str| {
            unreadable
                .iter()
                .find(|d| text.contains(&secret(**d)))
                .copied()
        };
        let context = format!("{q:?} (readable {readable:?})");
        if token.is_empty() {
            // No token: every read is refused as unauthenticated.
            let (status, _) = call(
                &f.server,
                "POST",
                "/v1/search",
                Some("not-a-token"),
                Some(r#"{"query":"a"}"#),
            );
            prop_assert_eq!(status, 401);
            continue;
        }
        match &q.read {
            Read::Search {
                words,
                mode,
                gold_only,
                min_seq,
                how,
            } => {
                let mut body = json!({"query": words.join(" "), "domains": names, "mode": mode, "k": 50, "facets": ["tier"]});
                match how {
                    How::Ranked => {}
                    How::Sorted => {
                        // A sort orders the documents matching the words: not a vector query.
                        if *mode == "vector" {
                            body["mode"] = json!("hybrid");
                        }
                        body["sort"] = json!("tier:desc");
                    }
                    How::Like(d, i) => {
                        // bm25 takes no vector: the like of a document is searched by vectors.
                        if *mode == "bm25" {
                            body["mode"] = json!("vector");
                        }
                        body["similar_to"] = json!({"domain": DOMAINS[*d], "doc_id": format!("{}-doc{i}", DOMAINS[*d])});
                    }
                }
                if *gold_only {
                    body["filter"] = json!("tier = \"gold\"");
                }
                if *min_seq {
                    let seqs: BTreeMap<&str, u64> = q
                        .requested
                        .iter()
                        .map(|d| (name(*d), f.seqs.get(*d).copied().unwrap_or(1)))
                        .collect();
                    body["min_seq"] = json!(seqs);
                }
                let (status, http) = call(
                    &f.server,
                    "POST",
                    "/v1/search",
                    Some(&token),
                    Some(&body.to_string()),
                );
                let grpc = f.rt.block_on(grpc_search(ch.clone(), &token, &body));
                if let Some(hidden) = hidden {
                    prop_assert_eq!(status, 404, "{}: {}", context, http);
                    let mut ghost = body.clone();
                    let swapped: Vec<&str> = names
                        .iter()
                        .map(|n| if *n == hidden { GHOST } else { n })
                        .collect();
                    ghost["domains"] = json!(swapped);
                    if let Some(m) = ghost.get_mut("min_seq").and_then(Value::as_object_mut)
                        && let Some(v) = m.remove(hidden)
                    {
                        m.insert(GHOST.into(), v);
                    }
                    let (_, missing) = call(
                        &f.server,
                        "POST",
                        "/v1/search",
                        Some(&token),
                        Some(&ghost.to_string()),
                    );
                    prop_assert_eq!(
                        as_missing(&http, hidden),
                        missing.to_string(),
                        "{}",
                        context
                    );
                    let status = grpc.unwrap_err();
                    prop_assert_eq!(status.code(), tonic::Code::NotFound, "{}", context);
                    prop_assert!(!status.message().contains("secret"));
                    continue;
                }
                // The liked document's domain unreadable: answered as a missing domain.
                if let How::Like(d, _) = how
                    && !readable.contains(d)
                {
                    prop_assert_eq!(status, 404, "{}: {}", context, http);
                    let mut ghost = body.clone();
                    ghost["similar_to"]["domain"] = json!(GHOST);
                    let (_, missing) = call(
                        &f.server,
                        "POST",
                        "/v1/search",
                        Some(&token),
                        Some(&ghost.to_string()),
                    );
                    prop_assert_eq!(
                        as_missing(&http, DOMAINS[*d]),
                        missing.to_string(),
                        "{}",
                        context
                    );
                    let status = grpc.unwrap_err();
                    prop_assert_eq!(status.code(), tonic::Code::NotFound, "{}", context);
                    prop_assert!(!status.message().contains("secret"));
                    continue;
                }
                prop_assert_eq!(status, 200, "{}: {}", context, http);
                let grpc = grpc.map_err(|e| TestCaseError::fail(format!("{context}: {e:?}")))?;
                let opened: BTreeSet<&str> = http["domains"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d.as_str().unwrap())
                    .collect();
                let expected: BTreeSet<&str> = searched.iter().map(|d| DOMAINS[*d]).collect();
                prop_assert_eq!(&opened, &expected, "{}", context);
                let count =
                    |d: &usize| (0..DOCS[*d]).filter(|i| !gold_only || i % 2 == 0).count() as u64;
                let total: u64 = searched.iter().map(count).sum();
                prop_assert_eq!(
                    http["total"]["chunks"].as_u64().unwrap(),
                    total,
                    "{}",
                    context
                );
                prop_assert_eq!(grpc.total_chunks, total, "{}", context);
                let gold: u64 = searched
                    .iter()
                    .map(|d| (0..DOCS[*d]).filter(|i| i % 2 == 0).count() as u64)
                    .sum();
                // (A search that opens no domain has no facets at all.)
                let facet = |v: &str| {
                    http["facets"]["tier"].as_array().map_or(0, |counts| {
                        counts
                            .iter()
                            .find(|c| c["value"] == v)
                            .map_or(0, |c| c["count"].as_u64().unwrap())
                    })
                };
                prop_assert_eq!(facet("gold"), gold, "{}", context);
                prop_assert_eq!(
                    facet("basic"),
                    if *gold_only { 0 } else { total - gold },
                    "{}",
                    context
                );
                let hits = hits_of(&http);
                for (domain, _, shown) in &hits {
                    prop_assert!(
                        expected.contains(domain.as_str()),
                        "{}: hit from {}",
                        context,
                        domain
                    );
                    prop_assert!(leaks(shown).is_none(), "{}: {}", context, shown);
                }
                match how {
                    How::Ranked if *mode == "vector" => {
                        prop_assert_eq!(hits.len() as u64, total, "{}", context);
                    }
                    How::Sorted => {
                        // One hit per document, gold before basic.
                        let tiers: Vec<bool> = http["hits"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|h| h["attributes"]["tier"] == "gold")
                            .collect();
                        prop_assert!(tiers.windows(2).all(|w| w[0] >= w[1]), "{}", context);
                    }
                    How::Like(d, i) => {
                        let liked = format!("{}-doc{i}", DOMAINS[*d]);
                        prop_assert!(
                            !hits.iter().any(|(domain, chunk, _)| domain == DOMAINS[*d]
                                && chunk.starts_with(&format!("{liked}#"))),
                            "{}: the liked document itself",
                            context
                        );
                    }
                    How::Ranked => {}
                }
                let grpc_ids: Vec<String> = grpc.hits.iter().map(|h| h.chunk_id.clone()).collect();
                let http_ids: Vec<String> = hits.iter().map(|h| h.1.clone()).collect();
                prop_assert_eq!(grpc_ids, http_ids, "{}", context);
            }
            Read::Context { words } => {
                let body = json!({"query": words.join(" "), "domains": names, "max_tokens": 2000});
                let (status, out) = call(
                    &f.server,
                    "POST",
                    "/v1/context",
                    Some(&token),
                    Some(&body.to_string()),
                );
                let grpc = f.rt.block_on(async {
                    pb::retrieval_client::RetrievalClient::new(ch.clone())
                        .context(with_key(
                            pb::ContextRequest {
                                query: words.join(" "),
                                domains: names.iter().map(|n| n.to_string()).collect(),
                                max_tokens: 2000,
                                ..Default::default()
                            },
                            Some(&token),
                        ))
                        .await
                });
                if let Some(hidden) = hidden {
                    prop_assert_eq!(status, 404, "{}: {}", context, out);
                    prop_assert_eq!(grpc.unwrap_err().code(), tonic::Code::NotFound);
                    prop_assert!(!out.to_string().contains("secret"), "{}", hidden);
                    continue;
                }
                prop_assert_eq!(status, 200, "{}: {}", context, out);
                let grpc = grpc
                    .map_err(|e| TestCaseError::fail(format!("{context}: {e:?}")))?
                    .into_inner();
                prop_assert!(
                    leaks(out["context"].as_str().unwrap()).is_none(),
                    "{}: {}",
                    context,
                    out
                );
                prop_assert!(leaks(&grpc.context).is_none(), "{}", context);
                for p in out["passages"].as_array().unwrap() {
                    let d = p["domain"].as_str().unwrap();
                    prop_assert!(
                        searched.iter().any(|s| DOMAINS[*s] == d),
                        "{}: {}",
                        context,
                        d
                    );
                }
                prop_assert_eq!(
                    out["context"].as_str().unwrap(),
                    grpc.context.as_str(),
                    "{}",
                    context
                );
            }
            Read::Document { domain, doc, chunk } => {
                let d = DOMAINS[*domain];
                let id = format!("{d}-doc{doc}");
                let path = if *chunk {
                    format!("/v1/domains/{d}/documents/{id}/chunks/0")
                } else {
                    format!("/v1/domains/{d}/documents/{id}")
                };
                let (status, out) = call(&f.server, "GET", &path, Some(&token), None);
                let grpc_code = f.rt.block_on(async {
                    let mut c = pb::retrieval_client::RetrievalClient::new(ch.clone());
                    if *chunk {
                        c.get_chunk(with_key(
                            pb::GetChunkRequest {
                                domain: d.into(),
                                doc_id: id.clone(),
                                idx: 0,
                            },
                            Some(&token),
                        ))
                        .await
                        .map(drop)
                    } else {
                        c.get_document(with_key(
                            pb::GetDocumentRequest {
                                domain: d.into(),
                                doc_id: id.clone(),
                            },
                            Some(&token),
                        ))
                        .await
                        .map(drop)
                    }
                    .map_or_else(|e| e.code(), |()| tonic::Code::Ok)
                });
                if readable.contains(domain) {
                    prop_assert_eq!(status, 200, "{}: {}", context, out);
                    prop_assert_eq!(grpc_code, tonic::Code::Ok, "{}", context);
                } else {
                    prop_assert_eq!(status, 404, "{}: {}", context, out);
                    prop_assert_eq!(grpc_code, tonic::Code::NotFound, "{}", context);
                    let ghost = path.replacen(d, GHOST, 1);
                    let (_, missing) = call(&f.server, "GET", &ghost, Some(&token), None);
                    prop_assert_eq!(as_missing(&out, d), missing.to_string(), "{}", context);
                }
            }
        }
    }
    Ok(())
}

#[test]
fn no_read_path_reveals_an_unreadable_domain_over_either_transport() {
    let cases: u32 = std::env::var("DARTMOUTH_ACCESS_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let f = fixture();
    let ch = f.rt.block_on(channel(&f.server));
    let config = ProptestConfig {
        cases,
        failure_persistence: None,
        // Shrinking re-runs cases against the same server; a few rounds say enough.
        max_shrink_iters: 64,
        ..ProptestConfig::default()
    };
    TestRunner::new(config)
        .run(&world(), |w| check(&f, &ch, &w))
        .unwrap();
    eprintln!(
        "{cases} cases, {} worlds built",
        f.cases.load(Ordering::Relaxed)
    );
}
