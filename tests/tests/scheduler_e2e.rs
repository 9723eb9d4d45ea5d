//! The scheduler's library entry point against the test API server, through the real kube client.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use phalanx_kube::{PodGroup, RunArgs, SchedulerHandle, Settings};
use phalanx_tests::apiserver::ApiServer;
use phalanx_tests::fixtures::{bound_pods, event_reasons, node, overcommitted_nodes, pod, podgroup_json, wait_for};
use serde_json::json;

const NS: &str = "default";
const WAIT: Duration = Duration::from_secs(10);

fn args() -> RunArgs {
    RunArgs {
        leader_elect: Some(false),
        metrics_addr: Some("127.0.0.1:0".parse().unwrap()),
        grpc_addr: Some("none".into()),
        debounce: Some(Duration::from_millis(2)),
        retry_interval: Some(Duration::from_millis(100)),
        lease_namespace: Some("kube-system".into()),
        lease_duration: Some(Duration::from_millis(1000)),
        renew_deadline: Some(Duration::from_millis(600)),
        retry_period: Some(Duration::from_millis(100)),
        ..Default::default()
    }
}

async fn start(srv: &ApiServer, args: RunArgs) -> SchedulerHandle {
    let settings = Settings::resolve(&args).unwrap();
    let handle = phalanx_kube::start(settings, Some(srv.client())).await.unwrap();
    assert!(wait_for(WAIT, || handle.is_ready()).await, "caches synced");
    handle
}

fn add_nodes(srv: &ApiServer, prefix: &str, n: usize, cpus: u32) {
    for i in 0..n {
        srv.create(&node(&format!("{prefix}{i}"), cpus, &[("topology.kubernetes.io/zone", "z1")])).unwrap();
    }
}

fn add_gang(srv: &ApiServer, group: &str, size: usize, cpus: u32) {
    let mut pg = PodGroup::new(group, phalanx_kube::PodGroupSpec { min_member: Some(size as i32), ..Default::default() });
    pg.metadata.namespace = Some(NS.into());
    srv.create(&pg).unwrap();
    for i in 0..size {
        srv.create(&pod(NS, &format!("{group}-{i}"), "phalanx", cpus, &[("scheduling.x-k8s.io/pod-group", group)])).unwrap();
    }
}

fn delete_gang(srv: &ApiServer, group: &str, size: usize) {
    for i in 0..size {
        srv.delete::<Pod>(NS, &format!("{group}-{i}")).unwrap();
    }
    srv.delete::<PodGroup>(NS, group).unwrap();
}

#[tokio::test]
async fn gang_of_16_on_8_nodes_binds_whole() {
    let srv = ApiServer::start().await.unwrap();
    add_nodes(&srv, "n", 8, 4);
    let sched = start(&srv, args()).await;
    add_gang(&srv, "mpi", 16, 2);
    assert!(wait_for(WAIT, || bound_pods(&srv, "mpi-").len() == 16).await, "bound: {:?}", bound_pods(&srv, "mpi-"));
    assert!(overcommitted_nodes(&srv).is_empty(), "{:?}", overcommitted_nodes(&srv));
    assert_eq!(srv.request_count("create", "pods/binding"), 16, "one bind per pod");
    assert!(
        wait_for(WAIT, || event_reasons(&srv, "mpi-").iter().filter(|(r, _)| r == "Scheduled").count() == 16).await,
        "a Scheduled event per pod: {:?}",
        event_reasons(&srv, "mpi-")
    );
    assert!(
        wait_for(WAIT, || srv.get::<PodGroup>(NS, "mpi").and_then(|g| g.status).and_then(|s| s.scheduled) == Some(16)).await,
        "PodGroup status: {:?}",
        srv.get::<PodGroup>(NS, "mpi").and_then(|g| g.status)
    );
    sched.shutdown().await;
}

#[tokio::test]
async fn second_gang_waits_then_binds_when_first_leaves() {
    let srv = ApiServer::start().await.unwrap();
    add_nodes(&srv, "n", 4, 4);
    let sched = start(&srv, args()).await;
    add_gang(&srv, "a", 8, 2);
    assert!(wait_for(WAIT, || bound_pods(&srv, "a-").len() == 8).await);
    add_gang(&srv, "b", 8, 2);
    assert!(
        wait_for(WAIT, || event_reasons(&srv, "b-").iter().any(|(r, _)| r == "FailedScheduling")).await,
        "b waits with a reason: {:?}",
        event_reasons(&srv, "b-")
    );
    assert!(bound_pods(&srv, "b-").is_empty(), "no partial gang: {:?}", bound_pods(&srv, "b-"));
    delete_gang(&srv, "a", 8);
    assert!(wait_for(WAIT, || bound_pods(&srv, "b-").len() == 8).await, "b binds: {:?}", bound_pods(&srv, "b-"));
    assert!(overcommitted_nodes(&srv).is_empty());
    sched.shutdown().await;
}

#[tokio::test]
async fn conflict_in_the_middle_of_a_gang_is_retried() {
    let srv = ApiServer::start().await.unwrap();
    add_nodes(&srv, "n", 4, 4);
    let sched = start(&srv, args()).await;
    srv.inject_bind_error(NS, "g-3", 409);
    add_gang(&srv, "g", 8, 2);
    assert!(wait_for(WAIT, || bound_pods(&srv, "g-").len() == 8).await, "bound: {:?}", bound_pods(&srv, "g-"));
    assert!(srv.request_count("create", "pods/binding") >= 9, "the conflicting bind was retried");
    assert!(overcommitted_nodes(&srv).is_empty());
    sched.shutdown().await;
}

#[tokio::test]
async fn killed_and_restarted_scheduler_double_books_nothing() {
    let srv = ApiServer::start().await.unwrap();
    add_nodes(&srv, "n", 6, 4);
    let first = start(&srv, args()).await;
    for g in ["a", "b", "c", "d"] {
        add_gang(&srv, g, 4, 2);
    }
    // Kill while binds are in flight.
    assert!(wait_for(WAIT, || srv.request_count("create", "pods/binding") >= 2).await);
    first.kill();
    let bound_before = bound_pods(&srv, "").len();
    let second = start(&srv, args()).await;
    for g in ["e", "f"] {
        add_gang(&srv, g, 4, 2);
    }
    // 6 nodes x 4 CPUs hold 12 two-CPU pods: three of the six gangs.
    assert!(wait_for(WAIT, || bound_pods(&srv, "").len() == 12).await, "bound: {:?}", bound_pods(&srv, ""));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(overcommitted_nodes(&srv).is_empty(), "{:?}", overcommitted_nodes(&srv));
    for g in ["a", "b", "c", "d", "e", "f"] {
        let n = bound_pods(&srv, &format!("{g}-")).len();
        assert!(n == 0 || n == 4, "gang {g} is partly bound ({n} of 4); {bound_before} were bound at the kill");
    }
    second.shutdown().await;
}

#[tokio::test]
async fn removed_node_is_not_used() {
    let srv = ApiServer::start().await.unwrap();
    add_nodes(&srv, "n", 4, 4);
    let sched = start(&srv, args()).await;
    srv.delete::<Node>("", "n3").unwrap();
    add_gang(&srv, "g", 4, 4);
    assert!(wait_for(WAIT, || event_reasons(&srv, "g-").iter().any(|(r, _)| r == "FailedScheduling")).await);
    assert!(bound_pods(&srv, "g-").is_empty());
    srv.create(&node("n4", 4, &[])).unwrap();
    assert!(wait_for(WAIT, || bound_pods(&srv, "g-").len() == 4).await, "bound: {:?}", bound_pods(&srv, "g-"));
    assert!(bound_pods(&srv, "g-").values().all(|n| n != "n3"));
    sched.shutdown().await;
}

#[tokio::test]
async fn other_schedulers_pods_hold_capacity() {
    let srv = ApiServer::start().await.unwrap();
    add_nodes(&srv, "n", 2, 4);
    srv.create(&pod(NS, "web", "default-scheduler", 4, &[])).unwrap();
    srv.bind(NS, "web", "n0").unwrap();
    srv.set_pod_phase(NS, "web", "Running").unwrap();
    let sched = start(&srv, args()).await;
    srv.create(&pod(NS, "solo", "phalanx", 4, &[])).unwrap();
    assert!(wait_for(WAIT, || bound_pods(&srv, "solo").get("solo").map(String::as_str) == Some("n1")).await);
    add_gang(&srv, "g", 2, 2);
    assert!(wait_for(WAIT, || event_reasons(&srv, "g-").iter().any(|(r, _)| r == "FailedScheduling")).await);
    assert!(bound_pods(&srv, "g-").is_empty());
    srv.delete::<Pod>(NS, "web").unwrap();
    assert!(wait_for(WAIT, || bound_pods(&srv, "g-").len() == 2).await);
    assert!(bound_pods(&srv, "g-").values().all(|n| n == "n0"));
    sched.shutdown().await;
}

#[tokio::test]
async fn two_replicas_elect_one_leader_and_fail_over() {
    let srv = ApiServer::start().await.unwrap();
    add_nodes(&srv, "n", 4, 4);
    let elect = || RunArgs { leader_elect: Some(true), ..args() };
    let a = start(&srv, RunArgs { identity: Some("a".into()), ..elect() }).await;
    let b = start(&srv, RunArgs { identity: Some("b".into()), ..elect() }).await;
    assert!(wait_for(WAIT, || a.is_leader() || b.is_leader()).await);
    assert!(!(a.is_leader() && b.is_leader()), "one leader");
    add_gang(&srv, "g", 4, 2);
    assert!(wait_for(WAIT, || bound_pods(&srv, "g-").len() == 4).await);
    assert_eq!(srv.request_count("create", "pods/binding"), 4, "only the leader binds");
    let (leader, follower) = if a.is_leader() { (a, b) } else { (b, a) };
    leader.kill();
    assert!(wait_for(WAIT, || follower.is_leader()).await, "the follower takes over after the lease expires");
    add_gang(&srv, "h", 4, 2);
    assert!(wait_for(WAIT, || bound_pods(&srv, "h-").len() == 4).await);
    assert!(overcommitted_nodes(&srv).is_empty());
    follower.shutdown().await;
}

#[tokio::test]
async fn malformed_podgroup_gets_an_event_and_others_go_on() {
    let srv = ApiServer::start().await.unwrap();
    add_nodes(&srv, "n", 2, 4);
    let sched = start(&srv, args()).await;
    srv.create_json("scheduling.x-k8s.io", "v1alpha1", "podgroups", NS, podgroup_json(NS, "bad", json!({"minMember": "four"})))
        .unwrap();
    for i in 0..2 {
        srv.create(&pod(NS, &format!("bad-{i}"), "phalanx", 1, &[("scheduling.x-k8s.io/pod-group", "bad")])).unwrap();
    }
    add_gang(&srv, "good", 2, 2);
    assert!(wait_for(WAIT, || bound_pods(&srv, "good-").len() == 2).await);
    assert!(
        wait_for(WAIT, || event_reasons(&srv, "bad").iter().any(|(r, m)| r == "InvalidPodGroup" && m.contains("minMember"))).await,
        "{:?}",
        event_reasons(&srv, "bad")
    );
    assert!(bound_pods(&srv, "bad-").is_empty());
    assert!(sched.is_ready());
    sched.shutdown().await;
}

#[tokio::test]
async fn metrics_and_health_are_served() {
    let srv = ApiServer::start().await.unwrap();
    add_nodes(&srv, "n", 2, 4);
    let sched = start(&srv, args()).await;
    add_gang(&srv, "g", 2, 2);
    assert!(wait_for(WAIT, || bound_pods(&srv, "g-").len() == 2).await);
    let addr = sched.metrics_addr();
    let get = |path: &'static str| async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    };
    assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
    assert!(get("/readyz").await.starts_with("HTTP/1.1 200"));
    let m = get("/metrics").await;
    assert!(m.contains("phalanx_binds_total 2"), "{m}");
    assert!(m.contains("phalanx_graph_nodes 2"), "{m}");
    assert!(m.contains("phalanx_leader 1"), "{m}");
    sched.shutdown().await;
}

#[tokio::test]
async fn every_request_is_covered_by_the_rbac_list() {
    let srv = ApiServer::start().await.unwrap();
    add_nodes(&srv, "n", 2, 4);
    let sched = start(&srv, RunArgs { leader_elect: Some(true), identity: Some("x".into()), ..args() }).await;
    add_gang(&srv, "g", 2, 2);
    assert!(wait_for(WAIT, || bound_pods(&srv, "g-").len() == 2).await);
    sched.shutdown().await;
    for (key, _) in srv.request_counts_by_group() {
        let (group, resource, verb) = key;
        assert!(phalanx_kube::rbac::allows(&group, &resource, &verb), "RBAC_RULES lack {verb} {group}/{resource}");
    }
}
