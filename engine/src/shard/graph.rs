//! The shard's graph worker: one thread per shard that brings the HNSW graph up to the vector
//! file after each commit (new rows are searched exactly until then), grows it, rebuilds it when
//! deleted chunks weigh too much, and saves it past a threshold so the next open loads it.
//!
//! The current graph lives in the published snapshot; a graph the worker replaces (grown or
//! rebuilt) is swapped in under the snapshot lock, which `Shard::publish` also takes, so a
//! commit never publishes an older graph than the worker's.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};

use serde::Serialize;

use super::{CHECKPOINT_EVERY, GRAPH_META, GraphMeta, REBUILD_DEAD_SHARE, Shard, Snapshot};
use crate::hnsw::{Graph, GraphParams};
use crate::{Error, Result};

/// Shared between a shard and its worker thread.
pub(super) struct GraphShared {
    dir: PathBuf,
    snapshot: Arc<RwLock<Arc<Snapshot>>>,
    /// Held while the graph is extended, replaced or saved; the rows of the last save.
    work: Mutex<u32>,
    /// Set when there may be rows to insert; the worker waits on `wake`.
    pending: Mutex<bool>,
    wake: Condvar,
    stop: AtomicBool,
}

pub(super) struct GraphWorker {
    shared: Arc<GraphShared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl GraphWorker {
    pub fn start(
        dir: &Path,
        snapshot: Arc<RwLock<Arc<Snapshot>>>,
        saved_rows: u32,
    ) -> Result<GraphWorker> {
        let shared = Arc::new(GraphShared {
            dir: dir.to_path_buf(),
            snapshot,
            work: Mutex::new(saved_rows),
            pending: Mutex::new(true),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let worker = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("dartmouth-graph".into())
            .spawn(move || worker.run())
            .map_err(Error::io(dir))?;
        Ok(GraphWorker {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// There are new rows: wake the worker.
    pub fn notify(&self) {
        *lock(&self.shared.pending) = true;
        self.shared.wake.notify_one();
    }

    /// Brings the graph up to the vector file and saves it, in the caller's thread.
    pub fn checkpoint(&self) -> Result<()> {
        self.shared.catch_up(true)
    }

    /// Holds off every extension, replacement and save of the graph while the guard lives.
    pub fn hold(&self) -> std::sync::MutexGuard<'_, u32> {
        lock(&self.shared.work)
    }

    /// Stops the worker (between insertion steps) and waits for it.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.wake.notify_one();
        if let Some(t) = lock(&self.thread).take() {
            let _ = t.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl GraphShared {
    fn run(&self) {
        loop {
            {
                let mut pending = lock(&self.pending);
                while !*pending && !self.stopped() {
                    pending = self
                        .wake
                        .wait(pending)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
                *pending = false;
            }
            if self.stopped() {
                return;
            }
            if let Err(e) = self.catch_up(false) {
                tracing::warn!(dir = %self.dir.display(), error = %e, "graph checkpoint failed");
            }
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    fn current(&self) -> Arc<Snapshot> {
        Arc::clone(&self.snapshot.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Publishes `graph` in place of the snapshot's.
    fn swap(&self, graph: Graph) {
        let mut slot = self.snapshot.write().unwrap_or_else(|p| p.into_inner());
        *slot = Arc::new(slot.with_graph(Arc::new(graph)));
    }

    /// Inserts every row the latest snapshot holds, growing or rebuilding the graph as needed;
    /// saves it when `save` or when enough rows came since the last save.
    fn catch_up(&self, save: bool) -> Result<()> {
        let mut saved = lock(&self.work);
        let stop = || self.stopped();
        loop {
            let snap = self.current();
            let graph = &snap.graph;
            let rows = snap.vectors.rows();
            let covered = graph.upto().min(rows);
            let live_covered = snap.live.range_cardinality(..covered) as usize;
            let dead = graph.len().saturating_sub(live_covered);
            if graph.len() >= 1000 && dead as f64 > REBUILD_DEAD_SHARE * graph.len() as f64 {
                let fresh = Graph::new(GraphParams::default(), snap.model.dim, headroom(rows));
                if !fresh.extend(&snap.vectors, &|o| snap.live.contains(o), rows, &stop) {
                    return Ok(());
                }
                self.swap(fresh);
                continue;
            }
            if rows > graph.capacity() {
                self.swap(graph.grown(headroom(rows)));
                continue;
            }
            if graph.upto() < rows {
                if !graph.extend(&snap.vectors, &|o| snap.live.contains(o), rows, &stop) {
                    return Ok(());
                }
                continue;
            }
            let upto = graph.upto();
            let due = upto.saturating_sub(*saved) >= CHECKPOINT_EVERY
                || (save && (upto != *saved || read_graph_meta(&self.dir).is_none()));
            if due && !self.stopped() {
                save_graph(&self.dir, graph)?;
                *saved = upto;
            }
            return Ok(());
        }
    }
}

/// Room for `rows` and half as many again: a growing graph is copied about log1.5(n) times.
fn headroom(rows: u32) -> u32 {
    rows.saturating_add(rows / 2).saturating_add(1024)
}

/// Room for what a loaded graph covers and an eighth more (its slots are resident memory).
fn room_to_load(rows: u32) -> u32 {
    rows.saturating_add(rows / 8).saturating_add(1024)
}

fn save_graph(dir: &Path, graph: &Graph) -> Result<()> {
    let graph_dir = dir.join("graph");
    std::fs::create_dir_all(&graph_dir).map_err(Error::io(&graph_dir))?;
    let rows = graph.upto();
    let basename = format!("g{rows}.dkg");
    let path = graph_dir.join(&basename);
    graph.save(&path).map_err(Error::io(&path))?;
    write_json_atomic(
        &dir.join(GRAPH_META),
        &GraphMeta {
            basename: basename.clone(),
            rows,
        },
    )?;
    // Files of earlier saves (and of earlier formats) go.
    if let Ok(entries) = std::fs::read_dir(&graph_dir) {
        for e in entries.flatten() {
            if e.file_name().to_str() != Some(basename.as_str()) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    Ok(())
}

pub(super) fn read_graph_meta(dir: &Path) -> Option<GraphMeta> {
    let raw = std::fs::read(dir.join(GRAPH_META)).ok()?;
    serde_json::from_slice(&raw).ok()
}

/// The saved graph with room for `rows`, and the rows it covers; an empty graph (rebuilt by
/// the worker, the rows searched exactly meanwhile) when there is none or it is damaged.
pub(super) fn load_graph(dir: &Path, dim: usize, rows: u32) -> (Graph, u32) {
    if let Some(meta) = read_graph_meta(dir)
        && meta.rows <= rows
    {
        let path = dir.join("graph").join(&meta.basename);
        match Graph::load(&path, dim, room_to_load(rows)) {
            Ok(g) if g.upto() == meta.rows => return (g, meta.rows),
            Ok(_) => {
                tracing::warn!(path = %path.display(), "graph file does not match graph.json; rebuilding")
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "graph file unreadable; rebuilding")
            }
        }
    }
    (Graph::new(GraphParams::default(), dim, headroom(rows)), 0)
}

impl Shard {
    /// Brings the graph up to every committed row and saves it, so the next open loads it
    /// instead of rebuilding; rebuilds it first when deleted chunks make up too much of it.
    pub fn checkpoint(&self) -> Result<()> {
        self.graph_worker.checkpoint()
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
