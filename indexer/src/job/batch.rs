//! One batch of a job: stock changes resolved against the stored products, late Shopify
//! deliveries reconciled, documents validated, unchanged ones skipped, unchanged chunks given
//! their stored vectors, the rest embedded, and everything written as one commit.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use dartmouth_engine::{Chunk, Document};

use super::{IndexJob, Prepared, Tally, prepare};
use crate::chunk::TextChunk;
use crate::doc::SourceDoc;
use crate::job::sink::{DocMeta, SinkOp};
use crate::shopify::{
    InventoryOutcome, InventoryUpdate, Product, inventory_key, strip_availability,
};
use crate::source::Item;
use crate::{Error, Result};

impl IndexJob<'_> {
    pub(super) fn write_batch(
        &self,
        batch: Vec<Result<Prepared>>,
        tally: &mut Tally,
    ) -> Result<()> {
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
                            let chunks = match prepare(
                                &self.chunker,
                                &self.sink.catalog().option_names,
                                Item::Doc(doc),
                            )? {
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
        match prepare(
            &self.chunker,
            &self.sink.catalog().option_names,
            Item::Doc(merged),
        )? {
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
    pub(super) fn delete_missing(&self, tally: &mut Tally) -> Result<()> {
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

pub(super) fn unknown_item(place: &str, item: u64) -> String {
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
