//! An indexing job: a reader/chunker thread feeds batches to the embedder and the sink;
//! unchanged documents are skipped and unchanged chunks keep their stored vectors.

mod batch;
mod sink;
mod summary;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::bounded;
use dartmouth_engine::Embedder;

use crate::chunk::{Chunker, TextChunk};
use crate::doc::SourceDoc;
use crate::shopify::{InventoryUpdate, inventory_key};
use crate::source::Item;
use crate::{Error, Result};

use batch::unknown_item;
pub use batch::{content_hash, embedding_input};
pub use sink::{DocMeta, Reusable, Sink, SinkOp};
pub use summary::{IndexSummary, MAX_REPORTED_FAILURES, Progress};

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

fn prepare(chunker: &Chunker, option_names: &OptionNames, item: Item) -> Result<Prepared> {
    Ok(match item {
        Item::Doc(mut doc) => {
            with_option_names(&mut doc, option_names);
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

/// A domain's own option names (`catalog.option_names` in its settings).
type OptionNames = std::collections::BTreeMap<String, String>;

/// A product's attributes with the domain's own option names (the readers file options under
/// the built-in vocabulary; they do not know the domain).
fn with_option_names(doc: &mut SourceDoc, names: &OptionNames) {
    if names.is_empty()
        || !doc
            .keys
            .iter()
            .any(|k| k.starts_with(crate::shopify::VARIANT_KEY_PREFIX))
    {
        return;
    }
    if let Some(product) = doc
        .source
        .as_deref()
        .and_then(|s| serde_json::from_str::<crate::shopify::Product>(s).ok())
    {
        doc.attributes = product.attributes_with(names);
    }
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
        self.run_until(source, progress, &AtomicBool::new(false))
    }

    /// [`run`](Self::run), stopping before the next batch once `stop` is set: the batches
    /// written stay written, no full-sync deletion runs, and the summary says `cancelled`.
    pub fn run_until<S, T>(
        self,
        source: S,
        progress: &Progress,
        stop: &AtomicBool,
    ) -> Result<IndexSummary>
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
        let option_names = &self.sink.catalog().option_names.clone();
        let mut tally = Tally::default();
        tally.summary.domain = self.sink.name().to_string();
        tally.summary.applied_seq = self.sink.acknowledged();
        let stop_on_error = self.stop_on_error;
        let source = source.into_iter();
        let outcome: Result<()> = std::thread::scope(|scope| {
            scope.spawn(move || {
                let mut batch = Vec::with_capacity(batch_docs);
                for item in source {
                    if stop.load(Ordering::Acquire) {
                        return;
                    }
                    let prepared = item.and_then(|i| prepare(chunker, option_names, i.into()));
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
                if stop.load(Ordering::Acquire) {
                    tally.summary.cancelled = true;
                    break;
                }
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
        // The reader may have stopped early without the writer seeing a batch after the stop.
        if stop.load(Ordering::Acquire) {
            tally.summary.cancelled = true;
        }
        if tally.summary.cancelled {
            if self.full_sync {
                tally
                    .summary
                    .notes
                    .push("cancelled: the full sync deleted nothing".into());
            }
        } else {
            if tally.items == 0 {
                return Err(Error::Input("the input holds no documents".into()));
            }
            if self.full_sync {
                self.delete_missing(&mut tally)?;
            }
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
}
