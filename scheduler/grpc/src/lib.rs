//! `phalanx serve` (the matcher as a gRPC service) and `phalanx status` (its client).
//!
//! Library use (e.g. by `phalanx run`): implement [`Backend`] over your own
//! state, or implement the synchronous [`Engine`] and wrap it in
//! [`OwnerBackend`], then call [`serve_with`] (or [`serve_with_config`] for
//! TLS and limits) with a [`Listener`] and a shutdown future:
//!
//! ```no_run
//! # async fn demo(engine: phalanx_grpc::StandaloneEngine) -> anyhow::Result<()> {
//! use std::sync::Arc;
//! let backend = Arc::new(phalanx_grpc::OwnerBackend::spawn(engine)?);
//! let listener = phalanx_grpc::Listener::bind("127.0.0.1:4242").await?;
//! phalanx_grpc::serve_with(listener, backend, async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await?;
//! # Ok(()) }
//! ```
//!
//! Busy clients should send their matches and cancels over one `Session`
//! stream rather than unary calls: same answers, in order, at about half
//! the CPU per call on both sides (see `examples/loadgen.rs --stream`).
#![forbid(unsafe_code)]

mod backend;
mod client;
pub mod hostlist;
mod owner;
mod server;
mod service;
mod standalone;
pub mod status;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use phalanx_proto::v1 as pb;

/// The generated API (messages, client, server), re-exported for callers.
pub use phalanx_proto as proto;

pub use backend::{Backend, BackendError, BackendResult, Engine};
pub use client::{
    CONNECT_TIMEOUT, ClientTls, ConnectError, call_error, connect, connect_channel,
    connect_channel_with, connect_with, error_chain,
};
pub use owner::{OwnerBackend, latency_summary};
pub use server::{
    Listener, ServeError, ServerConfig, TlsPem, check_tls, serve_with, serve_with_config,
};
pub use service::{
    FluxionService, Limits, MAX_CORES_PER_SOCKET, MAX_GPUS_PER_SOCKET, MAX_MEMORY_PER_SOCKET,
    MAX_NAME_BYTES, MAX_SOCKETS, add_node_vertices, check_name, commit_deadline,
    parse_grpc_timeout, validate_match,
};
pub use standalone::{
    DEFAULT_MAX_VERTICES, GraphFormat, MAX_GENERATED_NODES, MAX_GRAPH_FILE_BYTES, StandaloneEngine,
};

/// Command-line arguments of `phalanx serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Resource graph file (GRUG GraphML or JGF).
    #[arg(long, required_unless_present = "generate_nodes")]
    pub graph: Option<PathBuf>,
    /// Format of `--graph`; default: from the file extension (.graphml/.xml = grug, .json = jgf).
    #[arg(long, value_enum)]
    pub format: Option<GraphFormat>,
    /// Instead of a file, generate a cluster of N nodes (racks of 18; 2
    /// sockets x 32 cores, 2 GPUs, 256 GiB per socket): for demos and
    /// benches. At most 65,536.
    #[arg(long, conflicts_with = "graph")]
    pub generate_nodes: Option<usize>,
    /// Default match policy (first, low, high, lonode, hinode, locality, variation, ...).
    #[arg(long, default_value = "first")]
    pub policy: String,
    /// Where to listen: HOST:PORT or unix:PATH. Loopback by default.
    #[arg(long, default_value = "127.0.0.1:4242", env = "PHALANX_LISTEN")]
    pub listen: String,
    /// TLS certificate chain (PEM); enables TLS together with --tls-key.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// CA (PEM) that client certificates must chain to; makes them mandatory.
    #[arg(long, requires = "tls_cert")]
    pub client_ca: Option<PathBuf>,
    /// Largest request accepted, in bytes; larger ones get RESOURCE_EXHAUSTED.
    #[arg(long, default_value_t = 4 << 20)]
    pub max_request_bytes: usize,
    /// Most pods one Match may ask for.
    #[arg(long, default_value_t = 100_000)]
    pub max_pods: u64,
    /// Most vertices UpdateGraph may grow the graph to.
    #[arg(long, default_value_t = DEFAULT_MAX_VERTICES)]
    pub max_vertices: u64,
    /// Most vertices the AddNodes of one UpdateGraph call may create.
    #[arg(long, default_value_t = Limits::default().max_update_vertices)]
    pub max_update_vertices: u64,
    /// Largest jobspec one Match may carry, in bytes.
    #[arg(long, default_value_t = Limits::default().max_jobspec_bytes)]
    pub max_jobspec_bytes: usize,
    /// Health turns NOT_SERVING while the graph owner has not answered for
    /// this many seconds (one request holding it).
    #[arg(long, default_value_t = 5)]
    pub stall_seconds: u64,
    /// Default duration (seconds) of a match whose request gives none;
    /// 0 means until cancelled.
    #[arg(long, default_value_t = 0)]
    pub default_duration: u64,
}

/// What `phalanx status` shows.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum StatusCommand {
    /// Resources by state, like `flux resource list`.
    Resources {
        /// Only these nodes.
        #[arg(long = "node")]
        nodes: Vec<String>,
        /// Only nodes that are down (`--down`) .
        #[arg(long, conflicts_with = "up")]
        down: bool,
        /// Only nodes that are up.
        #[arg(long)]
        up: bool,
    },
    /// Allocations and reservations, like `flux jobs`.
    Jobs {
        /// At most this many jobs.
        #[arg(long, default_value_t = 0)]
        limit: u32,
    },
    /// One job in detail (JSON).
    Info {
        /// The job id.
        job_id: u64,
    },
    /// Graph size, counts and match latency.
    Stat,
}

/// Output format of `phalanx status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Human-readable table.
    Table,
    /// JSON.
    Json,
}

/// Command-line arguments of `phalanx status`.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// Server address: HOST:PORT, http(s)://HOST:PORT or unix:PATH.
    #[arg(
        long,
        default_value = "127.0.0.1:4242",
        env = "PHALANX_ADDR",
        global = true
    )]
    pub addr: String,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table, global = true)]
    pub output: OutputFormat,
    /// CA (PEM) to verify the server with; enables TLS.
    #[arg(long, global = true)]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for servers that require one.
    #[arg(long, requires = "tls_key", global = true)]
    pub tls_cert: Option<PathBuf>,
    /// Client private key (PEM).
    #[arg(long, requires = "tls_cert", global = true)]
    pub tls_key: Option<PathBuf>,
    /// Server name to verify (default: the host in --addr).
    #[arg(long, global = true)]
    pub tls_domain: Option<String>,
    /// Seconds to wait for the connection, and for each answer.
    #[arg(long, default_value_t = 10, global = true)]
    pub timeout: u64,
    /// What to show.
    #[command(subcommand)]
    pub command: StatusCommand,
}

fn read(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("read {}", path.display()))
}

/// Runs `phalanx serve` until SIGTERM or Ctrl-C.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // TLS first: a bad key must stop `serve` before it loads a graph or
    // announces anything.
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let pem = TlsPem {
                cert: read(cert)?,
                key: read(key)?,
                client_ca: args.client_ca.as_deref().map(read).transpose()?,
            };
            check_tls(&pem).with_context(|| {
                format!(
                    "--tls-cert {} / --tls-key {}",
                    cert.display(),
                    key.display()
                )
            })?;
            Some(pem)
        }
        _ => None,
    };
    if args.stall_seconds == 0 {
        anyhow::bail!("--stall-seconds: must be at least 1");
    }
    let engine = match (&args.graph, args.generate_nodes) {
        (_, Some(n)) => StandaloneEngine::generated(n, &args.policy)?,
        (Some(path), None) => StandaloneEngine::load(path, args.format, &args.policy)?,
        (None, None) => anyhow::bail!("give --graph FILE or --generate-nodes N"),
    }
    .with_default_duration(args.default_duration)
    .with_max_vertices(args.max_vertices);
    tracing::info!(
        vertices = engine.vertex_count(),
        policy = %args.policy,
        "graph loaded"
    );
    let config = ServerConfig {
        tls,
        max_request_bytes: args.max_request_bytes,
        limits: Limits {
            max_pods: args.max_pods,
            max_update_vertices: args.max_update_vertices,
            max_jobspec_bytes: args.max_jobspec_bytes,
            ..Limits::default()
        },
        stall_after: std::time::Duration::from_secs(args.stall_seconds),
        ..ServerConfig::default()
    };
    let backend = Arc::new(OwnerBackend::spawn(engine).context("start the graph owner thread")?);
    let listener = Listener::bind(&args.listen).await?;
    // Printed on stdout so scripts and tests can wait for it.
    println!("phalanx serve: listening on {}", listener.local_addr());
    serve_with_config(listener, backend, config, shutdown_signal()).await?;
    Ok(())
}

/// Completes on SIGTERM or Ctrl-C (SIGINT).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => ctrl_c.await,
    }
}

/// Runs `phalanx status`.
pub async fn status(args: StatusArgs) -> anyhow::Result<()> {
    let tls = if args.tls_ca.is_some() || args.tls_cert.is_some() {
        Some(ClientTls {
            ca: args.tls_ca.as_deref().map(read).transpose()?,
            identity: match (&args.tls_cert, &args.tls_key) {
                (Some(c), Some(k)) => Some((read(c)?, read(k)?)),
                _ => None,
            },
            domain: args.tls_domain.clone(),
        })
    } else {
        None
    };
    if args.timeout == 0 {
        anyhow::bail!("--timeout: must be at least 1 second");
    }
    let wait = std::time::Duration::from_secs(args.timeout);
    let mut client = match connect_with(&args.addr, tls.as_ref(), wait, Some(wait)).await {
        Ok(c) => c,
        Err(e @ (ConnectError::Connect { .. } | ConnectError::NotGrpc { .. })) if tls.is_none() => {
            return Err(not_grpc_or(&args.addr, e.to_string()).await);
        }
        Err(e) => return Err(e.into()),
    };
    let json = args.output == OutputFormat::Json;
    match status_call(&mut client, &args.command, json).await {
        Ok(out) => {
            print!("{out}");
            Ok(())
        }
        Err(s) => {
            let text = call_error(&args.addr, &s);
            let transport = matches!(
                s.code(),
                tonic::Code::Unknown
                    | tonic::Code::Unavailable
                    | tonic::Code::Internal
                    | tonic::Code::Cancelled
            );
            if transport && tls.is_none() {
                Err(not_grpc_or(&args.addr, text).await)
            } else {
                Err(anyhow::anyhow!(text))
            }
        }
    }
}

/// "not a gRPC server" when `addr` answers like an HTTP/1 server, else `text`.
async fn not_grpc_or(addr: &str, text: String) -> anyhow::Error {
    match client::http1_status_line(addr).await {
        Some(line) => anyhow::anyhow!("not a gRPC server at {addr} (it answers HTTP/1: {line:?})"),
        None => anyhow::anyhow!(text),
    }
}

async fn status_call(
    client: &mut phalanx_proto::v1::fluxion_client::FluxionClient<tonic::transport::Channel>,
    command: &StatusCommand,
    json: bool,
) -> Result<String, tonic::Status> {
    let pretty = |v: serde_json::Value| {
        pretty(&v).map_err(|e| tonic::Status::internal(format!("render JSON: {e}")))
    };
    let out = match command {
        StatusCommand::Resources { nodes, down, up } => {
            let req = pb::ResourcesRequest {
                nodes: nodes.clone(),
                types: vec![],
                up: if *down {
                    Some(false)
                } else if *up {
                    Some(true)
                } else {
                    None
                },
            };
            let resp = client.resources(req).await?.into_inner();
            if json {
                pretty(status::resources_json(&resp))?
            } else {
                status::resources_table(&resp)
            }
        }
        StatusCommand::Jobs { limit } => {
            let req = pb::JobsRequest {
                states: vec![],
                limit: *limit,
            };
            let resp = client.jobs(req).await?.into_inner();
            if json {
                pretty(status::jobs_json(&resp))?
            } else {
                let now = client.stat(pb::StatRequest {}).await?.into_inner().now;
                status::jobs_table(&resp, now)
            }
        }
        StatusCommand::Info { job_id } => {
            let resp = client
                .info(pb::InfoRequest { job_id: *job_id })
                .await?
                .into_inner();
            let job = resp.job.unwrap_or_default();
            pretty(status::job_json(&job))?
        }
        StatusCommand::Stat => {
            let resp = client.stat(pb::StatRequest {}).await?.into_inner();
            if json {
                pretty(status::stat_json(&resp))?
            } else {
                status::stat_text(&resp)
            }
        }
    };
    Ok(out)
}

fn pretty(v: &serde_json::Value) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(v)? + "\n")
}
