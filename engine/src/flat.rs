//! A read-only, flat copy of the HNSW graph and the search over it.
//!
//! hnsw_rs builds and persists the graph; searching it through hnsw_rs costs a `HashMap` insert
//! of an `Arc`'d point and an `Arc` allocation per visited node, which made our ANN three times
//! slower than hnswlib at equal recall. `FlatGraph` copies the adjacency into plain arrays indexed
//! by ordinal (layer 0 as CSR, upper layers as small maps) and searches it with a reusable
//! visited-stamp array, reading vectors in place from the vector file's map.
//!
//! The copy is taken when a snapshot is published and the graph has grown by more than
//! `RECOPY_ROWS` rows since the last copy (or was rebuilt); rows added to the graph after the copy
//! (at most `RECOPY_ROWS`) are searched exactly and merged, so recall never drops for them.

use std::cell::RefCell;
use std::collections::{BinaryHeap, HashMap};

use crate::ann::Ann;
use crate::embed::dot;
use crate::vectors::VectorView;

/// Rows the graph may grow by before the copy is refreshed.
pub(crate) const RECOPY_ROWS: u32 = 4096;

#[derive(Default)]
pub(crate) struct FlatGraph {
    /// Ordinals at or above this were added after the copy (searched exactly).
    pub upto: u32,
    entry: Option<u32>,
    /// Layer-0 neighbours of ordinal `o`: `links[offsets[o]..offsets[o + 1]]`.
    offsets: Vec<u32>,
    links: Vec<u32>,
    /// Layers 1.. : ordinal -> neighbours (few nodes live there).
    upper: Vec<HashMap<u32, Vec<u32>>>,
}

/// (distance, ordinal) ordered by distance then ordinal, for the heaps.
#[derive(Clone, Copy, PartialEq)]
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

impl FlatGraph {
    /// Copies `ann`, which holds rows `0..rows` of the vector file.
    pub fn copy(ann: &Ann, rows: u32) -> FlatGraph {
        let (points, entry) = ann.adjacency();
        let mut degree = vec![0u32; rows as usize + 1];
        let mut upper: Vec<HashMap<u32, Vec<u32>>> = Vec::new();
        let mut layer0: Vec<(u32, Vec<u32>)> = Vec::with_capacity(points.len());
        for (ordinal, layers) in points {
            if ordinal >= rows {
                continue;
            }
            let mut layers = layers.into_iter();
            let base = layers.next().unwrap_or_default();
            degree[ordinal as usize] = base.len() as u32;
            layer0.push((ordinal, base));
            for (i, links) in layers.enumerate() {
                if links.is_empty() {
                    continue;
                }
                if upper.len() <= i {
                    upper.push(HashMap::new());
                }
                upper[i].insert(ordinal, links);
            }
        }
        let mut offsets = Vec::with_capacity(rows as usize + 1);
        let mut total = 0u32;
        for d in &degree[..rows as usize] {
            offsets.push(total);
            total += d;
        }
        offsets.push(total);
        let mut links = vec![0u32; total as usize];
        for (ordinal, base) in layer0 {
            let at = offsets[ordinal as usize] as usize;
            links[at..at + base.len()].copy_from_slice(&base);
        }
        FlatGraph {
            upto: rows,
            entry: entry.filter(|&e| e < rows),
            offsets,
            links,
            upper,
        }
    }

    fn neighbours(&self, layer: usize, o: u32) -> &[u32] {
        if layer == 0 {
            let i = o as usize;
            match (self.offsets.get(i), self.offsets.get(i + 1)) {
                (Some(&a), Some(&b)) => &self.links[a as usize..b as usize],
                _ => &[],
            }
        } else {
            self.upper
                .get(layer - 1)
                .and_then(|m| m.get(&o))
                .map_or(&[], Vec::as_slice)
        }
    }

    /// The `k` nearest ordinals (cosine similarity, best first) among those `allow`s: a beam of
    /// `ef` over the copied graph, plus an exact pass over rows added since the copy.
    pub fn search(
        &self,
        vectors: &VectorView,
        query: &[f32],
        k: usize,
        ef: usize,
        allow: &dyn Fn(u32) -> bool,
    ) -> Vec<(u32, f32)> {
        let dist = |o: u32| {
            vectors
                .row(o)
                .map_or(f32::INFINITY, |v| 1.0 - dot(query, v))
        };
        let ef = ef.max(k);
        let mut found: BinaryHeap<Cand> = BinaryHeap::with_capacity(ef + 1);
        if let Some(entry) = self.entry {
            // Greedy descent through the upper layers.
            let mut cur = Cand(dist(entry), entry);
            for layer in (1..=self.upper.len()).rev() {
                loop {
                    let mut moved = false;
                    for &n in self.neighbours(layer, cur.1) {
                        let d = dist(n);
                        if d < cur.0 {
                            cur = Cand(d, n);
                            moved = true;
                        }
                    }
                    if !moved {
                        break;
                    }
                }
            }
            VISITED.with_borrow_mut(|(stamps, generation)| {
                if stamps.len() < self.upto as usize {
                    stamps.resize(self.upto as usize, 0);
                }
                *generation = generation.wrapping_add(1);
                if *generation == 0 {
                    stamps.fill(0);
                    *generation = 1;
                }
                let g = *generation;
                // Beam search on layer 0: `frontier` is a min-heap of nodes to expand, `beam`
                // the best `ef` seen (max-heap); only allowed nodes enter `found`.
                let mut frontier: BinaryHeap<std::cmp::Reverse<Cand>> = BinaryHeap::new();
                let mut beam: BinaryHeap<Cand> = BinaryHeap::with_capacity(ef + 1);
                stamps[cur.1 as usize] = g;
                frontier.push(std::cmp::Reverse(cur));
                beam.push(cur);
                if allow(cur.1) {
                    found.push(cur);
                }
                while let Some(std::cmp::Reverse(c)) = frontier.pop() {
                    if beam.len() >= ef && beam.peek().is_some_and(|w| c.0 > w.0) {
                        break;
                    }
                    for &n in self.neighbours(0, c.1) {
                        let Some(stamp) = stamps.get_mut(n as usize) else {
                            continue;
                        };
                        if *stamp == g {
                            continue;
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
                            if allow(n) {
                                found.push(cand);
                                if found.len() > ef {
                                    found.pop();
                                }
                            }
                        }
                    }
                }
            });
        }
        // Rows added after the copy.
        for o in self.upto..vectors.rows() {
            if allow(o) {
                let cand = Cand(dist(o), o);
                if found.len() < ef || found.peek().is_some_and(|w| cand < *w) {
                    found.push(cand);
                    if found.len() > ef {
                        found.pop();
                    }
                }
            }
        }
        let mut out: Vec<(u32, f32)> = found
            .into_sorted_vec()
            .into_iter()
            .map(|Cand(d, o)| (o, 1.0 - d))
            .collect();
        out.truncate(k);
        out
    }
}
