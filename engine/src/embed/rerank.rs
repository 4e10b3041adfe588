//! Rerankers: a second stage that scores (query, passage) pairs together, as a cross-encoder
//! reads both at once. [`CrossEncoder`] is the catalogue's on ONNX Runtime; [`FakeReranker`]
//! (word overlap) is for unit tests.

use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokenizers::{EncodeInput, Encoding};

use crate::search::{Hit, RerankScore};

use super::card::{ModelCard, ModelKind};
use super::onnx::{Forward, OnnxOptions, Runner};
use crate::{Error, Result};

/// Scores passages against a query: higher is more relevant, comparable across passages of any
/// domain for the same reranker.
pub trait Reranker: Send + Sync {
    fn id(&self) -> &str;

    /// One score per passage, in order; `None` when `deadline` passed before every pair was
    /// scored (no pass starts after it).
    fn score(
        &self,
        query: &str,
        passages: &[&str],
        deadline: Option<Instant>,
    ) -> Result<Option<Vec<f32>>>;
}

/// The most candidates one request may rerank.
pub const MAX_RERANK_TOP_N: usize = 100;

/// How a search's best candidates are re-ordered: a request's `rerank`, or a domain's default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RerankSettings {
    /// The reranker (a catalogue id).
    pub model: String,
    /// Candidates re-ordered: the first `top_n` of the fused order (1 to 100).
    pub top_n: usize,
    /// Weight of the cross-encoder's score against the fused score, both min-max normalised
    /// over the candidates: 1 orders by the cross-encoder alone.
    pub blend: f32,
    /// The budget: when it runs out the fused order is returned, flagged.
    pub timeout_ms: u64,
}

impl RerankSettings {
    pub fn validate(&self) -> Result<()> {
        if self.top_n == 0 || self.top_n > MAX_RERANK_TOP_N {
            return Err(Error::invalid(format!(
                "rerank.top_n: 1 to {MAX_RERANK_TOP_N}, got {}",
                self.top_n
            )));
        }
        if !(self.blend.is_finite() && (0.0..=1.0).contains(&self.blend)) {
            return Err(Error::invalid(format!(
                "rerank.blend: 0 to 1, got {}",
                self.blend
            )));
        }
        if self.timeout_ms == 0 || self.timeout_ms > 60_000 {
            return Err(Error::invalid(format!(
                "rerank.timeout_ms: 1 to 60000, got {}",
                self.timeout_ms
            )));
        }
        Ok(())
    }
}

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

/// A cross-encoder of the catalogue (`kind = "reranker"`): the pair is cut to `max_tokens`,
/// the longer side first, and its first logit is the score.
pub struct CrossEncoder {
    card: ModelCard,
    runner: Runner,
}

impl CrossEncoder {
    pub fn load(options: &OnnxOptions) -> Result<Self> {
        if options.card.kind != ModelKind::Reranker {
            return Err(Error::invalid(format!(
                "model `{}` is not a reranker",
                options.card.id
            )));
        }
        let encoder = CrossEncoder {
            card: options.card.clone(),
            runner: Runner::load(options, "logits")?,
        };
        encoder.score("probe", &["a probe passage"], None)?;
        Ok(encoder)
    }

    pub fn card(&self) -> &ModelCard {
        &self.card
    }

    /// The pairs' encodings as `score` makes them.
    pub fn encode_pairs(&self, query: &str, passages: &[&str]) -> Result<Vec<Encoding>> {
        let pairs: Vec<EncodeInput> = passages
            .iter()
            .map(|p| EncodeInput::Dual(query.into(), (*p).into()))
            .collect();
        self.runner
            .tokenizer
            .encode_batch(pairs, true)
            .map_err(|e| Error::Embedding(format!("tokenizer: {e}")))
    }

    /// Scores already encoded pairs (the benchmark's comparison with a bare session).
    pub fn score_encoded(
        &self,
        encodings: &[Encoding],
        deadline: Option<Instant>,
    ) -> Result<Option<Vec<f32>>> {
        let logits = |batch: &[&Encoding], out: Forward| -> Result<Vec<f32>> {
            let width = match out.shape[..] {
                [rows, width] if rows == batch.len() && width >= 1 => width,
                [rows] if rows == batch.len() => 1,
                _ => {
                    return Err(Error::Embedding(format!(
                        "reranker output of shape {:?} for {} pairs",
                        out.shape,
                        batch.len()
                    )));
                }
            };
            let scores: Vec<f32> = (0..batch.len()).map(|r| out.data[r * width]).collect();
            if let Some(bad) = scores.iter().find(|s| !s.is_finite()) {
                return Err(Error::Embedding(format!("reranker score {bad}")));
            }
            Ok(scores)
        };
        self.runner.run(encodings, deadline, &logits)
    }
}

impl Reranker for CrossEncoder {
    fn id(&self) -> &str {
        &self.card.id
    }

    fn score(
        &self,
        query: &str,
        passages: &[&str],
        deadline: Option<Instant>,
    ) -> Result<Option<Vec<f32>>> {
        let encodings = self.encode_pairs(query, passages)?;
        self.score_encoded(&encodings, deadline)
    }
}

/// For tests: the share of the query's words a passage contains, so the order is predictable.
/// It records every passage it was given (so a test can check what never reached it) and can
/// be made slow (so a test can run out a budget).
#[derive(Default)]
pub struct FakeReranker {
    seen: std::sync::Mutex<Vec<String>>,
    delay_per_pair: std::time::Duration,
}

impl FakeReranker {
    /// One that takes `delay` per pair, checking the deadline before each.
    pub fn slow(delay: std::time::Duration) -> Self {
        FakeReranker {
            delay_per_pair: delay,
            ..FakeReranker::default()
        }
    }

    /// Every passage scored so far.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Reranker for FakeReranker {
    fn id(&self) -> &str {
        "fake-overlap"
    }

    fn score(
        &self,
        query: &str,
        passages: &[&str],
        deadline: Option<Instant>,
    ) -> Result<Option<Vec<f32>>> {
        let words = |t: &str| -> std::collections::BTreeSet<String> {
            t.split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .map(str::to_lowercase)
                .collect()
        };
        let q = words(query);
        let mut scores = Vec::with_capacity(passages.len());
        for p in passages {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
            std::thread::sleep(self.delay_per_pair);
            if let Ok(mut seen) = self.seen.lock() {
                seen.push((*p).to_string());
            }
            let p = words(p);
            scores.push(q.intersection(&p).count() as f32 / q.len().max(1) as f32);
        }
        Ok(Some(scores))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn settings_are_checked() {
        let ok = RerankSettings {
            model: "m".into(),
            top_n: 10,
            blend: 1.0,
            timeout_ms: 1000,
        };
        assert!(ok.validate().is_ok());
        for (bad, field) in [
            (
                RerankSettings {
                    top_n: 101,
                    ..ok.clone()
                },
                "top_n",
            ),
            (
                RerankSettings {
                    top_n: 0,
                    ..ok.clone()
                },
                "top_n",
            ),
            (
                RerankSettings {
                    blend: 1.5,
                    ..ok.clone()
                },
                "blend",
            ),
            (
                RerankSettings {
                    timeout_ms: 0,
                    ..ok.clone()
                },
                "timeout_ms",
            ),
        ] {
            let e = bad.validate().unwrap_err().to_string();
            assert!(e.contains(field), "{e}");
        }
    }
}
