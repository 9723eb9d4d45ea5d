//! The order in which the `first` policy walks a vertex's children, kept
//! sorted between matches for vertices with many children.
//!
//! Fluxion's first-match walk visits children by a weight, then newest
//! first. A child no job went through yet weighs the most; a job going
//! through it records its free units of one type (see [`WeightTypes`]) as
//! Fluxion's subtree plans count them ([`PlannedUse`]), which is not the
//! graph's exact count: a socket held for a slot that asked for 16 of its
//! 18 cores still shows 2 free cores there. Sorting a cluster's 10,000
//! nodes on every match costs far more than the match itself, so wide
//! vertices keep their children in an ordered set that a weight change
//! updates in O(log n).

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};

use smallvec::SmallVec;

use super::Emit;
use super::search::Shape;
use crate::graph::{PruneFilters, ResourceGraph, TypeId, VertexId};
use crate::idhash::IdBuild;
use crate::planner::JobId;

/// Recorded first-match weights by vertex (see [`weight`]).
pub(crate) type Weights = HashMap<VertexId, u64, IdBuild>;

/// Vertices with fewer children than this are sorted on the fly.
const WIDE: usize = 64;

/// The type Fluxion's subtree plans count nodes by even when the prune
/// filters do not name it: its first-match weights behave as if `ALL:node`
/// were always among the filters.
const IMPLICIT_TYPE: &str = "node";

/// One child's place in the walk: weight, then id, both descending.
type Key = (Reverse<u64>, Reverse<u64>, VertexId);

/// The weight of `c` for the walk: the recorded one, or the most possible
/// when no job went through it yet.
pub(crate) fn weight(g: &ResourceGraph, weights: &Weights, c: VertexId) -> u64 {
    // Weights are only ever recorded for inner vertices, so a leaf (most
    // vertices: cores, GPUs) skips the hash lookup.
    if g.children(c).is_empty() {
        return u64::MAX;
    }
    weights.get(&c).copied().unwrap_or(u64::MAX)
}

fn key(g: &ResourceGraph, weights: &Weights, c: VertexId) -> Key {
    let uniq = g.vertex(c).map_or(0, |x| x.uniq_id);
    (Reverse(weight(g, weights, c)), Reverse(uniq), c)
}

/// Which type a vertex's weight counts, by the vertex's type.
///
/// Fluxion gives each vertex a subtree plan over the filter types that
/// apply to it: those anchored at its type, then those anchored at `ALL`
/// except its own type, each group in name order. The weight counts the
/// last of them. A rack under `ALL:core` (and the implicit `ALL:node`) is
/// weighed by free nodes, a node by free cores.
#[derive(Debug, Clone, Default)]
pub(crate) struct WeightTypes {
    /// Indexed by type id.
    by_kind: Vec<Option<TypeId>>,
    /// Every type some plan counts; [`PlannedUse`] tallies each of them.
    counted: Vec<TypeId>,
    /// Units of counted types the graph's aggregates do not track, below
    /// each vertex that has some.
    untracked: HashMap<(VertexId, TypeId), u64>,
}

impl WeightTypes {
    /// Resolves the rules of `g`'s prune filters against its types.
    fn new(g: &ResourceGraph) -> Self {
        let spec = g.prune_filters();
        let mut any: BTreeSet<&str> = BTreeSet::new();
        let mut anchored: Vec<(&str, &str)> = Vec::new();
        for r in spec.rules() {
            match &r.anchor {
                None => {
                    any.insert(&r.target);
                }
                Some(a) => anchored.push((a, &r.target)),
            }
        }
        if g.type_id(IMPLICIT_TYPE).is_some() {
            any.insert(IMPLICIT_TYPE);
        }
        let mut counted: Vec<TypeId> = any.iter().filter_map(|n| g.type_id(n)).collect();
        for &(_, t) in &anchored {
            if let Some(t) = g.type_id(t)
                && !counted.contains(&t)
            {
                counted.push(t);
            }
        }
        let by_kind = (0..g.type_count())
            .map(|i| {
                let kind = g.type_name(TypeId(i as u16));
                let from_any = any.iter().rev().find(|&&t| t != kind);
                let own = anchored
                    .iter()
                    .filter(|&&(a, t)| a == kind && !any.contains(t))
                    .map(|&(_, t)| t)
                    .max();
                from_any.copied().or(own).and_then(|t| g.type_id(t))
            })
            .collect();
        let mut untracked = HashMap::new();
        let tracked = g.tracked_types();
        for &t in counted.iter().filter(|t| !tracked.contains(t)) {
            for v in g.vertices() {
                let Some(x) = g.vertex(v).filter(|x| x.kind == t) else {
                    continue;
                };
                for a in g.ancestors(v) {
                    *untracked.entry((a, t)).or_insert(0) += x.size;
                }
            }
        }
        WeightTypes {
            by_kind,
            counted,
            untracked,
        }
    }

    /// The type `v`'s weight counts, if any.
    pub(crate) fn of(&self, g: &ResourceGraph, v: VertexId) -> Option<TypeId> {
        let kind = g.vertex(v)?.kind;
        self.by_kind.get(kind.0 as usize).copied().flatten()
    }

    /// All units of type `t` strictly below `v`, whatever their state.
    pub(crate) fn total_below(&self, g: &ResourceGraph, v: VertexId, t: TypeId) -> u64 {
        if !g.tracked_types().contains(&t) {
            return self.untracked.get(&(v, t)).copied().unwrap_or(0);
        }
        let own = g.vertex(v).filter(|x| x.kind == t).map_or(0, |x| x.size);
        g.subtree_total(v, t).unwrap_or(0).saturating_sub(own)
    }
}

/// Children of wide vertices in first-match walk order.
#[derive(Debug, Clone, Default)]
pub(crate) struct WalkOrder {
    /// Graph generation and prune filters the sets were built for.
    built_for: Option<(u64, PruneFilters)>,
    by_parent: HashMap<VertexId, BTreeSet<Key>, IdBuild>,
    types: WeightTypes,
}

impl WalkOrder {
    /// Rebuilds the sets if the graph's shape or filters changed since they
    /// were built.
    pub(crate) fn refresh(&mut self, g: &ResourceGraph, weights: &Weights) {
        if self
            .built_for
            .as_ref()
            .is_some_and(|(gen_, spec)| *gen_ == g.generation() && spec == g.prune_filters())
        {
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
        self.types = WeightTypes::new(g);
        self.built_for = Some((g.generation(), g.prune_filters().clone()));
    }

    /// What each vertex's weight counts (current after [`Self::refresh`]).
    pub(crate) fn types(&self) -> &WeightTypes {
        &self.types
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
        if self.built_for.as_ref().map(|b| b.0) != Some(g.generation()) {
            return None;
        }
        self.by_parent.get(&u).map(|s| s.iter().map(|k| k.2))
    }
}

/// Units each job takes below each inner vertex, of the type that vertex's
/// weight counts, as Fluxion's subtree plans count them: every emitted
/// vertex of a counted type adds its whole size when held exclusively and
/// its size less what the job needs when shared; an exclusive inner vertex
/// adds nothing for its unasked children, unless nodes are handed out whole
/// (then all of a held node's subtree counts).
#[derive(Debug, Clone, Default)]
pub(crate) struct PlannedUse {
    /// Per vertex with some of its weighed type below it: (job, units of
    /// that type the job took), for every job that took counted units
    /// below it.
    by_vertex: HashMap<VertexId, SmallVec<[(JobId, u64); 2]>, IdBuild>,
    /// Per job: the vertices it has entries at, so forgetting a job does
    /// not read its whole match again.
    by_job: HashMap<JobId, Vec<VertexId>, IdBuild>,
    /// Scratch for [`PlannedUse::add`].
    pending: Vec<Pending>,
    /// Scratch for [`PlannedUse::add`]: the entries left to count.
    kept: Vec<Emit>,
    /// The weighed inner vertices of the last [`PlannedUse::add`].
    last: Vec<Visited>,
}

/// A weighed inner vertex a job went through (see [`PlannedUse::last`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Visited {
    /// The vertex.
    pub(crate) vertex: VertexId,
    /// All units of its weighed type below it.
    pub(crate) total: u64,
    /// Whether the job took counted units below it (Fluxion then keeps a
    /// weight for it, even when that is 0).
    pub(crate) touched: bool,
}

/// Units per counted type of a finished subtree, or (`group`) of the
/// leaves met so far under `vertex`, waiting for their parent.
#[derive(Debug, Clone)]
struct Pending {
    vertex: VertexId,
    group: bool,
    units: SmallVec<[u64; 4]>,
}

impl PlannedUse {
    /// Records what `job` takes below each inner vertex of `emitted`, which
    /// must be in depth-first post-order (as matches emit it): children
    /// come before their parent, subtrees unbroken. With `whole_nodes`
    /// (the shape of the graph), each node `emitted` holds exclusively
    /// comes right after its whole subtree, which counts in full.
    pub(crate) fn add(
        &mut self,
        g: &ResourceGraph,
        types: &WeightTypes,
        job: JobId,
        emitted: &[Emit],
        whole_nodes: Option<&Shape>,
    ) {
        let n = types.counted.len();
        let node_kind = g.type_id(IMPLICIT_TYPE);
        let whole = |e: &Emit| {
            whole_nodes.is_some()
                && e.exclusive
                && node_kind.is_some()
                && g.vertex(e.vertex).map(|x| x.kind) == node_kind
        };
        // A node held whole counts from its totals: skip its subtree (a
        // node's thousands of entries would otherwise dominate the cost).
        let Self {
            by_vertex,
            by_job,
            pending,
            kept,
            last,
        } = self;
        last.clear();
        let list: &[Emit] = match whole_nodes {
            None => emitted,
            Some(shape) => {
                kept.clear();
                let mut i = emitted.len();
                while i > 0 {
                    i -= 1;
                    let e = emitted[i];
                    kept.push(e);
                    if whole(&e)
                        && let Some(len) = super::emit::subtree_len(g, shape, e.vertex)
                    {
                        i = i.saturating_sub(len - 1);
                    }
                }
                kept.reverse();
                kept
            }
        };
        // Entries are finished subtrees, or (`group`) the leaves met so far
        // under one parent, which most entries are: cores by the thousand.
        pending.clear();
        for e in list {
            let Some(x) = g.vertex(e.vertex) else {
                continue;
            };
            let own = |b: &mut [u64]| {
                for (b, &t) in b.iter_mut().zip(&types.counted) {
                    if x.kind == t {
                        *b += if e.exclusive {
                            x.size
                        } else {
                            x.size.saturating_sub(e.needs)
                        };
                    }
                }
            };
            if x.children().is_empty() {
                if !types.counted.contains(&x.kind) {
                    continue;
                }
                let parent = x.parent();
                match pending.last_mut() {
                    Some(top) if top.group && Some(top.vertex) == parent => own(&mut top.units),
                    _ => {
                        let mut units = SmallVec::from_elem(0, n);
                        own(&mut units);
                        if let Some(p) = parent {
                            pending.push(Pending {
                                vertex: p,
                                group: true,
                                units,
                            });
                        }
                    }
                }
                continue;
            }
            let mut below: SmallVec<[u64; 4]> = SmallVec::from_elem(0, n);
            while let Some(top) = pending.last()
                && (if top.group {
                    top.vertex == e.vertex
                } else {
                    g.parent(top.vertex) == Some(e.vertex)
                })
            {
                if let Some(top) = pending.pop() {
                    below.iter_mut().zip(&top.units).for_each(|(b, u)| *b += u);
                }
            }
            if whole(e) {
                for (b, &t) in below.iter_mut().zip(&types.counted) {
                    *b = types.total_below(g, e.vertex, t);
                }
            }
            if let Some(t) = types.of(g, e.vertex)
                && let Some(i) = types.counted.iter().position(|&c| c == t)
            {
                let total = types.total_below(g, e.vertex, t);
                let touched = below.iter().any(|&b| b > 0);
                // Nothing to count against where the total is 0: its weight
                // is 0 from the first job that touches it on.
                if touched && total > 0 {
                    by_vertex.entry(e.vertex).or_default().push((job, below[i]));
                    by_job.entry(job).or_default().push(e.vertex);
                }
                last.push(Visited {
                    vertex: e.vertex,
                    total,
                    touched,
                });
            }
            own(&mut below);
            pending.push(Pending {
                vertex: e.vertex,
                group: false,
                units: below,
            });
        }
    }

    /// Forgets what `job` takes.
    pub(crate) fn remove(&mut self, job: JobId) {
        for v in self.by_job.remove(&job).unwrap_or_default() {
            if let Some(list) = self.by_vertex.get_mut(&v) {
                list.retain(|&mut (j, _)| j != job);
                if list.is_empty() {
                    self.by_vertex.remove(&v);
                }
            }
        }
    }

    /// Forgets every job.
    pub(crate) fn clear(&mut self) {
        self.by_vertex.clear();
        self.by_job.clear();
    }

    /// The weighed inner vertices the last [`PlannedUse::add`] went
    /// through, in post-order.
    pub(crate) fn last(&self) -> &[Visited] {
        &self.last
    }

    /// Units taken below `v` by the jobs `counts` accepts (those running
    /// at the time the weight is read).
    pub(crate) fn used(&self, v: VertexId, mut counts: impl FnMut(JobId) -> bool) -> u64 {
        self.by_vertex.get(&v).map_or(0, |list| {
            list.iter()
                .filter(|&&(j, _)| counts(j))
                .map(|&(_, n)| n)
                .sum()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{ClusterShape, cluster};

    fn graph(filters: &str) -> ResourceGraph {
        let shape = ClusterShape {
            nodes: 2,
            nodes_per_rack: 2,
            sockets: 1,
            cores_per_socket: 2,
            gpus_per_socket: 1,
            memory_gib_per_socket: 4,
            per_node_ids: false,
        };
        let mut g = cluster(&shape).unwrap();
        g.set_prune_filters(&filters.parse().unwrap()).unwrap();
        g
    }

    fn first_of(g: &ResourceGraph, kind: &str) -> VertexId {
        g.vertices().find(|&v| g.kind_name(v) == kind).unwrap()
    }

    /// What each of cluster, rack, node and socket is weighed by.
    fn weighed_by(filters: &str) -> Vec<String> {
        let g = graph(filters);
        let types = WeightTypes::new(&g);
        ["cluster", "rack", "node", "socket"]
            .iter()
            .map(|k| {
                types
                    .of(&g, first_of(&g, k))
                    .map_or("-".to_string(), |t| g.type_name(t).to_string())
            })
            .collect()
    }

    #[test]
    fn plans_weigh_by_their_last_type_in_name_order() {
        // The implicit ALL:node comes after core; a node's own plan skips it.
        assert_eq!(weighed_by("ALL:core"), ["node", "node", "core", "node"]);
        assert_eq!(
            weighed_by("ALL:memory,ALL:gpu,ALL:core"),
            ["node", "node", "memory", "node"]
        );
        // Anchored types come first in a plan, so an ALL type ends it.
        assert_eq!(
            weighed_by("ALL:core,rack:memory"),
            ["node", "node", "core", "node"]
        );
        // A node with no ALL type left is weighed by its anchored one.
        assert_eq!(
            weighed_by("node:memory,ALL:node"),
            ["node", "node", "memory", "node"]
        );
    }

    #[test]
    fn totals_count_units_strictly_below() {
        let g = graph("ALL:core");
        let types = WeightTypes::new(&g);
        let node = g.type_id("node").unwrap();
        let core = g.type_id("core").unwrap();
        // node is not tracked by the aggregates; core is.
        assert!(!g.tracked_types().contains(&node));
        assert_eq!(types.total_below(&g, first_of(&g, "rack"), node), 2);
        assert_eq!(types.total_below(&g, first_of(&g, "node"), node), 0);
        assert_eq!(types.total_below(&g, first_of(&g, "node"), core), 2);
        assert_eq!(types.total_below(&g, first_of(&g, "cluster"), core), 4);
    }
}
