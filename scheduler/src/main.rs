//! The `phalanx` binary: one command per job, each implemented by its own crate.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Phalanx: whole-gang scheduling for Kubernetes on a Fluxion-style resource graph.
#[derive(Debug, Parser)]
#[command(name = "phalanx", version, about, long_about = None)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "PHALANX_LOG_FORMAT")]
    log_format: LogFormat,
    /// Log filter in `tracing` syntax (e.g. `info`, `phalanx_kube=debug`); overrides RUST_LOG.
    #[arg(long, global = true, env = "PHALANX_LOG")]
    log: Option<String>,
    #[command(subcommand)]
    command: Command,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Replay a gang workload on a simulated cluster against baseline schedulers and report.
    Simulate(phalanx_sim::SimulateArgs),
    /// Run the Kubernetes scheduler (pods with `schedulerName: phalanx`).
    Run(Box<phalanx_kube::RunArgs>),
    /// Serve the matcher over gRPC on a graph file, like Fluxion beside Fluence.
    Serve(phalanx_grpc::ServeArgs),
    /// Show resources and jobs of a running `phalanx serve` or `phalanx run`.
    Status(phalanx_grpc::StatusArgs),
    /// A drop-in for Fluxion's resource-query: a command shell over a graph file.
    Query(phalanx_query::QueryArgs),
    /// Plan a workflow DAG into the fewest Flux MiniClusters, each up only while needed.
    Plan(phalanx_plan::PlanArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Long-running services log at info by default; the shells stay quiet so
    // their stdout and stderr are exactly what resource-query users expect.
    let default_level = match cli.command {
        Command::Run(_) | Command::Serve(_) => "info",
        _ => "warn",
    };
    init_tracing(cli.log_format, cli.log.as_deref(), default_level);
    let result = match cli.command {
        // The synchronous commands keep stdout and stderr for their own output.
        Command::Query(args) => phalanx_query::run(args),
        Command::Simulate(args) => phalanx_sim::run(args),
        Command::Plan(args) => phalanx_plan::run(args),
        Command::Run(args) => block_on(phalanx_kube::run(*args)),
        Command::Serve(args) => block_on(phalanx_grpc::serve(args)),
        Command::Status(args) => block_on(phalanx_grpc::status(args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("phalanx: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn block_on<F: std::future::Future<Output = anyhow::Result<()>>>(future: F) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(future)
}

fn init_tracing(format: LogFormat, filter: Option<&str>, default_level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = match filter {
        Some(f) => EnvFilter::new(f),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level)),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
