//! The HNSW graph over a shard's chunk vectors, held once, in the form searches walk.
//!
//! One structure is built, searched, saved and loaded: per node a fixed block of layer-0 links
//! (`1 + m0` slots: the count, then the neighbours' ordinals), upper-layer blocks for the few
//! nodes that reach above layer 0, and each node's level. Every slot is an `AtomicU32` read and
//! written with relaxed ordering, so searches walk the graph while the shard's graph worker
//! inserts into it (a reader may see a neighbour list mid-update: a valid list of ordinals, old
//! or new), and insertion runs on every core with a striped lock per node for its link updates —
//! no per-link allocation, no second copy. Vectors are read in place from the vector file's map.
//!
//! Each node also keeps its vector compressed to int8 (with its scale): walks and insertions
//! measure distances on those (a quarter of the bytes), and a search re-scores only the `ef`
//! candidates it found with the f32 rows of the vector file's map.
//!
//! The graph is a view: `upto` says which ordinals it covers (each either inserted or skipped as
//! deleted). Rows at or above `upto` — the un-graphed tail — are searched exactly by the caller's
//! snapshot until the worker has inserted them. Saved as one file (`save` / `load`), checked
//! structurally on load; a file that fails the check is rebuilt from the vectors.

use std::cell::RefCell;
use std::collections::BinaryHeap;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use rayon::prelude::*;

use crate::embed::{dot, dot_i8};
use crate::vectors::VectorView;

const RELAXED: Ordering = Ordering::Relaxed;
/// `levels[o]` of an ordinal that is not in the graph (deleted when it was reached, or beyond
/// `upto`).
const ABSENT: u8 = u8::MAX;
const MAX_LEVEL: u8 = 15;
/// `entry` when the graph is empty.
const NO_ENTRY: u64 = u64::MAX;
const LOCK_STRIPES: usize = 4096;
const MAGIC: &[u8; 4] = b"DKG1";

#[derive(Debug, Clone, Copy)]
pub(crate) struct GraphParams {
    /// Links per node on the upper layers; layer 0 keeps twice as many.
    pub m: usize,
    pub ef_construction: usize,
}

impl Default for GraphParams {
    fn default() -> Self {
        GraphParams {
            m: 24,
            ef_construction: 100,
        }
    }
}

/// A row compressed to int8: `x ≈ scale · q`.
struct Code {
    scale: f32,
    q: Box<[i8]>,
}

impl Code {
    fn of(v: &[f32]) -> Code {
        let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
        Code {
            scale,
            q: v.iter()
                .map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8)
                .collect(),
        }
    }

    /// Cosine distance between two compressed unit vectors.
    #[inline]
    fn distance(&self, other: &Code) -> f32 {
        1.0 - self.scale * other.scale * dot_i8(&self.q, &other.q) as f32
    }
}

pub(crate) struct Graph {
    dim: usize,
    m: usize,
    m0: usize,
    ef_construction: usize,
    /// Each ordinal's top layer, or `ABSENT`.
    levels: Box<[AtomicU8]>,
    /// Layer 0: per ordinal `[count, links; m0]`.
    links0: Box<[AtomicU32]>,
    /// Layers 1..=level of the nodes above layer 0: `level` blocks of `[count, links; m]`.
    upper: Box<[OnceLock<Box<[AtomicU32]>>]>,
    /// Each node's compressed row, set before the node is linked.
    codes: Box<[OnceLock<Code>]>,
    /// `(level << 32) | ordinal` of the entry point, or `NO_ENTRY`.
    entry: AtomicU64,
    /// Serialises raising the entry point.
    entry_lock: Mutex<()>,
    /// Striped locks for link updates (`ordinal % LOCK_STRIPES`).
    locks: Box<[Mutex<()>]>,
    /// Ordinals below this are covered (inserted or skipped); published after each batch.
    upto: AtomicU32,
    points: AtomicU32,
}

/// (distance, ordinal) ordered by distance then ordinal, for the heaps.
#[derive(Clone, Copy, PartialEq, Debug)]
struct Cand(f32, u32);
impl Eq for Cand {}
impl PartialOrd for Cand {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Cand {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0).then(self.1.cmp(&other.1))
    }
}

thread_local! {
    /// Per-thread visited stamps: `stamps[o] == generation` means visited in this search.
    static VISITED: RefCell<(Vec<u32>, u32)> = const { RefCell::new((Vec::new(), 0)) };
}

/// Runs `f` with a visited-stamp array of at least `len` slots and a fresh generation.
fn with_visited<R>(len: usize, f: impl FnOnce(&mut [u32], u32) -> R) -> R {
    VISITED.with_borrow_mut(|(stamps, generation)| {
        if stamps.len() < len {
            stamps.resize(len, 0);
        }
        *generation = generation.wrapping_add(1);
        if *generation == 0 {
            stamps.fill(0);
            *generation = 1;
        }
        f(stamps, *generation)
    })
}

/// The level of `ordinal`: geometric with ratio 1/m, from a hash of the ordinal (so a rebuild
/// or a re-insertion gives the same shape).
fn level_of(ordinal: u32, m: usize) -> u8 {
    let mut x = u64::from(ordinal) ^ 0x9E37_79B9_7F4A_7C15;
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    let u = ((x >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
    let level = (-u.ln() / (m as f64).ln()).floor();
    (level as u8).min(MAX_LEVEL)
}

impl Graph {
    pub fn new(params: GraphParams, dim: usize, capacity: u32) -> Graph {
        let m = params.m.max(2);
        let m0 = 2 * m;
        let capacity = capacity as usize;
        Graph {
            dim,
            m,
            m0,
            ef_construction: params.ef_construction.max(m),
            levels: (0..capacity).map(|_| AtomicU8::new(ABSENT)).collect(),
            links0: (0..capacity * (1 + m0))
                .map(|_| AtomicU32::new(0))
                .collect(),
            upper: (0..capacity).map(|_| OnceLock::new()).collect(),
            codes: (0..capacity).map(|_| OnceLock::new()).collect(),
            entry: AtomicU64::new(NO_ENTRY),
            entry_lock: Mutex::new(()),
            locks: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            upto: AtomicU32::new(0),
            points: AtomicU32::new(0),
        }
    }

    pub fn capacity(&self) -> u32 {
        self.levels.len() as u32
    }

    /// Ordinals below this are covered; the rest is the caller's exact tail.
    pub fn upto(&self) -> u32 {
        self.upto.load(Ordering::Acquire)
    }

    /// Nodes in the graph (deleted chunks included until a rebuild).
    pub fn len(&self) -> usize {
        self.points.load(RELAXED) as usize
    }

    /// A copy with room for `capacity` ordinals (taken by the only inserter, between batches).
    pub fn grown(&self, capacity: u32) -> Graph {
        let g = Graph::new(
            GraphParams {
                m: self.m,
                ef_construction: self.ef_construction,
            },
            self.dim,
            capacity.max(self.capacity()),
        );
        for (a, b) in self.levels.iter().zip(g.levels.iter()) {
            b.store(a.load(RELAXED), RELAXED);
        }
        for (a, b) in self.links0.iter().zip(g.links0.iter()) {
            b.store(a.load(RELAXED), RELAXED);
        }
        for (a, b) in self.upper.iter().zip(g.upper.iter()) {
            if let Some(blocks) = a.get() {
                let copy: Box<[AtomicU32]> = blocks
                    .iter()
                    .map(|x| AtomicU32::new(x.load(RELAXED)))
                    .collect();
                let _ = b.set(copy);
            }
        }
        for (a, b) in self.codes.iter().zip(g.codes.iter()) {
            if let Some(c) = a.get() {
                let _ = b.set(Code {
                    scale: c.scale,
                    q: c.q.clone(),
                });
            }
        }
        g.entry.store(self.entry.load(RELAXED), RELAXED);
        g.points.store(self.points.load(RELAXED), RELAXED);
        g.upto.store(self.upto(), Ordering::Release);
        g
    }

    fn entry(&self) -> Option<(u32, u8)> {
        match self.entry.load(Ordering::Acquire) {
            NO_ENTRY => None,
            e => Some((e as u32, (e >> 32) as u8)),
        }
    }

    /// The link block of `o` on `layer`: `[count, links…]`.
    fn block(&self, layer: u8, o: u32) -> &[AtomicU32] {
        let o = o as usize;
        if layer == 0 {
            let stride = 1 + self.m0;
            self.links0.get(o * stride..(o + 1) * stride).unwrap_or(&[])
        } else {
            let stride = 1 + self.m;
            let start = (usize::from(layer) - 1) * stride;
            self.upper
                .get(o)
                .and_then(OnceLock::get)
                .and_then(|b| b.get(start..start + stride))
                .unwrap_or(&[])
        }
    }

    /// Calls `f` on each neighbour of `o` on `layer`.
    #[inline]
    fn for_each_neighbour(&self, layer: u8, o: u32, mut f: impl FnMut(u32)) {
        let block = self.block(layer, o);
        let Some((count, links)) = block.split_first() else {
            return;
        };
        let n = (count.load(RELAXED) as usize).min(links.len());
        for l in &links[..n] {
            f(l.load(RELAXED));
        }
    }

    fn max_links(&self, layer: u8) -> usize {
        if layer == 0 { self.m0 } else { self.m }
    }

    /// Greedy descent from the entry point to `down_to`, then the closest node found. Only
    /// nodes below `limit` are stepped on: a node being inserted has its upper links before its
    /// layer-0 links, and a search that landed there would find nothing.
    fn descend(&self, dist: &impl Fn(u32) -> f32, down_to: u8, limit: u32) -> Option<Cand> {
        let (entry, top) = self.entry()?;
        let mut cur = Cand(dist(entry), entry);
        let mut layer = top;
        while layer > down_to {
            loop {
                let mut moved = false;
                self.for_each_neighbour(layer, cur.1, |n| {
                    if n >= limit {
                        return;
                    }
                    let d = dist(n);
                    if d < cur.0 {
                        cur = Cand(d, n);
                        moved = true;
                    }
                });
                if !moved {
                    break;
                }
            }
            layer -= 1;
        }
        Some(cur)
    }

    /// Beam search of width `ef` on `layer` from `start`; calls `keep` on every node that enters
    /// the beam. Returns the beam, nearest first.
    fn beam(
        &self,
        dist: &impl Fn(u32) -> f32,
        start: &[Cand],
        ef: usize,
        layer: u8,
        mut keep: impl FnMut(Cand),
    ) -> Vec<Cand> {
        with_visited(self.levels.len(), |stamps, g| {
            let mut frontier: BinaryHeap<std::cmp::Reverse<Cand>> = BinaryHeap::new();
            let mut beam: BinaryHeap<Cand> = BinaryHeap::with_capacity(ef + 1);
            for &c in start {
                if let Some(s) = stamps.get_mut(c.1 as usize) {
                    *s = g;
                }
                frontier.push(std::cmp::Reverse(c));
                beam.push(c);
                keep(c);
            }
            while beam.len() > ef {
                beam.pop();
            }
            while let Some(std::cmp::Reverse(c)) = frontier.pop() {
                if beam.len() >= ef && beam.peek().is_some_and(|w| c.0 > w.0) {
                    break;
                }
                self.for_each_neighbour(layer, c.1, |n| {
                    let Some(stamp) = stamps.get_mut(n as usize) else {
                        return;
                    };
                    if *stamp == g {
                        return;
                    }
                    *stamp = g;
                    let d = dist(n);
                    if beam.len() < ef || beam.peek().is_some_and(|w| d < w.0) {
                        let cand = Cand(d, n);
                        frontier.push(std::cmp::Reverse(cand));
                        beam.push(cand);
                        if beam.len() > ef {
                            beam.pop();
                        }
                        keep(cand);
                    }
                });
            }
            beam.into_sorted_vec()
        })
    }

    /// The `k` nearest ordinals below `upto` (cosine similarity, best first) that `allow`s:
    /// a beam of `ef` over the graph. The caller scans the rows from `upto` on exactly.
    pub fn search(
        &self,
        vectors: &VectorView,
        query: &[f32],
        k: usize,
        ef: usize,
        upto: u32,
        allow: &dyn Fn(u32) -> bool,
    ) -> Vec<(u32, f32)> {
        let code = Code::of(query);
        let dist = |o: u32| {
            if o >= vectors.rows() {
                return f32::INFINITY;
            }
            match self.codes.get(o as usize).and_then(OnceLock::get) {
                Some(c) => code.distance(c),
                None => vectors
                    .row(o)
                    .map_or(f32::INFINITY, |v| 1.0 - dot(query, v)),
            }
        };
        let ef = ef.max(k);
        let Some(start) = self.descend(&dist, 0, upto) else {
            return Vec::new();
        };
        let mut found: BinaryHeap<Cand> = BinaryHeap::with_capacity(ef + 1);
        self.beam(&dist, &[start], ef, 0, |c| {
            if c.1 < upto && c.0.is_finite() && allow(c.1) {
                found.push(c);
                if found.len() > ef {
                    found.pop();
                }
            }
        });
        // Re-scored with the f32 rows.
        let mut out: Vec<(u32, f32)> = found
            .into_iter()
            .filter_map(|Cand(_, o)| vectors.row(o).map(|v| (o, dot(query, v))))
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        out.truncate(k);
        out
    }

    /// hnswlib's neighbour heuristic: from candidates nearest first, keep one only when it is
    /// nearer to the new node than to every one already kept (spreads links across directions).
    fn select(&self, candidates: &[Cand], m: usize) -> Vec<Cand> {
        let mut kept: Vec<Cand> = Vec::with_capacity(m);
        for &c in candidates {
            if kept.len() >= m {
                break;
            }
            let Some(cc) = self.code(c.1) else { continue };
            let diverse = kept
                .iter()
                .all(|k| self.code(k.1).is_none_or(|kc| cc.distance(kc) >= c.0));
            if diverse {
                kept.push(c);
            }
        }
        kept
    }

    fn code(&self, o: u32) -> Option<&Code> {
        self.codes.get(o as usize).and_then(OnceLock::get)
    }

    fn lock(&self, o: u32) -> std::sync::MutexGuard<'_, ()> {
        let l = &self.locks[o as usize % LOCK_STRIPES];
        l.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write_links(&self, layer: u8, o: u32, links: &[u32]) {
        let block = self.block(layer, o);
        if let Some((count, slots)) = block.split_first() {
            let n = links.len().min(slots.len());
            for (s, &l) in slots.iter().zip(&links[..n]) {
                s.store(l, RELAXED);
            }
            count.store(n as u32, RELAXED);
        }
    }

    /// Links `o` into `n`'s list on `layer`, pruning with the heuristic when it is full.
    fn link_back(&self, layer: u8, n: u32, o: u32) {
        let _guard = self.lock(n);
        let max = self.max_links(layer);
        let mut current = Vec::with_capacity(max + 1);
        self.for_each_neighbour(layer, n, |x| current.push(x));
        if current.contains(&o) {
            return;
        }
        if current.len() < max {
            current.push(o);
            self.write_links(layer, n, &current);
            return;
        }
        let Some(nc) = self.code(n) else { return };
        current.push(o);
        let mut cands: Vec<Cand> = current
            .iter()
            .filter_map(|&x| self.code(x).map(|xc| Cand(nc.distance(xc), x)))
            .collect();
        cands.sort_unstable();
        let kept: Vec<u32> = self.select(&cands, max).into_iter().map(|c| c.1).collect();
        self.write_links(layer, n, &kept);
    }

    /// Inserts one node whose level and upper blocks are set.
    fn insert_one(&self, o: u32) {
        let Some(q) = self.code(o) else { return };
        let level = self.levels[o as usize].load(RELAXED);
        let dist = |x: u32| self.code(x).map_or(f32::INFINITY, |c| q.distance(c));
        let Some((_, top)) = self.entry() else {
            let _g = self.entry_lock.lock();
            if self.entry().is_none() {
                self.entry
                    .store((u64::from(level) << 32) | u64::from(o), Ordering::Release);
                return;
            }
            drop(_g);
            return self.insert_one(o);
        };
        let Some(mut start) = self.descend(&dist, level.min(top), u32::MAX) else {
            return;
        };
        let mut layer = level.min(top);
        loop {
            let beam: Vec<Cand> = self
                .beam(&dist, &[start], self.ef_construction, layer, |_| {})
                .into_iter()
                .filter(|c| c.1 != o)
                .collect();
            let chosen = self.select(&beam, self.max_links(layer));
            let links: Vec<u32> = chosen.iter().map(|c| c.1).collect();
            {
                let _guard = self.lock(o);
                self.write_links(layer, o, &links);
            }
            for &n in &links {
                self.link_back(layer, n, o);
            }
            if let Some(&nearest) = beam.first() {
                start = nearest;
            }
            if layer == 0 {
                break;
            }
            layer -= 1;
        }
        if level > top {
            let _g = self.entry_lock.lock();
            if self.entry().is_none_or(|(_, t)| level > t) {
                self.entry
                    .store((u64::from(level) << 32) | u64::from(o), Ordering::Release);
            }
        }
    }

    /// Covers ordinals `upto()..end`: inserts those `live` says are live, on every core, in
    /// steps of `step` so `stop` is checked between them; returns false when stopped.
    pub fn extend(
        &self,
        vectors: &VectorView,
        live: &dyn Fn(u32) -> bool,
        end: u32,
        stop: &dyn Fn() -> bool,
    ) -> bool {
        const STEP: u32 = 2048;
        let end = end.min(vectors.rows()).min(self.capacity());
        let mut from = self.upto();
        while from < end {
            if stop() {
                return false;
            }
            let to = (from + STEP).min(end);
            let batch: Vec<u32> = (from..to)
                .filter(|&o| live(o) && vectors.row(o).is_some_and(|v| v.len() == self.dim))
                .collect();
            batch.par_iter().for_each(|&o| {
                if let Some(v) = vectors.row(o) {
                    let _ = self.codes[o as usize].set(Code::of(v));
                }
            });
            for &o in &batch {
                let level = level_of(o, self.m);
                self.levels[o as usize].store(level, RELAXED);
                if level > 0 {
                    let blocks = (0..usize::from(level) * (1 + self.m))
                        .map(|_| AtomicU32::new(0))
                        .collect();
                    let _ = self.upper[o as usize].set(blocks);
                }
            }
            // The first node becomes the entry point alone; the rest go in parallel.
            let rest = match (self.entry(), batch.split_first()) {
                (None, Some((&first, rest))) => {
                    self.insert_one(first);
                    rest
                }
                _ => &batch[..],
            };
            rest.par_iter().for_each(|&o| self.insert_one(o));
            self.points.fetch_add(batch.len() as u32, RELAXED);
            self.upto.store(to, Ordering::Release);
            from = to;
        }
        true
    }

    /// Writes the graph to `path` (via a temporary file, synced, renamed).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let upto = self.upto();
        let tmp = path.with_extension("tmp");
        let file = std::fs::File::create(&tmp)?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let (entry, entry_level) = self
            .entry()
            .map_or((u32::MAX, u32::MAX), |(o, l)| (o, u32::from(l)));
        out.write_all(MAGIC)?;
        for x in [
            self.dim as u32,
            self.m as u32,
            self.ef_construction as u32,
            upto,
            entry,
            entry_level,
            self.points.load(RELAXED),
        ] {
            out.write_all(&x.to_le_bytes())?;
        }
        let levels: Vec<u8> = self.levels[..upto as usize]
            .iter()
            .map(|l| l.load(RELAXED))
            .collect();
        out.write_all(&levels)?;
        let stride = 1 + self.m0;
        for x in &self.links0[..upto as usize * stride] {
            out.write_all(&x.load(RELAXED).to_le_bytes())?;
        }
        for (o, &level) in levels.iter().enumerate() {
            if level != ABSENT && level > 0 {
                for x in self.upper[o].get().map_or(&[][..], |b| &b[..]) {
                    out.write_all(&x.load(RELAXED).to_le_bytes())?;
                }
            }
        }
        let missing = || std::io::Error::other("a node without its compressed row");
        for (o, &level) in levels.iter().enumerate() {
            if level != ABSENT {
                let c = self.codes[o].get().ok_or_else(missing)?;
                out.write_all(&c.scale.to_le_bytes())?;
                out.write_all(bytemuck::cast_slice(&c.q))?;
            }
        }
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(parent) = path.parent() {
            std::fs::File::open(parent)?.sync_all()?;
        }
        Ok(())
    }

    /// Reads a saved graph with room for `capacity` ordinals. `Err` names what is wrong: a
    /// damaged or foreign file is never searched (the caller rebuilds).
    pub fn load(path: &Path, dim: usize, capacity: u32) -> Result<Graph, String> {
        // Read in pieces straight into the graph: the file is never held whole in memory.
        let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
        let mut r = Source(std::io::BufReader::with_capacity(1 << 20, file));
        if r.take(4)? != MAGIC {
            return Err("not a graph file".into());
        }
        let head = r.u32s(7)?;
        let (stored_dim, m, ef_construction, upto, entry, entry_level, points) = (
            head[0], head[1], head[2], head[3], head[4], head[5], head[6],
        );
        if stored_dim as usize != dim {
            return Err(format!("dimension {stored_dim}, the shard's is {dim}"));
        }
        if !(2..=256).contains(&m) {
            return Err(format!("m = {m}"));
        }
        let g = Graph::new(
            GraphParams {
                m: m as usize,
                ef_construction: ef_construction as usize,
            },
            dim,
            capacity.max(upto),
        );
        let n = upto as usize;
        let levels = r.take(n)?;
        let stride = 1 + g.m0;
        for (o, &level) in levels.iter().enumerate() {
            if level != ABSENT && level > MAX_LEVEL {
                return Err(format!("node {o} at level {level}"));
            }
        }
        let check_block = |block: &[u32], max: usize| -> Result<(), String> {
            let count = block[0] as usize;
            if count > max {
                return Err(format!("a node with {count} links (at most {max})"));
            }
            match block[1..=count]
                .iter()
                .find(|&&x| x >= upto || levels[x as usize] == ABSENT)
            {
                Some(x) => Err(format!("a link to {x}, not a node")),
                None => Ok(()),
            }
        };
        const NODES_PER_READ: usize = 4096;
        for first in (0..n).step_by(NODES_PER_READ) {
            let count = NODES_PER_READ.min(n - first);
            let links0 = r.u32s(count * stride)?;
            for (i, block) in links0.chunks_exact(stride).enumerate() {
                let o = first + i;
                if levels[o] != ABSENT {
                    check_block(block, g.m0)?;
                } else if block[0] != 0 {
                    return Err(format!("links from {o}, not a node"));
                }
            }
            for (a, &b) in g.links0[first * stride..].iter().zip(&links0) {
                a.store(b, RELAXED);
            }
        }
        let ustride = 1 + g.m;
        for (o, &level) in levels.iter().enumerate() {
            if level != ABSENT && level > 0 {
                let blocks = r.u32s(usize::from(level) * ustride)?;
                for block in blocks.chunks_exact(ustride) {
                    check_block(block, g.m)?;
                }
                let _ = g.upper[o].set(blocks.into_iter().map(AtomicU32::new).collect());
            }
        }
        for (o, &level) in levels.iter().enumerate() {
            if level != ABSENT {
                let raw = r.take(4)?;
                let scale = f32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
                if !scale.is_finite() || scale <= 0.0 {
                    return Err(format!("node {o}: scale {scale}"));
                }
                let q: Box<[i8]> = bytemuck::cast_slice(&r.take(dim)?).into();
                let _ = g.codes[o].set(Code { scale, q });
            }
        }
        if !r.at_end()? {
            return Err("trailing bytes".into());
        }
        let live = levels.iter().filter(|&&l| l != ABSENT).count();
        if live != points as usize {
            return Err(format!("{live} nodes, the header says {points}"));
        }
        match (entry, entry_level) {
            (u32::MAX, u32::MAX) if live == 0 => {}
            (e, l) if e < upto && levels[e as usize] != ABSENT => {
                if l != u32::from(levels[e as usize]) {
                    return Err("the entry point's level".into());
                }
                g.entry.store((u64::from(l) << 32) | u64::from(e), RELAXED);
            }
            _ => return Err("no entry point".into()),
        }
        for (a, b) in g.levels.iter().zip(levels) {
            a.store(b, RELAXED);
        }
        g.points.store(points, RELAXED);
        g.upto.store(upto, Ordering::Release);
        Ok(g)
    }
}

struct Source(std::io::BufReader<std::fs::File>);

impl Source {
    fn take(&mut self, n: usize) -> Result<Vec<u8>, String> {
        let mut buf = vec![0u8; n];
        std::io::Read::read_exact(&mut self.0, &mut buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => "truncated".to_string(),
            _ => e.to_string(),
        })?;
        Ok(buf)
    }

    fn u32s(&mut self, n: usize) -> Result<Vec<u32>, String> {
        Ok(self
            .take(n.saturating_mul(4))?
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    fn at_end(&mut self) -> Result<bool, String> {
        let mut one = [0u8; 1];
        std::io::Read::read(&mut self.0, &mut one)
            .map(|read| read == 0)
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vectors::VectorFile;
    use rand::{Rng, SeedableRng};

    fn random_rows(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let mut v: Vec<f32> = (0..dim).map(|_| rng.random::<f32>() - 0.5).collect();
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.iter_mut().for_each(|x| *x /= norm);
                v
            })
            .collect()
    }

    fn file_of(dir: &Path, rows: &[Vec<f32>]) -> VectorFile {
        let mut f = VectorFile::open(&dir.join("v.f32"), rows[0].len(), 0).unwrap();
        let refs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
        f.append(&refs).unwrap();
        f
    }

    fn brute(rows: &[Vec<f32>], q: &[f32], k: usize, allow: impl Fn(u32) -> bool) -> Vec<u32> {
        let mut all: Vec<(f32, u32)> = rows
            .iter()
            .enumerate()
            .filter(|(i, _)| allow(*i as u32))
            .map(|(i, v)| (dot(q, v), i as u32))
            .collect();
        all.sort_by(|a, b| b.0.total_cmp(&a.0));
        all.into_iter().take(k).map(|(_, o)| o).collect()
    }

    #[test]
    fn built_in_parallel_it_finds_the_neighbours_and_skips_the_dead() {
        let tmp = tempfile::tempdir().unwrap();
        let rows = random_rows(5000, 32, 1);
        let view = file_of(tmp.path(), &rows).view().unwrap();
        let g = Graph::new(GraphParams::default(), 32, 6000);
        let dead = |o: u32| o % 7 == 3;
        assert!(g.extend(&view, &|o| !dead(o), 5000, &|| false));
        assert_eq!(g.upto(), 5000);
        assert_eq!(g.len(), (0..5000).filter(|&o| !dead(o)).count());
        let queries = random_rows(50, 32, 2);
        let mut found = 0;
        for q in &queries {
            let got = g.search(&view, q, 10, 64, 5000, &|_| true);
            assert!(
                got.iter().all(|(o, _)| !dead(*o)),
                "a skipped row in the graph"
            );
            let truth = brute(&rows, q, 10, |o| !dead(o));
            found += got.iter().filter(|(o, _)| truth.contains(o)).count();
        }
        let recall = found as f64 / 500.0;
        assert!(recall >= 0.95, "recall@10 = {recall}");
        // Rows at or above `upto` are never answered by the graph (the caller scans them).
        let q = &rows[4999];
        assert!(
            g.search(&view, q, 10, 64, 4000, &|_| true)
                .iter()
                .all(|(o, _)| *o < 4000)
        );
    }

    #[test]
    fn saved_and_loaded_it_answers_the_same_and_damage_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let rows = random_rows(3000, 16, 3);
        let view = file_of(tmp.path(), &rows).view().unwrap();
        let g = Graph::new(GraphParams::default(), 16, 3000);
        g.extend(&view, &|o| o != 17, 3000, &|| false);
        let path = tmp.path().join("g.dkg");
        g.save(&path).unwrap();
        let loaded = Graph::load(&path, 16, 4000).unwrap();
        assert_eq!(
            (loaded.upto(), loaded.len(), loaded.capacity()),
            (3000, 2999, 4000)
        );
        for q in random_rows(20, 16, 4) {
            assert_eq!(
                g.search(&view, &q, 10, 50, 3000, &|_| true),
                loaded.search(&view, &q, 10, 50, 3000, &|_| true)
            );
        }
        // A grown copy is the same graph with more room.
        let grown = loaded.grown(8000);
        assert_eq!(
            (grown.upto(), grown.len(), grown.capacity()),
            (3000, 2999, 8000)
        );
        let q = &rows[5];
        assert_eq!(
            grown.search(&view, q, 5, 50, 3000, &|_| true),
            g.search(&view, q, 5, 50, 3000, &|_| true)
        );

        let bytes = std::fs::read(&path).unwrap();
        let damaged = tmp.path().join("d.dkg");
        let refused = |b: &[u8]| {
            std::fs::write(&damaged, b).unwrap();
            Graph::load(&damaged, 16, 4000).err()
        };
        assert!(refused(&bytes[..bytes.len() - 3]).is_some(), "truncated");
        assert!(refused(b"DKG2").is_some(), "another format");
        assert!(
            Graph::load(&path, 32, 4000)
                .err()
                .unwrap()
                .contains("dimension")
        );
        // The first link of node 0 pointing past the graph; then at the skipped node 17.
        let link0 = 4 + 7 * 4 + 3000 + 4;
        for bad in [5000u32, 17] {
            let mut b = bytes.clone();
            b[link0..link0 + 4].copy_from_slice(&bad.to_le_bytes());
            let e = refused(&b).expect("a bad link is refused");
            assert!(e.contains("link"), "{e}");
        }
        let mut b = bytes.clone();
        b[link0 - 4..link0].copy_from_slice(&999u32.to_le_bytes());
        assert!(refused(&b).unwrap().contains("links"));
    }

    #[test]
    fn searches_run_while_rows_are_inserted() {
        let tmp = tempfile::tempdir().unwrap();
        let rows = random_rows(4000, 16, 5);
        let view = file_of(tmp.path(), &rows).view().unwrap();
        let g = Graph::new(GraphParams::default(), 16, 4000);
        g.extend(&view, &|_| true, 1000, &|| false);
        std::thread::scope(|s| {
            s.spawn(|| g.extend(&view, &|_| true, 4000, &|| false));
            for q in rows.iter().take(300) {
                let upto = g.upto();
                let got = g.search(&view, q, 5, 32, upto, &|_| true);
                assert!(got.iter().all(|(o, _)| *o < upto));
                assert!(!got.is_empty(), "upto {upto}");
            }
        });
        assert_eq!(g.upto(), 4000);
        // Stopped between steps: what was covered stays covered.
        let h = Graph::new(GraphParams::default(), 16, 4000);
        let calls = AtomicU32::new(0);
        let stop = || calls.fetch_add(1, RELAXED) >= 1;
        assert!(!h.extend(&view, &|_| true, 4000, &stop));
        assert_eq!(h.upto(), 2048);
    }
}
