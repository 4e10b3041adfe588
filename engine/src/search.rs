//! Hybrid retrieval over one or more shards: BM25 ‖ ANN under the same filter, fusion, hydration.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use roaring::RoaringBitmap;
use serde::{Deserialize, Serialize};
use tantivy::collector::{FilterCollector, TopDocs};
use tantivy::query::Bm25StatisticsProvider;
use tantivy::query::{
    BooleanQuery, BoostQuery, ConstScoreQuery, EnableScoring, Occur, Query, TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption, Value};
use tantivy::{DocAddress, Searcher, TantivyDocument, Term};

use crate::attrs::AttrValue;
use crate::embed::{Embedding, check_and_normalise, dot};
use crate::filter::Filter;
use crate::fusion::{Fused, Fusion, fuse};
use crate::schema::english_analyzer;
use crate::shard::{Shard, Snapshot};
use crate::{Error, Result};

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

    fn doc_freq(&self, term: &Term) -> tantivy::Result<u64> {
        self.searcher.doc_freq(term)
    }
}

/// Unique analysed query terms, in order (at most `MAX_QUERY_TERMS`).
fn analyze(query: &str) -> Vec<String> {
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

pub const MAX_K: usize = 1000;
pub const MAX_CANDIDATES: usize = 10_000;
pub const MAX_QUERY_BYTES: usize = 16 * 1024;
const MAX_QUERY_TERMS: usize = 256;
pub const MAX_FACETS: usize = 32;
pub const MAX_FACET_SIZE: usize = 1000;
/// A filter that keeps at most this many chunks is served by an exact scan (recall 1.0).
const EXACT_SCAN_MAX_ROWS: u64 = 10_000;
/// A shard this small is always scanned exactly: as fast as the graph walk, and a graph of a
/// handful of points built by parallel inserts can leave one unreachable.
const EXACT_SCAN_SMALL_SHARD: u64 = 1_000;
const EF_SEARCH_DEFAULT: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Bm25,
    Vector,
    #[default]
    Hybrid,
}

impl std::str::FromStr for Mode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "bm25" => Ok(Mode::Bm25),
            "vector" => Ok(Mode::Vector),
            "hybrid" => Ok(Mode::Hybrid),
            other => Err(Error::invalid(format!(
                "mode `{other}` is not one of bm25, vector, hybrid"
            ))),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub query: String,
    /// The query's embedding; required by vector and hybrid modes.
    pub vector: Option<Embedding>,
    pub mode: Mode,
    pub k: usize,
    /// Candidates taken from each branch before fusion (at least `k`); hybrid mode only.
    pub candidates: usize,
    pub fusion: Fusion,
    pub filter: Option<Filter>,
    /// HNSW beam width.
    pub ef_search: usize,
    /// Extra weight of title matches in BM25 (0 = title and text scored as one field).
    pub title_boost: f32,
    /// Keep only the best chunk of each document (before cutting to `k`).
    pub collapse: bool,
    /// Read each hit's stored payload (title, text, url, heading, char range, attributes). Without
    /// it hits carry ids, ranks and scores only, read from in-memory tables, as Qdrant's
    /// `with_payload: false` or Elasticsearch's `_source: false` (evaluation, id-only callers).
    pub with_payload: bool,
    /// Attribute fields to count values of, over the documents that pass the filter.
    pub facets: Vec<String>,
    /// Values reported per facet (the most frequent first).
    pub facet_size: usize,
}

impl SearchRequest {
    pub fn new(query: impl Into<String>) -> Self {
        SearchRequest {
            query: query.into(),
            vector: None,
            mode: Mode::Hybrid,
            k: 10,
            candidates: 100,
            fusion: Fusion::default(),
            filter: None,
            ef_search: EF_SEARCH_DEFAULT,
            title_boost: 0.0,
            collapse: false,
            with_payload: true,
            facets: Vec::new(),
            facet_size: 10,
        }
    }

    pub fn validate(&self) -> Result<()> {
        self.validate_parameters()?;
        if self.mode != Mode::Bm25 && self.vector.is_none() {
            return Err(Error::invalid(format!(
                "{:?} mode needs a query vector",
                self.mode
            )));
        }
        Ok(())
    }

    /// Everything `validate` checks except the query vector, which only a caller that knows
    /// the domains' model can supply.
    pub fn validate_parameters(&self) -> Result<()> {
        if self.k == 0 || self.k > MAX_K {
            return Err(Error::invalid(format!(
                "k must be 1 to {MAX_K}, got {}",
                self.k
            )));
        }
        if self.candidates > MAX_CANDIDATES {
            return Err(Error::invalid(format!(
                "candidates must be at most {MAX_CANDIDATES}, got {}",
                self.candidates
            )));
        }
        if self.query.len() > MAX_QUERY_BYTES {
            return Err(Error::invalid(format!(
                "query is {} bytes; the limit is {MAX_QUERY_BYTES}",
                self.query.len()
            )));
        }
        if self.mode != Mode::Vector && self.query.trim().is_empty() {
            return Err(Error::invalid("query: the query text is empty"));
        }
        if self.facets.len() > MAX_FACETS
            || self.facet_size == 0
            || self.facet_size > MAX_FACET_SIZE
        {
            return Err(Error::invalid(format!(
                "facets: at most {MAX_FACETS} fields and 1 to {MAX_FACET_SIZE} values each"
            )));
        }
        if !(self.title_boost.is_finite() && self.title_boost >= 0.0) {
            return Err(Error::invalid("title_boost must be a finite number >= 0"));
        }
        self.fusion.validate().map_err(Error::InvalidInput)
    }
}

/// A hit's standing in one branch.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BranchHit {
    pub rank: usize,
    pub score: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    pub domain: String,
    pub doc_id: String,
    pub chunk_id: String,
    pub chunk_idx: u64,
    pub score: f32,
    pub bm25: Option<BranchHit>,
    pub vector: Option<BranchHit>,
    pub title: String,
    pub text: String,
    pub url: Option<String>,
    pub heading: Option<String>,
    pub char_start: u64,
    pub char_end: u64,
    pub attributes: serde_json::Value,
    /// The change-log sequence of the shard state the hit was read from.
    pub index_seq: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SearchResponse {
    pub hits: Vec<Hit>,
    /// Chunks that passed the filter (all live chunks without one), over every shard searched.
    pub filtered_chunks: u64,
    /// Documents that passed the filter, over every shard searched.
    pub filtered_documents: u64,
    /// Per requested facet field, its most frequent values among the documents that passed the
    /// filter (the query text does not narrow them: the vector branch matches every document).
    pub facets: BTreeMap<String, Vec<FacetCount>>,
    pub timings: SearchTimings,
}

/// Where a search spent its time, in microseconds (branches summed over shards; in hybrid mode
/// the two branches run in parallel, so their sum can exceed the wall time).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SearchTimings {
    pub bm25_us: u64,
    pub ann_us: u64,
    pub fuse_us: u64,
    pub hydrate_us: u64,
}

fn micros(since: Instant) -> u64 {
    since.elapsed().as_micros() as u64
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FacetCount {
    pub value: serde_json::Value,
    pub count: u64,
}

/// A candidate's key across shards: shard position, then chunk ordinal (or, when collapsing,
/// the shard's document number).
type Key = (usize, u32);

/// Searches `shards` (already scoped to what the caller may read) and returns the top `k`.
pub fn search(shards: &[&Shard], req: &SearchRequest) -> Result<SearchResponse> {
    req.validate()?;
    search_inner(shards, req, None)
}

/// A query's embedding, computed on demand.
pub type EmbedQuery<'a> = Box<dyn FnOnce() -> Result<Embedding> + Send + 'a>;

/// [`search`] for a request without its query vector: `embed` computes it. In hybrid mode the
/// BM25 branch runs while the query is embedded (the embedding takes longer than either
/// branch), then the vector branch; the hits are those [`search`] returns with the vector given.
pub fn search_embedding(
    shards: &[&Shard],
    req: &SearchRequest,
    embed: EmbedQuery<'_>,
) -> Result<SearchResponse> {
    req.validate_parameters()?;
    if req.vector.is_some() || req.mode == Mode::Bm25 {
        return Err(Error::invalid(
            "search_embedding: a request with its vector, or in bm25 mode, is a plain search",
        ));
    }
    search_inner(shards, req, Some(embed))
}

fn search_inner(
    shards: &[&Shard],
    req: &SearchRequest,
    embed: Option<EmbedQuery<'_>>,
) -> Result<SearchResponse> {
    let snapshots: Vec<Arc<Snapshot>> = shards.iter().map(|s| s.snapshot()).collect();
    let given_vector = match (&req.vector, req.mode) {
        (Some(v), Mode::Vector | Mode::Hybrid) => Some(checked_query_vector(v, &snapshots)?),
        _ => None,
    };
    // Candidates exist for fusion; a single branch only needs the top k.
    let depth = match req.mode {
        Mode::Hybrid => req.candidates.max(req.k),
        Mode::Bm25 | Mode::Vector => req.k,
    };
    // Collapsing keeps one chunk per document, so look deeper to still fill `depth` documents.
    let chunk_depth = if req.collapse {
        depth.saturating_mul(3).min(MAX_CANDIDATES)
    } else {
        depth
    };
    // Document retrieval (collapse) scores BM25 over whole documents: pooling chunk scores by
    // max favours a document's short tail chunk, whose length normalisation inflates its score
    // (SciFact nDCG@10 0.675 chunk-max vs 0.686 whole-document; see ARCHITECTURE.md).
    let level = if req.collapse {
        Level::Document
    } else {
        Level::Chunk
    };
    let terms = if req.mode == Mode::Vector {
        Vec::new()
    } else {
        analyze(&req.query)
    };
    let mut bm25: Vec<(Key, f32)> = Vec::new();
    let mut vector: Vec<(Key, f32)> = Vec::new();
    let mut timings = SearchTimings::default();
    let mut filtered_chunks = 0;
    let mut filtered_documents = 0;
    let mut facet_counts: BTreeMap<String, BTreeMap<AttrValue, u64>> = BTreeMap::new();
    // Per shard: the chunks passing the filter, the counts and facets.
    let mut allowed_of = Vec::with_capacity(snapshots.len());
    for snap in &snapshots {
        let allowed = req
            .filter
            .as_ref()
            .map(|f| Arc::new(f.eval(&snap.attrs, &snap.live)));
        filtered_chunks += allowed.as_ref().map_or(snap.live.len(), |a| a.len());
        filtered_documents += allowed
            .as_ref()
            .map_or(snap.heads.len(), |a| snap.heads.intersection_len(a));
        // The documents passing the filter are only materialised when facets are asked for.
        if !req.facets.is_empty() {
            let passing_heads = match &allowed {
                Some(a) => &snap.heads & a.as_ref(),
                None => snap.heads.clone(),
            };
            for field in &req.facets {
                let counts = facet_counts.entry(field.clone()).or_default();
                for (value, n) in snap.attrs.value_counts(field, &passing_heads) {
                    *counts.entry(value).or_default() += n;
                }
            }
        }
        allowed_of.push(allowed);
    }
    let bm25_branch = |si: usize| {
        if req.mode == Mode::Vector {
            return (Ok(Vec::new()), 0);
        }
        let t = Instant::now();
        let n = if level == Level::Document {
            depth
        } else {
            chunk_depth
        };
        let hits = snapshots[si].bm25(&terms, level, n, req.title_boost, allowed_of[si].as_ref());
        (hits, micros(t))
    };
    let vector_branch = |si: usize, query_vector: &Option<Vec<f32>>| match query_vector {
        Some(q) => {
            let t = Instant::now();
            let hits =
                snapshots[si].vector(q, chunk_depth, req.ef_search, allowed_of[si].as_deref());
            (hits, micros(t))
        }
        None => (Vec::new(), 0),
    };
    let shard_count = snapshots.len();
    let embed_now = |embed: EmbedQuery<'_>| -> Result<Option<Vec<f32>>> {
        Ok(Some(checked_query_vector(&embed()?, &snapshots)?))
    };
    let per_shard: Vec<_> = match (embed, req.mode) {
        // The query embeds while BM25 runs over every shard; then the vector branch.
        (Some(embed), Mode::Hybrid) => {
            let (query_vector, bm25_lists) = rayon::join(
                || embed_now(embed),
                || (0..shard_count).map(bm25_branch).collect::<Vec<_>>(),
            );
            let query_vector = query_vector?;
            bm25_lists
                .into_iter()
                .enumerate()
                .map(|(si, b)| (b, vector_branch(si, &query_vector)))
                .collect()
        }
        (Some(embed), _) => {
            let query_vector = embed_now(embed)?;
            (0..shard_count)
                .map(|si| (bm25_branch(si), vector_branch(si, &query_vector)))
                .collect()
        }
        // The two branches are independent: run them on both cores. A single branch runs here
        // (handing it to the pool would only add a thread wake-up).
        (None, mode) => (0..shard_count)
            .map(|si| match mode {
                Mode::Hybrid => {
                    rayon::join(|| bm25_branch(si), || vector_branch(si, &given_vector))
                }
                Mode::Bm25 => (bm25_branch(si), (Vec::new(), 0)),
                Mode::Vector => ((Ok(Vec::new()), 0), vector_branch(si, &given_vector)),
            })
            .collect(),
    };
    for (si, ((bm25_hits, bm25_us), (vector_hits, ann_us))) in per_shard.into_iter().enumerate() {
        timings.bm25_us += bm25_us;
        timings.ann_us += ann_us;
        bm25.extend(bm25_hits?.into_iter().map(|(o, s)| ((si, o), s)));
        vector.extend(vector_hits.into_iter().map(|(o, s)| ((si, o), s)));
    }
    // With `collapse`, keys become (shard, document number) and each branch remembers the
    // ordinal of the document's best chunk in that branch.
    let t = Instant::now();
    let mut best_chunk: HashMap<Key, [Option<u32>; 2]> = HashMap::new();
    for (branch, list) in [&mut bm25, &mut vector].into_iter().enumerate() {
        list.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        if req.collapse {
            let mut collapsed = Vec::with_capacity(list.len());
            for &((si, ordinal), score) in list.iter() {
                let key = (si, snapshots[si].docs.doc_of[ordinal as usize]);
                let slot = &mut best_chunk.entry(key).or_default()[branch];
                if slot.is_none() {
                    *slot = Some(ordinal);
                    collapsed.push((key, score));
                }
            }
            *list = collapsed;
        }
        list.truncate(depth);
    }
    let fused = fuse(&req.fusion, &bm25, &vector);
    timings.fuse_us = micros(t);
    let t = Instant::now();
    let hits = fused
        .into_iter()
        .take(req.k)
        .map(|f| {
            let (si, id) = f.key;
            // The chunk from the branch where the document ranks higher represents it.
            let [from_bm25, from_vector] = best_chunk.get(&f.key).copied().unwrap_or_default();
            let vector_ranks_higher =
                matches!((f.bm25, f.vector), (Some((rb, _)), Some((rv, _))) if rv < rb);
            let ordinal = match (vector_ranks_higher, from_bm25, from_vector) {
                (true, _, Some(v)) => v,
                // A document-level BM25 hit is represented by its best-scoring chunk.
                (_, Some(b), _) if level == Level::Document => {
                    let name = &snapshots[si].docs.names[id as usize];
                    snapshots[si].best_chunk_of(&terms, name)?.unwrap_or(b)
                }
                (_, Some(b), _) => b,
                (_, None, Some(v)) => v,
                (_, None, None) => id,
            };
            hydrate(&snapshots, shards, (si, ordinal), &f, req.with_payload)
        })
        .collect::<Result<Vec<Hit>>>()?;
    timings.hydrate_us = micros(t);
    Ok(SearchResponse {
        timings,
        hits,
        filtered_chunks,
        filtered_documents,
        facets: facet_counts
            .into_iter()
            .map(|(field, counts)| {
                let mut counts: Vec<(AttrValue, u64)> = counts.into_iter().collect();
                // Most frequent first; ties in value order, so the answer is deterministic.
                counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                counts.truncate(req.facet_size);
                let values = counts
                    .into_iter()
                    .map(|(v, count)| FacetCount {
                        value: v.to_json(),
                        count,
                    })
                    .collect();
                (field, values)
            })
            .collect(),
    })
}

fn checked_query_vector(v: &Embedding, snapshots: &[Arc<Snapshot>]) -> Result<Vec<f32>> {
    let mut values = v.values.clone();
    for snap in snapshots {
        if v.model_id != snap.model.id {
            return Err(Error::ModelMismatch {
                expected: snap.model.id.clone(),
                got: v.model_id.clone(),
            });
        }
    }
    if let Some(snap) = snapshots.first() {
        check_and_normalise(&mut values, snap.model.dim, "query vector")?;
    }
    Ok(values)
}

fn hydrate(
    snapshots: &[Arc<Snapshot>],
    shards: &[&Shard],
    (si, ordinal): Key,
    f: &Fused<Key>,
    with_payload: bool,
) -> Result<Hit> {
    let snap = &snapshots[si];
    let address = *snap.addresses.get(&ordinal).ok_or_else(|| Error::Corrupt {
        path: shards[si].dir().to_path_buf(),
        reason: format!("chunk {ordinal} has no index entry"),
    })?;
    // Ids, ranks and scores come from in-memory tables; the payload from the document store.
    let doc_id = snap.docs.names[snap.docs.doc_of[ordinal as usize] as usize].clone();
    let chunk_idx = snap.chunk_idx_columns[address.segment_ord as usize]
        .first(address.doc_id)
        .unwrap_or(0);
    let mut hit = Hit {
        domain: shards[si].name().to_string(),
        chunk_id: format!("{doc_id}#{chunk_idx}"),
        doc_id,
        chunk_idx,
        score: f.score,
        bm25: f.bm25.map(|(rank, score)| BranchHit { rank, score }),
        vector: f.vector.map(|(rank, score)| BranchHit { rank, score }),
        title: String::new(),
        text: String::new(),
        url: None,
        heading: None,
        char_start: 0,
        char_end: 0,
        attributes: serde_json::Value::Object(Default::default()),
        index_seq: snap.applied_seq,
    };
    if !with_payload {
        return Ok(hit);
    }
    let doc: TantivyDocument = snap.searcher.doc(address)?;
    let fl = snap.fields;
    let text = |field| {
        doc.get_first(field)
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    let num = |field| doc.get_first(field).and_then(|v| v.as_u64()).unwrap_or(0);
    if let Some(bytes) = doc.get_first(fl.attrs).and_then(|v| v.as_bytes()) {
        let attrs: crate::Attributes =
            serde_json::from_slice(bytes).map_err(|e| Error::Corrupt {
                path: shards[si].dir().to_path_buf(),
                reason: format!("attributes of chunk {ordinal}: {e}"),
            })?;
        hit.attributes = serde_json::Value::Object(
            attrs
                .into_iter()
                .map(|(k, vs)| {
                    let v = if vs.len() == 1 {
                        vs[0].to_json()
                    } else {
                        serde_json::Value::Array(vs.iter().map(|v| v.to_json()).collect())
                    };
                    (k, v)
                })
                .collect(),
        );
    }
    hit.title = text(fl.title).unwrap_or_default();
    hit.text = text(fl.text).unwrap_or_default();
    hit.url = text(fl.url);
    hit.heading = text(fl.heading);
    hit.char_start = num(fl.char_start);
    hit.char_end = num(fl.char_end);
    Ok(hit)
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
                query.as_ref(),
                &TopDocs::with_limit(n).order_by_score(),
                &tantivy::Executor::SingleThread,
                scoring,
            )?,
            Some(bitmap) => {
                let bitmap = Arc::clone(bitmap);
                let collector = FilterCollector::new(
                    "ordinal".to_string(),
                    move |o: u64| bitmap.contains(o as u32),
                    TopDocs::with_limit(n).order_by_score(),
                );
                self.searcher.search_with_executor(
                    query.as_ref(),
                    &collector,
                    &tantivy::Executor::SingleThread,
                    scoring,
                )?
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
    fn best_chunk_of(&self, terms: &[String], doc_id: &str) -> Result<Option<u32>> {
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
                self.flat
                    .search(&self.vectors, query, n, ef, &|o| rows.contains(o))
            }
            None if self.live.len() <= EXACT_SCAN_SMALL_SHARD => self.exact(query, n, &self.live),
            None => {
                let live = &self.live;
                self.flat
                    .search(&self.vectors, query, n, ef, &|o| live.contains(o))
            }
        }
    }

    /// Brute force over `rows`: exact top `n`.
    pub(crate) fn exact(&self, query: &[f32], n: usize, rows: &RoaringBitmap) -> Vec<(u32, f32)> {
        // Min-heap of the best n as (score, Reverse(ordinal)) so ties prefer lower ordinals.
        let mut heap: BinaryHeap<Reverse<(OrdF32, Reverse<u32>)>> =
            BinaryHeap::with_capacity(n + 1);
        let mut buf = Vec::with_capacity(query.len());
        for o in rows {
            self.vectors.read(o, &mut buf);
            if buf.len() != query.len() {
                continue;
            }
            let s = dot(query, &buf);
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
