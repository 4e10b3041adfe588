//! The immutable view a search reads: every field agrees with one tantivy commit.

use std::collections::HashMap;
use std::sync::Arc;

use roaring::RoaringBitmap;
use tantivy::{DocAddress, IndexReader, Searcher};

use super::{Shard, WriterState};
use crate::Result;
use crate::ann::Ann;
use crate::attrs::AttrIndex;
use crate::embed::ModelSpec;
use crate::flat::FlatGraph;
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

impl Shard {
    /// Swaps in a snapshot that matches the reader's current commit.
    pub(super) fn publish(&self, w: &mut WriterState) -> Result<()> {
        w.refresh_flat();
        let snapshot = build_snapshot(&self.reader, self.fields, w, &self.manifest.settings.model)?;
        let mut slot = match self.snapshot.write() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        *slot = Arc::new(snapshot);
        Ok(())
    }
}

pub(super) fn build_snapshot(
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
