//! The workflow: node pools, the MiniCluster overhead and the steps (a DAG),
//! read from YAML or JSON and checked before any planning.
//!
//! ```yaml
//! name: hpc                      # optional; names the MiniClusters
//! cluster:                       # node pools...
//!   nodes:
//!     - {name: cpu, count: 16, cpu: 32, memory: 128Gi}
//!     - {name: gpu, count: 4, cpu: 32, memory: 256Gi, gpu: 8}
//! # ...or `cluster: {scenario: FILE}`: the pools of a `phalanx simulate` scenario
//! minicluster_overhead: 3m       # bring-up + tear-down of one MiniCluster
//! steps:
//!   - {name: prep, image: ghcr.io/x/prep:1, nodes: 4, cpu: 16, duration: 10m}
//!   - {name: train, image: ghcr.io/x/train:1, nodes: 2, cpu: 8, gpu: 4,
//!      memory: 64Gi, duration: 30m, after: [prep], command: "python train.py"}
//! ```

use std::collections::HashMap;
use std::fmt;

use phalanx_sim::scenario::{Bytes, Cpu, Scenario, Seconds};
use serde::Deserialize;

/// Most steps a workflow may have.
pub const MAX_STEPS: usize = 100_000;
/// Deepest nesting of `[`/`{` read: deep flow nesting is where YAML
/// scanners go quadratic.
pub const MAX_FLOW_NESTING: usize = 64;
/// Most dependency edges, over all steps.
pub const MAX_EDGES: usize = 1_000_000;
/// Longest step, pool or workflow name (a Kubernetes object name).
pub const MAX_NAME: usize = 253;
/// Most node pools.
pub const MAX_POOLS: usize = 64;
/// Most nodes in the cluster, over all pools.
pub const MAX_NODES: u64 = 100_000;
/// Largest workflow file, in bytes.
pub const MAX_INPUT: usize = 64 << 20;
/// Longest step duration or overhead: a year, in milliseconds.
pub const MAX_DURATION_MS: i64 = 366 * 24 * 3600 * 1000;
/// Longest step command, in bytes.
pub const MAX_COMMAND: usize = 64 << 10;

/// A pool of identical nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// Name (`cpu`, `gpu`): node names are `NAME-0`, `NAME-1`, ...
    pub name: String,
    /// Nodes in the pool.
    pub count: u32,
    /// CPU per node, millicores.
    pub cpu_millis: u64,
    /// Memory per node, bytes.
    pub memory_bytes: u64,
    /// GPUs per node.
    pub gpus: u64,
    /// NUMA zones per node (CPU and GPUs split evenly).
    pub numa_zones: u32,
    /// Whether the kubelet keeps whole-core and GPU pods in one NUMA zone.
    pub single_numa: bool,
}

/// One step of the workflow, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Unique name.
    pub name: String,
    /// Container image.
    pub image: String,
    /// Nodes (Flux brokers) it needs at once.
    pub nodes: u32,
    /// CPU per node, millicores.
    pub cpu_millis: u64,
    /// Memory per node, bytes.
    pub memory_bytes: u64,
    /// GPUs per node.
    pub gpus: u64,
    /// Run time, milliseconds.
    pub duration_ms: i64,
    /// Indexes of the steps it runs after.
    pub after: Vec<usize>,
    /// What Flux runs (default: the step's name).
    pub command: Option<String>,
    /// Pools whose nodes can host it, as a bit set over pool indexes.
    pub pools: u64,
}

/// A checked workflow: every dependency known, no cycle, every step hostable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workflow {
    /// Name (prefix of the MiniClusters' names).
    pub name: String,
    /// Bring-up plus tear-down of one MiniCluster, milliseconds.
    pub overhead_ms: i64,
    /// Node pools.
    pub pools: Vec<Pool>,
    /// Steps, in file order.
    pub steps: Vec<Step>,
    /// Step indexes in an order where every step follows its dependencies.
    pub order: Vec<usize>,
}

/// A workflow file error: where, and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct WorkflowError {
    /// Field path, e.g. `steps[3].after[0]`.
    pub path: String,
    /// What is wrong (naming the step when there is one).
    pub message: String,
}

impl fmt::Display for WorkflowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() || self.path == "." {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

fn error(path: impl Into<String>, message: impl Into<String>) -> WorkflowError {
    WorkflowError {
        path: path.into(),
        message: message.into(),
    }
}

/// The workflow as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkflow {
    #[serde(default)]
    name: Option<String>,
    cluster: RawCluster,
    #[serde(default = "default_overhead")]
    minicluster_overhead: Seconds,
    steps: Vec<RawStep>,
}

fn default_overhead() -> Seconds {
    Seconds(180.0)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    #[serde(default)]
    nodes: Vec<RawPool>,
    #[serde(default)]
    scenario: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPool {
    name: String,
    count: u32,
    cpu: Cpu,
    memory: Bytes,
    #[serde(default)]
    gpu: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    name: String,
    #[serde(default)]
    image: String,
    #[serde(default = "one")]
    nodes: u32,
    #[serde(default)]
    cpu: Cpu,
    #[serde(default)]
    memory: Bytes,
    #[serde(default)]
    gpu: u64,
    duration: Seconds,
    #[serde(default)]
    after: Vec<String>,
    #[serde(default)]
    command: Option<String>,
}

fn one() -> u32 {
    1
}

/// Where the cluster of a workflow comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterSource {
    /// Pools written in the workflow.
    Pools(Vec<Pool>),
    /// A `phalanx simulate` scenario (built-in name or file path, as written).
    Scenario(String),
}

/// A step before the cluster is known (the parsers' common output).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepSpec {
    /// Name.
    pub name: String,
    /// Image.
    pub image: String,
    /// Nodes.
    pub nodes: u32,
    /// CPU per node, millicores.
    pub cpu_millis: u64,
    /// Memory per node, bytes.
    pub memory_bytes: u64,
    /// GPUs per node.
    pub gpus: u64,
    /// Run time, ms.
    pub duration_ms: i64,
    /// Names of its dependencies.
    pub after: Vec<String>,
    /// Command.
    pub command: Option<String>,
}

/// A parsed, not yet checked workflow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowSpec {
    /// Name, if given.
    pub name: Option<String>,
    /// The cluster, when the file gives one (DOT files may not).
    pub cluster: Option<ClusterSource>,
    /// Overhead, ms.
    pub overhead_ms: i64,
    /// Steps.
    pub steps: Vec<StepSpec>,
}

fn to_ms(s: Seconds, path: &str) -> Result<i64, WorkflowError> {
    let ms = (s.0 * 1000.0).round();
    if !ms.is_finite() || ms < 0.0 || ms > MAX_DURATION_MS as f64 {
        return Err(error(path, "must be between 0 and a year"));
    }
    Ok(ms as i64)
}

impl WorkflowSpec {
    /// Parses a YAML or JSON workflow (JSON when the text starts with `{`).
    pub fn parse(text: &str) -> Result<WorkflowSpec, WorkflowError> {
        if text.len() > MAX_INPUT {
            return Err(error(
                "",
                format!("workflow is {} bytes; at most {MAX_INPUT}", text.len()),
            ));
        }
        fluxion_core::flow_nesting::check(text, MAX_FLOW_NESTING)
            .map_err(|e| error("", e.to_string()))?;
        let raw: RawWorkflow = if text.trim_start().starts_with('{') {
            let de = &mut serde_json::Deserializer::from_str(text);
            serde_path_to_error::deserialize(de).map_err(|e| {
                let path = e.path().to_string();
                let message = e.inner().to_string();
                name_the_step(text, path, message)
            })?
        } else {
            let de = serde_yaml_ng::Deserializer::from_str(text);
            serde_path_to_error::deserialize(de).map_err(|e| {
                let path = e.path().to_string();
                let mut message = e.inner().to_string();
                // serde_yaml_ng may lead with its own shorter path; ours is complete.
                if let Some((head, rest)) = message.split_once(": ")
                    && !head.contains(' ')
                    && path.starts_with(head)
                {
                    message = rest.to_owned();
                }
                name_the_step(text, path, message)
            })?
        };
        if raw.steps.len() > MAX_STEPS {
            return Err(error(
                "steps",
                format!("{} steps; at most {MAX_STEPS}", raw.steps.len()),
            ));
        }
        let cluster = match (raw.cluster.scenario, raw.cluster.nodes.is_empty()) {
            (Some(_), false) => {
                return Err(error(
                    "cluster",
                    "give either `nodes` or `scenario`, not both",
                ));
            }
            (Some(s), true) => ClusterSource::Scenario(s),
            (None, true) => {
                return Err(error(
                    "cluster.nodes",
                    "must list at least one node pool (or give `scenario`)",
                ));
            }
            (None, false) => {
                let mut pools = Vec::with_capacity(raw.cluster.nodes.len().min(MAX_POOLS));
                for (i, p) in raw.cluster.nodes.into_iter().enumerate() {
                    pools.push(Pool {
                        name: p.name,
                        count: p.count,
                        cpu_millis: p.cpu.0,
                        memory_bytes: p.memory.0,
                        gpus: p.gpu,
                        numa_zones: 1,
                        single_numa: false,
                    });
                    if i >= MAX_POOLS {
                        return Err(error("cluster.nodes", format!("at most {MAX_POOLS} pools")));
                    }
                }
                ClusterSource::Pools(pools)
            }
        };
        let overhead_ms = to_ms(raw.minicluster_overhead, "minicluster_overhead")?;
        let mut steps = Vec::with_capacity(raw.steps.len());
        for (i, s) in raw.steps.into_iter().enumerate() {
            let duration_ms = to_ms(s.duration, &format!("steps[{i}].duration"))
                .map_err(|e| error(e.path, format!("step {:?}: {}", s.name, e.message)))?;
            steps.push(StepSpec {
                name: s.name,
                image: s.image,
                nodes: s.nodes,
                cpu_millis: s.cpu.0,
                memory_bytes: s.memory.0,
                gpus: s.gpu,
                duration_ms,
                after: s.after,
                command: s.command,
            });
        }
        Ok(WorkflowSpec {
            name: raw.name,
            cluster: Some(cluster),
            overhead_ms,
            steps,
        })
    }

    /// Checks the workflow against its pools: names, limits, dependencies,
    /// cycles, and that some pool can host every step.
    pub fn check(self, pools: Vec<Pool>) -> Result<Workflow, WorkflowError> {
        let pools = check_pools(pools)?;
        let name = self.name.unwrap_or_else(|| "workflow".to_owned());
        check_name(&name, "name", "workflow name")?;
        if self.steps.is_empty() {
            return Err(error("steps", "must list at least one step"));
        }
        if self.steps.len() > MAX_STEPS {
            return Err(error(
                "steps",
                format!("{} steps; at most {MAX_STEPS}", self.steps.len()),
            ));
        }
        let edges: usize = self.steps.iter().map(|s| s.after.len()).sum();
        if edges > MAX_EDGES {
            return Err(error(
                "steps",
                format!("{edges} dependencies; at most {MAX_EDGES}"),
            ));
        }
        let mut index: HashMap<&str, usize> = HashMap::with_capacity(self.steps.len());
        for (i, s) in self.steps.iter().enumerate() {
            let at = format!("steps[{i}].name");
            check_name(&s.name, &at, "step name")?;
            if let Some(first) = index.insert(&s.name, i) {
                return Err(error(
                    at,
                    format!("step {:?} is also steps[{first}]", s.name),
                ));
            }
        }
        let mut steps = Vec::with_capacity(self.steps.len());
        for (i, s) in self.steps.iter().enumerate() {
            let at = |f: &str| format!("steps[{i}].{f}");
            let named = |m: String| format!("step {:?}: {m}", s.name);
            if s.nodes == 0 {
                return Err(error(at("nodes"), named("must be >= 1".into())));
            }
            if s.duration_ms <= 0 {
                return Err(error(at("duration"), named("must be > 0".into())));
            }
            if s.image.len() > 1024 {
                return Err(error(at("image"), named("longer than 1024 bytes".into())));
            }
            if s.command.as_ref().is_some_and(|c| c.len() > MAX_COMMAND) {
                return Err(error(
                    at("command"),
                    named(format!("longer than {MAX_COMMAND} bytes")),
                ));
            }
            let mut after = Vec::with_capacity(s.after.len());
            for (k, dep) in s.after.iter().enumerate() {
                match index.get(dep.as_str()) {
                    Some(&d) if d == i => {
                        return Err(error(
                            format!("steps[{i}].after[{k}]"),
                            named("depends on itself".into()),
                        ));
                    }
                    Some(&d) => {
                        if !after.contains(&d) {
                            after.push(d);
                        }
                    }
                    None => {
                        return Err(error(
                            format!("steps[{i}].after[{k}]"),
                            named(format!("depends on {dep:?}, which is not a step")),
                        ));
                    }
                }
            }
            let mut hosts = 0u64;
            for (p, pool) in pools.iter().enumerate() {
                if fits_pool(s, pool) {
                    hosts |= 1 << p;
                }
            }
            if hosts == 0 {
                return Err(error(
                    format!("steps[{i}]"),
                    named(format!(
                        "no node pool can host it (needs {}); pools: {}",
                        describe_need(s),
                        pools
                            .iter()
                            .map(describe_pool)
                            .collect::<Vec<_>>()
                            .join("; ")
                    )),
                ));
            }
            steps.push(Step {
                name: s.name.clone(),
                image: s.image.clone(),
                nodes: s.nodes,
                cpu_millis: s.cpu_millis,
                memory_bytes: s.memory_bytes,
                gpus: s.gpus,
                duration_ms: s.duration_ms,
                after,
                command: s.command.clone(),
                pools: hosts,
            });
        }
        let order = topological_order(&steps)?;
        Ok(Workflow {
            name,
            overhead_ms: self.overhead_ms,
            pools,
            steps,
            order,
        })
    }
}

/// Adds the step's name to a serde error inside `steps[i]`, read leniently
/// from the text (the strict parse failed, so the name is not at hand).
fn name_the_step(text: &str, path: String, message: String) -> WorkflowError {
    let index = path
        .strip_prefix("steps[")
        .and_then(|r| r.split_once(']'))
        .and_then(|(n, _)| n.parse::<usize>().ok());
    let name = index.and_then(|i| {
        let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).ok()?;
        value
            .get("steps")?
            .get(i)?
            .get("name")?
            .as_str()
            .map(str::to_owned)
    });
    match name {
        Some(n) => error(path, format!("step {n:?}: {message}")),
        None => error(path, message),
    }
}

fn check_name(name: &str, path: &str, what: &str) -> Result<(), WorkflowError> {
    if name.is_empty() {
        return Err(error(path, format!("{what} must not be empty")));
    }
    if name.len() > MAX_NAME {
        return Err(error(
            path,
            format!(
                "{what} {:?}... is longer than {MAX_NAME} bytes",
                name.chars().take(40).collect::<String>()
            ),
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(error(
            path,
            format!("{what} {name:?} has {c:?}; use letters, digits, '-', '_' and '.'"),
        ));
    }
    Ok(())
}

fn check_pools(pools: Vec<Pool>) -> Result<Vec<Pool>, WorkflowError> {
    if pools.is_empty() {
        return Err(error("cluster.nodes", "must list at least one node pool"));
    }
    if pools.len() > MAX_POOLS {
        return Err(error("cluster.nodes", format!("at most {MAX_POOLS} pools")));
    }
    let mut total = 0u64;
    for (i, p) in pools.iter().enumerate() {
        let at = |f: &str| format!("cluster.nodes[{i}].{f}");
        check_name(&p.name, &at("name"), "pool name")?;
        if pools[..i].iter().any(|q| q.name == p.name) {
            return Err(error(
                at("name"),
                format!("pool {:?} is listed twice", p.name),
            ));
        }
        if p.count == 0 {
            return Err(error(
                at("count"),
                format!("pool {:?}: must be >= 1", p.name),
            ));
        }
        if p.cpu_millis == 0 {
            return Err(error(at("cpu"), format!("pool {:?}: must be > 0", p.name)));
        }
        if p.numa_zones == 0 || p.numa_zones > 64 {
            return Err(error(at("numa_zones"), "must be between 1 and 64"));
        }
        total += u64::from(p.count);
        if total > MAX_NODES {
            return Err(error(
                "cluster.nodes",
                format!("more than {MAX_NODES} nodes in all"),
            ));
        }
    }
    Ok(pools)
}

/// Whether one node of `pool` holds a node's share of `step`, and the pool has enough nodes.
pub fn fits_pool(step: &StepSpec, pool: &Pool) -> bool {
    step.nodes <= pool.count
        && step.cpu_millis <= pool.cpu_millis
        && step.memory_bytes <= pool.memory_bytes
        && step.gpus <= pool.gpus
}

fn describe_need(s: &StepSpec) -> String {
    let mut out = format!(
        "{} node(s) with cpu {}, memory {}",
        s.nodes,
        cpu_text(s.cpu_millis),
        bytes_text(s.memory_bytes)
    );
    if s.gpus > 0 {
        out.push_str(&format!(", gpu {}", s.gpus));
    }
    out
}

fn describe_pool(p: &Pool) -> String {
    let mut out = format!(
        "{} ({} nodes: cpu {}, memory {}",
        p.name,
        p.count,
        cpu_text(p.cpu_millis),
        bytes_text(p.memory_bytes)
    );
    if p.gpus > 0 {
        out.push_str(&format!(", gpu {}", p.gpus));
    }
    out.push(')');
    out
}

/// CPU as Kubernetes writes it: `16` or `500m`.
pub fn cpu_text(millis: u64) -> String {
    if millis.is_multiple_of(1000) {
        format!("{}", millis / 1000)
    } else {
        format!("{millis}m")
    }
}

/// Memory as Kubernetes writes it, in the largest binary unit that divides it.
pub fn bytes_text(bytes: u64) -> String {
    const UNITS: [(&str, u64); 5] = [
        ("Pi", 1 << 50),
        ("Ti", 1 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ];
    for (unit, size) in UNITS {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{}{unit}", bytes / size);
        }
    }
    bytes.to_string()
}

/// Kahn's algorithm; a cycle is reported by walking it (iteratively) from a
/// step left over, naming its steps in dependency order.
fn topological_order(steps: &[Step]) -> Result<Vec<usize>, WorkflowError> {
    let n = steps.len();
    let mut pending: Vec<usize> = steps.iter().map(|s| s.after.len()).collect();
    let mut next: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, s) in steps.iter().enumerate() {
        for &d in &s.after {
            next[d].push(i);
        }
    }
    let mut order: Vec<usize> = (0..n).filter(|&i| pending[i] == 0).collect();
    let mut head = 0;
    while head < order.len() {
        let i = order[head];
        head += 1;
        for &j in &next[i] {
            pending[j] -= 1;
            if pending[j] == 0 {
                order.push(j);
            }
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    // Every leftover step has a leftover dependency: follow them until one repeats.
    let Some(start) = (0..n).find(|&i| pending[i] > 0) else {
        return Ok(order);
    };
    let mut seen = vec![usize::MAX; n];
    let mut path = Vec::new();
    let mut at = start;
    while seen[at] == usize::MAX {
        seen[at] = path.len();
        path.push(at);
        match steps[at].after.iter().find(|&&d| pending[d] > 0) {
            Some(&d) => at = d,
            None => break,
        }
    }
    let cycle_start = if seen[at] == usize::MAX { 0 } else { seen[at] };
    let mut names: Vec<&str> = path[cycle_start..]
        .iter()
        .rev()
        .map(|&i| steps[i].name.as_str())
        .collect();
    if let Some(first) = names.first().copied() {
        names.push(first);
    }
    Err(error(
        format!("steps[{at}].after"),
        format!(
            "step {:?} is in a dependency cycle: {}",
            steps[at].name,
            names.join(" -> ")
        ),
    ))
}

/// The node pools of a `phalanx simulate` scenario, named by their prefixes.
pub fn pools_from_scenario(s: &Scenario) -> Result<Vec<Pool>, WorkflowError> {
    let mut pools: Vec<Pool> = Vec::with_capacity(s.cluster.nodes.len().min(MAX_POOLS));
    for (i, p) in s.cluster.nodes.iter().enumerate() {
        if i >= MAX_POOLS {
            return Err(error("cluster.nodes", format!("at most {MAX_POOLS} pools")));
        }
        // Two pools may share a prefix in a scenario; ours need distinct names.
        let mut name = p.prefix.clone();
        if pools.iter().any(|q| q.name == name) {
            name = format!("{}{i}", p.prefix);
        }
        pools.push(Pool {
            name,
            count: p.count,
            cpu_millis: p.cpu.0,
            memory_bytes: p.memory.0,
            gpus: p.gpus,
            numa_zones: p.numa_zones,
            single_numa: p.numa_policy == phalanx_sim::scenario::PolicySpec::SingleNumaNode,
        });
    }
    Ok(pools)
}
