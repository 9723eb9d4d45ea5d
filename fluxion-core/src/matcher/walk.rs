//! The order in which the `first` policy walks a vertex's children, kept
//! sorted between matches for vertices with many children.
//!
//! Fluxion's first-match walk visits children by the free units recorded
//! when a job last went through them (their whole capacity until then), then
//! newest first. Sorting a cluster's 10,000 nodes on every match costs far
//! more than the match itself, so wide vertices keep their children in an
//! ordered set that a weight change updates in O(log n).

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};

use crate::graph::{ResourceGraph, VertexId};
use crate::idhash::IdBuild;

/// Recorded first-match weights by vertex (see [`weight`]).
pub(crate) type Weights = HashMap<VertexId, u64, IdBuild>;

/// Vertices with fewer children than this are sorted on the fly.
const WIDE: usize = 64;

/// One child's place in the walk: weight, then id, both descending.
type Key = (Reverse<u64>, Reverse<u64>, VertexId);

/// Children of wide vertices in first-match walk order.
#[derive(Debug, Clone, Default)]
pub(crate) struct WalkOrder {
    /// Graph generation the sets were built for.
    generation: Option<u64>,
    by_parent: HashMap<VertexId, BTreeSet<Key>, IdBuild>,
}

/// The weight of `c` for the walk: the recorded one, or its whole capacity
/// of the last tracked type when no job went through it yet.
pub(crate) fn weight(g: &ResourceGraph, weights: &Weights, c: VertexId) -> u64 {
    // Weights are only ever recorded for inner vertices, so a leaf (most
    // vertices: cores, GPUs) skips the hash lookup.
    if g.children(c).is_empty() {
        return 0;
    }
    weights
        .get(&c)
        .copied()
        .unwrap_or_else(|| match g.tracked_types().last() {
            Some(&t) => g.subtree_total(c, t).unwrap_or(0),
            _ => 0,
        })
}

fn key(g: &ResourceGraph, weights: &Weights, c: VertexId) -> Key {
    let uniq = g.vertex(c).map_or(0, |x| x.uniq_id);
    (Reverse(weight(g, weights, c)), Reverse(uniq), c)
}

impl WalkOrder {
    /// Rebuilds the sets if the graph's shape changed since they were built.
    pub(crate) fn refresh(&mut self, g: &ResourceGraph, weights: &Weights) {
        if self.generation == Some(g.generation()) {
            return;
        }
        self.by_parent.clear();
        for v in g.vertices() {
            let kids = g.children(v);
            if kids.len() >= WIDE {
                let set = kids.iter().map(|&c| key(g, weights, c)).collect();
                self.by_parent.insert(v, set);
            }
        }
        self.generation = Some(g.generation());
    }

    /// Records that `c`'s weight changes from what `weights` says now to
    /// `new` (call before updating `weights`).
    pub(crate) fn reweigh(&mut self, g: &ResourceGraph, weights: &Weights, c: VertexId, new: u64) {
        let Some(set) = g.parent(c).and_then(|p| self.by_parent.get_mut(&p)) else {
            return;
        };
        let old = key(g, weights, c);
        if set.remove(&old) {
            set.insert((Reverse(new), old.1, c));
        }
    }

    /// `u`'s children in walk order, if `u` is wide and the sets are current.
    pub(crate) fn children<'a>(
        &'a self,
        g: &ResourceGraph,
        u: VertexId,
    ) -> Option<impl Iterator<Item = VertexId> + 'a> {
        if self.generation != Some(g.generation()) {
            return None;
        }
        self.by_parent.get(&u).map(|s| s.iter().map(|k| k.2))
    }
}
