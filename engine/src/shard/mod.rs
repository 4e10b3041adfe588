//! A knowledge domain's shard: tantivy + HNSW + bitmaps + manifest, committed as one unit.
//!
//! - `types.rs`: settings, manifest, documents, batches, commit reports.
//! - `write.rs`: `apply` — validated, vectors appended, one tantivy commit recording the
//!   sequence — and `refusal`.
//! - `snapshot.rs`: the immutable views searches read, rebuilt after each commit.
//! - `graph.rs`: the graph worker — the HNSW graph brought up to the vector file after each
//!   commit, grown, rebuilt, saved and loaded.

mod copy;
mod graph;
mod snapshot;
mod types;
mod write;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use roaring::RoaringBitmap;
use serde::{Deserialize, Serialize};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, directory::MmapDirectory};

use crate::attrs::{AttrIndex, Attributes};
use crate::schema::{self, Fields};
use crate::vectors::VectorFile;
use crate::{Error, Result};

pub use crate::document::{Chunk, Document, WriteBatch, WriteOp};
use graph::{GraphWorker, load_graph, write_json_atomic};
use snapshot::build_snapshot;
pub(crate) use snapshot::{DocTable, Snapshot};
pub use types::{ApplyTimings, CommitInfo, DomainSettings, Manifest, ShardStats};

const FORMAT_VERSION: u32 = 2;
const MANIFEST: &str = "manifest.json";
const GRAPH_META: &str = "graph.json";
/// Rows inserted into the graph since it was last saved that make the worker save it again.
const CHECKPOINT_EVERY: u32 = 20_000;
/// A checkpoint rebuilds the graph when this share of its points are deleted chunks.
const REBUILD_DEAD_SHARE: f64 = 0.25;

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

struct WriterState {
    index_writer: IndexWriter,
    vectors: VectorFile,
    docs: Arc<DocTable>,
    attrs: Arc<AttrIndex>,
    applied_seq: u64,
}

pub struct Shard {
    name: String,
    dir: PathBuf,
    manifest: Manifest,
    fields: Fields,
    reader: IndexReader,
    writer: Mutex<WriterState>,
    /// Shared with the graph worker, which swaps in a grown or rebuilt graph.
    snapshot: Arc<RwLock<Arc<Snapshot>>>,
    graph_worker: GraphWorker,
    /// Set (under the writer lock) when the registry (`Shards`) removes or replaces this shard's files:
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
        let mut bytes_buf = Vec::new();
        for segment in searcher.segment_readers() {
            let ff = segment.fast_fields();
            let ordinals = ff.u64("ordinal")?;
            let doc_ids = ff.str("doc_id")?.ok_or_else(|| Error::Corrupt {
                path: bm25_dir.clone(),
                reason: "doc_id column missing".into(),
            })?;
            let attr_col = ff.bytes("attrs")?;
            // (term ordinal of the document id, chunk ordinal): the names are then read in one
            // ordered pass over the dictionary instead of one lookup per chunk.
            let mut named: Vec<(u64, u32)> = Vec::new();
            for doc in segment.doc_ids_alive() {
                let Some(ordinal) = ordinals.first(doc) else {
                    continue;
                };
                let ordinal = ordinal as u32;
                live.insert(ordinal);
                match doc_ids.term_ords(doc).next() {
                    Some(ord) => named.push((ord, ordinal)),
                    None => docs.push(ordinal, ""),
                }
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
            named.sort_unstable();
            let term_ords: Vec<u64> = named.iter().map(|&(t, _)| t).collect();
            let mut next = named.iter();
            let mut bad_name = None;
            let complete = doc_ids
                .dictionary()
                .sorted_ords_to_term_cb(&term_ords, |bytes| {
                    let Some(&(_, ordinal)) = next.next() else {
                        return;
                    };
                    match std::str::from_utf8(bytes) {
                        Ok(name) => docs.push(ordinal, name),
                        Err(_) => bad_name = Some(ordinal),
                    }
                })
                .map_err(Error::io(&bm25_dir))?;
            if !complete || bad_name.is_some() {
                return Err(Error::Corrupt {
                    path: bm25_dir.clone(),
                    reason: format!("document ids of chunks (chunk {bad_name:?})"),
                });
            }
        }
        drop(searcher);

        let (graph, saved_rows) = load_graph(dir, dim, vectors.rows());
        let index_writer = index.writer_with_num_threads(2, 128 * 1024 * 1024)?;
        // A process killed mid-commit leaves files no commit refers to (a `.del` file, say);
        // the next writer would reuse their names and fail. Remove them before any write.
        index_writer.garbage_collect_files().wait()?;
        let writer = WriterState {
            index_writer,
            vectors,
            docs: Arc::new(docs),
            attrs: Arc::new(attrs),
            applied_seq: payload.applied_seq,
        };
        let snapshot = build_snapshot(
            &reader,
            fields,
            &writer,
            &manifest.settings.model,
            Arc::new(graph),
        )?;
        let snapshot = Arc::new(RwLock::new(Arc::new(snapshot)));
        // Rows the saved graph does not cover are searched exactly until the worker has them.
        let graph_worker = GraphWorker::start(dir, Arc::clone(&snapshot), saved_rows)?;
        Ok(Shard {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            fields,
            reader,
            snapshot,
            graph_worker,
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

    /// The keyword values of `field` that live chunks carry (as first written).
    pub fn keyword_values(&self, field: &str) -> Vec<String> {
        let snap = self.snapshot();
        snap.attrs
            .value_counts(field, &snap.live)
            .filter_map(|(v, _)| match v {
                crate::AttrValue::Keyword(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    /// The ids of the live documents `filter` matches (delete by filter), in ordinal order.
    pub fn documents_matching(&self, filter: &crate::Filter) -> Vec<String> {
        let snap = self.snapshot();
        let matched = filter.eval(&snap.attrs, &snap.live);
        let mut seen = std::collections::HashSet::new();
        matched
            .iter()
            .filter_map(|o| snap.docs.doc_of.get(o as usize))
            .filter(|&&num| num != u32::MAX && seen.insert(num))
            .filter_map(|&num| snap.docs.names.get(num as usize).cloned())
            .collect()
    }

    pub fn stats(&self) -> ShardStats {
        let snap = self.snapshot();
        ShardStats {
            domain: self.name.clone(),
            documents: snap.documents,
            chunks: snap.live.len(),
            graph_points: snap.graph.len() as u64,
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

    /// Refuses every later write: the registry is about to remove or replace the files. Waits
    /// for a write in progress to finish first.
    pub(crate) fn retire(&self) {
        let _w = self.writer.lock();
        self.retired
            .store(true, std::sync::atomic::Ordering::Release);
        self.graph_worker.stop();
    }

    /// Whether the registry has removed or replaced this shard (a write gets `DomainNotFound`:
    /// look the domain's shard up again).
    pub fn is_retired(&self) -> bool {
        self.retired.load(std::sync::atomic::Ordering::Acquire)
    }
}

impl Drop for Shard {
    fn drop(&mut self) {
        self.graph_worker.stop();
    }
}
