//! The HNSW graph's checkpoints: written at commits past a threshold (rebuilt first when
//! deleted chunks weigh too much), loaded on open and brought up to the vector file.

use std::path::Path;
use std::sync::Arc;

use roaring::RoaringBitmap;
use serde::Serialize;

use super::{GRAPH_META, GraphMeta, REBUILD_DEAD_SHARE, Shard, WriterState};
use crate::ann::{Ann, AnnParams};
use crate::vectors::VectorView;
use crate::{Error, Result};

impl Shard {
    /// Writes the HNSW graph to disk so the next open loads instead of rebuilding; rebuilds the
    /// graph first when deleted chunks make up too much of it.
    pub fn checkpoint(&self) -> Result<()> {
        let mut w = self.lock_writer()?;
        self.checkpoint_locked(&mut w)
    }

    pub(super) fn checkpoint_locked(&self, w: &mut WriterState) -> Result<()> {
        let snap = self.snapshot();
        let points = w.ann.len();
        let dead = points.saturating_sub(snap.live.len() as usize);
        if points > 0 && dead as f64 > REBUILD_DEAD_SHARE * points as f64 {
            w.ann = Arc::new(build_graph(&snap.vectors, &snap.live));
            self.publish(w)?;
        }
        let rows = w.vectors.rows();
        if rows == w.graph_rows && self.dir.join(GRAPH_META).exists() {
            return Ok(());
        }
        let graph_dir = self.dir.join("graph");
        std::fs::create_dir_all(&graph_dir).map_err(Error::io(&graph_dir))?;
        let basename = format!("g{rows}");
        w.ann.dump(&graph_dir, &basename)?;
        let old = read_graph_meta(&self.dir);
        write_json_atomic(
            &self.dir.join(GRAPH_META),
            &GraphMeta {
                basename: basename.clone(),
                rows,
            },
        )?;
        if let Some(old) = old
            && old.basename != basename
        {
            for ext in ["hnsw.graph", "hnsw.data"] {
                let _ = std::fs::remove_file(graph_dir.join(format!("{}.{ext}", old.basename)));
            }
        }
        w.graph_rows = rows;
        Ok(())
    }
}

pub(super) fn read_graph_meta(dir: &Path) -> Option<GraphMeta> {
    let raw = std::fs::read(dir.join(GRAPH_META)).ok()?;
    serde_json::from_slice(&raw).ok()
}

/// Loads the checkpointed graph and inserts what came after it; rebuilds when there is none.
/// Returns the graph and the number of vector rows the on-disk checkpoint covers.
pub(super) fn load_graph(dir: &Path, vectors: &VectorView, live: &RoaringBitmap) -> (Ann, u32) {
    if let Some(meta) = read_graph_meta(dir)
        && meta.rows <= vectors.rows()
        && let Some(ann) = Ann::load(&dir.join("graph"), &meta.basename)
    {
        insert_rows(&ann, vectors, live, meta.rows..vectors.rows());
        return (ann, meta.rows);
    }
    (build_graph(vectors, live), 0)
}

pub(super) fn build_graph(vectors: &VectorView, live: &RoaringBitmap) -> Ann {
    let ann = Ann::new(AnnParams::default(), live.len() as usize);
    insert_rows(&ann, vectors, live, 0..vectors.rows());
    ann
}

pub(super) fn insert_rows(
    ann: &Ann,
    vectors: &VectorView,
    live: &RoaringBitmap,
    rows: std::ops::Range<u32>,
) {
    const BATCH: usize = 4096;
    let ordinals: Vec<u32> = rows.filter(|o| live.contains(*o)).collect();
    for batch in ordinals.chunks(BATCH) {
        let data: Vec<Vec<f32>> = batch
            .iter()
            .map(|o| {
                let mut v = Vec::new();
                vectors.read(*o, &mut v);
                v
            })
            .collect();
        let rows: Vec<(&[f32], usize)> = data
            .iter()
            .zip(batch)
            .map(|(v, o)| (v.as_slice(), *o as usize))
            .collect();
        ann.insert(&rows);
    }
}

pub(super) fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::invalid(e.to_string()))?;
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(parent) = path.parent() {
            std::fs::File::open(parent)?.sync_all()?;
        }
        Ok(())
    };
    write().map_err(Error::io(path))
}
