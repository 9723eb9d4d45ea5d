//! Load generator for `phalanx serve`: N clients each loop "match an 8-pod
//! gang, then cancel it" over loopback and report throughput, match latency
//! and the CPU each side used, per client count.
//!
//! ```text
//! cargo run --release -p phalanx-grpc --example loadgen -- --nodes 1000 --clients 1,16,64
//! cargo run --release -p phalanx-grpc --example loadgen -- --addr 127.0.0.1:4242 --server-pid PID
//! ```
//! By default the server is this same binary started as a child process
//! (`--serve-only`), so the CPU of server and clients can be told apart;
//! `--in-process` runs both on one runtime instead.
#![allow(missing_docs)]

use std::io::BufRead as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use phalanx_grpc::proto::v1 as pb;
use phalanx_grpc::proto::v1::fluxion_client::FluxionClient;
use phalanx_grpc::{Listener, OwnerBackend, StandaloneEngine, serve_with};
use tonic::transport::Channel;

// With `--features mimalloc`, server and clients both run on mimalloc
// instead of the system allocator, to measure what allocation costs.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
struct Args {
    /// Server to load; default: start one (see --in-process).
    #[arg(long)]
    addr: Option<String>,
    /// With --addr: the server's process id, to report its CPU use.
    #[arg(long, requires = "addr")]
    server_pid: Option<u32>,
    /// Run the server on this process's runtime instead of a child process.
    #[arg(long, conflicts_with = "addr")]
    in_process: bool,
    /// Send the matches and cancels over one Session stream per client
    /// instead of unary calls.
    #[arg(long)]
    stream: bool,
    /// Serve (and dial) a Unix socket in the temp dir instead of TCP loopback.
    #[arg(long)]
    unix: bool,
    /// Only serve (used for the child process): print the address, then
    /// serve until stdin closes.
    #[arg(long)]
    serve_only: bool,
    /// Nodes of the generated graph (servers started here only).
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    /// Client counts to run, one after the other.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    clients: Vec<usize>,
    /// HTTP/2 connections the clients share (round robin); 0 = one per client.
    #[arg(long, default_value_t = 2)]
    connections: usize,
    /// Seconds per client count.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Pods per gang.
    #[arg(long, default_value_t = 8)]
    gang: u32,
    /// CPU per pod, millicores.
    #[arg(long, default_value_t = 4000)]
    cpu_millis: u64,
    /// Match policy.
    #[arg(long, default_value = "first")]
    policy: String,
    /// Runtime worker threads of the clients (and of an in-process server).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Runtime worker threads of a child server; 0 = tokio's default (one
    /// per core, as `phalanx serve`).
    #[arg(long, default_value_t = 0)]
    server_threads: usize,
}

#[derive(Default)]
struct Tally {
    pairs: u64,
    busy: u64,
    match_us: Vec<u64>,
    cancel_us: Vec<u64>,
}

fn pct(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// CPU seconds (user + system) a process has used so far, from
/// /proc/PID/stat (in USER_HZ = 100 ticks per second on Linux).
fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let text = std::fs::read_to_string(path).ok()?;
    // Fields after the parenthesised command name; utime and stime are
    // fields 14 and 15 of the whole line, so 12 and 13 after the name.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

fn gang(args: &Args) -> pb::MatchRequest {
    pb::MatchRequest {
        request: Some(pb::match_request::Request::Pods(pb::PodGroup {
            templates: vec![pb::PodTemplate {
                name: "worker".into(),
                count: args.gang,
                cpu_millis: args.cpu_millis,
                ..Default::default()
            }],
        })),
        ..Default::default()
    }
}

fn tally() -> Tally {
    Tally {
        match_us: Vec::with_capacity(1 << 16),
        cancel_us: Vec::with_capacity(1 << 16),
        ..Tally::default()
    }
}

async fn client(
    mut c: FluxionClient<Channel>,
    args: Arc<Args>,
    until: Instant,
) -> anyhow::Result<Tally> {
    if args.stream {
        return session_client(c, args, until).await;
    }
    let req = gang(&args);
    let mut t = tally();
    while Instant::now() < until {
        let t0 = Instant::now();
        let r = c.r#match(req.clone()).await?.into_inner();
        t.match_us.push(t0.elapsed().as_micros() as u64);
        if r.result != pb::MatchResult::Allocated as i32 {
            t.busy += 1;
            continue;
        }
        let t1 = Instant::now();
        c.cancel(pb::CancelRequest {
            job_id: r.job_id,
            ..Default::default()
        })
        .await?;
        t.cancel_us.push(t1.elapsed().as_micros() as u64);
        t.pairs += 1;
    }
    Ok(t)
}

/// The same loop over one Session stream.
async fn session_client(
    mut c: FluxionClient<Channel>,
    args: Arc<Args>,
    until: Instant,
) -> anyhow::Result<Tally> {
    use pb::session_request::Request as In;
    use pb::session_response::Response as Out;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut answers = c
        .session(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await?
        .into_inner();
    let mut call = async move |req: In| -> anyhow::Result<Out> {
        tx.send(pb::SessionRequest { request: Some(req) })
            .await
            .map_err(|_| anyhow::anyhow!("session closed"))?;
        match answers.message().await?.and_then(|a| a.response) {
            Some(Out::Error(e)) => anyhow::bail!("session error {}: {}", e.code, e.message),
            Some(out) => Ok(out),
            None => anyhow::bail!("session ended early"),
        }
    };
    let req = gang(&args);
    let mut t = tally();
    while Instant::now() < until {
        let t0 = Instant::now();
        let Out::Match(r) = call(In::Match(req.clone())).await? else {
            anyhow::bail!("answer out of order");
        };
        t.match_us.push(t0.elapsed().as_micros() as u64);
        if r.result != pb::MatchResult::Allocated as i32 {
            t.busy += 1;
            continue;
        }
        let t1 = Instant::now();
        call(In::Cancel(pb::CancelRequest {
            job_id: r.job_id,
            ..Default::default()
        }))
        .await?;
        t.cancel_us.push(t1.elapsed().as_micros() as u64);
        t.pairs += 1;
    }
    Ok(t)
}

/// The child server: serves a generated graph until its stdin closes (the
/// parent exited) so it never outlives the run.
fn serve_only(args: &Args) -> anyhow::Result<()> {
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if args.server_threads > 0 {
        rt.worker_threads(args.server_threads);
    }
    let rt = rt.enable_all().build()?;
    rt.block_on(async {
        let engine = StandaloneEngine::generated(args.nodes, &args.policy)?;
        let listener = Listener::bind(&listen_spec(args)).await?;
        println!("{}", listener.local_addr());
        let stdin_closed = async {
            let _ = tokio::task::spawn_blocking(|| {
                let mut sink = String::new();
                while std::io::stdin().lock().read_line(&mut sink).unwrap_or(0) > 0 {
                    sink.clear();
                }
            })
            .await;
        };
        let backend = Arc::new(OwnerBackend::spawn(engine)?);
        serve_with(listener, backend, stdin_closed).await?;
        anyhow::Ok(())
    })
}

fn listen_spec(args: &Args) -> String {
    if args.unix {
        let path =
            std::env::temp_dir().join(format!("phalanx-loadgen-{}.sock", std::process::id()));
        format!("unix:{}", path.display())
    } else {
        "127.0.0.1:0".to_owned()
    }
}

/// Starts the child server and returns it with the address it listens on.
fn spawn_server(args: &Args) -> anyhow::Result<(std::process::Child, String)> {
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args([
            "--serve-only",
            "--nodes",
            &args.nodes.to_string(),
            "--policy",
            &args.policy,
            "--server-threads",
            &args.server_threads.to_string(),
        ])
        .args(args.unix.then_some("--unix"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line)?;
    let addr = line.trim().to_owned();
    anyhow::ensure!(!addr.is_empty(), "the server child printed no address");
    Ok((child, addr))
}

fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    if args.serve_only {
        return serve_only(&args);
    }
    let mut child = None;
    let (addr, server_pid) = match (&args.addr, args.in_process) {
        (Some(a), _) => (Some(a.clone()), args.server_pid),
        (None, true) => (None, None),
        (None, false) => {
            let (c, addr) = spawn_server(&args)?;
            let pid = c.id();
            child = Some(c);
            (Some(addr), Some(pid))
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()?;
    let result = rt.block_on(run(args.clone(), addr, server_pid));
    if let Some(mut c) = child {
        drop(c.stdin.take());
        let _ = c.wait();
    }
    result
}

async fn run(args: Arc<Args>, addr: Option<String>, server_pid: Option<u32>) -> anyhow::Result<()> {
    let addr = match addr {
        Some(a) => a,
        None => {
            let engine = StandaloneEngine::generated(args.nodes, &args.policy)?;
            let backend = Arc::new(OwnerBackend::spawn(engine)?);
            let listener = Listener::bind(&listen_spec(&args)).await?;
            let addr = listener.local_addr();
            tokio::spawn(serve_with(listener, backend, std::future::pending()));
            addr
        }
    };
    println!(
        "loadgen: {} gangs of {} pods x {}m cpu, {}s per step, server {} ({})",
        if args.addr.is_some() {
            "remote".to_string()
        } else {
            format!("{}-node graph,", args.nodes)
        },
        args.gang,
        args.cpu_millis,
        args.seconds,
        addr,
        if args.in_process {
            "in process"
        } else {
            "own process"
        },
    );
    println!(
        "{:>8} {:>6} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8} {:>10} {:>10} {:>9} {:>9}",
        "CLIENTS",
        "CONNS",
        "PAIRS/S",
        "MATCH_P50",
        "MATCH_P99",
        "CANCEL_P50",
        "CANCEL_P99",
        "BUSY",
        "SERVER_CPU",
        "CLIENT_CPU",
        "SRV_US/PR",
        "CLI_US/PR"
    );
    for &n in &args.clients {
        let conns = if args.connections == 0 {
            n
        } else {
            args.connections.min(n)
        };
        let mut channels = Vec::with_capacity(conns);
        for _ in 0..conns {
            channels.push(phalanx_grpc::connect(&addr, None).await?);
        }
        let (server0, self0) = (cpu_seconds(server_pid), cpu_seconds(None));
        let until = Instant::now() + Duration::from_secs_f64(args.seconds);
        let start = Instant::now();
        let mut tasks = Vec::new();
        for i in 0..n {
            let c = channels[i % conns].clone();
            tasks.push(tokio::spawn(client(c, args.clone(), until)));
        }
        let mut all = Tally::default();
        for t in tasks {
            let t = t.await??;
            all.pairs += t.pairs;
            all.busy += t.busy;
            all.match_us.extend(t.match_us);
            all.cancel_us.extend(t.cancel_us);
        }
        let secs = start.elapsed().as_secs_f64();
        let (server1, self1) = (cpu_seconds(server_pid), cpu_seconds(None));
        // Cores used on average: CPU seconds per wall second.
        let cores = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => format!("{:.2}", (b - a) / secs),
            _ => "-".to_owned(),
        };
        // CPU microseconds per match+cancel pair: what the load costs,
        // less sensitive than throughput to what else runs on the machine.
        let per_pair = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if all.pairs > 0 => {
                format!("{:.0}", (b - a) * 1e6 / all.pairs as f64)
            }
            _ => "-".to_owned(),
        };
        all.match_us.sort_unstable();
        all.cancel_us.sort_unstable();
        println!(
            "{:>8} {:>6} {:>10.0} {:>8}us {:>8}us {:>8}us {:>8}us {:>8} {:>10} {:>10} {:>9} {:>9}",
            n,
            conns,
            all.pairs as f64 / secs,
            pct(&all.match_us, 0.50),
            pct(&all.match_us, 0.99),
            pct(&all.cancel_us, 0.50),
            pct(&all.cancel_us, 0.99),
            all.busy,
            if args.in_process {
                "(shared)".to_owned()
            } else {
                cores(server0, server1)
            },
            cores(self0, self1),
            if args.in_process {
                "-".to_owned()
            } else {
                per_pair(server0, server1)
            },
            per_pair(self0, self1),
        );
    }
    // Server-side view: matcher time only, without the network.
    let mut c = phalanx_grpc::connect(&addr, None).await?;
    let stat = c.stat(pb::StatRequest {}).await?.into_inner();
    if let Some(l) = stat.match_latency {
        println!(
            "server matcher time (last {}): p50 {}us p99 {}us max {}us",
            l.count, l.p50_micros, l.p99_micros, l.max_micros
        );
    }
    Ok(())
}
