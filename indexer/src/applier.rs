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
use dartmouth_domains::names::shown;
use dartmouth_engine::validate;

/// Changes read and applied per shard commit.
const BATCH: u32 = 512;

pub struct Applier<'a> {
    pub store: &'a Store,
    pub catalog: &'a Catalog,
    /// The runtime the store's futures run on; the applier itself is synchronous (shard
    /// commits block), so call it outside async code or from `spawn_blocking`.
    pub runtime: Handle,
    /// Where every catch-up, whichever path runs it, counts what it quarantined and rebuilt.
    pub events: Option<&'a ApplierEvents>,
}

/// What appliers did, counted across every path that catches a shard up (the server's
/// applier task, a `min_seq` read, a write's own catch-up).
#[derive(Debug, Default)]
pub struct ApplierEvents {
    pub quarantined: std::sync::atomic::AtomicU64,
    pub rebuilt: std::sync::atomic::AtomicU64,
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

/// The store's form of a sink write, once the document meets the engine's rules
/// (`dartmouth_engine::validate`): the store must never acknowledge what a shard would refuse.
fn to_write(op: &SinkOp) -> Result<Write> {
    Ok(match op {
        SinkOp::Delete(id) => {
            validate::check_id(id)
                .map_err(|e| Error::bad(format!("delete of `{}`", shown(id)), e.to_string()))?;
            Write::Delete(id.clone())
        }
        SinkOp::Upsert(doc, meta) => {
            validate::check_document(doc).map_err(|e| {
                let place = if meta.place.is_empty() {
                    format!("document `{}`", shown(&doc.id))
                } else {
                    meta.place.clone()
                };
                Error::bad(place, e.to_string())
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

/// What a catch-up did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CatchUp {
    /// The sequence the shard has applied.
    pub seq: u64,
    /// Documents the shard refused and the applier quarantined on the way.
    pub quarantined: usize,
    /// The shard was ahead of the store (a restored backup, a failover to a lagging replica)
    /// and was rebuilt from it.
    pub rebuilt: bool,
}

impl Applier<'_> {
    fn block<T>(&self, f: impl Future<Output = dartmouth_domains::Result<T>>) -> Result<T> {
        self.runtime.block_on(f).map_err(Error::Store)
    }

    /// The shard of this incarnation of the domain: created empty when this node has none,
    /// and replaced by an empty one when the shard on disk was made for a domain of the same
    /// name that has since been deleted (catching up then replays the whole changelog). A
    /// shard made for a domain deleted meanwhile (a search or catch-up racing the delete) is
    /// removed again: it never outlives the check.
    pub fn shard(&self, domain: &Domain) -> Result<Arc<Shard>> {
        let (shard, created) =
            self.catalog
                .ensure(&domain.name, domain_settings(domain)?, &domain.uid)?;
        if created {
            let alive = self
                .block(self.store.domain_by_id(domain.id))?
                .is_some_and(|d| d.uid == domain.uid);
            if !alive {
                drop(shard);
                self.catalog.delete_identified(&domain.name, &domain.uid)?;
                return Err(dartmouth_engine::Error::DomainNotFound(domain.name.clone()).into());
            }
        }
        Ok(shard)
    }

    /// The shard of this incarnation if this node has it, never creating one: what reads use.
    pub fn existing_shard(&self, domain: &Domain) -> Result<Option<Arc<Shard>>> {
        Ok(self
            .catalog
            .find(&domain.name)?
            .filter(|s| s.identity() == Some(domain.uid.as_str())))
    }

    /// Applies every change after the shard's applied sequence, up to the last one committed
    /// when it read the changelog; returns the sequence reached. (Changes committed while it
    /// applies are left to the next call, so a steady stream of writes cannot keep it here.)
    pub fn catch_up(&self, domain: &Domain) -> Result<u64> {
        Ok(self.catch_up_report(domain)?.seq)
    }

    /// [`Applier::catch_up`], saying what it quarantined and whether it had to rebuild.
    pub fn catch_up_report(&self, domain: &Domain) -> Result<CatchUp> {
        let shard = self.shard(domain)?;
        // The shard's sequence first: read after the store's, a write applied in between
        // would look like a shard ahead of its store.
        let mut applied = shard.applied_seq();
        let last = self.block(self.store.last_seq(domain.id))?;
        if applied > last {
            tracing::warn!(
                domain = %domain.name, shard = applied, store = last,
                "the shard has applied changes its store does not hold; rebuilding it from the store"
            );
            drop(shard);
            let mut report = self.rebuild_report(domain)?;
            report.rebuilt = true;
            if let Some(events) = self.events {
                events
                    .rebuilt
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            return Ok(report);
        }
        let mut report = CatchUp {
            seq: applied,
            ..CatchUp::default()
        };
        loop {
            let changes = self.block(self.store.changes_since(domain.id, applied, BATCH))?;
            let full = changes.len() == BATCH as usize;
            if !changes.is_empty() {
                applied = match self.apply_changes(domain, &shard, changes, &mut report) {
                    Ok(seq) => seq,
                    // The shard was replaced (rebuilt, or made for a new incarnation) while
                    // this held it: start again on the current one.
                    Err(Error::Engine(dartmouth_engine::Error::DomainNotFound(_)))
                        if shard.is_retired() =>
                    {
                        drop(shard);
                        let again = self.catch_up_report(domain)?;
                        report.seq = again.seq;
                        report.quarantined += again.quarantined;
                        report.rebuilt |= again.rebuilt;
                        return Ok(report);
                    }
                    Err(e) => return Err(e),
                };
            }
            if !full {
                report.seq = applied;
                return Ok(report);
            }
        }
    }

    /// Applies committed changes in one shard commit. A document the shard would refuse (the
    /// store holds it, so it can only have been written around the validator) is quarantined
    /// with the reason and its older version removed from the shard; everything else applies.
    fn apply_changes(
        &self,
        domain: &Domain,
        shard: &Shard,
        changes: Vec<Change>,
        report: &mut CatchUp,
    ) -> Result<u64> {
        let seq = changes.last().map(|c| c.seq);
        let mut ops = Vec::with_capacity(changes.len());
        for c in changes {
            let op = match c.document {
                None => WriteOp::Delete(c.external_id.clone()),
                Some(doc) => match to_document(doc) {
                    Ok(d) => WriteOp::Upsert(d),
                    Err(e) => {
                        self.quarantine(domain, &c.external_id, c.seq, &e.to_string(), report)?;
                        ops.extend(removal(&c.external_id));
                        continue;
                    }
                },
            };
            match shard.refusal(&op) {
                None => ops.push(op),
                Some(reason) => {
                    self.quarantine(domain, &c.external_id, c.seq, &reason, report)?;
                    ops.extend(removal(&c.external_id));
                }
            }
        }
        Ok(shard
            .apply(WriteBatch {
                model_id: shard.settings().model.id.clone(),
                ops,
                seq,
            })?
            .applied_seq)
    }

    fn quarantine(
        &self,
        domain: &Domain,
        id: &str,
        seq: u64,
        reason: &str,
        report: &mut CatchUp,
    ) -> Result<()> {
        tracing::warn!(
            domain = %domain.name, document = %shown(id), seq, reason,
            "a stored document was refused by the shard: quarantined"
        );
        report.quarantined += 1;
        if let Some(events) = self.events {
            events
                .quarantined
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.block(self.store.quarantine(domain, id, seq, reason))
    }

    /// Removes a deleted domain's shard (nothing to do when this node never had it, or when
    /// the shard there already belongs to a domain created again under the name).
    pub fn remove_shard(&self, domain: &Domain) -> Result<()> {
        self.catalog.delete_identified(&domain.name, &domain.uid)?;
        Ok(())
    }

    /// Removes shards whose domain no longer exists in the store (deleted through another
    /// node): `live` is every domain the store holds. Shards made without a store (no
    /// identity: evaluation) are left alone. Returns the names removed.
    pub fn remove_orphans(&self, live: &[Domain]) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        for name in self.catalog.list()? {
            if live.iter().any(|d| d.name == name) {
                continue;
            }
            let identity = self
                .catalog
                .identity_of(&name)?
                .filter(|id| !live.iter().any(|d| &d.uid == id));
            if let Some(identity) = identity
                && self.catalog.delete_identified(&name, &identity)?
            {
                removed.push(name);
            }
        }
        Ok(removed)
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
    /// A read never creates a shard: a domain this node has no shard of yet (just created, or
    /// created again) is searched as empty until the applier makes it.
    pub fn reader_as_is(&self, pass: &Pass) -> Result<Reader> {
        let mut shards = Vec::with_capacity(pass.domains().len());
        for d in pass.domains() {
            shards.extend(self.existing_shard(d)?);
        }
        Ok(Reader { shards })
    }

    /// Rebuilds the domain's shard from the store (no re-embedding) next to the current one and
    /// swaps it in; changes committed meanwhile are applied after the swap. Documents the shard
    /// refuses are quarantined, and the rebuild completes without them.
    pub fn rebuild(&self, domain: &Domain) -> Result<u64> {
        Ok(self.rebuild_report(domain)?.seq)
    }

    fn rebuild_report(&self, domain: &Domain) -> Result<CatchUp> {
        let settings = domain_settings(domain)?;
        // The sequence first: the documents read after it are at least that recent, and
        // `catch_up` re-applies anything newer (upserts carry the current state).
        let upto = self.block(self.store.last_seq(domain.id))?;
        let docs = self.block(self.store.all_documents(domain.id))?;
        let dir = self.catalog.scratch_dir(&domain.name)?;
        let model_id = settings.model.id.clone();
        let shard = Shard::create_identified(&dir, &domain.name, settings, Some(&domain.uid))?;
        let mut report = CatchUp::default();
        let mut docs = docs.into_iter().peekable();
        while docs.peek().is_some() {
            let mut ops = Vec::with_capacity(BATCH as usize);
            for d in docs.by_ref().take(BATCH as usize) {
                let id = d.external_id.clone();
                let refusal = match to_document(d) {
                    Ok(doc) => {
                        let op = WriteOp::Upsert(doc);
                        match shard.refusal(&op) {
                            None => {
                                ops.push(op);
                                continue;
                            }
                            Some(reason) => reason,
                        }
                    }
                    Err(e) => e.to_string(),
                };
                self.quarantine(domain, &id, upto, &refusal, &mut report)?;
            }
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
        let caught_up = self.catch_up_report(domain)?;
        report.seq = caught_up.seq;
        report.quarantined += caught_up.quarantined;
        Ok(report)
    }
}

/// The operation that takes a refused document out of the shard: a delete of its id, unless
/// the id itself is one the shard refuses (then the shard cannot hold it).
fn removal(id: &str) -> Option<WriteOp> {
    validate::check_id(id)
        .ok()
        .map(|()| WriteOp::Delete(id.to_string()))
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

    /// Each opened domain's identity (never reused, unlike its name) with the changelog
    /// sequence its shard has applied: what a cached result or embedding is keyed by.
    pub fn applied(&self) -> impl Iterator<Item = (&str, u64)> {
        self.shards
            .iter()
            .map(|s| (s.identity().unwrap_or(""), s.applied_seq()))
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
        let seq = self.applier.runtime.block_on(commit(
            self.applier.store,
            &self.pass,
            &self.domain.name,
            &ops,
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

    fn sources(&self, ids: &[String]) -> Result<HashMap<String, String>> {
        self.applier
            .block(self.applier.store.document_sources(self.domain.id, ids))
    }
}
