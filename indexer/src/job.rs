//! An indexing job: a reader/chunker thread feeds batches to the embedder and the sink;
//! unchanged documents are skipped and unchanged chunks keep their stored vectors.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::bounded;
use dartmouth_engine::{Chunk, Document, DomainSettings, Embedder, Shard, WriteBatch, WriteOp};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::chunk::{Chunker, TextChunk};
use crate::shopify::{
    InventoryOutcome, InventoryUpdate, Product, inventory_key, strip_availability,
};
use crate::source::{Item, SourceDoc};
use crate::{Error, Result};

/// Reports progress on stderr (hidden when stderr is not a terminal or when disabled).
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    pub fn new(total_docs: Option<u64>, visible: bool) -> Progress {
        let bar = match total_docs {
            Some(n) => ProgressBar::new(n),
            None => ProgressBar::no_length(),
        };
        bar.set_draw_target(if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} docs  {per_sec}  ETA {eta}  {msg}",
        ) {
            bar.set_style(style);
        }
        Progress { bar }
    }

    pub fn hidden() -> Progress {
        Progress::new(None, false)
    }
}

/// What a job did. `failed` lists each record that could not be indexed, with its place and
/// reason (the first [`MAX_REPORTED_FAILURES`]; `failed_count` counts them all).
#[derive(Debug, Clone, Serialize, Default)]
pub struct IndexSummary {
    pub domain: String,
    /// Documents written (added + updated).
    pub documents: usize,
    pub added: usize,
    pub updated: usize,
    /// Documents whose content, attributes and source were already stored: not written.
    pub unchanged: usize,
    pub deleted: usize,
    /// Updates older than what the domain holds (a late or replayed Shopify delivery, by its
    /// `updated_at`): not applied.
    pub stale: usize,
    pub failed_count: usize,
    pub failed: Vec<String>,
    /// Chunks written.
    pub chunks: usize,
    /// Chunks embedded by the model; the rest of the written chunks reused stored vectors.
    pub embedded_chunks: usize,
    pub seconds: f64,
    pub embed_seconds: f64,
    pub chunks_per_second: f64,
    pub applied_seq: u64,
    /// Documents with nothing to index (no title and no text), with where they are.
    pub skipped: Vec<String>,
    /// A full sync that deleted nothing because records failed says so here.
    pub notes: Vec<String>,
}

pub const MAX_REPORTED_FAILURES: usize = 1000;

/// A stored document as a job sees it: what decides whether it changed, and the vectors of its
/// chunks (text, embedding) to reuse.
#[derive(Debug, Clone, PartialEq)]
pub struct Reusable {
    pub content_hash: String,
    pub title: String,
    pub chunks: Vec<(String, Vec<f32>)>,
}

/// One write for a sink: the engine's operation plus what the store keeps beside it.
#[derive(Debug, Clone, PartialEq)]
pub enum SinkOp {
    Upsert(Document, DocMeta),
    Delete(String),
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct DocMeta {
    /// Decides whether a re-sent document changed (see [`content_hash`]).
    pub content_hash: String,
    pub source: Option<String>,
    pub keys: Vec<String>,
    /// Where the document came from (a file and line, `documents[2]`), for errors.
    pub place: String,
}

impl SinkOp {
    pub fn into_write_op(self) -> WriteOp {
        match self {
            SinkOp::Upsert(doc, _) => WriteOp::Upsert(doc),
            SinkOp::Delete(id) => WriteOp::Delete(id),
        }
    }
}

/// Where an indexing job's batches go: straight into a shard, or through the store, whose
/// changelog the shard then applies.
pub trait Sink: Send + Sync {
    fn name(&self) -> &str;
    fn settings(&self) -> &DomainSettings;
    /// The sequence already acknowledged before the job (0 for a new domain).
    fn acknowledged(&self) -> u64;
    /// Durably writes one batch; returns the sequence that acknowledges it.
    fn write(&self, model_id: &str, ops: Vec<SinkOp>) -> Result<u64>;
    /// Called once after the last batch.
    fn finish(&self) -> Result<()>;
    /// Stored state of `ids`, to skip unchanged documents and reuse vectors (none by default).
    fn reusable(&self, _ids: &[String]) -> Result<HashMap<String, Reusable>> {
        Ok(HashMap::new())
    }
    /// The document owning a secondary key, with its stored source.
    fn by_key(&self, _key: &str) -> Result<Option<(String, Option<String>)>> {
        Ok(None)
    }
    /// Every document id (for a full sync); `None` when the sink cannot list them.
    fn document_ids(&self) -> Result<Option<Vec<String>>> {
        Ok(None)
    }
    /// The stored sources of `ids` (those that have one), to reconcile an update with.
    fn sources(&self, _ids: &[String]) -> Result<HashMap<String, String>> {
        Ok(HashMap::new())
    }
}

impl Sink for Shard {
    fn name(&self) -> &str {
        Shard::name(self)
    }

    fn settings(&self) -> &DomainSettings {
        Shard::settings(self)
    }

    fn acknowledged(&self) -> u64 {
        self.applied_seq()
    }

    fn write(&self, model_id: &str, ops: Vec<SinkOp>) -> Result<u64> {
        Ok(self
            .apply(WriteBatch {
                model_id: model_id.to_string(),
                ops: ops.into_iter().map(SinkOp::into_write_op).collect(),
                seq: None,
            })?
            .applied_seq)
    }

    fn finish(&self) -> Result<()> {
        Ok(self.checkpoint()?)
    }
}

pub struct IndexJob<'a> {
    pub sink: Arc<dyn Sink + 'a>,
    pub embedder: &'a dyn Embedder,
    pub chunker: Chunker,
    /// Documents per write batch (one atomic commit each).
    pub batch_docs: usize,
    /// Stop at the first bad record (batches before it stay committed). Otherwise bad records
    /// are reported in the summary and the rest goes on.
    pub stop_on_error: bool,
    /// Delete the sink's documents the source did not mention (only when no record failed).
    pub full_sync: bool,
}

/// A source item made ready in the reader thread: documents are chunked there.
enum Prepared {
    Doc {
        doc: SourceDoc,
        chunks: Vec<TextChunk>,
    },
    Delete {
        id: String,
    },
    Inventory {
        update: InventoryUpdate,
        place: String,
    },
}

fn prepare(chunker: &Chunker, item: Item) -> Result<Prepared> {
    Ok(match item {
        Item::Doc(doc) => {
            let mut chunks = chunker.chunk(&doc.title, &doc.text, doc.format)?;
            if chunks.is_empty() && !doc.title.trim().is_empty() {
                // A title-only record (half of CACM) is still a document.
                chunks.push(TextChunk {
                    text: String::new(),
                    char_start: 0,
                    char_end: 0,
                    heading: None,
                });
            }
            Prepared::Doc { doc, chunks }
        }
        Item::Delete { id, .. } => Prepared::Delete { id },
        Item::Inventory { update, place } => Prepared::Inventory { update, place },
    })
}

/// Counters a job keeps across batches.
#[derive(Default)]
struct Tally {
    summary: IndexSummary,
    embed_time: Duration,
    /// Every document id the source mentioned (for a full sync).
    seen: HashSet<String>,
    items: u64,
}

impl Tally {
    fn fail(&mut self, e: &Error) {
        tracing::warn!(error = %e, "record not indexed");
        self.summary.failed_count += 1;
        if self.summary.failed.len() < MAX_REPORTED_FAILURES {
            self.summary.failed.push(e.to_string());
        }
    }
}

impl IndexJob<'_> {
    /// Runs the job to the end. Each batch is one atomic write; re-running is idempotent
    /// (documents are upserted by id, unchanged ones are skipped, unchanged chunks keep their
    /// vectors), so a job interrupted by a crash finishes on the next run.
    pub fn run<S, T>(self, source: S, progress: &Progress) -> Result<IndexSummary>
    where
        S: IntoIterator<Item = Result<T>>,
        S::IntoIter: Send,
        T: Into<Item>,
    {
        let started = Instant::now();
        if self.embedder.spec() != &self.sink.settings().model {
            return Err(Error::Engine(dartmouth_engine::Error::ModelMismatch {
                expected: self.sink.settings().model.id.clone(),
                got: self.embedder.spec().id.clone(),
            }));
        }
        let batch_docs = self.batch_docs.max(1);
        let (tx, rx) = bounded::<Vec<Result<Prepared>>>(2);
        let chunker = &self.chunker;
        let mut tally = Tally::default();
        tally.summary.domain = self.sink.name().to_string();
        tally.summary.applied_seq = self.sink.acknowledged();
        let stop_on_error = self.stop_on_error;
        let source = source.into_iter();
        let outcome: Result<()> = std::thread::scope(|scope| {
            scope.spawn(move || {
                let mut batch = Vec::with_capacity(batch_docs);
                for item in source {
                    let prepared = item.and_then(|i| prepare(chunker, i.into()));
                    let failed = prepared.is_err();
                    batch.push(prepared);
                    if (batch.len() == batch_docs || (failed && stop_on_error))
                        && tx.send(std::mem::take(&mut batch)).is_err()
                    {
                        return;
                    }
                    if failed && stop_on_error {
                        return;
                    }
                }
                if !batch.is_empty() {
                    let _ = tx.send(batch);
                }
            });
            for batch in rx {
                let n = batch.len() as u64;
                self.write_batch(batch, &mut tally)?;
                tally.items += n;
                progress.bar.inc(n);
                let secs = started.elapsed().as_secs_f64().max(1e-9);
                progress.bar.set_message(format!(
                    "{} chunks, {:.0} chunks/s",
                    tally.summary.chunks,
                    tally.summary.chunks as f64 / secs
                ));
            }
            Ok(())
        });
        progress.bar.finish_and_clear();
        outcome?;
        if tally.items == 0 {
            return Err(Error::Input("the input holds no documents".into()));
        }
        if self.full_sync {
            self.delete_missing(&mut tally)?;
        }
        self.sink.finish()?;
        let mut summary = tally.summary;
        summary.documents = summary.added + summary.updated;
        summary.seconds = started.elapsed().as_secs_f64();
        summary.embed_seconds = tally.embed_time.as_secs_f64();
        summary.chunks_per_second = summary.chunks as f64 / summary.seconds.max(1e-9);
        Ok(summary)
    }

    /// Parses and resolves everything without writing: the failures `--strict` refuses.
    pub fn check<S, T>(&self, source: S) -> Vec<String>
    where
        S: IntoIterator<Item = Result<T>>,
        T: Into<Item>,
    {
        let mut failures = Vec::new();
        for item in source {
            let problem = match item.map(Into::into) {
                Err(e) => Some(e.to_string()),
                Ok(Item::Inventory { update, place }) => {
                    match self.sink.by_key(&inventory_key(update.inventory_item_id)) {
                        Ok(Some(_)) => None,
                        Ok(None) => Some(unknown_item(&place, update.inventory_item_id)),
                        Err(e) => Some(e.to_string()),
                    }
                }
                Ok(_) => None,
            };
            failures.extend(problem);
        }
        failures
    }

    fn write_batch(&self, batch: Vec<Result<Prepared>>, tally: &mut Tally) -> Result<()> {
        // Inventory updates become documents re-rendered from their stored (or just
        // prepared) source; later updates in the batch see earlier ones.
        let mut docs: Vec<(SourceDoc, Vec<TextChunk>)> = Vec::new();
        let mut ops_order: Vec<Pending> = Vec::new();
        let mut by_id: HashMap<String, usize> = HashMap::new();
        // Ids deleted earlier in this batch: a later stock change must not bring them back.
        let mut deleted: HashSet<String> = HashSet::new();
        // Stored versions of the products that carry Shopify's `updated_at`.
        let timed: Vec<String> = batch
            .iter()
            .filter_map(|p| match p {
                Ok(Prepared::Doc { doc, .. }) if timed_product(doc).is_some() => {
                    Some(doc.id.clone())
                }
                _ => None,
            })
            .collect();
        let stored = if timed.is_empty() {
            HashMap::new()
        } else {
            self.sink.sources(&timed)?
        };
        for p in batch {
            match p {
                Err(e) => {
                    if self.stop_on_error {
                        return self.flush(docs, ops_order, tally).and(Err(e));
                    }
                    tally.fail(&e);
                }
                Ok(Prepared::Doc { doc, chunks }) => {
                    tally.seen.insert(doc.id.clone());
                    let earlier = match by_id.get(&doc.id) {
                        Some(&i) => docs[i].0.source.clone(),
                        None if deleted.contains(&doc.id) => None,
                        None => stored.get(&doc.id).cloned(),
                    };
                    let (doc, chunks) = match self.reconcile(doc, chunks, earlier.as_deref())? {
                        Some(ready) => ready,
                        None => {
                            tally.summary.stale += 1;
                            continue;
                        }
                    };
                    by_id.insert(doc.id.clone(), docs.len());
                    ops_order.push(Pending::Doc(docs.len()));
                    docs.push((doc, chunks));
                }
                Ok(Prepared::Delete { id }) => {
                    by_id.remove(&id);
                    deleted.insert(id.clone());
                    ops_order.push(Pending::Delete(id));
                }
                Ok(Prepared::Inventory { update, place }) => {
                    match self.resolve_inventory(&update, &place, &docs, &by_id, &deleted) {
                        Ok(None) => tally.summary.stale += 1,
                        Ok(Some(doc)) => {
                            let chunks = match prepare(&self.chunker, Item::Doc(doc))? {
                                Prepared::Doc { doc, chunks } => (doc, chunks),
                                _ => unreachable!("a document prepares as a document"),
                            };
                            by_id.insert(chunks.0.id.clone(), docs.len());
                            ops_order.push(Pending::Doc(docs.len()));
                            docs.push(chunks);
                        }
                        Err(e) if self.stop_on_error => {
                            return self.flush(docs, ops_order, tally).and(Err(e));
                        }
                        Err(e) => tally.fail(&e),
                    }
                }
            }
        }
        self.flush(docs, ops_order, tally)
    }

    /// A product with Shopify's `updated_at`, reconciled with the version written before it
    /// (earlier in the input, else stored): `None` when that one is newer; re-rendered when
    /// it keeps stock levels newer than itself (see `Product::reconcile`).
    fn reconcile(
        &self,
        doc: SourceDoc,
        chunks: Vec<TextChunk>,
        earlier: Option<&str>,
    ) -> Result<Option<(SourceDoc, Vec<TextChunk>)>> {
        let (Some(mut product), Some(earlier)) = (timed_product(&doc), earlier) else {
            return Ok(Some((doc, chunks)));
        };
        let Ok(earlier) = serde_json::from_str::<Product>(earlier) else {
            // A stored source that is not a product (another kind of document): replaced.
            return Ok(Some((doc, chunks)));
        };
        let before = product.clone();
        if !product.reconcile(&earlier) {
            tracing::info!(place = %doc.place, id = %doc.id, "older than the stored product; not applied");
            return Ok(None);
        }
        if product == before {
            return Ok(Some((doc, chunks)));
        }
        let mut merged = product.to_source_doc(&doc.place, None)?;
        merged.id = doc.id;
        merged.url = doc.url;
        match prepare(&self.chunker, Item::Doc(merged))? {
            Prepared::Doc { doc, chunks } => Ok(Some((doc, chunks))),
            _ => unreachable!("a document prepares as a document"),
        }
    }

    /// The document an inventory update changes, re-rendered from its newest source; `None`
    /// when the product holds a newer update of that level.
    fn resolve_inventory(
        &self,
        update: &InventoryUpdate,
        place: &str,
        docs: &[(SourceDoc, Vec<TextChunk>)],
        by_id: &HashMap<String, usize>,
        deleted: &HashSet<String>,
    ) -> Result<Option<SourceDoc>> {
        let key = inventory_key(update.inventory_item_id);
        let in_batch = docs
            .iter()
            .rev()
            .find(|(d, _)| d.keys.contains(&key) && by_id.get(&d.id).is_some())
            .map(|(d, _)| (d.id.clone(), d.source.clone(), d.url.clone()));
        let (id, source, url) = match in_batch {
            Some(found) => found,
            None => match self.sink.by_key(&key)? {
                Some((id, _)) if deleted.contains(&id) => {
                    return Err(Error::bad(
                        place,
                        format!("product `{id}` was deleted earlier in this input"),
                    ));
                }
                Some((id, source)) => (id, source, None),
                None => {
                    return Err(Error::bad(
                        place,
                        unknown_item_reason(update.inventory_item_id),
                    ));
                }
            },
        };
        let source = source.ok_or_else(|| {
            Error::bad(
                place,
                format!("document `{id}` was stored without its product"),
            )
        })?;
        let mut product: Product = serde_json::from_str(&source).map_err(|e| {
            Error::bad(
                place,
                format!("document `{id}`: stored product unreadable: {e}"),
            )
        })?;
        if product.apply_inventory(update) == InventoryOutcome::Stale {
            tracing::info!(place, id = %id, "an older update of a stock level; not applied");
            return Ok(None);
        }
        let mut doc = product.to_source_doc(place, None)?;
        if doc.url.is_none() {
            doc.url = url;
        }
        // The stored document keeps its id even if the product's would now differ.
        doc.id = id;
        Ok(Some(doc))
    }

    /// Hashes, skips unchanged documents, embeds only chunks without a stored vector, and
    /// writes the batch as one commit.
    fn flush(
        &self,
        docs: Vec<(SourceDoc, Vec<TextChunk>)>,
        order: Vec<Pending>,
        tally: &mut Tally,
    ) -> Result<()> {
        if order.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = docs.iter().map(|(d, _)| d.id.clone()).collect();
        let stored = self.sink.reusable(&ids)?;
        // Vectors to reuse, by the exact text the model would embed.
        let mut known: HashMap<String, Vec<f32>> = HashMap::new();
        for r in stored.values() {
            for (text, v) in &r.chunks {
                known.insert(embedding_input(&r.title, text), v.clone());
            }
        }
        let mut built: Vec<Option<(Document, DocMeta, Vec<usize>)>> = Vec::new();
        let mut to_embed: Vec<String> = Vec::new();
        for (doc, chunks) in docs {
            if chunks.is_empty() {
                tracing::warn!(place = %doc.place, id = %doc.id, "document has no text; skipped");
                tally
                    .summary
                    .skipped
                    .push(format!("{}: document `{}` has no text", doc.place, doc.id));
                built.push(None);
                continue;
            }
            let mut document = Document {
                id: doc.id,
                title: doc.title,
                url: doc.url,
                attributes: doc.attributes,
                chunks: chunks
                    .into_iter()
                    .map(|c| Chunk {
                        text: c.text,
                        char_start: c.char_start,
                        char_end: c.char_end,
                        heading: c.heading,
                        embedding: Vec::new(),
                    })
                    .collect(),
            };
            // The one validator, before anything is embedded or stored: a record the shard
            // would refuse fails here, alone.
            if let Err(e) = dartmouth_engine::validate::check_document(&document) {
                let e = Error::bad(&doc.place, e.to_string());
                if self.stop_on_error {
                    return Err(e);
                }
                tally.fail(&e);
                built.push(None);
                continue;
            }
            let meta = DocMeta {
                content_hash: content_hash(&document, doc.source.as_deref(), &doc.keys),
                source: doc.source,
                keys: doc.keys,
                place: doc.place,
            };
            let existed = match stored.get(&document.id) {
                Some(r) if r.content_hash == meta.content_hash => {
                    tally.summary.unchanged += 1;
                    built.push(None);
                    continue;
                }
                Some(_) => true,
                None => false,
            };
            if existed {
                tally.summary.updated += 1;
            } else {
                tally.summary.added += 1;
            }
            // Stored vectors go in now; the chunks left without one are embedded below.
            let mut missing = Vec::new();
            for (i, c) in document.chunks.iter_mut().enumerate() {
                let input = embedding_input(&document.title, &c.text);
                match known.get(&input) {
                    Some(v) => c.embedding = v.clone(),
                    None => {
                        missing.push(i);
                        to_embed.push(input);
                    }
                }
            }
            built.push(Some((document, meta, missing)));
        }
        let mut vectors = if to_embed.is_empty() {
            Vec::new().into_iter()
        } else {
            let refs: Vec<&str> = to_embed.iter().map(String::as_str).collect();
            let t = Instant::now();
            let v = self.embedder.embed_batch(&refs)?;
            tally.embed_time += t.elapsed();
            tally.summary.embedded_chunks += v.len();
            v.into_iter()
        };
        let mut docs_out: Vec<Option<(Document, DocMeta)>> = Vec::with_capacity(built.len());
        for entry in built {
            docs_out.push(entry.map(|(mut document, meta, missing)| {
                for i in missing {
                    document.chunks[i].embedding = vectors.next().unwrap_or_default();
                }
                (document, meta)
            }));
        }
        let mut ops = Vec::with_capacity(order.len());
        for p in order {
            match p {
                Pending::Doc(i) => {
                    if let Some((doc, meta)) = docs_out[i].take() {
                        tally.summary.chunks += doc.chunks.len();
                        ops.push(SinkOp::Upsert(doc, meta));
                    }
                }
                Pending::Delete(id) => {
                    tally.summary.deleted += 1;
                    ops.push(SinkOp::Delete(id));
                }
            }
        }
        if !ops.is_empty() {
            tally.summary.applied_seq = self.sink.write(&self.embedder.spec().id, ops)?;
        }
        Ok(())
    }

    /// Deletes what the sink holds and the source did not mention.
    fn delete_missing(&self, tally: &mut Tally) -> Result<()> {
        if tally.summary.failed_count > 0 {
            tally.summary.notes.push(format!(
                "full sync deleted nothing: {} records failed, and a failed record's product may \
                 be one that is stored",
                tally.summary.failed_count
            ));
            return Ok(());
        }
        if tally.seen.is_empty() {
            tally.summary.notes.push(
                "full sync deleted nothing: the input holds no documents (only deletes or stock \
                 changes)"
                    .into(),
            );
            return Ok(());
        }
        let Some(ids) = self.sink.document_ids()? else {
            return Err(Error::Input(
                "--full-sync needs the store (this sink cannot list its documents)".into(),
            ));
        };
        let missing: Vec<String> = ids
            .into_iter()
            .filter(|id| !tally.seen.contains(id))
            .collect();
        for part in missing.chunks(512) {
            tally.summary.deleted += part.len();
            tally.summary.applied_seq = self.sink.write(
                &self.embedder.spec().id,
                part.iter().cloned().map(SinkOp::Delete).collect(),
            )?;
        }
        Ok(())
    }
}

/// The product a Shopify document was rendered from, when it carries Shopify's `updated_at`
/// (what ordering deliveries needs).
fn timed_product(doc: &SourceDoc) -> Option<Product> {
    let product: Product = serde_json::from_str(doc.source.as_deref()?).ok()?;
    product.updated_at.map(|_| product)
}

/// Writes of a batch in source order: documents by index, deletes by id.
enum Pending {
    Doc(usize),
    Delete(String),
}

fn unknown_item_reason(item: u64) -> String {
    format!("no product in the domain has inventory item {item}")
}

fn unknown_item(place: &str, item: u64) -> String {
    format!("{place}: {}", unknown_item_reason(item))
}

/// SHA-256 over everything a document is stored with: title, url, chunk texts and headings,
/// attributes, source and keys. Equal hashes mean there is nothing to write.
pub fn content_hash(doc: &Document, source: Option<&str>, keys: &[String]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(doc.title.as_bytes());
    h.update([0]);
    h.update(doc.url.as_deref().unwrap_or("").as_bytes());
    for c in &doc.chunks {
        h.update([0]);
        h.update(c.text.as_bytes());
        h.update([1]);
        h.update(c.heading.as_deref().unwrap_or("").as_bytes());
    }
    h.update([2]);
    h.update(serde_json::to_vec(&doc.attributes).unwrap_or_default());
    h.update([3]);
    h.update(source.unwrap_or("").as_bytes());
    for k in keys {
        h.update([4]);
        h.update(k.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// What the model sees for a chunk: the document title gives every chunk its context.
/// Availability markers (`[in stock: 3]`) are left out, so a stock change keeps the vector.
pub fn embedding_input(title: &str, text: &str) -> String {
    let text = strip_availability(text);
    if title.trim().is_empty() {
        text.into_owned()
    } else {
        format!("{title}\n{text}")
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "checks the shard the job wrote")]
mod tests {
    use super::*;
    use crate::chunk::Sizer;
    use crate::source::SourceReader;
    use dartmouth_engine::embed::FakeEmbedder;
    use dartmouth_engine::{DomainSettings, Mode, SearchRequest, search};

    #[test]
    fn empty_records_are_skipped_and_title_only_records_indexed() {
        let tmp = tempfile::tempdir().unwrap();
        let corpus = tmp.path().join("c.jsonl");
        std::fs::write(
            &corpus,
            "{\"_id\":\"1\",\"title\":\"Compilers for parallel machines\",\"text\":\"\"}\n\
             {\"_id\":\"2\",\"title\":\"\",\"text\":\"  \"}\n\
             {\"_id\":\"3\",\"title\":\"Sorting\",\"text\":\"Quicksort partitions an array.\"}\n",
        )
        .unwrap();
        let embedder = FakeEmbedder::new(32);
        let settings = DomainSettings::new(embedder.spec().clone());
        let shard = Arc::new(Shard::create(&tmp.path().join("s"), "s", settings).unwrap());
        let summary = IndexJob {
            sink: shard.clone(),
            embedder: &embedder,
            chunker: Chunker::new(Sizer::ApproxChars, 256, 32),
            batch_docs: 2,
            stop_on_error: true,
            full_sync: false,
        }
        .run(
            SourceReader::open(&[corpus], None).unwrap(),
            &Progress::hidden(),
        )
        .unwrap();
        assert_eq!(summary.documents, 2);
        assert_eq!(summary.skipped.len(), 1);
        assert!(
            summary.skipped[0].contains("c.jsonl:2"),
            "{:?}",
            summary.skipped
        );
        let mut req = SearchRequest::new("parallel compilers");
        req.mode = Mode::Bm25;
        let hits = search(&[&shard], &req).unwrap().hits;
        assert_eq!(hits[0].doc_id, "1");
    }
}
