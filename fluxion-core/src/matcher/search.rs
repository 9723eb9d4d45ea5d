//! One traversal: evaluate candidates bottom-up, choose the best top-down.

use std::collections::{HashMap, HashSet};

use smallvec::SmallVec;

mod cxx_sort;
mod or_slots;

use super::held_runs::{self, HeldRuns, Passed, RunKey};
use super::{Emit, Policy};
use crate::graph::{IdEnd, ResourceGraph, Status, TypeId, VertexId};
use crate::jobspec::{Count, Jobspec, Resource};
use crate::planner::Time;

/// A jobspec resource resolved against the graph's types.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    kind: Option<TypeId>,
    is_slot: bool,
    count: Count,
    exclusive: Option<bool>,
    with: Vec<Request>,
    slot_child: Option<usize>,
    /// Units of each tracked type one unit of this request needs below it
    /// (for a group of alternative slots: all of its slots, at least).
    unit_needs: Vec<u64>,
    /// Set for a group of alternative slots (see [`or_slots`]); `with` is
    /// then their resources by type.
    alternatives: Option<Box<or_slots::OrGroup>>,
}

impl Request {
    /// Resolves `spec`'s top-level resources. With `or_slots` (Fluxion's
    /// flexible traverser), sibling slots are alternatives (see
    /// [`or_slots`]); otherwise only the first of them is matched.
    pub(crate) fn build(
        g: &ResourceGraph,
        spec: &Jobspec,
        or_slots: bool,
    ) -> Result<Vec<Request>, String> {
        Self::list(g, &spec.resources, or_slots)
    }

    /// Resolves sibling resources, grouping alternative slots.
    fn list(g: &ResourceGraph, rs: &[Resource], or_slots: bool) -> Result<Vec<Request>, String> {
        let list = rs
            .iter()
            .map(|r| Self::one(g, r, or_slots))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(if or_slots {
            or_slots::group(g, list)
        } else {
            list
        })
    }

    fn one(g: &ResourceGraph, r: &Resource, or_slots: bool) -> Result<Request, String> {
        let with = Self::list(g, &r.with, or_slots)?;
        let is_slot = r.is_slot();
        let kind = if is_slot { None } else { g.type_id(&r.kind) };
        let tracked = g.tracked_types();
        let mut unit_needs = vec![0u64; tracked.len()];
        if let Some(k) = kind
            && let Some(i) = tracked.iter().position(|&t| t == k)
        {
            unit_needs[i] = 1;
        }
        for c in &with {
            for (i, n) in c.total_needs().enumerate() {
                unit_needs[i] = unit_needs[i].saturating_add(n);
            }
        }
        let slot_child = with.iter().position(|c| c.is_slot);
        Ok(Request {
            kind,
            is_slot,
            count: r.count,
            exclusive: r.exclusive,
            with,
            slot_child,
            unit_needs,
            alternatives: None,
        })
    }

    /// Units of each tracked type all of this request needs below its parent.
    fn total_needs(&self) -> impl Iterator<Item = u64> + '_ {
        let (needs, times) = match &self.alternatives {
            None => (&self.unit_needs, self.count.min),
            Some(group) => (&group.parent_needs, 1),
        };
        needs.iter().map(move |n| n.saturating_mul(times))
    }

    /// Largest count worth collecting before the best ones are known.
    fn effective_max(&self) -> u64 {
        self.count.max
    }
}

/// What the matcher knows about the ids of one type, for stopping early.
#[derive(Debug, Clone, Default)]
pub(crate) struct TypeOrder {
    /// Ids grow in depth-first order across the whole graph.
    pub(crate) global: bool,
    /// Ids grow in depth-first order within each node (the type sits below nodes).
    pub(crate) per_node: bool,
    /// Every vertex of the type has size 1.
    pub(crate) unit: bool,
    /// The smallest ids, ascending (at most [`BOUND_IDS`]).
    pub(crate) lowest: Vec<i64>,
    /// The largest ids, descending (at most [`BOUND_IDS`]).
    pub(crate) highest: Vec<i64>,
    /// The best (lowest) performance class of any vertex of the type, the
    /// floor of [`Policy::Variation`]'s scores for it.
    pub(crate) best_perf_class: i64,
    /// Unique ids of the type grow in depth-first order across the whole
    /// graph, so its candidates arrive in the order ties break by.
    pub(crate) uniq_ascending: bool,
}

/// Facts about the shape of the graph, cached by the matcher per graph
/// generation.
#[derive(Debug, Clone, Default)]
pub(crate) struct Shape {
    /// Per type (indexed by type id).
    pub(crate) types: Vec<TypeOrder>,
    /// Depth-first finish number per vertex index (`u32::MAX` = none).
    pub(crate) post: Vec<u32>,
    /// Per vertex index: a bit per type id (below 64) of its children, so
    /// a slot test does not scan a cluster's thousands of children.
    pub(crate) child_types: Vec<u64>,
    /// Per vertex index: its children are all leaves, listed oldest first,
    /// so the first-policy walk (by weight, then newest) is simply their
    /// reverse: leaves carry no weight.
    pub(crate) leaves_oldest_first: Vec<bool>,
    /// Per vertex index: its children are all leaves and, type by type,
    /// listed by ascending id, so the lowest (highest) ids of a type are
    /// the first (last) children of that type.
    pub(crate) leaf_ids_ascending: Vec<bool>,
    /// Unique ids grow in depth-first pre-order across the whole graph, so
    /// candidates arrive in the order [`Policy::Variation`] breaks ties by.
    pub(crate) uniq_preorder: bool,
}

/// Computes the [`Shape`] of `g`.
pub(crate) fn shape(g: &ResourceGraph) -> Shape {
    let bound = g.index_bound();
    let mut post = vec![u32::MAX; bound];
    let mut child_types = vec![0u64; bound];
    let mut leaves_oldest_first = vec![false; bound];
    let mut leaf_ids_ascending = vec![false; bound];
    let mut last_id: HashMap<TypeId, i64> = HashMap::new();
    for v in g.vertices() {
        let kids = g.children(v);
        if !kids.is_empty() && kids.iter().all(|&c| g.children(c).is_empty()) {
            let uniq = |c| g.vertex(c).map_or(u64::MAX, |x| x.uniq_id);
            leaves_oldest_first[v.index()] = kids.windows(2).all(|w| uniq(w[0]) < uniq(w[1]));
            last_id.clear();
            leaf_ids_ascending[v.index()] = kids.iter().all(|&c| {
                let Some(x) = g.vertex(c) else { return false };
                last_id.insert(x.kind, x.id).is_none_or(|prev| prev < x.id)
            });
        }
        let mut mask = 0u64;
        for &c in kids {
            match g.vertex(c).map(|x| x.kind.0) {
                Some(k) if k < 64 => mask |= 1 << k,
                // A type beyond the mask: mark the vertex as "scan".
                _ => mask = u64::MAX,
            }
        }
        child_types[v.index()] = mask;
    }
    if let Some(root) = g.root() {
        for (n, v) in g.subtree_post_order(root).into_iter().enumerate() {
            post[v.index()] = n as u32;
        }
    }
    let uniq_preorder = g.root().is_none_or(|root| {
        // A walk with its own stack: a list of every vertex would add to
        // the peak memory of loading a large graph.
        let mut stack = vec![root];
        let mut last: Option<u64> = None;
        while let Some(v) = stack.pop() {
            let Some(x) = g.vertex(v) else { continue };
            if last.is_some_and(|l| x.uniq_id <= l) {
                return false;
            }
            last = Some(x.uniq_id);
            stack.extend(x.children().iter().rev());
        }
        true
    });
    Shape {
        uniq_preorder,
        types: type_orders(g),
        post,
        child_types,
        leaves_oldest_first,
        leaf_ids_ascending,
    }
}

/// How many extreme ids per type are kept for score bounds.
pub(crate) const BOUND_IDS: usize = 256;

/// Computes [`TypeOrder`] for every type of `g` (indexed by type id).
pub(crate) fn type_orders(g: &ResourceGraph) -> Vec<TypeOrder> {
    let mut out: Vec<TypeOrder> = Vec::new();
    let mut last: Vec<Option<i64>> = Vec::new();
    let mut last_uniq: Vec<Option<u64>> = Vec::new();
    let mut last_in_node: Vec<Option<(VertexId, i64)>> = Vec::new();
    let mut ids: Vec<Vec<i64>> = Vec::new();
    let node_kind = g.type_id("node");
    let Some(root) = g.root() else { return out };
    // Depth-first pre-order with the enclosing node.
    let mut stack: Vec<(VertexId, Option<VertexId>)> = vec![(root, None)];
    while let Some((v, node)) = stack.pop() {
        let Some(x) = g.vertex(v) else { continue };
        let t = x.kind.0 as usize;
        if out.len() <= t {
            out.resize(
                t + 1,
                TypeOrder {
                    global: true,
                    per_node: true,
                    unit: true,
                    best_perf_class: WORST_PERF_CLASS,
                    uniq_ascending: true,
                    ..Default::default()
                },
            );
            last.resize(t + 1, None);
            last_uniq.resize(t + 1, None);
            last_in_node.resize(t + 1, None);
            ids.resize(t + 1, Vec::new());
        }
        let o = &mut out[t];
        if last[t].is_some_and(|l| x.id <= l) {
            o.global = false;
        }
        last[t] = Some(x.id);
        if last_uniq[t].is_some_and(|l| x.uniq_id <= l) {
            o.uniq_ascending = false;
        }
        last_uniq[t] = Some(x.uniq_id);
        match node {
            None => o.per_node = false,
            Some(n) => {
                if let Some((ln, lid)) = last_in_node[t]
                    && ln == n
                    && x.id <= lid
                {
                    o.per_node = false;
                }
                last_in_node[t] = Some((n, x.id));
            }
        }
        o.unit &= x.size == 1;
        o.best_perf_class = o.best_perf_class.min(perf_class(g, v));
        ids[t].push(x.id);
        let inner = if Some(x.kind) == node_kind {
            Some(v)
        } else {
            node
        };
        for &c in x.children().iter().rev() {
            stack.push((c, inner));
        }
    }
    for (t, mut v) in ids.into_iter().enumerate() {
        v.sort_unstable();
        out[t].lowest = v.iter().take(BOUND_IDS).copied().collect();
        out[t].highest = v.iter().rev().take(BOUND_IDS).copied().collect();
    }
    out
}

/// How a walk may stop before visiting every child.
enum EarlyStop {
    /// Candidates arrive best first: stop once there are enough.
    Ordered,
    /// Stop once enough candidates reach the best possible score (per request).
    Bound(Vec<Vec<i64>>),
    /// Candidates arrive in tie order and each request's scores have a
    /// floor (per request): stop once enough candidates are at the floor,
    /// as no later one can then win (it cannot score better, and loses ties).
    Floor(Vec<i64>),
}

/// What a traversal checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Real availability at the requested time.
    Now,
    /// Satisfiability: ignores allocations, honours down vertices.
    Sat,
    /// Satisfiability that also ignores down vertices (they may come back).
    SatIgnoreDown,
}

/// Result of one traversal.
pub(crate) struct Found {
    /// The claims of the chosen candidates, in choice order (see
    /// [`super::emit::order`]), or `None` when nothing fits.
    pub(crate) chosen: Option<Vec<Emit>>,
    pub(crate) pre: u64,
    pub(crate) post: u64,
    /// Shared vertices (see [`ResourceGraph::is_shared`]) and the vertex
    /// the walk took each through, when that is not its tree parent.
    pub(crate) via: Vec<(VertexId, VertexId)>,
}

#[derive(Debug, Clone)]
struct Cand {
    idx: usize,
    vertex: VertexId,
    tie: u64,
    score: i64,
    count: u64,
    exclusive: bool,
    /// `false` for a slot (it has no vertex of its own).
    is_vertex: bool,
    claims: Vec<Emit>,
}

struct Search<'a> {
    g: &'a ResourceGraph,
    policy: Policy,
    at: Time,
    end: Time,
    sat: bool,
    honor_down: bool,
    node_kind: Option<TypeId>,
    shape: &'a Shape,
    weights: &'a super::walk::Weights,
    walk: &'a super::walk::WalkOrder,
    held_runs: &'a mut HeldRuns,
    pre: u64,
    post: u64,
    /// Spare buffers for first-policy child orders, reused down the walk:
    /// a fresh one per visited vertex cost more in malloc than the sort.
    order_pool: Vec<Vec<(u64, u64, VertexId)>>,
    /// Spare candidate lists, likewise.
    cand_pool: Vec<Vec<Cand>>,
    /// Shared vertices this walk has entered: no second path takes them
    /// (Fluxion's visit colours; only graphs with associations have any).
    entered: HashSet<VertexId>,
    /// The vertex whose children the walk is evaluating (for `via`).
    from: Option<VertexId>,
    via: Vec<(VertexId, VertexId)>,
    /// No request anywhere in the jobspec is a group of alternative slots,
    /// whose candidates are ranked by score alone (see [`Self::sort_as_fluxion`]).
    plain: bool,
}

/// Whether no request in `reqs`, at any depth, is a group of alternatives.
fn no_alternatives(reqs: &[Request]) -> bool {
    let mut stack: Vec<&Request> = reqs.iter().collect();
    while let Some(r) = stack.pop() {
        if r.alternatives.is_some() {
            return false;
        }
        stack.extend(&r.with);
    }
    true
}

/// The candidates answering request `i` in a list sorted by [`Search::sort`].
fn answering(sorted: &[Cand], i: usize) -> &[Cand] {
    let lo = sorted.partition_point(|c| c.idx < i);
    let hi = sorted.partition_point(|c| c.idx <= i);
    &sorted[lo..hi]
}

/// Runs one traversal at `[at, at + duration)`; `sat` ignores allocations and
/// status (satisfiability on the empty graph). `ordered[t]` says whether ids
/// of type `t` grow in depth-first order, which allows stopping early.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run(
    g: &ResourceGraph,
    policy: Policy,
    reqs: &[Request],
    at: Time,
    duration: u64,
    mode: Mode,
    shape: &Shape,
    weights: &super::walk::Weights,
    walk: &super::walk::WalkOrder,
    held_runs: &mut HeldRuns,
) -> Found {
    let mut s = Search {
        g,
        policy,
        at,
        end: at.saturating_add(duration.min(i64::MAX as u64) as i64),
        sat: mode != Mode::Now,
        honor_down: mode != Mode::SatIgnoreDown,
        node_kind: g.type_id("node"),
        shape,
        weights,
        walk,
        held_runs,
        pre: 0,
        post: 0,
        order_pool: Vec::new(),
        cand_pool: Vec::new(),
        entered: HashSet::new(),
        from: None,
        via: Vec::new(),
        plain: no_alternatives(reqs),
    };
    let Some(root) = g.root() else {
        return Found {
            chosen: None,
            pre: 0,
            post: 0,
            via: Vec::new(),
        };
    };
    let mut cands = Vec::new();
    s.eval(root, reqs, true, false, 0, true, &mut cands);
    let mut chosen = Vec::new();
    let ok = s.choose_each(&mut cands, reqs, &mut chosen);
    Found {
        chosen: ok.then_some(chosen),
        pre: s.pre,
        post: s.post,
        via: s.via,
    }
}

/// Running count of candidate units and candidates (granules) per request,
/// so early-stop checks do not rescan every candidate after each child.
struct Tally<'r> {
    reqs: &'r [Request],
    multiplier: u64,
    // Inline: a walk makes a tally at every vertex it explores, and a
    // level of a jobspec rarely has more than a few requests.
    got: SmallVec<[u64; 4]>,
    grains: SmallVec<[u64; 4]>,
    smallest: SmallVec<[u64; 4]>,
    /// Per request: already has enough (see [`Tally::enough`]).
    full: SmallVec<[bool; 4]>,
    /// Requests not full yet.
    pending: usize,
    seen: usize,
}

impl<'r> Tally<'r> {
    fn new(reqs: &'r [Request], multiplier: u64) -> Self {
        let n = reqs.len();
        Tally {
            reqs,
            multiplier,
            got: SmallVec::from_elem(0, n),
            grains: SmallVec::from_elem(0, n),
            smallest: SmallVec::from_elem(u64::MAX, n),
            full: SmallVec::from_elem(false, n),
            pending: n,
            seen: 0,
        }
    }
    /// Counts the candidates of `out` not seen yet.
    fn add(&mut self, out: &[Cand]) {
        for c in &out[self.seen.min(out.len())..] {
            let i = c.idx;
            if i >= self.got.len() {
                continue;
            }
            self.got[i] = self.got[i].saturating_add(c.count);
            self.grains[i] += 1;
            self.smallest[i] = self.smallest[i].min(c.count.max(1));
            // A smaller vertex can raise the vertices a copy needs, so a
            // full request may turn short again.
            let now = self.is_full(i);
            if now != self.full[i] {
                self.full[i] = now;
                if now {
                    self.pending -= 1;
                } else {
                    self.pending += 1;
                }
            }
        }
        self.seen = out.len();
    }
    /// Enough units for `multiplier` copies of request `i`, and enough
    /// vertices for each copy to have its own: copies (slots) never share a
    /// vertex, so one big pool cannot stand in for several copies' shares,
    /// and a copy larger than a vertex needs several. Counting copies by
    /// the smallest vertex seen never stops too early.
    fn is_full(&self, i: usize) -> bool {
        let want = self.reqs[i].effective_max();
        let per_copy = want.div_ceil(self.smallest[i].min(want.max(1)));
        self.got[i] >= want.saturating_mul(self.multiplier)
            && self.grains[i] >= per_copy.saturating_mul(self.multiplier)
    }
    /// Every request is full.
    fn enough(&self) -> bool {
        self.pending == 0
    }
    /// Whether request `i` is full already.
    fn full(&self, i: usize) -> bool {
        self.full.get(i) == Some(&true)
    }
}

/// Running check of whether the `n` best candidates gathered for each
/// request already reach the best scores possible anywhere, so no later
/// child can win. The `n`-th best score reaches the `n`-th best bound
/// exactly when `n` candidates reach that bound, which can be counted as
/// candidates arrive instead of re-ranking them after every child.
struct BestTally {
    /// Per request: how many candidates it needs and the score they must
    /// reach (`None`: the bound cannot be known, never enough).
    want: Vec<Option<(usize, i64)>>,
    /// Per request: candidates reaching the bound so far.
    good: Vec<usize>,
    /// Per request: a candidate stands for several units, so ranking by
    /// count of candidates does not apply.
    mixed: Vec<bool>,
    high: bool,
    seen: usize,
}

impl BestTally {
    /// `bound(i, n)`: the score the `n`-th best candidate for request `i`
    /// must reach, if known.
    fn new(
        reqs: &[Request],
        bound: impl Fn(usize, usize) -> Option<i64>,
        multiplier: u64,
        high: bool,
    ) -> Self {
        let want = reqs
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let n = usize::try_from(r.effective_max().saturating_mul(multiplier)).ok()?;
                (n > 0).then_some(())?;
                Some((n, bound(i, n)?))
            })
            .collect();
        BestTally {
            want,
            good: vec![0; reqs.len()],
            mixed: vec![false; reqs.len()],
            high,
            seen: 0,
        }
    }

    /// Counts the candidates of `out` not seen yet.
    fn add(&mut self, out: &[Cand]) {
        for c in &out[self.seen.min(out.len())..] {
            let Some(Some((_, bound))) = self.want.get(c.idx) else {
                continue;
            };
            if c.count != 1 {
                self.mixed[c.idx] = true;
            } else if (self.high && c.score >= *bound) || (!self.high && c.score <= *bound) {
                self.good[c.idx] += 1;
            }
        }
        self.seen = out.len();
    }

    fn enough(&self) -> bool {
        self.want
            .iter()
            .zip(self.good.iter().zip(&self.mixed))
            .all(|(w, (&good, &mixed))| matches!(w, Some((n, _)) if !mixed && good >= *n))
    }
}

/// The worst performance class, also that of a vertex without one.
const WORST_PERF_CLASS: i64 = 9999;

/// `v`'s `perf_class` property for [`Policy::Variation`]: lower is faster;
/// unset, unparsable or out of `0..=9999` counts as the worst.
fn perf_class(g: &ResourceGraph, v: VertexId) -> i64 {
    g.vertex(v)
        .and_then(|x| x.property("perf_class"))
        .and_then(|p| p.trim().parse::<i64>().ok())
        .filter(|c| (0..=WORST_PERF_CLASS).contains(c))
        .unwrap_or(WORST_PERF_CLASS)
}

impl Search<'_> {
    fn score(&self, v: VertexId, node_factor: i64) -> i64 {
        if !self.policy.ranks_by_id() {
            return perf_class(self.g, v);
        }
        let id = self.g.vertex(v).map_or(0, |x| x.id);
        id.saturating_add(1).saturating_add(node_factor)
    }

    fn node_factor(&self, v: VertexId) -> i64 {
        let Some(x) = self.g.vertex(v) else { return 0 };
        let add = x.id.saturating_add(1).max(0).saturating_add(1);
        let tie = ((x.uniq_id % 10000) as i64 - 1).abs();
        add.saturating_mul(10000).saturating_add(tie)
    }

    /// Marks a shared vertex as taken by this walk, through the vertex
    /// whose children are being evaluated.
    fn enter(&mut self, u: VertexId) {
        if !self.g.is_shared(u) || !self.entered.insert(u) {
            return;
        }
        if let Some(p) = self.from
            && self.g.parent(u) != Some(p)
        {
            self.via.push((u, p));
        }
    }

    fn prune_ok(&self, v: VertexId, needs: &[u64]) -> bool {
        // Aggregates count tree children only: below a vertex with
        // associated children they say too little.
        if !self.g.associated_children(v).is_empty() {
            return true;
        }
        let tracked = self.g.tracked_types();
        needs.iter().enumerate().all(|(i, &n)| {
            if n == 0 {
                return true;
            }
            let have = if self.sat {
                self.g.subtree_total(v, tracked[i])
            } else {
                self.g.free_units(v, tracked[i], self.at, self.end)
            };
            have.is_none_or(|h| h >= n)
        })
    }

    /// [`Self::prune_ok`] for a leaf with `avail` units of its type `kind`
    /// free: a leaf holds nothing of the other tracked types.
    fn leaf_fits(&self, kind: TypeId, avail: u64, needs: &[u64]) -> bool {
        let tracked = self.g.tracked_types();
        needs
            .iter()
            .zip(tracked)
            .all(|(&n, &t)| n == 0 || (t == kind && avail >= n))
    }

    fn slot_match(&self, v: VertexId, slot: &Request) -> bool {
        if let Some(group) = &slot.alternatives {
            return group.slots.iter().any(|a| self.slot_match(v, a));
        }
        let mask = self
            .shape
            .child_types
            .get(v.index())
            .copied()
            .filter(|&m| m != u64::MAX);
        let kids = self.g.children(v);
        let assoc = self.g.associated_children(v);
        if !assoc.is_empty() {
            return slot.with.iter().all(|c| {
                c.kind.is_some_and(|k| {
                    kids.iter()
                        .chain(assoc)
                        .any(|&k2| self.g.vertex(k2).is_some_and(|x| x.kind == k))
                })
            });
        }
        slot.with.iter().all(|c| {
            c.kind.is_some_and(|k| match mask {
                Some(m) if k.0 < 64 => m & (1 << k.0) != 0,
                _ => kids
                    .iter()
                    .any(|&k2| self.g.vertex(k2).is_some_and(|x| x.kind == k)),
            })
        })
    }

    /// Sorts candidates by the request they answer, then best first: by
    /// score in the policy's direction, ties by graph order.
    fn sort(&self, cands: &mut [Cand]) {
        if self.policy.prefers_high() {
            cands.sort_by(|a, b| {
                (a.idx.cmp(&b.idx))
                    .then(b.score.cmp(&a.score))
                    .then(a.tie.cmp(&b.tie))
            });
        } else {
            cands.sort_by(|a, b| {
                (a.idx.cmp(&b.idx))
                    .then(a.score.cmp(&b.score))
                    .then(a.tie.cmp(&b.tie))
            });
        }
    }

    /// Sorts candidates by the request they answer (keeping the order they
    /// arrived in, Fluxion's depth-first order), then each request's run
    /// best first the way Fluxion's own unstable sort leaves equal scores
    /// (see [`cxx_sort`]), `times(idx)` times: Fluxion sorts a type's list
    /// once per sibling request of that type, so alternative slots sort
    /// the slots' list once per alternative.
    fn sort_as_fluxion(&self, cands: &mut [Cand], times: impl Fn(usize) -> usize) {
        cands.sort_by_key(|c| c.idx);
        let high = self.policy.prefers_high();
        let mut lo = 0;
        while lo < cands.len() {
            let idx = cands[lo].idx;
            let hi = lo + cands[lo..].partition_point(|c| c.idx == idx);
            for _ in 0..times(idx) {
                cxx_sort::sort_by(&mut cands[lo..hi], |a, b| {
                    if high {
                        a.score > b.score
                    } else {
                        a.score < b.score
                    }
                });
            }
            lo = hi;
        }
    }

    /// Appends to `out` the best candidates of `cands` for each of `reqs`
    /// (candidate `idx` = position in `reqs`); false when one falls short.
    fn choose_each(&self, cands: &mut [Cand], reqs: &[Request], out: &mut Vec<Emit>) -> bool {
        if reqs.iter().any(|r| r.alternatives.is_some()) {
            // Alternative slots (the flexible traverser): Fluxion's order.
            self.sort_as_fluxion(cands, |i| {
                reqs.get(i)
                    .and_then(|r| r.alternatives.as_ref())
                    .map_or(1, |g| g.slots.len())
            });
        } else {
            self.sort(cands);
        }
        reqs.iter()
            .enumerate()
            .all(|(i, r)| self.take_best(answering(cands, i), r, out))
    }

    /// Appends to `out` the claims of the first candidates of `sorted` (best
    /// first) that make up `req`'s count, taking partial amounts of pools;
    /// false when they fall short.
    fn take_best(&self, sorted: &[Cand], req: &Request, out: &mut Vec<Emit>) -> bool {
        let qc: u64 = sorted.iter().fold(0u64, |a, c| a.saturating_add(c.count));
        let Some(want) = req.count.best_within(qc) else {
            return false;
        };
        let mut got = 0u64;
        for c in sorted {
            if got >= want {
                break;
            }
            // An exclusive candidate is held whole (a pool in a slot gives
            // all it has, as in Fluxion); a shared one gives what is asked.
            let needs = if c.exclusive {
                c.count
            } else {
                c.count.min(want - got)
            };
            got = got.saturating_add(needs);
            if c.is_vertex {
                out.push(Emit {
                    vertex: c.vertex,
                    needs,
                    exclusive: c.exclusive,
                });
            }
            out.extend_from_slice(&c.claims);
        }
        got >= want
    }

    /// Evaluates the children of `u` against `reqs`, in the policy's walk
    /// order, stopping early when that cannot change the answer.
    #[allow(clippy::too_many_arguments)]
    fn explore(
        &mut self,
        u: VertexId,
        reqs: &[Request],
        pristine: bool,
        excl: bool,
        node_factor: i64,
        top: bool,
        multiplier: u64,
        out: &mut Vec<Cand>,
    ) {
        let g = self.g;
        let kids = g.children(u);
        if g.has_associations() {
            // A graph where some vertex has two parents: every child, tree
            // ones then associated ones, each shared one taken once; the
            // first-match walk orders them all by weight and stops early.
            let assoc = g.associated_children(u);
            let mut order: Vec<VertexId> = kids.iter().chain(assoc).copied().collect();
            let first = self.policy.stops_early() && !self.sat;
            if first {
                order.sort_by_key(|&c| {
                    let w = super::walk::weight(g, self.weights, c);
                    std::cmp::Reverse((w, g.vertex(c).map_or(0, |x| x.uniq_id)))
                });
            }
            let base = out.len();
            let mut tally = Tally::new(reqs, multiplier);
            for c in order {
                if g.is_shared(c) && self.entered.contains(&c) {
                    continue;
                }
                self.from = Some(u);
                self.eval(c, reqs, pristine, excl, node_factor, top, out);
                if first {
                    tally.add(&out[base..]);
                    if tally.enough() {
                        break;
                    }
                }
            }
            return;
        }
        let first = self.policy.stops_early() && !self.sat;
        let stop = if first {
            Some(EarlyStop::Ordered)
        } else {
            self.early_stop(reqs)
        };
        let base = out.len();
        if first {
            // Fluxion's first-match walk: children by the free resources
            // seen when a job last went through them, then newest first.
            // Wide vertices keep that order between matches.
            let walk = self.walk;
            let mut tally = Tally::new(reqs, multiplier);
            let mut visit = |s: &mut Self, c: VertexId| {
                s.eval(c, reqs, pristine, excl, node_factor, top, out);
                tally.add(&out[base..]);
                tally.enough()
            };
            if let Some(mut order) = walk.children(g, u) {
                order.any(|c| visit(self, c));
            } else if self.shape.leaves_oldest_first.get(u.index()) == Some(&true) {
                kids.iter().rev().any(|&c| visit(self, c));
            } else {
                let mut order = self.order_pool.pop().unwrap_or_default();
                order.extend(kids.iter().map(|&c| {
                    let w = super::walk::weight(g, self.weights, c);
                    (w, g.vertex(c).map_or(0, |x| x.uniq_id), c)
                }));
                order.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
                order.iter().any(|&(_, _, c)| visit(self, c));
                order.clear();
                self.order_pool.push(order);
            }
            return;
        }
        // Below a vertex whose leaves come in id order, the best ids of
        // each unit-sized type are simply the first (for `high`, last) free
        // ones met.
        let stop = match stop {
            Some(EarlyStop::Bound(_))
                if self.shape.leaf_ids_ascending.get(u.index()) == Some(&true)
                    && reqs.iter().all(|r| {
                        !r.is_slot && r.kind.and_then(|k| self.order(k)).is_some_and(|o| o.unit)
                    }) =>
            {
                Some(EarlyStop::Ordered)
            }
            other => other,
        };
        match stop {
            Some(EarlyStop::Ordered) => {
                let reverse = self.policy.prefers_high();
                let mut tally = Tally::new(reqs, multiplier);
                // Children held exclusively give nothing: at a wide vertex,
                // the run of them the walk starts with is remembered, and
                // the next walk in the same window starts past it.
                let wide = !self.sat && kids.len() >= held_runs::WIDE;
                let (at, end) = (self.at, self.end);
                let key = wide.then(|| self.run_key(reverse, Passed::Held));
                let known = key.as_ref().map_or(0, |k| self.held_runs.known(u, k));
                let mut run = known;
                for i in known.min(kids.len())..kids.len() {
                    let c = if reverse {
                        kids[kids.len() - 1 - i]
                    } else {
                        kids[i]
                    };
                    if wide && run == i && g.usage(c, at, end).exclusive_held {
                        run += 1;
                        continue;
                    }
                    // Candidates arrive best first: once a request has
                    // enough, later vertices of its type cannot displace
                    // any (e.g. the cores after the 16 lowest, on the way
                    // to the GPU listed after them).
                    // (Unit-sized types only: a smaller pool met later
                    // could make a full request short again.)
                    if !pristine
                        && let Some(k) = g.vertex(c).map(|x| x.kind)
                        && let Some(ri) = reqs.iter().position(|r| r.kind == Some(k))
                        && tally.full(ri)
                        && self.order(k).is_some_and(|o| o.unit)
                    {
                        continue;
                    }
                    self.eval(c, reqs, pristine, excl, node_factor, top, out);
                    tally.add(&out[base..]);
                    if tally.enough() {
                        break;
                    }
                }
                if let Some(k) = key
                    && run != known
                {
                    self.held_runs.record(u, k, run);
                }
            }
            Some(EarlyStop::Bound(bounds)) => {
                let mut best = BestTally::new(
                    reqs,
                    |i, n| bounds.get(i)?.get(n - 1).copied(),
                    multiplier,
                    self.policy.prefers_high(),
                );
                // Children that cannot reach any request's bound go last:
                // if the others reach the bounds, those could not have
                // added a candidate that wins.
                let ends = self.id_end_needs(reqs, &bounds, multiplier);
                // At a wide vertex, the run of such children the walk
                // starts with is remembered like held ones (see above).
                let key = ends
                    .as_ref()
                    .filter(|_| kids.len() >= held_runs::WIDE)
                    .map(|e| self.run_key(false, Passed::ShortAtEnd(self.id_end(), e.clone())));
                let known = key
                    .as_ref()
                    .map_or(0, |k| self.held_runs.known(u, k).min(kids.len()));
                let mut run = known;
                let mut later = Vec::new();
                let mut reached = false;
                for (i, &c) in kids.iter().enumerate().skip(known) {
                    if let Some(ends) = &ends
                        && !self.may_reach(c, ends)
                    {
                        run += usize::from(run == i);
                        later.push(c);
                        continue;
                    }
                    self.eval(c, reqs, pristine, excl, node_factor, top, out);
                    best.add(&out[base..]);
                    if best.enough() {
                        reached = true;
                        break;
                    }
                }
                if let Some(k) = key
                    && run != known
                {
                    self.held_runs.record(u, k, run);
                }
                if !reached {
                    for &c in kids[..known].iter().chain(&later) {
                        self.eval(c, reqs, pristine, excl, node_factor, top, out);
                    }
                }
            }
            Some(EarlyStop::Floor(floors)) => {
                let mut best = BestTally::new(
                    reqs,
                    |i, _| floors.get(i).copied(),
                    multiplier,
                    self.policy.prefers_high(),
                );
                for &c in kids {
                    self.eval(c, reqs, pristine, excl, node_factor, top, out);
                    best.add(&out[base..]);
                    if best.enough() {
                        break;
                    }
                }
            }
            None => {
                for &c in kids {
                    self.eval(c, reqs, pristine, excl, node_factor, top, out);
                }
            }
        }
    }

    /// The floor of [`Policy::Variation`]'s scores for each of `reqs`, when
    /// candidates arrive in the order its ties break by (see
    /// [`EarlyStop::Floor`]): a vertex scores its type's best performance
    /// class at least, a slot the sum of its members' floors.
    fn perf_floors(&self, reqs: &[Request]) -> Option<Vec<i64>> {
        if self.policy != Policy::Variation || !self.plain {
            return None;
        }
        reqs.iter()
            .map(|r| {
                let floor = |k: Option<TypeId>| Some(self.order(k?)?.best_perf_class);
                if !r.is_slot {
                    // One type: its own depth-first order of unique ids.
                    let o = self.order(r.kind?)?;
                    return o.uniq_ascending.then_some(o.best_perf_class);
                }
                // Slots tie by the vertex they are dealt at, of any type.
                if !self.shape.uniq_preorder {
                    return None;
                }
                // A slot's score sums what it takes of each member; a
                // member with a range of counts, or of pools, takes an
                // unknown number of candidates.
                r.with.iter().try_fold(0i64, |sum, e| {
                    let o = self.order(e.kind?)?;
                    if e.is_slot || !o.unit || e.count.min != e.count.max {
                        return None;
                    }
                    let n = i64::try_from(e.count.min).ok()?;
                    Some(sum.saturating_add(floor(e.kind)?.saturating_mul(n)))
                })
            })
            .collect()
    }

    fn order(&self, k: TypeId) -> Option<&TypeOrder> {
        self.shape.types.get(k.0 as usize)
    }

    /// Whether candidates for `r` arrive in preference order.
    fn arrives_ordered(&self, r: &Request) -> bool {
        if r.is_slot {
            return r.with.iter().all(|c| self.arrives_ordered(c));
        }
        let Some(o) = r.kind.and_then(|k| self.order(k)) else {
            return false;
        };
        let nodes_ordered = self
            .node_kind
            .and_then(|k| self.order(k))
            .is_some_and(|n| n.global);
        o.global || (self.policy.node_centric() && nodes_ordered && o.per_node)
    }

    /// The best scores candidates for `r` can reach, best first, if they
    /// can be bounded (a slot: only its single best score).
    fn best_scores(&self, r: &Request) -> Option<Vec<i64>> {
        let ids = |o: &TypeOrder| {
            if self.policy.prefers_high() {
                o.highest.clone()
            } else {
                o.lowest.clone()
            }
        };
        if r.is_slot {
            let mut sum = 0i64;
            for e in &r.with {
                let o = self.order(e.kind?)?;
                let n = e.count.min as usize;
                let best = ids(o);
                if !o.unit || e.count.min != e.count.max || best.len() < n {
                    return None;
                }
                sum = best[..n]
                    .iter()
                    .fold(sum, |a, i| a.saturating_add(i.saturating_add(1)));
            }
            Some(vec![sum])
        } else {
            let o = self.order(r.kind?)?;
            Some(ids(o).into_iter().map(|i| i.saturating_add(1)).collect())
        }
    }

    /// What a run of children passed for `why` in this walk's window is
    /// valid for (see [`HeldRuns`]).
    fn run_key(&self, from_end: bool, why: Passed) -> RunKey {
        RunKey {
            at: self.at,
            end: self.end,
            epoch: self.g.free_epoch(),
            from_end,
            why,
        }
    }

    /// The end of the id range the policy prefers.
    fn id_end(&self) -> IdEnd {
        if self.policy.prefers_high() {
            IdEnd::Highest
        } else {
            IdEnd::Lowest
        }
    }

    /// Per request, types of which a subtree must have a free unit at the
    /// preferred id end (see [`ResourceGraph::free_units_at_id_end`]) to
    /// offer a candidate reaching the request's bound in [`BestTally`];
    /// `None` when some request cannot be ruled out that way.
    ///
    /// A request for `n` vertices of type `t` reaches its bound only with
    /// ids as good as the `n`-th best id of `t`; when that is the end id
    /// itself, only a vertex at the end id will do. A slot's bound is the
    /// sum of the best ids of each of its types: a slot without a vertex at
    /// the end id of one of them scores strictly worse.
    fn id_end_needs(
        &self,
        reqs: &[Request],
        bounds: &[Vec<i64>],
        multiplier: u64,
    ) -> Option<Vec<Vec<TypeId>>> {
        let end = self.id_end();
        let best_id = |o: &TypeOrder| match end {
            IdEnd::Lowest => o.lowest.first().copied(),
            IdEnd::Highest => o.highest.first().copied(),
        };
        // The end id the graph counts, if it is still `t`'s best id.
        let counted = |t: TypeId| {
            let o = self.order(t)?;
            let id = self.g.id_end(t, end)?;
            (o.unit && best_id(o) == Some(id)).then_some(id)
        };
        reqs.iter()
            .zip(bounds)
            .map(|(r, b)| {
                // The bound the n-th best candidate must reach (none: the
                // walk never stops early, so nothing is worth deferring).
                let n = r.effective_max().saturating_mul(multiplier) as usize;
                let bound = *b.get(n.checked_sub(1)?)?;
                let needs: Vec<TypeId> = if r.is_slot {
                    let kinds = r.with.iter().filter_map(|e| e.kind);
                    kinds.filter(|&t| counted(t).is_some()).collect()
                } else {
                    let t = r.kind?;
                    if counted(t)? + 1 == bound {
                        vec![t]
                    } else {
                        Vec::new()
                    }
                };
                (!needs.is_empty()).then_some(needs)
            })
            .collect()
    }

    /// Whether the subtree of `v` may offer a candidate at its bound to
    /// some request: it has a free unit at the id end of each type `needs`
    /// lists for that request (see [`Self::id_end_needs`]).
    fn may_reach(&self, v: VertexId, needs: &[Vec<TypeId>]) -> bool {
        let end = self.id_end();
        needs.iter().any(|types| {
            types
                .iter()
                .all(|&t| self.g.free_units_at_id_end(v, t, end, self.at, self.end) != Some(0))
        })
    }

    fn early_stop(&self, reqs: &[Request]) -> Option<EarlyStop> {
        if self.sat || self.policy.stops_early() {
            return Some(EarlyStop::Ordered);
        }
        if reqs.iter().any(|r| r.count.max == u64::MAX) {
            return None;
        }
        if let Some(floors) = self.perf_floors(reqs) {
            return Some(EarlyStop::Floor(floors));
        }
        if !self.policy.ranks_by_id() {
            return None;
        }
        if reqs.iter().all(|r| self.arrives_ordered(r)) {
            return Some(EarlyStop::Ordered);
        }
        if self.policy.node_centric() {
            return None;
        }
        reqs.iter()
            .map(|r| self.best_scores(r))
            .collect::<Option<Vec<_>>>()
            .map(EarlyStop::Bound)
    }

    #[allow(clippy::too_many_arguments)]
    fn eval(
        &mut self,
        u: VertexId,
        reqs: &[Request],
        pristine: bool,
        excl_in: bool,
        node_factor: i64,
        top: bool,
        out: &mut Vec<Cand>,
    ) {
        let g = self.g;
        let Some(x) = g.vertex(u) else { return };
        let matched = reqs.iter().position(|r| r.kind == Some(x.kind));
        let mut slot: Option<(&Request, Option<usize>)> = None;
        if let Some(mi) = matched {
            if let Some(si) = reqs[mi].slot_child
                && self.slot_match(u, &reqs[mi].with[si])
            {
                slot = Some((&reqs[mi].with[si], None));
            }
        } else if let Some(si) = reqs.iter().position(|r| r.is_slot)
            && self.slot_match(u, &reqs[si])
        {
            slot = Some((&reqs[si], Some(si)));
        }
        if matched.is_none() && slot.is_none() && !pristine {
            return;
        }
        self.pre += 1;
        // Down vertices are out even for satisfiability: Fluxion drops
        // them from the totals its satisfiability check compares against.
        if self.honor_down && x.status == Status::Down {
            return;
        }
        // One look at the vertex's spans answers availability, "held by
        // anyone" and, for a leaf, pruning.
        let (avail, held) = if self.sat {
            (x.size, false)
        } else {
            let use_ = g.usage(u, self.at, self.end);
            let avail = if use_.exclusive_held {
                0
            } else {
                x.size.saturating_sub(use_.peak_amount)
            };
            (avail, use_.any_held)
        };
        if avail == 0 {
            return;
        }
        let is_node = Some(x.kind) == self.node_kind;
        if is_node && self.policy.node_exclusive() && held {
            return;
        }
        let leaf = x.children().is_empty() && g.associated_children(u).is_empty();
        let child_factor = if self.policy.node_centric() && is_node {
            self.node_factor(u)
        } else {
            node_factor
        };
        let own_score = self.score(u, if is_node { 0 } else { node_factor });
        match (matched, slot) {
            (Some(mi), _) => {
                let r = &reqs[mi];
                if excl_in && r.exclusive == Some(false) {
                    return;
                }
                let x_in = excl_in
                    || r.exclusive == Some(true)
                    || (is_node && self.policy.node_exclusive());
                if x_in && held {
                    return;
                }
                let fits = if leaf {
                    self.leaf_fits(x.kind, avail, &r.unit_needs)
                } else {
                    self.prune_ok(u, &r.unit_needs)
                };
                if !fits {
                    return;
                }
                self.enter(u);
                let claims = match slot {
                    Some((s, _)) => {
                        let mut slots = self.build_slots(u, s, child_factor);
                        self.sort(&mut slots);
                        let mut claims = Vec::new();
                        if !self.take_best(&slots, s, &mut claims) {
                            return;
                        }
                        claims
                    }
                    None => {
                        let mut kids = self.cand_pool.pop().unwrap_or_default();
                        if !r.with.is_empty() {
                            self.explore(
                                u,
                                &r.with,
                                false,
                                x_in,
                                child_factor,
                                false,
                                1,
                                &mut kids,
                            );
                        }
                        let mut claims = Vec::new();
                        let ok = self.choose_each(&mut kids, &r.with, &mut claims);
                        kids.clear();
                        self.cand_pool.push(kids);
                        if !ok {
                            return;
                        }
                        claims
                    }
                };
                // A node handed out whole stands for everything in it (see
                // `emit::order`): what was chosen below it only had to fit.
                let whole_node = is_node && self.policy.node_exclusive();
                // An exclusive leaf of the request holds its whole subtree
                // without printing it (a "shadow" claim: needs 0).
                let claims = if whole_node {
                    Vec::new()
                } else if x_in
                    && r.with.is_empty()
                    && r.exclusive != Some(true)
                    && !g.children(u).is_empty()
                {
                    g.subtree(u)
                        .into_iter()
                        .skip(1)
                        .map(|v| Emit {
                            vertex: v,
                            needs: 0,
                            exclusive: true,
                        })
                        .collect()
                } else {
                    claims
                };
                let whole =
                    !whole_node && x_in && r.exclusive == Some(true) && !g.children(u).is_empty();
                let claims = if whole {
                    // An explicitly exclusive vertex is handed out with
                    // everything below it.
                    g.subtree(u)
                        .into_iter()
                        .skip(1)
                        .map(|v| Emit {
                            vertex: v,
                            needs: g.vertex(v).map_or(1, |y| y.size),
                            exclusive: true,
                        })
                        .collect()
                } else {
                    claims
                };
                out.push(Cand {
                    idx: mi,
                    vertex: u,
                    tie: x.uniq_id,
                    score: own_score,
                    count: avail,
                    exclusive: x_in,
                    is_vertex: true,
                    claims,
                });
            }
            (None, Some((s, Some(si)))) => {
                if !self.prune_ok(u, &s.unit_needs) {
                    return;
                }
                self.enter(u);
                let mut slots = self.build_slots(u, s, child_factor);
                for c in &mut slots {
                    c.idx = si;
                }
                out.extend(slots);
            }
            _ => {
                // Pristine: pass the same level down.
                if !reqs.iter().any(|r| self.prune_ok(u, &r.unit_needs)) {
                    return;
                }
                self.enter(u);
                self.explore(u, reqs, true, excl_in, child_factor, top, 1, out);
            }
        }
        self.post += 1;
    }

    /// Packs `u`'s children into as many whole slots of shape `slot.with` as fit.
    fn build_slots(&mut self, u: VertexId, slot: &Request, node_factor: i64) -> Vec<Cand> {
        let mut kids = self.cand_pool.pop().unwrap_or_default();
        let mult = slot.effective_max();
        self.explore(
            u,
            &slot.with,
            false,
            true,
            node_factor,
            false,
            mult,
            &mut kids,
        );
        let out = match &slot.alternatives {
            None => {
                self.sort(&mut kids);
                self.pack_slots(u, slot, &kids)
            }
            Some(group) => {
                self.sort_as_fluxion(&mut kids, |_| 1);
                self.pack_or_slots(u, slot, group, &kids)
            }
        };
        kids.clear();
        self.cand_pool.push(kids);
        out
    }

    /// Deals `kids` (sorted by [`Self::sort`]) out into as many whole
    /// slots of shape `slot.with` as they make, each taking the best of
    /// what is left.
    fn pack_slots(&self, u: VertexId, slot: &Request, kids: &[Cand]) -> Vec<Cand> {
        let mut per_elem: Vec<(&[Cand], u64)> = Vec::with_capacity(slot.with.len());
        let mut nslots = u64::MAX;
        for (ei, e) in slot.with.iter().enumerate() {
            let mine = answering(kids, ei);
            let qc: u64 = mine.iter().fold(0u64, |a, c| a.saturating_add(c.count));
            let Some(per_slot) = e.count.best_within(qc) else {
                return Vec::new();
            };
            let mut shares = 0u64;
            let mut acc = 0u64;
            for c in mine {
                acc = acc.saturating_add(c.count);
                if acc >= per_slot {
                    shares += 1;
                    acc = 0;
                }
            }
            nslots = nslots.min(shares);
            per_elem.push((mine, per_slot));
        }
        if nslots == u64::MAX || nslots == 0 {
            return Vec::new();
        }
        nslots = nslots.min(slot.effective_max());
        let uniq = self.g.vertex(u).map_or(0, |x| x.uniq_id);
        let mut cursors = vec![0usize; per_elem.len()];
        let mut out = Vec::new();
        for i in 0..nslots {
            let mut slot = SlotFill::default();
            for (ei, (mine, per_slot)) in per_elem.iter().enumerate() {
                if !slot.take(mine, &mut cursors[ei], *per_slot) {
                    return out;
                }
            }
            out.push(slot.into_cand(u, uniq, i));
        }
        out
    }
}

/// One slot being dealt: the claims and the score of what it takes.
#[derive(Default)]
struct SlotFill {
    claims: Vec<Emit>,
    score: i64,
}

impl SlotFill {
    /// Takes candidates of `pool` (best first) from `*cursor` on until
    /// `want` units are in; false when the pool runs out first.
    fn take(&mut self, pool: &[Cand], cursor: &mut usize, want: u64) -> bool {
        let mut got = 0u64;
        while got < want {
            let Some(c) = pool.get(*cursor) else {
                return false;
            };
            *cursor += 1;
            self.claims.push(Emit {
                vertex: c.vertex,
                needs: c.count,
                exclusive: true,
            });
            self.claims.extend(c.claims.iter().copied());
            self.score = self.score.saturating_add(c.score);
            got = got.saturating_add(c.count);
        }
        true
    }

    /// The slot as a candidate: the `i`-th dealt at `u` (whose unique id
    /// is `uniq`), which ties break by.
    fn into_cand(self, u: VertexId, uniq: u64, i: u64) -> Cand {
        Cand {
            idx: 0,
            vertex: u,
            tie: uniq.saturating_mul(1 << 16).saturating_add(i),
            score: self.score,
            count: 1,
            exclusive: true,
            is_vertex: false,
            claims: self.claims,
        }
    }
}
