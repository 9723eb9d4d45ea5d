//! Elastic groups: the minimum starts whole or not at all; members beyond
//! it join as room appears, near the running ones, never beyond
//! `max_member`; the status says how many of how many run.

mod common;

use common::{Sim, group};
use phalanx_gang::*;
use proptest::prelude::*;

/// One 8-core node with `used` cores taken by another scheduler's pod.
fn node_with_room(sim: &mut Sim, used: u64) {
    if used == 0 {
        return;
    }
    let mut other = common::pod("other", 0, used, 0, 0);
    other.group = None;
    other.scheduler_name = "default-scheduler".into();
    other.node_name = Some("n0".into());
    other.priority = 100_000;
    sim.add_pod(other);
}

#[test]
fn minimum_two_of_four_with_room_for_three_runs_three() {
    let mut sim = Sim::new(1, 1);
    // Room for three 2-core pods.
    node_with_room(&mut sim, 2000);
    sim.add_group(group("el", 2, 0, 0), 4, 2000);
    sim.pass();
    assert_eq!(
        sim.bound("el"),
        3,
        "minimum and one elastic member, in one pass"
    );
    sim.settle(3);
    assert_eq!(sim.bound("el"), 3);
    let st = sim.core.group(&GroupKey::new("ns", "el")).unwrap();
    assert_eq!(st.phase, GroupPhase::Running);
    assert_eq!(st.running, 3);
    assert!(
        st.message.contains("3 of 4 members running (minimum 2)"),
        "{}",
        st.message
    );
    assert!(st.message.contains("1 wait for room"), "{}", st.message);
    // Room appears: the fourth joins.
    sim.delete(&PodUid("other-0".into()));
    sim.pass();
    assert_eq!(sim.bound("el"), 4);
}

#[test]
fn minimum_two_with_room_for_one_runs_none() {
    let mut sim = Sim::new(1, 1);
    node_with_room(&mut sim, 6000);
    sim.add_group(group("el", 2, 0, 0), 4, 2000);
    sim.settle(3);
    assert_eq!(sim.bound("el"), 0);
    let st = sim.core.group(&GroupKey::new("ns", "el")).unwrap();
    assert_eq!(st.phase, GroupPhase::Pending);
}

#[test]
fn max_member_is_never_exceeded() {
    let mut sim = Sim::new(2, 2);
    let mut g = group("el", 2, 0, 0);
    g.max_member = Some(3);
    sim.add_group(g, 5, 2000);
    sim.settle(4);
    assert_eq!(sim.bound("el"), 3);
    // More pods and more room change nothing.
    sim.add_pod(common::pod("el", 9, 1000, 0, sim.now));
    sim.settle(3);
    assert_eq!(sim.bound("el"), 3);
    let st = sim.core.group(&GroupKey::new("ns", "el")).unwrap();
    assert!(st.message.contains("at most 3"), "{}", st.message);
    assert!(st.message.contains("3 above the maximum"), "{}", st.message);
    // One ends: another may take its place, still three at most.
    sim.delete(&PodUid("el-0".into()));
    sim.settle(3);
    assert_eq!(sim.bound("el"), 3);
}

#[test]
fn max_member_below_the_pods_caps_the_first_placement() {
    let mut sim = Sim::new(4, 4);
    let mut g = group("el", 2, 0, 0);
    g.max_member = Some(4);
    sim.add_group(g, 8, 8000);
    let d = sim.pass();
    let first: usize = d
        .binds
        .iter()
        .filter(|b| b.group.name == "el")
        .map(|b| b.pods.len())
        .sum();
    assert_eq!(first, 4, "placed whole, as many as the maximum");
}

#[test]
fn late_members_join_the_rack_of_the_running_ones() {
    // Two racks of two nodes. Other pods fill n0 and half of n1, so rack
    // r0 is the tightest fit for a 4-core pod (what packing picks), while
    // the group runs in rack r1.
    let mut sim = Sim::new(4, 2);
    for (i, (node, cpu)) in [("n0", 8000), ("n1", 4000)].into_iter().enumerate() {
        let mut other = common::pod("other", i as u32, cpu, 0, 0);
        other.group = None;
        other.scheduler_name = "default-scheduler".into();
        other.node_name = Some(node.into());
        other.priority = 100_000;
        sim.add_pod(other);
    }
    sim.add_group(group("el", 1, 0, 0), 1, 8000);
    sim.settle(2);
    assert_eq!(sim.nodes_of("el"), vec!["n2".to_owned()]);
    // A new member fits n1 (rack r0, tighter) and n3 (rack r1): it joins r1.
    sim.add_pod(common::pod("el", 1, 4000, 0, sim.now));
    sim.settle(3);
    let mut nodes = sim.nodes_of("el");
    nodes.sort();
    assert_eq!(nodes, vec!["n2".to_owned(), "n3".to_owned()]);
}

#[test]
fn a_plain_gang_still_starts_whole_or_not_at_all() {
    let mut sim = Sim::new(1, 1);
    node_with_room(&mut sim, 2000);
    sim.add_group(group("gang", 4, 0, 0), 4, 2000);
    sim.settle(3);
    assert_eq!(sim.bound("gang"), 0);
}

#[test]
fn elastic_members_do_not_take_room_held_for_a_reserved_group() {
    // The reserved head (4 nodes' worth) waits for a running group to end;
    // an elastic group's extras must not take what frees up for it.
    let mut sim = Sim::with_config(
        2,
        2,
        GangConfig {
            reserve_after: Millis(0),
            preemption: false,
            ..GangConfig::default()
        },
    );
    sim.add_group(group("el", 1, 0, 0), 1, 8000);
    sim.settle(2);
    // The head needs both nodes; it is reserved for.
    sim.add_group(group("head", 2, 0, 1), 2, 8000);
    sim.settle(2);
    assert!(sim.core.reservation().is_some());
    // el gains a member; n1 is free now but held for the head.
    sim.add_pod(common::pod("el", 1, 8000, 0, sim.now));
    sim.settle(3);
    assert_eq!(sim.bound("el"), 1);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// One node with room for `room` 1-core pods: an elastic group runs
    /// none if its minimum does not fit, else as many as fit, at most
    /// `max_member`, never more than it has.
    #[test]
    fn runs_min_to_max_as_room_allows(
        min in 1u32..5,
        more in 0u32..5,
        max_over in proptest::option::of(0u32..4),
        room in 0u64..9,
    ) {
        let mut sim = Sim::new(1, 1);
        node_with_room(&mut sim, (8 - room) * 1000);
        let mut g = group("el", min, 0, 0);
        g.max_member = max_over.map(|k| min + k);
        sim.add_group(g, min + more, 1000);
        sim.settle(4);
        let total = u64::from(min + more);
        let cap = max_over.map_or(total, |k| u64::from(min + k));
        let want = if room >= u64::from(min) { total.min(cap).min(room) } else { 0 };
        prop_assert_eq!(sim.bound("el") as u64, want);
    }
}

#[test]
fn extreme_sizes_never_panic_nor_place_in_part() {
    // (min_member, max_member, pods) at the ends of u32, a maximum below the
    // minimum, a minimum above the pods there are.
    let cases = [
        (u32::MAX, None, 3u32),
        (u32::MAX, Some(u32::MAX), 3),
        (2, Some(u32::MAX), 4),
        (2, Some(0), 4),
        (3, Some(1), 4),
        (0, Some(1), 3),
        (0, None, 2),
        (6, Some(8), 4),
        (u32::MAX - 1, Some(2), 3),
    ];
    for (min, max, pods) in cases {
        let mut sim = Sim::new(2, 2);
        let mut g = group("el", min, 0, 0);
        g.max_member = max;
        sim.add_group(g, pods, 1000);
        sim.settle(4);
        let n = sim.bound("el") as u32;
        let floor = min.max(1);
        let cap = max.map_or(pods, |m| m.max(floor));
        assert!(
            n == 0 || (n >= floor && n <= cap),
            "min {min} max {max:?} pods {pods}: {n} bound"
        );
        if floor <= pods {
            assert_eq!(n, pods.min(cap), "min {min} max {max:?} pods {pods}");
        }
        let st = sim.core.group(&GroupKey::new("ns", "el")).unwrap();
        assert!(
            !st.message.contains("does not exist"),
            "min {min}: the group exists: {}",
            st.message
        );
    }
}
