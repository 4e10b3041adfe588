//! What a pass may read of a domain's content: stored documents, what an indexing job needs
//! to skip unchanged ones, secondary keys, counts and quarantined documents.

use std::collections::HashMap;

use sqlx::Row;

use super::{Extra, check_id, opened};
use crate::Result;
use crate::access::Pass;
use crate::model::{DomainStats, Quarantined, Reusable, StoredDocument, embedding_from_bytes};
use crate::store::Store;

impl Store {
    /// What an indexing job needs to skip unchanged documents and reuse the vectors of
    /// unchanged chunks: each stored document of `ids` with its hash, title and chunks.
    pub async fn reusable(
        &self,
        pass: &Pass,
        domain: &str,
        ids: &[String],
    ) -> Result<HashMap<String, Reusable>> {
        let d = opened(pass, domain)?;
        let domain_id = d.id;
        let column = crate::generations::slot_column(d.generations.active);
        let mut out: HashMap<String, Reusable> = HashMap::new();
        for part in ids.chunks(200) {
            let placeholders: Vec<String> =
                (0..part.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "SELECT d.external_id, d.content_hash, d.title, k.text, k.{column} AS embedding \
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
                let embedding: Option<Vec<u8>> = r.try_get("embedding")?;
                let embedding = embedding.unwrap_or_default();
                entry
                    .chunks
                    .push((r.try_get("text")?, embedding_from_bytes(&embedding)));
            }
        }
        Ok(out)
    }

    /// Which of `ids` the domain holds.
    pub async fn existing_ids(
        &self,
        pass: &Pass,
        domain: &str,
        ids: &[String],
    ) -> Result<std::collections::HashSet<String>> {
        let domain_id = opened(pass, domain)?.id;
        let mut out = std::collections::HashSet::new();
        for part in ids.chunks(200) {
            let placeholders: Vec<String> =
                (0..part.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "SELECT external_id FROM documents WHERE domain_id = $1 AND external_id IN ({})",
                placeholders.join(", ")
            );
            // Only placeholders are formatted in; every value is bound.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(domain_id);
            for id in part {
                q = q.bind(id);
            }
            for r in q.fetch_all(&self.pool).await? {
                out.insert(r.try_get("external_id")?);
            }
        }
        Ok(out)
    }

    /// The ids of every document in a domain, sorted (for a full sync's deletions).
    pub async fn document_ids(&self, pass: &Pass, domain: &str) -> Result<Vec<String>> {
        let domain_id = opened(pass, domain)?.id;
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
        pass: &Pass,
        domain: &str,
        key: &str,
    ) -> Result<Option<(String, Option<String>)>> {
        let domain_id = opened(pass, domain)?.id;
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
        pass: &Pass,
        domain: &str,
        ids: &[String],
    ) -> Result<HashMap<String, String>> {
        let domain_id = opened(pass, domain)?.id;
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

    /// One stored document of a domain with its chunks (`None` when there is none).
    pub async fn document(
        &self,
        pass: &Pass,
        domain: &str,
        id: &str,
    ) -> Result<Option<StoredDocument>> {
        let d = opened(pass, domain)?;
        check_id(id)?;
        let mut docs = self
            .documents_where(
                d.id,
                d.generations.active,
                "AND d.external_id = $2",
                Extra::Id(id),
            )
            .await?;
        Ok(docs.remove(id))
    }

    /// Counts for `dartmouth domain stats`: documents, chunks, keys with `key_prefix` (a
    /// catalog's variants), the last sequence and when the last write happened.
    pub async fn domain_stats(
        &self,
        pass: &Pass,
        domain: &str,
        key_prefix: &str,
    ) -> Result<DomainStats> {
        let d = opened(pass, domain)?;
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
            last_seq: self.last_seq(&self.system(), d.id).await?,
            last_write_at: last_write,
            quarantined: quarantined as u64,
        })
    }

    /// The quarantined documents of a domain, by id.
    pub async fn quarantined(&self, pass: &Pass, domain: &str) -> Result<Vec<Quarantined>> {
        let d = opened(pass, domain)?;
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
}
