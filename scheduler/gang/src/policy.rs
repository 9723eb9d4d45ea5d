//! Scheduling policy: the order of the queue and when a waiting group is
//! protected, as pure functions of the group's arrival, expected run time
//! and the settings, kept out of the state machine so each rule is stated
//! (and tested) once.

use crate::time::{Millis, Timestamp};

/// Where a group sorts in the queue (within its priority): its arrival plus
/// `weight` times its expected run time, a virtual deadline. Zero weight is
/// first come, first served; a positive weight lets short jobs pass long
/// ones that arrived a little earlier, by at most `weight` times the long
/// job's run time, so no job is passed forever and the bound scales with
/// the workload (seconds for minute-long jobs, hours for hour-long ones).
pub fn queue_time(created: Timestamp, duration: Millis, weight: f64) -> Timestamp {
    if weight <= 0.0 || !weight.is_finite() {
        return created;
    }
    let shift = duration.0.max(0) as f64 * weight;
    // Float to integer saturates; the sum saturates too.
    Timestamp(created.0.saturating_add(shift as i64))
}

/// Until when a group whose pods are still being created (its newest pod
/// came at `newest`) holds back the groups behind it: a burst of jobs
/// submitted together is then ordered as submitted, not by which gang's
/// pods happened to be created first (small ones, always). `None` when it
/// does not hold anything back. A creation time more than `grace` ahead of
/// `now` (a skewed clock, or a made-up timestamp) is not trusted: it holds
/// nothing back, so no timestamp can stall the queue for longer than
/// twice the grace.
pub fn assembling_until(
    newest: Option<Timestamp>,
    now: Timestamp,
    grace: Millis,
) -> Option<Timestamp> {
    let newest = newest?;
    if grace.0 <= 0 || newest > now + grace {
        return None;
    }
    let until = newest + grace;
    (now < until).then_some(until)
}

/// Whether a reservation computed when `free_gen` was `freed_at` still
/// stands now that it is `free_gen`. Resources freed since (a job ended
/// early, a node came back) may move the head's start earlier and open
/// room for backfill, so the plan is made again; what was taken since is
/// already mirrored in its view.
pub fn keep_reservation(freed_at: u64, free_gen: u64) -> bool {
    freed_at == free_gen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_time_is_arrival_plus_weighted_run_time() {
        let t = Timestamp::from_secs(100);
        assert_eq!(queue_time(t, Millis::from_secs(60), 0.0), t);
        assert_eq!(
            queue_time(t, Millis::from_secs(60), 2.0),
            Timestamp::from_secs(220)
        );
        // A short job that came 10 s later sorts ahead of a long one.
        let long = queue_time(t, Millis::from_secs(600), 2.0);
        let short = queue_time(Timestamp::from_secs(110), Millis::from_secs(30), 2.0);
        assert!(short < long);
        // Nonsense weights fall back to arrival; huge values saturate.
        assert_eq!(queue_time(t, Millis::from_secs(60), f64::NAN), t);
        assert_eq!(queue_time(t, Millis::from_secs(60), -1.0), t);
        assert_eq!(queue_time(t, Millis(i64::MAX), 1e9), Timestamp(i64::MAX));
    }

    #[test]
    fn a_group_holds_back_only_within_the_grace_of_its_newest_pod() {
        let g = Millis::from_secs(1);
        let at = |ms| Timestamp::from_millis(ms);
        assert_eq!(assembling_until(Some(at(0)), at(500), g), Some(at(1000)));
        assert_eq!(assembling_until(Some(at(0)), at(1000), g), None);
        assert_eq!(assembling_until(None, at(0), g), None);
        assert_eq!(assembling_until(Some(at(0)), at(0), Millis(0)), None);
        // Slightly ahead (skew within the grace) still holds, bounded.
        assert_eq!(assembling_until(Some(at(900)), at(0), g), Some(at(1900)));
        // Far in the future: not trusted.
        assert_eq!(assembling_until(Some(at(1_000_000)), at(0), g), None);
    }

    #[test]
    fn a_reservation_is_planned_again_once_resources_are_freed() {
        assert!(keep_reservation(7, 7));
        assert!(!keep_reservation(7, 8));
    }
}
