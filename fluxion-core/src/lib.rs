//! Fluxion-style resource graph, jobspec and matcher.
//!
//! Pure and synchronous: no async, no Kubernetes. The scheduler, the gRPC
//! service, the simulator and the `phalanx query` shell all drive this crate.
#![forbid(unsafe_code)]

pub mod group;
