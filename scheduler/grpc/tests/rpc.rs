//! Every RPC against a real server on an ephemeral loopback port (and one on
//! a Unix socket), plus health and reflection.

mod common;

use common::*;
use phalanx_grpc::ServerConfig;
use phalanx_proto::v1 as pb;
use tokio_stream::StreamExt as _;
use tonic::Code;

#[tokio::test]
async fn health_reports_serving_then_not_serving_at_shutdown() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    let config = ServerConfig {
        drain_timeout: std::time::Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let mut server = TestServer::start(engine(&small_shape()), config).await;
    let channel = phalanx_grpc::connect_channel(&server.addr, None)
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    for service in ["", phalanx_proto::SERVICE_NAME] {
        let resp = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            resp.status,
            ServingStatus::Serving as i32,
            "service {service:?}"
        );
    }
    let unknown = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let mut watch = health
        .watch(tonic_health::pb::HealthCheckRequest {
            service: phalanx_proto::SERVICE_NAME.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.next().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);
    // The open watch sees NOT_SERVING at shutdown, and does not keep the
    // server from stopping (the drain timeout closes it).
    server.trigger_stop();
    let next = watch.next().await.unwrap().unwrap();
    assert_eq!(next.status, ServingStatus::NotServing as i32);
    tokio::time::timeout(std::time::Duration::from_secs(5), server.stop())
        .await
        .expect("server stops despite the open watch");
}

#[tokio::test]
async fn reflection_lists_the_fluxion_service() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let server = TestServer::start(engine(&small_shape()), ServerConfig::default()).await;
    let channel = phalanx_grpc::connect_channel(&server.addr, None)
        .await
        .unwrap();
    let mut client = ServerReflectionClient::new(channel);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter([req]))
        .await
        .unwrap()
        .into_inner();
    let resp = stream.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
        panic!("expected a service list, got {resp:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&phalanx_proto::SERVICE_NAME.to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_string()),
        "{names:?}"
    );
}

#[tokio::test]
async fn stat_and_resources_describe_the_graph() {
    let server = TestServer::start(engine(&small_shape()), ServerConfig::default()).await;
    let mut c = server.client().await;
    let stat = c.stat(pb::StatRequest {}).await.unwrap().into_inner();
    // cluster + 2 racks + 4 nodes + 8 sockets + 32 cores + 8 gpus + 8 memory
    assert_eq!(stat.vertices, 1 + 2 + 4 + 8 + 32 + 8 + 8);
    assert_eq!(stat.edges, stat.vertices - 1);
    let count = |t: &str| stat.by_type.iter().find(|c| c.r#type == t).map(|c| c.count);
    assert_eq!(count("core"), Some(32));
    assert_eq!(count("gpu"), Some(8));
    assert_eq!((stat.nodes_up, stat.nodes_down), (4, 0));
    assert_eq!((stat.jobs_allocated, stat.jobs_reserved), (0, 0));
    assert_eq!(stat.policy, "first");

    let res = c
        .resources(pb::ResourcesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(res.nodes.len(), 4);
    assert_eq!(res.nodes[0].name, "node0");
    assert_eq!(res.nodes[0].path, "/cluster0/rack0/node0");
    let total = |t: &str| res.totals.iter().find(|c| c.r#type == t).cloned().unwrap();
    assert_eq!(
        (
            total("core").total,
            total("core").free,
            total("core").allocated
        ),
        (32, 32, 0)
    );
    assert_eq!(total("memory").total, 4 * 2 * 16);

    // Filters: by node, by type, by state.
    let one = c
        .resources(pb::ResourcesRequest {
            nodes: vec!["node2".into()],
            types: vec!["gpu".into()],
            up: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one.nodes.len(), 1);
    assert_eq!(one.nodes[0].resources.len(), 1);
    assert_eq!(one.nodes[0].resources[0].total, 2);
    let down = c
        .resources(pb::ResourcesRequest {
            up: Some(false),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(down.nodes.is_empty());
    let missing = c
        .resources(pb::ResourcesRequest {
            nodes: vec!["node99".into()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
}

#[tokio::test]
async fn update_graph_adds_removes_and_marks_nodes() {
    let server = TestServer::start(engine(&small_shape()), ServerConfig::default()).await;
    let mut c = server.client().await;
    let add = pb::GraphUpdate {
        update: Some(pb::graph_update::Update::AddNode(pb::AddNode {
            name: "extra7".into(),
            parent: "rack1".into(),
            sockets: 1,
            cores_per_socket: 6,
            gpus_per_socket: 0,
            memory_per_socket: 8,
            ..Default::default()
        })),
    };
    let down = pb::GraphUpdate {
        update: Some(pb::graph_update::Update::SetState(pb::SetNodeState {
            node: "node1".into(),
            up: false,
        })),
    };
    let resp = c
        .update_graph(pb::UpdateGraphRequest {
            updates: vec![add.clone(), down],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.applied, 2);
    assert_eq!(resp.vertices, 63 + 1 + 1 + 6 + 1);

    let res = c
        .resources(pb::ResourcesRequest::default())
        .await
        .unwrap()
        .into_inner();
    let extra = res.nodes.iter().find(|n| n.name == "extra7").unwrap();
    assert_eq!(extra.path, "/cluster0/rack1/extra7");
    assert_eq!(
        extra
            .resources
            .iter()
            .find(|r| r.r#type == "core")
            .unwrap()
            .free,
        6
    );
    let node1 = res.nodes.iter().find(|n| n.name == "node1").unwrap();
    assert!(!node1.up);
    let core = |n: &pb::NodeResources| {
        n.resources
            .iter()
            .find(|r| r.r#type == "core")
            .cloned()
            .unwrap()
    };
    assert_eq!((core(node1).down, core(node1).free), (8, 0));
    let stat = c.stat(pb::StatRequest {}).await.unwrap().into_inner();
    assert_eq!((stat.nodes_up, stat.nodes_down), (4, 1));

    // Adding the same node twice fails and changes nothing.
    let dup = c
        .update_graph(pb::UpdateGraphRequest { updates: vec![add] })
        .await
        .unwrap_err();
    assert_eq!(dup.code(), Code::FailedPrecondition);
    let remove = pb::GraphUpdate {
        update: Some(pb::graph_update::Update::RemoveNode("extra7".into())),
    };
    let up = pb::GraphUpdate {
        update: Some(pb::graph_update::Update::SetState(pb::SetNodeState {
            node: "node1".into(),
            up: true,
        })),
    };
    c.update_graph(pb::UpdateGraphRequest {
        updates: vec![remove.clone(), up],
    })
    .await
    .unwrap();
    let stat = c.stat(pb::StatRequest {}).await.unwrap().into_inner();
    assert_eq!((stat.vertices, stat.nodes_up, stat.nodes_down), (63, 4, 0));
    let gone = c
        .update_graph(pb::UpdateGraphRequest {
            updates: vec![remove],
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    assert!(
        gone.message().contains("updates[0].remove_node"),
        "{}",
        gone.message()
    );
}

#[tokio::test]
async fn unknown_jobs_are_not_found() {
    let server = TestServer::start(engine(&small_shape()), ServerConfig::default()).await;
    let mut c = server.client().await;
    let info = c.info(pb::InfoRequest { job_id: 42 }).await.unwrap_err();
    assert_eq!(info.code(), Code::NotFound);
    let cancel = c
        .cancel(pb::CancelRequest {
            job_id: 42,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(cancel.code(), Code::NotFound);
    let zero = c.info(pb::InfoRequest { job_id: 0 }).await.unwrap_err();
    assert_eq!(zero.code(), Code::InvalidArgument);
    let jobs = c
        .jobs(pb::JobsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(jobs.jobs.is_empty());
}

#[tokio::test]
async fn malformed_requests_are_rejected_with_paths() {
    let server = TestServer::start(engine(&small_shape()), ServerConfig::default()).await;
    let mut c = server.client().await;
    let cases: Vec<(pb::MatchRequest, Code, &str)> = vec![
        (
            pb::MatchRequest::default(),
            Code::InvalidArgument,
            "request",
        ),
        (jobspec("   "), Code::InvalidArgument, "jobspec"),
        (
            pb::MatchRequest {
                operation: 99,
                ..pods(1, 1000, 0)
            },
            Code::InvalidArgument,
            "operation",
        ),
        (
            pb::MatchRequest {
                policy: "fastest".into(),
                ..pods(1, 1000, 0)
            },
            Code::InvalidArgument,
            "policy",
        ),
        (pods(1, 0, 0), Code::InvalidArgument, "pods.templates[0]"),
        (
            pods(200_000, 1000, 0),
            Code::ResourceExhausted,
            "pods.templates[0].count",
        ),
        (
            pb::MatchRequest {
                request: Some(pb::match_request::Request::Pods(pb::PodGroup {
                    templates: vec![],
                })),
                ..Default::default()
            },
            Code::InvalidArgument,
            "pods.templates",
        ),
    ];
    for (req, code, path) in cases {
        let err = c.r#match(req.clone()).await.unwrap_err();
        assert_eq!(err.code(), code, "{req:?}: {err:?}");
        assert!(err.message().starts_with(path), "{path}: {}", err.message());
    }
    let bad_state = c
        .jobs(pb::JobsRequest {
            states: vec![17],
            limit: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(bad_state.code(), Code::InvalidArgument);
    let empty_update = c
        .update_graph(pb::UpdateGraphRequest {
            updates: vec![pb::GraphUpdate { update: None }],
        })
        .await
        .unwrap_err();
    assert_eq!(empty_update.code(), Code::InvalidArgument);
    assert!(empty_update.message().starts_with("updates[0]"));
    // The server is still fine.
    c.stat(pb::StatRequest {}).await.unwrap();
}

#[tokio::test]
async fn oversized_requests_are_resource_exhausted() {
    let config = ServerConfig {
        max_request_bytes: 1024,
        ..ServerConfig::default()
    };
    let server = TestServer::start(engine(&small_shape()), config).await;
    let mut c = server.client().await;
    let huge = jobspec(&"x".repeat(4096));
    let err = c.r#match(huge).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    // Small requests on the same connection still work.
    c.stat(pb::StatRequest {}).await.unwrap();
}

#[tokio::test]
async fn garbage_bytes_do_not_hurt_the_server() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start(engine(&small_shape()), ServerConfig::default()).await;
    for junk in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\xff\xff\xff",
        &[0u8; 64],
    ] {
        let mut s = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
        let _ = s.write_all(junk).await;
        let mut buf = [0u8; 256];
        let _ = tokio::time::timeout(std::time::Duration::from_millis(200), s.read(&mut buf)).await;
    }
    let mut c = server.client().await;
    c.stat(pb::StatRequest {}).await.unwrap();
}

#[tokio::test]
async fn serves_on_a_unix_socket() {
    let server = TestServer::start_unix(engine(&small_shape())).await;
    assert!(server.addr.starts_with("unix:"));
    let mut c = server.client().await;
    let stat = c.stat(pb::StatRequest {}).await.unwrap().into_inner();
    assert_eq!(stat.nodes_up, 4);
    let path = server.addr.trim_start_matches("unix:").to_owned();
    server.stop().await;
    assert!(
        !std::path::Path::new(&path).exists(),
        "socket file removed at shutdown"
    );
}
