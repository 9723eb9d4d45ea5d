//! A group with a topology key is placed inside one domain of that node label.

use std::collections::BTreeMap;

use phalanx_gang::*;

const ZONE: &str = "topology.kubernetes.io/zone";
const SWITCH: &str = "example.com/switch";

fn node(name: &str, zone: &str, cpus: u64) -> Node {
    Node {
        name: name.into(),
        allocatable: Resources::new(cpus * 1000, 32 << 30, 0),
        max_pods: 110,
        labels: [(ZONE.to_string(), zone.to_string())].into(),
        zone: Some(zone.into()),
        ready: true,
        ..Default::default()
    }
}

fn group(name: &str, min: u32, topology_key: Option<&str>) -> PodGroup {
    PodGroup {
        key: GroupKey::new("ns", name),
        min_member: min,
        schedule_timeout: None,
        priority: 0,
        created: Timestamp::from_secs(0),
        expected_duration: None,
        topology_key: topology_key.map(str::to_string),
        max_member: None,
        preemption_policy: None,
        disruption: Default::default(),
    }
}

fn pod(g: &str, i: u32, cpu: u64) -> Pod {
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
        created: Timestamp::from_secs(0),
        expected_duration: None,
        preemption_policy: Default::default(),
        labels: Default::default(),
        terminating: false,
        termination_grace: None,
    }
}

/// Zone a: two 2-CPU nodes; zone b: two 4-CPU nodes. Three 2-CPU pods fit
/// across a0, a1 and b0, but only zone b holds all three.
fn two_zones() -> GangScheduler {
    let mut core = GangScheduler::new(GangConfig::default());
    for (n, z, c) in [
        ("a0", "a", 2),
        ("a1", "a", 2),
        ("b0", "b", 4),
        ("b1", "b", 4),
    ] {
        core.apply(Event::NodeUpsert(node(n, z, c)));
    }
    core
}

fn bound_nodes(d: &Decisions) -> Vec<String> {
    d.binds
        .iter()
        .flat_map(|p| p.pods.iter().map(|b| b.node.clone()))
        .collect()
}

#[test]
fn a_constrained_gang_lands_in_one_domain_of_its_label() {
    // A label across the zones: switch s1 joins a0 and b0, s2 joins a1 and b1.
    let switch = |core: &mut GangScheduler| {
        for (n, z, c, sw) in [
            ("a0", "a", 2, "s1"),
            ("a1", "a", 2, "s2"),
            ("b0", "b", 4, "s1"),
            ("b1", "b", 4, "s2"),
        ] {
            let mut node = node(n, z, c);
            node.labels.insert(SWITCH.into(), sw.into());
            core.apply(Event::NodeUpsert(node));
        }
    };
    let in_s1 = |n: &String| n == "a0" || n == "b0";
    // Unconstrained, the gang goes where the matcher likes (zone b, both switches).
    let mut free = GangScheduler::new(GangConfig::default());
    switch(&mut free);
    free.apply(Event::GroupUpsert(group("g", 3, None)));
    for i in 0..3 {
        free.apply(Event::PodUpsert(pod("g", i, 2000)));
    }
    let nodes = bound_nodes(&free.schedule(Timestamp::from_secs(1)));
    assert!(
        !nodes.iter().all(in_s1) && nodes.iter().any(in_s1),
        "{nodes:?}"
    );
    // Constrained to one switch: all three on s1 (a0 + b0 hold them).
    let mut core = GangScheduler::new(GangConfig::default());
    switch(&mut core);
    core.apply(Event::GroupUpsert(group("g", 3, Some(SWITCH))));
    for i in 0..3 {
        core.apply(Event::PodUpsert(pod("g", i, 2000)));
    }
    let nodes = bound_nodes(&core.schedule(Timestamp::from_secs(1)));
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    assert!(nodes.iter().all(in_s1), "{nodes:?}");
}

#[test]
fn a_gang_no_domain_holds_is_not_split_across_domains() {
    let mut core = two_zones();
    // Five 2-CPU pods: 2 + 2 + 4 + 4 CPUs hold them across zones, no zone alone does.
    core.apply(Event::GroupUpsert(group("big", 5, Some(ZONE))));
    for i in 0..5 {
        core.apply(Event::PodUpsert(pod("big", i, 2000)));
    }
    let d = core.schedule(Timestamp::from_secs(1));
    assert!(bound_nodes(&d).is_empty(), "{:?}", bound_nodes(&d));
    // Without the constraint the same gang is placed (across zones).
    let mut free = two_zones();
    free.apply(Event::GroupUpsert(group("big", 5, None)));
    for i in 0..5 {
        free.apply(Event::PodUpsert(pod("big", i, 2000)));
    }
    assert_eq!(
        bound_nodes(&free.schedule(Timestamp::from_secs(1))).len(),
        5
    );
}

#[test]
fn a_label_no_node_has_places_nothing() {
    let mut core = two_zones();
    core.apply(Event::GroupUpsert(group("r", 2, Some("example.com/rack"))));
    for i in 0..2 {
        core.apply(Event::PodUpsert(pod("r", i, 1000)));
    }
    assert!(bound_nodes(&core.schedule(Timestamp::from_secs(1))).is_empty());
}

/// Another scheduler's running pod that takes all of b0.
fn fill_b0(core: &mut GangScheduler) {
    let mut other = pod("other", 0, 4000);
    other.group = None;
    other.scheduler_name = "default-scheduler".into();
    other.node_name = Some("b0".into());
    other.phase = PodPhase::Running;
    core.apply(Event::PodUpsert(other));
}

/// Members placed after the first placement (elastic members here; a
/// replacement pod takes the same path) stay in the group's domain: with
/// its zone full they wait rather than run in the other zone.
#[test]
fn later_members_stay_in_the_domain_of_the_running_ones() {
    let mut core = two_zones();
    // Another scheduler's pod fills b0: zone a and zone b hold two 2-CPU pods each.
    fill_b0(&mut core);
    // Minimum 2 of 4: no zone holds 4, so 2 start in one zone.
    core.apply(Event::GroupUpsert(group("el", 2, Some(ZONE))));
    for i in 0..4 {
        core.apply(Event::PodUpsert(pod("el", i, 2000)));
    }
    let mut nodes = Vec::new();
    for s in 1..=4 {
        nodes.extend(bound_nodes(&core.schedule(Timestamp::from_secs(s))));
    }
    assert_eq!(nodes.len(), 2, "the other zone takes no extra: {nodes:?}");
    let zone_of = |n: &String| n.chars().next();
    assert!(
        nodes.iter().all(|n| zone_of(n) == zone_of(&nodes[0])),
        "{nodes:?}"
    );
    // Unconstrained, the extras go to the other zone.
    let mut free = two_zones();
    fill_b0(&mut free);
    free.apply(Event::GroupUpsert(group("el", 2, None)));
    for i in 0..4 {
        free.apply(Event::PodUpsert(pod("el", i, 2000)));
    }
    let mut nodes = Vec::new();
    for s in 1..=4 {
        nodes.extend(bound_nodes(&free.schedule(Timestamp::from_secs(s))));
    }
    assert_eq!(nodes.len(), 4, "{nodes:?}");
}
