//! The shards of a data directory, by domain name: the registry (`Shards`) that opens, creates,
//! replaces and deletes them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::shard::{DomainSettings, Shard};
use crate::{Error, Result};

/// Domain names: 1 to 64 of `a-z 0-9 _ -`, starting with a letter or digit.
pub fn validate_domain_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        let shown: String = name.chars().take(64).collect();
        Err(Error::invalid(format!(
            "domain name `{shown}` is invalid: use 1 to 64 characters of a-z, 0-9, `_` and `-`, starting with a letter or digit"
        )))
    }
}

/// The suffix of the key of a domain's second embedding generation's shard (`<name>.g2`; see
/// `dartmouth_domains::Generations`). A domain name cannot hold a dot, so no key is both.
pub const SECOND_GENERATION: &str = ".g2";

/// A shard's key in the registry: a domain name, or a domain name and [`SECOND_GENERATION`].
/// Returns the domain name (what the shard's hits name).
pub fn validate_shard_key(key: &str) -> Result<&str> {
    let name = key.strip_suffix(SECOND_GENERATION).unwrap_or(key);
    validate_domain_name(name)?;
    Ok(name)
}

/// The key of the shard of `domain`'s generation in `slot` (1 or 2).
pub fn shard_key(domain: &str, slot: u8) -> String {
    if slot == 2 {
        format!("{domain}{SECOND_GENERATION}")
    } else {
        domain.to_string()
    }
}

/// Opens shards lazily and keeps them open; one `Shards` per process and data directory.
/// Shards are found by key (see [`validate_shard_key`]).
pub struct Shards {
    root: PathBuf,
    open: RwLock<BTreeMap<String, Arc<Shard>>>,
}

impl Shards {
    pub fn open(data_dir: &Path) -> Result<Shards> {
        let root = data_dir.join("shards");
        std::fs::create_dir_all(&root).map_err(Error::io(&root))?;
        // What a crash left half done: rebuilds, deletions, replacements, creations.
        for entry in std::fs::read_dir(&root).map_err(Error::io(&root))? {
            let entry = entry.map_err(Error::io(&root))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let leftover = [".rebuild-", ".deleting-", ".replaced-"]
                .iter()
                .any(|p| name.starts_with(p))
                || name.ends_with(".creating");
            if leftover && entry.path().is_dir() {
                // Another process on the same directory may be mid-rebuild: only old ones.
                let old = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > std::time::Duration::from_secs(3600));
                if old {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        Ok(Shards {
            root,
            open: RwLock::new(BTreeMap::new()),
        })
    }

    /// The directory holding the shards.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir_of(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    pub fn create(&self, name: &str, settings: DomainSettings) -> Result<Arc<Shard>> {
        self.create_identified(name, settings, None)
    }

    /// Creates the shard of one incarnation of a domain (see `Manifest::identity`).
    pub fn create_identified(
        &self,
        name: &str,
        settings: DomainSettings,
        identity: Option<&str>,
    ) -> Result<Arc<Shard>> {
        let domain = validate_shard_key(name)?;
        let mut open = self.open.write().map_err(|_| poisoned(&self.root))?;
        let shard = Arc::new(Shard::create_identified(
            &self.dir_of(name),
            domain,
            settings,
            identity,
        )?);
        open.insert(name.to_string(), Arc::clone(&shard));
        Ok(shard)
    }

    pub fn get(&self, name: &str) -> Result<Arc<Shard>> {
        let domain =
            validate_shard_key(name).map_err(|_| Error::DomainNotFound(name.to_string()))?;
        if let Some(s) = self
            .open
            .read()
            .map_err(|_| poisoned(&self.root))?
            .get(name)
        {
            return Ok(Arc::clone(s));
        }
        let mut open = self.open.write().map_err(|_| poisoned(&self.root))?;
        if let Some(s) = open.get(name) {
            return Ok(Arc::clone(s));
        }
        let dir = self.dir_of(name);
        if !dir.is_dir() {
            return Err(Error::DomainNotFound(name.to_string()));
        }
        let shard = Arc::new(Shard::open(&dir, domain)?);
        open.insert(name.to_string(), Arc::clone(&shard));
        Ok(shard)
    }

    /// The keys of every shard on disk (domains and their second generations), sorted.
    pub fn list_keys(&self) -> Result<Vec<String>> {
        let mut keys = Vec::new();
        for entry in std::fs::read_dir(&self.root).map_err(Error::io(&self.root))? {
            let entry = entry.map_err(Error::io(&self.root))?;
            let key = entry.file_name().to_string_lossy().into_owned();
            if entry.path().join("manifest.json").is_file() && validate_shard_key(&key).is_ok() {
                keys.push(key);
            }
        }
        keys.sort();
        Ok(keys)
    }

    /// Domain names present on disk, sorted.
    pub fn list(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.root).map_err(Error::io(&self.root))? {
            let entry = entry.map_err(Error::io(&self.root))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.path().join("manifest.json").is_file() && validate_domain_name(&name).is_ok() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// The shard of one incarnation of a domain: the open or stored shard of `name` when it
    /// records `identity`, otherwise a new empty one, which replaces a shard left by another
    /// incarnation (a domain deleted and created again) or made before identities. Returns
    /// whether the shard is new. Serialised with every other change to the registry.
    pub fn ensure(
        &self,
        name: &str,
        settings: DomainSettings,
        identity: &str,
    ) -> Result<(Arc<Shard>, bool)> {
        let domain = validate_shard_key(name)?;
        let mut open = self.open.write().map_err(|_| poisoned(&self.root))?;
        let dir = self.dir_of(name);
        let recorded = match open.get(name) {
            Some(s) if s.identity() == Some(identity) => return Ok((Arc::clone(s), false)),
            Some(s) => Some(s.identity().map(str::to_string)),
            None if dir.is_dir() => Some(read_manifest(&dir.join("manifest.json"))?.identity),
            None => None,
        };
        match recorded {
            Some(Some(r)) if r == identity => {
                let shard = Arc::new(Shard::open(&dir, domain)?);
                open.insert(name.to_string(), Arc::clone(&shard));
                return Ok((shard, false));
            }
            Some(_) => {
                // Another incarnation's shard: moved away, never served for this one.
                // Searches that hold it finish on its files.
                retire(open.remove(name));
                self.remove_dir(name)?;
            }
            None => {}
        }
        let shard = Arc::new(Shard::create_identified(
            &dir,
            domain,
            settings,
            Some(identity),
        )?);
        open.insert(name.to_string(), Arc::clone(&shard));
        Ok((shard, true))
    }

    /// Removes the shard of `name` if it belongs to `identity` (or records none: made before
    /// identities); a shard another incarnation made meanwhile stays. Returns whether it did.
    pub fn delete_identified(&self, name: &str, identity: &str) -> Result<bool> {
        validate_shard_key(name).map_err(|_| Error::DomainNotFound(name.to_string()))?;
        let mut open = self.open.write().map_err(|_| poisoned(&self.root))?;
        let dir = self.dir_of(name);
        if !dir.is_dir() {
            return Ok(false);
        }
        let recorded = match open.get(name) {
            Some(s) => s.identity().map(str::to_string),
            None => read_manifest(&dir.join("manifest.json"))?.identity,
        };
        if recorded.as_deref().is_some_and(|r| r != identity) {
            return Ok(false);
        }
        retire(open.remove(name));
        self.remove_dir(name)?;
        Ok(true)
    }

    /// Renames the shard directory away, then removes it, so a crash leaves no half shard.
    fn remove_dir(&self, name: &str) -> Result<()> {
        let dir = self.dir_of(name);
        let doomed = self.root.join(format!(".deleting-{name}"));
        if doomed.exists() {
            std::fs::remove_dir_all(&doomed).map_err(Error::io(&doomed))?;
        }
        std::fs::rename(&dir, &doomed).map_err(Error::io(&dir))?;
        std::fs::remove_dir_all(&doomed).map_err(Error::io(&doomed))?;
        Ok(())
    }

    /// The identity the shard of `name` records (see `Manifest::identity`), read from its
    /// manifest without opening it; `None` when there is no such shard or it records none.
    pub fn identity_of(&self, name: &str) -> Result<Option<String>> {
        validate_shard_key(name)?;
        let path = self.dir_of(name).join("manifest.json");
        if !path.is_file() {
            return Ok(None);
        }
        Ok(read_manifest(&path)?.identity)
    }

    /// The shard of `name` if it is open or on disk, without creating one.
    pub fn find(&self, name: &str) -> Result<Option<Arc<Shard>>> {
        match self.get(name) {
            Ok(s) => Ok(Some(s)),
            Err(Error::DomainNotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A directory of its own on the registry's file system where a replacement shard for
    /// `name` can be built before `replace` swaps it in (two rebuilds never share one).
    pub fn scratch_dir(&self, name: &str) -> Result<PathBuf> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        validate_shard_key(name)?;
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Ok(self
            .root
            .join(format!(".rebuild-{name}.{}.{n}", std::process::id())))
    }

    /// Swaps the shard built in `built` (from `scratch_dir`) in for the domain's current one.
    /// Shards already handed out keep serving the old files until dropped.
    pub fn replace(&self, name: &str, built: &Path) -> Result<()> {
        validate_shard_key(name)?;
        let mut open = self.open.write().map_err(|_| poisoned(&self.root))?;
        let dir = self.dir_of(name);
        let old = self.root.join(format!(".replaced-{name}"));
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(Error::io(&old))?;
        }
        // Writers still holding the old shard are refused from here on (they look again).
        retire(open.remove(name));
        if dir.exists() {
            std::fs::rename(&dir, &old).map_err(Error::io(&dir))?;
        }
        std::fs::rename(built, &dir).map_err(Error::io(built))?;
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(Error::io(&old))?;
        }
        Ok(())
    }

    /// Removes the domain's shard from disk. Renamed away first, so a crash leaves no half shard.
    pub fn delete(&self, name: &str) -> Result<()> {
        validate_shard_key(name).map_err(|_| Error::DomainNotFound(name.to_string()))?;
        let mut open = self.open.write().map_err(|_| poisoned(&self.root))?;
        let dir = self.dir_of(name);
        if !dir.is_dir() {
            return Err(Error::DomainNotFound(name.to_string()));
        }
        retire(open.remove(name));
        self.remove_dir(name)
    }
}

fn read_manifest(path: &Path) -> Result<crate::Manifest> {
    let raw = std::fs::read(path).map_err(Error::io(path))?;
    serde_json::from_slice(&raw).map_err(|e| Error::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn poisoned(root: &Path) -> Error {
    Error::Corrupt {
        path: root.to_path_buf(),
        reason: "shard registry lock poisoned by an earlier panic".into(),
    }
}

/// Retires a shard the registry stops handing out (see `Shard::retire`).
fn retire(shard: Option<Arc<Shard>>) {
    if let Some(s) = shard {
        s.retire();
    }
}
