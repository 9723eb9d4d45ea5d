//! The counters an aggregate keeps ("slots").
//!
//! Slot `i < targets.len()` counts the units of `targets[i]`, a type named
//! by the prune filters. After those come the *id-end* slots: for a tracked
//! type whose lowest (or highest) id is shared by several vertices, as core
//! ids are when they restart in every node, one slot counts only the units
//! at that id. The `low` and `high` policies rank vertices by id, so the
//! best a subtree can offer is a free vertex at that id: an id-end slot
//! tells, without descending, whether a subtree still has one.

use smallvec::SmallVec;

use super::{PruneFilters, TypeId};

/// One end of a type's id range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdEnd {
    /// The smallest id (what the `low` policy prefers).
    Lowest,
    /// The largest id (what the `high` policy prefers).
    Highest,
}

/// An id-end slot: the units of `targets[target]` whose id is `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct EndSlot {
    target: usize,
    end: IdEnd,
    id: i64,
}

/// Prune filters resolved against a graph's types and ids: which vertices
/// keep aggregates, and what each aggregate slot counts.
#[derive(Debug, Clone, Default)]
pub(super) struct ResolvedFilters {
    pub(super) spec: PruneFilters,
    /// Tracked target types (slot `i` counts `targets[i]`).
    pub(super) targets: Vec<TypeId>,
    /// Anchor type per rule (None = ALL) and the target slot it tracks.
    rules: Vec<(Option<TypeId>, usize)>,
    /// Slot `targets.len() + i` is `ends[i]`.
    ends: Vec<EndSlot>,
}

impl ResolvedFilters {
    /// Filters with the given targets and rules and no id-end slots yet
    /// (see [`Self::set_id_ends`]).
    pub(super) fn new(
        spec: PruneFilters,
        targets: Vec<TypeId>,
        rules: Vec<(Option<TypeId>, usize)>,
    ) -> Self {
        ResolvedFilters {
            spec,
            targets,
            rules,
            ends: Vec::new(),
        }
    }

    /// Number of slots an aggregate keeps.
    pub(super) fn width(&self) -> usize {
        self.targets.len() + self.ends.len()
    }

    /// Whether vertices of `kind` keep an aggregate.
    pub(super) fn is_anchor(&self, kind: TypeId) -> bool {
        self.rules.iter().any(|(a, _)| a.is_none_or(|a| a == kind))
    }

    /// Whether vertices of type `anchor` count `slot`.
    pub(super) fn tracks(&self, anchor: TypeId, slot: usize) -> bool {
        let target = match slot.checked_sub(self.targets.len()) {
            Some(e) => match self.ends.get(e) {
                Some(end) => end.target,
                None => return false,
            },
            None => slot,
        };
        self.rules
            .iter()
            .any(|&(a, s)| s == target && a.is_none_or(|a| a == anchor))
    }

    /// Whether vertices of type `anchor` count every slot.
    pub(super) fn tracks_every_slot(&self, anchor: TypeId) -> bool {
        (0..self.width()).all(|s| self.tracks(anchor, s))
    }

    /// The slot counting every unit of `kind`.
    pub(super) fn slot(&self, kind: TypeId) -> Option<usize> {
        self.targets.iter().position(|&t| t == kind)
    }

    /// The slot counting the units of `kind` at its `end` id, and that id.
    pub(super) fn end_slot(&self, kind: TypeId, end: IdEnd) -> Option<(usize, i64)> {
        let target = self.slot(kind)?;
        self.ends
            .iter()
            .position(|e| e.target == target && e.end == end)
            .map(|i| (self.targets.len() + i, self.ends[i].id))
    }

    /// Every slot that counts a vertex of type `kind` with id `id`.
    pub(super) fn slots_of(&self, kind: TypeId, id: i64) -> SmallVec<[usize; 3]> {
        let mut out = SmallVec::new();
        let Some(target) = self.slot(kind) else {
            return out;
        };
        out.push(target);
        for (i, e) in self.ends.iter().enumerate() {
            if e.target == target && e.id == id {
                out.push(self.targets.len() + i);
            }
        }
        out
    }

    /// Sets the id-end slots from the `(type, id)` of every vertex: one per
    /// end of a tracked type whose end id is shared by two vertices or
    /// more. (A type whose ids are all distinct gains nothing: its best
    /// vertex is a single one, which the matcher meets early anyway.)
    pub(super) fn set_id_ends(&mut self, vertices: impl Iterator<Item = (TypeId, i64)>) {
        // Per target: (lowest id, how many), (highest id, how many).
        type IdCount = (i64, u32);
        let mut seen: Vec<Option<(IdCount, IdCount)>> = vec![None; self.targets.len()];
        for (kind, id) in vertices {
            let Some(t) = self.slot(kind) else { continue };
            let (low, high) = seen[t].get_or_insert(((id, 0), (id, 0)));
            for (better, end) in [(id < low.0, low), (id > high.0, high)] {
                if better {
                    *end = (id, 1);
                } else if end.0 == id {
                    end.1 += 1;
                }
            }
        }
        self.ends.clear();
        for (target, s) in seen.into_iter().enumerate() {
            let Some((low, high)) = s else { continue };
            for (end, (id, count)) in [(IdEnd::Lowest, low), (IdEnd::Highest, high)] {
                if count >= 2 {
                    self.ends.push(EndSlot { target, end, id });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filters(targets: &[u16]) -> ResolvedFilters {
        let targets: Vec<TypeId> = targets.iter().map(|&t| TypeId(t)).collect();
        let rules = (0..targets.len()).map(|s| (None, s)).collect();
        ResolvedFilters::new(PruneFilters::default(), targets, rules)
    }

    #[test]
    fn id_end_slots_only_for_repeated_end_ids() {
        let (core, node, gpu) = (TypeId(1), TypeId(2), TypeId(3));
        let mut f = filters(&[1, 2]);
        // Cores 0..3 in each of two nodes; node ids 0 and 1 (all distinct).
        let verts = (0..2).flat_map(|_| (0..4).map(move |c| (core, c))).chain([
            (node, 0),
            (node, 1),
            (gpu, 0),
            (gpu, 0),
        ]);
        f.set_id_ends(verts);
        assert_eq!(f.width(), 4);
        assert_eq!(f.end_slot(core, IdEnd::Lowest), Some((2, 0)));
        assert_eq!(f.end_slot(core, IdEnd::Highest), Some((3, 3)));
        assert_eq!(f.end_slot(node, IdEnd::Lowest), None);
        // gpu is not tracked, so repeated ids add nothing.
        assert_eq!(f.end_slot(gpu, IdEnd::Lowest), None);
        assert_eq!(f.slots_of(core, 0).as_slice(), &[0, 2]);
        assert_eq!(f.slots_of(core, 3).as_slice(), &[0, 3]);
        assert_eq!(f.slots_of(core, 1).as_slice(), &[0]);
        assert_eq!(f.slots_of(node, 0).as_slice(), &[1]);
        assert!(f.slots_of(gpu, 0).is_empty());
        // An id-end slot is tracked wherever its type is.
        assert!(f.tracks(node, 2) && f.tracks(node, 3));
        assert!(!f.tracks(node, 4));
    }

    #[test]
    fn id_end_slots_follow_anchor_rules() {
        let (rack, core) = (TypeId(0), TypeId(1));
        let mut f =
            ResolvedFilters::new(PruneFilters::default(), vec![core], vec![(Some(rack), 0)]);
        f.set_id_ends([(core, 5), (core, 5), (core, 9)].into_iter());
        assert_eq!(f.end_slot(core, IdEnd::Lowest), Some((1, 5)));
        assert_eq!(f.end_slot(core, IdEnd::Highest), None);
        assert!(f.tracks(rack, 1));
        assert!(!f.tracks(core, 1));
    }
}
