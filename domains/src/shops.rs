//! Shops bound to domains for pull sync: the binding (shop, API version, the name of the
//! environment variable that holds the token on each node, a schedule), the sync state, and
//! the lease one node holds while it syncs. The token itself is never stored.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::access::{Caller, Pass, System};
use crate::model::now_millis;
use crate::store::Store;
use crate::{Error, Result};

/// The shortest schedule a connection may have.
pub const MIN_EVERY_MS: i64 = 60_000;

/// A shop's binding to a domain, as an admin gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShopBinding {
    /// The shop's host, e.g. `acme.myshopify.com` (checked by the caller against the hosts it
    /// allows).
    pub shop: String,
    /// e.g. `2026-01`.
    pub api_version: String,
    /// The environment variable (or `file:` path) holding the access token on each node.
    pub token_env: String,
    /// Scheduled runs every so many milliseconds (at least a minute); `None`: on demand only.
    pub every_ms: Option<i64>,
    /// Metafields read with each product, as `namespace.key`.
    #[serde(default)]
    pub metafields: Vec<String>,
}

/// A connection as stored: the binding, its sync state, when it runs next, who syncs it now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShopConnection {
    pub domain_id: i64,
    pub domain: String,
    #[serde(flatten)]
    pub binding: ShopBinding,
    /// The sync state as the server keeps it (JSON).
    pub state: serde_json::Value,
    pub next_run: Option<i64>,
    /// The node syncing it, while its lease holds.
    pub syncing: Option<String>,
}

impl ShopBinding {
    pub fn validate(&self) -> Result<()> {
        let host_ok = !self.shop.is_empty()
            && self.shop.len() <= 255
            && self
                .shop
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
        if !host_ok {
            return Err(Error::invalid(
                "shop",
                format!("`{}` is not a host name", crate::names::shown(&self.shop)),
            ));
        }
        let v = self.api_version.as_bytes();
        let version_ok = self.api_version == "unstable"
            || (v.len() == 7
                && v[..4].iter().all(u8::is_ascii_digit)
                && v[4] == b'-'
                && v[5..].iter().all(u8::is_ascii_digit)
                && matches!(&self.api_version[5..], "01" | "04" | "07" | "10"));
        if !version_ok {
            return Err(Error::invalid(
                "api_version",
                format!(
                    "`{}` is not a Shopify API version (YYYY-01, -04, -07 or -10, or unstable)",
                    crate::names::shown(&self.api_version)
                ),
            ));
        }
        let env_ok = !self.token_env.is_empty()
            && self.token_env.len() <= 255
            && (self.token_env.starts_with("file:")
                || self
                    .token_env
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_'));
        if !env_ok {
            return Err(Error::invalid(
                "token_env",
                "the name of an environment variable (letters, digits, `_`) or `file:PATH`",
            ));
        }
        if self.metafields.len() > 20 {
            return Err(Error::invalid(
                "metafields",
                format!("at most 20, got {}", self.metafields.len()),
            ));
        }
        for m in &self.metafields {
            let ok = m.split_once('.').is_some_and(|(ns, key)| {
                let part = |p: &str| {
                    (2..=64).contains(&p.len())
                        && p.chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
                };
                part(ns) && part(key)
            });
            if !ok {
                return Err(Error::invalid(
                    "metafields",
                    format!(
                        "`{}` is not `namespace.key` (2 to 64 letters, digits, `_` or `-` each)",
                        crate::names::shown(m)
                    ),
                ));
            }
        }
        if let Some(every) = self.every_ms
            && every < MIN_EVERY_MS
        {
            return Err(Error::invalid(
                "every",
                format!("at least 1 minute, got {} s", every / 1000),
            ));
        }
        Ok(())
    }
}

fn connection_from_row(row: &sqlx::any::AnyRow, now: i64) -> Result<ShopConnection> {
    let state: String = row.try_get("state")?;
    let until: Option<i64> = row.try_get("lease_until")?;
    let owner: Option<String> = row.try_get("lease_owner")?;
    Ok(ShopConnection {
        domain_id: row.try_get("domain_id")?,
        domain: row.try_get("name")?,
        binding: ShopBinding {
            shop: row.try_get("shop")?,
            api_version: row.try_get("api_version")?,
            token_env: row.try_get("token_env")?,
            every_ms: row.try_get("every_ms")?,
            metafields: row
                .try_get::<Option<String>, _>("metafields")?
                .map(|m| serde_json::from_str(&m))
                .transpose()
                .map_err(|e| Error::invalid("metafields", e.to_string()))?
                .unwrap_or_default(),
        },
        state: serde_json::from_str(&state).map_err(|e| Error::invalid("state", e.to_string()))?,
        next_run: row.try_get("next_run")?,
        syncing: owner.filter(|_| until.is_some_and(|u| u > now)),
    })
}

const SELECT: &str = "SELECT c.domain_id, d.name, c.shop, c.api_version, c.token_env, c.every_ms, \
     c.metafields, c.next_run, c.state, c.lease_owner, c.lease_until \
     FROM shopify_connections c JOIN domains d ON d.id = c.domain_id";

impl Store {
    /// Binds a shop to `domain` (its admins), replacing an earlier binding but keeping its
    /// sync state when the shop is the same. A schedule runs first a schedule's length from now.
    pub async fn connect_shop(
        &self,
        caller: &Caller,
        domain: &str,
        binding: &ShopBinding,
    ) -> Result<ShopConnection> {
        binding.validate()?;
        let d = self
            .require_domain_admin(caller, domain, "shopify-connect")
            .await?;
        let now = now_millis();
        let next = binding.every_ms.map(|e| now + e);
        let metafields = (!binding.metafields.is_empty())
            .then(|| serde_json::to_string(&binding.metafields).unwrap_or_default());
        let mut tx = self.pool.begin().await?;
        let same_shop = sqlx::query("SELECT shop FROM shopify_connections WHERE domain_id = $1")
            .bind(d.id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get::<String, _>("shop"))
            .transpose()?
            .is_some_and(|s| s == binding.shop);
        if same_shop {
            sqlx::query(
                "UPDATE shopify_connections SET api_version = $2, token_env = $3, every_ms = $4, \
                 next_run = $5, metafields = $6 WHERE domain_id = $1",
            )
            .bind(d.id)
            .bind(&binding.api_version)
            .bind(&binding.token_env)
            .bind(binding.every_ms)
            .bind(next)
            .bind(&metafields)
            .execute(&mut *tx)
            .await?;
        } else {
            sqlx::query("DELETE FROM shopify_connections WHERE domain_id = $1")
                .bind(d.id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO shopify_connections (domain_id, shop, api_version, token_env, every_ms, \
                 next_run, state, metafields) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(d.id)
            .bind(&binding.shop)
            .bind(&binding.api_version)
            .bind(&binding.token_env)
            .bind(binding.every_ms)
            .bind(next)
            .bind("{}")
            .bind(&metafields)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.audit(
            caller.name(),
            "shopify-connect",
            domain,
            "ok",
            &format!("{} {}", binding.shop, binding.api_version),
        )
        .await?;
        self.shop_of(d.id)
            .await?
            .ok_or_else(|| Error::not_found(crate::Missing::ShopConnection, domain))
    }

    /// Unbinds `domain`'s shop (its admins); its documents stay.
    pub async fn disconnect_shop(&self, caller: &Caller, domain: &str) -> Result<()> {
        let d = self
            .require_domain_admin(caller, domain, "shopify-disconnect")
            .await?;
        let gone = sqlx::query("DELETE FROM shopify_connections WHERE domain_id = $1")
            .bind(d.id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if gone == 0 {
            return Err(Error::not_found(crate::Missing::ShopConnection, domain));
        }
        self.audit(caller.name(), "shopify-disconnect", domain, "ok", "")
            .await
    }

    async fn shop_of(&self, domain_id: i64) -> Result<Option<ShopConnection>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT} WHERE c.domain_id = $1"
        )))
        .bind(domain_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| connection_from_row(&r, now_millis()))
            .transpose()
    }

    /// The shop bound to a domain `pass` opens (any role that opened it).
    pub async fn shop_connection(
        &self,
        pass: &Pass,
        domain: &str,
    ) -> Result<Option<ShopConnection>> {
        let d = pass
            .domains()
            .iter()
            .find(|d| d.name == domain)
            .ok_or_else(|| Error::not_found(crate::Missing::Domain, domain))?;
        self.shop_of(d.id).await
    }

    /// Every connection (the scheduler's view).
    pub async fn shop_connections(&self, _system: &System) -> Result<Vec<ShopConnection>> {
        let now = now_millis();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT} ORDER BY c.domain_id"
        )))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| connection_from_row(r, now))
        .collect()
    }

    /// Takes the lease to sync `domain_id`'s shop for `lease_ms`: `false` when a sync holds
    /// it (another node's, or this node's own).
    pub async fn claim_shop_sync(
        &self,
        _system: &System,
        domain_id: i64,
        owner: &str,
        lease_ms: i64,
    ) -> Result<bool> {
        let now = now_millis();
        let taken = sqlx::query(
            "UPDATE shopify_connections SET lease_owner = $2, lease_until = $3 \
             WHERE domain_id = $1 AND (lease_owner IS NULL OR lease_until IS NULL \
             OR lease_until <= $4)",
        )
        .bind(domain_id)
        .bind(owner)
        .bind(now + lease_ms)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(taken == 1)
    }

    /// Extends `owner`'s lease by `lease_ms` from now: `false` when it no longer holds it.
    pub async fn renew_shop_sync(
        &self,
        _system: &System,
        domain_id: i64,
        owner: &str,
        lease_ms: i64,
    ) -> Result<bool> {
        let renewed = sqlx::query(
            "UPDATE shopify_connections SET lease_until = $3 \
             WHERE domain_id = $1 AND lease_owner = $2",
        )
        .bind(domain_id)
        .bind(owner)
        .bind(now_millis() + lease_ms)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(renewed == 1)
    }

    /// Ends `owner`'s sync of `domain_id`'s shop: its new state, the next scheduled run, the
    /// lease given back. `false` when `owner` no longer held it (its state is not written).
    pub async fn finish_shop_sync(
        &self,
        _system: &System,
        domain_id: i64,
        owner: &str,
        state: &serde_json::Value,
        next_run: Option<i64>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE shopify_connections SET state = $3, next_run = $4, lease_owner = NULL, \
             lease_until = NULL WHERE domain_id = $1 AND lease_owner = $2",
        )
        .bind(domain_id)
        .bind(owner)
        .bind(state.to_string())
        .bind(next_run)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(done == 1)
    }

    /// Moves `domain_id`'s next scheduled sync to `at` (an operator's "run it now"; tests).
    pub async fn reschedule_shop_sync(
        &self,
        _system: &System,
        domain_id: i64,
        at: i64,
    ) -> Result<()> {
        sqlx::query("UPDATE shopify_connections SET next_run = $2 WHERE domain_id = $1")
            .bind(domain_id)
            .bind(at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Gives back every lease `owner` holds: a node that starts syncs nothing yet, so what it
    /// held was its previous run's, killed.
    pub async fn release_shop_syncs(&self, _system: &System, owner: &str) -> Result<u64> {
        Ok(sqlx::query(
            "UPDATE shopify_connections SET lease_owner = NULL, lease_until = NULL \
             WHERE lease_owner = $1",
        )
        .bind(owner)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }
}
