//! Snapshots: a consistent copy of the store and of the shards this node holds, restorable on
//! another machine (and on the other backend).
//!
//! `create` copies each shard at its last commit first, then dumps the store in one read
//! transaction. The store only grows, so every copied shard is at or behind the store copy,
//! and a restored node resumes from the changelog: each shard catches up from its own
//! sequence to the store's, as after a restart. A domain whose shard is not in the snapshot
//! (held by another node, or created between the two steps) is rebuilt from the store's
//! changelog.
//!
//! A snapshot is a directory: `snapshot.json` (written last: a directory without it is not a
//! snapshot), `store/<table>.jsonl`, `shards/<domain>/`. It is built under a hidden name and
//! renamed into place, so a crash leaves no half snapshot under a real name.
//!
//! Encrypted with a key (`seal.rs`), every file is sealed under a number (`sealed/000001`, …),
//! the paths, domains and row counts go into a sealed manifest (`sealed/000000`), and
//! `snapshot.json` keeps only the name, the time, the backend, the size and the sealing record.
//! A restore opens every file into a scratch directory first — any wrong byte stops it there —
//! and restores from that.

use std::path::{Path, PathBuf};

use dartmouth_domains::{Domain, DumpInfo, DumpedDomain};
use dartmouth_engine::Shard;
use serde::{Deserialize, Serialize};

use crate::seal::{Sealer, Sealing, SnapshotKey};
use crate::{Applier, Error, Result};

const FORMAT: u32 = 1;
const INFO: &str = "snapshot.json";
/// Where a sealed snapshot keeps its files, numbered (`sealed/000000` is the manifest).
const SEALED: &str = "sealed";

fn sealed_name(i: usize) -> String {
    format!("{SEALED}/{i:06}")
}

/// A sealed snapshot's manifest: its full description and the path of each numbered file.
#[derive(Serialize, Deserialize)]
struct Manifest {
    info: SnapshotInfo,
    files: Vec<String>,
}

/// What `snapshot.json` says.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SnapshotInfo {
    pub format: u32,
    pub name: String,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    /// `sqlite` or `postgres`: where it was taken (it restores on either).
    pub backend: String,
    pub schema_version: i64,
    pub domains: Vec<SnapshotDomain>,
    /// Rows per store table.
    pub rows: Vec<(String, u64)>,
    /// Bytes on disk.
    pub bytes: u64,
    /// Encrypted: how (the domains and rows are then in the sealed `contents.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealing: Option<Sealing>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SnapshotDomain {
    pub name: String,
    pub uid: String,
    /// The domain's last changelog sequence in the store copy.
    pub store_seq: u64,
    /// The applied sequence of its shard copy (≤ `store_seq`); `None`: no shard copied.
    pub shard_seq: Option<u64>,
}

/// A snapshot name: 1–64 of `A–Z a–z 0–9 - _ .`, not starting with a dot.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::Input(format!(
            "name: `{}` is not a snapshot name (1–64 of A–Z a–z 0–9 - _ ., not starting with a dot)",
            dartmouth_domains::names::shown(name)
        )))
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| {
        Error::Engine(dartmouth_engine::Error::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

fn missing(name: &str) -> Error {
    Error::Store(dartmouth_domains::Error::NotFound {
        what: dartmouth_domains::Missing::Snapshot,
        name: dartmouth_domains::names::shown(name),
    })
}

/// Takes a snapshot of the store and of the shards of `domains` this node holds, as
/// `root/name`.
pub fn create(
    applier: &Applier<'_>,
    domains: &[Domain],
    root: &Path,
    name: &str,
    created_at: i64,
    key: Option<&SnapshotKey>,
) -> Result<SnapshotInfo> {
    check_name(name)?;
    // One snapshot at a time in this process: two of the same name never race for it.
    static CREATING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = CREATING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    std::fs::create_dir_all(root).map_err(io(root))?;
    let dest = root.join(name);
    if dest.exists() {
        return Err(Error::Store(dartmouth_domains::Error::Conflict {
            what: "snapshot",
            name: name.to_string(),
        }));
    }
    // A directory of its own (`create_dir` fails if another process holds the same one).
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = root.join(format!(".creating-{name}.{}.{n}", std::process::id()));
    std::fs::create_dir(&tmp).map_err(io(&tmp))?;
    let built = (|| {
        let shards_dir = tmp.join("shards");
        std::fs::create_dir_all(&shards_dir).map_err(io(&shards_dir))?;
        // Shards first: whatever commits after its copy is in the store copy taken next.
        let mut copied: Vec<(String, String, u64)> = Vec::new();
        for d in domains {
            if let Some(shard) = applier.existing_shard(d)? {
                match shard.copy_to(&shards_dir.join(&d.name)) {
                    Ok(seq) => copied.push((d.name.clone(), d.uid.clone(), seq)),
                    // Deleted or replaced meanwhile: its store rows say what it holds.
                    Err(dartmouth_engine::Error::DomainNotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        let store = applier.store;
        let dump: DumpInfo = applier.block(store.dump(&store.system(), &tmp.join("store")))?;
        let mut listed = Vec::new();
        for DumpedDomain {
            name,
            uid,
            last_seq,
        } in &dump.domains
        {
            let shard_seq = copied
                .iter()
                .find(|(n, u, _)| n == name && u == uid)
                .map(|&(_, _, seq)| seq)
                .filter(|&seq| seq <= *last_seq);
            listed.push(SnapshotDomain {
                name: name.clone(),
                uid: uid.clone(),
                store_seq: *last_seq,
                shard_seq,
            });
        }
        // Shards of domains deleted (or replaced) between the two steps are left out.
        for (n, _, _) in &copied {
            if !listed.iter().any(|d| &d.name == n && d.shard_seq.is_some()) {
                let dir = shards_dir.join(n);
                std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
            }
        }
        let mut info = SnapshotInfo {
            format: FORMAT,
            name: name.to_string(),
            created_at,
            backend: match store.backend() {
                dartmouth_domains::Backend::Sqlite => "sqlite",
                dartmouth_domains::Backend::Postgres => "postgres",
            }
            .into(),
            schema_version: dump.schema_version,
            domains: listed,
            rows: dump.rows,
            bytes: 0,
            sealing: None,
        };
        let Some(key) = key else {
            info.bytes = dir_bytes(&tmp)?;
            write_info(&tmp, &info)?;
            return Ok(info);
        };
        let (sealer, sealing) = Sealer::new(key)?;
        // Every file sealed under a number (no name of a domain left in the clear), then the
        // manifest that maps the numbers back to paths, sealed as number 0.
        let sealed = tmp.join(SEALED);
        std::fs::create_dir(&sealed).map_err(io(&sealed))?;
        let mut paths = Vec::new();
        for (i, (path, rel)) in files(&tmp)?.into_iter().enumerate() {
            let number = sealed_name(i + 1);
            sealer.seal_file(&path, &number)?;
            let to = tmp.join(&number);
            std::fs::rename(&path, &to).map_err(io(&path))?;
            paths.push(rel);
        }
        for sub in ["store", "shards"] {
            let d = tmp.join(sub);
            if d.exists() {
                std::fs::remove_dir_all(&d).map_err(io(&d))?;
            }
        }
        let manifest = Manifest {
            info: info.clone(),
            files: paths,
        };
        let first = tmp.join(sealed_name(0));
        let bytes = serde_json::to_vec(&manifest).map_err(|e| Error::Unreadable(e.to_string()))?;
        std::fs::write(&first, bytes).map_err(io(&first))?;
        sealer.seal_file(&first, &sealed_name(0))?;
        sync_dir(&sealed)?;
        let mut public = SnapshotInfo {
            domains: Vec::new(),
            rows: Vec::new(),
            sealing: Some(sealing),
            ..info.clone()
        };
        public.bytes = dir_bytes(&tmp)?;
        write_info(&tmp, &public)?;
        info.bytes = public.bytes;
        info.sealing = public.sealing;
        Ok(info)
    })();
    match built {
        Ok(info) => {
            std::fs::rename(&tmp, &dest).map_err(io(&tmp))?;
            sync_dir(root)?;
            Ok(info)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(e)
        }
    }
}

/// Every file under `dir` with its path inside it (`/`-separated), `snapshot.json` left out.
fn files(dir: &Path) -> Result<Vec<(PathBuf, String)>> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, String)>) -> Result<()> {
        for e in std::fs::read_dir(dir).map_err(io(dir))?.flatten() {
            let path = e.path();
            if e.file_type().map_err(io(&path))?.is_dir() {
                walk(root, &path, out)?;
            } else if path != root.join(INFO) {
                let rel = path
                    .strip_prefix(root)
                    .map_err(|_| {
                        Error::Unreadable(format!("{}: outside the snapshot", path.display()))
                    })?
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push((path, rel));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out)?;
    out.sort();
    Ok(out)
}

fn write_info(dir: &Path, info: &SnapshotInfo) -> Result<()> {
    let path = dir.join(INFO);
    let bytes = serde_json::to_vec_pretty(info).map_err(|e| Error::Unreadable(e.to_string()))?;
    std::fs::write(&path, bytes).map_err(io(&path))?;
    std::fs::File::open(&path)
        .and_then(|f| f.sync_all())
        .map_err(io(&path))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

fn dir_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for e in std::fs::read_dir(dir).map_err(io(dir))?.flatten() {
        let meta = e.metadata().map_err(io(&e.path()))?;
        total += if meta.is_dir() {
            dir_bytes(&e.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

/// Reads the snapshot in `dir` (a snapshot's own directory).
pub fn read(dir: &Path) -> Result<SnapshotInfo> {
    let path = dir.join(INFO);
    let raw = std::fs::read(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::Input(format!(
                "{}: not a snapshot (no {INFO}; an interrupted one is never renamed into place)",
                dir.display()
            ))
        } else {
            io(&path)(e)
        }
    })?;
    let info: SnapshotInfo = serde_json::from_slice(&raw)
        .map_err(|e| Error::Input(format!("{}: {e}", path.display())))?;
    check_name(&info.name).map_err(|e| Error::Input(format!("{}: {e}", path.display())))?;
    if info.format != FORMAT {
        return Err(Error::Input(format!(
            "{}: snapshot format {} is not supported (this release reads {FORMAT})",
            path.display(),
            info.format
        )));
    }
    Ok(info)
}

/// The snapshot called `name` under `root`.
pub fn find(root: &Path, name: &str) -> Result<(PathBuf, SnapshotInfo)> {
    check_name(name)?;
    let dir = root.join(name);
    if !dir.join(INFO).is_file() {
        return Err(missing(name));
    }
    let info = read(&dir)?;
    if info.name != name {
        return Err(Error::Input(format!(
            "snapshot `{name}`: its snapshot.json calls it `{}`",
            info.name
        )));
    }
    Ok((dir, info))
}

/// The snapshots under `root`, oldest first.
pub fn list(root: &Path) -> Result<Vec<SnapshotInfo>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io(root)(e)),
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !e.path().join(INFO).is_file() {
            continue;
        }
        match read(&e.path()) {
            Ok(info) => out.push(info),
            Err(err) => tracing::warn!(snapshot = %name, error = %err, "unreadable snapshot"),
        }
    }
    out.sort_by(|a, b| (a.created_at, &a.name).cmp(&(b.created_at, &b.name)));
    Ok(out)
}

/// Restores the snapshot in `dir` into an empty store and this node's shards: the store in
/// one transaction, then each shard copy swapped in (checked to be of its domain and not ahead
/// of the store; otherwise it is left out and the domain rebuilt from the changelog). The
/// caller then catches the shards up.
///
/// An encrypted snapshot needs its `key`: every file is opened (and so authenticated) into a
/// scratch directory under `work` before anything is restored, and the scratch directory is
/// removed afterwards, whatever happened.
pub fn restore(
    applier: &Applier<'_>,
    dir: &Path,
    key: Option<&SnapshotKey>,
    work: &Path,
) -> Result<SnapshotInfo> {
    let info = read(dir)?;
    let Some(sealing) = &info.sealing else {
        if key.is_some() {
            // Whoever holds a key expects an encrypted, authenticated snapshot: a plain one in
            // its place could be anything.
            return Err(Error::Input(format!(
                "snapshot `{}` is not encrypted, and a snapshot key was given: nothing was restored (restore a plain snapshot without --snapshot-key-env)",
                info.name
            )));
        }
        return restore_plain(applier, dir, info);
    };
    let key = key.ok_or_else(|| {
        Error::Input(format!(
            "snapshot `{}` is encrypted: give its key (--snapshot-key-env VAR); nothing was restored",
            info.name
        ))
    })?;
    let sealer = Sealer::open(key, sealing, &info.name)?;
    std::fs::create_dir_all(work).map_err(io(work))?;
    // A directory of this restore's own (`create_dir` fails if it exists), named by nothing
    // the snapshot says.
    let mut tag = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut tag)
        .map_err(|_| Error::Unreadable("no randomness for the restore's scratch name".into()))?;
    let scratch = work.join(format!(".opening.{:016x}", u64::from_be_bytes(tag)));
    std::fs::create_dir(&scratch).map_err(io(&scratch))?;
    let result = (|| {
        let raw = sealer.open_bytes(&dir.join(sealed_name(0)), &sealed_name(0))?;
        let manifest: Manifest = serde_json::from_slice(&raw)
            .map_err(|e| Error::Input(format!("{}: {e}", sealed_name(0))))?;
        let present = std::fs::read_dir(dir.join(SEALED))
            .map_err(io(&dir.join(SEALED)))?
            .count();
        if present != manifest.files.len() + 1 {
            return Err(Error::Input(format!(
                "snapshot `{}`: {present} sealed files where its manifest lists {}; nothing was restored",
                info.name,
                manifest.files.len() + 1
            )));
        }
        for (i, rel) in manifest.files.iter().enumerate() {
            let plain = Path::new(rel);
            if !plain
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)))
            {
                return Err(Error::Input(format!(
                    "{}: the manifest names `{rel}`, outside the snapshot",
                    sealed_name(0)
                )));
            }
            let to = scratch.join(plain);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            let number = sealed_name(i + 1);
            sealer.open_file(&dir.join(&number), &number, &to)?;
        }
        // What `snapshot.json` says in the clear must be what the sealed manifest says.
        if (manifest.info.name.as_str(), manifest.info.created_at)
            != (info.name.as_str(), info.created_at)
        {
            return Err(Error::Input(format!(
                "snapshot `{}`: its snapshot.json does not match its sealed manifest (altered); nothing was restored",
                info.name
            )));
        }
        let mut full = manifest.info;
        full.bytes = info.bytes;
        full.sealing = info.sealing.clone();
        restore_plain(applier, &scratch, full)
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

/// Restores an unencrypted snapshot (or an opened one) whose `snapshot.json` says `info`.
fn restore_plain(applier: &Applier<'_>, dir: &Path, info: SnapshotInfo) -> Result<SnapshotInfo> {
    let (store, shards) = (applier.store, applier.shards);
    let dump = DumpInfo {
        schema_version: info.schema_version,
        domains: Vec::new(),
        rows: info.rows.clone(),
    };
    // Every listed shard copy is there before the store commits (after it, a restore cannot
    // be retried: the store is no longer empty).
    for d in &info.domains {
        if d.shard_seq.is_some() {
            dartmouth_engine::validate_domain_name(&d.name)?;
            let from = dir.join("shards").join(&d.name);
            std::fs::read_dir(&from).map_err(io(&from))?;
        }
    }
    applier.block(store.restore(&store.system(), &dir.join("store"), &dump))?;
    for d in &info.domains {
        let swapped = match d.shard_seq {
            Some(seq) => swap_in(shards, dir, d, seq).unwrap_or_else(|e| {
                tracing::warn!(domain = %d.name, error = %e, "snapshot shard not restored; rebuilding it from the store");
                false
            }),
            None => false,
        };
        // A shard this node already had under the domain's identity may be ahead of the
        // restored store: it goes, and the domain is rebuilt from the store.
        if !swapped {
            shards.delete_identified(&d.name, &d.uid)?;
        }
    }
    Ok(info)
}

/// Swaps the domain's shard copy in when it opens as that domain at its recorded sequence and
/// is not ahead of the store copy; whether it did.
fn swap_in(
    shards: &dartmouth_engine::Shards,
    dir: &Path,
    d: &SnapshotDomain,
    seq: u64,
) -> Result<bool> {
    let from = dir.join("shards").join(&d.name);
    let scratch = shards.scratch_dir(&d.name)?;
    let result = (|| {
        copy_tree(&from, &scratch)?;
        let usable = {
            let s = Shard::open(&scratch, &d.name)?;
            s.identity() == Some(d.uid.as_str()) && s.applied_seq() == seq && seq <= d.store_seq
        };
        if usable {
            shards.replace(&d.name, &scratch)?;
        }
        Ok(usable)
    })();
    if scratch.exists() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    result
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(io(to))?;
    for e in std::fs::read_dir(from).map_err(io(from))?.flatten() {
        let target = to.join(e.file_name());
        if e.file_type().map_err(io(&e.path()))?.is_dir() {
            copy_tree(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), &target).map_err(io(&e.path()))?;
            std::fs::File::open(&target)
                .and_then(|f| f.sync_all())
                .map_err(io(&target))?;
        }
    }
    sync_dir(to)
}
