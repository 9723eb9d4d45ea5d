//! Whole-gang preemption by priority: who is chosen, that a gang goes whole,
//! that the room is held for the preemptor while victims terminate, and
//! that a preemption is asked for once.

mod common;

use common::{Sim, group, pod};
use phalanx_gang::*;
use proptest::prelude::*;

/// Two 8-core nodes held by one low-priority 4-pod gang (4 cores a pod).
fn full_of_low() -> Sim {
    let mut sim = Sim::new(2, 2);
    sim.add_group(group("low", 4, 0, 0), 4, 4000);
    sim.settle(3);
    assert_eq!(sim.bound("low"), 4);
    sim
}

#[test]
fn high_priority_gang_evicts_the_whole_low_gang_and_runs() {
    let mut sim = full_of_low();
    sim.add_group(group("high", 2, 1000, 1), 2, 4000);
    let d = sim.pass();
    assert!(d.binds.is_empty(), "nothing is free yet");
    assert_eq!(d.preemptions.len(), 1);
    let p = &d.preemptions[0];
    assert_eq!(p.preemptor, GroupKey::new("ns", "high"));
    assert_eq!(p.priority, 1000);
    assert_eq!(p.victims.len(), 1);
    let v = &p.victims[0];
    assert_eq!(v.group, GroupKey::new("ns", "low"));
    assert!(v.whole);
    assert_eq!(v.pods.len(), 4, "a gang goes whole");
    assert!(!v.violates_budget);
    assert_eq!(p.nominated.len(), 2);
    assert!(
        p.message
            .starts_with("group ns/high (priority 1000) preempts group ns/low (priority 0)"),
        "{}",
        p.message
    );
    // Events on the preemptor's pods say it preempts.
    let preempting: Vec<_> = d
        .pod_events
        .iter()
        .filter(|e| e.reason == "Preempting")
        .collect();
    assert_eq!(preempting.len(), 2);
    let low = sim.core.group(&GroupKey::new("ns", "low")).unwrap();
    assert!(low.message.starts_with("preempted by"), "{}", low.message);
    sim.delete_victims();
    sim.pass();
    assert_eq!(sim.bound("high"), 2);
    assert_eq!(sim.bound("low"), 0);
    let low = sim.core.group(&GroupKey::new("ns", "low")).unwrap();
    assert_eq!(low.phase, GroupPhase::Pending);
    assert!(low.message.contains("preempted"), "{}", low.message);
}

#[test]
fn a_gang_is_never_evicted_in_part_even_when_one_pod_would_do() {
    let mut sim = full_of_low();
    // One 4-core pod: kube-scheduler would evict one pod of the gang.
    sim.add_group(group("high", 1, 1000, 1), 1, 4000);
    let d = sim.pass();
    assert_eq!(d.preemptions.len(), 1);
    let v = &d.preemptions[0].victims;
    assert_eq!(v.len(), 1);
    assert!(v[0].whole);
    assert_eq!(v[0].pods.len(), 4);
}

#[test]
fn recreated_pods_of_an_evicted_gang_wait_in_the_queue_whole() {
    let mut sim = full_of_low();
    sim.add_group(group("high", 1, 1000, 1), 1, 4000);
    sim.pass();
    sim.delete_victims();
    sim.pass();
    assert_eq!(sim.bound("high"), 1);
    // The job controller recreates the gang's pods: 4 cores are free, room
    // for one of them, but the gang starts whole or not at all.
    for i in 10..14 {
        sim.add_pod(pod("low", i, 4000, 0, sim.now));
    }
    sim.settle(3);
    assert_eq!(sim.bound("low"), 0);
    // The high-priority pod ends: the whole gang starts.
    sim.delete(&PodUid("high-0".into()));
    let placed_at = sim.now;
    let d = sim.pass();
    assert_eq!(sim.bound("low"), 4);
    // Its wait counts from its return to the queue, not from its creation at 0.
    let waited = d
        .binds
        .iter()
        .find(|b| b.group.name == "low")
        .and_then(|b| b.waited)
        .expect("placed whole");
    assert!(
        waited.0 > 0 && waited < Millis::from_secs(placed_at),
        "{waited:?}, placed at {placed_at} s"
    );
}

#[test]
fn equal_or_lower_priority_never_preempts() {
    for prio in [0, -5] {
        let mut sim = full_of_low();
        sim.add_group(group("same", 2, prio, 1), 2, 4000);
        sim.settle(3);
        assert!(sim.preemptions.is_empty(), "priority {prio} preempted");
        assert_eq!(sim.bound("low"), 4);
        assert_eq!(sim.bound("same"), 0);
    }
}

#[test]
fn preemption_policy_never_does_not_preempt() {
    // A pod says Never.
    let mut sim = full_of_low();
    sim.core
        .apply(Event::GroupUpsert(group("high", 2, 1000, 1)));
    for i in 0..2 {
        let mut p = pod("high", i, 4000, 1000, 1);
        if i == 1 {
            p.preemption_policy = PreemptionPolicy::Never;
        }
        sim.add_pod(p);
    }
    sim.settle(3);
    assert!(sim.preemptions.is_empty());
    assert_eq!(sim.bound("high"), 0);
    // The group says Never (its pods say nothing).
    let mut sim = full_of_low();
    let mut g = group("high", 2, 1000, 1);
    g.preemption_policy = Some(PreemptionPolicy::Never);
    sim.add_group(g, 2, 4000);
    sim.settle(3);
    assert!(sim.preemptions.is_empty());
    // The group's word wins over its pods'.
    let mut sim = full_of_low();
    let mut g = group("high", 2, 1000, 1);
    g.preemption_policy = Some(PreemptionPolicy::PreemptLowerPriority);
    sim.core.apply(Event::GroupUpsert(g));
    for i in 0..2 {
        let mut p = pod("high", i, 4000, 1000, 1);
        p.preemption_policy = PreemptionPolicy::Never;
        sim.add_pod(p);
    }
    sim.pass();
    assert_eq!(sim.preemptions.len(), 1);
    // Preemption turned off in the settings.
    let mut sim = Sim::with_config(
        2,
        2,
        GangConfig {
            preemption: false,
            ..GangConfig::default()
        },
    );
    sim.add_group(group("low", 4, 0, 0), 4, 4000);
    sim.settle(3);
    sim.add_group(group("high", 2, 1000, 1), 2, 4000);
    sim.settle(3);
    assert!(sim.preemptions.is_empty());
}

/// Four nodes: gang `a` (newer, so cheaper) on two, gang `b` on the other two.
fn two_low_gangs() -> Sim {
    let mut sim = Sim::new(4, 2);
    sim.add_group(group("b", 4, 0, 0), 4, 4000);
    sim.settle(2);
    sim.now += 100;
    sim.add_group(group("a", 4, 0, 100), 4, 4000);
    sim.settle(2);
    assert_eq!((sim.bound("a"), sim.bound("b")), (4, 4));
    sim
}

fn budget(name: &str, job: &str, allowed: u32) -> DisruptionBudget {
    DisruptionBudget {
        namespace: "ns".into(),
        name: name.into(),
        selector: Some(LabelSelector {
            match_labels: [("job".to_owned(), job.to_owned())].into(),
            match_expressions: Vec::new(),
        }),
        disruptions_allowed: allowed,
    }
}

#[test]
fn least_work_lost_is_chosen_among_equal_gangs() {
    let mut sim = two_low_gangs();
    sim.add_group(group("high", 2, 1000, 200), 2, 4000);
    let d = sim.pass();
    assert_eq!(d.preemptions.len(), 1);
    let v = &d.preemptions[0].victims;
    assert_eq!(v.len(), 1, "one gang is enough");
    assert_eq!(v[0].group.name, "a", "a has run less");
}

#[test]
fn a_choice_that_keeps_every_budget_is_preferred() {
    let mut sim = two_low_gangs();
    // a is cheaper, but a budget protects it.
    sim.core.apply(Event::BudgetUpsert(budget("pdb-a", "a", 0)));
    sim.add_group(group("high", 2, 1000, 200), 2, 4000);
    let d = sim.pass();
    let v = &d.preemptions[0].victims;
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].group.name, "b");
    assert!(!v[0].violates_budget);
}

#[test]
fn when_every_choice_breaks_a_budget_the_victim_says_so() {
    let mut sim = two_low_gangs();
    sim.core.apply(Event::BudgetUpsert(budget("pdb-a", "a", 1)));
    sim.core.apply(Event::BudgetUpsert(budget("pdb-b", "b", 0)));
    sim.add_group(group("high", 2, 1000, 200), 2, 4000);
    let d = sim.pass();
    let p = &d.preemptions[0];
    assert_eq!(p.victims.len(), 1);
    assert_eq!(p.victims[0].group.name, "a");
    assert!(p.victims[0].violates_budget);
    assert!(p.message.contains("PodDisruptionBudget"), "{}", p.message);
    // A budget removed no longer counts.
    let mut sim = two_low_gangs();
    sim.core.apply(Event::BudgetUpsert(budget("pdb-a", "a", 0)));
    sim.core.apply(Event::BudgetDelete {
        namespace: "ns".into(),
        name: "pdb-a".into(),
    });
    sim.add_group(group("high", 2, 1000, 200), 2, 4000);
    let d = sim.pass();
    assert_eq!(d.preemptions[0].victims[0].group.name, "a");
    assert!(!d.preemptions[0].victims[0].violates_budget);
}

#[test]
fn fewest_gangs_before_lowest_priority() {
    // Three nodes: two 1-pod gangs of priority 0 on n0 and n1 (8 cores
    // each), one 2-pod gang of priority 10 filling n2... no: 8 cores a
    // pod, so each gang of priority 0 holds one node, and the 2-pod gang of
    // priority 10 holds two nodes.
    let mut sim = Sim::new(4, 4);
    sim.add_group(group("mid", 2, 10, 0), 2, 8000);
    sim.settle(2);
    sim.add_group(group("low1", 1, 0, 1), 1, 8000);
    sim.add_group(group("low2", 1, 0, 1), 1, 8000);
    sim.settle(2);
    // The preemptor needs two whole nodes: evicting mid (one gang) beats
    // evicting low1 and low2 (two gangs), though they have lower priority.
    sim.add_group(group("high", 2, 1000, 5), 2, 8000);
    let d = sim.pass();
    let v = &d.preemptions[0].victims;
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].group.name, "mid");
}

#[test]
fn elastic_members_go_before_any_gang() {
    // Three nodes. `gang` (priority 0) holds n0; `el` (priority 500, minimum
    // 2, 4 pods) holds n1 and n2.
    let mut sim = Sim::new(3, 3);
    sim.add_group(group("gang", 2, 0, 0), 2, 4000);
    sim.settle(2);
    sim.add_group(group("el", 2, 500, 1), 4, 4000);
    sim.settle(3);
    assert_eq!((sim.bound("gang"), sim.bound("el")), (2, 4));
    // Two 4-core pods: gang (lower priority) would do, but el's two
    // elastic members go first.
    sim.add_group(group("high", 2, 1000, 5), 2, 4000);
    let d = sim.pass();
    let v = &d.preemptions[0].victims;
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].group.name, "el");
    assert!(!v[0].whole);
    assert_eq!(v[0].pods.len(), 2);
    sim.delete_victims();
    sim.pass();
    assert_eq!(sim.bound("high"), 2);
    assert_eq!(sim.bound("el"), 2, "its minimum keeps running");
    assert_eq!(sim.bound("gang"), 2);
}

#[test]
fn the_nomination_holds_against_lower_and_equal_newcomers() {
    let mut sim = full_of_low();
    // Needs both nodes.
    sim.add_group(group("high", 2, 1000, 1), 2, 8000);
    sim.pass();
    assert_eq!(sim.preemptions.len(), 1);
    // Half of the victims are gone: one node is free.
    sim.terminate_victims();
    let on_n0: Vec<PodUid> = sim
        .pods
        .values()
        .filter(|p| p.group.as_ref().is_some_and(|g| g.name == "low"))
        .filter(|p| p.node_name.as_deref() == Some("n0"))
        .map(|p| p.uid.clone())
        .collect();
    assert_eq!(on_n0.len(), 2);
    for uid in &on_n0 {
        sim.delete(uid);
    }
    // Newcomers of lower and of equal priority fit the free node but may not take it.
    sim.add_group(group("mid", 1, 500, 2), 1, 4000);
    sim.add_group(group("peer", 1, 1000, 2), 1, 4000);
    sim.settle(3);
    assert_eq!(sim.bound("mid"), 0);
    assert_eq!(sim.bound("peer"), 0);
    assert_eq!(sim.bound("high"), 0);
    assert_eq!(sim.preemptions.len(), 1, "no second preemption");
    sim.delete_victims();
    sim.pass();
    assert_eq!(sim.bound("high"), 2);
}

#[test]
fn a_higher_priority_group_may_take_a_nomination_over() {
    let mut sim = full_of_low();
    sim.add_group(group("high", 2, 1000, 1), 2, 8000);
    sim.pass();
    sim.terminate_victims();
    sim.delete_victims();
    // Before the preemptor's next pass, a group of higher priority arrives.
    sim.add_group(group("top", 1, 2000, 2), 1, 8000);
    sim.pass();
    assert_eq!(sim.bound("top"), 1);
    assert_eq!(sim.bound("high"), 0);
    assert_eq!(sim.preemptions.len(), 1, "nothing else to evict");
}

#[test]
fn no_second_preemption_while_victims_terminate() {
    let mut sim = full_of_low();
    sim.add_group(group("high", 2, 1000, 1), 2, 4000);
    sim.pass();
    assert_eq!(sim.preemptions.len(), 1);
    // Deletion asked, not yet seen: passes (and unrelated events) ask nothing more.
    for i in 0..3 {
        sim.add_group(group(&format!("other{i}"), 1, 0, 2), 1, 4000);
        let d = sim.pass();
        assert!(d.preemptions.is_empty());
    }
    // Terminating, long past the retry time: still nothing more.
    sim.terminate_victims();
    sim.now += 120;
    for _ in 0..3 {
        assert!(sim.pass().preemptions.is_empty());
    }
    assert_eq!(sim.bound("high"), 0);
    sim.delete_victims();
    sim.pass();
    assert_eq!(sim.bound("high"), 2);
    assert_eq!(sim.preemptions.len(), 1);
}

#[test]
fn victims_that_stay_are_asked_again_after_the_retry_time() {
    let mut sim = full_of_low();
    sim.add_group(group("high", 2, 1000, 1), 2, 4000);
    let t0 = sim.now;
    sim.pass();
    let first = sim.preemptions[0].clone();
    // The deletions were lost: nothing terminates.
    let wake = sim.core.next_wakeup().expect("a retry is due");
    assert_eq!(wake, Timestamp::from_secs(t0 + 30));
    sim.now = t0 + 29;
    assert!(sim.pass().preemptions.is_empty());
    sim.now = t0 + 30;
    let d = sim.pass();
    assert_eq!(d.preemptions.len(), 1);
    assert_eq!(d.preemptions[0].victims, first.victims);
    assert_eq!(d.preemptions[0].preemptor, first.preemptor);
    // Once they terminate, no more.
    sim.terminate_victims();
    sim.now += 60;
    assert!(sim.pass().preemptions.is_empty());
}

#[test]
fn restart_in_the_middle_of_a_preemption_chooses_no_more_victims() {
    // Four nodes: `a` on n0-n1 is terminating (a preemption was under way
    // when the scheduler restarted), `b` on n2-n3 is not.
    let mut sim = Sim::new(4, 2);
    sim.add_group(group("a", 4, 0, 0), 4, 4000);
    sim.settle(2);
    sim.add_group(group("b", 4, 0, 0), 4, 4000);
    sim.settle(2);
    let mut fresh = GangScheduler::new(GangConfig::default());
    for i in 0..4 {
        fresh.apply(Event::NodeUpsert(common::node(i, 2)));
    }
    fresh.apply(Event::GroupUpsert(group("a", 4, 0, 0)));
    fresh.apply(Event::GroupUpsert(group("b", 4, 0, 0)));
    for p in sim.pods.values_mut() {
        if p.group.as_ref().is_some_and(|g| g.name == "a") {
            p.terminating = true;
        }
        fresh.apply(Event::PodUpsert(p.clone()));
    }
    sim.core = fresh;
    sim.add_group(group("high", 2, 1000, 5), 2, 8000);
    for _ in 0..3 {
        let d = sim.pass();
        assert!(d.preemptions.is_empty(), "{:?}", d.preemptions);
    }
    assert_eq!(sim.bound("high"), 0);
    let msg = sim
        .core
        .group(&GroupKey::new("ns", "high"))
        .unwrap()
        .message;
    assert!(msg.starts_with("preempting"), "{msg}");
    // a's pods go: high runs, b untouched.
    let a: Vec<PodUid> = sim
        .pods
        .values()
        .filter(|p| p.group.as_ref().is_some_and(|g| g.name == "a"))
        .map(|p| p.uid.clone())
        .collect();
    for uid in &a {
        sim.delete(uid);
    }
    sim.pass();
    assert_eq!(sim.bound("high"), 2);
    assert_eq!(sim.bound("b"), 4);
}

#[test]
fn other_schedulers_pods_without_a_group_may_be_victims_alone() {
    let mut sim = Sim::new(1, 1);
    let mut other = pod("x", 0, 8000, 0, 0);
    other.group = None;
    other.scheduler_name = "default-scheduler".into();
    other.node_name = Some("n0".into());
    other.phase = PodPhase::Running;
    sim.add_pod(other);
    sim.add_group(group("high", 1, 1000, 1), 1, 8000);
    let d = sim.pass();
    assert_eq!(d.preemptions.len(), 1);
    let v = &d.preemptions[0].victims;
    assert_eq!(v[0].pods[0].name, "x-0");
    assert!(v[0].whole);
    // A pod of another scheduler's group is never a victim.
    let mut sim = Sim::new(1, 1);
    let mut other = pod("y", 0, 8000, 0, 0);
    other.scheduler_name = "volcano".into();
    other.node_name = Some("n0".into());
    sim.add_pod(other);
    sim.add_group(group("high", 1, 1000, 1), 1, 8000);
    sim.settle(2);
    assert!(sim.preemptions.is_empty());
}

#[test]
fn pod_disruption_mode_loses_single_pods() {
    let mut sim = Sim::new(2, 2);
    let mut g = group("web", 1, 0, 0);
    g.disruption = DisruptionMode::Pod;
    sim.add_group(g, 4, 4000);
    sim.settle(3);
    assert_eq!(sim.bound("web"), 4);
    sim.add_group(group("high", 1, 1000, 1), 1, 4000);
    let d = sim.pass();
    let v = &d.preemptions[0].victims;
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].pods.len(), 1);
    assert!(!v[0].whole);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Random low-priority gangs (some elastic) fill eight nodes; a
    /// high-priority gang arrives. Victims are strictly lower in priority,
    /// no gang loses part of its minimum, and once the victims are gone the
    /// preemptor runs whole.
    #[test]
    fn victims_are_lower_whole_and_make_room(
        gangs in proptest::collection::vec((1u32..4, 0u32..3, -3i32..3, 1u64..5), 1..10),
        want in 1u32..6,
        cpu in 1u64..9,
    ) {
        let mut sim = Sim::new(8, 4);
        let mut mins = std::collections::BTreeMap::new();
        for (i, (min, extra, prio, c)) in gangs.iter().enumerate() {
            let name = format!("g{i}");
            sim.add_group(group(&name, *min, *prio, i as i64), min + extra, c * 1000);
            mins.insert(name, *min);
            // Lower gangs may preempt even lower ones while the cluster fills.
            sim.settle(3);
            sim.delete_victims();
            sim.settle(3);
        }
        let seen = sim.preemptions.len();
        let before: std::collections::BTreeMap<String, usize> =
            mins.keys().map(|k| (k.clone(), sim.bound(k))).collect();
        sim.add_group(group("high", want, 1000, 50), want, cpu * 1000);
        let d = sim.pass();
        prop_assert!(d.preemptions.len() <= 1);
        if d.binds.iter().any(|b| b.group.name == "high") {
            prop_assert!(d.preemptions.is_empty());
            return Ok(());
        }
        for p in &d.preemptions {
            prop_assert_eq!(&p.preemptor.name, "high");
            for v in &p.victims {
                prop_assert!(v.priority < 1000);
                let min = mins[&v.group.name] as usize;
                let had = before[&v.group.name];
                if v.whole {
                    prop_assert_eq!(v.pods.len(), had);
                } else {
                    // Only members above the minimum.
                    prop_assert!(had - v.pods.len() >= min);
                }
            }
        }
        if !d.preemptions.is_empty() {
            prop_assert_eq!(sim.preemptions.len(), seen + 1);
            sim.delete_victims();
            sim.pass();
            prop_assert_eq!(sim.bound("high"), want as usize);
        }
        // No gang is ever left below its minimum.
        for (k, min) in &mins {
            let n = sim.bound(k);
            prop_assert!(n == 0 || n >= *min as usize, "{} left with {}", k, n);
        }
    }
}

#[test]
fn a_reserved_head_gives_way_to_a_higher_priority_preemptor() {
    let mut sim = Sim::with_config(
        2,
        2,
        GangConfig {
            reserve_after: Millis(0),
            ..GangConfig::default()
        },
    );
    sim.add_group(group("run", 2, 0, 0), 2, 8000);
    sim.settle(2);
    // An equal-priority head waits, reserved for; it may not preempt `run`.
    sim.add_group(group("head", 1, 0, 1), 1, 8000);
    sim.settle(2);
    assert_eq!(
        sim.core.reservation().map(|r| r.0.name.as_str()),
        Some("head")
    );
    assert!(sim.preemptions.is_empty());
    // A higher priority preempts past the reservation.
    sim.add_group(group("high", 2, 100, 2), 2, 8000);
    sim.pass();
    assert_eq!(sim.preemptions.len(), 1);
    assert_eq!(sim.preemptions[0].victims[0].group.name, "run");
    sim.delete_victims();
    sim.settle(2);
    assert_eq!(sim.bound("high"), 2);
    assert_eq!(sim.bound("head"), 0, "the room was held for the preemptor");
}

#[test]
fn an_equal_priority_group_behind_a_reserved_head_does_not_preempt() {
    let mut sim = Sim::with_config(
        2,
        2,
        GangConfig {
            reserve_after: Millis(0),
            ..GangConfig::default()
        },
    );
    sim.add_group(group("r0", 1, 0, 0), 1, 8000);
    sim.add_group(group("r1", 1, 0, 0), 1, 8000);
    sim.settle(2);
    // The head (priority 10) never preempts: it waits for r0 and r1 to end.
    let mut head = group("head", 2, 10, 1);
    head.preemption_policy = Some(PreemptionPolicy::Never);
    sim.add_group(head, 2, 8000);
    sim.settle(2);
    assert_eq!(
        sim.core.reservation().map(|r| r.0.name.as_str()),
        Some("head")
    );
    // A younger group of the same priority could evict r0, which would
    // delay the head: it does not.
    sim.add_group(group("peer", 1, 10, 2), 1, 8000);
    sim.settle(3);
    assert!(sim.preemptions.is_empty(), "{:?}", sim.preemptions);
    assert_eq!(sim.bound("peer"), 0);
}

#[test]
fn attempts_beyond_the_per_pass_cap_follow_at_once() {
    let n = 12;
    let mut sim = Sim::new(n, 4);
    for i in 0..n {
        sim.add_group(group(&format!("low{i}"), 1, 0, 0), 1, 8000);
    }
    sim.settle(2);
    for i in 0..n {
        sim.add_group(group(&format!("high{i}"), 1, 100, 1), 1, 8000);
    }
    let first = sim.pass().preemptions.len();
    assert!(first > 0 && first < n, "{first} in one pass");
    let due = sim.core.next_wakeup().expect("the rest are due");
    assert!(due <= Timestamp::from_secs(sim.now));
    sim.pass();
    assert_eq!(sim.preemptions.len(), n);
    // Every low gang is a victim exactly once.
    let mut victims: Vec<String> = sim
        .preemptions
        .iter()
        .flat_map(|p| &p.victims)
        .map(|v| v.group.name.clone())
        .collect();
    victims.sort();
    victims.dedup();
    assert_eq!(victims.len(), n);
    sim.delete_victims();
    sim.settle(3);
    for i in 0..n {
        assert_eq!(sim.bound(&format!("high{i}")), 1);
    }
}

#[test]
fn a_hold_on_a_removed_node_is_not_leaked() {
    let mut sim = full_of_low();
    sim.add_group(group("high", 2, 1000, 1), 2, 8000);
    sim.pass();
    assert_eq!(sim.preemptions.len(), 1);
    // n1 goes away while the victims terminate; a new node comes.
    sim.core.apply(Event::NodeDelete("n1".into()));
    sim.delete_victims();
    sim.core.apply(Event::NodeUpsert(common::node(2, 2)));
    sim.settle(3);
    assert_eq!(sim.bound("high"), 2);
    let mut nodes = sim.nodes_of("high");
    nodes.sort();
    assert_eq!(nodes, vec!["n0".to_owned(), "n2".to_owned()]);
}

#[test]
fn victims_are_only_where_the_preemptor_may_run() {
    // Four nodes, one 1-pod gang each; the cheapest (newest) are on n0-n2,
    // but the preemptor may only use n3.
    let mut sim = Sim::new(4, 4);
    sim.core.apply(Event::NodeUpsert(Node {
        labels: [("pool".to_owned(), "special".to_owned())].into(),
        ..common::node(3, 4)
    }));
    sim.core.apply(Event::GroupUpsert(group("on3", 1, 0, 0)));
    let mut p = pod("on3", 0, 8000, 0, 0);
    p.node_selector = [("pool".to_owned(), "special".to_owned())].into();
    sim.add_pod(p);
    sim.settle(2);
    for i in 0..3 {
        sim.now += 10;
        sim.add_group(group(&format!("cheap{i}"), 1, 0, sim.now), 1, 8000);
        sim.settle(2);
    }
    assert_eq!(sim.nodes_of("on3"), vec!["n3".to_owned()]);
    sim.core
        .apply(Event::GroupUpsert(group("high", 1, 1000, sim.now)));
    let mut p = pod("high", 0, 8000, 1000, sim.now);
    p.node_selector = [("pool".to_owned(), "special".to_owned())].into();
    sim.add_pod(p);
    let d = sim.pass();
    assert_eq!(d.preemptions.len(), 1);
    let v = &d.preemptions[0].victims;
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].group.name, "on3");
    assert_eq!(d.preemptions[0].nominated[0].node, "n3");
}

#[test]
fn a_victim_gone_before_its_bind_leaves_no_slot_behind() {
    // `low` is placed but its binds have not been confirmed when `high`
    // preempts it; its pods then vanish before the bind (PodGone).
    let mut sim = Sim::new(2, 2);
    sim.add_group(group("low", 4, 0, 0), 4, 4000);
    let d = sim.core.schedule(Timestamp::from_secs(sim.now));
    assert_eq!(d.binds.len(), 1);
    sim.add_group(group("high", 2, 1000, 1), 2, 8000);
    sim.pass();
    assert_eq!(sim.preemptions.len(), 1);
    for b in &d.binds[0].pods {
        sim.core.apply(Event::BindResult {
            pod: b.pod.clone(),
            node: b.node.clone(),
            outcome: BindOutcome::PodGone,
        });
        sim.pods.remove(&b.pod);
    }
    sim.pass();
    assert_eq!(sim.bound("high"), 2, "no vacant slot holds the room");
}

/// One step of a random run.
#[derive(Debug, Clone)]
enum Step {
    /// A gang arrives: minimum, extra members, priority, cores a pod.
    Arrive(u32, u32, i32, u64),
    /// Every victim asked for so far starts terminating.
    Terminate,
    /// Every victim asked for so far is gone.
    Delete,
    /// A running gang ends (index into the arrivals).
    End(usize),
    /// Time passes (seconds).
    Wait(i64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (1u32..4, 0u32..3, prop_oneof![Just(0), Just(10), Just(100)], 1u64..9)
            .prop_map(|(m, e, p, c)| Step::Arrive(m, e, p, c)),
        1 => Just(Step::Terminate),
        2 => Just(Step::Delete),
        1 => (0usize..12).prop_map(Step::End),
        1 => (1i64..60).prop_map(Step::Wait),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    /// Random arrivals, terminations, deletions and endings on six nodes.
    /// No gang ever runs below its minimum, victims are always of lower
    /// priority than their preemptor, a victim is asked for again only
    /// after the retry time, and once everything is gone no room stays held.
    #[test]
    fn random_runs_keep_gangs_whole_and_leak_nothing(
        steps in proptest::collection::vec(step(), 1..30),
    ) {
        let mut sim = Sim::new(6, 3);
        let mut mins: Vec<(String, u32)> = Vec::new();
        let mut asked: std::collections::BTreeMap<PodUid, i64> = Default::default();
        let retry = GangConfig::default().preemption_retry.0 / 1000;
        for s in steps {
            match s {
                Step::Arrive(min, extra, prio, cpu) => {
                    let name = format!("g{}", mins.len());
                    sim.add_group(group(&name, min, prio, sim.now), min + extra, cpu * 1000);
                    mins.push((name, min));
                }
                Step::Terminate => sim.terminate_victims(),
                Step::Delete => sim.delete_victims(),
                Step::End(i) => {
                    if let Some((name, _)) = mins.get(i) {
                        let uids: Vec<PodUid> = sim
                            .pods
                            .values()
                            .filter(|p| p.group.as_ref().is_some_and(|g| &g.name == name))
                            .map(|p| p.uid.clone())
                            .collect();
                        for u in &uids {
                            sim.delete(u);
                        }
                    }
                }
                Step::Wait(s) => sim.now += s,
            }
            let now = sim.now;
            let d = sim.pass();
            for p in &d.preemptions {
                for v in &p.victims {
                    prop_assert!(v.priority < p.priority, "{} preempts {}", p.priority, v.priority);
                    for b in &v.pods {
                        if let Some(t) = asked.insert(b.pod.clone(), now) {
                            prop_assert!(now - t >= retry, "{} asked again after {} s", b.pod, now - t);
                        }
                    }
                }
            }
            for (name, min) in &mins {
                let n = sim.bound(name);
                prop_assert!(n == 0 || n >= *min as usize, "{} runs {} of minimum {}", name, n, min);
            }
        }
        // Everything goes: every core is free again.
        let all: Vec<PodUid> = sim.pods.keys().cloned().collect();
        for u in &all {
            sim.delete(u);
        }
        sim.settle(3);
        let (cpu, _, _, pods) = sim.core.graph().free_totals();
        prop_assert_eq!(cpu, 6 * 8000);
        prop_assert_eq!(pods, 6 * 110);
    }
}

#[test]
fn lowest_priority_before_least_work_lost() {
    // `old` (priority 0) has run long; `new` (priority 5) has just started.
    let mut sim = Sim::new(4, 2);
    sim.add_group(group("old", 4, 0, 0), 4, 4000);
    sim.settle(2);
    sim.now += 1000;
    sim.add_group(group("new", 4, 5, 1000), 4, 4000);
    sim.settle(2);
    sim.add_group(group("high", 2, 1000, 1001), 2, 4000);
    let d = sim.pass();
    let v = &d.preemptions[0].victims;
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].group.name, "old");
    assert_eq!(v[0].priority, 0);
}

/// A budget selecting gangs `a` and `b` (job In [a, b]).
fn budget_over_a_and_b(allowed: u32) -> DisruptionBudget {
    DisruptionBudget {
        namespace: "ns".into(),
        name: "pdb-ab".into(),
        selector: Some(LabelSelector {
            match_labels: Default::default(),
            match_expressions: vec![SelectorRequirement {
                key: "job".into(),
                operator: SelectorOperator::In,
                // A value repeated must not count a pod twice.
                values: vec!["a".into(), "b".into(), "a".into()],
            }],
        }),
        disruptions_allowed: allowed,
    }
}

/// Two 8-core nodes, one 1-pod gang on each (`a` and `b`), one budget over both.
fn two_single_gangs_under_one_budget(allowed: u32) -> Sim {
    let mut sim = Sim::new(2, 2);
    sim.core
        .apply(Event::BudgetUpsert(budget_over_a_and_b(allowed)));
    sim.add_group(group("a", 1, 0, 0), 1, 8000);
    sim.add_group(group("b", 1, 0, 0), 1, 8000);
    sim.settle(3);
    assert_eq!((sim.bound("a"), sim.bound("b")), (1, 1));
    sim
}

#[test]
fn two_preemptions_in_one_pass_share_a_budget() {
    let mut sim = two_single_gangs_under_one_budget(1);
    sim.add_group(group("h1", 1, 1000, 1), 1, 8000);
    sim.add_group(group("h2", 1, 1000, 1), 1, 8000);
    let d = sim.pass();
    assert_eq!(d.preemptions.len(), 2, "{:?}", d.preemptions);
    let marked: Vec<bool> = d
        .preemptions
        .iter()
        .flat_map(|p| &p.victims)
        .map(|v| v.violates_budget)
        .collect();
    assert_eq!(
        marked.iter().filter(|m| **m).count(),
        1,
        "the budget allows one eviction: the second goes past it ({marked:?})"
    );
}

#[test]
fn evictions_asked_earlier_still_use_the_budget_until_they_terminate() {
    let mut sim = two_single_gangs_under_one_budget(1);
    sim.add_group(group("h1", 1, 1000, 1), 1, 8000);
    let d = sim.pass();
    assert_eq!(d.preemptions.len(), 1);
    assert!(!d.preemptions[0].victims[0].violates_budget);
    // The deletion is asked, not yet seen; the controller's status still says 1.
    sim.add_group(group("h2", 1, 1000, 2), 1, 8000);
    let d = sim.pass();
    assert_eq!(d.preemptions.len(), 1);
    assert!(
        d.preemptions[0].victims[0].violates_budget,
        "the first eviction used the budget"
    );
}

#[test]
fn a_victim_stuck_terminating_no_longer_holds_the_room() {
    let mut sim = two_low_gangs();
    sim.add_group(group("high", 2, 1000, 200), 2, 4000);
    let d = sim.pass();
    assert_eq!(d.preemptions.len(), 1);
    assert_eq!(d.preemptions[0].victims[0].group.name, "a");
    // a's pods start terminating and never finish (a finalizer, a node gone).
    sim.terminate_victims();
    let t0 = sim.now;
    for _ in 0..5 {
        assert!(sim.pass().preemptions.is_empty(), "a is still leaving");
    }
    // The core wakes itself when the bound is reached: 10 x the 30 s retry.
    let wake = sim
        .core
        .next_wakeup()
        .expect("a wakeup for the stuck bound");
    assert!(
        wake <= Timestamp::from_secs(t0 + 300),
        "{wake:?} after {t0}"
    );
    sim.now = t0 + 301;
    let d = sim.pass();
    assert_eq!(d.preemptions.len(), 1, "it plans again");
    let v = &d.preemptions[0].victims;
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].group.name, "b", "the stuck pods are not chosen again");
    assert!(v[0].whole);
    // b goes; high runs on b's nodes while a's pods are still stuck.
    for uid in sim.victim_pods() {
        if uid.0.starts_with("b-") {
            sim.delete(&uid);
        }
    }
    sim.pass();
    assert_eq!(sim.bound("high"), 2);
    let a_nodes = sim.nodes_of("a");
    assert!(
        sim.nodes_of("high").iter().all(|n| !a_nodes.contains(n)),
        "never on the stuck pods' nodes: {:?} vs {a_nodes:?}",
        sim.nodes_of("high")
    );
}

/// A gang evicted whole whose deletions were lost stays evicted when they
/// are asked again: once its pods are gone it goes back to the queue whole,
/// and its one pod that never ran is not started alone (found by the
/// hostile proptest below).
#[test]
fn a_gang_asked_again_to_go_is_still_evicted_whole() {
    let mut sim = Sim::new(6, 3);
    // Elastic g1 (minimum 2 of 4, 5 cores a pod) runs 3 beside g0.
    sim.add_group(group("g0", 3, -1, sim.now), 3, 5000);
    sim.pass();
    sim.add_group(group("g1", 2, i32::MIN, sim.now), 4, 5000);
    sim.pass();
    assert_eq!(sim.bound("g1"), 3);
    // g2 takes an elastic member; g3 the rest of g1, whole.
    sim.add_group(group("g2", 1, i32::MAX, sim.now), 1, 4000);
    sim.pass();
    sim.add_group(group("g3", 1, -1, sim.now), 1, 5000);
    let d = sim.pass();
    assert!(
        d.preemptions
            .iter()
            .any(|p| p.victims.iter().any(|v| v.whole))
    );
    // The deletions are lost; after the asks lapse they are asked again.
    sim.now += 301;
    assert!(!sim.pass().preemptions.is_empty(), "asked again");
    sim.delete_victims();
    sim.pass();
    assert_eq!(sim.bound("g1"), 0, "g1's fourth pod does not start alone");
    let st = sim.core.group(&GroupKey::new("ns", "g1")).unwrap();
    assert_eq!(
        st.wait,
        Some(WaitReason::WaitingForPods { have: 1, want: 2 }),
        "{st:?}"
    );
    assert_eq!((sim.bound("g2"), sim.bound("g3")), (1, 1));
}

/// A victim whose own grace period is long (a job that checkpoints for an
/// hour) is still leaving after 5 minutes: no other gang is evicted until
/// its grace period and two retries have passed.
#[test]
fn a_long_grace_period_is_waited_out_before_a_victim_counts_as_stuck() {
    let mut sim = two_low_gangs();
    sim.add_group(group("high", 2, 1000, 200), 2, 4000);
    let d = sim.pass();
    assert_eq!(d.preemptions[0].victims[0].group.name, "a");
    for uid in sim.victim_pods() {
        if let Some(p) = sim.pods.get_mut(&uid) {
            p.termination_grace = Some(Millis::from_secs(3600));
        }
        sim.terminate(&uid);
    }
    let t0 = sim.now;
    assert!(sim.pass().preemptions.is_empty(), "a is leaving");
    for at in [301, 1800, 3599] {
        sim.now = t0 + at;
        assert!(
            sim.pass().preemptions.is_empty(),
            "at {at} s a is within its grace period"
        );
    }
    sim.now = t0 + 3661;
    let d = sim.pass();
    assert_eq!(d.preemptions.len(), 1, "past its grace period it is stuck");
    assert_eq!(d.preemptions[0].victims[0].group.name, "b");
}

#[test]
fn a_preemptor_deleted_while_its_victims_terminate_releases_the_hold() {
    let mut sim = full_of_low();
    sim.add_group(group("high", 2, 1000, 1), 2, 4000);
    sim.pass();
    assert_eq!(sim.preemptions.len(), 1);
    sim.terminate_victims();
    // The preemptor goes away before the victims are gone.
    for i in 0..2 {
        sim.delete(&PodUid(format!("high-{i}")));
    }
    sim.core
        .apply(Event::GroupDelete(GroupKey::new("ns", "high")));
    sim.pass();
    sim.delete_victims();
    // The room is free for anyone, a lower priority too.
    sim.add_group(group("next", 4, 0, 10), 4, 4000);
    sim.settle(3);
    assert_eq!(sim.bound("next"), 4, "the hold was released");
}

#[test]
fn a_storm_of_high_priority_gangs_on_a_full_cluster_is_bounded_and_whole() {
    // Six 8-core nodes, each held by a 1-pod low gang.
    let mut sim = Sim::new(6, 3);
    for i in 0..6 {
        sim.add_group(group(&format!("low{i}"), 1, 0, 0), 1, 8000);
    }
    sim.settle(3);
    for i in 0..6 {
        assert_eq!(sim.bound(&format!("low{i}")), 1);
    }
    // 300 high-priority 2-pod gangs at once (extremes of i32 among them).
    sim.now += 10;
    for i in 0..300 {
        let prio = match i % 3 {
            0 => i32::MAX,
            1 => 1000,
            _ => 1,
        };
        sim.add_group(group(&format!("h{i}"), 2, prio, sim.now), 2, 8000);
    }
    let t = std::time::Instant::now();
    let d = sim.pass();
    eprintln!("storm pass: {:?}", t.elapsed());
    assert!(
        d.preemptions.len() <= 8,
        "at most 8 searches a pass: {}",
        d.preemptions.len()
    );
    assert!(!d.preemptions.is_empty());
    let mut seen = std::collections::BTreeSet::new();
    for p in &d.preemptions {
        assert_eq!(p.priority, i32::MAX, "the highest go first");
        for v in &p.victims {
            assert!(v.whole, "{v:?}");
            for b in &v.pods {
                assert!(seen.insert(b.pod.clone()), "{} chosen twice", b.pod);
            }
        }
    }
    // Victims go; everything settles with no node over-committed and every
    // preemptor that made room running.
    for _ in 0..20 {
        sim.delete_victims();
        sim.pass();
    }
    let running: Vec<String> = (0..300)
        .map(|i| format!("h{i}"))
        .filter(|n| sim.bound(n) > 0)
        .collect();
    assert_eq!(running.len(), 3, "{running:?}");
    for n in &running {
        assert_eq!(sim.bound(n), 2, "{n} runs whole");
    }
    let (cpu, _, _, _) = sim.core.graph().free_totals();
    assert_eq!(cpu, 0, "six nodes, three 2-pod gangs of 8 cores a pod");
    // Every preemptor is of i32::MAX: nothing can preempt them.
    for p in &sim.preemptions {
        assert_eq!(p.priority, i32::MAX);
    }
}

fn hostile_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (
            1u32..4,
            0u32..3,
            prop_oneof![Just(i32::MIN), Just(-1), Just(0), Just(1), Just(i32::MAX - 1), Just(i32::MAX)],
            1u64..9,
        )
            .prop_map(|(m, e, p, c)| Step::Arrive(m, e, p, c)),
        1 => Just(Step::Terminate),
        1 => Just(Step::Delete),
        1 => (0usize..12).prop_map(Step::End),
        // Long enough for terminating victims to count as stuck.
        1 => prop_oneof![Just(1i64), Just(31), Just(301)].prop_map(Step::Wait),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Priorities at the ends of i32, budgets allowing nothing or u32::MAX,
    /// victims that terminate and never go: gangs stay whole (bound and
    /// evicted), victims are of strictly lower priority, evicted gangs keep
    /// their minimum or lose everything, and no node is over-committed by
    /// what is bound.
    #[test]
    fn hostile_priorities_budgets_and_stuck_victims_keep_gangs_whole(
        steps in proptest::collection::vec(hostile_step(), 1..30),
        allowed in prop_oneof![Just(0u32), Just(1), Just(u32::MAX)],
    ) {
        let mut sim = Sim::new(6, 3);
        sim.core.apply(Event::BudgetUpsert(DisruptionBudget {
            namespace: "ns".into(),
            name: "all".into(),
            selector: Some(LabelSelector::default()),
            disruptions_allowed: allowed,
        }));
        let mut mins: Vec<(String, u32)> = Vec::new();
        for s in steps {
            match s {
                Step::Arrive(min, extra, prio, cpu) => {
                    let name = format!("g{}", mins.len());
                    sim.add_group(group(&name, min, prio, sim.now), min + extra, cpu * 1000);
                    mins.push((name, min));
                }
                Step::Terminate => sim.terminate_victims(),
                Step::Delete => {
                    // Only half of the victims go; the others stay stuck terminating.
                    let v = sim.victim_pods();
                    for (i, u) in v.iter().enumerate() {
                        if i % 2 == 0 {
                            sim.delete(u);
                        } else {
                            sim.terminate(u);
                        }
                    }
                }
                Step::End(i) => {
                    if let Some((name, _)) = mins.get(i) {
                        let uids: Vec<PodUid> = sim
                            .pods
                            .values()
                            .filter(|p| p.group.as_ref().is_some_and(|g| &g.name == name))
                            .map(|p| p.uid.clone())
                            .collect();
                        for u in &uids {
                            sim.delete(u);
                        }
                    }
                }
                Step::Wait(s) => sim.now += s,
            }
            let d = sim.pass();
            for p in &d.preemptions {
                for v in &p.victims {
                    prop_assert!(v.priority < p.priority, "{} preempts {}", p.priority, v.priority);
                    // What the group keeps running is its minimum or nothing.
                    let asked: std::collections::BTreeSet<&PodUid> =
                        v.pods.iter().map(|b| &b.pod).collect();
                    let min = mins
                        .iter()
                        .find(|(n, _)| *n == v.group.name)
                        .map_or(1, |(_, m)| *m) as usize;
                    let keeps = sim
                        .pods
                        .values()
                        .filter(|q| {
                            q.group.as_ref() == Some(&v.group)
                                && q.node_name.is_some()
                                && !q.terminating
                                && !asked.contains(&q.uid)
                        })
                        .count();
                    prop_assert!(
                        v.whole || keeps >= min,
                        "{} keeps {} of minimum {}", v.group, keeps, min
                    );
                }
            }
            for (name, min) in &mins {
                // Pods stuck terminating are on their way out, not running.
                let n = sim
                    .pods
                    .values()
                    .filter(|p| {
                        p.group.as_ref().is_some_and(|g| &g.name == name)
                            && p.node_name.is_some()
                            && !p.terminating
                    })
                    .count();
                prop_assert!(n == 0 || n >= *min as usize, "{} runs {} of minimum {}", name, n, min);
            }
            // Bound pods never exceed a node's 8 cores.
            let mut per_node: std::collections::BTreeMap<String, u64> = Default::default();
            for p in sim.pods.values() {
                if let Some(n) = &p.node_name {
                    *per_node.entry(n.clone()).or_default() += p.requests.cpu_millis;
                }
            }
            for (n, c) in per_node {
                prop_assert!(c <= 8000, "{} holds {} millicores", n, c);
            }
        }
    }
}

#[test]
fn a_preemptor_that_no_longer_fits_the_cluster_releases_its_hold() {
    let mut sim = full_of_low();
    sim.add_group(group("high", 2, 1000, 1), 2, 4000);
    sim.pass();
    assert_eq!(sim.preemptions.len(), 1);
    assert!(sim.core.holds_room_for(&GroupKey::new("ns", "high")));
    // Its minimum grows past the whole cluster (four 4-core pods fit, five never).
    sim.core
        .apply(Event::GroupUpsert(group("high", 5, 1000, 1)));
    for i in 2..5 {
        sim.add_pod(pod("high", i, 4000, 1000, 1));
    }
    sim.pass();
    assert!(
        !sim.core.holds_room_for(&GroupKey::new("ns", "high")),
        "no room is held for a group that can never fit"
    );
    sim.delete_victims();
    sim.add_group(group("next", 4, 0, 10), 4, 4000);
    sim.settle(3);
    assert_eq!(sim.bound("next"), 4, "the room is free");
}

#[test]
fn a_preemptor_that_may_no_longer_preempt_releases_its_hold() {
    let mut sim = full_of_low();
    sim.add_group(group("high", 2, 1000, 1), 2, 4000);
    sim.pass();
    assert!(sim.core.holds_room_for(&GroupKey::new("ns", "high")));
    let mut g = group("high", 2, 1000, 1);
    g.preemption_policy = Some(PreemptionPolicy::Never);
    sim.core.apply(Event::GroupUpsert(g));
    sim.pass();
    assert!(!sim.core.holds_room_for(&GroupKey::new("ns", "high")));
}

#[test]
fn a_preemptor_that_loses_pods_below_its_minimum_releases_its_hold() {
    let mut sim = full_of_low();
    sim.add_group(group("high", 2, 1000, 1), 2, 4000);
    sim.pass();
    assert!(sim.core.holds_room_for(&GroupKey::new("ns", "high")));
    sim.delete(&PodUid("high-1".into()));
    sim.pass();
    assert!(!sim.core.holds_room_for(&GroupKey::new("ns", "high")));
}
