use super::*;
use crate::generate::{ClusterShape, cluster};
use crate::graph::VertexSpec;

fn small(nodes: usize) -> ResourceGraph {
    let shape = ClusterShape {
        nodes,
        nodes_per_rack: 2,
        sockets: 2,
        cores_per_socket: 4,
        gpus_per_socket: 1,
        memory_gib_per_socket: 16,
        per_node_ids: false,
    };
    let mut g = cluster(&shape).unwrap();
    g.set_prune_filters(&"ALL:core,ALL:node".parse().unwrap())
        .unwrap();
    g
}

const NODE_SLOT: &str = "
version: 1
resources:
  - type: node
    count: 1
    with:
      - type: slot
        count: 1
        label: s
        with:
          - type: socket
            count: 1
            with:
              - type: core
                count: 2
attributes: {system: {duration: 100}}
";

/// A jobspec of one slot holding `count` of each `(type, count)`.
fn one_slot_of(with: &[(&str, u64)]) -> Jobspec {
    let mut text = String::from(
        "version: 1\nresources:\n  - type: slot\n    count: 1\n    label: s\n    with:\n",
    );
    for (kind, count) in with {
        text.push_str(&format!("      - type: {kind}\n        count: {count}\n"));
    }
    text.push_str("attributes: {system: {duration: 100}}\n");
    Jobspec::parse(&text).unwrap()
}

fn names(m: &Matcher, o: &MatchOutcome) -> Vec<String> {
    o.emitted
        .iter()
        .map(|e| {
            let x = m.graph().vertex(e.vertex).unwrap();
            format!(
                "{}[{}:{}]",
                x.name(),
                e.needs,
                if e.exclusive { "x" } else { "s" }
            )
        })
        .collect()
}

#[test]
fn high_and_low_pick_opposite_ends() {
    let spec = Jobspec::parse(NODE_SLOT).unwrap();
    let mut m = Matcher::new(small(4), Policy::High);
    let o = m.match_jobspec(MatchOp::Allocate, 1, &spec, 0).unwrap();
    assert_eq!(
        names(&m, &o),
        [
            "core30[1:x]",
            "core31[1:x]",
            "socket7[1:x]",
            "node3[1:s]",
            "rack1[1:s]",
            "cluster0[1:s]"
        ]
    );
    m.set_policy(Policy::Low);
    let o = m.match_jobspec(MatchOp::Allocate, 2, &spec, 0).unwrap();
    assert_eq!(
        names(&m, &o),
        [
            "core0[1:x]",
            "core1[1:x]",
            "socket0[1:x]",
            "node0[1:s]",
            "rack0[1:s]",
            "cluster0[1:s]"
        ]
    );
}

#[test]
fn busy_unsatisfiable_and_reservation() {
    let spec = Jobspec::parse(NODE_SLOT).unwrap();
    let mut m = Matcher::new(small(1), Policy::Low);
    m.match_jobspec(MatchOp::Allocate, 1, &spec, 0).unwrap();
    m.match_jobspec(MatchOp::Allocate, 2, &spec, 0).unwrap();
    assert_eq!(
        m.match_jobspec(MatchOp::Allocate, 3, &spec, 0),
        Err(MatchError::Busy)
    );
    let r = m
        .match_jobspec(MatchOp::AllocateOrElseReserve, 3, &spec, 0)
        .unwrap();
    assert!(r.reserved);
    assert_eq!(r.at, 100);
    let big = Jobspec::parse(&NODE_SLOT.replace("count: 2", "count: 5")).unwrap();
    assert_eq!(
        m.match_jobspec(MatchOp::AllocateOrElseReserve, 4, &big, 0),
        Err(MatchError::Unsatisfiable)
    );
    m.cancel(1).unwrap();
    assert!(m.match_jobspec(MatchOp::Allocate, 5, &spec, 0).is_ok());
    assert_eq!(m.cancel(1).unwrap_err(), CancelError::NoSuchJob(1));
}

const ONE_CORE: &str = "
version: 1
resources:
  - type: slot
    count: 1
    label: s
    with:
      - type: core
        count: 1
attributes: {system: {duration: 100}}
";

/// The node each allocation of `spec` lands on, `n` times over.
fn nodes_taken(m: &mut Matcher, spec: &Jobspec, n: u64) -> Vec<String> {
    (1..=n)
        .map(|job| {
            let o = m.match_jobspec(MatchOp::Allocate, job, spec, 0).unwrap();
            let core = o.emitted.iter().find(|e| {
                m.graph()
                    .vertex(e.vertex)
                    .is_some_and(|x| x.name().starts_with("core"))
            });
            let mut v = core.unwrap().vertex;
            while let Some(p) = m.graph().parent(v) {
                if m.graph()
                    .vertex(p)
                    .is_some_and(|x| x.name().starts_with("node"))
                {
                    return m.graph().vertex(p).unwrap().name().into_owned();
                }
                v = p;
            }
            String::new()
        })
        .collect()
}

#[test]
fn first_walks_wide_vertices_by_weight_then_newest() {
    // 80 nodes straight under the cluster: wide enough for the kept order.
    let shape = ClusterShape {
        nodes: 80,
        nodes_per_rack: 0,
        sockets: 1,
        cores_per_socket: 2,
        gpus_per_socket: 0,
        memory_gib_per_socket: 0,
        per_node_ids: false,
    };
    let mut m = Matcher::new(cluster(&shape).unwrap(), Policy::First);
    let spec = Jobspec::parse(ONE_CORE).unwrap();
    let taken = nodes_taken(&mut m, &spec, 160);
    // Nodes are not matched through by name (the request names no node),
    // so they keep their weights: newest (highest id) first, each filled
    // before the next.
    let want: Vec<String> = (0..80)
        .rev()
        .flat_map(|i| [format!("node{i}"), format!("node{i}")])
        .collect();
    assert_eq!(taken, want);
    // Every core is taken now.
    assert!(m.match_jobspec(MatchOp::Allocate, 161, &spec, 0).is_err());
}

#[test]
fn first_reweighs_a_wide_vertex_child_a_job_went_through() {
    let shape = ClusterShape {
        nodes: 80,
        nodes_per_rack: 0,
        sockets: 1,
        cores_per_socket: 2,
        gpus_per_socket: 0,
        memory_gib_per_socket: 0,
        per_node_ids: false,
    };
    let mut g = cluster(&shape).unwrap();
    // A node is weighed by free cores (its plan: ALL:core, and the implicit
    // ALL:node without its own type).
    g.set_prune_filters(&"ALL:core".parse().unwrap()).unwrap();
    let mut m = Matcher::new(g, Policy::First);
    let spec = Jobspec::parse(
        "
version: 1
resources:
  - type: node
    count: 1
    with:
      - type: slot
        count: 1
        label: s
        with:
          - type: core
            count: 1
attributes: {system: {duration: 100}}
",
    )
    .unwrap();
    let taken = nodes_taken(&mut m, &spec, 160);
    // A node a job went through weighs its free cores (1) from then on,
    // less than the untouched nodes (2): each node takes one job per round.
    let want: Vec<String> = (0..80)
        .rev()
        .chain((0..80).rev())
        .map(|i| format!("node{i}"))
        .collect();
    assert_eq!(taken, want);
}

/// Everything under a slot is exclusive, so a slot asking for part of a
/// memory pool holds the whole pool, as Fluxion does (its granule suite
/// expects `memory[2:x]` for a request of 1 unit from a pool of 2).
#[test]
fn slot_holds_the_whole_pool_it_draws_from() {
    let shape = ClusterShape {
        nodes: 1,
        nodes_per_rack: 1,
        sockets: 1,
        cores_per_socket: 2,
        gpus_per_socket: 0,
        memory_gib_per_socket: 16,
        per_node_ids: false,
    };
    let g = cluster(&shape).unwrap();
    let spec = one_slot_of(&[("core", 1), ("memory", 4)]);
    let mut m = Matcher::new(g, Policy::First);
    let o = m.match_jobspec(MatchOp::Allocate, 1, &spec, 0).unwrap();
    let mem: Vec<u64> = o
        .emitted
        .iter()
        .filter(|e| {
            m.graph()
                .vertex(e.vertex)
                .unwrap()
                .name()
                .starts_with("memory")
        })
        .map(|e| e.needs)
        .collect();
    assert_eq!(mem, [16]);
}

/// A node-exclusive policy emits each node it picks whole, every vertex
/// once and each after all of its children (post-order), like the walk of
/// a plain depth-first traversal.
#[test]
fn node_exclusive_emits_whole_nodes_in_post_order() {
    let spec =
        Jobspec::parse(&NODE_SLOT.replace("count: 1\n    with", "count: 2\n    with")).unwrap();
    let g = small(4);
    // Reference: post-order of the whole graph from a plain walk.
    let mut post = Vec::new();
    let mut stack = vec![(g.root().unwrap(), 0usize)];
    while let Some((v, i)) = stack.pop() {
        if let Some(&k) = g.children(v).get(i) {
            stack.push((v, i + 1));
            stack.push((k, 0));
        } else {
            post.push(v);
        }
    }
    for policy in [Policy::LoNodeX, Policy::HiNodeX] {
        let mut m = Matcher::new(g.clone(), policy);
        let o = m.match_jobspec(MatchOp::Allocate, 1, &spec, 0).unwrap();
        let got: Vec<VertexId> = o.emitted.iter().map(|e| e.vertex).collect();
        let nodes: Vec<VertexId> = got
            .iter()
            .copied()
            .filter(|&v| m.graph().kind_name(v) == "node")
            .collect();
        assert_eq!(nodes.len(), 2, "{policy}: two nodes");
        let mut want: Vec<VertexId> = post
            .iter()
            .copied()
            .filter(|&v| {
                nodes.iter().any(|&n| m.graph().subtree(n).contains(&v))
                    || nodes.iter().any(|&n| {
                        let mut cur = m.graph().parent(n);
                        while let Some(p) = cur {
                            if p == v {
                                return true;
                            }
                            cur = m.graph().parent(p);
                        }
                        false
                    })
            })
            .collect();
        want.dedup();
        assert_eq!(got, want, "{policy}: whole nodes and ancestors, post-order");
        for e in o.emitted.iter() {
            let under_node = nodes
                .iter()
                .any(|&n| m.graph().subtree(n).contains(&e.vertex));
            assert_eq!(e.exclusive, under_node, "{policy}: {e:?}");
        }
    }
}

/// `low` and `high` take the lowest (highest) free core ids of a socket,
/// also once earlier jobs left holes among them.
#[test]
fn low_and_high_fill_holes_from_their_end() {
    let spec = one_slot_of(&[("core", 2)]);
    let cores = |m: &Matcher, o: &MatchOutcome| -> Vec<String> {
        names(m, o)
            .into_iter()
            .filter(|n| n.starts_with("core"))
            .collect()
    };
    for (policy, want) in [
        (
            Policy::Low,
            [["core0[1:x]", "core1[1:x]"], ["core2[1:x]", "core3[1:x]"]],
        ),
        (
            Policy::High,
            [["core6[1:x]", "core7[1:x]"], ["core4[1:x]", "core5[1:x]"]],
        ),
    ] {
        let mut m = Matcher::new(small(1), policy);
        let a = m.match_jobspec(MatchOp::Allocate, 1, &spec, 0).unwrap();
        assert_eq!(cores(&m, &a), want[0], "{policy}: first job");
        let b = m.match_jobspec(MatchOp::Allocate, 2, &spec, 0).unwrap();
        assert_eq!(cores(&m, &b), want[1], "{policy}: second job");
        m.cancel(1).unwrap();
        let c = m.match_jobspec(MatchOp::Allocate, 3, &spec, 0).unwrap();
        assert_eq!(cores(&m, &c), want[0], "{policy}: the hole is refilled");
    }
}

/// With core ids restarting in every node, `low` (`high`) gives successive
/// one-core jobs the lowest (highest) core of node after node, and passes
/// the nodes whose best core is taken without descending into them: each
/// match visits as many vertices as the first.
#[test]
fn low_and_high_pass_nodes_whose_best_core_is_taken() {
    let shape = ClusterShape {
        nodes: 6,
        nodes_per_rack: 0,
        sockets: 2,
        cores_per_socket: 4,
        gpus_per_socket: 1,
        memory_gib_per_socket: 0,
        per_node_ids: true,
    };
    let spec = one_slot_of(&[("core", 1)]);
    for (policy, core) in [(Policy::Low, "core0"), (Policy::High, "core7")] {
        let mut g = cluster(&shape).unwrap();
        g.set_prune_filters(&"ALL:core".parse().unwrap()).unwrap();
        let mut m = Matcher::new(g, policy);
        let mut visits = Vec::new();
        for job in 0..6 {
            let o = m
                .match_jobspec(MatchOp::Allocate, job + 1, &spec, 0)
                .unwrap();
            let got = names(&m, &o);
            let node = format!("node{job}[1:s]");
            assert!(got.contains(&format!("{core}[1:x]")), "{policy}: {got:?}");
            assert!(got.contains(&node), "{policy}: {got:?}");
            visits.push(o.preorder_visits);
        }
        assert!(
            visits.iter().all(|&v| v == visits[0]),
            "{policy}: {visits:?}"
        );
        // Every best core taken: the next best, found by a full walk.
        let o = m.match_jobspec(MatchOp::Allocate, 7, &spec, 0).unwrap();
        let next = if policy == Policy::Low {
            "core1[1:x]"
        } else {
            "core6[1:x]"
        };
        assert!(names(&m, &o).contains(&next.to_string()), "{policy}");
        assert!(o.preorder_visits > visits[0], "{policy}");
    }
}

/// Under a vertex wide enough to remember the children a walk passes, the
/// walk still finds the best core once every node's best core is taken,
/// and finds freed and returning nodes again.
#[test]
fn wide_vertices_forget_passed_children_when_something_is_freed() {
    let shape = ClusterShape {
        nodes: 70,
        nodes_per_rack: 0,
        sockets: 1,
        cores_per_socket: 2,
        gpus_per_socket: 0,
        memory_gib_per_socket: 0,
        per_node_ids: true,
    };
    let spec = one_slot_of(&[("core", 1)]);
    let mut g = cluster(&shape).unwrap();
    g.set_prune_filters(&"ALL:core".parse().unwrap()).unwrap();
    let mut m = Matcher::new(g, Policy::Low);
    let take = |m: &mut Matcher, job| {
        let o = m.match_jobspec(MatchOp::Allocate, job, &spec, 0).unwrap();
        names(m, &o)
            .into_iter()
            .filter(|n| n.starts_with("core") || n.starts_with("node"))
            .collect::<Vec<_>>()
    };
    for job in 0..70 {
        assert_eq!(
            take(&mut m, job + 1),
            ["core0[1:x]".to_string(), format!("node{job}[1:s]")]
        );
    }
    // Nodes 69 and 5 come free: the last walk passed node 5 on its way to
    // node 69, but node 5 wins now.
    m.cancel(70).unwrap();
    m.cancel(6).unwrap();
    assert_eq!(take(&mut m, 100), ["core0[1:x]", "node5[1:s]"]);
    assert_eq!(take(&mut m, 101), ["core0[1:x]", "node69[1:s]"]);
    // Every core0 taken: node0's core1 is the best left.
    assert_eq!(take(&mut m, 102), ["core1[1:x]", "node0[1:s]"]);
    // Node 9 is freed and goes down, then comes back.
    m.cancel(10).unwrap();
    let n9 = m.graph().find_by_name("node9").next().unwrap();
    m.graph_mut()
        .set_status(n9, crate::graph::Status::Down)
        .unwrap();
    assert_eq!(take(&mut m, 103), ["core1[1:x]", "node1[1:s]"]);
    m.graph_mut()
        .set_status(n9, crate::graph::Status::Up)
        .unwrap();
    assert_eq!(take(&mut m, 104), ["core0[1:x]", "node9[1:s]"]);
}

/// A placement adopted from elsewhere holds its vertices like a match's:
/// a later match goes around it, adopting the same vertices again fails
/// without changing anything, and cancel gives them back.
#[test]
fn adopted_placements_hold_their_vertices() {
    let mut m = Matcher::new(small(1), Policy::Low);
    let g = m.graph();
    let core = |i: usize| {
        g.find_path(&format!("/cluster0/rack0/node0/socket0/core{i}"))
            .unwrap()
    };
    let emitted: Vec<Emit> = [core(0), core(1)]
        .into_iter()
        .map(|vertex| Emit {
            vertex,
            needs: 1,
            exclusive: true,
        })
        .chain(
            [
                "/cluster0/rack0/node0/socket0",
                "/cluster0/rack0/node0",
                "/cluster0/rack0",
                "/cluster0",
            ]
            .map(|p| Emit {
                vertex: g.find_path(p).unwrap(),
                needs: 1,
                exclusive: false,
            }),
        )
        .collect();
    m.adopt(40, 0, 100, false, emitted.clone()).unwrap();
    assert_eq!(
        m.adopt(41, 50, 100, false, emitted.clone()),
        Err(MatchError::Busy)
    );
    assert!(m.info(41).is_none());
    assert_eq!(
        m.adopt(40, 500, 100, false, emitted.clone()),
        Err(MatchError::JobExists(40))
    );
    let spec = one_slot_of(&[("core", 2)]);
    let o = m.match_jobspec(MatchOp::Allocate, 1, &spec, 0).unwrap();
    // Low takes the lowest free cores: 2 and 3, around the adopted 0 and 1.
    assert_eq!(names(&m, &o)[..2], ["core2[1:x]", "core3[1:x]"]);
    m.cancel(40).unwrap();
    m.adopt(41, 50, 100, false, emitted).unwrap();
}

/// An adopted placement is all or nothing: when any one of its entries
/// cannot be held (here a shared pass-through over a node another job holds
/// whole, listed after entries that are free), nothing of it is held, and
/// those free entries stay free for the next job.
#[test]
fn a_refused_adoption_holds_nothing_of_what_it_listed() {
    let mut m = Matcher::new(small(2), Policy::Low);
    let g = m.graph();
    let at = |p: &str, exclusive| Emit {
        vertex: g.find_path(p).unwrap(),
        needs: 1,
        exclusive,
    };
    let node1_whole = vec![at("/cluster0/rack0/node1", true)];
    let mixed = vec![
        at("/cluster0/rack0/node0/socket0/core0", true),
        at("/cluster0/rack0/node0", false),
        at("/cluster0/rack0/node1/socket3/core15", true),
        at("/cluster0/rack0/node1", false),
        at("/cluster0/rack0", false),
    ];
    m.adopt(1, 0, 100, false, node1_whole).unwrap();
    assert_eq!(m.adopt(2, 0, 100, false, mixed), Err(MatchError::Busy));
    assert!(m.info(2).is_none());
    // core0 of node0 was listed first, yet nothing holds it.
    let spec = one_slot_of(&[("core", 1)]);
    let o = m.match_jobspec(MatchOp::Allocate, 3, &spec, 0).unwrap();
    assert_eq!(names(&m, &o)[0], "core0[1:x]");
}

/// Slots never share a vertex: two slots of 4 GiB each take two memory
/// pools, though the first 16 GiB pool the first-match walk meets holds
/// enough units for both.
#[test]
fn first_match_explores_until_each_slot_has_its_own_vertices() {
    let slots = |n: u64, gib: u64| {
        Jobspec::parse(&format!(
            "version: 1\nresources:\n  - type: slot\n    count: {n}\n    label: s\n    with:\n      - type: memory\n        count: {gib}\n        exclusive: true\nattributes: {{system: {{duration: 100}}}}\n"
        ))
        .unwrap()
    };
    // Like a rabbit's SSDs: pools side by side under one vertex.
    let mut g = ResourceGraph::new();
    let root = g
        .add_vertex(VertexSpec::new("cluster", "cluster", 0), None)
        .unwrap();
    for i in 0..3 {
        let mut pool = VertexSpec::new("memory", "memory", i);
        pool.size = 16;
        g.add_vertex(pool, Some(root)).unwrap();
    }
    g.set_prune_filters(&"ALL:memory".parse().unwrap()).unwrap();
    let mut m = Matcher::new(g, Policy::First);
    let o = m
        .match_jobspec(MatchOp::Allocate, 1, &slots(2, 4), 0)
        .unwrap();
    let pools = names(&m, &o)
        .iter()
        .filter(|n| n.starts_with("memory"))
        .count();
    assert_eq!(pools, 2, "{:?}", names(&m, &o));
}

/// The node names a match holds, in emitted order.
fn nodes_of(m: &Matcher, o: &MatchOutcome) -> Vec<String> {
    names(m, o)
        .into_iter()
        .filter(|n| n.starts_with("node"))
        .map(|n| n[..n.find('[').unwrap_or(n.len())].to_string())
        .collect()
}

fn node_job(with: &str) -> Jobspec {
    Jobspec::parse(&format!(
        "version: 1\nresources:\n  - type: node\n    count: 1\n    with:\n{with}attributes: {{system: {{duration: 100}}}}\n"
    ))
    .unwrap()
}

/// A matcher over `small(nodes)` whose aggregates track cores only
/// (resource-query's default filters).
fn small_all_core(nodes: usize, policy: Policy) -> Matcher {
    let mut g = small(nodes);
    g.set_prune_filters(&"ALL:core".parse().unwrap()).unwrap();
    Matcher::new(g, policy)
}

/// One node with a slot of `n` cores.
fn node_cores(n: u64) -> Jobspec {
    node_job(&format!(
        "      - type: slot\n        count: 1\n        label: s\n        with:\n          - type: core\n            count: {n}\n"
    ))
}

/// One node with a slot of one socket with `n` of its cores (the socket
/// is held whole).
fn node_socket_cores(n: u64) -> Jobspec {
    node_job(&format!(
        "      - type: slot\n        count: 1\n        label: s\n        with:\n          - type: socket\n            count: 1\n            with:\n              - type: core\n                count: {n}\n"
    ))
}

/// `first` walks racks untouched first, then by free nodes (the last type,
/// in name order, of a rack's plan: `ALL:core` and the implicit `ALL:node`),
/// not by free cores.
#[test]
fn first_weighs_racks_by_free_nodes() {
    let mut m = small_all_core(6, Policy::First);
    let whole_node = Jobspec::parse(
        "version: 1\nresources:\n  - type: slot\n    count: 1\n    label: s\n    with:\n      - type: node\n        count: 1\n        with:\n          - type: socket\n            count: 1\n            with:\n              - type: core\n                count: 1\nattributes: {system: {duration: 100}}\n",
    )
    .unwrap();
    let mut place = |job: u64, spec: &Jobspec| {
        let o = m.match_jobspec(MatchOp::Allocate, job, spec, 0).unwrap();
        nodes_of(&m, &o)
    };
    // Untouched racks first, newest first.
    assert_eq!(place(1, &node_cores(4)), ["node5"]);
    assert_eq!(place(2, &node_cores(2)), ["node3"]);
    assert_eq!(place(3, &node_cores(2)), ["node1"]);
    // Every rack still has both nodes free (shared): the newest wins, though
    // it has the fewest free cores (by free cores, rack1 would win).
    assert_eq!(place(4, &whole_node), ["node4"]);
    // rack2 has one free node left now: rack1 is next.
    assert_eq!(place(5, &node_cores(1)), ["node2"]);
}

/// A node's weight counts the cores jobs asked for, as Fluxion's plans do,
/// not the ones an exclusive socket hides: a socket held for 3 of its 4
/// cores leaves the node 5 free cores there, as many as a node whose 3
/// cores were taken one by one.
#[test]
fn first_weighs_nodes_by_the_cores_jobs_asked_for() {
    let mut m = small_all_core(2, Policy::First);
    let in_socket = node_socket_cores(3);
    let mut place = |job: u64, spec: &Jobspec| {
        let o = m.match_jobspec(MatchOp::Allocate, job, spec, 0).unwrap();
        nodes_of(&m, &o)
    };
    assert_eq!(place(1, &in_socket), ["node1"]);
    assert_eq!(place(2, &node_cores(3)), ["node0"]);
    // Both weigh 5: the newest wins (counting the hidden core, node1 would
    // weigh 4 and node0 would win).
    assert_eq!(place(3, &node_cores(1)), ["node1"]);
}

/// `variation` gives a job nodes of the best performance class left, ties
/// by graph order; a node without a class (or with a bad one) is the worst.
#[test]
fn variation_prefers_the_best_performance_class() {
    let mut g = small(8);
    for (node, class) in [
        (0, "3"),
        (1, "1"),
        (2, "2"),
        (3, "1"),
        (4, "2"),
        (5, "2"),
        (6, "x"),
    ] {
        let v = g.find_by_name(&format!("node{node}")).next().unwrap();
        g.set_property(v, "perf_class", class).unwrap();
    }
    let mut m = Matcher::new(g, Policy::Variation);
    let nodes = |n: u64| {
        Jobspec::parse(&format!(
            "version: 1\nresources:\n  - type: node\n    count: {n}\n    exclusive: true\n    with:\n      - type: slot\n        count: 1\n        label: s\n        with:\n          - type: core\n            count: 1\nattributes: {{system: {{duration: 100}}}}\n"
        ))
        .unwrap()
    };
    let mut place = |job: u64, spec: &Jobspec| {
        let o = m.match_jobspec(MatchOp::Allocate, job, spec, 0).unwrap();
        let mut got = nodes_of(&m, &o);
        got.sort();
        got
    };
    assert_eq!(place(1, &nodes(2)), ["node1", "node3"]);
    assert_eq!(place(2, &nodes(1)), ["node2"]);
    // node4 and node5 are class 2, node0 class 3; node6 ("x") and node7
    // (none) count as the worst.
    assert_eq!(place(3, &nodes(3)), ["node0", "node4", "node5"]);
    assert_eq!(place(4, &nodes(2)), ["node6", "node7"]);
}

/// `variation` stops walking once a job has enough candidates at the best
/// performance class of their type: candidates arrive in graph order, which
/// ties break by, so no later one could win. It must not stop while fewer
/// than that reach the class, and a class set after the matcher was made
/// moves the floor.
#[test]
fn variation_stops_at_the_perf_class_floor() {
    let nodes = |n: u64| {
        Jobspec::parse(&format!(
            "version: 1\nresources:\n  - type: node\n    count: {n}\n    exclusive: true\n    with:\n      - type: slot\n        count: 1\n        label: s\n        with:\n          - type: core\n            count: 1\nattributes: {{system: {{duration: 100}}}}\n"
        ))
        .unwrap()
    };
    let place = |m: &mut Matcher, job: u64, n: u64| {
        let o = m
            .match_jobspec(MatchOp::Allocate, job, &nodes(n), 0)
            .unwrap();
        let mut got = nodes_of(m, &o);
        got.sort();
        (got, o.preorder_visits)
    };
    // No class anywhere: every node is at the floor, the first two do.
    let mut m = Matcher::new(small(8), Policy::Variation);
    let full = m.graph().vertex_count() as u64;
    let (got, early) = place(&mut m, 1, 2);
    assert_eq!(got, ["node0", "node1"]);
    assert!(early < full / 2, "{early} of {full}");
    // One node of a better class, set now: the floor drops to it and only
    // one node reaches it, so the walk goes on to the end.
    let v = m.graph().find_by_name("node6").next().unwrap();
    m.graph_mut().set_property(v, "perf_class", "1").unwrap();
    let (got, late) = place(&mut m, 2, 2);
    assert_eq!(got, ["node2", "node6"]);
    assert!(late > early, "{late} <= {early}");
    // Two of the best class: the walk stops at the second one.
    let v = m.graph().find_by_name("node3").next().unwrap();
    m.graph_mut().set_property(v, "perf_class", "0").unwrap();
    let w = m.graph().find_by_name("node4").next().unwrap();
    m.graph_mut().set_property(w, "perf_class", "0").unwrap();
    let (got, stopped) = place(&mut m, 3, 2);
    assert_eq!(got, ["node3", "node4"]);
    assert!(stopped < late, "{stopped} >= {late}");
}

/// A GRUG recipe numbers a vertex's children before their own children,
/// so unique ids do not grow in depth-first order across types; within
/// each type they still do, and `variation` still stops early for a
/// request of one type.
#[test]
fn variation_stops_early_on_a_grug_graph() {
    let recipe = r#"<graphml xmlns="http://graphml.graphdrawing.org/xmlns">
  <key id="root" for="node" attr.name="root" attr.type="int"><default>0</default></key>
  <key id="type" for="node" attr.name="type" attr.type="string"/>
  <key id="subsystem" for="node" attr.name="subsystem" attr.type="string"><default>containment</default></key>
  <key id="e_subsystem" for="edge" attr.name="e_subsystem" attr.type="string"><default>containment</default></key>
  <key id="multi_scale" for="edge" attr.name="multi_scale" attr.type="int"><default>1</default></key>
  <key id="id_scope" for="edge" attr.name="id_scope" attr.type="int"><default>0</default></key>
  <key id="gen_method" for="edge" attr.name="gen_method" attr.type="string"><default>MULTIPLY</default></key>
  <graph id="g" edgedefault="directed">
    <node id="cluster"><data key="root">1</data><data key="type">cluster</data></node>
    <node id="node"><data key="type">node</data></node>
    <node id="core"><data key="type">core</data></node>
    <edge source="cluster" target="node"><data key="multi_scale">8</data></edge>
    <edge source="node" target="core"><data key="multi_scale">4</data></edge>
  </graph>
</graphml>"#;
    let g = crate::io::read_grug(recipe).unwrap();
    let shape = super::search::shape(&g);
    assert!(!shape.uniq_preorder);
    let full = g.vertex_count() as u64;
    let mut m = Matcher::new(g, Policy::Variation);
    let spec = Jobspec::parse(
        "version: 1\nresources:\n  - type: node\n    count: 2\n    with:\n      - type: slot\n        count: 1\n        label: s\n        with:\n          - type: core\n            count: 1\nattributes: {system: {duration: 100}}\n",
    )
    .unwrap();
    let o = m.match_jobspec(MatchOp::Allocate, 1, &spec, 0).unwrap();
    let mut got = nodes_of(&m, &o);
    got.sort();
    assert_eq!(got, ["node0", "node1"]);
    assert!(
        o.preorder_visits < full / 2,
        "{} of {full}",
        o.preorder_visits
    );
}

/// Jobs placed under another policy count in the first-match weights once
/// the matcher switches to `first`.
#[test]
fn first_counts_jobs_placed_before_switching_to_it() {
    let mut m = small_all_core(2, Policy::Low);
    let in_socket = node_socket_cores(3);
    let place = |m: &mut Matcher, job: u64, spec: &Jobspec| {
        let o = m.match_jobspec(MatchOp::Allocate, job, spec, 0).unwrap();
        nodes_of(m, &o)
    };
    assert_eq!(place(&mut m, 1, &in_socket), ["node0"]);
    m.set_policy(Policy::First);
    // No weight is recorded yet: newest first.
    assert_eq!(place(&mut m, 2, &node_cores(3)), ["node1"]);
    assert_eq!(place(&mut m, 3, &node_cores(1)), ["node0"]);
    // node1 weighs 5 free cores, node0 4 (8 less job 1's 3 and job 3's 1):
    // without job 1, node0 would weigh 7 and win.
    assert_eq!(place(&mut m, 4, &node_cores(1)), ["node1"]);
}

/// A node handed out whole counts all of its cores as taken in its
/// first-match weight, which stays after the job ends (Fluxion only
/// reweighs a vertex when a job goes through it).
#[test]
fn firstnodex_weighs_a_node_held_whole_as_full() {
    let mut m = small_all_core(2, Policy::FirstNodeX);
    let core = node_cores(1);
    let place = |m: &mut Matcher, job: u64| {
        let o = m.match_jobspec(MatchOp::Allocate, job, &core, 0).unwrap();
        nodes_of(m, &o)
    };
    assert_eq!(place(&mut m, 1), ["node1"]);
    m.set_policy(Policy::First);
    assert_eq!(place(&mut m, 2), ["node0"]);
    m.cancel(1).unwrap();
    m.cancel(2).unwrap();
    // node0 weighs 7 free cores, node1 0: counting only the core job 1
    // asked for, node1 would weigh 7 too and, newer, win.
    assert_eq!(place(&mut m, 3), ["node0"]);
}

/// The types of the vertices a match holds exclusively, sorted.
fn held_kinds(m: &Matcher, o: &MatchOutcome) -> Vec<String> {
    let mut k: Vec<String> = o
        .emitted
        .iter()
        .filter(|e| e.exclusive)
        .map(|e| m.graph().kind_name(e.vertex).to_string())
        .collect();
    k.sort();
    k
}

/// Alternative slots: the first alternative that fits now wins; a
/// reservation comes only when no alternative fits now.
#[test]
fn xor_slots_take_the_first_alternative_that_fits_now() {
    let mut m = Matcher::new(small(1), Policy::High);
    let spec = Jobspec::parse(
        "version: 9999
resources:
  - type: socket
    count: 1
    with:
      - type: xor_slot
        count: 1
        label: big
        with: [{type: core, count: 3}]
      - type: xor_slot
        count: 1
        label: gpu
        with: [{type: core, count: 1}, {type: gpu, count: 1}]
attributes: {system: {duration: 100}}
tasks: [{command: [app], slot: big, count: {per_slot: 1}}]
",
    )
    .unwrap();
    let op = MatchOp::AllocateOrElseReserve;
    // One node, 2 sockets of 4 cores and a GPU each.
    for job in 1..=2 {
        let o = m.match_jobspec(op, job, &spec, 0).unwrap();
        assert_eq!(held_kinds(&m, &o), ["core", "core", "core"], "job {job}");
        assert!(!o.reserved);
    }
    // 1 core and the GPU left per socket: the second alternative, now,
    // rather than the first one later.
    for job in 3..=4 {
        let o = m.match_jobspec(op, job, &spec, 0).unwrap();
        assert_eq!(held_kinds(&m, &o), ["core", "gpu"], "job {job}");
        assert!(!o.reserved);
    }
    let o = m.match_jobspec(op, 5, &spec, 0).unwrap();
    assert!(o.reserved);
    assert_eq!(o.at, 100);
    assert_eq!(held_kinds(&m, &o), ["core", "core", "core"]);
}

/// Under the flexible traverser, sibling slots are alternatives pooled at
/// the vertex hosting them: a socket left without its GPU still hosts the
/// slot that needs none.
#[test]
fn or_slots_are_alternatives_under_the_flexible_traverser() {
    let spec = Jobspec::parse(
        "version: 9999
resources:
  - type: socket
    count: 1
    with:
      - type: slot
        count: 1
        label: small
        with: [{type: core, count: 2}, {type: gpu, count: 1}]
      - type: slot
        count: 1
        label: big
        with: [{type: core, count: 2}]
attributes: {system: {duration: 100}}
tasks: [{command: [app], slot: small, count: {per_slot: 1}}]
",
    )
    .unwrap();
    let sockets = |m: &Matcher, o: &MatchOutcome| {
        o.emitted
            .iter()
            .filter(|e| m.graph().kind_name(e.vertex) == "socket")
            .map(|e| m.graph().vertex(e.vertex).unwrap().uniq_id)
            .collect::<Vec<_>>()
    };
    let mut m = Matcher::new(small(1), Policy::High);
    m.set_or_slots(true);
    let first = m.match_jobspec(MatchOp::Allocate, 1, &spec, 0).unwrap();
    // The best slot by score: the highest cores and the GPU.
    assert_eq!(held_kinds(&m, &first), ["core", "core", "gpu"]);
    let second = m.match_jobspec(MatchOp::Allocate, 2, &spec, 0).unwrap();
    // The same socket, now without a GPU: the other alternative.
    assert_eq!(held_kinds(&m, &second), ["core", "core"]);
    assert_eq!(sockets(&m, &first), sockets(&m, &second));
    // By default only the first slot is matched: the GPU-less socket is
    // passed over.
    let mut simple = Matcher::new(small(1), Policy::High);
    let a = simple
        .match_jobspec(MatchOp::Allocate, 1, &spec, 0)
        .unwrap();
    let b = simple
        .match_jobspec(MatchOp::Allocate, 2, &spec, 0)
        .unwrap();
    assert_eq!(held_kinds(&simple, &b), ["core", "core", "gpu"]);
    assert_ne!(sockets(&simple, &a), sockets(&simple, &b));
}

/// A pool held exclusively below a slot is held whole, however deep: the
/// slot's socket takes the whole memory pool for a request of 1 unit, as
/// Fluxion does (its node-local storage tests expect `storage0[1562:x]`
/// for 1 unit asked).
#[test]
fn pools_below_a_slot_are_held_whole() {
    let mut m = Matcher::new(small(1), Policy::Low);
    let spec = node_job(
        "      - type: slot\n        count: 1\n        label: s\n        with:\n          - type: socket\n            count: 1\n            with:\n              - type: core\n                count: 1\n              - type: memory\n                count: 1\n",
    );
    let o = m.match_jobspec(MatchOp::Allocate, 1, &spec, 0).unwrap();
    let memory: Vec<(u64, u64)> = o
        .emitted
        .iter()
        .filter(|e| m.graph().kind_name(e.vertex) == "memory")
        .map(|e| (e.needs, m.graph().vertex(e.vertex).unwrap().size))
        .collect();
    assert_eq!(memory.len(), 1);
    assert_eq!(memory[0].0, memory[0].1);
    assert!(memory[0].0 > 1);
}

/// Equal scores are broken as Fluxion's own sort breaks them: with ids
/// restarting on every node, both nodes' last core score best under the
/// high-id policy, and two identical alternative slots at the top sort the
/// list of slot candidates twice (once per alternative), which leaves the
/// second node's core first. A stable sort would keep the first node's.
#[test]
fn score_ties_among_alternative_slots_fall_as_in_fluxion() {
    let shape = ClusterShape {
        nodes: 2,
        nodes_per_rack: 2,
        sockets: 2,
        cores_per_socket: 18,
        gpus_per_socket: 0,
        memory_gib_per_socket: 0,
        per_node_ids: true,
    };
    let spec = Jobspec::parse(
        "version: 9999
resources:
  - type: slot
    count: 1
    label: default
    with: [{type: core, count: 1}]
  - type: slot
    count: 1
    label: default
    with: [{type: core, count: 1}]
attributes: {system: {duration: 100}}
tasks: [{command: [app], slot: default, count: {per_slot: 1}}]
",
    )
    .unwrap();
    let mut m = Matcher::new(cluster(&shape).unwrap(), Policy::High);
    m.set_or_slots(true);
    let o = m.match_jobspec(MatchOp::Allocate, 1, &spec, 0).unwrap();
    let got = names(&m, &o);
    assert_eq!(got[0], "core35[1:x]", "{got:?}");
    assert!(got.contains(&"node1[1:s]".to_string()), "{got:?}");
}

/// cluster0 -> rack{0,1} -> store{0,1} -> 2 disks each, and a tier0 under
/// the cluster that also contains both stores (an association).
fn tiered() -> ResourceGraph {
    let mut g = ResourceGraph::new();
    let add = |g: &mut ResourceGraph, k: &str, id: i64, p: Option<VertexId>| {
        g.add_vertex(VertexSpec::new(k, k, id), p).unwrap()
    };
    let root = add(&mut g, "cluster", 0, None);
    let mut stores = Vec::new();
    for r in 0..2 {
        let rack = add(&mut g, "rack", r, Some(root));
        let store = add(&mut g, "store", r, Some(rack));
        for d in 0..2 {
            add(&mut g, "disk", 2 * r + d, Some(store));
        }
        stores.push(store);
    }
    let tier = add(&mut g, "tier", 0, Some(root));
    for s in stores {
        g.add_link(crate::graph::CONTAINMENT, tier, s).unwrap();
    }
    g
}

fn spec(text: &str) -> Jobspec {
    Jobspec::parse(&format!(
        "version: 1\nresources:\n{text}attributes: {{system: {{duration: 100}}}}\n"
    ))
    .unwrap()
}

const THROUGH_TIER: &str = "  - type: tier
    count: 1
    with:
      - type: store
        count: 1
        with:
          - type: slot
            count: 1
            label: s
            with:
              - type: disk
                count: 1
";

#[test]
fn a_vertex_is_matchable_through_its_association_and_printed_under_it() {
    let mut m = Matcher::new(tiered(), Policy::Low);
    // The racks are asked for with nothing below them: the walk passes
    // their stores by, and the tier's path takes one.
    let racks_and_tier = spec(&format!("  - type: rack\n    count: 2\n{THROUGH_TIER}"));
    let o = m
        .match_jobspec(MatchOp::Allocate, 1, &racks_and_tier, 0)
        .unwrap();
    let got = names(&m, &o);
    let at = |n: &str| got.iter().position(|x| x.starts_with(n)).unwrap();
    // store0 is printed under tier0 (right before it), not under rack0.
    assert_eq!(at("store0") + 1, at("tier0"), "{got:?}");
    assert_eq!(at("disk0") + 1, at("store0"), "{got:?}");
}

#[test]
fn a_walk_takes_a_shared_vertex_through_one_path_only() {
    let mut m = Matcher::new(tiered(), Policy::Low);
    // The racks take their stores first; the tier finds none left in
    // this walk, though the stores could serve both.
    let both = format!(
        "  - type: rack\n    count: 2\n    with:\n      - type: store\n        count: 1\n{THROUGH_TIER}"
    );
    assert!(
        m.match_jobspec(MatchOp::Allocate, 1, &spec(&both), 0)
            .is_err()
    );
    // Asked for alone, the tier is passed on below the racks first too
    // (the walk has not matched anything yet), which takes the stores.
    assert!(
        m.match_jobspec(MatchOp::Allocate, 2, &spec(THROUGH_TIER), 0)
            .is_err()
    );
}

/// A node listed exclusive but adopted as passing is shared: two jobs each
/// holding one core of it both fit, and both print it as listed; a job
/// wanting the node whole is refused while they hold it, and fits once
/// they are gone.
#[test]
fn a_passing_node_is_shared_though_printed_exclusive() {
    let mut m = Matcher::new(small(2), Policy::Low);
    let g = m.graph();
    let node = g.find_path("/cluster0/rack0/node0").unwrap();
    let on_node = |core: &str| {
        vec![
            Emit {
                vertex: g.find_path(core).unwrap(),
                needs: 1,
                exclusive: true,
            },
            Emit {
                vertex: node,
                needs: 1,
                exclusive: true,
            },
        ]
    };
    let first = on_node("/cluster0/rack0/node0/socket0/core0");
    let second = on_node("/cluster0/rack0/node0/socket0/core1");
    let whole = vec![Emit {
        vertex: node,
        needs: 1,
        exclusive: true,
    }];
    m.adopt_passing(1, 0, 100, false, first, &[node]).unwrap();
    m.adopt_passing(2, 0, 100, false, second, &[node]).unwrap();
    assert!(m.info(2).unwrap().emitted.iter().all(|e| e.exclusive));
    assert_eq!(
        m.adopt(3, 0, 100, false, whole.clone()),
        Err(MatchError::Busy)
    );
    m.cancel(1).unwrap();
    m.cancel(2).unwrap();
    m.adopt(3, 0, 100, false, whole).unwrap();
}

/// Sibling slots as alternatives (`-T flexible`) can be spread over several
/// hosts: a socket is kept in the search when it holds one slot of the
/// last-listed alternative (as Fluxion's prune decides), not all the slots
/// of the least demanding one. Two sockets with three free cores each host
/// one three-core slot apiece; listed last, the five-core alternative makes
/// every socket too small and nothing is found.
#[test]
fn alternative_slots_spread_over_hosts_pruned_by_the_last_alternative() {
    let spec = |first: u64, last: u64| {
        Jobspec::parse(&format!(
            "version: 9999
resources:
  - {{type: slot, count: 2, label: s, with: [{{type: core, count: {first}}}]}}
  - {{type: slot, count: 2, label: s, with: [{{type: core, count: {last}}}]}}
attributes: {{system: {{duration: 100}}}}
"
        ))
        .unwrap()
    };
    let run = |job: &Jobspec| {
        let mut m = small_all_core(1, Policy::Low);
        m.set_or_slots(true);
        // One core of each socket is taken: three are left on each.
        let taken = ["socket0/core0", "socket1/core4"]
            .map(|c| Emit {
                vertex: m
                    .graph()
                    .find_path(&format!("/cluster0/rack0/node0/{c}"))
                    .unwrap(),
                needs: 1,
                exclusive: true,
            })
            .to_vec();
        m.adopt(3, 0, 100, false, taken).unwrap();
        m.match_jobspec(MatchOp::Allocate, 4, job, 0)
            .map(|o| o.emitted.iter().filter(|e| e.exclusive).count())
    };
    assert_eq!(run(&spec(5, 3)), Ok(6));
    assert!(run(&spec(3, 5)).is_err());
}
