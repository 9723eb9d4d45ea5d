//! Load generator for `phalanx serve`: N clients each loop "match an 8-pod
//! gang, then cancel it" over loopback and report throughput and match
//! latency per client count.
//!
//! ```text
//! cargo run --release -p phalanx-grpc --example loadgen -- --nodes 1000 --clients 1,16,64
//! cargo run --release -p phalanx-grpc --example loadgen -- --addr 127.0.0.1:4242
//! ```
//! Without `--addr` the server runs in this process on a generated graph.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use phalanx_grpc::proto::v1 as pb;
use phalanx_grpc::{Listener, OwnerBackend, StandaloneEngine, serve_with};

#[derive(Debug, Parser)]
struct Args {
    /// Server to load; default: start one in this process.
    #[arg(long)]
    addr: Option<String>,
    /// Nodes of the generated graph (in-process server only).
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    /// Client counts to run, one after the other.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    clients: Vec<usize>,
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
    /// Runtime worker threads for the clients (and the in-process server).
    #[arg(long, default_value_t = 2)]
    threads: usize,
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

async fn client(addr: String, args: Arc<Args>, until: Instant) -> anyhow::Result<Tally> {
    let mut c = phalanx_grpc::connect(&addr, None).await?;
    let req = pb::MatchRequest {
        request: Some(pb::match_request::Request::Pods(pb::PodGroup {
            templates: vec![pb::PodTemplate {
                name: "worker".into(),
                count: args.gang,
                cpu_millis: args.cpu_millis,
                ..Default::default()
            }],
        })),
        ..Default::default()
    };
    let mut t = Tally::default();
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

fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let addr = match &args.addr {
            Some(a) => a.clone(),
            None => {
                let engine = StandaloneEngine::generated(args.nodes, &args.policy)?;
                let backend = Arc::new(OwnerBackend::spawn(engine)?);
                let listener = Listener::bind("127.0.0.1:0").await?;
                let addr = listener.local_addr();
                tokio::spawn(serve_with(listener, backend, std::future::pending()));
                addr
            }
        };
        println!(
            "loadgen: {} gangs of {} pods x {}m cpu, {}s per step, server {}",
            if args.addr.is_some() {
                "remote".to_string()
            } else {
                format!("{}-node graph,", args.nodes)
            },
            args.gang,
            args.cpu_millis,
            args.seconds,
            addr
        );
        println!(
            "{:>8} {:>12} {:>10} {:>10} {:>10} {:>10} {:>8}",
            "CLIENTS", "PAIRS/S", "MATCH_P50", "MATCH_P99", "CANCEL_P50", "CANCEL_P99", "BUSY"
        );
        for &n in &args.clients {
            let until = Instant::now() + Duration::from_secs_f64(args.seconds);
            let start = Instant::now();
            let mut tasks = Vec::new();
            for _ in 0..n {
                tasks.push(tokio::spawn(client(addr.clone(), args.clone(), until)));
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
            all.match_us.sort_unstable();
            all.cancel_us.sort_unstable();
            println!(
                "{:>8} {:>12.0} {:>8}us {:>8}us {:>8}us {:>8}us {:>8}",
                n,
                all.pairs as f64 / secs,
                pct(&all.match_us, 0.50),
                pct(&all.match_us, 0.99),
                pct(&all.cancel_us, 0.50),
                pct(&all.cancel_us, 0.99),
                all.busy
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
        anyhow::Ok(())
    })
}
