//! Stored documents and chunks (readers), and writes through the store (writers): the JSON
//! ingest's whole-request validation, and the indexing job every write path runs.

use std::sync::Arc;

use dartmouth_domains::{Caller, Domain, Pass, Role, StoredDocument};
use dartmouth_engine::DomainSettings;
use dartmouth_indexer::{
    Chunker, IndexJob, IndexSummary, Item, Progress, Sink, SourceDoc, SourceReader,
};
use dartmouth_views::StoreSink;
use serde_json::Value;

use super::{
    ChunkOut, ChunkWithDocument, DeleteInput, DeleteOutput, DocumentOut, FileIndex, FilesInput,
    IngestInput, IngestOutput, Service, UploadOptions, UploadOutcome, UploadedFile, opened,
};
use crate::cache::Weigh;
use crate::error::{ApiError, ApiResult, Code};

impl Service {
    pub async fn document(
        &self,
        caller: &Caller,
        domain: &str,
        id: &str,
    ) -> ApiResult<DocumentOut> {
        let pass = self
            .authorize(caller, &[domain.to_string()], Role::Read)
            .await?;
        let doc = self
            .store
            .document(&pass, domain, id)
            .await?
            .ok_or_else(|| {
                ApiError::new(
                    Code::NotFound,
                    format!(
                        "document `{}` does not exist in domain `{domain}`",
                        dartmouth_domains::names::shown(id)
                    ),
                )
            })?;
        Ok(document_out(domain, doc))
    }

    /// The `idx`th chunk of a document (the same access rules as [`Service::document`]).
    pub async fn chunk(
        &self,
        caller: &Caller,
        domain: &str,
        id: &str,
        idx: usize,
    ) -> ApiResult<ChunkWithDocument> {
        let doc = self.document(caller, domain, id).await?;
        let chunk = doc.chunks.into_iter().nth(idx).ok_or_else(|| {
            ApiError::new(
                Code::NotFound,
                format!(
                    "chunk {idx} does not exist in document `{}`",
                    dartmouth_domains::names::shown(id)
                ),
            )
        })?;
        Ok(ChunkWithDocument {
            domain: doc.domain,
            doc_id: doc.doc_id,
            title: doc.title,
            url: doc.url,
            chunk,
        })
    }

    pub async fn ingest(
        self: &Arc<Self>,
        caller: &Caller,
        domain: &str,
        input: IngestInput,
    ) -> ApiResult<IngestOutput> {
        if input.documents.is_empty() || input.documents.len() > self.limits.max_ingest_documents {
            return Err(ApiError::invalid(format!(
                "documents: send 1 to {} per request, got {}",
                self.limits.max_ingest_documents,
                input.documents.len()
            )));
        }
        let bytes: usize = input
            .documents
            .iter()
            .map(|d| {
                d.id.len()
                    + d.title.len()
                    + d.text.len()
                    + d.url.as_ref().map_or(0, String::len)
                    + d.attributes
                        .iter()
                        .map(|(k, v)| k.len() + v.weight())
                        .sum::<usize>()
            })
            .sum();
        if bytes > self.limits.max_batch_bytes {
            return Err(ApiError::new(
                Code::PayloadTooLarge,
                format!(
                    "documents: {bytes} bytes of content; the limit is {} per request",
                    self.limits.max_batch_bytes
                ),
            ));
        }
        let mut sources = Vec::with_capacity(input.documents.len());
        for (i, d) in input.documents.into_iter().enumerate() {
            let place = format!("documents[{i}]");
            let mut attributes = dartmouth_engine::Attributes::new();
            for (name, value) in &d.attributes {
                let values = match value {
                    Value::Array(items) => items.clone(),
                    other => vec![other.clone()],
                };
                let parsed = values
                    .iter()
                    .map(|v| dartmouth_engine::AttrValue::from_json(name, v))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| ApiError::invalid(format!("{place}.attributes.{name}: {e}")))?;
                attributes.insert(name.clone(), parsed);
            }
            // The one validator, on the whole batch before anything is written: a request
            // with one bad document stores nothing.
            dartmouth_engine::validate::check_fields(
                &d.id,
                &d.title,
                d.url.as_deref(),
                &d.text,
                &attributes,
            )
            .map_err(|e| ApiError::invalid(format!("{place}.{e}")))?;
            sources.push(SourceDoc {
                id: d.id,
                title: d.title,
                text: d.text,
                url: d.url,
                format: dartmouth_indexer::Format::Text,
                place,
                attributes,
                source: None,
                keys: Vec::new(),
            });
        }
        let pass = self
            .authorize(caller, &[domain.to_string()], Role::Write)
            .await?;
        let domain_row: Domain = opened(&pass, domain)?;
        let name = domain.to_string();
        self.blocking(move |s| {
            let summary =
                s.index_items(pass, domain_row, sources.into_iter().map(Ok), true, false)?;
            Ok(IngestOutput {
                domain: name,
                documents: summary.documents,
                chunks: summary.chunks,
                seq: summary.applied_seq,
            })
        })
        .await
    }

    /// Deletes one document; deleting one the domain does not hold deletes nothing (`deleted`
    /// says 0), so a retried delete succeeds.
    pub async fn delete_document(
        self: &Arc<Self>,
        caller: &Caller,
        domain: &str,
        id: &str,
    ) -> ApiResult<DeleteOutput> {
        let input = DeleteInput {
            ids: vec![id.to_string()],
            filter: None,
        };
        self.delete_documents(caller, domain, input).await
    }

    /// Deletes documents by id, or every document `filter` matches once the domain's shard has
    /// caught up with the store (what is written after that is not deleted).
    pub async fn delete_documents(
        self: &Arc<Self>,
        caller: &Caller,
        domain: &str,
        input: DeleteInput,
    ) -> ApiResult<DeleteOutput> {
        let filter = match (&input.filter, input.ids.is_empty()) {
            (Some(f), true) => {
                if f.len() > self.limits.max_filter_bytes {
                    return Err(ApiError::invalid(format!(
                        "filter: {} bytes; the limit is {}",
                        f.len(),
                        self.limits.max_filter_bytes
                    )));
                }
                Some(
                    dartmouth_engine::Filter::parse(f)
                        .map_err(|e| ApiError::invalid(format!("filter: {e}")))?,
                )
            }
            (None, false) => {
                if input.ids.len() > self.limits.max_ingest_documents {
                    return Err(ApiError::invalid(format!(
                        "ids: at most {} per request, got {}",
                        self.limits.max_ingest_documents,
                        input.ids.len()
                    )));
                }
                for (i, id) in input.ids.iter().enumerate() {
                    dartmouth_engine::validate::check_id(id)
                        .map_err(|e| ApiError::invalid(format!("ids[{i}]: {e}")))?;
                }
                None
            }
            _ => {
                return Err(ApiError::invalid(
                    "body: give either `ids` or `filter`, not both and not neither",
                ));
            }
        };
        let pass = self
            .authorize(caller, &[domain.to_string()], Role::Write)
            .await?;
        let ids = match filter {
            Some(filter) => {
                let target = opened(&pass, domain)?;
                self.blocking(move |s| {
                    let applier = s.applier();
                    applier.catch_up(&target)?;
                    Ok(applier.shard(&target)?.documents_matching(&filter))
                })
                .await?
            }
            None => {
                // Only the ids the domain holds count (and are written) as deletes.
                let mut ids = input.ids;
                ids.sort();
                ids.dedup();
                let held = self.store.existing_ids(&pass, domain, &ids).await?;
                ids.retain(|id| held.contains(id));
                ids
            }
        };
        self.delete_ids(pass, domain, ids).await
    }

    async fn delete_ids(
        self: &Arc<Self>,
        pass: Pass,
        domain: &str,
        ids: Vec<String>,
    ) -> ApiResult<DeleteOutput> {
        let target = opened(&pass, domain)?;
        let name = domain.to_string();
        if ids.is_empty() {
            return Ok(DeleteOutput {
                domain: name,
                deleted: 0,
                seq: self.store.last_seq(&self.store.system(), target.id).await?,
            });
        }
        self.blocking(move |s| {
            let items = ids.into_iter().map(|id| {
                Ok(Item::Delete {
                    place: format!("ids: `{id}`"),
                    id,
                })
            });
            let summary = s.index_items(pass, target, items, true, false)?;
            Ok(DeleteOutput {
                domain: name,
                deleted: summary.deleted,
                seq: summary.applied_seq,
            })
        })
        .await
    }

    /// Runs an indexing job into `domain` (which `pass` opens for writing) through the store.
    pub(super) fn index_items<T: Into<Item>>(
        &self,
        pass: Pass,
        domain: Domain,
        items: impl IntoIterator<Item = dartmouth_indexer::Result<T>, IntoIter: Send>,
        stop_on_error: bool,
        full_sync: bool,
    ) -> ApiResult<IndexSummary> {
        let job = JobOptions {
            stop_on_error,
            full_sync,
            ..JobOptions::default()
        };
        self.with_job(pass, domain, &job, |job| {
            Ok(job.run(items, &Progress::hidden())?)
        })
    }

    /// Files of a JSON body as uploads (`files[i].content` text or `content_base64` bytes).
    pub fn files_from_json(input: FilesInput) -> ApiResult<Vec<UploadedFile>> {
        use base64::Engine;
        input
            .files
            .into_iter()
            .enumerate()
            .map(|(i, f)| {
                let bytes = match (f.content, f.content_base64) {
                    (Some(text), None) => text.into_bytes(),
                    (None, Some(b64)) => base64::engine::general_purpose::STANDARD
                        .decode(b64.trim())
                        .map_err(|e| {
                            ApiError::invalid(format!("files[{i}].content_base64: {e}"))
                        })?,
                    _ => {
                        return Err(ApiError::invalid(format!(
                            "files[{i}]: give one of `content` (text) and `content_base64`"
                        )));
                    }
                };
                Ok(UploadedFile {
                    name: f.name,
                    format: f.format,
                    bytes,
                })
            })
            .collect()
    }

    /// Indexes uploaded files — Markdown, HTML, text, PDF, JSON/JSONL records, Shopify exports —
    /// as `dartmouth index` indexes files: unchanged documents are skipped, `full_sync`
    /// deletes what the files do not mention. With `background`, answers at once with a task.
    pub async fn upload_files(
        self: &Arc<Self>,
        caller: &Caller,
        domain: &str,
        files: Vec<UploadedFile>,
        options: UploadOptions,
    ) -> ApiResult<UploadOutcome> {
        if files.is_empty() || files.len() > self.limits.max_ingest_documents {
            return Err(ApiError::invalid(format!(
                "files: send 1 to {} per request, got {}",
                self.limits.max_ingest_documents,
                files.len()
            )));
        }
        let parse_format = |place: &str, f: &Option<String>| {
            f.as_deref()
                .map(str::parse::<dartmouth_indexer::Format>)
                .transpose()
                .map_err(|e| ApiError::invalid(format!("{place}: {e}")))
        };
        let format = parse_format("format", &options.format)?;
        let mut inputs = Vec::with_capacity(files.len());
        let mut names = Vec::with_capacity(files.len());
        for (i, f) in files.into_iter().enumerate() {
            dartmouth_engine::validate::check_id(&f.name)
                .map_err(|e| ApiError::invalid(format!("files[{i}].name: {e}")))?;
            let own = parse_format(&format!("files[{i}].format"), &f.format)?;
            names.push(f.name.clone());
            inputs.push((f.name, own.or(format), f.bytes));
        }
        let reader = SourceReader::from_memory(
            inputs,
            dartmouth_indexer::SourceOptions {
                format,
                base_url: options.base_url.clone(),
                ..Default::default()
            },
        )
        .map_err(ApiError::from)?;
        let pass = self
            .authorize(caller, &[domain.to_string()], Role::Write)
            .await?;
        let target = opened(&pass, domain)?;
        if options.background {
            return Ok(UploadOutcome::Started(Box::new(self.spawn_index_task(
                caller,
                target,
                names,
                reader,
                options.full_sync,
            )?)));
        }
        let full_sync = options.full_sync;
        self.blocking(move |s| s.run_job(pass, target, reader, full_sync, None, None))
            .await
            .map(|summary| UploadOutcome::Done(Box::new(summary)))
    }

    /// Runs an indexing job over `items` into `domain` without stopping at a failed record;
    /// `on_ack` hears each acknowledged batch's sequence.
    pub(super) fn run_job(
        &self,
        pass: Pass,
        domain: Domain,
        items: impl IntoIterator<Item = dartmouth_indexer::Result<Item>, IntoIter: Send>,
        full_sync: bool,
        on_ack: Option<&(dyn Fn(u64) + Send + Sync)>,
        stop: Option<&std::sync::atomic::AtomicBool>,
    ) -> ApiResult<IndexSummary> {
        // A task's batches are the CLI's: a long job (a shop's full sync) commits a quarter as
        // often as a request's 64.
        let options = JobOptions {
            stop_on_error: false,
            full_sync,
            on_ack,
            batch_docs: 256,
        };
        let never = std::sync::atomic::AtomicBool::new(false);
        self.with_job(pass, domain, &options, |job| {
            Ok(job.run_until(items, &Progress::hidden(), stop.unwrap_or(&never))?)
        })
    }

    /// Runs `run` with an indexing job into `domain` (which `pass` opens for writing) through
    /// the store: the one way every write path — JSON ingest, catalogs, webhooks, files —
    /// indexes.
    fn with_job<T>(
        &self,
        pass: Pass,
        domain: Domain,
        options: &JobOptions<'_>,
        run: impl FnOnce(IndexJob<'_>) -> ApiResult<T>,
    ) -> ApiResult<T> {
        let applier = self.applier();
        // A switch flipping the domain while the job writes: its batches embedded again.
        let embedder_for = |spec: &dartmouth_engine::ModelSpec| {
            self.embedder(spec)
                .map_err(|e| dartmouth_views::Error::Input(e.message))
        };
        let mut sink = StoreSink::open(&applier, pass, domain)?.embedder_for(&embedder_for);
        if let Some(on_ack) = options.on_ack {
            sink = sink.on_ack(on_ack);
        }
        let settings: DomainSettings = sink.settings().clone();
        let embedder = self.embedder(&settings.model)?;
        let sizer = self
            .models
            .sizer_for(&settings.model)
            .map_err(|e| ApiError::new(Code::Unavailable, format!("tokenizer: {e}")))?;
        run(IndexJob {
            sink: Arc::new(sink),
            embedder: embedder.as_ref(),
            chunker: Chunker::new(sizer, settings.chunk_tokens, settings.chunk_overlap),
            batch_docs: options.batch_docs,
            stop_on_error: options.stop_on_error,
            full_sync: options.full_sync,
        })
    }

    /// Indexes files (Markdown, HTML, text, PDF, JSON records, Shopify exports and webhook
    /// payloads) into `domain`, as `dartmouth index` does.
    pub async fn index_files(
        self: &Arc<Self>,
        caller: &Caller,
        domain: &str,
        files: FileIndex,
    ) -> ApiResult<IndexSummary> {
        let pass = self
            .authorize(caller, &[domain.to_string()], Role::Write)
            .await?;
        let target = opened(&pass, domain)?;
        self.blocking(move |s| {
            let open = || {
                SourceReader::open_with(&files.paths, files.options.clone()).map_err(ApiError::from)
            };
            let options = JobOptions {
                stop_on_error: false,
                full_sync: files.full_sync,
                batch_docs: files.batch_docs,
                on_ack: files.on_ack.as_deref(),
            };
            s.with_job(pass, target, &options, |job| {
                if files.strict {
                    let failures = job.check(open()?);
                    if !failures.is_empty() {
                        let shown: Vec<&str> =
                            failures.iter().take(20).map(String::as_str).collect();
                        return Err(ApiError::invalid(format!(
                            "--strict: {} records are malformed; nothing was written:\n  {}",
                            failures.len(),
                            shown.join("\n  ")
                        )));
                    }
                }
                Ok(job.run(open()?, &files.progress)?)
            })
        })
        .await
    }
}

/// How an indexing job runs.
struct JobOptions<'a> {
    stop_on_error: bool,
    full_sync: bool,
    batch_docs: usize,
    /// Called with each batch's acknowledged sequence.
    on_ack: Option<&'a (dyn Fn(u64) + Send + Sync)>,
}

impl Default for JobOptions<'_> {
    fn default() -> Self {
        JobOptions {
            stop_on_error: false,
            full_sync: false,
            batch_docs: 64,
            on_ack: None,
        }
    }
}

fn document_out(domain: &str, doc: StoredDocument) -> DocumentOut {
    let chunks = doc
        .chunks
        .into_iter()
        .enumerate()
        .map(|(idx, c)| ChunkOut {
            chunk_id: format!("{}#{idx}", doc.external_id),
            idx,
            text: c.text,
            char_start: c.char_start,
            char_end: c.char_end,
            heading: c.heading,
        })
        .collect();
    DocumentOut {
        domain: domain.to_string(),
        doc_id: doc.external_id,
        title: doc.title,
        url: doc.url,
        // As hits show them; a stored form the engine cannot read is shown as stored.
        attributes: serde_json::from_value::<dartmouth_engine::Attributes>(doc.attributes.clone())
            .map(|a| dartmouth_engine::attributes_to_json(&a))
            .unwrap_or(doc.attributes),
        chunks,
    }
}
