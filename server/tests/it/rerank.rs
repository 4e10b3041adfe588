//! The second stage and domains of different models, on the service in process (a temporary
//! SQLite store, fake embedders): what reaches the reranker, the order it makes, its budget,
//! its bad input; one query embedded per model; and the real cross-encoder's order.

use std::sync::Arc;

use dartmouth_engine::embed::{FakeReranker, Reranker};
use dartmouth_server::service::{
    ContextInput, DomainInput, IngestDocument, IngestInput, RerankInput, SearchInput, SearchOutput,
};

use dartmouth_server::models::{Loaded, ModelArgs};

use crate::inproc::InProcess;

fn ids(out: &SearchOutput) -> Vec<&str> {
    out.hits.iter().map(|h| h.doc_id.as_str()).collect()
}

fn rerank(model: &str, top_n: usize) -> Option<RerankInput> {
    Some(RerankInput {
        top_n: Some(top_n),
        model: Some(model.into()),
        // The reranker's order alone, which these tests check.
        blend: Some(1.0),
        ..RerankInput::default()
    })
}

const SHOP: [(&str, &str); 5] = [
    ("tee", "a plain cotton tee shirt"),
    ("hoodie-s", "blue hoodie in size s"),
    ("hoodie-m", "blue hoodie in size m with a zip"),
    ("socks", "blue socks"),
    ("mug", "a mug"),
];

#[test]
fn the_reranker_orders_the_top_n_and_sees_only_what_the_caller_may_read() {
    let fake = Arc::new(FakeReranker::default());
    let p = InProcess::new(&[("fake-overlap", fake.clone() as Arc<dyn Reranker>)]);
    p.domain("shop", "fake", None, &SHOP);
    p.domain(
        "secret",
        "fake",
        None,
        &[("plan", "blue hoodie size m secret launch plan")],
    );
    let agent = p.reader("agent", &["shop"]);
    let query = "blue hoodie size m";
    let fused = p
        .search(
            &agent,
            SearchInput {
                query: query.into(),
                k: Some(5),
                ..SearchInput::default()
            },
        )
        .unwrap();
    let reranked = p
        .search(
            &agent,
            SearchInput {
                query: query.into(),
                k: Some(5),
                rerank: rerank("fake-overlap", 5),
                explain: true,
                ..SearchInput::default()
            },
        )
        .unwrap();
    let info = reranked.rerank.as_ref().unwrap();
    assert!(info.applied && info.top_n == 5, "{info:?}");
    // The reranker's order: the passages sharing most of the query's words first, each hit
    // carrying its score and where fusion had put it.
    let scores: Vec<f32> = reranked
        .hits
        .iter()
        .map(|h| h.rerank.unwrap().score)
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    assert_eq!(ids(&reranked)[0], "hoodie-m", "{:?}", ids(&reranked));
    for h in &reranked.hits {
        let r = h.rerank.unwrap();
        assert_eq!(ids(&fused)[r.rank_before - 1], h.doc_id);
        assert_eq!(
            h.explain.as_ref().unwrap()["rerank"]["rank_before"],
            r.rank_before
        );
    }
    // Every domain the caller may read was searched, and nothing of `secret` was scored.
    assert!(
        fake.seen().iter().all(|p| !p.contains("secret")),
        "{:?}",
        fake.seen()
    );
    assert!(!fake.seen().is_empty());
    // Asking for the unreadable domain is a missing domain, and scores nothing.
    let before = fake.seen().len();
    let refused = p
        .search(
            &agent,
            SearchInput {
                query: query.into(),
                domains: vec!["shop".into(), "secret".into()],
                rerank: rerank("fake-overlap", 5),
                ..SearchInput::default()
            },
        )
        .unwrap_err();
    assert_eq!(refused.code, dartmouth_server::error::Code::NotFound);
    assert_eq!(fake.seen().len(), before);
    // Reranked context packs take the reranked order.
    let pack =
        p.rt.block_on(p.svc.context(
            &agent,
            ContextInput {
                query: query.into(),
                max_tokens: Some(2000),
                rerank: rerank("fake-overlap", 5),
                ..ContextInput::default()
            },
        ))
        .unwrap();
    assert_eq!(pack.passages[0].doc_id, "hoodie-m");
    assert!(pack.rerank.unwrap().applied);
}

/// A domain's default reranking applies when a request does not say, `top_n: 0` turns it off
/// for a request, and an update removes it; a bad default is refused naming its field.
#[test]
fn a_domains_default_reranking() {
    let fake = Arc::new(FakeReranker::default());
    let p = InProcess::new(&[("fake-overlap", fake.clone() as Arc<dyn Reranker>)]);
    let with_default = DomainInput {
        name: "shop".into(),
        embedder: Some("fake".into()),
        rerank: rerank("fake-overlap", 3),
        ..DomainInput::default()
    };
    p.rt.block_on(p.svc.create_domain(&p.admin, with_default))
        .unwrap();
    let documents = SHOP
        .iter()
        .map(|(id, text)| IngestDocument {
            id: (*id).into(),
            title: String::new(),
            text: (*text).into(),
            url: None,
            attributes: Default::default(),
        })
        .collect();
    p.rt.block_on(p.svc.ingest(&p.admin, "shop", IngestInput { documents }))
        .unwrap();
    let ask = |r: Option<RerankInput>| {
        p.search(
            &p.admin,
            SearchInput {
                query: "blue hoodie size m".into(),
                rerank: r,
                ..SearchInput::default()
            },
        )
        .unwrap()
    };
    let by_default = ask(None);
    let info = by_default.rerank.unwrap();
    assert_eq!((info.model.as_str(), info.top_n), ("fake-overlap", 3));
    assert!(
        ask(Some(RerankInput {
            top_n: Some(0),
            ..RerankInput::default()
        }))
        .rerank
        .is_none()
    );
    // A request changes part of it: the rest is the domain's.
    let five = ask(Some(RerankInput {
        top_n: Some(5),
        ..RerankInput::default()
    }));
    assert_eq!(five.rerank.unwrap().model, "fake-overlap");
    let off = dartmouth_server::service::DomainUpdate {
        rerank: Some(RerankInput {
            top_n: Some(0),
            ..RerankInput::default()
        }),
        ..Default::default()
    };
    p.rt.block_on(p.svc.update_domain(&p.admin, "shop", off))
        .unwrap();
    assert!(ask(None).rerank.is_none());
    let bad = DomainInput {
        name: "bad".into(),
        embedder: Some("fake".into()),
        rerank: Some(RerankInput {
            top_n: Some(500),
            ..RerankInput::default()
        }),
        ..DomainInput::default()
    };
    let e =
        p.rt.block_on(p.svc.create_domain(&p.admin, bad))
            .unwrap_err();
    assert!(e.message.starts_with("rerank.top_n"), "{}", e.message);
}

#[test]
fn a_budget_run_out_returns_the_fused_order_flagged() {
    let slow = Arc::new(FakeReranker::slow(std::time::Duration::from_millis(40)));
    let p = InProcess::new(&[("slow-fake", slow as Arc<dyn Reranker>)]);
    p.domain("shop", "fake", None, &SHOP);
    let query = SearchInput {
        query: "blue hoodie size m".into(),
        k: Some(5),
        ..SearchInput::default()
    };
    let fused = p.search(&p.admin, query.clone()).unwrap();
    let out = p
        .search(
            &p.admin,
            SearchInput {
                rerank: Some(RerankInput {
                    timeout_ms: Some(50),
                    ..rerank("slow-fake", 5).unwrap()
                }),
                ..query
            },
        )
        .unwrap();
    let info = out.rerank.clone().unwrap();
    assert!(!info.applied, "{info:?}");
    assert!(info.reason.unwrap().contains("50 ms"));
    assert_eq!(ids(&out), ids(&fused));
    assert!(out.hits.iter().all(|h| h.rerank.is_none()));
}

#[test]
fn rerank_input_is_checked_and_names_its_field() {
    let p = InProcess::new(&[("fake-overlap", Arc::new(FakeReranker::default()) as _)]);
    p.domain("shop", "fake", None, &SHOP);
    let ask = |r: RerankInput, query: &str, sort: Option<&str>| {
        p.search(
            &p.admin,
            SearchInput {
                query: query.into(),
                sort: sort.map(Into::into),
                rerank: Some(r),
                ..SearchInput::default()
            },
        )
        .map(drop)
        .unwrap_err()
    };
    let fake = |n| rerank("fake-overlap", n).unwrap();
    for (e, code, field) in [
        (ask(fake(101), "blue", None), 400, "rerank.top_n"),
        (
            ask(
                RerankInput {
                    blend: Some(2.0),
                    ..fake(5)
                },
                "blue",
                None,
            ),
            400,
            "rerank.blend",
        ),
        (
            ask(
                RerankInput {
                    timeout_ms: Some(600_000),
                    ..fake(5)
                },
                "blue",
                None,
            ),
            400,
            "rerank.timeout_ms",
        ),
        (ask(fake(5), "", None), 400, "rerank"),
        (ask(fake(5), "blue", Some("price")), 400, "rerank"),
        (
            ask(rerank("no-such-reranker", 5).unwrap(), "blue", None),
            400,
            "rerank.model",
        ),
        // An embedding model is no reranker.
        (
            ask(rerank("all-minilm-l6-v2", 5).unwrap(), "blue", None),
            400,
            "rerank.model",
        ),
    ] {
        assert_eq!(e.code.http().as_u16(), code, "{}", e.message);
        assert!(e.message.starts_with(field), "{field}: {}", e.message);
    }
}

/// Domains of two models searched together: the query embedded once per model, each shard
/// searched with its own model's vector, hits from both; a given vector serves one model only.
#[test]
fn domains_of_different_models_are_searched_together() {
    let p = InProcess::new(&[]);
    p.domain("small", "fake", Some(64), &SHOP[..3]);
    p.domain("large", "fake", Some(384), &SHOP[2..]);
    for mode in ["hybrid", "vector"] {
        let out = p
            .search(
                &p.admin,
                SearchInput {
                    query: "blue hoodie".into(),
                    mode: Some(mode.parse().unwrap()),
                    ..SearchInput::default()
                },
            )
            .unwrap();
        let domains: std::collections::BTreeSet<&str> =
            out.hits.iter().map(|h| h.domain.as_str()).collect();
        assert_eq!(domains.len(), 2, "{mode}: {:?}", ids(&out));
        for h in &out.hits {
            let want = if h.domain == "small" {
                "fake-hash-64"
            } else {
                "fake-hash-384"
            };
            assert_eq!(h.model, want);
        }
    }
    let e = p
        .search(
            &p.admin,
            SearchInput {
                vector: Some(vec![0.5; 64]),
                ..SearchInput::default()
            },
        )
        .unwrap_err();
    assert_eq!(e.code.http().as_u16(), 400, "{}", e.message);
    assert!(
        e.message.contains("different embedding models"),
        "{}",
        e.message
    );
}

/// The real cross-encoder (ms-marco-MiniLM-L-12-v2, int8) through the service: the reranked
/// order is the order of its own scores of (query, title + passage), computed here directly.
#[test]
fn the_real_cross_encoder_decides_the_order() {
    let p = InProcess::new(&[]);
    p.domain(
        "help",
        "fake",
        None,
        &[
            ("refunds", "Refunds are paid to the original card within five days of the return arriving."),
            ("shipping", "We ship to most countries; delivery takes three to seven days."),
            ("sizes", "Our size chart lists chest and waist measurements for every size."),
            ("returns", "How do I return an item? Print the label from your account and drop the parcel off."),
            ("gift", "Gift cards never expire and can be used online."),
        ],
    );
    let query = "how long until I get my money back after returning something";
    let out = p
        .search(
            &p.admin,
            SearchInput {
                query: query.into(),
                k: Some(5),
                rerank: Some(RerankInput {
                    top_n: Some(5),
                    timeout_ms: Some(60_000),
                    // Its order alone (the built-in blend is half the fused score).
                    blend: Some(1.0),
                    ..RerankInput::default()
                }),
                ..SearchInput::default()
            },
        )
        .unwrap();
    assert!(out.rerank.as_ref().unwrap().applied);
    assert_eq!(
        out.rerank.as_ref().unwrap().model,
        "ms-marco-minilm-l-12-v2"
    );
    let models = ModelArgs {
        models_dir: std::env::var_os("DARTMOUTH_MODELS_DIR").map(Into::into),
        ort_library: std::env::var_os("ORT_DYLIB_PATH").map(Into::into),
        openai_url: None,
        openai_key: None,
    };
    let encoder = models
        .reranker(&Loaded::default(), "ms-marco-minilm-l-12-v2")
        .unwrap();
    let passages: Vec<String> = out.hits.iter().map(|h| h.text.clone()).collect();
    let refs: Vec<&str> = passages.iter().map(String::as_str).collect();
    let direct = encoder.score(query, &refs, None).unwrap().unwrap();
    for (h, d) in out.hits.iter().zip(&direct) {
        assert!(
            (h.rerank.unwrap().score - d).abs() < 1e-4,
            "{} {d}",
            h.doc_id
        );
    }
    assert!(direct.windows(2).all(|w| w[0] >= w[1]), "{direct:?}");
    assert_eq!(ids(&out)[0], "refunds", "{:?} {direct:?}", ids(&out));
    // Unsaid, the blend is the built-in 0.5.
    let blended = p
        .search(
            &p.admin,
            SearchInput {
                query: query.into(),
                k: Some(5),
                rerank: Some(RerankInput {
                    top_n: Some(5),
                    timeout_ms: Some(60_000),
                    ..RerankInput::default()
                }),
                ..SearchInput::default()
            },
        )
        .unwrap();
    assert_eq!(blended.rerank.unwrap().blend, 0.5);
}
