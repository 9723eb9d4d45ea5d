//! Carrying out the core's preemptions against the API, as kube-scheduler's
//! preemption executor does for each victim pod: a `DisruptionTarget`
//! condition (reason `PreemptionByScheduler`) through pods/status, then a
//! graceful DELETE with the victim's UID as precondition (404: already gone;
//! 409: a new pod under that name, not ours to touch). A victim that is
//! already terminating gets no second call. The preemptor's pods get
//! `status.nominatedNodeName`, so users (and other schedulers) see where
//! they are going while the core holds those resources for them; pods of
//! lower priority nominated to those nodes lose their nomination, as
//! kube-scheduler clears it. A nomination ends with the binding
//! (kube-apiserver 1.35+ clears the field itself; on an older server, or
//! when a nomination write lands after the bind, the scheduler clears it on
//! the bound pod) or when the core gives the held room up (then the
//! scheduler clears it on the pods).
//!
//! Every write goes through the shared write budget (`--qps/--burst`) on its
//! own task; the loop only records what it issued, so the core may repeat a
//! preemption every pass (it does, while victims terminate) without a second
//! write, and a failed write is tried again the next time the core asks.

use std::collections::{HashMap, HashSet};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use phalanx_gang as gang;
use serde_json::json;
use tokio::sync::mpsc;

use crate::binder::{Writer, pod_ref};
use crate::cluster::Cluster;
use crate::scheduler::Input;

/// Condition type kube-scheduler puts on a preemption victim.
pub const DISRUPTION_TARGET: &str = "DisruptionTarget";
/// Its reason.
pub const PREEMPTION_BY_SCHEDULER: &str = "PreemptionByScheduler";

/// What the loop has issued in this leadership term.
#[derive(Debug, Default)]
pub struct Preemptions {
    /// Victim pods (UID) whose eviction was issued and has not failed.
    evicting: HashSet<String>,
    /// Preemptor pods (UID) and the nomination written: the pod itself, its
    /// node, and its group's priority.
    nominated: HashMap<String, Nomination>,
    /// Bound pods whose stale `nominatedNodeName` is being cleared.
    clearing: HashSet<String>,
}

impl Preemptions {
    /// Forgets an eviction that failed, so the core's next request retries it.
    pub fn forget(&mut self, uid: &str) {
        self.evicting.remove(uid);
    }

    /// A pod is gone: nothing about it is pending any more.
    pub fn pod_gone(&mut self, uid: &str) {
        self.evicting.remove(uid);
        self.nominated.remove(uid);
        self.clearing.remove(uid);
    }

    /// A new term starts from what the API shows (terminating pods, nominations).
    pub fn clear(&mut self) {
        self.evicting.clear();
        self.nominated.clear();
        self.clearing.clear();
    }

    /// A pod as the watch shows it. Once bound, a nomination is done:
    /// kube-apiserver 1.35 and later clears `status.nominatedNodeName` in
    /// the binding itself (gate `ClearingNominatedNodeNameAfterBinding`), an
    /// older one leaves it, and a nomination written just before the bind
    /// may land after it. A bound pod of ours that still shows one gets it
    /// removed, once (what the watch shows next says whether it took).
    pub fn pod_seen(&mut self, pod: &Pod, ours: bool, writer: &Writer) {
        let Some(uid) = pod.metadata.uid.as_deref() else {
            return;
        };
        let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
        if node.is_none_or(str::is_empty) {
            return;
        }
        let ours = self.nominated.remove(uid).is_some() || ours;
        let shown = pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.as_deref())
            .is_some_and(|n| !n.is_empty());
        if !shown {
            self.clearing.remove(uid);
            return;
        }
        if !ours
            || pod.metadata.deletion_timestamp.is_some()
            || !writer.may_write()
            || !self.clearing.insert(uid.into())
        {
            return;
        }
        let b = gang::PodBinding {
            pod: gang::PodUid(uid.to_string()),
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            node: String::new(),
        };
        let w = writer.clone();
        tokio::spawn(async move { w.clear_nomination(&b).await });
    }
}

/// A nomination as written to a preemptor pod.
#[derive(Debug, Clone)]
struct Nomination {
    pod: gang::PodBinding,
    priority: i32,
    /// The preemptor group it was written for.
    group: gang::GroupKey,
}

/// Everything one preemption needs from the loop.
#[derive(Debug)]
pub struct Context<'a> {
    /// The cache (a victim already terminating or gone is not written again).
    pub cluster: &'a Cluster,
    /// The writer.
    pub writer: &'a Writer,
    /// Where eviction results go.
    pub tx: &'a mpsc::Sender<Input>,
    /// The leadership term.
    pub epoch: u64,
    /// Our scheduler name (in the condition message, as kube-scheduler writes its own).
    pub scheduler_name: &'a str,
}

/// The PodGroup object behind a group, if it has one (coscheduling or native).
fn group_name(k: &gang::GroupKey) -> String {
    format!("{}/{}", k.namespace, k.name)
}

/// Issues the writes of one preemption that were not issued yet.
pub fn carry_out(p: &gang::Preemption, state: &mut Preemptions, cx: &Context<'_>) {
    let metrics = &cx.writer.metrics;
    let mut fresh = Vec::new();
    for v in &p.victims {
        for b in &v.pods {
            let uid = b.pod.0.as_str();
            if state.evicting.contains(uid) {
                continue;
            }
            // Only what the cache shows as this very pod, alive: a pod already
            // terminating is on its way out (a restart in the middle of a
            // preemption must not write again), a gone one needs nothing.
            match cx.cluster.pod(uid) {
                Some(pod) if pod.metadata.deletion_timestamp.is_none() => {
                    fresh.push((v, b));
                }
                _ => {}
            }
        }
    }
    if !fresh.is_empty() {
        metrics.preemptions.inc();
        let victims: Vec<String> = p
            .victims
            .iter()
            .map(|v| {
                let part = if v.whole {
                    String::new()
                } else {
                    format!(", {} members above its minimum", v.pods.len())
                };
                format!("{} (priority {}{part})", group_name(&v.group), v.priority)
            })
            .collect();
        tracing::info!(
            preemptor = %p.preemptor,
            priority = p.priority,
            victims = %victims.join(", "),
            pods = fresh.len(),
            "preempting"
        );
        // The preemptor's pods hear of it from the core's own `Preempting` pod events;
        // a victim group's PodGroup object (where it has one) hears of it here.
        let mut told = HashSet::new();
        for (v, _) in &fresh {
            if !told.insert(&v.group) {
                continue;
            }
            if let Some(regarding) = cx.cluster.podgroup_ref(&v.group) {
                cx.writer.emit(
                    regarding,
                    false,
                    "Preempted".into(),
                    format!(
                        "{} of its pods preempted by pod group {} (priority {}): {}",
                        v.pods.len(),
                        group_name(&p.preemptor),
                        p.priority,
                        p.message
                    ),
                );
            }
        }
    }
    let condition = format!(
        "{}: preempting to accommodate a higher priority pod group",
        cx.scheduler_name
    );
    for (v, b) in fresh {
        state.evicting.insert(b.pod.0.clone());
        // Who preempted it and why (the core's sentence names both sides and the budgets).
        let why = format!(
            "Preempted by pod group {} (priority {}) on node {}, as a member of {} (priority {}): {}",
            group_name(&p.preemptor),
            p.priority,
            b.node,
            group_name(&v.group),
            v.priority,
            p.message
        );
        let (w, tx, epoch, b, condition) = (
            cx.writer.clone(),
            cx.tx.clone(),
            cx.epoch,
            b.clone(),
            condition.clone(),
        );
        tokio::spawn(async move {
            let done = w.evict(&b, &condition, why).await;
            let _ = tx
                .send(Input::EvictDone {
                    epoch,
                    pod: b.pod.0.clone(),
                    done,
                })
                .await;
        });
    }
    // As kube-scheduler: lower-priority pods nominated to the nodes this
    // preemption takes lose their nomination (the core has taken their held
    // room over), so nobody reads a stale nominatedNodeName.
    let taken: HashSet<&str> = p.nominated.iter().map(|n| n.node.as_str()).collect();
    let ours: HashSet<&str> = p.nominated.iter().map(|n| n.pod.0.as_str()).collect();
    let stale: Vec<String> = state
        .nominated
        .iter()
        .filter(|(uid, n)| {
            n.priority < p.priority
                && taken.contains(n.pod.node.as_str())
                && !ours.contains(uid.as_str())
        })
        .map(|(uid, _)| uid.clone())
        .collect();
    for uid in stale {
        if let Some(n) = state.nominated.remove(&uid) {
            let w = cx.writer.clone();
            tokio::spawn(async move { w.clear_nomination(&n.pod).await });
        }
    }
    for n in &p.nominated {
        let uid = n.pod.0.as_str();
        if state
            .nominated
            .get(uid)
            .is_some_and(|w| w.pod.node == n.node)
        {
            continue;
        }
        let Some(pod) = cx.cluster.pod(uid) else {
            continue;
        };
        let shown = pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.as_deref());
        state.nominated.insert(
            uid.to_string(),
            Nomination {
                pod: n.clone(),
                priority: p.priority,
                group: p.preemptor.clone(),
            },
        );
        if shown == Some(n.node.as_str()) {
            continue;
        }
        let (w, n) = (cx.writer.clone(), n.clone());
        tokio::spawn(async move { w.nominate(&n).await });
    }
}

/// After a pass: nominations the core no longer backs (the preemptor gave
/// its room up: it may no longer preempt, can no longer fit, lost pods, or
/// its victims were stuck and no other choice exists) are removed from the
/// pods, as kube-scheduler clears a nomination that preemption no longer
/// backs. A pod the core has placed keeps it until its binding clears it.
pub fn clear_abandoned(state: &mut Preemptions, core: &gang::GangScheduler, writer: &Writer) {
    if state.nominated.is_empty() {
        return;
    }
    let gone: Vec<String> = state
        .nominated
        .iter()
        .filter(|(uid, n)| {
            !core.holds_room_for(&n.group) && core.pod_node(&gang::PodUid((*uid).clone())).is_none()
        })
        .map(|(uid, _)| uid.clone())
        .collect();
    for uid in gone {
        if let Some(n) = state.nominated.remove(&uid) {
            let w = writer.clone();
            tokio::spawn(async move { w.clear_nomination(&n.pod).await });
        }
    }
}

impl Writer {
    /// Evicts one victim: the `DisruptionTarget` condition, then a graceful
    /// DELETE with a UID precondition, then the `Preempted` Event. Returns
    /// whether the pod is now terminating or gone.
    pub async fn evict(&self, b: &gang::PodBinding, condition: &str, why: String) -> bool {
        if !self.may_write() {
            return false;
        }
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &b.namespace);
        let now = jiff::Timestamp::now()
            .round(jiff::Unit::Second)
            .map(|t| t.to_string())
            .unwrap_or_default();
        // `metadata.uid` makes the patch fail (409) on a new pod of the same name.
        let patch = json!({
            "metadata": {"uid": b.pod.0},
            "status": {"conditions": [{
                "type": DISRUPTION_TARGET, "status": "True", "reason": PREEMPTION_BY_SCHEDULER,
                "message": condition, "lastTransitionTime": now,
            }]},
        });
        self.limiter.acquire().await;
        match api
            .patch_status(&b.name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => return true,
            Err(e) => {
                tracing::warn!(pod = %b.name, error = %e, "marking a preemption victim failed");
                return false;
            }
        }
        self.limiter.acquire().await;
        if !self.may_write() {
            return false;
        }
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(b.pod.0.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(&b.name, &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => return true,
            Err(e) => {
                tracing::warn!(pod = %b.name, error = %e, "deleting a preemption victim failed");
                return false;
            }
        }
        self.metrics.preempted_pods.inc();
        self.emit(
            pod_ref(&b.namespace, &b.name, &b.pod.0),
            false,
            "Preempted".into(),
            why,
        );
        true
    }

    /// Writes `status.nominatedNodeName` on a preemptor pod (best effort).
    pub async fn nominate(&self, b: &gang::PodBinding) {
        self.write_nomination(b, json!(b.node)).await
    }

    /// Removes a pod's `status.nominatedNodeName` (best effort).
    pub async fn clear_nomination(&self, b: &gang::PodBinding) {
        self.write_nomination(b, serde_json::Value::Null).await
    }

    async fn write_nomination(&self, b: &gang::PodBinding, node: serde_json::Value) {
        if !self.may_write() {
            return;
        }
        self.limiter.acquire().await;
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &b.namespace);
        let patch = json!({
            "metadata": {"uid": b.pod.0},
            "status": {"nominatedNodeName": node},
        });
        if let Err(e) = api
            .patch_status(&b.name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
        {
            tracing::debug!(pod = %b.name, error = %e, "writing nominatedNodeName failed");
        }
    }
}
