//! What the end-to-end test binaries share: the scheduler's settings for
//! tests (no leader election, ephemeral ports, short debounce and retry)
//! and starting it against a test API server.

use std::time::Duration;

use phalanx_kube::{RunArgs, SchedulerHandle, Settings};
use phalanx_tests::apiserver::ApiServer;
use phalanx_tests::fixtures::wait_for;

/// Settings for a scheduler under test: one replica, no gRPC, metrics on a
/// free port, passes 2 ms after a change and at least every 100 ms.
pub fn test_args() -> RunArgs {
    RunArgs {
        leader_elect: Some(false),
        metrics_addr: Some("127.0.0.1:0".parse().unwrap()),
        grpc_addr: Some("none".into()),
        debounce: Some(Duration::from_millis(2)),
        retry_interval: Some(Duration::from_millis(100)),
        ..Default::default()
    }
}

/// Starts the scheduler with `args` against `srv` and waits up to `wait`
/// for its caches to sync.
pub async fn start_scheduler(srv: &ApiServer, args: RunArgs, wait: Duration) -> SchedulerHandle {
    let settings = Settings::resolve(&args).unwrap();
    let handle = phalanx_kube::start(settings, Some(srv.client()))
        .await
        .unwrap();
    assert!(wait_for(wait, || handle.is_ready()).await, "caches synced");
    handle
}

/// The scheduler's writer on its own, leading and alive, with the metrics
/// it counts into: for tests of the writes without the core.
#[allow(dead_code)]
pub fn leading_writer(
    srv: &ApiServer,
    args: &RunArgs,
) -> (
    phalanx_kube::binder::Writer,
    std::sync::Arc<phalanx_kube::metrics::Metrics>,
) {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    let settings = Settings::resolve(args).unwrap();
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Arc::new(phalanx_kube::metrics::Metrics::new(&mut registry));
    // The sender may go: a closed channel keeps its last value, leading.
    let (_leader_tx, leader) = tokio::sync::watch::channel(true);
    let writer = phalanx_kube::binder::Writer::new(
        srv.client(),
        &settings,
        leader,
        Arc::new(AtomicBool::new(true)),
        metrics.clone(),
    );
    (writer, metrics)
}
