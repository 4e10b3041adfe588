//! The one door to the store's writes: every document checked by the engine's validator
//! before the transaction, and the indexing job's sink that writes through it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use dartmouth_catalog::CatalogSettings;
use dartmouth_domains::names::shown;
use dartmouth_domains::{Domain, Pass, Store, StoredChunk, StoredDocument, Write};
use dartmouth_engine::{DomainSettings, Embedder, ModelSpec, validate};
use dartmouth_indexer::{Reusable, Sink, SinkOp};

use crate::applier::Applier;
use crate::{Error, Result};

/// The store's form of a sink write, once the document meets the engine's rules
/// (`dartmouth_engine::validate`): the store must never acknowledge what a shard would refuse.
fn to_write(op: &SinkOp) -> Result<Write> {
    Ok(match op {
        SinkOp::Delete(id) => {
            validate::check_id(id).map_err(|e| Error::BadDocument {
                place: format!("delete of `{}`", shown(id)),
                message: e.to_string(),
            })?;
            Write::Delete(id.clone())
        }
        SinkOp::Upsert(doc, meta) => {
            validate::check_document(doc).map_err(|e| {
                let place = if meta.place.is_empty() {
                    format!("document `{}`", shown(&doc.id))
                } else {
                    meta.place.clone()
                };
                Error::BadDocument {
                    place,
                    message: e.to_string(),
                }
            })?;
            Write::Upsert(StoredDocument {
                external_id: doc.id.clone(),
                title: doc.title.clone(),
                url: doc.url.clone(),
                attributes: serde_json::to_value(&doc.attributes)
                    .map_err(|e| Error::Input(format!("document `{}`: {e}", doc.id)))?,
                content_hash: meta.content_hash.clone(),
                chunks: doc
                    .chunks
                    .iter()
                    .map(|c| StoredChunk {
                        text: c.text.clone(),
                        char_start: c.char_start,
                        char_end: c.char_end,
                        heading: c.heading.clone(),
                        embedding: c.embedding.clone(),
                    })
                    .collect(),
                source: meta.source.clone(),
                keys: meta.keys.clone(),
            })
        }
    })
}

/// Commits `ops` (embedded with `model_id`) to `domain` through the store, every document
/// checked first by the one validator; returns the sequence that acknowledges them. Nothing is
/// stored when any fails. The only caller of `Store::write` outside tests (`clippy.toml`
/// `disallowed-methods`).
pub async fn commit(
    store: &Store,
    pass: &Pass,
    domain: &str,
    model_id: &str,
    ops: &[SinkOp],
) -> Result<u64> {
    let writes = ops.iter().map(to_write).collect::<Result<Vec<_>>>()?;
    #[allow(
        clippy::disallowed_methods,
        reason = "every write was validated just above"
    )]
    store
        .write(pass, domain, model_id, &writes)
        .await
        .map_err(Error::Store)
}

/// The embedder of a model, for a sink whose domain switched models while a job wrote to it.
pub type EmbedderFor<'a> = &'a (dyn Fn(&ModelSpec) -> Result<Arc<dyn Embedder>> + Send + Sync);

/// The same documents embedded again with `embedder` (their chunks' inputs as the indexing job
/// makes them).
fn embedded_again(embedder: &dyn Embedder, ops: &mut [SinkOp]) -> Result<()> {
    let mut inputs = Vec::new();
    for op in ops.iter() {
        if let SinkOp::Upsert(doc, _) = op {
            inputs.extend(
                doc.chunks
                    .iter()
                    .map(|c| dartmouth_indexer::embedding_input(&doc.title, &c.text)),
            );
        }
    }
    let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let mut vectors = embedder.embed_batch(&refs)?.into_iter();
    for op in ops.iter_mut() {
        if let SinkOp::Upsert(doc, _) = op {
            for c in &mut doc.chunks {
                c.embedding = vectors
                    .next()
                    .ok_or_else(|| Error::Input("the embedder returned too few vectors".into()))?;
            }
        }
    }
    Ok(())
}

/// An indexing job's sink that writes through the store: each batch commits to the store with
/// its changelog rows (the acknowledgement), then the applier brings the shard up to it. It
/// holds no shard: a catch-up may replace the shard (rebuilt because it was ahead of its
/// store), and each step looks up the current one.
pub struct StoreSink<'a> {
    applier: &'a Applier<'a>,
    pass: Pass,
    /// The domain as last read (again after it switched models under the job).
    domain: Mutex<Domain>,
    /// The domain's name (the sink's name).
    settings_name: String,
    settings: DomainSettings,
    catalog: CatalogSettings,
    acknowledged: AtomicU64,
    on_ack: Option<&'a (dyn Fn(u64) + Send + Sync)>,
    embedder_for: Option<EmbedderFor<'a>>,
}

impl<'a> StoreSink<'a> {
    /// Brings the domain's shard up to its store first, so that a job that writes nothing
    /// (a retried webhook) still answers a sequence covering what the store holds.
    pub fn open(applier: &'a Applier<'a>, pass: Pass, domain: Domain) -> Result<Self> {
        let seq = applier.catch_up(&domain)?;
        // The shard's model and chunking (what its vectors were made with), and the store's
        // catalog settings (a domain's admin may change them; they apply to what is written next).
        let settings = applier.shard(&domain)?.settings().clone();
        let catalog = crate::settings::catalog_settings(&domain)?;
        Ok(StoreSink {
            applier,
            pass,
            settings_name: domain.name.clone(),
            domain: Mutex::new(domain),
            settings,
            catalog,
            acknowledged: AtomicU64::new(seq),
            on_ack: None,
            embedder_for: None,
        })
    }

    /// When the domain switches models while the job writes, a batch embedded with the old
    /// model is embedded again with the new one (from `f`) and written: writes never fail
    /// because of a switch. Without it, such a batch fails.
    pub fn embedder_for(self, f: EmbedderFor<'a>) -> Self {
        StoreSink {
            embedder_for: Some(f),
            ..self
        }
    }

    fn domain(&self) -> Domain {
        match self.domain.lock() {
            Ok(d) => d.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Calls `f` with each batch's acknowledged sequence once the store has committed it and
    /// the shard applied it (`dartmouth index --print-acks`).
    pub fn on_ack(self, f: &'a (dyn Fn(u64) + Send + Sync)) -> Self {
        StoreSink {
            on_ack: Some(f),
            ..self
        }
    }

    fn commit_and_apply(&self, model_id: &str, mut ops: Vec<SinkOp>) -> Result<u64> {
        let name = self.domain().name;
        let mut model_id = model_id.to_string();
        // A switch flips at most once between two reads of the domain; a few tries suffice.
        let mut tries = 0;
        let seq = loop {
            let written = self.applier.runtime.block_on(commit(
                self.applier.store,
                &self.pass,
                &name,
                &model_id,
                &ops,
            ));
            match written {
                Err(Error::Store(dartmouth_domains::Error::ModelChanged { model, .. }))
                    if tries < 3 && self.embedder_for.is_some() =>
                {
                    tries += 1;
                    let spec: ModelSpec = serde_json::from_value(model)
                        .map_err(|e| Error::Unreadable(format!("domain `{name}`: {e}")))?;
                    let embedder = self.embedder_for.map(|f| f(&spec)).transpose()?;
                    if let Some(embedder) = embedder {
                        embedded_again(embedder.as_ref(), &mut ops)?;
                    }
                    model_id = spec.id;
                    let fresh = self.applier.block(
                        self.applier
                            .store
                            .domain_by_id(&self.applier.store.system(), self.domain().id),
                    )?;
                    if let (Some(fresh), Ok(mut d)) = (fresh, self.domain.lock()) {
                        *d = fresh;
                    }
                }
                other => break other?,
            }
        };
        let applied = self.applier.catch_up(&self.domain())?;
        self.acknowledged.fetch_max(applied, Ordering::AcqRel);
        if let Some(on_ack) = self.on_ack {
            on_ack(seq);
        }
        Ok(seq)
    }
}

impl Sink for StoreSink<'_> {
    fn name(&self) -> &str {
        &self.settings_name
    }

    fn settings(&self) -> &DomainSettings {
        &self.settings
    }

    fn catalog(&self) -> &CatalogSettings {
        &self.catalog
    }

    fn acknowledged(&self) -> u64 {
        self.acknowledged.load(Ordering::Acquire)
    }

    fn write(&self, model_id: &str, ops: Vec<SinkOp>) -> dartmouth_indexer::Result<u64> {
        self.commit_and_apply(model_id, ops)
            .map_err(Error::into_sink)
    }

    fn finish(&self) -> dartmouth_indexer::Result<()> {
        match self
            .applier
            .existing_shard(&self.domain())
            .map_err(Error::into_sink)?
        {
            Some(shard) => Ok(shard.checkpoint()?),
            // Deleted meanwhile: there is nothing left to make durable.
            None => Ok(()),
        }
    }

    fn reusable(&self, ids: &[String]) -> dartmouth_indexer::Result<HashMap<String, Reusable>> {
        let stored = self
            .applier
            .block(
                self.applier
                    .store
                    .reusable(&self.pass, &self.domain().name, ids),
            )
            .map_err(Error::into_sink)?;
        Ok(stored
            .into_iter()
            .map(|(id, r)| {
                let reusable = Reusable {
                    content_hash: r.content_hash,
                    title: r.title,
                    chunks: r.chunks,
                };
                (id, reusable)
            })
            .collect())
    }

    fn by_key(&self, key: &str) -> dartmouth_indexer::Result<Option<(String, Option<String>)>> {
        self.applier
            .block(
                self.applier
                    .store
                    .document_by_key(&self.pass, &self.domain().name, key),
            )
            .map_err(Error::into_sink)
    }

    fn document_ids(&self) -> dartmouth_indexer::Result<Option<Vec<String>>> {
        self.applier
            .block(
                self.applier
                    .store
                    .document_ids(&self.pass, &self.domain().name),
            )
            .map(Some)
            .map_err(Error::into_sink)
    }

    fn sources(&self, ids: &[String]) -> dartmouth_indexer::Result<HashMap<String, String>> {
        self.applier
            .block(
                self.applier
                    .store
                    .document_sources(&self.pass, &self.domain().name, ids),
            )
            .map_err(Error::into_sink)
    }
}
