//! Making writes searchable: the applier tick every serving node runs, and `min_seq` reads.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use dartmouth_domains::Pass;

use super::Service;
use crate::error::{ApiError, ApiResult, Code};

impl Service {
    /// Waits for (by applying) each `min_seq` domain's changes up to the given sequence.
    pub(super) async fn read_your_writes(
        self: &Arc<Self>,
        pass: &Pass,
        min_seq: &BTreeMap<String, u64>,
    ) -> ApiResult<()> {
        let missing = |name: &str| {
            ApiError::from(dartmouth_domains::Error::NotFound {
                what: dartmouth_domains::Missing::Domain,
                name: dartmouth_domains::names::shown(name),
            })
        };
        for (name, &seq) in min_seq {
            let domain = pass.domain(name).cloned().ok_or_else(|| missing(name))?;
            let applied = self
                .applier()
                .existing_shard(&domain)?
                .map_or(0, |shard| shard.applied_seq());
            if applied >= seq {
                continue;
            }
            let oldest = self
                .store
                .first_change_at(&self.store.system(), domain.id, applied)
                .await?;
            let id = domain.id;
            // A domain deleted while this request ran is answered as the missing domain it is.
            let reached = self
                .blocking(move |s| Ok(s.applier().catch_up(&domain)?))
                .await
                .map_err(|e| {
                    if e.code == Code::NotFound {
                        missing(name)
                    } else {
                        e
                    }
                })?;
            self.searchable_since(oldest);
            if reached < seq
                && self
                    .store
                    .domain_by_id(&self.store.system(), id)
                    .await?
                    .is_none()
            {
                return Err(missing(name));
            }
            if reached < seq {
                return Err(ApiError::invalid(format!(
                    "min_seq.{name}: sequence {seq} has not been written (the domain is at {reached})"
                )));
            }
        }
        Ok(())
    }

    /// Records that changes acknowledged at `oldest` (the first of a catch-up) are searchable.
    fn searchable_since(&self, oldest: Option<i64>) {
        if let Some(at) = oldest {
            let ms = dartmouth_domains::now_millis().saturating_sub(at).max(0);
            self.metrics
                .searchable_after(std::time::Duration::from_millis(ms as u64));
        }
    }

    /// Applies every domain's new changes (to every generation's shard); returns the largest
    /// backlog seen (in changes). Model switches no node is building are taken over.
    pub fn apply_all(self: &Arc<Self>) -> ApiResult<u64> {
        let applier = self.applier();
        let admin = match self.operator.get() {
            Some(a) => a,
            None => {
                let a = applier.runtime.block_on(self.store.local_admin())?;
                self.operator.get_or_init(|| a)
            }
        };
        let mut domains = applier.runtime.block_on(self.store.list_domains(admin))?;
        // Only the domains this node holds; the shards of others are removed with those of
        // deleted domains.
        domains.retain(|d| self.holds(&d.name));
        // Shards of domains deleted through another node (or while this one was down).
        for name in applier.remove_orphans(&domains)? {
            tracing::info!(shard = %name, "removed the shard of a deleted domain or generation");
        }
        self.resume_switches(&domains);
        self.run_due_syncs(admin, &domains);
        let mut lag = 0;
        // One domain that cannot be applied (logged) must not hold the others back.
        for d in &domains {
            let outcome = (|| -> ApiResult<u64> {
                let last = applier
                    .runtime
                    .block_on(self.store.last_seq(&self.store.system(), d.id))?;
                // The generation furthest behind decides.
                let mut applied = applier.shard(d)?.applied_seq();
                if let Some(other) = dartmouth_views::Generation::other(d)? {
                    applied = applied.min(applier.generation_shard(d, &other)?.applied_seq());
                }
                // Behind: apply. Ahead (a restored store): `catch_up` rebuilds.
                if last != applied {
                    let oldest = applier.runtime.block_on(self.store.first_change_at(
                        &self.store.system(),
                        d.id,
                        applied,
                    ))?;
                    let t = Instant::now();
                    applier.catch_up(d)?;
                    self.metrics.stage("apply", t.elapsed());
                    self.searchable_since(oldest);
                }
                Ok(last.saturating_sub(applied))
            })();
            match outcome {
                Ok(behind) => lag = lag.max(behind),
                // Deleted since the list was read.
                Err(e) if e.code == Code::NotFound => {
                    tracing::debug!(domain = %d.name, "applier: the domain is gone");
                }
                Err(e) => tracing::warn!(domain = %d.name, error = %e, "applier"),
            }
        }
        self.metrics.set_lag(lag);
        Ok(lag)
    }
}
