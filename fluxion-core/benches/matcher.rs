//! Criterion benches: graph generation, GRUG load, and matches per policy on
//! the standard generated cluster.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use fluxion_core::generate::{ClusterShape, cluster};
use fluxion_core::jobspec::Jobspec;
use fluxion_core::matcher::{MatchOp, Matcher, Policy};

const GANG_128: &str = "version: 1\nresources:\n  - type: node\n    count: 128\n    with:\n      - type: slot\n        count: 1\n        label: s\n        with:\n          - type: socket\n            count: 1\n            with:\n              - type: core\n                count: 16\n              - type: gpu\n                count: 1\nattributes: {system: {duration: 3600}}\n";
const ONE_CORE: &str = "version: 1\nresources:\n  - type: slot\n    count: 1\n    label: s\n    with:\n      - type: core\n        count: 1\nattributes: {system: {duration: 3600}}\n";

fn matcher(nodes: usize, policy: Policy) -> Matcher {
    let mut g = cluster(&ClusterShape::standard(nodes)).expect("graph");
    g.set_prune_filters(&"ALL:core".parse().expect("filters"))
        .expect("filters");
    Matcher::new(g, policy)
}

fn bench(c: &mut Criterion) {
    let nodes: usize = std::env::var("BENCH_NODES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    c.bench_function(&format!("generate_{nodes}"), |b| {
        b.iter(|| black_box(cluster(&ClusterShape::standard(nodes)).expect("graph")))
    });
    let gang = Jobspec::parse(GANG_128).expect("jobspec");
    let one = Jobspec::parse(ONE_CORE).expect("jobspec");
    for policy in [
        Policy::First,
        Policy::Low,
        Policy::High,
        Policy::LoNode,
        Policy::Locality,
    ] {
        let base = matcher(nodes, policy);
        c.bench_function(&format!("match128_{policy}_{nodes}_empty"), |b| {
            b.iter_batched_ref(
                || base.clone(),
                |m| {
                    black_box(
                        m.match_jobspec(MatchOp::Allocate, 1, &gang, 0)
                            .expect("fits"),
                    )
                },
                BatchSize::LargeInput,
            )
        });
        // 70% allocated: fill with 128-node gangs first.
        let mut busy = matcher(nodes, policy);
        let mut j = 1;
        while busy.stat().allocated * 128 * 10 < nodes * 7 {
            if busy.match_jobspec(MatchOp::Allocate, j, &gang, 0).is_err() {
                break;
            }
            j += 1;
        }
        c.bench_function(&format!("match128_{policy}_{nodes}_70pct"), |b| {
            b.iter_batched_ref(
                || busy.clone(),
                |m| {
                    black_box(
                        m.match_jobspec(MatchOp::Allocate, 1_000_000, &gang, 0)
                            .expect("fits"),
                    )
                },
                BatchSize::LargeInput,
            )
        });
        let mut m1 = matcher(nodes, policy);
        let mut k = 0u64;
        c.bench_function(&format!("match_one_core_{policy}_{nodes}"), |b| {
            b.iter(|| {
                k += 1;
                let r = m1
                    .match_jobspec(MatchOp::Allocate, k, &one, 0)
                    .expect("fits");
                m1.cancel(k).expect("cancel");
                black_box(r)
            })
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(std::time::Duration::from_secs(2)).warm_up_time(std::time::Duration::from_millis(500));
    targets = bench
}
criterion_main!(benches);
