//! Liveness of the gang core: a queue longer than `max_groups_per_pass` is
//! worked through by the core's own continuation (`next_wakeup` due at once,
//! `more_pending`), with no external event, in a bounded number of passes.
//!
//! Each test drives the core as the kube loop does: one pass for the burst of
//! events, then further passes only while `next_wakeup()` is due. Bind
//! results are fed back between passes, as the binder does; they free
//! nothing, so they cannot be what wakes a stalled queue.

use std::collections::{BTreeMap, BTreeSet};

use phalanx_gang::*;
use proptest::prelude::*;

/// An 8-core node without NUMA alignment, so pods pack by cores alone.
fn node(i: usize) -> Node {
    Node {
        name: format!("n{i}"),
        allocatable: Resources::new(8000, 64 << 30, 0),
        max_pods: 110,
        zone: Some("z0".into()),
        rack: Some(format!("r{}", i / 4)),
        ready: true,
        ..Default::default()
    }
}

fn group(name: &str, min: u32, t_ms: i64, duration_s: i64) -> PodGroup {
    PodGroup {
        key: GroupKey::new("ns", name),
        min_member: min,
        schedule_timeout: Some(Millis::from_secs(600)),
        priority: 0,
        created: Timestamp::from_millis(t_ms),
        expected_duration: Some(Millis::from_secs(duration_s)),
        topology_key: None,
        max_member: None,
        preemption_policy: None,
        disruption: Default::default(),
    }
}

fn pod(g: &str, i: u32, cpu: u64, t_ms: i64) -> Pod {
    Pod {
        uid: PodUid(format!("{g}-{i}")),
        namespace: "ns".into(),
        name: format!("{g}-{i}"),
        requests: Resources::new(cpu, 1 << 30, 0),
        group: Some(GroupKey::new("ns", g)),
        priority: 0,
        scheduler_name: "phalanx".into(),
        node_name: None,
        phase: PodPhase::Pending,
        node_selector: BTreeMap::new(),
        required_affinity: Vec::new(),
        tolerations: Vec::new(),
        created: Timestamp::from_millis(t_ms),
        expected_duration: None,
        preemption_policy: Default::default(),
        labels: Default::default(),
        terminating: false,
        termination_grace: None,
    }
}

fn add_group(core: &mut GangScheduler, name: &str, size: u32, cpu: u64, t_ms: i64, dur_s: i64) {
    core.apply(Event::GroupUpsert(group(name, size, t_ms, dur_s)));
    for i in 0..size {
        core.apply(Event::PodUpsert(pod(name, i, cpu, t_ms)));
    }
}

fn core(nodes: usize, cap: usize, reserve_after: Millis) -> GangScheduler {
    let mut core = GangScheduler::new(GangConfig {
        max_groups_per_pass: cap,
        reserve_after,
        pod_events: false,
        ..GangConfig::default()
    });
    for i in 0..nodes {
        core.apply(Event::NodeUpsert(node(i)));
    }
    core
}

/// What the driver saw: pods placed, passes run.
#[derive(Debug, Default)]
struct Run {
    placed: BTreeSet<String>,
    passes: usize,
}

/// One pass at `now`, then more passes only while the core itself says one
/// is due (at most `limit` passes in all); binds succeed between passes.
fn drive(core: &mut GangScheduler, now_ms: &mut i64, limit: usize, run: &mut Run) {
    loop {
        let d = core.schedule(Timestamp::from_millis(*now_ms));
        run.passes += 1;
        for plan in d.binds {
            for b in plan.pods {
                assert!(run.placed.insert(b.pod.0.clone()), "{} placed twice", b.pod);
                core.apply(Event::BindResult {
                    pod: b.pod,
                    node: b.node,
                    outcome: BindOutcome::Bound,
                });
            }
        }
        *now_ms += 1;
        let due = core
            .next_wakeup()
            .is_some_and(|t| t <= Timestamp::from_millis(*now_ms));
        // The two ways the core asks for its continuation agree.
        if core.more_pending() {
            assert!(due, "more work pending but no pass due");
        }
        if !due || run.passes >= limit {
            return;
        }
    }
}

fn passes_for(groups: usize, cap: usize) -> usize {
    groups.div_ceil(cap) + 1
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any number of groups that fit, ahead of and among groups that are
    /// busy: every one that fits is placed within ceil(groups / cap) + 1
    /// passes, and the core then stops asking for passes.
    #[test]
    fn every_group_that_fits_is_placed_without_an_external_event(
        cap in 1usize..12,
        sizes in prop::collection::vec(1u32..5, 0..120),
        busy_every in prop::option::of(2usize..6),
    ) {
        // 1,000-millicore pods: 8 per node.
        let pods: u32 = sizes.iter().sum();
        let nodes = (pods as usize).div_ceil(8) + 1;
        let mut core = core(nodes, cap, Millis::from_secs(300));
        // Another scheduler's pod takes a core of n0, so a gang asking for
        // every core is satisfiable but busy.
        let mut other = pod("other", 0, 1000, 0);
        other.scheduler_name = "default-scheduler".into();
        other.group = None;
        other.node_name = Some("n0".into());
        core.apply(Event::PodUpsert(other));
        let mut want = BTreeSet::new();
        let mut busy = 0;
        for (g, size) in sizes.iter().enumerate() {
            if busy_every.is_some_and(|k| g % k == 0) {
                add_group(&mut core, &format!("busy{g:03}"), nodes as u32, 8000, g as i64, 100);
                busy += 1;
            }
            let name = format!("g{g:03}");
            add_group(&mut core, &name, *size, 1000, g as i64, 100);
            want.extend((0..*size).map(|i| format!("{name}-{i}")));
        }
        let mut now = 1000;
        let mut run = Run::default();
        let limit = passes_for(sizes.len() + busy, cap) + 5;
        drive(&mut core, &mut now, limit, &mut run);
        let placed: BTreeSet<String> =
            run.placed.iter().filter(|p| p.starts_with('g')).cloned().collect();
        prop_assert_eq!(&placed, &want);
        prop_assert!(run.placed.iter().all(|p| !p.starts_with("busy")));
        prop_assert!(
            run.passes <= passes_for(sizes.len() + busy, cap),
            "{} passes for {} groups at {} per pass", run.passes, sizes.len() + busy, cap
        );
        prop_assert!(!core.more_pending());
    }

    /// A head that waits for a running gang holds its reservation; groups
    /// behind it that end before it can start are backfilled, all of them,
    /// however many passes the queue takes.
    #[test]
    fn groups_behind_a_reservation_head_are_all_backfilled(
        cap in 1usize..10,
        sizes in prop::collection::vec(1u32..4, 1..80),
    ) {
        // The running gang leaves 7 cores a node.
        let pods: u32 = sizes.iter().sum();
        let nodes = (pods as usize).div_ceil(7) + 1;
        let mut core = core(nodes, cap, Millis(0));
        let mut now = 0;
        let mut run = Run::default();
        // A running gang holds a core on every node for 1,000 s.
        add_group(&mut core, "running", nodes as u32, 1000, 0, 1000);
        drive(&mut core, &mut now, 10, &mut run);
        prop_assert_eq!(run.placed.len(), nodes);
        // The head needs every core: it must wait for the running gang.
        add_group(&mut core, "head", nodes as u32, 8000, 1, 100);
        let mut want = BTreeSet::new();
        for (g, size) in sizes.iter().enumerate() {
            let name = format!("small{g:03}");
            // 10 s jobs end long before the head can start.
            add_group(&mut core, &name, *size, 1000, 2 + g as i64, 10);
            want.extend((0..*size).map(|i| format!("{name}-{i}")));
        }
        let mut run = Run::default();
        let limit = passes_for(sizes.len() + 1, cap) + 5;
        drive(&mut core, &mut now, limit, &mut run);
        prop_assert_eq!(&run.placed, &want);
        prop_assert!(matches!(core.reservation(), Some((k, _)) if k.name == "head"));
        prop_assert!(run.passes <= passes_for(sizes.len() + 1, cap), "{} passes", run.passes);
        prop_assert!(!core.more_pending());
    }

    /// Members that arrive after their group was placed (above minMember)
    /// are placed too, for any number of groups, with no further event.
    #[test]
    fn late_members_of_many_groups_are_all_placed(
        cap in 1usize..10,
        late in prop::collection::vec(0u32..4, 1..60),
    ) {
        let pods = late.len() as u32 * 2 + late.iter().sum::<u32>();
        let nodes = (pods as usize).div_ceil(8) + 1;
        let mut core = core(nodes, cap, Millis::from_secs(300));
        let mut now = 0;
        let mut run = Run::default();
        for g in 0..late.len() {
            add_group(&mut core, &format!("g{g:03}"), 2, 1000, g as i64, 100);
        }
        drive(&mut core, &mut now, passes_for(late.len(), cap) + 5, &mut run);
        prop_assert_eq!(run.placed.len(), 2 * late.len());
        let mut want = BTreeSet::new();
        for (g, extra) in late.iter().enumerate() {
            let name = format!("g{g:03}");
            for i in 2..2 + extra {
                core.apply(Event::PodUpsert(pod(&name, i, 1000, now)));
                want.insert(format!("{name}-{i}"));
            }
        }
        let mut run = Run::default();
        drive(&mut core, &mut now, 5, &mut run);
        prop_assert_eq!(&run.placed, &want);
        prop_assert!(run.passes <= 2, "{} passes", run.passes);
    }
}

/// The scenario of issue 21 at the default cap: 2,500 single pods that fit
/// are all placed in three passes, the first started by the burst itself.
#[test]
fn a_burst_above_the_default_cap_is_placed_without_an_external_event() {
    let mut core = core(320, GangConfig::default().max_groups_per_pass, Millis(0));
    for p in 0..2500 {
        let mut single = pod(&format!("p{p:04}"), 0, 1000, p);
        single.group = None;
        core.apply(Event::PodUpsert(single));
    }
    let (mut now, mut run) = (10_000, Run::default());
    drive(&mut core, &mut now, 10, &mut run);
    assert_eq!(run.placed.len(), 2500);
    assert_eq!(run.passes, 3);
    assert!(!core.more_pending());
    assert_eq!(core.next_wakeup(), None);
}

/// A walk split over passes resumes where it stopped, even when the queue
/// ahead of the cursor changes between passes: a group that arrives at the
/// front is examined by the fresh walk that follows, not lost.
#[test]
fn split_walk_resumes_after_queue_changes_and_then_walks_again() {
    let mut core = core(8, 2, Millis::from_secs(300));
    for g in 0..6 {
        add_group(&mut core, &format!("g{g}"), 1, 1000, 100 + g, 100);
    }
    let d = core.schedule(Timestamp::from_millis(1000));
    assert_eq!(d.binds.len(), 2);
    assert!(core.more_pending());
    assert_eq!(core.next_wakeup(), Some(Timestamp::from_millis(1000)));
    // An older group arrives: it sorts ahead of the cursor.
    add_group(&mut core, "early", 1, 1000, 0, 100);
    let names =
        |d: &Decisions| -> Vec<String> { d.binds.iter().map(|b| b.group.name.clone()).collect() };
    let d = core.schedule(Timestamp::from_millis(1001));
    assert_eq!(names(&d), ["g2", "g3"]);
    let d = core.schedule(Timestamp::from_millis(1002));
    assert_eq!(names(&d), ["g4", "g5"]);
    let d = core.schedule(Timestamp::from_millis(1003));
    assert_eq!(names(&d), ["early"]);
    assert!(!core.more_pending());
}
