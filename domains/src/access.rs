//! Who is calling and what they may touch. A `Caller` comes only from authentication (an API
//! key, later a JWT) or from the local operator; a `Pass` only from `Store::authorize`. Both
//! have private fields: the rest of the system cannot make one up.

use std::collections::BTreeMap;

use sqlx::Row;

use crate::model::{Domain, Role, now_millis};
use crate::names::shown;
use crate::store::{BOOTSTRAP_ADMIN, Store};
use crate::{Error, Result};

/// An authenticated principal, with the narrowing its credential carries.
#[derive(Debug, Clone)]
pub struct Caller {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) superuser: bool,
    /// Domains the credential is restricted to (a key's restriction, a delegated token's scope).
    pub(crate) only: Option<Vec<String>>,
}

impl Caller {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn is_superuser(&self) -> bool {
        self.superuser
    }
}

/// Permission to read or write a set of domains, minted by `Store::authorize`.
#[derive(Debug, Clone)]
pub struct Pass {
    caller: String,
    role: Role,
    domains: Vec<Domain>,
}

impl Pass {
    pub fn caller(&self) -> &str {
        &self.caller
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// The domains this pass opens, in request order.
    pub fn domains(&self) -> &[Domain] {
        &self.domains
    }

    pub fn domain(&self, name: &str) -> Option<&Domain> {
        self.domains.iter().find(|d| d.name == name)
    }
}

impl Store {
    /// The local operator (whoever can open the data directory): the bootstrap admin.
    pub async fn local_admin(&self) -> Result<Caller> {
        self.caller_named(BOOTSTRAP_ADMIN).await
    }

    /// Acts as `name` (the CLI's `--as`): only the local operator may do this.
    pub async fn act_as(&self, operator: &Caller, name: &str) -> Result<Caller> {
        if !operator.superuser {
            return Err(Error::Forbidden(
                "only an admin may act as another principal".into(),
            ));
        }
        self.caller_named(name).await
    }

    pub(crate) async fn caller_named(&self, name: &str) -> Result<Caller> {
        let row = sqlx::query(
            "SELECT id, name, CASE WHEN superuser THEN 1 ELSE 0 END AS su FROM principals WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| Error::not_found("principal", name))?;
        Ok(Caller {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            superuser: row.try_get::<i64, _>("su")? != 0,
            only: None,
        })
    }

    /// Every domain the caller holds at least `role` on (own grants and its groups' grants),
    /// narrowed by its credential.
    pub async fn accessible(&self, caller: &Caller, role: Role) -> Result<Vec<Domain>> {
        let rows = if caller.superuser {
            sqlx::query(
                "SELECT id, name, description, settings, created_at, 'admin' AS role FROM domains ORDER BY name",
            )
            .fetch_all(&self.pool)
            .await?
        } else {
            sqlx::query(
                "SELECT d.id, d.name, d.description, d.settings, d.created_at, g.role FROM grants g \
                 JOIN domains d ON d.id = g.domain_id \
                 WHERE g.principal_id = $1 \
                    OR g.principal_id IN (SELECT group_id FROM memberships WHERE member_id = $1) \
                 ORDER BY d.name",
            )
            .bind(caller.id)
            .fetch_all(&self.pool)
            .await?
        };
        let mut best: BTreeMap<String, (Role, Domain)> = BTreeMap::new();
        for row in rows {
            let r = Role::parse(row.try_get::<&str, _>("role")?)?;
            let d = crate::admin::domain_from_row(&row)?;
            let entry = best.entry(d.name.clone()).or_insert((r, d));
            entry.0 = entry.0.max(r);
        }
        Ok(best
            .into_values()
            .filter(|(r, d)| {
                *r >= role
                    && caller
                        .only
                        .as_ref()
                        .is_none_or(|only| only.contains(&d.name))
            })
            .map(|(_, d)| d)
            .collect())
    }

    /// A pass for `requested` (every accessible domain when empty) with at least `role`. A
    /// domain the caller may not use gets exactly the error of one that does not exist; the
    /// denial is audited.
    pub async fn authorize(
        &self,
        caller: &Caller,
        requested: &[String],
        role: Role,
    ) -> Result<Pass> {
        let allowed = self.accessible(caller, role).await?;
        let domains = if requested.is_empty() {
            allowed
        } else {
            let mut out = Vec::with_capacity(requested.len());
            for name in requested {
                match allowed.iter().find(|d| &d.name == name) {
                    Some(d) => {
                        if !out.iter().any(|o: &Domain| o.id == d.id) {
                            out.push(d.clone());
                        }
                    }
                    None => {
                        self.audit(
                            caller.name(),
                            &format!("{}-domain", role.as_str()),
                            name,
                            "denied",
                            "",
                        )
                        .await?;
                        return Err(Error::not_found("domain", name));
                    }
                }
            }
            out
        };
        Ok(Pass {
            caller: caller.name.clone(),
            role,
            domains,
        })
    }

    /// Appends an audit entry (fields cut to sane lengths).
    pub async fn audit(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        outcome: &str,
        detail: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit (at, actor, action, target, outcome, detail) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(now_millis())
        .bind(shown(actor))
        .bind(action.to_string())
        .bind(shown(target))
        .bind(outcome.to_string())
        .bind(detail.chars().take(500).collect::<String>())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
