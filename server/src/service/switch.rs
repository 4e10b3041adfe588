//! Switching a domain's embedding model online (blue/green; the store's side is
//! `dartmouth_domains::Generations`).
//!
//! `set_model` starts a switch and runs it as a task: it embeds, a batch at a time, every stored
//! chunk the new generation lacks (what was stored before the switch, and what is written while
//! it runs), the domain serving from its old generation meanwhile; when nothing is left it flips
//! the domain over in one transaction. Each node's applier builds its own shard of the new
//! generation from the store as the vectors arrive, and serves it once it has caught up with
//! the flip. One node builds at a time (a lease in the store); a node that dies mid-switch
//! leaves it to whichever node's applier finds the lease run out (itself, restarted: a node's
//! id is kept in its data directory).

use std::sync::Arc;
use std::time::Duration;

use dartmouth_domains::{Caller, Domain, Role};
use dartmouth_engine::ModelSpec;
use serde::Serialize;

use super::tasks::{Task, TaskKind};
use super::{Service, TaskOut, opened};
use crate::error::{ApiError, ApiResult, Code};

/// Documents embedded and stored per backfill transaction.
const BACKFILL_DOCS: u32 = 32;
/// How long a node's claim on building a generation holds without being renewed.
pub const SWITCH_LEASE_MS: i64 = 15_000;

/// What starting a switch (or a rollback) answers: the domain, and the task that builds it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = ModelSwitch)]
pub struct SwitchOut {
    /// The domain, its `generations` showing the one being built.
    pub domain: Domain,
    /// The task building the generation (`GET /v1/tasks/{id}`).
    pub task: TaskOut,
}

impl Service {
    /// Starts switching `name` to the catalogue's embedding model `model` (its admins): the
    /// task that builds the new generation is returned running.
    pub async fn set_model(
        self: &Arc<Self>,
        caller: &Caller,
        name: &str,
        model: &str,
    ) -> ApiResult<SwitchOut> {
        // Access first: a domain the caller may not administer is missing (or forbidden).
        let pass = self
            .authorize(caller, &[name.to_string()], Role::Admin)
            .await?;
        let current = opened(&pass, name)?;
        let spec = self
            .models
            .spec_for(crate::models::EmbedderKind::Local, Some(model), None, None)
            .map_err(|e| super::admin::model_error("model", e))?;
        let settings = dartmouth_views::domain_settings(&current)?;
        let card = dartmouth_engine::embed::model_card(&spec.id);
        if let Some(card) = card
            && settings.chunk_tokens > card.max_tokens
        {
            return Err(ApiError::invalid(format!(
                "model: `{}` reads at most {} tokens, the domain's chunks are {}",
                spec.id, card.max_tokens, settings.chunk_tokens
            )));
        }
        let model_json = serde_json::to_value(&spec).map_err(ApiError::internal)?;
        // Held from before the switch exists: this node's applier must not take it over first.
        let _held = self.hold_switch(current.id)?;
        let domain = self
            .store
            .start_switch(caller, name, &model_json, &self.node_id, SWITCH_LEASE_MS)
            .await?;
        let task = self.spawn_switch(caller.name(), Some(caller.clone()), domain.clone())?;
        Ok(SwitchOut { domain, task })
    }

    /// Switches `name` back to the generation it keeps from its last switch (its admins).
    pub async fn rollback_model(
        self: &Arc<Self>,
        caller: &Caller,
        name: &str,
    ) -> ApiResult<SwitchOut> {
        let pass = self
            .authorize(caller, &[name.to_string()], Role::Admin)
            .await?;
        let _held = self.hold_switch(opened(&pass, name)?.id)?;
        let domain = self
            .store
            .rollback_switch(caller, name, &self.node_id, SWITCH_LEASE_MS)
            .await?;
        let task = self.spawn_switch(caller.name(), Some(caller.clone()), domain.clone())?;
        Ok(SwitchOut { domain, task })
    }

    /// Drops the generation `name` keeps from its last switch, or abandons the one being built
    /// (its admins): no rollback after this.
    pub async fn drop_old_generation(
        self: &Arc<Self>,
        caller: &Caller,
        name: &str,
    ) -> ApiResult<Domain> {
        self.authorize(caller, &[name.to_string()], Role::Admin)
            .await?;
        let domain = self.store.drop_other_generation(caller, name).await?;
        let gone = domain.clone();
        // This node's shards of it go now; other nodes' appliers remove theirs.
        self.blocking(move |s| {
            let live = vec![gone];
            s.applier().remove_orphans(&live)?;
            Ok(())
        })
        .await?;
        Ok(domain)
    }

    /// Runs the build of `domain`'s generation being built as a task of `owner` (visible to it
    /// and to superusers; empty: resumed by the applier, visible to superusers only).
    pub(super) fn spawn_switch(
        self: &Arc<Self>,
        owner: &str,
        caller: Option<Caller>,
        domain: Domain,
    ) -> ApiResult<TaskOut> {
        let building = domain
            .generations
            .building()
            .cloned()
            .ok_or_else(|| ApiError::internal("a switch task for a domain not switching"))?;
        {
            let mut running = self.switching.lock().map_err(ApiError::internal)?;
            if running.get(&domain.id) == Some(&Running::Task) {
                return Err(ApiError::new(
                    Code::Conflict,
                    format!(
                        "domain `{}`: its switch already runs on this node",
                        domain.name
                    ),
                ));
            }
            running.insert(domain.id, Running::Task);
        }
        let model = building
            .model
            .get("id")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        let task = Task::new(
            TaskKind::Switch,
            owner,
            caller,
            &domain.name,
            vec![format!("model {model}")],
        );
        self.tasks.register(Arc::clone(&task));
        let queued = task.out();
        let svc = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            task.start();
            let outcome = svc.run_switch(&task, &domain, &building.id);
            if let Ok(mut running) = svc.switching.lock() {
                running.remove(&domain.id);
            }
            task.finish(outcome);
        });
        Ok(queued)
    }

    /// Builds the generation `id` of `domain` until it serves (or is abandoned, or cancelled);
    /// returns how it ended.
    fn run_switch(&self, task: &Task, domain: &Domain, id: &str) -> Result<SwitchEnd, ApiError> {
        let system = self.store.system();
        let applier = self.applier();
        let mut announced_wait = false;
        let mut batches = 0u64;
        loop {
            let Some(d) = applier
                .runtime
                .block_on(self.store.domain_by_id(&system, domain.id))?
            else {
                return Err(ApiError::new(
                    Code::NotFound,
                    format!("domain `{}` was deleted", domain.name),
                ));
            };
            let Some(building) = d.generations.building().filter(|b| b.id == id).cloned() else {
                return Ok(if d.generations.active_id == id {
                    SwitchEnd::Serving
                } else {
                    SwitchEnd::Abandoned
                });
            };
            if task.cancelled() {
                applier
                    .runtime
                    .block_on(self.store.abandon_building(&system, d.id, id))?;
                applier.remove_orphans(std::slice::from_ref(&d))?;
                return Ok(SwitchEnd::Cancelled);
            }
            let Some(_lease) = applier.runtime.block_on(self.store.claim_building(
                &system,
                d.id,
                id,
                &self.node_id,
                SWITCH_LEASE_MS,
            ))?
            else {
                if !announced_wait {
                    task.note("another node is building this generation; waiting for it");
                    announced_wait = true;
                }
                std::thread::sleep(Duration::from_secs(1));
                continue;
            };
            let spec: ModelSpec = serde_json::from_value(building.model.clone())
                .map_err(|e| ApiError::internal(format!("the switch's model: {e}")))?;
            let pending = applier.runtime.block_on(self.store.pending_backfill(
                &system,
                d.id,
                building.slot,
                BACKFILL_DOCS,
            ))?;
            if batches.is_multiple_of(64) {
                let progress = applier.runtime.block_on(self.store.slot_progress(
                    &system,
                    d.id,
                    building.slot,
                ))?;
                task.progress(progress.embedded, progress.chunks);
            }
            batches += 1;
            if pending.is_empty() {
                // Nothing lacks a vector: flip (unless a write slipped in; then go on).
                if let Some(flipped) = applier
                    .runtime
                    .block_on(self.store.flip_generation(&system, d.id, id))?
                {
                    let progress = applier.runtime.block_on(self.store.slot_progress(
                        &system,
                        d.id,
                        building.slot,
                    ))?;
                    task.progress(progress.embedded, progress.chunks);
                    applier.catch_up(&flipped)?;
                    return Ok(SwitchEnd::Serving);
                }
                continue;
            }
            let embedder = self.embedder(&spec)?;
            let inputs: Vec<String> = pending
                .iter()
                .flat_map(|p| {
                    p.chunks
                        .iter()
                        .map(|c| dartmouth_indexer::embedding_input(&p.title, c))
                })
                .collect();
            let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
            let mut vectors = embedder.embed_batch(&refs)?.into_iter();
            let docs: Vec<_> = pending
                .into_iter()
                .map(|p| {
                    let v: Vec<Vec<f32>> = vectors.by_ref().take(p.chunks.len()).collect();
                    (p, v)
                })
                .collect();
            let (stored, _) = applier
                .runtime
                .block_on(self.store.store_backfill(&system, d.id, id, &docs))?;
            task.advance(docs.iter().take(stored).map(|(_, v)| v.len() as u64).sum());
            // This node's shard of the new generation follows (the applier's tick would too;
            // a one-shot command has none).
            if let Some(g) = dartmouth_views::Generation::other(&d)? {
                applier.catch_up_generation(&d, &g)?;
            }
        }
    }

    /// Switches the applier finds running with no node building them (the node that started
    /// one died, or this node restarted): this node takes them over.
    pub(super) fn resume_switches(self: &Arc<Self>, domains: &[Domain]) {
        let now = dartmouth_domains::now_millis();
        for d in domains {
            let Some(b) = d.generations.building() else {
                continue;
            };
            let free = b
                .lease
                .as_ref()
                .is_none_or(|l| l.until <= now || l.owner == self.node_id);
            let here = self
                .switching
                .lock()
                .map(|s| s.contains_key(&d.id))
                .unwrap_or(true);
            if free && !here {
                tracing::info!(domain = %d.name, "resuming the domain's model switch");
                if let Err(e) = self.spawn_switch("", None, d.clone()) {
                    tracing::warn!(domain = %d.name, error = %e, "cannot resume the switch");
                }
            }
        }
    }
}

/// What this node does about a domain's switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Running {
    /// A request is starting one (its task is about to run).
    Starting,
    /// Its task runs here.
    Task,
}

/// A domain held as starting a switch on this node until dropped (unless its task took over).
pub(super) struct Held<'a> {
    svc: &'a Service,
    domain_id: i64,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let Ok(mut running) = self.svc.switching.lock()
            && running.get(&self.domain_id) == Some(&Running::Starting)
        {
            running.remove(&self.domain_id);
        }
    }
}

impl Service {
    fn hold_switch(&self, domain_id: i64) -> ApiResult<Held<'_>> {
        let mut running = self.switching.lock().map_err(ApiError::internal)?;
        if running.contains_key(&domain_id) {
            return Err(ApiError::new(
                Code::Conflict,
                "a switch of this domain is starting or running on this node",
            ));
        }
        running.insert(domain_id, Running::Starting);
        Ok(Held {
            svc: self,
            domain_id,
        })
    }
}

/// How a switch task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SwitchEnd {
    /// The new generation serves.
    Serving,
    /// Its task was cancelled: the generation was dropped, the old one serves on.
    Cancelled,
    /// Dropped or superseded by someone else meanwhile.
    Abandoned,
}
