//! What happens to the cluster, told to the core through
//! [`GangScheduler::apply`](crate::GangScheduler::apply).

use serde::{Deserialize, Serialize};

use crate::model::{DisruptionBudget, GroupKey, Node, NodeName, Pod, PodGroup, PodUid};

/// A change in the cluster or the outcome of a bind the core asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Event {
    /// A node appeared or changed (capacity, labels, taints, cordon, readiness).
    NodeUpsert(Node),
    /// A node is gone; pods bound to it stop counting against it.
    NodeDelete(NodeName),
    /// A pod appeared or changed (any scheduler's: others' bound pods take capacity).
    PodUpsert(Pod),
    /// A pod is gone (deleted, evicted); its resources are released.
    PodDelete(PodUid),
    /// A PodGroup appeared or changed.
    GroupUpsert(PodGroup),
    /// A PodGroup is gone; its pods become groups of one.
    GroupDelete(GroupKey),
    /// A PodDisruptionBudget appeared or changed.
    BudgetUpsert(DisruptionBudget),
    /// A PodDisruptionBudget is gone.
    BudgetDelete {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// The outcome of binding `pod` to `node` as a [`BindPlan`](crate::BindPlan) asked.
    BindResult {
        /// The pod.
        pod: PodUid,
        /// The node it was to be bound to.
        node: NodeName,
        /// What the API server said.
        outcome: BindOutcome,
    },
}

/// The outcome of one pod's binding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BindOutcome {
    /// Bound.
    Bound,
    /// The pod was already bound (by us earlier, or by someone else) to `bound_to`.
    Conflict {
        /// Where the API server says it is bound, if known.
        bound_to: Option<NodeName>,
    },
    /// The pod no longer exists; its slot waits for a replacement.
    PodGone,
    /// Any other failure; the bind is retried on the same reservation.
    Failed {
        /// The API server's message.
        message: String,
    },
}
