//! The Deployment's command line is one `phalanx run` accepts, and what it
//! configures agrees with the rest of the manifests: the metrics and gRPC
//! addresses listen on the ports the container declares (which the probes and
//! the Service use), leader election is on, and the scheduler serves the
//! `schedulerName` the examples ask for.

use clap::{Args, FromArgMatches};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Container;
use phalanx_kube::{RunArgs, Settings};
use serde_json::Value;

/// Flags of the `phalanx` binary itself (scheduler/src/main.rs), not of `run`.
const GLOBAL_ENV: [&str; 2] = ["PHALANX_LOG_FORMAT", "PHALANX_LOG"];

fn container() -> Container {
    let path = super::manifests_dir().join("deployment.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc: Value =
        serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let d: Deployment =
        serde_json::from_value(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let spec = d
        .spec
        .and_then(|s| s.template.spec)
        .unwrap_or_else(|| panic!("no pod spec"));
    spec.containers
        .into_iter()
        .find(|c| c.name == "phalanx")
        .unwrap_or_else(|| panic!("no phalanx container"))
}

fn run_command() -> clap::Command {
    RunArgs::augment_args(clap::Command::new("run"))
}

/// Parses the container's args (`run --flag ...`) as `phalanx run` would.
fn parse(args: &[String]) -> Result<Settings, String> {
    let matches = run_command()
        .try_get_matches_from(args)
        .map_err(|e| e.to_string())?;
    let run = RunArgs::from_arg_matches(&matches).map_err(|e| e.to_string())?;
    Settings::resolve(&run).map_err(|e| e.to_string())
}

fn declared_port(c: &Container, name: &str) -> u16 {
    let port = c
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some(name));
    let port = port.unwrap_or_else(|| panic!("the container declares no port named {name}"));
    u16::try_from(port.container_port).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn deployment_args_parse_and_match_the_declared_ports() {
    let c = container();
    let args = c.args.clone().unwrap_or_default();
    assert_eq!(args.first().map(String::as_str), Some("run"));
    let settings = parse(&args)
        .unwrap_or_else(|e| panic!("phalanx run rejects the Deployment's args {args:?}: {e}"));
    assert_eq!(
        settings.metrics_addr.port(),
        declared_port(&c, "http-metrics"),
        "/metrics, /healthz and /readyz port"
    );
    let grpc = settings
        .grpc_addr
        .clone()
        .unwrap_or_else(|| panic!("the gRPC API is off, so `phalanx status` cannot work"));
    let grpc_port: u16 = grpc
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("gRPC address {grpc}"));
    assert_eq!(grpc_port, declared_port(&c, "grpc"));
    assert!(settings.leader_elect, "two replicas need leader election");
    assert!(
        settings.scheduler_names.iter().any(|n| n == "phalanx"),
        "examples use schedulerName: phalanx"
    );
}

#[test]
fn deployment_env_vars_are_ones_phalanx_reads() {
    let known: Vec<String> = run_command()
        .get_arguments()
        .filter_map(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()))
        .chain(GLOBAL_ENV.iter().map(|s| s.to_string()))
        .collect();
    assert!(known.len() > GLOBAL_ENV.len(), "RunArgs reads no env vars?");
    for var in container().env.unwrap_or_default() {
        if var.name.starts_with("PHALANX_") {
            assert!(
                known.contains(&var.name),
                "{} is not read by phalanx (known: {known:?})",
                var.name
            );
        }
    }
}

#[test]
fn a_misspelt_flag_is_rejected() {
    let err = parse(&["run".into(), "--metrics-address=0.0.0.0:8080".into()]);
    assert!(
        err.as_ref().is_err_and(|e| e.contains("--metrics-address")),
        "{err:?}"
    );
}
