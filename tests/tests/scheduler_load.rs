//! Load measurement (ignored by default): 1,000 pods in gangs of 8 over 100
//! nodes on the test API server. Prints pods bound per second and the CPU time
//! of the scheduler's own threads. Run with
//! `cargo test -p phalanx-tests --release --test scheduler_load -- --ignored --nocapture`.

use std::time::{Duration, Instant};

use phalanx_kube::{PodGroup, PodGroupSpec, RunArgs, Settings};
use phalanx_tests::apiserver::ApiServer;
use phalanx_tests::fixtures::{bound_pods, node, overcommitted_nodes, pod, wait_for};

/// User+system CPU seconds of this process's threads named `name` (Linux /proc).
fn thread_cpu_seconds(name: &str) -> f64 {
    let ticks = 100.0; // USER_HZ on Linux
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return f64::NAN;
    };
    let mut total = 0u64;
    for task in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // Format: pid (comm) state ... ; fields after the closing paren, utime is 14th overall.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        if !head.ends_with(name) && !head.contains(&format!("({name}")) {
            continue;
        }
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: u64 = fields.get(11).and_then(|s| s.parse().ok()).unwrap_or(0);
        let stime: u64 = fields.get(12).and_then(|s| s.parse().ok()).unwrap_or(0);
        total += utime + stime;
    }
    total as f64 / ticks
}

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

/// Starts the scheduler on a runtime of its own, whose threads are named
/// `threads` so its CPU time can be told apart (the tests of this file run
/// side by side: each names its own); waits until it is ready.
async fn start_measured(
    srv: &ApiServer,
    args: RunArgs,
    threads: &str,
) -> (tokio::runtime::Runtime, phalanx_kube::SchedulerHandle) {
    let sched_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(threads)
        .enable_all()
        .build()
        .unwrap();
    let settings = Settings::resolve(&args).unwrap();
    let client = srv.client();
    let handle = sched_rt
        .spawn(async move { phalanx_kube::start(settings, Some(client)).await.unwrap() })
        .await
        .unwrap();
    assert!(wait_for(Duration::from_secs(10), || handle.is_ready()).await);
    (sched_rt, handle)
}

/// Stops the scheduler and its runtime.
async fn stop_measured(sched_rt: tokio::runtime::Runtime, handle: phalanx_kube::SchedulerHandle) {
    sched_rt
        .spawn(async move { handle.shutdown().await })
        .await
        .unwrap();
    sched_rt.shutdown_background();
}

/// A PodGroup of `size` pods of `cpus` CPUs each in `default`.
fn add_gang(srv: &ApiServer, name: &str, size: usize, cpus: u32) {
    let mut pg = PodGroup::new(
        name,
        PodGroupSpec {
            min_member: Some(size as i32),
            ..Default::default()
        },
    );
    pg.metadata.namespace = Some("default".into());
    srv.create(&pg).unwrap();
    for i in 0..size {
        srv.create(&pod(
            "default",
            &format!("{name}-{i}"),
            "phalanx",
            cpus,
            &[("scheduling.x-k8s.io/pod-group", name)],
        ))
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "load measurement; run explicitly"]
async fn thousand_pods_in_gangs_of_eight_over_100_nodes() {
    let srv = ApiServer::start().await.unwrap();
    for i in 0..100 {
        srv.create(&node(
            &format!("n{i:03}"),
            10,
            &[(
                "topology.kubernetes.io/zone",
                if i % 2 == 0 { "a" } else { "b" },
            )],
        ))
        .unwrap();
    }
    let args = RunArgs {
        leader_elect: Some(false),
        metrics_addr: Some("127.0.0.1:0".parse().unwrap()),
        grpc_addr: Some("none".into()),
        qps: Some(1_000_000.0),
        burst: Some(1_000_000),
        bind_concurrency: Some(512),
        ..Default::default()
    };
    let (sched_rt, handle) = start_measured(&srv, args, "sched-load").await;
    let cpu0 = thread_cpu_seconds("sched-load");
    let t0 = Instant::now();
    for g in 0..125 {
        add_gang(&srv, &format!("job{g:03}"), 8, 1);
    }
    let created = t0.elapsed();
    let mut all = false;
    while t0.elapsed() < Duration::from_secs(120) {
        if srv.count_bound_pods("job") == 1000 {
            all = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = t0.elapsed();
    let cpu = thread_cpu_seconds("sched-load") - cpu0;
    let bound = bound_pods(&srv, "job").len();
    println!(
        "load: {bound} of 1000 pods bound in {:.3}s (objects created in {:.3}s): {:.0} pods/s; scheduler CPU {:.2}s; {} passes; {} bind requests",
        elapsed.as_secs_f64(),
        created.as_secs_f64(),
        bound as f64 / elapsed.as_secs_f64(),
        cpu,
        handle.passes(),
        srv.request_count("create", "pods/binding"),
    );
    let metrics = fetch(handle.metrics_addr(), "/metrics").await;
    for line in metrics
        .lines()
        .filter(|l| l.contains("_sum") || l.contains("_count") || l.starts_with("phalanx_binds"))
    {
        println!("  {line}");
    }
    assert!(all, "every pod bound");
    assert!(overcommitted_nodes(&srv).is_empty());
    stop_measured(sched_rt, handle).await;
}

/// Pods of `prefix` whose phase is Succeeded (cheap: no decoding).
fn succeeded(srv: &ApiServer, prefix: &str) -> usize {
    use k8s_openapi::api::core::v1::Pod;
    srv.list::<Pod>()
        .iter()
        .filter(|p| {
            p.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with(prefix))
        })
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "load measurement; run explicitly"]
async fn contention_workload_completes_every_gang() {
    use phalanx_tests::apiserver::KubeletOptions;
    // Pod run time; longer runs show the steady state (e.g. PHALANX_CONTENTION_RUN_MS=1000).
    let run_ms = std::env::var("PHALANX_CONTENTION_RUN_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let run_for = Duration::from_millis(run_ms);
    let srv = ApiServer::start().await.unwrap();
    srv.start_kubelet(KubeletOptions {
        run_for: Some(run_for),
    });
    for i in 0..8 {
        srv.create(&node(&format!("n{i}"), 8, &[])).unwrap();
    }
    let args = RunArgs {
        leader_elect: Some(false),
        metrics_addr: Some("127.0.0.1:0".parse().unwrap()),
        grpc_addr: Some("none".into()),
        retry_interval: Some(Duration::from_millis(50)),
        ..Default::default()
    };
    let (sched_rt, handle) = start_measured(&srv, args, "sched-contend").await;
    // 100 MPI-style jobs of 2-8 two-CPU pods (a fixed LCG, so every run is the same workload).
    let mut seed: u64 = 42;
    let mut total = 0;
    let cpu0 = thread_cpu_seconds("sched-contend");
    let t0 = Instant::now();
    for j in 0..100 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let size = 2 + ((seed >> 33) % 7) as usize;
        total += size;
        add_gang(&srv, &format!("mpi{j:03}"), size, 2);
    }
    let mut done = false;
    while t0.elapsed() < Duration::from_secs(120) {
        if succeeded(&srv, "mpi") == total {
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let makespan = t0.elapsed().as_secs_f64();
    let cpu = thread_cpu_seconds("sched-contend") - cpu0;
    // 8 nodes x 8 CPUs hold 32 two-CPU pods at once.
    let ideal = total as f64 * run_for.as_secs_f64() / 32.0;
    println!(
        "contention: {total} pods in 100 gangs, all done: {done}; makespan {makespan:.2}s vs ideal {ideal:.2}s ({:.0}% over); scheduler CPU {cpu:.2}s; {} passes",
        (makespan / ideal - 1.0) * 100.0,
        handle.passes()
    );
    assert!(done, "every gang completed");
    assert!(overcommitted_nodes(&srv).is_empty());
    stop_measured(sched_rt, handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "load measurement; run explicitly"]
async fn waiting_gangs_cost_no_cpu() {
    // 8 nodes of 8 CPUs held by one gang that never ends; then 100 gangs
    // that wait for it. Nothing changes for 20 s: a scheduler that retries
    // on a timer burns CPU here, one woken by events and deadlines does not.
    let srv = ApiServer::start().await.unwrap();
    for i in 0..8 {
        srv.create(&node(&format!("n{i}"), 8, &[])).unwrap();
    }
    let args = RunArgs {
        leader_elect: Some(false),
        metrics_addr: Some("127.0.0.1:0".parse().unwrap()),
        grpc_addr: Some("none".into()),
        ..Default::default()
    };
    let (sched_rt, handle) = start_measured(&srv, args, "sched-idle").await;
    add_gang(&srv, "holder", 8, 8);
    assert!(
        wait_for(Duration::from_secs(10), || bound_pods(&srv, "holder-")
            .len()
            == 8)
        .await
    );
    for g in 0..100 {
        add_gang(&srv, &format!("wait{g:03}"), 4, 2);
    }
    // Let the burst settle, then measure a quiet window.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (cpu0, passes0) = (thread_cpu_seconds("sched-idle"), handle.passes());
    let window = Duration::from_secs(20);
    tokio::time::sleep(window).await;
    let cpu = thread_cpu_seconds("sched-idle") - cpu0;
    let passes = handle.passes() - passes0;
    println!(
        "idle: 100 waiting gangs, {:.0} s quiet: scheduler CPU {cpu:.3} s ({:.2}% of a core), {passes} passes",
        window.as_secs_f64(),
        100.0 * cpu / window.as_secs_f64()
    );
    assert_eq!(bound_pods(&srv, "wait").len(), 0, "nothing fits");
    stop_measured(sched_rt, handle).await;
}
