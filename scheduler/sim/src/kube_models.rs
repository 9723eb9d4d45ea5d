//! Models of kube-scheduler: the default (one pod at a time, bind at once),
//! the coscheduling plugin (Permit waits for the group, with a timeout) and
//! the native gang scheduling of Kubernetes 1.35+ (a PodGroup placed in one
//! group cycle, all or nothing).

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};

use fluxion_core::group::NodeId;

use crate::engine::{Cluster, Model};

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

/// Shared queue and node scoring of both kube-scheduler models.
struct KubeCore {
    active: BinaryHeap<Reverse<QueueKey>>,
    backoff: BinaryHeap<Reverse<(i64, usize)>>,
    unschedulable: BTreeSet<usize>,
    attempts: Vec<u32>,
    last_flush: i64,
    next_start: usize,
    node_ids: Vec<NodeId>,
    group_sort: bool,
}

impl KubeCore {
    fn new(pods: usize, group_sort: bool) -> Self {
        KubeCore {
            active: BinaryHeap::new(),
            backoff: BinaryHeap::new(),
            unschedulable: BTreeSet::new(),
            attempts: vec![0; pods],
            last_flush: 0,
            next_start: 0,
            node_ids: Vec::new(),
            group_sort,
        }
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

    /// Capacity was freed: unschedulable pods go back (after their backoff).
    fn cluster_changed(&mut self) {
        self.unschedulable.clear();
    }

    fn refill(&mut self, now: i64, cl: &Cluster<'_>) {
        if now - self.last_flush >= FLUSH_MS {
            self.last_flush = now;
            self.unschedulable.clear();
        }
        let mut hold = Vec::new();
        while let Some(Reverse((t, pod))) = self.backoff.peek().copied() {
            if t > now {
                break;
            }
            self.backoff.pop();
            if self.unschedulable.contains(&pod) {
                hold.push(pod);
            } else if cl.pods[pod].claim.is_none() {
                self.enqueue(pod, cl);
            }
        }
        // Still unschedulable: wait for a cluster change or the flush.
        for pod in hold {
            self.backoff
                .push(Reverse((self.last_flush + FLUSH_MS, pod)));
        }
    }

    fn wake(&self) -> Option<i64> {
        self.backoff.peek().map(|Reverse((t, _))| *t)
    }

    /// Filter (node-level fit, NUMA-unaware as NodeResourcesFit is) on a
    /// sample of nodes, score LeastAllocated + BalancedAllocation, best wins.
    fn pick_node(&mut self, pod: usize, cl: &Cluster<'_>) -> Option<NodeId> {
        if self.node_ids.is_empty() {
            self.node_ids = cl.truth.node_ids().collect();
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
        let d = &cl.demands[cl.pods[pod].job];
        let (cpu, mem, gpu) = (d.cpu_millis as i64, d.memory_bytes as i64, d.gpus as i64);
        let mut best: Option<(i64, NodeId)> = None;
        let mut found = 0;
        let mut scanned = 0;
        while scanned < n && found < want {
            let id = self.node_ids[(self.next_start + scanned) % n];
            scanned += 1;
            let (Some((fc, fm, fg, fp)), Some((cc, cm, _, _))) =
                (cl.truth.node_free(id), cl.truth.node_capacity(id))
            else {
                continue;
            };
            if fc < cpu || fm < mem || fg < gpu || fp < 1 {
                continue;
            }
            found += 1;
            let cpu_frac = 1.0 - (fc - cpu) as f64 / cc.max(1) as f64;
            let mem_frac = 1.0 - (fm - mem) as f64 / cm.max(1) as f64;
            let least = ((1.0 - cpu_frac) + (1.0 - mem_frac)) * 50.0;
            let balanced = (1.0 - (cpu_frac - mem_frac).abs()) * 100.0;
            let score = (least + balanced) as i64;
            if best.is_none_or(|(s, _)| score > s) {
                best = Some((score, id));
            }
        }
        self.next_start = (self.next_start + scanned) % n.max(1);
        best.map(|(_, id)| id)
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
        self.core.enqueue(pod, cl);
    }
    fn job_ended(&mut self, _job: usize, _now: i64, _cl: &mut Cluster<'_>) {
        self.core.cluster_changed();
    }
    fn step(&mut self, now: i64, cl: &mut Cluster<'_>) -> Option<i64> {
        self.core.refill(now, cl);
        while let Some(Reverse(key)) = self.core.active.pop() {
            let pod = key.4;
            if cl.pods[pod].claim.is_some() {
                continue;
            }
            match self.core.pick_node(pod, cl) {
                Some(node) if cl.assume(pod, node) => cl.bind(pod),
                // No node fits, or the kubelet rejected it (the Job recreates it).
                _ => self.core.park(pod, now),
            }
        }
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
        for p in cl.job_pods(job) {
            if cl.pods[p].created
                && cl.pods[p].claim.is_none()
                && self.core.unschedulable.remove(&p)
            {
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
            if cl.pods[pod].claim.is_some() || !seen.insert(pod) {
                continue;
            }
            let job = cl.pods[pod].job;
            let members = cl.job_pods(job).filter(|p| cl.pods[*p].created).count() as u32;
            if members < cl.wl.jobs[job].pods || self.denied_until[job] > now {
                self.core.attempts[pod] += 1;
                let at = self.denied_until[job].max(now + backoff(self.core.attempts[pod]));
                self.core.backoff.push(Reverse((at, pod)));
                continue;
            }
            match self.core.pick_node(pod, cl) {
                Some(node) if cl.assume(pod, node) => {
                    if cl.jobs[job].held >= cl.wl.jobs[job].pods {
                        for p in cl.job_pods(job) {
                            cl.bind(p);
                        }
                        self.waiting_since[job] = None;
                    } else {
                        self.waiting_since[job].get_or_insert(now);
                    }
                }
                _ => {
                    self.core.park(pod, now);
                    self.reject_group(job, now, cl);
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
/// PreEnqueue until all exist; then one group cycle filters and scores its
/// pods one after another against the free nodes, each seeing the ones
/// before it; if every pod found a node they are all bound, otherwise none
/// is and the group goes to the unschedulable queue with a backoff. The queue
/// never holds capacity for its head: a later, smaller group that fits runs
/// ahead of a large one that waits.
pub struct NativeGangModel {
    core: KubeCore,
    /// Groups whose pods all exist, waiting for a cycle: (priority, arrival, job).
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

    /// One group cycle: every pod gets a node, or none keeps one.
    fn cycle(&mut self, job: usize, now: i64, cl: &mut Cluster<'_>) {
        let pods: Vec<usize> = cl
            .job_pods(job)
            .filter(|&p| cl.pods[p].claim.is_none())
            .collect();
        let mut placed = Vec::with_capacity(pods.len());
        for &pod in &pods {
            match self.core.pick_node(pod, cl) {
                Some(node) if cl.assume(pod, node) => placed.push(pod),
                _ => break,
            }
        }
        if placed.len() == pods.len() {
            for p in placed {
                cl.bind(p);
            }
            return;
        }
        for p in placed {
            cl.forget(p);
        }
        self.attempts[job] += 1;
        self.backoff_until[job] = now + backoff(self.attempts[job]);
        self.unschedulable.insert(job);
    }
}

impl Model for NativeGangModel {
    fn name(&self) -> &'static str {
        "native-gang"
    }
    fn job_arrived(&mut self, _job: usize, _now: i64, _cl: &mut Cluster<'_>) {}
    fn pod_created(&mut self, pod: usize, _now: i64, cl: &mut Cluster<'_>) {
        // PreEnqueue: the group enters the queue once all its pods exist.
        let job = cl.pods[pod].job;
        if !self.enqueued[job] && cl.job_pods(job).all(|p| cl.pods[p].created) {
            self.enqueued[job] = true;
            self.make_ready(job, cl);
        }
    }
    fn job_ended(&mut self, _job: usize, _now: i64, _cl: &mut Cluster<'_>) {
        // Freed capacity moves unschedulable groups back, after their backoff.
        for job in std::mem::take(&mut self.unschedulable) {
            self.backoff.push(Reverse((self.backoff_until[job], job)));
        }
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
            self.make_ready(job, cl);
        }
        while let Some((_, _, job)) = self.ready.pop_first() {
            self.cycle(job, now, cl);
        }
        let flush = (!self.unschedulable.is_empty()).then_some(self.last_flush + FLUSH_MS);
        match (self.backoff.peek().map(|Reverse((t, _))| *t), flush) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
