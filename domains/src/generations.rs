//! A domain's embedding generations: switching its model online (blue/green).
//!
//! A domain serves one generation (a model, its vectors, its shards) and may have one other:
//! being **built** with a new model (a switch), or **kept** after a switch so that a rollback is
//! quick. Each generation's vectors live in a slot of the chunks table (`embedding` is slot 1,
//! `embedding_alt` slot 2); an empty value is a vector the generation does not have.
//!
//! - A write embeds with the serving model only: it fills the serving slot and empties the
//!   other, and is refused (`ModelChanged`, which the writer answers by embedding again) when
//!   the model it embedded with is no longer the serving one.
//! - The switch's backfill embeds what the other slot lacks, a batch at a time, each batch
//!   stored in one transaction with a changelog row per document for that slot's shards only
//!   (a document rewritten meanwhile is left for the next round).
//! - The flip is one transaction that first checks no chunk lacks the new slot's vector: the
//!   serving model and slot change together, the old generation is kept with the sequence at
//!   which it stopped serving (`flip_seq`: a node serves it until its new shard reaches that).
//! - A rollback is a switch back to the kept generation (only what was written since the flip
//!   is embedded again); dropping the kept generation empties its slot.
//!
//! One node at a time builds a generation: it holds a lease in the generation's row, renewed as
//! it goes; when a node dies, another takes the switch over once the lease has run out.

use serde::Serialize;
use sqlx::Row;

use crate::access::{Caller, System};
use crate::model::{
    Domain, GenerationState, Generations, Lease, OtherGeneration, embedding_bytes, now_millis,
};
use crate::store::{Store, random_hex};
use crate::{Error, Result};

/// The chunks column holding slot `slot`'s vectors.
pub fn slot_column(slot: u8) -> &'static str {
    if slot == 2 {
        "embedding_alt"
    } else {
        "embedding"
    }
}

/// The condition "this chunk has no vector in `column`" (a fixed string per slot).
fn missing(slot: u8) -> &'static str {
    if slot == 2 {
        "COALESCE(LENGTH(embedding_alt), 0) = 0"
    } else {
        "COALESCE(LENGTH(embedding), 0) = 0"
    }
}

/// A document whose chunks lack the building slot's vectors: what the backfill embeds.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingDocument {
    pub external_id: String,
    /// The sequence of its current version: the backfill stores vectors only for that version.
    pub seq: i64,
    pub title: String,
    pub chunks: Vec<String>,
}

/// How far a generation being built has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = GenerationProgress)]
pub struct Progress {
    /// The domain's chunks.
    pub chunks: u64,
    /// Those with the new generation's vectors so far.
    pub embedded: u64,
}

impl Store {
    /// Starts switching `domain` to `model` (the engine's `ModelSpec` as JSON; the caller has
    /// checked it is a model this deployment can run): a new generation in the other slot,
    /// empty, to be built. Its admins only; a switch already running, a kept generation not
    /// yet dropped, or the model the domain already serves are refused.
    pub async fn start_switch(
        &self,
        caller: &Caller,
        domain: &str,
        model: &serde_json::Value,
        builder: &str,
        lease_ms: i64,
    ) -> Result<Domain> {
        let d = self
            .require_domain_admin(caller, domain, "switch-model")
            .await?;
        let serving = d.settings.get("model").and_then(|m| m.get("id"));
        if serving.is_some() && serving == model.get("id") {
            return Err(Error::invalid(
                "model",
                format!(
                    "domain `{}` already uses `{}`",
                    d.name,
                    model.get("id").and_then(|v| v.as_str()).unwrap_or("")
                ),
            ));
        }
        let mut tx = self.pool.begin().await?;
        let current = lock_generations(&mut tx, d.id).await?;
        refuse_if_busy(&d.name, &current)?;
        let slot = 3 - current.active;
        // Nothing of an earlier generation of that slot stays (dropping one empties it too).
        let clear = format!(
            "UPDATE chunks SET {} = $2 WHERE domain_id = $1",
            slot_column(slot)
        );
        sqlx::query(sqlx::AssertSqlSafe(clear))
            .bind(d.id)
            .bind(Vec::<u8>::new())
            .execute(&mut *tx)
            .await?;
        let next = Generations {
            other: Some(OtherGeneration {
                slot,
                id: random_hex(8),
                model: model.clone(),
                state: GenerationState::Building,
                since: now_millis(),
                flip_seq: 0,
                lease: Some(Lease {
                    owner: builder.to_string(),
                    until: now_millis() + lease_ms,
                }),
            }),
            ..current
        };
        let d = store_generations(&mut tx, d.id, &next, None).await?;
        self.notify_change(&mut tx, d.id).await?;
        tx.commit().await?;
        self.audit(
            caller.name(),
            "switch-model",
            domain,
            "ok",
            &format!("to {model}"),
        )
        .await?;
        Ok(d)
    }

    /// Switches `domain` back to its kept generation: it is built again (only what was written
    /// since it stopped serving lacks its vectors) and then serves.
    pub async fn rollback_switch(
        &self,
        caller: &Caller,
        domain: &str,
        builder: &str,
        lease_ms: i64,
    ) -> Result<Domain> {
        let d = self
            .require_domain_admin(caller, domain, "rollback-model")
            .await?;
        let mut tx = self.pool.begin().await?;
        let current = lock_generations(&mut tx, d.id).await?;
        let Some(kept) = current.kept().cloned() else {
            return Err(match current.building() {
                Some(_) => busy(&d.name, "a model switch is running; cancel its task first"),
                None => busy(&d.name, "it keeps no earlier generation to return to"),
            });
        };
        let next = Generations {
            other: Some(OtherGeneration {
                state: GenerationState::Building,
                since: now_millis(),
                flip_seq: 0,
                lease: Some(Lease {
                    owner: builder.to_string(),
                    until: now_millis() + lease_ms,
                }),
                ..kept.clone()
            }),
            ..current
        };
        let d = store_generations(&mut tx, d.id, &next, None).await?;
        self.notify_change(&mut tx, d.id).await?;
        tx.commit().await?;
        self.audit(
            caller.name(),
            "rollback-model",
            domain,
            "ok",
            &format!("to {}", kept.model),
        )
        .await?;
        Ok(d)
    }

    /// Drops the generation that is not serving: a kept one (no rollback after this), or one
    /// being built (the switch is abandoned). Its vectors are removed from the store; nodes
    /// remove its shards.
    pub async fn drop_other_generation(&self, caller: &Caller, domain: &str) -> Result<Domain> {
        let d = self
            .require_domain_admin(caller, domain, "drop-generation")
            .await?;
        let mut tx = self.pool.begin().await?;
        let current = lock_generations(&mut tx, d.id).await?;
        let Some(other) = current.other.clone() else {
            return Err(busy(&d.name, "it has no other generation to drop"));
        };
        let clear = format!(
            "UPDATE chunks SET {} = $2 WHERE domain_id = $1",
            slot_column(other.slot)
        );
        sqlx::query(sqlx::AssertSqlSafe(clear))
            .bind(d.id)
            .bind(Vec::<u8>::new())
            .execute(&mut *tx)
            .await?;
        let next = Generations {
            other: None,
            ..current
        };
        let d = store_generations(&mut tx, d.id, &next, None).await?;
        self.notify_change(&mut tx, d.id).await?;
        tx.commit().await?;
        self.audit(
            caller.name(),
            "drop-generation",
            domain,
            "ok",
            &format!("{} ({:?})", other.model, other.state),
        )
        .await?;
        Ok(d)
    }

    /// Abandons the generation `id` being built (its switch task was cancelled): its vectors
    /// are removed, the domain goes on serving as it did. `false` when it is no longer being
    /// built.
    pub async fn abandon_building(
        &self,
        _system: &System,
        domain_id: i64,
        id: &str,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let current = lock_generations(&mut tx, domain_id).await?;
        let Some(building) = current.building().filter(|b| b.id == id).cloned() else {
            return Ok(false);
        };
        let clear = format!(
            "UPDATE chunks SET {} = $2 WHERE domain_id = $1",
            slot_column(building.slot)
        );
        sqlx::query(sqlx::AssertSqlSafe(clear))
            .bind(domain_id)
            .bind(Vec::<u8>::new())
            .execute(&mut *tx)
            .await?;
        let next = Generations {
            other: None,
            ..current
        };
        let d = store_generations(&mut tx, domain_id, &next, None).await?;
        self.notify_change(&mut tx, domain_id).await?;
        tx.commit().await?;
        self.audit(
            "switch",
            "abandon-switch",
            &d.name,
            "ok",
            &format!("to {}", building.model),
        )
        .await?;
        Ok(true)
    }

    /// Takes (or renews) the lease on the generation `id` being built: `Some` when `owner`
    /// holds it until `now + lease_ms`, `None` when another node holds a live lease or the
    /// generation is no longer being built.
    pub async fn claim_building(
        &self,
        _system: &System,
        domain_id: i64,
        id: &str,
        owner: &str,
        lease_ms: i64,
    ) -> Result<Option<OtherGeneration>> {
        let mut tx = self.pool.begin().await?;
        let current = lock_generations(&mut tx, domain_id).await?;
        let now = now_millis();
        let Some(building) = current.building().filter(|b| b.id == id).cloned() else {
            return Ok(None);
        };
        if building
            .lease
            .as_ref()
            .is_some_and(|l| l.owner != owner && l.until > now)
        {
            return Ok(None);
        }
        let claimed = OtherGeneration {
            lease: Some(Lease {
                owner: owner.to_string(),
                until: now + lease_ms,
            }),
            ..building
        };
        let next = Generations {
            other: Some(claimed.clone()),
            ..current
        };
        store_generations(&mut tx, domain_id, &next, None).await?;
        tx.commit().await?;
        Ok(Some(claimed))
    }

    /// Up to `limit` documents whose chunks lack slot `slot`'s vectors, in id order.
    pub async fn pending_backfill(
        &self,
        _system: &System,
        domain_id: i64,
        slot: u8,
        limit: u32,
    ) -> Result<Vec<PendingDocument>> {
        let sql = format!(
            "SELECT d.external_id, d.seq, d.title, k.text FROM documents d \
             JOIN chunks k ON k.domain_id = d.domain_id AND k.external_id = d.external_id \
             WHERE d.domain_id = $1 AND d.external_id IN (\
               SELECT DISTINCT external_id FROM chunks WHERE domain_id = $1 AND {} \
               ORDER BY external_id LIMIT $2) \
             ORDER BY d.external_id, k.idx",
            missing(slot)
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(domain_id)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        let mut out: Vec<PendingDocument> = Vec::new();
        for r in rows {
            let id: String = r.try_get("external_id")?;
            let text: String = r.try_get("text")?;
            match out.last_mut() {
                Some(doc) if doc.external_id == id => doc.chunks.push(text),
                _ => out.push(PendingDocument {
                    external_id: id,
                    seq: r.try_get("seq")?,
                    title: r.try_get("title")?,
                    chunks: vec![text],
                }),
            }
        }
        Ok(out)
    }

    /// Stores vectors the backfill made for the generation `id` (slot `slot`): each document's
    /// vectors (one per chunk, in order) only if it is still the version `seq` read, with a
    /// changelog row for that slot's shards, in one transaction. Returns how many documents
    /// were stored and the domain's last sequence; nothing when the generation is no longer
    /// being built.
    pub async fn store_backfill(
        &self,
        _system: &System,
        domain_id: i64,
        id: &str,
        docs: &[(PendingDocument, Vec<Vec<f32>>)],
    ) -> Result<(usize, u64)> {
        let mut tx = self.pool.begin().await?;
        let current = lock_generations(&mut tx, domain_id).await?;
        let Some(building) = current.building().filter(|b| b.id == id) else {
            tx.commit().await?;
            return Ok((0, 0));
        };
        let column = slot_column(building.slot);
        let update = format!(
            "UPDATE chunks SET {column} = $4 WHERE domain_id = $1 AND external_id = $2 AND idx = $3"
        );
        let mut stored = Vec::new();
        for (doc, vectors) in docs {
            let row = sqlx::query(
                "SELECT COUNT(*) AS n FROM chunks k JOIN documents d \
                 ON d.domain_id = k.domain_id AND d.external_id = k.external_id \
                 WHERE d.domain_id = $1 AND d.external_id = $2 AND d.seq = $3",
            )
            .bind(domain_id)
            .bind(&doc.external_id)
            .bind(doc.seq)
            .fetch_one(&mut *tx)
            .await?;
            // Rewritten or deleted since it was read: the next round takes the new version.
            if row.try_get::<i64, _>("n")? != vectors.len() as i64 {
                continue;
            }
            for (idx, v) in vectors.iter().enumerate() {
                sqlx::query(sqlx::AssertSqlSafe(update.clone()))
                    .bind(domain_id)
                    .bind(&doc.external_id)
                    .bind(idx as i64)
                    .bind(embedding_bytes(v))
                    .execute(&mut *tx)
                    .await?;
            }
            stored.push(doc.external_id.as_str());
        }
        let last: i64 = sqlx::query(
            "UPDATE domains SET last_seq = last_seq + $2 WHERE id = $1 RETURNING last_seq",
        )
        .bind(domain_id)
        .bind(stored.len() as i64)
        .fetch_one(&mut *tx)
        .await?
        .try_get("last_seq")?;
        let now = now_millis();
        let first = last - stored.len() as i64 + 1;
        for (seq, external_id) in (first..).zip(&stored) {
            sqlx::query(
                "INSERT INTO changelog (domain_id, domain_seq, op, external_id, at, slot) \
                 VALUES ($1, $2, 'upsert', $3, $4, $5)",
            )
            .bind(domain_id)
            .bind(seq)
            .bind(*external_id)
            .bind(now)
            .bind(i64::from(building.slot))
            .execute(&mut *tx)
            .await?;
        }
        if !stored.is_empty() {
            self.notify_change(&mut tx, domain_id).await?;
        }
        tx.commit().await?;
        Ok((stored.len(), last as u64))
    }

    /// How many of the domain's chunks slot `slot` has vectors for.
    pub async fn slot_progress(
        &self,
        _system: &System,
        domain_id: i64,
        slot: u8,
    ) -> Result<Progress> {
        let sql = format!(
            "SELECT COUNT(*) AS n, COALESCE(SUM(CASE WHEN {} THEN 1 ELSE 0 END), 0) AS missing \
             FROM chunks WHERE domain_id = $1",
            missing(slot)
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(domain_id)
            .fetch_one(&self.pool)
            .await?;
        let chunks = row.try_get::<i64, _>("n")? as u64;
        let missing = row.try_get::<i64, _>("missing")? as u64;
        Ok(Progress {
            chunks,
            embedded: chunks - missing.min(chunks),
        })
    }

    /// Makes the generation `id` being built the serving one, if every chunk has its vector:
    /// its model becomes the domain's, and the one serving until now is kept, with the
    /// sequence at which it stopped. Returns the domain after the flip, or `None` (nothing
    /// changed) while vectors are missing or when it is no longer being built.
    pub async fn flip_generation(
        &self,
        _system: &System,
        domain_id: i64,
        id: &str,
    ) -> Result<Option<Domain>> {
        let mut tx = self.pool.begin().await?;
        let current = lock_generations(&mut tx, domain_id).await?;
        let Some(building) = current.building().filter(|b| b.id == id).cloned() else {
            return Ok(None);
        };
        let sql = format!(
            "SELECT COUNT(*) AS n FROM chunks WHERE domain_id = $1 AND {}",
            missing(building.slot)
        );
        let lacking: i64 = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(domain_id)
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        if lacking > 0 {
            return Ok(None);
        }
        let row = sqlx::query("SELECT settings, last_seq FROM domains WHERE id = $1")
            .bind(domain_id)
            .fetch_one(&mut *tx)
            .await?;
        let last: i64 = row.try_get("last_seq")?;
        let mut settings: serde_json::Value =
            serde_json::from_str(&row.try_get::<String, _>("settings")?)
                .map_err(|e| Error::invalid("settings", e.to_string()))?;
        let old_model = settings.get("model").cloned().unwrap_or_default();
        settings["model"] = building.model.clone();
        let next = Generations {
            active: building.slot,
            active_id: building.id.clone(),
            other: Some(OtherGeneration {
                slot: current.active,
                id: current.active_id.clone(),
                model: old_model,
                state: GenerationState::Kept,
                since: now_millis(),
                flip_seq: last as u64,
                lease: None,
            }),
        };
        let d = store_generations(&mut tx, domain_id, &next, Some(&settings)).await?;
        self.notify_change(&mut tx, domain_id).await?;
        tx.commit().await?;
        self.audit(
            "switch",
            "flip-generation",
            &d.name,
            "ok",
            &format!("now serving {} (sequence {last})", building.model),
        )
        .await?;
        Ok(Some(d))
    }
}

fn busy(domain: &str, why: &str) -> Error {
    Error::Busy(format!("domain `{domain}`: {why}"))
}

fn refuse_if_busy(domain: &str, g: &Generations) -> Result<()> {
    match &g.other {
        None => Ok(()),
        Some(o) if o.state == GenerationState::Building => Err(busy(
            domain,
            &format!(
                "a switch to {} is running; wait for it or cancel its task",
                o.model.get("id").and_then(|v| v.as_str()).unwrap_or("?")
            ),
        )),
        Some(o) => Err(busy(
            domain,
            &format!(
                "it keeps its earlier generation ({}) for rollback; drop it first \
                 (`domain drop-old-generation`)",
                o.model.get("id").and_then(|v| v.as_str()).unwrap_or("?")
            ),
        )),
    }
}

/// The domain's generations, its row locked for the rest of the transaction (on PostgreSQL;
/// SQLite has one writer) so that writes and other switch steps wait for this one.
async fn lock_generations(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    domain_id: i64,
) -> Result<Generations> {
    let row =
        sqlx::query("UPDATE domains SET last_seq = last_seq WHERE id = $1 RETURNING generations")
            .bind(domain_id)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| Error::not_found(crate::Missing::Domain, &format!("#{domain_id}")))?;
    Generations::from_column(row.try_get::<Option<String>, _>("generations")?.as_deref())
}

async fn store_generations(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    domain_id: i64,
    generations: &Generations,
    settings: Option<&serde_json::Value>,
) -> Result<Domain> {
    let row = sqlx::query(
        "UPDATE domains SET generations = $2, settings = COALESCE($3, settings) WHERE id = $1 \
         RETURNING id, uid, name, description, settings, created_at, generations",
    )
    .bind(domain_id)
    .bind(generations.to_column())
    .bind(settings.map(|s| s.to_string()))
    .fetch_one(&mut **tx)
    .await?;
    crate::model::domain_from_row(&row)
}
