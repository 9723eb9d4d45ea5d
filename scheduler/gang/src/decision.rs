//! What the core decides: returned by
//! [`GangScheduler::schedule`](crate::GangScheduler::schedule) for the caller
//! to carry out (bind, update PodGroup status, emit Events).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::{GroupKey, NodeName, PodUid};
use crate::time::{Millis, Timestamp};

/// Everything one scheduling pass decided.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Decisions {
    /// Pods to bind. A plan covers a whole group the first time (every slot
    /// is already reserved); later plans carry retries and late members.
    pub binds: Vec<BindPlan>,
    /// Groups whose phase or reason changed.
    pub group_changes: Vec<GroupChange>,
    /// Per-pod events (Kubernetes Events on the pod).
    pub pod_events: Vec<PodEvent>,
    /// Victims to evict so that higher-priority groups fit: the caller
    /// deletes every pod listed (a gang's are all listed, never a part of
    /// its minimum) and marks the preemptor's pods with their nominated nodes.
    pub preemptions: Vec<Preemption>,
}

impl Decisions {
    /// Whether nothing was decided.
    pub fn is_empty(&self) -> bool {
        self.binds.is_empty()
            && self.group_changes.is_empty()
            && self.pod_events.is_empty()
            && self.preemptions.is_empty()
    }
}

/// Pods of one group to bind, each to its reserved node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindPlan {
    /// The group.
    pub group: GroupKey,
    /// Pod -> node.
    pub pods: Vec<PodBinding>,
    /// On a group's placement as a whole: how long it waited for it, from
    /// its creation (or from when it went back to the queue after being
    /// preempted whole). `None` for late members and retried binds.
    #[serde(default)]
    pub waited: Option<Millis>,
}

/// One pod's binding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodBinding {
    /// Pod UID (bind with a UID precondition).
    pub pod: PodUid,
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// Target node.
    pub node: NodeName,
}

/// One preemption: the group that needs room, and what makes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preemption {
    /// The group that preempts.
    pub preemptor: GroupKey,
    /// Its priority.
    pub priority: i32,
    /// The groups (or elastic members of groups) to evict.
    pub victims: Vec<Victim>,
    /// Where the preemptor's pods are expected to go once the victims are
    /// gone (`status.nominatedNodeName`); those resources are held for it.
    pub nominated: Vec<PodBinding>,
    /// A sentence for Events: who preempts whom, and why.
    pub message: String,
}

/// Pods of one group chosen as preemption victims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Victim {
    /// The victim group.
    pub group: GroupKey,
    /// Its priority.
    pub priority: i32,
    /// Whether the whole group goes (false: only members above its minimum).
    pub whole: bool,
    /// The pods to delete, each with the node it runs on.
    pub pods: Vec<PodBinding>,
    /// Whether evicting them goes past a PodDisruptionBudget (done only when
    /// no choice keeps every budget, as kube-scheduler does).
    pub violates_budget: bool,
}

/// A pod group's phase, as written to the PodGroup status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GroupPhase {
    /// Waiting: too few pods, or no room yet (see the reason).
    Pending,
    /// Placement decided and reserved; binds in flight.
    Scheduling,
    /// Every member pod is bound.
    Scheduled,
    /// Every member pod is running.
    Running,
    /// All pods ended and the group's resources are free.
    Finished,
    /// The group cannot be scheduled as specified (see the reason).
    Failed,
}

impl fmt::Display for GroupPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Why a pending group waits: machine-readable beside the human message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WaitReason {
    /// Fewer than minMember pods exist.
    WaitingForPods {
        /// Pods that exist.
        have: u32,
        /// minMember.
        want: u32,
    },
    /// It would fit an empty cluster but not now; a reservation holds its place.
    Reserved {
        /// Estimated start.
        start: Timestamp,
        /// The running group whose end makes room, if one does.
        after: Option<GroupKey>,
    },
    /// It would fit an empty cluster but not now, and it holds no reservation
    /// (another group ahead of it does).
    Busy,
    /// It can never fit the current nodes.
    Unsatisfiable,
}

/// A group's new phase and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupChange {
    /// The group.
    pub group: GroupKey,
    /// New phase.
    pub phase: GroupPhase,
    /// Why it is pending or failed, when it is.
    pub wait: Option<WaitReason>,
    /// A sentence a person can act on, e.g. "3 of 16 pods exist, waiting for 13".
    pub message: String,
    /// Pods bound now.
    pub bound: u32,
    /// Pods running now.
    pub running: u32,
    /// Pods that ended successfully.
    pub succeeded: u32,
    /// Pods that ended in failure.
    pub failed: u32,
}

/// Severity of a pod event (Kubernetes Event `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    /// Informational.
    Normal,
    /// Something needs attention.
    Warning,
}

/// An event about one pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodEvent {
    /// Pod UID.
    pub pod: PodUid,
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// Normal or Warning.
    pub kind: EventType,
    /// CamelCase reason (`Scheduled`, `FailedScheduling`, `Reserved`, `BindRetry`).
    pub reason: String,
    /// Human message.
    pub message: String,
    /// The pod's gang was tried and does not fit (it is reserved for, busy
    /// or unsatisfiable), as opposed to waiting for its own pods or placed:
    /// Kubernetes marks such a pod `PodScheduled=False`, reason
    /// `Unschedulable`, which cluster autoscalers and alerts look for.
    #[serde(default)]
    pub unschedulable: bool,
}
