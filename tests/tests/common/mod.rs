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
