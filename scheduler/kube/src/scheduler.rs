//! The scheduling loop: one task owns the gang core and the cluster cache,
//! takes watch events, bind results and leadership changes from a channel,
//! and runs a pass when something changed (after a short debounce) or when
//! waiting groups are due for another look. Binds, Events and status writes
//! go out on their own tasks so a slow API never blocks the loop.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::DynamicObject;
use kube::runtime::watcher;
use phalanx_gang as gang;
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::args::Settings;
use crate::binder::{UnschedulableMark, Writer, pod_ref};
use crate::cluster::{Cluster, Notice};
use crate::crd::NodeResourceTopology;
use crate::groups::Kind;
use crate::groups::native::PodObject;
use crate::metrics::{Metrics, result};
use crate::preempt::{self, Preemptions};
use crate::status_api::{Query, QueryState};

/// One input of the loop.
#[derive(Debug)]
pub enum Input {
    /// A Node watch event.
    Node(watcher::Event<core::Node>),
    /// A Pod watch event (with the native group reference read from the raw pod).
    Pod(watcher::Event<PodObject>),
    /// A watch event of a group kind watched where served (native PodGroup/Workload,
    /// JobSet, MPIJob, MiniCluster, Volcano PodGroup), untyped so one malformed
    /// object cannot break the watch.
    GroupObject(Kind, watcher::Event<DynamicObject>),
    /// A PodGroup watch event (untyped, so one malformed object cannot break the watch).
    PodGroup(watcher::Event<DynamicObject>),
    /// A Job watch event.
    Job(watcher::Event<Job>),
    /// A StatefulSet watch event.
    StatefulSet(watcher::Event<StatefulSet>),
    /// A NodeResourceTopology watch event.
    Nrt(watcher::Event<NodeResourceTopology>),
    /// A PodDisruptionBudget watch event.
    Budget(watcher::Event<PodDisruptionBudget>),
    /// A preemption write for one victim pod ended.
    EvictDone {
        /// Core generation the preemption belongs to.
        epoch: u64,
        /// The victim pod.
        pod: String,
        /// Whether the pod is gone or terminating now (false: try again when the core asks again).
        done: bool,
    },
    /// A bind finished.
    BindDone {
        /// Core generation the bind belongs to.
        epoch: u64,
        /// Pod.
        pod: gang::PodUid,
        /// Target node.
        node: String,
        /// Result.
        outcome: gang::BindOutcome,
    },
    /// Leadership changed.
    Leader(bool),
}

/// The kinds whose first full list must be in before anything is placed.
pub const KINDS: [&str; 7] = [
    "nodes",
    "pods",
    "podgroups",
    "jobs",
    "statefulsets",
    "noderesourcetopologies",
    "poddisruptionbudgets",
];

/// State visible outside the loop (health, handle).
#[derive(Debug, Default)]
pub struct Status {
    /// Every watched kind has been listed once.
    pub ready: AtomicBool,
    /// This replica leads.
    pub leader: AtomicBool,
    /// Cleared when stopping; write tasks check it.
    pub alive: Arc<AtomicBool>,
    /// Scheduling passes run.
    pub passes: AtomicUsize,
}

/// The loop's state.
pub struct Loop {
    settings: Settings,
    core: gang::GangScheduler,
    cluster: Cluster,
    epoch: u64,
    leader: bool,
    synced: HashSet<&'static str>,
    /// Group kinds watched because served (besides KINDS).
    awaited: Vec<&'static str>,
    relisting: HashMap<&'static str, HashSet<String>>,
    tx: mpsc::Sender<Input>,
    writer: Writer,
    metrics: Arc<Metrics>,
    status: Arc<Status>,
    started_unix_ms: i64,
    started: Instant,
    dirty_since: Option<Instant>,
    retry_at: Option<Instant>,
    group_start: HashMap<gang::GroupKey, String>,
    last_group_status: HashMap<gang::GroupKey, serde_json::Value>,
    queries: QueryState,
    preemptions: Preemptions,
}

impl std::fmt::Debug for Loop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loop")
            .field("epoch", &self.epoch)
            .field("leader", &self.leader)
            .finish_non_exhaustive()
    }
}

fn core_config(s: &Settings) -> gang::GangConfig {
    gang::GangConfig {
        scheduler_name: s
            .scheduler_names
            .first()
            .cloned()
            .unwrap_or_else(|| "phalanx".into()),
        default_schedule_timeout: gang::Millis(
            i64::try_from(s.default_schedule_timeout.as_millis()).unwrap_or(i64::MAX),
        ),
        policy: s.policy,
        reserve_after: gang::Millis(i64::try_from(s.reserve_after.as_millis()).unwrap_or(i64::MAX)),
        reserve_after_runtimes: s.reserve_after_runtimes,
        reserve_after_overtakes: s.reserve_after_overtakes,
        order_runtimes: s.order_runtimes,
        order_cap_drains: s.order_cap_drains,
        assembly_grace: gang::Millis(
            i64::try_from(s.assembly_grace.as_millis()).unwrap_or(i64::MAX),
        ),
        backfill_beside_after: s.backfill_beside_after,
        backfill_slack: s.backfill_slack,
        reserve_depth: s.reserve_depth,
        reserve_on_freed: s.reserve_on_freed,
        best_fit: s.best_fit,
        preemption: s.preemption,
        ..Default::default()
    }
}

fn key_of(meta: &kube::api::ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or(""),
        meta.name.as_deref().unwrap_or("")
    )
}

impl Loop {
    /// A loop that has seen nothing yet.
    pub fn new(
        settings: Settings,
        tx: mpsc::Sender<Input>,
        writer: Writer,
        metrics: Arc<Metrics>,
        status: Arc<Status>,
        nrt_installed: bool,
    ) -> Self {
        let cluster = Cluster::new(
            settings.scheduler_names.clone(),
            settings.namespaces.clone(),
            settings.rack_label.clone(),
        );
        let mut synced = HashSet::new();
        if !nrt_installed {
            synced.insert("noderesourcetopologies");
        }
        let started_unix_ms = jiff::Timestamp::now().as_millisecond();
        Self {
            core: gang::GangScheduler::new(core_config(&settings)),
            settings,
            cluster,
            epoch: 0,
            leader: false,
            synced,
            awaited: Vec::new(),
            relisting: HashMap::new(),
            tx,
            writer,
            metrics,
            status,
            started_unix_ms,
            started: Instant::now(),
            dirty_since: None,
            retry_at: None,
            group_start: HashMap::new(),
            last_group_status: HashMap::new(),
            queries: QueryState::default(),
            preemptions: Preemptions::default(),
        }
    }

    fn now(&self) -> gang::Timestamp {
        let elapsed = i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX);
        gang::Timestamp::from_millis(self.started_unix_ms.saturating_add(elapsed))
    }

    fn ready(&self) -> bool {
        KINDS.iter().all(|k| self.synced.contains(k))
            && self.awaited.iter().all(|k| self.synced.contains(k))
    }

    /// Tells the loop which group kinds the server serves: they are watched, so the
    /// first full list of each must be in before anything is placed.
    pub fn set_served(&mut self, served: std::collections::BTreeMap<Kind, &'static str>) {
        self.awaited = served.keys().map(|k| k.name()).collect();
        self.cluster.set_served(served);
    }

    /// Runs until `stop` flips.
    pub async fn run(
        mut self,
        mut rx: mpsc::Receiver<Input>,
        mut queries: mpsc::Receiver<Query>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut queries_open = true;
        loop {
            let can_schedule = self.leader && self.ready();
            let due = if can_schedule {
                let debounced = self.dirty_since.map(|t| t + self.settings.debounce);
                match (debounced, self.retry_at) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            } else {
                None
            };
            tokio::select! {
                biased;
                _ = stop.changed() => return,
                msg = rx.recv() => {
                    let Some(msg) = msg else { return };
                    self.handle(msg);
                    // Take what is already queued before deciding anything: one pass per burst.
                    for _ in 0..4096 {
                        match rx.try_recv() {
                            Ok(m) => self.handle(m),
                            Err(_) => break,
                        }
                    }
                }
                _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => self.pass(),
                q = queries.recv(), if queries_open => match q {
                    Some(q) => {
                        let now = self.now().as_millis();
                        self.queries.answer(q, &self.core, &self.cluster, self.settings.policy.name(), now);
                    }
                    None => queries_open = false,
                },
            }
        }
    }

    fn mark_dirty(&mut self) {
        if self.dirty_since.is_none() {
            self.dirty_since = Some(Instant::now());
        }
    }

    /// The `PodScheduled=False` mark for a cached, unbound pod, unless it
    /// already carries exactly this one.
    fn unschedulable_mark(&self, uid: &str, message: &str) -> Option<UnschedulableMark> {
        let pod = self.cluster.pod(uid)?;
        if pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_ref())
            .is_some()
        {
            return None;
        }
        let current = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"));
        let already_false = current.filter(|c| c.status == "False");
        if already_false.is_some_and(|c| {
            c.reason.as_deref() == Some("Unschedulable") && c.message.as_deref() == Some(message)
        }) {
            return None;
        }
        let since = already_false
            .and_then(|c| c.last_transition_time.as_ref())
            .map(|t| t.0)
            .unwrap_or_else(jiff::Timestamp::now);
        Some(UnschedulableMark {
            namespace: pod.metadata.namespace.clone()?,
            name: pod.metadata.name.clone()?,
            resource_version: pod.metadata.resource_version.clone()?,
            message: message.to_string(),
            since: since.round(jiff::Unit::Second).unwrap_or(since).to_string(),
        })
    }

    fn apply(&mut self, events: Vec<gang::Event>, notes: Vec<Notice>) {
        if !events.is_empty() {
            self.mark_dirty();
        }
        for e in events {
            self.core.apply(e);
        }
        for n in notes {
            tracing::warn!(object = ?n.regarding.name, kind = ?n.regarding.kind, reason = %n.reason, "{}", n.message);
            let w = self.writer.clone();
            tokio::spawn(async move { w.event(n.regarding, true, n.reason, n.message).await });
        }
    }

    /// Watch event bookkeeping common to every kind: tracks re-lists so objects
    /// missing from a fresh list are deleted. Returns the keys to delete, if a list just ended.
    fn relist_step<K>(
        &mut self,
        kind: &'static str,
        ev: &watcher::Event<K>,
        key: impl Fn(&K) -> String,
        known: impl FnOnce(&Cluster) -> Vec<String>,
    ) -> Vec<String> {
        match ev {
            watcher::Event::Init => {
                self.relisting.insert(kind, HashSet::new());
                Vec::new()
            }
            watcher::Event::InitApply(o) => {
                if let Some(seen) = self.relisting.get_mut(kind) {
                    seen.insert(key(o));
                }
                Vec::new()
            }
            watcher::Event::InitDone => {
                let first = self.synced.insert(kind);
                if first {
                    tracing::info!(kind, "initial list complete");
                }
                self.status.ready.store(self.ready(), Ordering::SeqCst);
                self.mark_dirty();
                let seen = self.relisting.remove(kind).unwrap_or_default();
                known(&self.cluster)
                    .into_iter()
                    .filter(|k| !seen.contains(k))
                    .collect()
            }
            _ => Vec::new(),
        }
    }

    fn handle(&mut self, input: Input) {
        let mut out = Vec::new();
        let mut notes = Vec::new();
        match input {
            Input::Node(ev) => {
                let gone = self.relist_step(
                    "nodes",
                    &ev,
                    |n: &core::Node| n.metadata.name.clone().unwrap_or_default(),
                    |c| c.node_names(),
                );
                for name in gone {
                    self.cluster.delete_node(&name, &mut out);
                }
                match ev {
                    watcher::Event::Apply(n) | watcher::Event::InitApply(n) => {
                        self.cluster.apply_node(n, &mut out, &mut notes)
                    }
                    watcher::Event::Delete(n) => self
                        .cluster
                        .delete_node(n.metadata.name.as_deref().unwrap_or(""), &mut out),
                    _ => {}
                }
                self.metrics
                    .graph_nodes
                    .set(self.cluster.node_count() as i64);
            }
            Input::Nrt(ev) => {
                let gone = self.relist_step(
                    "noderesourcetopologies",
                    &ev,
                    |n: &NodeResourceTopology| n.metadata.name.clone().unwrap_or_default(),
                    |c| c.nrt_names(),
                );
                for name in gone {
                    self.cluster.delete_nrt(&name, &mut out, &mut notes);
                }
                match ev {
                    watcher::Event::Apply(n) | watcher::Event::InitApply(n) => {
                        self.cluster.apply_nrt(n, &mut out, &mut notes)
                    }
                    watcher::Event::Delete(n) => self.cluster.delete_nrt(
                        n.metadata.name.as_deref().unwrap_or(""),
                        &mut out,
                        &mut notes,
                    ),
                    _ => {}
                }
            }
            Input::Pod(ev) => {
                let gone = self.relist_step(
                    "pods",
                    &ev,
                    |p: &PodObject| p.pod.metadata.uid.clone().unwrap_or_default(),
                    |c| c.pod_uids(),
                );
                for uid in gone {
                    self.preemptions.pod_gone(&uid);
                    self.cluster.delete_pod(&uid, &mut out);
                }
                match ev {
                    watcher::Event::Apply(p) | watcher::Event::InitApply(p) => {
                        let ours = self.cluster.is_ours(&p.pod);
                        self.preemptions.pod_seen(&p.pod, ours, &self.writer);
                        self.cluster.apply_pod_object(p, &mut out, &mut notes)
                    }
                    watcher::Event::Delete(p) => {
                        let uid = p.pod.metadata.uid.clone().unwrap_or_default();
                        self.preemptions.pod_gone(&uid);
                        self.cluster.delete_pod(&uid, &mut out)
                    }
                    _ => {}
                }
            }
            Input::PodGroup(ev) => {
                let gone = self.relist_step(
                    "podgroups",
                    &ev,
                    |o: &DynamicObject| key_of(&o.metadata),
                    |c| {
                        c.podgroup_keys()
                            .into_iter()
                            .map(|(ns, n)| format!("{ns}/{n}"))
                            .collect()
                    },
                );
                for k in gone {
                    let (ns, name) = k.split_once('/').unwrap_or(("", &k));
                    self.cluster.delete_podgroup(ns, name, &mut out, &mut notes);
                }
                match ev {
                    watcher::Event::Apply(o) | watcher::Event::InitApply(o) => {
                        self.cluster.apply_podgroup(o, &mut out, &mut notes)
                    }
                    watcher::Event::Delete(o) => {
                        let ns = o.metadata.namespace.clone().unwrap_or_default();
                        let name = o.metadata.name.clone().unwrap_or_default();
                        self.cluster
                            .delete_podgroup(&ns, &name, &mut out, &mut notes)
                    }
                    _ => {}
                }
            }
            Input::GroupObject(kind, ev) => {
                let gone = self.relist_step(
                    kind.name(),
                    &ev,
                    |o: &DynamicObject| key_of(&o.metadata),
                    |c| {
                        c.object_keys(kind)
                            .into_iter()
                            .map(|(ns, n)| format!("{ns}/{n}"))
                            .collect()
                    },
                );
                for k in gone {
                    let (ns, name) = k.split_once('/').unwrap_or(("", &k));
                    self.cluster
                        .delete_object(kind, ns, name, &mut out, &mut notes);
                }
                match ev {
                    watcher::Event::Apply(o) | watcher::Event::InitApply(o) => {
                        self.cluster.apply_object(kind, o, &mut out, &mut notes)
                    }
                    watcher::Event::Delete(o) => {
                        let ns = o.metadata.namespace.clone().unwrap_or_default();
                        let name = o.metadata.name.clone().unwrap_or_default();
                        self.cluster
                            .delete_object(kind, &ns, &name, &mut out, &mut notes)
                    }
                    _ => {}
                }
            }
            Input::Job(ev) => {
                let gone = self.relist_step(
                    "jobs",
                    &ev,
                    |o: &Job| key_of(&o.metadata),
                    |c| {
                        c.job_keys()
                            .into_iter()
                            .map(|(ns, n)| format!("{ns}/{n}"))
                            .collect()
                    },
                );
                for k in gone {
                    let (ns, name) = k.split_once('/').unwrap_or(("", &k));
                    self.cluster.delete_job(ns, name);
                }
                match ev {
                    watcher::Event::Apply(o) | watcher::Event::InitApply(o) => {
                        self.cluster.apply_job(o, &mut out, &mut notes)
                    }
                    watcher::Event::Delete(o) => self.cluster.delete_job(
                        o.metadata.namespace.as_deref().unwrap_or(""),
                        o.metadata.name.as_deref().unwrap_or(""),
                    ),
                    _ => {}
                }
            }
            Input::StatefulSet(ev) => {
                let gone = self.relist_step(
                    "statefulsets",
                    &ev,
                    |o: &StatefulSet| key_of(&o.metadata),
                    |c| {
                        c.statefulset_keys()
                            .into_iter()
                            .map(|(ns, n)| format!("{ns}/{n}"))
                            .collect()
                    },
                );
                for k in gone {
                    let (ns, name) = k.split_once('/').unwrap_or(("", &k));
                    self.cluster.delete_statefulset(ns, name);
                }
                match ev {
                    watcher::Event::Apply(o) | watcher::Event::InitApply(o) => {
                        self.cluster.apply_statefulset(o, &mut out, &mut notes)
                    }
                    watcher::Event::Delete(o) => self.cluster.delete_statefulset(
                        o.metadata.namespace.as_deref().unwrap_or(""),
                        o.metadata.name.as_deref().unwrap_or(""),
                    ),
                    _ => {}
                }
            }
            Input::Budget(ev) => {
                let gone = self.relist_step(
                    "poddisruptionbudgets",
                    &ev,
                    |o: &PodDisruptionBudget| key_of(&o.metadata),
                    |c| {
                        c.budget_keys()
                            .into_iter()
                            .map(|(ns, n)| format!("{ns}/{n}"))
                            .collect()
                    },
                );
                for k in gone {
                    let (ns, name) = k.split_once('/').unwrap_or(("", &k));
                    self.cluster.delete_budget(ns, name, &mut out);
                }
                match ev {
                    watcher::Event::Apply(o) | watcher::Event::InitApply(o) => {
                        self.cluster.apply_budget(o, &mut out, &mut notes)
                    }
                    watcher::Event::Delete(o) => self.cluster.delete_budget(
                        o.metadata.namespace.as_deref().unwrap_or(""),
                        o.metadata.name.as_deref().unwrap_or(""),
                        &mut out,
                    ),
                    _ => {}
                }
            }
            Input::EvictDone { epoch, pod, done } => {
                if epoch == self.epoch && !done {
                    self.preemptions.forget(&pod);
                }
            }
            Input::BindDone {
                epoch,
                pod,
                node,
                outcome,
            } => {
                if epoch == self.epoch {
                    if !matches!(outcome, gang::BindOutcome::Bound) {
                        tracing::info!(pod = %pod, node = %node, ?outcome, "bind did not succeed");
                    }
                    out.push(gang::Event::BindResult { pod, node, outcome });
                }
            }
            Input::Leader(leader) => self.set_leader(leader, &mut out, &mut notes),
        }
        self.apply(out, notes);
    }

    /// Any leadership change starts a fresh core from the cache: reservations and
    /// in-flight binds of an earlier term are dropped, allocations are rebuilt from
    /// bound pods before anything new is placed.
    fn set_leader(&mut self, leader: bool, out: &mut Vec<gang::Event>, notes: &mut Vec<Notice>) {
        if leader == self.leader && self.epoch > 0 {
            return;
        }
        self.leader = leader;
        self.epoch += 1;
        self.status.leader.store(leader, Ordering::SeqCst);
        self.metrics.leader.set(i64::from(leader));
        self.core = gang::GangScheduler::new(core_config(&self.settings));
        if leader {
            self.cluster.forget_reports();
        }
        self.cluster.replay(out, notes);
        self.last_group_status.clear();
        self.preemptions.clear();
        self.dirty_since = Some(Instant::now());
        self.retry_at = None;
        tracing::info!(leader, epoch = self.epoch, "core rebuilt from the cache");
    }

    fn pass(&mut self) {
        let changed_at = self.dirty_since.take();
        self.retry_at = None;
        let now = self.now();
        let t0 = Instant::now();
        let decisions = self.core.schedule(now);
        let match_secs = t0.elapsed().as_secs_f64();
        self.metrics.match_latency.observe(match_secs);
        self.queries
            .record_latency((match_secs * 1e6) as u64, !decisions.binds.is_empty());
        if let Some(t) = changed_at {
            self.metrics
                .scheduling_latency
                .observe(t.elapsed().as_secs_f64());
        }
        self.status.passes.fetch_add(1, Ordering::Relaxed);
        for plan in decisions.binds {
            tracing::debug!(group = %plan.group, pods = plan.pods.len(), "binding");
            if let Some(waited) = plan.waited {
                self.metrics
                    .group_wait
                    .get_or_create(&crate::metrics::SizeLabel::of(plan.pods.len()))
                    .observe(waited.0.max(0) as f64 / 1000.0);
            }
            for b in plan.pods {
                let w = self.writer.clone();
                let tx = self.tx.clone();
                let epoch = self.epoch;
                tokio::spawn(async move {
                    let outcome = w.bind(&b).await;
                    let _ = tx
                        .send(Input::BindDone {
                            epoch,
                            pod: b.pod,
                            node: b.node,
                            outcome,
                        })
                        .await;
                });
            }
        }
        let cx = preempt::Context {
            cluster: &self.cluster,
            writer: &self.writer,
            tx: &self.tx,
            epoch: self.epoch,
            scheduler_name: self.cluster.core_scheduler_name(),
        };
        for p in &decisions.preemptions {
            preempt::carry_out(p, &mut self.preemptions, &cx);
        }
        preempt::clear_abandoned(&mut self.preemptions, &self.core, &self.writer);
        for ch in decisions.group_changes {
            self.group_changed(ch);
        }
        // The core tells each pod of each kind of wait once (and a fresh core,
        // after a leadership change, tells it again): nothing to filter here.
        for ev in decisions.pod_events {
            if ev.unschedulable
                && let Some(mark) = self.unschedulable_mark(&ev.pod.0, &ev.message)
            {
                self.writer.mark_unschedulable(mark);
            }
            let warning = ev.kind == gang::EventType::Warning;
            let regarding = pod_ref(&ev.namespace, &ev.name, &ev.pod.0);
            self.writer.emit(regarding, warning, ev.reason, ev.message);
        }
        let waiting = self.core.waiting_groups();
        self.metrics.pending_groups.set(waiting as i64);
        self.metrics
            .pending_pods
            .set(self.cluster.pending_pod_count() as i64);
        // A pass that stopped at the core's per-pass cap continues at once,
        // right after its binds are issued: no cluster event may be coming
        // (binds free nothing), and waiting for one stalled whole bursts.
        if self.core.more_pending() {
            self.retry_at = Some(Instant::now());
            return;
        }
        // Cluster changes wake the loop by themselves; what the core tracks in
        // time (bind backoffs, vacancy timeouts, the unsatisfiable recheck)
        // wakes it at the core's own next deadline. `retry_interval` only
        // bounds the wait while groups are waiting, as a safety net.
        // Never sooner than one debounce from now: a deadline the pass did
        // not consume must not spin the loop.
        let soonest = Instant::now()
            + self
                .settings
                .debounce
                .max(std::time::Duration::from_millis(1));
        let wake = self
            .core
            .next_wakeup()
            .and_then(|at| self.instant_of(at))
            .map(|at| at.max(soonest));
        let net = (waiting > 0).then(|| Instant::now() + self.settings.retry_interval);
        self.retry_at = match (wake, net) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }

    /// The monotonic instant of a core timestamp (`now()` in reverse);
    /// `None` when it is too far away to represent.
    fn instant_of(&self, at: gang::Timestamp) -> Option<Instant> {
        let offset = at.as_millis().saturating_sub(self.started_unix_ms).max(0);
        self.started.checked_add(std::time::Duration::from_millis(
            u64::try_from(offset).ok()?,
        ))
    }

    fn group_changed(&mut self, ch: gang::GroupChange) {
        let label = match ch.phase {
            gang::GroupPhase::Scheduling
            | gang::GroupPhase::Scheduled
            | gang::GroupPhase::Running => "scheduled",
            gang::GroupPhase::Pending => match ch.wait {
                Some(gang::WaitReason::Unsatisfiable) => "unschedulable",
                _ => "waiting",
            },
            gang::GroupPhase::Failed => "unschedulable",
            gang::GroupPhase::Finished => "finished",
        };
        self.metrics.attempts.get_or_create(&result(label)).inc();
        tracing::debug!(group = %ch.group, phase = %ch.phase, message = %ch.message, "group changed");
        if let Some((version, name)) = self.cluster.native_podgroup(&ch.group)
            && let Some(cond) = crate::groups::status::condition(version, &ch)
            && self.last_group_status.get(&ch.group) != Some(&cond)
        {
            self.last_group_status
                .insert(ch.group.clone(), cond.clone());
            let (w, ns, name) = (
                self.writer.clone(),
                ch.group.namespace.clone(),
                name.to_string(),
            );
            tokio::spawn(crate::groups::status::write(w, version, ns, name, cond));
        }
        if let Some((version, leaves)) = self.cluster.composite_leaves(&ch.group)
            && let Some(cond) = crate::groups::status::condition(version, &ch)
            && self.last_group_status.get(&ch.group) != Some(&cond)
        {
            self.last_group_status
                .insert(ch.group.clone(), cond.clone());
            for name in leaves {
                let (w, ns) = (self.writer.clone(), ch.group.namespace.clone());
                tokio::spawn(crate::groups::status::write(
                    w,
                    version,
                    ns,
                    name,
                    cond.clone(),
                ));
            }
        }
        if !self.cluster.has_podgroup(&ch.group) {
            return;
        }
        let start = self
            .group_start
            .entry(ch.group.clone())
            .or_insert_with(|| {
                jiff::Timestamp::now()
                    .round(jiff::Unit::Second)
                    .map(|t| t.to_string())
                    .unwrap_or_default()
            })
            .clone();
        let status = json!({
            "phase": ch.phase.to_string(),
            "message": ch.message,
            "scheduled": ch.bound,
            "running": ch.running,
            "succeeded": ch.succeeded,
            "failed": ch.failed,
            "scheduleStartTime": start,
        });
        let previous_phase = self
            .last_group_status
            .get(&ch.group)
            .map(|s| s["phase"].clone());
        if self.last_group_status.get(&ch.group) == Some(&status) {
            return;
        }
        if previous_phase.as_ref() != Some(&status["phase"]) {
            let (warning, reason) = match ch.phase {
                gang::GroupPhase::Scheduled => (false, "Scheduled"),
                gang::GroupPhase::Failed => (true, "FailedScheduling"),
                gang::GroupPhase::Pending if ch.wait.is_some() => (true, "FailedScheduling"),
                _ => (false, ""),
            };
            if !reason.is_empty()
                && let Some(regarding) = self.cluster.podgroup_ref(&ch.group)
            {
                let w = self.writer.clone();
                let message = ch.message.clone();
                tokio::spawn(async move {
                    w.event(regarding, warning, reason.to_string(), message)
                        .await
                });
            }
        }
        self.last_group_status
            .insert(ch.group.clone(), status.clone());
        let w = self.writer.clone();
        tokio::spawn(async move { w.podgroup_status(&ch.group, status).await });
    }
}
