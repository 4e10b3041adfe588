//! The shards of a data directory, by domain name.

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

/// Opens shards lazily and keeps them open; one `Catalog` per process and data directory.
pub struct Catalog {
    root: PathBuf,
    open: RwLock<BTreeMap<String, Arc<Shard>>>,
}

impl Catalog {
    pub fn open(data_dir: &Path) -> Result<Catalog> {
        let root = data_dir.join("shards");
        std::fs::create_dir_all(&root).map_err(Error::io(&root))?;
        Ok(Catalog {
            root,
            open: RwLock::new(BTreeMap::new()),
        })
    }

    fn dir_of(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    pub fn create(&self, name: &str, settings: DomainSettings) -> Result<Arc<Shard>> {
        validate_domain_name(name)?;
        let mut open = self.open.write().map_err(|_| poisoned(&self.root))?;
        let shard = Arc::new(Shard::create(&self.dir_of(name), name, settings)?);
        open.insert(name.to_string(), Arc::clone(&shard));
        Ok(shard)
    }

    pub fn get(&self, name: &str) -> Result<Arc<Shard>> {
        validate_domain_name(name).map_err(|_| Error::DomainNotFound(name.to_string()))?;
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
        let shard = Arc::new(Shard::open(&dir, name)?);
        open.insert(name.to_string(), Arc::clone(&shard));
        Ok(shard)
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

    /// A directory on the catalog's file system where a replacement shard for `name` can be
    /// built before `replace` swaps it in.
    pub fn scratch_dir(&self, name: &str) -> Result<PathBuf> {
        validate_domain_name(name)?;
        Ok(self.root.join(format!(".rebuild-{name}")))
    }

    /// Swaps the shard built in `built` (from `scratch_dir`) in for the domain's current one.
    /// Shards already handed out keep serving the old files until dropped.
    pub fn replace(&self, name: &str, built: &Path) -> Result<()> {
        validate_domain_name(name)?;
        let mut open = self.open.write().map_err(|_| poisoned(&self.root))?;
        let dir = self.dir_of(name);
        let old = self.root.join(format!(".replaced-{name}"));
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(Error::io(&old))?;
        }
        if dir.exists() {
            std::fs::rename(&dir, &old).map_err(Error::io(&dir))?;
        }
        std::fs::rename(built, &dir).map_err(Error::io(built))?;
        open.remove(name);
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(Error::io(&old))?;
        }
        Ok(())
    }

    /// Removes the domain's shard from disk. Renamed away first, so a crash leaves no half shard.
    pub fn delete(&self, name: &str) -> Result<()> {
        validate_domain_name(name).map_err(|_| Error::DomainNotFound(name.to_string()))?;
        let mut open = self.open.write().map_err(|_| poisoned(&self.root))?;
        let dir = self.dir_of(name);
        if !dir.is_dir() {
            return Err(Error::DomainNotFound(name.to_string()));
        }
        open.remove(name);
        let doomed = self.root.join(format!(".deleting-{name}"));
        std::fs::rename(&dir, &doomed).map_err(Error::io(&dir))?;
        std::fs::remove_dir_all(&doomed).map_err(Error::io(&doomed))?;
        Ok(())
    }
}

fn poisoned(root: &Path) -> Error {
    Error::Corrupt {
        path: root.to_path_buf(),
        reason: "catalog lock poisoned by an earlier panic".into(),
    }
}
