//! Administration: domains, principals, groups, grants and API keys. Every action is audited,
//! including refusals; inputs are validated before any statement runs.

use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::access::Caller;
use crate::model::{
    AuditEntry, Domain, Grant, KeyInfo, KeyScope, Principal, PrincipalKind, Role, now_millis,
};
use crate::names::{MAX_DESCRIPTION, shown, validate_name, validate_text};
use crate::store::Store;
use crate::{Error, Result};

/// Key secrets: `dk_` + 64 hex digits (256 random bits). The first 8 hex digits, with the
/// prefix, are the key's public id.
const KEY_PREFIX: &str = "dk_";
const KEY_ID_LEN: usize = KEY_PREFIX.len() + 8;

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
    })
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

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

/// `n` random bytes as hex.
fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
    async fn require_superuser(&self, caller: &Caller, action: &str, target: &str) -> Result<()> {
        if caller.superuser {
            return Ok(());
        }
        self.audit(caller.name(), action, target, "denied", "not an admin")
            .await?;
        Err(Error::Forbidden(format!("{action} needs the admin role")))
    }

    /// Superuser, or admin on `domain`; anything else is audited and refused as if the domain
    /// did not exist.
    async fn require_domain_admin(
        &self,
        caller: &Caller,
        domain: &str,
        action: &str,
    ) -> Result<Domain> {
        let admin_of = self.accessible(caller, Role::Admin).await?;
        match admin_of.into_iter().find(|d| d.name == domain) {
            Some(d) => Ok(d),
            None => {
                self.audit(caller.name(), action, domain, "denied", "")
                    .await?;
                Err(Error::not_found("domain", domain))
            }
        }
    }

    pub async fn create_domain(
        &self,
        caller: &Caller,
        name: &str,
        description: &str,
        settings: &serde_json::Value,
    ) -> Result<Domain> {
        validate_name("domain name", name)?;
        validate_text("description", description, MAX_DESCRIPTION)?;
        self.require_superuser(caller, "create-domain", name)
            .await?;
        let now = now_millis();
        let row = sqlx::query(
            "INSERT INTO domains (name, description, settings, created_at, uid) VALUES ($1, $2, $3, $4, $5) \
             RETURNING id, uid, name, description, settings, created_at",
        )
        .bind(name)
        .bind(description)
        .bind(settings.to_string())
        .bind(now)
        .bind(random_hex(16))
        .fetch_one(&self.pool)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                Error::Conflict {
                    what: "domain",
                    name: shown(name),
                }
            } else {
                e.into()
            }
        })?;
        self.audit(caller.name(), "create-domain", name, "ok", description)
            .await?;
        domain_from_row(&row)
    }

    /// Domains the caller can read (all of them for an admin).
    pub async fn list_domains(&self, caller: &Caller) -> Result<Vec<Domain>> {
        self.accessible(caller, Role::Read).await
    }

    /// Deletes a domain with its documents, chunks, grants and changelog (the caller removes
    /// the shard). Returns the deleted domain.
    pub async fn delete_domain(&self, caller: &Caller, name: &str) -> Result<Domain> {
        let domain = self
            .require_domain_admin(caller, name, "delete-domain")
            .await?;
        let mut tx = self.pool.begin().await?;
        for sql in [
            "DELETE FROM chunks WHERE domain_id = $1",
            "DELETE FROM documents WHERE domain_id = $1",
            "DELETE FROM changelog WHERE domain_id = $1",
            "DELETE FROM document_keys WHERE domain_id = $1",
            "DELETE FROM quarantine WHERE domain_id = $1",
            "DELETE FROM grants WHERE domain_id = $1",
            "DELETE FROM domains WHERE id = $1",
        ] {
            sqlx::query(sql).bind(domain.id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        self.audit(caller.name(), "delete-domain", name, "ok", "")
            .await?;
        Ok(domain)
    }

    pub async fn create_principal(
        &self,
        caller: &Caller,
        name: &str,
        kind: PrincipalKind,
    ) -> Result<Principal> {
        validate_name("principal name", name)?;
        self.require_superuser(caller, "create-principal", name)
            .await?;
        let row = sqlx::query(
            "INSERT INTO principals (name, kind, superuser, created_at) VALUES ($1, $2, FALSE, $3) \
             RETURNING id, created_at",
        )
        .bind(name)
        .bind(kind.as_str())
        .bind(now_millis())
        .fetch_one(&self.pool)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                Error::Conflict {
                    what: "principal",
                    name: shown(name),
                }
            } else {
                e.into()
            }
        })?;
        self.audit(caller.name(), "create-principal", name, "ok", kind.as_str())
            .await?;
        Ok(Principal {
            id: row.try_get("id")?,
            name: name.to_string(),
            kind,
            superuser: false,
            created_at: row.try_get("created_at")?,
        })
    }

    pub async fn list_principals(&self, caller: &Caller) -> Result<Vec<Principal>> {
        self.require_superuser(caller, "list-principals", "")
            .await?;
        let rows = sqlx::query(
            "SELECT id, name, kind, CASE WHEN superuser THEN 1 ELSE 0 END AS su, created_at \
             FROM principals ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Principal {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    kind: PrincipalKind::parse(r.try_get("kind")?)?,
                    superuser: r.try_get::<i64, _>("su")? != 0,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    async fn principal_id(&self, name: &str) -> Result<(i64, PrincipalKind)> {
        let row = sqlx::query("SELECT id, kind FROM principals WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| Error::not_found("principal", name))?;
        Ok((
            row.try_get("id")?,
            PrincipalKind::parse(row.try_get("kind")?)?,
        ))
    }

    /// Adds `member` to `group` (a principal of kind group).
    pub async fn add_member(&self, caller: &Caller, group: &str, member: &str) -> Result<()> {
        validate_name("group", group)?;
        validate_name("member", member)?;
        self.require_superuser(caller, "add-member", group).await?;
        let (gid, kind) = self.principal_id(group).await?;
        if kind != PrincipalKind::Group {
            return Err(Error::invalid("group", format!("`{group}` is not a group")));
        }
        let (mid, _) = self.principal_id(member).await?;
        sqlx::query(
            "INSERT INTO memberships (group_id, member_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(gid)
        .bind(mid)
        .execute(&self.pool)
        .await?;
        self.audit(caller.name(), "add-member", group, "ok", member)
            .await?;
        Ok(())
    }

    /// Gives `principal` `role` on `domain` (replacing an earlier grant).
    pub async fn grant(
        &self,
        caller: &Caller,
        principal: &str,
        domain: &str,
        role: Role,
    ) -> Result<Grant> {
        validate_name("principal name", principal)?;
        validate_name("domain name", domain)?;
        let d = self.require_domain_admin(caller, domain, "grant").await?;
        let (pid, _) = self.principal_id(principal).await?;
        sqlx::query(
            "INSERT INTO grants (principal_id, domain_id, role) VALUES ($1, $2, $3) \
             ON CONFLICT (principal_id, domain_id) DO UPDATE SET role = excluded.role",
        )
        .bind(pid)
        .bind(d.id)
        .bind(role.as_str())
        .execute(&self.pool)
        .await?;
        self.audit(
            caller.name(),
            "grant",
            domain,
            "ok",
            &format!("{principal} {}", role.as_str()),
        )
        .await?;
        Ok(Grant {
            principal: principal.to_string(),
            domain: domain.to_string(),
            role,
        })
    }

    pub async fn revoke_grant(&self, caller: &Caller, principal: &str, domain: &str) -> Result<()> {
        validate_name("principal name", principal)?;
        validate_name("domain name", domain)?;
        let d = self
            .require_domain_admin(caller, domain, "revoke-grant")
            .await?;
        let (pid, _) = self.principal_id(principal).await?;
        sqlx::query("DELETE FROM grants WHERE principal_id = $1 AND domain_id = $2")
            .bind(pid)
            .bind(d.id)
            .execute(&self.pool)
            .await?;
        self.audit(caller.name(), "revoke-grant", domain, "ok", principal)
            .await?;
        Ok(())
    }

    pub async fn list_grants(&self, caller: &Caller) -> Result<Vec<Grant>> {
        self.require_superuser(caller, "list-grants", "").await?;
        let rows = sqlx::query(
            "SELECT p.name AS principal, d.name AS domain, g.role FROM grants g \
             JOIN principals p ON p.id = g.principal_id JOIN domains d ON d.id = g.domain_id \
             ORDER BY p.name, d.name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Grant {
                    principal: r.try_get("principal")?,
                    domain: r.try_get("domain")?,
                    role: Role::parse(r.try_get("role")?)?,
                })
            })
            .collect()
    }

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
            return Err(Error::not_found("key", id));
        }
        let row = sqlx::query(
            "SELECT p.name FROM api_keys k JOIN principals p ON p.id = k.principal_id WHERE k.id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let owner: String = match row {
            Some(r) => r.try_get("name")?,
            None => return Err(Error::not_found("key", id)),
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
        let row = sqlx::query(
            "SELECT k.hash, k.domains, k.role, k.expires_at, k.revoked_at, p.id AS pid, p.name, \
             CASE WHEN p.superuser THEN 1 ELSE 0 END AS su \
             FROM api_keys k JOIN principals p ON p.id = k.principal_id WHERE k.id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            self.count_refusal("anonymous", id, "unknown key");
            return Err(refuse("unknown or revoked"));
        };
        let hash: String = row.try_get("hash")?;
        if !constant_time_eq(&hash, &hash_secret(secret)) {
            self.count_refusal("anonymous", id, "wrong secret");
            return Err(refuse("unknown or revoked"));
        }
        let name: String = row.try_get("name")?;
        if row.try_get::<Option<i64>, _>("revoked_at")?.is_some() {
            self.count_refusal(&name, id, "revoked key");
            return Err(refuse("unknown or revoked"));
        }
        let expires_at: Option<i64> = row.try_get("expires_at")?;
        if expires_at.is_some_and(|e| e <= now_millis()) {
            self.count_refusal(&name, id, "expired key");
            return Err(refuse("expired"));
        }
        let domains: Option<String> = row.try_get("domains")?;
        // A restriction that cannot be read restricts to nothing, never to everything.
        let only = domains.map(|d| serde_json::from_str(&d).unwrap_or_default());
        let role: Option<String> = row.try_get("role")?;
        Ok(
            Caller::principal(row.try_get("pid")?, name, row.try_get::<i64, _>("su")? != 0)
                .narrowed(
                    only,
                    role.as_deref().map(Role::parse).transpose()?,
                    expires_at,
                ),
        )
    }

    /// Audit entries at or after `since` (unix ms), oldest first; admins only. Refused
    /// authentications counted so far are written first.
    pub async fn audit_since(&self, caller: &Caller, since: i64) -> Result<Vec<AuditEntry>> {
        self.require_superuser(caller, "read-audit", "").await?;
        self.flush_audit().await?;
        let rows = sqlx::query(
            "SELECT id, at, actor, action, target, outcome, detail, count FROM audit \
             WHERE at >= $1 ORDER BY id",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    target: r.try_get("target")?,
                    outcome: r.try_get("outcome")?,
                    detail: r.try_get("detail")?,
                    count: r.try_get("count")?,
                })
            })
            .collect()
    }
}
