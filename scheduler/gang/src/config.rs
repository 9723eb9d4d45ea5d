//! Settings of the gang core.

use serde::{Deserialize, Serialize};

use crate::time::Millis;
use fluxion_core::group::PlacementPolicy;

/// Settings of the gang core; [`Default`] gives sensible values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GangConfig {
    /// Pods whose `schedulerName` equals this are ours; others only take capacity.
    pub scheduler_name: String,
    /// Expected run time of a group that says nothing (annotation
    /// `phalanx.dev/duration-seconds`), used to place reservations.
    pub default_duration: Millis,
    /// How long a group that can never fit waits before it is tried again.
    pub unsatisfiable_backoff: Millis,
    /// How long a failed bind waits before it is retried on the same reservation.
    pub bind_retry_backoff: Millis,
    /// Timeout for a group whose PodGroup sets no `scheduleTimeoutSeconds`.
    pub default_schedule_timeout: Millis,
    /// Groups examined per pass at most; bounds a pass's cost on very long
    /// queues. A longer queue is walked over several passes: the pass that
    /// stops asks for the next at once (see `GangScheduler::more_pending`
    /// and `next_wakeup`), which resumes where it stopped.
    pub max_groups_per_pass: usize,
    /// Whether later groups may start ahead of a reserved one where they do
    /// not delay it.
    pub backfill: bool,
    /// How long the queue head waits before resources are held for it.
    /// Until then any later group that fits starts first (greedy, the best
    /// mean wait); from then on later groups may only backfill around its
    /// reservation, so no gang waits behind an endless stream of smaller
    /// ones. Zero reserves at once. A wall-clock bound: with the two
    /// scale-free triggers below it only caps how long protection can take.
    pub reserve_after: Millis,
    /// The queue head is also reserved for once it has waited this many
    /// times the typical expected run time of the running groups (their
    /// mean; the group's own when nothing runs), so protection scales with
    /// the workload: seconds for minute-long jobs, an hour for hour-long
    /// ones. Lower protects big gangs sooner and costs throughput (holding
    /// idles resources); higher is greedier. Zero turns this trigger off.
    pub reserve_after_runtimes: f64,
    /// The queue head is also reserved for once this many later, smaller
    /// groups have started ahead of it. Lower bounds how often a big gang
    /// can be passed (fairness); higher lets more small gangs fill the
    /// cluster first (mean wait). Zero turns this trigger off.
    pub reserve_after_overtakes: u32,
    /// Queue order within a priority: by arrival plus this many times the
    /// expected run time (a virtual deadline). Zero is first come, first
    /// served. Higher lets short jobs start before long ones that came a
    /// little earlier (lower mean wait, and whatever their size, so big
    /// gangs are not the ones that pay); a long job is passed only by jobs
    /// that arrived within this many of its run times after it.
    pub order_runtimes: f64,
    /// How long a group that is still missing pods holds back the groups
    /// behind it in the queue after its newest pod was created.
    pub assembly_grace: Millis,
    /// Whether a group that does not fit may evict groups of lower priority
    /// (whole gangs, elastic members first). Off: priority only orders the queue.
    pub preemption: bool,
    /// Whether to emit per-pod events (the simulator turns them off).
    pub pod_events: bool,
    /// How a group's pods are laid out inside the racks chosen for it.
    pub policy: PlacementPolicy,
}

impl Default for GangConfig {
    fn default() -> Self {
        GangConfig {
            scheduler_name: "phalanx".to_owned(),
            default_duration: Millis::from_secs(3600),
            unsatisfiable_backoff: Millis::from_secs(60),
            bind_retry_backoff: Millis::from_secs(1),
            default_schedule_timeout: Millis::from_secs(600),
            max_groups_per_pass: 1000,
            backfill: true,
            reserve_after: Millis::from_secs(300),
            reserve_after_runtimes: 0.0,
            reserve_after_overtakes: 4,
            order_runtimes: 0.0,
            assembly_grace: Millis(0),
            preemption: true,
            pod_events: true,
            policy: PlacementPolicy::Pack,
        }
    }
}
