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
    /// The longest the queue head waits before resources are held for it,
    /// whatever the scale-free triggers below say. Until it is held for,
    /// any later group that fits starts first (greedy, the best mean wait);
    /// from then on later groups may only backfill around its reservation,
    /// so no gang waits behind an endless stream of smaller ones. Zero
    /// reserves at once (EASY backfill: the fairest to big gangs, the
    /// worst mean wait). A wall-clock cap only: the default (1 h) leaves
    /// protection to the triggers below, which scale with the workload.
    pub reserve_after: Millis,
    /// The queue head is also reserved for once it has waited this many
    /// times the typical expected run time of the running groups (their
    /// mean; the group's own when nothing runs), so protection scales with
    /// the workload: seconds for minute-long jobs, an hour for hour-long
    /// ones. Lower protects big gangs sooner and costs throughput (holding
    /// idles resources); higher is greedier. Zero turns this trigger off.
    /// Default 2: the fallback for a gang passed by groups that are not
    /// smaller (which the overtake trigger does not count).
    pub reserve_after_runtimes: f64,
    /// The queue head is also reserved for once this many later, smaller
    /// groups have started ahead of it. Lower bounds how often a big gang
    /// can be passed (fairness); higher lets more small gangs fill the
    /// cluster first (mean wait). Zero turns this trigger off. Default 1:
    /// in `phalanx simulate` (the five scenarios other than `large`, seeds
    /// 1-3) 4 gave big/small wait 2.8 on average and 1 gave 2.1, for 3
    /// points of mean wait.
    pub reserve_after_overtakes: u32,
    /// Queue order within a priority: by arrival plus this many times the
    /// expected run time (a virtual deadline). Zero is first come, first
    /// served. Higher lets short jobs start before long ones that came a
    /// little earlier: a lower mean wait that big gangs do not pay for,
    /// since it looks at run time, not size; the cost is that a long job
    /// is passed by the shorter jobs that arrive within this many of its
    /// run times after it, and a burst's makespan can grow when long jobs
    /// are left for last. Without run-time estimates (no
    /// `phalanx.dev/duration-seconds`) every group has `default_duration`
    /// and the order stays first come, first served. Default 2.
    pub order_runtimes: f64,
    /// Caps the run-time term of the queue order (`order_runtimes` times a
    /// group's run time) at this many *drain times*: how long the cluster
    /// would take to run every waiting group one after another at full use.
    /// Where few gangs wait (arrivals spread over time), a long job is then
    /// passed only by jobs that arrive within a few drain times after it,
    /// not for hours; in a burst the queue takes long to drain, the cap is
    /// far off, and short jobs still go first. 0 turns the cap off.
    /// Default 4: on `phalanx simulate`'s `large` it brings big/small from
    /// 1.25-1.65x to 1.18-1.25x, and no burst scenario changes.
    pub order_cap_drains: f64,
    /// How long a group that is still missing pods holds back the groups
    /// behind it in the queue after its newest pod was created. Jobs
    /// submitted together get their pods created over a second or so, the
    /// small ones' first; without this the first pass fills the cluster
    /// with whichever gangs were complete first (the small ones), and in a
    /// burst they all but never wait (big/small wait 5-23x). Costs at most
    /// this much delay for the groups behind one still being created; a
    /// group whose pods stop coming holds nothing back after it. Zero
    /// turns it off. Default 1 s.
    pub assembly_grace: Millis,
    /// With the pack policy, fill the fullest node that still holds a pod
    /// first (best fit) rather than nodes in order (first fit). Measured
    /// neutral in `phalanx simulate` (mean wait the same on average,
    /// makespan 0.7 points worse), so off by default.
    pub best_fit: bool,
    /// A later group may start beside the head's reservation, on
    /// resources the head will not need, only while the head's expected
    /// start is at least this many of its run times away; otherwise only
    /// groups expected to end before the head starts may pass it. Zero is
    /// plain EASY backfill. Higher is fairer to big gangs where the queue
    /// is short (small gangs fit beside a reservation far more often than
    /// big ones, and the head will soon start anyway), and costs mean wait
    /// only where it is long. Infinity never lets a group start beside.
    /// Default 0.1: in `phalanx simulate` it took `large`'s big/small wait
    /// from 2.5-4.5 to 1.25-1.65 for 2.5-3.5 points of mean wait on
    /// `mpi-contention`.
    pub backfill_beside_after: f64,
    /// Slack-based backfill: a later group may also start on resources the
    /// queue head's reservation will need if it is expected to end before
    /// the head's *promised* start: the start of its first reservation
    /// plus this many of the head's run times. The promise is fixed when
    /// the head is first reserved for, so however many groups pass it this
    /// way, the head starts at most that much later than first planned
    /// (estimates permitting). Zero is plain EASY backfill (no delay of the
    /// head). Higher backfills more (lower mean wait, less idle capacity
    /// while resources drain for the head) and makes the big gangs that
    /// are reserved for wait longer. Measured in `phalanx simulate`
    /// (seeds 1-3): 0.5 took mpi-contention's mean wait from +20/+10/+12%
    /// of native gang scheduling's to +8/+1/+8%, with big/small wait
    /// 1.3/2.6/1.9x becoming 1.6/2.8/2.3x, and elastic seed 3 from +3.0%
    /// to -2.3%; on `large` big/small went from 1.21/1.18/1.25x to
    /// 1.33/1.22/1.58x. Runs meeting every target: 10 of 24 either way
    /// (seeds 1-3), 11 of 35 against 13 (seeds 4-8), so off by default.
    #[serde(default)]
    pub backfill_slack: f64,
    /// How many waiting groups hold reservations at once (conservative
    /// backfill over the first this-many groups from the queue head on):
    /// the head is reserved for as `reserve_after*` say, and each group
    /// behind it that does not fit now, up to this many in all, gets the
    /// earliest start the running jobs' expected ends and the reservations
    /// ahead of it leave. A later group may start now only where it delays
    /// none of them. 1 is EASY backfill (only the head is protected);
    /// higher protects big gangs further back in the queue from being
    /// passed by small ones, and backfills less.
    #[serde(default = "default_reserve_depth")]
    pub reserve_depth: u32,
    /// Place a reservation on the resources that running groups free last
    /// before its start, where they fit, rather than wherever the matcher
    /// would put it (which may be nodes free now): what is free now then
    /// stays free for backfill until the reserved group starts, and less
    /// of what it holds sits idle waiting for the rest.
    #[serde(default)]
    pub reserve_on_freed: bool,
    /// Whether a group that does not fit may evict groups of lower priority
    /// (whole gangs, elastic members first). Off: priority only orders the queue.
    pub preemption: bool,
    /// How long victims asked to go may stay without terminating before the
    /// preemption is asked for again (the deletions may have been lost).
    #[serde(default = "default_preemption_retry")]
    pub preemption_retry: Millis,
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
            reserve_after: Millis::from_secs(3600),
            reserve_after_runtimes: 2.0,
            reserve_after_overtakes: 1,
            order_runtimes: 2.0,
            order_cap_drains: 4.0,
            assembly_grace: Millis::from_secs(1),
            best_fit: false,
            backfill_beside_after: 0.1,
            backfill_slack: 0.0,
            reserve_depth: default_reserve_depth(),
            reserve_on_freed: false,
            preemption: true,
            preemption_retry: default_preemption_retry(),
            pod_events: true,
            policy: PlacementPolicy::Pack,
        }
    }
}

fn default_reserve_depth() -> u32 {
    1
}

/// Most reservations held at once (`reserve_depth` is capped here): each
/// costs a replay of the running jobs' ends per change of free resources.
pub const MAX_RESERVE_DEPTH: u32 = 64;

fn default_preemption_retry() -> Millis {
    Millis::from_secs(30)
}
