//! Property tests over hostile input, the kind that found each class of
//! issue 16: sizes at the arithmetic limits, deep and wide generated graphs
//! walked on a 2 MiB stack, idsets, nested jobspecs. Each property runs a
//! bounded number of cases, so the crate's tests stay fast.

use fluxion_core::graph::{GraphLimits, MAX_DEPTH, ResourceGraph, VertexSpec};
use fluxion_core::io::{
    count_idset, expand_hostlist, expand_idset, read_grug_with, read_hwloc, read_rv1exec_with,
};
use fluxion_core::jobspec::{Jobspec, MAX_FLOW_NESTING};
use fluxion_core::matcher::{MatchOp, Matcher, Policy};
use fluxion_core::writers::{Format, render};
use proptest::prelude::*;

/// Integers that break careless arithmetic.
fn edgy() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(0i64),
        Just(1),
        Just(-1),
        Just(i64::MAX),
        Just(i64::MIN),
        Just(1 << 32),
        Just(1 << 40),
        Just(1 << 62),
        Just((1 << 62) + 1),
        -4i64..64,
        any::<i64>(),
    ]
}

/// A GRUG recipe of `levels` kinds in a chain, each edge with the given
/// (multi_scale, id_scope, id_start, id_stride).
fn recipe(edges: &[(i64, i64, i64, i64)]) -> String {
    let mut s = String::from("<graphml>");
    for k in [
        "root",
        "type",
        "multi_scale",
        "id_scope",
        "id_start",
        "id_stride",
    ] {
        s.push_str(&format!("<key id=\"{k}\" attr.name=\"{k}\"/>"));
    }
    s.push_str("<graph><node id=\"v0\"><data key=\"root\">1</data><data key=\"type\">cluster</data></node>");
    for i in 1..=edges.len() {
        s.push_str(&format!(
            "<node id=\"v{i}\"><data key=\"type\">t{i}</data></node>"
        ));
    }
    for (i, (m, scope, start, stride)) in edges.iter().enumerate() {
        s.push_str(&format!(
            "<edge source=\"v{i}\" target=\"v{}\"><data key=\"multi_scale\">{m}</data><data key=\"id_scope\">{scope}</data><data key=\"id_start\">{start}</data><data key=\"id_stride\">{stride}</data></edge>",
            i + 1
        ));
    }
    s.push_str("</graph></graphml>");
    s
}

/// Runs `f` on a thread with a 2 MiB stack.
fn small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .expect("spawn")
        .join()
        .expect("no panic, no stack overflow")
}

const ONE_CORE: &str = "version: 1\nresources:\n  - type: slot\n    count: 1\n    label: s\n    with:\n      - type: core\n        count: 1\nattributes: {system: {duration: 10}}\n";

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// GRUG sizes and ids at the limits: an error or a graph within the
    /// budget, never a panic or an allocation past it.
    #[test]
    fn grug_arithmetic_at_the_limits(
        edges in proptest::collection::vec((edgy(), edgy(), edgy(), edgy()), 1..5),
    ) {
        let limits = GraphLimits { max_vertices: 5_000 };
        match read_grug_with(&recipe(&edges), limits) {
            Ok(g) => prop_assert!(g.vertex_count() <= 5_000),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    /// Idsets: counted before expanding, the cap holds, and the count is
    /// what an expansion within the cap gives.
    #[test]
    fn idsets_never_exceed_their_cap(
        parts in proptest::collection::vec((edgy(), edgy(), any::<bool>()), 0..6),
        cap in 0u64..5_000,
    ) {
        let text: Vec<String> = parts
            .iter()
            .map(|(a, b, range)| if *range { format!("{a}-{b}") } else { a.to_string() })
            .collect();
        let text = text.join(",");
        let count = count_idset(&text);
        match expand_idset(&text, cap) {
            Ok(ids) => {
                prop_assert!(ids.len() as u64 <= cap);
                prop_assert_eq!(count, Ok(ids.len() as u64));
            }
            Err(_) => prop_assert!(count.is_err() || count.is_ok_and(|c| c > cap)),
        }
        let hosts = format!("n[{text}],m");
        if let Ok(names) = expand_hostlist(&hosts, cap) {
            prop_assert!(names.len() as u64 <= cap);
        }
    }

    /// R documents with random idsets: within the vertex budget, or an error.
    #[test]
    fn rv1exec_stays_within_its_budget(
        ranks in (edgy(), edgy()),
        cores in (edgy(), edgy()),
        gpus in (edgy(), edgy()),
    ) {
        let r = format!(
            r#"{{"version": 1, "execution": {{"R_lite": [{{"rank": "{}-{}", "children": {{"core": "{}-{}", "gpu": "{}-{}"}}}}]}}}}"#,
            ranks.0, ranks.1, cores.0, cores.1, gpus.0, gpus.1
        );
        let limits = GraphLimits { max_vertices: 10_000 };
        if let Ok(g) = read_rv1exec_with(&r, limits) {
            prop_assert!(g.vertex_count() <= 10_000);
        }
    }

    /// Counts anywhere in the range of a YAML integer: accepted from 1 to
    /// i64::MAX, else an error naming the count's field.
    #[test]
    fn jobspec_counts_at_the_limits(n in prop_oneof![any::<i64>().prop_map(i128::from), any::<u64>().prop_map(i128::from), Just(1i128 << 64), Just(-(1i128 << 64))]) {
        let text = ONE_CORE.replace("        count: 1\n", &format!("        count: {n}\n"));
        match Jobspec::parse(&text) {
            Ok(j) => {
                prop_assert!(n >= 1 && n <= i128::from(i64::MAX));
                prop_assert_eq!(i128::from(j.resources[0].with[0].count.min), n);
            }
            Err(e) => {
                prop_assert!(n < 1 || n > i128::from(i64::MAX));
                prop_assert_eq!(e.path, "resources[0].with[0].count");
            }
        }
    }
}

/// A flow collection nested `depth` deep, with strings and comments that
/// hold brackets and quotes at every level (what a scan could be fooled by).
fn nested_flow(depth: usize, noise: &[u8]) -> String {
    let mut s = String::new();
    for i in 0..depth {
        let n = noise[i % noise.len()];
        s.push(if n & 1 == 0 { '[' } else { '{' });
        match n % 5 {
            0 => s.push_str("\"]]}}\\\" ]\", "),
            1 => s.push_str("'it''s ]} ', "),
            // A quote inside a word, a '#' that starts no comment.
            2 => s.push_str("don't, a#b, "),
            3 => s.push_str(" # ]]}}\n "),
            _ => {}
        }
        if n & 1 == 1 {
            s.push_str("k: ");
        }
    }
    for i in (0..depth).rev() {
        let n = noise[i % noise.len()];
        s.push(if n & 1 == 0 { ']' } else { '}' });
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// The pre-scan never lets a jobspec nested past the limit reach the
    /// YAML parser, whatever its strings and comments hold.
    #[test]
    fn jobspec_nesting_past_the_limit_is_always_refused(
        depth in 1usize..200,
        noise in proptest::collection::vec(any::<u8>(), 1..16),
    ) {
        let text = format!("version: 1\nresources: {}\n", nested_flow(depth, &noise));
        let r = Jobspec::parse(&text);
        if depth > MAX_FLOW_NESTING {
            let e = r.unwrap_err();
            prop_assert!(e.message.contains("MAX_FLOW_NESTING"), "{}", e);
        }
    }

    /// hwloc XML nested at random, kept or left out: no panic, no overflow.
    #[test]
    fn hwloc_nesting_is_bounded(
        depth in 1usize..400,
        kinds in proptest::collection::vec(prop_oneof![Just("Group"), Just("Package"), Just("Bridge"), Just("Core")], 1..8),
    ) {
        let mut x = String::from("<topology><object type=\"Machine\"><info name=\"HostName\" value=\"n1\"/>");
        for i in 0..depth {
            x.push_str(&format!("<object type=\"{}\">", kinds[i % kinds.len()]));
        }
        for _ in 0..depth {
            x.push_str("</object>");
        }
        x.push_str("</object></topology>");
        match read_hwloc(&x, &[]) {
            Ok(g) => prop_assert!(g.vertices().all(|v| g.depth(v) <= MAX_DEPTH)),
            Err(e) => prop_assert!(e.to_string().contains("deeper than the limit"), "{}", e),
        }
    }
}

/// Random tree shapes, up to the depth limit and wide: a match of one core
/// and its rendering in every format, on a 2 MiB stack.
#[test]
fn deep_and_wide_graphs_match_on_a_small_stack() {
    small_stack(|| {
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
            cases: 24,
            ..ProptestConfig::default()
        });
        let shape = (1usize..=MAX_DEPTH + 4, 1usize..400, 0usize..6, 0usize..6);
        runner
            .run(&shape, |(depth, width, policy, format)| {
                let mut g = ResourceGraph::new();
                let mut v = g
                    .add_vertex(VertexSpec::new("cluster", "c", 0), None)
                    .expect("root");
                let mut too_deep = false;
                for level in 1..depth {
                    match g.add_vertex(VertexSpec::new("group", "g", level as i64), Some(v)) {
                        Ok(u) => v = u,
                        Err(e) => {
                            prop_assert!(e.to_string().contains("deeper than the limit"));
                            too_deep = true;
                            break;
                        }
                    }
                }
                prop_assert_eq!(too_deep, depth > MAX_DEPTH + 1);
                // A wide last level of cores (under the deepest vertex
                // that still has room).
                let parent = if g.depth(v) < MAX_DEPTH {
                    v
                } else {
                    g.parent(v).expect("parent")
                };
                for i in 0..width {
                    g.add_vertex(VertexSpec::new("core", "core", i as i64), Some(parent))
                        .expect("core");
                }
                let policy = [
                    Policy::First,
                    Policy::Low,
                    Policy::High,
                    Policy::LoNode,
                    Policy::HiNodeX,
                    Policy::Locality,
                ][policy];
                let mut m = Matcher::new(g, policy);
                let spec = Jobspec::parse(ONE_CORE).expect("jobspec");
                let o = m
                    .match_jobspec(MatchOp::Allocate, 1, &spec, 0)
                    .expect("a core is free");
                let f = [
                    Format::Simple,
                    Format::PrettySimple,
                    Format::Jgf,
                    Format::Rv1NoSched,
                    Format::Simple,
                    Format::Jgf,
                ][format];
                let text = render(m.graph(), &o.emitted, f, o.at, o.duration, None);
                prop_assert!(text.contains("core"));
                m.cancel(1).expect("cancel");
                Ok(())
            })
            .expect("property holds");
    });
}
