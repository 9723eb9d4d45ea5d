//! Unit tests of pod-group matching.

use super::*;

fn node(
    name: &str,
    rack: &str,
    cpu_cores: u64,
    gpus_per_zone: u64,
    zones: u64,
    single: bool,
) -> NodeSpec {
    NodeSpec {
        name: name.into(),
        zone: "z".into(),
        rack: rack.into(),
        max_pods: 110,
        memory_bytes: 64 << 30,
        numa: (0..zones)
            .map(|_| NumaSpec {
                cpu_millis: cpu_cores * 1000 / zones,
                gpus: gpus_per_zone,
            })
            .collect(),
        extended: Vec::new(),
        single_numa: single,
        schedulable: true,
    }
}

fn req(count: u32, cpu_millis: u64, gpus: u64) -> GroupRequest {
    GroupRequest {
        classes: vec![PodClass {
            demand: Demand {
                cpu_millis,
                memory_bytes: 1 << 30,
                gpus,
                extended: Vec::new(),
            },
            count,
            filter: NodeFilter::Any,
        }],
    }
}

#[test]
fn millicore_pods_share_a_core() {
    let mut g = GroupGraph::new();
    g.upsert_node(node("n0", "r0", 1, 0, 1, false));
    let p = g.match_group(&req(10, 100, 0)).unwrap();
    assert_eq!(p.iter().count(), 10);
    for c in p.iter() {
        g.take(c);
    }
    assert_eq!(g.free_totals().0, 0);
    assert!(matches!(
        g.match_group(&req(1, 100, 0)),
        Err(MatchError::Busy(_))
    ));
}

#[test]
fn gpu_pods_stay_in_one_numa_zone() {
    let mut g = GroupGraph::new();
    g.upsert_node(node("n0", "r0", 32, 2, 2, true));
    let p = g.match_group(&req(2, 8000, 2)).unwrap();
    let zones: Vec<usize> = p
        .iter()
        .map(|c| {
            assert!(c.numa_aligned());
            c.numa_gpus.iter().position(|g| *g > 0).unwrap()
        })
        .collect();
    assert_ne!(zones[0], zones[1], "each pod gets its own zone");
    // 4 GPUs fit the node but no single zone under single-numa-node.
    match g.match_group(&req(1, 1000, 4)) {
        Err(MatchError::Unsatisfiable(why)) => assert!(why.contains("NUMA"), "{why}"),
        other => panic!("expected unsatisfiable, got {other:?}"),
    }
}

#[test]
fn unsatisfiable_names_the_largest_node() {
    let mut g = GroupGraph::new();
    g.upsert_node(node("n0", "r0", 8, 1, 2, false));
    match g.match_group(&req(1, 1000, 4)) {
        Err(MatchError::Unsatisfiable(why)) => {
            assert_eq!(why, "each pod needs 4 GPUs, the largest node has 2")
        }
        other => panic!("expected unsatisfiable, got {other:?}"),
    }
}

#[test]
fn gang_is_packed_into_one_rack() {
    let mut g = GroupGraph::new();
    for r in 0..2 {
        for n in 0..4 {
            g.upsert_node(node(&format!("r{r}n{n}"), &format!("r{r}"), 8, 0, 1, false));
        }
    }
    // Take half of one node in rack 0 so rack 1 is the only rack with 4 free nodes.
    let blocker = g.match_group(&req(1, 4000, 0)).unwrap();
    for c in blocker.iter() {
        g.take(c);
    }
    let p = g.match_group(&req(4, 8000, 0)).unwrap();
    let racks: std::collections::BTreeSet<&str> = p
        .iter()
        .map(|c| g.node_location(c.node).unwrap().1)
        .collect();
    assert_eq!(racks.len(), 1, "{racks:?}");
}

#[test]
fn give_restores_take_exactly() {
    let mut g = GroupGraph::new();
    g.upsert_node(node("n0", "r0", 16, 2, 2, false));
    g.upsert_node(node("n1", "r0", 16, 2, 2, false));
    let before = (
        g.free_totals(),
        g.node_free_numa(NodeId(0)),
        g.node_free_numa(NodeId(1)),
    );
    let p = g.match_group(&req(3, 5500, 1)).unwrap();
    for c in p.iter() {
        g.take(c);
    }
    assert_ne!(g.free_totals(), before.0);
    for c in p.iter() {
        g.give(c);
    }
    assert_eq!(
        (
            g.free_totals(),
            g.node_free_numa(NodeId(0)),
            g.node_free_numa(NodeId(1))
        ),
        before
    );
}

#[test]
fn node_filter_is_respected() {
    let mut g = GroupGraph::new();
    let a = g.upsert_node(node("a", "r0", 8, 0, 1, false));
    let b = g.upsert_node(node("b", "r0", 8, 0, 1, false));
    let mut r = req(2, 1000, 0);
    r.classes[0].filter = NodeFilter::Only(vec![b]);
    let p = g.match_group(&r).unwrap();
    assert!(p.iter().all(|c| c.node == b && c.node != a));
    r.classes[0].filter = NodeFilter::Only(Vec::new());
    assert!(matches!(
        g.match_group(&r),
        Err(MatchError::Unsatisfiable(_))
    ));
}

/// Nodes used by a placement, with the pods on each.
fn pods_per_node(p: &Placement) -> std::collections::BTreeMap<NodeId, usize> {
    let mut out = std::collections::BTreeMap::new();
    for c in p.iter() {
        *out.entry(c.node).or_insert(0) += 1;
    }
    out
}

fn four_nodes_of_four_cores(policy: PlacementPolicy) -> GroupGraph {
    let mut g = GroupGraph::new();
    g.set_policy(policy);
    for i in 0..4 {
        g.upsert_node(node(&format!("n{i}"), "r0", 4, 0, 1, false));
    }
    g
}

#[test]
fn pack_fills_a_node_before_the_next() {
    let mut g = four_nodes_of_four_cores(PlacementPolicy::Pack);
    let p = g.match_group(&req(4, 1000, 0)).unwrap();
    assert_eq!(pods_per_node(&p).len(), 1, "{p:?}");
}

#[test]
fn spread_puts_one_pod_per_node_before_a_second() {
    let mut g = four_nodes_of_four_cores(PlacementPolicy::Spread);
    let p = g.match_group(&req(4, 1000, 0)).unwrap();
    assert!(pods_per_node(&p).values().all(|&n| n == 1), "{p:?}");
    assert_eq!(pods_per_node(&p).len(), 4);
    let p = g.match_group(&req(6, 1000, 0)).unwrap();
    let per = pods_per_node(&p);
    assert_eq!(per.len(), 4);
    assert_eq!(per.values().max(), Some(&2), "{per:?}");
}

#[test]
fn spread_still_places_a_group_that_needs_whole_nodes() {
    let mut g = four_nodes_of_four_cores(PlacementPolicy::Spread);
    let p = g.match_group(&req(16, 1000, 0)).unwrap();
    assert!(pods_per_node(&p).values().all(|&n| n == 4), "{p:?}");
    for c in p.iter() {
        g.take(c);
    }
    assert!(matches!(
        g.match_group(&req(1, 1000, 0)),
        Err(MatchError::Busy(_))
    ));
}

#[test]
fn policy_names_parse_and_unknown_ones_are_named() {
    for p in PlacementPolicy::ALL {
        assert_eq!(p.name().parse::<PlacementPolicy>(), Ok(p));
    }
    let err = "low".parse::<PlacementPolicy>().unwrap_err();
    assert!(err.to_string().contains("\"low\""), "{err}");
    assert!(err.to_string().contains("pack or spread"), "{err}");
}

/// Two 8-core nodes in one rack, the second with 6 cores taken; where a
/// group of two one-core pods goes.
fn two_nodes_one_busy(best_fit: bool) -> Vec<NodeId> {
    let mut g = GroupGraph::new();
    g.set_best_fit(best_fit);
    let n0 = g.upsert_node(node("n0", "r0", 8, 0, 1, false));
    let n1 = g.upsert_node(node("n1", "r0", 8, 0, 1, false));
    let busy = g.claim_on_node(n1, &req(1, 6000, 0).classes[0].demand);
    g.take(&busy.expect("6 cores fit an empty 8-core node"));
    let p = g.match_group(&req(2, 1000, 0)).unwrap();
    let nodes: Vec<NodeId> = p.iter().map(|c| c.node).collect();
    assert!(nodes.iter().all(|n| *n == n0 || *n == n1));
    nodes
}

#[test]
fn best_fit_fills_the_hole_and_keeps_the_empty_node_whole() {
    let nodes = two_nodes_one_busy(true);
    assert_eq!(nodes, vec![NodeId(1), NodeId(1)]);
    // First fit takes the nodes in graph order.
    let nodes = two_nodes_one_busy(false);
    assert_eq!(nodes, vec![NodeId(0), NodeId(0)]);
}
