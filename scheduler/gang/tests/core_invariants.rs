//! The gang core under scripted and random event sequences.

use std::collections::BTreeMap;

use phalanx_gang::*;
use proptest::prelude::*;

fn node(i: usize) -> Node {
    Node {
        name: format!("n{i}"),
        allocatable: Resources::new(8000, 32 << 30, 2),
        max_pods: 110,
        numa_zones: vec![
            NumaZone {
                id: 0,
                cpu_millis: 4000,
                memory_bytes: 16 << 30,
                gpus: 1,
            },
            NumaZone {
                id: 1,
                cpu_millis: 4000,
                memory_bytes: 16 << 30,
                gpus: 1,
            },
        ],
        numa_policy: NumaPolicy::SingleNumaNode,
        zone: Some("z0".into()),
        rack: Some(format!("r{}", i / 2)),
        ready: true,
        ..Default::default()
    }
}

fn group(name: &str, min: u32, t: i64) -> PodGroup {
    PodGroup {
        key: GroupKey::new("ns", name),
        min_member: min,
        schedule_timeout: Some(Millis::from_secs(30)),
        priority: 0,
        created: Timestamp::from_secs(t),
        expected_duration: Some(Millis::from_secs(100)),
        topology_key: None,
        max_member: None,
        preemption_policy: None,
        disruption: Default::default(),
    }
}

fn pod(g: &str, i: u32, cpu: u64, gpus: u64, t: i64) -> Pod {
    Pod {
        uid: PodUid(format!("{g}-{i}")),
        namespace: "ns".into(),
        name: format!("{g}-{i}"),
        requests: Resources::new(cpu, 1 << 30, gpus),
        group: Some(GroupKey::new("ns", g)),
        priority: 0,
        scheduler_name: "phalanx".into(),
        node_name: None,
        phase: PodPhase::Pending,
        node_selector: BTreeMap::new(),
        required_affinity: Vec::new(),
        tolerations: Vec::new(),
        created: Timestamp::from_secs(t),
        expected_duration: None,
        preemption_policy: Default::default(),
        labels: Default::default(),
        terminating: false,
        termination_grace: None,
    }
}

fn core_with_nodes(n: usize) -> GangScheduler {
    let mut core = GangScheduler::new(GangConfig::default());
    for i in 0..n {
        core.apply(Event::NodeUpsert(node(i)));
    }
    core
}

#[test]
fn waits_for_min_member_then_binds_whole_group() {
    let mut core = core_with_nodes(4);
    core.apply(Event::GroupUpsert(group("g", 4, 0)));
    for i in 0..3 {
        core.apply(Event::PodUpsert(pod("g", i, 1000, 0, 0)));
    }
    let d = core.schedule(Timestamp::from_secs(1));
    assert!(d.binds.is_empty());
    let change = d
        .group_changes
        .iter()
        .find(|c| c.group.name == "g")
        .unwrap();
    assert_eq!(change.message, "3 of 4 pods exist, waiting for 1");
    core.apply(Event::PodUpsert(pod("g", 3, 1000, 0, 1)));
    let d = core.schedule(Timestamp::from_secs(2));
    assert_eq!(d.binds.len(), 1);
    assert_eq!(d.binds[0].pods.len(), 4);
    assert_eq!(
        d.binds[0].waited,
        Some(Millis::from_secs(2)),
        "created at 0, placed at 2"
    );
}

/// A waiting pod hears of each kind of wait once: pods joining a gang one
/// by one change its message every time, but each pod gets one
/// FailedScheduling for "waiting for pods"; when the gang is complete and
/// does not fit, every pod hears that once; a pass that changes nothing
/// tells nobody anything.
#[test]
fn each_pod_hears_of_each_kind_of_wait_once() {
    let mut core = core_with_nodes(1);
    core.apply(Event::GroupUpsert(group("g", 3, 0)));
    let mut told: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut record = |d: &Decisions| {
        for e in &d.pod_events {
            told.entry(e.name.clone())
                .or_default()
                .push(e.message.clone());
        }
    };
    for i in 0..3 {
        core.apply(Event::PodUpsert(pod("g", i, 5000, 0, 0)));
        record(&core.schedule(Timestamp::from_secs(i64::from(i) + 1)));
    }
    record(&core.schedule(Timestamp::from_secs(5)));
    assert_eq!(told.len(), 3, "{told:?}");
    for (i, name) in ["g-0", "g-1", "g-2"].iter().enumerate() {
        let notes = &told[*name];
        if i < 2 {
            assert_eq!(notes.len(), 2, "{name}: {notes:?}");
            assert!(
                notes[0].contains(&format!("{} of 3 pods exist", i + 1)),
                "{notes:?}"
            );
        } else {
            assert_eq!(notes.len(), 1, "{name}: {notes:?}");
        }
        let last = notes.last().map(String::as_str).unwrap_or("");
        assert!(last.contains("unsatisfiable"), "{name}: {notes:?}");
    }
}

#[test]
fn unsatisfiable_group_says_why() {
    let mut core = core_with_nodes(2);
    core.apply(Event::GroupUpsert(group("big", 1, 0)));
    core.apply(Event::PodUpsert(pod("big", 0, 1000, 4, 0)));
    let d = core.schedule(Timestamp::from_secs(1));
    assert!(d.binds.is_empty());
    let c = core.group(&GroupKey::new("ns", "big")).unwrap();
    assert_eq!(c.wait, Some(WaitReason::Unsatisfiable));
    assert_eq!(
        c.message,
        "unsatisfiable: each pod needs 4 GPUs, the largest node has 2"
    );
}

/// Two 8-core nodes; a (2 x 7 cores, 100 s) runs; b (2 x 8 cores) waits.
fn two_nodes_a_running_b_waiting(reserve_after: Millis) -> GangScheduler {
    a_running_b_waiting(
        GangConfig {
            reserve_after,
            ..GangConfig::default()
        },
        7000,
    )
}

/// Two 8-core nodes under `config`; a (2 pods of `a_cpu` millicores,
/// 100 s) runs; b (2 x 8 cores, 100 s: both nodes whole) waits.
fn a_running_b_waiting(config: GangConfig, a_cpu: u64) -> GangScheduler {
    let mut core = GangScheduler::new(config);
    for i in 0..2 {
        core.apply(Event::NodeUpsert(Node {
            numa_policy: NumaPolicy::None,
            ..node(i)
        }));
    }
    core.apply(Event::GroupUpsert(group("a", 2, 0)));
    for i in 0..2 {
        core.apply(Event::PodUpsert(pod("a", i, a_cpu, 0, 0)));
    }
    let d = core.schedule(Timestamp::from_secs(0));
    assert_eq!(d.binds.len(), 1);
    core.apply(Event::GroupUpsert(group("b", 2, 1)));
    for i in 0..2 {
        core.apply(Event::PodUpsert(pod("b", i, 8000, 0, 1)));
    }
    core
}

/// A one-pod, one-core job that runs 1000 s: it would delay b.
fn small_long_job(core: &mut GangScheduler, name: &str, t: i64) {
    let mut c = group(name, 1, t);
    c.expected_duration = Some(Millis::from_secs(1000));
    core.apply(Event::GroupUpsert(c));
    core.apply(Event::PodUpsert(pod(name, 0, 1000, 0, t)));
}

#[test]
fn young_head_is_passed_then_reserved_for_once_it_has_waited() {
    let mut core = two_nodes_a_running_b_waiting(Millis::from_secs(60));
    // b has waited 2 s: c, which fits, starts ahead of it.
    small_long_job(&mut core, "c", 2);
    let d = core.schedule(Timestamp::from_secs(3));
    assert_eq!(d.binds.len(), 1, "{:?}", d.binds);
    assert_eq!(d.binds[0].group.name, "c");
    let b = core.group(&GroupKey::new("ns", "b")).unwrap();
    assert!(b.message.contains("held for it from"), "{}", b.message);
    assert!(core.reservation().is_none());
    // The core asks to be woken when b has waited long enough.
    assert_eq!(core.next_wakeup(), Some(Timestamp::from_secs(61)));
    // From then on b is reserved for, and d (which would delay it) waits.
    small_long_job(&mut core, "d", 62);
    let d = core.schedule(Timestamp::from_secs(63));
    assert!(d.binds.is_empty(), "{:?}", d.binds);
    assert!(matches!(core.reservation(), Some((k, _)) if k.name == "b"));
}

#[test]
fn busy_head_is_reserved_and_backfill_respects_it() {
    let mut core = two_nodes_a_running_b_waiting(Millis::from_secs(0));
    // c: a small long job that would delay b: must not start.
    small_long_job(&mut core, "c", 2);
    let d = core.schedule(Timestamp::from_secs(3));
    assert!(d.binds.is_empty(), "{:?}", d.binds);
    let b = core.group(&GroupKey::new("ns", "b")).unwrap();
    assert!(
        b.message.starts_with("reserved: starts when job ns/a ends"),
        "{}",
        b.message
    );
    assert!(matches!(core.reservation(), Some((k, _)) if k.name == "b"));
}

/// Two 8-core nodes; a (2 x 6 cores, 100 s) runs, leaving 2 cores free on
/// each; b (2 x 8 cores, 100 s) is reserved for at once, from a's end.
fn slack_core(slack: f64) -> GangScheduler {
    let config = GangConfig {
        reserve_after: Millis(0),
        backfill_slack: slack,
        ..GangConfig::default()
    };
    let mut core = a_running_b_waiting(config, 6000);
    assert!(core.schedule(Timestamp::from_secs(1)).binds.is_empty());
    assert!(
        matches!(core.reservation(), Some((k, t)) if k.name == "b" && t == Timestamp::from_secs(100))
    );
    core
}

/// A one-pod, one-core job of `secs` seconds arriving at `t`.
fn one_core_job(core: &mut GangScheduler, name: &str, t: i64, secs: i64) {
    let mut g = group(name, 1, t);
    g.expected_duration = Some(Millis::from_secs(secs));
    core.apply(Event::GroupUpsert(g));
    core.apply(Event::PodUpsert(pod(name, 0, 1000, 0, t)));
}

/// Slack-based backfill (`backfill_slack` 0.5): b, first planned to start
/// at 100 s, is promised a start by 150 s. A job ending by then passes it;
/// the promise stays where it was when the reservation moves (after c, b's
/// planned start is 131 s, yet e, ending at 145 s, still passes); a job
/// ending later than the promise waits. Without slack c waits too.
#[test]
fn slack_lets_jobs_pass_the_head_only_up_to_its_promised_start() {
    let mut easy = slack_core(0.0);
    one_core_job(&mut easy, "c", 2, 128);
    assert!(
        easy.schedule(Timestamp::from_secs(3)).binds.is_empty(),
        "c would delay b"
    );

    let mut core = slack_core(0.5);
    one_core_job(&mut core, "c", 2, 128);
    let d = core.schedule(Timestamp::from_secs(3));
    assert_eq!(
        d.binds.len(),
        1,
        "c ends at 131 s, before the promised 150 s"
    );
    one_core_job(&mut core, "e", 4, 140);
    let d = core.schedule(Timestamp::from_secs(5));
    assert_eq!(
        d.binds.len(),
        1,
        "e ends at 145 s: {:?}",
        core.reservation()
    );
    one_core_job(&mut core, "f", 6, 150);
    let d = core.schedule(Timestamp::from_secs(7));
    assert!(
        d.binds.is_empty(),
        "f would end at 157 s, after the promise"
    );
    let f = core.group(&GroupKey::new("ns", "f")).unwrap();
    assert!(f.message.contains("without delaying ns/b"), "{}", f.message);
}

#[derive(Debug, Clone)]
enum Op {
    NewGroup { size: u32, cpu: u64, gpus: u64 },
    Schedule,
    BindAll { fail_one: bool },
    Finish(usize),
    DeleteFirstPod(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (
            1u32..5,
            prop::sample::select(vec![500u64, 1000, 2000, 4000]),
            0u64..2
        )
            .prop_map(|(size, cpu, gpus)| Op::NewGroup { size, cpu, gpus }),
        Just(Op::Schedule),
        any::<bool>().prop_map(|fail_one| Op::BindAll { fail_one }),
        (0usize..8).prop_map(Op::Finish),
        (0usize..8).prop_map(Op::DeleteFirstPod),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn invariants_hold_under_random_events(ops in prop::collection::vec(op(), 1..40)) {
        let mut core = core_with_nodes(4);
        let initial = core.graph().free_totals();
        let mut groups: Vec<(String, Vec<Pod>)> = Vec::new();
        let mut pending: Vec<PodBinding> = Vec::new();
        let mut t = 0i64;
        for op in ops {
            t += 1;
            match op {
                Op::NewGroup { size, cpu, gpus } => {
                    let name = format!("g{}", groups.len());
                    core.apply(Event::GroupUpsert(group(&name, size, t)));
                    let pods: Vec<Pod> = (0..size).map(|i| pod(&name, i, cpu, gpus, t)).collect();
                    for p in &pods {
                        core.apply(Event::PodUpsert(p.clone()));
                    }
                    groups.push((name, pods));
                }
                Op::Schedule => {
                    let d = core.schedule(Timestamp::from_secs(t));
                    for plan in &d.binds {
                        // Whole or nothing: a first plan carries every live member.
                        let (_, pods) = groups.iter().find(|(n, _)| *n == plan.group.name).unwrap();
                        let placed = pods.iter().filter(|p| core.pod_node(&p.uid).is_some()).count();
                        prop_assert!(placed >= plan.pods.len());
                    }
                    pending.extend(d.binds.into_iter().flat_map(|p| p.pods));
                }
                Op::BindAll { fail_one } => {
                    for (i, b) in pending.drain(..).enumerate() {
                        let outcome = if fail_one && i == 0 {
                            BindOutcome::Failed { message: "conflict".into() }
                        } else {
                            BindOutcome::Bound
                        };
                        core.apply(Event::BindResult { pod: b.pod, node: b.node, outcome });
                    }
                }
                Op::Finish(i) => {
                    if let Some((_, pods)) = groups.get(i) {
                        for p in pods {
                            let mut done = p.clone();
                            done.phase = PodPhase::Succeeded;
                            done.node_name = core.pod_node(&p.uid).map(str::to_owned);
                            core.apply(Event::PodUpsert(done));
                        }
                    }
                }
                Op::DeleteFirstPod(i) => {
                    if let Some((_, pods)) = groups.get(i) && let Some(p) = pods.first() {
                        core.apply(Event::PodDelete(p.uid.clone()));
                    }
                }
            }
            // No node is ever over-committed on any resource.
            for id in core.graph().node_ids() {
                let (cpu, mem, gpus, pods) = core.graph().node_free(id).unwrap();
                prop_assert!(cpu >= 0 && mem >= 0 && gpus >= 0 && pods >= 0);
                for (c, g) in core.graph().node_free_numa(id).unwrap() {
                    prop_assert!(c >= 0 && g >= 0);
                }
            }
            // A group is placed whole or not at all (while all its pods live).
            for (name, pods) in &groups {
                let live: Vec<&Pod> = pods.iter().filter(|p| core.pod_node(&p.uid).is_some() || core.group(&GroupKey::new("ns", name.as_str())).is_some_and(|g| g.phase == GroupPhase::Pending)).collect();
                let placed = pods.iter().filter(|p| core.pod_node(&p.uid).is_some()).count();
                if live.len() == pods.len() {
                    prop_assert!(placed == 0 || placed == pods.len(), "group {name}: {placed} of {} placed", pods.len());
                }
            }
        }
        // Releases restore capacity exactly: end every pod, let vacant slots time out.
        for (_, pods) in &groups {
            for p in pods {
                let mut done = p.clone();
                done.phase = PodPhase::Succeeded;
                done.node_name = core.pod_node(&p.uid).map(str::to_owned);
                core.apply(Event::PodUpsert(done));
                core.apply(Event::PodDelete(p.uid.clone()));
            }
        }
        core.schedule(Timestamp::from_secs(t + 1));
        core.schedule(Timestamp::from_secs(t + 10_000));
        prop_assert_eq!(core.graph().free_totals(), initial);
    }
}

fn plain_core(nodes: usize) -> GangScheduler {
    let mut core = GangScheduler::new(GangConfig::default());
    for i in 0..nodes {
        core.apply(Event::NodeUpsert(Node {
            numa_policy: NumaPolicy::None,
            ..node(i)
        }));
    }
    core
}

#[test]
fn launcher_and_workers_are_matched_in_one_plan() {
    let mut core = plain_core(2);
    core.apply(Event::GroupUpsert(group("mpi", 3, 0)));
    core.apply(Event::PodUpsert(pod("mpi", 0, 500, 0, 0)));
    core.apply(Event::PodUpsert(pod("mpi", 1, 6000, 0, 0)));
    core.apply(Event::PodUpsert(pod("mpi", 2, 6000, 0, 0)));
    let d = core.schedule(Timestamp::from_secs(1));
    assert_eq!(d.binds.len(), 1);
    let nodes: std::collections::BTreeSet<&str> =
        d.binds[0].pods.iter().map(|b| b.node.as_str()).collect();
    assert_eq!(d.binds[0].pods.len(), 3);
    // Two 6-CPU workers cannot share an 8-CPU node.
    assert_eq!(nodes.len(), 2);
}

#[test]
fn a_vanished_pods_slot_waits_for_its_replacement() {
    let mut core = plain_core(2);
    core.apply(Event::GroupUpsert(group("g", 2, 0)));
    core.apply(Event::PodUpsert(pod("g", 0, 6000, 0, 0)));
    core.apply(Event::PodUpsert(pod("g", 1, 6000, 0, 0)));
    let d = core.schedule(Timestamp::from_secs(1));
    let lost = d.binds[0].pods[1].clone();
    core.apply(Event::BindResult {
        pod: lost.pod.clone(),
        node: lost.node.clone(),
        outcome: BindOutcome::PodGone,
    });
    // Another group cannot take the vacant slot...
    core.apply(Event::GroupUpsert(group("other", 1, 2)));
    core.apply(Event::PodUpsert(pod("other", 0, 6000, 0, 2)));
    let d = core.schedule(Timestamp::from_secs(2));
    assert!(d.binds.iter().all(|b| b.group.name != "other"), "{d:?}");
    // ...but the replacement gets it, on the same node.
    core.apply(Event::PodUpsert(pod("g", 2, 6000, 0, 3)));
    let d = core.schedule(Timestamp::from_secs(3));
    let b = d
        .binds
        .iter()
        .find(|b| b.group.name == "g")
        .expect("replacement bound");
    assert_eq!(b.pods[0].node, lost.node);
}

#[test]
fn vacant_slot_is_released_after_the_timeout() {
    let mut core = plain_core(1);
    core.apply(Event::GroupUpsert(group("g", 1, 0)));
    core.apply(Event::PodUpsert(pod("g", 0, 6000, 0, 0)));
    let d = core.schedule(Timestamp::from_secs(1));
    let b = d.binds[0].pods[0].clone();
    core.apply(Event::BindResult {
        pod: b.pod,
        node: b.node,
        outcome: BindOutcome::PodGone,
    });
    core.schedule(Timestamp::from_secs(2));
    assert_eq!(core.graph().free_totals().0, 2000);
    assert_eq!(core.next_wakeup(), Some(Timestamp::from_secs(32)));
    core.schedule(Timestamp::from_secs(32));
    assert_eq!(core.graph().free_totals().0, 8000);
}

#[test]
fn failed_bind_is_retried_on_the_same_node() {
    let mut core = plain_core(2);
    core.apply(Event::GroupUpsert(group("g", 1, 0)));
    core.apply(Event::PodUpsert(pod("g", 0, 1000, 0, 0)));
    let d = core.schedule(Timestamp::from_secs(1));
    let b = d.binds[0].pods[0].clone();
    core.apply(Event::BindResult {
        pod: b.pod.clone(),
        node: b.node.clone(),
        outcome: BindOutcome::Failed {
            message: "timeout".into(),
        },
    });
    assert!(core.schedule(Timestamp::from_secs(1)).binds.is_empty());
    let d = core.schedule(Timestamp::from_secs(3));
    assert_eq!(d.binds[0].pods[0].node, b.node);
}

#[test]
fn pods_bound_elsewhere_or_before_a_restart_take_capacity() {
    let mut core = plain_core(1);
    // Another scheduler's pod.
    let mut other = pod("x", 0, 3000, 0, 0);
    other.scheduler_name = "default-scheduler".into();
    other.group = None;
    other.node_name = Some("n0".into());
    other.phase = PodPhase::Running;
    core.apply(Event::PodUpsert(other));
    // Our pod bound before a restart.
    core.apply(Event::GroupUpsert(group("old", 1, 0)));
    let mut ours = pod("old", 0, 4000, 0, 0);
    ours.node_name = Some("n0".into());
    ours.phase = PodPhase::Running;
    core.apply(Event::PodUpsert(ours));
    assert_eq!(core.graph().free_totals().0, 1000);
    let old = core.group(&GroupKey::new("ns", "old")).unwrap();
    assert_eq!(old.phase, GroupPhase::Running);
    // A new 2-CPU pod does not fit the 1 CPU left.
    core.apply(Event::GroupUpsert(group("new", 1, 1)));
    core.apply(Event::PodUpsert(pod("new", 0, 2000, 0, 1)));
    assert!(core.schedule(Timestamp::from_secs(2)).binds.is_empty());
}

#[test]
fn pods_naming_an_unknown_group_wait_for_its_pod_group() {
    let mut core = plain_core(2);
    core.apply(Event::PodUpsert(pod("late", 0, 1000, 0, 0)));
    let d = core.schedule(Timestamp::from_secs(1));
    assert!(d.binds.is_empty());
    let g = core.group(&GroupKey::new("ns", "late")).unwrap();
    assert!(g.message.contains("does not exist yet"), "{}", g.message);
    core.apply(Event::PodUpsert(pod("late", 1, 1000, 0, 0)));
    core.apply(Event::GroupUpsert(group("late", 2, 0)));
    let d = core.schedule(Timestamp::from_secs(2));
    assert_eq!(d.binds.len(), 1);
    assert_eq!(d.binds[0].pods.len(), 2);
}

#[test]
fn a_pod_bound_before_its_node_is_known_takes_capacity_when_the_node_appears() {
    let mut core = GangScheduler::new(GangConfig::default());
    let mut p = pod("x", 0, 1000, 0, 0);
    p.scheduler_name = "default-scheduler".into();
    p.group = None;
    p.node_name = Some("n0".into());
    core.apply(Event::PodUpsert(p));
    let uid = PodUid("x-0".into());
    assert!(core.pod_claim(&uid).is_none());
    core.apply(Event::NodeUpsert(node(1)));
    assert!(
        core.pod_claim(&uid).is_none(),
        "another node does not take it"
    );
    core.apply(Event::NodeUpsert(node(0)));
    assert!(core.pod_claim(&uid).is_some());
    // The node goes and comes back: the pod holds its capacity again.
    core.apply(Event::NodeDelete("n0".into()));
    assert!(core.pod_claim(&uid).is_none());
    core.apply(Event::NodeUpsert(node(0)));
    assert!(core.pod_claim(&uid).is_some());
}
