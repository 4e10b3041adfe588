//! The second stage on judged collections: the hybrid ranking's first N documents re-ordered by
//! a reranker through `rerank_hits` (what a search with `rerank` does), by the reranker's score
//! alone or blended with the fused score.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use dartmouth_engine::embed::{MAX_RERANK_TOP_N, Reranker};
use dartmouth_engine::rerank_hits;
use dartmouth_engine::{Embedding, Mode, Shard};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::Error;
use crate::beir::Collection;
use crate::run::{ModeReport, RunConfig, score_runs, search_query};

/// One reranked row: the first `top_n` hybrid documents re-ordered, the cross-encoder's score
/// weighted `blend` against the fused score (1: the cross-encoder alone).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RerankMode {
    pub top_n: usize,
    pub blend: f32,
}

impl RerankMode {
    pub fn new(top_n: usize, blend: f32) -> Result<Self, Error> {
        if top_n == 0 || top_n > MAX_RERANK_TOP_N {
            return Err(Error::Parameter(format!(
                "--rerank {top_n}: 1 to {MAX_RERANK_TOP_N}"
            )));
        }
        if !(blend.is_finite() && (0.0..=1.0).contains(&blend)) {
            return Err(Error::Parameter(format!("--rerank-blend {blend}: 0 to 1")));
        }
        Ok(RerankMode { top_n, blend })
    }

    /// The row's variant: `+ rerank 20`, or `+ rerank 20 (blend 0.5)`.
    pub fn label(&self) -> String {
        if self.blend >= 1.0 {
            format!("+ rerank {}", self.top_n)
        } else {
            format!("+ rerank {} (blend {})", self.top_n, self.blend)
        }
    }
}

/// A reranker that remembers each (query, passage) score: the rows of one query (every N and
/// blend) and the candidates several embedding models share are scored once, and with a memo
/// file ([`CachedReranker::load`], [`CachedReranker::save`]) once across runs. Exact: the
/// cross-encoder scores each pair on its own (the int8 model runs one pair per forward pass).
/// Pairs are keyed by the sha256 of (reranker id, query, passage).
pub struct CachedReranker {
    inner: Arc<dyn Reranker>,
    memo: Mutex<HashMap<[u8; 32], f32>>,
    scored: AtomicUsize,
    reused: AtomicUsize,
    nanos: AtomicU64,
}

/// What a [`CachedReranker`] did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct RerankCounts {
    /// Pairs the reranker scored.
    pub scored: usize,
    /// Pairs answered from the memo.
    pub reused: usize,
    /// Seconds spent in the reranker.
    pub seconds: f64,
}

impl CachedReranker {
    pub fn new(inner: Arc<dyn Reranker>) -> Self {
        CachedReranker {
            inner,
            memo: Mutex::default(),
            scored: AtomicUsize::new(0),
            reused: AtomicUsize::new(0),
            nanos: AtomicU64::new(0),
        }
    }

    fn key(&self, query: &str, passage: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        for part in [self.inner.id(), query, passage] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        h.finalize().into()
    }

    /// Adds the scores a memo file holds (`sha256-hex TAB score` a line); a missing file is an
    /// empty memo. Returns how many it read.
    pub fn load(&self, path: &Path) -> Result<usize, Error> {
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(Error::io(path)(e)),
        };
        let mut read = 0;
        let mut memo = self
            .memo
            .lock()
            .map_err(|_| Error::Parameter("reranker memo poisoned".into()))?;
        for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.map_err(Error::io(path))?;
            let bad = || Error::Bad {
                place: format!("{}:{}", path.display(), i + 1),
                message: "expected a sha256 in hex, a tab and a finite score".into(),
            };
            let (hex, score) = line.split_once('\t').ok_or_else(bad)?;
            let score: f32 = score
                .parse()
                .ok()
                .filter(|s: &f32| s.is_finite())
                .ok_or_else(bad)?;
            if hex.len() != 64 {
                return Err(bad());
            }
            let mut key = [0u8; 32];
            for (b, pair) in key.iter_mut().zip(hex.as_bytes().chunks(2)) {
                let pair = std::str::from_utf8(pair).map_err(|_| bad())?;
                *b = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
            }
            memo.insert(key, score);
            read += 1;
        }
        Ok(read)
    }

    /// Writes every score held to `path` (replaced through a temporary file).
    pub fn save(&self, path: &Path) -> Result<usize, Error> {
        let memo = self
            .memo
            .lock()
            .map_err(|_| Error::Parameter("reranker memo poisoned".into()))?;
        let mut rows: Vec<(&[u8; 32], &f32)> = memo.iter().collect();
        rows.sort_by_key(|(k, _)| **k);
        let mut text = String::with_capacity(rows.len() * 80);
        for (key, score) in &rows {
            for b in key.iter() {
                text.push_str(&format!("{b:02x}"));
            }
            text.push_str(&format!("\t{score}\n"));
        }
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp).map_err(Error::io(&tmp))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(Error::io(&tmp))?;
        std::fs::rename(&tmp, path).map_err(Error::io(path))?;
        Ok(rows.len())
    }

    pub fn counts(&self) -> RerankCounts {
        RerankCounts {
            scored: self.scored.load(Ordering::Relaxed),
            reused: self.reused.load(Ordering::Relaxed),
            seconds: self.nanos.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

impl Reranker for CachedReranker {
    fn id(&self) -> &str {
        self.inner.id()
    }

    fn score(
        &self,
        query: &str,
        passages: &[&str],
        deadline: Option<Instant>,
    ) -> dartmouth_engine::Result<Option<Vec<f32>>> {
        let lookup =
            |p: &str| -> Option<f32> { self.memo.lock().ok()?.get(&self.key(query, p)).copied() };
        let mut missing: Vec<&str> = Vec::new();
        for p in passages {
            if lookup(p).is_none() && !missing.contains(p) {
                missing.push(p);
            }
        }
        if !missing.is_empty() {
            let t = Instant::now();
            let Some(scores) = self.inner.score(query, &missing, deadline)? else {
                return Ok(None);
            };
            self.nanos
                .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
            self.scored.fetch_add(missing.len(), Ordering::Relaxed);
            if let Ok(mut memo) = self.memo.lock() {
                for (p, s) in missing.iter().zip(scores) {
                    memo.insert(self.key(query, p), s);
                }
            }
        }
        self.reused
            .fetch_add(passages.len() - missing.len(), Ordering::Relaxed);
        passages
            .iter()
            .map(|p| {
                lookup(p).ok_or_else(|| {
                    dartmouth_engine::Error::Embedding("reranker memo lost a score".into())
                })
            })
            .collect::<dartmouth_engine::Result<Vec<f32>>>()
            .map(Some)
    }
}

/// Hybrid (the configured fusion) for every query, then each of `modes` applied to a copy of
/// its hits: one row per mode, labelled by [`RerankMode::label`]. The reranker reads each hit's
/// title and text (`rerank_passage`), so the hits are read with their payload; no time budget.
pub fn evaluate_reranked(
    shard: &Shard,
    collection: &Collection,
    query_vectors: Option<&[Embedding]>,
    config: &RunConfig,
    reranker: &dyn Reranker,
    modes: &[RerankMode],
) -> Result<Vec<ModeReport>, Error> {
    let mut runs: Vec<BTreeMap<String, Vec<String>>> = vec![BTreeMap::new(); modes.len()];
    for (i, q) in collection.queries.iter().enumerate() {
        let hits = search_query(
            shard,
            collection,
            query_vectors,
            i,
            Mode::Hybrid,
            config,
            true,
        )?;
        for (mode, run) in modes.iter().zip(runs.iter_mut()) {
            let mut reranked = hits.clone();
            rerank_hits(
                reranker,
                &q.text,
                &mut reranked,
                mode.top_n,
                mode.blend,
                None,
            )?;
            run.insert(
                q.id.clone(),
                reranked.into_iter().map(|h| h.doc_id).collect(),
            );
        }
    }
    Ok(modes
        .iter()
        .zip(runs)
        .map(|(mode, run)| score_runs(collection, Mode::Hybrid, Some(mode.label()), run))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use dartmouth_engine::embed::FakeReranker;

    #[test]
    fn labels_and_limits() {
        assert_eq!(RerankMode::new(20, 1.0).unwrap().label(), "+ rerank 20");
        assert_eq!(
            RerankMode::new(50, 0.5).unwrap().label(),
            "+ rerank 50 (blend 0.5)"
        );
        assert!(RerankMode::new(0, 1.0).is_err());
        assert!(RerankMode::new(MAX_RERANK_TOP_N + 1, 1.0).is_err());
        assert!(RerankMode::new(10, 1.5).is_err());
        assert!(RerankMode::new(10, f32::NAN).is_err());
    }

    #[test]
    fn the_memo_scores_each_pair_once_and_answers_the_same() {
        let fake = Arc::new(FakeReranker::default());
        let cached = CachedReranker::new(fake.clone());
        let first = cached
            .score("blue hoodie", &["a blue hoodie", "red mug"], None)
            .unwrap()
            .unwrap();
        let again = cached
            .score(
                "blue hoodie",
                &["red mug", "a blue hoodie", "blue", "blue"],
                None,
            )
            .unwrap()
            .unwrap();
        assert_eq!(again[0], first[1]);
        assert_eq!(again[1], first[0]);
        assert_eq!(again[2], again[3]);
        // "blue" once, though asked twice; the first two from the memo.
        assert_eq!(fake.seen().len(), 3);
        let c = cached.counts();
        assert_eq!((c.scored, c.reused), (3, 3));
        // Another query is another pair.
        cached.score("mug", &["red mug"], None).unwrap();
        assert_eq!(fake.seen().len(), 4);
        // Saved and loaded, a fresh memo answers without the reranker.
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("memo.tsv");
        assert_eq!(cached.save(&file).unwrap(), 4);
        let fresh_fake = Arc::new(FakeReranker::default());
        let fresh = CachedReranker::new(fresh_fake.clone());
        assert_eq!(fresh.load(&tmp.path().join("none.tsv")).unwrap(), 0);
        assert_eq!(fresh.load(&file).unwrap(), 4);
        let again = fresh
            .score("blue hoodie", &["red mug", "a blue hoodie"], None)
            .unwrap()
            .unwrap();
        assert_eq!(again, vec![first[1], first[0]]);
        assert!(fresh_fake.seen().is_empty());
        std::fs::write(&file, "zz\t1\n").unwrap();
        let e = fresh.load(&file).unwrap_err().to_string();
        assert!(e.contains("memo.tsv:1"), "{e}");
    }
}
