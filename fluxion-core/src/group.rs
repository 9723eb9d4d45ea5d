//! Matching a Kubernetes-style pod group (pods of one or more shapes, with
//! per-pod node constraints) on the resource graph in one call.
