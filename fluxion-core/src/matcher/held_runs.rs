//! Runs of passed children at wide vertices, remembered between matches.
//!
//! A walk over a vertex with thousands of children (the nodes under a
//! rackless cluster) passes, match after match, the same leading children:
//! held exclusively by earlier jobs, or without a free vertex at the id the
//! policy prefers. It reads each one to see it. Allocations only hold more,
//! so "the first `n` children are passed during this window" stays true
//! until something may have been freed, which
//! [`ResourceGraph::free_epoch`] counts.
//!
//! [`ResourceGraph::free_epoch`]: crate::graph::ResourceGraph::free_epoch

use std::collections::HashMap;

use crate::graph::{IdEnd, TypeId, VertexId};
use crate::idhash::IdBuild;
use crate::planner::Time;

/// Vertices with this many children or more remember their runs.
pub(crate) const WIDE: usize = 64;

/// Why a walk passes a child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Passed {
    /// It is held exclusively: it gives nothing.
    Held,
    /// For each request, one of the listed types has no free unit at the
    /// id `end` in it: it cannot reach the bound (see `Search::may_reach`).
    ShortAtEnd(IdEnd, Vec<Vec<TypeId>>),
}

/// What a run is valid for: a window, a free epoch, a direction and a
/// reason to pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RunKey {
    pub(crate) at: Time,
    pub(crate) end: Time,
    pub(crate) epoch: u64,
    /// Counted from the last child back (a walk preferring high ids).
    pub(crate) from_end: bool,
    pub(crate) why: Passed,
}

/// The runs found so far, per wide vertex: what each is valid for, and its
/// length.
#[derive(Debug, Clone, Default)]
pub(crate) struct HeldRuns {
    runs: HashMap<VertexId, (RunKey, usize), IdBuild>,
}

impl HeldRuns {
    /// How many children of `v`, from its first (or, `from_end`, its last)
    /// on, are known to be passed under `key`.
    pub(crate) fn known(&self, v: VertexId, key: &RunKey) -> usize {
        match self.runs.get(&v) {
            Some((k, len)) if k == key => *len,
            _ => 0,
        }
    }

    /// Records that the first (or last) `len` children of `v` are passed
    /// under `key`.
    pub(crate) fn record(&mut self, v: VertexId, key: RunKey, len: usize) {
        self.runs.insert(v, (key, len));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_holds_for_its_window_epoch_direction_and_reason_only() {
        let v = VertexId::new(7);
        let short = Passed::ShortAtEnd(IdEnd::Lowest, vec![vec![TypeId(3)]]);
        let key = |at, end, epoch, from_end, why: &Passed| RunKey {
            at,
            end,
            epoch,
            from_end,
            why: why.clone(),
        };
        let held = &Passed::Held;
        let mut runs = HeldRuns::default();
        assert_eq!(runs.known(v, &key(0, 10, 3, false, held)), 0);
        runs.record(v, key(0, 10, 3, false, held), 40);
        assert_eq!(runs.known(v, &key(0, 10, 3, false, held)), 40);
        assert_eq!(runs.known(v, &key(0, 11, 3, false, held)), 0);
        assert_eq!(runs.known(v, &key(1, 10, 3, false, held)), 0);
        assert_eq!(runs.known(v, &key(0, 10, 4, false, held)), 0);
        assert_eq!(runs.known(v, &key(0, 10, 3, true, held)), 0);
        assert_eq!(runs.known(v, &key(0, 10, 3, false, &short)), 0);
        assert_eq!(runs.known(VertexId::new(8), &key(0, 10, 3, false, held)), 0);
        runs.record(v, key(0, 10, 3, false, &short), 5);
        assert_eq!(runs.known(v, &key(0, 10, 3, false, &short)), 5);
        let other = Passed::ShortAtEnd(IdEnd::Highest, vec![vec![TypeId(3)]]);
        assert_eq!(runs.known(v, &key(0, 10, 3, false, &other)), 0);
    }
}
