//! Ranking metrics as pure functions, following trec_eval's conventions: nDCG uses the graded
//! relevance as the gain (not 2^rel - 1) and log2(rank + 1) discounts; the ideal ranking is the
//! judged documents sorted by grade; MAP divides by the number of relevant documents.

use std::collections::HashMap;

use serde::Serialize;

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Metrics {
    pub ndcg_at_10: f64,
    pub recall_at_100: f64,
    pub mrr_at_10: f64,
    pub map_at_100: f64,
    pub p_at_10: f64,
}

pub fn ndcg_at(ranked: &[String], judged: &HashMap<String, u32>, k: usize) -> f64 {
    let dcg: f64 = ranked
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, d)| f64::from(*judged.get(d).unwrap_or(&0)) / ((i + 2) as f64).log2())
        .sum();
    let mut ideal: Vec<u32> = judged.values().copied().collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let idcg: f64 = ideal
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, g)| f64::from(*g) / ((i + 2) as f64).log2())
        .sum();
    if idcg == 0.0 { 0.0 } else { dcg / idcg }
}

pub fn recall_at(ranked: &[String], judged: &HashMap<String, u32>, k: usize) -> f64 {
    if judged.is_empty() {
        return 0.0;
    }
    let found = ranked
        .iter()
        .take(k)
        .filter(|d| judged.contains_key(*d))
        .count();
    found as f64 / judged.len() as f64
}

pub fn mrr_at(ranked: &[String], judged: &HashMap<String, u32>, k: usize) -> f64 {
    ranked
        .iter()
        .take(k)
        .position(|d| judged.contains_key(d))
        .map_or(0.0, |i| 1.0 / (i + 1) as f64)
}

pub fn map_at(ranked: &[String], judged: &HashMap<String, u32>, k: usize) -> f64 {
    if judged.is_empty() {
        return 0.0;
    }
    let mut hits = 0;
    let mut sum = 0.0;
    for (i, d) in ranked.iter().take(k).enumerate() {
        if judged.contains_key(d) {
            hits += 1;
            sum += hits as f64 / (i + 1) as f64;
        }
    }
    sum / judged.len() as f64
}

pub fn precision_at(ranked: &[String], judged: &HashMap<String, u32>, k: usize) -> f64 {
    ranked
        .iter()
        .take(k)
        .filter(|d| judged.contains_key(*d))
        .count() as f64
        / k as f64
}

/// All metrics of one query. `ranked` must not repeat a document.
pub fn evaluate_query(ranked: &[String], judged: &HashMap<String, u32>) -> Metrics {
    Metrics {
        ndcg_at_10: ndcg_at(ranked, judged, 10),
        recall_at_100: recall_at(ranked, judged, 100),
        mrr_at_10: mrr_at(ranked, judged, 10),
        map_at_100: map_at(ranked, judged, 100),
        p_at_10: precision_at(ranked, judged, 10),
    }
}

pub fn mean(per_query: &[Metrics]) -> Metrics {
    let n = per_query.len().max(1) as f64;
    let sum = per_query.iter().fold(Metrics::default(), |a, m| Metrics {
        ndcg_at_10: a.ndcg_at_10 + m.ndcg_at_10,
        recall_at_100: a.recall_at_100 + m.recall_at_100,
        mrr_at_10: a.mrr_at_10 + m.mrr_at_10,
        map_at_100: a.map_at_100 + m.map_at_100,
        p_at_10: a.p_at_10 + m.p_at_10,
    });
    Metrics {
        ndcg_at_10: sum.ndcg_at_10 / n,
        recall_at_100: sum.recall_at_100 / n,
        mrr_at_10: sum.mrr_at_10 / n,
        map_at_100: sum.map_at_100 / n,
        p_at_10: sum.p_at_10 / n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranked(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn hand_computed_values() {
        // Relevant: a (grade 2), c (grade 1). Ranking: b, a, c, d.
        let judged: HashMap<String, u32> = [("a".to_string(), 2), ("c".to_string(), 1)].into();
        let r = ranked(&["b", "a", "c", "d"]);
        // DCG = 2/log2(3) + 1/log2(4) = 1.261860 + 0.5; IDCG = 2/1 + 1/log2(3) = 2.630930; 0.669672
        let expected = (2.0 / 3f64.log2() + 0.5) / (2.0 + 1.0 / 3f64.log2());
        assert!((ndcg_at(&r, &judged, 10) - expected).abs() < 1e-12);
        assert!((ndcg_at(&r, &judged, 10) - 0.669_672).abs() < 1e-6);
        assert_eq!(recall_at(&r, &judged, 2), 0.5);
        assert_eq!(recall_at(&r, &judged, 100), 1.0);
        assert_eq!(mrr_at(&r, &judged, 10), 0.5);
        assert_eq!(mrr_at(&r, &judged, 1), 0.0);
        // AP = (1/2 + 2/3) / 2
        assert!((map_at(&r, &judged, 100) - (0.5 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
        assert_eq!(precision_at(&r, &judged, 10), 0.2);
        assert_eq!(ndcg_at(&ranked(&["a", "c"]), &judged, 10), 1.0);
        assert_eq!(ndcg_at(&ranked(&[]), &judged, 10), 0.0);
    }
}
