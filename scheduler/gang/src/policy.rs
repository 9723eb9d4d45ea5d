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
/// does not hold anything back.
pub fn assembling_until(
    newest: Option<Timestamp>,
    now: Timestamp,
    grace: Millis,
) -> Option<Timestamp> {
    let until = newest? + grace;
    (grace.0 > 0 && now < until).then_some(until)
}

/// Whether a reservation computed when `free_gen` was `freed_at` still
/// stands now that it is `free_gen`. Resources freed since (a job ended
/// early, a node came back) may move the head's start earlier and open
/// room for backfill, so the plan is made again; what was taken since is
/// already mirrored in its view.
pub fn keep_reservation(freed_at: u64, free_gen: u64) -> bool {
    freed_at == free_gen
}
