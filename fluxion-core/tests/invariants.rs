//! Property tests: matcher and graph invariants on small random graphs and
//! random request sequences.

use std::collections::HashMap;

use fluxion_core::generate::{ClusterShape, cluster};
use fluxion_core::graph::{IdEnd, ResourceGraph, Status, VertexId};
use fluxion_core::jobspec::Jobspec;
use fluxion_core::matcher::{MatchError, MatchOp, Matcher, Policy};
use proptest::prelude::*;

fn shape() -> impl Strategy<Value = ClusterShape> {
    (
        1usize..5,
        0usize..3,
        1usize..3,
        1usize..5,
        0usize..2,
        prop_oneof![Just(0u64), Just(8u64)],
        any::<bool>(),
    )
        .prop_map(
            |(nodes, per_rack, sockets, cores, gpus, mem, per_node_ids)| ClusterShape {
                nodes,
                nodes_per_rack: per_rack,
                sockets,
                cores_per_socket: cores,
                gpus_per_socket: gpus,
                memory_gib_per_socket: mem,
                per_node_ids,
            },
        )
}

fn policy() -> impl Strategy<Value = Policy> {
    prop_oneof![
        Just(Policy::First),
        Just(Policy::High),
        Just(Policy::Low),
        Just(Policy::LoNode),
        Just(Policy::HiNodeX),
        Just(Policy::Locality),
    ]
}

/// A random request: `nodes` x node -> slot x socket -> cores (+ memory),
/// or a node-less `slot -> core[k]`.
fn jobspec(nodes: u64, cores: u64, mem: u64, nodeless: bool, duration: u64) -> Jobspec {
    let mem_line = if mem > 0 {
        format!("\n              - type: memory\n                count: {mem}")
    } else {
        String::new()
    };
    let text = if nodeless {
        format!(
            "version: 1\nresources:\n  - type: slot\n    count: 1\n    label: s\n    with:\n      - type: core\n        count: {cores}\nattributes: {{system: {{duration: {duration}}}}}\n"
        )
    } else {
        format!(
            "version: 1\nresources:\n  - type: node\n    count: {nodes}\n    with:\n      - type: slot\n        count: 1\n        label: s\n        with:\n          - type: socket\n            count: 1\n            with:\n              - type: core\n                count: {cores}{mem_line}\nattributes: {{system: {{duration: {duration}}}}}\n"
        )
    };
    Jobspec::parse(&text).expect("generated jobspec parses")
}

#[derive(Debug, Clone)]
enum Step {
    Match {
        nodes: u64,
        cores: u64,
        mem: u64,
        nodeless: bool,
        duration: u64,
        reserve: bool,
    },
    Cancel(usize),
    PartialCancel(usize),
    Down(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (1u64..3, 1u64..5, 0u64..10, any::<bool>(), 1u64..100, any::<bool>()).prop_map(
            |(nodes, cores, mem, nodeless, duration, reserve)| Step::Match { nodes, cores, mem, nodeless, duration, reserve }
        ),
        2 => (0usize..16).prop_map(Step::Cancel),
        1 => (0usize..16).prop_map(Step::PartialCancel),
        1 => (0usize..64).prop_map(Step::Down),
    ]
}

/// One span as (job, start, end, amount, exclusive).
type SpanKey = (u64, i64, i64, u64, bool);

/// Allocation state of every vertex, for exact before/after comparisons.
fn snapshot(g: &ResourceGraph) -> HashMap<VertexId, Vec<SpanKey>> {
    g.vertices()
        .map(|v| {
            let mut s: Vec<_> = g
                .vertex(v)
                .map(|x| {
                    x.spans()
                        .iter()
                        .map(|s| (s.job, s.start, s.end, s.amount, s.exclusive))
                        .collect()
                })
                .unwrap_or_default();
            s.sort();
            (v, s)
        })
        .collect()
}

fn free_snapshot(g: &ResourceGraph, t: i64) -> Vec<(VertexId, u64)> {
    let core = g.type_id("core");
    let mut out: Vec<(VertexId, u64)> = g
        .vertices()
        .filter_map(|v| Some((v, g.free_units(v, core?, t, t + 1)?)))
        .collect();
    out.sort();
    out
}

fn check_invariants(g: &ResourceGraph) -> Result<(), TestCaseError> {
    let Some(core) = g.type_id("core") else {
        return Ok(());
    };
    // Probe times where spans start.
    let mut times: Vec<i64> = vec![0];
    for v in g.vertices() {
        if let Some(x) = g.vertex(v) {
            times.extend(x.spans().iter().map(|s| s.start));
        }
    }
    for &t in &times {
        for v in g.vertices() {
            let x = g.vertex(v).expect("live vertex");
            // Exclusive holders never overlap anyone else.
            let live: Vec<_> = x.spans().iter().filter(|s| s.overlaps(t, t + 1)).collect();
            if live.iter().any(|s| s.exclusive) {
                prop_assert_eq!(
                    live.len(),
                    1,
                    "vertex {} shared while exclusive at {}",
                    x.name(),
                    t
                );
            }
            // Pools never below zero.
            let used: u64 = live.iter().map(|s| s.amount).sum();
            prop_assert!(
                used <= x.size,
                "vertex {} over-allocated: {} > {}",
                x.name(),
                used,
                x.size
            );
            // Aggregates equal the sum over the subtree: of all cores, and
            // of the cores at each end of the id range where counted.
            let ends = [IdEnd::Lowest, IdEnd::Highest].map(|e| {
                g.id_end(core, e)
                    .zip(g.free_units_at_id_end(v, core, e, t, t + 1))
            });
            if let Some(agg) = g.free_units(v, core, t, t + 1)
                && !g.children(v).is_empty()
                && !x
                    .spans()
                    .iter()
                    .any(|s| s.exclusive && s.overlaps(t, t + 1))
            {
                // A core is free if it is up (with everything between it
                // and `v`), not held, and not below a vertex held
                // exclusively (nobody else can reach it then).
                let mut expect = 0u64;
                let mut expect_at = [0u64; 2];
                let mut stack = vec![(v, false)];
                while let Some((u, covered)) = stack.pop() {
                    let y = g.vertex(u).expect("live");
                    if y.status == Status::Down {
                        continue;
                    }
                    let live = y.spans().iter().filter(|s| s.overlaps(t, t + 1));
                    let held_x = u != v && live.clone().any(|s| s.exclusive);
                    if g.kind_name(u) == "core" {
                        let busy: u64 = live.map(|s| s.amount.max(u64::from(s.exclusive))).sum();
                        if !covered {
                            let free = y.size.saturating_sub(busy);
                            expect += free;
                            for (e, end) in ends.iter().enumerate() {
                                if end.is_some_and(|(id, _)| id == y.id) {
                                    expect_at[e] += free;
                                }
                            }
                        }
                    }
                    for &c in g.children(u) {
                        stack.push((c, covered || held_x));
                    }
                }
                prop_assert_eq!(agg, expect, "aggregate at {} (t={})", x.name(), t);
                for (end, want) in ends.iter().zip(expect_at) {
                    if let Some((id, got)) = end {
                        prop_assert_eq!(
                            *got,
                            want,
                            "core{} aggregate at {} (t={})",
                            id,
                            x.name(),
                            t
                        );
                    }
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn request_sequences_keep_invariants(shape in shape(), policy in policy(), steps in proptest::collection::vec(step(), 1..14)) {
        let mut g = cluster(&shape).expect("generated graph");
        g.set_prune_filters(&"ALL:core,ALL:node".parse().expect("filters")).expect("filters apply");
        let mut m = Matcher::new(g, policy);
        // The same requests on the same graph without prune filters: the
        // aggregates only skip what cannot change the answer, so both give
        // the same answers (except `first`, whose walk order Fluxion
        // weighs by the aggregates' counts).
        let mut plain = (!policy.stops_early())
            .then(|| Matcher::new(cluster(&shape).expect("graph"), policy));
        let mut next = 1u64;
        let mut live: Vec<u64> = Vec::new();
        for s in steps {
            match s {
                Step::Match { nodes, cores, mem, nodeless, duration, reserve } => {
                    let spec = jobspec(nodes, cores, mem, nodeless, duration);
                    let sat_empty = {
                        let mut empty = cluster(&shape).expect("graph");
                        empty.set_prune_filters(&"ALL:core".parse().expect("f")).expect("f");
                        let mut e = Matcher::new(empty, policy);
                        // Satisfiable on the empty graph implies allocatable on it.
                        let sat = e.satisfiable(&spec).expect("valid");
                        let alloc = e.match_jobspec(MatchOp::Allocate, 1, &spec, 0);
                        prop_assert_eq!(sat, alloc.is_ok(), "satisfiable vs allocatable on empty graph");
                        sat
                    };
                    let before = snapshot(m.graph());
                    let op = if reserve { MatchOp::AllocateOrElseReserve } else { MatchOp::Allocate };
                    let answer = m.match_jobspec(op, next, &spec, 0);
                    if let Some(p) = plain.as_mut() {
                        let unpruned = p.match_jobspec(op, next, &spec, 0);
                        let key = |r: &Result<fluxion_core::matcher::MatchOutcome, MatchError>| {
                            r.as_ref().map(|o| (o.at, o.emitted.to_vec())).map_err(|e| e.to_string())
                        };
                        prop_assert_eq!(key(&answer), key(&unpruned), "answer with vs without prune filters");
                    }
                    match answer {
                        Ok(o) => {
                            prop_assert!(o.at >= 0, "reservation in the past");
                            live.push(next);
                            // Cancel restores the exact prior state.
                            if next.is_multiple_of(3) {
                                m.cancel(next).expect("cancel");
                                if let Some(p) = plain.as_mut() {
                                    p.cancel(next).expect("cancel without filters");
                                }
                                live.pop();
                                prop_assert_eq!(snapshot(m.graph()), before);
                            }
                        }
                        Err(MatchError::Unsatisfiable) => prop_assert!(!sat_empty || m.graph().vertices().any(|v| m.graph().vertex(v).is_some_and(|x| x.status == Status::Down))),
                        Err(MatchError::Busy) => {}
                        Err(e) => prop_assert!(false, "unexpected error {e}"),
                    }
                    next += 1;
                }
                Step::Cancel(i) => {
                    if !live.is_empty() {
                        let j = live.remove(i % live.len());
                        m.cancel(j).expect("cancel live job");
                        if let Some(p) = plain.as_mut() {
                            p.cancel(j).expect("cancel without filters");
                        }
                    }
                }
                Step::PartialCancel(i) => {
                    if !live.is_empty() {
                        let j = live[i % live.len()];
                        let held: Vec<VertexId> = m.info(j).map(|x| x.emitted.iter().map(|e| e.vertex).collect()).unwrap_or_default();
                        let node = held.into_iter().find(|&v| m.graph().kind_name(v) == "node");
                        if let Some(n) = node {
                            let gone = m.partial_cancel(j, &[n]);
                            if let Some(p) = plain.as_mut() {
                                prop_assert_eq!(&p.partial_cancel(j, &[n]), &gone);
                            }
                            if let Ok(true) = gone {
                                live.retain(|&x| x != j);
                            }
                        }
                    }
                }
                Step::Down(i) => {
                    let vs: Vec<VertexId> = m.graph().vertices().collect();
                    let v = vs[i % vs.len()];
                    let st = m.graph().vertex(v).map(|x| x.status).unwrap_or_default();
                    let flip = if st == Status::Up { Status::Down } else { Status::Up };
                    m.graph_mut().set_status(v, flip).expect("status");
                    if let Some(p) = plain.as_mut() {
                        p.graph_mut().set_status(v, flip).expect("status without filters");
                    }
                }
            }
            check_invariants(m.graph())?;
        }
        // Cancelling everything frees every core.
        for j in live {
            m.cancel(j).expect("cancel");
        }
        let g = m.graph();
        for (v, free) in free_snapshot(g, 0) {
            if g.is_effectively_up(v) && g.children(v).is_empty() && g.kind_name(v) == "core" {
                prop_assert_eq!(free, 1);
            }
        }
    }

    #[test]
    fn jobspec_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = Jobspec::parse(&text);
    }

    #[test]
    fn jobspec_parser_survives_mutations(pos in 0usize..200, byte in any::<u8>()) {
        let base = "version: 1\nresources:\n  - type: node\n    count: 2\n    with:\n      - type: slot\n        count: 1\n        label: s\n        with:\n          - type: core\n            count: {min: 1, max: 4}\nattributes: {system: {duration: 10}}\n";
        let mut b = base.as_bytes().to_vec();
        let i = pos % b.len();
        b[i] = byte;
        let _ = Jobspec::parse(&String::from_utf8_lossy(&b));
    }

    #[test]
    fn graph_readers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = fluxion_core::io::read_grug(&text);
        let _ = fluxion_core::io::read_jgf(&text);
        let _ = fluxion_core::io::read_hwloc(&text, &[]);
        let _ = fluxion_core::io::read_rv1exec(&text);
    }

    #[test]
    fn hwloc_reader_survives_mutations(pos in 0usize..3000, byte in any::<u8>()) {
        let base = include_str!("data/tiny-hwloc.xml");
        let mut b = base.as_bytes().to_vec();
        let i = pos % b.len();
        b[i] = byte;
        let _ = fluxion_core::io::read_hwloc(&String::from_utf8_lossy(&b), &[]);
    }

    #[test]
    fn grug_reader_survives_mutations(pos in 0usize..2000, byte in any::<u8>()) {
        let base = include_str!("data/mini.graphml");
        let mut b = base.as_bytes().to_vec();
        let i = pos % b.len();
        b[i] = byte;
        let _ = fluxion_core::io::read_grug(&String::from_utf8_lossy(&b));
    }

    #[test]
    fn jgf_reader_survives_mutations(pos in 0usize..3000, byte in any::<u8>()) {
        let g = fluxion_core::io::read_grug(include_str!("data/mini.graphml")).expect("fixture");
        let base = fluxion_core::io::write_jgf(&g);
        let mut b = base.into_bytes();
        let i = pos % b.len();
        b[i] = byte;
        let _ = fluxion_core::io::read_jgf(&String::from_utf8_lossy(&b));
    }
}

/// One step on a wide graph: a match of `nodes` nodes for `duration`, a
/// cancel, or a node going down or up.
#[derive(Debug, Clone)]
enum WideStep {
    Match {
        nodes: u64,
        duration: u64,
        nodeless: bool,
    },
    Cancel(usize),
    Flip(usize),
}

fn wide_step() -> impl Strategy<Value = WideStep> {
    prop_oneof![
        6 => (1u64..9, prop_oneof![Just(10u64), Just(20u64)], any::<bool>())
            .prop_map(|(nodes, duration, nodeless)| WideStep::Match { nodes, duration, nodeless }),
        2 => (0usize..64).prop_map(WideStep::Cancel),
        1 => (0usize..80).prop_map(WideStep::Flip),
    ]
}

/// Node names of a match's answer.
fn node_names(m: &Matcher, emitted: &[fluxion_core::matcher::Emit]) -> Vec<String> {
    let g = m.graph();
    emitted
        .iter()
        .filter(|e| g.kind_name(e.vertex) == "node")
        .filter_map(|e| g.vertex(e.vertex).map(|x| x.name().into_owned()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// 80 nodes straight under the cluster (a vertex wide enough for walks
    /// to remember the nodes they start by passing) answer like the same
    /// nodes in racks of 8, whatever is held, freed or down in between.
    #[test]
    fn wide_vertices_answer_like_racked_ones(
        policy in prop_oneof![
            Just(Policy::Low),
            Just(Policy::High),
            Just(Policy::LoNode),
            Just(Policy::HiNode),
            Just(Policy::LoNodeX),
            Just(Policy::HiNodeX),
        ],
        steps in proptest::collection::vec(wide_step(), 1..40),
        per_node_ids in any::<bool>(),
    ) {
        let shape = |per_rack| ClusterShape {
            nodes: 80,
            nodes_per_rack: per_rack,
            sockets: 1,
            cores_per_socket: 2,
            gpus_per_socket: 0,
            memory_gib_per_socket: 0,
            per_node_ids,
        };
        let matcher = |per_rack| {
            let mut g = cluster(&shape(per_rack)).expect("graph");
            g.set_prune_filters(&"ALL:core".parse().expect("filters")).expect("filters");
            Matcher::new(g, policy)
        };
        let (mut wide, mut racked) = (matcher(0), matcher(8));
        let mut live: Vec<u64> = Vec::new();
        for (job, step) in (1u64..).zip(steps) {
            match step {
                WideStep::Match { nodes, duration, nodeless } => {
                    let spec = jobspec(nodes, 1, 0, nodeless, duration);
                    let a = wide.match_jobspec(MatchOp::Allocate, job, &spec, 0);
                    let b = racked.match_jobspec(MatchOp::Allocate, job, &spec, 0);
                    let names = |m: &Matcher, r: &Result<fluxion_core::matcher::MatchOutcome, MatchError>| {
                        r.as_ref().map(|o| node_names(m, &o.emitted)).map_err(|e| e.to_string())
                    };
                    prop_assert_eq!(names(&wide, &a), names(&racked, &b));
                    if a.is_ok() {
                        live.push(job);
                    }
                }
                WideStep::Cancel(i) => {
                    if !live.is_empty() {
                        let j = live.remove(i % live.len());
                        wide.cancel(j).expect("cancel");
                        racked.cancel(j).expect("cancel");
                    }
                }
                WideStep::Flip(i) => {
                    for m in [&mut wide, &mut racked] {
                        let name = format!("node{i}");
                        let v = m.graph().find_by_name(&name).next().expect("node");
                        let st = m.graph().vertex(v).map(|x| x.status).unwrap_or_default();
                        let flip = if st == Status::Up { Status::Down } else { Status::Up };
                        m.graph_mut().set_status(v, flip).expect("status");
                    }
                }
            }
        }
    }
}
