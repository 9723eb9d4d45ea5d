//! Fluxion-style resource graph, jobspec and matcher.
//!
//! Pure and synchronous: no async, no Kubernetes. The scheduler, the gRPC
//! service, the simulator and the `phalanx query` shell all drive this crate.
//!
//! - [`graph`]: the resource graph ([`graph::ResourceGraph`]): typed
//!   vertices with stable [`graph::VertexId`]s, containment, status,
//!   per-vertex allocation spans and subtree aggregates for pruning
//!   ([`graph::PruneFilters`], `ALL:core,rack:node`).
//! - [`jobspec`]: Fluxion jobspec V1 ([`jobspec::Jobspec::parse`]); errors
//!   name the path (`resources[0].with[1].count: must be >= 1`).
//! - [`matcher`]: [`matcher::Matcher`] owns a graph and its jobs:
//!   `match_jobspec(op, job, &spec, now)` returns a
//!   [`matcher::MatchOutcome`] or [`matcher::MatchError::Busy`] /
//!   [`matcher::MatchError::Unsatisfiable`]; `cancel`, `partial_cancel`,
//!   `info`, `stat`, `find`.
//! - [`io`]: GRUG and JGF readers (Fluxion's graphs load unchanged), a JGF
//!   writer, an R (rv1exec) reader.
//! - [`writers`]: match output as resource-query prints it (simple,
//!   pretty_simple, jgf, rv1_nosched).
//! - [`planner`]: per-vertex time spans.
//! - [`generate`]: synthetic clusters for tests and benches.
#![forbid(unsafe_code)]

pub mod flow_nesting;
pub mod generate;
pub mod graph;
pub mod group;
mod idhash;
pub mod io;
pub mod jobspec;
mod marks;
pub mod matcher;
pub mod planner;
mod timeline;
pub mod writers;
