//! Per-vertex time planner: spans of (start, end, amount) held by jobs.
//!
//! Each vertex keeps its own list of spans, one per job touching it. Most
//! lists are short, and a scan beats any tree; the graph sums the spans of
//! a vertex many jobs go through into a timeline (`timeline.rs`) so its
//! window queries do not grow with the number of jobs.

/// Time in seconds (the matcher's clock; `0` is the epoch of a session).
pub type Time = i64;

/// Identifier of a job (allocation or reservation).
pub type JobId = u64;

/// One job's hold on a vertex during `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Span {
    /// The job holding the vertex.
    pub job: JobId,
    /// First second of the hold.
    pub start: Time,
    /// First second after the hold.
    pub end: Time,
    /// Units of the vertex consumed (0 for a shared pass-through hold).
    pub amount: u64,
    /// Whether the job holds the vertex exclusively (nobody else may touch it).
    pub exclusive: bool,
    /// Whether this is a reservation (future start) rather than an allocation.
    pub reserved: bool,
}

impl Span {
    /// Whether the span intersects the half-open window `[start, end)`.
    pub fn overlaps(&self, start: Time, end: Time) -> bool {
        self.start < end && start < self.end
    }
}

/// Usage of a vertex over a window, as seen by the matcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Peak sum of consumed units at any instant of the window.
    pub peak_amount: u64,
    /// Whether some job holds the vertex exclusively somewhere in the window.
    pub exclusive_held: bool,
    /// Whether any job holds the vertex at all somewhere in the window.
    pub any_held: bool,
}

/// Peak usage of `spans` within `[start, end)`.
pub fn usage(spans: &[Span], start: Time, end: Time) -> Usage {
    let mut u = Usage::default();
    let mut any_amount = false;
    for s in spans.iter().filter(|s| s.overlaps(start, end)) {
        u.any_held = true;
        u.exclusive_held |= s.exclusive;
        any_amount |= s.amount > 0;
    }
    if any_amount {
        u.peak_amount = peak(spans.iter().map(|s| (s.start, s.end, s.amount)), start, end);
    }
    u
}

/// Peak of the sum of `amount` over instants of `[start, end)`, for intervals
/// `(start, end, amount)`. The peak is reached at the window start or at some
/// interval start inside the window, so only those instants are probed.
pub fn peak<I>(items: I, start: Time, end: Time) -> u64
where
    I: Iterator<Item = (Time, Time, u64)> + Clone,
{
    // Common case first: nothing starts inside the window (every hold began
    // at or before its start), so the load at the start is the peak.
    let mut at_start = 0u64;
    let mut starts_inside = false;
    for (s, e, a) in items.clone() {
        if s <= start && start < e {
            at_start += a;
        } else if s > start && s < end {
            starts_inside = true;
        }
    }
    if !starts_inside {
        return at_start;
    }
    let mut best = at_start;
    let probes = items
        .clone()
        .filter(move |&(s, _, _)| s > start && s < end)
        .map(|(s, _, _)| s);
    for t in probes {
        let sum: u64 = items
            .clone()
            .filter(|&(s, e, _)| s <= t && t < e)
            .map(|(_, _, a)| a)
            .sum();
        best = best.max(sum);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(job: JobId, start: Time, end: Time, amount: u64) -> Span {
        Span {
            job,
            start,
            end,
            amount,
            exclusive: false,
            reserved: false,
        }
    }

    #[test]
    fn peak_counts_only_overlapping_instants() {
        let spans = [span(1, 0, 10, 2), span(2, 10, 20, 3), span(3, 5, 15, 1)];
        assert_eq!(usage(&spans, 0, 5).peak_amount, 2);
        assert_eq!(usage(&spans, 0, 10).peak_amount, 3);
        assert_eq!(usage(&spans, 10, 11).peak_amount, 4);
        assert_eq!(usage(&spans, 20, 30), Usage::default());
    }
}
