//! Rerankers: a second stage that scores (query, passage) pairs together, as a cross-encoder
//! reads both at once. [`CrossEncoder`] is the catalogue's on ONNX Runtime; [`FakeReranker`]
//! (word overlap) is for unit tests.

use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokenizers::{EncodeInput, Encoding};

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
