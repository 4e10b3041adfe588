//! Documents, chunks and the changelog. A write commits its rows and one changelog row per
//! document in one transaction; the acknowledgement is the last sequence it took. Appliers read
//! the changelog from a shard's applied sequence onwards.

use std::collections::HashMap;

use sqlx::Row;

use crate::access::Pass;
use crate::model::{
    Change, Domain, DomainStats, Quarantined, Reusable, Role, StoredChunk, StoredDocument, Write,
    embedding_bytes, embedding_from_bytes, now_millis,
};
use crate::names::{shown, validate_text};
use crate::store::Store;
use crate::{Error, Result};

pub const MAX_EXTERNAL_ID: usize = 512;

/// The values `documents_where`'s extra condition binds after the domain id.
enum Extra<'a> {
    None,
    Range(i64, i64),
    Id(&'a str),
}

/// Document ids as the engine takes them: 1 to 512 bytes, no control characters.
fn check_id(id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::invalid("document id", "must not be empty"));
    }
    if id.len() > MAX_EXTERNAL_ID {
        return Err(Error::invalid(
            "document id",
            format!("{} bytes; the limit is {MAX_EXTERNAL_ID}", id.len()),
        ));
    }
    if id.chars().any(char::is_control) {
        return Err(Error::invalid(
            "document id",
            format!("`{}` contains a control character", shown(id)),
        ));
    }
    Ok(())
}

/// What neither backend can hold: PostgreSQL's `text` refuses NUL, and SQLite would store what
/// PostgreSQL refuses, so both refuse it here, as a client's error naming the field.
fn check_storable(doc: &StoredDocument) -> Result<()> {
    let nul = |field: &'static str, value: &str| -> Result<()> {
        if value.contains('\0') {
            return Err(Error::invalid(
                field,
                format!(
                    "document `{}`: contains a NUL character",
                    shown(&doc.external_id)
                ),
            ));
        }
        Ok(())
    };
    nul("title", &doc.title)?;
    nul("url", doc.url.as_deref().unwrap_or(""))?;
    nul("source", doc.source.as_deref().unwrap_or(""))?;
    for c in &doc.chunks {
        nul("chunk text", &c.text)?;
        nul("chunk heading", c.heading.as_deref().unwrap_or(""))?;
    }
    // Attributes are stored as JSON text, whose escapes (`\u0000`) are storable.
    Ok(())
}

/// The domain `pass` opens for writing (a missing one and one without write look the same).
fn writable<'a>(pass: &'a Pass, domain: &str) -> Result<&'a Domain> {
    if pass.role() < Role::Write {
        return Err(Error::not_found("domain", domain));
    }
    pass.domain(domain)
        .ok_or_else(|| Error::not_found("domain", domain))
}

impl Store {
    /// Commits `writes` to `domain` in one transaction; returns the domain's last changelog
    /// sequence (sequences count per domain).
    pub async fn write(&self, pass: &Pass, domain: &str, writes: &[Write]) -> Result<u64> {
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
        let last: i64 = sqlx::query(
            "UPDATE domains SET last_seq = last_seq + $2 WHERE id = $1 RETURNING last_seq",
        )
        .bind(d.id)
        .bind(writes.len() as i64)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| Error::not_found("domain", domain))?
        .try_get("last_seq")?;
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
                    sqlx::query(
                        "INSERT INTO chunks (domain_id, external_id, idx, text, char_start, char_end, heading, embedding) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(d.id)
                    .bind(id)
                    .bind(i as i64)
                    .bind(&c.text)
                    .bind(c.char_start as i64)
                    .bind(c.char_end as i64)
                    .bind(c.heading.as_deref())
                    .bind(embedding_bytes(&c.embedding))
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(last as u64)
    }

    /// What an indexing job needs to skip unchanged documents and reuse the vectors of
    /// unchanged chunks: each stored document of `ids` with its hash, title and chunks.
    pub async fn reusable(
        &self,
        domain_id: i64,
        ids: &[String],
    ) -> Result<HashMap<String, Reusable>> {
        let mut out: HashMap<String, Reusable> = HashMap::new();
        for part in ids.chunks(200) {
            let placeholders: Vec<String> =
                (0..part.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "SELECT d.external_id, d.content_hash, d.title, k.text, k.embedding \
                 FROM documents d JOIN chunks k ON k.domain_id = d.domain_id AND k.external_id = d.external_id \
                 WHERE d.domain_id = $1 AND d.external_id IN ({}) ORDER BY d.external_id, k.idx",
                placeholders.join(", ")
            );
            // Only placeholders are formatted in; every value is bound.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(domain_id);
            for id in part {
                q = q.bind(id);
            }
            for r in q.fetch_all(&self.pool).await? {
                let id: String = r.try_get("external_id")?;
                let entry = match out.get_mut(&id) {
                    Some(e) => e,
                    None => out.entry(id).or_insert(Reusable {
                        content_hash: r.try_get("content_hash")?,
                        title: r.try_get("title")?,
                        chunks: Vec::new(),
                    }),
                };
                let embedding: Vec<u8> = r.try_get("embedding")?;
                entry
                    .chunks
                    .push((r.try_get("text")?, embedding_from_bytes(&embedding)));
            }
        }
        Ok(out)
    }

    /// The ids of every document in a domain, sorted (for a full sync's deletions).
    pub async fn document_ids(&self, domain_id: i64) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT external_id FROM documents WHERE domain_id = $1 ORDER BY external_id",
        )
        .bind(domain_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("external_id")?)).collect()
    }

    /// The document that owns a secondary key, with its source: `(id, source)`.
    pub async fn document_by_key(
        &self,
        domain_id: i64,
        key: &str,
    ) -> Result<Option<(String, Option<String>)>> {
        let row = sqlx::query(
            "SELECT d.external_id, d.source FROM document_keys k JOIN documents d \
             ON d.domain_id = k.domain_id AND d.external_id = k.external_id \
             WHERE k.domain_id = $1 AND k.key = $2",
        )
        .bind(domain_id)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.try_get("external_id")?, r.try_get("source")?)))
            .transpose()
    }

    /// The stored sources of `ids`, for those stored with one.
    pub async fn document_sources(
        &self,
        domain_id: i64,
        ids: &[String],
    ) -> Result<HashMap<String, String>> {
        let mut out = HashMap::new();
        for part in ids.chunks(200) {
            let placeholders: Vec<String> =
                (0..part.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "SELECT external_id, source FROM documents \
                 WHERE domain_id = $1 AND source IS NOT NULL AND external_id IN ({})",
                placeholders.join(", ")
            );
            // Only placeholders are formatted in; every value is bound.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(domain_id);
            for id in part {
                q = q.bind(id);
            }
            for r in q.fetch_all(&self.pool).await? {
                out.insert(r.try_get("external_id")?, r.try_get("source")?);
            }
        }
        Ok(out)
    }

    /// The stored source of one document (`None` when absent or stored without one).
    pub async fn document_source(&self, domain_id: i64, id: &str) -> Result<Option<String>> {
        let row =
            sqlx::query("SELECT source FROM documents WHERE domain_id = $1 AND external_id = $2")
                .bind(domain_id)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(match row {
            Some(r) => r.try_get("source")?,
            None => None,
        })
    }

    /// Counts for `dartmouth domain stats`: documents, chunks, keys with `key_prefix` (a
    /// catalog's variants), the last sequence and when the last write happened.
    pub async fn domain_stats(
        &self,
        pass: &Pass,
        domain: &str,
        key_prefix: &str,
    ) -> Result<DomainStats> {
        let d = pass
            .domain(domain)
            .ok_or_else(|| Error::not_found("domain", domain))?;
        let count = |sql: &'static str| sqlx::query(sql).bind(d.id).fetch_one(&self.pool);
        let documents: i64 = count("SELECT COUNT(*) AS n FROM documents WHERE domain_id = $1")
            .await?
            .try_get("n")?;
        let chunks: i64 = count("SELECT COUNT(*) AS n FROM chunks WHERE domain_id = $1")
            .await?
            .try_get("n")?;
        let last_write: Option<i64> =
            count("SELECT MAX(at) AS at FROM changelog WHERE domain_id = $1")
                .await?
                .try_get("at")?;
        let keyed: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM document_keys WHERE domain_id = $1 AND key LIKE $2",
        )
        .bind(d.id)
        .bind(format!("{}%", key_prefix.replace(['%', '_'], "")))
        .fetch_one(&self.pool)
        .await?
        .try_get("n")?;
        let quarantined: i64 = count("SELECT COUNT(*) AS n FROM quarantine WHERE domain_id = $1")
            .await?
            .try_get("n")?;
        Ok(DomainStats {
            documents: documents as u64,
            chunks: chunks as u64,
            keyed: keyed as u64,
            last_seq: self.last_seq(d.id).await?,
            last_write_at: last_write,
            quarantined: quarantined as u64,
        })
    }

    /// Records that a shard refused a stored document (the applier's report; any node may
    /// record it, the latest wins), and audits it with the reason.
    pub async fn quarantine(
        &self,
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

    /// The quarantined documents of a domain, by id.
    pub async fn quarantined(&self, pass: &Pass, domain: &str) -> Result<Vec<Quarantined>> {
        let d = pass
            .domain(domain)
            .ok_or_else(|| Error::not_found("domain", domain))?;
        let rows = sqlx::query(
            "SELECT external_id, seq, reason, at FROM quarantine WHERE domain_id = $1 ORDER BY external_id",
        )
        .bind(d.id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Quarantined {
                    external_id: r.try_get("external_id")?,
                    seq: r.try_get::<i64, _>("seq")? as u64,
                    reason: r.try_get("reason")?,
                    at: r.try_get("at")?,
                })
            })
            .collect()
    }

    /// Whether a webhook delivery (the sender's delivery id) was already processed for the
    /// domain `pass` opens for writing.
    pub async fn delivered(&self, pass: &Pass, domain: &str, delivery_id: &str) -> Result<bool> {
        let d = writable(pass, domain)?;
        let row = sqlx::query(
            "SELECT 1 AS one FROM webhook_deliveries WHERE domain_id = $1 AND delivery_id = $2",
        )
        .bind(d.id)
        .bind(delivery_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Records a processed webhook delivery; forgets those older than three days (Shopify
    /// retries a delivery for 48 hours).
    pub async fn record_delivery(
        &self,
        pass: &Pass,
        domain: &str,
        delivery_id: &str,
    ) -> Result<()> {
        const KEEP_MS: i64 = 3 * 24 * 3600 * 1000;
        let d = writable(pass, domain)?;
        let now = now_millis();
        sqlx::query(
            "INSERT INTO webhook_deliveries (domain_id, delivery_id, at) VALUES ($1, $2, $3) \
             ON CONFLICT (domain_id, delivery_id) DO NOTHING",
        )
        .bind(d.id)
        .bind(delivery_id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        sqlx::query("DELETE FROM webhook_deliveries WHERE at < $1")
            .bind(now - KEEP_MS)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The domain with this id, if it still exists (the applier's check that a domain it is
    /// about to make a shard for was not deleted meanwhile).
    pub async fn domain_by_id(&self, id: i64) -> Result<Option<Domain>> {
        let row = sqlx::query(
            "SELECT id, uid, name, description, settings, created_at FROM domains WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(crate::admin::domain_from_row).transpose()
    }

    /// The latest changelog sequence of a domain (0 when it has none); `NotFound` once the
    /// domain is deleted (a deleted domain's shard is not "ahead of its store").
    pub async fn last_seq(&self, domain_id: i64) -> Result<u64> {
        let row = sqlx::query("SELECT last_seq FROM domains WHERE id = $1")
            .bind(domain_id)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(r) => Ok(r.try_get::<i64, _>("last_seq")? as u64),
            None => Err(Error::NotFound {
                what: "domain",
                name: format!("#{domain_id}"),
            }),
        }
    }

    /// When the first change of a domain after `after` was acknowledged (milliseconds since the
    /// Unix epoch); `None` when there is none. The applier measures ingest-to-searchable lag
    /// from it.
    pub async fn first_change_at(&self, domain_id: i64, after: u64) -> Result<Option<i64>> {
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

    /// Up to `limit` changes of a domain after `after`, each with the document's current state.
    pub async fn changes_since(
        &self,
        domain_id: i64,
        after: u64,
        limit: u32,
    ) -> Result<Vec<Change>> {
        let rows = sqlx::query(
            "SELECT domain_seq AS seq, op, external_id FROM changelog \
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
                })
            })
            .collect()
    }

    /// One stored document of a domain with its chunks (`None` when there is none).
    pub async fn document(
        &self,
        pass: &Pass,
        domain: &str,
        id: &str,
    ) -> Result<Option<StoredDocument>> {
        let d = pass
            .domain(domain)
            .ok_or_else(|| Error::not_found("domain", domain))?;
        check_id(id)?;
        let mut docs = self
            .documents_where(d.id, "AND d.external_id = $2", Extra::Id(id))
            .await?;
        Ok(docs.remove(id))
    }

    /// Every document of a domain, for rebuilding its shard.
    pub async fn all_documents(&self, domain_id: i64) -> Result<Vec<StoredDocument>> {
        let mut docs: Vec<StoredDocument> = self
            .documents_where(domain_id, "", Extra::None)
            .await?
            .into_values()
            .collect();
        docs.sort_by(|a, b| a.external_id.cmp(&b.external_id));
        Ok(docs)
    }

    async fn documents_where(
        &self,
        domain_id: i64,
        filter: &'static str,
        extra: Extra<'_>,
    ) -> Result<HashMap<String, StoredDocument>> {
        let sql = format!(
            "SELECT d.external_id, d.title, d.url, d.attributes, d.content_hash, \
             k.text, k.char_start, k.char_end, k.heading, k.embedding \
             FROM documents d JOIN chunks k ON k.domain_id = d.domain_id AND k.external_id = d.external_id \
             WHERE d.domain_id = $1 {filter} ORDER BY d.external_id, k.idx"
        );
        // The SQL is one of three fixed strings; every value is bound.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(domain_id);
        match extra {
            Extra::None => {}
            Extra::Range(after, upto) => q = q.bind(after).bind(upto),
            Extra::Id(id) => q = q.bind(id.to_string()),
        }
        let rows = q.fetch_all(&self.pool).await?;
        let mut out: HashMap<String, StoredDocument> = HashMap::new();
        for r in rows {
            let id: String = r.try_get("external_id")?;
            let doc = match out.get_mut(&id) {
                Some(d) => d,
                None => {
                    let attributes: String = r.try_get("attributes")?;
                    out.entry(id.clone()).or_insert(StoredDocument {
                        external_id: id.clone(),
                        title: r.try_get("title")?,
                        url: r.try_get("url")?,
                        attributes: serde_json::from_str(&attributes)
                            .map_err(|e| Error::invalid("attributes", e.to_string()))?,
                        content_hash: r.try_get("content_hash")?,
                        chunks: Vec::new(),
                        source: None,
                        keys: Vec::new(),
                    })
                }
            };
            let embedding: Vec<u8> = r.try_get("embedding")?;
            doc.chunks.push(StoredChunk {
                text: r.try_get("text")?,
                char_start: r.try_get::<i64, _>("char_start")? as u64,
                char_end: r.try_get::<i64, _>("char_end")? as u64,
                heading: r.try_get("heading")?,
                embedding: embedding_from_bytes(&embedding),
            });
        }
        Ok(out)
    }
}
