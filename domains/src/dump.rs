//! The store as files and back: every table dumped as JSON lines from one read transaction (one
//! consistent moment of the store), and restored into an empty store in one transaction (all of
//! it or nothing). The format is the same for SQLite and PostgreSQL, so a snapshot taken on one
//! restores on the other.
//!
//! Each table is `<table>.jsonl`: a header line `{"table":…,"columns":[…]}`, then one JSON array
//! per row (integers, strings, `null`, bytes as base64). The columns are listed here, and the
//! dump checks them against the live schema first: a migration that adds a column this module
//! does not know fails the dump instead of silently leaving the column out. The SQL is built
//! only from the names listed here (`AssertSqlSafe`); every value is bound.

use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{Connection, Row};

use crate::access::System;
use crate::store::{BOOTSTRAP_ADMIN, Backend, Store};
use crate::{Error, Result};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Int,
    Bool,
    Text,
    Bytes,
}

use Kind::{Bool, Bytes, Int, Text};

/// Every table, parents before children, and its columns.
const TABLES: &[(&str, &[(&str, Kind)])] = &[
    (
        "domains",
        &[
            ("id", Int),
            ("name", Text),
            ("description", Text),
            ("settings", Text),
            ("created_at", Int),
            ("last_seq", Int),
            ("uid", Text),
            ("generations", Text),
        ],
    ),
    (
        "principals",
        &[
            ("id", Int),
            ("name", Text),
            ("kind", Text),
            ("superuser", Bool),
            ("created_at", Int),
        ],
    ),
    ("memberships", &[("group_id", Int), ("member_id", Int)]),
    (
        "grants",
        &[("principal_id", Int), ("domain_id", Int), ("role", Text)],
    ),
    (
        "api_keys",
        &[
            ("id", Text),
            ("principal_id", Int),
            ("hash", Text),
            ("domains", Text),
            ("created_at", Int),
            ("expires_at", Int),
            ("revoked_at", Int),
            ("role", Text),
        ],
    ),
    (
        "audit",
        &[
            ("id", Int),
            ("at", Int),
            ("actor", Text),
            ("action", Text),
            ("target", Text),
            ("outcome", Text),
            ("detail", Text),
            ("count", Int),
        ],
    ),
    (
        "documents",
        &[
            ("domain_id", Int),
            ("external_id", Text),
            ("content_hash", Text),
            ("title", Text),
            ("url", Text),
            ("attributes", Text),
            ("seq", Int),
            ("source", Text),
        ],
    ),
    (
        "chunks",
        &[
            ("domain_id", Int),
            ("external_id", Text),
            ("idx", Int),
            ("text", Text),
            ("char_start", Int),
            ("char_end", Int),
            ("heading", Text),
            ("embedding", Bytes),
            ("embedding_alt", Bytes),
        ],
    ),
    (
        "changelog",
        &[
            ("seq", Int),
            ("domain_id", Int),
            ("op", Text),
            ("external_id", Text),
            ("at", Int),
            ("domain_seq", Int),
            ("slot", Int),
        ],
    ),
    (
        "document_keys",
        &[("domain_id", Int), ("key", Text), ("external_id", Text)],
    ),
    (
        "quarantine",
        &[
            ("domain_id", Int),
            ("external_id", Text),
            ("seq", Int),
            ("reason", Text),
            ("at", Int),
        ],
    ),
    (
        "webhook_deliveries",
        &[("domain_id", Int), ("delivery_id", Text), ("at", Int)],
    ),
    (
        "shopify_connections",
        &[
            ("domain_id", Int),
            ("shop", Text),
            ("api_version", Text),
            ("token_env", Text),
            ("every_ms", Int),
            ("next_run", Int),
            ("state", Text),
            ("lease_owner", Text),
            ("lease_until", Int),
            ("metafields", Text),
        ],
    ),
];

/// Tables whose integer key a PostgreSQL sequence hands out (restored ids move it past them).
const SERIALS: &[(&str, &str)] = &[
    ("domains", "id"),
    ("principals", "id"),
    ("audit", "id"),
    ("changelog", "seq"),
];

/// What a dump holds, written next to the table files by the caller.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DumpInfo {
    /// The schema version (the last migration applied); a restore needs the same.
    pub schema_version: i64,
    /// Each domain and the changelog sequence the dump holds it at.
    pub domains: Vec<DumpedDomain>,
    /// Rows per table.
    pub rows: Vec<(String, u64)>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DumpedDomain {
    pub name: String,
    pub uid: String,
    pub last_seq: u64,
}

fn file_error(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

fn select_list(columns: &[(&str, Kind)]) -> String {
    columns
        .iter()
        .map(|&(c, k)| match k {
            Int => format!("CAST({c} AS BIGINT) AS {c}"),
            Bool => format!("CASE WHEN {c} THEN 1 ELSE 0 END AS {c}"),
            Text | Bytes => c.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn row_values(row: &AnyRow, columns: &[(&str, Kind)]) -> Result<Vec<Value>> {
    let b64 = base64::engine::general_purpose::STANDARD;
    columns
        .iter()
        .enumerate()
        .map(|(i, &(_, k))| {
            Ok(match k {
                Int | Bool => row
                    .try_get::<Option<i64>, _>(i)?
                    .map_or(Value::Null, Value::from),
                Text => row
                    .try_get::<Option<String>, _>(i)?
                    .map_or(Value::Null, Value::from),
                Bytes => row
                    .try_get::<Option<Vec<u8>>, _>(i)?
                    .map_or(Value::Null, |b| Value::from(b64.encode(b))),
            })
        })
        .collect()
}

#[derive(Serialize, Deserialize)]
struct Header {
    table: String,
    columns: Vec<String>,
}

impl Store {
    /// The columns each table has in the live schema, in the order the dump lists them, or
    /// an error naming what differs.
    async fn check_schema(&self, conn: &mut sqlx::AnyConnection) -> Result<()> {
        let listed = |t: &str| match self.backend() {
            Backend::Sqlite => format!("SELECT name AS c FROM pragma_table_info('{t}')"),
            Backend::Postgres => format!(
                "SELECT CAST(column_name AS TEXT) AS c FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = '{t}'"
            ),
        };
        for &(table, columns) in TABLES {
            let mut live: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(listed(table)))
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(|r| r.try_get::<String, _>("c"))
                .collect::<std::result::Result<_, _>>()?;
            let mut known: Vec<String> = columns.iter().map(|(c, _)| c.to_string()).collect();
            live.sort();
            known.sort();
            if live != known {
                return Err(Error::File {
                    path: table.to_string(),
                    reason: format!(
                        "the table has columns {live:?}, the snapshot format knows {known:?}"
                    ),
                });
            }
        }
        let tables = match self.backend() {
            Backend::Sqlite => {
                "SELECT name AS c FROM sqlite_master WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx_%'"
            }
            Backend::Postgres => {
                "SELECT CAST(table_name AS TEXT) AS c FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_name NOT LIKE '_sqlx_%'"
            }
        };
        for row in sqlx::query(tables).fetch_all(&mut *conn).await? {
            let t: String = row.try_get("c")?;
            if !TABLES.iter().any(|(name, _)| *name == t) {
                return Err(Error::File {
                    path: t,
                    reason: "a table the snapshot format does not know".into(),
                });
            }
        }
        Ok(())
    }

    async fn schema_version(conn: &mut sqlx::AnyConnection) -> Result<i64> {
        Ok(
            sqlx::query("SELECT CAST(MAX(version) AS BIGINT) AS v FROM _sqlx_migrations")
                .fetch_one(&mut *conn)
                .await?
                .try_get::<Option<i64>, _>("v")?
                .unwrap_or(0),
        )
    }

    /// Writes every table into `dir` (`<table>.jsonl`) from one read transaction on a
    /// connection of its own, so writers go on meanwhile and the files are one moment of the
    /// store.
    pub async fn dump(&self, _: &System, dir: &Path) -> Result<DumpInfo> {
        std::fs::create_dir_all(dir).map_err(file_error(dir))?;
        let mut conn = sqlx::AnyConnection::connect(self.url()).await?;
        match self.backend() {
            Backend::Postgres => {
                sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .execute(&mut conn)
                    .await?;
            }
            // WAL: the first read of a deferred transaction fixes what it sees until the end.
            Backend::Sqlite => {
                sqlx::query("BEGIN").execute(&mut conn).await?;
            }
        }
        let result = self.dump_in(&mut conn, dir).await;
        let _ = sqlx::query("ROLLBACK").execute(&mut conn).await;
        let _ = conn.close().await;
        result
    }

    async fn dump_in(&self, conn: &mut sqlx::AnyConnection, dir: &Path) -> Result<DumpInfo> {
        let schema_version = Store::schema_version(conn).await?;
        self.check_schema(conn).await?;
        let mut rows = Vec::new();
        let mut domains = Vec::new();
        for &(table, columns) in TABLES {
            let path = dir.join(format!("{table}.jsonl"));
            let file = std::fs::File::create(&path).map_err(file_error(&path))?;
            let mut out = BufWriter::new(file);
            let header = Header {
                table: table.to_string(),
                columns: columns.iter().map(|(c, _)| c.to_string()).collect(),
            };
            let line = serde_json::to_string(&header)
                .map_err(|e| Error::invalid("dump", e.to_string()))?;
            writeln!(out, "{line}").map_err(file_error(&path))?;
            let sql = format!("SELECT {} FROM {table}", select_list(columns));
            let mut stream = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch(&mut *conn);
            let mut n = 0u64;
            while let Some(row) = stream.try_next().await? {
                let values = row_values(&row, columns)?;
                if table == "domains" {
                    domains.push(DumpedDomain {
                        name: values[1].as_str().unwrap_or_default().to_string(),
                        uid: values[6].as_str().unwrap_or_default().to_string(),
                        last_seq: values[5].as_u64().unwrap_or(0),
                    });
                }
                serde_json::to_writer(&mut out, &values).map_err(|e| Error::File {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?;
                out.write_all(b"\n").map_err(file_error(&path))?;
                n += 1;
            }
            drop(stream);
            let file = out
                .into_inner()
                .map_err(|e| file_error(&path)(e.into_error()))?;
            file.sync_all().map_err(file_error(&path))?;
            rows.push((table.to_string(), n));
        }
        Ok(DumpInfo {
            schema_version,
            domains,
            rows,
        })
    }

    /// Loads a dump into this store, which must be empty (no domain, and no principal but the
    /// bootstrap admin): one transaction, so a bad file leaves the store as it was. The
    /// principals, keys and grants become the dump's (the bootstrap admin's keys on this store
    /// go). Errors name the file, line and column.
    pub async fn restore(&self, _: &System, dir: &Path, info: &DumpInfo) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let version = {
            let conn: &mut sqlx::AnyConnection = &mut tx;
            Store::schema_version(conn).await?
        };
        if version != info.schema_version {
            return Err(Error::invalid(
                "snapshot",
                format!(
                    "it was taken at schema version {}, this store is at {version}: restore it with the release that took it",
                    info.schema_version
                ),
            ));
        }
        if self.backend() == Backend::Postgres {
            // Nothing (another node, an audit row) writes these until the restore commits.
            sqlx::query("LOCK TABLE domains, principals, audit IN EXCLUSIVE MODE")
                .execute(&mut *tx)
                .await?;
        }
        let count = |sql: &'static str| sqlx::query(sql);
        let domains: i64 = count("SELECT COUNT(*) AS n FROM domains")
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        let others: i64 = count("SELECT COUNT(*) AS n FROM principals WHERE name <> $1")
            .bind(BOOTSTRAP_ADMIN)
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        if domains > 0 || others > 0 {
            return Err(Error::Conflict {
                what: "store",
                name: format!(
                    "with {domains} domain(s) and {others} principal(s) besides `{BOOTSTRAP_ADMIN}`: a snapshot restores only into an empty store"
                ),
            });
        }
        for table in ["api_keys", "principals", "audit"] {
            sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table}")))
                .execute(&mut *tx)
                .await?;
        }
        for &(table, columns) in TABLES {
            let path = dir.join(format!("{table}.jsonl"));
            let loaded = restore_table(&mut tx, &path, table, columns).await?;
            // A file cut short at a line boundary reads well: its count says otherwise.
            if let Some((_, listed)) = info.rows.iter().find(|(t, _)| t == table)
                && *listed != loaded
            {
                return Err(Error::File {
                    path: path.display().to_string(),
                    reason: format!("{loaded} rows where the snapshot lists {listed}"),
                });
            }
        }
        if self.backend() == Backend::Postgres {
            for (table, column) in SERIALS {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', '{column}'), \
                     COALESCE((SELECT MAX({column}) FROM {table}), 0) + 1, false)"
                )))
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

async fn restore_table(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    path: &PathBuf,
    table: &str,
    columns: &[(&str, Kind)],
) -> Result<u64> {
    let shown = path.display().to_string();
    let bad = |line: usize, reason: String| Error::File {
        path: format!("{shown}:{line}"),
        reason,
    };
    let file = std::fs::File::open(path).map_err(file_error(path))?;
    let mut lines = std::io::BufReader::new(file).lines();
    let header: Header = match lines.next() {
        Some(l) => {
            let l = l.map_err(file_error(path))?;
            serde_json::from_str(&l).map_err(|e| bad(1, format!("header: {e}")))?
        }
        None => return Err(bad(1, "empty file: the header line is missing".into())),
    };
    let expected: Vec<&str> = columns.iter().map(|(c, _)| *c).collect();
    if header.table != table || header.columns != expected {
        return Err(bad(
            1,
            format!(
                "header names table `{}` with columns {:?}; expected `{table}` with {expected:?}",
                header.table, header.columns
            ),
        ));
    }
    let placeholders: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, &(_, k))| match k {
            Bool => format!("(${} <> 0)", i + 1),
            _ => format!("${}", i + 1),
        })
        .collect();
    let sql = format!(
        "INSERT INTO {table} ({}) VALUES ({})",
        expected.join(", "),
        placeholders.join(", ")
    );
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut loaded = 0u64;
    for (i, line) in lines.enumerate() {
        let at = i + 2;
        let line = line.map_err(file_error(path))?;
        let values: Vec<Value> =
            serde_json::from_str(&line).map_err(|e| bad(at, format!("not a JSON array: {e}")))?;
        if values.len() != columns.len() {
            return Err(bad(
                at,
                format!("{} values for {} columns", values.len(), columns.len()),
            ));
        }
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
        for (v, &(column, kind)) in values.iter().zip(columns) {
            let wrong = || {
                bad(
                    at,
                    format!("column `{column}`: {v} is not a {kind:?} or null"),
                )
            };
            q = match (kind, v) {
                (Int | Bool, Value::Null) => q.bind(None::<i64>),
                (Int | Bool, Value::Number(n)) => q.bind(n.as_i64().ok_or_else(wrong)?),
                (Text, Value::Null) => q.bind(None::<String>),
                (Text, Value::String(s)) => q.bind(s.clone()),
                (Bytes, Value::Null) => q.bind(None::<Vec<u8>>),
                (Bytes, Value::String(s)) => q.bind(b64.decode(s).map_err(|_| wrong())?),
                _ => return Err(wrong()),
            };
        }
        q.execute(&mut **tx)
            .await
            .map_err(|e| bad(at, format!("row refused by the store: {e}")))?;
        loaded += 1;
    }
    Ok(loaded)
}
