//! A domain's engine settings as the store keeps them (JSON: `domains` depends on no member),
//! and stored documents in the engine's form.

use dartmouth_catalog::CatalogSettings;
use dartmouth_domains::{Domain, StoredDocument};
use dartmouth_engine::{Attributes, Chunk, Document, DomainSettings};

use crate::{Error, Result};

/// Where the store's JSON of a domain's settings keeps its catalog settings, beside the
/// engine's keys.
const CATALOG_KEY: &str = "catalog";

/// The engine's settings of a domain, from its JSON in the store.
pub fn domain_settings(domain: &Domain) -> Result<DomainSettings> {
    serde_json::from_value(domain.settings.clone()).map_err(|e| {
        Error::Unreadable(format!(
            "domain `{}`: settings in the store are unreadable: {e}",
            domain.name
        ))
    })
}

/// The catalog settings of a domain (how its Shopify products are filed), from its JSON in the
/// store; the defaults when it has none.
pub fn catalog_settings(domain: &Domain) -> Result<CatalogSettings> {
    match domain.settings.get(CATALOG_KEY) {
        None => Ok(CatalogSettings::default()),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
            Error::Unreadable(format!(
                "domain `{}`: catalog settings in the store are unreadable: {e}",
                domain.name
            ))
        }),
    }
}

/// One embedding generation of a domain as a node holds it: which slot of the store its vectors
/// are in, the catalog key and identity of its shard, and the settings its shard is made with.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    pub slot: u8,
    pub key: String,
    pub identity: String,
    pub settings: DomainSettings,
}

impl Generation {
    /// The generation serving the domain.
    pub fn serving(domain: &Domain) -> Result<Generation> {
        let g = &domain.generations;
        Ok(Generation {
            slot: g.active,
            key: dartmouth_engine::shard_key(&domain.name, g.active),
            identity: identity(domain, &g.active_id),
            settings: domain_settings(domain)?,
        })
    }

    /// The other one (being built, or kept), if any.
    pub fn other(domain: &Domain) -> Result<Option<Generation>> {
        let Some(o) = &domain.generations.other else {
            return Ok(None);
        };
        let mut settings = domain_settings(domain)?;
        settings.model = serde_json::from_value(o.model.clone()).map_err(|e| {
            Error::Unreadable(format!(
                "domain `{}`: the model of its other generation is unreadable: {e}",
                domain.name
            ))
        })?;
        Ok(Some(Generation {
            slot: o.slot,
            key: dartmouth_engine::shard_key(&domain.name, o.slot),
            identity: identity(domain, &o.id),
            settings,
        }))
    }

    /// Every generation of the domain, the serving one first.
    pub fn all(domain: &Domain) -> Result<Vec<Generation>> {
        let mut all = vec![Generation::serving(domain)?];
        all.extend(Generation::other(domain)?);
        Ok(all)
    }
}

/// The identity a generation's shard records: the domain's uid, with the generation's id after
/// a switch (a domain's first generation has none, as shards made before switches).
fn identity(domain: &Domain, generation_id: &str) -> String {
    if generation_id.is_empty() {
        domain.uid.clone()
    } else {
        format!("{}.{generation_id}", domain.uid)
    }
}

/// The settings a new domain is stored with, once its name (which names its shard directory)
/// and its settings are checked: call before `Store::create_domain`, so that a domain the
/// engine cannot hold is never stored.
pub fn new_domain_settings(
    name: &str,
    settings: &DomainSettings,
    catalog: &CatalogSettings,
) -> Result<serde_json::Value> {
    dartmouth_engine::validate_domain_name(name)?;
    settings.validate()?;
    catalog
        .validate()
        .map_err(|e| Error::Input(format!("domain `{name}`: {e}")))?;
    let json = |e: serde_json::Error| Error::Input(format!("domain `{name}`: {e}"));
    let mut value = serde_json::to_value(settings).map_err(json)?;
    if !catalog.is_default()
        && let Some(object) = value.as_object_mut()
    {
        object.insert(
            CATALOG_KEY.to_string(),
            serde_json::to_value(catalog).map_err(json)?,
        );
    }
    Ok(value)
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
