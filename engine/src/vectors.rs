//! The shard's vector file: one row of `dim` little-endian f32 per chunk ordinal, append-only.
//! Rows past the committed count (a crash between append and commit) are cut off on open.

#![expect(
    unsafe_code,
    reason = "memory-mapping the vector file needs `Mmap::map`"
)]

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;

use crate::{Error, Result};

#[cfg(not(target_endian = "little"))]
compile_error!("the vector file is read in place as little-endian f32");

const MAGIC: &[u8; 4] = b"DKV1";
const HEADER: usize = 8;

pub(crate) struct VectorFile {
    path: PathBuf,
    file: File,
    dim: usize,
    rows: u32,
}

/// A read-only view of the committed rows.
#[derive(Clone)]
pub(crate) struct VectorView {
    map: Option<Arc<Mmap>>,
    dim: usize,
    rows: u32,
}

/// The bytes of a vector file holding `rows` rows of `dim`.
pub(crate) fn file_len(dim: usize, rows: u32) -> u64 {
    HEADER as u64 + u64::from(rows) * (dim * 4) as u64
}

impl VectorFile {
    /// Opens or creates the file, keeping exactly `committed_rows` rows.
    pub fn open(path: &Path, dim: usize, committed_rows: u32) -> Result<Self> {
        let io = Error::io(path);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(Error::io(path))?;
        let len = file.metadata().map_err(Error::io(path))?.len();
        if len == 0 {
            file.write_all(MAGIC).map_err(Error::io(path))?;
            file.write_all(&(dim as u32).to_le_bytes())
                .map_err(Error::io(path))?;
        } else {
            let mut header = [0u8; HEADER];
            std::io::Read::read_exact(&mut file, &mut header).map_err(io)?;
            let stored_dim = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
            if &header[..4] != MAGIC || stored_dim as usize != dim {
                return Err(Error::Corrupt {
                    path: path.to_path_buf(),
                    reason: format!("bad header (dimension {stored_dim}, expected {dim})"),
                });
            }
        }
        let want = file_len(dim, committed_rows);
        let have = file.metadata().map_err(Error::io(path))?.len();
        if have < want {
            return Err(Error::Corrupt {
                path: path.to_path_buf(),
                reason: format!("holds {have} bytes, the commit needs {want}"),
            });
        }
        if have > want {
            file.set_len(want).map_err(Error::io(path))?;
        }
        Ok(VectorFile {
            path: path.to_path_buf(),
            file,
            dim,
            rows: committed_rows,
        })
    }

    pub fn rows(&self) -> u32 {
        self.rows
    }

    /// Appends rows and syncs them; they become part of the shard only when the commit names them.
    pub fn append(&mut self, vectors: &[&[f32]]) -> Result<()> {
        let mut buf = Vec::with_capacity(vectors.len() * self.dim * 4);
        for v in vectors {
            debug_assert_eq!(v.len(), self.dim);
            for x in *v {
                buf.extend_from_slice(&x.to_le_bytes());
            }
        }
        let offset = HEADER as u64 + u64::from(self.rows) * (self.dim * 4) as u64;
        let io = Error::io(&self.path);
        std::io::Seek::seek(&mut self.file, std::io::SeekFrom::Start(offset))
            .and_then(|_| self.file.write_all(&buf))
            .and_then(|()| self.file.sync_data())
            .map_err(io)?;
        self.rows += vectors.len() as u32;
        Ok(())
    }

    /// Forgets rows appended after `rows` (a batch whose commit failed).
    pub fn truncate(&mut self, rows: u32) -> Result<()> {
        let len = HEADER as u64 + u64::from(rows) * (self.dim * 4) as u64;
        self.file.set_len(len).map_err(Error::io(&self.path))?;
        self.rows = rows;
        Ok(())
    }

    pub fn view(&self) -> Result<VectorView> {
        if self.rows == 0 {
            return Ok(VectorView {
                map: None,
                dim: self.dim,
                rows: 0,
            });
        }
        // SAFETY: the file belongs to this shard, which holds the only writer; rows below
        // `self.rows` are never rewritten while mapped (truncation only removes rows that no
        // view covers, and views are rebuilt after every commit).
        let map = unsafe { Mmap::map(&self.file) }.map_err(Error::io(&self.path))?;
        // Searches read rows at random (the `ef` candidates they re-score): without this, each
        // fault maps its neighbours too, and a million-row file ends up resident after a few
        // thousand queries although they touched a fraction of it. (Advice only; an error
        // leaves the map as it is.)
        let _ = map.advise(memmap2::Advice::Random);
        Ok(VectorView {
            map: Some(Arc::new(map)),
            dim: self.dim,
            rows: self.rows,
        })
    }
}

impl VectorView {
    pub fn rows(&self) -> u32 {
        self.rows
    }

    /// Row `ordinal` in place: the map is page-aligned and the header is 8 bytes, so rows are
    /// f32-aligned; the file is little-endian, as the machine must be (checked at compile time).
    pub fn row(&self, ordinal: u32) -> Option<&[f32]> {
        let map = self.map.as_ref()?;
        if ordinal >= self.rows {
            return None;
        }
        let start = HEADER + ordinal as usize * self.dim * 4;
        bytemuck::try_cast_slice(&map[start..start + self.dim * 4]).ok()
    }
}
