//! The transactional store: SQLite in the data directory by default, PostgreSQL for scale-out,
//! both through sqlx's `Any` driver with one migration set per backend. Queries use `$n`
//! placeholders, which both backends accept, and are always bound, never formatted.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rand::RngCore;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Row};

use crate::fallback::{Fallback, Kind};
use crate::model::now_millis;
use crate::{Error, Result};

/// How long a node waits for the store, and how old an answer it keeps may be when the store
/// cannot be reached (see `fallback.rs`).
#[derive(Debug, Clone, Copy)]
pub struct StoreOptions {
    /// The longest a call waits for the store (for a connection, or an answer on the read
    /// path) before it is answered as unreachable.
    pub timeout: std::time::Duration,
    /// The oldest kept answer the read path uses while the store is unreachable.
    pub stale_for: std::time::Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            timeout: std::time::Duration::from_secs(2),
            stale_for: std::time::Duration::from_secs(600),
        }
    }
}

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
    /// The read path's answers kept for a store outage.
    pub(crate) fallback: Arc<Fallback>,
}

/// Refused authentications by (actor, action, target, reason): a flood of bad credentials
/// costs one audit row per kind and flush, not one per request. Denials that could not be
/// written while the store was unreachable wait here too.
#[derive(Default)]
struct Refusals {
    counts: HashMap<(String, String, String, String), i64>,
}

/// Distinct kinds kept between flushes; past it, new kinds count under one catch-all row.
const MAX_REFUSAL_KINDS: usize = 1024;

/// The channel writes are announced on (PostgreSQL).
const CHANGES_CHANNEL: &str = "dartmouth_changes";

/// The payload announcing a change to keys, principals, groups, grants or domains.
const AUTH_CHANGED: &str = "auth";

/// Wakes when another node (or this one) commits a change; reconnects by itself.
pub struct ChangeListener {
    listener: sqlx::postgres::PgListener,
    fallback: Arc<Fallback>,
}

impl ChangeListener {
    /// Waits for the next change notification, then takes the ones already buffered too (one
    /// catch-up serves them all): the ids of the domains that changed. A change to access
    /// (keys, principals, grants, domains) forgets the answers this node keeps for an outage.
    pub async fn next(&mut self) -> Result<Vec<i64>> {
        let first = self.listener.recv().await?;
        let mut ids = Vec::new();
        for payload in
            std::iter::once(first.payload().to_string()).chain(std::iter::from_fn(|| {
                self.listener
                    .next_buffered()
                    .map(|n| n.payload().to_string())
            }))
        {
            if payload == AUTH_CHANGED {
                self.fallback.clear();
            }
            ids.extend(payload.parse::<i64>());
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
        Self::open_with(url, StoreOptions::default()).await
    }

    /// [`Store::open`] with the timeout and staleness bound of `options`.
    pub async fn open_with(url: &str, options: StoreOptions) -> Result<Store> {
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
        let pool_options = match backend {
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
            // A connection the store cannot give within the timeout is an unreachable store.
            Backend::Postgres => AnyPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(options.timeout),
        };
        let pool = pool_options.connect(url).await?;
        migrator(backend).run(&pool).await?;
        let store = Store {
            pool,
            backend,
            url: url.to_string(),
            refusals: Arc::default(),
            fallback: Arc::new(Fallback::new(options.timeout, options.stale_for)),
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
        Ok(Some(ChangeListener {
            listener,
            fallback: Arc::clone(&self.fallback),
        }))
    }

    /// Keys, principals, groups, grants or domains changed (committed): every node forgets
    /// the answers it keeps for an outage — this one at once, the others on the notification.
    pub(crate) async fn access_changed(&self) {
        self.fallback.clear();
        if self.backend == Backend::Postgres
            && let Err(e) = sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANGES_CHANNEL)
                .bind(AUTH_CHANGED)
                .execute(&self.pool)
                .await
        {
            tracing::warn!(error = %e, "access change not announced to the other nodes");
        }
    }

    /// A read on the authentication and authorisation path, through what this node keeps:
    /// the store's answer when it gives one within the timeout (kept, or forgotten when it
    /// is `None`); the kept answer for `key` when the store cannot be reached. While the store
    /// is known to be unreachable, a kept answer is used without asking.
    pub(crate) async fn kept_read<V, F>(&self, key: V::Key, fetch: F) -> Result<Option<V>>
    where
        V: Kind + Clone,
        F: Future<Output = Result<Option<V>>>,
    {
        let fallback = &self.fallback;
        if fallback.is_down()
            && let Some(v) = fallback.get::<V>(&key)
        {
            return Ok(Some(v));
        }
        let outcome = match tokio::time::timeout(fallback.timeout, fetch).await {
            Ok(outcome) => outcome,
            Err(_) => Err(Error::StoreTimeout(fallback.timeout.as_millis())),
        };
        match outcome {
            Ok(found) => {
                fallback.mark(false);
                match &found {
                    Some(v) => fallback.put(key, v.clone()),
                    None => fallback.forget::<V>(&key),
                }
                Ok(found)
            }
            Err(e) if e.is_unreachable() => {
                fallback.mark(true);
                fallback.get::<V>(&key).map(Some).ok_or(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Forgets the answers kept for an outage (changes may have gone unannounced).
    pub fn forget_kept(&self) {
        self.fallback.clear();
    }

    /// Whether the last call found the store unreachable, and how many reads were answered
    /// from what this node keeps since it started.
    pub fn outage(&self) -> (bool, u64) {
        (self.fallback.is_down(), self.fallback.served())
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

    /// Readiness: one round trip to the database, within the timeout (its outcome says
    /// whether the store is reachable).
    pub async fn ping(&self) -> Result<()> {
        let timeout = self.fallback.timeout;
        let outcome = match tokio::time::timeout(
            timeout,
            sqlx::query("SELECT 1").execute(&self.pool),
        )
        .await
        {
            Ok(r) => r.map(|_| ()).map_err(Error::from),
            Err(_) => Err(Error::StoreTimeout(timeout.as_millis())),
        };
        match &outcome {
            Ok(()) => self.fallback.mark(false),
            Err(e) if e.is_unreachable() => self.fallback.mark(true),
            Err(_) => {}
        }
        outcome
    }

    /// Counts a refused authentication; [`Store::flush_audit`] writes the counts.
    pub(crate) fn count_refusal(&self, actor: &str, target: &str, reason: &str) {
        self.count_denial(actor, "authenticate", target, reason);
    }

    /// Counts a denial of `action`; [`Store::flush_audit`] writes the counts.
    pub(crate) fn count_denial(&self, actor: &str, action: &str, target: &str, reason: &str) {
        let Ok(mut r) = self.refusals.lock() else {
            return;
        };
        let mut key = (
            actor.to_string(),
            action.to_string(),
            target.to_string(),
            reason.to_string(),
        );
        if r.counts.len() >= MAX_REFUSAL_KINDS && !r.counts.contains_key(&key) {
            key = (
                "anonymous".into(),
                action.to_string(),
                "*".into(),
                "other refusals".into(),
            );
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
        let mut pending = counts.into_iter();
        while let Some(((actor, action, target, reason), n)) = pending.next() {
            if let Err(e) = self
                .audit_counted(&actor, &action, &target, "denied", &reason, n)
                .await
            {
                // Unwritten (the store is away): kept for the next flush.
                if let Ok(mut r) = self.refusals.lock() {
                    for (key, n) in
                        std::iter::once(((actor, action, target, reason), n)).chain(pending)
                    {
                        *r.counts.entry(key).or_default() += n;
                    }
                }
                return Err(e);
            }
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

/// Each backend's migrations, embedded as `sqlx::migrate!` embeds them — version and description
/// from the file name (`0002_domain_sequences.sql`: 2, "domain sequences"), the file's text and
/// its checksum — without sqlx's proc macros, whose build compiles both drivers a second time for
/// the compiler. A store migrated by either accepts the other (same versions, same checksums).
macro_rules! migration_files {
    ($($file:literal),* $(,)?) => {
        const SQLITE_MIGRATIONS: &[(&str, &str)] =
            &[$(($file, include_str!(concat!("../migrations/sqlite/", $file)))),*];
        const POSTGRES_MIGRATIONS: &[(&str, &str)] =
            &[$(($file, include_str!(concat!("../migrations/postgres/", $file)))),*];
    };
}

// Both backends have the same files (the test below reads each directory).
migration_files!(
    "0001_init.sql",
    "0002_domain_sequences.sql",
    "0003_document_sources.sql",
    "0004_hardening.sql",
    "0005_generations.sql",
    "0006_shopify_connections.sql",
    "0007_shopify_metafields.sql",
);

fn migration_files(backend: Backend) -> &'static [(&'static str, &'static str)] {
    match backend {
        Backend::Sqlite => SQLITE_MIGRATIONS,
        Backend::Postgres => POSTGRES_MIGRATIONS,
    }
}

fn migrator(backend: Backend) -> sqlx::migrate::Migrator {
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    Migrator::with_migrations(
        migration_files(backend)
            .iter()
            .map(|&(file, sql)| {
                let (version, description) = file
                    .trim_end_matches(".sql")
                    .split_once('_')
                    .unwrap_or(("", file));
                Migration::new(
                    // The file names are constants checked by the test below.
                    version.parse().unwrap_or_default(),
                    std::borrow::Cow::Owned(description.replace('_', " ")),
                    MigrationType::Simple,
                    sqlx::SqlStr::from_static(sql),
                    sql.starts_with("-- no-transaction"),
                )
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file in `migrations/<backend>` is embedded, in order, numbered from 1. (When the
    /// macro was replaced, this test also compared each version, description, checksum and
    /// `no_tx` with `sqlx::migrate!`'s: equal for both backends.)
    #[test]
    fn every_migration_file_is_embedded_in_order() {
        for (backend, dir) in [(Backend::Sqlite, "sqlite"), (Backend::Postgres, "postgres")] {
            let root = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(dir);
            let mut on_disk: Vec<String> = std::fs::read_dir(&root)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            on_disk.sort();
            let embedded: Vec<&str> = migration_files(backend).iter().map(|(f, _)| *f).collect();
            assert_eq!(embedded, on_disk, "{dir}");
            let ours = migrator(backend);
            let versions: Vec<i64> = ours.iter().map(|m| m.version).collect();
            assert_eq!(
                versions,
                (1..=embedded.len() as i64).collect::<Vec<_>>(),
                "{dir}"
            );
        }
    }
}
