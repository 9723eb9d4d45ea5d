//! Hostile requests over a real socket: each gets a clear error naming the
//! field, bounded work on the graph owner, and the server keeps serving.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use phalanx_grpc::{
    Engine, Limits, Listener, OwnerBackend, ServerConfig, StandaloneEngine, serve_with_config,
};
use phalanx_proto::v1 as pb;
use phalanx_proto::v1::fluxion_client::FluxionClient;
use tonic::Code;
use tonic::transport::Channel;

fn add(node: pb::AddNode) -> pb::GraphUpdate {
    pb::GraphUpdate {
        update: Some(pb::graph_update::Update::AddNode(node)),
    }
}

fn node(name: &str, parent: &str) -> pb::AddNode {
    pb::AddNode {
        name: name.into(),
        parent: parent.into(),
        sockets: 1,
        cores_per_socket: 2,
        ..Default::default()
    }
}

async fn update(
    c: &mut FluxionClient<Channel>,
    updates: Vec<pb::GraphUpdate>,
) -> Result<pb::UpdateGraphResponse, tonic::Status> {
    c.update_graph(pb::UpdateGraphRequest { updates })
        .await
        .map(|r| r.into_inner())
}

async fn vertices(c: &mut FluxionClient<Channel>) -> u64 {
    c.stat(pb::StatRequest {})
        .await
        .unwrap()
        .into_inner()
        .vertices
}

#[tokio::test]
async fn update_graph_has_a_per_call_vertex_budget() {
    let server = TestServer::start(engine(&small_shape()), ServerConfig::default()).await;
    let mut c = server.client().await;
    let before = vertices(&mut c).await;
    // 100 nodes, each within the per-node limits: 33 million vertices.
    let huge: Vec<_> = (0..100)
        .map(|i| {
            add(pb::AddNode {
                name: format!("big{i}"),
                sockets: 64,
                cores_per_socket: 4096,
                gpus_per_socket: 1024,
                memory_per_socket: 1,
                ..Default::default()
            })
        })
        .collect();
    let err = update(&mut c, huge).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message().contains("updates[3].add_node") && err.message().contains("at most 1000000"),
        "{}",
        err.message()
    );
    // Refused before anything was built.
    assert_eq!(vertices(&mut c).await, before);
}

#[tokio::test]
async fn update_graph_has_a_total_vertex_budget() {
    let engine = engine(&small_shape()).with_max_vertices(70);
    let server = TestServer::start(engine, ServerConfig::default()).await;
    let mut c = server.client().await;
    // 63 vertices now; a 4-vertex node fits, a second one does not.
    update(&mut c, vec![add(node("n1", ""))]).await.unwrap();
    let err = update(&mut c, vec![add(node("n2", ""))]).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.message().contains("at most 70"), "{}", err.message());
    assert_eq!(vertices(&mut c).await, 67);
}

#[tokio::test]
async fn add_node_sizes_and_names_are_checked() {
    let server = TestServer::start(engine(&small_shape()), ServerConfig::default()).await;
    let mut c = server.client().await;
    let before = vertices(&mut c).await;
    let cases: Vec<(pb::AddNode, &str)> = vec![
        (
            pb::AddNode {
                memory_per_socket: u64::MAX,
                ..node("m", "")
            },
            "updates[0].add_node.memory_per_socket",
        ),
        (
            pb::AddNode {
                sockets: 65,
                ..node("s", "")
            },
            "updates[0].add_node.sockets",
        ),
        (node("a/b", ""), "updates[0].add_node.name"),
        (node("a\0b", ""), "updates[0].add_node.name"),
        (node("a\nb", ""), "updates[0].add_node.name"),
        (node(&"x".repeat(254), ""), "updates[0].add_node.name"),
        (node("under-core", "core0"), "updates[0].add_node.parent"),
        (node("under-node", "node1"), "updates[0].add_node.parent"),
        (
            node("under-socket", "socket0"),
            "updates[0].add_node.parent",
        ),
        (
            pb::AddNode {
                labels: [("zone".to_owned(), "a\nb".to_owned())].into(),
                ..node("l", "")
            },
            "updates[0].add_node.labels",
        ),
    ];
    for (n, field) in cases {
        let err = update(&mut c, vec![add(n.clone())]).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{n:?}: {err:?}");
        assert!(err.message().starts_with(field), "{n:?}: {}", err.message());
    }
    assert_eq!(vertices(&mut c).await, before);
}

#[tokio::test]
async fn the_largest_memory_pool_allowed_adds_up_right() {
    let server = TestServer::start(engine(&small_shape()), ServerConfig::default()).await;
    let mut c = server.client().await;
    let big = pb::AddNode {
        memory_per_socket: phalanx_grpc::MAX_MEMORY_PER_SOCKET,
        sockets: 64,
        ..node("fat", "")
    };
    update(&mut c, vec![add(big)]).await.unwrap();
    let res = c
        .resources(pb::ResourcesRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mem = res.totals.iter().find(|t| t.r#type == "memory").unwrap();
    assert_eq!(
        mem.total,
        4 * 2 * 16 + 64 * phalanx_grpc::MAX_MEMORY_PER_SOCKET
    );
    // A pod asking for a whole pool fits (the graph's unit is GB).
    let mut req = pods(1, 1000, 0);
    if let Some(pb::match_request::Request::Pods(g)) = &mut req.request {
        g.templates[0].memory_bytes = phalanx_grpc::MAX_MEMORY_PER_SOCKET << 30;
    }
    let resp = c.r#match(req).await.unwrap().into_inner();
    assert_eq!(resp.result, pb::MatchResult::Allocated as i32, "{resp:?}");
    assert_eq!(resp.pods[0].node, "fat");
}

#[tokio::test]
async fn big_or_deeply_nested_jobspecs_never_reach_the_owner() {
    let server = TestServer::start(engine(&small_shape()), ServerConfig::default()).await;
    let mut c = server.client().await;
    // 200 KB of nested flow sequences: refused by size.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let err = c
        .r#match(jobspec(&format!("version: 9999\nresources: {deep}\n")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.message().starts_with("jobspec: "), "{}", err.message());
    // Small but deep: refused by nesting.
    let deep = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
    let err = c
        .r#match(jobspec(&format!("version: 9999\nresources: {deep}\n")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("nested 1000 levels"),
        "{}",
        err.message()
    );
    // Brackets inside strings and comments do not count.
    let quoted = format!(
        "# {}\nversion: 9999\nname: \"{}\"\n",
        "[".repeat(100),
        "{".repeat(100)
    );
    let err = c.r#match(jobspec(&quoted)).await.unwrap_err();
    assert!(!err.message().contains("nested"), "{}", err.message());
    assert_eq!(vertices(&mut c).await, 63);
}

/// A real standalone engine whose matches of a group named "slow" hold the
/// owner thread, as a pathological request would.
struct SlowEngine(StandaloneEngine);

impl Engine for SlowEngine {
    fn match_group(
        &mut self,
        req: pb::MatchRequest,
    ) -> phalanx_grpc::BackendResult<pb::MatchResponse> {
        if req.name == "slow" {
            std::thread::sleep(Duration::from_millis(1500));
        }
        self.0.match_group(req)
    }
    fn cancel(
        &mut self,
        req: pb::CancelRequest,
    ) -> phalanx_grpc::BackendResult<pb::CancelResponse> {
        self.0.cancel(req)
    }
    fn update_graph(
        &mut self,
        req: pb::UpdateGraphRequest,
    ) -> phalanx_grpc::BackendResult<pb::UpdateGraphResponse> {
        self.0.update_graph(req)
    }
    fn info(&self, req: pb::InfoRequest) -> phalanx_grpc::BackendResult<pb::InfoResponse> {
        self.0.info(req)
    }
    fn stat(&self) -> phalanx_grpc::BackendResult<pb::StatResponse> {
        self.0.stat()
    }
    fn resources(
        &self,
        req: pb::ResourcesRequest,
    ) -> phalanx_grpc::BackendResult<pb::ResourcesResponse> {
        self.0.resources(req)
    }
    fn jobs(&self, req: pb::JobsRequest) -> phalanx_grpc::BackendResult<pb::JobsResponse> {
        self.0.jobs(req)
    }
    fn advance_clock(&mut self, now: i64) {
        self.0.advance_clock(now);
    }
}

#[tokio::test]
async fn health_is_not_serving_while_the_owner_is_stuck() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    let listener = Listener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr();
    let backend = Arc::new(OwnerBackend::spawn(SlowEngine(engine(&small_shape()))).unwrap());
    let config = ServerConfig {
        stall_after: Duration::from_millis(200),
        limits: Limits::default(),
        ..ServerConfig::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_with_config(listener, backend, config, async {
        let _ = stopped.await;
    }));
    let channel = phalanx_grpc::connect_channel(&addr, None).await.unwrap();
    let mut health = HealthClient::new(channel);
    let status = |h: &mut HealthClient<Channel>| {
        let mut h = h.clone();
        async move {
            h.check(tonic_health::pb::HealthCheckRequest {
                service: phalanx_proto::SERVICE_NAME.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status
        }
    };
    assert_eq!(status(&mut health).await, ServingStatus::Serving as i32);
    let mut c = phalanx_grpc::connect(&addr, None).await.unwrap();
    let slow = tokio::spawn(async move {
        let mut req = pods(1, 1000, 0);
        req.name = "slow".into();
        c.r#match(req).await.map(|r| r.into_inner().result)
    });
    // The watchdog notices within stall_after plus one ping period.
    let mut saw_not_serving = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if status(&mut health).await == ServingStatus::NotServing as i32 {
            saw_not_serving = true;
            break;
        }
    }
    assert!(
        saw_not_serving,
        "health stayed SERVING while the owner was stuck"
    );
    assert_eq!(
        slow.await.unwrap().unwrap(),
        pb::MatchResult::Allocated as i32
    );
    let mut back = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if status(&mut health).await == ServingStatus::Serving as i32 {
            back = true;
            break;
        }
    }
    assert!(back, "health did not return to SERVING");
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
