//! Writing a shard: a batch validated whole, its vectors appended, one tantivy commit that
//! records the applied sequence — the only commit point — then the in-memory views.

use std::sync::Arc;

use tantivy::{TantivyDocument, Term};

use super::types::micros;
use super::{ApplyTimings, Chunk, CommitInfo, WriteBatch, WriteOp};
use super::{CommitPayload, Shard};
use crate::embed::{check_and_normalise, check_vector};
use crate::validate::{check_document, check_id};
use crate::{Error, Result};

impl Shard {
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
        let t = std::time::Instant::now();
        self.reader.reload()?;
        // The new rows are searched exactly until the graph worker has inserted them.
        self.publish(&w)?;
        timings.publish_us = micros(t);
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
