//! The standalone engine of `phalanx serve`: a fluxion-core resource graph
//! loaded from a file (or generated), its matcher, and a job table.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use fluxion_core::graph::{GraphError, PruneFilters, ResourceGraph, Status, VertexId, VertexSpec};
use fluxion_core::jobspec::{Count, Jobspec, Resource};
use fluxion_core::matcher::{
    CancelError, Emit, MatchError, MatchOp, MatchOutcome, Matcher, Policy,
};
use fluxion_core::planner::JobId;
use phalanx_proto::v1 as pb;

use crate::backend::{BackendError, BackendResult, Engine};
use crate::service::{add_node_vertices, validate_add_node};

/// Most nodes `--generate-nodes` builds (73 vertices each: 5 million in all).
pub const MAX_GENERATED_NODES: usize = 65_536;

/// Largest graph file `serve --graph` reads.
pub const MAX_GRAPH_FILE_BYTES: u64 = 1 << 30;

/// Most vertices the graph may grow to through UpdateGraph, by default.
pub const DEFAULT_MAX_VERTICES: u64 = 5_000_000;

/// Vertex types that are resources, never containers of nodes.
const LEAF_KINDS: &[&str] = &[
    "node", "socket", "numa", "core", "pu", "gpu", "memory", "storage", "slot",
];

/// Names looked up per request, indexed once per graph shape: a lookup
/// by scanning every vertex would make each name in a request cost the
/// whole graph.
#[derive(Debug, Default)]
struct NameIndex {
    /// Node vertices by name (the first in graph order, if names repeat).
    nodes: HashMap<String, VertexId>,
    /// Node vertices in graph (insertion) order, as tables show them.
    order: Vec<VertexId>,
    /// Vertices above the nodes (cluster, zones, racks) by name: where an
    /// added node may go.
    above: HashMap<String, Vec<VertexId>>,
}

impl NameIndex {
    fn build(g: &ResourceGraph) -> Self {
        let mut idx = NameIndex::default();
        for v in g.vertices() {
            if g.kind_name(v) == "node" {
                idx.order.push(v);
            }
        }
        idx.order
            .sort_by_key(|&x| g.vertex(x).map_or(0, |x| x.uniq_id));
        for &v in &idx.order {
            if let Some(x) = g.vertex(v) {
                idx.nodes.entry(x.name().into_owned()).or_insert(v);
            }
        }
        // Walk down from the root, stopping at nodes.
        let mut stack: Vec<VertexId> = g.root().into_iter().collect();
        while let Some(v) = stack.pop() {
            if g.kind_name(v) == "node" {
                continue;
            }
            if let Some(x) = g.vertex(v) {
                idx.above.entry(x.name().into_owned()).or_default().push(v);
            }
            stack.extend(g.children(v).iter().copied());
        }
        idx
    }
}

/// Format of a graph file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    /// Fluxion's GRUG GraphML recipe.
    Grug,
    /// JSON Graph Format, as Fluxion writes it.
    Jgf,
}

impl GraphFormat {
    /// Guesses the format from a file name: `.json` is JGF, anything else GRUG.
    pub fn from_path(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("json") => Self::Jgf,
            _ => Self::Grug,
        }
    }
}

/// A group as the engine remembers it, beyond what the matcher holds.
#[derive(Debug, Clone)]
struct JobRecord {
    name: String,
    policy: String,
    created_unix_ms: i64,
    /// Matcher jobs behind the group: one per pod template (or one for a
    /// jobspec), matched all-or-nothing.
    parts: Vec<JobId>,
    /// Placement per pod (per node for a jobspec), in index order.
    pods: Vec<PodRecord>,
}

/// One pod of a group, kept as vertex ids: names and paths are rendered
/// only when a reply needs them, so a match renders its placement once
/// and a cancel frees a handful of vectors instead of dozens of strings.
#[derive(Debug, Clone)]
struct PodRecord {
    /// Position in the original placement (stable across partial cancels).
    index: u32,
    /// Template name, shared by the pods of a template.
    template: Arc<str>,
    /// The node it runs on.
    node: VertexId,
    /// The leaves it holds, with the matcher job that holds each.
    vertices: Vec<(JobId, VertexId)>,
}

/// The engine behind `phalanx serve`. See the module docs.
#[derive(Debug)]
pub struct StandaloneEngine {
    matcher: Matcher,
    policy: Policy,
    default_duration: u64,
    now: i64,
    next_job: JobId,
    jobs: BTreeMap<u64, JobRecord>,
    /// Matcher job -> group id.
    part_of: HashMap<JobId, u64>,
    /// Size of a memory unit of the graph, in bytes.
    memory_unit_bytes: u64,
    /// Largest slot host (socket) per type, for "can never fit" reasons.
    largest: BTreeMap<String, u64>,
    /// Units per leaf type in the whole graph (up or down).
    totals: BTreeMap<String, u64>,
    /// Types of vertices with children: containers, never consumable.
    containers: BTreeSet<String>,
    /// Containment paths rendered so far, by vertex index: every placement
    /// names its vertices by path, and building a path walks to the root.
    /// Cleared whenever the graph changes shape.
    paths: RefCell<Vec<Option<Box<str>>>>,
    /// Most vertices UpdateGraph may grow the graph to.
    max_vertices: u64,
    /// Name lookups; `None` until first used after a change of shape.
    names: RefCell<Option<NameIndex>>,
}

impl StandaloneEngine {
    /// An engine over `graph` with default match `policy`.
    pub fn new(graph: ResourceGraph, policy: &str) -> Result<Self, BackendError> {
        let policy = parse_policy(policy, "policy")?;
        let graph = prepare(graph)?;
        let memory_unit_bytes = memory_unit(&graph);
        let mut engine = Self {
            matcher: Matcher::new(graph, policy),
            policy,
            default_duration: 0,
            now: 0,
            next_job: 1,
            jobs: BTreeMap::new(),
            part_of: HashMap::new(),
            memory_unit_bytes,
            largest: BTreeMap::new(),
            totals: BTreeMap::new(),
            containers: BTreeSet::new(),
            paths: RefCell::new(Vec::new()),
            max_vertices: DEFAULT_MAX_VERTICES,
            names: RefCell::new(None),
        };
        engine.refresh_largest();
        Ok(engine)
    }

    /// Sets the duration of matches that give none (0 = until cancelled).
    pub fn with_default_duration(mut self, seconds: u64) -> Self {
        self.default_duration = seconds;
        self
    }

    /// Sets the most vertices UpdateGraph may grow the graph to (a graph
    /// loaded larger keeps its size but cannot grow).
    pub fn with_max_vertices(mut self, max: u64) -> Self {
        self.max_vertices = max;
        self
    }

    /// A generated cluster of `nodes` nodes (see
    /// [`fluxion_core::generate::ClusterShape::standard`]).
    pub fn generated(nodes: usize, policy: &str) -> anyhow::Result<Self> {
        if nodes > MAX_GENERATED_NODES {
            anyhow::bail!(
                "--generate-nodes: {nodes} nodes; at most {MAX_GENERATED_NODES} (each has 73 vertices)"
            );
        }
        let shape = fluxion_core::generate::ClusterShape::standard(nodes);
        let graph = fluxion_core::generate::cluster(&shape)?;
        Ok(Self::new(graph, policy)?)
    }

    /// Loads a graph file.
    pub fn load(path: &Path, format: Option<GraphFormat>, policy: &str) -> anyhow::Result<Self> {
        let format = format.unwrap_or_else(|| GraphFormat::from_path(path));
        let size = std::fs::metadata(path)
            .map_err(|e| anyhow::anyhow!("read {}: {e}", path.display()))?
            .len();
        if size > MAX_GRAPH_FILE_BYTES {
            anyhow::bail!(
                "{}: {size} bytes; graph files of at most {MAX_GRAPH_FILE_BYTES} bytes are read",
                path.display()
            );
        }
        let bytes =
            std::fs::read(path).map_err(|e| anyhow::anyhow!("read {}: {e}", path.display()))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            anyhow::anyhow!(
                "{}: not UTF-8 text (invalid byte at offset {})",
                path.display(),
                e.utf8_error().valid_up_to()
            )
        })?;
        let graph = match format {
            GraphFormat::Grug => fluxion_core::io::read_grug(&text),
            GraphFormat::Jgf => fluxion_core::io::read_jgf(&text),
        }
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(Self::new(graph, policy)?)
    }

    /// Number of vertices in the graph.
    pub fn vertex_count(&self) -> usize {
        self.graph().vertex_count()
    }

    fn graph(&self) -> &ResourceGraph {
        self.matcher.graph()
    }

    /// Per type, the most units any one slot host (a vertex whose children
    /// are leaves, a socket say) has: what one pod can get at most.
    fn refresh_largest(&mut self) {
        let g = self.matcher.graph();
        let mut largest: BTreeMap<String, u64> = BTreeMap::new();
        let mut totals: BTreeMap<String, u64> = BTreeMap::new();
        let mut containers: BTreeSet<String> = BTreeSet::new();
        for v in g.vertices() {
            let kids = g.children(v);
            let kind = g.kind_name(v);
            if kids.is_empty() {
                let t = totals.entry(kind.to_owned()).or_default();
                *t = t.saturating_add(g.vertex(v).map_or(0, |x| x.size));
            } else if !containers.contains(kind) {
                containers.insert(kind.to_owned());
            }
            if kids.is_empty() || kids.iter().any(|&k| !g.children(k).is_empty()) {
                continue;
            }
            let mut here: BTreeMap<&str, u64> = BTreeMap::new();
            for &k in kids {
                let e = here.entry(g.kind_name(k)).or_default();
                *e = e.saturating_add(g.vertex(k).map_or(0, |x| x.size));
            }
            for (t, n) in here {
                let e = largest.entry(t.to_owned()).or_default();
                *e = (*e).max(n);
            }
        }
        self.largest = largest;
        self.totals = totals;
        self.containers = containers;
    }

    /// The name index, built on first use after the graph changed shape.
    fn names(&self) -> std::cell::RefMut<'_, NameIndex> {
        let mut slot = self.names.borrow_mut();
        if slot.is_none() {
            *slot = Some(NameIndex::build(self.graph()));
        }
        std::cell::RefMut::map(slot, |s| s.get_or_insert_with(NameIndex::default))
    }

    fn node_by_name(&self, name: &str) -> Option<VertexId> {
        self.names().nodes.get(name).copied()
    }

    fn nodes(&self) -> Vec<VertexId> {
        self.names().order.clone()
    }

    /// The node a vertex belongs to (itself or its nearest `node` ancestor).
    fn node_of(&self, v: VertexId) -> Option<VertexId> {
        let g = self.graph();
        let mut cur = Some(v);
        while let Some(u) = cur {
            if g.kind_name(u) == "node" {
                return Some(u);
            }
            cur = g.parent(u);
        }
        None
    }

    fn name_of(&self, v: VertexId) -> String {
        self.graph()
            .vertex(v)
            .map_or(String::new(), |x| x.name().into_owned())
    }

    /// The containment path of `v`, from the cache when it is there.
    fn path_of(&self, v: VertexId) -> String {
        let i = v.index();
        let mut paths = self.paths.borrow_mut();
        if let Some(Some(p)) = paths.get(i) {
            return p.to_string();
        }
        let p = self.graph().path(v);
        if paths.len() <= i {
            paths.resize(i + 1, None);
        }
        paths[i] = Some(p.clone().into_boxed_str());
        p
    }

    fn render_pod(&self, pod: &PodRecord) -> pb::PodPlacement {
        pb::PodPlacement {
            index: pod.index,
            template: pod.template.to_string(),
            node: self.name_of(pod.node),
            vertices: pod.vertices.iter().map(|&(_, v)| self.path_of(v)).collect(),
        }
    }

    fn job_proto(&self, id: u64, rec: &JobRecord) -> pb::Job {
        let (start, duration) = rec
            .parts
            .iter()
            .find_map(|&p| self.matcher.info(p))
            .map_or((0, 0), |i| (i.at, i.duration));
        // Every part of a group starts at the same time; one that starts
        // after now is reserved (a later round of a multi-template
        // reservation is placed as an allocation at its start time).
        let state = if start > self.now {
            pb::JobState::Reserved
        } else {
            pb::JobState::Allocated
        };
        let mut seen = BTreeSet::new();
        let nodes: Vec<String> = rec
            .pods
            .iter()
            .filter(|p| seen.insert(p.node))
            .map(|p| self.name_of(p.node))
            .collect();
        pb::Job {
            job_id: id,
            name: rec.name.clone(),
            state: state as i32,
            start_time: start,
            duration: if duration >= UNTIL_CANCELLED_FROM {
                0
            } else {
                duration
            },
            npods: rec.pods.len() as u32,
            nnodes: nodes.len() as u32,
            nodes,
            pods: rec.pods.iter().map(|p| self.render_pod(p)).collect(),
            created_unix_ms: rec.created_unix_ms,
            policy: rec.policy.clone(),
        }
    }

    /// Groups whose window has passed hold nothing any more: forget them.
    fn expire(&mut self) {
        let now = self.now;
        let done: Vec<u64> = self
            .jobs
            .iter()
            .filter(|(_, r)| {
                r.parts.iter().all(|&p| {
                    self.matcher
                        .info(p)
                        .is_none_or(|i| i.at.saturating_add(i.duration as i64) <= now)
                })
            })
            .map(|(&id, _)| id)
            .collect();
        for id in done {
            self.drop_group(id);
        }
    }

    fn drop_group(&mut self, id: u64) -> Option<JobRecord> {
        let rec = self.jobs.remove(&id)?;
        for &p in &rec.parts {
            let _ = self.matcher.cancel(p);
            self.part_of.remove(&p);
        }
        Some(rec)
    }

    fn node_resources(&self, node: VertexId) -> pb::NodeResources {
        let g = self.graph();
        let up = g.is_effectively_up(node);
        let (start, end) = (self.now, self.now + 1);
        let mut counts: BTreeMap<&str, pb::ResourceCount> = BTreeMap::new();
        let mut jobs = BTreeSet::new();
        for v in g.subtree(node) {
            let Some(x) = g.vertex(v) else { continue };
            for s in x.spans() {
                if s.overlaps(start, end) {
                    jobs.insert(self.part_of.get(&s.job).copied().unwrap_or(s.job));
                }
            }
            if v == node || !x.children().is_empty() {
                continue;
            }
            let c = counts
                .entry(g.kind_name(v))
                .or_insert_with(|| pb::ResourceCount {
                    r#type: g.kind_name(v).to_owned(),
                    ..Default::default()
                });
            c.total += x.size;
            if up {
                let free = g.available(v, start, end);
                c.free += free;
                c.allocated += x.size.saturating_sub(free);
            } else {
                c.down += x.size;
            }
        }
        pb::NodeResources {
            name: self.name_of(node),
            path: g.path(node),
            up,
            resources: counts.into_values().collect(),
            jobs: jobs.into_iter().collect(),
        }
    }

    /// A node goes under a container (the cluster, a zone, a rack): never
    /// inside another node, nor under a resource such as a core.
    fn check_parent(&self, p: VertexId, spec: &pb::AddNode, at: &str) -> BackendResult<()> {
        let g = self.graph();
        let kind = g.kind_name(p);
        if let Some(n) = self.node_of(p) {
            return Err(BackendError::invalid(
                format!("{at}.parent"),
                format!(
                    "{:?} is a {kind} inside node {:?}; a node goes under the cluster, a zone or a rack",
                    spec.parent,
                    self.name_of(n)
                ),
            ));
        }
        if LEAF_KINDS.contains(&kind) || g.vertex(p).is_some_and(|x| x.size > 1) {
            return Err(BackendError::invalid(
                format!("{at}.parent"),
                format!(
                    "{:?} is a {kind} (a resource, not a container); a node goes under the \
                     cluster, a zone or a rack",
                    spec.parent
                ),
            ));
        }
        Ok(())
    }

    fn add_node(&mut self, spec: &pb::AddNode, at: &str) -> BackendResult<()> {
        validate_add_node(spec, at)?;
        if self.node_by_name(&spec.name).is_some() {
            return Err(BackendError::FailedPrecondition(format!(
                "{at}.name: node {:?} already exists",
                spec.name
            )));
        }
        let parent = if spec.parent.is_empty() {
            self.graph().root()
        } else {
            let above = self.names().above.get(&spec.parent).cloned();
            match above.as_deref() {
                Some([p]) => Some(*p),
                Some([_, _, ..]) => {
                    return Err(BackendError::invalid(
                        format!("{at}.parent"),
                        format!("{:?} names more than one vertex", spec.parent),
                    ));
                }
                // Not above the nodes: the one scan, on the way to an
                // error, that names what the parent is instead.
                _ => match self.graph().find_by_name(&spec.parent).next() {
                    Some(p) => {
                        self.check_parent(p, spec, at)?;
                        return Err(BackendError::Internal(format!(
                            "{at}.parent: {:?} is not indexed",
                            spec.parent
                        )));
                    }
                    None => {
                        return Err(BackendError::NotFound(format!(
                            "{at}.parent: no vertex named {:?}",
                            spec.parent
                        )));
                    }
                },
            }
        };
        if let Some(p) = parent {
            self.check_parent(p, spec, at)?;
        }
        let adds = add_node_vertices(spec).unwrap_or(u64::MAX);
        let have = self.graph().vertex_count() as u64;
        if have.saturating_add(adds) > self.max_vertices {
            return Err(BackendError::ResourceExhausted(format!(
                "{at}: the node has {adds} vertices and the graph {have}; the graph may hold \
                 at most {} (serve --max-vertices)",
                self.max_vertices
            )));
        }
        let internal = |e: GraphError| BackendError::Internal(e.to_string());
        let g = self.matcher.graph_mut();
        let mut ns = VertexSpec::new("node", "node", trailing_number(&spec.name));
        ns.name = spec.name.clone();
        let mut labels: Vec<(String, String)> = spec
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        labels.sort();
        ns.properties = labels;
        let node = g.add_vertex(ns, parent).map_err(internal)?;
        if let Some(idx) = self.names.get_mut() {
            idx.nodes.insert(spec.name.clone(), node);
            idx.order.push(node);
        }
        let g = self.matcher.graph_mut();
        let (mut core, mut gpu) = (0i64, 0i64);
        for s in 0..spec.sockets {
            let socket = g
                .add_vertex(
                    VertexSpec::new("socket", "socket", i64::from(s)),
                    Some(node),
                )
                .map_err(internal)?;
            for _ in 0..spec.cores_per_socket {
                g.add_vertex(VertexSpec::new("core", "core", core), Some(socket))
                    .map_err(internal)?;
                core += 1;
            }
            for _ in 0..spec.gpus_per_socket {
                g.add_vertex(VertexSpec::new("gpu", "gpu", gpu), Some(socket))
                    .map_err(internal)?;
                gpu += 1;
            }
            if spec.memory_per_socket > 0 {
                let mut ms = VertexSpec::new("memory", "memory", i64::from(s));
                ms.size = spec.memory_per_socket;
                ms.unit = "GB".into();
                g.add_vertex(ms, Some(socket)).map_err(internal)?;
            }
        }
        Ok(())
    }

    fn jobs_on(&self, node: VertexId) -> BTreeSet<u64> {
        let g = self.graph();
        g.subtree(node)
            .into_iter()
            .filter_map(|v| g.vertex(v))
            .flat_map(|x| x.spans().iter().map(|s| s.job))
            .map(|j| self.part_of.get(&j).copied().unwrap_or(j))
            .collect()
    }
}

fn trailing_number(name: &str) -> i64 {
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    name[name.len() - digits..].parse().unwrap_or(0)
}

/// Fluxion refuses a jobspec without a slot: with none, nothing says what
/// one task gets, and the match would hold resources for no task.
fn require_slot(spec: &Jobspec) -> BackendResult<()> {
    // Iterative: the nesting comes from the request.
    let mut stack: Vec<&Resource> = spec.resources.iter().collect();
    while let Some(r) = stack.pop() {
        if r.is_slot() {
            return Ok(());
        }
        stack.extend(r.with.iter());
    }
    Err(BackendError::invalid(
        "jobspec.resources",
        "no `slot`: a jobspec needs one slot (type: slot, with a label) saying what one task gets",
    ))
}

/// Rounds of re-matching that a multi-template reservation gets to find a
/// start time common to all its templates.
const MAX_RESERVE_ROUNDS: usize = 32;

/// Durations at least this long mean "until cancelled" (the matcher's horizon).
const UNTIL_CANCELLED_FROM: u64 = 1 << 50;

/// Prune filters the matcher relies on to skip full subtrees.
fn prepare(mut graph: ResourceGraph) -> Result<ResourceGraph, BackendError> {
    let filters = "ALL:core,ALL:gpu,ALL:node,ALL:memory"
        .parse::<PruneFilters>()
        .map_err(|e| BackendError::Internal(e.to_string()))?;
    graph
        .set_prune_filters(&filters)
        .map_err(|e| BackendError::Internal(e.to_string()))?;
    Ok(graph)
}

/// Bytes per unit of the graph's memory pools (Fluxion's default is GB).
fn memory_unit(graph: &ResourceGraph) -> u64 {
    let unit = graph
        .vertices()
        .find(|&v| graph.kind_name(v) == "memory")
        .and_then(|v| graph.vertex(v))
        .map(|x| x.unit.to_ascii_lowercase())
        .unwrap_or_default();
    match unit.as_str() {
        "b" | "bytes" => 1,
        "kb" | "kib" | "k" => 1 << 10,
        "mb" | "mib" | "m" => 1 << 20,
        "tb" | "tib" | "t" => 1 << 40,
        _ => 1 << 30,
    }
}

fn parse_policy(policy: &str, path: &str) -> BackendResult<Policy> {
    policy.parse::<Policy>().map_err(|e| {
        BackendError::invalid(
            path,
            format!("{e}; expected first, high, low, lonode, hinode, lonodex, hinodex, locality or variation"),
        )
    })
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A pod template as matched: index, name, pod count and units per pod by type.
type TemplateShape = (usize, String, u64, Vec<(String, u64)>);

/// One matcher job of a group: a pod template (or the whole jobspec).
struct Part {
    spec: Jobspec,
    /// `None` for a jobspec.
    template: Option<TemplateShape>,
    /// Node labels (key, value) the part's nodes must carry; empty for a
    /// jobspec.
    selector: Vec<(String, String)>,
}

/// A node-selector key every node answers to with its own name, as
/// Kubernetes nodes do.
const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

fn resource(kind: &str, count: u64) -> Resource {
    Resource {
        kind: kind.to_owned(),
        count: Count::exact(count),
        with: Vec::new(),
        exclusive: None,
        label: None,
        unit: None,
    }
}

impl StandaloneEngine {
    /// Turns pod templates into one slot jobspec each: a pod is a slot of
    /// cores (millicores rounded up), GPUs, memory and extended resources
    /// under one slot host (a socket in Fluxion graphs, so pods are
    /// NUMA-local).
    fn pod_parts(&self, group: &pb::PodGroup, duration: u64) -> BackendResult<Vec<Part>> {
        let mut parts = Vec::with_capacity(group.templates.len());
        for (i, t) in group.templates.iter().enumerate() {
            let mut selector: Vec<(String, String)> = t
                .node_selector
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            selector.sort();
            let mut needs: Vec<(String, u64)> = Vec::new();
            if t.cpu_millis > 0 {
                needs.push(("core".into(), t.cpu_millis.div_ceil(1000)));
            }
            if t.gpus > 0 {
                needs.push(("gpu".into(), u64::from(t.gpus)));
            }
            if t.memory_bytes > 0 {
                needs.push((
                    "memory".into(),
                    t.memory_bytes.div_ceil(self.memory_unit_bytes),
                ));
            }
            for (name, &n) in &t.extended {
                if self.containers.contains(name) {
                    return Err(BackendError::invalid(
                        format!("pods.templates[{i}].extended[{name:?}]"),
                        format!(
                            "{name} vertices contain other resources in this graph; only \
                             leaf resources can be asked for"
                        ),
                    ));
                }
                if n > 0 {
                    needs.push((name.clone(), n));
                }
            }
            let count = u64::from(t.count.max(1));
            let label = if t.name.is_empty() {
                format!("pod{i}")
            } else {
                t.name.clone()
            };
            let slot = Resource {
                kind: "slot".into(),
                count: Count::exact(count),
                with: needs.iter().map(|(k, n)| resource(k, *n)).collect(),
                exclusive: None,
                label: Some(label.clone()),
                unit: None,
            };
            parts.push(Part {
                spec: Jobspec {
                    version: 9999,
                    resources: vec![slot],
                    tasks: Vec::new(),
                    duration,
                },
                template: Some((i, label, count, needs)),
                selector,
            });
        }
        Ok(parts)
    }

    /// Why a group of pod templates can never fit, found without matching:
    /// one pod larger than any socket, or all pods together more than the
    /// whole graph holds. Checked first, so a group that never fits is
    /// UNSATISFIABLE (not BUSY because its first templates took the room)
    /// and costs the owner no matcher work.
    fn never_fits(&self, parts: &[Part]) -> Option<String> {
        let mut sums: BTreeMap<&str, u64> = BTreeMap::new();
        for part in parts {
            let Some((i, name, count, needs)) = &part.template else {
                continue;
            };
            for (t, n) in needs {
                let max = self.largest.get(t).copied().unwrap_or(0);
                if *n > max {
                    return Some(self.unsatisfiable_reason(part));
                }
                let s = sums.entry(t.as_str()).or_default();
                *s = s.saturating_add(n.saturating_mul(*count));
                let total = self.totals.get(t).copied().unwrap_or(0);
                if *s > total {
                    return Some(format!(
                        "pods.templates[{i}] ({name}): the group's templates up to here need \
                         {s} {t} in all; the whole graph has {total}"
                    ));
                }
            }
        }
        None
    }

    /// `Some(())` when a group whose templates each fit can never fit all
    /// together: its templates' slots, as one jobspec, are unsatisfiable on
    /// the whole graph. Only for groups without node selectors (those are
    /// matched with nodes masked, which satisfiability would not see).
    fn group_never_fits(&mut self, parts: &[Part], now: i64) -> Option<()> {
        if parts
            .iter()
            .any(|p| !p.selector.is_empty() || p.template.is_none())
        {
            return None;
        }
        let together = Jobspec {
            version: 9999,
            resources: parts
                .iter()
                .flat_map(|p| p.spec.resources.iter().cloned())
                .collect(),
            tasks: Vec::new(),
            duration: parts.first().map_or(0, |p| p.spec.duration),
        };
        let job = self.next_job;
        self.next_job += 1;
        match self
            .matcher
            .match_jobspec(MatchOp::Satisfiability, job, &together, now)
        {
            Err(MatchError::Unsatisfiable) => Some(()),
            _ => None,
        }
    }

    /// Why a part can never fit, in words.
    fn unsatisfiable_reason(&self, part: &Part) -> String {
        let Some((i, name, count, needs)) = &part.template else {
            return "the jobspec can never fit this graph, even when it is empty".into();
        };
        for (t, n) in needs {
            match self.largest.get(t) {
                None => {
                    return format!("pods.templates[{i}] ({name}): the graph has no {t} resources");
                }
                Some(&max) if *n > max => {
                    return format!(
                        "pods.templates[{i}] ({name}) needs {n} {t} per pod; the largest \
                         socket-level group has {max}"
                    );
                }
                Some(_) => {}
            }
        }
        if !part.selector.is_empty() {
            let labels: Vec<String> = part
                .selector
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let labels = labels.join(",");
            let selected = self
                .nodes()
                .into_iter()
                .filter(|&n| self.node_has_labels(n, &part.selector))
                .count();
            if selected == 0 {
                return format!(
                    "pods.templates[{i}] ({name}).node_selector: no node has the labels {labels}"
                );
            }
            return format!(
                "pods.templates[{i}] ({name}): {count} pods of this shape never fit the \
                 {selected} node(s) with the labels {labels}"
            );
        }
        format!(
            "pods.templates[{i}] ({name}): {count} pods of this shape are more than the whole graph holds"
        )
    }

    fn busy_reason(&self) -> String {
        let g = self.graph();
        let free = |t: &str| {
            g.root()
                .zip(g.type_id(t))
                .and_then(|(r, id)| g.free_units(r, id, self.now, self.now + 1))
                .unwrap_or(0)
        };
        format!(
            "the group fits this graph, but not now ({} cores and {} GPUs free)",
            free("core"),
            free("gpu")
        )
    }

    /// Splits a part's exclusive leaves into pods (or, for a jobspec, into
    /// one entry per node).
    fn placements(&self, part: &Part, job: JobId, emitted: &[Emit], out: &mut Vec<PodRecord>) {
        let g = self.graph();
        let leaves: Vec<&Emit> = emitted
            .iter()
            .filter(|e| e.exclusive && g.children(e.vertex).is_empty())
            .collect();
        // Group by host (slot host for pods, node for jobspecs), in order.
        let mut hosts: Vec<(VertexId, Vec<&Emit>)> = Vec::new();
        for e in leaves {
            let host = match &part.template {
                Some(_) => g.parent(e.vertex).unwrap_or(e.vertex),
                None => self.node_of(e.vertex).unwrap_or(e.vertex),
            };
            match hosts.iter_mut().find(|(h, _)| *h == host) {
                Some((_, v)) => v.push(e),
                None => hosts.push((host, vec![e])),
            }
        }
        let template: Arc<str> = match &part.template {
            Some((_, name, _, _)) => Arc::from(name.as_str()),
            None => Arc::from(""),
        };
        let mut push = |host: VertexId, vs: Vec<VertexId>| {
            out.push(PodRecord {
                index: out.len() as u32,
                template: template.clone(),
                node: self.node_of(host).unwrap_or(host),
                vertices: vs.into_iter().map(|v| (job, v)).collect(),
            });
        };
        let Some((_, _, _, needs)) = &part.template else {
            for (host, es) in hosts {
                push(host, es.iter().map(|e| e.vertex).collect());
            }
            return;
        };
        for (host, es) in hosts {
            // Per type, the leaves of that type in order; pods on this host
            // take `need` units each, pools go whole to the pod that drew them.
            let mut pods: Vec<Vec<VertexId>> = Vec::new();
            for (t, need) in needs {
                let mut k = 0usize;
                let mut acc = 0u64;
                for e in es.iter().filter(|e| g.kind_name(e.vertex) == t) {
                    if pods.len() <= k {
                        pods.push(Vec::new());
                    }
                    pods[k].push(e.vertex);
                    acc += e.needs.max(1);
                    if acc >= *need {
                        k += 1;
                        acc = 0;
                    }
                }
            }
            for vs in pods {
                push(host, vs);
            }
        }
    }
}

impl Engine for StandaloneEngine {
    fn advance_clock(&mut self, now: i64) {
        if now != self.now {
            self.now = now;
            self.expire();
        }
    }

    fn match_group(&mut self, req: pb::MatchRequest) -> BackendResult<pb::MatchResponse> {
        let policy = if req.policy.is_empty() {
            self.policy
        } else {
            parse_policy(&req.policy, "policy")?
        };
        let op = match pb::Operation::try_from(req.operation) {
            Ok(pb::Operation::Unspecified | pb::Operation::Allocate) => MatchOp::Allocate,
            Ok(pb::Operation::AllocateOrelseReserve) => MatchOp::AllocateOrElseReserve,
            Ok(pb::Operation::Satisfiability) => MatchOp::Satisfiability,
            Err(_) => {
                return Err(BackendError::invalid(
                    "operation",
                    format!("unknown operation {}", req.operation),
                ));
            }
        };
        let duration = if req.duration > 0 {
            req.duration
        } else {
            self.default_duration
        };
        let parts = match &req.request {
            None => {
                return Err(BackendError::invalid(
                    "request",
                    "give either `jobspec` or `pods`",
                ));
            }
            Some(pb::match_request::Request::Jobspec(text)) => {
                let mut spec = Jobspec::parse(text).map_err(|e| {
                    let path = if e.path == "." || e.path.is_empty() {
                        "jobspec".to_owned()
                    } else {
                        format!("jobspec.{}", e.path)
                    };
                    BackendError::invalid(path, e.message)
                })?;
                require_slot(&spec)?;
                if req.duration > 0 || spec.duration == 0 {
                    spec.duration = duration;
                }
                vec![Part {
                    spec,
                    template: None,
                    selector: Vec::new(),
                }]
            }
            Some(pb::match_request::Request::Pods(group)) => self.pod_parts(group, duration)?,
        };
        if let Some(reason) = self.never_fits(&parts) {
            return Ok(pb::MatchResponse {
                result: pb::MatchResult::Unsatisfiable as i32,
                reason,
                ..Default::default()
            });
        }
        self.matcher.set_policy(policy);
        let result = self.match_parts(&req, policy, op, &parts);
        self.matcher.set_policy(self.policy);
        result
    }

    fn cancel(&mut self, req: pb::CancelRequest) -> BackendResult<pb::CancelResponse> {
        let id = req.job_id;
        let Some(rec) = self.jobs.get(&id) else {
            return Err(BackendError::NotFound(format!("job {id} not found")));
        };
        if req.pods.is_empty() && req.nodes.is_empty() {
            let released = rec.pods.len() as u32;
            self.drop_group(id);
            return Ok(pb::CancelResponse {
                job_removed: true,
                released_pods: released,
            });
        }
        // Check everything before touching the graph, so a bad request
        // changes nothing.
        if rec.parts.iter().any(|&p| {
            self.matcher
                .info(p)
                .is_some_and(|i| i.reserved || i.at > self.now)
        }) {
            return Err(BackendError::FailedPrecondition(format!(
                "job {id} is a reservation; partial cancel applies to allocations only"
            )));
        }
        let have: BTreeSet<u32> = rec.pods.iter().map(|pod| pod.index).collect();
        for (i, &p) in req.pods.iter().enumerate() {
            if !have.contains(&p) {
                let left: Vec<u32> = rec.pods.iter().map(|pod| pod.index).collect();
                return Err(BackendError::invalid(
                    format!("pods[{i}]"),
                    format!("job {id} has no pod {p} (it has pods {left:?})"),
                ));
            }
        }
        let mut node_ids = Vec::with_capacity(req.nodes.len());
        for (i, n) in req.nodes.iter().enumerate() {
            match self.node_by_name(n) {
                Some(v) => node_ids.push(v),
                None => return Err(BackendError::NotFound(format!("nodes[{i}]: no node {n:?}"))),
            }
        }
        // Pods named by index, plus every pod on a named node.
        let pods: BTreeSet<u32> = req.pods.iter().copied().collect();
        let node_set: BTreeSet<VertexId> = node_ids.iter().copied().collect();
        let dropped = |pod: &PodRecord| pods.contains(&pod.index) || node_set.contains(&pod.node);
        let mut by_part: BTreeMap<JobId, Vec<VertexId>> = BTreeMap::new();
        let mut released = 0u32;
        for pod in rec.pods.iter().filter(|p| dropped(p)) {
            released += 1;
            for &(job, v) in &pod.vertices {
                by_part.entry(job).or_default().push(v);
            }
        }
        let parts = rec.parts.clone();
        for p in parts {
            let mut roots = by_part.remove(&p).unwrap_or_default();
            roots.extend(node_set.iter().copied());
            if roots.is_empty() || self.matcher.info(p).is_none() {
                continue;
            }
            match self.matcher.partial_cancel(p, &roots) {
                Ok(_) => {}
                Err(CancelError::NoSuchJob(_)) => {}
                Err(e) => return Err(BackendError::Internal(e.to_string())),
            }
        }
        let Some(rec) = self.jobs.get_mut(&id) else {
            return Err(BackendError::Internal(format!("job {id} vanished")));
        };
        rec.pods.retain(|p| !dropped(p));
        let alive: Vec<JobId> = rec
            .parts
            .iter()
            .copied()
            .filter(|&p| self.matcher.info(p).is_some())
            .collect();
        if alive.is_empty() {
            self.drop_group(id);
            return Ok(pb::CancelResponse {
                job_removed: true,
                released_pods: released,
            });
        }
        Ok(pb::CancelResponse {
            job_removed: false,
            released_pods: released,
        })
    }

    fn update_graph(
        &mut self,
        req: pb::UpdateGraphRequest,
    ) -> BackendResult<pb::UpdateGraphResponse> {
        let mut result = Ok(());
        for (i, u) in req.updates.iter().enumerate() {
            let at = format!("updates[{i}]");
            let step = match &u.update {
                None => Err(BackendError::invalid(at, "empty update")),
                Some(pb::graph_update::Update::AddNode(n)) => {
                    self.add_node(n, &format!("{at}.add_node"))
                }
                Some(pb::graph_update::Update::RemoveNode(name)) => self.remove_node(name, &at),
                Some(pb::graph_update::Update::SetState(s)) => match self.node_by_name(&s.node) {
                    None => Err(BackendError::NotFound(format!(
                        "{at}.set_state.node: no node {:?}",
                        s.node
                    ))),
                    Some(node) => {
                        let status = if s.up { Status::Up } else { Status::Down };
                        self.matcher
                            .graph_mut()
                            .set_status(node, status)
                            .map_err(|e| BackendError::Internal(e.to_string()))
                    }
                },
            };
            if step.is_err() {
                result = step;
                break;
            }
        }
        self.refresh_largest();
        // Vertex ids of removed nodes may be reused by added ones.
        self.paths.borrow_mut().clear();
        result?;
        Ok(pb::UpdateGraphResponse {
            applied: req.updates.len() as u32,
            vertices: self.graph().vertex_count() as u64,
        })
    }

    fn info(&self, req: pb::InfoRequest) -> BackendResult<pb::InfoResponse> {
        let rec = self
            .jobs
            .get(&req.job_id)
            .ok_or_else(|| BackendError::NotFound(format!("job {} not found", req.job_id)))?;
        Ok(pb::InfoResponse {
            job: Some(self.job_proto(req.job_id, rec)),
        })
    }

    fn stat(&self) -> BackendResult<pb::StatResponse> {
        let g = self.graph();
        let mut by_type: BTreeMap<&str, u64> = BTreeMap::new();
        for v in g.vertices() {
            *by_type.entry(g.kind_name(v)).or_default() += 1;
        }
        let nodes = self.nodes();
        let up = nodes.iter().filter(|&&n| g.is_effectively_up(n)).count() as u64;
        let reserved = self
            .jobs
            .iter()
            .filter(|(id, r)| self.job_proto(**id, r).state == pb::JobState::Reserved as i32)
            .count() as u64;
        let ms = self.matcher.stat();
        Ok(pb::StatResponse {
            vertices: ms.vertices as u64,
            edges: ms.edges as u64,
            by_type: by_type
                .into_iter()
                .map(|(t, count)| pb::TypeCount {
                    r#type: t.to_owned(),
                    count,
                })
                .collect(),
            nodes_up: up,
            nodes_down: nodes.len() as u64 - up,
            jobs_allocated: self.jobs.len() as u64 - reserved,
            jobs_reserved: reserved,
            policy: self.policy.to_string(),
            now: self.now,
            ..Default::default()
        })
    }

    fn resources(&self, req: pb::ResourcesRequest) -> BackendResult<pb::ResourcesResponse> {
        let mut wanted = BTreeSet::new();
        for (i, n) in req.nodes.iter().enumerate() {
            match self.node_by_name(n) {
                Some(v) => {
                    wanted.insert(v);
                }
                None => return Err(BackendError::NotFound(format!("nodes[{i}]: no node {n:?}"))),
            }
        }
        let types: BTreeSet<&str> = req.types.iter().map(String::as_str).collect();
        let mut out = pb::ResourcesResponse::default();
        let mut totals: BTreeMap<String, pb::ResourceCount> = BTreeMap::new();
        for node in self.nodes() {
            if !wanted.is_empty() && !wanted.contains(&node) {
                continue;
            }
            let mut nr = self.node_resources(node);
            if req.up.is_some_and(|up| up != nr.up) {
                continue;
            }
            if !req.types.is_empty() {
                nr.resources.retain(|r| types.contains(r.r#type.as_str()));
            }
            for r in &nr.resources {
                let t = totals
                    .entry(r.r#type.clone())
                    .or_insert_with(|| pb::ResourceCount {
                        r#type: r.r#type.clone(),
                        ..Default::default()
                    });
                t.total += r.total;
                t.free += r.free;
                t.allocated += r.allocated;
                t.down += r.down;
            }
            out.nodes.push(nr);
        }
        out.totals = totals.into_values().collect();
        Ok(out)
    }

    fn jobs(&self, req: pb::JobsRequest) -> BackendResult<pb::JobsResponse> {
        let limit = if req.limit == 0 {
            usize::MAX
        } else {
            req.limit as usize
        };
        let jobs = self
            .jobs
            .iter()
            .map(|(&id, rec)| self.job_proto(id, rec))
            .filter(|j| req.states.is_empty() || req.states.contains(&j.state))
            .take(limit)
            .collect();
        Ok(pb::JobsResponse { jobs })
    }
}

impl StandaloneEngine {
    fn remove_node(&mut self, name: &str, at: &str) -> BackendResult<()> {
        let node = self
            .node_by_name(name)
            .ok_or_else(|| BackendError::NotFound(format!("{at}.remove_node: no node {name:?}")))?;
        let jobs = self.jobs_on(node);
        if !jobs.is_empty() {
            return Err(BackendError::FailedPrecondition(format!(
                "{at}.remove_node: node {name:?} holds jobs {jobs:?}; cancel them first"
            )));
        }
        self.matcher
            .remove_subtree(node)
            .map_err(|e| BackendError::Internal(e.to_string()))?;
        if let Some(idx) = self.names.get_mut() {
            idx.nodes.remove(name);
            idx.order.retain(|&v| v != node);
        }
        Ok(())
    }

    /// Whether node `node` carries every label of `selector` (as a vertex
    /// property, or its name under [`HOSTNAME_LABEL`]).
    fn node_has_labels(&self, node: VertexId, selector: &[(String, String)]) -> bool {
        let Some(x) = self.graph().vertex(node) else {
            return false;
        };
        selector.iter().all(|(k, v)| {
            (k == HOSTNAME_LABEL && x.is_named(v))
                || x.properties
                    .iter()
                    .any(|(pk, pv)| **pk == **k && **pv == **v)
        })
    }

    /// Matches one part; a part with a node selector is matched with the
    /// nodes it excludes marked down for the duration of the call (and
    /// restored even if the matcher panics), so it can only land on the
    /// selected nodes.
    // NOTE(grpc): waiting for property constraints in the fluxion-core
    // matcher, which would make this masking unnecessary.
    fn match_selected(
        &mut self,
        op: MatchOp,
        job: JobId,
        part: &Part,
        at: i64,
    ) -> Result<MatchOutcome, MatchError> {
        if part.selector.is_empty() {
            return self.matcher.match_jobspec(op, job, &part.spec, at);
        }
        let nodes = self.nodes();
        if !nodes
            .iter()
            .any(|&n| self.node_has_labels(n, &part.selector))
        {
            return Err(MatchError::Unsatisfiable);
        }
        let hidden: Vec<VertexId> = nodes
            .into_iter()
            .filter(|&n| {
                self.graph()
                    .vertex(n)
                    .is_some_and(|x| x.status == Status::Up)
                    && !self.node_has_labels(n, &part.selector)
            })
            .collect();
        for &n in &hidden {
            let _ = self.matcher.graph_mut().set_status(n, Status::Down);
        }
        let matcher = &mut self.matcher;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            matcher.match_jobspec(op, job, &part.spec, at)
        }));
        for &n in &hidden {
            let _ = self.matcher.graph_mut().set_status(n, Status::Up);
        }
        result.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }

    /// The reply (or error) for a part that did not match.
    fn failure(&self, pi: usize, part: &Part, e: MatchError) -> BackendResult<pb::MatchResponse> {
        let (result, reason) = match e {
            MatchError::Busy => (pb::MatchResult::Busy, self.busy_reason()),
            MatchError::Unsatisfiable => (
                pb::MatchResult::Unsatisfiable,
                self.unsatisfiable_reason(part),
            ),
            MatchError::InvalidJobspec(m) => {
                let path = match &part.template {
                    Some(_) => format!("pods.templates[{pi}]"),
                    None => "jobspec".to_owned(),
                };
                // A type the graph lacks is a fact about this graph, not a
                // malformed request.
                if m.contains("unknown") || m.contains("no such") || m.contains("not in the graph")
                {
                    (pb::MatchResult::Unsatisfiable, format!("{path}: {m}"))
                } else {
                    return Err(BackendError::invalid(path, m));
                }
            }
            other => return Err(BackendError::Internal(other.to_string())),
        };
        Ok(pb::MatchResponse {
            result: result as i32,
            reason,
            ..Default::default()
        })
    }

    fn match_parts(
        &mut self,
        req: &pb::MatchRequest,
        policy: Policy,
        op: MatchOp,
        parts: &[Part],
    ) -> BackendResult<pb::MatchResponse> {
        let now = self.now;
        let rollback = |m: &mut Matcher, done: &[(JobId, MatchOutcome)]| {
            if op != MatchOp::Satisfiability {
                for (j, _) in done {
                    let _ = m.cancel(*j);
                }
            }
        };
        // Templates are matched one after the other, all-or-nothing. With
        // allocate_orelse_reserve they may fit at different times; then all
        // are matched again from the latest of those times, until they
        // start together. Each round starts later than the one before, so
        // this ends, but a bound keeps a pathological graph from stalling
        // the owner.
        let mut from = now;
        let mut rounds = 0;
        let done = loop {
            let mut done: Vec<(JobId, MatchOutcome)> = Vec::with_capacity(parts.len());
            for (pi, part) in parts.iter().enumerate() {
                let job = self.next_job;
                self.next_job += 1;
                match self.match_selected(op, job, part, from) {
                    Ok(outcome) => done.push((job, outcome)),
                    Err(e) => {
                        rollback(&mut self.matcher, &done);
                        // BUSY promises the group fits once others leave;
                        // a group whose templates fit alone but never all
                        // together is UNSATISFIABLE instead.
                        let never = matches!(e, MatchError::Busy)
                            && parts.len() > 1
                            && self.group_never_fits(parts, now).is_some();
                        if never {
                            return Ok(pb::MatchResponse {
                                result: pb::MatchResult::Unsatisfiable as i32,
                                reason: format!(
                                    "the {} templates never fit this graph together, even \
                                     when it is empty",
                                    parts.len()
                                ),
                                ..Default::default()
                            });
                        }
                        return self.failure(pi, part, e);
                    }
                }
            }
            let latest = done.iter().map(|(_, o)| o.at).max().unwrap_or(from);
            if done.iter().all(|(_, o)| o.at == latest) {
                break done;
            }
            rollback(&mut self.matcher, &done);
            rounds += 1;
            if rounds >= MAX_RESERVE_ROUNDS {
                return Ok(pb::MatchResponse {
                    result: pb::MatchResult::Busy as i32,
                    reason: format!(
                        "the templates fit, but no common start time was found in \
                         {MAX_RESERVE_ROUNDS} tries (the latest tried: {latest})"
                    ),
                    ..Default::default()
                });
            }
            from = latest;
        };
        if op == MatchOp::Satisfiability {
            return Ok(pb::MatchResponse {
                result: pb::MatchResult::Satisfiable as i32,
                start_time: now,
                ..Default::default()
            });
        }
        let id = done.first().map_or(0, |(j, _)| *j);
        let mut pods = Vec::new();
        for (part, (job, outcome)) in parts.iter().zip(&done) {
            self.placements(part, *job, &outcome.emitted, &mut pods);
        }
        let rendered = pods.iter().map(|p| self.render_pod(p)).collect();
        // A group starting later than now is a reservation, however the
        // round that placed it was started.
        let start = done.iter().map(|(_, o)| o.at).max().unwrap_or(now);
        let reserved = start > now;
        for (j, _) in &done {
            self.part_of.insert(*j, id);
        }
        self.jobs.insert(
            id,
            JobRecord {
                name: req.name.clone(),
                policy: policy.to_string(),
                created_unix_ms: unix_ms(),
                parts: done.iter().map(|(j, _)| *j).collect(),
                pods,
            },
        );
        Ok(pb::MatchResponse {
            result: if reserved {
                pb::MatchResult::Reserved
            } else {
                pb::MatchResult::Allocated
            } as i32,
            job_id: id,
            pods: rendered,
            start_time: start,
            reason: String::new(),
            match_micros: 0,
        })
    }
}
