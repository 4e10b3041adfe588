//! Hits built from the fused candidates: ids, text, heading, char range and attributes read
//! from the document store (or, without payload, from in-memory tables only).

use std::sync::Arc;

use tantivy::TantivyDocument;
use tantivy::schema::Value;

use super::{BranchHit, Hit, Key};
use crate::fusion::Fused;
use crate::shard::{Shard, Snapshot};
use crate::{Error, Result};

pub(super) fn hydrate(
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
        rerank: None,
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
        hit.attributes = crate::attrs::attributes_to_json(&attrs);
    }
    hit.title = text(fl.title).unwrap_or_default();
    hit.text = text(fl.text).unwrap_or_default();
    hit.url = text(fl.url);
    hit.heading = text(fl.heading);
    hit.char_start = num(fl.char_start);
    hit.char_end = num(fl.char_end);
    Ok(hit)
}
