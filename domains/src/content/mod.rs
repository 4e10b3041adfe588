//! Documents, chunks and the changelog. A write commits its rows and one changelog row per
//! document in one transaction; the acknowledgement is the last sequence it took (`write.rs`).
//! What callers read takes their pass (`read.rs`, `deliveries.rs`); what the system reads to
//! replay the changelog takes the explicit `System` authority (`changelog.rs`).

mod changelog;
mod deliveries;
mod read;
mod write;

use std::collections::HashMap;

use sqlx::Row;

use crate::access::Pass;
use crate::model::{Domain, Role, StoredChunk, StoredDocument, embedding_from_bytes};
use crate::names::shown;
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
        return Err(Error::not_found(crate::Missing::Domain, domain));
    }
    pass.domain(domain)
        .ok_or_else(|| Error::not_found(crate::Missing::Domain, domain))
}

/// The domain `pass` opens (for any role): a missing one and one the pass does not open look the
/// same.
fn opened<'a>(pass: &'a Pass, domain: &str) -> Result<&'a Domain> {
    pass.domain(domain)
        .ok_or_else(|| Error::not_found(crate::Missing::Domain, domain))
}

impl Store {
    /// Documents of a domain with their chunks, each chunk's vector the one of `slot` (empty
    /// where that slot has none yet).
    async fn documents_where(
        &self,
        domain_id: i64,
        slot: u8,
        filter: &'static str,
        extra: Extra<'_>,
    ) -> Result<HashMap<String, StoredDocument>> {
        let sql = format!(
            "SELECT d.external_id, d.title, d.url, d.attributes, d.content_hash, \
             k.text, k.char_start, k.char_end, k.heading, k.{} AS embedding \
             FROM documents d JOIN chunks k ON k.domain_id = d.domain_id AND k.external_id = d.external_id \
             WHERE d.domain_id = $1 {filter} ORDER BY d.external_id, k.idx",
            crate::generations::slot_column(slot)
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
            let embedding: Option<Vec<u8>> = r.try_get("embedding")?;
            let embedding = embedding.unwrap_or_default();
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
