//! Hostile input: limits named in clear errors, no panic, no stack overflow,
//! no unbounded allocation. Deep graphs are walked in threads with a
//! normal 2 MiB stack.

use fluxion_core::graph::{
    DEFAULT_MAX_VERTICES, GraphError, GraphLimits, MAX_DEPTH, ResourceGraph, VertexSpec,
};
use fluxion_core::io::{IoError, read_grug, read_grug_with, read_hwloc, read_jgf, read_rv1exec};
use fluxion_core::jobspec::Jobspec;
use fluxion_core::matcher::{MatchOp, Matcher, Policy};
use fluxion_core::writers::{Format, render};

const MINI: &str = include_str!("data/mini.graphml");

/// Runs `f` on a thread with a 2 MiB stack (the default for spawned
/// threads, and less than the main thread's), and returns its result.
fn small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .expect("spawn")
        .join()
        .expect("no panic, no overflow")
}

/// A GRUG recipe that is a chain: cluster -> `levels - 3` groups -> node -> core.
fn grug_chain(levels: usize) -> String {
    let mut s = String::from(
        "<graphml><key id=\"root\" for=\"node\" attr.name=\"root\"/><key id=\"type\" for=\"node\" attr.name=\"type\"/><graph>\n<node id=\"v0\"><data key=\"root\">1</data><data key=\"type\">cluster</data></node>\n",
    );
    for i in 1..levels {
        let t = if i == levels - 1 {
            "core"
        } else if i == levels - 2 {
            "node"
        } else {
            "group"
        };
        s.push_str(&format!(
            "<node id=\"v{i}\"><data key=\"type\">{t}</data></node>\n"
        ));
    }
    for i in 1..levels {
        s.push_str(&format!(
            "<edge id=\"e{i}\" source=\"v{}\" target=\"v{i}\"/>\n",
            i - 1
        ));
    }
    s.push_str("</graph></graphml>");
    s
}

const ONE_CORE: &str = "version: 1\nresources:\n  - type: node\n    count: 1\n    with:\n      - type: slot\n        count: 1\n        label: s\n        with:\n          - type: core\n            count: 1\nattributes: {system: {duration: 10}}\ntasks:\n  - command: [app]\n    slot: s\n    count: {per_slot: 1}\n";

#[test]
fn a_graph_at_the_depth_limit_matches_and_prints_on_a_small_stack() {
    // The deepest graph allowed: its core sits at depth MAX_DEPTH.
    let g = read_grug(&grug_chain(MAX_DEPTH + 1)).expect("a chain at the limit loads");
    let deepest = g.vertices().map(|v| g.depth(v)).max();
    assert_eq!(deepest, Some(MAX_DEPTH));
    small_stack(move || {
        let spec = Jobspec::parse(ONE_CORE).expect("jobspec");
        for policy in [
            Policy::First,
            Policy::Low,
            Policy::High,
            Policy::LoNode,
            Policy::HiNodeX,
            Policy::Locality,
        ] {
            let mut m = Matcher::new(g.clone(), policy);
            let o = m
                .match_jobspec(MatchOp::Allocate, 1, &spec, 0)
                .expect("one core fits");
            // Every vertex of the chain is on the way to the core.
            assert_eq!(o.emitted.len(), MAX_DEPTH + 1);
            for f in [
                Format::Simple,
                Format::PrettySimple,
                Format::Jgf,
                Format::Rv1NoSched,
            ] {
                let text = render(m.graph(), &o.emitted, f, o.at, o.duration, None);
                assert!(text.contains("core"), "{f:?}");
            }
            assert!(m.satisfiable(&spec).expect("satisfiable"));
            m.cancel(1).expect("cancel");
            // Fluxion's flexible traverser, and a reservation behind a job.
            m.set_or_slots(true);
            m.match_jobspec(MatchOp::Allocate, 2, &spec, 0)
                .expect("fits with or-slots");
            let later = m
                .match_jobspec(MatchOp::AllocateOrElseReserve, 3, &spec, 0)
                .expect("reserved behind job 2");
            assert!(later.reserved);
        }
    });
}

#[test]
fn deeper_graphs_are_refused_at_load_naming_the_limit() {
    for levels in [MAX_DEPTH + 2, 8_000] {
        let e = read_grug(&grug_chain(levels)).unwrap_err().to_string();
        assert!(
            e.contains(&format!("deeper than the limit of {MAX_DEPTH} levels")),
            "{e}"
        );
    }
    // hwloc: 8,000 nested Groups.
    let mut x =
        String::from("<topology><object type=\"Machine\"><info name=\"HostName\" value=\"n1\"/>");
    for _ in 0..8_000 {
        x.push_str("<object type=\"Group\">");
    }
    for _ in 0..8_000 {
        x.push_str("</object>");
    }
    x.push_str("</object></topology>");
    let e = read_hwloc(&x, &[]).unwrap_err().to_string();
    assert!(e.contains("deeper than the limit"), "{e}");
    // Left out by the allowlist, the groups add no depth.
    let g = read_hwloc(&x, &["node".into()]).expect("groups left out");
    assert_eq!(g.vertex_count(), 2);
    // Adding a vertex by hand is held to the same limit.
    let mut g = ResourceGraph::new();
    let mut v = g
        .add_vertex(VertexSpec::new("cluster", "c", 0), None)
        .expect("root");
    for i in 0..MAX_DEPTH {
        v = g
            .add_vertex(VertexSpec::new("group", "g", i as i64), Some(v))
            .expect("within the limit");
    }
    let e = g
        .add_vertex(VertexSpec::new("core", "core", 0), Some(v))
        .unwrap_err();
    assert!(
        matches!(
            e,
            GraphError::TooDeep {
                limit: MAX_DEPTH,
                ..
            }
        ),
        "{e}"
    );
}

/// `mini.graphml` with the cluster -> rack edge's multi_scale replaced.
fn mini_with_racks(multi_scale: &str) -> String {
    let from = "target=\"rack\"><data key=\"multi_scale\">2</data>";
    assert!(MINI.contains(from));
    MINI.replace(
        from,
        &format!("target=\"rack\"><data key=\"multi_scale\">{multi_scale}</data>"),
    )
}

#[test]
fn grug_sizes_are_checked_before_allocation() {
    for ms in [
        i64::MAX.to_string(),
        (1i64 << 40).to_string(),
        (1i64 << 62).to_string(),
    ] {
        let e = read_grug(&mini_with_racks(&ms)).unwrap_err().to_string();
        assert!(e.contains(&format!("multi_scale {ms}")), "{e}");
        assert!(
            e.contains(&format!("more than the limit of {DEFAULT_MAX_VERTICES}")),
            "{e}"
        );
        assert!(e.contains("--max-vertices"), "{e}");
    }
    // 4 x 2^62 on every edge: the product saturates instead of wrapping.
    let all = MINI.replace(
        "<data key=\"multi_scale\">",
        "<data key=\"multi_scale\">461168601842738790",
    );
    assert!(
        read_grug(&all)
            .unwrap_err()
            .to_string()
            .contains("max_vertices")
    );
    // The budget can be lowered (and raised): mini has 71 vertices.
    let tight = GraphLimits { max_vertices: 70 };
    let e = read_grug_with(MINI, tight).unwrap_err().to_string();
    assert!(e.contains("limit of 70"), "{e}");
    let g = read_grug_with(MINI, GraphLimits { max_vertices: 71 }).expect("fits exactly");
    assert_eq!(g.vertex_count(), 71);
    // Ids that overflow i64 are an error naming the edge, not a panic.
    let big_start = MINI.replace(
        "<edge id=\"s2c\" source=\"socket\" target=\"core\">",
        &format!(
            "<edge id=\"s2c\" source=\"socket\" target=\"core\"><data key=\"id_start\">{}</data>",
            i64::MAX
        ),
    );
    let e = read_grug(&big_start).unwrap_err().to_string();
    assert!(e.contains("overflows a 64-bit id"), "{e}");
    assert!(e.contains("'socket' to 'core'"), "{e}");
}

#[test]
fn grug_refuses_two_roots() {
    let two = MINI.replace(
        "<node id=\"rack\"><data key=\"type\">rack</data>",
        "<node id=\"rack\"><data key=\"root\">1</data><data key=\"type\">rack</data>",
    );
    let e = read_grug(&two).unwrap_err().to_string();
    assert!(e.contains("two root nodes ('cluster' and 'rack')"), "{e}");
}

#[test]
fn grug_loading_is_linear_in_the_recipe() {
    // 20,000 keys with defaults and 20,000 recipe vertices under the root
    // (each key's default was once copied to every element); and a long
    // chain of edges listed last-first. Both must load in well under a
    // second (not asserted: no timing in tests; a quadratic reader takes
    // minutes here, which the test run would show).
    let n = 20_000;
    let mut s = String::from("<graphml>");
    for k in 0..n {
        s.push_str(&format!(
            "<key id=\"k{k}\" for=\"node\" attr.name=\"a{k}\"><default>{k}</default></key>"
        ));
    }
    s.push_str("<key id=\"type\" for=\"node\" attr.name=\"type\"/><key id=\"root\" for=\"node\" attr.name=\"root\"/><graph>");
    s.push_str(
        "<node id=\"r\"><data key=\"root\">1</data><data key=\"type\">cluster</data></node>",
    );
    for i in 0..n {
        s.push_str(&format!(
            "<node id=\"v{i}\"><data key=\"type\">t{i}</data></node>"
        ));
    }
    for i in (0..n).rev() {
        s.push_str(&format!("<edge source=\"r\" target=\"v{i}\"/>"));
    }
    s.push_str("</graph></graphml>");
    let g = read_grug(&s).expect("wide recipe loads");
    assert_eq!(g.vertex_count(), n + 1);
}

#[test]
fn names_are_checked_where_the_graph_is_built() {
    for bad in ["a/b", "a\0b", "a\nb", &"x".repeat(300)] {
        let mut g = ResourceGraph::new();
        let mut spec = VertexSpec::new("cluster", "c", 0);
        spec.name = bad.to_string();
        let e = g.add_vertex(spec, None).unwrap_err();
        assert!(
            matches!(e, GraphError::BadName { field: "name", .. }),
            "{e}"
        );
    }
    let e = read_grug(&MINI.replace(">rack</data></node>", ">ra/ck</data></node>"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("must not contain '/'"), "{e}");
    let hw = include_str!("data/tiny-hwloc.xml");
    let host = hw
        .split("name=\"HostName\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("fixture host");
    let e = read_hwloc(&hw.replace(host, "evil&#10;host"), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("must not contain '\\n'"), "{e}");
}

#[test]
fn jgf_refuses_duplicate_ids_paths_and_ranks() {
    let g = read_grug(MINI).expect("fixture");
    let text = fluxion_core::io::write_jgf(&g);
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    let with = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v = v.clone();
        f(&mut v);
        read_jgf(&v.to_string())
    };
    // Two vertices with one uniq_id.
    let e = with(&|v| {
        let u = v["graph"]["nodes"][1]["metadata"]["uniq_id"].clone();
        v["graph"]["nodes"][2]["metadata"]["uniq_id"] = u;
    })
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("uniq_id") && e.contains("another vertex's too"),
        "{e}"
    );
    // Two vertices with one path.
    let e = with(&|v| {
        let p = v["graph"]["nodes"][1]["metadata"]["paths"].clone();
        v["graph"]["nodes"][2]["metadata"]["paths"] = p;
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("appears twice"), "{e}");
    // Two nodes with one rank.
    let e = with(&|v| {
        for n in v["graph"]["nodes"].as_array_mut().expect("nodes") {
            if n["metadata"]["type"] == "node" {
                n["metadata"]["rank"] = 3.into();
            }
        }
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("rank 3 is also node"), "{e}");
    // Two roots.
    let e = with(&|v| {
        v["graph"]["edges"].as_array_mut().expect("edges").remove(0);
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("2 roots"), "{e}");
    // A uniq_id at u64::MAX cannot wrap the next one.
    let e = with(&|v| {
        v["graph"]["nodes"][1]["metadata"]["uniq_id"] = u64::MAX.into();
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("uniq_id"), "{e}");
}

#[test]
fn rv1exec_counts_before_it_expands() {
    let r = |rank: &str, cores: &str, nodes: &str| {
        format!(
            r#"{{"version": 1, "execution": {{"R_lite": [{{"rank": "{rank}", "children": {{"core": "{cores}"}}}}], "nodelist": [{nodes}]}}}}"#
        )
    };
    // 80 bytes naming 10^14 vertices.
    let e = read_rv1exec(&r("0-10000000", "0-10000000", ""))
        .unwrap_err()
        .to_string();
    assert!(e.contains("more than the limit of"), "{e}");
    assert!(e.contains("execution.R_lite[0]"), "{e}");
    let e = read_rv1exec(&r("0", "0-9223372036854775807", ""))
        .unwrap_err()
        .to_string();
    assert!(e.contains("limit"), "{e}");
    let e = read_rv1exec(&r("0-1", "0", "\"n[0-99999999999]\""))
        .unwrap_err()
        .to_string();
    assert!(e.contains("execution.nodelist[0]: expands to"), "{e}");
    // Repeated ranks are refused (a node is known by its rank in R).
    let e = read_rv1exec(&r("0,0", "0", "")).unwrap_err().to_string();
    assert!(e.contains("rank 0 is also in execution.R_lite[0]"), "{e}");
    let g = read_rv1exec(&r("0-1", "0-3", "\"n[1-2]\"")).expect("fine R");
    assert_eq!(g.vertex_count(), 11);
}

#[test]
fn idsets_are_capped_before_allocation() {
    use fluxion_core::io::{IdsetError, MAX_IDSET_IDS, count_idset, expand_idset};
    let many = vec!["0-1000000"; 1000].join(",");
    assert_eq!(count_idset(&many), Ok(1000 * 1_000_001));
    let e = expand_idset(&many, MAX_IDSET_IDS).unwrap_err();
    assert!(matches!(
        e,
        IdsetError::TooMany {
            count: 1_000_001_000,
            limit: MAX_IDSET_IDS
        }
    ));
    assert!(e.to_string().contains("MAX_IDSET_IDS"), "{e}");
    let full = format!("0-{},0-{}", i64::MAX, i64::MAX);
    assert_eq!(count_idset(&full), Ok(u64::MAX));
    assert!(expand_idset(&full, MAX_IDSET_IDS).is_err());
    assert_eq!(expand_idset("0-3,7", 5), Ok(vec![0, 1, 2, 3, 7]));
    assert!(matches!(
        expand_idset("0-3,7", 4),
        Err(IdsetError::TooMany { count: 5, .. })
    ));
    assert!(matches!(
        expand_idset("3-1", 9),
        Err(IdsetError::Reversed(_))
    ));
    assert!(matches!(expand_idset("1-x", 9), Err(IdsetError::Syntax(_))));
}

#[test]
fn io_errors_wrap_graph_errors() {
    let e: IoError = GraphError::TooManyTypes.into();
    assert_eq!(e.to_string(), "too many resource types");
}

#[test]
fn sizes_and_ids_at_the_limits_neither_overflow_nor_panic() {
    use fluxion_core::graph::{MAX_VERTEX_SIZE, MAX_VERTICES_CEILING};
    // A pool larger than the aggregates can sum is refused by name.
    let mut g = ResourceGraph::new();
    let mut spec = VertexSpec::new("memory", "memory", 0);
    spec.size = MAX_VERTEX_SIZE + 1;
    let e = g.add_vertex(spec, None).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "size {}: must be at most {MAX_VERTEX_SIZE}",
            MAX_VERTEX_SIZE + 1
        )
    );
    // A budget above the ceiling is held to the ceiling.
    let huge = GraphLimits {
        max_vertices: usize::MAX,
    };
    let e = huge.check_room(0, u64::MAX).unwrap_err().to_string();
    assert!(
        e.contains(&format!("limit of {MAX_VERTICES_CEILING}")),
        "{e}"
    );
    // Ids at both ends of i64, matched by every policy that ranks by id.
    small_stack(|| {
        let mut g = ResourceGraph::new();
        let root = g
            .add_vertex(VertexSpec::new("cluster", "c", 0), None)
            .expect("root");
        for (i, id) in [i64::MAX, i64::MIN, -1, 0, i64::MAX - 1]
            .into_iter()
            .enumerate()
        {
            let mut n = VertexSpec::new("node", "n", id);
            n.uniq_id = Some(if i == 0 { u64::MAX - 3 } else { i as u64 + 10 });
            let node = g.add_vertex(n, Some(root)).expect("node");
            let mut c = VertexSpec::new("core", "core", id);
            c.uniq_id = Some(if i == 0 { u64::MAX - 2 } else { i as u64 + 20 });
            c.size = MAX_VERTEX_SIZE;
            g.add_vertex(c, Some(node)).expect("core");
        }
        let spec = Jobspec::parse(ONE_CORE).expect("jobspec");
        let all = Jobspec::parse(&ONE_CORE.replace("count: 1\n    with", "count: 5\n    with"))
            .expect("jobspec");
        for policy in [
            Policy::Low,
            Policy::High,
            Policy::LoNode,
            Policy::HiNodeX,
            Policy::Locality,
        ] {
            let mut m = Matcher::new(g.clone(), policy);
            m.match_jobspec(MatchOp::Allocate, 1, &spec, 0)
                .expect("one core");
            m.match_jobspec(MatchOp::Allocate, 2, &all, 0)
                .expect_err("five nodes, one holds a job");
            m.cancel(1).expect("cancel");
            m.match_jobspec(MatchOp::Allocate, 3, &all, 0)
                .expect("five nodes");
        }
    });
}

#[test]
fn generated_clusters_past_the_budget_are_refused_before_building() {
    use fluxion_core::generate::{ClusterShape, cluster};
    let mut shape = ClusterShape::standard(100_000_000);
    let e = cluster(&shape).unwrap_err();
    assert!(matches!(e, GraphError::TooManyVertices { .. }), "{e}");
    shape.nodes = 1;
    shape.cores_per_socket = usize::MAX;
    assert!(matches!(
        cluster(&shape).unwrap_err(),
        GraphError::TooManyVertices {
            wanted: u64::MAX,
            ..
        }
    ));
    shape.cores_per_socket = 2;
    shape.memory_gib_per_socket = u64::MAX;
    assert!(matches!(
        cluster(&shape).unwrap_err(),
        GraphError::OutOfRange { field: "size", .. }
    ));
    // The count is exact.
    for (nodes, per_rack, sockets, cores, gpus, mem) in [
        (3, 18, 2, 4, 1, 8),
        (7, 3, 1, 1, 0, 0),
        (1, 0, 0, 0, 0, 0),
        (5, 2, 2, 0, 2, 1),
    ] {
        let shape = ClusterShape {
            nodes,
            nodes_per_rack: per_rack,
            sockets,
            cores_per_socket: cores,
            gpus_per_socket: gpus,
            memory_gib_per_socket: mem,
            per_node_ids: false,
        };
        let g = cluster(&shape).expect("small cluster");
        assert_eq!(g.vertex_count() as u64, shape.vertex_count(), "{shape:?}");
    }
}
