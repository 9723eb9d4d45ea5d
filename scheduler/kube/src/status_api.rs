//! The gRPC API of `phalanx serve`, answered from the live scheduler so that
//! `phalanx status` works against `phalanx run`. Reads are forwarded to the
//! scheduling loop (which owns the core) and answered there; writes are refused:
//! in `phalanx run` the cluster, not the API, decides what runs. A `Match` with
//! the SATISFIABILITY operation is a read: "would this group of pods fit the
//! cluster, and where would it go now?", answered on a copy of the live graph.

use std::collections::{BTreeMap, HashMap, VecDeque};

use fluxion_core::group;
use phalanx_gang as gang;
use phalanx_grpc::{Backend, BackendError, BackendResult};
use phalanx_proto::v1 as pb;
use tokio::sync::{mpsc, oneshot};

use crate::cluster::Cluster;

/// A read request forwarded to the loop, with where to answer.
#[derive(Debug)]
pub enum Query {
    /// Graph and job counts.
    Stat(oneshot::Sender<BackendResult<pb::StatResponse>>),
    /// Per-node usage.
    Resources(
        pb::ResourcesRequest,
        oneshot::Sender<BackendResult<pb::ResourcesResponse>>,
    ),
    /// Groups as jobs.
    Jobs(
        pb::JobsRequest,
        oneshot::Sender<BackendResult<pb::JobsResponse>>,
    ),
    /// One group as a job.
    Info(
        pb::InfoRequest,
        oneshot::Sender<BackendResult<pb::InfoResponse>>,
    ),
    /// Whether a group of typed pods would fit (a satisfiability match).
    WhatIf(
        pb::MatchRequest,
        oneshot::Sender<BackendResult<pb::MatchResponse>>,
    ),
}

/// The [`Backend`] handed to phalanx-grpc's server.
#[derive(Debug, Clone)]
pub struct LiveBackend {
    tx: mpsc::Sender<Query>,
}

impl LiveBackend {
    /// A backend forwarding to the loop's query channel.
    pub fn new(tx: mpsc::Sender<Query>) -> Self {
        Self { tx }
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<BackendResult<T>>) -> Query,
    ) -> BackendResult<T> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(make(tx))
            .await
            .map_err(|_| BackendError::Unavailable("the scheduler is stopping".into()))?;
        rx.await
            .map_err(|_| BackendError::Unavailable("the scheduler is stopping".into()))?
    }
}

fn read_only<T>(what: &str) -> BackendResult<T> {
    Err(BackendError::FailedPrecondition(format!(
        "{what} is not available on `phalanx run`: the cluster's pods decide what runs (use `phalanx serve` for a standalone matcher)"
    )))
}

impl Backend for LiveBackend {
    async fn match_group(&self, req: pb::MatchRequest) -> BackendResult<pb::MatchResponse> {
        if req.operation != pb::Operation::Satisfiability as i32 {
            return read_only("Match with an allocating operation");
        }
        self.ask(|tx| Query::WhatIf(req, tx)).await
    }
    async fn cancel(&self, _req: pb::CancelRequest) -> BackendResult<pb::CancelResponse> {
        read_only("Cancel")
    }
    async fn update_graph(
        &self,
        _req: pb::UpdateGraphRequest,
    ) -> BackendResult<pb::UpdateGraphResponse> {
        read_only("UpdateGraph")
    }
    async fn info(&self, req: pb::InfoRequest) -> BackendResult<pb::InfoResponse> {
        self.ask(|tx| Query::Info(req, tx)).await
    }
    async fn stat(&self) -> BackendResult<pb::StatResponse> {
        self.ask(Query::Stat).await
    }
    async fn resources(&self, req: pb::ResourcesRequest) -> BackendResult<pb::ResourcesResponse> {
        self.ask(|tx| Query::Resources(req, tx)).await
    }
    async fn jobs(&self, req: pb::JobsRequest) -> BackendResult<pb::JobsResponse> {
        self.ask(|tx| Query::Jobs(req, tx)).await
    }
}

/// What the loop keeps for answering queries besides the core.
#[derive(Debug, Default)]
pub struct QueryState {
    job_ids: HashMap<gang::GroupKey, u64>,
    next_id: u64,
    /// Recent match latencies, microseconds.
    pub latencies: VecDeque<u64>,
    /// Passes that bound something, and passes that did not.
    pub matches: (u64, u64),
}

impl QueryState {
    fn job_id(&mut self, key: &gang::GroupKey) -> u64 {
        if let Some(id) = self.job_ids.get(key) {
            return *id;
        }
        self.next_id += 1;
        self.job_ids.insert(key.clone(), self.next_id);
        self.next_id
    }

    /// Records one pass's matcher time.
    pub fn record_latency(&mut self, micros: u64, bound_something: bool) {
        if self.latencies.len() >= 4096 {
            self.latencies.pop_front();
        }
        self.latencies.push_back(micros);
        if bound_something {
            self.matches.0 += 1;
        } else {
            self.matches.1 += 1;
        }
    }

    fn jobs(
        &mut self,
        core: &gang::GangScheduler,
        cluster: &Cluster,
        policy: &str,
    ) -> Vec<pb::Job> {
        let mut pods_of: BTreeMap<gang::GroupKey, Vec<(String, String)>> = BTreeMap::new();
        for (key, pod, node) in cluster.grouped_bound_pods() {
            pods_of.entry(key).or_default().push((pod, node));
        }
        let mut jobs = Vec::new();
        for g in core.groups() {
            let state = match (&g.phase, &g.wait) {
                (
                    gang::GroupPhase::Scheduling
                    | gang::GroupPhase::Scheduled
                    | gang::GroupPhase::Running,
                    _,
                ) => pb::JobState::Allocated,
                (_, Some(gang::WaitReason::Reserved { .. })) => pb::JobState::Reserved,
                _ if g.bound > 0 => pb::JobState::Allocated,
                _ => pb::JobState::Unspecified,
            };
            let placed = pods_of.remove(&g.group).unwrap_or_default();
            let mut nodes: Vec<String> = Vec::new();
            for (_, n) in &placed {
                if !nodes.contains(n) {
                    nodes.push(n.clone());
                }
            }
            let start_time = match &g.wait {
                Some(gang::WaitReason::Reserved { start, .. }) => start.as_millis() / 1000,
                _ => 0,
            };
            jobs.push(pb::Job {
                job_id: self.job_id(&g.group),
                name: g.group.to_string(),
                state: state as i32,
                start_time,
                duration: 0,
                npods: placed.len() as u32,
                nnodes: nodes.len() as u32,
                nodes,
                pods: placed
                    .iter()
                    .enumerate()
                    .map(|(i, (pod, node))| pb::PodPlacement {
                        index: i as u32,
                        template: pod.clone(),
                        node: node.clone(),
                        vertices: Vec::new(),
                    })
                    .collect(),
                created_unix_ms: 0,
                policy: policy.to_string(),
            });
        }
        jobs.sort_by_key(|j| j.job_id);
        jobs
    }

    /// Answers one query from the loop's state.
    pub fn answer(
        &mut self,
        q: Query,
        core: &gang::GangScheduler,
        cluster: &Cluster,
        policy: &str,
        now_ms: i64,
    ) {
        match q {
            Query::Stat(tx) => {
                let graph = core.graph();
                let (mut up, mut down) = (0u64, 0u64);
                for id in graph.node_ids() {
                    match graph.node(id) {
                        Some(spec) if spec.schedulable => up += 1,
                        Some(_) => down += 1,
                        None => {}
                    }
                }
                let jobs = self.jobs(core, cluster, policy);
                let count =
                    |s: pb::JobState| jobs.iter().filter(|j| j.state == s as i32).count() as u64;
                let _ = tx.send(Ok(pb::StatResponse {
                    vertices: up + down,
                    edges: 0,
                    by_type: vec![pb::TypeCount {
                        r#type: "node".into(),
                        count: up + down,
                    }],
                    nodes_up: up,
                    nodes_down: down,
                    jobs_allocated: count(pb::JobState::Allocated),
                    jobs_reserved: count(pb::JobState::Reserved),
                    matches_succeeded: self.matches.0,
                    matches_failed: self.matches.1,
                    match_latency: Some(phalanx_grpc::latency_summary(
                        self.latencies.iter().copied(),
                    )),
                    now: now_ms / 1000,
                    policy: policy.to_string(),
                }));
            }
            Query::Resources(req, tx) => {
                let _ = tx.send(Ok(self.resources(&req, core, cluster)));
            }
            Query::Jobs(req, tx) => {
                let mut jobs = self.jobs(core, cluster, policy);
                if !req.states.is_empty() {
                    jobs.retain(|j| req.states.contains(&j.state));
                }
                if req.limit > 0 {
                    jobs.truncate(req.limit as usize);
                }
                let _ = tx.send(Ok(pb::JobsResponse { jobs }));
            }
            Query::WhatIf(req, tx) => {
                let _ = tx.send(what_if(&req, core, cluster));
            }
            Query::Info(req, tx) => {
                let job = self
                    .jobs(core, cluster, policy)
                    .into_iter()
                    .find(|j| j.job_id == req.job_id);
                let _ = tx.send(match job {
                    Some(job) => Ok(pb::InfoResponse { job: Some(job) }),
                    None => Err(BackendError::NotFound(format!("no job {}", req.job_id))),
                });
            }
        }
    }

    fn resources(
        &mut self,
        req: &pb::ResourcesRequest,
        core: &gang::GangScheduler,
        cluster: &Cluster,
    ) -> pb::ResourcesResponse {
        let graph = core.graph();
        let mut jobs_on: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for (key, _, node) in cluster.grouped_bound_pods() {
            let id = self.job_id(&key);
            let list = jobs_on.entry(node).or_default();
            if !list.contains(&id) {
                list.push(id);
            }
        }
        let mut totals: BTreeMap<&'static str, pb::ResourceCount> = BTreeMap::new();
        let mut nodes = Vec::new();
        for id in graph.node_ids() {
            let (Some(spec), Some(cap), Some(free)) =
                (graph.node(id), graph.node_capacity(id), graph.node_free(id))
            else {
                continue;
            };
            if !req.nodes.is_empty() && !req.nodes.contains(&spec.name) {
                continue;
            }
            if req.up.is_some_and(|up| up != spec.schedulable) {
                continue;
            }
            let mut counts = Vec::new();
            for (ty, total, left) in [
                ("cpu", cap.0, free.0),
                ("memory", cap.1, free.1),
                ("gpu", cap.2, free.2),
                ("pods", cap.3, free.3),
            ] {
                if !req.types.is_empty() && !req.types.iter().any(|t| t == ty) {
                    continue;
                }
                let total = total.max(0) as u64;
                let free = left.clamp(0, total as i64) as u64;
                let rc = if spec.schedulable {
                    pb::ResourceCount {
                        r#type: ty.into(),
                        total,
                        free,
                        allocated: total - free,
                        down: 0,
                    }
                } else {
                    pb::ResourceCount {
                        r#type: ty.into(),
                        total,
                        free: 0,
                        allocated: 0,
                        down: total,
                    }
                };
                let t = totals.entry(ty).or_insert_with(|| pb::ResourceCount {
                    r#type: ty.into(),
                    ..Default::default()
                });
                t.total += rc.total;
                t.free += rc.free;
                t.allocated += rc.allocated;
                t.down += rc.down;
                counts.push(rc);
            }
            let (zone, rack) = graph.node_location(id).unwrap_or(("", ""));
            nodes.push(pb::NodeResources {
                name: spec.name.clone(),
                path: format!("/cluster/{zone}/{rack}/{}", spec.name),
                up: spec.schedulable,
                resources: counts,
                jobs: jobs_on.remove(&spec.name).unwrap_or_default(),
            });
        }
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        pb::ResourcesResponse {
            nodes,
            totals: totals.into_values().collect(),
        }
    }
}

/// The pod templates of `req` as a group request on the live graph.
fn group_request(
    req: &pb::MatchRequest,
    graph: &group::GroupGraph,
    cluster: &Cluster,
) -> BackendResult<(group::GroupRequest, Vec<String>)> {
    let Some(pb::match_request::Request::Pods(group)) = &req.request else {
        return Err(BackendError::invalid(
            "request",
            "`phalanx run` answers Match for typed pods only (a Fluxion jobspec needs `phalanx serve`)",
        ));
    };
    if group.templates.is_empty() {
        return Err(BackendError::invalid(
            "pods.templates",
            "at least one template is required",
        ));
    }
    let mut classes = Vec::with_capacity(group.templates.len());
    let mut names = Vec::new();
    for (i, t) in group.templates.iter().enumerate() {
        let count = t.count.max(1);
        let filter = if t.node_selector.is_empty() {
            group::NodeFilter::Any
        } else {
            group::NodeFilter::Only(
                cluster
                    .nodes_matching(&t.node_selector)
                    .iter()
                    .filter_map(|n| graph.node_id(n))
                    .collect(),
            )
        };
        let mut extended: Vec<(String, u64)> =
            t.extended.iter().map(|(k, v)| (k.clone(), *v)).collect();
        extended.sort();
        if t.cpu_millis == 0 && t.memory_bytes == 0 && t.gpus == 0 && extended.is_empty() {
            return Err(BackendError::invalid(
                format!("pods.templates[{i}]"),
                "asks for nothing (set cpu_millis, memory_bytes, gpus or extended)",
            ));
        }
        classes.push(group::PodClass {
            demand: group::Demand {
                cpu_millis: t.cpu_millis,
                memory_bytes: t.memory_bytes,
                gpus: u64::from(t.gpus),
                extended,
            },
            count,
            filter,
        });
        names.extend(std::iter::repeat_n(t.name.clone(), count as usize));
    }
    Ok((group::GroupRequest { classes }, names))
}

/// Answers a satisfiability `Match` on a copy of the live graph: whether the
/// pods fit the cluster at all, and where they would go now if they fit now.
fn what_if(
    req: &pb::MatchRequest,
    core: &gang::GangScheduler,
    cluster: &Cluster,
) -> BackendResult<pb::MatchResponse> {
    let mut graph = core.graph().clone();
    let (group, names) = group_request(req, &graph, cluster)?;
    let t0 = std::time::Instant::now();
    let outcome = graph.match_group(&group);
    let match_micros = t0.elapsed().as_micros() as u64;
    let mut resp = pb::MatchResponse {
        match_micros,
        ..Default::default()
    };
    match outcome {
        Ok(placement) => {
            resp.result = pb::MatchResult::Satisfiable as i32;
            resp.reason = "fits now".into();
            resp.pods = placement
                .iter()
                .zip(names)
                .enumerate()
                .map(|(i, (claim, template))| pb::PodPlacement {
                    index: i as u32,
                    template,
                    node: graph
                        .node(claim.node)
                        .map(|n| n.name.clone())
                        .unwrap_or_default(),
                    vertices: Vec::new(),
                })
                .collect();
        }
        Err(group::MatchError::Busy(why)) => {
            resp.result = pb::MatchResult::Satisfiable as i32;
            resp.reason = format!("fits the cluster, but not now: {why}");
        }
        Err(group::MatchError::Unsatisfiable(why)) => {
            resp.result = pb::MatchResult::Unsatisfiable as i32;
            resp.reason = why;
        }
    }
    Ok(resp)
}
