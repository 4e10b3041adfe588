//! API keys: `dk_` + 64 hex digits (256 random bits), stored as SHA-256, a short public id,
//! revocable; a key narrows its principal's grants (domains, role, expiry) and a credential
//! only ever makes keys at most as wide as itself.

use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::access::Caller;
use crate::fallback::KeyRow;
use crate::model::{KeyInfo, KeyScope, Role, now_millis};
use crate::names::{shown, validate_name};
use crate::store::{Store, random_hex};
use crate::{Error, Result};

/// Key secrets: `dk_` + 64 hex digits (256 random bits). The first 8 hex digits, with the
/// prefix, are the key's public id.
const KEY_PREFIX: &str = "dk_";
const KEY_ID_LEN: usize = KEY_PREFIX.len() + 8;

fn hash_secret(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The scope of a key `caller` asks for, with unset parts taken from the caller's own
/// credential, or why it would be wider than that credential.
fn narrower(caller: &Caller, mut scope: KeyScope) -> std::result::Result<KeyScope, String> {
    if let Some(mine) = caller.only() {
        match &scope.domains {
            None => scope.domains = Some(mine.to_vec()),
            Some(asked) => {
                if let Some(d) = asked.iter().find(|d| !mine.contains(d)) {
                    return Err(format!(
                        "this credential is restricted to {}: it cannot create a key for `{}`",
                        mine.join(", "),
                        shown(d)
                    ));
                }
            }
        }
    }
    if let Some(mine) = caller.expires_at() {
        match scope.expires_at {
            None => scope.expires_at = Some(mine),
            Some(asked) if asked > mine => {
                return Err(
                    "a key cannot outlive the credential that creates it (expires_in is too long)"
                        .into(),
                );
            }
            Some(_) => {}
        }
    }
    if let Some(mine) = caller.max_role() {
        match scope.role {
            None => scope.role = Some(mine),
            Some(asked) if asked > mine => {
                return Err(format!(
                    "this credential may use at most the {} role: it cannot create a key with {}",
                    mine.as_str(),
                    asked.as_str()
                ));
            }
            Some(_) => {}
        }
    }
    Ok(scope)
}

/// A key's public id: `dk_` and 8 hex digits.
fn is_key_id(id: &str) -> bool {
    id.len() == KEY_ID_LEN
        && id.starts_with(KEY_PREFIX)
        && id[KEY_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit())
}

/// Compares two equal-length strings without an early exit.
fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Store {
    /// Creates an API key for `principal` and returns (its info, the secret). The secret is
    /// shown once; only its SHA-256 is stored. A credential creates only keys at most as wide
    /// as itself: its own domains or fewer, no later expiry, no higher role; a delegated token
    /// creates none. Unset parts of `scope` default to the creating credential's.
    pub async fn create_key(
        &self,
        caller: &Caller,
        principal: &str,
        scope: KeyScope,
    ) -> Result<(KeyInfo, String)> {
        validate_name("principal name", principal)?;
        if let Some(ds) = &scope.domains {
            for d in ds {
                validate_name("domain name", d)?;
            }
        }
        if caller.is_delegated() {
            self.audit(
                caller.name(),
                "create-key",
                principal,
                "denied",
                "delegated token",
            )
            .await?;
            return Err(Error::Forbidden(
                "a delegated token is read-only: it cannot create keys".into(),
            ));
        }
        if principal != caller.name() {
            self.require_superuser(caller, "create-key", principal)
                .await?;
        }
        let scope = match narrower(caller, scope) {
            Ok(s) => s,
            Err(reason) => {
                self.audit(caller.name(), "create-key", principal, "denied", &reason)
                    .await?;
                return Err(Error::Forbidden(reason));
            }
        };
        let (pid, _) = self.principal_id(principal).await?;
        let secret = format!("{KEY_PREFIX}{}", random_hex(32));
        let id = secret[..KEY_ID_LEN].to_string();
        let now = now_millis();
        sqlx::query(
            "INSERT INTO api_keys (id, principal_id, hash, domains, created_at, expires_at, role) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(pid)
        .bind(hash_secret(&secret))
        .bind(
            scope
                .domains
                .as_ref()
                .map(|d| serde_json::json!(d).to_string()),
        )
        .bind(now)
        .bind(scope.expires_at)
        .bind(scope.role.map(Role::as_str))
        .execute(&self.pool)
        .await?;
        self.audit(caller.name(), "create-key", principal, "ok", &id)
            .await?;
        Ok((
            KeyInfo {
                id,
                principal: principal.to_string(),
                domains: scope.domains,
                role: scope.role,
                created_at: now,
                expires_at: scope.expires_at,
                revoked_at: None,
            },
            secret,
        ))
    }

    pub async fn revoke_key(&self, caller: &Caller, id: &str) -> Result<()> {
        if !is_key_id(id) {
            return Err(Error::not_found(crate::Missing::Key, id));
        }
        let row = sqlx::query(
            "SELECT p.name FROM api_keys k JOIN principals p ON p.id = k.principal_id WHERE k.id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let owner: String = match row {
            Some(r) => r.try_get("name")?,
            None => return Err(Error::not_found(crate::Missing::Key, id)),
        };
        if caller.is_delegated() {
            self.audit(caller.name(), "revoke-key", id, "denied", "delegated token")
                .await?;
            return Err(Error::Forbidden(
                "a delegated token is read-only: it cannot revoke keys".into(),
            ));
        }
        if owner != caller.name() {
            self.require_superuser(caller, "revoke-key", id).await?;
        }
        sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now_millis())
            .bind(id)
            .execute(&self.pool)
            .await?;
        self.audit(caller.name(), "revoke-key", id, "ok", &owner)
            .await?;
        Ok(())
    }

    pub async fn list_keys(&self, caller: &Caller) -> Result<Vec<KeyInfo>> {
        self.require_superuser(caller, "list-keys", "").await?;
        let rows = sqlx::query(
            "SELECT k.id, p.name, k.domains, k.role, k.created_at, k.expires_at, k.revoked_at \
             FROM api_keys k JOIN principals p ON p.id = k.principal_id ORDER BY k.created_at",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let domains: Option<String> = r.try_get("domains")?;
                let role: Option<String> = r.try_get("role")?;
                Ok(KeyInfo {
                    id: r.try_get("id")?,
                    principal: r.try_get("name")?,
                    domains: domains.and_then(|d| serde_json::from_str(&d).ok()),
                    role: role.as_deref().map(Role::parse).transpose()?,
                    created_at: r.try_get("created_at")?,
                    expires_at: r.try_get("expires_at")?,
                    revoked_at: r.try_get("revoked_at")?,
                })
            })
            .collect()
    }

    /// The caller a verified client certificate names (the server maps the certificate to a
    /// name): a principal of that name that is not a group. Anything else is `Unauthenticated`,
    /// counted in the audit log like a refused key.
    /// The caller expires with the certificate (`expires_at`, milliseconds): it can mint no
    /// key that outlives it.
    pub async fn authenticate_certificate(
        &self,
        name: &str,
        expires_at: Option<i64>,
    ) -> Result<Caller> {
        let refuse = || {
            Error::Unauthenticated(
                "invalid client certificate (it names no principal that may authenticate)".into(),
            )
        };
        let Some(row) = self.principal_row(name).await? else {
            self.count_refusal("anonymous", "certificate", "unknown principal");
            return Err(refuse());
        };
        let name = row.name;
        if row.group {
            self.count_refusal(&name, "certificate", "a group cannot authenticate");
            return Err(refuse());
        }
        if expires_at.is_some_and(|e| e <= now_millis()) {
            self.count_refusal(&name, "certificate", "expired certificate");
            return Err(refuse());
        }
        Ok(Caller::principal(row.id, name, row.superuser).narrowed(None, None, expires_at))
    }

    /// The caller a key secret stands for. Unknown, malformed, revoked and expired keys all get
    /// `Unauthenticated` (the reason is audited, not returned).
    pub async fn authenticate_key(&self, secret: &str) -> Result<Caller> {
        let refuse = |reason: &str| Error::Unauthenticated(format!("invalid API key ({reason})"));
        if !secret.starts_with(KEY_PREFIX)
            || secret.len() != KEY_PREFIX.len() + 64
            || !secret[KEY_PREFIX.len()..]
                .bytes()
                .all(|b| b.is_ascii_hexdigit())
        {
            self.count_refusal("anonymous", "key", "malformed key");
            return Err(refuse("malformed"));
        }
        let id = &secret[..KEY_ID_LEN];
        let row = self
            .kept_read::<KeyRow, _>(id.to_string(), async {
                let row = sqlx::query(
                    "SELECT k.hash, k.domains, k.role, k.expires_at, k.revoked_at, p.id AS pid, p.name, \
                     CASE WHEN p.superuser THEN 1 ELSE 0 END AS su \
                     FROM api_keys k JOIN principals p ON p.id = k.principal_id WHERE k.id = $1",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                row.map(|row| -> Result<KeyRow> {
                    Ok(KeyRow {
                        hash: row.try_get("hash")?,
                        domains: row.try_get("domains")?,
                        role: row.try_get("role")?,
                        expires_at: row.try_get("expires_at")?,
                        revoked_at: row.try_get("revoked_at")?,
                        principal_id: row.try_get("pid")?,
                        name: row.try_get("name")?,
                        superuser: row.try_get::<i64, _>("su")? != 0,
                    })
                })
                .transpose()
            })
            .await?;
        let Some(row) = row else {
            self.count_refusal("anonymous", id, "unknown key");
            return Err(refuse("unknown or revoked"));
        };
        if !constant_time_eq(&row.hash, &hash_secret(secret)) {
            self.count_refusal("anonymous", id, "wrong secret");
            return Err(refuse("unknown or revoked"));
        }
        let name = row.name;
        if row.revoked_at.is_some() {
            self.count_refusal(&name, id, "revoked key");
            return Err(refuse("unknown or revoked"));
        }
        let expires_at = row.expires_at;
        if expires_at.is_some_and(|e| e <= now_millis()) {
            self.count_refusal(&name, id, "expired key");
            return Err(refuse("expired"));
        }
        // A restriction that cannot be read restricts to nothing, never to everything.
        let only = row
            .domains
            .map(|d| serde_json::from_str(&d).unwrap_or_default());
        Ok(
            Caller::principal(row.principal_id, name, row.superuser).narrowed(
                only,
                row.role.as_deref().map(Role::parse).transpose()?,
                expires_at,
            ),
        )
    }
}
