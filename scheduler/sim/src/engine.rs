//! The discrete-event loop at virtual time, shared by every scheduler model.
//!
//! A job arrives (its PodGroup appears), its controller creates one pod per
//! `pod_interval`, the scheduler model assumes and binds pods, and the job
//! runs only once every pod is bound (MPI-style: the launcher waits for all
//! workers). Bound or assumed pods of a job that is not running yet hold
//! their resources: that is what lets pod-at-a-time scheduling deadlock.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use fluxion_core::group::{Demand, GroupGraph, NodeId, PodClaim};

use crate::report::{Run, Sample};
use crate::workload::Workload;

/// A pod of the simulation.
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
    /// What it holds (assumed or bound).
    pub claim: Option<PodClaim>,
    /// Whether it is bound (not just assumed).
    pub bound: bool,
}

/// A job's progress.
#[derive(Debug, Clone, Default)]
pub struct SimJob {
    /// Index of its first pod.
    pub first_pod: usize,
    /// Pods holding resources (assumed or bound).
    pub held: u32,
    /// Pods bound.
    pub bound: u32,
    /// Start time, ms.
    pub started: Option<i64>,
    /// Whether a start is scheduled.
    pub starting: bool,
    /// End time, ms.
    pub finished: Option<i64>,
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
    complete: Vec<usize>,
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
            complete: Vec::new(),
        }
    }

    /// Assumes `pod` on `node` if the kubelet would admit it; returns whether it did.
    pub fn assume(&mut self, pod: usize, node: NodeId) -> bool {
        let job = self.pods[pod].job;
        if self.pods[pod].claim.is_some() {
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
        if self.pods[pod].bound || self.pods[pod].claim.is_none() {
            return;
        }
        let job = self.pods[pod].job;
        self.pods[pod].bound = true;
        self.jobs[job].bound += 1;
        self.placements += 1;
        if self.jobs[job].bound == self.wl.jobs[job].pods {
            self.complete.push(job);
        }
    }

    /// Gives up an assumed (not bound) pod's resources.
    pub fn forget(&mut self, pod: usize) {
        if self.pods[pod].bound {
            return;
        }
        if let Some(claim) = self.pods[pod].claim.take() {
            self.truth.give(&claim);
            self.jobs[self.pods[pod].job].held -= 1;
        }
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
    /// A pod was created.
    fn pod_created(&mut self, pod: usize, now: i64, cl: &mut Cluster<'_>);
    /// A job started running.
    fn job_started(&mut self, _job: usize, _now: i64, _cl: &mut Cluster<'_>) {}
    /// A job ended; its pods' resources are already free.
    fn job_ended(&mut self, job: usize, now: i64, cl: &mut Cluster<'_>);
    /// One scheduling pass; returns when it wants to run again if nothing else happens.
    fn step(&mut self, now: i64, cl: &mut Cluster<'_>) -> Option<i64>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Arrive(usize),
    Create(usize),
    Start(usize),
    End(usize),
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

/// Runs the workload against a model; `tick` is called as jobs finish.
pub fn simulate(
    wl: &Workload,
    model: &mut dyn Model,
    tick: &mut dyn FnMut(u64),
) -> Result<Run, StepBudget> {
    let wall = Instant::now();
    let mut cl = Cluster::empty(wl);
    let (cap_cpu, _, cap_gpu, _) = cl.truth.free_totals();
    let mut heap: BinaryHeap<Reverse<(i64, u64, Ev)>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut push = |heap: &mut BinaryHeap<Reverse<(i64, u64, Ev)>>, t: i64, e: Ev| {
        seq += 1;
        heap.push(Reverse((t, seq, e)));
    };
    for (j, job) in wl.jobs.iter().enumerate() {
        push(&mut heap, job.arrival, Ev::Arrive(j));
    }
    let mut run = Run::new(model.name(), wl.jobs.len());
    let mut pending_creates = cl.pods.len();
    let mut running = 0usize;
    let mut starting = 0usize;
    let mut used_cpu = 0i64;
    let mut used_gpu = 0i64;
    let mut last_progress = 0i64;
    let mut wake: Option<i64> = None;
    let mut now = 0i64;
    let mut stuck_at: Option<i64> = None;
    let mut steps = 0u64;
    while let Some(Reverse((t, _, _))) = heap.peek().copied() {
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
        while let Some(Reverse((t2, _, ev))) = heap.peek().copied() {
            if t2 != now {
                break;
            }
            heap.pop();
            match ev {
                Ev::Arrive(j) => {
                    model.job_arrived(j, now, &mut cl);
                    for (k, p) in cl.job_pods(j).enumerate() {
                        push(
                            &mut heap,
                            later(now, (k as i64).saturating_mul(wl.pod_interval)),
                            Ev::Create(p),
                        );
                    }
                }
                Ev::Create(p) => {
                    cl.pods[p].created = true;
                    cl.pods[p].created_at = now;
                    pending_creates -= 1;
                    model.pod_created(p, now, &mut cl);
                }
                Ev::Start(j) => {
                    cl.jobs[j].started = Some(now);
                    running += 1;
                    starting -= 1;
                    last_progress = now;
                    let job = &wl.jobs[j];
                    used_cpu += job.requests.cpu_millis as i64 * i64::from(job.pods);
                    used_gpu += job.requests.gpus as i64 * i64::from(job.pods);
                    let wait = (now - job.arrival) as f64 / 1000.0;
                    run.waits.push(wait);
                    run.sized_waits.push((job.pods, wait));
                    let runtime = job.duration.max(1) as f64 / 1000.0;
                    run.slowdowns.push((wait + runtime) / runtime);
                    run.samples.push(Sample::new(
                        now,
                        used_cpu,
                        used_gpu,
                        cap_cpu,
                        cap_gpu,
                        run.completed,
                    ));
                    model.job_started(j, now, &mut cl);
                    push(&mut heap, later(now, job.duration), Ev::End(j));
                }
                Ev::End(j) => {
                    cl.jobs[j].finished = Some(now);
                    running -= 1;
                    last_progress = now;
                    let job = &wl.jobs[j];
                    used_cpu -= job.requests.cpu_millis as i64 * i64::from(job.pods);
                    used_gpu -= job.requests.gpus as i64 * i64::from(job.pods);
                    for p in cl.job_pods(j) {
                        if let Some(c) = cl.pods[p].claim.take() {
                            cl.truth.give(&c);
                        }
                    }
                    cl.jobs[j].held = 0;
                    run.completed += 1;
                    run.makespan_end = now;
                    run.samples.push(Sample::new(
                        now,
                        used_cpu,
                        used_gpu,
                        cap_cpu,
                        cap_gpu,
                        run.completed,
                    ));
                    model.job_ended(j, now, &mut cl);
                    tick(1);
                }
                Ev::Wake => {}
            }
        }
        let next = model.step(now, &mut cl);
        for j in std::mem::take(&mut cl.complete) {
            if !cl.jobs[j].starting {
                cl.jobs[j].starting = true;
                starting += 1;
                push(&mut heap, later(now, wl.startup), Ev::Start(j));
            }
        }
        if let Some(w) = next
            && w > now
            && wake.is_none_or(|cur| cur <= now || w < cur)
        {
            wake = Some(w);
            push(&mut heap, w, Ev::Wake);
        }
        let all_arrived = pending_creates == 0;
        if running == 0 && starting == 0 && all_arrived && run.completed < wl.jobs.len() as u64 {
            let only_wakes = heap.iter().all(|Reverse((_, _, e))| *e == Ev::Wake);
            if heap.is_empty() || (only_wakes && now - last_progress > STALL_MS) {
                stuck_at = Some(now);
                break;
            }
        }
    }
    run.first_arrival = wl.jobs.first().map_or(0, |j| j.arrival);
    run.end = now;
    run.placements = cl.placements;
    run.admission_failures = cl.admission_failures;
    for (j, job) in cl.jobs.iter().enumerate() {
        if job.started.is_none() && job.held > 0 {
            run.partial_gangs += 1;
            run.stranded_pods += u64::from(job.held);
        }
        if job.started.is_none() && job.held == 0 && cl.wl.jobs[j].pods > 0 {
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
