//! The transactional store: SQLite in the data directory by default, PostgreSQL for scale-out,
//! both through sqlx's `Any` driver with one migration set per backend. Queries use `$n`
//! placeholders, which both backends accept, and are always bound, never formatted.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rand::RngCore;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Row};

use crate::model::now_millis;
use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
    backend: Backend,
    /// The PostgreSQL URL, for a change listener's own connection.
    url: String,
    /// Refused authentications not yet written (see `Store::count_refusal`).
    refusals: Arc<Mutex<Refusals>>,
}

/// Refused authentications by (actor, target, reason): a flood of bad credentials costs one
/// audit row per kind and flush, not one per request.
#[derive(Default)]
struct Refusals {
    counts: HashMap<(String, String, String), i64>,
}

/// Distinct kinds kept between flushes; past it, new kinds count under one catch-all row.
const MAX_REFUSAL_KINDS: usize = 1024;

/// The channel writes are announced on (PostgreSQL).
const CHANGES_CHANNEL: &str = "dartmouth_changes";

/// Wakes when another node (or this one) commits a change; reconnects by itself.
pub struct ChangeListener {
    listener: sqlx::postgres::PgListener,
}

impl ChangeListener {
    /// Waits for the next change notification, then takes the ones already buffered too (one
    /// catch-up serves them all): the ids of the domains that changed.
    pub async fn next(&mut self) -> Result<Vec<i64>> {
        let first = self.listener.recv().await?;
        let mut ids: Vec<i64> = first.payload().parse().into_iter().collect();
        while let Some(n) = self.listener.next_buffered() {
            ids.extend(n.payload().parse::<i64>());
        }
        Ok(ids)
    }
}

/// The principal created with a new store: the local operator, allowed everything.
pub const BOOTSTRAP_ADMIN: &str = "admin";

impl Store {
    /// The default store: `store.sqlite3` in the data directory.
    pub fn sqlite_url(data_dir: &Path) -> String {
        format!(
            "sqlite://{}?mode=rwc",
            data_dir.join("store.sqlite3").display()
        )
    }

    /// Connects, applies pending migrations, and creates the bootstrap admin on a new store.
    pub async fn open(url: &str) -> Result<Store> {
        install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(Error::invalid(
                "store",
                format!(
                    "`{}` is neither sqlite://… nor postgres://…",
                    crate::names::shown(url)
                ),
            ));
        };
        let options = match backend {
            // One connection: SQLite has one writer, and a single connection never meets
            // SQLITE_BUSY on a read-to-write upgrade.
            Backend::Sqlite => AnyPoolOptions::new()
                .max_connections(1)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        // WAL + FULL: a commit is on disk when it returns (the ack means durable).
                        for pragma in [
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA synchronous = FULL",
                            "PRAGMA foreign_keys = ON",
                            "PRAGMA busy_timeout = 10000",
                        ] {
                            sqlx::query(pragma).execute(&mut *conn).await?;
                        }
                        Ok(())
                    })
                }),
            Backend::Postgres => AnyPoolOptions::new().max_connections(8),
        };
        let pool = options.connect(url).await?;
        match backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite").run(&pool).await?,
            Backend::Postgres => sqlx::migrate!("migrations/postgres").run(&pool).await?,
        }
        let store = Store {
            pool,
            backend,
            url: url.to_string(),
            refusals: Arc::default(),
        };
        store.bootstrap().await?;
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// On PostgreSQL, a listener woken by every committed write and domain deletion on any
    /// node (LISTEN/NOTIFY); `None` on SQLite, whose writers share this process.
    pub async fn change_listener(&self) -> Result<Option<ChangeListener>> {
        if self.backend != Backend::Postgres {
            return Ok(None);
        }
        let mut listener = sqlx::postgres::PgListener::connect(&self.url).await?;
        listener.listen(CHANGES_CHANNEL).await?;
        Ok(Some(ChangeListener { listener }))
    }

    /// Tells other nodes' listeners that `domain_id` changed (delivered at commit).
    pub(crate) async fn notify_change(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        domain_id: i64,
    ) -> Result<()> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANGES_CHANNEL)
                .bind(domain_id.to_string())
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    async fn bootstrap(&self) -> Result<()> {
        let existing: i64 = sqlx::query("SELECT COUNT(*) AS n FROM principals WHERE superuser")
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        if existing == 0 {
            // ON CONFLICT: two processes opening a new store at once create it once.
            sqlx::query(
                "INSERT INTO principals (name, kind, superuser, created_at) VALUES ($1, 'user', TRUE, $2) \
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(BOOTSTRAP_ADMIN)
            .bind(now_millis())
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    /// Readiness: one round trip to the database.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Counts a refused authentication; [`Store::flush_audit`] writes the counts.
    pub(crate) fn count_refusal(&self, actor: &str, target: &str, reason: &str) {
        let Ok(mut r) = self.refusals.lock() else {
            return;
        };
        let mut key = (actor.to_string(), target.to_string(), reason.to_string());
        if r.counts.len() >= MAX_REFUSAL_KINDS && !r.counts.contains_key(&key) {
            key = ("anonymous".into(), "*".into(), "other refusals".into());
        }
        *r.counts.entry(key).or_default() += 1;
    }

    /// Writes the refused authentications counted since the last flush, one audit row each
    /// kind with its count. The server calls this every few seconds and on shutdown.
    pub async fn flush_audit(&self) -> Result<()> {
        let counts = match self.refusals.lock() {
            Ok(mut r) => std::mem::take(&mut r.counts),
            Err(_) => return Ok(()),
        };
        for ((actor, target, reason), n) in counts {
            self.audit_counted(&actor, "authenticate", &target, "denied", &reason, n)
                .await?;
        }
        Ok(())
    }

    pub async fn close(&self) {
        if let Err(e) = self.flush_audit().await {
            tracing::warn!(error = %e, "audit flush on close");
        }
        self.pool.close().await;
    }
}

/// `n` random bytes as hex.
pub(crate) fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
