//! Property tests over the engine and the request checks (no sockets):
//! whatever a client sends, the answer is an error or a consistent graph.

mod common;

use common::*;
use phalanx_grpc::{Engine, Limits, add_node_vertices, validate_match};
use phalanx_proto::v1 as pb;
use proptest::prelude::*;

fn add_node() -> impl Strategy<Value = pb::AddNode> {
    let edge = |max: u32| {
        prop_oneof![
            Just(0u32),
            Just(max),
            Just(max + 1),
            Just(u32::MAX),
            0..=max
        ]
    };
    (
        "[a-z0-9/\\n\\x00-]{0,6}",
        prop_oneof![
            Just(String::new()),
            Just("rack0".to_owned()),
            Just("core0".to_owned()),
            Just("node1".to_owned()),
            Just("socket1".to_owned())
        ],
        edge(64),
        edge(4096),
        edge(1024),
        prop_oneof![
            Just(0u64),
            Just(1u64 << 32),
            Just((1u64 << 32) + 1),
            Just(u64::MAX),
            any::<u64>()
        ],
    )
        .prop_map(|(name, parent, sockets, cores, gpus, mem)| pb::AddNode {
            name,
            parent,
            sockets: sockets.min(8).max(sockets / 1000),
            cores_per_socket: cores,
            gpus_per_socket: gpus,
            memory_per_socket: mem,
            ..Default::default()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any batch of AddNodes: refused, or applied with the graph inside its
    /// vertex budget and every resource total exact (no wrap).
    #[test]
    fn add_node_batches_keep_the_graph_sound(nodes in prop::collection::vec(add_node(), 1..4)) {
        let budget = 20_000u64;
        let mut e = engine(&small_shape()).with_max_vertices(budget);
        let before = e.stat().unwrap().vertices;
        let updates: Vec<_> = nodes
            .iter()
            .map(|n| pb::GraphUpdate { update: Some(pb::graph_update::Update::AddNode(n.clone())) })
            .collect();
        let result = e.update_graph(pb::UpdateGraphRequest { updates });
        let after = e.stat().unwrap().vertices;
        prop_assert!(after <= budget.max(before));
        let res = e.resources(pb::ResourcesRequest::default()).unwrap();
        for t in &res.totals {
            let sum: u64 = res.nodes.iter().flat_map(|n| &n.resources).filter(|r| r.r#type == t.r#type).map(|r| r.total).sum();
            prop_assert_eq!(sum, t.total);
            prop_assert_eq!(t.total, t.free + t.allocated + t.down);
        }
        if result.is_ok() {
            let added: u64 = nodes.iter().map(|n| add_node_vertices(n).unwrap()).sum();
            prop_assert_eq!(after, before + added);
            for n in &nodes {
                prop_assert!(!n.name.contains('/') && !n.name.contains('\n') && !n.name.contains('\0'));
                prop_assert!(n.memory_per_socket <= phalanx_grpc::MAX_MEMORY_PER_SOCKET);
            }
        }
    }

    /// Any pod template: refused with a path, or answered; nothing is left
    /// allocated by an answer that is not ALLOCATED.
    #[test]
    fn any_pod_template_gets_an_answer(
        count in prop_oneof![Just(0u32), Just(u32::MAX), 0u32..40],
        cpu in prop_oneof![Just(0u64), Just(u64::MAX), 0u64..10_000],
        mem in prop_oneof![Just(0u64), Just(u64::MAX), 0u64..(40u64 << 30)],
        gpus in prop_oneof![Just(0u32), Just(u32::MAX), 0u32..4],
        ext in prop::collection::btree_map("node|socket|core|fpga|cluster|", 0u64..3, 0..2),
        templates in 1usize..4,
    ) {
        let t = pb::PodTemplate {
            count, cpu_millis: cpu, memory_bytes: mem, gpus,
            extended: ext.into_iter().collect(),
            ..Default::default()
        };
        let req = pb::MatchRequest {
            request: Some(pb::match_request::Request::Pods(pb::PodGroup { templates: vec![t; templates] })),
            ..Default::default()
        };
        let mut e = engine(&small_shape());
        if validate_match(&req, &Limits::default()).is_err() {
            return Ok(());
        }
        match e.match_group(req) {
            Err(err) => prop_assert!(matches!(err, phalanx_grpc::BackendError::InvalidArgument { .. }), "{err:?}"),
            Ok(resp) => {
                let jobs = e.jobs(pb::JobsRequest::default()).unwrap().jobs;
                if resp.result == pb::MatchResult::Allocated as i32 {
                    prop_assert_eq!(jobs.len(), 1);
                } else {
                    prop_assert!(jobs.is_empty(), "{resp:?}");
                    prop_assert!(resp.result != pb::MatchResult::Busy as i32, "nothing holds the graph, yet BUSY: {resp:?}");
                }
            }
        }
    }

    /// grpc-timeout values never panic and round-trip their unit.
    #[test]
    fn grpc_timeouts_never_panic(text in "\\PC{0,12}") {
        let _ = phalanx_grpc::parse_grpc_timeout(&text);
    }
}
