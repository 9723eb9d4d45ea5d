//! Placing a whole group in one call: fewest racks and zones first, each
//! pod's cores and GPUs in one NUMA zone where it fits.

use std::collections::HashMap;

use super::graph::{Agg, GroupGraph, Need, Units};
use super::types::{
    GroupRequest, MatchError, NodeFilter, NodeId, Placement, PlacementPolicy, PodClaim,
};

/// A class of the request, resolved for matching.
struct Class {
    index: usize,
    need: Need,
    count: i64,
    allowed: Option<Vec<bool>>,
}

impl Class {
    fn allows(&self, id: NodeId) -> bool {
        match &self.allowed {
            None => true,
            Some(bits) => bits.get(id.0 as usize).copied().unwrap_or(false),
        }
    }
}

/// Which units a match reads: free now, or total capacity (the empty cluster).
#[derive(Clone, Copy, PartialEq, Eq)]
enum View {
    Free,
    Capacity,
}

impl GroupGraph {
    /// Places the whole group on free resources, or says why not: `Busy`
    /// when it would fit the empty cluster, `Unsatisfiable` when it never can.
    /// Does not change the free state; apply the result with [`GroupGraph::take`].
    pub fn match_group(&mut self, req: &GroupRequest) -> Result<Placement, MatchError> {
        if let Some(p) = self.try_match(req) {
            return Ok(p);
        }
        self.satisfiable(req)?;
        Err(MatchError::Busy(self.busy_reason(req)))
    }

    /// Places the whole group on free resources, if it fits now.
    pub fn try_match(&mut self, req: &GroupRequest) -> Option<Placement> {
        self.refresh();
        let classes = self.classes(req).ok()?;
        self.place(&classes, View::Free)
    }

    /// Whether the group fits the empty cluster (schedulable nodes, all free);
    /// `Err(Unsatisfiable(reason))` when it does not.
    pub fn satisfiable(&mut self, req: &GroupRequest) -> Result<(), MatchError> {
        self.refresh();
        let classes = self.classes(req).map_err(MatchError::Unsatisfiable)?;
        if self.place(&classes, View::Capacity).is_some() {
            return Ok(());
        }
        Err(MatchError::Unsatisfiable(self.unsat_reason(&classes)))
    }

    fn classes(&self, req: &GroupRequest) -> Result<Vec<Class>, String> {
        let mut out = Vec::with_capacity(req.classes.len());
        for (index, c) in req.classes.iter().enumerate() {
            let need = self
                .resolve(&c.demand)
                .map_err(|name| format!("no node has the resource {name}"))?;
            let allowed = match &c.filter {
                NodeFilter::Any => None,
                NodeFilter::Only(ids) => {
                    let mut bits = vec![false; self.nodes.len()];
                    for id in ids {
                        if let Some(b) = bits.get_mut(id.0 as usize) {
                            *b = true;
                        }
                    }
                    Some(bits)
                }
            };
            if c.count > 0 {
                out.push(Class {
                    index,
                    need,
                    count: i64::from(c.count),
                    allowed,
                });
            }
        }
        // Hardest pods first: GPUs, then CPU, then memory.
        out.sort_by_key(|c| std::cmp::Reverse((c.need.gpus, c.need.cpu, c.need.mem, c.count)));
        Ok(out)
    }

    fn units(&self, id: NodeId, view: View) -> Option<(&Units, bool)> {
        let slot = self.slot(id)?;
        if !slot.spec.schedulable {
            return None;
        }
        let u = if view == View::Free {
            &slot.free
        } else {
            &slot.cap
        };
        Some((u, slot.spec.single_numa))
    }

    fn rack_agg(&self, r: usize, view: View) -> &Agg {
        if view == View::Free {
            &self.racks[r].free
        } else {
            &self.racks[r].cap
        }
    }

    /// How many pods of `class` rack `r` can hold (an estimate, never low by
    /// more than NUMA splitting allows).
    fn rack_estimate(&self, r: usize, class: &Class, view: View) -> i64 {
        if !self.rack_agg(r, view).may_hold(&class.need) {
            return 0;
        }
        let mut n = 0;
        for id in &self.racks[r].nodes {
            if !class.allows(*id) {
                continue;
            }
            if let Some((u, single)) = self.units(*id, view) {
                n += class.need.count_in(u, single);
            }
        }
        n
    }

    fn place(&self, classes: &[Class], view: View) -> Option<Placement> {
        let total: i64 = classes.iter().map(|c| c.count).sum();
        if total == 0 {
            return Some(Placement { claims: Vec::new() });
        }
        if view == View::Free {
            let t = &self.total_free;
            let (mut cpu, mut mem, mut gpus) = (0, 0, 0);
            for c in classes {
                cpu += c.need.cpu * c.count;
                mem += c.need.mem * c.count;
                gpus += c.need.gpus * c.count;
            }
            if cpu > t.sum_cpu || mem > t.sum_mem || gpus > t.sum_gpus || total > t.sum_pods {
                return None;
            }
        }
        // The class that dominates the group decides which racks are roomy.
        let primary = classes.iter().max_by_key(|c| {
            let weight = c.need.gpus * 1_000_000 + c.need.cpu + c.need.mem / (1 << 20);
            (c.count * weight.max(1), c.count)
        })?;
        // Rack sums bound how many pods each rack could hold: if even that
        // falls short, no node needs to be visited.
        let bound: i64 = (0..self.racks.len())
            .map(|r| rack_bound(self.rack_agg(r, view), &primary.need))
            .sum();
        if bound < primary.count {
            return None;
        }
        let est: Vec<i64> = (0..self.racks.len())
            .map(|r| self.rack_estimate(r, primary, view))
            .collect();
        let all: i64 = est.iter().sum();
        if all < primary.count {
            return None;
        }
        // 1. One rack: the tightest that holds the group (best fit).
        let mut singles: Vec<usize> = (0..self.racks.len()).filter(|&r| est[r] >= total).collect();
        singles.sort_by_key(|&r| (est[r], r));
        for &r in singles.iter().take(3) {
            if let Some(p) = self.place_on(classes, &[r], view) {
                return Some(p);
            }
        }
        // 2. One zone: the tightest zone that holds it, roomiest racks first.
        if self.zones.len() > 1 || singles.is_empty() {
            let mut zones: Vec<(i64, usize)> = (0..self.zones.len())
                .map(|z| (self.zones[z].racks.iter().map(|r| est[*r]).sum::<i64>(), z))
                .filter(|(e, _)| *e >= total)
                .collect();
            zones.sort();
            for &(_, z) in zones.iter().take(2) {
                let mut racks: Vec<usize> = self.zones[z].racks.clone();
                racks.sort_by_key(|&r| (std::cmp::Reverse(est[r]), r));
                racks.retain(|&r| est[r] > 0 || classes.len() > 1);
                if let Some(p) = self.place_on(classes, &racks, view) {
                    return Some(p);
                }
            }
        }
        // 3. Anywhere, roomiest racks first.
        let mut racks: Vec<usize> = (0..self.racks.len()).collect();
        racks.sort_by_key(|&r| (std::cmp::Reverse(est[r]), r));
        self.place_on(classes, &racks, view)
    }

    /// Greedy fit over `racks` in order, on a scratch copy of the touched
    /// nodes: [`PlacementPolicy::Pack`] fills each node before the next,
    /// [`PlacementPolicy::Spread`] gives every node one pod per round.
    fn place_on(&self, classes: &[Class], racks: &[usize], view: View) -> Option<Placement> {
        let mut scratch: HashMap<NodeId, Units> = HashMap::new();
        let mut claims: Vec<Vec<PodClaim>> =
            vec![Vec::new(); classes.iter().map(|c| c.index + 1).max().unwrap_or(0)];
        let per_visit = match self.policy {
            PlacementPolicy::Pack => i64::MAX,
            PlacementPolicy::Spread => 1,
        };
        for class in classes {
            let mut left = class.count;
            let out = &mut claims[class.index];
            // Pack finishes in one round; spread takes rounds until the
            // class is placed or a round places nothing.
            loop {
                let before = left;
                'racks: for &r in racks {
                    if !self.rack_agg(r, view).may_hold(&class.need) {
                        continue;
                    }
                    let order = self.node_order(r, class, view, &scratch);
                    for &id in order.iter() {
                        if !class.allows(id) {
                            continue;
                        }
                        let Some((base, single)) = self.units(id, view) else {
                            continue;
                        };
                        let mut here = 0;
                        while here < per_visit {
                            let u = scratch.get(&id).unwrap_or(base);
                            let Some(claim) = class.need.claim_on(id, u, single) else {
                                break;
                            };
                            scratch
                                .entry(id)
                                .or_insert_with(|| base.clone())
                                .apply(&claim, 1);
                            out.push(claim);
                            here += 1;
                            left -= 1;
                            if left == 0 {
                                break 'racks;
                            }
                        }
                    }
                }
                if left == 0 || left == before {
                    break;
                }
            }
            if left > 0 {
                return None;
            }
        }
        Some(Placement { claims })
    }

    /// The nodes of rack `r` in the order a class fills them. Pack takes
    /// the fullest node that still holds a pod first (best fit), so holes
    /// left by ended jobs are filled and empty nodes stay whole for the
    /// gangs whose pods need a whole node; spread keeps graph order.
    fn node_order<'a>(
        &'a self,
        r: usize,
        class: &Class,
        view: View,
        scratch: &HashMap<NodeId, Units>,
    ) -> std::borrow::Cow<'a, [NodeId]> {
        let nodes = &self.racks[r].nodes;
        if self.policy != PlacementPolicy::Pack || !self.best_fit || nodes.len() < 2 {
            return std::borrow::Cow::Borrowed(nodes);
        }
        let mut keyed: Vec<(i64, NodeId)> = nodes
            .iter()
            .filter_map(|&id| {
                let (base, single) = self.units(id, view)?;
                let u = scratch.get(&id).unwrap_or(base);
                let room = class.need.count_in(u, single);
                (room > 0).then_some((room, id))
            })
            .collect();
        keyed.sort_unstable();
        std::borrow::Cow::Owned(keyed.into_iter().map(|(_, id)| id).collect())
    }

    fn busy_reason(&mut self, req: &GroupRequest) -> String {
        let Ok(classes) = self.classes(req) else {
            return "does not fit now".to_owned();
        };
        let mut parts = Vec::new();
        for c in &classes {
            let room: i64 = (0..self.racks.len())
                .map(|r| self.rack_estimate(r, c, View::Free))
                .sum();
            parts.push(format!(
                "{} pods of ({}) need room, free now for {}",
                c.count, req.classes[c.index].demand, room
            ));
        }
        parts.join("; ")
    }

    fn unsat_reason(&self, classes: &[Class]) -> String {
        for c in classes {
            let mut any = false;
            let mut best = Units::default();
            let mut best_zone_cpu = 0;
            let mut best_zone_gpus = 0;
            let mut count = 0;
            for id in self.node_ids() {
                if !class_allows(c, id) {
                    continue;
                }
                let Some((u, single)) = self.units(id, View::Capacity) else {
                    continue;
                };
                any = true;
                best.cpu = best.cpu.max(u.cpu);
                best.mem = best.mem.max(u.mem);
                best.gpus = best.gpus.max(u.gpus);
                if single {
                    best_zone_cpu =
                        best_zone_cpu.max(u.numa_cpu.iter().copied().max().unwrap_or(0));
                    best_zone_gpus =
                        best_zone_gpus.max(u.numa_gpus.iter().copied().max().unwrap_or(0));
                }
                count += c.need.count_in(u, single);
            }
            let n = c.need.clone();
            if !any {
                return "no schedulable node matches the pods' node selector, affinity and tolerations".to_owned();
            }
            if n.gpus > best.gpus {
                return format!(
                    "each pod needs {} GPUs, the largest node has {}",
                    n.gpus, best.gpus
                );
            }
            if n.cpu > best.cpu {
                return format!(
                    "each pod needs {} CPU, the largest node has {}",
                    cpu_str(n.cpu),
                    cpu_str(best.cpu)
                );
            }
            if n.mem > best.mem {
                return format!(
                    "each pod needs {} MiB of memory, the largest node has {} MiB",
                    n.mem >> 20,
                    best.mem >> 20
                );
            }
            if count == 0 && n.align {
                return format!(
                    "each pod needs {} CPU and {} GPUs in one NUMA zone, the largest zone has {} CPU and {} GPUs",
                    cpu_str(n.cpu),
                    n.gpus,
                    cpu_str(best_zone_cpu),
                    best_zone_gpus
                );
            }
            if count < c.count {
                return format!(
                    "{} pods each needing {} CPU, {} GPUs: the matching nodes hold at most {} such pods",
                    c.count,
                    cpu_str(n.cpu),
                    n.gpus,
                    count
                );
            }
        }
        "the group's pods together do not fit the cluster".to_owned()
    }
}

/// An upper bound on the pods of `need` a rack can hold, from its sums alone.
fn rack_bound(agg: &Agg, need: &Need) -> i64 {
    if !agg.may_hold(need) {
        return 0;
    }
    let mut n = agg.sum_pods;
    for (have, want) in [
        (agg.sum_cpu, need.cpu),
        (agg.sum_mem, need.mem),
        (agg.sum_gpus, need.gpus),
    ] {
        if want > 0 {
            n = n.min(have / want);
        }
    }
    n.max(0)
}

fn class_allows(c: &Class, id: NodeId) -> bool {
    c.allows(id)
}

fn cpu_str(m: i64) -> String {
    if m % 1000 == 0 {
        format!("{}", m / 1000)
    } else {
        format!("{m}m")
    }
}
