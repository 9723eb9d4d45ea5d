//! End-to-end tests across crates and processes, and the Kubernetes API test
//! server they run the scheduler against.
#![forbid(unsafe_code)]

pub mod apiserver;
pub mod fixtures;
