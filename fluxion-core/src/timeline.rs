//! Units in use over time, as a step function.
//!
//! A vertex that many jobs go through (the root, a rack, a node shared by
//! dozens of small jobs) would otherwise answer "how much is in use during
//! this window" by scanning one record per job. A [`Timeline`] keeps, for
//! each instant where the load changes, the load from that instant on, in a
//! few columns (one per resource type, or amount / exclusive holders / all
//! holders). Jobs that start and end together share points, so a window
//! query is a binary search plus the few points inside the window, whatever
//! the number of jobs.

use crate::planner::Time;

/// A step function of `width` counters over time: zero before the first
/// point, `values[i * width + c]` from `times[i]` until the next point.
/// No two neighbouring points carry the same counters, and the first point
/// is not all zeros, so the number of points stays at the number of
/// distinct instants where the load changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Timeline {
    width: usize,
    times: Vec<Time>,
    values: Vec<u64>,
}

impl Timeline {
    /// An empty timeline (zero everywhere) of `width` counters.
    pub(crate) fn new(width: usize) -> Self {
        Timeline {
            width,
            times: Vec::new(),
            values: Vec::new(),
        }
    }

    /// Adds `units` to counter `col` during `[start, end)`.
    pub(crate) fn add(&mut self, start: Time, end: Time, col: usize, units: u64) {
        self.change(start, end, col, units, false);
    }

    /// Takes `units` from counter `col` during `[start, end)` (saturating at
    /// zero, so a bad release never wraps around).
    pub(crate) fn sub(&mut self, start: Time, end: Time, col: usize, units: u64) {
        self.change(start, end, col, units, true);
    }

    fn change(&mut self, start: Time, end: Time, col: usize, units: u64, take: bool) {
        if start >= end || units == 0 || col >= self.width {
            return;
        }
        let i = self.point(start);
        let j = self.point(end);
        for k in i..j {
            let v = &mut self.values[k * self.width + col];
            *v = if take {
                v.saturating_sub(units)
            } else {
                v.saturating_add(units)
            };
        }
        // Only the two ends can have become equal to their predecessor;
        // the higher one goes first so `i` stays valid.
        self.merge_into_previous(j);
        self.merge_into_previous(i);
    }

    /// The index of the point at `t`, inserting one (carrying the load in
    /// effect at `t`) if there is none.
    fn point(&mut self, t: Time) -> usize {
        match self.times.binary_search(&t) {
            Ok(i) => i,
            Err(i) => {
                let w = self.width;
                self.times.insert(i, t);
                let carried: Vec<u64> = if i == 0 {
                    vec![0; w]
                } else {
                    self.values[(i - 1) * w..i * w].to_vec()
                };
                self.values.splice(i * w..i * w, carried);
                i
            }
        }
    }

    /// Removes point `i` if it changes nothing.
    fn merge_into_previous(&mut self, i: usize) {
        if i >= self.times.len() {
            return;
        }
        let w = self.width;
        let same = if i == 0 {
            self.values[..w].iter().all(|&v| v == 0)
        } else {
            self.values[(i - 1) * w..i * w] == self.values[i * w..(i + 1) * w]
        };
        if same {
            self.times.remove(i);
            self.values.drain(i * w..(i + 1) * w);
        }
    }

    /// The highest value of counter `col` at any instant of `[start, end)`.
    pub(crate) fn peak(&self, col: usize, start: Time, end: Time) -> u64 {
        let w = self.width;
        let first = self.times.partition_point(|&t| t <= start);
        let mut best = match first {
            0 => 0,
            i => self.values[(i - 1) * w + col],
        };
        for (k, &t) in self.times.iter().enumerate().skip(first) {
            if t >= end {
                break;
            }
            best = best.max(self.values[k * w + col]);
        }
        best
    }

    /// Whether the timeline is zero everywhere.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.times.is_empty()
    }

    /// Number of points (instants where the load changes).
    #[cfg(test)]
    pub(crate) fn points(&self) -> usize {
        self.times.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The peak by brute force: the load at every instant of the window.
    fn naive_peak(holds: &[(Time, Time, u64)], start: Time, end: Time) -> u64 {
        (start..end)
            .map(|t| {
                holds
                    .iter()
                    .filter(|&&(s, e, _)| s <= t && t < e)
                    .map(|&(_, _, a)| a)
                    .sum()
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn jobs_sharing_a_window_share_its_two_points() {
        let mut tl = Timeline::new(1);
        for _ in 0..1000 {
            tl.add(0, 3600, 0, 2);
        }
        assert_eq!(tl.points(), 2);
        assert_eq!(tl.peak(0, 0, 1), 2000);
        assert_eq!(tl.peak(0, 3600, 7200), 0);
        for _ in 0..1000 {
            tl.sub(0, 3600, 0, 2);
        }
        assert!(tl.is_empty());
    }

    #[test]
    fn counters_are_independent() {
        let mut tl = Timeline::new(3);
        tl.add(10, 20, 0, 5);
        tl.add(15, 30, 2, 1);
        assert_eq!(tl.peak(0, 0, 100), 5);
        assert_eq!(tl.peak(1, 0, 100), 0);
        assert_eq!(tl.peak(2, 0, 15), 0);
        assert_eq!(tl.peak(2, 29, 30), 1);
        tl.sub(10, 20, 0, 5);
        assert_eq!(tl.peak(0, 0, 100), 0);
        assert_eq!(tl.points(), 2, "only counter 2's window is left");
    }

    #[test]
    fn empty_windows_and_zero_units_change_nothing() {
        let mut tl = Timeline::new(1);
        tl.add(5, 5, 0, 3);
        tl.add(7, 3, 0, 3);
        tl.add(1, 9, 0, 0);
        tl.add(1, 9, 4, 1);
        assert!(tl.is_empty());
        assert_eq!(tl.peak(0, 0, 10), 0);
    }

    proptest! {
        /// After any sequence of adds and removals the peak over any window
        /// equals the brute-force peak of the holds still in place, and the
        /// timeline empties when they are all gone.
        #[test]
        fn peak_matches_brute_force(
            holds in prop::collection::vec((0i64..40, 1i64..20, 1u64..5), 1..30),
            drop_mask in prop::collection::vec(any::<bool>(), 30),
            windows in prop::collection::vec((0i64..60, 1i64..30), 1..10),
        ) {
            let holds: Vec<(Time, Time, u64)> =
                holds.into_iter().map(|(s, d, a)| (s, s + d, a)).collect();
            let mut tl = Timeline::new(2);
            for &(s, e, a) in &holds {
                tl.add(s, e, 1, a);
            }
            let mut kept = Vec::new();
            for (i, &(s, e, a)) in holds.iter().enumerate() {
                if drop_mask[i] {
                    tl.sub(s, e, 1, a);
                } else {
                    kept.push((s, e, a));
                }
            }
            for &(s, d) in &windows {
                prop_assert_eq!(tl.peak(1, s, s + d), naive_peak(&kept, s, s + d));
                prop_assert_eq!(tl.peak(0, s, s + d), 0);
            }
            for &(s, e, a) in &kept {
                tl.sub(s, e, 1, a);
            }
            prop_assert!(tl.is_empty());
        }
    }
}
