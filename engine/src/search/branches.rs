//! The two branches over one shard's snapshot: BM25 (chunks, or whole documents with
//! document-level statistics) under a filter bitmap, and the vector branch (the graph under the
//! same bitmap, or an exact scan of the rows that pass).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::sync::Arc;

use roaring::RoaringBitmap;
use tantivy::collector::{FilterCollector, TopDocs};
use tantivy::query::Bm25StatisticsProvider;
use tantivy::query::{
    BooleanQuery, BoostQuery, ConstScoreQuery, EnableScoring, Occur, Query, TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{DocAddress, Searcher, Term};

use super::request::MAX_QUERY_TERMS;
use super::{EXACT_SCAN_MAX_ROWS, EXACT_SCAN_SMALL_SHARD};
use crate::Result;
use crate::embed::dot;
use crate::schema::english_analyzer;
use crate::shard::Snapshot;

/// From this many chunks, a BM25 query scores the shard's segments on several threads: long
/// queries over large shards are where BM25's time goes, and below this the thread hand-off
/// costs more than it saves.
const PARALLEL_BM25_FROM: u64 = 200_000;

/// The threads BM25 segments are scored on (as many as the cores, at most 4); one thread when
/// the pool cannot be made.
fn bm25_executor() -> &'static tantivy::Executor {
    static EXECUTOR: std::sync::OnceLock<tantivy::Executor> = std::sync::OnceLock::new();
    EXECUTOR.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        if threads < 2 {
            return tantivy::Executor::SingleThread;
        }
        tantivy::Executor::multi_thread(threads, "dartmouth-bm25-")
            .unwrap_or(tantivy::Executor::SingleThread)
    })
}

/// What BM25 scores: single chunks, or whole documents (their first chunk's `document` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Chunk,
    Document,
}

/// BM25 statistics for the `document` field, which only first chunks carry: the collection is
/// the live documents, not the chunks, so IDF and average length are those of a document index.
struct DocumentStats<'a> {
    searcher: &'a Searcher,
    documents: u64,
}

impl Bm25StatisticsProvider for DocumentStats<'_> {
    fn total_num_tokens(&self, field: Field) -> tantivy::Result<u64> {
        self.searcher.total_num_tokens(field)
    }

    fn total_num_docs(&self) -> tantivy::Result<u64> {
        Ok(self.documents.max(1))
    }

    /// At most the number of documents: tantivy's count includes deleted rows not merged away
    /// yet (a document updated ten times) and the title field is on every chunk, and a
    /// frequency above the total fails tantivy's IDF assertion.
    fn doc_freq(&self, term: &Term) -> tantivy::Result<u64> {
        Ok(self.searcher.doc_freq(term)?.min(self.documents.max(1)))
    }
}

/// Unique analysed query terms, in order (at most `MAX_QUERY_TERMS`).
pub(super) fn analyze(query: &str) -> Vec<String> {
    thread_local! {
        static ANALYZER: std::cell::RefCell<tantivy::tokenizer::TextAnalyzer> =
            std::cell::RefCell::new(english_analyzer());
    }
    let mut terms: Vec<String> = Vec::new();
    ANALYZER.with_borrow_mut(|analyzer| {
        let mut stream = analyzer.token_stream(query);
        let mut seen = HashSet::new();
        while let Some(token) = stream.next() {
            if terms.len() >= MAX_QUERY_TERMS {
                break;
            }
            if seen.insert(token.text.clone()) {
                terms.push(token.text.clone());
            }
        }
    });
    terms
}

/// Matches any of `terms` in `field`, each scored by BM25.
fn any_term(field: Field, terms: &[String]) -> Box<dyn Query> {
    Box::new(BooleanQuery::new(
        terms
            .iter()
            .map(|t| {
                let q: Box<dyn Query> = Box::new(TermQuery::new(
                    Term::from_field_text(field, t),
                    IndexRecordOption::WithFreqs,
                ));
                (Occur::Should, q)
            })
            .collect(),
    ))
}

impl Snapshot {
    /// BM25 top `n` as (ordinal, score), best first, restricted to `allowed` when given. At
    /// document level, the ordinal is the document's first chunk.
    pub(crate) fn bm25(
        &self,
        terms: &[String],
        level: Level,
        n: usize,
        title_boost: f32,
        allowed: Option<&Arc<RoaringBitmap>>,
    ) -> Result<Vec<(u32, f32)>> {
        if terms.is_empty() || n == 0 {
            return Ok(Vec::new());
        }
        if allowed.is_some_and(|a| a.is_empty()) {
            return Ok(Vec::new());
        }
        let field = match level {
            Level::Chunk => self.fields.content,
            Level::Document => self.fields.document,
        };
        let mut query: Box<dyn Query> = any_term(field, terms);
        if title_boost > 0.0 {
            let title = BoostQuery::new(any_term(self.fields.title, terms), title_boost);
            // Must: the title (on every chunk) only adds to rows that match the searched field.
            query = Box::new(BooleanQuery::new(vec![
                (Occur::Must, query),
                (Occur::Should, Box::new(title)),
            ]));
        }
        let executor = if self.searcher.segment_readers().len() > 1
            && self.searcher.num_docs() >= PARALLEL_BM25_FROM
        {
            bm25_executor()
        } else {
            &tantivy::Executor::SingleThread
        };
        self.bm25_on(executor, query.as_ref(), level, n, allowed)
    }

    /// BM25's top `n` for `query`, its segments scored by `executor`.
    fn bm25_on(
        &self,
        executor: &tantivy::Executor,
        query: &dyn Query,
        level: Level,
        n: usize,
        allowed: Option<&Arc<RoaringBitmap>>,
    ) -> Result<Vec<(u32, f32)>> {
        let stats = DocumentStats {
            searcher: &self.searcher,
            documents: self.first_chunks,
        };
        let scoring = match level {
            Level::Chunk => EnableScoring::enabled_from_searcher(&self.searcher),
            Level::Document => {
                EnableScoring::enabled_from_statistics_provider(&stats, &self.searcher)
            }
        };
        let top: Vec<(f32, DocAddress)> = match allowed {
            None => self.searcher.search_with_executor(
                query,
                &TopDocs::with_limit(n).order_by_score(),
                executor,
                scoring,
            )?,
            Some(bitmap) => {
                let bitmap = Arc::clone(bitmap);
                let collector = FilterCollector::new(
                    "ordinal".to_string(),
                    move |o: u64| bitmap.contains(o as u32),
                    TopDocs::with_limit(n).order_by_score(),
                );
                self.searcher
                    .search_with_executor(query, &collector, executor, scoring)?
            }
        };
        let mut out = Vec::with_capacity(top.len());
        for (score, address) in top {
            if let Some(o) =
                self.ordinal_columns[address.segment_ord as usize].first(address.doc_id)
            {
                out.push((o as u32, score));
            }
        }
        Ok(out)
    }

    /// The chunk of document `doc_id` that scores best for `terms` by chunk-level BM25.
    pub(super) fn best_chunk_of(&self, terms: &[String], doc_id: &str) -> Result<Option<u32>> {
        if terms.is_empty() {
            return Ok(None);
        }
        let only_this = ConstScoreQuery::new(
            Box::new(TermQuery::new(
                Term::from_field_text(self.fields.doc_id, doc_id),
                IndexRecordOption::Basic,
            )),
            0.0,
        );
        let query = BooleanQuery::new(vec![
            (Occur::Must, Box::new(only_this) as Box<dyn Query>),
            (Occur::Must, any_term(self.fields.content, terms)),
        ]);
        let top = self
            .searcher
            .search(&query, &TopDocs::with_limit(1).order_by_score())?;
        Ok(top.first().and_then(|(_, a)| {
            self.ordinal_columns[a.segment_ord as usize]
                .first(a.doc_id)
                .map(|o| o as u32)
        }))
    }

    /// Nearest `n` chunks by cosine similarity among the live (and `allowed`) ones.
    pub(crate) fn vector(
        &self,
        query: &[f32],
        n: usize,
        ef: usize,
        allowed: Option<&RoaringBitmap>,
    ) -> Vec<(u32, f32)> {
        if n == 0 {
            return Vec::new();
        }
        match allowed {
            Some(rows) if rows.len() <= EXACT_SCAN_MAX_ROWS => self.exact(query, n, rows),
            Some(rows) => {
                // Filtered graph walk; widen the beam as the filter gets more selective.
                let share = rows.len() as f64 / self.live.len().max(1) as f64;
                let ef = ((ef as f64 / share.max(0.05)) as usize).min(4096);
                self.graph_walk(query, n, ef, &|o| rows.contains(o))
            }
            None if self.live.len() <= EXACT_SCAN_SMALL_SHARD => self.exact(query, n, &self.live),
            None => {
                let live = &self.live;
                self.graph_walk(query, n, ef, &|o| live.contains(o))
            }
        }
    }

    /// The graph's nearest among the rows it covers, merged with an exact pass over the rows it
    /// does not cover yet (committed since the graph worker last caught up).
    fn graph_walk(
        &self,
        query: &[f32],
        n: usize,
        ef: usize,
        allow: &dyn Fn(u32) -> bool,
    ) -> Vec<(u32, f32)> {
        let rows = self.vectors.rows();
        let upto = self.graph.upto().min(rows);
        let mut hits = self.graph.search(&self.vectors, query, n, ef, upto, allow);
        if upto < rows {
            hits.extend(self.exact_over(query, n, (upto..rows).filter(|&o| allow(o))));
            hits.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            hits.truncate(n);
        }
        hits
    }

    /// Brute force over `rows`: exact top `n`.
    pub(crate) fn exact(&self, query: &[f32], n: usize, rows: &RoaringBitmap) -> Vec<(u32, f32)> {
        self.exact_over(query, n, rows.iter())
    }

    fn exact_over(
        &self,
        query: &[f32],
        n: usize,
        rows: impl Iterator<Item = u32>,
    ) -> Vec<(u32, f32)> {
        // Min-heap of the best n as (score, Reverse(ordinal)) so ties prefer lower ordinals.
        let mut heap: BinaryHeap<Reverse<(OrdF32, Reverse<u32>)>> =
            BinaryHeap::with_capacity(n + 1);
        for o in rows {
            let Some(row) = self.vectors.row(o) else {
                continue;
            };
            if row.len() != query.len() {
                continue;
            }
            let s = dot(query, row);
            heap.push(Reverse((OrdF32(s), Reverse(o))));
            if heap.len() > n {
                heap.pop();
            }
        }
        let mut out: Vec<(u32, f32)> = heap
            .into_iter()
            .map(|Reverse((s, Reverse(o)))| (o, s.0))
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct OrdF32(f32);
impl Eq for OrdF32 {}
impl PartialOrd for OrdF32 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for OrdF32 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::embed::{Embedder, FakeEmbedder};
    use crate::{Chunk, Document, DomainSettings, Shard, WriteBatch, WriteOp};

    /// Segments scored on the pool answer exactly as one after another: the same hits, scores
    /// and order, at both levels and under a filter.
    #[test]
    fn parallel_bm25_answers_as_single_threaded() {
        let tmp = tempfile::tempdir().unwrap();
        let e = FakeEmbedder::new(8);
        let shard = Shard::create(
            &tmp.path().join("kb"),
            "kb",
            DomainSettings::new(e.spec().clone()),
        )
        .unwrap();
        let words = [
            "returns", "refund", "shipping", "warranty", "battery", "parcel", "days",
        ];
        for commit in 0..4 {
            let ops = (0..50)
                .map(|i| {
                    let text = format!(
                        "{} {} {} note {commit} {i}",
                        words[i % 7],
                        words[(i / 7 + commit) % 7],
                        words[(i * 3 + commit) % 7]
                    );
                    WriteOp::Upsert(Document {
                        id: format!("d{commit}-{i}"),
                        title: format!("Doc {i}"),
                        url: None,
                        attributes: BTreeMap::new(),
                        chunks: vec![Chunk {
                            embedding: e.embed_batch(&[text.as_str()]).unwrap().remove(0),
                            char_start: 0,
                            char_end: text.len() as u64,
                            heading: None,
                            text,
                        }],
                    })
                })
                .collect();
            shard
                .apply(WriteBatch {
                    model_id: e.spec().id.clone(),
                    ops,
                    seq: None,
                })
                .unwrap();
        }
        let snap = shard.snapshot();
        assert!(
            snap.searcher.segment_readers().len() > 1,
            "one commit, one segment"
        );
        let pool = tantivy::Executor::multi_thread(2, "test-bm25-").unwrap();
        let terms: Vec<String> = ["refund", "warranty", "days"].map(String::from).to_vec();
        let allowed = Arc::new(
            (0..200u32)
                .filter(|o| o % 3 != 0)
                .collect::<RoaringBitmap>(),
        );
        for level in [Level::Chunk, Level::Document] {
            let field = match level {
                Level::Chunk => snap.fields.content,
                Level::Document => snap.fields.document,
            };
            let query = any_term(field, &terms);
            for filter in [None, Some(&allowed)] {
                let one = snap
                    .bm25_on(
                        &tantivy::Executor::SingleThread,
                        query.as_ref(),
                        level,
                        25,
                        filter,
                    )
                    .unwrap();
                let many = snap
                    .bm25_on(&pool, query.as_ref(), level, 25, filter)
                    .unwrap();
                assert_eq!(one.len(), 25);
                assert_eq!(one, many, "{level:?}, filtered: {}", filter.is_some());
            }
        }
    }
}
