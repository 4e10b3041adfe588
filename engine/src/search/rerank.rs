//! The second stage of a search: the best candidates re-ordered by a reranker (see
//! `embed::Reranker`), blended with their fused scores.

use std::time::Instant;

use super::{Hit, RerankScore};
use crate::Result;
use crate::embed::Reranker;

/// What a reranker is given for a hit: its title, then its text.
pub fn rerank_passage(hit: &Hit) -> String {
    if hit.title.trim().is_empty() {
        hit.text.clone()
    } else {
        format!("{}\n{}", hit.title, hit.text)
    }
}

/// Re-orders the first `top_n` hits (already in fused order) by the reranker's scores blended
/// with their fused scores, and records each one's standing before. Hits after them keep their
/// place. Returns `false`, leaving `hits` as they were, when `deadline` passed first.
pub fn rerank_hits(
    reranker: &dyn Reranker,
    query: &str,
    hits: &mut [Hit],
    top_n: usize,
    blend: f32,
    deadline: Option<Instant>,
) -> Result<bool> {
    let n = top_n.min(hits.len());
    if n == 0 {
        return Ok(true);
    }
    let passages: Vec<String> = hits[..n].iter().map(rerank_passage).collect();
    let refs: Vec<&str> = passages.iter().map(String::as_str).collect();
    let Some(scores) = reranker.score(query, &refs, deadline)? else {
        return Ok(false);
    };
    let span = |xs: &mut dyn Iterator<Item = f32>| {
        xs.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), x| {
            (lo.min(x), hi.max(x))
        })
    };
    let (ce_lo, ce_hi) = span(&mut scores.iter().copied());
    let (fu_lo, fu_hi) = span(&mut hits[..n].iter().map(|h| h.score));
    let norm = |x: f32, lo: f32, hi: f32| if hi > lo { (x - lo) / (hi - lo) } else { 1.0 };
    for (i, (hit, &ce)) in hits[..n].iter_mut().zip(&scores).enumerate() {
        let before = hit.score;
        hit.rerank = Some(RerankScore {
            score: ce,
            rank_before: i + 1,
            score_before: before,
        });
        hit.score = if blend >= 1.0 {
            ce
        } else {
            blend * norm(ce, ce_lo, ce_hi) + (1.0 - blend) * norm(before, fu_lo, fu_hi)
        };
    }
    // Stable: equal scores keep their fused order.
    hits[..n].sort_by(|a, b| b.score.total_cmp(&a.score));
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::FakeReranker;

    fn hit(title: &str, text: &str, score: f32) -> Hit {
        Hit {
            domain: "d".into(),
            doc_id: title.into(),
            chunk_id: format!("{title}#0"),
            chunk_idx: 0,
            score,
            bm25: None,
            vector: None,
            title: title.into(),
            text: text.into(),
            url: None,
            heading: None,
            char_start: 0,
            char_end: text.len() as u64,
            attributes: serde_json::Value::Null,
            index_seq: 1,
            rerank: None,
        }
    }

    fn order(hits: &[Hit]) -> Vec<&str> {
        hits.iter().map(|h| h.doc_id.as_str()).collect()
    }

    #[test]
    fn the_top_n_take_the_rerankers_order_and_the_rest_keep_theirs() {
        let r = FakeReranker::default();
        let mut hits = vec![
            hit("a", "nothing relevant", 0.9),
            hit("b", "blue hoodie", 0.8),
            hit("c", "a blue thing", 0.7),
            hit("d", "blue hoodie size m", 0.6),
        ];
        assert!(rerank_hits(&r, "blue hoodie size m", &mut hits, 3, 1.0, None).unwrap());
        // d is outside the top 3: it stays last though it would score best.
        assert_eq!(order(&hits), ["b", "c", "a", "d"]);
        let b = hits[0].rerank.unwrap();
        assert_eq!((b.rank_before, b.score_before), (2, 0.8));
        assert_eq!(b.score, hits[0].score);
        assert!(hits[3].rerank.is_none());
        assert_eq!(r.seen().len(), 3);
        assert!(r.seen()[1].starts_with("b\n"), "{:?}", r.seen());
    }

    #[test]
    fn blending_keeps_some_of_the_fused_order() {
        let r = FakeReranker::default();
        let fresh = || {
            vec![
                hit("a", "x", 1.0),
                hit("b", "query", 0.0),
                hit("c", "y", 0.5),
            ]
        };
        let mut alone = fresh();
        rerank_hits(&r, "query", &mut alone, 3, 1.0, None).unwrap();
        assert_eq!(order(&alone)[0], "b");
        // Mostly the fused score: a stays first.
        let mut mostly_fused = fresh();
        rerank_hits(&r, "query", &mut mostly_fused, 3, 0.3, None).unwrap();
        assert_eq!(order(&mostly_fused), ["a", "c", "b"]);
    }

    #[test]
    fn a_budget_run_out_leaves_the_fused_order() {
        let r = FakeReranker::slow(std::time::Duration::from_millis(20));
        let mut hits = vec![
            hit("a", "x", 0.9),
            hit("b", "query", 0.8),
            hit("c", "query", 0.7),
        ];
        let deadline = Instant::now() + std::time::Duration::from_millis(30);
        assert!(!rerank_hits(&r, "query", &mut hits, 3, 1.0, Some(deadline)).unwrap());
        assert_eq!(order(&hits), ["a", "b", "c"]);
        assert!(hits.iter().all(|h| h.rerank.is_none() && h.score > 0.5));
    }
}
