//! From a scenario and a seed to concrete nodes and jobs.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use phalanx_gang::{Node, NumaPolicy, NumaZone, Resources};

use crate::scenario::{Choice, ChoiceF, DisruptionSpec, PolicySpec, PreemptionSpec, Scenario};

/// One job of the workload, concrete.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Unique name.
    pub name: String,
    /// Arrival time, ms.
    pub arrival: i64,
    /// Pods (at most; `min_pods` of them needed to run).
    pub pods: u32,
    /// Pods that must be bound for the job to run (`pods` unless elastic).
    pub min_pods: u32,
    /// Whether a native PodGroup victim goes whole (`disruptionMode: All`).
    pub disrupt_whole: bool,
    /// `preemptionPolicy: Never`: its pods wait and never preempt.
    pub never_preempts: bool,
    /// Requests of each pod.
    pub requests: Resources,
    /// Run time, ms.
    pub duration: i64,
    /// Declared run time, ms.
    pub estimate: i64,
    /// Priority.
    pub priority: i32,
}

/// The concrete cluster and jobs of a scenario run.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Nodes.
    pub nodes: Vec<Node>,
    /// Jobs by arrival.
    pub jobs: Vec<Job>,
    /// Gap between a job's pods, ms.
    pub pod_interval: i64,
    /// From the last bind to running, ms.
    pub startup: i64,
    /// Permit wait / group timeout, ms.
    pub schedule_timeout: i64,
    /// From eviction to the pod gone and its resources free, ms.
    pub termination_grace: i64,
    /// Virtual-time limit, ms.
    pub horizon: i64,
}

/// Seconds to milliseconds. Inputs are checked times (finite, >= 0) or
/// sums of them; the cast saturates, so a sum past i64 stops at its end.
fn ms(s: f64) -> i64 {
    (s * 1000.0).round() as i64
}

fn pick(c: &Choice, rng: &mut ChaCha8Rng) -> u64 {
    match c {
        Choice::One(v) => *v,
        Choice::List(l) => l[rng.random_range(0..l.len())],
        Choice::Range { min, max } => rng.random_range(*min..=*max),
    }
}

fn pick_f(c: &ChoiceF, rng: &mut ChaCha8Rng) -> f64 {
    match c {
        ChoiceF::One(v) => *v,
        ChoiceF::List(l) => l[rng.random_range(0..l.len())],
        ChoiceF::Range { min, max } if max > min => rng.random_range(*min..=*max),
        ChoiceF::Range { min, .. } => *min,
    }
}

/// Expands a (validated) scenario with `seed`.
pub fn build(s: &Scenario, seed: u64) -> Workload {
    let mut nodes = Vec::new();
    for pool in &s.cluster.nodes {
        let zones = pool.numa_zones.max(1);
        for i in 0..pool.count {
            let racks_total = pool.zones * pool.racks_per_zone;
            // Contiguous blocks of nodes share a rack, racks fill zones in order.
            let per_rack = pool.count.div_ceil(racks_total).max(1);
            let rack = i / per_rack;
            let zone = rack / pool.racks_per_zone;
            let numa_zones = if zones > 1 {
                (0..zones)
                    .map(|z| NumaZone {
                        id: z,
                        cpu_millis: share(pool.cpu.0, zones, z),
                        memory_bytes: share(pool.memory.0, zones, z),
                        gpus: share(pool.gpus, zones, z),
                    })
                    .collect()
            } else {
                Vec::new()
            };
            nodes.push(Node {
                name: format!("{}-{}", pool.prefix, i),
                allocatable: Resources::new(pool.cpu.0, pool.memory.0, pool.gpus),
                max_pods: pool.max_pods,
                labels: pool.labels.clone(),
                taints: Vec::new(),
                unschedulable: false,
                ready: true,
                numa_zones,
                numa_policy: match pool.numa_policy {
                    PolicySpec::None => NumaPolicy::None,
                    PolicySpec::BestEffort => NumaPolicy::BestEffort,
                    PolicySpec::SingleNumaNode => NumaPolicy::SingleNumaNode,
                },
                zone: Some(format!("zone-{zone}")),
                rack: Some(format!("rack-{rack}")),
            });
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut jobs = Vec::new();
    for j in &s.workload.jobs {
        for c in 0..j.count {
            let name = if j.count == 1 {
                j.name.clone()
            } else {
                format!("{}-{c}", j.name)
            };
            jobs.push(Job {
                name,
                arrival: ms(j.arrival.0),
                pods: j.pods,
                requests: Resources::new(j.cpu.0, j.memory.0, j.gpus),
                duration: ms(j.duration.0),
                estimate: ms(j.estimate.unwrap_or(j.duration).0),
                priority: j.priority,
                min_pods: j.min_pods.unwrap_or(j.pods).clamp(1, j.pods.max(1)),
                disrupt_whole: j.disruption == DisruptionSpec::All,
                never_preempts: j.preemption_policy == PreemptionSpec::Never,
            });
        }
    }
    for (gi, g) in s.workload.generate.iter().enumerate() {
        let mut t = g.start.0;
        for i in 0..g.count {
            if i > 0 && g.interarrival.0 > 0.0 {
                let u: f64 = rng.random_range(f64::EPSILON..1.0);
                t += -u.ln() * g.interarrival.0;
            }
            let pods = (pick(&g.pods, &mut rng) as u32).max(1);
            // Drawn only when given, so scenarios without it keep their
            // random sequence (and their reports) unchanged.
            let min_pods = g
                .min_pods
                .as_ref()
                .map_or(pods, |c| (pick(c, &mut rng) as u32).clamp(1, pods));
            let cpu = pick_f(&g.cpu, &mut rng);
            let gpus = g.gpus.as_ref().map_or(0, |c| pick(c, &mut rng));
            let duration = pick(&g.duration, &mut rng) as f64;
            let err = if g.estimate_error > 0.0 {
                rng.random_range(-g.estimate_error..g.estimate_error)
            } else {
                0.0
            };
            let prefix = if s.workload.generate.len() > 1 {
                format!("{}{gi}", g.prefix)
            } else {
                g.prefix.clone()
            };
            jobs.push(Job {
                name: format!("{prefix}-{i:04}"),
                arrival: ms(t),
                pods,
                min_pods,
                disrupt_whole: g.disruption == DisruptionSpec::All,
                never_preempts: g.preemption_policy == PreemptionSpec::Never,
                requests: Resources::new(
                    (cpu * 1000.0).round() as u64,
                    g.memory.map_or(0, |m| m.0),
                    gpus,
                ),
                duration: ms(duration),
                estimate: ms(duration * (1.0 + err)).max(1000),
                priority: g.priority,
            });
        }
    }
    jobs.sort_by(|a, b| (a.arrival, &a.name).cmp(&(b.arrival, &b.name)));
    Workload {
        nodes,
        jobs,
        pod_interval: ms(s.workload.pod_interval.0),
        startup: ms(s.workload.startup.0),
        schedule_timeout: ms(s.workload.schedule_timeout.0),
        termination_grace: ms(s.workload.termination_grace.0),
        horizon: s.horizon.map_or(i64::MAX / 4, |h| ms(h.0)),
    }
}

/// Zone `z`'s share of `total` split over `n` zones (the first zones get the remainder).
fn share(total: u64, n: u32, z: u32) -> u64 {
    let n = u64::from(n);
    let z = u64::from(z);
    total / n + u64::from(z < total % n)
}
