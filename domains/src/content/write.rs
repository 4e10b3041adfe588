//! A write: its rows and one changelog row per document in one transaction, acknowledged with
//! the domain's last sequence.

use sqlx::Row;

use super::{check_id, check_storable, writable};
use crate::access::Pass;
use crate::model::{Write, embedding_bytes, now_millis};
use crate::names::validate_text;
use crate::store::Store;
use crate::{Error, Result};

use super::MAX_EXTERNAL_ID;

impl Store {
    /// Commits `writes` to `domain` in one transaction; returns the domain's last changelog
    /// sequence (sequences count per domain). The vectors were made with `model_id`, which
    /// must be the domain's serving model (`ModelChanged` otherwise: the domain switched
    /// meanwhile); they fill the serving slot, and the other slot's vectors of the documents
    /// written are emptied (a switch's backfill embeds them again).
    pub async fn write(
        &self,
        pass: &Pass,
        domain: &str,
        model_id: &str,
        writes: &[Write],
    ) -> Result<u64> {
        let d = writable(pass, domain)?;
        for w in writes {
            match w {
                Write::Upsert(doc) => {
                    check_id(&doc.external_id)?;
                    check_storable(doc)?;
                    for key in &doc.keys {
                        validate_text("document key", key, MAX_EXTERNAL_ID)?;
                    }
                    if doc.chunks.is_empty() {
                        return Err(Error::invalid(
                            "chunks",
                            format!("document `{}` has no chunks", doc.external_id),
                        ));
                    }
                }
                Write::Delete(id) => check_id(id)?,
            }
        }
        let now = now_millis();
        let mut tx = self.pool.begin().await?;
        // Take this write's sequences from the domain's counter. On PostgreSQL the row lock
        // also orders the domain's writers: an applier that has seen sequence n never later
        // meets a smaller one.
        let row = sqlx::query(
            "UPDATE domains SET last_seq = last_seq + $2 WHERE id = $1 \
             RETURNING last_seq, settings, generations",
        )
        .bind(d.id)
        .bind(writes.len() as i64)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| Error::not_found(crate::Missing::Domain, domain))?;
        let last: i64 = row.try_get("last_seq")?;
        let settings: serde_json::Value =
            serde_json::from_str(&row.try_get::<String, _>("settings")?)
                .map_err(|e| Error::invalid("settings", e.to_string()))?;
        let serving = settings.get("model").cloned().unwrap_or_default();
        let has_upsert = writes.iter().any(|w| matches!(w, Write::Upsert(_)));
        if has_upsert && serving.get("id").and_then(|v| v.as_str()) != Some(model_id) {
            return Err(Error::ModelChanged {
                domain: d.name.clone(),
                model: serving,
                got: model_id.to_string(),
            });
        }
        let generations = crate::model::Generations::from_column(
            row.try_get::<Option<String>, _>("generations")?.as_deref(),
        )?;
        // The serving slot's column takes the vectors; the other gets an empty value.
        let insert_chunk = format!(
            "INSERT INTO chunks (domain_id, external_id, idx, text, char_start, char_end, heading, {}, {}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            crate::generations::slot_column(generations.active),
            crate::generations::slot_column(3 - generations.active)
        );
        let first = last - writes.len() as i64 + 1;
        for (seq, w) in (first..).zip(writes) {
            let (op, id) = match w {
                Write::Upsert(doc) => ("upsert", doc.external_id.as_str()),
                Write::Delete(id) => ("delete", id.as_str()),
            };
            sqlx::query(
                "INSERT INTO changelog (domain_id, domain_seq, op, external_id, at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(d.id)
            .bind(seq)
            .bind(op)
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM chunks WHERE domain_id = $1 AND external_id = $2")
                .bind(d.id)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM documents WHERE domain_id = $1 AND external_id = $2")
                .bind(d.id)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM document_keys WHERE domain_id = $1 AND external_id = $2")
                .bind(d.id)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            // A new version (or the delete) of a quarantined document ends its quarantine.
            sqlx::query("DELETE FROM quarantine WHERE domain_id = $1 AND external_id = $2")
                .bind(d.id)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            if let Write::Upsert(doc) = w {
                sqlx::query(
                    "INSERT INTO documents (domain_id, external_id, content_hash, title, url, attributes, seq, source) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(d.id)
                .bind(id)
                .bind(&doc.content_hash)
                .bind(&doc.title)
                .bind(doc.url.as_deref())
                .bind(doc.attributes.to_string())
                .bind(seq)
                .bind(doc.source.as_deref())
                .execute(&mut *tx)
                .await?;
                for key in &doc.keys {
                    // The latest writer of a key owns it (a variant moved to another product).
                    sqlx::query(
                        "INSERT INTO document_keys (domain_id, key, external_id) VALUES ($1, $2, $3) \
                         ON CONFLICT (domain_id, key) DO UPDATE SET external_id = excluded.external_id",
                    )
                    .bind(d.id)
                    .bind(key)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                }
                for (i, c) in doc.chunks.iter().enumerate() {
                    // One of two fixed statements (the slots' columns); every value is bound.
                    sqlx::query(sqlx::AssertSqlSafe(insert_chunk.clone()))
                        .bind(d.id)
                        .bind(id)
                        .bind(i as i64)
                        .bind(&c.text)
                        .bind(c.char_start as i64)
                        .bind(c.char_end as i64)
                        .bind(c.heading.as_deref())
                        .bind(embedding_bytes(&c.embedding))
                        .bind(Vec::<u8>::new())
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        self.notify_change(&mut tx, d.id).await?;
        tx.commit().await?;
        Ok(last as u64)
    }
}
