//! Snapshots of the store and of this node's shards (superusers only: a snapshot holds every
//! domain, principal and key hash). Created and listed under the configured snapshot
//! directory; restored from there by name (or, from the CLI only, from any directory — a
//! snapshot copied from another machine) into an empty store.

use std::path::PathBuf;
use std::sync::Arc;

use dartmouth_domains::Caller;
use dartmouth_views::snapshot::{self, SnapshotInfo};

use super::{Service, format_millis};
use crate::error::{ApiError, ApiResult, Code};

pub use super::contract::{SnapshotDomainOut, SnapshotOut};

/// Where a restore reads from.
pub enum SnapshotSource {
    /// A snapshot under the snapshot directory (what HTTP and gRPC can name).
    Named(String),
    /// A snapshot's own directory anywhere (the local operator's CLI).
    Dir(PathBuf),
}

fn out(info: SnapshotInfo) -> SnapshotOut {
    SnapshotOut {
        name: info.name,
        created_at: format_millis(info.created_at),
        backend: info.backend,
        schema_version: info.schema_version,
        bytes: info.bytes,
        domains: info
            .domains
            .into_iter()
            .map(|d| SnapshotDomainOut {
                name: d.name,
                store_seq: d.store_seq,
                shard_seq: d.shard_seq,
            })
            .collect(),
        rows: info.rows.into_iter().collect(),
        encrypted: info.sealing.is_some(),
    }
}

impl Service {
    async fn require_superuser(
        &self,
        caller: &Caller,
        action: &str,
        target: &str,
    ) -> ApiResult<()> {
        if caller.is_superuser() {
            return Ok(());
        }
        self.store
            .audit(caller.name(), action, target, "denied", "not an admin")
            .await?;
        Err(ApiError::new(
            Code::PermissionDenied,
            format!("{action} needs the admin role"),
        ))
    }

    /// Takes a snapshot named `name` (by default the time, `2026-11-29T19-30-00Z`), encrypted
    /// with this node's snapshot key when `encrypt`.
    pub async fn create_snapshot(
        self: &Arc<Self>,
        caller: &Caller,
        name: Option<String>,
        encrypt: bool,
    ) -> ApiResult<SnapshotOut> {
        self.require_superuser(caller, "snapshot-create", name.as_deref().unwrap_or(""))
            .await?;
        if let Some(n) = &name {
            snapshot::check_name(n)?;
        }
        let key = match (encrypt, &self.snapshot_key) {
            (false, _) => None,
            (true, Some(k)) => Some(k.clone()),
            (true, None) => {
                return Err(ApiError::invalid(
                    "encrypt: this node has no snapshot key (serve --snapshot-key-env VAR, the variable holding 32 random bytes in base64)",
                ));
            }
        };
        let mut domains = self.store.list_domains(caller).await?;
        domains.retain(|d| self.holds(&d.name));
        let root = self.snapshot_dir.clone();
        let now = dartmouth_domains::now_millis();
        let info = self
            .blocking(move |s| {
                let name = match name {
                    Some(n) => n,
                    None => {
                        let base = format_millis(now).replace(':', "-");
                        let mut n = base.clone();
                        let mut i = 2;
                        while root.join(&n).exists() {
                            n = format!("{base}-{i}");
                            i += 1;
                        }
                        n
                    }
                };
                Ok(snapshot::create(
                    &s.applier(),
                    &domains,
                    &root,
                    &name,
                    now,
                    key.as_ref(),
                )?)
            })
            .await?;
        self.store
            .audit(caller.name(), "snapshot-create", &info.name, "ok", "")
            .await?;
        Ok(out(info))
    }

    /// The snapshots in the snapshot directory, oldest first.
    pub async fn list_snapshots(self: &Arc<Self>, caller: &Caller) -> ApiResult<Vec<SnapshotOut>> {
        self.require_superuser(caller, "snapshot-list", "").await?;
        let root = self.snapshot_dir.clone();
        let infos = self.blocking(move |_| Ok(snapshot::list(&root)?)).await?;
        Ok(infos.into_iter().map(out).collect())
    }

    /// Restores a snapshot into this (empty) store and node; each shard then catches up from
    /// its own sequence (at once here when reads catch up themselves, by the applier task on a
    /// server). The principals and keys become the snapshot's.
    pub async fn restore_snapshot(
        self: &Arc<Self>,
        caller: &Caller,
        source: SnapshotSource,
    ) -> ApiResult<SnapshotOut> {
        let target = match &source {
            SnapshotSource::Named(n) => n.clone(),
            SnapshotSource::Dir(d) => d.display().to_string(),
        };
        self.require_superuser(caller, "snapshot-restore", &target)
            .await?;
        let root = self.snapshot_dir.clone();
        let info = self
            .blocking(move |s| {
                let dir = match source {
                    SnapshotSource::Named(n) => snapshot::find(&root, &n)?.0,
                    SnapshotSource::Dir(d) => d,
                };
                let applier = s.applier();
                // An encrypted snapshot is opened (and checked whole) under the snapshot
                // directory first.
                let info = snapshot::restore(&applier, &dir, s.snapshot_key.as_ref(), &root)?;
                if s.read_mode == super::ReadMode::CaughtUp {
                    let admin = applier.runtime.block_on(s.store.local_admin())?;
                    for d in applier.runtime.block_on(s.store.list_domains(&admin))? {
                        if s.holds(&d.name) {
                            applier.catch_up(&d)?;
                        }
                    }
                }
                Ok(info)
            })
            .await?;
        // Into the restored store's audit log, as the caller that restored it.
        self.store
            .audit(caller.name(), "snapshot-restore", &info.name, "ok", "")
            .await?;
        Ok(out(info))
    }
}
