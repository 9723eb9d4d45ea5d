//! Subtree aggregates: per anchor vertex, the units of each tracked type in
//! its subtree, those hidden by down vertices, and those jobs use over time
//! (see the module docs of [`super`]).
//!
//! Every count follows one rule: a unit counts at an aggregate when no
//! vertex between it and the aggregate's vertex (both included) is down.
//! Units under a down vertex count as down, and their use by jobs does not
//! count, so the free units of a subtree are exactly its total minus down
//! minus used, whatever a down vertex holds.

use std::collections::HashSet;

use smallvec::SmallVec;

use super::{
    Claim, GraphError, IdEnd, JobHold, JobId, PruneFilters, ResolvedFilters, ResourceGraph, Status,
    TypeId, VertexId, push_snug,
};
use crate::idhash::IdBuild;
use crate::planner::Time;
use crate::timeline::Timeline;

/// Subtree counts kept on an anchor vertex, one per slot (see
/// [`ResolvedFilters`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Aggregate {
    /// Every unit in the subtree.
    totals: Box<[u64]>,
    /// Units hidden by down vertices.
    down: Box<[u64]>,
    /// Each job's counts, to release and to report per job.
    spans: Vec<AggSpan>,
    /// The same counts summed over time, for window queries that do not
    /// grow with the number of jobs.
    load: Timeline,
}

/// One job's use of a subtree during `[start, end)`, per slot.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AggSpan {
    job: JobId,
    start: Time,
    end: Time,
    counts: Box<[u64]>,
}

impl ResourceGraph {
    /// Gives `v` an aggregate if its type is an anchor and it has none.
    fn ensure_agg(&mut self, v: VertexId) {
        let n = self.filters.width();
        if n == 0 || self.g[v].agg.is_some() || !self.filters.is_anchor(self.g[v].kind) {
            return;
        }
        // A leaf turning into an inner vertex: its own units count too.
        let mut totals = vec![0u64; n].into_boxed_slice();
        let (kind, id) = (self.g[v].kind, self.g[v].id);
        for slot in self.filters.slots_of(kind, id) {
            if self.filters.tracks(kind, slot) {
                totals[slot] = self.g[v].size;
            }
        }
        self.g[v].agg = Some(Box::new(Aggregate {
            totals,
            down: vec![0u64; n].into_boxed_slice(),
            spans: Vec::new(),
            load: Timeline::new(n),
        }));
    }

    /// Counts the units of `v`, just added as a leaf, at its ancestors
    /// (giving the parent an aggregate if it is an anchor).
    pub(super) fn count_new_vertex(&mut self, v: VertexId) {
        let Some(p) = self.g[v].parent else { return };
        if self.filters.width() == 0 {
            return;
        }
        self.ensure_agg(p);
        let units = self.visible_units(v);
        self.shift_totals(p, &units, 1);
    }

    /// Takes the units of the subtree of `v` (about to be removed, every
    /// vertex in it up) from the aggregates above it.
    pub(super) fn uncount_subtree(&mut self, v: VertexId) {
        let Some(p) = self.g[v].parent else { return };
        if self.filters.width() == 0 {
            return;
        }
        let units = self.visible_units(v);
        self.shift_totals(p, &units, -1);
    }

    /// Adds (`sign = 1`) or takes (`-1`) `units` to or from the totals of
    /// `from` and its ancestors, and from their down counts once a down
    /// vertex on the way hides them.
    fn shift_totals(&mut self, from: VertexId, units: &[u64], sign: i8) {
        let mut hidden = false;
        let mut cur = Some(from);
        while let Some(a) = cur {
            hidden |= self.g[a].status == Status::Down;
            let kind = self.g[a].kind;
            let tracked: SmallVec<[bool; 8]> = (0..units.len())
                .map(|s| self.filters.tracks(kind, s))
                .collect();
            if tracked.contains(&true) {
                self.ensure_agg(a);
            }
            if let Some(agg) = self.g[a].agg.as_mut() {
                let shift = |c: &mut u64, d: u64| {
                    *c = if sign > 0 {
                        *c + d
                    } else {
                        c.saturating_sub(d)
                    };
                };
                for (s, &d) in units.iter().enumerate().filter(|&(s, _)| tracked[s]) {
                    shift(&mut agg.totals[s], d);
                    if hidden {
                        shift(&mut agg.down[s], d);
                    }
                }
            }
            cur = self.g[a].parent;
        }
    }

    /// Installs prune filters and recomputes every aggregate from the current
    /// graph and jobs.
    pub fn set_prune_filters(&mut self, spec: &PruneFilters) -> Result<(), GraphError> {
        let mut targets = Vec::new();
        let mut rules = Vec::new();
        for r in spec.rules() {
            let t = self.intern_type(&r.target)?;
            let slot = match targets.iter().position(|&x| x == t) {
                Some(s) => s,
                None => {
                    targets.push(t);
                    targets.len() - 1
                }
            };
            let anchor = match &r.anchor {
                Some(a) => Some(self.intern_type(a)?),
                None => None,
            };
            rules.push((anchor, slot));
        }
        self.filters = ResolvedFilters::new(spec.clone(), targets, rules);
        // What the id-end slots count may change.
        self.free_epoch += 1;
        self.rebuild_aggregates();
        Ok(())
    }
    /// The installed prune filters.
    pub fn prune_filters(&self) -> &PruneFilters {
        &self.filters.spec
    }
    /// Types tracked by the aggregates.
    pub fn tracked_types(&self) -> &[TypeId] {
        &self.filters.targets
    }

    pub(super) fn rebuild_aggregates(&mut self) {
        let ids: Vec<VertexId> = self.g.node_indices().collect();
        for &v in &ids {
            self.g[v].agg = None;
        }
        let g = &self.g;
        self.filters
            .set_id_ends(ids.iter().map(|&v| (g[v].kind, g[v].id)));
        let n = self.filters.width();
        let Some(root) = self.root else { return };
        if n == 0 {
            return;
        }
        // Post-order: totals of a vertex = own + children's subtree sums,
        // kept in one flat array indexed by vertex (no per-vertex maps).
        let order = self.subtree(root);
        let bound = self.index_bound();
        let mut sums = vec![0u64; bound * n];
        for &v in order.iter().rev() {
            let vi = v.index();
            for slot in self.filters.slots_of(self.g[v].kind, self.g[v].id) {
                sums[vi * n + slot] += self.g[v].size;
            }
            let kind = self.g[v].kind;
            if !self.g[v].children.is_empty() && self.filters.is_anchor(kind) {
                let totals: Box<[u64]> = (0..n)
                    .map(|i| {
                        if self.filters.tracks(kind, i) {
                            sums[vi * n + i]
                        } else {
                            0
                        }
                    })
                    .collect();
                self.g[v].agg = Some(Box::new(Aggregate {
                    totals,
                    down: vec![0u64; n].into_boxed_slice(),
                    spans: Vec::new(),
                    load: Timeline::new(n),
                }));
            }
            if let Some(p) = self.g[v].parent {
                let pi = p.index();
                for i in 0..n {
                    sums[pi * n + i] += sums[vi * n + i];
                }
            }
        }
        // Re-apply down statuses (outermost first is not required: each
        // call counts only units not hidden below).
        let downs: Vec<VertexId> = order
            .iter()
            .copied()
            .filter(|&v| self.g[v].status == Status::Down)
            .collect();
        for &v in downs.iter().rev() {
            self.g[v].status = Status::Up;
            let _ = self.set_status(v, Status::Down);
        }
        // Re-apply job usage.
        let jobs: Vec<(JobId, JobHold)> = self.jobs.iter().map(|(j, h)| (*j, h.clone())).collect();
        for (j, h) in jobs {
            self.mark_exclusive(&h.claims);
            self.add_agg_usage(j, h.start, h.end, &h.claims, 1);
            self.flush_fresh_loads();
        }
    }

    /// Tracked units a claim takes out of the aggregates: nothing if an
    /// exclusive claim of the same job above it already covers it; the
    /// whole subtree for an exclusive inner vertex (nothing below it can be
    /// used by anyone else) but what down vertices in it hide; else the
    /// units of the vertex itself.
    fn claim_units(&self, c: &Claim) -> SmallVec<[(usize, u64); 3]> {
        let x = &self.g[c.vertex];
        if c.exclusive && !x.children.is_empty() {
            // An aggregate tracking every slot knows the answer (unless the
            // vertex is down: then it counts its own units as hidden).
            if let Some(agg) = &x.agg
                && x.status == Status::Up
                && self.filters.tracks_every_slot(x.kind)
            {
                let visible = agg.totals.iter().zip(&agg.down).map(|(t, d)| t - d);
                return visible.enumerate().filter(|&(_, n)| n > 0).collect();
            }
            return self
                .visible_units(c.vertex)
                .into_iter()
                .enumerate()
                .filter(|&(_, n)| n > 0)
                .collect();
        }
        let units = if c.amount > 0 {
            c.amount
        } else if c.exclusive {
            x.size
        } else {
            0
        };
        if units == 0 {
            return SmallVec::new();
        }
        let slots = self.filters.slots_of(x.kind, x.id);
        slots.into_iter().map(|slot| (slot, units)).collect()
    }

    /// Adds the entries of the job just added to the load timelines of the
    /// aggregates that got one (each is the last entry of its aggregate).
    pub(super) fn flush_fresh_loads(&mut self) {
        let fresh = std::mem::take(&mut self.fresh);
        for &a in &fresh {
            if let Some(agg) = self.g[a].agg.as_deref_mut()
                && let Some(entry) = agg.spans.last()
            {
                for (slot, &units) in entry.counts.iter().enumerate() {
                    agg.load.add(entry.start, entry.end, slot, units);
                }
            }
        }
        self.fresh = fresh;
        self.fresh.clear();
    }

    /// Makes `held` the set of `claims`' exclusive vertices, for
    /// [`ResourceGraph::claim_units`] of the same job's claims.
    pub(super) fn mark_exclusive(&mut self, claims: &[Claim]) {
        self.held.clear(self.index_bound());
        for c in claims.iter().filter(|c| c.exclusive) {
            self.held.insert(c.vertex);
        }
    }

    /// Adds (`sign = 1`) or removes (`sign = -1`) the units of `claims` (of
    /// live vertices) from the aggregate spans of each claimed vertex and
    /// its ancestors. A claim under one of the exclusive claims marked by
    /// [`ResourceGraph::mark_exclusive`] counts nothing: that claim already
    /// covers it.
    pub(super) fn add_agg_usage(
        &mut self,
        job: JobId,
        start: Time,
        end: Time,
        claims: &[Claim],
        sign: i8,
    ) {
        if self.filters.width() == 0 {
            return;
        }
        // Siblings share their ancestors, and claims come in post-order:
        // the answer for the last claim's parent usually holds.
        let mut last: Option<(VertexId, bool)> = None;
        for c in claims {
            if !self.g.contains_node(c.vertex) {
                continue;
            }
            let parent = self.g[c.vertex].parent;
            let covered = match last {
                Some((p, covered)) if Some(p) == parent => covered,
                _ => {
                    let covered = self.ancestors(c.vertex).any(|p| self.held.contains(p));
                    last = parent.map(|p| (p, covered));
                    covered
                }
            };
            if covered {
                continue;
            }
            for (slot, units) in self.claim_units(c) {
                self.add_agg_units(job, start, end, c.vertex, slot, units, sign, false);
            }
        }
    }

    /// Adds (`sign = 1`) or takes (`-1`) `units` of `slot` used by `job`
    /// during `[start, end)` at `vertex` and its ancestors that track the
    /// slot, up to the first down vertex: a down vertex hides its subtree,
    /// so its aggregate and those above count none of the use below it.
    /// `direct` updates the load timelines at once; otherwise an added
    /// job's entries reach them together (see
    /// [`ResourceGraph::flush_fresh_loads`]).
    #[allow(clippy::too_many_arguments)]
    fn add_agg_units(
        &mut self,
        job: JobId,
        start: Time,
        end: Time,
        vertex: VertexId,
        slot: usize,
        units: u64,
        sign: i8,
        direct: bool,
    ) {
        let n = self.filters.width();
        let mut cur = Some(vertex);
        while let Some(a) = cur {
            if self.g[a].status == Status::Down {
                break;
            }
            let kind = self.g[a].kind;
            let tracked = self.filters.tracks(kind, slot);
            if let (true, Some(agg)) = (tracked, self.g[a].agg.as_mut()) {
                let same = |s: &AggSpan| s.job == job && s.start == start && s.end == end;
                // A job's claims are added together, so while it is being
                // added its entry, if any, is the last one: looking further
                // would scan every job through this vertex.
                let pos = if sign > 0 && !direct {
                    agg.spans
                        .last()
                        .filter(|s| same(s))
                        .map(|_| agg.spans.len() - 1)
                } else {
                    agg.spans.iter().rposition(same)
                };
                if sign > 0 {
                    // The load timeline takes a job's entry whole once all
                    // its claims are in: one update per vertex instead of
                    // one per claim below it.
                    match pos {
                        Some(i) => agg.spans[i].counts[slot] += units,
                        None => {
                            if !direct {
                                self.fresh.push(a);
                            }
                            let mut counts = vec![0u64; n].into_boxed_slice();
                            counts[slot] = units;
                            push_snug(
                                &mut agg.spans,
                                AggSpan {
                                    job,
                                    start,
                                    end,
                                    counts,
                                },
                            );
                        }
                    }
                    if direct {
                        agg.load.add(start, end, slot, units);
                    }
                } else if let Some(i) = pos {
                    let cnt = &mut agg.spans[i].counts[slot];
                    let taken = units.min(*cnt);
                    *cnt -= taken;
                    agg.load.sub(start, end, slot, taken);
                    if agg.spans[i].counts.iter().all(|&x| x == 0) {
                        agg.spans.swap_remove(i);
                    }
                }
            }
            cur = self.g[a].parent;
        }
    }

    /// Free units of type `t` in the subtree of `v` (inclusive) throughout
    /// `[start, end)`: total minus down minus the peak in use. Exact for
    /// tracked types at anchor vertices; for a leaf, its own availability;
    /// `None` when `v` keeps no aggregate for `t` (no pruning possible).
    pub fn free_units(&self, v: VertexId, t: TypeId, start: Time, end: Time) -> Option<u64> {
        self.free_in_slot(v, t, None, self.filters.slot(t), start, end)
    }

    /// The id whose units of type `t` [`ResourceGraph::free_units_at_id_end`]
    /// counts: `t`'s lowest or highest id when the prune filters track `t`
    /// and two vertices or more share that id (as when core ids restart in
    /// every node), as of the last [`ResourceGraph::set_prune_filters`].
    pub fn id_end(&self, t: TypeId, end: IdEnd) -> Option<i64> {
        self.filters.end_slot(t, end).map(|(_, id)| id)
    }

    /// Like [`ResourceGraph::free_units`], counting only the units of type
    /// `t` whose id is [`ResourceGraph::id_end`]; `None` when no such count
    /// is kept. A subtree with none free cannot offer a vertex at that id,
    /// the best the `low` (`high`) policy can find.
    pub fn free_units_at_id_end(
        &self,
        v: VertexId,
        t: TypeId,
        end: IdEnd,
        start: Time,
        stop: Time,
    ) -> Option<u64> {
        let (slot, id) = self.filters.end_slot(t, end)?;
        self.free_in_slot(v, t, Some(id), Some(slot), start, stop)
    }

    /// Free units of type `t` (with id `id`, if given) in the subtree of `v`
    /// during `[start, end)`: a leaf answers for itself, an inner vertex
    /// from its aggregate's `slot`.
    fn free_in_slot(
        &self,
        v: VertexId,
        t: TypeId,
        id: Option<i64>,
        slot: Option<usize>,
        start: Time,
        end: Time,
    ) -> Option<u64> {
        let x = self.g.node_weight(v)?;
        if x.status == Status::Down {
            return Some(0);
        }
        let u = self.vertex_usage(v, x, start, end);
        if u.exclusive_held {
            return Some(0);
        }
        if x.children.is_empty() {
            if x.kind != t || id.is_some_and(|id| id != x.id) {
                return Some(0);
            }
            return Some(x.size.saturating_sub(u.peak_amount));
        }
        let slot = slot?;
        if !self.filters.tracks(x.kind, slot) {
            return None;
        }
        let agg = x.agg.as_ref()?;
        let used = agg.load.peak(slot, start, end);
        Some(
            agg.totals[slot]
                .saturating_sub(agg.down[slot])
                .saturating_sub(used),
        )
    }
    /// Units of tracked type `t` that `job` holds in the subtree of `v`
    /// (from the aggregates; `None` when `v` keeps none for `t`).
    pub fn job_units(&self, v: VertexId, t: TypeId, job: JobId) -> Option<u64> {
        let x = self.g.node_weight(v)?;
        let slot = self.filters.slot(t)?;
        let agg = x.agg.as_ref()?;
        Some(
            agg.spans
                .iter()
                .filter(|s| s.job == job)
                .map(|s| s.counts[slot])
                .sum(),
        )
    }

    /// Total units of tracked type `t` in the subtree of `v` (ignoring state).
    pub fn subtree_total(&self, v: VertexId, t: TypeId) -> Option<u64> {
        let x = self.g.node_weight(v)?;
        if x.children.is_empty() {
            return Some(if x.kind == t { x.size } else { 0 });
        }
        let slot = self.filters.slot(t)?;
        x.agg.as_ref().map(|a| a.totals[slot])
    }

    /// Sets the status of `v` (which differs from its current one),
    /// updating the aggregates of `v` and of its ancestors.
    pub(super) fn change_status(&mut self, v: VertexId, status: Status) {
        self.free_epoch += 1;
        let n = self.filters.width();
        if n == 0 {
            self.g[v].status = status;
            return;
        }
        // A down vertex hides its subtree from the aggregates of itself and
        // of its ancestors up to the next down one (which hides it already):
        // its units count as down there, and the jobs' use of them no more.
        let delta = self.visible_units(v);
        if status == Status::Down {
            self.shift_use_below(v, &delta, -1);
        }
        let mut a = Some(v);
        while let Some(x) = a {
            if x != v && self.g[x].status == Status::Down {
                break;
            }
            if let Some(agg) = self.g[x].agg.as_mut() {
                for (s, d) in delta.iter().enumerate() {
                    if status == Status::Down {
                        agg.down[s] += d;
                    } else {
                        agg.down[s] = agg.down[s].saturating_sub(*d);
                    }
                }
            }
            a = self.g[x].parent;
        }
        self.g[v].status = status;
        if status == Status::Up {
            self.shift_use_below(v, &delta, 1);
        }
    }

    /// Per aggregate slot, the units in the subtree of `v` (inclusive) not
    /// hidden by a down vertex below `v`.
    fn visible_units(&self, v: VertexId) -> Vec<u64> {
        let mut units = vec![0u64; self.filters.width()];
        let mut stack = vec![v];
        while let Some(u) = stack.pop() {
            for s in self.filters.slots_of(self.g[u].kind, self.g[u].id) {
                units[s] += self.g[u].size;
            }
            for &c in &self.g[u].children {
                if self.g[c].status == Status::Up {
                    stack.push(c);
                }
            }
        }
        units
    }

    /// Adds (`sign = 1`) or takes (`-1`) the jobs' use of the subtree of
    /// `v` to or from the aggregates above it, as `v` comes up (goes down);
    /// `visible` is [`ResourceGraph::visible_units`] of `v`. A job's use
    /// counts where its claims count (see [`ResourceGraph::add_agg_usage`]):
    /// from each claim below `v` up, or, for a job holding an ancestor of
    /// `v` exclusively, from that ancestor up, with all of `v`'s units.
    fn shift_use_below(&mut self, v: VertexId, visible: &[u64], sign: i8) {
        // Ancestors up to the first down one (above it nothing counts v).
        let path: Vec<VertexId> = self
            .ancestors(v)
            .take_while(|&a| self.g[a].status == Status::Up)
            .collect();
        let mut below: HashSet<VertexId, IdBuild> = HashSet::default();
        let mut jobs: Vec<JobId> = Vec::new();
        let mut stack = vec![v];
        while let Some(u) = stack.pop() {
            below.insert(u);
            jobs.extend(self.g[u].spans.iter().map(|s| s.job));
            let up = self.g[u].children.iter().copied();
            stack.extend(up.filter(|&c| self.g[c].status == Status::Up));
        }
        for &a in &path {
            jobs.extend(
                self.g[a]
                    .spans
                    .iter()
                    .filter(|s| s.exclusive)
                    .map(|s| s.job),
            );
        }
        jobs.sort_unstable();
        jobs.dedup();
        for job in jobs {
            let Some(hold) = self.jobs.get(&job) else {
                continue;
            };
            let (start, end) = (hold.start, hold.end);
            let claims = hold.claims.clone();
            self.mark_exclusive(&claims);
            if let Some(&top) = path.iter().rev().find(|&&a| self.held.contains(a)) {
                // Held under a claim above the first down ancestor: that
                // claim covers `top`'s and counts none of `v`'s units.
                if self.ancestors(top).any(|p| self.held.contains(p)) {
                    continue;
                }
                for (slot, &units) in visible.iter().enumerate().filter(|(_, u)| **u > 0) {
                    self.add_agg_units(job, start, end, top, slot, units, sign, true);
                }
                continue;
            }
            for c in claims.iter().filter(|c| below.contains(&c.vertex)) {
                if self.ancestors(c.vertex).any(|p| self.held.contains(p)) {
                    continue;
                }
                for (slot, units) in self.claim_units(c) {
                    self.add_agg_units(job, start, end, v, slot, units, sign, true);
                }
            }
        }
    }
}
