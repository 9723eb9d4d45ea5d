//! The discrete-event loop at virtual time, shared by every scheduler model.
//!
//! A job arrives (its PodGroup appears), its controller creates one pod per
//! `pod_interval`, the scheduler model assumes and binds pods, and the job
//! runs once `min_pods` of its pods are bound (MPI-style jobs need all of
//! them: the launcher waits for every worker; elastic jobs start at their
//! minimum and the others join as they bind). A job's `duration` is its run
//! time with all its pods: it has `duration x pods` pod-time of work, done
//! at the rate of its running pods, so an elastic job on its minimum runs
//! longer and speeds up as members join. Bound or assumed pods of a job
//! that is not running yet hold their resources: that is what lets
//! pod-at-a-time scheduling deadlock.
//!
//! A model may evict bound pods ([`Cluster::evict`]). An evicted pod is
//! terminating: it keeps its resources for the workload's
//! `termination_grace`, then it is gone and its job's controller creates a
//! replacement (a Job's `podReplacementPolicy: Failed`: no new pod while the
//! old one still runs). A running job that drops below its minimum fails as
//! an MPI job does: its controller deletes the rest of its pods and the job
//! starts again from zero once enough new pods are bound. A job whose pods
//! were evicted only in part (some kept, fewer than its minimum) is a
//! *partially preempted* gang. Wait is measured from the job's arrival to
//! its last start, so the time a preempted job ran before it was killed, and
//! its second wait, count against its wait.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::Instant;

use fluxion_core::group::{Demand, GroupGraph, NodeId, PodClaim};

use crate::report::{JobRecord, Run, Sample};
use crate::workload::Workload;

/// A pod of the simulation (the current incarnation of one slot of a job:
/// a replacement reuses the slot with the next `generation`).
#[derive(Debug, Clone)]
pub struct SimPod {
    /// Its job.
    pub job: usize,
    /// Index within the job.
    pub index: u32,
    /// Whether its controller has created it.
    pub created: bool,
    /// Creation time, ms.
    pub created_at: i64,
    /// What it holds (assumed, bound, or terminating).
    pub claim: Option<PodClaim>,
    /// Whether it is bound (not just assumed).
    pub bound: bool,
    /// Bind time, ms (a victim's start time, for preemption order).
    pub bound_at: i64,
    /// Evicted or deleted: it still holds its claim until its grace ends.
    pub terminating: bool,
    /// Incarnation: bumped each time the slot's pod is gone.
    pub generation: u32,
}

/// A job's progress.
#[derive(Debug, Clone, Default)]
pub struct SimJob {
    /// Index of its first pod.
    pub first_pod: usize,
    /// Live pods holding resources (assumed or bound, not terminating).
    pub held: u32,
    /// Live pods bound.
    pub bound: u32,
    /// Start time of the current run, ms.
    pub started: Option<i64>,
    /// Whether a start is scheduled.
    pub starting: bool,
    /// End time, ms.
    pub finished: Option<i64>,
    /// Run attempt: bumped when the job fails and starts over.
    pub epoch: u32,
    /// Times it failed and started over.
    pub restarts: u32,
    /// Pods counted as doing work (bound while it runs).
    counted: u32,
    /// Work left at `since`, pod-ms.
    work_left: f64,
    /// When `work_left` was last brought up to date, ms.
    since: i64,
    /// Names the one `End` event that counts (bumped when it moves).
    end_token: u32,
    /// Wait of its last start, s.
    wait: Option<f64>,
    /// This attempt lost pods below its minimum to preemption; `true` when
    /// some of its pods were kept (a partial preemption).
    hit: Option<bool>,
}

/// The cluster as the simulation knows it (the truth every model binds into).
pub struct Cluster<'w> {
    /// The workload.
    pub wl: &'w Workload,
    /// Free resources on the nodes, NUMA zones included (the kubelets' view).
    pub truth: GroupGraph,
    /// Pods, job by job.
    pub pods: Vec<SimPod>,
    /// Jobs.
    pub jobs: Vec<SimJob>,
    /// Pod demands per job.
    pub demands: Vec<Demand>,
    /// Pods bound so far.
    pub placements: u64,
    /// Pods rejected by the kubelet (NUMA admission).
    pub admission_failures: u64,
    /// Virtual time of the current step, ms.
    pub now: i64,
    complete: Vec<usize>,
    evictions: Vec<usize>,
    used_cpu: i64,
    used_gpu: i64,
    util_changed: bool,
    extra_binds: u64,
    /// Running jobs whose pod count changed: their end moves.
    rate_changed: Vec<usize>,
}

impl<'w> Cluster<'w> {
    /// A cluster with the workload's nodes and pods, nothing placed.
    pub fn empty(wl: &'w Workload) -> Self {
        let mut truth = GroupGraph::new();
        for n in &wl.nodes {
            truth.upsert_node(phalanx_gang::node_spec(n));
        }
        let mut pods = Vec::new();
        let mut jobs = Vec::new();
        let mut demands = Vec::new();
        for (j, job) in wl.jobs.iter().enumerate() {
            jobs.push(SimJob {
                first_pod: pods.len(),
                ..Default::default()
            });
            for i in 0..job.pods {
                pods.push(SimPod {
                    job: j,
                    index: i,
                    created: false,
                    created_at: 0,
                    claim: None,
                    bound: false,
                    bound_at: 0,
                    terminating: false,
                    generation: 0,
                });
            }
            demands.push(Demand {
                cpu_millis: job.requests.cpu_millis,
                memory_bytes: job.requests.memory_bytes,
                gpus: job.requests.gpus,
                extended: Vec::new(),
            });
        }
        Cluster {
            wl,
            truth,
            pods,
            jobs,
            demands,
            placements: 0,
            admission_failures: 0,
            now: 0,
            complete: Vec::new(),
            evictions: Vec::new(),
            used_cpu: 0,
            used_gpu: 0,
            util_changed: false,
            extra_binds: 0,
            rate_changed: Vec::new(),
        }
    }

    /// Assumes `pod` on `node` if the kubelet would admit it; returns whether it did.
    pub fn assume(&mut self, pod: usize, node: NodeId) -> bool {
        let job = self.pods[pod].job;
        if self.pods[pod].claim.is_some() || !self.pods[pod].created {
            return false;
        }
        let Some(claim) = self.truth.claim_on_node(node, &self.demands[job]) else {
            self.admission_failures += 1;
            return false;
        };
        self.truth.take(&claim);
        self.pods[pod].claim = Some(claim);
        self.jobs[job].held += 1;
        true
    }

    /// Binds an assumed pod.
    pub fn bind(&mut self, pod: usize) {
        if self.pods[pod].bound || self.pods[pod].claim.is_none() || self.pods[pod].terminating {
            return;
        }
        let job = self.pods[pod].job;
        self.pods[pod].bound = true;
        self.pods[pod].bound_at = self.now;
        self.jobs[job].bound += 1;
        self.placements += 1;
        let spec = &self.wl.jobs[job];
        if self.jobs[job].started.is_some() {
            // An elastic member joining a running job.
            self.settle(job);
            self.jobs[job].counted += 1;
            self.used_cpu += spec.requests.cpu_millis as i64;
            self.used_gpu += spec.requests.gpus as i64;
            self.util_changed = true;
            self.extra_binds += 1;
        } else if self.jobs[job].bound >= spec.min_pods {
            self.complete.push(job);
        }
    }

    /// Brings a running job's work left up to now, before its pod count changes.
    fn settle(&mut self, job: usize) {
        let j = &mut self.jobs[job];
        j.work_left = (j.work_left - (self.now - j.since) as f64 * f64::from(j.counted)).max(0.0);
        j.since = self.now;
        self.rate_changed.push(job);
    }

    /// Gives up an assumed (not bound) pod's resources.
    pub fn forget(&mut self, pod: usize) {
        if self.pods[pod].bound || self.pods[pod].terminating {
            return;
        }
        if let Some(claim) = self.pods[pod].claim.take() {
            self.truth.give(&claim);
            self.jobs[self.pods[pod].job].held -= 1;
        }
    }

    /// Asks for a bound pod to be evicted (a preemption victim); returns
    /// whether it is one that can be. It terminates after this step.
    pub fn evict(&mut self, pod: usize) -> bool {
        let p = &self.pods[pod];
        if !p.bound || p.terminating || p.claim.is_none() {
            return false;
        }
        self.evictions.push(pod);
        true
    }

    /// Whether `pod` exists and waits for a node (created, holding nothing,
    /// not terminating, its job not finished).
    pub fn is_pending(&self, pod: usize) -> bool {
        let p = &self.pods[pod];
        p.created && p.claim.is_none() && !p.terminating && self.jobs[p.job].finished.is_none()
    }

    /// Whether `pod` holds resources and is not terminating.
    pub fn is_live_holder(&self, pod: usize) -> bool {
        let p = &self.pods[pod];
        p.claim.is_some() && !p.terminating
    }

    /// Priority of a pod (its job's).
    pub fn priority(&self, pod: usize) -> i32 {
        self.wl.jobs[self.pods[pod].job].priority
    }

    /// Pod indices of a job.
    pub fn job_pods(&self, job: usize) -> std::ops::Range<usize> {
        let first = self.jobs[job].first_pod;
        first..first + self.wl.jobs[job].pods as usize
    }
}

/// A scheduler under test.
pub trait Model {
    /// Name in the report.
    fn name(&self) -> &'static str;
    /// A job arrived (its PodGroup exists).
    fn job_arrived(&mut self, job: usize, now: i64, cl: &mut Cluster<'_>);
    /// A pod was created (a job's first pods, or a replacement).
    fn pod_created(&mut self, pod: usize, now: i64, cl: &mut Cluster<'_>);
    /// A job started running.
    fn job_started(&mut self, _job: usize, _now: i64, _cl: &mut Cluster<'_>) {}
    /// A job ended; its pods' resources are already free.
    fn job_ended(&mut self, job: usize, now: i64, cl: &mut Cluster<'_>);
    /// A pod is terminating (evicted, or deleted by its job's controller):
    /// it still holds its resources until [`Model::pod_gone`].
    fn pod_terminating(&mut self, _pod: usize, _now: i64, _cl: &mut Cluster<'_>) {}
    /// A pod is gone and its resources are free (or, if it held none, it
    /// was deleted); called before the slot's generation is bumped.
    fn pod_gone(&mut self, _pod: usize, _now: i64, _cl: &mut Cluster<'_>) {}
    /// One scheduling pass; returns when it wants to run again if nothing else happens.
    fn step(&mut self, now: i64, cl: &mut Cluster<'_>) -> Option<i64>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Arrive(usize),
    Create(usize),
    /// Job, epoch.
    Start(usize, u32),
    /// Job, end token.
    End(usize, u32),
    /// Pod, generation: its termination grace is over.
    Gone(usize, u32),
    Wake,
}

/// After this long with nothing running and no job starting, a run that
/// still has work is declared stuck.
const STALL_MS: i64 = 3_600_000;

/// `now + dt` on the virtual clock. Scenario times are bounded when read,
/// but a long queue adds them up: the clock stops at its end (past any
/// horizon) rather than wrapping into the past.
fn later(now: i64, dt: i64) -> i64 {
    now.saturating_add(dt.max(0))
}

/// Most virtual-time steps one run may take. A scheduler that polls (the
/// gang core retries every few seconds) takes a step per poll, so a
/// scenario of very long jobs queued behind each other could otherwise run
/// for hours of wall time.
pub const MAX_STEPS: u64 = 50_000_000;

/// A run that needed more than [`MAX_STEPS`] steps.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{scheduler}: stopped after {MAX_STEPS} steps at virtual time {at_secs} s with {left} of \
     {jobs} jobs unfinished; set `horizon` or shorten the workload"
)]
pub struct StepBudget {
    /// The scheduler model.
    pub scheduler: String,
    /// Virtual time reached, in seconds.
    pub at_secs: i64,
    /// Jobs not finished.
    pub left: u64,
    /// Jobs in all.
    pub jobs: usize,
}

/// The loop's state besides the cluster.
struct Sim {
    heap: BinaryHeap<Reverse<(i64, u64, Ev)>>,
    seq: u64,
    pending_creates: usize,
    running: usize,
    starting: usize,
    last_progress: i64,
    cap_cpu: i64,
    cap_gpu: i64,
}

impl Sim {
    fn push(&mut self, t: i64, e: Ev) {
        self.seq += 1;
        self.heap.push(Reverse((t, self.seq, e)));
    }

    fn sample(&self, run: &mut Run, cl: &Cluster<'_>) {
        run.samples.push(Sample::new(
            cl.now,
            cl.used_cpu,
            cl.used_gpu,
            self.cap_cpu,
            self.cap_gpu,
            run.completed,
        ));
    }

    /// (Re)schedules a running job's end: its work left at its pod count.
    fn schedule_end(&mut self, job: usize, cl: &mut Cluster<'_>) {
        let j = &mut cl.jobs[job];
        j.end_token += 1;
        if j.counted == 0 {
            return;
        }
        // Exact for a job on all its pods: duration x pods / pods.
        let left = (j.work_left / f64::from(j.counted)).ceil() as i64;
        let (at, token) = (later(j.since, left), j.end_token);
        self.push(at, Ev::End(job, token));
    }

    /// `pod` starts terminating: it stops counting for its job now and
    /// frees its resources after the grace period.
    fn terminate(&mut self, pod: usize, cl: &mut Cluster<'_>, model: &mut dyn Model) {
        let job = cl.pods[pod].job;
        cl.pods[pod].terminating = true;
        cl.jobs[job].held -= 1;
        if cl.pods[pod].bound {
            cl.jobs[job].bound -= 1;
            if cl.jobs[job].started.is_some() && cl.jobs[job].counted > 0 {
                cl.settle(job);
                let spec = &cl.wl.jobs[job];
                cl.jobs[job].counted -= 1;
                cl.used_cpu -= spec.requests.cpu_millis as i64;
                cl.used_gpu -= spec.requests.gpus as i64;
                cl.util_changed = true;
            }
        }
        model.pod_terminating(pod, cl.now, cl);
        let generation = cl.pods[pod].generation;
        self.push(
            later(cl.now, cl.wl.termination_grace),
            Ev::Gone(pod, generation),
        );
    }

    /// The slot's pod is gone: free what it held; its controller makes a
    /// new one unless the job is over.
    fn gone(&mut self, pod: usize, cl: &mut Cluster<'_>, model: &mut dyn Model) {
        if let Some(c) = cl.pods[pod].claim.take() {
            cl.truth.give(&c);
        }
        cl.pods[pod].terminating = false;
        cl.pods[pod].bound = false;
        model.pod_gone(pod, cl.now, cl);
        cl.pods[pod].created = false;
        cl.pods[pod].generation += 1;
        if cl.jobs[cl.pods[pod].job].finished.is_none() {
            self.pending_creates += 1;
            self.push(cl.now, Ev::Create(pod));
        }
    }

    /// A running (or starting) job fell below its minimum: it fails, its
    /// controller deletes its other pods, and it starts over.
    fn fail_job(&mut self, job: usize, run: &mut Run, cl: &mut Cluster<'_>, model: &mut dyn Model) {
        let size = f64::from(cl.wl.jobs[job].min_pods);
        for p in cl.job_pods(job) {
            if cl.is_live_holder(p) {
                self.terminate(p, cl, model);
            } else if cl.is_pending(p) {
                // Never placed: deleted at once, and made again.
                self.gone(p, cl, model);
            }
        }
        let j = &mut cl.jobs[job];
        if let Some(started) = j.started.take() {
            self.running -= 1;
            run.lost_pod_secs += (cl.now - started) as f64 / 1000.0 * size;
        } else if j.starting {
            self.starting -= 1;
        }
        j.starting = false;
        j.counted = 0;
        j.end_token += 1;
        j.epoch += 1;
        j.restarts += 1;
        j.wait = None;
        j.hit = None;
        run.restarts += 1;
        self.last_progress = cl.now;
    }

    /// Carries out the evictions the model asked for in this step.
    fn evictions(&mut self, run: &mut Run, cl: &mut Cluster<'_>, model: &mut dyn Model) {
        let mut by_job: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for p in std::mem::take(&mut cl.evictions) {
            if cl.pods[p].bound && cl.is_live_holder(p) {
                let v = by_job.entry(cl.pods[p].job).or_default();
                if !v.contains(&p) {
                    v.push(p);
                }
            }
        }
        for (job, pods) in by_job {
            let n = pods.len() as u32;
            let remaining = cl.jobs[job].held - n;
            run.evicted_pods += u64::from(n);
            for p in pods {
                self.terminate(p, cl, model);
            }
            if remaining >= cl.wl.jobs[job].min_pods {
                // Elastic members above the minimum: the job runs on.
                run.released_members += u64::from(n);
                continue;
            }
            let partial = remaining > 0;
            match cl.jobs[job].hit {
                None => {
                    run.preempted_gangs += 1;
                    run.partially_preempted_gangs += u64::from(partial);
                }
                Some(false) if partial => run.partially_preempted_gangs += 1,
                Some(_) => {}
            }
            let hit = cl.jobs[job].hit.unwrap_or(false) || partial;
            cl.jobs[job].hit = Some(hit);
            if cl.jobs[job].started.is_some() || cl.jobs[job].starting {
                self.fail_job(job, run, cl, model);
            }
        }
    }
}

/// Runs the workload against a model; `tick` is called as jobs finish.
pub fn simulate(
    wl: &Workload,
    model: &mut dyn Model,
    tick: &mut dyn FnMut(u64),
) -> Result<Run, StepBudget> {
    let wall = Instant::now();
    let mut cl = Cluster::empty(wl);
    let (cap_cpu, _, cap_gpu, _) = cl.truth.free_totals();
    let mut sim = Sim {
        heap: BinaryHeap::new(),
        seq: 0,
        pending_creates: cl.pods.len(),
        running: 0,
        starting: 0,
        last_progress: 0,
        cap_cpu,
        cap_gpu,
    };
    for (j, job) in wl.jobs.iter().enumerate() {
        sim.push(job.arrival, Ev::Arrive(j));
    }
    let mut run = Run::new(model.name(), wl.jobs.len());
    let mut wake: Option<i64> = None;
    let mut now = 0i64;
    let mut stuck_at: Option<i64> = None;
    let mut steps = 0u64;
    while let Some(Reverse((t, _, _))) = sim.heap.peek().copied() {
        if t > wl.horizon {
            break;
        }
        steps += 1;
        if steps > MAX_STEPS {
            return Err(StepBudget {
                scheduler: model.name().to_owned(),
                at_secs: t / 1000,
                left: (wl.jobs.len() as u64).saturating_sub(run.completed),
                jobs: wl.jobs.len(),
            });
        }
        now = t;
        cl.now = now;
        while let Some(Reverse((t2, _, ev))) = sim.heap.peek().copied() {
            if t2 != now {
                break;
            }
            sim.heap.pop();
            match ev {
                Ev::Arrive(j) => {
                    model.job_arrived(j, now, &mut cl);
                    for (k, p) in cl.job_pods(j).enumerate() {
                        sim.push(
                            later(now, (k as i64).saturating_mul(wl.pod_interval)),
                            Ev::Create(p),
                        );
                    }
                }
                Ev::Create(p) => {
                    sim.pending_creates -= 1;
                    if cl.pods[p].created || cl.jobs[cl.pods[p].job].finished.is_some() {
                        continue;
                    }
                    cl.pods[p].created = true;
                    cl.pods[p].created_at = now;
                    model.pod_created(p, now, &mut cl);
                }
                Ev::Start(j, epoch) => {
                    if epoch != cl.jobs[j].epoch || !cl.jobs[j].starting {
                        continue;
                    }
                    cl.jobs[j].started = Some(now);
                    cl.jobs[j].starting = false;
                    cl.jobs[j].hit = None;
                    sim.running += 1;
                    sim.starting -= 1;
                    sim.last_progress = now;
                    let job = &wl.jobs[j];
                    let counted = cl.jobs[j].bound;
                    cl.jobs[j].counted = counted;
                    cl.jobs[j].work_left = job.duration as f64 * f64::from(job.pods);
                    cl.jobs[j].since = now;
                    cl.used_cpu += job.requests.cpu_millis as i64 * i64::from(counted);
                    cl.used_gpu += job.requests.gpus as i64 * i64::from(counted);
                    cl.jobs[j].wait = Some((now - job.arrival) as f64 / 1000.0);
                    sim.sample(&mut run, &cl);
                    cl.util_changed = false;
                    model.job_started(j, now, &mut cl);
                    sim.schedule_end(j, &mut cl);
                }
                Ev::End(j, token) => {
                    if token != cl.jobs[j].end_token || cl.jobs[j].started.is_none() {
                        continue;
                    }
                    cl.jobs[j].finished = Some(now);
                    sim.running -= 1;
                    sim.last_progress = now;
                    let job = &wl.jobs[j];
                    let counted = i64::from(std::mem::take(&mut cl.jobs[j].counted));
                    cl.used_cpu -= job.requests.cpu_millis as i64 * counted;
                    cl.used_gpu -= job.requests.gpus as i64 * counted;
                    for p in cl.job_pods(j) {
                        // Terminating pods keep theirs until they are gone.
                        if !cl.pods[p].terminating
                            && let Some(c) = cl.pods[p].claim.take()
                        {
                            cl.truth.give(&c);
                        }
                    }
                    cl.jobs[j].held = 0;
                    run.completed += 1;
                    run.makespan_end = now;
                    sim.sample(&mut run, &cl);
                    cl.util_changed = false;
                    model.job_ended(j, now, &mut cl);
                    tick(1);
                }
                Ev::Gone(p, generation) => {
                    if cl.pods[p].generation == generation && cl.pods[p].terminating {
                        sim.gone(p, &mut cl, model);
                    }
                }
                Ev::Wake => {}
            }
        }
        let next = model.step(now, &mut cl);
        if !cl.evictions.is_empty() {
            sim.evictions(&mut run, &mut cl, model);
        }
        for j in std::mem::take(&mut cl.rate_changed) {
            if cl.jobs[j].started.is_some() {
                sim.schedule_end(j, &mut cl);
            }
        }
        for j in std::mem::take(&mut cl.complete) {
            let job = &cl.jobs[j];
            if !job.starting
                && job.started.is_none()
                && job.finished.is_none()
                && job.bound >= wl.jobs[j].min_pods
            {
                cl.jobs[j].starting = true;
                sim.starting += 1;
                let epoch = cl.jobs[j].epoch;
                sim.push(later(now, wl.startup), Ev::Start(j, epoch));
            }
        }
        if cl.util_changed {
            cl.util_changed = false;
            sim.sample(&mut run, &cl);
        }
        if let Some(w) = next
            && w > now
            && wake.is_none_or(|cur| cur <= now || w < cur)
        {
            wake = Some(w);
            sim.push(w, Ev::Wake);
        }
        let all_arrived = sim.pending_creates == 0;
        if sim.running == 0
            && sim.starting == 0
            && all_arrived
            && run.completed < wl.jobs.len() as u64
        {
            let only_wakes = sim.heap.iter().all(|Reverse((_, _, e))| *e == Ev::Wake);
            if sim.heap.is_empty() || (only_wakes && now - sim.last_progress > STALL_MS) {
                stuck_at = Some(now);
                break;
            }
        }
    }
    let last_progress = sim.last_progress;
    run.first_arrival = wl.jobs.first().map_or(0, |j| j.arrival);
    run.end = now;
    run.placements = cl.placements;
    run.admission_failures = cl.admission_failures;
    run.extra_members_bound = cl.extra_binds;
    for (j, job) in cl.jobs.iter().enumerate() {
        let spec = &cl.wl.jobs[j];
        run.job_records.push(JobRecord {
            name: spec.name.clone(),
            pods: spec.pods,
            min_pods: spec.min_pods,
            cpu_millis: spec.requests.cpu_millis,
            gpus: spec.requests.gpus,
            priority: spec.priority,
            arrival_secs: (spec.arrival - run.first_arrival) as f64 / 1000.0,
            duration_secs: spec.duration as f64 / 1000.0,
            estimate_secs: spec.estimate as f64 / 1000.0,
            wait_secs: job.wait,
            restarts: job.restarts,
            completed: job.finished.is_some(),
        });
        if job.started.is_none() && job.finished.is_none() && job.held > 0 {
            run.partial_gangs += 1;
            run.stranded_pods += u64::from(job.held);
        }
        if job.started.is_none() && job.finished.is_none() && job.held == 0 && spec.pods > 0 {
            run.never_started += 1;
        }
    }
    if let Some(at) = stuck_at
        && run.partial_gangs > 0
    {
        run.deadlock_since = Some(last_progress.max(at.min(last_progress)));
    }
    run.stuck = stuck_at.is_some();
    run.wall_secs = wall.elapsed().as_secs_f64();
    run.finish(cap_cpu, cap_gpu);
    Ok(run)
}
