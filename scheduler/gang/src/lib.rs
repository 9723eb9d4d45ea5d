//! The gang scheduling core: nodes, pods, pod groups and time in; bind plans,
//! group state changes and reasons out. Pure and synchronous: no I/O, no
//! async, no clock. `phalanx run` drives it from Kubernetes watches and
//! `phalanx simulate` from a discrete-event loop, with the same code.
//!
//! ```text
//! let mut core = GangScheduler::new(GangConfig::default());
//! core.apply(Event::NodeUpsert(node));
//! core.apply(Event::PodUpsert(pod));
//! let decisions = core.schedule(now);   // bind plans, group changes, pod events, preemptions
//! core.apply(Event::BindResult { pod, node, outcome: BindOutcome::Bound });
//! ```
#![forbid(unsafe_code)]

mod config;
mod convert;
mod decision;
mod event;
mod model;
mod policy;
pub mod quantity;
mod runtimes;
mod scheduler;
mod time;

pub use config::{GangConfig, MAX_RESERVE_DEPTH};
pub use convert::node_spec;
pub use decision::{
    BindPlan, Decisions, EventType, GroupChange, GroupPhase, PodBinding, PodEvent, Preemption,
    Victim, WaitReason,
};
pub use event::{BindOutcome, Event};
pub use fluxion_core::group::{PlacementPolicy, UnknownPolicy};
pub use model::{
    DURATION_ANNOTATION, DisruptionBudget, DisruptionMode, GPU_RESOURCE, GroupKey, LabelSelector,
    Node, NodeName, NumaPolicy, NumaZone, POD_GROUP_LABEL, Pod, PodGroup, PodPhase, PodUid,
    PreemptionPolicy, Resources, SelectorOperator, SelectorRequirement, SelectorTerm, Taint,
    TaintEffect, Toleration, TolerationOperator,
};
pub use scheduler::GangScheduler;
pub use time::{Millis, Timestamp};
