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

/// A group's run time as the queue order counts it: at most `cap` times
/// the queue's drain time `drain` (when both are set), so that the
/// run-time term of [`queue_time`] scales with how long the queue takes
/// to clear, not only with how long jobs run.
pub fn capped_duration(duration: Millis, drain: Option<Millis>, cap: f64) -> Millis {
    match drain {
        Some(d) if cap > 0.0 && cap.is_finite() => {
            // Float to integer saturates.
            let limit = (d.0.max(0) as f64 * cap) as i64;
            Millis(duration.0.min(limit))
        }
        _ => duration,
    }
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

/// The latest start promised to a group when it is first reserved for:
/// the reservation's `start` plus `slack` times its run time (see
/// `GangConfig::backfill_slack`). `None` when there is no slack.
pub fn promised_start(start: Timestamp, duration: Millis, slack: f64) -> Option<Timestamp> {
    if !(slack > 0.0 && slack.is_finite()) {
        return None;
    }
    // Float to integer saturates; the sum saturates too.
    let extra = (duration.0.max(0) as f64 * slack) as i64;
    Some(Timestamp(start.0.saturating_add(extra)))
}

/// Until when a later group may run on resources the reservations will
/// need: before the head's start, or its promised start where that is
/// later, and in any case before the first reservation behind the head
/// starts (those have no slack).
pub fn backfill_deadline(
    head_start: Timestamp,
    head_promised: Option<Timestamp>,
    first_behind: Option<Timestamp>,
) -> Timestamp {
    let head = head_promised.map_or(head_start, |p| p.max(head_start));
    first_behind.map_or(head, |b| b.min(head))
}

/// Whether a later group may start beside the head's reservation now (on
/// resources the head will not need): only while the head's expected
/// start is at least `after` times its run time away. Where the head will
/// start soon, holding the room beside it costs little, and letting small
/// gangs into it is what makes big ones wait longer than small ones.
pub fn backfill_beside(
    after: f64,
    now: Timestamp,
    head_start: Timestamp,
    head_duration: Option<Millis>,
) -> bool {
    if after.is_nan() || after <= 0.0 {
        return true;
    }
    let Some(d) = head_duration else {
        return true;
    };
    let ahead = head_start.since(now).0.max(0) as f64;
    ahead >= after * d.0.max(0) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_time_counted_is_capped_at_drain_times() {
        let hour = Millis::from_secs(3600);
        let drain = Some(Millis::from_secs(100));
        assert_eq!(capped_duration(hour, drain, 4.0), Millis::from_secs(400));
        assert_eq!(
            capped_duration(Millis::from_secs(60), drain, 4.0),
            Millis::from_secs(60)
        );
        assert_eq!(capped_duration(hour, drain, 0.0), hour, "0 is off");
        assert_eq!(capped_duration(hour, None, 4.0), hour);
        assert_eq!(capped_duration(hour, drain, f64::NAN), hour);
        assert_eq!(capped_duration(hour, Some(Millis(i64::MAX)), 1e9), hour);
    }

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
    fn backfill_beside_only_while_the_head_is_far_from_starting() {
        let now = Timestamp::from_secs(0);
        let hour = Some(Millis::from_secs(3600));
        // Head starts in 10 min, runs 1 h: 10 min >= 0.1 h.
        assert!(backfill_beside(0.1, now, Timestamp::from_secs(600), hour));
        // Starts in 5 min: too soon, the room beside it is held.
        assert!(!backfill_beside(0.1, now, Timestamp::from_secs(300), hour));
        // Zero (or NaN) is plain EASY; infinity never.
        assert!(backfill_beside(0.0, now, now, hour));
        assert!(backfill_beside(f64::NAN, now, now, hour));
        assert!(!backfill_beside(
            f64::INFINITY,
            now,
            Timestamp::from_secs(1 << 40),
            hour
        ));
    }

    #[test]
    fn slack_promises_a_bounded_later_start() {
        let start = Timestamp::from_secs(100);
        let hour = Millis::from_secs(3600);
        assert_eq!(
            promised_start(start, hour, 0.5),
            Some(Timestamp::from_secs(1900))
        );
        assert_eq!(promised_start(start, hour, 0.0), None, "0 is off");
        assert_eq!(promised_start(start, hour, f64::NAN), None);
        assert_eq!(promised_start(start, hour, -1.0), None);
        assert_eq!(
            promised_start(start, Millis(i64::MAX), 1e9),
            Some(Timestamp(i64::MAX))
        );
        let at = Timestamp::from_secs;
        // The head's promise extends the deadline...
        assert_eq!(backfill_deadline(at(100), Some(at(400)), None), at(400));
        // ...never shortens it (the head is already late)...
        assert_eq!(backfill_deadline(at(500), Some(at(400)), None), at(500));
        // ...and reservations behind the head, which have no slack, bound it.
        assert_eq!(
            backfill_deadline(at(100), Some(at(400)), Some(at(200))),
            at(200)
        );
        assert_eq!(
            backfill_deadline(at(100), Some(at(400)), Some(at(50))),
            at(50)
        );
        assert_eq!(backfill_deadline(at(100), None, None), at(100));
    }

    #[test]
    fn a_reservation_is_planned_again_once_resources_are_freed() {
        assert!(keep_reservation(7, 7));
        assert!(!keep_reservation(7, 8));
    }
}
