//! The changelog as the system reads it: appliers replay it into shards (with the documents'
//! current state), rebuild from every stored document, and record what a shard refused. These
//! take the explicit [`System`] authority: no caller's pass is involved.

use sqlx::Row;

use super::Extra;
use crate::access::System;
use crate::model::{Change, Domain, StoredDocument, now_millis};
use crate::names::shown;
use crate::store::Store;
use crate::{Error, Result};

impl Store {
    /// The domain with this id, if it still exists (the applier's check that a domain it is
    /// about to make a shard for was not deleted meanwhile).
    pub async fn domain_by_id(&self, _system: &System, id: i64) -> Result<Option<Domain>> {
        let row = sqlx::query(
            "SELECT id, uid, name, description, settings, created_at, generations FROM domains WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(crate::model::domain_from_row).transpose()
    }

    /// The latest changelog sequence of a domain (0 when it has none); `NotFound` once the
    /// domain is deleted (a deleted domain's shard is not "ahead of its store").
    pub async fn last_seq(&self, _system: &System, domain_id: i64) -> Result<u64> {
        let row = sqlx::query("SELECT last_seq FROM domains WHERE id = $1")
            .bind(domain_id)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(r) => Ok(r.try_get::<i64, _>("last_seq")? as u64),
            None => Err(Error::NotFound {
                what: crate::Missing::Domain,
                name: format!("#{domain_id}"),
            }),
        }
    }

    /// When the first change of a domain after `after` was acknowledged (milliseconds since the
    /// Unix epoch); `None` when there is none. The applier measures ingest-to-searchable lag
    /// from it.
    pub async fn first_change_at(
        &self,
        _system: &System,
        domain_id: i64,
        after: u64,
    ) -> Result<Option<i64>> {
        let row = sqlx::query(
            "SELECT at FROM changelog WHERE domain_id = $1 AND domain_seq > $2 \
             ORDER BY domain_seq LIMIT 1",
        )
        .bind(domain_id)
        .bind(after as i64)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| r.try_get::<i64, _>("at"))
            .transpose()
            .map_err(Into::into)
    }

    /// Up to `limit` changes of a domain after `after`, each with the document's current state
    /// with slot `slot`'s vectors (what that slot's shards apply).
    pub async fn changes_since(
        &self,
        _system: &System,
        domain_id: i64,
        slot: u8,
        after: u64,
        limit: u32,
    ) -> Result<Vec<Change>> {
        let rows = sqlx::query(
            "SELECT domain_seq AS seq, op, external_id, slot FROM changelog \
             WHERE domain_id = $1 AND domain_seq > $2 ORDER BY domain_seq LIMIT $3",
        )
        .bind(domain_id)
        .bind(after as i64)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let Some(last) = rows.last() else {
            return Ok(Vec::new());
        };
        let upto: i64 = last.try_get("seq")?;
        let docs = self
            .documents_where(
                domain_id,
                slot,
                "AND d.external_id IN (SELECT external_id FROM changelog \
                 WHERE domain_id = $1 AND domain_seq > $2 AND domain_seq <= $3 AND op = 'upsert')",
                Extra::Range(after as i64, upto),
            )
            .await?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get("external_id")?;
                let op: String = r.try_get("op")?;
                Ok(Change {
                    seq: r.try_get::<i64, _>("seq")? as u64,
                    document: if op == "upsert" {
                        docs.get(&id).cloned()
                    } else {
                        None
                    },
                    external_id: id,
                    slot: r.try_get::<Option<i64>, _>("slot")?.map(|s| s as u8),
                })
            })
            .collect()
    }

    /// Every document of a domain with slot `slot`'s vectors, for rebuilding a shard of it.
    pub async fn all_documents(
        &self,
        _system: &System,
        domain_id: i64,
        slot: u8,
    ) -> Result<Vec<StoredDocument>> {
        let mut docs: Vec<StoredDocument> = self
            .documents_where(domain_id, slot, "", Extra::None)
            .await?
            .into_values()
            .collect();
        docs.sort_by(|a, b| a.external_id.cmp(&b.external_id));
        Ok(docs)
    }

    /// Records that a shard refused a stored document (the applier's report; any node may
    /// record it, the latest wins), and audits it with the reason.
    pub async fn quarantine(
        &self,
        _system: &System,
        domain: &Domain,
        external_id: &str,
        seq: u64,
        reason: &str,
    ) -> Result<()> {
        let reason: String = reason.chars().take(1000).collect();
        sqlx::query(
            "INSERT INTO quarantine (domain_id, external_id, seq, reason, at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (domain_id, external_id) DO UPDATE SET seq = excluded.seq, \
             reason = excluded.reason, at = excluded.at",
        )
        .bind(domain.id)
        .bind(external_id.replace('\0', "\u{fffd}"))
        .bind(seq as i64)
        .bind(reason.replace('\0', "\u{fffd}"))
        .bind(now_millis())
        .execute(&self.pool)
        .await?;
        self.audit(
            "applier",
            "quarantine",
            &domain.name,
            "failed",
            &format!(
                "document `{}` at sequence {seq}: {reason}",
                shown(external_id)
            ),
        )
        .await
    }
}
