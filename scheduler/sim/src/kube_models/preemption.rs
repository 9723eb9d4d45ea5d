//! Preemption in the kube-scheduler models: DefaultPreemption's PostFilter
//! for one pod (pkg/scheduler/framework/preemption, plugins/defaultpreemption)
//! and workload-aware preemption for a PodGroup (KEP-5710).

use std::cmp::Reverse;
use std::collections::BTreeMap;

use fluxion_core::group::NodeId;

use super::{KubeCore, NativeGangModel, Res, add, demand_of, fits, score, sub};
use crate::engine::Cluster;

/// A pod's start time for preemption order: its bind time; a pod waiting
/// in Permit has not started, and GetPodStartTime counts it as starting now
/// (the latest, so the least important).
fn start_time(cl: &Cluster<'_>, pod: usize) -> i64 {
    if cl.pods[pod].bound {
        cl.pods[pod].bound_at
    } else {
        i64::MAX
    }
}

/// Whether a pod of priority `prio` nominated to `node` must wait for a
/// lower-priority victim still terminating there rather than preempt again
/// (PodEligibleToPreemptOthers).
fn victim_terminating_on(cl: &Cluster<'_>, node: NodeId, prio: i32) -> bool {
    cl.pods.iter().enumerate().any(|(i, p)| {
        p.terminating && p.claim.as_ref().is_some_and(|c| c.node == node) && cl.priority(i) < prio
    })
}

impl KubeCore {
    /// Whether any pod could be a victim of one of priority `prio`.
    pub(super) fn may_preempt(&mut self, prio: i32, cl: &Cluster<'_>) -> bool {
        self.init(cl);
        self.lowest.is_some_and(|l| prio > l)
    }

    /// What pending pods nominated to each node will take, for a pod of
    /// priority `prio`: the Filter of kube-scheduler counts nominated pods
    /// of equal or higher priority as already there
    /// (RunFilterPluginsWithNominatedPods), so lower ones cannot take the
    /// room a preemption made. `skip` leaves out the pod (or group) itself.
    pub(super) fn reserved(
        &self,
        prio: i32,
        skip: &dyn Fn(usize) -> bool,
        cl: &Cluster<'_>,
    ) -> BTreeMap<NodeId, Res> {
        let mut out: BTreeMap<NodeId, Res> = BTreeMap::new();
        for (&p, &n) in &self.nominated {
            if !skip(p) && cl.is_pending(p) && cl.priority(p) >= prio {
                add(out.entry(n).or_default(), &demand_of(cl, p));
            }
        }
        out
    }

    /// Records that `pod` preempted for `node`; lower-priority pods
    /// nominated there lose their nomination, as prepareCandidate clears it.
    pub(super) fn nominate(&mut self, pod: usize, node: NodeId, cl: &Cluster<'_>) {
        let prio = cl.priority(pod);
        self.nominated
            .retain(|&p, n| *n != node || cl.priority(p) >= prio);
        self.nominated.insert(pod, node);
    }

    /// DefaultPreemption's PostFilter for a pod that fits no node: the
    /// node and victims it would delete, or `None` when preemption cannot
    /// help (or the pod waits for an earlier preemption's victims).
    pub(super) fn preempt_pod(
        &mut self,
        pod: usize,
        cl: &Cluster<'_>,
    ) -> Option<(NodeId, Vec<usize>)> {
        let prio = cl.priority(pod);
        // PodEligibleToPreemptOthers: `preemptionPolicy: Never` never preempts.
        if cl.wl.jobs[cl.pods[pod].job].never_preempts || !self.may_preempt(prio, cl) {
            return None;
        }
        if let Some(&n) = self.nominated.get(&pod)
            && victim_terminating_on(cl, n, prio)
        {
            return None;
        }
        let d = demand_of(cl, pod);
        let reserved = self.reserved(prio, &|p| p == pod, cl);
        // Pods of lower priority on each node, terminating ones included:
        // they are still in the node's NodeInfo until they are gone.
        let mut on_node: BTreeMap<NodeId, Vec<usize>> = BTreeMap::new();
        for (i, p) in cl.pods.iter().enumerate() {
            if let Some(c) = &p.claim
                && cl.priority(i) < prio
            {
                on_node.entry(c.node).or_default().push(i);
            }
        }
        // Candidates: max(10% of nodes, 100), from a rotating offset
        // (minCandidateNodesPercentage / minCandidateNodesAbsolute).
        let n = self.node_ids.len();
        let want = (n / 10).max(100).min(n);
        type Key = (i32, i64, usize, Reverse<i64>);
        let mut best: Option<(Key, NodeId, Vec<usize>)> = None;
        let mut found = 0;
        for k in 0..n {
            if found >= want {
                break;
            }
            let id = self.node_ids[(self.next_start + k) % n];
            let Some(potential) = on_node.get(&id) else {
                continue;
            };
            let Some(mut free) = self.room(id, &reserved, cl) else {
                continue;
            };
            for &v in potential {
                add(&mut free, &demand_of(cl, v));
            }
            if !fits(&free, &d) {
                continue;
            }
            // SelectVictimsOnNode: all lower-priority pods out, then put
            // back as many as still let the pod fit, most important
            // (higher priority, then earlier start) first.
            let mut order = potential.clone();
            order.sort_by_key(|&v| (Reverse(cl.priority(v)), start_time(cl, v), v));
            let mut victims = Vec::new();
            for v in order {
                let mut f = free;
                sub(&mut f, &demand_of(cl, v));
                if fits(&f, &d) {
                    free = f;
                } else {
                    victims.push(v);
                }
            }
            if victims.is_empty() {
                continue;
            }
            found += 1;
            // pickOneNodeForPreemption: lowest highest-victim priority,
            // then lowest priority sum, then fewest victims, then the
            // latest start among the highest-priority victims.
            let top = victims
                .iter()
                .map(|&v| cl.priority(v))
                .max()
                .unwrap_or(i32::MIN);
            let sum: i64 = victims
                .iter()
                .map(|&v| i64::from(cl.priority(v)) + (1 << 31))
                .sum();
            let earliest = victims
                .iter()
                .filter(|&&v| cl.priority(v) == top)
                .map(|&v| start_time(cl, v))
                .min()
                .unwrap_or(0);
            let key = (top, sum, victims.len(), Reverse(earliest));
            if best.as_ref().is_none_or(|(k, _, _)| key < *k) {
                best = Some((key, id, victims));
            }
        }
        best.map(|(_, id, victims)| (id, victims))
    }
}

/// A preemption unit of workload-aware preemption: one pod, or a whole
/// PodGroup whose disruption mode is `All`.
struct Unit {
    pods: Vec<usize>,
    priority: i32,
    group: bool,
    size: u32,
    start: i64,
}

impl NativeGangModel {
    /// Workload-aware preemption for a group that failed its cycle: all
    /// lower-priority units out, the group must then fit; units are put
    /// back from the most important (higher priority; a PodGroup before a
    /// pod; a larger group; an earlier start) while it still fits; the rest
    /// are the victims. The group's pods are nominated where it would go.
    /// A group in `Single` mode offers its pods as units of one, ranked as
    /// single pods: that is what lets the API's default take part of a gang.
    /// Only room for the group's minimum is made (the cycle needs no more).
    pub(super) fn preempt_for_group(&mut self, job: usize, cl: &mut Cluster<'_>) {
        let prio = cl.wl.jobs[job].priority;
        // The group's (here its pods') preemptionPolicy: Never never preempts.
        if cl.wl.jobs[job].never_preempts || !self.core.may_preempt(prio, cl) {
            return;
        }
        let pending: Vec<usize> = cl.job_pods(job).filter(|&p| cl.is_pending(p)).collect();
        let need = cl.wl.jobs[job].min_pods.saturating_sub(cl.jobs[job].held) as usize;
        if need == 0 || pending.len() < need {
            return;
        }
        // Still waiting for the victims of an earlier preemption.
        if pending.iter().any(|p| {
            self.core
                .nominated
                .get(p)
                .is_some_and(|&n| victim_terminating_on(cl, n, prio))
        }) {
            return;
        }
        let ids = self.core.node_ids.clone();
        let index: BTreeMap<NodeId, usize> = ids.iter().enumerate().map(|(i, &n)| (n, i)).collect();
        let reserved = self.core.reserved(prio, &|p| cl.pods[p].job == job, cl);
        let mut free: Vec<Res> = ids
            .iter()
            .map(|&id| self.core.room(id, &reserved, cl).unwrap_or([0; 4]))
            .collect();
        let caps: Vec<Res> = ids.iter().map(|&id| KubeCore::capacity(id, cl)).collect();
        let mut by_job: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, p) in cl.pods.iter().enumerate() {
            if p.claim.is_some() && cl.priority(i) < prio {
                by_job.entry(p.job).or_default().push(i);
            }
        }
        let mut units = Vec::new();
        for (vjob, pods) in by_job {
            let spec = &cl.wl.jobs[vjob];
            if spec.disrupt_whole {
                let start = pods.iter().map(|&p| start_time(cl, p)).min().unwrap_or(0);
                units.push(Unit {
                    pods,
                    priority: spec.priority,
                    group: true,
                    size: spec.pods,
                    start,
                });
            } else {
                for p in pods {
                    units.push(Unit {
                        pods: vec![p],
                        priority: spec.priority,
                        group: false,
                        size: 1,
                        start: start_time(cl, p),
                    });
                }
            }
        }
        let node_of = |p: usize| {
            cl.pods[p]
                .claim
                .as_ref()
                .and_then(|c| index.get(&c.node).copied())
        };
        for u in &units {
            for &p in &u.pods {
                if let Some(i) = node_of(p) {
                    add(&mut free[i], &demand_of(cl, p));
                }
            }
        }
        let d = demand_of(cl, pending[0]);
        if place(&free, &caps, &d, need).is_none() {
            return;
        }
        units.sort_by_key(|u| {
            (
                Reverse(u.priority),
                Reverse(u.group),
                Reverse(u.size),
                u.start,
                u.pods.first().copied(),
            )
        });
        let mut victims = Vec::new();
        for u in units {
            let mut f = free.clone();
            for &p in &u.pods {
                if let Some(i) = node_of(p) {
                    sub(&mut f[i], &demand_of(cl, p));
                }
            }
            if place(&f, &caps, &d, need).is_some() {
                free = f;
            } else {
                victims.extend(u.pods);
            }
        }
        let Some(spots) = place(&free, &caps, &d, need) else {
            return;
        };
        if victims.is_empty() {
            return;
        }
        for v in victims {
            cl.evict(v);
        }
        for (&pod, i) in pending.iter().zip(spots) {
            self.core.nominate(pod, ids[i], cl);
        }
    }
}

/// Places `need` pods of demand `d` one after another, each on the best
/// scored node that fits after the ones before it; their node indices.
fn place(free: &[Res], caps: &[Res], d: &Res, need: usize) -> Option<Vec<usize>> {
    let mut free = free.to_vec();
    let mut out = Vec::with_capacity(need);
    for _ in 0..need {
        let mut best: Option<(i64, usize)> = None;
        for (i, f) in free.iter().enumerate() {
            if fits(f, d) {
                let s = score(f, &caps[i], d);
                if best.is_none_or(|(b, _)| s > b) {
                    best = Some((s, i));
                }
            }
        }
        let (_, i) = best?;
        sub(&mut free[i], d);
        out.push(i);
    }
    Some(out)
}
