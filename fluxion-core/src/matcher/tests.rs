use super::*;
use crate::generate::{ClusterShape, cluster};

fn small(nodes: usize) -> ResourceGraph {
    let shape = ClusterShape {
        nodes,
        nodes_per_rack: 2,
        sockets: 2,
        cores_per_socket: 4,
        gpus_per_socket: 1,
        memory_gib_per_socket: 16,
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

fn names(m: &Matcher, o: &MatchOutcome) -> Vec<String> {
    o.emitted
        .iter()
        .map(|e| {
            let x = m.graph().vertex(e.vertex).unwrap();
            format!(
                "{}[{}:{}]",
                x.name,
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
