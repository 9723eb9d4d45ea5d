//! A jobspec from the input (after a first byte that picks the policy),
//! matched on a small cluster with every match operation, cancelled and
//! matched again: parsing and matching must refuse or answer, never panic
//! or run without bound.
#![no_main]

use std::sync::OnceLock;

use fluxion_core::graph::ResourceGraph;
use fluxion_core::jobspec::Jobspec;
use fluxion_core::matcher::{MatchOp, Matcher, Policy};
use libfuzzer_sys::fuzz_target;

const POLICIES: [Policy; 10] = [
    Policy::First,
    Policy::FirstNodeX,
    Policy::Low,
    Policy::High,
    Policy::LoNode,
    Policy::HiNode,
    Policy::LoNodeX,
    Policy::HiNodeX,
    Policy::Locality,
    Policy::Variation,
];

const OPS: [MatchOp; 4] = [
    MatchOp::Allocate,
    MatchOp::AllocateOrElseReserve,
    MatchOp::AllocateWithSatisfiability,
    MatchOp::Satisfiability,
];

/// The shared small cluster, built once.
fn small_cluster() -> &'static ResourceGraph {
    static GRAPH: OnceLock<ResourceGraph> = OnceLock::new();
    GRAPH.get_or_init(phalanx_fuzz::small_cluster)
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, text)) = data.split_first() else {
        return;
    };
    let Ok(spec) = Jobspec::parse_bytes(text) else {
        return;
    };
    let policy = POLICIES[usize::from(pick) % POLICIES.len()];
    let mut m = Matcher::new(small_cluster().clone(), policy);
    let _ = m.satisfiable(&spec);
    for (job, op) in (1..).zip(OPS) {
        let _ = m.match_jobspec(op, job, &spec, 0);
    }
    let _ = m.cancel(1);
    let _ = m.match_jobspec(MatchOp::AllocateOrElseReserve, 9, &spec, 5);
});
