//! A knowledge domain's shard: tantivy + HNSW + bitmaps + manifest, committed as one unit.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use roaring::RoaringBitmap;
use serde::{Deserialize, Serialize};
use tantivy::{
    DocAddress, Index, IndexReader, IndexWriter, ReloadPolicy, Searcher, TantivyDocument, Term,
    directory::MmapDirectory,
};

use crate::ann::{Ann, AnnParams};
use crate::attrs::{AttrIndex, Attributes};
use crate::embed::{ModelSpec, check_and_normalise, check_vector};
use crate::flat::{FlatGraph, RECOPY_ROWS};
use crate::schema::{self, Fields};
use crate::validate::{check_document, check_id};
use crate::vectors::{VectorFile, VectorView};
use crate::{Error, Result};

const FORMAT_VERSION: u32 = 2;
const MANIFEST: &str = "manifest.json";
const GRAPH_META: &str = "graph.json";
/// Vectors appended since the last graph checkpoint that trigger a new one at commit.
const CHECKPOINT_EVERY: u32 = 20_000;
/// A checkpoint rebuilds the graph when this share of its points are deleted chunks.
const REBUILD_DEAD_SHARE: f64 = 0.25;

/// Per-domain settings fixed at creation: the model its vectors come from and how text is chunked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainSettings {
    pub model: ModelSpec,
    /// Token budget of a chunk.
    pub chunk_tokens: usize,
    /// Tokens shared by consecutive chunks.
    pub chunk_overlap: usize,
    /// The BM25 analyzer (only "english" today).
    pub language: String,
}

impl DomainSettings {
    pub fn new(model: ModelSpec) -> Self {
        DomainSettings {
            model,
            chunk_tokens: 256,
            chunk_overlap: 32,
            language: "english".into(),
        }
    }

    pub fn validate(&self) -> Result<()> {
        if self.model.dim == 0 || self.model.dim > 8192 {
            return Err(Error::invalid(format!(
                "model dimension must be 1 to 8192, got {}",
                self.model.dim
            )));
        }
        if self.chunk_tokens < 16 || self.chunk_overlap >= self.chunk_tokens {
            return Err(Error::invalid(format!(
                "chunking needs chunk_tokens >= 16 and chunk_overlap < chunk_tokens, got {} and {}",
                self.chunk_tokens, self.chunk_overlap
            )));
        }
        if self.language != "english" {
            return Err(Error::invalid(format!(
                "language `{}` is not supported (only english)",
                self.language
            )));
        }
        Ok(())
    }
}

/// What `manifest.json` holds, plus the applied sequence read from the last commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub domain: String,
    /// Which incarnation of the domain this shard was built for (the store's domain uid):
    /// a domain deleted and created again under the same name must not meet the old shard.
    /// `None` for shards made without a store (evaluation, benchmarks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    pub settings: DomainSettings,
    /// Last change-log sequence applied (recorded inside the tantivy commit, not in the file).
    #[serde(skip)]
    pub applied_seq: u64,
}

/// A document ready for the index: chunked and embedded by the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub id: String,
    pub title: String,
    pub url: Option<String>,
    pub attributes: Attributes,
    pub chunks: Vec<Chunk>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    pub text: String,
    /// Character range of the chunk in the source text, for citations.
    pub char_start: u64,
    pub char_end: u64,
    /// The heading path the chunk sits under (`Returns > Sale items`), if any.
    pub heading: Option<String>,
    pub embedding: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum WriteOp {
    /// Replaces every chunk of the document.
    Upsert(Document),
    Delete(String),
}

/// Operations applied in order, atomically. `seq` is the change-log sequence they come from:
/// a batch whose `seq` is not above the shard's applied sequence is skipped (idempotent replay).
#[derive(Debug, Clone, PartialEq)]
pub struct WriteBatch {
    pub model_id: String,
    pub ops: Vec<WriteOp>,
    pub seq: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CommitInfo {
    pub applied_seq: u64,
    pub upserted: usize,
    pub deleted: usize,
    pub chunks: usize,
    /// True when the batch's sequence had been applied already and nothing was done.
    pub skipped: bool,
    pub timings: ApplyTimings,
}

/// Where an apply spent its time, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ApplyTimings {
    /// Checking and normalising the batch.
    pub validate_us: u64,
    /// Appending and syncing the vector rows.
    pub vectors_us: u64,
    /// tantivy: adding the chunk documents and committing (the BM25 index).
    pub index_us: u64,
    /// Inserting the new vectors into the HNSW graph.
    pub graph_us: u64,
    /// Reloading the searcher and publishing the new snapshot.
    pub publish_us: u64,
}

fn micros(since: std::time::Instant) -> u64 {
    since.elapsed().as_micros() as u64
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShardStats {
    pub domain: String,
    pub documents: u64,
    pub chunks: u64,
    pub graph_points: u64,
    pub applied_seq: u64,
    pub model: ModelSpec,
}

#[derive(Serialize, Deserialize)]
struct CommitPayload {
    next_ordinal: u32,
    applied_seq: u64,
}

#[derive(Serialize, Deserialize)]
struct GraphMeta {
    basename: String,
    rows: u32,
}

/// Per-ordinal document numbers and the document names they stand for. Ordinals are never
/// reused, so this only grows; rebuilt on open from the index.
#[derive(Clone, Default)]
pub(crate) struct DocTable {
    pub doc_of: Vec<u32>,
    pub names: Vec<String>,
    by_name: HashMap<String, u32>,
}

impl DocTable {
    fn push(&mut self, ordinal: u32, name: &str) {
        let num = match self.by_name.get(name) {
            Some(n) => *n,
            None => {
                let n = self.names.len() as u32;
                self.names.push(name.to_string());
                self.by_name.insert(name.to_string(), n);
                n
            }
        };
        let ordinal = ordinal as usize;
        if self.doc_of.len() <= ordinal {
            self.doc_of.resize(ordinal + 1, u32::MAX);
        }
        self.doc_of[ordinal] = num;
    }
}

/// An immutable view for searching: every field agrees with one tantivy commit.
pub(crate) struct Snapshot {
    pub searcher: Searcher,
    pub fields: Fields,
    pub live: RoaringBitmap,
    /// Ordinals of live documents' first chunks (one per document: facets count these).
    pub heads: RoaringBitmap,
    /// Live documents (= live chunks with chunk_idx 0).
    pub documents: u64,
    /// First chunks including deleted ones not yet merged away: the document count that goes with
    /// tantivy's document frequencies, which also include them (as tantivy's own `max_doc` does).
    pub first_chunks: u64,
    /// ordinal -> (segment ord, doc id) for live chunks.
    pub addresses: HashMap<u32, DocAddress>,
    /// Each segment's `ordinal` column, opened once per snapshot rather than per hit.
    pub ordinal_columns: Vec<tantivy::columnar::Column<u64>>,
    /// Each segment's `chunk_idx` column (hits without payload read nothing else).
    pub chunk_idx_columns: Vec<tantivy::columnar::Column<u64>>,
    pub docs: Arc<DocTable>,
    pub attrs: Arc<AttrIndex>,
    pub vectors: VectorView,
    pub ann: Arc<Ann>,
    /// The copy of `ann` that searches walk (see `flat.rs`).
    pub flat: Arc<FlatGraph>,
    pub applied_seq: u64,
    pub model: ModelSpec,
}

struct WriterState {
    index_writer: IndexWriter,
    vectors: VectorFile,
    docs: Arc<DocTable>,
    attrs: Arc<AttrIndex>,
    ann: Arc<Ann>,
    /// The searched copy of `ann` and the graph it was copied from.
    flat: Arc<FlatGraph>,
    flat_of: Arc<Ann>,
    applied_seq: u64,
    graph_rows: u32,
}

impl WriterState {
    /// Re-copies the graph for search when it was rebuilt or has grown by `RECOPY_ROWS` rows.
    fn refresh_flat(&mut self) {
        let rows = self.vectors.rows();
        if !Arc::ptr_eq(&self.flat_of, &self.ann)
            || rows.saturating_sub(self.flat.upto) > RECOPY_ROWS
        {
            self.flat = Arc::new(FlatGraph::copy(&self.ann, rows));
            self.flat_of = Arc::clone(&self.ann);
        }
    }
}

pub struct Shard {
    name: String,
    dir: PathBuf,
    manifest: Manifest,
    fields: Fields,
    reader: IndexReader,
    writer: Mutex<WriterState>,
    snapshot: RwLock<Arc<Snapshot>>,
    /// Set (under the writer lock) when the catalog removes or replaces this shard's files:
    /// writes that still hold the shard are refused instead of writing into a removed
    /// directory. Searches go on over what they hold.
    retired: std::sync::atomic::AtomicBool,
}

impl Shard {
    /// Creates an empty shard in `dir` (which must not exist yet).
    pub fn create(dir: &Path, name: &str, settings: DomainSettings) -> Result<Shard> {
        Shard::create_identified(dir, name, settings, None)
    }

    /// Creates an empty shard that records the identity of the domain it serves.
    pub fn create_identified(
        dir: &Path,
        name: &str,
        settings: DomainSettings,
        identity: Option<&str>,
    ) -> Result<Shard> {
        settings.validate()?;
        if dir.exists() {
            return Err(Error::DomainExists(name.to_string()));
        }
        // Build in a sibling directory and rename, so a crash never leaves half a shard.
        let tmp = dir.with_extension("creating");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(Error::io(&tmp))?;
        }
        std::fs::create_dir_all(tmp.join("bm25")).map_err(Error::io(&tmp))?;
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            domain: name.to_string(),
            identity: identity.map(str::to_string),
            settings,
            applied_seq: 0,
        };
        write_json_atomic(&tmp.join(MANIFEST), &manifest)?;
        let (schema, _) = schema::build();
        let directory = MmapDirectory::open(tmp.join("bm25")).map_err(|e| Error::Corrupt {
            path: tmp.join("bm25"),
            reason: e.to_string(),
        })?;
        let index = Index::create(directory, schema, tantivy::IndexSettings::default())?;
        drop(index);
        std::fs::rename(&tmp, dir).map_err(Error::io(dir))?;
        Shard::open(dir, name)
    }

    /// Opens a shard; replays what the last commit covers and drops what it does not.
    pub fn open(dir: &Path, name: &str) -> Result<Shard> {
        let manifest_path = dir.join(MANIFEST);
        let raw = std::fs::read(&manifest_path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::DomainNotFound(name.to_string())
            } else {
                Error::io(&manifest_path)(e)
            }
        })?;
        let mut manifest: Manifest = serde_json::from_slice(&raw).map_err(|e| Error::Corrupt {
            path: manifest_path.clone(),
            reason: e.to_string(),
        })?;
        if manifest.format_version != FORMAT_VERSION {
            return Err(Error::Corrupt {
                path: manifest_path,
                reason: format!(
                    "format version {} is not supported",
                    manifest.format_version
                ),
            });
        }
        let bm25_dir = dir.join("bm25");
        let directory = MmapDirectory::open(&bm25_dir).map_err(|e| Error::Corrupt {
            path: bm25_dir.clone(),
            reason: e.to_string(),
        })?;
        let index = Index::open(directory)?;
        index
            .tokenizers()
            .register(schema::ANALYZER, schema::english_analyzer());
        let fields = schema::fields_of(&index.schema())?;
        let payload: CommitPayload = match index.load_metas()?.payload {
            Some(p) => serde_json::from_str(&p).map_err(|e| Error::Corrupt {
                path: bm25_dir.clone(),
                reason: format!("commit payload: {e}"),
            })?,
            None => CommitPayload {
                next_ordinal: 0,
                applied_seq: 0,
            },
        };
        manifest.applied_seq = payload.applied_seq;
        let dim = manifest.settings.model.dim;
        let vectors = VectorFile::open(&dir.join("vectors.f32"), dim, payload.next_ordinal)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let searcher = reader.searcher();

        // Rebuild the document table and the attribute bitmaps from the index's fast fields.
        let mut docs = DocTable::default();
        let mut attrs = AttrIndex::default();
        let mut live = RoaringBitmap::new();
        let mut name_buf = String::new();
        let mut bytes_buf = Vec::new();
        for segment in searcher.segment_readers() {
            let ff = segment.fast_fields();
            let ordinals = ff.u64("ordinal")?;
            let doc_ids = ff.str("doc_id")?.ok_or_else(|| Error::Corrupt {
                path: bm25_dir.clone(),
                reason: "doc_id column missing".into(),
            })?;
            let attr_col = ff.bytes("attrs")?;
            for doc in segment.doc_ids_alive() {
                let Some(ordinal) = ordinals.first(doc) else {
                    continue;
                };
                let ordinal = ordinal as u32;
                live.insert(ordinal);
                name_buf.clear();
                if let Some(ord) = doc_ids.term_ords(doc).next() {
                    doc_ids
                        .ord_to_str(ord, &mut name_buf)
                        .map_err(Error::io(&bm25_dir))?;
                }
                docs.push(ordinal, &name_buf);
                if let Some(col) = &attr_col
                    && let Some(ord) = col.term_ords(doc).next()
                {
                    bytes_buf.clear();
                    col.ord_to_bytes(ord, &mut bytes_buf)
                        .map_err(Error::io(&bm25_dir))?;
                    let a: Attributes =
                        serde_json::from_slice(&bytes_buf).map_err(|e| Error::Corrupt {
                            path: bm25_dir.clone(),
                            reason: format!("attributes of chunk {ordinal}: {e}"),
                        })?;
                    attrs.add(ordinal, &a);
                }
            }
        }
        drop(searcher);

        let view = vectors.view()?;
        let (ann, graph_rows) = load_graph(dir, &view, &live);
        let index_writer = index.writer_with_num_threads(2, 128 * 1024 * 1024)?;
        // A process killed mid-commit leaves files no commit refers to (a `.del` file, say);
        // the next writer would reuse their names and fail. Remove them before any write.
        index_writer.garbage_collect_files().wait()?;
        let ann = Arc::new(ann);
        let mut writer = WriterState {
            index_writer,
            vectors,
            docs: Arc::new(docs),
            attrs: Arc::new(attrs),
            flat: Arc::new(FlatGraph::copy(&ann, 0)),
            flat_of: Arc::clone(&ann),
            ann,
            applied_seq: payload.applied_seq,
            graph_rows,
        };
        writer.flat = Arc::new(FlatGraph::copy(&writer.ann, writer.vectors.rows()));
        let snapshot = build_snapshot(&reader, fields, &writer, &manifest.settings.model)?;
        Ok(Shard {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            fields,
            reader,
            snapshot: RwLock::new(Arc::new(snapshot)),
            writer: Mutex::new(writer),
            manifest,
            retired: std::sync::atomic::AtomicBool::new(false),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The changelog sequence the shard has applied up to.
    pub fn applied_seq(&self) -> u64 {
        self.snapshot().applied_seq
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn manifest(&self) -> Manifest {
        let mut m = self.manifest.clone();
        m.applied_seq = self.snapshot().applied_seq;
        m
    }

    /// The identity of the domain this shard was built for (see [`Manifest::identity`]).
    pub fn identity(&self) -> Option<&str> {
        self.manifest.identity.as_deref()
    }

    pub fn settings(&self) -> &DomainSettings {
        &self.manifest.settings
    }

    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        match self.snapshot.read() {
            Ok(s) => Arc::clone(&s),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    pub fn stats(&self) -> ShardStats {
        let snap = self.snapshot();
        ShardStats {
            domain: self.name.clone(),
            documents: snap.documents,
            chunks: snap.live.len(),
            graph_points: snap.ann.len() as u64,
            applied_seq: snap.applied_seq,
            model: self.manifest.settings.model.clone(),
        }
    }

    fn lock_writer(&self) -> Result<std::sync::MutexGuard<'_, WriterState>> {
        let w = self.writer.lock().map_err(|_| Error::Corrupt {
            path: self.dir.clone(),
            reason: "a previous write panicked; reopen the shard".into(),
        })?;
        if self.is_retired() {
            return Err(Error::DomainNotFound(self.name.clone()));
        }
        Ok(w)
    }

    /// Refuses every later write: the catalog is about to remove or replace the files. Waits
    /// for a write in progress to finish first.
    pub(crate) fn retire(&self) {
        let _w = self.writer.lock();
        self.retired
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Whether the catalog has removed or replaced this shard (a write gets `DomainNotFound`:
    /// look the domain's shard up again).
    pub fn is_retired(&self) -> bool {
        self.retired.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Applies a batch atomically: validated first, then vectors appended, then one tantivy
    /// commit that also records the sequence. On any failure the shard is as it was.
    pub fn apply(&self, batch: WriteBatch) -> Result<CommitInfo> {
        self.apply_inner(batch, true)
    }

    /// Applies a batch without moving the applied sequence (`batch.seq` is ignored): for
    /// rebuilding a shard from a store snapshot, whose sequence a last, sequenced batch records.
    pub fn apply_unsequenced(&self, mut batch: WriteBatch) -> Result<CommitInfo> {
        batch.seq = None;
        self.apply_inner(batch, false)
    }

    fn apply_inner(&self, batch: WriteBatch, advance: bool) -> Result<CommitInfo> {
        let mut w = self.lock_writer()?;
        if let Some(seq) = batch.seq
            && seq <= w.applied_seq
        {
            return Ok(CommitInfo {
                applied_seq: w.applied_seq,
                upserted: 0,
                deleted: 0,
                chunks: 0,
                skipped: true,
                timings: ApplyTimings::default(),
            });
        }
        let mut timings = ApplyTimings::default();
        let t = std::time::Instant::now();
        let ops = self.validate(batch.ops, &batch.model_id)?;
        timings.validate_us = micros(t);
        let new_seq = match (advance, batch.seq) {
            (false, _) => w.applied_seq,
            (true, Some(seq)) => seq,
            (true, None) => w.applied_seq + 1,
        };
        let first_ordinal = w.vectors.rows();
        let vectors: Vec<&[f32]> = ops
            .iter()
            .filter_map(|op| match op {
                WriteOp::Upsert(d) => Some(d.chunks.iter().map(|c| c.embedding.as_slice())),
                WriteOp::Delete(_) => None,
            })
            .flatten()
            .collect();
        let total_chunks = vectors.len();
        if first_ordinal as usize + total_chunks >= u32::MAX as usize {
            return Err(Error::invalid("the shard is full (2^32 chunks)"));
        }
        let t = std::time::Instant::now();
        w.vectors.append(&vectors)?;
        drop(vectors);
        timings.vectors_us = micros(t);
        let t = std::time::Instant::now();

        let f = self.fields;
        let mut ordinal = first_ordinal;
        let mut new_rows: Vec<(u32, &[f32])> = Vec::with_capacity(total_chunks);
        let mut upserted = 0;
        let mut deleted = 0;
        let outcome = (|| -> Result<()> {
            for op in &ops {
                match op {
                    WriteOp::Delete(id) => {
                        w.index_writer
                            .delete_term(Term::from_field_text(f.doc_id, id));
                        deleted += 1;
                    }
                    WriteOp::Upsert(doc) => {
                        w.index_writer
                            .delete_term(Term::from_field_text(f.doc_id, &doc.id));
                        let attrs_json = if doc.attributes.is_empty() {
                            None
                        } else {
                            Some(serde_json::to_vec(&doc.attributes).map_err(|e| {
                                Error::invalid(format!("document `{}`: {e}", doc.id))
                            })?)
                        };
                        for (i, chunk) in doc.chunks.iter().enumerate() {
                            let mut t = TantivyDocument::default();
                            t.add_u64(f.ordinal, u64::from(ordinal));
                            t.add_text(f.doc_id, &doc.id);
                            t.add_u64(f.chunk_idx, i as u64);
                            t.add_text(f.content, &doc.title);
                            t.add_text(f.content, &chunk.text);
                            t.add_text(f.title, &doc.title);
                            t.add_text(f.text, &chunk.text);
                            if i == 0 {
                                t.add_text(f.document, &doc.title);
                                t.add_text(f.document, document_text(&doc.chunks));
                            }
                            if let Some(url) = &doc.url {
                                t.add_text(f.url, url);
                            }
                            if let Some(h) = &chunk.heading {
                                t.add_text(f.heading, h);
                            }
                            t.add_u64(f.char_start, chunk.char_start);
                            t.add_u64(f.char_end, chunk.char_end);
                            if let Some(a) = &attrs_json {
                                t.add_bytes(f.attrs, a.as_slice());
                            }
                            w.index_writer.add_document(t)?;
                            new_rows.push((ordinal, chunk.embedding.as_slice()));
                            ordinal += 1;
                        }
                        upserted += 1;
                    }
                }
            }
            let mut prepared = w.index_writer.prepare_commit()?;
            let payload = serde_json::to_string(&CommitPayload {
                next_ordinal: ordinal,
                applied_seq: new_seq,
            })
            .map_err(|e| Error::invalid(e.to_string()))?;
            prepared.set_payload(&payload);
            prepared.commit()?;
            Ok(())
        })();
        if let Err(e) = outcome {
            // Nothing of the batch may survive: drop buffered index operations and the vectors.
            let _ = w.index_writer.rollback();
            w.vectors.truncate(first_ordinal)?;
            return Err(e);
        }
        w.applied_seq = new_seq;
        timings.index_us = micros(t);

        // The commit is durable; now bring the in-memory views up to date.
        {
            let state = &mut *w;
            let docs = Arc::make_mut(&mut state.docs);
            let attrs = Arc::make_mut(&mut state.attrs);
            let mut ordinal = first_ordinal;
            for op in &ops {
                if let WriteOp::Upsert(doc) = op {
                    for _ in &doc.chunks {
                        docs.push(ordinal, &doc.id);
                        if !doc.attributes.is_empty() {
                            attrs.add(ordinal, &doc.attributes);
                        }
                        ordinal += 1;
                    }
                }
            }
        }
        let rows: Vec<(&[f32], usize)> = new_rows.iter().map(|(o, v)| (*v, *o as usize)).collect();
        let t = std::time::Instant::now();
        w.ann.insert(&rows);
        timings.graph_us = micros(t);
        let t = std::time::Instant::now();
        self.reader.reload()?;
        self.publish(&mut w)?;
        timings.publish_us = micros(t);
        if w.vectors.rows() - w.graph_rows >= CHECKPOINT_EVERY {
            self.checkpoint_locked(&mut w)?;
        }
        Ok(CommitInfo {
            applied_seq: new_seq,
            upserted,
            deleted,
            chunks: total_chunks,
            skipped: false,
            timings,
        })
    }

    /// Why [`Shard::apply`] would refuse this operation, or `None` when it would take it. The
    /// applier asks before it applies what the store committed, so that one document the shard
    /// refuses is quarantined instead of stopping every change after it.
    pub fn refusal(&self, op: &WriteOp) -> Option<String> {
        match op {
            WriteOp::Delete(id) => check_id(id).err().map(|e| e.to_string()),
            WriteOp::Upsert(doc) => {
                if let Err(e) = check_document(doc) {
                    return Some(e.to_string());
                }
                let dim = self.manifest.settings.model.dim;
                doc.chunks.iter().enumerate().find_map(|(i, c)| {
                    check_vector(&c.embedding, dim, &format!("chunks[{i}].embedding"))
                        .err()
                        .map(|e| e.to_string())
                })
            }
        }
    }

    /// Validates and normalises every operation before anything is written.
    fn validate(&self, ops: Vec<WriteOp>, model_id: &str) -> Result<Vec<WriteOp>> {
        let model = &self.manifest.settings.model;
        if model_id != model.id {
            return Err(Error::ModelMismatch {
                expected: model.id.clone(),
                got: model_id.to_string(),
            });
        }
        let mut out = Vec::with_capacity(ops.len());
        for (n, mut op) in ops.into_iter().enumerate() {
            match &mut op {
                WriteOp::Delete(id) => check_id(id)
                    .map_err(|e| Error::invalid(format!("operation {n} (delete): {e}")))?,
                WriteOp::Upsert(doc) => {
                    let place = format!("operation {n} (document `{}`)", truncate(&doc.id, 64));
                    check_document(doc).map_err(|e| Error::invalid(format!("{place}: {e}")))?;
                    for (i, chunk) in doc.chunks.iter_mut().enumerate() {
                        check_and_normalise(
                            &mut chunk.embedding,
                            model.dim,
                            &format!("{place}, chunk {i}"),
                        )?;
                    }
                }
            }
            out.push(op);
        }
        Ok(out)
    }

    /// Swaps in a snapshot that matches the reader's current commit.
    fn publish(&self, w: &mut WriterState) -> Result<()> {
        w.refresh_flat();
        let snapshot = build_snapshot(&self.reader, self.fields, w, &self.manifest.settings.model)?;
        let mut slot = match self.snapshot.write() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        *slot = Arc::new(snapshot);
        Ok(())
    }

    /// Writes the HNSW graph to disk so the next open loads instead of rebuilding; rebuilds the
    /// graph first when deleted chunks make up too much of it.
    pub fn checkpoint(&self) -> Result<()> {
        let mut w = self.lock_writer()?;
        self.checkpoint_locked(&mut w)
    }

    fn checkpoint_locked(&self, w: &mut WriterState) -> Result<()> {
        let snap = self.snapshot();
        let points = w.ann.len();
        let dead = points.saturating_sub(snap.live.len() as usize);
        if points > 0 && dead as f64 > REBUILD_DEAD_SHARE * points as f64 {
            w.ann = Arc::new(build_graph(&snap.vectors, &snap.live));
            self.publish(w)?;
        }
        let rows = w.vectors.rows();
        if rows == w.graph_rows && self.dir.join(GRAPH_META).exists() {
            return Ok(());
        }
        let graph_dir = self.dir.join("graph");
        std::fs::create_dir_all(&graph_dir).map_err(Error::io(&graph_dir))?;
        let basename = format!("g{rows}");
        w.ann.dump(&graph_dir, &basename)?;
        let old = read_graph_meta(&self.dir);
        write_json_atomic(
            &self.dir.join(GRAPH_META),
            &GraphMeta {
                basename: basename.clone(),
                rows,
            },
        )?;
        if let Some(old) = old
            && old.basename != basename
        {
            for ext in ["hnsw.graph", "hnsw.data"] {
                let _ = std::fs::remove_file(graph_dir.join(format!("{}.{ext}", old.basename)));
            }
        }
        w.graph_rows = rows;
        Ok(())
    }
}

/// The document's text rebuilt from its chunks: overlaps (known from the char ranges) are taken
/// once; chunks without a range are concatenated.
fn document_text(chunks: &[Chunk]) -> String {
    let mut out = String::new();
    let mut covered = 0u64;
    for c in chunks {
        if c.char_end <= c.char_start {
            out.push_str(&c.text);
        } else if c.char_end > covered {
            let skip = covered.saturating_sub(c.char_start) as usize;
            out.extend(c.text.chars().skip(skip));
            covered = c.char_end;
        } else {
            continue;
        }
        out.push('\n');
    }
    out
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn build_snapshot(
    reader: &IndexReader,
    fields: Fields,
    w: &WriterState,
    model: &ModelSpec,
) -> Result<Snapshot> {
    let searcher = reader.searcher();
    let mut live = RoaringBitmap::new();
    let mut heads = RoaringBitmap::new();
    let mut addresses = HashMap::new();
    let mut ordinal_columns = Vec::new();
    let mut chunk_idx_columns = Vec::new();
    let (mut documents, mut first_chunks) = (0, 0);
    for (seg_ord, segment) in searcher.segment_readers().iter().enumerate() {
        let ordinals = segment.fast_fields().u64("ordinal")?;
        let chunk_idx = segment.fast_fields().u64("chunk_idx")?;
        for doc in segment.doc_ids_alive() {
            let ordinal = ordinals.first(doc);
            if let Some(o) = ordinal {
                live.insert(o as u32);
                addresses.insert(o as u32, DocAddress::new(seg_ord as u32, doc));
            }
            if chunk_idx.first(doc) == Some(0) {
                documents += 1;
                if let Some(o) = ordinal {
                    heads.insert(o as u32);
                }
            }
        }
        first_chunks += (0..segment.max_doc())
            .filter(|&d| chunk_idx.first(d) == Some(0))
            .count() as u64;
        ordinal_columns.push(ordinals);
        chunk_idx_columns.push(chunk_idx);
    }
    Ok(Snapshot {
        searcher,
        fields,
        live,
        heads,
        documents,
        first_chunks,
        addresses,
        ordinal_columns,
        chunk_idx_columns,
        docs: Arc::clone(&w.docs),
        attrs: Arc::clone(&w.attrs),
        vectors: w.vectors.view()?,
        ann: Arc::clone(&w.ann),
        flat: Arc::clone(&w.flat),
        applied_seq: w.applied_seq,
        model: model.clone(),
    })
}

fn read_graph_meta(dir: &Path) -> Option<GraphMeta> {
    let raw = std::fs::read(dir.join(GRAPH_META)).ok()?;
    serde_json::from_slice(&raw).ok()
}

/// Loads the checkpointed graph and inserts what came after it; rebuilds when there is none.
/// Returns the graph and the number of vector rows the on-disk checkpoint covers.
fn load_graph(dir: &Path, vectors: &VectorView, live: &RoaringBitmap) -> (Ann, u32) {
    if let Some(meta) = read_graph_meta(dir)
        && meta.rows <= vectors.rows()
        && let Some(ann) = Ann::load(&dir.join("graph"), &meta.basename)
    {
        insert_rows(&ann, vectors, live, meta.rows..vectors.rows());
        return (ann, meta.rows);
    }
    (build_graph(vectors, live), 0)
}

fn build_graph(vectors: &VectorView, live: &RoaringBitmap) -> Ann {
    let ann = Ann::new(AnnParams::default(), live.len() as usize);
    insert_rows(&ann, vectors, live, 0..vectors.rows());
    ann
}

fn insert_rows(ann: &Ann, vectors: &VectorView, live: &RoaringBitmap, rows: std::ops::Range<u32>) {
    const BATCH: usize = 4096;
    let ordinals: Vec<u32> = rows.filter(|o| live.contains(*o)).collect();
    for batch in ordinals.chunks(BATCH) {
        let data: Vec<Vec<f32>> = batch
            .iter()
            .map(|o| {
                let mut v = Vec::new();
                vectors.read(*o, &mut v);
                v
            })
            .collect();
        let rows: Vec<(&[f32], usize)> = data
            .iter()
            .zip(batch)
            .map(|(v, o)| (v.as_slice(), *o as usize))
            .collect();
        ann.insert(&rows);
    }
}

fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::invalid(e.to_string()))?;
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(parent) = path.parent() {
            std::fs::File::open(parent)?.sync_all()?;
        }
        Ok(())
    };
    write().map_err(Error::io(path))
}
