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
        err.message().contains("nest deeper than the limit"),
        "{}",
        err.message()
    );
    // Closing brackets inside strings and comments do not hide depth, and
    // balanced brackets in them are no nesting problem.
    let hidden = format!("version: 9999\nresources: [{}\n", "[ \"]]\", ".repeat(70));
    let err = c.r#match(jobspec(&hidden)).await.unwrap_err();
    assert!(err.message().contains("nest deeper"), "{}", err.message());
    let quoted = "# a ]] note\nversion: 9999\nname: \"a [b] c\"\n";
    let err = c.r#match(jobspec(quoted)).await.unwrap_err();
    assert!(!err.message().contains("nest deeper"), "{}", err.message());
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
    // The service and the server as a whole agree.
    let status = |h: &mut HealthClient<Channel>| {
        let mut h = h.clone();
        async move {
            let mut seen = Vec::new();
            for service in [phalanx_proto::SERVICE_NAME, ""] {
                let s = h
                    .check(tonic_health::pb::HealthCheckRequest {
                        service: service.into(),
                    })
                    .await
                    .unwrap()
                    .into_inner()
                    .status;
                seen.push(s);
            }
            if seen[0] == seen[1] { seen[0] } else { -1 }
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

/// Matches with a 5 ms deadline, many of which expire queued or being
/// matched: every job a client was told of is kept, and (but for the few a
/// client gave up on while the answer was on the way) nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matches_no_client_saw_are_not_kept() {
    let shape = fluxion_core::generate::ClusterShape {
        nodes: 100,
        nodes_per_rack: 10,
        sockets: 2,
        cores_per_socket: 8,
        gpus_per_socket: 0,
        memory_gib_per_socket: 1,
        per_node_ids: false,
    };
    let server = TestServer::start(engine(&shape), ServerConfig::default()).await;
    let mut tasks = Vec::new();
    for _ in 0..24 {
        let mut c = server.client().await;
        tasks.push(tokio::spawn(async move {
            let (mut told, mut failed) = (Vec::new(), 0u32);
            for _ in 0..60u64 {
                let mut req = tonic::Request::new(pods(1, 1000, 0));
                req.set_timeout(Duration::from_millis(5));
                let result = c.r#match(req).await.map(|r| r.into_inner());
                match result {
                    Ok(r) if r.result == pb::MatchResult::Allocated as i32 => told.push(r.job_id),
                    Ok(_) => {}
                    Err(_) => failed += 1,
                }
            }
            (told, failed)
        }));
    }
    let mut told = std::collections::BTreeSet::new();
    let mut failed = 0;
    for t in tasks {
        let (ids, f) = t.await.unwrap();
        told.extend(ids);
        failed += f;
    }
    // Roll-backs are queued writes: one more write behind them, then read.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut c = server.client().await;
    let _ = c
        .cancel(pb::CancelRequest {
            job_id: u64::MAX,
            ..Default::default()
        })
        .await;
    let jobs = c
        .jobs(pb::JobsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .jobs;
    let kept: std::collections::BTreeSet<u64> = jobs.iter().map(|j| j.job_id).collect();
    let extra = kept.difference(&told).count();
    eprintln!(
        "{} told, {failed} failed at the client, {} kept, {extra} kept untold",
        told.len(),
        kept.len()
    );
    assert!(told.is_subset(&kept), "a job a client was told of is gone");
    assert_eq!(allocated(&mut c, "core").await, kept.len() as u64);
}

/// A match that reaches the owner in time but finishes after its deadline
/// is rolled back: the client hears DEADLINE_EXCEEDED and nothing is held.
#[tokio::test]
async fn a_match_finished_after_its_deadline_is_rolled_back() {
    let listener = Listener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr();
    let backend = Arc::new(OwnerBackend::spawn(SlowEngine(engine(&small_shape()))).unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_with_config(
        listener,
        backend,
        ServerConfig::default(),
        async {
            let _ = stopped.await;
        },
    ));
    let mut c = phalanx_grpc::connect(&addr, None).await.unwrap();
    let mut req = pods(1, 1000, 0);
    req.name = "slow".into();
    let mut req = tonic::Request::new(req);
    req.set_timeout(Duration::from_millis(800));
    let err = c.r#match(req).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    // Behind the roll-back in the write queue.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let _ = c
        .cancel(pb::CancelRequest {
            job_id: u64::MAX,
            ..Default::default()
        })
        .await;
    let jobs = c
        .jobs(pb::JobsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(jobs.jobs.is_empty(), "{jobs:?}");
    assert_eq!(allocated(&mut c, "core").await, 0);
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

/// Calls whose deadline passes, or whose client hangs up, while they wait
/// behind a long request: none of them is ever matched.
#[tokio::test]
async fn matches_queued_past_their_deadline_are_never_made() {
    let listener = Listener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr();
    let backend = Arc::new(OwnerBackend::spawn(SlowEngine(engine(&small_shape()))).unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_with_config(
        listener,
        backend,
        ServerConfig::default(),
        async {
            let _ = stopped.await;
        },
    ));
    let mut c = phalanx_grpc::connect(&addr, None).await.unwrap();
    let mut slow_client = c.clone();
    let slow = tokio::spawn(async move {
        let mut req = pods(1, 1000, 0);
        req.name = "slow".into();
        slow_client.r#match(req).await.map(|r| r.into_inner())
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut waiting = Vec::new();
    for i in 0..20 {
        let mut c = c.clone();
        waiting.push(tokio::spawn(async move {
            if i % 2 == 0 {
                let mut req = tonic::Request::new(pods(1, 1000, 0));
                req.set_timeout(Duration::from_millis(300));
                c.r#match(req).await.map(|_| ()).map_err(|e| e.code())
            } else {
                tokio::time::timeout(Duration::from_millis(300), c.r#match(pods(1, 1000, 0)))
                    .await
                    .map(|_| ())
                    .map_err(|_| Code::Cancelled)
            }
        }));
    }
    for w in waiting {
        let code = w.await.unwrap().unwrap_err();
        assert!(
            matches!(code, Code::DeadlineExceeded | Code::Cancelled),
            "{code:?}"
        );
    }
    let slow = slow.await.unwrap().unwrap();
    assert_eq!(slow.result, pb::MatchResult::Allocated as i32);
    // One more write queued behind anything left, then read.
    let _ = c
        .cancel(pb::CancelRequest {
            job_id: u64::MAX,
            ..Default::default()
        })
        .await;
    let jobs = c
        .jobs(pb::JobsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .jobs;
    let ids: Vec<u64> = jobs.iter().map(|j| j.job_id).collect();
    assert_eq!(ids, vec![slow.job_id]);
    assert_eq!(allocated(&mut c, "core").await, 1);
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

fn template(name: &str) -> pb::PodTemplate {
    pb::PodTemplate {
        name: name.into(),
        count: 1,
        cpu_millis: 1000,
        ..Default::default()
    }
}

fn group(templates: Vec<pb::PodTemplate>) -> pb::MatchRequest {
    pb::MatchRequest {
        request: Some(pb::match_request::Request::Pods(pb::PodGroup { templates })),
        ..Default::default()
    }
}

#[tokio::test]
async fn structural_types_are_not_extended_resources() {
    let server = TestServer::start(engine(&small_shape()), ServerConfig::default()).await;
    let mut c = server.client().await;
    for kind in ["node", "socket", "core", "rack", "cluster", "memory", "gpu"] {
        let mut t = template("w");
        t.extended.insert(kind.into(), 1);
        let err = c.r#match(group(vec![t])).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{kind}");
        assert!(
            err.message()
                .starts_with(&format!("pods.templates[0].extended[{kind:?}]")),
            "{kind}: {}",
            err.message()
        );
    }
    assert_eq!(allocated(&mut c, "core").await, 0);
    // The engine itself refuses any type that is a container in its graph.
    let mut e = engine(&small_shape());
    let mut t = template("w");
    t.extended.insert("cluster".into(), 1);
    let err = e.match_group(group(vec![t])).unwrap_err();
    assert!(
        matches!(&err, phalanx_grpc::BackendError::InvalidArgument { path, .. }
            if path == "pods.templates[0].extended[\"cluster\"]"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_jobspec_without_a_slot_is_refused() {
    let server = TestServer::start(engine(&small_shape()), ServerConfig::default()).await;
    let mut c = server.client().await;
    let text = "version: 9999\nresources:\n  - type: node\n    count: 1\n    with:\n      - type: core\n        count: 1\ntasks:\n  - command: [app]\n    slot: default\n    count: {per_slot: 1}\n";
    for _ in 0..3 {
        let err = c.r#match(jobspec(text)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(
            err.message().starts_with("jobspec") && err.message().contains("slot"),
            "{}",
            err.message()
        );
    }
    assert_eq!(allocated(&mut c, "core").await, 0);
}

#[tokio::test]
async fn groups_that_can_never_fit_are_unsatisfiable_not_busy() {
    let server = TestServer::start(engine(&small_shape()), ServerConfig::default()).await;
    let mut c = server.client().await;
    // 100,000 one-core templates on a 32-core graph.
    let templates: Vec<_> = (0..100_000).map(|i| template(&format!("t{i}"))).collect();
    let resp = c.r#match(group(templates)).await.unwrap().into_inner();
    assert_eq!(
        resp.result,
        pb::MatchResult::Unsatisfiable as i32,
        "{resp:?}"
    );
    assert!(
        resp.reason
            .contains("need 33 core in all; the whole graph has 32"),
        "{}",
        resp.reason
    );
    // Three templates of three 3-core pods: 27 of 32 cores, and each
    // template fits alone, but only one such pod fits a 4-core socket and
    // there are 8 sockets: never, not BUSY.
    let mut t = template("w");
    t.count = 3;
    t.cpu_millis = 3000;
    let resp = c
        .r#match(group(vec![t.clone(), t.clone(), t]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        resp.result,
        pb::MatchResult::Unsatisfiable as i32,
        "{resp:?}"
    );
    assert!(
        resp.reason.contains("never fit this graph together"),
        "{}",
        resp.reason
    );
    assert_eq!(allocated(&mut c, "core").await, 0);
    // 32 of them fit, and a 33rd is busy while those are held.
    let fit: Vec<_> = (0..32).map(|i| template(&format!("t{i}"))).collect();
    let resp = c.r#match(group(fit)).await.unwrap().into_inner();
    assert_eq!(resp.result, pb::MatchResult::Allocated as i32);
    let resp = c
        .r#match(group(vec![template("late")]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.result, pb::MatchResult::Busy as i32, "{resp:?}");
}

/// Requests that name many nodes or pods cost one lookup per name, not a
/// scan of the graph per name (which kept the owner for minutes).
#[tokio::test]
async fn many_names_in_one_request_are_cheap() {
    let shape = fluxion_core::generate::ClusterShape {
        nodes: 5000,
        nodes_per_rack: 100,
        sockets: 1,
        cores_per_socket: 1,
        gpus_per_socket: 0,
        memory_gib_per_socket: 0,
        per_node_ids: false,
    };
    let server = TestServer::start(engine(&shape), ServerConfig::default()).await;
    let mut c = server.client().await;
    let guard = Duration::from_secs(60);
    let names = vec!["node4999".to_owned(); 250_000];
    let res = tokio::time::timeout(
        guard,
        c.resources(pb::ResourcesRequest {
            nodes: names.clone(),
            ..Default::default()
        }),
    )
    .await
    .expect("Resources with 250,000 names took over a minute")
    .unwrap()
    .into_inner();
    assert_eq!(res.nodes.len(), 1);
    assert_eq!(res.nodes[0].name, "node4999");
    let job = c.r#match(pods(2, 1000, 0)).await.unwrap().into_inner();
    assert_eq!(job.result, pb::MatchResult::Allocated as i32);
    let mut pods: Vec<u32> = vec![0; 400_000];
    pods.push(7);
    let err = tokio::time::timeout(
        guard,
        c.cancel(pb::CancelRequest {
            job_id: job.job_id,
            pods,
            nodes: names[..1000].to_vec(),
        }),
    )
    .await
    .expect("Cancel with 400,000 pods took over a minute")
    .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().starts_with("pods[400000]: job"),
        "{}",
        err.message()
    );
    let updates: Vec<_> = (0..10_000)
        .map(|i| {
            add(pb::AddNode {
                parent: "rack3".into(),
                ..node(&format!("extra{i}"), "")
            })
        })
        .collect();
    let resp = tokio::time::timeout(guard, update(&mut c, updates))
        .await
        .expect("10,000 AddNodes took over a minute")
        .unwrap();
    assert_eq!(resp.applied, 10_000);
}
