//! The applier: brings shards up to the store's changelog. Every batch is applied with the
//! sequence of its last change, which the shard records in the same commit; sequences at or
//! below the shard's are skipped, so replay after a crash is idempotent.

use std::collections::HashMap;
use std::sync::Arc;

use dartmouth_domains::{
    Change, Domain, Pass, Reusable, Store, StoredChunk, StoredDocument, Write,
};
use dartmouth_engine::{
    Attributes, Catalog, Chunk, Document, DomainSettings, ModelSpec, SearchRequest, SearchResponse,
    Shard, WriteBatch, WriteOp,
};
use tokio::runtime::Handle;

use crate::job::{Sink, SinkOp};
use crate::{Error, Result};

/// Changes read and applied per shard commit.
const BATCH: u32 = 512;

pub struct Applier<'a> {
    pub store: &'a Store,
    pub catalog: &'a Catalog,
    /// The runtime the store's futures run on; the applier itself is synchronous (shard
    /// commits block), so call it outside async code or from `spawn_blocking`.
    pub runtime: Handle,
}

/// The engine's settings of a domain, from its JSON in the store.
pub fn domain_settings(domain: &Domain) -> Result<DomainSettings> {
    serde_json::from_value(domain.settings.clone()).map_err(|e| {
        Error::Input(format!(
            "domain `{}`: settings in the store are unreadable: {e}",
            domain.name
        ))
    })
}

/// The settings a new domain is stored with, once its name (which names its shard directory)
/// and its settings are checked: call before `Store::create_domain`, so that a domain the
/// engine cannot hold is never stored.
pub fn new_domain_settings(name: &str, settings: &DomainSettings) -> Result<serde_json::Value> {
    dartmouth_engine::validate_domain_name(name)?;
    settings.validate()?;
    serde_json::to_value(settings).map_err(|e| Error::Input(format!("domain `{name}`: {e}")))
}

pub fn to_document(doc: StoredDocument) -> Result<Document> {
    let attributes: Attributes = serde_json::from_value(doc.attributes).map_err(|e| {
        Error::Input(format!(
            "document `{}`: attributes in the store are unreadable: {e}",
            doc.external_id
        ))
    })?;
    Ok(Document {
        id: doc.external_id,
        title: doc.title,
        url: doc.url,
        attributes,
        chunks: doc
            .chunks
            .into_iter()
            .map(|c| Chunk {
                text: c.text,
                char_start: c.char_start,
                char_end: c.char_end,
                heading: c.heading,
                embedding: c.embedding,
            })
            .collect(),
    })
}

/// The store's form of a sink write.
pub fn to_write(op: &SinkOp) -> Result<Write> {
    Ok(match op {
        SinkOp::Delete(id) => Write::Delete(id.clone()),
        SinkOp::Upsert(doc, meta) => Write::Upsert(StoredDocument {
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
        }),
    })
}

fn batch_of(changes: Vec<Change>, model_id: &str) -> Result<WriteBatch> {
    let seq = changes.last().map(|c| c.seq);
    let ops = changes
        .into_iter()
        .map(|c| match c.document {
            Some(doc) => Ok(WriteOp::Upsert(to_document(doc)?)),
            None => Ok(WriteOp::Delete(c.external_id)),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(WriteBatch {
        model_id: model_id.to_string(),
        ops,
        seq,
    })
}

impl Applier<'_> {
    fn block<T>(&self, f: impl Future<Output = dartmouth_domains::Result<T>>) -> Result<T> {
        self.runtime.block_on(f).map_err(Error::Store)
    }

    /// The domain's shard, created empty when this node has none yet.
    pub fn shard(&self, domain: &Domain) -> Result<Arc<Shard>> {
        match self.catalog.get(&domain.name) {
            Ok(s) => Ok(s),
            Err(dartmouth_engine::Error::DomainNotFound(_)) => Ok(self
                .catalog
                .create(&domain.name, domain_settings(domain)?)?),
            Err(e) => Err(e.into()),
        }
    }

    /// Applies every change after the shard's applied sequence, up to the last one committed
    /// when it read the changelog; returns the sequence reached. (Changes committed while it
    /// applies are left to the next call, so a steady stream of writes cannot keep it here.)
    pub fn catch_up(&self, domain: &Domain) -> Result<u64> {
        let shard = self.shard(domain)?;
        let model_id = shard.settings().model.id.clone();
        let mut applied = shard.applied_seq();
        loop {
            let changes = self.block(self.store.changes_since(domain.id, applied, BATCH))?;
            let full = changes.len() == BATCH as usize;
            if !changes.is_empty() {
                applied = shard.apply(batch_of(changes, &model_id)?)?.applied_seq;
            }
            if !full {
                return Ok(applied);
            }
        }
    }

    /// Removes a deleted domain's shard (nothing to do when this node never had it).
    pub fn remove_shard(&self, name: &str) -> Result<()> {
        match self.catalog.delete(name) {
            Ok(()) | Err(dartmouth_engine::Error::DomainNotFound(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The shards `pass` opens, each caught up to the store: the one way to search a domain.
    pub fn reader(&self, pass: &Pass) -> Result<Reader> {
        let shards = pass
            .domains()
            .iter()
            .map(|d| {
                self.catch_up(d)?;
                self.shard(d)
            })
            .collect::<Result<_>>()?;
        Ok(Reader { shards })
    }

    /// The shards `pass` opens as they are, for a server whose applier tails the changelog.
    pub fn reader_as_is(&self, pass: &Pass) -> Result<Reader> {
        let shards = pass
            .domains()
            .iter()
            .map(|d| self.shard(d))
            .collect::<Result<_>>()?;
        Ok(Reader { shards })
    }

    /// Rebuilds the domain's shard from the store (no re-embedding) next to the current one and
    /// swaps it in; changes committed meanwhile are applied after the swap.
    pub fn rebuild(&self, domain: &Domain) -> Result<u64> {
        let settings = domain_settings(domain)?;
        // The sequence first: the documents read after it are at least that recent, and
        // `catch_up` re-applies anything newer (upserts carry the current state).
        let upto = self.block(self.store.last_seq(domain.id))?;
        let docs = self.block(self.store.all_documents(domain.id))?;
        let dir = self.catalog.scratch_dir(&domain.name)?;
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(Error::io(&dir))?;
        }
        let model_id = settings.model.id.clone();
        let shard = Shard::create(&dir, &domain.name, settings)?;
        let mut docs = docs.into_iter().peekable();
        while docs.peek().is_some() {
            let ops = docs
                .by_ref()
                .take(BATCH as usize)
                .map(|d| Ok(WriteOp::Upsert(to_document(d)?)))
                .collect::<Result<Vec<_>>>()?;
            shard.apply_unsequenced(WriteBatch {
                model_id: model_id.clone(),
                ops,
                seq: None,
            })?;
        }
        if upto > 0 {
            shard.apply(WriteBatch {
                model_id,
                ops: Vec::new(),
                seq: Some(upto),
            })?;
        }
        shard.checkpoint()?;
        drop(shard);
        self.catalog.replace(&domain.name, &dir)?;
        self.catch_up(domain)
    }
}

/// What a [`Pass`] lets its holder search. Built only by [`Applier::reader`], so a search
/// cannot reach a shard the pass does not open (`clippy.toml` forbids calling
/// `dartmouth_engine::search` anywhere else outside tests, evaluation and benchmarks).
pub struct Reader {
    shards: Vec<Arc<Shard>>,
}

impl Reader {
    /// The embedding model every opened domain shares (`None` when the pass opens none); an
    /// error when they differ, since one query vector cannot serve two models.
    pub fn model(&self) -> Result<Option<&ModelSpec>> {
        let Some(first) = self.shards.first() else {
            return Ok(None);
        };
        let spec = &first.settings().model;
        if let Some(other) = self.shards.iter().find(|s| &s.settings().model != spec) {
            return Err(Error::Input(format!(
                "domains {} and {} use different embedding models; search them separately",
                first.name(),
                other.name()
            )));
        }
        Ok(Some(spec))
    }

    pub fn domains(&self) -> impl Iterator<Item = &str> {
        self.shards.iter().map(|s| s.name())
    }

    /// Each opened domain with the changelog sequence its shard has applied.
    pub fn applied(&self) -> impl Iterator<Item = (&str, u64)> {
        self.shards.iter().map(|s| (s.name(), s.applied_seq()))
    }

    /// Searches the opened domains. A pass that opens none finds nothing (there is no model to
    /// embed the query with, so no vector is required).
    pub fn search(&self, req: &SearchRequest) -> Result<SearchResponse> {
        if self.shards.is_empty() {
            req.validate_parameters()?;
            return Ok(SearchResponse::default());
        }
        let refs: Vec<&Shard> = self.shards.iter().map(Arc::as_ref).collect();
        #[allow(clippy::disallowed_methods, reason = "the pass scoped these shards")]
        Ok(dartmouth_engine::search(&refs, req)?)
    }

    /// [`Reader::search`] for a request whose query vector `embed` computes; in hybrid mode the
    /// BM25 branch runs meanwhile (`dartmouth_engine::search_embedding`).
    pub fn search_embedding(
        &self,
        req: &SearchRequest,
        embed: dartmouth_engine::EmbedQuery<'_>,
    ) -> Result<SearchResponse> {
        if self.shards.is_empty() {
            req.validate_parameters()?;
            return Ok(SearchResponse::default());
        }
        let refs: Vec<&Shard> = self.shards.iter().map(Arc::as_ref).collect();
        #[allow(clippy::disallowed_methods, reason = "the pass scoped these shards")]
        Ok(dartmouth_engine::search_embedding(&refs, req, embed)?)
    }
}

/// An indexing job's sink that writes through the store: each batch commits to the store with
/// its changelog rows (the acknowledgement), then the applier brings the shard up to it.
pub struct StoreSink<'a> {
    pub applier: &'a Applier<'a>,
    pub pass: Pass,
    pub domain: Domain,
    pub shard: Arc<Shard>,
}

impl Sink for StoreSink<'_> {
    fn name(&self) -> &str {
        &self.domain.name
    }

    fn settings(&self) -> &DomainSettings {
        self.shard.settings()
    }

    fn acknowledged(&self) -> u64 {
        self.shard.applied_seq()
    }

    fn write(&self, model_id: &str, ops: Vec<SinkOp>) -> Result<u64> {
        if model_id != self.shard.settings().model.id {
            return Err(dartmouth_engine::Error::ModelMismatch {
                expected: self.shard.settings().model.id.clone(),
                got: model_id.to_string(),
            }
            .into());
        }
        let writes = ops.iter().map(to_write).collect::<Result<Vec<_>>>()?;
        let seq = self.applier.block(self.applier.store.write(
            &self.pass,
            &self.domain.name,
            &writes,
        ))?;
        self.applier.catch_up(&self.domain)?;
        Ok(seq)
    }

    fn finish(&self) -> Result<()> {
        Ok(self.shard.checkpoint()?)
    }

    fn reusable(&self, ids: &[String]) -> Result<HashMap<String, Reusable>> {
        self.applier
            .block(self.applier.store.reusable(self.domain.id, ids))
    }

    fn by_key(&self, key: &str) -> Result<Option<(String, Option<String>)>> {
        self.applier
            .block(self.applier.store.document_by_key(self.domain.id, key))
    }

    fn document_ids(&self) -> Result<Option<Vec<String>>> {
        Ok(Some(
            self.applier
                .block(self.applier.store.document_ids(self.domain.id))?,
        ))
    }
}
