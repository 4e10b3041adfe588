//! What the store holds, as the rest of the system sees it.

use serde::{Deserialize, Serialize};

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Error, Result};

/// A knowledge domain: a named, access-controlled set of documents.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Domain {
    /// The store's number for it.
    pub id: i64,
    /// Made at creation and never reused: a domain deleted and created again under the same
    /// name is another domain (its shard, caches and sequences start afresh).
    pub uid: String,
    /// Its name: 1 to 64 of `a-z 0-9 . _ -`, starting with a letter or digit.
    pub name: String,
    /// What it holds, in words.
    pub description: String,
    /// How it embeds and chunks (`embedder`, `model`, `dim`, `chunk_tokens`, `chunk_overlap`,
    /// `option_names`, `rerank`): the engine's `DomainSettings` as JSON (this crate depends on
    /// no other member); its `model` is the serving generation's.
    #[schema(value_type = Object)]
    pub settings: serde_json::Value,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    /// Its embedding generations: the one serving, and one being built or kept (see
    /// `generations.rs`).
    pub generations: Generations,
}

/// What a principal is: an agent, a user, a service, or a group of principals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PrincipalKind {
    Agent,
    User,
    Service,
    Group,
}

impl PrincipalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::Agent => "agent",
            PrincipalKind::User => "user",
            PrincipalKind::Service => "service",
            PrincipalKind::Group => "group",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "agent" => PrincipalKind::Agent,
            "user" => PrincipalKind::User,
            "service" => PrincipalKind::Service,
            "group" => PrincipalKind::Group,
            other => {
                return Err(Error::invalid(
                    "kind",
                    format!(
                        "`{}` is not agent, user, service or group",
                        crate::names::shown(other)
                    ),
                ));
            }
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Principal {
    /// The store's number for it.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// What it is: agent, user, service or group.
    pub kind: PrincipalKind,
    /// May administer everything (the bootstrap admin).
    pub superuser: bool,
    /// Milliseconds since the epoch.
    pub created_at: i64,
}

/// What a grant allows on a domain; each role includes the ones before it.
/// A role on a domain; each includes the ones before it: read, write (ingest, delete), admin
/// (grants, settings, the domain itself).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Read,
    Write,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "read" => Role::Read,
            "write" => Role::Write,
            "admin" => Role::Admin,
            other => {
                return Err(Error::invalid(
                    "role",
                    format!(
                        "`{}` is not read, write or admin",
                        crate::names::shown(other)
                    ),
                ));
            }
        })
    }
}

/// A principal's role on a domain.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Grant {
    /// The principal (or group) granted.
    pub principal: String,
    /// The domain.
    pub domain: String,
    /// The role granted.
    pub role: Role,
}

/// An API key as listed: never the secret, never the hash.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct KeyInfo {
    /// The short public prefix that identifies the key (`dk_1a2b3c4d`).
    pub id: String,
    /// The principal it authenticates as.
    pub principal: String,
    /// The domains it is restricted to (`null`: the principal's grants decide).
    pub domains: Option<Vec<String>>,
    /// The highest role the key may use (`None`: the principal's grants decide).
    pub role: Option<Role>,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    /// When it expires, in milliseconds since the epoch (`null`: never).
    pub expires_at: Option<i64>,
    /// When it was revoked, in milliseconds since the epoch (`null`: not revoked).
    pub revoked_at: Option<i64>,
}

/// What a new key may do; each part can only narrow the creating credential.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyScope {
    /// Restrict the key to these domains (default: the creating credential's restriction).
    pub domains: Option<Vec<String>>,
    /// The highest role the key may use (default: the creating credential's).
    pub role: Option<Role>,
    /// When it expires, in milliseconds since the epoch (default: the creating credential's
    /// expiry).
    pub expires_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// The entry's number (increasing).
    pub id: i64,
    /// When, in milliseconds since the epoch.
    pub at: i64,
    /// The principal that acted (`applier` for quarantines).
    pub actor: String,
    /// What was done or tried (`create-domain`, `grant`, `create-key`, `read-domain`,
    /// `authenticate`, `quarantine`, …).
    pub action: String,
    /// What it was done to: a domain, principal, group, key or snapshot.
    pub target: String,
    /// `ok`, `denied` or `failed`.
    pub outcome: String,
    /// More, in words (may be empty).
    pub detail: String,
    /// How many times it happened (refused authentications are counted, not written each).
    pub count: i64,
}

/// A document as stored: enough to rebuild its chunks in a shard without re-embedding.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StoredDocument {
    pub external_id: String,
    pub title: String,
    pub url: Option<String>,
    /// The engine's `Attributes` as JSON.
    pub attributes: serde_json::Value,
    /// Hash of the source content; unchanged documents are not re-embedded.
    pub content_hash: String,
    pub chunks: Vec<StoredChunk>,
    /// What the document was rendered from (a normalised product as JSON), for partial updates.
    pub source: Option<String>,
    /// Secondary keys (`inventory_item:<id>`), unique within the domain: the latest writer of
    /// a key owns it.
    pub keys: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredChunk {
    pub text: String,
    pub char_start: u64,
    pub char_end: u64,
    pub heading: Option<String>,
    pub embedding: Vec<f32>,
}

/// A stored document as an indexing job sees it: what decides whether it changed, and the
/// vectors of its chunks (text, embedding) to reuse.
#[derive(Debug, Clone, PartialEq)]
pub struct Reusable {
    pub content_hash: String,
    pub title: String,
    pub chunks: Vec<(String, Vec<f32>)>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DomainStats {
    pub documents: u64,
    pub chunks: u64,
    /// Secondary keys with the asked prefix (`variant:` counts a catalog's variants).
    pub keyed: u64,
    pub last_seq: u64,
    /// Milliseconds since the epoch of the domain's last write.
    pub last_write_at: Option<i64>,
    /// Stored documents a shard refused (see [`Quarantined`]).
    pub quarantined: u64,
}

/// A stored document that a shard refused to apply: the applier skipped it (removing any
/// older version from the shard) and went on. Writing the document again clears it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Quarantined {
    /// The document's id.
    pub external_id: String,
    /// The change that was refused.
    pub seq: u64,
    /// Why the shard refused it.
    pub reason: String,
    /// When, in milliseconds since the epoch.
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    Upsert(StoredDocument),
    Delete(String),
}

/// One changelog entry with the document's current state (`None`: delete it).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub seq: u64,
    pub external_id: String,
    /// The document's current state, its vectors those of the slot asked for (a chunk whose
    /// vector that slot does not have yet has an empty one).
    pub document: Option<StoredDocument>,
    /// Only the shards of this slot apply it (a vector backfilled for a generation being
    /// built); `None`: every generation does.
    pub slot: Option<u8>,
}

/// Milliseconds since the Unix epoch (the store's timestamps).
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub(crate) fn embedding_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(crate) fn embedding_from_bytes(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// A domain from a row of `domains` (`id, uid, name, description, settings, created_at,
/// generations`).
pub(crate) fn domain_from_row(row: &AnyRow) -> Result<Domain> {
    let settings: String = row.try_get("settings")?;
    Ok(Domain {
        id: row.try_get("id")?,
        uid: row.try_get("uid")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        settings: serde_json::from_str(&settings)
            .map_err(|e| Error::invalid("settings", e.to_string()))?,
        created_at: row.try_get("created_at")?,
        generations: Generations::from_column(
            row.try_get::<Option<String>, _>("generations")?.as_deref(),
        )?,
    })
}

/// A domain's generations, as the `generations` column holds them (NULL: the first, never
/// switched, in slot 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Generations {
    /// The serving generation's slot: 1 or 2.
    pub active: u8,
    /// The serving generation's id (part of its shards' identity; empty for a domain's first).
    pub active_id: String,
    /// The generation being built by a model switch, or kept after one (`null`: none).
    pub other: Option<OtherGeneration>,
}

/// The generation that is not serving.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OtherGeneration {
    /// Its slot: 1 or 2.
    pub slot: u8,
    /// Its id.
    pub id: String,
    /// Its model (the engine's `ModelSpec` as JSON).
    #[schema(value_type = Object)]
    pub model: serde_json::Value,
    /// Building (a switch in progress) or kept (the previous model, for a rollback).
    pub state: GenerationState,
    /// When it started building, or was kept (milliseconds since the epoch).
    pub since: i64,
    /// Kept: the domain's last sequence when it stopped serving. A node serves it (it holds
    /// every write up to there) until its serving shard has reached this sequence.
    #[serde(default)]
    pub flip_seq: u64,
    /// Building: who builds it, until when (milliseconds since the epoch).
    #[serde(default)]
    pub lease: Option<Lease>,
}

/// What the generation that is not serving is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GenerationState {
    Building,
    Kept,
}

/// Which node builds a generation, until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Lease {
    /// The building node.
    pub owner: String,
    /// Milliseconds since the epoch.
    pub until: i64,
}

impl Default for Generations {
    fn default() -> Self {
        Generations {
            active: 1,
            active_id: String::new(),
            other: None,
        }
    }
}

impl Generations {
    pub(crate) fn from_column(raw: Option<&str>) -> Result<Generations> {
        match raw {
            None | Some("") => Ok(Generations::default()),
            Some(json) => {
                serde_json::from_str(json).map_err(|e| Error::invalid("generations", e.to_string()))
            }
        }
    }

    pub(crate) fn to_column(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The generation being built, if a switch runs.
    pub fn building(&self) -> Option<&OtherGeneration> {
        self.other
            .as_ref()
            .filter(|o| o.state == GenerationState::Building)
    }

    /// The generation kept after a switch, if any.
    pub fn kept(&self) -> Option<&OtherGeneration> {
        self.other
            .as_ref()
            .filter(|o| o.state == GenerationState::Kept)
    }
}
