//! Fusing the BM25 and vector candidate lists into one ranking.

use std::collections::HashMap;
use std::hash::Hash;

use serde::{Deserialize, Serialize};

pub const RRF_K_DEFAULT: f32 = 60.0;

/// How the two branches combine. Chosen per request.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Fusion {
    /// Reciprocal rank fusion: `Σ weight / (k + rank)`, ranks from 1.
    Rrf {
        k: f32,
        bm25_weight: f32,
        vector_weight: f32,
    },
    /// Weighted sum of min-max normalised scores (a branch that missed a hit contributes 0).
    Weighted {
        bm25_weight: f32,
        vector_weight: f32,
    },
}

impl Default for Fusion {
    /// Weighted fusion of min-max normalised scores, vector weight 0.7: what tuning on SciFact's
    /// training split chose (train nDCG@10 0.739; equal weights 0.739, RRF k=60 0.727; test 0.729).
    /// The evidence is `reports/scifact-tuning/report.json`.
    fn default() -> Self {
        Fusion::Weighted {
            bm25_weight: 1.0,
            vector_weight: 0.7,
        }
    }
}

impl Fusion {
    /// Reciprocal rank fusion with k = 60 and equal weights.
    pub fn rrf() -> Self {
        Fusion::Rrf {
            k: RRF_K_DEFAULT,
            bm25_weight: 1.0,
            vector_weight: 1.0,
        }
    }
}

impl Fusion {
    pub(crate) fn validate(&self) -> Result<(), String> {
        let (a, b) = match *self {
            Fusion::Rrf {
                k,
                bm25_weight,
                vector_weight,
            } => {
                if !(k.is_finite() && k >= 0.0) {
                    return Err(format!("rrf k must be a finite number >= 0, got {k}"));
                }
                (bm25_weight, vector_weight)
            }
            Fusion::Weighted {
                bm25_weight,
                vector_weight,
            } => (bm25_weight, vector_weight),
        };
        if !(a.is_finite() && b.is_finite() && a >= 0.0 && b >= 0.0) {
            return Err(format!(
                "fusion weights must be finite and >= 0, got {a} and {b}"
            ));
        }
        Ok(())
    }
}

/// One candidate after fusion: its fused score and where it stood in each branch.
#[derive(Debug, Clone, PartialEq)]
pub struct Fused<K> {
    pub key: K,
    pub score: f32,
    /// (1-based rank, raw score) in the BM25 list.
    pub bm25: Option<(usize, f32)>,
    pub vector: Option<(usize, f32)>,
}

/// Fuses two lists, each sorted best first. The output is sorted by fused score, ties broken by
/// the key's order, so the result is deterministic.
pub fn fuse<K: Copy + Eq + Hash + Ord>(
    fusion: &Fusion,
    bm25: &[(K, f32)],
    vector: &[(K, f32)],
) -> Vec<Fused<K>> {
    let mut by_key: HashMap<K, Fused<K>> = HashMap::with_capacity(bm25.len() + vector.len());
    let (norm_bm25, norm_vec) = (min_max(bm25), min_max(vector));
    for (branch, list) in [(0, bm25), (1, vector)] {
        for (i, &(key, score)) in list.iter().enumerate() {
            let entry = by_key.entry(key).or_insert(Fused {
                key,
                score: 0.0,
                bm25: None,
                vector: None,
            });
            let rank = i + 1;
            let contribution = match *fusion {
                Fusion::Rrf {
                    k,
                    bm25_weight,
                    vector_weight,
                } => {
                    let w = if branch == 0 {
                        bm25_weight
                    } else {
                        vector_weight
                    };
                    w / (k + rank as f32)
                }
                Fusion::Weighted {
                    bm25_weight,
                    vector_weight,
                } => {
                    let (w, (lo, hi)) = if branch == 0 {
                        (bm25_weight, norm_bm25)
                    } else {
                        (vector_weight, norm_vec)
                    };
                    let n = if hi > lo {
                        (score - lo) / (hi - lo)
                    } else {
                        1.0
                    };
                    w * n
                }
            };
            entry.score += contribution;
            if branch == 0 {
                entry.bm25 = Some((rank, score));
            } else {
                entry.vector = Some((rank, score));
            }
        }
    }
    let mut fused: Vec<Fused<K>> = by_key.into_values().collect();
    fused.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.key.cmp(&b.key)));
    fused
}

fn min_max<K>(list: &[(K, f32)]) -> (f32, f32) {
    list.iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), (_, s)| {
            (lo.min(*s), hi.max(*s))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rrf_arithmetic() {
        let bm25 = [(1u32, 9.0), (2, 5.0), (3, 1.0)];
        let vector = [(3u32, 0.9), (1, 0.8)];
        let out = fuse(&Fusion::rrf(), &bm25, &vector);
        let score = |k: u32| out.iter().find(|f| f.key == k).unwrap().score;
        assert!((score(1) - (1.0 / 61.0 + 1.0 / 62.0)).abs() < 1e-7);
        assert!((score(2) - 1.0 / 62.0).abs() < 1e-7);
        assert!((score(3) - (1.0 / 63.0 + 1.0 / 61.0)).abs() < 1e-7);
        assert_eq!(out.iter().map(|f| f.key).collect::<Vec<_>>(), vec![1, 3, 2]);
        let first = &out[0];
        assert_eq!(first.bm25, Some((1, 9.0)));
        assert_eq!(first.vector, Some((2, 0.8)));
    }

    #[test]
    fn weighted_normalises_each_branch() {
        let bm25 = [(1u32, 10.0), (2, 6.0), (3, 2.0)];
        let vector = [(2u32, 0.5), (3, 0.3)];
        let f = Fusion::Weighted {
            bm25_weight: 0.4,
            vector_weight: 0.6,
        };
        let out = fuse(&f, &bm25, &vector);
        let score = |k: u32| out.iter().find(|x| x.key == k).unwrap().score;
        assert!((score(1) - 0.4).abs() < 1e-6);
        assert!((score(2) - (0.4 * 0.5 + 0.6)).abs() < 1e-6);
        assert!((score(3) - 0.0).abs() < 1e-6);
    }

    #[test]
    fn ties_break_on_key() {
        let bm25 = [(7u32, 1.0), (3, 1.0)];
        let vector = [(3u32, 1.0), (7, 1.0)];
        let out = fuse(&Fusion::rrf(), &bm25, &vector);
        assert_eq!(out[0].key, 3);
        assert_eq!(out[1].key, 7);
        assert_eq!(out[0].score, out[1].score);
    }

    #[test]
    fn invalid_parameters_are_refused() {
        assert!(
            Fusion::Rrf {
                k: f32::NAN,
                bm25_weight: 1.0,
                vector_weight: 1.0
            }
            .validate()
            .is_err()
        );
        assert!(
            Fusion::Weighted {
                bm25_weight: -1.0,
                vector_weight: 1.0
            }
            .validate()
            .is_err()
        );
    }
}
