//! The standalone engine of `phalanx serve`: a fluxion-core resource graph
//! loaded from a file (or generated), its matcher, and a job table.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use fluxion_core::graph::{ResourceGraph, Status, VertexId, VertexSpec};
use phalanx_proto::v1 as pb;

use crate::backend::{BackendError, BackendResult, Engine};

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

/// A job as the engine remembers it, beyond what the graph holds.
#[derive(Debug, Clone)]
struct JobRecord {
    name: String,
    policy: String,
    created_unix_ms: i64,
    /// Placement per pod (or slot), and the vertices behind each.
    pods: Vec<pb::PodPlacement>,
    pod_vertices: Vec<Vec<VertexId>>,
}

/// The engine behind `phalanx serve`. See the module docs.
#[derive(Debug)]
pub struct StandaloneEngine {
    graph: ResourceGraph,
    policy: String,
    default_duration: u64,
    now: i64,
    next_job: u64,
    jobs: BTreeMap<u64, JobRecord>,
}

/// Seconds a match without a duration lasts: effectively until cancelled.
pub const UNTIL_CANCELLED: u64 = 1 << 40;

impl StandaloneEngine {
    /// An engine over `graph` with default match `policy`.
    pub fn new(graph: ResourceGraph, policy: &str) -> Result<Self, BackendError> {
        check_policy(policy, "policy")?;
        Ok(Self {
            graph: prepare(graph)?,
            policy: policy.to_owned(),
            default_duration: UNTIL_CANCELLED,
            now: 0,
            next_job: 1,
            jobs: BTreeMap::new(),
        })
    }

    /// Sets the duration of matches that give none (0 = until cancelled).
    pub fn with_default_duration(mut self, seconds: u64) -> Self {
        self.default_duration = if seconds == 0 { UNTIL_CANCELLED } else { seconds };
        self
    }

    /// A generated cluster of `nodes` nodes (see
    /// [`fluxion_core::generate::ClusterShape::standard`]).
    pub fn generated(nodes: usize, policy: &str) -> anyhow::Result<Self> {
        let shape = fluxion_core::generate::ClusterShape::standard(nodes);
        let graph = fluxion_core::generate::cluster(&shape)?;
        Ok(Self::new(graph, policy)?)
    }

    /// Loads a graph file.
    pub fn load(path: &Path, format: Option<GraphFormat>, policy: &str) -> anyhow::Result<Self> {
        let format = format.unwrap_or_else(|| GraphFormat::from_path(path));
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("read {}: {e}", path.display()))?;
        let graph = read_graph(&text, format)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(Self::new(graph, policy)?)
    }

    /// Number of vertices in the graph.
    pub fn vertex_count(&self) -> usize {
        self.graph.vertex_count()
    }

    fn node_by_name(&self, name: &str) -> Option<VertexId> {
        self.graph
            .find_by_name(name)
            .find(|&v| self.graph.kind_name(v) == "node")
    }

    fn nodes(&self) -> Vec<VertexId> {
        let mut v: Vec<VertexId> = self
            .graph
            .vertices()
            .filter(|&v| self.graph.kind_name(v) == "node")
            .collect();
        // Graph (insertion) order is the order operators expect in tables.
        v.sort_by_key(|&x| self.graph.vertex(x).map_or(0, |x| x.uniq_id));
        v
    }

    fn job_proto(&self, id: u64, rec: &JobRecord) -> pb::Job {
        let (start, end, reserved) = self
            .graph
            .job(id)
            .map_or((0, 0, false), |h| (h.start, h.end, h.reserved));
        let state = if reserved && start > self.now {
            pb::JobState::Reserved
        } else {
            pb::JobState::Allocated
        };
        let mut seen = BTreeSet::new();
        let nodes: Vec<String> = rec
            .pods
            .iter()
            .filter(|p| seen.insert(p.node.clone()))
            .map(|p| p.node.clone())
            .collect();
        pb::Job {
            job_id: id,
            name: rec.name.clone(),
            state: state as i32,
            start_time: start,
            duration: u64::try_from(end.saturating_sub(start)).unwrap_or(0),
            npods: rec.pods.len() as u32,
            nnodes: nodes.len() as u32,
            nodes,
            pods: rec.pods.clone(),
            created_unix_ms: rec.created_unix_ms,
            policy: rec.policy.clone(),
        }
    }

    /// Jobs whose window has passed hold nothing any more: forget them.
    fn expire(&mut self) {
        let done: Vec<u64> = self
            .graph
            .jobs()
            .filter(|(_, h)| h.end <= self.now)
            .map(|(j, _)| j)
            .collect();
        for j in done {
            let _ = self.graph.release(j);
            self.jobs.remove(&j);
        }
    }

    fn node_resources(&self, node: VertexId) -> pb::NodeResources {
        let up = self.graph.is_effectively_up(node);
        let (start, end) = (self.now, self.now + 1);
        let mut counts: BTreeMap<&str, pb::ResourceCount> = BTreeMap::new();
        let mut jobs = BTreeSet::new();
        for v in self.graph.subtree(node) {
            let Some(x) = self.graph.vertex(v) else { continue };
            for s in x.spans() {
                if s.overlaps(start, end) {
                    jobs.insert(s.job);
                }
            }
            if v == node || !x.children().is_empty() {
                continue;
            }
            let c = counts
                .entry(self.graph.kind_name(v))
                .or_insert_with(|| pb::ResourceCount {
                    r#type: self.graph.kind_name(v).to_owned(),
                    ..Default::default()
                });
            c.total += x.size;
            if up {
                let free = self.graph.available(v, start, end);
                c.free += free;
                c.allocated += x.size.saturating_sub(free);
            } else {
                c.down += x.size;
            }
        }
        pb::NodeResources {
            name: self
                .graph
                .vertex(node)
                .map_or_else(String::new, |x| x.name.to_string()),
            path: self.graph.path(node),
            up,
            resources: counts.into_values().collect(),
            jobs: jobs.into_iter().collect(),
        }
    }

    fn add_node(&mut self, spec: &pb::AddNode, at: &str) -> BackendResult<()> {
        if self.node_by_name(&spec.name).is_some() {
            return Err(BackendError::FailedPrecondition(format!(
                "{at}.name: node {:?} already exists",
                spec.name
            )));
        }
        let parent = if spec.parent.is_empty() {
            self.graph.root()
        } else {
            let mut found = self.graph.find_by_name(&spec.parent);
            match (found.next(), found.next()) {
                (Some(p), None) => Some(p),
                (None, _) => {
                    return Err(BackendError::NotFound(format!(
                        "{at}.parent: no vertex named {:?}",
                        spec.parent
                    )));
                }
                (Some(_), Some(_)) => {
                    return Err(BackendError::invalid(
                        format!("{at}.parent"),
                        format!("{:?} names more than one vertex", spec.parent),
                    ));
                }
            }
        };
        if spec.sockets > 64 || spec.cores_per_socket > 4096 || spec.gpus_per_socket > 1024 {
            return Err(BackendError::invalid(
                at,
                "at most 64 sockets, 4096 cores and 1024 GPUs per socket",
            ));
        }
        let internal = |e: fluxion_core::graph::GraphError| BackendError::Internal(e.to_string());
        let id = trailing_number(&spec.name);
        let mut ns = VertexSpec::new("node", "node", id);
        ns.name = spec.name.clone();
        let node = self.graph.add_vertex(ns, parent).map_err(internal)?;
        let (mut core, mut gpu) = (0i64, 0i64);
        for s in 0..spec.sockets {
            let socket = self
                .graph
                .add_vertex(VertexSpec::new("socket", "socket", i64::from(s)), Some(node))
                .map_err(internal)?;
            for _ in 0..spec.cores_per_socket {
                self.graph
                    .add_vertex(VertexSpec::new("core", "core", core), Some(socket))
                    .map_err(internal)?;
                core += 1;
            }
            for _ in 0..spec.gpus_per_socket {
                self.graph
                    .add_vertex(VertexSpec::new("gpu", "gpu", gpu), Some(socket))
                    .map_err(internal)?;
                gpu += 1;
            }
            if spec.memory_per_socket > 0 {
                let mut ms = VertexSpec::new("memory", "memory", i64::from(s));
                ms.size = spec.memory_per_socket;
                ms.unit = "GB".into();
                self.graph.add_vertex(ms, Some(socket)).map_err(internal)?;
            }
        }
        Ok(())
    }

    fn jobs_on(&self, node: VertexId) -> BTreeSet<u64> {
        self.graph
            .subtree(node)
            .into_iter()
            .filter_map(|v| self.graph.vertex(v))
            .flat_map(|x| x.spans().iter().map(|s| s.job))
            .collect()
    }
}

fn trailing_number(name: &str) -> i64 {
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    name[name.len() - digits..].parse().unwrap_or(0)
}

/// Prune filters the matcher relies on to skip full subtrees.
fn prepare(mut graph: ResourceGraph) -> Result<ResourceGraph, BackendError> {
    let filters = "ALL:core,ALL:gpu,ALL:node,ALL:memory"
        .parse::<fluxion_core::graph::PruneFilters>()
        .map_err(|e| BackendError::Internal(e.to_string()))?;
    graph
        .set_prune_filters(&filters)
        .map_err(|e| BackendError::Internal(e.to_string()))?;
    Ok(graph)
}

const POLICIES: &[&str] = &["first", "low", "high", "lonode", "hinode", "locality"];

fn check_policy(policy: &str, path: &str) -> BackendResult<()> {
    if POLICIES.contains(&policy) {
        Ok(())
    } else {
        Err(BackendError::invalid(
            path,
            format!("unknown policy {policy:?}; expected one of {}", POLICIES.join(", ")),
        ))
    }
}

fn read_graph(_text: &str, format: GraphFormat) -> anyhow::Result<ResourceGraph> {
    // NOTE(grpc): waiting for fluxion_core::io (GRUG/JGF readers).
    anyhow::bail!("reading {format:?} graphs is not available in this build yet; use --generate-nodes")
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
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
            self.policy.clone()
        } else {
            check_policy(&req.policy, "policy")?;
            req.policy.clone()
        };
        let _ = (policy, unix_ms());
        // NOTE(grpc): waiting for fluxion_core's matcher.
        Err(BackendError::FailedPrecondition(
            "the matcher is not available in this build yet".into(),
        ))
    }

    fn cancel(&mut self, req: pb::CancelRequest) -> BackendResult<pb::CancelResponse> {
        let id = req.job_id;
        let Some(rec) = self.jobs.get(&id) else {
            return Err(BackendError::NotFound(format!("job {id} not found")));
        };
        if req.pods.is_empty() && req.nodes.is_empty() {
            let released = rec.pods.len() as u32;
            self.graph
                .release(id)
                .map_err(|e| BackendError::Internal(e.to_string()))?;
            self.jobs.remove(&id);
            return Ok(pb::CancelResponse {
                job_removed: true,
                released_pods: released,
            });
        }
        // Check everything before touching the graph, so a bad request
        // changes nothing.
        for (i, &p) in req.pods.iter().enumerate() {
            if p as usize >= rec.pods.len() {
                return Err(BackendError::invalid(
                    format!("pods[{i}]"),
                    format!("job {id} has no pod {p} (it has {})", rec.pods.len()),
                ));
            }
        }
        let mut node_ids = Vec::new();
        for (i, n) in req.nodes.iter().enumerate() {
            match self.node_by_name(n) {
                Some(v) => node_ids.push(v),
                None => {
                    return Err(BackendError::NotFound(format!("nodes[{i}]: no node {n:?}")));
                }
            }
        }
        let drop_pods: BTreeSet<usize> = req
            .pods
            .iter()
            .map(|&p| p as usize)
            .chain(
                rec.pods
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| req.nodes.contains(&p.node))
                    .map(|(i, _)| i),
            )
            .collect();
        let mut targets: Vec<VertexId> = drop_pods
            .iter()
            .flat_map(|&i| rec.pod_vertices[i].iter().copied())
            .collect();
        targets.extend(node_ids);
        let mut gone = false;
        for v in targets {
            match self.graph.release_subtree(id, v) {
                Ok(g) => gone = g,
                // The job went away with an earlier target.
                Err(fluxion_core::graph::GraphError::NoSuchJob(_)) => {
                    gone = true;
                    break;
                }
                Err(e) => return Err(BackendError::Internal(e.to_string())),
            }
            if gone {
                break;
            }
        }
        let released = drop_pods.len() as u32;
        if gone || self.graph.job(id).is_none() {
            self.jobs.remove(&id);
            return Ok(pb::CancelResponse {
                job_removed: true,
                released_pods: released,
            });
        }
        if let Some(rec) = self.jobs.get_mut(&id) {
            let keep: Vec<bool> = (0..rec.pods.len()).map(|i| !drop_pods.contains(&i)).collect();
            let mut k = keep.iter();
            rec.pods.retain(|_| *k.next().unwrap_or(&true));
            let mut k = keep.iter();
            rec.pod_vertices.retain(|_| *k.next().unwrap_or(&true));
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
        for (i, u) in req.updates.iter().enumerate() {
            let at = format!("updates[{i}]");
            match &u.update {
                None => return Err(BackendError::invalid(at, "empty update")),
                Some(pb::graph_update::Update::AddNode(n)) => {
                    self.add_node(n, &format!("{at}.add_node"))?;
                }
                Some(pb::graph_update::Update::RemoveNode(name)) => {
                    let node = self.node_by_name(name).ok_or_else(|| {
                        BackendError::NotFound(format!("{at}.remove_node: no node {name:?}"))
                    })?;
                    let jobs = self.jobs_on(node);
                    if !jobs.is_empty() {
                        return Err(BackendError::FailedPrecondition(format!(
                            "{at}.remove_node: node {name:?} holds jobs {jobs:?}; cancel them first"
                        )));
                    }
                    self.graph
                        .remove_subtree(node)
                        .map_err(|e| BackendError::Internal(e.to_string()))?;
                }
                Some(pb::graph_update::Update::SetState(s)) => {
                    let node = self.node_by_name(&s.node).ok_or_else(|| {
                        BackendError::NotFound(format!("{at}.set_state.node: no node {:?}", s.node))
                    })?;
                    let status = if s.up { Status::Up } else { Status::Down };
                    self.graph
                        .set_status(node, status)
                        .map_err(|e| BackendError::Internal(e.to_string()))?;
                }
            }
        }
        Ok(pb::UpdateGraphResponse {
            applied: req.updates.len() as u32,
            vertices: self.graph.vertex_count() as u64,
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
        let mut by_type: HashMap<&str, u64> = HashMap::new();
        for v in self.graph.vertices() {
            *by_type.entry(self.graph.kind_name(v)).or_default() += 1;
        }
        let mut by_type: Vec<pb::TypeCount> = by_type
            .into_iter()
            .map(|(t, count)| pb::TypeCount {
                r#type: t.to_owned(),
                count,
            })
            .collect();
        by_type.sort_by(|a, b| a.r#type.cmp(&b.r#type));
        let nodes = self.nodes();
        let up = nodes
            .iter()
            .filter(|&&n| self.graph.is_effectively_up(n))
            .count() as u64;
        let reserved = self
            .jobs
            .keys()
            .filter(|&&j| {
                self.graph
                    .job(j)
                    .is_some_and(|h| h.reserved && h.start > self.now)
            })
            .count() as u64;
        let vertices = self.graph.vertex_count() as u64;
        Ok(pb::StatResponse {
            vertices,
            // A containment tree: every vertex but the root has one parent edge.
            edges: vertices.saturating_sub(1),
            by_type,
            nodes_up: up,
            nodes_down: nodes.len() as u64 - up,
            jobs_allocated: self.jobs.len() as u64 - reserved,
            jobs_reserved: reserved,
            policy: self.policy.clone(),
            now: self.now,
            ..Default::default()
        })
    }

    fn resources(&self, req: pb::ResourcesRequest) -> BackendResult<pb::ResourcesResponse> {
        for (i, n) in req.nodes.iter().enumerate() {
            if self.node_by_name(n).is_none() {
                return Err(BackendError::NotFound(format!("nodes[{i}]: no node {n:?}")));
            }
        }
        let mut out = pb::ResourcesResponse::default();
        let mut totals: BTreeMap<String, pb::ResourceCount> = BTreeMap::new();
        for node in self.nodes() {
            let mut nr = self.node_resources(node);
            if !req.nodes.is_empty() && !req.nodes.contains(&nr.name) {
                continue;
            }
            if req.up.is_some_and(|up| up != nr.up) {
                continue;
            }
            if !req.types.is_empty() {
                nr.resources.retain(|r| req.types.contains(&r.r#type));
            }
            for r in &nr.resources {
                let t = totals.entry(r.r#type.clone()).or_insert_with(|| pb::ResourceCount {
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
        let limit = if req.limit == 0 { usize::MAX } else { req.limit as usize };
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
