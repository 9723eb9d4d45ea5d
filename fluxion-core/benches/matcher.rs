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
    matcher_of(&ClusterShape::standard(nodes), policy)
}

fn matcher_of(shape: &ClusterShape, policy: Policy) -> Matcher {
    let mut g = cluster(shape).expect("graph");
    g.set_prune_filters(&"ALL:core".parse().expect("filters"))
        .expect("filters");
    Matcher::new(g, policy)
}

/// Allocates 128-node gangs until 70% of the nodes are taken.
fn fill_70pct(m: &mut Matcher, gang: &Jobspec, nodes: usize) {
    let mut j = 1;
    while m.stat().allocated * 128 * 10 < nodes * 7 {
        if m.match_jobspec(MatchOp::Allocate, j, gang, 0).is_err() {
            break;
        }
        j += 1;
    }
}

/// Matches and cancels one core after another on `m`.
fn bench_one_core(c: &mut Criterion, name: &str, mut m: Matcher, one: &Jobspec) {
    let mut k = 10_000_000u64;
    c.bench_function(name, |b| {
        b.iter(|| {
            k += 1;
            let r = m.match_jobspec(MatchOp::Allocate, k, one, 0).expect("fits");
            m.cancel(k).expect("cancel");
            black_box(r)
        })
    });
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
        fill_70pct(&mut busy, &gang, nodes);
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
        bench_one_core(
            c,
            &format!("match_one_core_{policy}_{nodes}"),
            matcher(nodes, policy),
            &one,
        );
    }
    // Core ids restarting in every node, as in the bench's gen*.graphml,
    // tie every node's best core: with 70% of the nodes taken by gangs,
    // low/high must pass those nodes without descending into them.
    let shape = ClusterShape {
        nodes_per_rack: 0,
        per_node_ids: true,
        ..ClusterShape::standard(nodes)
    };
    for policy in [Policy::Low, Policy::High] {
        let mut m = matcher_of(&shape, policy);
        fill_70pct(&mut m, &gang, nodes);
        let name = format!("match_one_core_{policy}_{nodes}_70pct_per_node_ids");
        bench_one_core(c, &name, m, &one);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(std::time::Duration::from_secs(2)).warm_up_time(std::time::Duration::from_millis(500));
    targets = bench
}
criterion_main!(benches);
