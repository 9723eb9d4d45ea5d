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
    assert!(wait_for(Duration::from_secs(120), || handle.is_ready()).await);
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
        ..Default::default()
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

// ---- Scale runs (issue 21): 5,000 nodes, 10,000 pending pods; 50,000 bound at start ----

/// This process's resident set, in MiB (Linux /proc; NaN elsewhere).
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// `n` nodes of 32 CPUs in two zones and racks of 20.
fn add_scale_nodes(srv: &ApiServer, n: usize) {
    for i in 0..n {
        let rack = format!("r{:03}", i / 20);
        srv.create(&node(
            &format!("n{i:05}"),
            32,
            &[
                (
                    "topology.kubernetes.io/zone",
                    if i % 2 == 0 { "a" } else { "b" },
                ),
                ("phalanx.dev/rack", &rack),
            ],
        ))
        .unwrap();
    }
}

/// Records when each pod is first seen bound, through a watch of its own
/// (the store is not scanned, so the measurement does not slow the server).
fn watch_binds(
    srv: &ApiServer,
) -> (
    std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Instant>>>,
    tokio::task::JoinHandle<()>,
) {
    use futures::StreamExt;
    use k8s_openapi::api::core::v1::Pod;
    use kube::runtime::{WatchStreamExt, watcher};
    let seen = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
    let api: kube::Api<Pod> = kube::Api::all(srv.client());
    let out = seen.clone();
    let task = tokio::spawn(async move {
        let mut stream = watcher(api, watcher::Config::default())
            .applied_objects()
            .boxed();
        while let Some(Ok(p)) = stream.next().await {
            if p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some()
                && let Some(name) = p.metadata.name
            {
                out.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(name)
                    .or_insert_with(Instant::now);
            }
        }
    });
    (seen, task)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// 10,000 pods (in groups of `gang`, or plain when `gang` is 1) created at
/// full speed on 5,000 nodes while the scheduler runs; prints pods/s, p50
/// and p99 creation-to-bind, scheduler CPU and the process's RSS growth.
async fn scale_run(label: &str, nodes: usize, pods: usize, gang: usize) {
    // Whole groups only: 10,000 pods in gangs of 64 are 156 gangs, 9,984 pods.
    let pods = pods / gang * gang;
    let srv = ApiServer::start().await.unwrap();
    add_scale_nodes(&srv, nodes);
    let args = RunArgs {
        leader_elect: Some(false),
        metrics_addr: Some("127.0.0.1:0".parse().unwrap()),
        grpc_addr: Some("none".into()),
        ..Default::default()
    };
    let rss0 = rss_mib();
    let (sched_rt, handle) = start_measured(&srv, args, label).await;
    let rss_ready = rss_mib();
    let (seen, watch) = watch_binds(&srv);
    let cpu0 = thread_cpu_seconds(label);
    let t0 = Instant::now();
    let mut created: Vec<(String, Instant)> = Vec::with_capacity(pods);
    for g in 0..pods / gang {
        if gang == 1 {
            let name = format!("s{g:05}");
            srv.create(&pod("default", &name, "phalanx", 1, &[]))
                .unwrap();
            created.push((name, Instant::now()));
        } else {
            let group = format!("g{g:05}");
            add_gang(&srv, &group, gang, 1);
            let at = Instant::now();
            created.extend((0..gang).map(|i| (format!("{group}-{i}"), at)));
        }
    }
    let creating = t0.elapsed();
    let mut all = false;
    while t0.elapsed() < Duration::from_secs(900) {
        if seen.lock().unwrap_or_else(|e| e.into_inner()).len() >= pods {
            all = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cpu = thread_cpu_seconds(label) - cpu0;
    let rss_end = rss_mib();
    let seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    watch.abort();
    let mut lat: Vec<f64> = created
        .iter()
        .filter_map(|(n, at)| {
            seen.get(n)
                .map(|b| b.saturating_duration_since(*at).as_secs_f64())
        })
        .collect();
    lat.sort_by(f64::total_cmp);
    let last = seen.values().max().copied().unwrap_or(t0);
    let span = last.saturating_duration_since(t0).as_secs_f64();
    println!(
        "{label}: {} of {pods} pods (groups of {gang}) on {nodes} nodes bound in {span:.2}s \
         (creation took {:.2}s): {:.0} pods/s; creation-to-bind p50 {:.3}s p99 {:.3}s; \
         scheduler CPU {cpu:.2}s ({:.2} ms/pod); {} passes; RSS {rss0:.0} MiB before start, \
         {rss_ready:.0} MiB when ready, {rss_end:.0} MiB at the end (test server included)",
        seen.len(),
        creating.as_secs_f64(),
        seen.len() as f64 / span,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        1000.0 * cpu / pods as f64,
        handle.passes(),
    );
    assert!(all, "every pod bound");
    assert_eq!(
        srv.request_count("create", "pods/binding"),
        pods as u64,
        "one bind per pod"
    );
    assert!(overcommitted_nodes(&srv).is_empty());
    stop_measured(sched_rt, handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "scale measurement; run explicitly"]
async fn scale_10k_plain_pods_on_5k_nodes() {
    scale_run("scale-plain", 5_000, 10_000, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "scale measurement; run explicitly"]
async fn scale_10k_pods_in_gangs_of_8_on_5k_nodes() {
    scale_run("scale-g8", 5_000, 10_000, 8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "scale measurement; run explicitly"]
async fn scale_10k_pods_in_gangs_of_64_on_5k_nodes() {
    scale_run("scale-g64", 5_000, 10_000, 64).await;
}

/// A restart on a busy cluster: 50,000 of our pods already bound (10 on each
/// of 5,000 nodes). Prints the time from start to the first scheduling pass
/// with everything listed and accounted, the scheduler CPU meanwhile, the
/// process's RSS growth, and how long one new pod then takes to bind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "scale measurement; run explicitly"]
async fn restart_with_50k_bound_pods_is_ready_quickly() {
    const NODES: usize = 5_000;
    const BOUND: usize = 50_000;
    let srv = ApiServer::start().await.unwrap();
    add_scale_nodes(&srv, NODES);
    let t_fill = Instant::now();
    for i in 0..BOUND {
        let mut p = pod("default", &format!("b{i:05}"), "phalanx", 1, &[]);
        if let Some(spec) = p.spec.as_mut() {
            spec.node_name = Some(format!("n{:05}", i % NODES));
        }
        srv.create(&p).unwrap();
        // The kubelet's part: create cannot set a status.
        srv.mutate::<k8s_openapi::api::core::v1::Pod>("default", &format!("b{i:05}"), |o| {
            o["status"]["phase"] = serde_json::json!("Running");
        })
        .unwrap();
    }
    println!(
        "restart: {BOUND} bound pods created in {:.1}s",
        t_fill.elapsed().as_secs_f64()
    );
    let args = RunArgs {
        leader_elect: Some(false),
        metrics_addr: Some("127.0.0.1:0".parse().unwrap()),
        grpc_addr: Some("none".into()),
        ..Default::default()
    };
    let rss0 = rss_mib();
    let sched_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("restart")
        .enable_all()
        .build()
        .unwrap();
    let settings = Settings::resolve(&args).unwrap();
    let client = srv.client();
    let t0 = Instant::now();
    let handle = sched_rt
        .spawn(async move { phalanx_kube::start(settings, Some(client)).await.unwrap() })
        .await
        .unwrap();
    let ready = wait_for(Duration::from_secs(300), || {
        handle.is_ready() && handle.passes() >= 1
    })
    .await;
    let ready_secs = t0.elapsed().as_secs_f64();
    let cpu = thread_cpu_seconds("restart");
    let rss_ready = rss_mib();
    // Now it must schedule: one new pod binds.
    let t1 = Instant::now();
    srv.create(&pod("default", "fresh", "phalanx", 1, &[]))
        .unwrap();
    // Read the one pod: listing all 50,000 (as bound_pods does) takes longer,
    // in a debug build, than the bind being measured.
    let fresh = wait_for(Duration::from_secs(60), || {
        srv.get::<k8s_openapi::api::core::v1::Pod>("default", "fresh")
            .and_then(|p| p.spec?.node_name)
            .is_some()
    })
    .await;
    println!(
        "restart: {BOUND} bound pods on {NODES} nodes: ready to schedule in {ready_secs:.2}s \
         (scheduler CPU {cpu:.2}s); RSS {rss0:.0} MiB before start, {rss_ready:.0} MiB when ready \
         (+{:.0} MiB, test server's list responses included); a new pod then bound in {:.3}s",
        rss_ready - rss0,
        t1.elapsed().as_secs_f64()
    );
    assert!(ready, "never ready");
    assert!(fresh, "the new pod was not bound");
    assert!(overcommitted_nodes(&srv).is_empty());
    stop_measured(sched_rt, handle).await;
}
