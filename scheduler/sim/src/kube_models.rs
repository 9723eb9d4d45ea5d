//! Models of kube-scheduler: the default (one pod at a time, bind at once),
//! the coscheduling plugin (Permit waits for the group, with a timeout) and
//! the native gang scheduling of Kubernetes 1.35+ (a PodGroup placed in one
//! group cycle, all or nothing).
//!
//! Preemption, as upstream does it: the default and coscheduling models run
//! kube-scheduler's DefaultPreemption PostFilter for each pod that fits
//! nowhere (pkg/scheduler/framework/preemption and
//! plugins/defaultpreemption): per node, the fewest lowest-priority victims
//! that make the pod fit; one node picked among them; the victims deleted,
//! the pod nominated to the node (`status.nominatedNodeName`) and retried.
//! Nothing there knows about gangs, so it takes pods out of running gangs.
//! The native-gang model runs workload-aware preemption (KEP-5710, alpha in
//! 1.36): the PodGroup is one preemptor and victims are chosen across the
//! whole cluster, a victim PodGroup whole only when its `disruptionMode` is
//! `All`; the API's default (`Single`, `Pod` in v1alpha2) lets it take
//! single pods of a gang. PodDisruptionBudgets are not modelled (no
//! scenario has any): upstream they only order the candidates.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use fluxion_core::group::NodeId;

use crate::engine::{Cluster, Model};

mod preemption;

/// Pod backoff: 1 s doubling to 10 s, as kube-scheduler's defaults.
fn backoff(attempts: u32) -> i64 {
    (1000i64 << attempts.min(4)).min(10_000)
}

/// Unschedulable pods are flushed back to the queue at least this often.
const FLUSH_MS: i64 = 300_000;
/// A group denied by coscheduling (a pod did not fit, or Permit timed out)
/// is not tried again for this long.
const GROUP_DENY_MS: i64 = 10_000;

/// Queue order: (priority desc, group time, group, pod time, pod).
type QueueKey = (Reverse<i32>, i64, usize, i64, usize);

/// CPU millicores, memory bytes, GPUs, pod slots.
type Res = [i64; 4];

fn demand_of(cl: &Cluster<'_>, pod: usize) -> Res {
    let d = &cl.demands[cl.pods[pod].job];
    [d.cpu_millis as i64, d.memory_bytes as i64, d.gpus as i64, 1]
}

fn fits(free: &Res, d: &Res) -> bool {
    free.iter().zip(d).all(|(f, d)| f >= d)
}

fn add(a: &mut Res, b: &Res) {
    a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
}

fn sub(a: &mut Res, b: &Res) {
    a.iter_mut().zip(b).for_each(|(a, b)| *a -= b);
}

/// LeastAllocated + BalancedAllocation of a pod needing `d` on a node with
/// `free` of `cap`.
fn score(free: &Res, cap: &Res, d: &Res) -> i64 {
    let cpu_frac = 1.0 - (free[0] - d[0]) as f64 / cap[0].max(1) as f64;
    let mem_frac = 1.0 - (free[1] - d[1]) as f64 / cap[1].max(1) as f64;
    let least = ((1.0 - cpu_frac) + (1.0 - mem_frac)) * 50.0;
    let balanced = (1.0 - (cpu_frac - mem_frac).abs()) * 100.0;
    (least + balanced) as i64
}

/// Shared queue and node scoring of both kube-scheduler models.
struct KubeCore {
    active: BinaryHeap<Reverse<QueueKey>>,
    backoff: BinaryHeap<Reverse<(i64, usize)>>,
    unschedulable: BTreeSet<usize>,
    /// Unschedulable pods whose backoff is over, waiting for a cluster
    /// change or the flush.
    parked: Vec<usize>,
    attempts: Vec<u32>,
    last_flush: i64,
    next_start: usize,
    node_ids: Vec<NodeId>,
    group_sort: bool,
    /// `status.nominatedNodeName` of pods that preempted.
    nominated: BTreeMap<usize, NodeId>,
    /// Lowest priority in the workload: only pods above it can preempt.
    lowest: Option<i32>,
}

impl KubeCore {
    fn new(pods: usize, group_sort: bool) -> Self {
        KubeCore {
            active: BinaryHeap::new(),
            backoff: BinaryHeap::new(),
            unschedulable: BTreeSet::new(),
            parked: Vec::new(),
            attempts: vec![0; pods],
            last_flush: 0,
            next_start: 0,
            node_ids: Vec::new(),
            group_sort,
            nominated: BTreeMap::new(),
            lowest: None,
        }
    }

    fn init(&mut self, cl: &Cluster<'_>) {
        if self.node_ids.is_empty() {
            self.node_ids = cl.truth.node_ids().collect();
        }
        if self.lowest.is_none() {
            self.lowest = Some(cl.wl.jobs.iter().map(|j| j.priority).min().unwrap_or(0));
        }
    }

    fn room(&self, id: NodeId, reserved: &BTreeMap<NodeId, Res>, cl: &Cluster<'_>) -> Option<Res> {
        let (fc, fm, fg, fp) = cl.truth.node_free(id)?;
        let mut free = [fc, fm, fg, fp];
        if let Some(r) = reserved.get(&id) {
            sub(&mut free, r);
        }
        Some(free)
    }

    fn capacity(id: NodeId, cl: &Cluster<'_>) -> Res {
        cl.truth
            .node_capacity(id)
            .map_or([0; 4], |(c, m, g, p)| [c, m, g, p])
    }

    fn enqueue(&mut self, pod: usize, cl: &Cluster<'_>) {
        let job = cl.pods[pod].job;
        let spec = &cl.wl.jobs[job];
        let key = if self.group_sort {
            (
                Reverse(spec.priority),
                spec.arrival,
                job,
                cl.pods[pod].created_at,
                pod,
            )
        } else {
            (Reverse(spec.priority), cl.pods[pod].created_at, 0, 0, pod)
        };
        self.active.push(Reverse(key));
    }

    fn park(&mut self, pod: usize, now: i64) {
        self.attempts[pod] += 1;
        self.backoff
            .push(Reverse((now + backoff(self.attempts[pod]), pod)));
        self.unschedulable.insert(pod);
    }

    /// Capacity was freed: unschedulable pods go back (after their backoff);
    /// those whose backoff is over go back at once, as the scheduling
    /// queue's MoveAllToActiveOrBackoffQueue moves them on a pod delete
    /// (a victim gone, a job's pods ended).
    fn cluster_changed(&mut self) {
        self.unschedulable.clear();
        for pod in std::mem::take(&mut self.parked) {
            self.backoff.push(Reverse((0, pod)));
        }
    }

    fn refill(&mut self, now: i64, cl: &Cluster<'_>) {
        if now - self.last_flush >= FLUSH_MS {
            self.last_flush = now;
            self.cluster_changed();
        }
        let mut hold = Vec::new();
        while let Some(Reverse((t, pod))) = self.backoff.peek().copied() {
            if t > now {
                break;
            }
            self.backoff.pop();
            if self.unschedulable.contains(&pod) {
                hold.push(pod);
            } else if cl.is_pending(pod) {
                self.enqueue(pod, cl);
            }
        }
        // Still unschedulable: wait for a cluster change or the flush.
        self.parked.extend(hold);
    }

    fn wake(&self) -> Option<i64> {
        let flush = (!self.parked.is_empty()).then_some(self.last_flush + FLUSH_MS);
        match (self.backoff.peek().map(|Reverse((t, _))| *t), flush) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Filter (node-level fit, NUMA-unaware as NodeResourcesFit is) on a
    /// sample of nodes, score LeastAllocated + BalancedAllocation, best
    /// wins. A pod that preempted tries its nominated node first.
    fn pick_node(&mut self, pod: usize, cl: &Cluster<'_>) -> Option<NodeId> {
        self.init(cl);
        let reserved = if self.nominated.is_empty() {
            BTreeMap::new()
        } else {
            self.reserved(cl.priority(pod), &|p| p == pod, cl)
        };
        let d = demand_of(cl, pod);
        if let Some(&n) = self.nominated.get(&pod)
            && self.room(n, &reserved, cl).is_some_and(|f| fits(&f, &d))
        {
            return Some(n);
        }
        let n = self.node_ids.len();
        let pct = if n <= 100 {
            100
        } else {
            (50 - n as i64 / 125).max(5) as usize
        };
        let want = if n <= 100 {
            n
        } else {
            (n * pct / 100).max(100)
        };
        let mut best: Option<(i64, NodeId)> = None;
        let mut found = 0;
        let mut scanned = 0;
        while scanned < n && found < want {
            let id = self.node_ids[(self.next_start + scanned) % n];
            scanned += 1;
            let Some(free) = self.room(id, &reserved, cl) else {
                continue;
            };
            if !fits(&free, &d) {
                continue;
            }
            found += 1;
            let s = score(&free, &Self::capacity(id, cl), &d);
            if best.is_none_or(|(b, _)| s > b) {
                best = Some((s, id));
            }
        }
        self.next_start = (self.next_start + scanned) % n.max(1);
        best.map(|(_, id)| id)
    }

    /// Pods one at a time from the active queue (the default scheduler's
    /// loop, and native gang scheduling's for pods of a group already
    /// placed): bind where one fits, preempt where none does.
    fn schedule_pods(&mut self, now: i64, cl: &mut Cluster<'_>) {
        while let Some(Reverse(key)) = self.active.pop() {
            let pod = key.4;
            if !cl.is_pending(pod) {
                continue;
            }
            match self.pick_node(pod, cl) {
                Some(node) if cl.assume(pod, node) => {
                    self.nominated.remove(&pod);
                    cl.bind(pod);
                }
                // The kubelet rejected it (the Job recreates it).
                Some(_) => self.park(pod, now),
                None => {
                    // PostFilter: DefaultPreemption; the pod is retried
                    // when the victims are gone.
                    if let Some((node, victims)) = self.preempt_pod(pod, cl) {
                        for v in victims {
                            cl.evict(v);
                        }
                        self.nominate(pod, node, cl);
                    }
                    self.park(pod, now);
                }
            }
        }
    }
}

/// kube-scheduler's default behaviour.
pub struct DefaultModel {
    core: KubeCore,
}

impl DefaultModel {
    /// A model for `pods` pods.
    pub fn new(pods: usize) -> Self {
        DefaultModel {
            core: KubeCore::new(pods, false),
        }
    }
}

impl Model for DefaultModel {
    fn name(&self) -> &'static str {
        "default"
    }
    fn job_arrived(&mut self, _job: usize, _now: i64, _cl: &mut Cluster<'_>) {}
    fn pod_created(&mut self, pod: usize, _now: i64, cl: &mut Cluster<'_>) {
        self.core.attempts[pod] = 0;
        self.core.enqueue(pod, cl);
    }
    fn job_ended(&mut self, _job: usize, _now: i64, _cl: &mut Cluster<'_>) {
        self.core.cluster_changed();
    }
    fn pod_gone(&mut self, pod: usize, _now: i64, _cl: &mut Cluster<'_>) {
        // A pod deletion is a cluster event that requeues unschedulable pods.
        self.core.nominated.remove(&pod);
        self.core.cluster_changed();
    }
    fn step(&mut self, now: i64, cl: &mut Cluster<'_>) -> Option<i64> {
        self.core.refill(now, cl);
        self.core.schedule_pods(now, cl);
        self.core.wake()
    }
}

/// The coscheduling plugin: pods sorted by group, PreFilter waits for
/// minMember pods, Permit holds assumed pods until the group is complete or
/// the timeout passes, PostFilter rejects the group's waiting pods when one
/// does not fit.
pub struct CoschedModel {
    core: KubeCore,
    /// Since when a job's first pod waits in Permit.
    waiting_since: Vec<Option<i64>>,
    denied_until: Vec<i64>,
    timeout: i64,
}

impl CoschedModel {
    /// A model for `pods` pods of `jobs` jobs.
    pub fn new(pods: usize, jobs: usize, timeout_ms: i64) -> Self {
        CoschedModel {
            core: KubeCore::new(pods, true),
            waiting_since: vec![None; jobs],
            denied_until: vec![0; jobs],
            timeout: timeout_ms,
        }
    }

    fn reject_group(&mut self, job: usize, now: i64, cl: &mut Cluster<'_>) {
        for p in cl.job_pods(job) {
            if cl.pods[p].claim.is_some() && !cl.pods[p].bound {
                cl.forget(p);
                self.core.park(p, now);
            }
        }
        self.waiting_since[job] = None;
        self.denied_until[job] = now + GROUP_DENY_MS;
    }
}

impl Model for CoschedModel {
    fn name(&self) -> &'static str {
        "coscheduling"
    }
    fn job_arrived(&mut self, _job: usize, _now: i64, _cl: &mut Cluster<'_>) {}
    fn pod_created(&mut self, pod: usize, _now: i64, cl: &mut Cluster<'_>) {
        // A new member can lift PreFilter's minMember check for its siblings.
        let job = cl.pods[pod].job;
        self.core.attempts[pod] = 0;
        for p in cl.job_pods(job) {
            if cl.is_pending(p) && self.core.unschedulable.remove(&p) {
                self.core.enqueue(p, cl);
            }
        }
        if !self.core.unschedulable.contains(&pod) {
            self.core.enqueue(pod, cl);
        }
    }
    fn job_ended(&mut self, _job: usize, _now: i64, _cl: &mut Cluster<'_>) {
        self.core.cluster_changed();
    }
    fn pod_gone(&mut self, pod: usize, _now: i64, _cl: &mut Cluster<'_>) {
        self.core.nominated.remove(&pod);
        self.core.cluster_changed();
    }
    fn step(&mut self, now: i64, cl: &mut Cluster<'_>) -> Option<i64> {
        // Permit timeouts.
        for job in 0..self.waiting_since.len() {
            if let Some(since) = self.waiting_since[job]
                && now - since >= self.timeout
            {
                self.reject_group(job, now, cl);
            }
        }
        self.core.refill(now, cl);
        let mut seen = BTreeSet::new();
        while let Some(Reverse(key)) = self.core.active.pop() {
            let pod = key.4;
            if !cl.is_pending(pod) || !seen.insert(pod) {
                continue;
            }
            let job = cl.pods[pod].job;
            let members = cl.job_pods(job).filter(|p| cl.pods[*p].created).count() as u32;
            // PreFilter: too few pods for minMember, or a denied group.
            let min = cl.wl.jobs[job].min_pods;
            if members < min || self.denied_until[job] > now {
                self.core.attempts[pod] += 1;
                let at = self.denied_until[job].max(now + backoff(self.core.attempts[pod]));
                self.core.backoff.push(Reverse((at, pod)));
                continue;
            }
            match self.core.pick_node(pod, cl) {
                Some(node) if cl.assume(pod, node) => {
                    self.core.nominated.remove(&pod);
                    // Permit: minMember assigned (bound or waiting) lets
                    // every waiting pod of the group go.
                    if cl.jobs[job].held >= min {
                        for p in cl.job_pods(job) {
                            cl.bind(p);
                        }
                        self.waiting_since[job] = None;
                    } else {
                        self.waiting_since[job].get_or_insert(now);
                    }
                }
                Some(_) => {
                    self.core.park(pod, now);
                    self.reject_group(job, now, cl);
                }
                None => {
                    // PostFilter plugins run in order until one succeeds.
                    // With Coscheduling enabled through multiPoint, as
                    // scheduler-plugins' sample configuration does, the
                    // default plugins (DefaultPreemption) come first; when
                    // it nominates a node, Coscheduling's PostFilter does
                    // not run and the group is not rejected.
                    let preempted = match self.core.preempt_pod(pod, cl) {
                        Some((node, victims)) => {
                            for v in victims {
                                if cl.pods[v].bound {
                                    cl.evict(v);
                                } else {
                                    // A pod waiting in Permit is rejected, not
                                    // deleted; Unreserve rejects its group.
                                    let vjob = cl.pods[v].job;
                                    self.reject_group(vjob, now, cl);
                                }
                            }
                            self.core.nominate(pod, node, cl);
                            true
                        }
                        None => false,
                    };
                    self.core.park(pod, now);
                    // Coscheduling's PostFilter leaves a group alone that
                    // already has minMember pods assigned.
                    if !preempted && cl.jobs[job].held < min {
                        self.reject_group(job, now, cl);
                    }
                }
            }
        }
        let timeouts = self
            .waiting_since
            .iter()
            .flatten()
            .map(|s| s + self.timeout)
            .min();
        match (self.core.wake(), timeouts) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// kube-scheduler's native gang scheduling (the GangScheduling plugin over
/// the PodGroup API, alpha in 1.35/1.36): a group's pods are held in
/// PreEnqueue until `minCount` of them exist (all of them for an MPI job);
/// then one group cycle filters and scores its pods one after another
/// against the free nodes, each seeing the ones before it; if at least
/// `minCount` found a node they are bound, otherwise none is and the group
/// goes to the unschedulable queue with a backoff. Pods of a group already
/// placed (elastic members, replacements) are scheduled one at a time. The
/// queue never holds capacity for its head: a later, smaller group that
/// fits runs ahead of a large one that waits. A group that fails its cycle
/// runs workload-aware preemption (see the module docs).
pub struct NativeGangModel {
    core: KubeCore,
    /// Groups with enough pods, waiting for a cycle: (priority, arrival, job).
    ready: BTreeSet<(Reverse<i32>, i64, usize)>,
    /// Groups that failed a cycle and wait for their backoff.
    backoff: BinaryHeap<Reverse<(i64, usize)>>,
    /// Groups that failed and wait for a cluster change (or the flush).
    unschedulable: BTreeSet<usize>,
    attempts: Vec<u32>,
    backoff_until: Vec<i64>,
    enqueued: Vec<bool>,
    last_flush: i64,
}

impl NativeGangModel {
    /// A model for `pods` pods of `jobs` jobs.
    pub fn new(pods: usize, jobs: usize) -> Self {
        NativeGangModel {
            core: KubeCore::new(pods, true),
            ready: BTreeSet::new(),
            backoff: BinaryHeap::new(),
            unschedulable: BTreeSet::new(),
            attempts: vec![0; jobs],
            backoff_until: vec![0; jobs],
            enqueued: vec![false; jobs],
            last_flush: 0,
        }
    }

    fn make_ready(&mut self, job: usize, cl: &Cluster<'_>) {
        let spec = &cl.wl.jobs[job];
        self.ready
            .insert((Reverse(spec.priority), spec.arrival, job));
    }

    /// Whether the group's minimum is bound: its other pods go one by one.
    fn placed(job: usize, cl: &Cluster<'_>) -> bool {
        cl.jobs[job].bound >= cl.wl.jobs[job].min_pods
    }

    /// One group cycle: at least the minimum gets nodes, or none keeps one.
    fn cycle(&mut self, job: usize, now: i64, cl: &mut Cluster<'_>) {
        let pods: Vec<usize> = cl.job_pods(job).filter(|&p| cl.is_pending(p)).collect();
        let mut placed = Vec::with_capacity(pods.len());
        for &pod in &pods {
            match self.core.pick_node(pod, cl) {
                Some(node) if cl.assume(pod, node) => placed.push(pod),
                _ => break,
            }
        }
        if cl.jobs[job].held >= cl.wl.jobs[job].min_pods {
            for &p in &placed {
                self.core.nominated.remove(&p);
                cl.bind(p);
            }
            // Members that did not fit wait as single pods.
            for &p in &pods[placed.len()..] {
                self.core.park(p, now);
            }
            self.enqueued[job] = false;
            return;
        }
        for p in placed {
            cl.forget(p);
        }
        self.attempts[job] += 1;
        self.backoff_until[job] = now + backoff(self.attempts[job]);
        self.unschedulable.insert(job);
        self.preempt_for_group(job, cl);
    }

    /// Capacity changed: failed groups go back after their backoff.
    fn requeue(&mut self) {
        for job in std::mem::take(&mut self.unschedulable) {
            self.backoff.push(Reverse((self.backoff_until[job], job)));
        }
        self.core.cluster_changed();
    }
}

impl Model for NativeGangModel {
    fn name(&self) -> &'static str {
        "native-gang"
    }
    fn job_arrived(&mut self, _job: usize, _now: i64, _cl: &mut Cluster<'_>) {}
    fn pod_created(&mut self, pod: usize, _now: i64, cl: &mut Cluster<'_>) {
        let job = cl.pods[pod].job;
        self.core.attempts[pod] = 0;
        if Self::placed(job, cl) {
            self.core.enqueue(pod, cl);
            return;
        }
        // PreEnqueue: the group enters the queue once minCount pods exist.
        let have = cl
            .job_pods(job)
            .filter(|&p| cl.is_pending(p) || cl.is_live_holder(p))
            .count() as u32;
        if !self.enqueued[job] && have >= cl.wl.jobs[job].min_pods {
            self.enqueued[job] = true;
            self.make_ready(job, cl);
        }
    }
    fn job_ended(&mut self, _job: usize, _now: i64, _cl: &mut Cluster<'_>) {
        self.requeue();
    }
    fn pod_gone(&mut self, pod: usize, _now: i64, _cl: &mut Cluster<'_>) {
        self.core.nominated.remove(&pod);
        self.requeue();
    }
    fn step(&mut self, now: i64, cl: &mut Cluster<'_>) -> Option<i64> {
        if now - self.last_flush >= FLUSH_MS {
            self.last_flush = now;
            for job in std::mem::take(&mut self.unschedulable) {
                self.backoff.push(Reverse((self.backoff_until[job], job)));
            }
        }
        while let Some(Reverse((t, job))) = self.backoff.peek().copied() {
            if t > now {
                break;
            }
            self.backoff.pop();
            if self.enqueued[job] {
                self.make_ready(job, cl);
            }
        }
        while let Some((_, _, job)) = self.ready.pop_first() {
            if Self::placed(job, cl) {
                // Placed since (its pods go one by one now).
                self.enqueued[job] = false;
                continue;
            }
            self.cycle(job, now, cl);
        }
        self.core.refill(now, cl);
        self.core.schedule_pods(now, cl);
        let flush = (!self.unschedulable.is_empty()).then_some(self.last_flush + FLUSH_MS);
        let groups = match (self.backoff.peek().map(|Reverse((t, _))| *t), flush) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match (groups, self.core.wake()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
