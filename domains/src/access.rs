//! Who is calling and what they may touch. A `Caller` comes only from authentication (an API
//! key, later a JWT) or from the local operator; a `Pass` only from `Store::authorize`. Both
//! have private fields: the rest of the system cannot make one up.

use std::collections::BTreeMap;

use sqlx::Row;

use crate::fallback::PrincipalRow;
use crate::model::{Domain, Role, now_millis};
use crate::names::shown;
use crate::store::{BOOTSTRAP_ADMIN, Store};
use crate::{Error, Result};

/// The audited actions that change what a credential may do or which domain a name is.
const ACCESS_CHANGES: &[&str] = &[
    "create-domain",
    "delete-domain",
    "update-domain",
    "add-member",
    "remove-member",
    "delete-principal",
    "grant",
    "revoke-grant",
    "revoke-key",
    "switch-model",
    "rollback-model",
    "abandon-switch",
    "drop-generation",
    "flip-generation",
];

/// An authenticated principal, with the narrowing its credential carries. A credential only
/// ever narrows what its principal may do: fewer domains, a lower role, an expiry.
#[derive(Debug, Clone)]
pub struct Caller {
    pub(crate) id: i64,
    pub(crate) name: String,
    /// The principal administers everything (the bootstrap admin) — whatever its credential.
    pub(crate) principal_superuser: bool,
    /// The credential may act as a superuser: the principal is one and the credential narrows
    /// nothing (a restricted admin key is an admin of its domains only).
    pub(crate) superuser: bool,
    /// Domains the credential is restricted to (a key's restriction, a token's `domains`).
    pub(crate) only: Option<Vec<String>>,
    /// The highest role the credential may use (a key's role, a delegated token's read).
    pub(crate) max_role: Option<Role>,
    /// When the credential expires (milliseconds since the epoch).
    pub(crate) expires_at: Option<i64>,
    /// For a delegated token: the end user it acts for, whose own grants also bound it.
    pub(crate) on_behalf_of: Option<EndUser>,
}

#[derive(Debug, Clone)]
pub(crate) struct EndUser {
    pub(crate) id: i64,
    pub(crate) name: String,
}

impl Caller {
    /// A principal's own, unnarrowed authority (the local operator, `--as`).
    pub(crate) fn principal(id: i64, name: String, superuser: bool) -> Caller {
        Caller {
            id,
            name,
            principal_superuser: superuser,
            superuser,
            only: None,
            max_role: None,
            expires_at: None,
            on_behalf_of: None,
        }
    }

    /// Narrows the caller to what its credential allows; recomputes whether it may still act
    /// as a superuser.
    pub(crate) fn narrowed(
        mut self,
        only: Option<Vec<String>>,
        max_role: Option<Role>,
        expires_at: Option<i64>,
    ) -> Caller {
        if let Some(only) = only {
            self.only = Some(match self.only.take() {
                Some(mine) => mine.into_iter().filter(|d| only.contains(d)).collect(),
                None => only,
            });
        }
        self.max_role = match (self.max_role, max_role) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.expires_at = match (self.expires_at, expires_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.superuser = self.principal_superuser
            && self.only.is_none()
            && self.max_role.is_none_or(|r| r == Role::Admin)
            && self.on_behalf_of.is_none();
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// May act as a superuser (the credential narrows nothing).
    pub fn is_superuser(&self) -> bool {
        self.superuser
    }

    /// The end user a delegated token acts for.
    pub fn on_behalf_of(&self) -> Option<&str> {
        self.on_behalf_of.as_ref().map(|u| u.name.as_str())
    }

    pub fn is_delegated(&self) -> bool {
        self.on_behalf_of.is_some()
    }

    /// The domains the credential is restricted to (`None`: the principal's grants).
    pub fn only(&self) -> Option<&[String]> {
        self.only.as_deref()
    }

    /// The highest role the credential may use (`None`: the principal's grants).
    pub fn max_role(&self) -> Option<Role> {
        self.max_role
    }

    /// When the credential expires, in milliseconds since the epoch.
    pub fn expires_at(&self) -> Option<i64> {
        self.expires_at
    }
}

/// The authority of the system itself — the applier replaying the changelog into shards, the
/// server's housekeeping — for the reads no caller's pass covers. Made only by
/// [`Store::system`], so every use is one `grep` away.
#[derive(Debug, Clone, Copy)]
pub struct System {
    _made_by_store: (),
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
    /// The system's own authority (see [`System`]).
    pub fn system(&self) -> System {
        System { _made_by_store: () }
    }

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
        let row = self
            .principal_row(name)
            .await?
            .ok_or_else(|| Error::not_found(crate::Missing::Principal, name))?;
        Ok(Caller::principal(row.id, row.name, row.superuser))
    }

    /// The principal named `name` (through what this node keeps for an outage).
    pub(crate) async fn principal_row(&self, name: &str) -> Result<Option<PrincipalRow>> {
        self.kept_read::<PrincipalRow, _>(name.to_string(), async {
            let row = sqlx::query(
                "SELECT id, name, kind, CASE WHEN superuser THEN 1 ELSE 0 END AS su \
                 FROM principals WHERE name = $1",
            )
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
            row.map(|row| -> Result<PrincipalRow> {
                Ok(PrincipalRow {
                    id: row.try_get("id")?,
                    name: row.try_get("name")?,
                    group: row.try_get::<String, _>("kind")? == "group",
                    superuser: row.try_get::<i64, _>("su")? != 0,
                })
            })
            .transpose()
        })
        .await
    }

    /// Every domain the caller holds at least `role` on (own grants and its groups' grants),
    /// narrowed by its credential.
    pub async fn accessible(&self, caller: &Caller, role: Role) -> Result<Vec<Domain>> {
        if caller.expires_at.is_some_and(|e| e <= now_millis()) {
            return Ok(Vec::new());
        }
        let mut domains = self
            .granted(caller.id, caller.principal_superuser, role, caller.max_role)
            .await?;
        if let Some(user) = &caller.on_behalf_of {
            // A delegated token reads only what the end user may read too.
            let theirs = self.granted(user.id, false, Role::Read, None).await?;
            domains.retain(|d| theirs.iter().any(|t| t.id == d.id));
        }
        if let Some(only) = &caller.only {
            domains.retain(|d| only.contains(&d.name));
        }
        Ok(domains)
    }

    /// Domains principal `id` holds at least `role` on through its own and its groups' grants
    /// (every domain, as admin, for a superuser), each grant capped at `cap`.
    async fn granted(
        &self,
        id: i64,
        superuser: bool,
        role: Role,
        cap: Option<Role>,
    ) -> Result<Vec<Domain>> {
        let held = self
            .kept_read::<crate::fallback::Held, _>((id, superuser), async {
                let rows = if superuser {
                    sqlx::query(
                        "SELECT id, uid, name, description, settings, created_at, generations, 'admin' AS role FROM domains ORDER BY name",
                    )
                    .fetch_all(&self.pool)
                    .await?
                } else {
                    sqlx::query(
                        "SELECT d.id, d.uid, d.name, d.description, d.settings, d.created_at, d.generations, g.role FROM grants g \
                         JOIN domains d ON d.id = g.domain_id \
                         WHERE g.principal_id = $1 \
                            OR g.principal_id IN (SELECT group_id FROM memberships WHERE member_id = $1) \
                         ORDER BY d.name",
                    )
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await?
                };
                // Each domain once, with the best role of the principal's and its groups'
                // grants.
                let mut best: BTreeMap<String, (Role, Domain)> = BTreeMap::new();
                for row in rows {
                    let r = Role::parse(row.try_get::<&str, _>("role")?)?;
                    let d = crate::model::domain_from_row(&row)?;
                    let entry = best.entry(d.name.clone()).or_insert((r, d));
                    entry.0 = entry.0.max(r);
                }
                Ok(Some(best.into_values().collect()))
            })
            .await?
            .unwrap_or_default();
        // Capping each grant then taking the best is capping the best.
        Ok(held
            .into_iter()
            .filter(|(r, _)| cap.map_or(*r, |cap| (*r).min(cap)) >= role)
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
                        let action = format!("{}-domain", role.as_str());
                        match self.audit(caller.name(), &action, name, "denied", "").await {
                            // Written with the next flush when the store is back.
                            Err(e) if e.is_unreachable() => {
                                self.count_denial(caller.name(), &action, name, "");
                            }
                            other => other?,
                        }
                        return Err(Error::not_found(crate::Missing::Domain, name));
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
        let written = self
            .audit_counted(actor, action, target, outcome, detail, 1)
            .await;
        // Every change to keys, principals, groups, grants or domains (their settings and
        // generations among them) is audited as done here, once committed: the answers kept
        // for an outage are forgotten on every node.
        if outcome == "ok" && ACCESS_CHANGES.contains(&action) {
            self.access_changed().await;
        }
        written
    }

    /// An audit entry that stands for `count` occurrences.
    pub(crate) async fn audit_counted(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        outcome: &str,
        detail: &str,
        count: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit (at, actor, action, target, outcome, detail, count) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(now_millis())
        .bind(printable(&shown(actor)))
        .bind(action.to_string())
        .bind(printable(&shown(target)))
        .bind(outcome.to_string())
        .bind(printable(&detail.chars().take(500).collect::<String>()))
        .bind(count)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// An audited value with control characters (NUL among them, which PostgreSQL cannot store;
/// a newline, which would forge a line of `dartmouth audit`) replaced by U+FFFD.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}
