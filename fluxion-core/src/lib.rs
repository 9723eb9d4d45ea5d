//! Fluxion-style resource graph, jobspec and matcher.
//!
//! Pure and synchronous: no async, no Kubernetes. The scheduler, the gRPC
//! service, the simulator and the `phalanx query` shell all drive this crate.
//!
//! - [`graph`]: the resource graph ([`graph::ResourceGraph`]), allocation
//!   state and subtree aggregates for pruning.
//! - [`planner`]: per-vertex time spans.
//! - [`generate`]: synthetic clusters for tests and benches.
#![forbid(unsafe_code)]

pub mod generate;
pub mod graph;
pub mod group;
pub mod io;
pub mod jobspec;
pub mod matcher;
pub mod planner;
pub mod writers;
