//! The pod-group graph: zones, racks, nodes and NUMA zones with free-now
//! counters and per-rack/zone aggregates.

use std::collections::HashMap;
use std::sync::Arc;

use super::types::{Demand, NodeId, NodeSpec, PlacementPolicy, PodClaim};

/// Free (or total) units of one node. Signed: pods bound behind our back
/// (by another scheduler, or before we knew the node) can over-commit a node,
/// and releasing them must restore the exact count.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct Units {
    pub(super) pods: i64,
    pub(super) mem: i64,
    pub(super) cpu: i64,
    pub(super) gpus: i64,
    pub(super) numa_cpu: Zones,
    pub(super) numa_gpus: Zones,
    pub(super) ext: Vec<i64>,
}

impl Units {
    fn ext(&self, id: u16) -> i64 {
        self.ext.get(usize::from(id)).copied().unwrap_or(0)
    }

    pub(super) fn apply(&mut self, claim: &PodClaim, sign: i64) {
        self.pods -= sign * to_i64(claim.pods.max(1));
        self.mem -= sign * to_i64(claim.memory_bytes);
        for (z, c) in claim.numa_cpu.iter().enumerate() {
            if let Some(f) = self.numa_cpu.get_mut(z) {
                *f -= sign * to_i64(*c);
            }
            self.cpu -= sign * to_i64(*c);
        }
        for (z, g) in claim.numa_gpus.iter().enumerate() {
            if let Some(f) = self.numa_gpus.get_mut(z) {
                *f -= sign * to_i64(*g);
            }
            self.gpus -= sign * to_i64(*g);
        }
        for (id, n) in &claim.extended {
            let i = usize::from(*id);
            if self.ext.len() <= i {
                self.ext.resize(i + 1, 0);
            }
            self.ext[i] -= sign * to_i64(*n);
        }
    }
}

/// Most NUMA zones a node keeps apart; more are folded into the last one.
const MAX_ZONES: usize = 8;

/// Per-NUMA-zone counters, kept inline so copying a node's state (as
/// planning does for the whole graph) allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Zones {
    len: u8,
    v: [i64; MAX_ZONES],
}

impl std::ops::Deref for Zones {
    type Target = [i64];
    fn deref(&self) -> &[i64] {
        &self.v[..usize::from(self.len)]
    }
}

impl std::ops::DerefMut for Zones {
    fn deref_mut(&mut self) -> &mut [i64] {
        &mut self.v[..usize::from(self.len)]
    }
}

impl FromIterator<i64> for Zones {
    fn from_iter<I: IntoIterator<Item = i64>>(iter: I) -> Self {
        let mut z = Zones::default();
        for (i, x) in iter.into_iter().enumerate() {
            if i < MAX_ZONES {
                z.v[i] = x;
                z.len = (i + 1) as u8;
            } else {
                z.v[MAX_ZONES - 1] += x;
            }
        }
        z
    }
}

impl<'a> IntoIterator for &'a Zones {
    type Item = &'a i64;
    type IntoIter = std::slice::Iter<'a, i64>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

pub(super) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A demand with extended-resource names resolved to ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Need {
    pub(super) cpu: i64,
    pub(super) mem: i64,
    pub(super) gpus: i64,
    pub(super) ext: Vec<(u16, i64)>,
    pub(super) align: bool,
}

impl Need {
    /// How many pods of this need `u` can hold (an estimate when CPU may split).
    pub(super) fn count_in(&self, u: &Units, single_numa: bool) -> i64 {
        let mut n = u.pods;
        if self.mem > 0 {
            n = n.min(u.mem / self.mem);
        }
        for (id, amount) in &self.ext {
            n = n.min(u.ext(*id) / (*amount).max(1));
        }
        if n <= 0 {
            return 0;
        }
        if self.align && single_numa {
            let mut per_zone = 0;
            for (c, g) in u.numa_cpu.iter().zip(&u.numa_gpus) {
                let mut k = i64::MAX;
                if self.cpu > 0 {
                    k = k.min(c / self.cpu);
                }
                if self.gpus > 0 {
                    k = k.min(g / self.gpus);
                }
                per_zone += k.max(0).min(n);
            }
            n.min(per_zone)
        } else {
            if self.cpu > 0 {
                n = n.min(u.cpu / self.cpu);
            }
            if self.gpus > 0 {
                n = n.min(u.gpus / self.gpus);
            }
            n.max(0)
        }
    }

    /// The claim a pod of this need would make on `u` (node `node`), if it fits.
    pub(super) fn claim_on(&self, node: NodeId, u: &Units, single_numa: bool) -> Option<PodClaim> {
        if u.pods < 1 || u.mem < self.mem || u.cpu < self.cpu || u.gpus < self.gpus {
            return None;
        }
        if self.ext.iter().any(|(id, n)| u.ext(*id) < *n) {
            return None;
        }
        let zones = u.numa_cpu.len();
        let mut claim = PodClaim {
            node,
            numa_cpu: vec![0; zones],
            numa_gpus: vec![0; zones],
            memory_bytes: self.mem as u64,
            extended: self.ext.iter().map(|(id, n)| (*id, *n as u64)).collect(),
            pods: 1,
        };
        // Best fit among zones that hold the whole pod: keeps roomy zones for
        // the big pods still to come.
        let best = (0..zones)
            .filter(|&z| u.numa_cpu[z] >= self.cpu && u.numa_gpus[z] >= self.gpus)
            .min_by_key(|&z| (u.numa_cpu[z] - self.cpu, u.numa_gpus[z] - self.gpus, z));
        if let Some(z) = best {
            claim.numa_cpu[z] = self.cpu as u64;
            claim.numa_gpus[z] = self.gpus as u64;
            return Some(claim);
        }
        if self.align && single_numa {
            return None;
        }
        spread(self.cpu, &u.numa_cpu, &mut claim.numa_cpu);
        spread(self.gpus, &u.numa_gpus, &mut claim.numa_gpus);
        Some(claim)
    }
}

/// Takes `amount` from the zones with the most free first.
fn spread(mut amount: i64, free: &[i64], out: &mut [u64]) {
    let mut order: Vec<usize> = (0..free.len()).collect();
    order.sort_by_key(|&z| (std::cmp::Reverse(free[z]), z));
    for z in order {
        if amount <= 0 {
            break;
        }
        let take = free[z].max(0).min(amount);
        out[z] += take as u64;
        amount -= take;
    }
    // Over-commit (claims for pods bound elsewhere) lands on zone 0.
    if amount > 0
        && let Some(first) = out.first_mut()
    {
        *first += amount as u64;
    }
}

/// Subtree aggregate of a rack or zone: sums, and the largest single node
/// (or NUMA zone) per type, for pruning.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct Agg {
    pub(super) sum_cpu: i64,
    pub(super) sum_mem: i64,
    pub(super) sum_gpus: i64,
    pub(super) sum_pods: i64,
    pub(super) max_cpu: i64,
    pub(super) max_mem: i64,
    pub(super) max_gpus: i64,
    pub(super) max_pods: i64,
    pub(super) max_zone_cpu: i64,
    pub(super) max_zone_gpus: i64,
}

impl Agg {
    fn add_node(&mut self, u: &Units) {
        self.sum_cpu += u.cpu;
        self.sum_mem += u.mem;
        self.sum_gpus += u.gpus;
        self.sum_pods += u.pods;
        self.max_cpu = self.max_cpu.max(u.cpu);
        self.max_mem = self.max_mem.max(u.mem);
        self.max_gpus = self.max_gpus.max(u.gpus);
        self.max_pods = self.max_pods.max(u.pods);
        self.max_zone_cpu = self
            .max_zone_cpu
            .max(u.numa_cpu.iter().copied().max().unwrap_or(0));
        self.max_zone_gpus = self
            .max_zone_gpus
            .max(u.numa_gpus.iter().copied().max().unwrap_or(0));
    }

    /// Whether some node below might hold one pod of `need` (never a false "no").
    pub(super) fn may_hold(&self, need: &Need) -> bool {
        self.max_pods >= 1
            && self.max_cpu >= need.cpu
            && self.max_mem >= need.mem
            && self.max_gpus >= need.gpus
    }
}

#[derive(Debug, Clone)]
pub(super) struct NodeSlot {
    pub(super) spec: Arc<NodeSpec>,
    pub(super) rack: usize,
    pub(super) cap: Arc<Units>,
    pub(super) free: Units,
}

#[derive(Debug, Clone)]
pub(super) struct Rack {
    pub(super) name: String,
    pub(super) zone: usize,
    pub(super) nodes: Vec<NodeId>,
    pub(super) free: Agg,
    pub(super) cap: Agg,
    pub(super) dirty: bool,
}

#[derive(Debug, Clone)]
pub(super) struct Zone {
    pub(super) name: String,
    pub(super) racks: Vec<usize>,
}

/// The graph of a Kubernetes cluster for pod-group matching: see the module docs.
#[derive(Debug, Clone, Default)]
pub struct GroupGraph {
    pub(super) nodes: Vec<Option<NodeSlot>>,
    // Name indexes change only with nodes: shared, so copying the graph to
    // plan ahead does not copy thousands of names.
    pub(super) by_name: Arc<HashMap<String, NodeId>>,
    spare_ids: Vec<u32>,
    pub(super) racks: Vec<Rack>,
    rack_index: Arc<HashMap<(usize, String), usize>>,
    pub(super) zones: Arc<Vec<Zone>>,
    zone_index: Arc<HashMap<String, usize>>,
    ext_names: Arc<Vec<String>>,
    ext_index: Arc<HashMap<String, u16>>,
    /// Cluster-wide sums of free units (schedulable nodes only).
    pub(super) total_free: Agg,
    /// How groups are laid out inside the racks chosen for them.
    pub(super) policy: PlacementPolicy,
    /// Whether [`PlacementPolicy::Pack`] fills the fullest node that holds
    /// a pod first (best fit) rather than nodes in graph order (first fit).
    pub(super) best_fit: bool,
}

impl GroupGraph {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets how later matches lay groups out (copies made by `clone` keep it).
    pub fn set_policy(&mut self, policy: PlacementPolicy) {
        self.policy = policy;
    }

    /// Sets whether packing fills the fullest node that still holds a pod
    /// first (best fit: holes are filled, empty nodes stay whole for gangs
    /// that need them) or nodes in graph order (first fit). Copies keep it.
    pub fn set_best_fit(&mut self, on: bool) {
        self.best_fit = on;
    }

    /// How matches lay groups out.
    pub fn policy(&self) -> PlacementPolicy {
        self.policy
    }

    /// Interned id of an extended resource, creating it if new.
    fn intern_ext(&mut self, name: &str) -> u16 {
        if let Some(id) = self.ext_index.get(name) {
            return *id;
        }
        let id = u16::try_from(self.ext_names.len()).unwrap_or(u16::MAX);
        Arc::make_mut(&mut self.ext_names).push(name.to_owned());
        Arc::make_mut(&mut self.ext_index).insert(name.to_owned(), id);
        id
    }

    /// The id of an extended resource name, if any node ever had it.
    pub fn ext_id(&self, name: &str) -> Option<u16> {
        self.ext_index.get(name).copied()
    }

    /// The name of an extended resource id.
    pub fn ext_name(&self, id: u16) -> Option<&str> {
        self.ext_names.get(usize::from(id)).map(String::as_str)
    }

    fn units_of(&mut self, spec: &NodeSpec) -> Units {
        let mut numa = spec.numa.clone();
        if numa.is_empty() {
            numa.push(Default::default());
        }
        let mut ext = vec![0; self.ext_names.len()];
        for (name, n) in &spec.extended {
            let id = usize::from(self.intern_ext(name));
            if ext.len() <= id {
                ext.resize(id + 1, 0);
            }
            ext[id] += to_i64(*n);
        }
        Units {
            pods: to_i64(spec.max_pods),
            mem: to_i64(spec.memory_bytes),
            cpu: numa.iter().map(|z| to_i64(z.cpu_millis)).sum(),
            gpus: numa.iter().map(|z| to_i64(z.gpus)).sum(),
            numa_cpu: numa.iter().map(|z| to_i64(z.cpu_millis)).collect(),
            numa_gpus: numa.iter().map(|z| to_i64(z.gpus)).collect(),
            ext,
        }
    }

    fn rack_for(&mut self, zone: &str, rack: &str) -> usize {
        let z = match self.zone_index.get(zone) {
            Some(z) => *z,
            None => {
                Arc::make_mut(&mut self.zones).push(Zone {
                    name: zone.to_owned(),
                    racks: Vec::new(),
                });
                let z = self.zones.len() - 1;
                Arc::make_mut(&mut self.zone_index).insert(zone.to_owned(), z);
                self.zones.len() - 1
            }
        };
        if let Some(r) = self.rack_index.get(&(z, rack.to_owned())) {
            return *r;
        }
        self.racks.push(Rack {
            name: rack.to_owned(),
            zone: z,
            nodes: Vec::new(),
            free: Agg::default(),
            cap: Agg::default(),
            dirty: true,
        });
        let r = self.racks.len() - 1;
        Arc::make_mut(&mut self.rack_index).insert((z, rack.to_owned()), r);
        Arc::make_mut(&mut self.zones)[z].racks.push(r);
        r
    }

    /// Adds a node, or updates it in place keeping what is allocated on it
    /// (a changed NUMA layout moves the usage to zone 0). Returns its id.
    pub fn upsert_node(&mut self, spec: NodeSpec) -> NodeId {
        let cap = self.units_of(&spec);
        if let Some(&id) = self.by_name.get(&spec.name) {
            let old_rack = self.slot(id).map(|s| s.rack);
            let rack = self.rack_for(&spec.zone, &spec.rack);
            if let Some(slot) = self.nodes[id.0 as usize].as_mut() {
                let used = used_units(&slot.cap, &slot.free);
                let mut free = cap.clone();
                subtract_used(&mut free, &used);
                slot.cap = Arc::new(cap);
                slot.free = free;
                slot.spec = Arc::new(spec);
                slot.rack = rack;
            }
            if old_rack != Some(rack) {
                if let Some(old) = old_rack {
                    self.racks[old].nodes.retain(|n| *n != id);
                    self.racks[old].dirty = true;
                }
                self.racks[rack].nodes.push(id);
            }
            self.racks[rack].dirty = true;
            self.recompute_totals();
            return id;
        }
        let rack = self.rack_for(&spec.zone, &spec.rack);
        let id = match self.spare_ids.pop() {
            Some(i) => NodeId(i),
            None => {
                self.nodes.push(None);
                NodeId(u32::try_from(self.nodes.len() - 1).unwrap_or(u32::MAX))
            }
        };
        Arc::make_mut(&mut self.by_name).insert(spec.name.clone(), id);
        self.nodes[id.0 as usize] = Some(NodeSlot {
            spec: Arc::new(spec),
            rack,
            free: cap.clone(),
            cap: Arc::new(cap),
        });
        self.racks[rack].nodes.push(id);
        self.racks[rack].dirty = true;
        if let Some(slot) = self.nodes[id.0 as usize].as_ref()
            && slot.spec.schedulable
        {
            let free = slot.free.clone();
            add_sums(&mut self.total_free, &free, 1);
        }
        id
    }

    /// Removes a node; claims on it become no-ops. Returns its old id.
    pub fn remove_node(&mut self, name: &str) -> Option<NodeId> {
        let id = Arc::make_mut(&mut self.by_name).remove(name)?;
        let slot = self.nodes.get_mut(id.0 as usize)?.take()?;
        self.racks[slot.rack].nodes.retain(|n| *n != id);
        self.racks[slot.rack].dirty = true;
        self.spare_ids.push(id.0);
        self.recompute_totals();
        Some(id)
    }

    fn recompute_totals(&mut self) {
        let mut agg = Agg::default();
        for slot in self.nodes.iter().flatten() {
            if slot.spec.schedulable {
                add_sums(&mut agg, &slot.free, 1);
            }
        }
        self.total_free = agg;
    }

    pub(super) fn slot(&self, id: NodeId) -> Option<&NodeSlot> {
        self.nodes.get(id.0 as usize).and_then(Option::as_ref)
    }

    /// The id of a node by name.
    pub fn node_id(&self, name: &str) -> Option<NodeId> {
        self.by_name.get(name).copied()
    }

    /// The spec of a node.
    pub fn node(&self, id: NodeId) -> Option<&NodeSpec> {
        self.slot(id).map(|s| &*s.spec)
    }

    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.by_name.len()
    }

    /// Ids of all nodes, in id order.
    pub fn node_ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_some())
            .map(|(i, _)| NodeId(i as u32))
    }

    /// Zone and rack names of a node.
    pub fn node_location(&self, id: NodeId) -> Option<(&str, &str)> {
        let slot = self.slot(id)?;
        let rack = &self.racks[slot.rack];
        Some((&self.zones[rack.zone].name, &rack.name))
    }

    /// Free (cpu millicores, memory bytes, GPUs, pods) on a node; negative
    /// when pods bound elsewhere over-commit it.
    pub fn node_free(&self, id: NodeId) -> Option<(i64, i64, i64, i64)> {
        self.slot(id)
            .map(|s| (s.free.cpu, s.free.mem, s.free.gpus, s.free.pods))
    }

    /// Free units of an extended resource on a node.
    pub fn node_free_ext(&self, id: NodeId, name: &str) -> Option<i64> {
        let ext = self.ext_id(name)?;
        self.slot(id).map(|s| s.free.ext(ext))
    }

    /// Free CPU and GPUs per NUMA zone of a node.
    pub fn node_free_numa(&self, id: NodeId) -> Option<Vec<(i64, i64)>> {
        self.slot(id).map(|s| {
            s.free
                .numa_cpu
                .iter()
                .copied()
                .zip(s.free.numa_gpus.iter().copied())
                .collect()
        })
    }

    /// Total (cpu millicores, memory bytes, GPUs, pods) of a node.
    pub fn node_capacity(&self, id: NodeId) -> Option<(i64, i64, i64, i64)> {
        self.slot(id)
            .map(|s| (s.cap.cpu, s.cap.mem, s.cap.gpus, s.cap.pods))
    }

    /// The claim a pod with `demand` would make on exactly this node, if it
    /// fits there now (NUMA policy included): the kubelet's admission check.
    pub fn claim_on_node(&self, node: NodeId, demand: &Demand) -> Option<PodClaim> {
        let need = self.resolve(demand).ok()?;
        let slot = self.slot(node)?;
        need.claim_on(node, &slot.free, slot.spec.single_numa)
    }

    /// Cluster-wide free (cpu millicores, memory bytes, GPUs, pods) on schedulable nodes.
    pub fn free_totals(&self) -> (i64, i64, i64, i64) {
        let a = &self.total_free;
        (a.sum_cpu, a.sum_mem, a.sum_gpus, a.sum_pods)
    }

    /// Applies all claims if together they fit the free units now (checked
    /// claim by claim, so two claims on one node are checked together);
    /// otherwise applies none and returns false.
    pub fn take_if_fits(&mut self, claims: &[&PodClaim]) -> bool {
        for (i, c) in claims.iter().enumerate() {
            let ok = self.slot(c.node).is_some_and(|slot| {
                let mut after = slot.free.clone();
                after.apply(c, 1);
                after.pods >= 0
                    && after.mem >= 0
                    && after.numa_cpu.iter().all(|v| *v >= 0)
                    && after.numa_gpus.iter().all(|v| *v >= 0)
                    && after.ext.iter().all(|v| *v >= 0)
            });
            if !ok {
                for done in &claims[..i] {
                    self.give(done);
                }
                return false;
            }
            self.take(c);
        }
        true
    }

    /// Applies a claim (a pod placed on its node). Claims may over-commit: the
    /// caller decides whether it should (pods bound by others) or not (our
    /// own placements come from a match).
    pub fn take(&mut self, claim: &PodClaim) {
        self.change(claim, 1);
    }

    /// Undoes [`GroupGraph::take`] exactly.
    pub fn give(&mut self, claim: &PodClaim) {
        self.change(claim, -1);
    }

    fn change(&mut self, claim: &PodClaim, sign: i64) {
        let Some(slot) = self
            .nodes
            .get_mut(claim.node.0 as usize)
            .and_then(Option::as_mut)
        else {
            return;
        };
        let before = (slot.free.cpu, slot.free.mem, slot.free.gpus, slot.free.pods);
        slot.free.apply(claim, sign);
        let rack = slot.rack;
        if slot.spec.schedulable {
            let t = &mut self.total_free;
            t.sum_cpu += slot.free.cpu - before.0;
            t.sum_mem += slot.free.mem - before.1;
            t.sum_gpus += slot.free.gpus - before.2;
            t.sum_pods += slot.free.pods - before.3;
        }
        self.racks[rack].dirty = true;
    }

    /// The claim a pod with `demand` already bound to `node` makes (pods bound
    /// by other schedulers, or by us before a restart). Never fails: the
    /// node may end up over-committed.
    pub fn claim_for_bound(&mut self, node: NodeId, demand: &Demand) -> Option<PodClaim> {
        let need = self.resolve_interning(demand);
        let slot = self.slot(node)?;
        let mut free = slot.free.clone();
        // Pretend there is room so the NUMA split follows the normal rules.
        free.pods = free.pods.max(1);
        free.mem = free.mem.max(need.mem);
        free.cpu = free.cpu.max(need.cpu);
        free.gpus = free.gpus.max(need.gpus);
        for (id, n) in &need.ext {
            let i = usize::from(*id);
            if free.ext.len() <= i {
                free.ext.resize(i + 1, 0);
            }
            free.ext[i] = free.ext[i].max(*n);
        }
        need.claim_on(node, &free, false)
    }

    fn resolve_interning(&mut self, d: &Demand) -> Need {
        let ext = d
            .extended
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(name, n)| (self.intern_ext(name), to_i64(*n)))
            .collect();
        Need {
            cpu: to_i64(d.cpu_millis),
            mem: to_i64(d.memory_bytes),
            gpus: to_i64(d.gpus),
            ext,
            align: d.wants_numa_alignment(),
        }
    }

    /// Resolves a demand; `Err(name)` when no node has ever had the
    /// extended resource `name`.
    pub(super) fn resolve(&self, d: &Demand) -> Result<Need, String> {
        let mut ext = Vec::new();
        for (name, n) in &d.extended {
            if *n == 0 {
                continue;
            }
            match self.ext_index.get(name) {
                Some(id) => ext.push((*id, to_i64(*n))),
                None => return Err(name.clone()),
            }
        }
        Ok(Need {
            cpu: to_i64(d.cpu_millis),
            mem: to_i64(d.memory_bytes),
            gpus: to_i64(d.gpus),
            ext,
            align: d.wants_numa_alignment(),
        })
    }

    /// Recomputes the aggregates of racks changed since the last match.
    pub(super) fn refresh(&mut self) {
        for r in 0..self.racks.len() {
            if !self.racks[r].dirty {
                continue;
            }
            let mut free = Agg::default();
            let mut cap = Agg::default();
            for id in &self.racks[r].nodes {
                if let Some(slot) = self.nodes[id.0 as usize].as_ref()
                    && slot.spec.schedulable
                {
                    free.add_node(&slot.free);
                    cap.add_node(&slot.cap);
                }
            }
            let rack = &mut self.racks[r];
            rack.free = free;
            rack.cap = cap;
            rack.dirty = false;
        }
    }

    /// Lowers every node's free units to at most `limit`'s (per field), for
    /// planning against a future state: a group placed on the result fits
    /// both now and in `limit`. Both graphs must have the same nodes.
    pub fn restrict_to(&mut self, limit: &GroupGraph) {
        for (i, slot) in self.nodes.iter_mut().enumerate() {
            let (Some(slot), Some(Some(other))) = (slot.as_mut(), limit.nodes.get(i)) else {
                continue;
            };
            let f = &mut slot.free;
            let before = (f.pods, f.mem, f.cpu, f.gpus);
            let o = &other.free;
            f.pods = f.pods.min(o.pods);
            f.mem = f.mem.min(o.mem);
            for (a, b) in f.numa_cpu.iter_mut().zip(o.numa_cpu.iter()) {
                *a = (*a).min(*b);
            }
            for (a, b) in f.numa_gpus.iter_mut().zip(o.numa_gpus.iter()) {
                *a = (*a).min(*b);
            }
            f.cpu = f.numa_cpu.iter().sum();
            f.gpus = f.numa_gpus.iter().sum();
            for (a, b) in f
                .ext
                .iter_mut()
                .zip(o.ext.iter().chain(std::iter::repeat(&0)))
            {
                *a = (*a).min(*b);
            }
            if (f.pods, f.mem, f.cpu, f.gpus) != before || !f.ext.is_empty() {
                self.racks[slot.rack].dirty = true;
            }
        }
        self.recompute_totals();
    }
}

fn add_sums(agg: &mut Agg, u: &Units, sign: i64) {
    agg.sum_cpu += sign * u.cpu;
    agg.sum_mem += sign * u.mem;
    agg.sum_gpus += sign * u.gpus;
    agg.sum_pods += sign * u.pods;
}

fn used_units(cap: &Units, free: &Units) -> Units {
    Units {
        pods: cap.pods - free.pods,
        mem: cap.mem - free.mem,
        cpu: cap.cpu - free.cpu,
        gpus: cap.gpus - free.gpus,
        numa_cpu: cap
            .numa_cpu
            .iter()
            .zip(&free.numa_cpu)
            .map(|(c, f)| c - f)
            .collect(),
        numa_gpus: cap
            .numa_gpus
            .iter()
            .zip(&free.numa_gpus)
            .map(|(c, f)| c - f)
            .collect(),
        ext: cap
            .ext
            .iter()
            .zip(free.ext.iter().chain(std::iter::repeat(&0)))
            .map(|(c, f)| c - f)
            .collect(),
    }
}

fn subtract_used(free: &mut Units, used: &Units) {
    free.pods -= used.pods;
    free.mem -= used.mem;
    free.cpu -= used.cpu;
    free.gpus -= used.gpus;
    let same = free.numa_cpu.len() == used.numa_cpu.len();
    for (z, u) in used.numa_cpu.iter().enumerate() {
        let z = if same { z } else { 0 };
        if let Some(f) = free.numa_cpu.get_mut(z) {
            *f -= u;
        }
    }
    for (z, u) in used.numa_gpus.iter().enumerate() {
        let z = if same { z } else { 0 };
        if let Some(f) = free.numa_gpus.get_mut(z) {
            *f -= u;
        }
    }
    for (i, u) in used.ext.iter().enumerate() {
        if free.ext.len() <= i {
            free.ext.resize(i + 1, 0);
        }
        free.ext[i] -= u;
    }
}
