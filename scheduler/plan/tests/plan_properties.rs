//! Random DAGs: every plan keeps dependencies and capacity (on the resource
//! graph too), and the heuristic is never better than the exhaustive
//! optimum (which would mean the optimum is wrong) and not far from it.

use phalanx_plan::cluster::ClusterGraph;
use phalanx_plan::generate::{self, Shape};
use phalanx_plan::planner::{self, Objective, Options};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn plans_keep_dependencies_and_capacity(
        seed in any::<u64>(),
        steps in 1usize..40,
        cpu_nodes in 4u32..10,
        gpu_nodes in 2u32..5,
        images in 1usize..6,
        objective in prop_oneof![Just(Objective::Cost), Just(Objective::Makespan), Just(Objective::Balanced)],
    ) {
        let wf = generate::workflow(seed, Shape { steps, cpu_nodes, gpu_nodes, images, window: 5 }).expect("generated");
        let opts = Options { objective, effort: 20_000, seed, ..Options::default() };
        let out = planner::plan(&wf, &opts).expect("plans");
        prop_assert_eq!(out.plan.check(&wf), Ok(()));
        prop_assert_eq!(ClusterGraph::new(&wf.pools).verify(&wf, &out.plan), Ok(()));
        // One MiniCluster per step (a start of the search) is never better
        // on both counts. (One MiniCluster for everything may run several
        // images in one MiniCluster, which no plan does, so it can be.)
        let b = &out.per_step;
        let dominated = b.node_ms <= out.plan.node_ms
            && b.makespan_ms <= out.plan.makespan_ms
            && (b.node_ms < out.plan.node_ms || b.makespan_ms < out.plan.makespan_ms);
        prop_assert!(!dominated, "one MiniCluster per step ({} node-ms, {} ms) beats the plan ({}, {})",
            b.node_ms, b.makespan_ms, out.plan.node_ms, out.plan.makespan_ms);
        // With node-seconds first, never more of them than both extremes; the
        // other objectives may buy a shorter makespan with more node-seconds.
        if objective == Objective::Cost {
            prop_assert!(out.plan.node_ms <= out.per_step.node_ms.max(out.single.node_ms));
        }
    }

    #[test]
    fn heuristic_is_at_least_the_optimum_and_close_to_it(
        seed in any::<u64>(),
        steps in 1usize..7,
        images in 1usize..4,
    ) {
        let wf = generate::workflow(seed, Shape { steps, cpu_nodes: 5, gpu_nodes: 2, images, window: 3 }).expect("generated");
        // No makespan limit: node-seconds alone.
        let opts = Options { max_stretch: 1e9, effort: 20_000, seed, ..Options::default() };
        let h = planner::plan(&wf, &opts).expect("plans").plan;
        let o = planner::optimum(&wf, &opts).expect("optimum").plan;
        prop_assert_eq!(o.check(&wf), Ok(()));
        prop_assert!(h.node_ms >= o.node_ms, "heuristic {} < optimum {}", h.node_ms, o.node_ms);
        prop_assert!(h.node_ms as f64 <= 1.25 * o.node_ms as f64, "heuristic {} vs optimum {}", h.node_ms, o.node_ms);
    }
}

#[test]
fn optimum_refuses_large_dags() {
    let wf = generate::workflow(
        1,
        Shape {
            steps: 13,
            ..Shape::default()
        },
    )
    .expect("generated");
    assert!(planner::optimum(&wf, &Options::default()).is_err());
}
