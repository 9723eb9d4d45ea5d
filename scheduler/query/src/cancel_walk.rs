//! The visit counts resource-query prints after `cancel ID stats`.
//!
//! Phalanx releases a job from its own claim list and walks nothing, but
//! scripts written for resource-query read the counts of Fluxion's cancel
//! walk: a depth-first walk from the root that enters every child of a
//! vertex the job is tagged on, and goes no deeper below a vertex the job is
//! not tagged on. A job is tagged on every vertex its match emitted.

use std::collections::HashSet;

use fluxion_core::graph::{ResourceGraph, VertexId};

/// The pre-order and post-order visit counts of a cancel walk over
/// `tagged`: every tagged vertex reachable from the root through tagged
/// vertices is visited and finished; each of their untagged children is
/// visited and not finished. `(0, 0)` when the root is not tagged.
pub(crate) fn cancel_walk_counts(
    graph: &ResourceGraph,
    tagged: impl IntoIterator<Item = VertexId>,
) -> (u64, u64) {
    let tagged: HashSet<VertexId> = tagged.into_iter().collect();
    let Some(root) = graph.root().filter(|r| tagged.contains(r)) else {
        return (0, 0);
    };
    let (mut pre, mut post) = (0, 0);
    let mut stack = vec![root];
    while let Some(v) = stack.pop() {
        pre += 1;
        if tagged.contains(&v) {
            post += 1;
            stack.extend_from_slice(graph.children(v));
        }
    }
    (pre, post)
}
