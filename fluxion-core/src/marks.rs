//! A reusable set of vertices for per-match scratch work.

use crate::graph::VertexId;

/// A set of vertices that empties in constant time: each slot remembers the
/// round it was last added in, and a new round forgets every earlier one.
/// Kept between matches, so a match touches only the slots of its own
/// vertices instead of building a hash set of thousands.
#[derive(Debug, Clone, Default)]
pub(crate) struct VertexMarks {
    round: u32,
    seen: Vec<u32>,
}

impl VertexMarks {
    /// Empties the set and makes room for vertex indices below `bound`.
    pub(crate) fn clear(&mut self, bound: usize) {
        self.round = self.round.wrapping_add(1);
        if self.round == 0 {
            self.seen.fill(0);
            self.round = 1;
        }
        if self.seen.len() < bound {
            self.seen.resize(bound, 0);
        }
    }

    /// Adds `v`; returns whether it was new.
    pub(crate) fn insert(&mut self, v: VertexId) -> bool {
        let i = v.index();
        if i >= self.seen.len() {
            self.seen.resize(i + 1, 0);
        }
        let slot = &mut self.seen[i];
        let new = *slot != self.round;
        *slot = self.round;
        new
    }

    /// Whether `v` is in the set.
    pub(crate) fn contains(&self, v: VertexId) -> bool {
        self.seen.get(v.index()) == Some(&self.round)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_round_forgets_the_last_one() {
        let mut m = VertexMarks::default();
        let (a, b) = (VertexId::new(3), VertexId::new(9));
        m.clear(4);
        assert!(m.insert(a));
        assert!(!m.insert(a));
        assert!(m.contains(a) && !m.contains(b));
        // Indices past the bound grow the set.
        assert!(m.insert(b) && m.contains(b));
        m.clear(10);
        assert!(!m.contains(a) && !m.contains(b));
        assert!(m.insert(b));
    }

    #[test]
    fn wrapping_the_round_counter_forgets_everything() {
        let mut m = VertexMarks::default();
        let a = VertexId::new(1);
        m.clear(2);
        m.insert(a);
        // Jump to the last round: the next clear wraps to 0, which must
        // not read old slots as marked.
        m.round = u32::MAX;
        m.insert(a);
        m.clear(2);
        assert!(!m.contains(a));
        assert!(m.insert(a));
    }
}
