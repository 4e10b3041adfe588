//! A domain's engine settings as the store keeps them (JSON: `domains` depends on no member),
//! and stored documents in the engine's form.

use dartmouth_domains::{Domain, StoredDocument};
use dartmouth_engine::{Attributes, Chunk, Document, DomainSettings};

use crate::{Error, Result};

/// The engine's settings of a domain, from its JSON in the store.
pub fn domain_settings(domain: &Domain) -> Result<DomainSettings> {
    serde_json::from_value(domain.settings.clone()).map_err(|e| {
        Error::Unreadable(format!(
            "domain `{}`: settings in the store are unreadable: {e}",
            domain.name
        ))
    })
}

/// The settings a new domain is stored with, once its name (which names its shard directory)
/// and its settings are checked: call before `Store::create_domain`, so that a domain the
/// engine cannot hold is never stored.
pub fn new_domain_settings(name: &str, settings: &DomainSettings) -> Result<serde_json::Value> {
    dartmouth_engine::validate_domain_name(name)?;
    settings.validate()?;
    serde_json::to_value(settings).map_err(|e| Error::Input(format!("domain `{name}`: {e}")))
}

/// A stored document in the engine's form.
pub fn to_document(doc: StoredDocument) -> Result<Document> {
    let attributes: Attributes = serde_json::from_value(doc.attributes).map_err(|e| {
        Error::Unreadable(format!(
            "document `{}`: attributes in the store are unreadable: {e}",
            doc.external_id
        ))
    })?;
    Ok(Document {
        id: doc.external_id,
        title: doc.title,
        url: doc.url,
        attributes,
        chunks: doc
            .chunks
            .into_iter()
            .map(|c| Chunk {
                text: c.text,
                char_start: c.char_start,
                char_end: c.char_end,
                heading: c.heading,
                embedding: c.embedding,
            })
            .collect(),
    })
}
