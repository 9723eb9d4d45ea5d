//! Runs of held children at wide vertices, remembered between matches.
//!
//! An id-ordered walk over a vertex with thousands of children (the nodes
//! under a rackless cluster) passes, match after match, the same leading
//! children that earlier jobs hold exclusively, and reads each one to see
//! it. Allocations only hold more, so "the first `n` children are held
//! exclusively during this window" stays true until something may have
//! been freed, which [`ResourceGraph::free_epoch`] counts.
//!
//! [`ResourceGraph::free_epoch`]: crate::graph::ResourceGraph::free_epoch

use std::collections::HashMap;

use crate::graph::VertexId;
use crate::idhash::IdBuild;
use crate::planner::Time;

/// Vertices with this many children or more remember their held runs.
pub(crate) const WIDE: usize = 64;

/// A run of held children, with what it was found under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    at: Time,
    end: Time,
    epoch: u64,
    /// Counted from the last child back (a walk preferring high ids).
    from_end: bool,
    len: usize,
}

/// The runs found so far, per wide vertex.
#[derive(Debug, Clone, Default)]
pub(crate) struct HeldRuns {
    runs: HashMap<VertexId, Run, IdBuild>,
}

impl HeldRuns {
    /// How many children of `v`, from its first (or, `from_end`, its last)
    /// on, are known to be held exclusively during `[at, end)`, the graph
    /// being at free epoch `epoch`.
    pub(crate) fn known(
        &self,
        v: VertexId,
        at: Time,
        end: Time,
        epoch: u64,
        from_end: bool,
    ) -> usize {
        let want =
            |r: &&Run| r.at == at && r.end == end && r.epoch == epoch && r.from_end == from_end;
        self.runs.get(&v).filter(want).map_or(0, |r| r.len)
    }

    /// Records that the first (or last) `len` children of `v` are held
    /// exclusively during `[at, end)` at free epoch `epoch`.
    pub(crate) fn record(
        &mut self,
        v: VertexId,
        at: Time,
        end: Time,
        epoch: u64,
        from_end: bool,
        len: usize,
    ) {
        let run = Run {
            at,
            end,
            epoch,
            from_end,
            len,
        };
        self.runs.insert(v, run);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_holds_for_its_window_epoch_and_direction_only() {
        let v = VertexId::new(7);
        let mut runs = HeldRuns::default();
        assert_eq!(runs.known(v, 0, 10, 3, false), 0);
        runs.record(v, 0, 10, 3, false, 40);
        assert_eq!(runs.known(v, 0, 10, 3, false), 40);
        assert_eq!(runs.known(v, 0, 11, 3, false), 0);
        assert_eq!(runs.known(v, 1, 10, 3, false), 0);
        assert_eq!(runs.known(v, 0, 10, 4, false), 0);
        assert_eq!(runs.known(v, 0, 10, 3, true), 0);
        assert_eq!(runs.known(VertexId::new(8), 0, 10, 3, false), 0);
    }
}
