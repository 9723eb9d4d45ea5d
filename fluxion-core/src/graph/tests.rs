use super::*;
use crate::generate::{ClusterShape, cluster};

fn small() -> ResourceGraph {
    let shape = ClusterShape {
        nodes: 4,
        nodes_per_rack: 2,
        sockets: 2,
        cores_per_socket: 4,
        gpus_per_socket: 1,
        memory_gib_per_socket: 16,
        per_node_ids: false,
    };
    let mut g = cluster(&shape).unwrap();
    g.set_prune_filters(&"ALL:core,ALL:node,rack:memory".parse().unwrap())
        .unwrap();
    g
}

#[test]
fn paths_and_lookup_round_trip() {
    let g = small();
    let v = g.find_path("/cluster0/rack1/node3/socket7/core29").unwrap();
    assert_eq!(g.path(v), "/cluster0/rack1/node3/socket7/core29");
    assert_eq!(g.kind_name(v), "core");
    assert_eq!(g.depth(v), 4);
    assert!(g.find_path("/cluster0/rack1/node0").is_none());
    assert_eq!(g.find_by_name("node2").count(), 1);
}

#[test]
fn aggregates_follow_allocate_release_and_status() {
    let mut g = small();
    let core = g.type_id("core").unwrap();
    let node = g.type_id("node").unwrap();
    let root = g.root().unwrap();
    assert_eq!(g.free_units(root, core, 0, 10), Some(32));
    assert_eq!(g.free_units(root, node, 0, 10), Some(4));
    let n0 = g.find_path("/cluster0/rack0/node0").unwrap();
    let c0 = g.find_path("/cluster0/rack0/node0/socket0/core0").unwrap();
    let c1 = g.find_path("/cluster0/rack0/node0/socket0/core1").unwrap();
    let claims = vec![
        Claim {
            vertex: n0,
            amount: 0,
            exclusive: false,
        },
        Claim {
            vertex: c0,
            amount: 1,
            exclusive: true,
        },
        Claim {
            vertex: c1,
            amount: 1,
            exclusive: true,
        },
    ];
    g.allocate(7, 5, 15, false, claims).unwrap();
    assert_eq!(g.free_units(root, core, 0, 5), Some(32));
    assert_eq!(g.free_units(root, core, 0, 6), Some(30));
    assert_eq!(g.free_units(n0, core, 10, 20), Some(6));
    assert_eq!(g.free_units(c0, core, 10, 20), Some(0));
    assert_eq!(g.available(c1, 14, 15), 0);
    g.set_status(n0, Status::Down).unwrap();
    assert_eq!(g.free_units(root, node, 0, 1), Some(3));
    assert_eq!(g.free_units(root, core, 0, 1), Some(24));
    // The job's two cores are in the down node: hidden, not also in use.
    assert_eq!(g.free_units(root, core, 5, 6), Some(24));
    // A socket of the down node goes down too, and comes back.
    let s0 = g.find_path("/cluster0/rack0/node0/socket0").unwrap();
    g.set_status(s0, Status::Down).unwrap();
    assert_eq!(g.free_units(root, core, 5, 6), Some(24));
    assert_eq!(g.free_units(n0, core, 5, 6), Some(0));
    g.set_status(s0, Status::Up).unwrap();
    g.set_status(n0, Status::Up).unwrap();
    g.release(7).unwrap();
    assert_eq!(g.free_units(root, core, 0, 100), Some(32));
    assert!(g.release(7).is_err());
}

#[test]
fn remove_and_add_subtree_keep_totals() {
    let mut g = small();
    let core = g.type_id("core").unwrap();
    let mem = g.type_id("memory").unwrap();
    let root = g.root().unwrap();
    let r1 = g.find_path("/cluster0/rack1").unwrap();
    assert_eq!(g.free_units(r1, mem, 0, 1), Some(64));
    let n3 = g.find_path("/cluster0/rack1/node3").unwrap();
    let removed = g.remove_subtree(n3).unwrap();
    assert_eq!(removed, 1 + 2 * (1 + 4 + 1 + 1));
    assert_eq!(g.free_units(root, core, 0, 1), Some(24));
    assert_eq!(g.free_units(r1, mem, 0, 1), Some(32));
    let n = g
        .add_vertex(VertexSpec::new("node", "node", 9), Some(r1))
        .unwrap();
    let s = g
        .add_vertex(VertexSpec::new("socket", "socket", 9), Some(n))
        .unwrap();
    g.add_vertex(VertexSpec::new("core", "core", 99), Some(s))
        .unwrap();
    assert_eq!(g.free_units(root, core, 0, 1), Some(25));
    assert_eq!(g.path(s), "/cluster0/rack1/node9/socket9");
}

/// The counts of free cores at the ends of the id range, on a graph whose
/// core ids restart in every node, follow allocate, status, release and
/// subtree edits like the plain counts.
#[test]
fn id_end_counts_follow_allocations_status_and_edits() {
    let shape = ClusterShape {
        nodes: 3,
        nodes_per_rack: 2,
        sockets: 2,
        cores_per_socket: 2,
        gpus_per_socket: 0,
        memory_gib_per_socket: 0,
        per_node_ids: true,
    };
    let mut g = cluster(&shape).unwrap();
    g.set_prune_filters(&"ALL:core,ALL:node".parse().unwrap())
        .unwrap();
    let core = g.type_id("core").unwrap();
    let (low, high) = (IdEnd::Lowest, IdEnd::Highest);
    assert_eq!(g.id_end(core, low), Some(0));
    assert_eq!(g.id_end(core, high), Some(3));
    let root = g.root().unwrap();
    let r0 = g.find_path("/cluster0/rack0").unwrap();
    let n0 = g.find_path("/cluster0/rack0/node0").unwrap();
    let n1 = g.find_path("/cluster0/rack0/node1").unwrap();
    let at = |g: &ResourceGraph, v, end| g.free_units_at_id_end(v, core, end, 0, 10);
    assert_eq!(at(&g, root, low), Some(3));
    assert_eq!(at(&g, r0, high), Some(2));
    // Node 0's core0 and core3, then the whole of node 1.
    let c0 = g.find_path("/cluster0/rack0/node0/socket0/core0").unwrap();
    let c3 = g.find_path("/cluster0/rack0/node0/socket1/core3").unwrap();
    let claim = |vertex: VertexId, exclusive: bool| Claim {
        vertex,
        amount: u64::from(!exclusive),
        exclusive,
    };
    g.allocate(1, 0, 5, false, vec![claim(c0, false), claim(c3, false)])
        .unwrap();
    g.allocate(2, 0, 10, false, vec![claim(n1, true)]).unwrap();
    assert_eq!(at(&g, n0, low), Some(0));
    assert_eq!(at(&g, n0, high), Some(0));
    assert_eq!(at(&g, r0, low), Some(0));
    assert_eq!(at(&g, root, low), Some(1));
    assert_eq!(g.free_units_at_id_end(root, core, low, 5, 6), Some(2));
    // The one free core0 left goes down and comes back.
    let n2 = g.find_path("/cluster0/rack1/node2").unwrap();
    g.set_status(n2, Status::Down).unwrap();
    assert_eq!(at(&g, root, low), Some(0));
    g.set_status(n2, Status::Up).unwrap();
    assert_eq!(at(&g, root, low), Some(1));
    g.release(2).unwrap();
    assert_eq!(at(&g, root, low), Some(2));
    // Node 2 leaves; a new node brings a core0 and a core7 (past the
    // counted end, so it counts only among all cores).
    g.remove_subtree(n2).unwrap();
    assert_eq!(at(&g, root, low), Some(1));
    let r1 = g.find_path("/cluster0/rack1").unwrap();
    let n = g
        .add_vertex(VertexSpec::new("node", "node", 9), Some(r1))
        .unwrap();
    let s = g
        .add_vertex(VertexSpec::new("socket", "socket", 0), Some(n))
        .unwrap();
    for id in [0, 7] {
        g.add_vertex(VertexSpec::new("core", "core", id), Some(s))
            .unwrap();
    }
    assert_eq!(at(&g, root, low), Some(2));
    assert_eq!(at(&g, root, high), Some(1));
    assert_eq!(g.free_units(root, core, 0, 10), Some(12 - 4 - 2 + 2));
    // Node ids never repeat: no such count.
    let node = g.type_id("node").unwrap();
    assert_eq!(g.id_end(node, low), None);
    assert_eq!(g.free_units_at_id_end(root, node, low, 0, 1), None);
}

/// Vertices added or removed under a down vertex count as hidden, and
/// come into view with it.
#[test]
fn edits_under_a_down_vertex_stay_hidden() {
    let mut g = small();
    let core = g.type_id("core").unwrap();
    let root = g.root().unwrap();
    let n0 = g.find_path("/cluster0/rack0/node0").unwrap();
    let s0 = g.find_path("/cluster0/rack0/node0/socket0").unwrap();
    g.set_status(n0, Status::Down).unwrap();
    assert_eq!(g.free_units(root, core, 0, 1), Some(24));
    g.add_vertex(VertexSpec::new("core", "core", 90), Some(s0))
        .unwrap();
    assert_eq!(g.free_units(root, core, 0, 1), Some(24));
    g.set_status(n0, Status::Up).unwrap();
    assert_eq!(g.free_units(root, core, 0, 1), Some(33));
    g.set_status(n0, Status::Down).unwrap();
    g.remove_subtree(s0).unwrap();
    assert_eq!(g.free_units(root, core, 0, 1), Some(24));
    g.set_status(n0, Status::Up).unwrap();
    assert_eq!(g.free_units(root, core, 0, 1), Some(28));
    assert_eq!(g.free_units(n0, core, 0, 1), Some(4));
}

#[test]
fn partial_release_keeps_rest_of_job() {
    let mut g = small();
    let core = g.type_id("core").unwrap();
    let root = g.root().unwrap();
    let n0 = g.find_path("/cluster0/rack0/node0").unwrap();
    let n1 = g.find_path("/cluster0/rack0/node1").unwrap();
    let c0 = g.find_path("/cluster0/rack0/node0/socket0/core0").unwrap();
    let c8 = g.find_path("/cluster0/rack0/node1/socket2/core8").unwrap();
    let claims = vec![
        Claim {
            vertex: n0,
            amount: 0,
            exclusive: false,
        },
        Claim {
            vertex: c0,
            amount: 1,
            exclusive: true,
        },
        Claim {
            vertex: n1,
            amount: 0,
            exclusive: false,
        },
        Claim {
            vertex: c8,
            amount: 1,
            exclusive: true,
        },
    ];
    g.allocate(1, 0, 10, false, claims).unwrap();
    assert!(!g.release_subtree(1, n1).unwrap());
    assert_eq!(g.free_units(root, core, 0, 10), Some(31));
    assert_eq!(g.job(1).unwrap().claims.len(), 2);
    assert!(g.release_subtree(1, n0).unwrap());
    assert!(g.job(1).is_none());
    assert_eq!(g.free_units(root, core, 0, 10), Some(32));
}

/// A job's records on `v`.
fn records(g: &ResourceGraph, v: VertexId, job: JobId) -> usize {
    g.vertex(v)
        .map_or(0, |x| x.spans().iter().filter(|s| s.job == job).count())
}

/// Job 1 holding node0 whole (its cores held but not printed) through
/// rack0 and cluster0, under `filters`.
fn whole_node_job(filters: &str) -> (ResourceGraph, [VertexId; 3]) {
    let mut g = small();
    g.set_prune_filters(&filters.parse().unwrap()).unwrap();
    let top = g.find_path("/cluster0").unwrap();
    let rack = g.find_path("/cluster0/rack0").unwrap();
    let node = g.find_path("/cluster0/rack0/node0").unwrap();
    let pass = |vertex| Claim {
        vertex,
        amount: 0,
        exclusive: false,
    };
    let mut claims = vec![
        Claim {
            vertex: node,
            amount: 1,
            exclusive: true,
        },
        pass(rack),
        pass(top),
    ];
    for v in g.subtree(node).into_iter().skip(1) {
        claims.push(Claim {
            vertex: v,
            amount: 0,
            exclusive: true,
        });
    }
    g.allocate(1, 0, 10, false, claims).unwrap();
    (g, [top, rack, node])
}

#[test]
fn giving_back_a_node_no_filter_counted_leaves_the_records_above() {
    // Only cores are tracked and the job printed no core: no aggregate
    // counted it, so nothing above the node can tell it is done there.
    let (mut g, [top, rack, node]) = whole_node_job("ALL:core");
    // The plain rule sees nothing held below the rack any more.
    assert!(g.clone().release_subtree(1, node).unwrap());
    assert!(
        !g.release_subtrees(1, &[node], RecordsAbove::ByAggregates)
            .unwrap()
    );
    assert_eq!(records(&g, node, 1), 0);
    assert_eq!((records(&g, rack, 1), records(&g, top, 1)), (1, 1));
    let core = g.type_id("core").unwrap();
    assert_eq!(g.free_units(top, core, 0, 10), Some(32));
    g.release(1).unwrap();
    assert_eq!(records(&g, top, 1), 0);
}

#[test]
fn giving_back_a_node_a_filter_counted_drains_the_records_above() {
    let (mut g, [top, rack, node]) = whole_node_job("ALL:core,ALL:node");
    assert!(
        g.release_subtrees(1, &[node], RecordsAbove::ByAggregates)
            .unwrap()
    );
    assert!(g.job(1).is_none());
    assert_eq!((records(&g, rack, 1), records(&g, top, 1)), (0, 0));
}

#[test]
fn a_record_above_stays_while_a_tracked_unit_below_it_is_held() {
    let mut g = small();
    g.set_prune_filters(&"ALL:core".parse().unwrap()).unwrap();
    let top = g.find_path("/cluster0").unwrap();
    let rack = g.find_path("/cluster0/rack0").unwrap();
    let n0 = g.find_path("/cluster0/rack0/node0").unwrap();
    let n1 = g.find_path("/cluster0/rack0/node1").unwrap();
    let s0 = g.find_path("/cluster0/rack0/node0/socket0").unwrap();
    let s2 = g.find_path("/cluster0/rack0/node1/socket2").unwrap();
    let c0 = g.find_path("/cluster0/rack0/node0/socket0/core0").unwrap();
    let c8 = g.find_path("/cluster0/rack0/node1/socket2/core8").unwrap();
    let pass = |vertex| Claim {
        vertex,
        amount: 0,
        exclusive: false,
    };
    let core = |vertex| Claim {
        vertex,
        amount: 1,
        exclusive: true,
    };
    let claims = vec![
        core(c0),
        pass(s0),
        pass(n0),
        core(c8),
        pass(s2),
        pass(n1),
        pass(rack),
        pass(top),
    ];
    g.allocate(1, 0, 10, false, claims).unwrap();
    assert!(
        !g.release_subtrees(1, &[n1], RecordsAbove::ByAggregates)
            .unwrap()
    );
    assert_eq!(records(&g, s2, 1) + records(&g, n1, 1), 0);
    assert_eq!((records(&g, rack, 1), records(&g, top, 1)), (1, 1));
    // The last core goes: every aggregate above drains, the job with it.
    assert!(
        g.release_subtrees(1, &[n0], RecordsAbove::ByAggregates)
            .unwrap()
    );
    assert_eq!(records(&g, top, 1), 0);
}

proptest::proptest! {
    /// Dozens of jobs through the same node, socket and memory pool (more
    /// than [`LOAD_AFTER`], so those vertices answer from their load
    /// timelines) at scattered windows, some released again: every
    /// vertex's usage equals a direct scan of its spans, and the free
    /// cores of every aggregate equal its cores less the most in use at
    /// one instant of the window.
    #[test]
    fn summed_loads_answer_like_the_spans(
        jobs in proptest::collection::vec((0usize..8, 0i64..50, 1i64..30, 1u64..4, proptest::bool::ANY), 1..60),
        windows in proptest::collection::vec((0i64..90, 1i64..40), 1..6),
    ) {
        let mut g = small();
        let core = g.type_id("core").unwrap();
        let n0 = g.find_path("/cluster0/rack0/node0").unwrap();
        let s0 = g.find_path("/cluster0/rack0/node0/socket0").unwrap();
        let mem = g.find_path("/cluster0/rack0/node0/socket0/memory0").unwrap();
        let cores: Vec<VertexId> = g.children(s0).iter().copied().filter(|&c| g.vertex(c).unwrap().kind == core).collect();
        let mut placed = Vec::new();
        for (j, &(c, start, len, gib, keep)) in jobs.iter().enumerate() {
            let job = j as JobId + 1;
            let end = start + len;
            let mut claims = vec![
                Claim { vertex: n0, amount: 0, exclusive: false },
                Claim { vertex: s0, amount: 0, exclusive: false },
                Claim { vertex: mem, amount: gib, exclusive: false },
            ];
            // A core free throughout the window, if any is left.
            let free = cores.iter().copied().cycle().skip(c).take(cores.len())
                .find(|&v| g.available(v, start, end) > 0);
            if let Some(v) = free {
                claims.push(Claim { vertex: v, amount: 1, exclusive: true });
            }
            g.allocate(job, start, end, false, claims).unwrap();
            placed.push((job, keep));
        }
        for &(job, keep) in &placed {
            if !keep {
                g.release(job).unwrap();
            }
        }
        for &(start, len) in &windows {
            let end = start + len;
            for v in g.vertices().collect::<Vec<_>>() {
                let x = g.vertex(v).unwrap();
                proptest::prop_assert_eq!(g.usage(v, start, end), planner::usage(x.spans(), start, end));
            }
            // Like Fluxion's planners, an aggregate subtracts the most cores
            // in use at any one instant of the window.
            let free_cores = |under: VertexId| {
                let all: Vec<VertexId> = g.subtree(under).into_iter()
                    .filter(|&v| g.vertex(v).unwrap().kind == core)
                    .collect();
                let busy_at = |t: i64| all.iter().filter(|&&v| g.available(v, t, t + 1) == 0).count();
                (all.len() - (start..end).map(busy_at).max().unwrap_or(0)) as u64
            };
            for v in [n0, s0, g.root().unwrap()] {
                proptest::prop_assert_eq!(g.free_units(v, core, start, end), Some(free_cores(v)));
            }
        }
    }
}

#[test]
fn names_are_built_from_basename_and_id_unless_given_otherwise() {
    let mut g = ResourceGraph::new();
    let root = g
        .add_vertex(VertexSpec::new("cluster", "tiny", 0), None)
        .unwrap();
    let core = g
        .add_vertex(VertexSpec::new("core", "core", 35), Some(root))
        .unwrap();
    let mut odd = VertexSpec::new("node", "node", 7);
    odd.name = "login7a".into();
    let login = g.add_vertex(odd, Some(root)).unwrap();
    let mut minus = VertexSpec::new("gpu", "gpu", -1);
    minus.name = "gpu-1".into();
    let gpu = g.add_vertex(minus, Some(root)).unwrap();
    let mut padded = VertexSpec::new("gpu", "gpu", 2);
    padded.name = "gpu02".into();
    let gpu2 = g.add_vertex(padded, Some(root)).unwrap();

    let x = g.vertex(core).unwrap();
    assert_eq!(x.name(), "core35");
    assert!(x.is_named("core35"));
    assert!(!x.is_named("core3") && !x.is_named("core035") && !x.is_named("core"));
    let mut s = String::from(">");
    x.write_name(&mut s);
    assert_eq!(s, ">core35");

    let y = g.vertex(login).unwrap();
    assert_eq!(y.name(), "login7a");
    assert!(y.is_named("login7a") && !y.is_named("node7"));
    assert_eq!(g.vertex(gpu).unwrap().name(), "gpu-1");
    assert!(g.vertex(gpu).unwrap().is_named("gpu-1"));
    // A name that only reads as basename + id keeps its own spelling.
    assert_eq!(g.vertex(gpu2).unwrap().name(), "gpu02");
    assert!(!g.vertex(gpu2).unwrap().is_named("gpu2"));
    assert_eq!(g.path(login), "/tiny0/login7a");
    assert_eq!(g.find_path("/tiny0/core35"), Some(core));
    assert_eq!(g.find_by_name("gpu02").collect::<Vec<_>>(), [gpu2]);
}

#[test]
fn names_with_extreme_ids_print_like_format() {
    for id in [0, 7, -1, 10, i64::MAX, i64::MIN] {
        let mut g = ResourceGraph::new();
        let v = g
            .add_vertex(VertexSpec::new("core", "core", id), None)
            .unwrap();
        let x = g.vertex(v).unwrap();
        let want = format!("core{id}");
        assert_eq!(x.name(), want);
        let mut s = String::new();
        x.write_name(&mut s);
        assert_eq!(s, want);
        assert!(x.is_named(&want));
        assert!(!x.is_named(&format!("core{id}0")));
    }
}
