//! The matcher: finds resources for a jobspec in the graph, Fluxion style.
//!
//! A depth-first-and-up traversal. Walking down, a vertex either matches a
//! request of the current jobspec level (its children are then matched
//! against that request's `with`), hosts slots (its children are packed into
//! whole slots), or, while no request has matched yet on this path
//! ("pristine"), passes the same level on to its children, so a jobspec may
//! omit the top of the hierarchy. Walking up, each matched vertex chooses the
//! best `count` candidates of every child request by the policy's score.
//! Subtree aggregates (see [`crate::graph::PruneFilters`]) skip subtrees that
//! cannot hold even one unit of any request, and id-ordered policies stop
//! walking once the best candidates are known.

mod emit;
mod held_runs;
mod policy;
mod search;
mod walk;

pub use policy::{Policy, UnknownPolicy};

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::graph::{Claim, GraphError, RecordsAbove, ResourceGraph, VertexId};
use crate::jobspec::Jobspec;
use crate::planner::{JobId, Time};

/// Operation of a match request (resource-query's `match` sub-commands).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchOp {
    /// Allocate now or fail.
    Allocate,
    /// Allocate now; on failure also tell whether it could ever fit.
    AllocateWithSatisfiability,
    /// Allocate now, else reserve at the earliest time it fits.
    AllocateOrElseReserve,
    /// Only check whether it could fit on the empty graph; nothing is held.
    Satisfiability,
}

/// One vertex of a match result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Emit {
    /// The vertex.
    pub vertex: VertexId,
    /// Units taken (Fluxion's "needs"; the vertex size for pass-through ancestors).
    pub needs: u64,
    /// Whether it is held exclusively.
    pub exclusive: bool,
}

impl Emit {
    /// What holding this vertex takes from the graph: an exclusive entry
    /// consumes its units, a pass-through entry none.
    fn claim(&self) -> Claim {
        Claim {
            vertex: self.vertex,
            amount: if self.exclusive { self.needs } else { 0 },
            exclusive: self.exclusive,
        }
    }
}

/// A successful match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchOutcome {
    /// The job id.
    pub job: JobId,
    /// The operation that produced it.
    pub op: MatchOp,
    /// Start time (== `now` unless reserved).
    pub at: Time,
    /// Duration in seconds.
    pub duration: u64,
    /// Whether this is a reservation (future start).
    pub reserved: bool,
    /// The matched vertices in depth-first post-order (leaves before their
    /// parents); shared with the job's [`JobInfo`].
    pub emitted: Arc<[Emit]>,
    /// Vertices visited walking down (for `-e` statistics).
    pub preorder_visits: u64,
    /// Vertices finished walking up.
    pub postorder_visits: u64,
}

/// Why a match did not produce resources.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatchError {
    /// Fits on the empty graph, but not now (or, for reserve, never within the horizon).
    #[error("no matching resources found (busy)")]
    Busy,
    /// Can never fit, even on the empty graph.
    #[error("unsatisfiable request")]
    Unsatisfiable,
    /// The job id is in use.
    #[error("job {0} already exists")]
    JobExists(JobId),
    /// The jobspec names something the graph cannot have.
    #[error("{0}")]
    InvalidJobspec(String),
    /// Graph bookkeeping failed.
    #[error(transparent)]
    Graph(#[from] GraphError),
}

/// Errors of cancel and partial cancel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CancelError {
    /// No such job.
    #[error("nonexistent job {0}")]
    NoSuchJob(JobId),
    /// Partial cancel of a reservation.
    #[error("reservations not currently supported by partial cancel")]
    Reservation,
    /// Graph bookkeeping failed.
    #[error(transparent)]
    Graph(#[from] GraphError),
}

/// A job known to the matcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobInfo {
    /// The job id.
    pub job: JobId,
    /// Start time.
    pub at: Time,
    /// Duration in seconds.
    pub duration: u64,
    /// Reserved (future) rather than allocated.
    pub reserved: bool,
    /// The matched vertices in post-order.
    pub emitted: Arc<[Emit]>,
}

/// Graph-wide counters for `stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MatchStats {
    /// Live vertices.
    pub vertices: usize,
    /// Containment edges.
    pub edges: usize,
    /// Jobs allocated now.
    pub allocated: usize,
    /// Jobs reserved.
    pub reserved: usize,
    /// Successful matches so far.
    pub matches_ok: u64,
    /// Failed matches so far.
    pub matches_failed: u64,
}

/// The matcher: owns the graph and the jobs placed on it.
#[derive(Debug, Clone)]
pub struct Matcher {
    graph: ResourceGraph,
    policy: Policy,
    horizon: Time,
    jobs: BTreeMap<JobId, JobInfo>,
    stats: MatchStats,
    /// Per type: do ids grow in depth-first order? Keyed by graph
    /// generation and property epoch.
    order_cache: Option<((u64, u64), std::sync::Arc<search::Shape>)>,
    /// First-match walk order: free units below a vertex when a job last
    /// went through it (Fluxion's out-edge weights).
    weights: walk::Weights,
    /// The children of wide vertices, kept in that walk order.
    walk: walk::WalkOrder,
    /// What each job takes below each vertex as Fluxion counts it, which
    /// the weights are read from.
    planned_use: walk::PlannedUse,
    /// Whether `planned_use` is kept: from the first use of a stop-early
    /// policy on (so switching policies per request costs nothing).
    tracks_use: bool,
    /// Fluxion's flexible traverser: sibling slots are alternatives.
    or_slots: bool,
    /// Scratch set for ordering a match's vertices.
    marks: crate::marks::VertexMarks,
    /// Held children that id-ordered walks of wide vertices can pass.
    held_runs: held_runs::HeldRuns,
}

impl Matcher {
    /// A matcher over `graph` with `policy`. The horizon (end of time for
    /// jobs of duration 0) defaults to `i64::MAX / 4`.
    pub fn new(graph: ResourceGraph, policy: Policy) -> Self {
        // The shape cache (walk order facts) is built now, so the first
        // match does not pay for a full graph walk.
        let shape = std::sync::Arc::new(search::shape(&graph));
        let generation = (graph.generation(), graph.property_epoch());
        let mut walk = walk::WalkOrder::default();
        if policy.stops_early() {
            walk.refresh(&graph, &walk::Weights::default());
        }
        Matcher {
            graph,
            policy,
            horizon: i64::MAX / 4,
            jobs: BTreeMap::new(),
            stats: MatchStats::default(),
            order_cache: Some((generation, shape)),
            weights: walk::Weights::default(),
            walk,
            planned_use: walk::PlannedUse::default(),
            tracks_use: policy.stops_early(),
            or_slots: false,
            marks: crate::marks::VertexMarks::default(),
            held_runs: held_runs::HeldRuns::default(),
        }
    }
    /// The graph.
    pub fn graph(&self) -> &ResourceGraph {
        &self.graph
    }
    /// The graph, for edits (status, add/remove subtrees). Allocation state
    /// must be changed through the matcher so its job table stays in step.
    pub fn graph_mut(&mut self) -> &mut ResourceGraph {
        &mut self.graph
    }
    /// The policy.
    pub fn policy(&self) -> Policy {
        self.policy
    }
    /// Changes the policy.
    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
        if policy.stops_early() && !self.tracks_use {
            self.tracks_use = true;
            self.replant_use();
        }
    }
    /// Makes sibling slots of a request alternatives, of which a match
    /// deals out the mix that fits the most slots where they are hosted and
    /// takes the best ones (Fluxion's flexible traverser, resource-query's
    /// `-T flexible`); by default only the first of them is matched.
    pub fn set_or_slots(&mut self, on: bool) {
        self.or_slots = on;
    }
    /// Sets the end of time (jobs with duration 0 last until then).
    pub fn set_horizon(&mut self, horizon: Time) {
        self.horizon = horizon.max(1);
    }
    /// The end of time.
    pub fn horizon(&self) -> Time {
        self.horizon
    }

    /// Matches `spec` for `job` at `now` with `op`. On success the resources
    /// are held (except for [`MatchOp::Satisfiability`]).
    pub fn match_jobspec(
        &mut self,
        op: MatchOp,
        job: JobId,
        spec: &Jobspec,
        now: Time,
    ) -> Result<MatchOutcome, MatchError> {
        let r = match spec.xor_variants() {
            Ok(None) => self.match_inner(op, job, std::slice::from_ref(spec), now),
            Ok(Some(variants)) => self.match_inner(op, job, &variants, now),
            Err(e) => Err(MatchError::InvalidJobspec(e.to_string())),
        };
        match &r {
            Ok(_) => self.stats.matches_ok += 1,
            Err(_) => self.stats.matches_failed += 1,
        }
        r
    }

    fn duration_at(&self, spec: &Jobspec, at: Time) -> u64 {
        if spec.duration == 0 {
            (self.horizon - at).max(1) as u64
        } else {
            spec.duration
        }
    }

    /// Matches the first of `variants` (the plain jobspecs one with
    /// alternative slots stands for, see [`Jobspec::xor_variants`]; usually
    /// just one) that fits at the earliest time: every variant is tried now
    /// before any is reserved later.
    fn match_inner(
        &mut self,
        op: MatchOp,
        job: JobId,
        variants: &[Jobspec],
        now: Time,
    ) -> Result<MatchOutcome, MatchError> {
        if op != MatchOp::Satisfiability && self.jobs.contains_key(&job) {
            return Err(MatchError::JobExists(job));
        }
        let reqs = variants
            .iter()
            .map(|v| search::Request::build(&self.graph, v, self.or_slots))
            .collect::<Result<Vec<_>, _>>()
            .map_err(MatchError::InvalidJobspec)?;
        let ordered = self.shape();
        let mut visits = (0u64, 0u64);
        if op == MatchOp::Satisfiability {
            for (spec, reqs) in variants.iter().zip(&reqs) {
                let d = self.duration_at(spec, now);
                let found = self.search(reqs, now, d, search::Mode::Sat, &ordered);
                visits.0 += found.pre;
                visits.1 += found.post;
                if let Some(chosen) = found.chosen {
                    return Ok(MatchOutcome {
                        job,
                        op,
                        at: now,
                        duration: d,
                        reserved: false,
                        emitted: self.order(&ordered, chosen, &found.via).0.into(),
                        preorder_visits: visits.0,
                        postorder_visits: visits.1,
                    });
                }
            }
            return Err(MatchError::Unsatisfiable);
        }
        let mut times = vec![now];
        if op == MatchOp::AllocateOrElseReserve {
            let mut ends: Vec<Time> = self
                .jobs
                .values()
                .map(|j| j.at.saturating_add(j.duration as i64))
                .filter(|&t| t > now && t < self.horizon)
                .collect();
            ends.sort_unstable();
            ends.dedup();
            times.extend(ends);
        }
        // Variants that could never fit (checked once nothing fits now).
        let mut never = vec![false; variants.len()];
        for (i, &at) in times.iter().enumerate() {
            for (vi, (spec, reqs)) in variants.iter().zip(&reqs).enumerate() {
                if never[vi] {
                    continue;
                }
                let d = self.duration_at(spec, at);
                if at.saturating_add(d as i64) > self.horizon && i > 0 {
                    continue;
                }
                let found = self.search(reqs, at, d, search::Mode::Now, &ordered);
                visits.0 += found.pre;
                visits.1 += found.post;
                if let Some(chosen) = found.chosen {
                    let reserved = at > now;
                    let (emitted, shadow) = self.order(&ordered, chosen, &found.via);
                    let emitted: Arc<[Emit]> = emitted.into();
                    self.hold(job, at, d, reserved, Arc::clone(&emitted), &shadow)?;
                    self.plant_use(job, &emitted);
                    self.reweigh(now);
                    return Ok(MatchOutcome {
                        job,
                        op,
                        at,
                        duration: d,
                        reserved,
                        emitted,
                        preorder_visits: visits.0,
                        postorder_visits: visits.1,
                    });
                }
            }
            if i == 0 {
                // Stop searching when it can never fit.
                let mode = if op == MatchOp::AllocateOrElseReserve {
                    search::Mode::SatIgnoreDown
                } else {
                    search::Mode::Sat
                };
                for (vi, (spec, reqs)) in variants.iter().zip(&reqs).enumerate() {
                    let d0 = self.duration_at(spec, now);
                    never[vi] = self.search(reqs, now, d0, mode, &ordered).chosen.is_none();
                }
                if never.iter().all(|&n| n) {
                    return Err(MatchError::Unsatisfiable);
                }
            }
        }
        Err(MatchError::Busy)
    }

    /// Records `job`'s use for the first-match weights; `emitted` must be
    /// in post-order (see [`walk::PlannedUse::add`]).
    fn plant_use(&mut self, job: JobId, emitted: &[Emit]) {
        if self.tracks_use {
            let shape = self.shape();
            let whole = self.policy.node_exclusive().then_some(&*shape);
            let types = self.walk.types();
            self.planned_use
                .add(&self.graph, types, job, emitted, whole);
        }
    }

    /// Records `job`'s use from `emitted` in any order (an adopted job's
    /// may not be in post-order; a match's is).
    fn plant_use_sorted(&mut self, job: JobId, emitted: &[Emit]) {
        if !self.tracks_use {
            return;
        }
        let shape = self.shape();
        let post = |e: &Emit| shape.post.get(e.vertex.index()).copied();
        if emitted.is_sorted_by_key(post) {
            return self.plant_use(job, emitted);
        }
        let mut sorted = emitted.to_vec();
        sorted.sort_by_key(post);
        self.plant_use(job, &sorted);
    }

    /// Recounts every job's use (after the policy or the graph changed).
    fn replant_use(&mut self) {
        self.planned_use.clear();
        let jobs: Vec<(JobId, Arc<[Emit]>)> = self
            .jobs
            .values()
            .map(|j| (j.job, Arc::clone(&j.emitted)))
            .collect();
        for (job, emitted) in jobs {
            self.plant_use_sorted(job, &emitted);
        }
    }

    /// Records, after a match at `now`, the weight of each inner vertex it
    /// went through: the units of its weighed type (see
    /// [`walk::WeightTypes`]) that the jobs running at `now` leave free, as
    /// Fluxion counts them.
    fn reweigh(&mut self, now: Time) {
        if !self.policy.stops_early() {
            return;
        }
        let jobs = &self.jobs;
        let running = |j: JobId| {
            jobs.get(&j)
                .is_some_and(|i| i.at <= now && now < i.at.saturating_add(i.duration as i64))
        };
        for v in self.planned_use.last() {
            if v.total == 0 && !v.touched {
                // Fluxion keeps no weight for a plan nothing was counted in.
                continue;
            }
            let w = v
                .total
                .saturating_sub(self.planned_use.used(v.vertex, running));
            self.walk.reweigh(&self.graph, &self.weights, v.vertex, w);
            self.weights.insert(v.vertex, w);
        }
    }

    /// One search of the graph as it stands, with this matcher's policy and weights.
    fn search(
        &mut self,
        reqs: &[search::Request],
        at: Time,
        duration: u64,
        mode: search::Mode,
        shape: &search::Shape,
    ) -> search::Found {
        search::run(
            &self.graph,
            self.policy,
            reqs,
            at,
            duration,
            mode,
            shape,
            &self.weights,
            &self.walk,
            &mut self.held_runs,
        )
    }

    /// Orders a search's chosen claims into the printed vertices and the
    /// shadow claims (see [`emit::order`]).
    fn order(
        &mut self,
        shape: &search::Shape,
        chosen: Vec<Emit>,
        via: &[(VertexId, VertexId)],
    ) -> (Vec<Emit>, Vec<Emit>) {
        let cx = emit::EmitContext {
            graph: &self.graph,
            shape,
            via: via.iter().copied().collect(),
            whole_nodes: self.policy.node_exclusive(),
            node_kind: self.graph.type_id("node"),
        };
        emit::order(&cx, &mut self.marks, chosen)
    }

    fn shape(&mut self) -> std::sync::Arc<search::Shape> {
        if self.tracks_use {
            self.walk.refresh(&self.graph, &self.weights);
        }
        let generation = (self.graph.generation(), self.graph.property_epoch());
        if let Some((g, v)) = &self.order_cache
            && *g == generation
        {
            return v.clone();
        }
        let v = std::sync::Arc::new(search::shape(&self.graph));
        self.order_cache = Some((generation, v.clone()));
        v
    }

    /// Whether `spec` could ever fit on the graph (ignoring what is held and
    /// what is down).
    pub fn satisfiable(&self, spec: &Jobspec) -> Result<bool, MatchError> {
        let reqs = search::Request::build(&self.graph, spec, self.or_slots)
            .map_err(MatchError::InvalidJobspec)?;
        let d = self.duration_at(spec, 0);
        let found = search::run(
            &self.graph,
            self.policy,
            &reqs,
            0,
            d,
            search::Mode::Sat,
            &search::Shape::default(),
            &self.weights,
            &self.walk,
            // Satisfiability ignores what is held: nothing to remember.
            &mut held_runs::HeldRuns::default(),
        );
        Ok(found.chosen.is_some())
    }

    /// Records `job` holding exactly `emitted` during `[at, at + duration)`:
    /// an allocation decided elsewhere (by another scheduler, or before a
    /// restart) that the graph must now account for. `emitted` is in
    /// post-order like a match's; exclusive entries take their vertex whole,
    /// the others pass through it. Fails, changing nothing, when the job id
    /// is in use or an exclusive vertex is not free throughout the window.
    pub fn adopt(
        &mut self,
        job: JobId,
        at: Time,
        duration: u64,
        reserved: bool,
        emitted: Vec<Emit>,
    ) -> Result<(), MatchError> {
        self.adopt_passing(job, at, duration, reserved, emitted, &[])
    }

    /// Like [`Matcher::adopt`], except that the entries on `passing` are
    /// held as pass-through whatever `emitted` prints for them: Fluxion's
    /// rv1exec update prints a node exclusive yet takes it only when the R
    /// names every vertex of its rank, so other jobs can share the rest.
    pub fn adopt_passing(
        &mut self,
        job: JobId,
        at: Time,
        duration: u64,
        reserved: bool,
        emitted: Vec<Emit>,
        passing: &[VertexId],
    ) -> Result<(), MatchError> {
        if self.jobs.contains_key(&job) {
            return Err(MatchError::JobExists(job));
        }
        // A set: an R of many ranks makes both lists long.
        let passing: std::collections::HashSet<VertexId> = passing.iter().copied().collect();
        let end = at.saturating_add(duration as i64);
        // All or nothing, checked before anything is held: an exclusive
        // entry needs its vertex up and held by no one, a shared entry
        // needs it not held exclusively by another job. A refused update
        // leaves the graph as it was.
        let busy = emitted.iter().any(|e| {
            let usage = self.graph.usage(e.vertex, at, end);
            if e.exclusive && !passing.contains(&e.vertex) {
                usage.any_held || !self.graph.is_effectively_up(e.vertex)
            } else {
                usage.exclusive_held
            }
        });
        if busy {
            return Err(MatchError::Busy);
        }
        let claims = emitted
            .iter()
            .map(|e| match passing.contains(&e.vertex) {
                true => Claim {
                    vertex: e.vertex,
                    amount: 0,
                    exclusive: false,
                },
                false => e.claim(),
            })
            .collect();
        let emitted: Arc<[Emit]> = emitted.into();
        self.hold_claims(job, at, duration, reserved, Arc::clone(&emitted), claims)?;
        self.plant_use_sorted(job, &emitted);
        Ok(())
    }

    /// Holds `emitted` and the unprinted `shadow` claims for `job` during
    /// `[at, at + duration)` in the graph, and records the job.
    fn hold(
        &mut self,
        job: JobId,
        at: Time,
        duration: u64,
        reserved: bool,
        emitted: Arc<[Emit]>,
        shadow: &[Emit],
    ) -> Result<(), GraphError> {
        let claims = emitted.iter().chain(shadow).map(Emit::claim).collect();
        self.hold_claims(job, at, duration, reserved, emitted, claims)
    }

    /// Holds `claims` for `job` during `[at, at + duration)` and records the
    /// job as having matched `emitted`.
    fn hold_claims(
        &mut self,
        job: JobId,
        at: Time,
        duration: u64,
        reserved: bool,
        emitted: Arc<[Emit]>,
        claims: Vec<Claim>,
    ) -> Result<(), GraphError> {
        let end = at.saturating_add(duration as i64);
        self.graph.allocate(job, at, end, reserved, claims)?;
        self.jobs.insert(
            job,
            JobInfo {
                job,
                at,
                duration,
                reserved,
                emitted,
            },
        );
        Ok(())
    }

    /// Releases everything `job` holds.
    pub fn cancel(&mut self, job: JobId) -> Result<JobInfo, CancelError> {
        let info = self.jobs.remove(&job).ok_or(CancelError::NoSuchJob(job))?;
        self.graph.release(job)?;
        self.planned_use.remove(job);
        Ok(info)
    }

    /// Releases what `job` holds in the subtrees of `roots` (e.g. some of its
    /// nodes), and its records above them that lead to nothing held any
    /// more. Returns whether the job is now gone entirely.
    pub fn partial_cancel(&mut self, job: JobId, roots: &[VertexId]) -> Result<bool, CancelError> {
        self.partial_cancel_by(job, roots, RecordsAbove::Drain)
    }

    /// Like [`Matcher::partial_cancel`], with `rule` saying which of the
    /// job's records above `roots` go ([`RecordsAbove::ByAggregates`] is
    /// Fluxion's bookkeeping, which can leave a job holding no units).
    pub fn partial_cancel_by(
        &mut self,
        job: JobId,
        roots: &[VertexId],
        rule: RecordsAbove,
    ) -> Result<bool, CancelError> {
        let info = self.jobs.get(&job).ok_or(CancelError::NoSuchJob(job))?;
        if info.reserved {
            return Err(CancelError::Reservation);
        }
        let gone = self.graph.release_subtrees(job, roots, rule)?;
        self.planned_use.remove(job);
        if gone || self.graph.job(job).is_none() {
            self.jobs.remove(&job);
            return Ok(true);
        }
        let held: std::collections::HashSet<VertexId> = self
            .graph
            .job(job)
            .map(|h| h.claims.iter().map(|c| c.vertex).collect())
            .unwrap_or_default();
        if let Some(info) = self.jobs.get_mut(&job) {
            info.emitted = info
                .emitted
                .iter()
                .filter(|e| held.contains(&e.vertex))
                .copied()
                .collect();
            let emitted = Arc::clone(&info.emitted);
            self.plant_use_sorted(job, &emitted);
        }
        Ok(false)
    }

    /// Removes `v` and its subtree from the graph (a node leaves). Jobs lose
    /// their claims there; a job left with nothing is forgotten.
    pub fn remove_subtree(&mut self, v: VertexId) -> Result<usize, GraphError> {
        let n = self.graph.remove_subtree(v)?;
        let graph = &self.graph;
        self.jobs.retain(|j, _| graph.job(*j).is_some());
        for info in self.jobs.values_mut() {
            info.emitted = info
                .emitted
                .iter()
                .filter(|e| graph.contains(e.vertex))
                .copied()
                .collect();
        }
        self.replant_use();
        Ok(n)
    }

    /// The job, if known.
    pub fn info(&self, job: JobId) -> Option<&JobInfo> {
        self.jobs.get(&job)
    }
    /// All jobs in id order.
    pub fn jobs(&self) -> impl Iterator<Item = &JobInfo> + '_ {
        self.jobs.values()
    }
    /// Counters.
    pub fn stat(&self) -> MatchStats {
        let mut s = self.stats;
        s.vertices = self.graph.vertex_count();
        s.edges = self.graph.edge_count();
        s.allocated = self.jobs.values().filter(|j| !j.reserved).count();
        s.reserved = self.jobs.values().filter(|j| j.reserved).count();
        s
    }
    /// Vertices satisfying `pred`, in depth-first pre-order.
    pub fn find(&self, mut pred: impl FnMut(&ResourceGraph, VertexId) -> bool) -> Vec<VertexId> {
        let Some(root) = self.graph.root() else {
            return Vec::new();
        };
        self.graph
            .subtree(root)
            .into_iter()
            .filter(|&v| pred(&self.graph, v))
            .collect()
    }
}

#[cfg(test)]
mod tests;
