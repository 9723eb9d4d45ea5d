//! The state machine: [`GangScheduler::apply`] takes events,
//! [`GangScheduler::schedule`] returns decisions.
//!
//! A group's whole placement is matched in one call and its claims are taken
//! from the graph before any bind is asked for, so nothing else can land on
//! a reserved slot. When the queue head does not fit, its earliest start is
//! found by replaying the expected ends of running groups on a copy of the
//! graph; later groups may start only on resources that are free now and
//! still free for the head at that time (EASY backfill). With
//! `reserve_depth` above 1 the groups behind the head that do not fit get
//! reservations too, each planned with the ones ahead of it held, and the
//! view later groups must fit shrinks to protect them all (conservative
//! backfill over the first `reserve_depth` groups).
//!
//! A pass examines at most `max_groups_per_pass` groups. A walk of a longer
//! queue is split over passes: the pass that reaches the cap leaves a cursor
//! (the queue position to resume from, and whether the reservation head was
//! already met), and [`GangScheduler::next_wakeup`] then returns that pass's
//! own time, so the caller runs the next pass at once and no external event
//! is needed. The next pass resumes at the cursor, not at the head, so under
//! steady churn every waiting group is still examined within
//! `ceil(queue length / max_groups_per_pass)` passes. Changes that arrive
//! while a walk is split are picked up by a fresh walk from the head once
//! this one has reached the end of the queue.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use fluxion_core::group::{
    Demand, GroupGraph, GroupRequest, NodeFilter, NodeId, PodClaim, PodClass,
};

use crate::config::GangConfig;
use crate::convert;
use crate::decision::{
    BindPlan, Decisions, EventType, GroupChange, GroupPhase, PodBinding, PodEvent, WaitReason,
};
use crate::event::{BindOutcome, Event};
use crate::model::{DisruptionBudget, GroupKey, Node, NodeName, Pod, PodGroup, PodPhase, PodUid};
use crate::policy;
use crate::runtimes::{LearnedRuntimes, Shape};
use crate::time::{Millis, Timestamp};

mod elastic;
mod preempt;

/// Where one of our pods stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Bind {
    /// Not placed.
    Unplaced,
    /// Placed (claim taken); bind asked for and not yet confirmed.
    Binding { node: NodeName },
    /// Bind failed; ask again after `at` (set on the first pass that sees it).
    Retry {
        node: NodeName,
        at: Option<Timestamp>,
    },
    /// Bound to the node.
    Bound { node: NodeName },
}

#[derive(Debug, Clone)]
struct PodState {
    pod: Pod,
    ours: bool,
    bind: Bind,
    /// What the pod holds in the graph (ours once placed; others' once bound).
    claim: Option<PodClaim>,
    group: GroupKey,
    /// The kind of wait this pod was last told of in a pod event, if any.
    told: Option<WaitTopic>,
}

/// What a waiting pod is told of once: the kind of its group's wait, not
/// its details. A group's message changes with every pod that joins it and
/// every new estimate of its start; the pods hear of each new kind of wait
/// (and the PodGroup's status carries the details), so a gang of n pods
/// assembling costs n Events, not one per pod per change.
type WaitTopic = Option<std::mem::Discriminant<WaitReason>>;

/// A group's members as pod classes, and which pods make up each class.
type MemberRequest = (GroupRequest, Vec<Vec<PodUid>>);

/// Groups per walk whose overtaking is counted: the ones at the front of the
/// queue, which are next to be reserved for; bounds the walk's extra work.
const MAX_PASSED: usize = 16;

/// How long a group waits before it is reserved for: `k` times `typical`,
/// at most `cap` (the wall-clock `reserve_after`).
fn reserve_wait(cap: Millis, k: f64, typical: Millis) -> Millis {
    let scaled = typical.0 as f64 * k;
    // Float to integer saturates; NaN (not possible with k > 0) gives 0.
    Millis((scaled as i64).clamp(0, cap.0.max(0)))
}

/// A reserved slot whose pod vanished before it was bound.
#[derive(Debug, Clone)]
struct Vacant {
    demand: Demand,
    claim: PodClaim,
    node: NodeName,
    since: Option<Timestamp>,
}

#[derive(Debug, Clone)]
struct GroupState {
    spec: Option<PodGroup>,
    members: BTreeSet<PodUid>,
    placed_at: Option<Timestamp>,
    vacant: Vec<Vacant>,
    succeeded: u32,
    failed: u32,
    phase: GroupPhase,
    wait: Option<WaitReason>,
    message: String,
    reported: Option<(GroupPhase, String)>,
    /// `free_gen` and member count when it last failed to fit; not retried
    /// until either changes.
    tried_gen: Option<u64>,
    tried_members: usize,
    unsat_until: Option<Timestamp>,
    /// Whether it is known to fit the empty cluster (reset when nodes change).
    satisfiable: bool,
    /// Whether its pods name it (a label), so it must wait for its PodGroup;
    /// implicit groups of one pod do not.
    named: bool,
    /// Its members as a match request (reset when members or nodes change).
    request: Option<Arc<MemberRequest>>,
    /// What it holds, merged per node, for replaying its release when
    /// planning reservations (reset when any of its claims changes).
    held: Option<Arc<Vec<PodClaim>>>,
    first_seen: Timestamp,
    /// When it went back to the queue after being preempted whole: its
    /// next wait counts from then, not from its creation.
    requeued_at: Option<Timestamp>,
    /// The latest start promised at its first reservation, with
    /// `backfill_slack` (cleared when it goes back to the queue).
    promised: Option<Timestamp>,
    /// It last failed before it was old enough to be reserved for.
    deferred: bool,
    /// How many later, smaller groups started while it waited, not yet
    /// reserved for (see `reserve_after_overtakes`).
    overtaken: u32,
    /// `nodes_gen` its node-dependent caches (`request`, `satisfiable`,
    /// `unsat_until`, `tried_gen`) were last valid for.
    nodes_seen: u64,
}

impl GroupState {
    fn new(first_seen: Timestamp) -> Self {
        GroupState {
            spec: None,
            members: BTreeSet::new(),
            placed_at: None,
            vacant: Vec::new(),
            succeeded: 0,
            failed: 0,
            phase: GroupPhase::Pending,
            wait: None,
            message: String::new(),
            reported: None,
            tried_gen: None,
            tried_members: 0,
            unsat_until: None,
            satisfiable: false,
            named: false,
            request: None,
            held: None,
            first_seen,
            requeued_at: None,
            promised: None,
            deferred: false,
            overtaken: 0,
            nodes_seen: 0,
        }
    }
}

/// A reservation for a group behind the head (see `reserve_depth`).
#[derive(Debug, Clone)]
struct Behind {
    group: GroupKey,
    start: Timestamp,
    /// The running group whose expected end lets it start.
    after: Option<GroupKey>,
    /// What it will take at `start`.
    claims: Vec<PodClaim>,
}

/// The queue head's reservation and the graph later groups must fit in.
#[derive(Debug, Clone)]
struct Reservation {
    group: GroupKey,
    start: Timestamp,
    after: Option<GroupKey>,
    /// What the head will take at `start`.
    claims: Vec<PodClaim>,
    /// Reservations of the groups behind the head, in queue order; they
    /// stand and fall with the head's (planned again together).
    behind: Vec<Behind>,
    /// Free now and still free, at every reservation's start, for it and
    /// the reservations before it: a group placed here delays none.
    view: GroupGraph,
    /// `graph_gen` it was computed at.
    r#gen: u64,
    /// When it was computed.
    computed_at: Timestamp,
    /// `free_gen` once it was computed (see `policy::keep_reservation`).
    freed_at: u64,
}

/// A group's place in the queue: higher priority first, then older first,
/// then by key (so the order is total and a cursor can resume in it).
type QueueEntry = (Reverse<i32>, Timestamp, GroupKey);

/// Where a walk of the queue that reached the per-pass cap resumes.
#[derive(Debug, Clone)]
struct WalkCursor {
    /// The first group not examined yet; the next pass starts at it (or at
    /// whatever now sorts right after it, if it left the queue).
    from: QueueEntry,
    /// Whether the walk already met its head (the group resources are held
    /// for): later groups may only backfill.
    head_seen: bool,
    /// `free_gen` when the pass stopped: a change before the next pass means
    /// groups already walked past may fit now, so another walk follows.
    free_gen: u64,
    /// When the pass stopped: the continuation is due from then.
    at: Timestamp,
}

/// The empty member set, lent out for groups that have no pods yet.
static EMPTY: BTreeSet<PodUid> = BTreeSet::new();

/// minMember of a group whose PodGroup has not been seen.
const AWAITING_SPEC: u32 = u32::MAX;

/// How long a reservation is kept while the graph changes under it; it is
/// recomputed sooner when the head changes. A stale view only errs on the
/// safe side for releases, and backfill claims are re-checked on the real graph.
const RESERVATION_REFRESH: Millis = Millis(300_000);

/// The gang scheduler's state: the cluster as last told, the queue of
/// groups, reservations and allocations.
#[derive(Debug)]
pub struct GangScheduler {
    config: GangConfig,
    graph: GroupGraph,
    nodes: BTreeMap<NodeName, Node>,
    pods: HashMap<PodUid, PodState>,
    groups: BTreeMap<GroupKey, GroupState>,
    /// Bumped on every change of free resources or nodes.
    graph_gen: u64,
    /// Bumped when resources are freed or nodes change (not when taken):
    /// a group that did not fit is tried again only after this changes.
    free_gen: u64,
    reservation: Option<Reservation>,
    any_taints: bool,
    /// Nodes with hard taints (kept so `any_taints` costs nothing per node event).
    tainted: usize,
    /// Bumped when nodes change; groups drop their node-dependent caches
    /// when they are next looked at (not all at every node event: a
    /// restart lists thousands of nodes while thousands of groups exist).
    nodes_gen: u64,
    /// Pods bound to a node not known yet, by node: they take capacity
    /// when it appears (entries of pods gone since are skipped then).
    awaiting_node: HashMap<NodeName, Vec<PodUid>>,
    /// Groups whose status may have changed since the last pass.
    touched: BTreeSet<GroupKey>,
    /// Placed groups with new unplaced pods.
    late_new: BTreeSet<GroupKey>,
    /// Placed groups whose late pods did not fit at `late_gen`.
    late_blocked: BTreeSet<GroupKey>,
    late_gen: u64,
    /// Pods whose bind failed and waits for a retry.
    retry: BTreeSet<PodUid>,
    /// Groups holding vacant slots.
    vacancies: BTreeSet<GroupKey>,
    /// Groups waiting for their first placement, in queue order (rebuilt when
    /// None; shared so a pass does not copy it).
    queue_cache: Option<Arc<Vec<QueueEntry>>>,
    /// Where a walk split by the per-pass cap resumes; None when no walk is
    /// in progress.
    walk: Option<WalkCursor>,
    /// Whether the queue must be walked whole next pass (a group became
    /// complete, nodes or groups changed); a change of free resources is
    /// noticed through `graph_gen`.
    queue_dirty: bool,
    /// `graph_gen` at the end of the last whole walk.
    queue_gen: u64,
    /// Earliest end of an unsatisfiable group's backoff.
    next_unsat_retry: Option<Timestamp>,
    /// When the earliest waiting group becomes old enough to be reserved for.
    next_reserve_check: Option<Timestamp>,
    /// Incomplete groups whose member count changed (only their message changes).
    membership_changed: BTreeSet<GroupKey>,
    /// PodDisruptionBudgets by namespace and name (consulted when choosing
    /// preemption victims).
    budgets: BTreeMap<(String, String), DisruptionBudget>,
    /// Nominations, victims asked to go, and groups evicted whole.
    preempt: preempt::PreemptState,
    /// Run times of finished groups, for groups that do not say theirs.
    runtimes: LearnedRuntimes,
}

impl GangScheduler {
    /// An empty scheduler.
    pub fn new(config: GangConfig) -> Self {
        let mut graph = GroupGraph::new();
        graph.set_policy(config.policy);
        graph.set_best_fit(config.best_fit);
        GangScheduler {
            config,
            graph,
            nodes: BTreeMap::new(),
            pods: HashMap::new(),
            groups: BTreeMap::new(),
            graph_gen: 0,
            free_gen: 0,
            reservation: None,
            any_taints: false,
            tainted: 0,
            nodes_gen: 0,
            awaiting_node: HashMap::new(),
            touched: BTreeSet::new(),
            late_new: BTreeSet::new(),
            late_blocked: BTreeSet::new(),
            late_gen: 0,
            retry: BTreeSet::new(),
            vacancies: BTreeSet::new(),
            queue_cache: None,
            walk: None,
            queue_dirty: true,
            queue_gen: 0,
            next_unsat_retry: None,
            next_reserve_check: None,
            membership_changed: BTreeSet::new(),
            budgets: BTreeMap::new(),
            preempt: preempt::PreemptState::default(),
            runtimes: LearnedRuntimes::default(),
        }
    }

    /// The settings it runs with.
    pub fn config(&self) -> &GangConfig {
        &self.config
    }

    /// The resource graph with the free state as the scheduler sees it.
    pub fn graph(&self) -> &GroupGraph {
        &self.graph
    }

    /// The node a pod is placed on (bound or binding), if any.
    pub fn pod_node(&self, uid: &PodUid) -> Option<&str> {
        let st = self.pods.get(uid)?;
        match &st.bind {
            Bind::Unplaced => st.pod.node_name.as_deref(),
            Bind::Binding { node } | Bind::Retry { node, .. } | Bind::Bound { node } => Some(node),
        }
    }

    /// The claim a pod holds in the graph, if any.
    pub fn pod_claim(&self, uid: &PodUid) -> Option<&PodClaim> {
        self.pods.get(uid)?.claim.as_ref()
    }

    /// The group whose reservation later groups may not delay, and its estimated start.
    pub fn reservation(&self) -> Option<(&GroupKey, Timestamp)> {
        self.reservation.as_ref().map(|r| (&r.group, r.start))
    }

    fn bump(&mut self) {
        self.graph_gen += 1;
    }

    /// Resources were freed (or nodes changed): groups that did not fit may now.
    fn freed(&mut self) {
        self.graph_gen += 1;
        self.free_gen += 1;
    }

    fn group_key_of(pod: &Pod) -> GroupKey {
        pod.group
            .clone()
            .unwrap_or_else(|| GroupKey::new(pod.namespace.clone(), format!("pod/{}", pod.name)))
    }

    /// Takes one change in the cluster or one bind outcome.
    pub fn apply(&mut self, event: Event) {
        if matches!(
            event,
            Event::GroupUpsert(_)
                | Event::GroupDelete(_)
                | Event::NodeUpsert(_)
                | Event::NodeDelete(_)
        ) {
            self.queue_cache = None;
            self.queue_dirty = true;
        }
        match event {
            Event::NodeUpsert(node) => self.upsert_node(node),
            Event::NodeDelete(name) => self.delete_node(&name),
            Event::PodUpsert(pod) => self.upsert_pod(pod),
            Event::PodDelete(uid) => self.delete_pod(&uid),
            Event::GroupUpsert(group) => {
                let key = group.key.clone();
                let first = group.created;
                let st = self
                    .groups
                    .entry(key.clone())
                    .or_insert_with(|| GroupState::new(first));
                st.spec = Some(group);
                st.tried_gen = None;
                st.satisfiable = false;
                self.touched.insert(key);
            }
            Event::GroupDelete(key) => {
                if let Some(st) = self.groups.get_mut(&key) {
                    st.spec = None;
                    st.tried_gen = None;
                    self.touched.insert(key.clone());
                }
                self.forget_group_if_empty(&key);
            }
            Event::BindResult { pod, node, outcome } => self.bind_result(&pod, node, outcome),
            Event::BudgetUpsert(b) => {
                self.budgets
                    .insert((b.namespace.clone(), b.name.clone()), b);
            }
            Event::BudgetDelete { namespace, name } => {
                self.budgets.remove(&(namespace, name));
            }
        }
    }

    fn upsert_node(&mut self, node: Node) {
        let name = node.name.clone();
        let was_tainted = self.nodes.get(&name).map(convert::has_hard_taints);
        let is_new = was_tainted.is_none();
        self.graph.upsert_node(convert::node_spec(&node));
        if was_tainted == Some(true) {
            self.tainted = self.tainted.saturating_sub(1);
        }
        if convert::has_hard_taints(&node) {
            self.tainted += 1;
        }
        self.any_taints = self.tainted > 0;
        self.nodes.insert(name.clone(), node);
        if is_new {
            // Pods bound before the node was known take their capacity now.
            for uid in self.awaiting_node.remove(&name).unwrap_or_default() {
                let waiting = self.pods.get(&uid).is_some_and(|p| {
                    p.claim.is_none() && p.pod.node_name.as_deref() == Some(name.as_str())
                });
                if waiting {
                    self.account_bound(&uid);
                }
            }
        }
        self.nodes_changed();
    }

    /// Groups' node-dependent caches are stale from now (see `nodes_gen`).
    fn nodes_changed(&mut self) {
        self.nodes_gen += 1;
        self.freed();
    }

    /// Drops a group's node-dependent caches if nodes changed since they were made.
    fn refresh_for_nodes(&mut self, key: &GroupKey) {
        let nodes_gen = self.nodes_gen;
        if let Some(g) = self.groups.get_mut(key)
            && g.nodes_seen != nodes_gen
        {
            g.nodes_seen = nodes_gen;
            g.tried_gen = None;
            g.unsat_until = None;
            g.satisfiable = false;
            g.request = None;
        }
    }

    fn delete_node(&mut self, name: &str) {
        self.release_holds_on(name);
        for g in self.groups.values_mut() {
            g.held = None;
        }
        if self
            .nodes
            .remove(name)
            .is_some_and(|n| convert::has_hard_taints(&n))
        {
            self.tainted = self.tainted.saturating_sub(1);
        }
        self.any_taints = self.tainted > 0;
        self.graph.remove_node(name);
        // Claims on the node are gone with it; unbound pods placed there are
        // placed again.
        for st in self.pods.values_mut() {
            let on_node = match &st.bind {
                Bind::Binding { node } | Bind::Retry { node, .. } => node == name,
                Bind::Bound { node } => node == name,
                Bind::Unplaced => st.pod.node_name.as_deref() == Some(name),
            };
            if on_node {
                st.claim = None;
                if matches!(st.bind, Bind::Binding { .. } | Bind::Retry { .. }) {
                    st.bind = Bind::Unplaced;
                    self.late_new.insert(st.group.clone());
                }
                // Bound there: it takes capacity again if the node comes back.
                if st.pod.node_name.as_deref() == Some(name) {
                    self.awaiting_node
                        .entry(name.to_owned())
                        .or_default()
                        .push(st.pod.uid.clone());
                }
            }
        }
        for g in self.groups.values_mut() {
            g.vacant.retain(|v| v.node != name);
        }
        self.nodes_changed();
    }

    fn upsert_pod(&mut self, pod: Pod) {
        let uid = pod.uid.clone();
        let ours = pod.scheduler_name == self.config.scheduler_name;
        let group = Self::group_key_of(&pod);
        let named = pod.group.is_some();
        if let Some(st) = self.pods.get_mut(&uid) {
            let was_terminal = st.pod.phase.is_terminal();
            let node_changed = st.pod.node_name != pod.node_name;
            st.pod = pod;
            if st.pod.phase.is_terminal() && !was_terminal {
                self.end_pod(&uid);
                return;
            }
            if node_changed
                && let Some(node) = self.pods.get(&uid).and_then(|s| s.pod.node_name.clone())
            {
                self.confirm_bound(&uid, node);
            }
            if let Some(st) = self.pods.get(&uid) {
                self.touched.insert(st.group.clone());
            }
            return;
        }
        if pod.phase.is_terminal() {
            return;
        }
        let created = pod.created;
        let bound = pod.node_name.is_some();
        self.pods.insert(
            uid.clone(),
            PodState {
                pod,
                ours,
                bind: Bind::Unplaced,
                claim: None,
                group: group.clone(),
                told: None,
            },
        );
        if bound {
            self.account_bound(&uid);
        }
        if ours {
            let g = self
                .groups
                .entry(group.clone())
                .or_insert_with(|| GroupState::new(created));
            g.members.insert(uid.clone());
            g.request = None;
            g.satisfiable = false;
            g.named |= named;
            if g.members.len() == 1 || g.spec.is_none() {
                // New in the queue, or its derived priority may have changed.
                self.queue_cache = None;
            }
            if g.placed_at.is_none() {
                if g.members.len() as u32 >= Self::min_member(g) {
                    self.queue_dirty = true;
                } else {
                    self.membership_changed.insert(group.clone());
                }
            }
            if bound && g.placed_at.is_none() {
                // Bound by us before a restart: the group is running already.
                g.placed_at = Some(created);
            } else if !bound && g.placed_at.is_some() {
                self.late_new.insert(group.clone());
            }
            g.tried_gen = None;
            self.touched.insert(group);
        }
    }

    /// A pod already on a node takes its capacity there.
    fn account_bound(&mut self, uid: &PodUid) {
        let Some(st) = self.pods.get_mut(uid) else {
            return;
        };
        let Some(node) = st.pod.node_name.clone() else {
            return;
        };
        st.bind = Bind::Bound { node: node.clone() };
        if st.claim.is_some() {
            return;
        }
        let Some(id) = self.graph.node_id(&node) else {
            self.awaiting_node
                .entry(node)
                .or_default()
                .push(uid.clone());
            return;
        };
        let demand = convert::demand(&st.pod);
        if let Some(claim) = self.graph.claim_for_bound(id, &demand) {
            self.graph.take(&claim);
            if let Some(st) = self.pods.get_mut(uid) {
                st.claim = Some(claim);
            }
            self.held_changed_of(uid);
            self.bump();
        }
    }

    /// The API server says the pod is on `node`: fix our claim if we placed it elsewhere.
    fn confirm_bound(&mut self, uid: &PodUid, node: NodeName) {
        let Some(st) = self.pods.get_mut(uid) else {
            return;
        };
        let ours_on_same = match &st.bind {
            Bind::Binding { node: n } | Bind::Retry { node: n, .. } | Bind::Bound { node: n } => {
                *n == node
            }
            Bind::Unplaced => false,
        };
        if ours_on_same {
            st.bind = Bind::Bound { node };
            return;
        }
        let group = st.group.clone();
        if let Some(g) = self.groups.get_mut(&group) {
            g.held = None;
        }
        let Some(st) = self.pods.get_mut(uid) else {
            return;
        };
        if let Some(claim) = st.claim.take() {
            self.graph.give(&claim);
            self.freed();
        }
        if let Some(st) = self.pods.get_mut(uid) {
            st.pod.node_name = Some(node);
        }
        self.account_bound(uid);
    }

    /// A pod ended (Succeeded/Failed): free what it holds.
    fn held_changed_of(&mut self, uid: &PodUid) {
        if let Some(st) = self.pods.get(uid)
            && let Some(g) = self.groups.get_mut(&st.group)
        {
            g.held = None;
        }
    }

    fn end_pod(&mut self, uid: &PodUid) {
        self.held_changed_of(uid);
        let Some(st) = self.pods.remove(uid) else {
            return;
        };
        if let Some(claim) = &st.claim {
            self.graph.give(claim);
            self.freed();
        }
        if st.ours
            && let Some(g) = self.groups.get_mut(&st.group)
        {
            g.members.remove(uid);
            g.request = None;
            self.queue_dirty = true;
            match st.pod.phase {
                PodPhase::Failed => g.failed += 1,
                _ => g.succeeded += 1,
            }
            self.touched.insert(st.group.clone());
        }
    }

    fn delete_pod(&mut self, uid: &PodUid) {
        let Some(st) = self.pods.get(uid) else {
            return;
        };
        let group = st.group.clone();
        let placed = st.claim.is_some();
        if st.ours && matches!(st.bind, Bind::Binding { .. } | Bind::Retry { .. }) {
            self.vacate(uid);
            return;
        }
        if placed {
            // Deleted while holding resources counts as ended.
            if let Some(st) = self.pods.get_mut(uid)
                && !st.pod.phase.is_terminal()
            {
                st.pod.phase = PodPhase::Succeeded;
            }
            self.end_pod(uid);
        } else if let Some(st) = self.pods.remove(uid)
            && let Some(g) = self.groups.get_mut(&st.group)
        {
            g.members.remove(uid);
            g.request = None;
            self.queue_dirty = true;
            self.touched.insert(group.clone());
        }
        self.forget_group_if_empty(&group);
    }

    /// A pod vanished before its bind: keep its slot for a replacement.
    fn vacate(&mut self, uid: &PodUid) {
        let Some(st) = self.pods.remove(uid) else {
            return;
        };
        let node = match &st.bind {
            Bind::Binding { node } | Bind::Retry { node, .. } | Bind::Bound { node } => {
                node.clone()
            }
            Bind::Unplaced => String::new(),
        };
        // A preemption victim's slot is not kept for a replacement.
        let victim = self.preempt.asked.remove(uid).is_some();
        if let Some(g) = self.groups.get_mut(&st.group) {
            g.members.remove(uid);
            g.request = None;
            self.queue_dirty = true;
            if let (true, Some(claim)) = (victim, &st.claim) {
                g.held = None;
                self.graph.give(claim);
                self.graph_gen += 1;
                self.free_gen += 1;
            } else if let Some(claim) = st.claim {
                g.vacant.push(Vacant {
                    demand: convert::demand(&st.pod),
                    claim,
                    node,
                    since: None,
                });
                self.vacancies.insert(st.group.clone());
            }
            self.touched.insert(st.group.clone());
        } else if let Some(claim) = st.claim {
            self.graph.give(&claim);
            self.freed();
        }
    }

    fn forget_group_if_empty(&mut self, key: &GroupKey) {
        let empty = self
            .groups
            .get(key)
            .is_some_and(|g| g.spec.is_none() && g.members.is_empty() && g.vacant.is_empty());
        if empty {
            self.groups.remove(key);
            self.touched.remove(key);
        }
    }

    fn bind_result(&mut self, uid: &PodUid, node: NodeName, outcome: BindOutcome) {
        match outcome {
            BindOutcome::Bound => {
                if let Some(st) = self.pods.get_mut(uid) {
                    st.pod.node_name = Some(node.clone());
                    st.bind = Bind::Bound { node };
                    self.touched.insert(st.group.clone());
                }
            }
            BindOutcome::Conflict { bound_to } => {
                let target = bound_to.unwrap_or(node);
                self.confirm_bound(uid, target);
                if let Some(st) = self.pods.get(uid) {
                    self.touched.insert(st.group.clone());
                }
            }
            BindOutcome::PodGone => self.vacate(uid),
            BindOutcome::Failed { .. } => {
                if let Some(st) = self.pods.get_mut(uid)
                    && matches!(st.bind, Bind::Binding { .. })
                {
                    st.bind = Bind::Retry { node, at: None };
                    self.touched.insert(st.group.clone());
                    self.retry.insert(uid.clone());
                }
            }
        }
    }

    fn timeout_of(&self, g: &GroupState) -> Millis {
        g.spec
            .as_ref()
            .and_then(|s| s.schedule_timeout)
            .unwrap_or(self.config.default_schedule_timeout)
    }

    /// minMember; a group its pods name but whose PodGroup is not known yet
    /// waits for it ([`AWAITING_SPEC`]), so a gang never starts as pods of one.
    fn min_member(g: &GroupState) -> u32 {
        match &g.spec {
            // A minimum of u32::MAX can never be met anyway; kept below the
            // sentinel so the group is not reported as missing.
            Some(s) => s.min_member.clamp(1, AWAITING_SPEC - 1),
            None if g.named => AWAITING_SPEC,
            None => 1,
        }
    }

    fn waiting_message(key: &GroupKey, have: u32, want: u32) -> String {
        if want == AWAITING_SPEC {
            format!("{have} pods name pod group {key}, which does not exist yet")
        } else {
            format!("{have} of {want} pods exist, waiting for {}", want - have)
        }
    }

    fn priority(&self, g: &GroupState) -> i32 {
        match &g.spec {
            Some(s) => s.priority,
            None => g
                .members
                .iter()
                .filter_map(|u| self.pods.get(u))
                .map(|p| p.pod.priority)
                .max()
                .unwrap_or(0),
        }
    }

    fn created(g: &GroupState) -> Timestamp {
        g.spec.as_ref().map_or(g.first_seen, |s| s.created)
    }

    fn duration(&self, g: &GroupState) -> Millis {
        g.spec
            .as_ref()
            .and_then(|s| s.expected_duration)
            .or_else(|| {
                g.members
                    .iter()
                    .filter_map(|u| self.pods.get(u))
                    .filter_map(|p| p.pod.expected_duration)
                    .max()
            })
            .or_else(|| self.runtimes.estimate(&self.shape(g)?))
            .unwrap_or(self.config.default_duration)
    }

    /// What makes groups alike for learning run times: see [`Shape`].
    fn shape(&self, g: &GroupState) -> Option<Shape> {
        let first = self.pods.get(g.members.iter().next()?)?;
        Some(Shape::of(
            &first.group,
            g.members.len() as u32,
            &first.pod.requests,
        ))
    }

    /// The group's unplaced pods, as a request of pod classes (pods with the
    /// same requests and constraints share a class).
    fn request_for(&self, uids: &[PodUid]) -> (GroupRequest, Vec<Vec<PodUid>>) {
        let mut req = GroupRequest::default();
        let mut members: Vec<Vec<PodUid>> = Vec::new();
        let mut reps: Vec<&Pod> = Vec::new();
        for uid in uids {
            let Some(st) = self.pods.get(uid) else {
                continue;
            };
            let pod = &st.pod;
            let found = reps.iter().position(|r| {
                r.requests == pod.requests
                    && r.node_selector == pod.node_selector
                    && r.required_affinity == pod.required_affinity
                    && (!self.any_taints || r.tolerations == pod.tolerations)
            });
            match found {
                Some(i) => {
                    req.classes[i].count += 1;
                    members[i].push(uid.clone());
                }
                None => {
                    reps.push(pod);
                    req.classes.push(PodClass {
                        demand: convert::demand(pod),
                        count: 1,
                        filter: convert::filter(
                            pod,
                            self.nodes.values(),
                            &self.graph,
                            self.any_taints,
                        ),
                    });
                    members.push(vec![uid.clone()]);
                }
            }
        }
        (req, members)
    }

    /// Runs one scheduling pass at `now`.
    pub fn schedule(&mut self, now: Timestamp) -> Decisions {
        let mut out = Decisions::default();
        self.expire_vacancies(now);
        self.retry_binds(now, &mut out);
        self.place_late_members(now, &mut out);
        self.tend_preemptions(now, &mut out);
        self.run_queue(now, &mut out);
        if !self.late_new.is_empty() {
            // Elastic groups placed at their minimum this pass take more now.
            self.place_late_members(now, &mut out);
        }
        self.report(&mut out);
        for c in &out.group_changes {
            if matches!(c.phase, GroupPhase::Finished | GroupPhase::Failed) {
                let ok = c.phase == GroupPhase::Finished;
                if self.runtimes.finished(&c.group, now, ok) && self.config.order_runtimes > 0.0 {
                    // Waiting groups of that shape are ordered by the new estimate.
                    self.queue_cache = None;
                }
            }
        }
        out
    }

    fn expire_vacancies(&mut self, now: Timestamp) {
        let keys: Vec<GroupKey> = self.vacancies.iter().cloned().collect();
        for key in keys {
            if self.groups.get(&key).is_none_or(|g| g.vacant.is_empty()) {
                self.vacancies.remove(&key);
                continue;
            }
            let timeout = match self.groups.get(&key) {
                Some(g) => self.timeout_of(g),
                None => continue,
            };
            let mut freed = Vec::new();
            if let Some(g) = self.groups.get_mut(&key) {
                for v in &mut g.vacant {
                    v.since.get_or_insert(now);
                }
                let (expired, kept): (Vec<Vacant>, Vec<Vacant>) = g
                    .vacant
                    .drain(..)
                    .partition(|v| v.since.is_some_and(|s| now.since(s) >= timeout));
                g.vacant = kept;
                freed = expired;
            }
            if !freed.is_empty() {
                if let Some(g) = self.groups.get_mut(&key) {
                    g.held = None;
                }
                for v in &freed {
                    self.graph.give(&v.claim);
                }
                self.freed();
                self.touched.insert(key.clone());
                self.forget_group_if_empty(&key);
            }
        }
    }

    fn retry_binds(&mut self, now: Timestamp, out: &mut Decisions) {
        let backoff = self.config.bind_retry_backoff;
        let mut plans: BTreeMap<GroupKey, Vec<PodBinding>> = BTreeMap::new();
        let uids: Vec<PodUid> = self.retry.iter().cloned().collect();
        for uid in uids {
            let Some(st) = self.pods.get_mut(&uid) else {
                self.retry.remove(&uid);
                continue;
            };
            if let Bind::Retry { node, at } = &mut st.bind {
                let due = *at.get_or_insert(now + backoff);
                if due <= now {
                    self.retry.remove(&uid);
                    let node = node.clone();
                    plans.entry(st.group.clone()).or_default().push(PodBinding {
                        pod: uid.clone(),
                        namespace: st.pod.namespace.clone(),
                        name: st.pod.name.clone(),
                        node: node.clone(),
                    });
                    st.bind = Bind::Binding { node };
                }
            } else {
                self.retry.remove(&uid);
            }
        }
        for (group, mut pods) in plans {
            pods.sort_by(|a, b| a.name.cmp(&b.name));
            out.binds.push(BindPlan {
                group,
                pods,
                waited: None,
            });
        }
    }

    /// Pods of groups already placed: replacements take a vacant slot;
    /// members above minMember are placed as they come.
    fn place_late_members(&mut self, now: Timestamp, out: &mut Decisions) {
        let mut keys = std::mem::take(&mut self.late_new);
        if self.late_gen != self.free_gen {
            keys.append(&mut self.late_blocked);
        }
        for key in keys {
            let Some(g) = self.groups.get(&key) else {
                continue;
            };
            if g.placed_at.is_none() || self.preempt.evicted.contains(&key) {
                continue;
            }
            let uids: Vec<PodUid> = g
                .members
                .iter()
                .filter(|u| {
                    self.pods
                        .get(*u)
                        .is_some_and(|p| p.bind == Bind::Unplaced && p.claim.is_none())
                })
                .cloned()
                .collect();
            let mut binds = Vec::new();
            for uid in uids {
                // A vacant slot of the same shape on a node the pod may use.
                let Some(pod) = self.pods.get(&uid).map(|s| s.pod.clone()) else {
                    continue;
                };
                let demand = convert::demand(&pod);
                let slot = self.groups.get(&key).and_then(|g| {
                    g.vacant.iter().position(|v| {
                        v.demand == demand
                            && self.nodes.get(&v.node).is_some_and(|n| pod.may_run_on(n))
                    })
                });
                let claim_node = match slot {
                    Some(i) => self
                        .groups
                        .get_mut(&key)
                        .map(|g| g.vacant.remove(i))
                        .map(|v| (v.claim, v.node)),
                    None => self.place_extra(&key, &uid),
                };
                if let Some((claim, node)) = claim_node
                    && let Some(st) = self.pods.get_mut(&uid)
                {
                    st.claim = Some(claim);
                    st.bind = Bind::Binding { node: node.clone() };
                    if let Some(g) = self.groups.get_mut(&key) {
                        g.held = None;
                    }
                    binds.push(PodBinding {
                        pod: uid.clone(),
                        namespace: pod.namespace.clone(),
                        name: pod.name.clone(),
                        node,
                    });
                }
            }
            let all_placed = self.groups.get(&key).is_none_or(|g| {
                g.members.iter().all(|u| {
                    self.pods
                        .get(u)
                        .is_none_or(|p| p.claim.is_some() || p.bind != Bind::Unplaced)
                })
            });
            if !all_placed {
                self.late_blocked.insert(key.clone());
            }
            if !binds.is_empty() {
                self.touched.insert(key.clone());
                if self.config.pod_events {
                    for b in &binds {
                        out.pod_events.push(PodEvent {
                            pod: b.pod.clone(),
                            namespace: b.namespace.clone(),
                            name: b.name.clone(),
                            kind: EventType::Normal,
                            reason: "Scheduled".to_owned(),
                            message: format!(
                                "late member of group {key} placed on {} at {}",
                                b.node,
                                now.short()
                            ),
                            unschedulable: false,
                        });
                    }
                }
                out.binds.push(BindPlan {
                    group: key,
                    pods: binds,
                    waited: None,
                });
            }
        }
        self.late_gen = self.free_gen;
    }

    /// How long the cluster would take to run the waiting groups one after
    /// another at full use: each group's expected run time times its share
    /// of the cluster's CPUs (or GPUs, where it asks for more of those).
    fn queue_drain_time(&self) -> Millis {
        let (cpu, gpu) = self.nodes.values().fold((0u128, 0u128), |(c, g), n| {
            (
                c + u128::from(n.allocatable.cpu_millis),
                g + u128::from(n.allocatable.gpus),
            )
        });
        let mut total = 0f64;
        for g in self.groups.values().filter(|g| g.placed_at.is_none()) {
            let (mut gc, mut gg) = (0u128, 0u128);
            for st in g.members.iter().filter_map(|u| self.pods.get(u)) {
                gc += u128::from(st.pod.requests.cpu_millis);
                gg += u128::from(st.pod.requests.gpus);
            }
            let share = |used: u128, all: u128| {
                if all == 0 {
                    0.0
                } else {
                    used as f64 / all as f64
                }
            };
            total += self.duration(g).0.max(0) as f64 * share(gc, cpu).max(share(gg, gpu));
        }
        Millis(total.min(i64::MAX as f64) as i64)
    }

    /// Groups waiting for their first placement, in queue order (cached
    /// until a pod or group event changes membership).
    fn queue(&mut self) -> Arc<Vec<QueueEntry>> {
        if let Some(q) = &self.queue_cache {
            return Arc::clone(q);
        }
        let drain = (self.config.order_cap_drains > 0.0).then(|| self.queue_drain_time());
        let mut q: Vec<QueueEntry> = self
            .groups
            .iter()
            .filter(|(_, g)| g.placed_at.is_none() && !g.members.is_empty())
            .map(|(k, g)| {
                let at = Self::created(g);
                let d =
                    policy::capped_duration(self.duration(g), drain, self.config.order_cap_drains);
                let at = policy::queue_time(at, d, self.config.order_runtimes);
                (Reverse(self.priority(g)), at, k.clone())
            })
            .collect();
        q.sort();
        let q = Arc::new(q);
        self.queue_cache = Some(Arc::clone(&q));
        q
    }

    /// Incomplete groups that gained or lost pods: only their message changes.
    fn update_waiting_messages(&mut self) {
        for key in std::mem::take(&mut self.membership_changed) {
            let Some(g) = self.groups.get(&key) else {
                continue;
            };
            let (have, want) = (g.members.len() as u32, Self::min_member(g));
            if g.placed_at.is_none() && have < want {
                self.set_wait(
                    &key,
                    WaitReason::WaitingForPods { have, want },
                    Self::waiting_message(&key, have, want),
                );
            }
        }
    }

    fn run_queue(&mut self, now: Timestamp, out: &mut Decisions) {
        let resume = self.walk.take();
        match &resume {
            Some(cursor) => {
                // Resources freed since the last part: groups already walked
                // past may fit now, so walk again once this walk ends.
                if cursor.free_gen != self.free_gen {
                    self.queue_dirty = true;
                }
                self.update_waiting_messages();
            }
            None => {
                let whole = self.queue_dirty
                    || self.queue_gen != self.free_gen
                    || self.next_unsat_retry.is_some_and(|t| t <= now)
                    || self.next_reserve_check.is_some_and(|t| t <= now);
                if !whole {
                    self.update_waiting_messages();
                    return;
                }
                self.membership_changed.clear();
                self.queue_dirty = false;
                self.next_unsat_retry = None;
                self.next_reserve_check = None;
            }
        }
        if self.walk_queue(now, resume, out) {
            self.queue_gen = self.free_gen;
        }
    }

    /// Walks the queue from the head, or from where a capped pass stopped;
    /// returns whether it reached the end (false: a cursor is left).
    fn walk_queue(
        &mut self,
        now: Timestamp,
        resume: Option<WalkCursor>,
        out: &mut Decisions,
    ) -> bool {
        let queue = self.queue();
        let (start, mut head_seen) = match &resume {
            // At the cursor's group where it is still queued (its sort key
            // may have moved with a new run-time estimate or drain time),
            // else where it would sort now.
            Some(c) => (
                queue
                    .iter()
                    .position(|e| e.2 == c.from.2)
                    .unwrap_or_else(|| queue.partition_point(|e| *e < c.from)),
                c.head_seen,
            ),
            None => (0, false),
        };
        let cap = self.config.max_groups_per_pass.max(1);
        let mut examined = 0;
        // Computed once per walk, when first needed.
        let mut typical_runtime: Option<Option<Millis>> = None;
        // Groups ahead of any head that did not fit this walk, and their sizes:
        // a smaller group starting after them overtakes them.
        let mut passed: Vec<(GroupKey, usize)> = Vec::new();
        // A group ahead whose pods are still being created holds back the
        // groups behind it (see `assembly_grace`).
        let mut assembling = false;
        for entry in queue.iter().skip(start) {
            let key = entry.2.clone();
            self.refresh_for_nodes(&key);
            let Some(g) = self.groups.get(&key) else {
                continue;
            };
            if g.placed_at.is_some() || g.members.is_empty() {
                continue;
            }
            if let Some(t) = g.unsat_until.filter(|t| *t > now) {
                self.next_unsat_retry = Some(self.next_unsat_retry.map_or(t, |n| n.min(t)));
                continue;
            }
            let have = g.members.len() as u32;
            let want = Self::min_member(g);
            if have < want {
                // One group still being created is enough to hold back the rest.
                let newest = (!assembling && self.config.assembly_grace.0 > 0)
                    .then(|| {
                        g.members
                            .iter()
                            .filter_map(|u| self.pods.get(u))
                            .map(|p| p.pod.created)
                            .max()
                    })
                    .flatten();
                if let Some(until) =
                    policy::assembling_until(newest, now, self.config.assembly_grace)
                {
                    assembling = true;
                    self.next_reserve_check =
                        Some(self.next_reserve_check.map_or(until, |t| t.min(until)));
                }
                let same = g.wait == Some(WaitReason::WaitingForPods { have, want });
                if !same {
                    self.set_wait(
                        &key,
                        WaitReason::WaitingForPods { have, want },
                        Self::waiting_message(&key, have, want),
                    );
                }
                continue;
            }
            if assembling {
                continue;
            }
            if examined >= cap {
                // This pass has done its share: the next resumes here.
                self.walk = Some(WalkCursor {
                    from: entry.clone(),
                    head_seen,
                    free_gen: self.free_gen,
                    at: now,
                });
                return false;
            }
            examined += 1;
            // A group becomes the head, which resources are held for, only
            // once it has waited long enough (`reserve_wait`) or been
            // passed often enough by smaller groups.
            let overtaken = g.overtaken;
            let wait = match self.config.reserve_after_runtimes {
                k if k > 0.0 => {
                    let own = self.duration(g);
                    let typical = *typical_runtime.get_or_insert_with(|| self.typical_runtime());
                    reserve_wait(self.config.reserve_after, k, typical.unwrap_or(own))
                }
                _ => self.config.reserve_after,
            };
            let eligible_at = Self::created(g) + wait;
            let n = self.config.reserve_after_overtakes;
            let eligible = eligible_at <= now || (n > 0 && overtaken >= n);
            let size = g.members.len();
            let is_head = !head_seen && eligible;
            if !head_seen && !eligible {
                self.next_reserve_check = Some(
                    self.next_reserve_check
                        .map_or(eligible_at, |t| t.min(eligible_at)),
                );
            }
            // Nothing changed since it last failed: it still does not fit
            // (and, for the head, its reservation still stands), unless it
            // has just become old enough to be reserved for.
            if g.tried_gen == Some(self.free_gen)
                && g.tried_members == g.members.len()
                && !(is_head && g.deferred)
            {
                if !head_seen && !eligible && passed.len() < MAX_PASSED {
                    passed.push((key.clone(), size));
                }
                head_seen |= eligible;
                continue;
            }
            let cached = match &g.request {
                Some(r) => Arc::clone(r),
                None => {
                    let uids: Vec<PodUid> = g.members.iter().cloned().collect();
                    let r = Arc::new(self.request_for(&uids));
                    if let Some(g) = self.groups.get_mut(&key) {
                        g.request = Some(Arc::clone(&r));
                    }
                    r
                }
            };
            let (req, members) = (&cached.0, &cached.1);
            // An elastic group starts with as many members as fit, at least its minimum.
            let sized = self.elastic_sizes(&key, req);
            let req = sized.as_ref().map_or(req, |(_, min)| min);
            // A topology constraint keeps the whole group inside one domain.
            let within = self.within_one_domain(&key, req);
            let req = within.as_ref().unwrap_or(req);
            let duration = self.duration(&self.groups[&key]);
            let reservation_other = self.reservation.as_ref().filter(|r| r.group != key);
            let ends_before_head = reservation_other.is_some()
                && self
                    .backfill_deadline()
                    .is_some_and(|deadline| now + duration <= deadline);
            let use_view = head_seen && !ends_before_head && reservation_other.is_some();
            // Beside the head's reservation only while its start is far off.
            let beside_ok = !use_view
                || self.reservation.as_ref().is_some_and(|r| {
                    let head = self.groups.get(&r.group).map(|g| self.duration(g));
                    policy::backfill_beside(self.config.backfill_beside_after, now, r.start, head)
                });
            let on = if (head_seen && !self.config.backfill) || !beside_ok {
                elastic::MatchOn::Nothing
            } else if use_view {
                elastic::MatchOn::View
            } else {
                elastic::MatchOn::Graph
            };
            let placement = match self.nominee_match(&key, req) {
                Some(p) => Some(p),
                None => self.match_sized(&key, sized.as_ref().map(|s| &s.0), req, on),
            };
            if let Some(p) = placement {
                let claims: Vec<&PodClaim> = p.iter().collect();
                // The view may lag the real graph: re-check before taking.
                if self.graph.take_if_fits(&claims) {
                    match self.reservation.as_mut() {
                        Some(r) if r.group == key => self.reservation = None,
                        Some(r) => {
                            for c in &claims {
                                r.view.take(c);
                            }
                            // Its own reservation (if any) stays in the
                            // view until the plan is made again: safe.
                            r.behind.retain(|b| b.group != key);
                        }
                        None => {}
                    }
                    self.commit(&key, now, &p, members, out);
                    if sized.is_some() {
                        self.late_new.insert(key.clone());
                    }
                    for (k, _) in passed.iter().filter(|(_, n)| *n > size) {
                        if let Some(g) = self.groups.get_mut(k) {
                            g.overtaken = g.overtaken.saturating_add(1);
                        }
                    }
                    continue;
                }
                // Stale view: recompute the reservation next pass.
                self.reservation = None;
            }
            // Does it fit at all? (Checked once per change of nodes or members.)
            let known_ok = self.groups.get(&key).is_some_and(|g| g.satisfiable);
            let verdict = if known_ok {
                Ok(())
            } else {
                self.graph.satisfiable(req)
            };
            if verdict.is_ok()
                && let Some(g) = self.groups.get_mut(&key)
            {
                g.satisfiable = true;
            }
            if let Err(fluxion_core::group::MatchError::Unsatisfiable(why)) = verdict {
                // Room held for it while victims leave would be held forever.
                self.drop_nomination(&key);
                let backoff = self.config.unsatisfiable_backoff;
                if let Some(g) = self.groups.get_mut(&key) {
                    g.unsat_until = Some(now + backoff);
                }
                let t = now + backoff;
                self.next_unsat_retry = Some(self.next_unsat_retry.map_or(t, |n| n.min(t)));
                self.set_wait(
                    &key,
                    WaitReason::Unsatisfiable,
                    format!("unsatisfiable: {why}"),
                );
                continue;
            }
            let gen_now = self.free_gen;
            if let Some(g) = self.groups.get_mut(&key) {
                g.tried_gen = Some(gen_now);
                g.tried_members = g.members.len();
                g.deferred = !eligible;
            }
            if !head_seen && !eligible && passed.len() < MAX_PASSED {
                passed.push((key.clone(), size));
            }
            if self.preempt_for(&key, req, members, head_seen, now, out) {
                continue;
            }
            if is_head {
                head_seen = true;
                self.reserve(&key, req, now);
                self.promise(&key);
                match &self.reservation {
                    Some(r) if r.group == key => {
                        let msg = match &r.after {
                            Some(after) => format!(
                                "reserved: starts when job {after} ends, est. {}",
                                r.start.short()
                            ),
                            None => format!("reserved: est. start {}", r.start.short()),
                        };
                        let wait = WaitReason::Reserved {
                            start: r.start,
                            after: r.after.clone(),
                        };
                        self.set_wait(&key, wait, msg);
                    }
                    _ => {
                        let msg = format!(
                            "busy: {} pods do not fit the free resources, and no running job's end makes room",
                            req.pod_count()
                        );
                        self.set_wait(&key, WaitReason::Busy, msg);
                    }
                }
            } else if let Some((start, after)) = head_seen
                .then(|| self.reserve_behind(&key, req, now))
                .flatten()
            {
                let msg = match &after {
                    Some(after) => format!(
                        "reserved behind the queue head: starts when job {after} ends, est. {}",
                        start.short()
                    ),
                    None => format!(
                        "reserved behind the queue head: est. start {}",
                        start.short()
                    ),
                };
                self.set_wait(&key, WaitReason::Reserved { start, after }, msg);
            } else {
                let head = self.reservation.as_ref().map(|r| r.group.to_string());
                let msg = match head {
                    Some(h) => format!(
                        "busy: {} pods do not fit now without delaying {h}",
                        req.pod_count()
                    ),
                    None if !eligible => format!(
                        "busy: {} pods do not fit the free resources; resources are held for it from {}",
                        req.pod_count(),
                        eligible_at.short()
                    ),
                    None => format!(
                        "busy: {} pods do not fit the free resources",
                        req.pod_count()
                    ),
                };
                self.set_wait(&key, WaitReason::Busy, msg);
            }
        }
        if !head_seen {
            self.reservation = None;
        }
        true
    }

    /// Mean expected run time of the groups placed now; `None` when none is.
    fn typical_runtime(&self) -> Option<Millis> {
        let (mut sum, mut n) = (0i128, 0i128);
        for g in self
            .groups
            .values()
            .filter(|g| g.placed_at.is_some() && !g.members.is_empty())
        {
            sum += i128::from(self.duration(g).0.max(0));
            n += 1;
        }
        (n > 0).then(|| Millis(i64::try_from(sum / n).unwrap_or(i64::MAX)))
    }

    /// For a group with a topology key, its request restricted to the nodes of
    /// one domain (one value of that node label): the first domain, by value,
    /// where it fits now, else the largest, so it waits (or is reserved) there.
    /// None for a group without a topology key.
    fn within_one_domain(&mut self, key: &GroupKey, req: &GroupRequest) -> Option<GroupRequest> {
        let label = self.groups.get(key)?.spec.as_ref()?.topology_key.clone()?;
        let mut domains: BTreeMap<&str, BTreeSet<NodeId>> = BTreeMap::new();
        for n in self.nodes.values() {
            if let (Some(v), Some(id)) = (n.labels.get(&label), self.graph.node_id(&n.name)) {
                domains.entry(v.as_str()).or_default().insert(id);
            }
        }
        let domains: Vec<BTreeSet<NodeId>> = domains.into_values().collect();
        let restrict = |ids: &BTreeSet<NodeId>| {
            let mut r = req.clone();
            for c in &mut r.classes {
                c.filter = NodeFilter::Only(match &c.filter {
                    NodeFilter::Any => ids.iter().copied().collect(),
                    NodeFilter::Only(v) => v.iter().filter(|i| ids.contains(i)).copied().collect(),
                });
            }
            r
        };
        let mut largest: Option<(usize, GroupRequest)> = None;
        for ids in &domains {
            let r = restrict(ids);
            if self.graph.try_match(&r).is_some() {
                return Some(r);
            }
            if largest.as_ref().is_none_or(|(n, _)| ids.len() > *n) {
                largest = Some((ids.len(), r));
            }
        }
        Some(largest.map_or_else(|| restrict(&BTreeSet::new()), |(_, r)| r))
    }

    /// Finds the head's earliest start by replaying the expected ends of
    /// placed groups on a copy of the graph, and the view later groups must fit.
    fn reserve(&mut self, key: &GroupKey, req: &GroupRequest, now: Timestamp) {
        if let Some(r) = &self.reservation
            && r.group == *key
            && (r.r#gen == self.graph_gen
                || (policy::keep_reservation(r.freed_at, self.free_gen)
                    && now.since(r.computed_at) < RESERVATION_REFRESH
                    && now < r.start))
        {
            return;
        }
        self.refresh_held();
        self.reservation = self.compute_reservation(key, req, now);
        // A new view may hold room the old one did not.
        self.free_gen += 1;
        if let Some(r) = self.reservation.as_mut() {
            r.freed_at = self.free_gen;
        }
    }

    /// Merges the claims of placed groups whose `held` was reset, for
    /// replaying their release.
    fn refresh_held(&mut self) {
        let stale: Vec<GroupKey> = self
            .groups
            .iter()
            .filter(|(_, g)| g.placed_at.is_some() && g.held.is_none())
            .map(|(k, _)| k.clone())
            .collect();
        for k in stale {
            let held = match self.groups.get(&k) {
                Some(g) => merge_per_node(
                    g.members
                        .iter()
                        .filter_map(|u| self.pods.get(u))
                        .filter_map(|p| p.claim.as_ref())
                        .chain(g.vacant.iter().map(|v| &v.claim)),
                ),
                None => continue,
            };
            if let Some(g) = self.groups.get_mut(&k) {
                g.held = Some(Arc::new(held));
            }
        }
    }

    /// Running groups by expected end (then key), with what they hold.
    fn expected_ends(&self, now: Timestamp) -> Vec<(Timestamp, &GroupKey, &[PodClaim])> {
        let mut ends: Vec<(Timestamp, &GroupKey, &[PodClaim])> = Vec::new();
        for (k, g) in &self.groups {
            let Some(at) = g.placed_at else { continue };
            let Some(claims) = g.held.as_deref() else {
                continue;
            };
            if claims.is_empty() {
                continue;
            }
            let end = (at + self.duration(g)).max(now);
            ends.push((end, k, claims));
        }
        ends.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        ends
    }

    /// Reserves for a group behind the head (conservative backfill, see
    /// `reserve_depth`): its earliest start once the running groups end as
    /// expected, with every reservation ahead of it held from now on (so
    /// the plan never double-books, whatever the order of the starts). The
    /// view later groups must fit is lowered to what is left then, so they
    /// delay none of the reservations. Returns its start, if it ever fits.
    fn reserve_behind(
        &mut self,
        key: &GroupKey,
        req: &GroupRequest,
        now: Timestamp,
    ) -> Option<(Timestamp, Option<GroupKey>)> {
        let depth = self
            .config
            .reserve_depth
            .clamp(1, crate::config::MAX_RESERVE_DEPTH);
        let r = self.reservation.as_ref()?;
        if let Some(b) = r.behind.iter().find(|b| b.group == *key) {
            // Tried again while its reservation stands: it still does.
            return Some((b.start, b.after.clone()));
        }
        if r.group == *key || r.behind.len() + 1 >= depth as usize {
            return None;
        }
        self.refresh_held();
        let r = self.reservation.as_ref()?;
        let ahead: Vec<&PodClaim> = r
            .claims
            .iter()
            .chain(r.behind.iter().flat_map(|b| &b.claims))
            .collect();
        let mut future = self.graph.clone();
        for c in &ahead {
            future.take(c);
        }
        let ends = self.expected_ends(now);
        let (released, placement) = replay_until_fits(&mut future, &ends, req)?;
        if released == 0 {
            // Fits beside every reservation now: it was only the view's
            // bound that kept it out. Nothing to hold.
            return None;
        }
        let placement = if self.config.reserve_on_freed {
            let k = release_ties(&mut future, &ends, released);
            on_freed_last(&self.graph, &ends[..k], &ahead, req).unwrap_or(placement)
        } else {
            placement
        };
        let claims: Vec<PodClaim> = placement.iter().cloned().collect();
        for c in &claims {
            future.take(c);
        }
        let (start, after) = match ends.get(released - 1) {
            Some((t, k, _)) => (*t, Some((*k).clone())),
            None => (now, None),
        };
        let r = self.reservation.as_mut()?;
        r.view.restrict_to(&future);
        r.behind.push(Behind {
            group: key.clone(),
            start,
            after: after.clone(),
            claims,
        });
        Some((start, after))
    }

    /// Fixes the head's promised start at its first reservation (see
    /// `GangConfig::backfill_slack`).
    fn promise(&mut self, key: &GroupKey) {
        let Some(start) = self
            .reservation
            .as_ref()
            .filter(|r| r.group == *key)
            .map(|r| r.start)
        else {
            return;
        };
        let Some(g) = self.groups.get(key) else {
            return;
        };
        if g.promised.is_some() {
            return;
        }
        let promised = policy::promised_start(start, self.duration(g), self.config.backfill_slack);
        if let Some(g) = self.groups.get_mut(key) {
            g.promised = promised;
        }
    }

    /// Until when a later group may use resources the reservations will need.
    fn backfill_deadline(&self) -> Option<Timestamp> {
        let r = self.reservation.as_ref()?;
        let promised = self.groups.get(&r.group).and_then(|g| g.promised);
        let first_behind = r.behind.iter().map(|b| b.start).min();
        Some(policy::backfill_deadline(r.start, promised, first_behind))
    }

    fn compute_reservation(
        &self,
        key: &GroupKey,
        req: &GroupRequest,
        now: Timestamp,
    ) -> Option<Reservation> {
        let ends = self.expected_ends(now);
        let mut future = self.graph.clone();
        let (k, placement) = replay_until_fits(&mut future, &ends, req)?;
        let placement = if self.config.reserve_on_freed {
            let k = release_ties(&mut future, &ends, k);
            on_freed_last(&self.graph, &ends[..k], &[], req).unwrap_or(placement)
        } else {
            placement
        };
        let claims: Vec<PodClaim> = placement.iter().cloned().collect();
        for c in &claims {
            future.take(c);
        }
        // Free now and still free for the head then: the same min either way round.
        let mut view = future;
        view.restrict_to(&self.graph);
        let (start, after_key) = match ends.get(k.saturating_sub(1)) {
            Some((t, key, _)) => (*t, Some((*key).clone())),
            None => (now, None),
        };
        Some(Reservation {
            group: key.clone(),
            start,
            after: after_key,
            claims,
            behind: Vec::new(),
            view,
            r#gen: self.graph_gen,
            computed_at: now,
            freed_at: self.free_gen,
        })
    }

    fn commit(
        &mut self,
        key: &GroupKey,
        now: Timestamp,
        placement: &fluxion_core::group::Placement,
        members: &[Vec<PodUid>],
        out: &mut Decisions,
    ) {
        let mut binds = Vec::new();
        let mut nodes = BTreeSet::new();
        for (class, claims) in placement.claims.iter().enumerate() {
            for (uid, claim) in members.get(class).into_iter().flatten().zip(claims) {
                let Some(node) = self.graph.node(claim.node).map(|n| n.name.clone()) else {
                    continue;
                };
                nodes.insert(node.clone());
                if let Some(st) = self.pods.get_mut(uid) {
                    st.claim = Some(claim.clone());
                    if let Some(g) = self.groups.get_mut(key) {
                        g.held = None;
                    }
                    st.bind = Bind::Binding { node: node.clone() };
                    binds.push(PodBinding {
                        pod: uid.clone(),
                        namespace: st.pod.namespace.clone(),
                        name: st.pod.name.clone(),
                        node,
                    });
                }
            }
        }
        self.bump();
        if let Some(shape) = self.groups.get(key).and_then(|g| self.shape(g)) {
            self.runtimes.started(key, shape, now);
        }
        let waited = self
            .groups
            .get(key)
            .map(|g| now.since(g.requeued_at.unwrap_or_else(|| Self::created(g))));
        if let Some(g) = self.groups.get_mut(key) {
            g.placed_at = Some(now);
            g.wait = None;
            g.message = format!("placed {} pods on {} nodes", binds.len(), nodes.len());
        }
        self.touched.insert(key.clone());
        if self.config.pod_events {
            for b in &binds {
                out.pod_events.push(PodEvent {
                    pod: b.pod.clone(),
                    namespace: b.namespace.clone(),
                    name: b.name.clone(),
                    kind: EventType::Normal,
                    reason: "Scheduled".to_owned(),
                    message: format!(
                        "group {key} placed whole ({} pods on {} nodes); binding to {}",
                        binds.len(),
                        nodes.len(),
                        b.node
                    ),
                    unschedulable: false,
                });
            }
        }
        out.binds.push(BindPlan {
            group: key.clone(),
            pods: binds,
            waited,
        });
    }

    fn set_wait(&mut self, key: &GroupKey, wait: WaitReason, message: String) {
        if let Some(g) = self.groups.get_mut(key)
            && (g.wait.as_ref() != Some(&wait) || g.message != message)
        {
            g.wait = Some(wait);
            g.message = message;
            self.touched.insert(key.clone());
        }
    }

    fn status_of(&self, key: &GroupKey, g: &GroupState) -> GroupChange {
        let (mut bound, mut running, mut placed, mut unplaced) = (0, 0, 0, 0);
        // An unplaced group has nothing bound: skip the walk over its pods.
        let members: &BTreeSet<PodUid> = if g.placed_at.is_some() {
            &g.members
        } else {
            &EMPTY
        };
        for st in members.iter().filter_map(|u| self.pods.get(u)) {
            if st.claim.is_some() {
                placed += 1;
            } else if st.bind == Bind::Unplaced {
                unplaced += 1;
            }
            if matches!(st.bind, Bind::Bound { .. }) {
                bound += 1;
                if st.pod.phase == PodPhase::Running {
                    running += 1;
                }
            }
        }
        // Elastic members waiting for room do not hold the group's phase back.
        let extras_waiting = Self::extras_waiting(g, unplaced);
        let live = (g.members.len() as u32).saturating_sub(extras_waiting);
        let phase = if g.placed_at.is_none() {
            GroupPhase::Pending
        } else if live == 0 && g.vacant.is_empty() {
            if g.failed > 0 {
                GroupPhase::Failed
            } else {
                GroupPhase::Finished
            }
        } else if running == live && g.vacant.is_empty() {
            GroupPhase::Running
        } else if bound == live && g.vacant.is_empty() {
            GroupPhase::Scheduled
        } else if placed > 0 || !g.vacant.is_empty() {
            GroupPhase::Scheduling
        } else {
            GroupPhase::Pending
        };
        let message = match phase {
            GroupPhase::Pending => g.message.clone(),
            GroupPhase::Scheduling if !g.vacant.is_empty() => format!(
                "{} slots wait for replacement pods (until the group's timeout)",
                g.vacant.len()
            ),
            GroupPhase::Scheduling => format!("{bound} of {live} pods bound"),
            GroupPhase::Scheduled => format!("all {live} pods bound"),
            GroupPhase::Running => format!("all {live} pods running"),
            GroupPhase::Finished => format!("{} pods succeeded", g.succeeded),
            GroupPhase::Failed => format!("{} pods failed, {} succeeded", g.failed, g.succeeded),
        };
        let message = self.elastic_message(g, message, running, extras_waiting);
        let message = self.preempted_message(key, message);
        GroupChange {
            group: key.clone(),
            phase,
            wait: if phase == GroupPhase::Pending {
                g.wait.clone()
            } else {
                None
            },
            message,
            bound,
            running,
            succeeded: g.succeeded,
            failed: g.failed,
        }
    }

    fn report(&mut self, out: &mut Decisions) {
        let touched = std::mem::take(&mut self.touched);
        for key in touched {
            let Some(g) = self.groups.get(&key) else {
                continue;
            };
            let change = self.status_of(&key, g);
            let now = (change.phase, change.message.clone());
            if g.reported.as_ref() == Some(&now) {
                continue;
            }
            if self.config.pod_events {
                let topic = (change.phase == GroupPhase::Pending)
                    .then(|| change.wait.as_ref().map(std::mem::discriminant));
                let unschedulable = matches!(
                    change.wait,
                    Some(
                        WaitReason::Reserved { .. } | WaitReason::Busy | WaitReason::Unsatisfiable
                    )
                );
                for uid in &g.members {
                    let Some(st) = self.pods.get_mut(uid) else {
                        continue;
                    };
                    match topic {
                        Some(t) if st.told != Some(t) => {
                            st.told = Some(t);
                            out.pod_events.push(PodEvent {
                                pod: st.pod.uid.clone(),
                                namespace: st.pod.namespace.clone(),
                                name: st.pod.name.clone(),
                                kind: EventType::Warning,
                                reason: "FailedScheduling".to_owned(),
                                message: format!("group {key}: {}", change.message),
                                unschedulable,
                            });
                        }
                        Some(_) => {}
                        // Placed: a later wait (after a preemption) is news again.
                        None => st.told = None,
                    }
                }
            }
            let finished = matches!(change.phase, GroupPhase::Finished | GroupPhase::Failed);
            if let Some(g) = self.groups.get_mut(&key) {
                g.reported = Some(now);
                g.phase = change.phase;
            }
            out.group_changes.push(change);
            if finished && self.groups.get(&key).is_some_and(|g| g.spec.is_none()) {
                self.groups.remove(&key);
            }
        }
    }

    /// When the core next wants a pass even if nothing happens (a failed
    /// bind's retry, a vacant slot's timeout, an unsatisfiable group's
    /// backoff, or at once, the time of the last pass, when that pass
    /// stopped at `max_groups_per_pass` with groups left to examine);
    /// `None` when only events can change anything.
    pub fn next_wakeup(&self) -> Option<Timestamp> {
        let retries = self
            .retry
            .iter()
            .filter_map(|u| match &self.pods.get(u)?.bind {
                Bind::Retry { at, .. } => *at,
                _ => None,
            });
        let vacancies = self.vacancies.iter().filter_map(|k| {
            let g = self.groups.get(k)?;
            let timeout = self.timeout_of(g);
            g.vacant
                .iter()
                .filter_map(|v| v.since)
                .min()
                .map(|t| t + timeout)
        });
        retries
            .chain(vacancies)
            .chain(self.walk.as_ref().map(|c| c.at))
            .chain(self.next_unsat_retry)
            .chain(self.next_reserve_check)
            .chain(self.preempt_wakeup())
            .min()
    }

    /// Whether the last pass stopped at `max_groups_per_pass` with groups
    /// left to examine: the next [`schedule`](Self::schedule) call goes on
    /// where it stopped, and should come at once.
    pub fn more_pending(&self) -> bool {
        self.walk.is_some()
    }

    /// How many groups are pending or being bound (as last reported), without
    /// building every group's status.
    pub fn waiting_groups(&self) -> usize {
        self.groups
            .values()
            .filter(|g| matches!(g.phase, GroupPhase::Pending | GroupPhase::Scheduling))
            .count()
    }

    /// The current status of every known group, in key order.
    pub fn groups(&self) -> Vec<GroupChange> {
        self.groups
            .iter()
            .map(|(k, g)| self.status_of(k, g))
            .collect()
    }

    /// The current status of one group.
    pub fn group(&self, key: &GroupKey) -> Option<GroupChange> {
        self.groups.get(key).map(|g| self.status_of(key, g))
    }

    /// Number of pods known (ours and others', not ended).
    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }

    /// Whether a node filter would be needed for this pod (for callers that
    /// cache): pods with no selector or affinity on an untainted cluster may go anywhere.
    pub fn is_unconstrained(&self, pod: &Pod) -> bool {
        convert::unconstrained(pod, self.any_taints)
    }

    #[doc(hidden)]
    pub fn debug_filter(&self, pod: &Pod) -> NodeFilter {
        convert::filter(pod, self.nodes.values(), &self.graph, self.any_taints)
    }
}

/// Replays the releases of `ends` in order on `future`, trying `req` after
/// each (the rack-sum bound rejects most tries at once; after many misses,
/// only at doubling steps). Returns how many releases it took (0: fits
/// before any) and the placement; `future` is left at that point.
fn replay_until_fits(
    future: &mut GroupGraph,
    ends: &[(Timestamp, &GroupKey, &[PodClaim])],
    req: &GroupRequest,
) -> Option<(usize, fluxion_core::group::Placement)> {
    if let Some(p) = future.try_match(req) {
        return Some((0, p));
    }
    let (mut misses, mut step, mut next_try) = (0u32, 1usize, 1usize);
    for (i, (_, _, claims)) in ends.iter().enumerate() {
        for c in claims.iter() {
            future.give(c);
        }
        let released = i + 1;
        if released < next_try && released < ends.len() {
            continue;
        }
        if let Some(p) = future.try_match(req) {
            return Some((released, p));
        }
        misses += 1;
        if misses > 32 {
            step *= 2;
        }
        next_try = released + step;
    }
    None
}

/// Releases on `future` (replayed up to `released`) the groups expected to
/// end at the same time as the last one released: they free their room at
/// that start too. Returns how many are released now.
fn release_ties(
    future: &mut GroupGraph,
    ends: &[(Timestamp, &GroupKey, &[PodClaim])],
    released: usize,
) -> usize {
    let Some(at) = released
        .checked_sub(1)
        .and_then(|i| ends.get(i))
        .map(|e| e.0)
    else {
        return released;
    };
    let mut k = released;
    while let Some((t, _, claims)) = ends.get(k)
        && *t <= at
    {
        for c in claims.iter() {
            future.give(c);
        }
        k += 1;
    }
    k
}

/// A copy of `graph` with nothing free: the base for planning on freed
/// resources only. (Extended resources stay as they are: a placement on
/// the result is still checked against the whole future.)
fn emptied(graph: &GroupGraph) -> GroupGraph {
    let mut empty = graph.clone();
    let ids: Vec<NodeId> = graph.node_ids().collect();
    for id in ids {
        let (Some((_, mem, _, pods)), Some(numa)) = (graph.node_free(id), graph.node_free_numa(id))
        else {
            continue;
        };
        let units = |v: i64| u64::try_from(v).unwrap_or(0);
        empty.take(&PodClaim {
            node: id,
            numa_cpu: numa.iter().map(|(c, _)| units(*c)).collect(),
            numa_gpus: numa.iter().map(|(_, g)| units(*g)).collect(),
            memory_bytes: units(mem),
            extended: Vec::new(),
            pods: units(pods),
        });
    }
    empty
}

/// Where a reservation fragments least: on the resources the running
/// groups free last before its start (the last of `released`, then the
/// last two, four, ...), not on resources free now, so what is free now
/// stays free for backfill until the reserved group starts and nothing it
/// takes sits idle longer than it must. `ahead` is held by reservations
/// before it. `None` when it fits only with resources free now.
fn on_freed_last(
    now: &GroupGraph,
    released: &[(Timestamp, &GroupKey, &[PodClaim])],
    ahead: &[&PodClaim],
    req: &GroupRequest,
) -> Option<fluxion_core::group::Placement> {
    if released.is_empty() {
        return None;
    }
    let base = emptied(now);
    let mut last = 1usize;
    loop {
        let mut freed = base.clone();
        for (_, _, claims) in &released[released.len() - last..] {
            for c in claims.iter() {
                freed.give(c);
            }
        }
        for c in ahead {
            freed.take(c);
        }
        if let Some(p) = freed.try_match(req) {
            return Some(p);
        }
        if last == released.len() {
            return None;
        }
        last = (last * 2).min(released.len());
    }
}

/// Sums claims node by node, so replaying a group's release touches each node once.
fn merge_per_node<'a>(claims: impl Iterator<Item = &'a PodClaim>) -> Vec<PodClaim> {
    let mut by_node: BTreeMap<u32, PodClaim> = BTreeMap::new();
    for c in claims {
        let acc = by_node.entry(c.node.0).or_insert_with(|| PodClaim {
            node: c.node,
            ..Default::default()
        });
        add_vec(&mut acc.numa_cpu, &c.numa_cpu);
        add_vec(&mut acc.numa_gpus, &c.numa_gpus);
        acc.memory_bytes += c.memory_bytes;
        acc.pods += c.pods.max(1);
        for (id, n) in &c.extended {
            match acc.extended.iter_mut().find(|(i, _)| i == id) {
                Some((_, m)) => *m += n,
                None => acc.extended.push((*id, *n)),
            }
        }
    }
    by_node.into_values().collect()
}

fn add_vec(acc: &mut Vec<u64>, v: &[u64]) {
    if acc.len() < v.len() {
        acc.resize(v.len(), 0);
    }
    for (a, b) in acc.iter_mut().zip(v) {
        *a += b;
    }
}
