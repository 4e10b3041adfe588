//! The one door to the store's writes: every document checked by the engine's validator
//! before the transaction, and the indexing job's sink that writes through it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use dartmouth_domains::names::shown;
use dartmouth_domains::{Domain, Pass, Store, StoredChunk, StoredDocument, Write};
use dartmouth_engine::{DomainSettings, validate};
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

/// Commits `ops` to `domain` through the store, every document checked first by the one
/// validator; returns the sequence that acknowledges them. Nothing is stored when any fails.
/// The only caller of `Store::write` outside tests (`clippy.toml` `disallowed-methods`).
pub async fn commit(store: &Store, pass: &Pass, domain: &str, ops: &[SinkOp]) -> Result<u64> {
    let writes = ops.iter().map(to_write).collect::<Result<Vec<_>>>()?;
    #[allow(
        clippy::disallowed_methods,
        reason = "every write was validated just above"
    )]
    store
        .write(pass, domain, &writes)
        .await
        .map_err(Error::Store)
}

/// An indexing job's sink that writes through the store: each batch commits to the store with
/// its changelog rows (the acknowledgement), then the applier brings the shard up to it. It
/// holds no shard: a catch-up may replace the shard (rebuilt because it was ahead of its
/// store), and each step looks up the current one.
pub struct StoreSink<'a> {
    applier: &'a Applier<'a>,
    pass: Pass,
    domain: Domain,
    settings: DomainSettings,
    acknowledged: AtomicU64,
    on_ack: Option<&'a (dyn Fn(u64) + Send + Sync)>,
}

impl<'a> StoreSink<'a> {
    /// Brings the domain's shard up to its store first, so that a job that writes nothing
    /// (a retried webhook) still answers a sequence covering what the store holds.
    pub fn open(applier: &'a Applier<'a>, pass: Pass, domain: Domain) -> Result<Self> {
        let seq = applier.catch_up(&domain)?;
        // The shard's model and chunking (what its vectors were made with), and the store's
        // catalog settings (a domain's admin may change them; they apply to what is written next).
        let mut settings = applier.shard(&domain)?.settings().clone();
        settings.catalog = crate::settings::domain_settings(&domain)?.catalog;
        Ok(StoreSink {
            applier,
            pass,
            domain,
            settings,
            acknowledged: AtomicU64::new(seq),
            on_ack: None,
        })
    }

    /// Calls `f` with each batch's acknowledged sequence once the store has committed it and
    /// the shard applied it (`dartmouth index --print-acks`).
    pub fn on_ack(self, f: &'a (dyn Fn(u64) + Send + Sync)) -> Self {
        StoreSink {
            on_ack: Some(f),
            ..self
        }
    }

    fn commit_and_apply(&self, model_id: &str, ops: &[SinkOp]) -> Result<u64> {
        if model_id != self.settings.model.id {
            return Err(dartmouth_engine::Error::ModelMismatch {
                expected: self.settings.model.id.clone(),
                got: model_id.to_string(),
            }
            .into());
        }
        let seq = self.applier.runtime.block_on(commit(
            self.applier.store,
            &self.pass,
            &self.domain.name,
            ops,
        ))?;
        let applied = self.applier.catch_up(&self.domain)?;
        self.acknowledged.fetch_max(applied, Ordering::AcqRel);
        if let Some(on_ack) = self.on_ack {
            on_ack(seq);
        }
        Ok(seq)
    }
}

impl Sink for StoreSink<'_> {
    fn name(&self) -> &str {
        &self.domain.name
    }

    fn settings(&self) -> &DomainSettings {
        &self.settings
    }

    fn acknowledged(&self) -> u64 {
        self.acknowledged.load(Ordering::Acquire)
    }

    fn write(&self, model_id: &str, ops: Vec<SinkOp>) -> dartmouth_indexer::Result<u64> {
        self.commit_and_apply(model_id, &ops)
            .map_err(Error::into_sink)
    }

    fn finish(&self) -> dartmouth_indexer::Result<()> {
        match self
            .applier
            .existing_shard(&self.domain)
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
                    .reusable(&self.pass, &self.domain.name, ids),
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
                    .document_by_key(&self.pass, &self.domain.name, key),
            )
            .map_err(Error::into_sink)
    }

    fn document_ids(&self) -> dartmouth_indexer::Result<Option<Vec<String>>> {
        self.applier
            .block(
                self.applier
                    .store
                    .document_ids(&self.pass, &self.domain.name),
            )
            .map(Some)
            .map_err(Error::into_sink)
    }

    fn sources(&self, ids: &[String]) -> dartmouth_indexer::Result<HashMap<String, String>> {
        self.applier
            .block(
                self.applier
                    .store
                    .document_sources(&self.pass, &self.domain.name, ids),
            )
            .map_err(Error::into_sink)
    }
}
