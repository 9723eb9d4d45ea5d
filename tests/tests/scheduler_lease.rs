//! Leader election under full bind load: binds are slowed down on the test
//! API server so every bind slot stays busy for seconds, while the Lease
//! (short timings) must be renewed all along. The election has a client and
//! a thread of its own, so the leader must never lose the Lease.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use phalanx_kube::{RunArgs, Settings};
use phalanx_tests::apiserver::ApiServer;
use phalanx_tests::fixtures::{node, overcommitted_nodes, pod, wait_for};

fn small_pod(name: &str) -> Pod {
    let mut p = pod("default", name, "phalanx", 1, &[]);
    if let Some(c) = p.spec.as_mut().and_then(|s| s.containers.first_mut())
        && let Some(req) = c.resources.as_mut().and_then(|r| r.requests.as_mut())
    {
        req.insert(
            "cpu".into(),
            k8s_openapi::apimachinery::pkg::api::resource::Quantity("100m".into()),
        );
    }
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_is_renewed_while_binds_saturate_every_slot() {
    const PODS: usize = 1_200;
    const SLOTS: usize = 64;
    let bind_delay = Duration::from_millis(250);
    let srv = ApiServer::start().await.unwrap();
    for i in 0..40 {
        srv.create(&node(&format!("n{i:02}"), 32, &[])).unwrap();
    }
    for i in 0..PODS {
        srv.create(&small_pod(&format!("p{i:05}"))).unwrap();
    }
    // Every bind waits on the server: 64 slots of 250 ms are at most 256
    // binds a second, so the binder stays saturated for about 4.7 s.
    srv.set_delay("create", "pods/binding", bind_delay);
    let args = RunArgs {
        leader_elect: Some(true),
        metrics_addr: Some("127.0.0.1:0".parse().unwrap()),
        grpc_addr: Some("none".into()),
        lease_namespace: Some("kube-system".into()),
        lease_duration: Some(Duration::from_millis(1500)),
        renew_deadline: Some(Duration::from_millis(1000)),
        retry_period: Some(Duration::from_millis(200)),
        bind_concurrency: Some(SLOTS),
        ..Default::default()
    };
    let settings = Settings::resolve(&args).unwrap();
    let lease_config = kube::Config::new(srv.url().parse().unwrap());
    let sched = phalanx_kube::start_with_lease_config(settings, srv.client(), lease_config)
        .await
        .unwrap();
    assert!(
        wait_for(Duration::from_secs(10), || sched.is_leader()).await,
        "never became leader"
    );
    let t0 = Instant::now();
    let renewals0 = srv.request_count("update", "leases");
    // Leadership is sampled every 5 ms while the binds run (the bound count,
    // which scans the store, only every 100 ms).
    let mut lost_at = None;
    let mut tick = 0u32;
    let done = loop {
        if !sched.is_leader() && lost_at.is_none() {
            lost_at = Some(t0.elapsed());
        }
        tick += 1;
        if tick.is_multiple_of(20) && srv.count_bound_pods("p") == PODS {
            break true;
        }
        if t0.elapsed() > Duration::from_secs(60) {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let secs = t0.elapsed().as_secs_f64();
    let renewals = srv.request_count("update", "leases") - renewals0;
    println!(
        "{PODS} binds at {} ms each through {SLOTS} slots: {secs:.2}s, {renewals} lease renewals, leader lost at {lost_at:?}",
        bind_delay.as_millis()
    );
    assert!(done, "only {} bound", srv.count_bound_pods("p"));
    assert_eq!(lost_at, None, "the leader lost its lease under bind load");
    // The binds took at least as long as the slots allow: they were the bottleneck.
    assert!(secs >= (PODS / SLOTS) as f64 * bind_delay.as_secs_f64());
    // One renewal per retry period (200 ms) while binding, give or take.
    assert!(
        renewals as f64 >= secs / 0.2 * 0.5,
        "{renewals} renewals in {secs:.2}s"
    );
    let lease = srv.get::<Lease>("kube-system", "phalanx").unwrap();
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some(sched.identity()));
    assert_eq!(spec.lease_transitions, Some(0), "the lease changed hands");
    assert_eq!(
        srv.request_count("create", "pods/binding"),
        PODS as u64,
        "one bind per pod"
    );
    assert!(overcommitted_nodes(&srv).is_empty());
    sched.shutdown().await;
}
