//! The immutable view a search reads: every field agrees with one tantivy commit.

use std::collections::HashMap;
use std::sync::Arc;

use roaring::RoaringBitmap;
use tantivy::{DocAddress, IndexReader, Searcher};

use super::{Shard, WriterState};
use crate::Result;
use crate::attrs::AttrIndex;
use crate::embed::ModelSpec;
use crate::hnsw::Graph;
use crate::schema::Fields;
use crate::vectors::VectorView;

/// Per-ordinal document numbers and the document names they stand for. Ordinals are never
/// reused, so this only grows; rebuilt on open from the index.
#[derive(Clone, Default)]
pub(crate) struct DocTable {
    pub doc_of: Vec<u32>,
    pub names: Vec<String>,
    by_name: HashMap<String, u32>,
}

impl DocTable {
    pub(super) fn push(&mut self, ordinal: u32, name: &str) {
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

/// An immutable view for searching: every field agrees with one tantivy commit (the graph is
/// the one exception: the graph worker extends it in place and may swap in a grown or rebuilt
/// one; searches take the rows it does not cover yet from the vector file, exactly).
#[derive(Clone)]
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
    pub addresses: Arc<HashMap<u32, DocAddress>>,
    /// Each segment's `ordinal` column, opened once per snapshot rather than per hit.
    pub ordinal_columns: Vec<tantivy::columnar::Column<u64>>,
    /// Each segment's `chunk_idx` column (hits without payload read nothing else).
    pub chunk_idx_columns: Vec<tantivy::columnar::Column<u64>>,
    pub docs: Arc<DocTable>,
    pub attrs: Arc<AttrIndex>,
    pub vectors: VectorView,
    pub graph: Arc<Graph>,
    pub applied_seq: u64,
    pub model: ModelSpec,
}

impl Shard {
    /// Swaps in a snapshot that matches the reader's current commit, then wakes the graph
    /// worker for the new rows.
    pub(super) fn publish(&self, w: &WriterState) -> Result<()> {
        let graph = Arc::clone(&self.snapshot().graph);
        let mut snapshot = build_snapshot(
            &self.reader,
            self.fields,
            w,
            &self.manifest.settings.model,
            graph,
        )?;
        {
            let mut slot = match self.snapshot.write() {
                Ok(s) => s,
                Err(poisoned) => poisoned.into_inner(),
            };
            // The worker may have swapped in a grown or rebuilt graph meanwhile.
            snapshot.graph = Arc::clone(&slot.graph);
            *slot = Arc::new(snapshot);
        }
        self.graph_worker.notify();
        Ok(())
    }
}

impl Snapshot {
    pub(super) fn with_graph(&self, graph: Arc<Graph>) -> Snapshot {
        Snapshot {
            graph,
            ..self.clone()
        }
    }
}

pub(super) fn build_snapshot(
    reader: &IndexReader,
    fields: Fields,
    w: &WriterState,
    model: &ModelSpec,
    graph: Arc<Graph>,
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
        addresses: Arc::new(addresses),
        ordinal_columns,
        chunk_idx_columns,
        docs: Arc::clone(&w.docs),
        attrs: Arc::clone(&w.attrs),
        vectors: w.vectors.view()?,
        graph,
        applied_seq: w.applied_seq,
        model: model.clone(),
    })
}
