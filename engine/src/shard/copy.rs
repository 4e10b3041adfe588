//! A copy of a shard at its last commit, taken while it serves: the files a commit refers to
//! (tantivy's segments are immutable once committed), the vector rows that commit covers, and
//! the last saved graph. The copy opens as a shard at the same applied sequence.

use std::io::{Read, Write};
use std::path::Path;

use super::graph::read_graph_meta;
use super::{CommitPayload, GRAPH_META, MANIFEST, Shard};
use crate::{Error, Result};

/// Attempts at catching a moment between two of tantivy's background merges.
const ATTEMPTS: usize = 20;

impl Shard {
    /// Copies the shard as of its last commit into `dest` (which must not exist) and returns
    /// the applied sequence of the copy. Writes wait meanwhile; searches do not.
    pub fn copy_to(&self, dest: &Path) -> Result<u64> {
        let _writer = self.lock_writer()?;
        // No graph save or replacement while its files are copied.
        let _graph = self.graph_worker.hold();
        if dest.exists() {
            return Err(Error::invalid(format!(
                "{}: the copy's directory already exists",
                dest.display()
            )));
        }
        let bm25_to = dest.join("bm25");
        std::fs::create_dir_all(&bm25_to).map_err(Error::io(&bm25_to))?;
        copy_file(&self.dir.join(MANIFEST), &dest.join(MANIFEST), None)?;
        if let Some(meta) = read_graph_meta(&self.dir) {
            let graph_to = dest.join("graph");
            std::fs::create_dir_all(&graph_to).map_err(Error::io(&graph_to))?;
            let from = self.dir.join("graph").join(&meta.basename);
            if from.is_file() {
                copy_file(&from, &graph_to.join(&meta.basename), None)?;
                copy_file(&self.dir.join(GRAPH_META), &dest.join(GRAPH_META), None)?;
            }
        }
        let payload = copy_index(&self.dir.join("bm25"), &bm25_to)?;
        let bytes = crate::vectors::file_len(self.settings().model.dim, payload.next_ordinal);
        copy_file(
            &self.dir.join("vectors.f32"),
            &dest.join("vectors.f32"),
            Some(bytes),
        )?;
        for dir in [&bm25_to, &dest.to_path_buf()] {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(Error::io(dir))?;
        }
        Ok(payload.applied_seq)
    }
}

/// The files of the index's current commit: `meta.json` read, the segments it names copied,
/// and `meta.json` read again — a merge finishing meanwhile (the one change to the index that
/// does not wait for our writer lock) means trying again.
fn copy_index(from: &Path, to: &Path) -> Result<CommitPayload> {
    let meta_path = from.join("meta.json");
    for _ in 0..ATTEMPTS {
        let meta = std::fs::read(&meta_path).map_err(Error::io(&meta_path))?;
        let parsed: serde_json::Value =
            serde_json::from_slice(&meta).map_err(|e| Error::Corrupt {
                path: meta_path.clone(),
                reason: e.to_string(),
            })?;
        let payload: CommitPayload = match parsed.get("payload").and_then(|p| p.as_str()) {
            Some(p) => serde_json::from_str(p).map_err(|e| Error::Corrupt {
                path: meta_path.clone(),
                reason: format!("commit payload: {e}"),
            })?,
            None => CommitPayload {
                next_ordinal: 0,
                applied_seq: 0,
            },
        };
        let segments: Vec<String> = parsed
            .get("segments")
            .and_then(|s| s.as_array())
            .map(|s| {
                s.iter()
                    .filter_map(|seg| seg.get("segment_id")?.as_str())
                    .map(|id| id.replace('-', ""))
                    .collect()
            })
            .unwrap_or_default();
        for e in std::fs::read_dir(to).map_err(Error::io(to))?.flatten() {
            std::fs::remove_file(e.path()).map_err(Error::io(&e.path()))?;
        }
        let mut vanished = false;
        for e in std::fs::read_dir(from).map_err(Error::io(from))?.flatten() {
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            let ours = name == ".managed.json"
                || segments.iter().any(|s| {
                    name.strip_prefix(s.as_str())
                        .is_some_and(|r| r.starts_with('.'))
                });
            if !ours {
                continue;
            }
            match copy_file(&e.path(), &to.join(name), None) {
                Ok(()) => {}
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                    vanished = true;
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        if vanished || std::fs::read(&meta_path).map_err(Error::io(&meta_path))? != meta {
            continue;
        }
        let out = to.join("meta.json");
        std::fs::write(&out, &meta).map_err(Error::io(&out))?;
        std::fs::File::open(&out)
            .and_then(|f| f.sync_all())
            .map_err(Error::io(&out))?;
        return Ok(payload);
    }
    Err(Error::Io {
        path: from.to_path_buf(),
        source: std::io::Error::other(format!(
            "the index kept changing while it was copied ({ATTEMPTS} attempts)"
        )),
    })
}

/// Copies `from` (its first `limit` bytes, when given) and syncs the copy.
fn copy_file(from: &Path, to: &Path, limit: Option<u64>) -> Result<()> {
    let run = || -> std::io::Result<()> {
        let mut src = std::fs::File::open(from)?;
        let mut dst = std::fs::File::create(to)?;
        match limit {
            Some(n) => {
                let copied = std::io::copy(&mut (&mut src).take(n), &mut dst)?;
                if copied != n {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("{copied} bytes where the commit covers {n}"),
                    ));
                }
            }
            None => {
                std::io::copy(&mut src, &mut dst)?;
            }
        }
        dst.flush()?;
        dst.sync_all()
    };
    run().map_err(Error::io(from))
}
