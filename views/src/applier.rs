//! The applier: brings shards up to the store's changelog. Every batch is applied with the
//! sequence of its last change, which the shard records in the same commit; sequences at or
//! below the shard's are skipped, so replay after a crash is idempotent.

use std::sync::Arc;

use dartmouth_domains::names::shown;
use dartmouth_domains::{Change, Domain, Store};
use dartmouth_engine::{Shard, Shards, WriteBatch, WriteOp, validate};
use tokio::runtime::Handle;

use crate::settings::{Generation, to_document};
use crate::{Error, Result};

/// Changes read and applied per shard commit.
const BATCH: u32 = 512;

pub struct Applier<'a> {
    pub store: &'a Store,
    pub shards: &'a Shards,
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
        let serving = Generation::serving(domain)?;
        self.generation_shard(domain, &serving)
    }

    /// The shard of one generation of the domain (see [`Applier::shard`]).
    pub fn generation_shard(&self, domain: &Domain, generation: &Generation) -> Result<Arc<Shard>> {
        let (shard, created) = self.shards.ensure(
            &generation.key,
            generation.settings.clone(),
            &generation.identity,
        )?;
        if created {
            let alive = self
                .block(self.store.domain_by_id(&self.store.system(), domain.id))?
                .is_some_and(|d| d.uid == domain.uid);
            if !alive {
                drop(shard);
                self.shards
                    .delete_identified(&generation.key, &generation.identity)?;
                return Err(dartmouth_engine::Error::DomainNotFound(domain.name.clone()).into());
            }
        }
        Ok(shard)
    }

    /// The shard that serves this incarnation's reads on this node, if it has one, never
    /// creating one: the serving generation's, except just after a switch, while that one has
    /// not yet applied every write up to the moment it took over and the kept one has.
    pub fn existing_shard(&self, domain: &Domain) -> Result<Option<Arc<Shard>>> {
        let held = |g: &Generation| -> Result<Option<Arc<Shard>>> {
            Ok(self
                .shards
                .find(&g.key)?
                .filter(|s| s.identity() == Some(g.identity.as_str())))
        };
        let serving = held(&Generation::serving(domain)?)?;
        let Some(kept) = domain.generations.kept() else {
            return Ok(serving);
        };
        if serving
            .as_ref()
            .is_some_and(|s| s.applied_seq() >= kept.flip_seq)
        {
            return Ok(serving);
        }
        let old = Generation::other(domain)?
            .map(|g| held(&g))
            .transpose()?
            .flatten();
        Ok(old.filter(|s| s.applied_seq() >= kept.flip_seq).or(serving))
    }

    /// Applies every change after the shard's applied sequence, up to the last one committed
    /// when it read the changelog; returns the sequence reached. (Changes committed while it
    /// applies are left to the next call, so a steady stream of writes cannot keep it here.)
    pub fn catch_up(&self, domain: &Domain) -> Result<u64> {
        Ok(self.catch_up_report(domain)?.seq)
    }

    /// [`Applier::catch_up`], saying what it quarantined and whether it had to rebuild. Every
    /// generation's shard is brought up (the serving one first); the report is the serving
    /// one's.
    pub fn catch_up_report(&self, domain: &Domain) -> Result<CatchUp> {
        let serving = Generation::serving(domain)?;
        let report = self.catch_up_generation(domain, &serving)?;
        if let Some(other) = Generation::other(domain)? {
            let theirs = self.catch_up_generation(domain, &other)?;
            return Ok(CatchUp {
                quarantined: report.quarantined + theirs.quarantined,
                rebuilt: report.rebuilt || theirs.rebuilt,
                ..report
            });
        }
        Ok(report)
    }

    /// Brings one generation's shard up to the changelog.
    pub fn catch_up_generation(&self, domain: &Domain, generation: &Generation) -> Result<CatchUp> {
        let shard = self.generation_shard(domain, generation)?;
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
            let mut report = self.rebuild_report(domain, generation)?;
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
                generation.slot,
                applied,
                BATCH,
            ))?;
            let full = changes.len() == BATCH as usize;
            if !changes.is_empty() {
                applied = match self.apply_changes(domain, generation, &shard, changes, &mut report)
                {
                    Ok(seq) => seq,
                    // The shard was replaced (rebuilt, or made for a new incarnation) while
                    // this held it: start again on the current one.
                    Err(Error::Engine(dartmouth_engine::Error::DomainNotFound(_)))
                        if shard.is_retired() =>
                    {
                        drop(shard);
                        let again = self.catch_up_generation(domain, generation)?;
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
    ///
    /// A change meant for another slot's shards, and a document whose vectors this generation
    /// does not have yet (written since its switch began; the backfill brings them with a
    /// change of its own), change nothing here.
    fn apply_changes(
        &self,
        domain: &Domain,
        generation: &Generation,
        shard: &Shard,
        changes: Vec<Change>,
        report: &mut CatchUp,
    ) -> Result<u64> {
        let seq = changes.last().map(|c| c.seq);
        let mut ops = Vec::with_capacity(changes.len());
        for c in changes {
            if c.slot.is_some_and(|s| s != generation.slot) {
                continue;
            }
            let op = match c.document {
                None => WriteOp::Delete(c.external_id.clone()),
                Some(doc) if doc.chunks.iter().any(|k| k.embedding.is_empty()) => continue,
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

    /// Removes a deleted domain's shards, every generation's (nothing to do when this node
    /// never had them, or when the shard there already belongs to a domain created again
    /// under the name).
    pub fn remove_shard(&self, domain: &Domain) -> Result<()> {
        for g in Generation::all(domain)? {
            self.shards.delete_identified(&g.key, &g.identity)?;
        }
        Ok(())
    }

    /// Removes shards whose domain no longer exists in the store (deleted through another
    /// node), and shards of generations a live domain no longer has (a switch abandoned, a
    /// kept generation dropped): `live` is every domain the store holds. Shards made without a
    /// store (no identity: evaluation) are left alone. Returns the keys removed.
    pub fn remove_orphans(&self, live: &[Domain]) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        for key in self.shards.list_keys()? {
            let Some(identity) = self.shards.identity_of(&key)? else {
                continue;
            };
            let name = dartmouth_engine::validate_shard_key(&key)?;
            let doomed = match live.iter().find(|d| d.name == name) {
                // A generation this incarnation no longer has (abandoned, dropped). A shard of
                // another incarnation is replaced when it is next needed.
                Some(d) => {
                    identity.starts_with(&d.uid)
                        && !Generation::all(d)?
                            .iter()
                            .any(|g| g.key == key && g.identity == identity)
                }
                None => !live.iter().any(|d| identity.starts_with(&d.uid)),
            };
            if doomed && self.shards.delete_identified(&key, &identity)? {
                removed.push(key);
            }
        }
        Ok(removed)
    }
    /// Rebuilds the domain's shard from the store (no re-embedding) next to the current one and
    /// swaps it in; changes committed meanwhile are applied after the swap. Documents the shard
    /// refuses are quarantined, and the rebuild completes without them.
    /// Every generation of the domain is rebuilt; returns the serving one's sequence.
    pub fn rebuild(&self, domain: &Domain) -> Result<u64> {
        let mut seq = 0;
        for (i, g) in Generation::all(domain)?.iter().enumerate() {
            let reached = self.rebuild_report(domain, g)?.seq;
            if i == 0 {
                seq = reached;
            }
        }
        Ok(seq)
    }

    fn rebuild_report(&self, domain: &Domain, generation: &Generation) -> Result<CatchUp> {
        let settings = generation.settings.clone();
        // The sequence first: the documents read after it are at least that recent, and
        // `catch_up` re-applies anything newer (upserts carry the current state).
        let upto = self.block(self.store.last_seq(&self.store.system(), domain.id))?;
        let docs = self.block(self.store.all_documents(
            &self.store.system(),
            domain.id,
            generation.slot,
        ))?;
        let dir = self.shards.scratch_dir(&generation.key)?;
        let model_id = settings.model.id.clone();
        let shard =
            Shard::create_identified(&dir, &domain.name, settings, Some(&generation.identity))?;
        let mut report = CatchUp::default();
        let mut docs = docs.into_iter().peekable();
        while docs.peek().is_some() {
            let mut ops = Vec::with_capacity(BATCH as usize);
            for d in docs.by_ref().take(BATCH as usize) {
                // Not embedded for this generation yet: its backfill brings it.
                if d.chunks.iter().any(|k| k.embedding.is_empty()) {
                    continue;
                }
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
        self.shards.replace(&generation.key, &dir)?;
        let caught_up = self.catch_up_generation(domain, generation)?;
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
