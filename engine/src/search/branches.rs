//! The two branches over one shard's snapshot: BM25 (chunks, or whole documents with
//! document-level statistics) under a filter bitmap, and the vector branch (the graph under the
//! same bitmap, or an exact scan of the rows that pass).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering as AtomicOrdering};
use std::time::Instant;

use roaring::RoaringBitmap;
use tantivy::collector::TopDocs;
use tantivy::query::Bm25StatisticsProvider;
use tantivy::query::{
    BooleanQuery, BoostQuery, ConstScoreQuery, EnableScoring, Occur, Query, TermQuery, Weight,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{DocId, Score, Searcher, SegmentReader, Term};

use super::request::MAX_QUERY_TERMS;
use super::{EXACT_SCAN_MAX_ROWS, EXACT_SCAN_SMALL_SHARD};
use super::{maxscore, micros};
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

/// What BM25 scores with: a disjunction of terms (MaxScore over their postings), or any other
/// query (the title-boosted one) through tantivy's own pruning.
pub(crate) enum Matcher {
    /// The field, its terms, and whether posting blocks' maxima bound its scores.
    Terms(Field, Vec<maxscore::Clause>, bool),
    Query(Box<dyn Weight>),
}

impl Matcher {
    fn new(
        field: Field,
        level: Level,
        terms: &[String],
        title: Option<(Field, f32)>,
        scoring: EnableScoring<'_>,
    ) -> tantivy::Result<Matcher> {
        match title {
            None => Ok(Matcher::Terms(
                field,
                terms
                    .iter()
                    .map(|t| maxscore::Clause::new(Term::from_field_text(field, t), scoring))
                    .collect::<tantivy::Result<_>>()?,
                // At document level the statistics are not the segments' own: see `maxscore`.
                level == Level::Chunk,
            )),
            Some((title, boost)) => {
                let title = BoostQuery::new(any_term(title, terms), boost);
                // Must: the title (on every chunk) only adds to rows that match the searched
                // field.
                let query = BooleanQuery::new(vec![
                    (Occur::Must, any_term(field, terms)),
                    (Occur::Should, Box::new(title)),
                ]);
                query.weight(scoring).map(Matcher::Query)
            }
        }
    }

    fn for_each_pruning(
        &self,
        threshold: Score,
        reader: &SegmentReader,
        callback: &mut dyn FnMut(DocId, Score) -> Score,
    ) -> tantivy::Result<()> {
        match self {
            Matcher::Terms(field, terms, block_max) => {
                maxscore::for_each_pruning(terms, *field, *block_max, reader, threshold, callback)
            }
            Matcher::Query(weight) => weight.for_each_pruning(threshold, reader, callback),
        }
    }
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
        let executor = if self.searcher.segment_readers().len() > 1
            && self.searcher.num_docs() >= PARALLEL_BM25_FROM
        {
            bm25_executor()
        } else {
            &tantivy::Executor::SingleThread
        };
        let title = (title_boost > 0.0).then_some((self.fields.title, title_boost));
        self.bm25_on(executor, terms, title, level, n, allowed)
    }

    /// BM25's top `n` for `terms` (plus `title` matches boosted, when given), the segments
    /// scored by `executor`'s threads (see `Bm25Run`).
    fn bm25_on(
        &self,
        executor: &tantivy::Executor,
        terms: &[String],
        title: Option<(Field, f32)>,
        level: Level,
        n: usize,
        allowed: Option<&Arc<RoaringBitmap>>,
    ) -> Result<Vec<(u32, f32)>> {
        let Some(run) = self.bm25_run(terms, title, level, n, allowed)? else {
            return Ok(Vec::new());
        };
        let workers = match executor {
            tantivy::Executor::SingleThread => 1,
            tantivy::Executor::ThreadPool(pool) => pool.current_num_threads(),
        }
        .min(run.order.len())
        .max(1);
        let tops = executor.map(|_| run.work(), 0..workers)?;
        Ok(run.answer(tops))
    }

    /// Both branches on this shard, on two threads: one scores BM25's segments, the other walks
    /// the graph and then takes BM25's segments not started yet, so neither core idles while
    /// the other branch has work left (the BM25 pool's threads beside the vector branch's
    /// would be three on two cores). Each branch's answer with the microseconds until it was
    /// complete.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn hybrid(
        &self,
        terms: &[String],
        level: Level,
        n: usize,
        title_boost: f32,
        allowed: Option<&Arc<RoaringBitmap>>,
        query: &[f32],
        vector_n: usize,
        ef: usize,
    ) -> (Timed<Result<Ranked>>, Timed<Ranked>) {
        let t = Instant::now();
        // The stages' spans, made in the caller's thread: the BM25 span is entered by both
        // workers and ends when the later one is done with it.
        let bm25_span = tracing::info_span!("bm25");
        let ann_span = tracing::info_span!("ann");
        let title = (title_boost > 0.0).then_some((self.fields.title, title_boost));
        let run = match bm25_span.in_scope(|| self.bm25_run(terms, title, level, n, allowed)) {
            Ok(run) => run,
            Err(e) => return ((Err(e), 0), (Vec::new(), 0)),
        };
        // Each worker's top, and when it finished, if it found a segment left to score (the
        // branch's time is until the last segment is scored, not until the graph walk ends).
        let bm25_work = |span: tracing::Span| {
            span.in_scope(|| {
                run.as_ref().map(|run| {
                    let late = run.next.load(AtomicOrdering::Relaxed) >= run.order.len();
                    (run.work(), (!late).then(Instant::now))
                })
            })
        };
        let other_bm25 = bm25_span.clone();
        // The graph walk goes first: on a pool of one thread that thread then scores every
        // segment, and the other worker finds none left.
        let ((second, (vector, ann_us)), first) = rayon::join(
            move || {
                let v = Instant::now();
                let vector = ann_span
                    .in_scope(|| self.vector(query, vector_n, ef, allowed.map(|a| a.as_ref())));
                drop(ann_span);
                let ann_us = micros(v);
                (bm25_work(other_bm25), (vector, ann_us))
            },
            move || bm25_work(bm25_span),
        );
        let bm25 = match (run, first, second) {
            (Some(run), Some((a, ended_a)), Some((b, ended_b))) => {
                let ended = ended_a.max(ended_b).unwrap_or(t);
                let bm25_us = ended.duration_since(t).as_micros() as u64;
                let tops = a.and_then(|a| b.map(|b| vec![a, b]));
                (
                    tops.map(|tops| run.answer(tops)).map_err(Into::into),
                    bm25_us,
                )
            }
            _ => (Ok(Vec::new()), 0),
        };
        (bm25, (vector, ann_us))
    }

    /// A BM25 query over this snapshot's segments, ready for threads to score (`None` when
    /// nothing can match). At chunk level the field's own statistics; at document level those of
    /// the live documents.
    fn bm25_run<'a>(
        &'a self,
        terms: &[String],
        title: Option<(Field, f32)>,
        level: Level,
        n: usize,
        allowed: Option<&'a Arc<RoaringBitmap>>,
    ) -> Result<Option<Bm25Run<'a>>> {
        if terms.is_empty() || n == 0 || allowed.is_some_and(|a| a.is_empty()) {
            return Ok(None);
        }
        let stats = DocumentStats {
            searcher: &self.searcher,
            documents: self.first_chunks,
        };
        let (field, scoring) = match level {
            Level::Chunk => (
                self.fields.content,
                EnableScoring::enabled_from_searcher(&self.searcher),
            ),
            Level::Document => (
                self.fields.document,
                EnableScoring::enabled_from_statistics_provider(&stats, &self.searcher),
            ),
        };
        let weight = Matcher::new(field, level, terms, title, scoring)?;
        let segments = self.searcher.segment_readers();
        let mut order: Vec<usize> = (0..segments.len()).collect();
        order.sort_by_key(|&s| Reverse(segments[s].max_doc()));
        Ok(Some(Bm25Run {
            snap: self,
            weight,
            order,
            next: AtomicUsize::new(0),
            bound: AtomicU32::new(0),
            n,
            allowed: allowed.map(|a| a.as_ref()),
        }))
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
        let mut top = TopN::new(n);
        for o in rows {
            let Some(row) = self.vectors.row(o) else {
                continue;
            };
            if row.len() != query.len() {
                continue;
            }
            top.push(dot(query, row), o);
        }
        top.into_sorted()
    }
}

/// A branch's answer and the microseconds it took.
pub(crate) type Timed<T> = (T, u64);

/// Rows (ordinals) and their scores, best first.
pub(crate) type Ranked = Vec<(u32, f32)>;

/// One BM25 query over a snapshot's segments, scored by whichever threads call `work`: each
/// takes the next unscored segment (largest first) into its own top `n`, all of them pruning
/// against the best bound any of them has reached. A segment scored after another starts from
/// that bound instead of from nothing, and rows outside `allowed` are skipped without giving up
/// the pruning (tantivy's `FilterCollector` scores every matching row). `answer` is the exact
/// top `n` by (score, then lower ordinal), whatever the threads and however many.
struct Bm25Run<'a> {
    snap: &'a Snapshot,
    weight: Matcher,
    /// Segment ordinals, largest first.
    order: Vec<usize>,
    next: AtomicUsize,
    /// The best bound reached: the score of the worst of some worker's full top `n`, as f32
    /// bits (scores are >= 0, so their bits order as the floats do). No row scoring below it
    /// can be in the answer.
    bound: AtomicU32,
    n: usize,
    allowed: Option<&'a RoaringBitmap>,
}

impl Bm25Run<'_> {
    /// Scores segments until none is left unstarted; this thread's top `n`.
    fn work(&self) -> tantivy::Result<TopN> {
        let segments = self.snap.searcher.segment_readers();
        let mut top = TopN::new(self.n);
        while let Some(&s) = self
            .order
            .get(self.next.fetch_add(1, AtomicOrdering::Relaxed))
        {
            let reader = &segments[s];
            let ordinals = &self.snap.ordinal_columns[s];
            let alive = reader.alive_bitset();
            let floor = |top: &TopN| {
                let shared = f32::from_bits(self.bound.load(AtomicOrdering::Relaxed));
                // Ties are let through: a row scoring the bound exactly wins on its ordinal.
                top.worst().unwrap_or(0.0).max(shared).next_down()
            };
            let start = floor(&top);
            self.weight
                .for_each_pruning(start, reader, &mut |doc, score| {
                    let ordinal = match ordinals.first(doc) {
                        Some(o) if alive.is_none_or(|a| a.is_alive(doc)) => o as u32,
                        _ => return floor(&top),
                    };
                    if self.allowed.is_none_or(|a| a.contains(ordinal))
                        && top.push(score, ordinal)
                        && let Some(worst) = top.worst().filter(|w| *w > 0.0)
                    {
                        self.bound
                            .fetch_max(worst.to_bits(), AtomicOrdering::Relaxed);
                    }
                    floor(&top)
                })?;
        }
        Ok(top)
    }

    /// The workers' tops merged: the best `n` as (ordinal, score), best first.
    fn answer(&self, tops: Vec<TopN>) -> Vec<(u32, f32)> {
        let mut all = TopN::new(self.n);
        for top in tops {
            for (score, ordinal) in top.into_vec() {
                all.push(score, ordinal);
            }
        }
        all.into_sorted()
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

/// The best `n` rows seen as (score, ordinal): higher score first, the lower ordinal on a tie.
struct TopN {
    n: usize,
    /// A min-heap: its top is the worst row kept.
    heap: BinaryHeap<Reverse<(OrdF32, Reverse<u32>)>>,
}

impl TopN {
    fn new(n: usize) -> TopN {
        TopN {
            n,
            heap: BinaryHeap::with_capacity(n + 1),
        }
    }

    /// Keeps the row if it is among the best `n` so far; whether it was kept.
    fn push(&mut self, score: f32, ordinal: u32) -> bool {
        let entry = Reverse((OrdF32(score), Reverse(ordinal)));
        if self.heap.len() < self.n {
            self.heap.push(entry);
            return true;
        }
        match self.heap.peek() {
            // `Reverse` flips the order: a smaller entry is a better row.
            Some(worst) if entry < *worst => {
                self.heap.pop();
                self.heap.push(entry);
                true
            }
            _ => false,
        }
    }

    /// The worst kept score once `n` rows are kept.
    fn worst(&self) -> Option<f32> {
        if self.heap.len() < self.n {
            return None;
        }
        self.heap.peek().map(|Reverse((s, _))| s.0)
    }

    fn into_vec(self) -> Vec<(f32, u32)> {
        self.heap
            .into_iter()
            .map(|Reverse((s, Reverse(o)))| (s.0, o))
            .collect()
    }

    /// As (ordinal, score), best first.
    fn into_sorted(self) -> Vec<(u32, f32)> {
        let mut out: Vec<(u32, f32)> = self.into_vec().into_iter().map(|(s, o)| (o, s)).collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        out
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::embed::{Embedder, FakeEmbedder};
    use crate::search::xorshift;
    use crate::{Chunk, Document, DomainSettings, Shard, WriteBatch, WriteOp};

    fn empty_shard(dir: &std::path::Path, e: &FakeEmbedder) -> Shard {
        Shard::create(&dir.join("kb"), "kb", DomainSettings::new(e.spec().clone())).unwrap()
    }

    fn apply(shard: &Shard, e: &FakeEmbedder, ops: Vec<WriteOp>) {
        shard
            .apply(WriteBatch {
                model_id: e.spec().id.clone(),
                ops,
                seq: None,
            })
            .unwrap();
    }

    /// A document of one chunk, embedded by `e`.
    fn one_chunk(e: &FakeEmbedder, id: String, title: String, text: String) -> WriteOp {
        WriteOp::Upsert(Document {
            id,
            title,
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
    }

    /// Two scores equal up to rounding (summed in another order: rows a rounding apart may
    /// trade places).
    fn near(a: f32, b: f32) -> bool {
        (a - b).abs() <= 1e-5 * b.abs().max(1.0)
    }

    /// Tantivy's `TopDocs` (under a `FilterCollector` when filtered), as (ordinal, score).
    fn tantivy_top(
        snap: &Snapshot,
        query: &dyn Query,
        level: Level,
        n: usize,
        allowed: Option<&Arc<RoaringBitmap>>,
    ) -> Vec<(u32, f32)> {
        use tantivy::collector::FilterCollector;
        let stats = DocumentStats {
            searcher: &snap.searcher,
            documents: snap.first_chunks,
        };
        let scoring = match level {
            Level::Chunk => EnableScoring::enabled_from_searcher(&snap.searcher),
            Level::Document => {
                EnableScoring::enabled_from_statistics_provider(&stats, &snap.searcher)
            }
        };
        let top = match allowed {
            None => snap
                .searcher
                .search_with_executor(
                    query,
                    &TopDocs::with_limit(n).order_by_score(),
                    &tantivy::Executor::SingleThread,
                    scoring,
                )
                .unwrap(),
            Some(bitmap) => {
                let bitmap = Arc::clone(bitmap);
                let collector = FilterCollector::new(
                    "ordinal".to_string(),
                    move |o: u64| bitmap.contains(o as u32),
                    TopDocs::with_limit(n).order_by_score(),
                );
                snap.searcher
                    .search_with_executor(
                        query,
                        &collector,
                        &tantivy::Executor::SingleThread,
                        scoring,
                    )
                    .unwrap()
            }
        };
        top.into_iter()
            .map(|(score, a)| {
                let o = snap.ordinal_columns[a.segment_ord as usize].first(a.doc_id);
                (o.unwrap() as u32, score)
            })
            .collect()
    }

    /// Block-max MaxScore over postings of many blocks (a term in most rows, terms in a few)
    /// finds exactly the rows scoring every matching row finds, for short and long queries,
    /// shallow and deep, at both levels.
    #[test]
    fn maxscore_over_many_blocks_is_exact() {
        let tmp = tempfile::tempdir().unwrap();
        let e = FakeEmbedder::new(8);
        let shard = empty_shard(tmp.path(), &e);
        // Word w is drawn about 1/(w+1) as often as the first: a few in most rows, most rare.
        let vocabulary: Vec<String> = (0..300).map(|w| format!("w{w}x")).collect();
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        let ops = (0..4000)
            .map(|i| {
                let len = 3 + (next() % 40) as usize;
                let text = (0..len)
                    .map(|_| {
                        let u = (next() % 10_000) as f64 / 10_000.0;
                        let w = ((301f64).powf(u) - 1.0) as usize;
                        vocabulary[w.min(299)].as_str()
                    })
                    .collect::<Vec<_>>()
                    .join(" ");
                one_chunk(&e, format!("d{i}"), String::new(), text)
            })
            .collect();
        apply(&shard, &e, ops);
        let snap = shard.snapshot();
        let pool = tantivy::Executor::multi_thread(2, "test-maxscore-").unwrap();
        let queries: [&[usize]; 5] = [
            &[0],
            &[0, 1, 2],
            &[5, 40, 200],
            &[0, 1, 2, 3, 7, 12, 30, 60, 90, 150, 250, 299],
            &[2, 3, 4, 5, 6, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19],
        ];
        for words in queries {
            let terms: Vec<String> = words.iter().map(|&w| vocabulary[w].clone()).collect();
            for level in [Level::Chunk, Level::Document] {
                let field = match level {
                    Level::Chunk => snap.fields.content,
                    Level::Document => snap.fields.document,
                };
                let mut every =
                    tantivy_top(&snap, any_term(field, &terms).as_ref(), level, 10_000, None);
                every.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                let score_of: std::collections::HashMap<u32, f32> = every.iter().copied().collect();
                for n in [1, 10, 100] {
                    for executor in [&tantivy::Executor::SingleThread, &pool] {
                        let hits = snap
                            .bm25_on(executor, &terms, None, level, n, None)
                            .unwrap();
                        assert_eq!(hits.len(), n.min(every.len()), "{words:?} {level:?} {n}");
                        // The best scores there are (none missed), each the row's own score
                        // (summed in another order: rows a rounding apart may trade places).
                        for ((row, score), best) in hits.iter().zip(&every) {
                            assert!(
                                near(*score, best.1),
                                "{words:?} {level:?} top {n}: {score} {best:?}"
                            );
                            assert!(near(*score, score_of[row]), "{words:?} {level:?} row {row}");
                        }
                    }
                }
            }
        }
    }

    /// Rows in runs that differ in length and in which words they repeat, so that posting
    /// blocks differ widely in the most they can score and whole stretches are skipped on block
    /// maxima: the top rows are still exactly the best. (It breaks if block maxima are taken for
    /// less than they are; where a skip must stop is `maxscore`'s own test, on one segment whose
    /// row order is known.)
    #[test]
    fn maxscore_skips_by_block_maxima_exactly() {
        let tmp = tempfile::tempdir().unwrap();
        let e = FakeEmbedder::new(8);
        let shard = empty_shard(tmp.path(), &e);
        let mut random = xorshift(0x2545_f491_4f6c_dd1d);
        let mut next = move |below: u64| random() % below;
        let words: Vec<String> = (0..8).map(|w| format!("k{w}q")).collect();
        let mut ops = Vec::new();
        while ops.len() < 12_000 {
            // A run: its rows' length, and how often and how many times each word appears.
            let run = 200 + next(1200) as usize;
            let filler = if next(2) == 0 {
                next(4) as usize
            } else {
                60 + next(100) as usize
            };
            let profile: Vec<(u64, u64)> = (0..words.len())
                .map(|_| (next(4) * next(34), 1 + next(3) * next(3)))
                .collect();
            for _ in 0..run {
                let mut text = vec!["pad"; filler];
                for (word, &(often, times)) in words.iter().zip(&profile) {
                    if next(100) < often {
                        text.extend(std::iter::repeat_n(word.as_str(), times as usize));
                    }
                }
                let i = ops.len();
                ops.push(one_chunk(
                    &e,
                    format!("d{i}"),
                    String::new(),
                    text.join(" "),
                ));
            }
        }
        apply(&shard, &e, ops);
        let snap = shard.snapshot();
        for q in 0..40 {
            let len = 2 + q % 5;
            let terms: Vec<String> = (0..len).map(|_| words[next(8) as usize].clone()).collect();
            let mut every = tantivy_top(
                &snap,
                any_term(snap.fields.content, &terms).as_ref(),
                Level::Chunk,
                10_000,
                None,
            );
            every.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            for n in [1, 5, 30] {
                let hits = snap
                    .bm25_on(
                        &tantivy::Executor::SingleThread,
                        &terms,
                        None,
                        Level::Chunk,
                        n,
                        None,
                    )
                    .unwrap();
                assert_eq!(hits.len(), n.min(every.len()), "{terms:?} {n}");
                for ((_, score), best) in hits.iter().zip(&every) {
                    assert!(near(*score, best.1), "{terms:?} top {n}: {score} {best:?}");
                }
            }
        }
    }

    /// A term whose postings have run out while another walks on, the walked term's later
    /// blocks too weak to matter: the walk skips them and ends (it once stood still on the
    /// spent term's last block for ever).
    #[test]
    fn maxscore_ends_when_a_term_runs_out_first() {
        let tmp = tempfile::tempdir().unwrap();
        let e = FakeEmbedder::new(8);
        let shard = empty_shard(tmp.path(), &e);
        let filler = |n: usize| vec!["filler"; n].join(" ");
        // Rows 0-2: a rare term in very long rows (weak); 3-130: a short strong block of
        // another; 131-630: that term in long rows (weak blocks); the rest shape the average.
        let text = |i: usize| match i {
            0..3 => format!("rareterm {}", filler(1000)),
            3..131 => "walked".to_string(),
            131..631 => format!("walked {}", filler(100)),
            _ => filler(50),
        };
        let ops = (0..4000)
            .map(|i| {
                let text = text(i);
                one_chunk(&e, format!("d{i}"), String::new(), text)
            })
            .collect();
        apply(&shard, &e, ops);
        let snap = shard.snapshot();
        let terms = analyze("rareterm walked");
        assert_eq!(terms.len(), 2);
        let (tx, rx) = std::sync::mpsc::channel();
        let searched = Arc::clone(&snap);
        let walked = terms.clone();
        std::thread::spawn(move || {
            let hits = searched.bm25_on(
                &tantivy::Executor::SingleThread,
                &walked,
                None,
                Level::Chunk,
                100,
                None,
            );
            let _ = tx.send(hits.unwrap());
        });
        let hits = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the search ends");
        let mut every = tantivy_top(
            &snap,
            any_term(snap.fields.content, &terms).as_ref(),
            Level::Chunk,
            10_000,
            None,
        );
        every.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        every.truncate(100);
        let rows = |h: &[(u32, f32)]| h.iter().map(|h| h.0).collect::<Vec<_>>();
        assert_eq!(rows(&hits), rows(&every));
    }

    /// Segments scored on the pool answer exactly as one after another: the same hits, scores
    /// and order, at both levels and under a filter.
    #[test]
    fn parallel_bm25_answers_as_single_threaded() {
        let tmp = tempfile::tempdir().unwrap();
        let e = FakeEmbedder::new(8);
        let shard = empty_shard(tmp.path(), &e);
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
                    one_chunk(&e, format!("d{commit}-{i}"), format!("Doc {i}"), text)
                })
                .collect();
            apply(&shard, &e, ops);
        }
        // Rows replaced by later versions are deleted in their segments: they must not count.
        let ops = (0..50)
            .step_by(2)
            .map(|i| {
                let text = format!("plain note {i}");
                one_chunk(&e, format!("d1-{i}"), format!("Doc {i}"), text)
            })
            .collect();
        apply(&shard, &e, ops);
        let snap = shard.snapshot();
        assert!(
            snap.searcher
                .segment_readers()
                .iter()
                .any(|r| r.num_deleted_docs() > 0),
            "the replaced rows are deleted"
        );
        assert!(
            snap.searcher.segment_readers().len() > 1,
            "one commit, one segment"
        );
        let pool = tantivy::Executor::multi_thread(2, "test-bm25-").unwrap();
        let one_thread = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
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
                        &terms,
                        None,
                        level,
                        25,
                        filter,
                    )
                    .unwrap();
                let many = snap
                    .bm25_on(&pool, &terms, None, level, 25, filter)
                    .unwrap();
                assert_eq!(one.len(), 25);
                assert_eq!(one, many, "{level:?}, filtered: {}", filter.is_some());
                // Both branches at once (the vector branch's thread joining BM25 when done)
                // answer as each alone.
                let q = e.embed_batch(&["refund days"]).unwrap().remove(0);
                let hybrid = || snap.hybrid(&terms, level, 25, 0.0, filter, &q, 10, 64);
                let ((both, _), (near, _)) = hybrid();
                assert_eq!(both.unwrap(), one, "{level:?}, {}", filter.is_some());
                assert_eq!(near, snap.vector(&q, 10, 64, filter.map(|a| a.as_ref())));
                // On one thread, the one that walked the graph scores every segment.
                let ((both, _), _) = one_thread.install(hybrid);
                assert_eq!(both.unwrap(), one, "{level:?}, {}", filter.is_some());
                // And the exact answer: every matching row by tantivy's own collectors, best
                // first, the lower ordinal on a tie (the fixture has many).
                let mut every = tantivy_top(&snap, query.as_ref(), level, 10_000, filter);
                assert!(every.len() > 25);
                every.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                every.truncate(25);
                let rows = |hits: &[(u32, f32)]| hits.iter().map(|h| h.0).collect::<Vec<_>>();
                assert_eq!(rows(&one), rows(&every), "{level:?}, {}", filter.is_some());
                // The same sums, added in another order.
                for (mine, theirs) in one.iter().zip(&every) {
                    assert!(
                        (mine.1 - theirs.1).abs() <= 1e-5 * theirs.1,
                        "{mine:?} {theirs:?}"
                    );
                }
                if let Some(allowed) = filter {
                    assert!(one.iter().all(|h| allowed.contains(h.0)));
                }
            }
        }
    }
}
