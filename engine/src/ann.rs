//! The HNSW graph (hnsw_rs) over a shard's chunk vectors.
//!
//! The graph is a view: the vector file is the truth. A checkpoint dumps the graph; on open it is
//! loaded and the vectors appended since are inserted. A graph that cannot be loaded is rebuilt
//! from the vector file. Deleted chunks stay in the graph as tombstones, filtered at search time,
//! until a checkpoint rebuilds a graph that carries too many.

use std::path::Path;

use hnsw_rs::anndists::dist::Distance;
use hnsw_rs::prelude::{AnnT, Hnsw, HnswIo};

use crate::embed::dot;
use crate::{Error, Result};

/// Cosine distance for L2-normalised vectors: `1 - dot`, clamped at 0. (anndists' `DistDot`
/// asserts `1 - dot >= 0`, which rounding breaks for near-identical vectors.)
#[derive(Default, Clone, Copy)]
pub(crate) struct CosineDistance;

/// A point's ordinal and its neighbours' ordinals on each layer, from layer 0.
pub(crate) type PointLinks = (u32, Vec<Vec<u32>>);

impl Distance<f32> for CosineDistance {
    fn eval(&self, va: &[f32], vb: &[f32]) -> f32 {
        (1.0 - dot(va, vb)).max(0.0)
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct AnnParams {
    /// Links per node (hnsw_rs `max_nb_connection`).
    pub m: usize,
    pub ef_construction: usize,
}

impl Default for AnnParams {
    fn default() -> Self {
        AnnParams {
            m: 24,
            ef_construction: 200,
        }
    }
}

const MAX_LAYER: usize = 16;

pub(crate) struct Ann {
    graph: Hnsw<'static, f32, CosineDistance>,
}

impl Ann {
    pub fn new(params: AnnParams, capacity: usize) -> Self {
        Ann {
            graph: Hnsw::new(
                params.m,
                capacity.max(1024),
                MAX_LAYER,
                params.ef_construction,
                CosineDistance,
            ),
        }
    }

    pub fn len(&self) -> usize {
        self.graph.get_nb_point()
    }

    /// Inserts `(vector, ordinal)` pairs using all cores.
    pub fn insert(&self, rows: &[(&[f32], usize)]) {
        match rows {
            [] => {}
            [one] => self.graph.insert_slice(*one),
            many => self.graph.parallel_insert_slice(&many.to_vec()),
        }
    }

    /// Every point as (ordinal, neighbour ordinals per layer from 0), and the entry point (a
    /// point of the top layer), for `FlatGraph::copy`.
    pub fn adjacency(&self) -> (Vec<PointLinks>, Option<u32>) {
        if self.graph.get_nb_point() == 0 {
            // hnsw_rs's point iterator unwraps the entry point.
            return (Vec::new(), None);
        }
        let mut entry: Option<(u8, u32)> = None;
        let points = self
            .graph
            .get_point_indexation()
            .into_iter()
            .map(|p| {
                let ordinal = p.get_origin_id() as u32;
                let level = p.get_point_id().0;
                if entry.is_none_or(|(l, _)| level > l) {
                    entry = Some((level, ordinal));
                }
                let layers = p
                    .get_neighborhood_id()
                    .into_iter()
                    .take(usize::from(level) + 1)
                    .map(|layer| layer.into_iter().map(|n| n.d_id as u32).collect())
                    .collect();
                (ordinal, layers)
            })
            .collect();
        (points, entry.map(|(_, o)| o))
    }

    /// Writes `<basename>.hnsw.graph` and `<basename>.hnsw.data` into `dir`.
    pub fn dump(&self, dir: &Path, basename: &str) -> Result<()> {
        self.graph
            .file_dump(dir, basename)
            .map(|_| ())
            .map_err(|e| Error::Corrupt {
                path: dir.join(basename),
                reason: format!("cannot write the HNSW graph: {e}"),
            })
    }

    /// Loads a dump; `None` when it is missing or unreadable (the caller rebuilds).
    pub fn load(dir: &Path, basename: &str) -> Option<Self> {
        if !dir.join(format!("{basename}.hnsw.graph")).is_file() {
            return None;
        }
        // hnsw_rs ties the graph's lifetime to its loader and asserts on malformed files. The
        // loader is a few paths and options; it is leaked once per load so the graph can be
        // 'static, and a panic on a damaged file becomes a rebuild.
        let loader: &'static mut HnswIo = Box::leak(Box::new(HnswIo::new(dir, basename)));
        let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let loader = loader;
            loader.load_hnsw::<f32, CosineDistance>()
        }));
        match loaded {
            Ok(Ok(graph)) => Some(Ann { graph }),
            Ok(Err(e)) => {
                tracing::warn!(dir = %dir.display(), error = %e, "hnsw graph unreadable; rebuilding");
                None
            }
            Err(_) => {
                tracing::warn!(dir = %dir.display(), "hnsw graph damaged; rebuilding");
                None
            }
        }
    }
}
