//! Scale-free protection of big gangs: the first waiting gang is reserved
//! for once smaller gangs have overtaken it `reserve_after_overtakes` times,
//! or once it has waited `reserve_after_runtimes` typical run times of the
//! running jobs, whatever the wall-clock `reserve_after`; and small gangs
//! still run (backfill) around that reservation.
//!
//! The tests drive the core through a small discrete-event loop: groups
//! arrive, their pods bind, and they end after their run time.

use std::collections::BTreeMap;

use phalanx_gang::*;
use proptest::prelude::*;

/// An 8-core node.
fn node(i: usize) -> Node {
    Node {
        name: format!("n{i}"),
        allocatable: Resources::new(8000, 64 << 30, 0),
        max_pods: 110,
        zone: Some("z0".into()),
        rack: Some("r0".into()),
        ready: true,
        ..Default::default()
    }
}

/// A job of the test workload.
#[derive(Debug, Clone)]
struct Job {
    name: String,
    arrival_ms: i64,
    pods: u32,
    cpu: u64,
    duration_s: i64,
    /// Whether its PodGroup says how long it runs.
    says_duration: bool,
}

fn job(name: &str, arrival_s: i64, pods: u32, cpu: u64, duration_s: i64) -> Job {
    Job {
        name: name.into(),
        arrival_ms: arrival_s * 1000,
        pods,
        cpu,
        duration_s,
        says_duration: true,
    }
}

fn pod(j: &Job, i: u32) -> Pod {
    Pod {
        uid: PodUid(format!("{}-{i}", j.name)),
        namespace: "ns".into(),
        name: format!("{}-{i}", j.name),
        requests: Resources::new(j.cpu, 1 << 30, 0),
        group: Some(GroupKey::new("ns", j.name.clone())),
        priority: 0,
        scheduler_name: "phalanx".into(),
        node_name: None,
        phase: PodPhase::Pending,
        node_selector: BTreeMap::new(),
        required_affinity: Vec::new(),
        tolerations: Vec::new(),
        created: Timestamp::from_millis(j.arrival_ms),
        expected_duration: None,
        preemption_policy: Default::default(),
        labels: Default::default(),
        terminating: false,
        termination_grace: None,
    }
}

fn arrive(core: &mut GangScheduler, j: &Job) {
    core.apply(Event::GroupUpsert(PodGroup {
        key: GroupKey::new("ns", j.name.clone()),
        min_member: j.pods,
        schedule_timeout: Some(Millis::from_secs(36_000)),
        priority: 0,
        created: Timestamp::from_millis(j.arrival_ms),
        expected_duration: j.says_duration.then(|| Millis::from_secs(j.duration_s)),
        topology_key: None,
        max_member: None,
        preemption_policy: None,
        disruption: Default::default(),
    }));
    for i in 0..j.pods {
        core.apply(Event::PodUpsert(pod(j, i)));
    }
}

fn core(nodes: usize, reserve_after_s: i64, runtimes: f64, overtakes: u32) -> GangScheduler {
    let mut core = GangScheduler::new(GangConfig {
        reserve_after: Millis::from_secs(reserve_after_s),
        reserve_after_runtimes: runtimes,
        reserve_after_overtakes: overtakes,
        pod_events: false,
        ..GangConfig::default()
    });
    for i in 0..nodes {
        core.apply(Event::NodeUpsert(node(i)));
    }
    core
}

/// What a run saw.
#[derive(Debug, Default)]
struct Outcome {
    /// Start time (ms) of each job that started.
    started: BTreeMap<String, i64>,
    /// Who the reservation was for after each pass, with the pass's time.
    reserved: Vec<(i64, Option<String>)>,
}

/// Runs `jobs` to completion (or until `until_ms`): at every arrival, end
/// and wakeup the core makes a pass; bound pods run for their job's run time
/// and then succeed.
fn run(core: &mut GangScheduler, jobs: &[Job], until_ms: i64) -> Outcome {
    let mut out = Outcome::default();
    let mut now = 0i64;
    let mut arrived = 0usize;
    // End time -> (job, its pods and nodes).
    let mut ends: BTreeMap<(i64, usize), Vec<(Pod, String)>> = BTreeMap::new();
    let mut jobs: Vec<Job> = jobs.to_vec();
    jobs.sort_by_key(|j| j.arrival_ms);
    let index: BTreeMap<String, usize> = jobs
        .iter()
        .enumerate()
        .map(|(i, j)| (j.name.clone(), i))
        .collect();
    for _ in 0..100_000 {
        while arrived < jobs.len() && jobs[arrived].arrival_ms <= now {
            arrive(core, &jobs[arrived]);
            arrived += 1;
        }
        while let Some(entry) = ends.first_entry() {
            if entry.key().0 > now {
                break;
            }
            for (mut p, node) in entry.remove() {
                p.phase = PodPhase::Succeeded;
                p.node_name = Some(node);
                core.apply(Event::PodUpsert(p));
            }
        }
        let d = core.schedule(Timestamp::from_millis(now));
        let mut bound: BTreeMap<usize, Vec<(Pod, String)>> = BTreeMap::new();
        for plan in d.binds {
            for b in plan.pods {
                let (name, i) = b.pod.0.rsplit_once('-').unwrap_or_default();
                let j = index[name];
                let i: u32 = i.parse().unwrap_or(0);
                bound
                    .entry(j)
                    .or_default()
                    .push((pod(&jobs[j], i), b.node.clone()));
                core.apply(Event::BindResult {
                    pod: b.pod,
                    node: b.node,
                    outcome: BindOutcome::Bound,
                });
            }
        }
        for (j, pods) in bound {
            assert_eq!(pods.len(), jobs[j].pods as usize, "partial gang");
            let first = out.started.insert(jobs[j].name.clone(), now);
            assert!(first.is_none(), "{} started twice", jobs[j].name);
            ends.insert((now + jobs[j].duration_s * 1000, j), pods);
        }
        out.reserved
            .push((now, core.reservation().map(|(k, _)| k.name.clone())));
        if out.started.len() == jobs.len() && ends.is_empty() {
            break;
        }
        let next = [
            jobs.get(arrived).map(|j| j.arrival_ms),
            ends.keys().next().map(|k| k.0),
            core.next_wakeup()
                .map(|t| t.as_millis())
                .filter(|t| *t > now),
        ]
        .into_iter()
        .flatten()
        .min();
        match next {
            Some(t) if t <= until_ms => now = t.max(now + 1),
            _ => break,
        }
    }
    out
}

/// A filler holding half the cluster, a big gang needing all of it, then a
/// stream of later, smaller gangs that fit beside the filler and run too
/// long to end before the filler does (so none can backfill).
fn stream_behind_big_gang() -> Vec<Job> {
    let mut jobs = vec![job("filler", 0, 2, 4000, 100), job("big", 1, 4, 4000, 50)];
    for i in 0..6 {
        jobs.push(job(&format!("small{i}"), 2 + 10 * i, 1, 4000, 60));
    }
    jobs
}

#[test]
fn a_big_gang_overtaken_n_times_is_reserved_for() {
    // reserve_after of a day and no runtime trigger: only overtakes count.
    let mut core = core(2, 86_400, 0.0, 2);
    let out = run(&mut core, &stream_behind_big_gang(), 10_000_000);
    let overtook = |limit: i64| {
        out.started
            .iter()
            .filter(|(n, t)| n.starts_with("small") && **t < limit)
            .count()
    };
    let big = out.started["big"];
    // Exactly two smaller gangs pass it; then it is reserved for and starts
    // when the filler ends (100 s), ahead of the rest of the stream.
    assert_eq!(overtook(big), 2, "{out:?}");
    assert_eq!(big, 100_000, "{out:?}");
    assert!(
        out.reserved
            .iter()
            .any(|(_, r)| r.as_deref() == Some("big")),
        "never reserved for: {out:?}"
    );
    // Every small gang still ran.
    assert_eq!(out.started.len(), 8, "{out:?}");
}

#[test]
fn without_a_trigger_smaller_gangs_keep_passing_a_big_one() {
    // The control: no overtake or runtime trigger and a day-long
    // reserve_after, so the stream passes the big gang until it dries up.
    let mut core = core(2, 86_400, 0.0, 0);
    let out = run(&mut core, &stream_behind_big_gang(), 10_000_000);
    let big = out.started["big"];
    let passed = out
        .started
        .iter()
        .filter(|(n, t)| n.starts_with("small") && **t < big)
        .count();
    assert!(passed > 2, "{out:?}");
    assert!(
        out.reserved.iter().all(|(_, r)| r.is_none()),
        "reserved without a trigger: {out:?}"
    );
}

#[test]
fn protection_follows_the_running_jobs_run_time_not_the_wall_clock() {
    // Overtakes off; one run time of the running jobs (the filler: 100 s,
    // the smalls: 60 s) is well under the day-long reserve_after.
    let mut core = core(2, 86_400, 1.0, 0);
    let out = run(&mut core, &stream_behind_big_gang(), 10_000_000);
    let first_reserved = out
        .reserved
        .iter()
        .find(|(_, r)| r.as_deref() == Some("big"))
        .map(|(t, _)| *t);
    // Typical run time is at most 100 s, so big (arrived at 1 s) is reserved
    // for by 101 s, far before a day.
    assert!(
        first_reserved.is_some_and(|t| t <= 101_000),
        "{first_reserved:?} {out:?}"
    );
    // And the reservation did not come at once: small0 passed it first.
    assert!(out.started["small0"] < out.started["big"], "{out:?}");
}

#[test]
fn a_short_small_gang_backfills_around_the_reserved_big_gang() {
    // Big is reserved for at once after one overtake; a small gang that ends
    // before the filler does cannot delay big and starts at once.
    let mut core = core(2, 86_400, 0.0, 1);
    let jobs = vec![
        job("filler", 0, 2, 4000, 100),
        job("big", 1, 4, 4000, 50),
        job("small0", 2, 1, 4000, 40),
        job("quick", 50, 1, 4000, 30),
    ];
    let out = run(&mut core, &jobs, 10_000_000);
    assert_eq!(out.started["small0"], 2_000, "{out:?}");
    assert_eq!(out.started["quick"], 50_000, "{out:?}");
    assert_eq!(out.started["big"], 100_000, "{out:?}");
}

/// The groups a pass started, by name.
fn started(d: &Decisions) -> Vec<String> {
    d.binds.iter().map(|b| b.group.name.clone()).collect()
}

/// Binds every pod a pass placed.
fn confirm(core: &mut GangScheduler, d: &Decisions) {
    for plan in &d.binds {
        for b in &plan.pods {
            core.apply(Event::BindResult {
                pod: b.pod.clone(),
                node: b.node.clone(),
                outcome: BindOutcome::Bound,
            });
        }
    }
}

/// Jobs submitted together whose pods are created one by one, 50 ms apart
/// (as a Job controller does): `big` (2 pods of 4 cores, first by name) and
/// two one-pod gangs of 4 cores, all on one 8-core node. Returns the groups
/// started at 0 ms and at 50 ms.
fn burst_with_staggered_pods(grace: Millis) -> (Vec<String>, Vec<String>) {
    let mut core = GangScheduler::new(GangConfig {
        assembly_grace: grace,
        pod_events: false,
        ..GangConfig::default()
    });
    core.apply(Event::NodeUpsert(node(0)));
    let jobs = [
        job("big", 0, 2, 4000, 60),
        job("small0", 0, 1, 4000, 60),
        job("small1", 0, 1, 4000, 60),
    ];
    for j in &jobs {
        arrive_group(&mut core, j);
        core.apply(Event::PodUpsert(pod(j, 0)));
    }
    let first = core.schedule(Timestamp::from_millis(0));
    confirm(&mut core, &first);
    let mut second_pod = pod(&jobs[0], 1);
    second_pod.created = Timestamp::from_millis(50);
    core.apply(Event::PodUpsert(second_pod));
    let second = core.schedule(Timestamp::from_millis(50));
    (started(&first), started(&second))
}

fn arrive_group(core: &mut GangScheduler, j: &Job) {
    core.apply(Event::GroupUpsert(PodGroup {
        key: GroupKey::new("ns", j.name.clone()),
        min_member: j.pods,
        schedule_timeout: Some(Millis::from_secs(36_000)),
        priority: 0,
        created: Timestamp::from_millis(j.arrival_ms),
        expected_duration: Some(Millis::from_secs(j.duration_s)),
        topology_key: None,
        max_member: None,
        preemption_policy: None,
        disruption: Default::default(),
    }));
}

#[test]
fn a_burst_starts_in_submission_order_not_in_the_order_gangs_complete() {
    // With the grace, big (first in the queue, its second pod 50 ms late)
    // holds back the one-pod gangs behind it and starts first.
    let (at0, at50) = burst_with_staggered_pods(Millis::from_secs(1));
    assert!(at0.is_empty(), "{at0:?}");
    assert_eq!(at50, vec!["big".to_owned()]);
    // Without it the one-pod gangs, complete first, take the node.
    let (at0, at50) = burst_with_staggered_pods(Millis(0));
    assert_eq!(at0, vec!["small0".to_owned(), "small1".to_owned()]);
    assert!(at50.is_empty(), "{at50:?}");
}

#[test]
fn a_gang_missing_pods_holds_back_the_queue_only_for_the_grace() {
    // big never gets its second pod: small0 waits one grace, then starts.
    let mut core = GangScheduler::new(GangConfig {
        assembly_grace: Millis::from_secs(1),
        pod_events: false,
        ..GangConfig::default()
    });
    core.apply(Event::NodeUpsert(node(0)));
    let (big, small) = (job("big", 0, 2, 4000, 60), job("small0", 0, 1, 4000, 60));
    for j in [&big, &small] {
        arrive_group(&mut core, j);
        core.apply(Event::PodUpsert(pod(j, 0)));
    }
    assert!(started(&core.schedule(Timestamp::from_millis(0))).is_empty());
    // The core asks to be woken when the grace ends.
    assert_eq!(core.next_wakeup(), Some(Timestamp::from_millis(1000)));
    assert!(started(&core.schedule(Timestamp::from_millis(999))).is_empty());
    assert_eq!(
        started(&core.schedule(Timestamp::from_millis(1000))),
        vec!["small0".to_owned()]
    );
}

/// On one node busy with a 100 s filler: a long job (1,000 s) arrives at
/// 1 s, a short one (10 s) at 2 s, each needing the whole node. Returns
/// their start times.
fn long_then_short(order_runtimes: f64) -> (i64, i64) {
    let mut core = GangScheduler::new(GangConfig {
        order_runtimes,
        pod_events: false,
        ..GangConfig::default()
    });
    core.apply(Event::NodeUpsert(node(0)));
    let jobs = vec![
        job("filler", 0, 2, 4000, 100),
        job("long", 1, 2, 4000, 1000),
        job("short", 2, 2, 4000, 10),
    ];
    let out = run(&mut core, &jobs, 10_000_000);
    (out.started["long"], out.started["short"])
}

#[test]
fn a_short_job_passes_a_long_one_that_came_a_little_earlier() {
    // Ordered by arrival plus two run times: short (2 + 20 s) goes before
    // long (1 + 2,000 s) once the filler ends.
    assert_eq!(long_then_short(2.0), (110_000, 100_000));
    // First come, first served without the weight.
    assert_eq!(long_then_short(0.0), (100_000, 1_100_000));
}

#[test]
fn a_long_job_is_passed_only_by_jobs_that_came_within_its_weighted_run_time() {
    // long (100 s) arrives at 1 s: its place is 1 + 2 x 100 = 201 s. A
    // short job arriving at 150 s (place 170 s) passes it; one arriving at
    // 250 s (place 270 s) does not, however short.
    let mut core = GangScheduler::new(GangConfig {
        order_runtimes: 2.0,
        pod_events: false,
        ..GangConfig::default()
    });
    core.apply(Event::NodeUpsert(node(0)));
    let jobs = vec![
        job("filler", 0, 2, 4000, 300),
        job("long", 1, 2, 4000, 100),
        job("early", 150, 2, 4000, 10),
        job("late", 250, 2, 4000, 10),
    ];
    let out = run(&mut core, &jobs, 10_000_000);
    assert_eq!(out.started["early"], 300_000, "{out:?}");
    assert_eq!(out.started["long"], 310_000, "{out:?}");
    assert_eq!(out.started["late"], 410_000, "{out:?}");
}

/// Three 8-core nodes, two held by 100 s fillers and half of the third by
/// a long one; big (two whole nodes, 50 s) is reserved for at once on the
/// first two; small (4 cores, 200 s) arrives at 2 s and could run beside
/// that reservation, on the third node's free half. Returns small's start.
fn small_beside_reserved_big(after: f64) -> i64 {
    let mut core = GangScheduler::new(GangConfig {
        reserve_after: Millis(0),
        backfill_beside_after: after,
        pod_events: false,
        ..GangConfig::default()
    });
    for i in 0..3 {
        core.apply(Event::NodeUpsert(node(i)));
    }
    let jobs = vec![
        job("filler0", 0, 1, 8000, 100),
        job("filler1", 0, 1, 8000, 100),
        job("half", 0, 1, 4000, 1000),
        job("big", 1, 2, 8000, 50),
        job("small", 2, 1, 4000, 200),
    ];
    let out = run(&mut core, &jobs, 10_000_000);
    assert_eq!(out.started["big"], 100_000, "{out:?}");
    out.started["small"]
}

#[test]
fn a_gang_starts_beside_a_reservation_only_while_the_head_is_far_off() {
    // big starts in 98 s and runs 50 s: 98 s >= 0.1 x 50 s, small goes now.
    assert_eq!(small_beside_reserved_big(0.1), 2_000);
    // 98 s < 10 x 50 s: the room is held; small starts with big.
    assert_eq!(small_beside_reserved_big(10.0), 100_000);
}

/// On one node, with no run times given: a long-shaped job (2 pods of 4
/// cores, 500 s) arrives at 601 s and a short-shaped one (one pod of 8
/// cores, 10 s) at 602 s, behind a 100 s filler. With `history`, one job of
/// each shape ran first. Returns their start times (long, short).
fn unannounced_pair(history: bool) -> (i64, i64) {
    let mut core = GangScheduler::new(GangConfig {
        order_runtimes: 2.0,
        pod_events: false,
        ..GangConfig::default()
    });
    core.apply(Event::NodeUpsert(node(0)));
    let mut jobs = vec![
        job("filler", 600, 1, 6000, 100),
        job("long2", 601, 2, 4000, 500),
        job("short2", 602, 1, 8000, 10),
    ];
    if history {
        jobs.push(job("long1", 0, 2, 4000, 500));
        jobs.push(job("short1", 0, 1, 8000, 10));
    }
    for j in &mut jobs {
        j.says_duration = false;
    }
    let out = run(&mut core, &jobs, 10_000_000);
    assert_eq!(out.started["filler"], 600_000, "{out:?}");
    (out.started["long2"], out.started["short2"])
}

#[test]
fn run_times_learned_from_finished_groups_order_the_queue() {
    // Nothing learned: both expected to run the default hour, first come
    // first served.
    assert_eq!(unannounced_pair(false), (700_000, 1_200_000));
    // Learned 10 s for the short shape and 500 s for the long one: the
    // short job goes first.
    assert_eq!(unannounced_pair(true), (710_000, 700_000));
}

/// Three 8-core nodes: n0 and n1 held by fillers until 100 s, half of n2
/// until 150 s. `a` (two whole nodes, 1,000 s) is reserved for at once, on
/// n0 and n1 from 100 s; `b` (one whole node, 1,000 s) comes next and can
/// start on n2 at 150 s. `c` (half a node, 200 s) arrives at 2 s and fits
/// the free half of n2 beside `a`'s reservation, but would still run when
/// `b` could start; `d` (half a node, 30 s) arrives at 3 s and ends long
/// before. Returns the start times of `b`, `c` and `d`.
fn behind_the_head(depth: u32) -> (i64, i64, Option<i64>) {
    let mut core = reserving_at_once(
        3,
        GangConfig {
            reserve_depth: depth,
            ..reserve_at_once()
        },
    );
    let jobs = vec![
        job("filler0", 0, 1, 8000, 100),
        job("filler1", 0, 1, 8000, 100),
        job("half", 0, 1, 4000, 150),
        job("a", 1, 2, 8000, 1000),
        job("b", 1, 1, 8000, 1000),
        job("c", 2, 1, 4000, 200),
        job("d", 3, 1, 4000, 30),
    ];
    let out = run(&mut core, &jobs, 10_000_000);
    assert_eq!(out.started["a"], 100_000, "{out:?}");
    assert_eq!(out.started.len(), jobs.len(), "{out:?}");
    (
        out.started["b"],
        out.started["c"],
        out.started.get("d").copied(),
    )
}

#[test]
fn a_gang_that_would_delay_the_second_reservation_is_held_back() {
    // Only the head protected (EASY): c takes n2's free half at once, and
    // b, which needs all of n2, waits until c ends at 202 s.
    let (b, c, _) = behind_the_head(1);
    assert_eq!(c, 2_000);
    assert_eq!(b, 202_000);
    // Two reservations: b holds n2 from 150 s, so c may not start where it
    // would still run then; b starts on time.
    let (b, c, _) = behind_the_head(2);
    assert_eq!(b, 150_000);
    assert!(c >= b, "c started at {c} ms, before b at {b} ms");
}

#[test]
fn a_gang_behind_the_head_says_when_it_is_reserved_to_start() {
    let mut core = GangScheduler::new(GangConfig {
        reserve_after: Millis(0),
        order_runtimes: 0.0,
        reserve_depth: 2,
        pod_events: false,
        ..GangConfig::default()
    });
    for i in 0..3 {
        core.apply(Event::NodeUpsert(node(i)));
    }
    for j in [
        job("filler0", 0, 1, 8000, 100),
        job("filler1", 0, 1, 8000, 100),
        job("half", 0, 1, 4000, 150),
    ] {
        arrive(&mut core, &j);
    }
    let d = core.schedule(Timestamp::from_secs(0));
    confirm(&mut core, &d);
    arrive(&mut core, &job("a", 1, 2, 8000, 1000));
    arrive(&mut core, &job("b", 1, 1, 8000, 1000));
    let d = core.schedule(Timestamp::from_secs(1));
    assert!(d.binds.is_empty(), "{d:?}");
    assert_eq!(core.reservation().map(|(k, _)| k.name.as_str()), Some("a"));
    let b = core.group(&GroupKey::new("ns", "b")).expect("b is known");
    assert_eq!(
        b.wait,
        Some(WaitReason::Reserved {
            start: Timestamp::from_secs(150),
            after: Some(GroupKey::new("ns", "half")),
        }),
        "{}",
        b.message
    );
    // Another pass with nothing changed keeps the same reservation and
    // the same word for it.
    let d = core.schedule(Timestamp::from_secs(2));
    assert!(d.binds.is_empty(), "{d:?}");
    let again = core.group(&GroupKey::new("ns", "b")).expect("b is known");
    assert_eq!(again.wait, b.wait);
}

#[test]
fn a_gang_that_ends_before_every_reservation_still_starts_at_once() {
    // d ends at 33 s, before b's reservation (150 s) and a's (100 s).
    let (b, _, d) = behind_the_head(2);
    assert_eq!(d, Some(3_000));
    assert_eq!(b, 150_000);
}

/// Four 8-core nodes: n0 frees at 1 s, n1-n3 at 100 s. `big` (three
/// whole nodes, 50 s) arrives at 2 s and is reserved for from 100 s;
/// `long` (one whole node, 500 s) arrives at 3 s. Returns their starts.
fn reservation_beside_a_free_node(on_freed: bool) -> (i64, i64) {
    let mut core = reserving_at_once(
        4,
        GangConfig {
            reserve_on_freed: on_freed,
            ..reserve_at_once()
        },
    );
    let jobs = vec![
        job("f0", 0, 1, 8000, 1),
        job("f1", 0, 1, 8000, 100),
        job("f2", 0, 1, 8000, 100),
        job("f3", 0, 1, 8000, 100),
        job("big", 2, 3, 8000, 50),
        job("long", 3, 1, 8000, 500),
    ];
    let out = run(&mut core, &jobs, 10_000_000);
    (out.started["big"], out.started["long"])
}

#[test]
fn a_reservation_on_the_nodes_freed_last_leaves_the_free_node_for_backfill() {
    // The matcher alone packs big onto n0-n2, so n0 idles until 100 s and
    // long, which would still run then, waits until n3 frees.
    let (big, long) = reservation_beside_a_free_node(false);
    assert_eq!(big, 100_000);
    assert_eq!(long, 100_000);
    // Placed on what f1-f3 free, big leaves n0 to long, which starts at
    // once without delaying big.
    let (big, long) = reservation_beside_a_free_node(true);
    assert_eq!(big, 100_000);
    assert_eq!(long, 3_000);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Whatever the mix and the triggers, every gang starts (no one is
    /// starved, small or big), whole, and the run ends.
    #[test]
    fn every_gang_starts_whatever_the_triggers(
        specs in prop::collection::vec((0i64..200, 1u32..5, 1u64..5, 5i64..120), 1..40),
        k in prop::sample::select(vec![0.0, 0.5, 1.0, 3.0]),
        n in 0u32..6,
    ) {
        let jobs: Vec<Job> = specs
            .iter()
            .enumerate()
            .map(|(i, (t, pods, cpu, d))| job(&format!("g{i}"), *t, *pods, cpu * 2000, *d))
            .collect();
        // 4 nodes: the largest gang (4 pods of 8 cores) fits.
        let mut core = core(4, GangConfig::default().reserve_after.0 / 1000, k, n);
        let out = run(&mut core, &jobs, 100_000_000);
        prop_assert_eq!(out.started.len(), jobs.len(), "{:?}", out);
    }

    /// With reservations for several gangs behind the head, too,
    /// reservations placed on what frees last, and slack for the head,
    /// every gang still starts, whole (the run checks no gang starts partly).
    #[test]
    fn every_gang_starts_with_reservations_behind_the_head(
        specs in prop::collection::vec((0i64..200, 1u32..5, 1u64..5, 5i64..120), 1..40),
        depth in 1u32..6,
        reserve_after_s in prop::sample::select(vec![0i64, 30, 3600]),
        on_freed in any::<bool>(),
        slack in prop::sample::select(vec![0.0, 0.5, 2.0]),
    ) {
        let jobs: Vec<Job> = specs
            .iter()
            .enumerate()
            .map(|(i, (t, pods, cpu, d))| job(&format!("g{i}"), *t, *pods, cpu * 2000, *d))
            .collect();
        let mut core = GangScheduler::new(GangConfig {
            reserve_after: Millis::from_secs(reserve_after_s),
            reserve_depth: depth,
            reserve_on_freed: on_freed,
            backfill_slack: slack,
            pod_events: false,
            ..GangConfig::default()
        });
        for i in 0..4 {
            core.apply(Event::NodeUpsert(node(i)));
        }
        let out = run(&mut core, &jobs, 100_000_000);
        prop_assert_eq!(out.started.len(), jobs.len(), "{:?}", out);
    }
}

/// First come, first served, the first waiting gang reserved for at once
/// and nothing backfilled beside it unless it ends first.
fn reserve_at_once() -> GangConfig {
    GangConfig {
        reserve_after: Millis(0),
        order_runtimes: 0.0,
        backfill_beside_after: 0.0,
        pod_events: false,
        ..GangConfig::default()
    }
}

/// A core with `config` on `nodes` 8-core nodes.
fn reserving_at_once(nodes: usize, config: GangConfig) -> GangScheduler {
    let mut core = GangScheduler::new(config);
    for i in 0..nodes {
        core.apply(Event::NodeUpsert(node(i)));
    }
    core
}

/// Ten whole-node jobs hold a 10-node cluster (one ends at 1,000 s, the rest
/// much later). `long` (one node, 1,000 s) arrives at 1 s, `short` (one
/// node, 10 s) at 900 s. Without a cap `short` sorts first (900 + 2 x 10 <
/// 1 + 2 x 1,000 s); with it, `long`'s run time counts at most 4 drain
/// times (about 100 s of whole-cluster work waits), so it keeps its turn.
/// Returns their starts.
fn long_then_late_short(cap: f64) -> (i64, i64) {
    let mut core = GangScheduler::new(GangConfig {
        order_cap_drains: cap,
        pod_events: false,
        ..GangConfig::default()
    });
    for i in 0..10 {
        core.apply(Event::NodeUpsert(node(i)));
    }
    let mut jobs = vec![job("f0", 0, 1, 8000, 1000)];
    for i in 1..10 {
        jobs.push(job(&format!("f{i}"), 0, 1, 8000, 100_000));
    }
    jobs.push(job("long", 1, 1, 8000, 1000));
    jobs.push(job("short", 900, 1, 8000, 10));
    let out = run(&mut core, &jobs, 3_000_000);
    (out.started["long"], out.started["short"])
}

#[test]
fn the_run_time_bonus_is_capped_at_drain_times_when_few_gangs_wait() {
    let (long, short) = long_then_late_short(4.0);
    assert_eq!(long, 1_000_000, "long keeps its turn");
    assert!(short > long, "{short}");
    let (long, short) = long_then_late_short(0.0);
    assert_eq!(short, 1_000_000, "uncapped, the late short job passes");
    assert!(long > short, "{long}");
}
