//! The scenario file: a cluster and a workload, in YAML.
//!
//! ```yaml
//! name: my-scenario              # optional; defaults to the file name
//! description: what it shows     # optional
//! seed: 1                        # default seed (overridden by --seed)
//! cluster:
//!   nodes:                       # node pools; each makes `count` identical nodes
//!     - count: 8
//!       prefix: node             # names node-0, node-1, ...
//!       cpu: 8                   # cores, or a quantity: "7500m"
//!       memory: 32Gi             # bytes, or a quantity: 32Gi, 512Mi
//!       gpus: 0                  # nvidia.com/gpu
//!       numa_zones: 1            # CPU and GPUs split evenly across zones
//!       numa_policy: none        # none | best-effort | single-numa-node
//!       max_pods: 110
//!       zones: 1                 # nodes spread over this many zones...
//!       racks_per_zone: 1        # ...and racks in each zone
//! workload:
//!   pod_interval: 0.2s           # a job's controller creates one pod per interval
//!   startup: 2s                  # from the last pod bound to the job running
//!   schedule_timeout: 60s        # PodGroup scheduleTimeoutSeconds
//!   termination_grace: 30s       # an evicted pod holds its resources this long
//!   jobs:                        # explicit jobs (each may repeat with `count`)
//!     - name: lammps
//!       count: 1
//!       arrival: 0s              # seconds or a duration ("5m")
//!       pods: 4                  # pods per job (all needed to run: MPI-style)
//!       cpu: 2
//!       memory: 1Gi
//!       gpus: 0
//!       duration: 120s           # actual run time
//!       estimate: 150s           # what the job says (annotation); default: duration
//!       priority: 0
//!       min_pods: 2              # elastic: runs once this many are bound; default: pods
//!       disruption: single       # native PodGroup disruptionMode: single (the API's
//!                                # default) or all; only the native-gang model reads it
//!       preemption_policy: preempt-lower-priority   # or never: it waits, never preempts
//!   generate:                    # seeded random jobs
//!     - count: 100
//!       start: 0s                # first arrival
//!       interarrival: 5s         # mean gap (exponential)
//!       pods: [2, 4, 8]          # a value, a list to pick from, or {min, max}
//!       cpu: [2, 4]
//!       memory: 2Gi
//!       gpus: 0
//!       duration: {min: 60, max: 600}
//!       estimate_error: 0.2      # estimate = duration * (1 + U(-e, e))
//!       priority: 0
//!       min_pods: [1, 2]         # elastic minimum (at most the job's pods); default: pods
//!       disruption: single
//! ```

use std::collections::BTreeMap;
use std::fmt;

use phalanx_gang::quantity;
use serde::Deserialize;

/// A scenario as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name shown in the report.
    #[serde(default)]
    pub name: String,
    /// What the scenario shows.
    #[serde(default)]
    pub description: String,
    /// Default seed.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Stop the simulation at this virtual time at the latest.
    #[serde(default)]
    pub horizon: Option<Seconds>,
    /// The cluster.
    pub cluster: ClusterSpec,
    /// The jobs.
    pub workload: WorkloadSpec,
}

/// The cluster: pools of identical nodes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    /// Node pools.
    pub nodes: Vec<NodePool>,
}

/// `count` identical nodes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodePool {
    /// How many.
    pub count: u32,
    /// Name prefix.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// CPU per node.
    pub cpu: Cpu,
    /// Memory per node.
    pub memory: Bytes,
    /// GPUs per node.
    #[serde(default)]
    pub gpus: u64,
    /// NUMA zones per node.
    #[serde(default = "one")]
    pub numa_zones: u32,
    /// Topology Manager policy.
    #[serde(default)]
    pub numa_policy: PolicySpec,
    /// Max pods per node.
    #[serde(default = "default_max_pods")]
    pub max_pods: u32,
    /// Zones the pool spreads over.
    #[serde(default = "one")]
    pub zones: u32,
    /// Racks per zone.
    #[serde(default = "one")]
    pub racks_per_zone: u32,
    /// Labels on every node of the pool.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Topology Manager policy in the file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicySpec {
    /// No alignment.
    #[default]
    None,
    /// Align when possible.
    BestEffort,
    /// Reject pods that do not fit one NUMA zone.
    SingleNumaNode,
}

fn default_prefix() -> String {
    "node".to_owned()
}
fn one() -> u32 {
    1
}
fn default_max_pods() -> u32 {
    110
}

/// The workload.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpec {
    /// Gap between a job's pods being created by its controller.
    #[serde(default = "default_pod_interval")]
    pub pod_interval: Seconds,
    /// From all pods bound to the job running.
    #[serde(default = "default_startup")]
    pub startup: Seconds,
    /// PodGroup scheduleTimeoutSeconds (coscheduling's Permit wait).
    #[serde(default = "default_timeout")]
    pub schedule_timeout: Seconds,
    /// How long an evicted pod keeps its resources before it is gone
    /// (`terminationGracePeriodSeconds`, 30 s by default in Kubernetes).
    #[serde(default = "default_grace")]
    pub termination_grace: Seconds,
    /// Explicit jobs.
    #[serde(default)]
    pub jobs: Vec<JobSpec>,
    /// Generated jobs.
    #[serde(default)]
    pub generate: Vec<GenerateSpec>,
}

fn default_pod_interval() -> Seconds {
    Seconds(0.2)
}
fn default_startup() -> Seconds {
    Seconds(2.0)
}
fn default_timeout() -> Seconds {
    Seconds(60.0)
}
fn default_grace() -> Seconds {
    Seconds(30.0)
}

/// A pod's `spec.preemptionPolicy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PreemptionSpec {
    /// It may preempt pods of lower priority (the Kubernetes default).
    #[default]
    PreemptLowerPriority,
    /// It waits for room.
    Never,
}

/// A native PodGroup's `disruptionMode`: how workload-aware preemption may
/// take it apart when it is a victim.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DisruptionSpec {
    /// Pods are victims one by one (the API's default when unset).
    #[default]
    Single,
    /// The group is a victim whole or not at all.
    All,
}

/// One explicit job (or `count` copies).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// Name (copies get `-N`).
    pub name: String,
    /// Copies.
    #[serde(default = "one")]
    pub count: u32,
    /// Arrival time.
    #[serde(default)]
    pub arrival: Seconds,
    /// Pods.
    pub pods: u32,
    /// CPU per pod.
    pub cpu: Cpu,
    /// Memory per pod.
    #[serde(default)]
    pub memory: Bytes,
    /// GPUs per pod.
    #[serde(default)]
    pub gpus: u64,
    /// Run time.
    pub duration: Seconds,
    /// Declared run time; default: `duration`.
    #[serde(default)]
    pub estimate: Option<Seconds>,
    /// Priority.
    #[serde(default)]
    pub priority: i32,
    /// Elastic minimum: the job runs once this many pods are bound, the
    /// rest join as they bind; default: `pods` (MPI-style, all needed).
    #[serde(default)]
    pub min_pods: Option<u32>,
    /// The native PodGroup's disruption mode (read by the native-gang model).
    #[serde(default)]
    pub disruption: DisruptionSpec,
    /// Whether its pods may preempt.
    #[serde(default)]
    pub preemption_policy: PreemptionSpec,
}

/// Generated jobs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateSpec {
    /// Jobs to generate.
    pub count: u32,
    /// Name prefix.
    #[serde(default = "default_job_prefix")]
    pub prefix: String,
    /// First arrival.
    #[serde(default)]
    pub start: Seconds,
    /// Mean gap between arrivals (exponential).
    #[serde(default)]
    pub interarrival: Seconds,
    /// Pods per job.
    pub pods: Choice,
    /// CPU per pod, in cores (whole or fractional).
    pub cpu: ChoiceF,
    /// Memory per pod, in GiB.
    #[serde(default)]
    pub memory: Option<Bytes>,
    /// GPUs per pod.
    #[serde(default)]
    pub gpus: Option<Choice>,
    /// Run time in seconds.
    pub duration: Choice,
    /// Relative error of declared run times.
    #[serde(default)]
    pub estimate_error: f64,
    /// Priority.
    #[serde(default)]
    pub priority: i32,
    /// Elastic minimum per job (capped at the job's pods); default: all pods.
    #[serde(default)]
    pub min_pods: Option<Choice>,
    /// The native PodGroup's disruption mode (read by the native-gang model).
    #[serde(default)]
    pub disruption: DisruptionSpec,
    /// Whether its pods may preempt.
    #[serde(default)]
    pub preemption_policy: PreemptionSpec,
}

fn default_job_prefix() -> String {
    "job".to_owned()
}

/// An integer: a value, a list to pick from uniformly, or a uniform range.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Choice {
    /// Always this.
    One(u64),
    /// One of these.
    List(Vec<u64>),
    /// Uniform in `[min, max]`.
    Range {
        /// Lowest.
        min: u64,
        /// Highest.
        max: u64,
    },
}

impl Choice {
    fn min(&self) -> Option<u64> {
        match self {
            Choice::One(v) => Some(*v),
            Choice::List(l) => l.iter().copied().min(),
            Choice::Range { min, .. } => Some(*min),
        }
    }

    fn max(&self) -> Option<u64> {
        match self {
            Choice::One(v) => Some(*v),
            Choice::List(l) => l.iter().copied().max(),
            Choice::Range { max, .. } => Some(*max),
        }
    }
}

/// A number: a value, a list to pick from uniformly, or a uniform range.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum ChoiceF {
    /// Always this.
    One(f64),
    /// One of these.
    List(Vec<f64>),
    /// Uniform in `[min, max]`.
    Range {
        /// Lowest.
        min: f64,
        /// Highest.
        max: f64,
    },
}

/// CPU: cores as a number (`2`, `0.5`) or a quantity (`"500m"`, `"2"`); in millicores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cpu(pub u64);

impl<'de> Deserialize<'de> for Cpu {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(f64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) if (0.0..=MAX_CPU_MILLIS as f64 / 1000.0).contains(&n) => {
                Ok(Cpu((n * 1000.0).round() as u64))
            }
            Raw::N(n) => Err(serde::de::Error::custom(format!(
                "cpu must be a number of cores between 0 and {}, got {n}",
                MAX_CPU_MILLIS / 1000
            ))),
            Raw::S(s) => parse_cpu(&s).map(Cpu).map_err(serde::de::Error::custom),
        }
    }
}

/// Memory: bytes as a number or a quantity (`512Mi`, `4Gi`, `1G`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bytes(pub u64);

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(Bytes(n)),
            Raw::S(s) => parse_bytes(&s).map(Bytes).map_err(serde::de::Error::custom),
        }
    }
}

/// A time: seconds as a number, or a duration (`90s`, `5m`, `1h 30m`).
/// Always finite, at least 0 and at most [`MAX_SECONDS`]: checked when the
/// file is read, so no time in a run can be NaN, infinite or negative, and
/// no sum of them can overflow virtual time.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Seconds(pub f64);

/// Longest time a scenario may give any field (about 115 days).
pub const MAX_SECONDS: f64 = 1e7;

impl Seconds {
    /// `n` seconds, if finite and in `[0, MAX_SECONDS]`.
    pub fn new(n: f64) -> Result<Self, String> {
        if !n.is_finite() {
            return Err(format!(
                "{n} is not a time: give a finite number of seconds"
            ));
        }
        if n < 0.0 {
            return Err(format!("time must be >= 0, got {n}"));
        }
        if n > MAX_SECONDS {
            return Err(format!("time must be at most {MAX_SECONDS} s, got {n}"));
        }
        Ok(Seconds(n))
    }

    /// Milliseconds, rounded (exact in i64: at most 10^10).
    pub fn millis(self) -> i64 {
        (self.0 * 1000.0).round() as i64
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(f64),
            S(String),
        }
        let n = match Raw::deserialize(d)? {
            Raw::N(n) => n,
            Raw::S(s) => {
                let t = s.trim();
                match t.parse::<f64>() {
                    Ok(n) => n,
                    Err(_) => humantime::parse_duration(t)
                        .map(|d| d.as_secs_f64())
                        .map_err(|e| {
                            serde::de::Error::custom(format!("bad duration {s:?}: {e}"))
                        })?,
                }
            }
        };
        Seconds::new(n).map_err(serde::de::Error::custom)
    }
}

/// Parses a Kubernetes CPU quantity into millicores.
pub fn parse_cpu(s: &str) -> Result<u64, String> {
    non_negative(s, quantity::to_millis, "cpu", "500m, 2, 0.5")
}

/// Parses a Kubernetes memory quantity into bytes.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    non_negative(s, quantity::to_units, "memory", "512Mi, 4Gi")
}

/// Converts with the core's quantity parser, refusing negative amounts.
fn non_negative(
    s: &str,
    convert: fn(&str) -> Result<u64, quantity::QuantityError>,
    what: &str,
    examples: &str,
) -> Result<u64, String> {
    match quantity::parse_nanos(s) {
        Ok(n) if n >= 0 => convert(s).map_err(|e| e.to_string()),
        _ => Err(format!(
            "bad {what} quantity {:?} (e.g. {examples})",
            s.trim()
        )),
    }
}

/// Most nodes a scenario may have, over all pools.
pub const MAX_NODES: u64 = 100_000;
/// Most jobs a scenario may have: copies of explicit jobs plus generated ones.
pub const MAX_JOBS: u64 = 1_000_000;
/// Most pods one job may have.
pub const MAX_PODS_PER_JOB: u64 = 100_000;
/// Most pods a scenario may have, over all jobs.
pub const MAX_TOTAL_PODS: u64 = 5_000_000;
/// Most CPU one node or pod may have, in millicores (a million cores).
pub const MAX_CPU_MILLIS: u64 = 1_000_000_000;
/// Most memory one node or pod may have, in bytes (1 PiB).
pub const MAX_MEMORY_BYTES: u64 = 1 << 50;
/// Most GPUs one node or pod may have.
pub const MAX_GPUS: u64 = 1 << 20;
/// Most of each resource the whole cluster, or one job, may add up to:
/// well inside u64 and i64, so no aggregate can overflow.
pub const MAX_AGGREGATE: u64 = 1 << 62;
/// Most zones, or racks per zone, of one pool.
pub const MAX_TOPOLOGY: u32 = 100_000;

/// Largest scenario file read.
pub const MAX_SCENARIO_BYTES: usize = 16 << 20;
/// Deepest nesting of flow collections (`[`, `{`) read: deep flow nesting
/// is where YAML scanners go quadratic.
pub const MAX_FLOW_NESTING: usize = 64;

/// A scenario file error: where and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ScenarioError {
    /// Field path, e.g. `workload.jobs[3].pods`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() || self.path == "." {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl Scenario {
    /// Parses and validates a scenario from YAML text.
    pub fn from_yaml(text: &str) -> Result<Scenario, ScenarioError> {
        if text.len() > MAX_SCENARIO_BYTES {
            return Err(ScenarioError {
                path: String::new(),
                message: format!(
                    "{} bytes; scenario files of at most {MAX_SCENARIO_BYTES} bytes are read",
                    text.len()
                ),
            });
        }
        fluxion_core::flow_nesting::check(text, MAX_FLOW_NESTING).map_err(|e| ScenarioError {
            path: String::new(),
            message: e.to_string(),
        })?;
        let de = serde_yaml_ng::Deserializer::from_str(text);
        let scenario: Scenario = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let mut message = e.inner().to_string();
            // serde_yaml_ng may lead with its own (shorter) path; ours is the
            // full one. Its trailing "at line N column M" helps: keep it.
            if let Some((head, rest)) = message.split_once(": ")
                && !head.contains(' ')
                && path.starts_with(head)
            {
                message = rest.to_owned();
            }
            ScenarioError { path, message }
        })?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// Checks values serde cannot: counts, ranges, sizes.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        let err = |path: String, message: &str| {
            Err(ScenarioError {
                path,
                message: message.to_owned(),
            })
        };
        let fail = |path: String, message: String| Err(ScenarioError { path, message });
        if self.horizon.is_some_and(|h| h.0 <= 0.0) {
            return err("horizon".into(), "must be > 0 (leave it out for no limit)");
        }
        if self.cluster.nodes.is_empty() {
            return err("cluster.nodes".into(), "must list at least one node pool");
        }
        let (mut nodes, mut cpu, mut memory, mut gpus) = (0u64, 0u64, 0u64, 0u64);
        for (i, p) in self.cluster.nodes.iter().enumerate() {
            let at = |f: &str| format!("cluster.nodes[{i}].{f}");
            if p.count == 0 {
                return err(at("count"), "must be >= 1");
            }
            nodes += u64::from(p.count);
            if nodes > MAX_NODES {
                return fail(
                    at("count"),
                    format!(
                        "{} nodes; a scenario may have at most {MAX_NODES} in all",
                        p.count
                    ),
                );
            }
            if p.cpu.0 == 0 {
                return err(at("cpu"), "must be > 0");
            }
            for (field, value, max) in [
                ("cpu", p.cpu.0, MAX_CPU_MILLIS),
                ("memory", p.memory.0, MAX_MEMORY_BYTES),
                ("gpus", p.gpus, MAX_GPUS),
            ] {
                if value > max {
                    return fail(
                        at(field),
                        format!("{value} is over the limit of {max} per node"),
                    );
                }
            }
            let n = u64::from(p.count);
            for (field, total, per) in [
                ("cpu", &mut cpu, p.cpu.0),
                ("memory", &mut memory, p.memory.0),
                ("gpus", &mut gpus, p.gpus),
            ] {
                *total = total.saturating_add(n.saturating_mul(per));
                if *total > MAX_AGGREGATE {
                    return fail(
                        at(field),
                        format!("the cluster's {field} adds up to more than {MAX_AGGREGATE}"),
                    );
                }
            }
            if p.zones > MAX_TOPOLOGY {
                return fail(at("zones"), format!("at most {MAX_TOPOLOGY}"));
            }
            if p.racks_per_zone > MAX_TOPOLOGY {
                return fail(at("racks_per_zone"), format!("at most {MAX_TOPOLOGY}"));
            }
            if p.numa_zones == 0 || p.numa_zones > 64 {
                return err(at("numa_zones"), "must be between 1 and 64");
            }
            if p.zones == 0 {
                return err(at("zones"), "must be >= 1");
            }
            if p.racks_per_zone == 0 {
                return err(at("racks_per_zone"), "must be >= 1");
            }
            if p.max_pods == 0 {
                return err(at("max_pods"), "must be >= 1");
            }
        }
        if self.workload.jobs.is_empty() && self.workload.generate.is_empty() {
            return err("workload".into(), "must have `jobs` or `generate`");
        }
        let (mut jobs, mut pods) = (0u64, 0u64);
        let mut count_jobs = |at: String, n: u64, per_job: u64| -> Result<(), ScenarioError> {
            jobs = jobs.saturating_add(n);
            pods = pods.saturating_add(n.saturating_mul(per_job));
            if jobs > MAX_JOBS {
                return fail(
                    at,
                    format!("{n} jobs; a scenario may have at most {MAX_JOBS} in all"),
                );
            }
            if pods > MAX_TOTAL_PODS {
                return fail(
                    at,
                    format!(
                        "the jobs up to here have up to {pods} pods; a scenario may have at most \
                         {MAX_TOTAL_PODS} in all"
                    ),
                );
            }
            Ok(())
        };
        for (i, j) in self.workload.jobs.iter().enumerate() {
            let at = |f: &str| format!("workload.jobs[{i}].{f}");
            if j.pods == 0 {
                return err(at("pods"), "must be >= 1");
            }
            if u64::from(j.pods) > MAX_PODS_PER_JOB {
                return fail(at("pods"), format!("at most {MAX_PODS_PER_JOB} per job"));
            }
            if j.count == 0 {
                return err(at("count"), "must be >= 1");
            }
            count_jobs(at("count"), u64::from(j.count), u64::from(j.pods))?;
            check_pod(&at, j.cpu.0, j.memory.0, j.gpus, u64::from(j.pods))?;
            if j.duration.0 <= 0.0 {
                return err(at("duration"), "must be > 0");
            }
            if j.name.is_empty() {
                return err(at("name"), "must not be empty");
            }
            if let Some(m) = j.min_pods
                && (m == 0 || m > j.pods)
            {
                return fail(
                    at("min_pods"),
                    format!("must be between 1 and the job's pods ({}), got {m}", j.pods),
                );
            }
        }
        for (i, g) in self.workload.generate.iter().enumerate() {
            let at = |f: &str| format!("workload.generate[{i}].{f}");
            if g.count == 0 {
                return err(at("count"), "must be >= 1");
            }
            check_choice(&g.pods, 1, MAX_PODS_PER_JOB).map_err(|m| ScenarioError {
                path: at("pods"),
                message: m,
            })?;
            check_choice(&g.duration, 1, MAX_SECONDS as u64).map_err(|m| ScenarioError {
                path: at("duration"),
                message: m,
            })?;
            if let Some(gpus) = &g.gpus {
                check_choice(gpus, 0, MAX_GPUS).map_err(|m| ScenarioError {
                    path: at("gpus"),
                    message: m,
                })?;
            }
            if let Some(min) = &g.min_pods {
                // Capped at each job's pods when drawn, so only the range is checked.
                check_choice(min, 1, MAX_PODS_PER_JOB).map_err(|m| ScenarioError {
                    path: at("min_pods"),
                    message: m,
                })?;
            }
            let max_pods = g.pods.max().unwrap_or(0);
            count_jobs(at("count"), u64::from(g.count), max_pods)?;
            let max_cores = MAX_CPU_MILLIS as f64 / 1000.0;
            let cpu_ok = |v: f64| v > 0.0 && v <= max_cores;
            let cpu_ok = match &g.cpu {
                ChoiceF::One(v) => cpu_ok(*v),
                ChoiceF::List(l) => !l.is_empty() && l.iter().all(|v| cpu_ok(*v)),
                ChoiceF::Range { min, max } => cpu_ok(*min) && cpu_ok(*max) && min <= max,
            };
            if !cpu_ok {
                return fail(
                    at("cpu"),
                    format!(
                        "must be > 0 and at most {max_cores} cores (a list must not be empty; \
                         a range needs 0 < min <= max)"
                    ),
                );
            }
            let max_cpu = match &g.cpu {
                ChoiceF::One(v) => *v,
                ChoiceF::List(l) => l.iter().copied().fold(0.0, f64::max),
                ChoiceF::Range { max, .. } => *max,
            };
            check_pod(
                &at,
                (max_cpu * 1000.0).round() as u64,
                g.memory.map_or(0, |m| m.0),
                g.gpus.as_ref().and_then(Choice::max).unwrap_or(0),
                max_pods,
            )?;
            if !(0.0..1.0).contains(&g.estimate_error) {
                return err(at("estimate_error"), "must be in [0, 1)");
            }
        }
        Ok(())
    }
}

fn check_choice(c: &Choice, least: u64, most: u64) -> Result<(), String> {
    match c {
        Choice::List(l) if l.is_empty() => Err("list must not be empty".into()),
        Choice::Range { min, max } if min > max => {
            Err(format!("min ({min}) must be <= max ({max})"))
        }
        _ => match (c.min(), c.max()) {
            (Some(v), _) if v < least => Err(format!("must be >= {least}")),
            (_, Some(v)) if v > most => Err(format!("must be <= {most}, got {v}")),
            _ => Ok(()),
        },
    }
}

/// One pod's requests, and a job's `pods` of them, against the limits.
fn check_pod(
    at: &dyn Fn(&str) -> String,
    cpu: u64,
    memory: u64,
    gpus: u64,
    pods: u64,
) -> Result<(), ScenarioError> {
    for (field, value, max) in [
        ("cpu", cpu, MAX_CPU_MILLIS),
        ("memory", memory, MAX_MEMORY_BYTES),
        ("gpus", gpus, MAX_GPUS),
    ] {
        if value > max {
            return Err(ScenarioError {
                path: at(field),
                message: format!("{value} is over the limit of {max} per pod"),
            });
        }
        if value.saturating_mul(pods) > MAX_AGGREGATE {
            return Err(ScenarioError {
                path: at(field),
                message: format!("{pods} pods of {value} add up to more than {MAX_AGGREGATE}"),
            });
        }
    }
    Ok(())
}
