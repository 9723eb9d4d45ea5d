//! Matching a Kubernetes-style pod group (pods of one or more shapes, with
//! per-pod node constraints) on the resource graph in one call.
//!
//! The graph here is cluster -> zone -> rack -> node -> NUMA zone, with CPU
//! (millicores), GPUs and memory as pools. CPU is a millicore pool per NUMA
//! zone: a `100m` pod takes 100 millicores, not a core, while a pod asking
//! whole cores (or GPUs) is kept inside one NUMA zone where one fits (and
//! must be on nodes whose topology policy is single-NUMA). Every rack and
//! zone keeps subtree aggregates (free units summed and the largest free
//! node), so a match skips racks that cannot hold a pod without visiting
//! their nodes.
//!
//! Unlike [`crate::graph::ResourceGraph`], which plans spans over time for
//! Fluxion jobspecs, this graph keeps only "free now" counters: placing a
//! Kubernetes pod is far more frequent than planning a Fluxion job, and the
//! gang scheduler plans the future itself (by replaying expected releases
//! on a copy, see [`GroupGraph::clone`]).
//!
//! - [`GroupGraph`]: the graph and its free state; [`GroupGraph::match_group`]
//!   finds a whole placement or says [`MatchError::Busy`] /
//!   [`MatchError::Unsatisfiable`]; [`GroupGraph::take`] and
//!   [`GroupGraph::give`] apply and undo [`PodClaim`]s.

mod graph;
mod matcher;
mod types;

pub use graph::GroupGraph;
pub use types::{
    Demand, GroupRequest, MatchError, NodeFilter, NodeId, NodeSpec, NumaSpec, Placement,
    PlacementPolicy, PodClaim, PodClass, UnknownPolicy,
};

#[cfg(test)]
mod tests;
