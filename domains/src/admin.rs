//! Administration: domains, principals, groups and grants (keys are `keys.rs`). Every action
//! is audited, including refusals; inputs are validated before any statement runs.

use sqlx::Row;

use crate::access::Caller;
use crate::model::{
    AuditEntry, Domain, Grant, Principal, PrincipalKind, Role, domain_from_row, now_millis,
};
use crate::names::{MAX_DESCRIPTION, shown, validate_name, validate_text};
use crate::store::{Store, random_hex};
use crate::{Error, Result};

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

impl Store {
    pub(crate) async fn require_superuser(
        &self,
        caller: &Caller,
        action: &str,
        target: &str,
    ) -> Result<()> {
        if caller.superuser {
            return Ok(());
        }
        self.audit(caller.name(), action, target, "denied", "not an admin")
            .await?;
        Err(Error::Forbidden(format!("{action} needs the admin role")))
    }

    /// Superuser, or admin on `domain`; anything else is audited and refused as if the domain
    /// did not exist.
    pub(crate) async fn require_domain_admin(
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
                Err(Error::not_found(crate::Missing::Domain, domain))
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
             RETURNING id, uid, name, description, settings, created_at, generations",
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
        self.notify_change(&mut tx, domain.id).await?;
        tx.commit().await?;
        self.audit(caller.name(), "delete-domain", name, "ok", "")
            .await?;
        Ok(domain)
    }

    /// Changes a domain's description and, when given, its settings (the caller has checked
    /// them; the model and chunking a shard was built with are not the caller's to change).
    pub async fn update_domain(
        &self,
        caller: &Caller,
        name: &str,
        description: Option<&str>,
        settings: Option<&serde_json::Value>,
    ) -> Result<Domain> {
        validate_name("domain name", name)?;
        if let Some(d) = description {
            validate_text("description", d, MAX_DESCRIPTION)?;
        }
        let domain = self
            .require_domain_admin(caller, name, "update-domain")
            .await?;
        // Only what is given is written: two updates of different parts do not undo each other.
        // The model is never the caller's to set (a switch changes it): the settings keep the
        // one the row holds when they are written, read under the row's lock.
        let mut tx = self.pool.begin().await?;
        let current =
            sqlx::query("UPDATE domains SET last_seq = last_seq WHERE id = $1 RETURNING settings")
                .bind(domain.id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| Error::not_found(crate::Missing::Domain, name))?;
        let settings = match settings {
            Some(given) => {
                let current: serde_json::Value =
                    serde_json::from_str(&current.try_get::<String, _>("settings")?)
                        .map_err(|e| Error::invalid("settings", e.to_string()))?;
                let mut given = given.clone();
                if let Some(model) = current.get("model") {
                    given["model"] = model.clone();
                }
                Some(given)
            }
            None => None,
        };
        let row = sqlx::query(
            "UPDATE domains SET description = COALESCE($2, description), \
             settings = COALESCE($3, settings) WHERE id = $1 \
             RETURNING id, uid, name, description, settings, created_at, generations",
        )
        .bind(domain.id)
        .bind(description.map(str::to_string))
        .bind(settings.as_ref().map(serde_json::Value::to_string))
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| Error::not_found(crate::Missing::Domain, name))?;
        tx.commit().await?;
        let mut changed = Vec::new();
        if description.is_some() {
            changed.push("description");
        }
        if settings.is_some() {
            changed.push("settings");
        }
        self.audit(
            caller.name(),
            "update-domain",
            name,
            "ok",
            &changed.join(", "),
        )
        .await?;
        domain_from_row(&row)
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

    pub(crate) async fn principal_id(&self, name: &str) -> Result<(i64, PrincipalKind)> {
        let row = sqlx::query("SELECT id, kind FROM principals WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| Error::not_found(crate::Missing::Principal, name))?;
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

    /// Removes `member` from `group`; removing someone who is not a member is not an error.
    pub async fn remove_member(&self, caller: &Caller, group: &str, member: &str) -> Result<()> {
        validate_name("group", group)?;
        validate_name("member", member)?;
        self.require_superuser(caller, "remove-member", group)
            .await?;
        let (gid, _) = self.principal_id(group).await?;
        let (mid, _) = self.principal_id(member).await?;
        sqlx::query("DELETE FROM memberships WHERE group_id = $1 AND member_id = $2")
            .bind(gid)
            .bind(mid)
            .execute(&self.pool)
            .await?;
        self.audit(caller.name(), "remove-member", group, "ok", member)
            .await?;
        Ok(())
    }

    /// The direct members of `group`, by name.
    pub async fn members(&self, caller: &Caller, group: &str) -> Result<Vec<String>> {
        validate_name("group", group)?;
        self.require_superuser(caller, "list-members", group)
            .await?;
        let (gid, kind) = self.principal_id(group).await?;
        if kind != PrincipalKind::Group {
            return Err(Error::invalid("group", format!("`{group}` is not a group")));
        }
        let rows = sqlx::query(
            "SELECT p.name FROM memberships m JOIN principals p ON p.id = m.member_id \
             WHERE m.group_id = $1 ORDER BY p.name",
        )
        .bind(gid)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("name")?)).collect()
    }

    /// Deletes a principal with its keys, grants and memberships (either side), in one
    /// transaction. The bootstrap admin and the caller itself cannot be deleted.
    pub async fn delete_principal(&self, caller: &Caller, name: &str) -> Result<()> {
        validate_name("principal name", name)?;
        self.require_superuser(caller, "delete-principal", name)
            .await?;
        let (pid, _) = self.principal_id(name).await?;
        let superuser: i64 = sqlx::query(
            "SELECT CASE WHEN superuser THEN 1 ELSE 0 END AS su FROM principals WHERE id = $1",
        )
        .bind(pid)
        .fetch_one(&self.pool)
        .await?
        .try_get("su")?;
        if superuser != 0 || name == caller.name() {
            self.audit(
                caller.name(),
                "delete-principal",
                name,
                "denied",
                "a superuser or the caller itself",
            )
            .await?;
            return Err(Error::invalid(
                "principal",
                format!(
                    "`{name}` cannot be deleted: {}",
                    if superuser != 0 {
                        "it is a superuser"
                    } else {
                        "it is the caller"
                    }
                ),
            ));
        }
        let mut tx = self.pool.begin().await?;
        for sql in [
            "DELETE FROM api_keys WHERE principal_id = $1",
            "DELETE FROM grants WHERE principal_id = $1",
            "DELETE FROM memberships WHERE group_id = $1 OR member_id = $1",
            "DELETE FROM principals WHERE id = $1",
        ] {
            sqlx::query(sql).bind(pid).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        self.audit(caller.name(), "delete-principal", name, "ok", "")
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

    /// Audit entries at or after `since` (unix ms), oldest first; admins only. Refused
    /// authentications counted so far are written first.
    pub async fn audit_since(&self, caller: &Caller, since: i64) -> Result<Vec<AuditEntry>> {
        let mut entries = self
            .audit_query(
                caller,
                &AuditQuery {
                    since: Some(since),
                    limit: usize::MAX,
                    ..AuditQuery::default()
                },
            )
            .await?;
        entries.reverse();
        Ok(entries)
    }

    /// Audit entries matching `q`, newest first; admins only. Refused authentications counted
    /// so far are written first.
    pub async fn audit_query(&self, caller: &Caller, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
        self.require_superuser(caller, "read-audit", "").await?;
        self.flush_audit().await?;
        let mut sql = String::from(
            "SELECT id, at, actor, action, target, outcome, detail, count FROM audit WHERE 1 = 1",
        );
        let mut texts: Vec<&str> = Vec::new();
        for (column, value) in [
            ("actor", &q.actor),
            ("action", &q.action),
            ("target", &q.target),
            ("outcome", &q.outcome),
        ] {
            if let Some(v) = value {
                validate_text(column, v, 256)?;
                texts.push(v);
                sql.push_str(&format!(" AND {column} = ${}", texts.len()));
            }
        }
        let mut numbers: Vec<i64> = Vec::new();
        if let Some(since) = q.since {
            numbers.push(since);
            sql.push_str(&format!(" AND at >= ${}", texts.len() + numbers.len()));
        }
        if let Some(until) = q.until {
            numbers.push(until);
            sql.push_str(&format!(" AND at < ${}", texts.len() + numbers.len()));
        }
        sql.push_str(" ORDER BY id DESC");
        if q.limit < i64::MAX as usize {
            sql.push_str(&format!(" LIMIT {}", q.limit));
        }
        // Only fixed column names and placeholders are formatted in; every value is bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for t in texts {
            query = query.bind(t.to_string());
        }
        for n in numbers {
            query = query.bind(n);
        }
        let rows = query.fetch_all(&self.pool).await?;
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

/// Which audit entries to read: each part that is set must match (exactly).
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    /// ok, denied or failed.
    pub outcome: Option<String>,
    pub limit: usize,
}
