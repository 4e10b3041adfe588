//! An indexing job: a reader/chunker thread feeds batches to the embedder and the shard.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::bounded;
use dartmouth_engine::{Chunk, Document, DomainSettings, Embedder, Shard, WriteBatch, WriteOp};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::chunk::{Chunker, TextChunk};
use crate::source::SourceDoc;
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

#[derive(Debug, Clone, Serialize)]
pub struct IndexSummary {
    pub domain: String,
    pub documents: usize,
    pub chunks: usize,
    pub seconds: f64,
    pub embed_seconds: f64,
    pub chunks_per_second: f64,
    pub applied_seq: u64,
    /// Documents with nothing to index (no title and no text), with where they are.
    pub skipped: Vec<String>,
}

/// Where an indexing job's batches go: straight into a shard, or through the store, whose
/// changelog the shard then applies.
pub trait Sink: Send + Sync {
    fn name(&self) -> &str;
    fn settings(&self) -> &DomainSettings;
    /// The sequence already acknowledged before the job (0 for a new domain).
    fn acknowledged(&self) -> u64;
    /// Durably writes one batch; returns the sequence that acknowledges it.
    fn write(&self, model_id: &str, ops: Vec<WriteOp>) -> Result<u64>;
    /// Called once after the last batch.
    fn finish(&self) -> Result<()>;
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

    fn write(&self, model_id: &str, ops: Vec<WriteOp>) -> Result<u64> {
        Ok(self
            .apply(WriteBatch {
                model_id: model_id.to_string(),
                ops,
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
}

struct Prepared {
    doc: SourceDoc,
    chunks: Vec<TextChunk>,
}

impl IndexJob<'_> {
    /// Runs the job to the end, or stops at the first bad record. Batches before it are
    /// committed (re-running is idempotent: documents are upserted by id); the failing batch
    /// leaves the shard as it was.
    pub fn run<S>(self, source: S, progress: &Progress) -> Result<IndexSummary>
    where
        S: IntoIterator<Item = Result<SourceDoc>>,
        S::IntoIter: Send,
    {
        let started = Instant::now();
        if self.embedder.spec() != &self.sink.settings().model {
            return Err(Error::Engine(dartmouth_engine::Error::ModelMismatch {
                expected: self.sink.settings().model.id.clone(),
                got: self.embedder.spec().id.clone(),
            }));
        }
        let batch_docs = self.batch_docs.max(1);
        let (tx, rx) = bounded::<Result<Vec<Prepared>>>(2);
        let chunker = &self.chunker;
        let mut embed_time = Duration::ZERO;
        let mut documents = 0;
        let mut chunks_total = 0;
        let mut applied_seq = self.sink.acknowledged();
        let mut skipped = Vec::new();
        let source = source.into_iter();
        let outcome: Result<()> = std::thread::scope(|scope| {
            scope.spawn(move || {
                let mut batch = Vec::with_capacity(batch_docs);
                for item in source {
                    let prepared = item.and_then(|doc| {
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
                        Ok(Prepared { doc, chunks })
                    });
                    match prepared {
                        Ok(p) => {
                            batch.push(p);
                            if batch.len() == batch_docs
                                && tx.send(Ok(std::mem::take(&mut batch))).is_err()
                            {
                                return;
                            }
                        }
                        Err(e) => {
                            // Send what came before the bad record, then the error.
                            if !batch.is_empty() {
                                let _ = tx.send(Ok(std::mem::take(&mut batch)));
                            }
                            let _ = tx.send(Err(e));
                            return;
                        }
                    }
                }
                if !batch.is_empty() {
                    let _ = tx.send(Ok(batch));
                }
            });
            for message in rx {
                let batch = message?;
                let inputs: Vec<String> = batch
                    .iter()
                    .flat_map(|p| {
                        p.chunks
                            .iter()
                            .map(|c| embedding_input(&p.doc.title, &c.text))
                    })
                    .collect();
                let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
                let t = Instant::now();
                let mut vectors = self.embedder.embed_batch(&refs)?.into_iter();
                embed_time += t.elapsed();
                let mut ops = Vec::with_capacity(batch.len());
                let n_docs = batch.len() as u64;
                for p in batch {
                    let chunks: Vec<Chunk> = p
                        .chunks
                        .into_iter()
                        .zip(vectors.by_ref())
                        .map(|(c, embedding)| Chunk {
                            text: c.text,
                            char_start: c.char_start,
                            char_end: c.char_end,
                            heading: c.heading,
                            embedding,
                        })
                        .collect();
                    if chunks.is_empty() {
                        tracing::warn!(place = %p.doc.place, id = %p.doc.id, "document has no text; skipped");
                        skipped.push(format!(
                            "{}: document `{}` has no text",
                            p.doc.place, p.doc.id
                        ));
                        continue;
                    }
                    chunks_total += chunks.len();
                    ops.push(WriteOp::Upsert(Document {
                        id: p.doc.id,
                        title: p.doc.title,
                        url: p.doc.url,
                        attributes: p.doc.attributes,
                        chunks,
                    }));
                }
                documents += ops.len();
                if ops.is_empty() {
                    progress.bar.inc(n_docs);
                    continue;
                }
                applied_seq = self.sink.write(&self.embedder.spec().id, ops)?;
                progress.bar.inc(n_docs);
                let secs = started.elapsed().as_secs_f64().max(1e-9);
                progress.bar.set_message(format!(
                    "{chunks_total} chunks, {:.0} chunks/s",
                    chunks_total as f64 / secs
                ));
            }
            Ok(())
        });
        progress.bar.finish_and_clear();
        outcome?;
        if documents == 0 {
            return Err(Error::Input("the input holds no documents".into()));
        }
        self.sink.finish()?;
        let seconds = started.elapsed().as_secs_f64();
        Ok(IndexSummary {
            domain: self.sink.name().to_string(),
            documents,
            chunks: chunks_total,
            seconds,
            embed_seconds: embed_time.as_secs_f64(),
            chunks_per_second: chunks_total as f64 / seconds.max(1e-9),
            applied_seq,
            skipped,
        })
    }
}

/// What the model sees for a chunk: the document title gives every chunk its context.
pub fn embedding_input(title: &str, text: &str) -> String {
    if title.trim().is_empty() {
        text.to_string()
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
