//! Liveness of `phalanx run` on the test API server: a burst of pending pods
//! larger than the gang core's per-pass cap (1,000 groups) is bound whole with
//! no further cluster event, the scenario of issue 21.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use phalanx_kube::{RunArgs, Settings};
use phalanx_tests::apiserver::ApiServer;
use phalanx_tests::fixtures::{node, overcommitted_nodes, pod};

async fn fetch(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

/// Polls `cond` every 100 ms until it holds or `timeout` passes.
async fn poll(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cond()
}

/// A plain pod (no group) asking for 100 millicores.
fn small_pod(name: &str) -> Pod {
    let mut p = pod("default", name, "phalanx", 1, &[]);
    if let Some(c) = p.spec.as_mut().and_then(|s| s.containers.first_mut())
        && let Some(req) = c.resources.as_mut().and_then(|r| r.requests.as_mut())
    {
        req.insert(
            "cpu".into(),
            k8s_openapi::apimachinery::pkg::api::resource::Quantity("100m".into()),
        );
        req.insert(
            "memory".into(),
            k8s_openapi::apimachinery::pkg::api::resource::Quantity("64Mi".into()),
        );
    }
    p
}

fn args() -> RunArgs {
    RunArgs {
        leader_elect: Some(false),
        metrics_addr: Some("127.0.0.1:0".parse().unwrap()),
        grpc_addr: Some("none".into()),
        ..Default::default()
    }
}

/// `nodes` nodes of 32 CPUs and `pods` plain pods, all created before the
/// scheduler starts; then nothing but the scheduler touches the cluster.
/// Returns the seconds from start to the last bind.
async fn burst_is_bound(nodes: usize, pods: usize, timeout: Duration) -> f64 {
    let srv = ApiServer::start().await.unwrap();
    for i in 0..nodes {
        srv.create(&node(&format!("n{i:04}"), 32, &[])).unwrap();
    }
    for i in 0..pods {
        srv.create(&small_pod(&format!("p{i:05}"))).unwrap();
    }
    let t0 = Instant::now();
    let settings = Settings::resolve(&args()).unwrap();
    let handle = phalanx_kube::start(settings, Some(srv.client()))
        .await
        .unwrap();
    // Polled every 100 ms: the count scans the store under its lock.
    let all = poll(timeout, || srv.count_bound_pods("p") == pods).await;
    let secs = t0.elapsed().as_secs_f64();
    let bound = srv.count_bound_pods("p");
    println!(
        "{pods} pending pods on {nodes} nodes: {bound} bound in {secs:.2}s ({:.0} pods/s), {} passes, {} bind requests",
        bound as f64 / secs,
        handle.passes(),
        srv.request_count("create", "pods/binding")
    );
    let metrics = fetch(handle.metrics_addr(), "/metrics").await;
    for line in metrics
        .lines()
        .filter(|l| l.contains("latency_seconds_sum") || l.contains("latency_seconds_count"))
    {
        println!("  {line}");
    }
    assert!(all, "only {bound} of {pods} pods bound");
    assert!(overcommitted_nodes(&srv).is_empty());
    assert_eq!(
        srv.request_count("create", "pods/binding"),
        pods as u64,
        "one bind per pod"
    );
    handle.shutdown().await;
    secs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_pending_pods_on_100_nodes_are_all_bound_without_an_external_event() {
    burst_is_bound(100, 2_000, Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "larger run; cargo test -p phalanx-tests --test scheduler_liveness -- --ignored --nocapture"]
async fn ten_thousand_pending_pods_on_100_nodes_are_all_bound_without_an_external_event() {
    burst_is_bound(100, 10_000, Duration::from_secs(300)).await;
}
