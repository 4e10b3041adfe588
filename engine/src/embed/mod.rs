//! Embedders: the seam between text and vectors.
//!
//! Three implementations: [`OnnxEmbedder`] (the catalogue's local models, `card.rs`, run by ONNX
//! Runtime), [`OpenAiEmbedder`] (any OpenAI-compatible `/v1/embeddings` endpoint) and
//! [`FakeEmbedder`] (deterministic, for unit tests). The second stage, [`Reranker`], is here too:
//! it runs on the same runtime. The only network access in this crate is the OpenAI-compatible
//! provider, and only when a user configures it.

mod card;
mod fake;
mod onnx;
mod openai;
mod rerank;

pub use card::{FilesState, ModelCard, ModelKind, Pooling, model_card, model_cards};
pub use fake::FakeEmbedder;
pub use onnx::{MINILM_MODEL_ID, OnnxEmbedder, OnnxOptions, load_tokenizer, ort_environment};
pub use openai::OpenAiEmbedder;
pub use rerank::{CrossEncoder, FakeReranker, MAX_RERANK_TOP_N, RerankSettings, Reranker};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Which model produced a vector, and its dimension. A shard records one; queries must match it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModelSpec {
    /// The model's id (a catalogue id, `fake-384`, or `openai:<model>`).
    pub id: String,
    /// The vector size.
    pub dim: usize,
}

/// A vector together with the model that produced it, so a mismatch is caught, never searched.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding {
    pub model_id: String,
    pub values: Vec<f32>,
}

/// Turns text into L2-normalised vectors. Implementations are thread-safe and batch internally.
pub trait Embedder: Send + Sync {
    fn spec(&self) -> &ModelSpec;

    /// Embeds a batch of passages; the output has one vector per input, in input order.
    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>>;

    /// Embeds queries (with the model's query prefix, where it has one).
    fn embed_queries(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        self.embed_batch(texts)
    }

    /// Embeds one query.
    fn embed_query(&self, text: &str) -> Result<Embedding> {
        let mut vectors = self.embed_queries(&[text])?;
        let values = vectors
            .pop()
            .ok_or_else(|| Error::Embedding("the model returned no vector".into()))?;
        Ok(Embedding {
            model_id: self.spec().id.clone(),
            values,
        })
    }
}

/// Checks that `values` is a usable vector of `dim` finite numbers and normalises it in place.
/// `place` names where the vector came from, for the error message.
pub(crate) fn check_and_normalise(values: &mut [f32], dim: usize, place: &str) -> Result<()> {
    let norm = check_vector(values, dim, place)?;
    values.iter_mut().for_each(|v| *v /= norm);
    Ok(())
}

/// Checks that `values` is a usable vector of `dim` finite numbers; returns its L2 norm.
pub(crate) fn check_vector(values: &[f32], dim: usize, place: &str) -> Result<f32> {
    if values.len() != dim {
        return Err(Error::DimensionMismatch {
            place: place.to_string(),
            expected: dim,
            got: values.len(),
        });
    }
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(Error::invalid(format!(
            "{place}: component {i} of the vector is not a finite number ({})",
            values[i]
        )));
    }
    let norm = values.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm == 0.0 || !norm.is_finite() {
        return Err(Error::invalid(format!(
            "{place}: the vector is all zeros or too large to normalise"
        )));
    }
    Ok(norm)
}

pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        #[expect(unsafe_code, reason = "calling an AVX2 function after detecting AVX2")]
        // SAFETY: the CPU supports AVX2 and FMA, checked just above.
        return unsafe { dot_avx2(a, b) };
    }
    dot_portable(a, b)
}

/// The dot product of two int8 vectors (the graph's compressed rows).
pub(crate) fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        #[expect(unsafe_code, reason = "calling an AVX2 function after detecting AVX2")]
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { dot_i8_avx2(a, b) };
    }
    dot_i8_portable(a, b)
}

/// Widening multiply-adds the compiler vectorises (`pmaddwd`).
#[inline(always)]
fn dot_i8_portable(a: &[i8], b: &[i8]) -> i32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| i32::from(i16::from(x) * i16::from(y)))
        .sum()
}

/// The same loop compiled for AVX2 (16 lanes per multiply-add).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn dot_i8_avx2(a: &[i8], b: &[i8]) -> i32 {
    dot_i8_portable(a, b)
}

/// Eight independent accumulators let the compiler vectorise the loop with whatever the target has.
#[inline(always)]
fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks_a = a.chunks_exact(8);
    let chunks_b = b.chunks_exact(8);
    let tail: f32 = chunks_a
        .remainder()
        .iter()
        .zip(chunks_b.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (ca, cb) in chunks_a.zip(chunks_b) {
        for i in 0..8 {
            acc[i] += ca[i] * cb[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// The same with AVX2 + FMA: two 8-lane fused multiply-add accumulators (the distance is most
/// of an ANN search; this is what hnswlib's `-march=native` build does).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[expect(unsafe_code, reason = "unaligned SIMD loads from slices")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::{
        __m256, _mm256_add_ps, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_setzero_ps,
        _mm256_storeu_ps,
    };
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc0: __m256 = _mm256_setzero_ps();
    let mut acc1: __m256 = _mm256_setzero_ps();
    let mut i = 0;
    // SAFETY (all loads): i + 16 <= n or i + 8 <= n, so every 8-float load is inside both slices.
    while i + 16 <= n {
        unsafe {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
            acc1 = _mm256_fmadd_ps(
                _mm256_loadu_ps(pa.add(i + 8)),
                _mm256_loadu_ps(pb.add(i + 8)),
                acc1,
            );
        }
        i += 16;
    }
    if i + 8 <= n {
        unsafe {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
        }
        i += 8;
    }
    let mut lanes = [0.0f32; 8];
    // SAFETY: `lanes` holds 8 floats.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), _mm256_add_ps(acc0, acc1)) };
    let mut sum: f32 = lanes.iter().sum();
    for j in i..n {
        sum += a[j] * b[j];
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_rejects_bad_vectors() {
        let mut v = vec![1.0, f32::NAN, 0.0];
        let err = check_and_normalise(&mut v, 3, "query").unwrap_err();
        assert!(err.to_string().contains("component 1"), "{err}");
        let mut v = vec![0.0; 3];
        assert!(check_and_normalise(&mut v, 3, "query").is_err());
        let mut v = vec![1.0; 4];
        let err = check_and_normalise(&mut v, 3, "query").unwrap_err();
        assert!(matches!(
            err,
            Error::DimensionMismatch {
                expected: 3,
                got: 4,
                ..
            }
        ));
        let mut v = vec![3.0, 4.0];
        check_and_normalise(&mut v, 2, "query").unwrap();
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
    }

    #[test]
    fn dot_matches_naive() {
        for n in [0, 1, 7, 8, 15, 16, 19, 24, 33, 384] {
            let a: Vec<f32> = (0..n).map(|i| i as f32 * 0.5).collect();
            let b: Vec<f32> = (0..n).map(|i| 1.0 - i as f32).collect();
            let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            let tolerance = 1e-5 * naive.abs().max(1.0);
            assert!((dot(&a, &b) - naive).abs() <= tolerance, "n {n}");
            assert!((dot_portable(&a, &b) - naive).abs() <= tolerance, "n {n}");
        }
    }
}
