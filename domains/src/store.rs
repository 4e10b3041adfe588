//! The transactional store: SQLite in the data directory by default, PostgreSQL for scale-out,
//! both through sqlx's `Any` driver with one migration set per backend. Queries use `$n`
//! placeholders, which both backends accept, and are always bound, never formatted.

use std::path::Path;

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
        let store = Store { pool, backend };
        store.bootstrap().await?;
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
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

    pub async fn close(&self) {
        self.pool.close().await;
    }
}
