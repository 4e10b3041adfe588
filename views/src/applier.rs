//! The applier: brings shards up to the store's changelog. Every batch is applied with the
//! sequence of its last change, which the shard records in the same commit; sequences at or
//! below the shard's are skipped, so replay after a crash is idempotent.

use std::sync::Arc;

use dartmouth_domains::names::shown;
use dartmouth_domains::{Change, Domain, Store};
use dartmouth_engine::{Catalog, Shard, WriteBatch, WriteOp, validate};
use tokio::runtime::Handle;

use crate::settings::{domain_settings, to_document};
use crate::{Error, Result};

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
    pub(crate) fn block<T>(
        &self,
        f: impl Future<Output = dartmouth_domains::Result<T>>,
    ) -> Result<T> {
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
                .block(self.store.domain_by_id(&self.store.system(), domain.id))?
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
        let last = self.block(self.store.last_seq(&self.store.system(), domain.id))?;
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
            let changes = self.block(self.store.changes_since(
                &self.store.system(),
                domain.id,
                applied,
                BATCH,
            ))?;
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
        self.block(
            self.store
                .quarantine(&self.store.system(), domain, id, seq, reason),
        )
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
        let upto = self.block(self.store.last_seq(&self.store.system(), domain.id))?;
        let docs = self.block(self.store.all_documents(&self.store.system(), domain.id))?;
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
