//! The gang scheduling core: nodes, pods, pod groups and time in; bind plans,
//! group state changes and reasons out. Pure and synchronous.
#![forbid(unsafe_code)]
