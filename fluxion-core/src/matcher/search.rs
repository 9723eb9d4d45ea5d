//! One traversal: evaluate candidates bottom-up, choose the best top-down.

use std::collections::{HashMap, HashSet};

use super::{Emit, Policy};
use crate::graph::{ResourceGraph, Status, TypeId, VertexId};
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
    /// Units of each tracked type one unit of this request needs below it.
    unit_needs: Vec<u64>,
}

impl Request {
    /// Resolves `spec`'s top-level resources.
    pub(crate) fn build(g: &ResourceGraph, spec: &Jobspec) -> Result<Vec<Request>, String> {
        spec.resources.iter().map(|r| Self::one(g, r)).collect()
    }

    fn one(g: &ResourceGraph, r: &Resource) -> Result<Request, String> {
        let with: Vec<Request> = r.with.iter().map(|c| Self::one(g, c)).collect::<Result<_, _>>()?;
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
            for (i, n) in c.unit_needs.iter().enumerate() {
                unit_needs[i] = unit_needs[i].saturating_add(n.saturating_mul(c.count.min));
            }
        }
        let slot_child = with.iter().position(|c| c.is_slot);
        Ok(Request { kind, is_slot, count: r.count, exclusive: r.exclusive, with, slot_child, unit_needs })
    }

    /// Largest count worth collecting before the best ones are known.
    fn effective_max(&self) -> u64 {
        self.count.max
    }
}

/// Result of one traversal.
pub(crate) struct Found {
    pub(crate) emitted: Option<Vec<Emit>>,
    pub(crate) pre: u64,
    pub(crate) post: u64,
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
    /// The present, for "free now" weights of the first-match walk.
    now: Time,
    sat: bool,
    node_kind: Option<TypeId>,
    ordered: &'a [bool],
    pre: u64,
    post: u64,
}

/// Runs one traversal at `[at, at + duration)`; `sat` ignores allocations and
/// status (satisfiability on the empty graph). `ordered[t]` says whether ids
/// of type `t` grow in depth-first order, which allows stopping early.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run(
    g: &ResourceGraph,
    policy: Policy,
    reqs: &[Request],
    now: Time,
    at: Time,
    duration: u64,
    sat: bool,
    ordered: &[bool],
) -> Found {
    let mut s = Search {
        g,
        policy,
        at,
        end: at.saturating_add(duration.min(i64::MAX as u64) as i64),
        now,
        sat,
        node_kind: g.type_id("node"),
        ordered,
        pre: 0,
        post: 0,
    };
    let Some(root) = g.root() else {
        return Found { emitted: None, pre: 0, post: 0 };
    };
    let mut cands = Vec::new();
    s.eval(root, reqs, true, false, 0, true, &mut cands);
    let mut chosen = Vec::new();
    for (i, r) in reqs.iter().enumerate() {
        let mine: Vec<Cand> = cands.iter().filter(|c| c.idx == i).cloned().collect();
        match s.choose(mine, r) {
            Some(c) => chosen.extend(c),
            None => return Found { emitted: None, pre: s.pre, post: s.post },
        }
    }
    let emitted = s.emit(root, chosen);
    Found { emitted: Some(emitted), pre: s.pre, post: s.post }
}

impl Search<'_> {
    fn score(&self, v: VertexId, node_factor: i64) -> i64 {
        let id = self.g.vertex(v).map_or(0, |x| x.id);
        id + 1 + node_factor
    }

    fn node_factor(&self, v: VertexId) -> i64 {
        let Some(x) = self.g.vertex(v) else { return 0 };
        let add = (x.id + 1).max(0) + 1;
        let tie = ((x.uniq_id % 10000) as i64 - 1).abs();
        add.saturating_mul(10000).saturating_add(tie)
    }

    fn prune_ok(&self, v: VertexId, needs: &[u64]) -> bool {
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

    fn slot_match(&self, v: VertexId, slot: &Request) -> bool {
        let kids = self.g.children(v);
        slot.with.iter().all(|c| {
            c.kind.is_some_and(|k| kids.iter().any(|&k2| self.g.vertex(k2).is_some_and(|x| x.kind == k)))
        })
    }

    /// Sorts candidates best first: by score in the policy's direction, ties
    /// by graph order.
    fn sort(&self, cands: &mut [Cand]) {
        if self.policy.prefers_high() {
            cands.sort_by(|a, b| b.score.cmp(&a.score).then(a.tie.cmp(&b.tie)));
        } else {
            cands.sort_by(|a, b| a.score.cmp(&b.score).then(a.tie.cmp(&b.tie)));
        }
    }

    /// Picks the best candidates for `req`, taking partial amounts of pools.
    fn choose(&self, mut cands: Vec<Cand>, req: &Request) -> Option<Vec<Emit>> {
        let qc: u64 = cands.iter().map(|c| c.count).sum();
        let want = req.count.best_within(qc)?;
        self.sort(&mut cands);
        let mut out = Vec::new();
        let mut got = 0u64;
        for c in cands {
            if got >= want {
                break;
            }
            let needs = c.count.min(want - got);
            got += needs;
            if c.is_vertex {
                out.push(Emit { vertex: c.vertex, needs, exclusive: c.exclusive });
            }
            out.extend(c.claims);
        }
        (got >= want).then_some(out)
    }

    /// Whether the candidates gathered so far already hold the best answer
    /// (ids grow in walk order, so later ones rank lower; or the policy
    /// takes the first fit).
    fn enough(&self, reqs: &[Request], out: &[Cand], multiplier: u64) -> bool {
        reqs.iter().enumerate().all(|(i, r)| {
            let got: u64 = out.iter().filter(|c| c.idx == i).map(|c| c.count).sum();
            got >= r.effective_max().saturating_mul(multiplier)
        })
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
        let first = self.policy.stops_early() && !self.sat;
        let stop = first || (top && self.can_stop_early(reqs));
        let base = out.len();
        if first {
            // Fluxion's first-match walk: most free resources first, then
            // the newest vertex.
            let key = g.tracked_types().first().copied();
            let mut order: Vec<(u64, u64, VertexId)> = kids
                .iter()
                .map(|&c| {
                    // Leaves keep a constant weight (no subtree plan).
                    let w = if g.children(c).is_empty() {
                        0
                    } else {
                        key.and_then(|t| g.free_units(c, t, self.now, self.now + 1)).unwrap_or(0)
                    };
                    (w, g.vertex(c).map_or(0, |x| x.uniq_id), c)
                })
                .collect();
            order.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
            for (_, _, c) in order {
                self.eval(c, reqs, pristine, excl, node_factor, top, out);
                if self.enough(reqs, &out[base..], multiplier) {
                    break;
                }
            }
            return;
        }
        let reverse = stop && self.policy.prefers_high();
        for i in 0..kids.len() {
            let c = if reverse { kids[kids.len() - 1 - i] } else { kids[i] };
            self.eval(c, reqs, pristine, excl, node_factor, top, out);
            if stop && self.enough(reqs, &out[base..], multiplier) {
                break;
            }
        }
    }

    fn can_stop_early(&self, reqs: &[Request]) -> bool {
        if self.sat || self.policy.stops_early() {
            return true;
        }
        if self.policy == Policy::Locality {
            return false;
        }
        fn ordered(s: &Search<'_>, r: &Request) -> bool {
            if r.is_slot {
                r.with.iter().all(|c| ordered(s, c))
            } else {
                r.kind.is_some_and(|k| s.ordered.get(k.0 as usize).copied().unwrap_or(false))
            }
        }
        reqs.iter().all(|r| r.count.max != u64::MAX && ordered(self, r))
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
        if !self.sat && x.status == Status::Down {
            return;
        }
        let avail = if self.sat { x.size } else { g.available(u, self.at, self.end) };
        if avail == 0 {
            return;
        }
        let is_node = Some(x.kind) == self.node_kind;
        if is_node
            && self.policy.node_exclusive()
            && !self.sat
            && g.usage(u, self.at, self.end).any_held
        {
            return;
        }
        let child_factor =
            if self.policy.node_centric() && is_node { self.node_factor(u) } else { node_factor };
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
                if x_in && !self.sat && g.usage(u, self.at, self.end).any_held {
                    return;
                }
                if !self.prune_ok(u, &r.unit_needs) {
                    return;
                }
                let claims = match slot {
                    Some((s, _)) => {
                        let slots = self.build_slots(u, s, child_factor);
                        match self.choose(slots, s) {
                            Some(c) => c,
                            None => return,
                        }
                    }
                    None => {
                        let mut kids = Vec::new();
                        if !r.with.is_empty() {
                            self.explore(u, &r.with, false, x_in, child_factor, false, 1, &mut kids);
                        }
                        let mut claims = Vec::new();
                        for (ci, creq) in r.with.iter().enumerate() {
                            let mine: Vec<Cand> =
                                kids.iter().filter(|c| c.idx == ci).cloned().collect();
                            match self.choose(mine, creq) {
                                Some(c) => claims.extend(c),
                                None => return,
                            }
                        }
                        claims
                    }
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
                self.explore(u, reqs, true, excl_in, child_factor, top, 1, out);
            }
        }
        self.post += 1;
    }

    /// Packs `u`'s children into as many whole slots of shape `slot.with` as fit.
    fn build_slots(&mut self, u: VertexId, slot: &Request, node_factor: i64) -> Vec<Cand> {
        let mut kids = Vec::new();
        let mult = slot.effective_max();
        self.explore(u, &slot.with, false, true, node_factor, false, mult, &mut kids);
        let mut per_elem: Vec<(Vec<Cand>, u64)> = Vec::new();
        let mut nslots = u64::MAX;
        for (ei, e) in slot.with.iter().enumerate() {
            let mut mine: Vec<Cand> = kids.iter().filter(|c| c.idx == ei).cloned().collect();
            self.sort(&mut mine);
            let qc: u64 = mine.iter().map(|c| c.count).sum();
            let Some(per_slot) = e.count.best_within(qc) else { return Vec::new() };
            let mut shares = 0u64;
            let mut acc = 0u64;
            for c in &mine {
                acc += c.count;
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
            let mut claims = Vec::new();
            let mut score = 0i64;
            for (ei, (mine, per_slot)) in per_elem.iter().enumerate() {
                let mut j = 0u64;
                while j < *per_slot {
                    let Some(c) = mine.get(cursors[ei]) else { return out };
                    cursors[ei] += 1;
                    claims.push(Emit { vertex: c.vertex, needs: c.count, exclusive: true });
                    claims.extend(c.claims.iter().copied());
                    score += c.score;
                    j += c.count;
                }
            }
            out.push(Cand {
                idx: 0,
                vertex: u,
                tie: uniq.saturating_mul(1 << 16).saturating_add(i),
                score,
                count: 1,
                exclusive: true,
                is_vertex: false,
                claims,
            });
        }
        out
    }

    /// Adds pass-through ancestors and orders everything in post-order.
    fn emit(&self, root: VertexId, chosen: Vec<Emit>) -> Vec<Emit> {
        let mut map: HashMap<VertexId, Emit> = HashMap::with_capacity(chosen.len() * 2);
        for e in chosen {
            map.entry(e.vertex).or_insert(e);
        }
        let claimed: Vec<VertexId> = map.keys().copied().collect();
        for v in claimed {
            let mut cur = self.g.parent(v);
            while let Some(p) = cur {
                if map.contains_key(&p) {
                    break;
                }
                let size = self.g.vertex(p).map_or(1, |x| x.size);
                map.insert(p, Emit { vertex: p, needs: size, exclusive: false });
                cur = self.g.parent(p);
            }
        }
        if self.policy.node_exclusive() && self.node_kind.is_some() {
            // A node-exclusive policy hands out every node it touches whole.
            let nodes: Vec<VertexId> = map
                .keys()
                .copied()
                .filter(|&v| self.g.vertex(v).map(|x| x.kind) == self.node_kind)
                .collect();
            for n in nodes {
                for v in self.g.subtree(n) {
                    let size = self.g.vertex(v).map_or(1, |x| x.size);
                    let needs = if v == n { 1 } else { size };
                    map.insert(v, Emit { vertex: v, needs, exclusive: true });
                }
            }
        }
        let set: HashSet<VertexId> = map.keys().copied().collect();
        let mut out = Vec::with_capacity(map.len());
        // Iterative post-order over the emitted set.
        let mut stack: Vec<(VertexId, usize)> = Vec::new();
        if set.contains(&root) {
            stack.push((root, 0));
        }
        while let Some((v, i)) = stack.pop() {
            let kids = self.g.children(v);
            if let Some(pos) = kids[i..].iter().position(|k| set.contains(k)) {
                stack.push((v, i + pos + 1));
                stack.push((kids[i + pos], 0));
            } else if let Some(e) = map.get(&v) {
                out.push(*e);
            }
        }
        out
    }
}
