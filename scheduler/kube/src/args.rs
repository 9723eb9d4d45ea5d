//! `phalanx run` settings: flags and env vars (RunArgs), an optional YAML
//! config file, and built-in defaults, resolved in that order into [`Settings`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use phalanx_gang as gang;
use serde::Deserialize;

/// Command-line arguments of `phalanx run`. Every flag also reads an env var;
/// unset values come from `--config`, then from the defaults shown.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RunArgs {
    /// YAML config file with the same keys as the flags (snake_case, e.g. `rack_label`).
    #[arg(long, env = "PHALANX_CONFIG")]
    pub config: Option<PathBuf>,
    /// Scheduler names served (pods with this `spec.schedulerName`), comma-separated [default: phalanx].
    #[arg(
        long = "scheduler-name",
        env = "PHALANX_SCHEDULER_NAMES",
        value_delimiter = ','
    )]
    pub scheduler_names: Vec<String>,
    /// Placement inside the fewest racks that hold a gang: pack (fill each node first) or spread (one pod per node first) [default: pack].
    #[arg(long, env = "PHALANX_POLICY")]
    pub policy: Option<String>,
    /// Node label naming the rack [default: phalanx.dev/rack].
    #[arg(long, env = "PHALANX_RACK_LABEL")]
    pub rack_label: Option<String>,
    /// Namespaces whose pods are scheduled, comma-separated [default: all]; pods elsewhere still count as used capacity.
    #[arg(long = "namespace", env = "PHALANX_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Kubeconfig file [default: in-cluster config or $KUBECONFIG].
    #[arg(long, env = "PHALANX_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// API writes per second for binds and PodGroup status (the client has no limiter of its own: this is it) [default: 2000].
    #[arg(long, env = "PHALANX_QPS")]
    pub qps: Option<f64>,
    /// Burst above --qps [default: 4000].
    #[arg(long, env = "PHALANX_BURST")]
    pub burst: Option<u32>,
    /// Events published per second, apart from binds; Events beyond a queue of 1,000 are dropped, never waited for [default: 100].
    #[arg(long, env = "PHALANX_EVENT_QPS")]
    pub event_qps: Option<f64>,
    /// Burst above --event-qps [default: 200].
    #[arg(long, env = "PHALANX_EVENT_BURST")]
    pub event_burst: Option<u32>,
    /// Binds in flight at once [default: 256].
    #[arg(long, env = "PHALANX_BIND_CONCURRENCY")]
    pub bind_concurrency: Option<usize>,
    /// Elect a leader through a Lease (only the leader binds) [default: true].
    #[arg(long, env = "PHALANX_LEADER_ELECT")]
    pub leader_elect: Option<bool>,
    /// Lease name [default: phalanx].
    #[arg(long, env = "PHALANX_LEASE_NAME")]
    pub lease_name: Option<String>,
    /// Lease namespace [default: $POD_NAMESPACE or kube-system].
    #[arg(long, env = "PHALANX_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// How long a lease holds without renewal, e.g. `15s` [default: 15s].
    #[arg(long, env = "PHALANX_LEASE_DURATION", value_parser = humantime::parse_duration)]
    pub lease_duration: Option<Duration>,
    /// How long the leader keeps trying to renew before it stops binding [default: 10s].
    #[arg(long, env = "PHALANX_RENEW_DEADLINE", value_parser = humantime::parse_duration)]
    pub renew_deadline: Option<Duration>,
    /// How often candidates and the leader touch the lease [default: 2s].
    #[arg(long, env = "PHALANX_RETRY_PERIOD", value_parser = humantime::parse_duration)]
    pub retry_period: Option<Duration>,
    /// This replica's identity in the lease [default: $POD_NAME or hostname, plus a random suffix].
    #[arg(long, env = "PHALANX_IDENTITY")]
    pub identity: Option<String>,
    /// Address for /metrics, /healthz and /readyz [default: 0.0.0.0:8080].
    #[arg(long, env = "PHALANX_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Address for the gRPC API (`phalanx status`); `none` disables it [default: 0.0.0.0:4242].
    #[arg(long, env = "PHALANX_GRPC_ADDR")]
    pub grpc_addr: Option<String>,
    /// Quiet time after a change before a scheduling pass, e.g. `5ms` [default: 5ms].
    #[arg(long, env = "PHALANX_DEBOUNCE", value_parser = humantime::parse_duration)]
    pub debounce: Option<Duration>,
    /// Longest wait between passes while groups wait and nothing changes; cluster
    /// changes and the core's own deadlines (bind backoff, timeouts) wake it sooner [default: 30s].
    #[arg(long, env = "PHALANX_RETRY_INTERVAL", value_parser = humantime::parse_duration)]
    pub retry_interval: Option<Duration>,
    /// Timeout for groups whose PodGroup sets no scheduleTimeoutSeconds [default: 10m].
    #[arg(long, env = "PHALANX_DEFAULT_SCHEDULE_TIMEOUT", value_parser = humantime::parse_duration)]
    pub default_schedule_timeout: Option<Duration>,
    /// Longest the first waiting gang waits before resources are held for it; the two scale-free triggers below usually hold sooner (`0s`: hold at once) [default: 1h].
    #[arg(long, env = "PHALANX_RESERVE_AFTER", value_parser = humantime::parse_duration)]
    pub reserve_after: Option<Duration>,
    /// The first waiting gang is also held for once it has waited this many typical run times of the running jobs, so protection scales with the workload (`0`: off; lower is fairer to big gangs, higher greedier) [default: 2].
    #[arg(long, env = "PHALANX_RESERVE_AFTER_RUNTIMES")]
    pub reserve_after_runtimes: Option<f64>,
    /// The first waiting gang is also held for once this many later, smaller gangs have started ahead of it (`0`: off; lower is fairer to big gangs, higher greedier) [default: 1].
    #[arg(long, env = "PHALANX_RESERVE_AFTER_OVERTAKES")]
    pub reserve_after_overtakes: Option<u32>,
    /// Within a priority, gangs queue by arrival plus this many expected run times: short jobs pass long ones whatever their size, and a long job is passed only by jobs that came within that many of its run times (`0`: first come, first served; higher: lower mean wait, long jobs wait longer) [default: 2].
    #[arg(long, env = "PHALANX_ORDER_RUNTIMES")]
    pub order_runtimes: Option<f64>,
    /// The run time the queue order counts is at most this many times the queue's drain time (how long the cluster would take to run every waiting gang at full use): where few gangs wait, a long job is passed only by jobs that come within a few drain times, not for hours (`0`: no cap) [default: 4].
    #[arg(long, env = "PHALANX_ORDER_CAP_DRAINS")]
    pub order_cap_drains: Option<f64>,
    /// How long a gang whose pods are still being created holds back the gangs behind it, after its newest pod, so a burst starts in submission order rather than smallest-complete first (`0s`: off) [default: 1s].
    #[arg(long, env = "PHALANX_ASSEMBLY_GRACE", value_parser = humantime::parse_duration)]
    pub assembly_grace: Option<Duration>,
    /// Later gangs may start beside the first gang's reservation (on resources it will not need) only while its start is at least this many of its run times away (`0`: always, EASY backfill; higher: fairer to the held gang, less backfill) [default: 0.1].
    #[arg(long, env = "PHALANX_BACKFILL_BESIDE_AFTER")]
    pub backfill_beside_after: Option<f64>,
    /// Slack-based backfill: a later gang may also start on resources the first gang's reservation needs if it is expected to end before the start first planned for that gang plus this many of its run times, so the reserved gang starts at most that much later than planned (`0`: no delay, EASY backfill; higher: lower mean wait, longer waits for the big gangs reserved for) [default: 0].
    #[arg(long, env = "PHALANX_BACKFILL_SLACK")]
    pub backfill_slack: Option<f64>,
    /// How many waiting gangs hold reservations at once, from the queue head on: each gang behind the head that does not fit now, up to this many in all, gets its earliest start, and later gangs may start only where they delay none of them (`1`: only the head, EASY backfill; higher: conservative backfill, fairer to big gangs further back, less backfill) [default: 1].
    #[arg(long, env = "PHALANX_RESERVE_DEPTH")]
    pub reserve_depth: Option<u32>,
    /// Place each reservation on the resources running gangs free last before its start, where it fits there, rather than on resources free now, which then stay free for backfill [default: false].
    #[arg(long, env = "PHALANX_RESERVE_ON_FREED")]
    pub reserve_on_freed: Option<bool>,
    /// Pack pods onto the fullest node that still holds them first (measured neutral in the simulator) [default: false].
    #[arg(long, env = "PHALANX_BEST_FIT")]
    pub best_fit: Option<bool>,
    /// Whether a gang that does not fit may evict gangs of lower priority (whole, elastic members first), as kube-scheduler preempts; `false`: priority only orders the queue [default: true].
    #[arg(long, env = "PHALANX_PREEMPTION")]
    pub preemption: Option<bool>,
}

/// The config file: the same settings as the flags.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    scheduler_names: Option<Vec<String>>,
    policy: Option<String>,
    rack_label: Option<String>,
    namespaces: Option<Vec<String>>,
    kubeconfig: Option<PathBuf>,
    qps: Option<f64>,
    burst: Option<u32>,
    event_qps: Option<f64>,
    event_burst: Option<u32>,
    bind_concurrency: Option<usize>,
    leader_elect: Option<bool>,
    lease_name: Option<String>,
    lease_namespace: Option<String>,
    #[serde(default, with = "opt_duration")]
    lease_duration: Option<Duration>,
    #[serde(default, with = "opt_duration")]
    renew_deadline: Option<Duration>,
    #[serde(default, with = "opt_duration")]
    retry_period: Option<Duration>,
    identity: Option<String>,
    metrics_addr: Option<SocketAddr>,
    grpc_addr: Option<String>,
    #[serde(default, with = "opt_duration")]
    debounce: Option<Duration>,
    #[serde(default, with = "opt_duration")]
    retry_interval: Option<Duration>,
    #[serde(default, with = "opt_duration")]
    default_schedule_timeout: Option<Duration>,
    #[serde(default, with = "opt_duration")]
    reserve_after: Option<Duration>,
    #[serde(default)]
    reserve_after_runtimes: Option<f64>,
    #[serde(default)]
    reserve_after_overtakes: Option<u32>,
    #[serde(default)]
    order_runtimes: Option<f64>,
    #[serde(default)]
    order_cap_drains: Option<f64>,
    #[serde(default, with = "opt_duration")]
    assembly_grace: Option<Duration>,
    #[serde(default)]
    backfill_beside_after: Option<f64>,
    #[serde(default)]
    backfill_slack: Option<f64>,
    #[serde(default)]
    reserve_depth: Option<u32>,
    #[serde(default)]
    reserve_on_freed: Option<bool>,
    #[serde(default)]
    best_fit: Option<bool>,
    #[serde(default)]
    preemption: Option<bool>,
}

mod opt_duration {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| humantime::parse_duration(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// Everything `phalanx run` needs, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Scheduler names served.
    pub scheduler_names: Vec<String>,
    /// How a gang's pods are laid out inside the racks chosen for it.
    pub policy: gang::PlacementPolicy,
    /// Node label naming the rack.
    pub rack_label: String,
    /// Namespaces scheduled (empty: all).
    pub namespaces: Vec<String>,
    /// Kubeconfig path, if not in-cluster/default.
    pub kubeconfig: Option<PathBuf>,
    /// Write rate limit.
    pub qps: f64,
    /// Write burst.
    pub burst: u32,
    /// Event publishing rate limit (its own budget, off the bind path).
    pub event_qps: f64,
    /// Event burst.
    pub event_burst: u32,
    /// Binds in flight at once.
    pub bind_concurrency: usize,
    /// Whether to elect a leader.
    pub leader_elect: bool,
    /// Lease name.
    pub lease_name: String,
    /// Lease namespace.
    pub lease_namespace: String,
    /// Lease duration.
    pub lease_duration: Duration,
    /// Renew deadline.
    pub renew_deadline: Duration,
    /// Retry period.
    pub retry_period: Duration,
    /// Identity in the lease.
    pub identity: String,
    /// Metrics/health address.
    pub metrics_addr: SocketAddr,
    /// gRPC address, if served.
    pub grpc_addr: Option<String>,
    /// Debounce before a pass.
    pub debounce: Duration,
    /// Re-examination interval for waiting groups.
    pub retry_interval: Duration,
    /// Default group schedule timeout.
    pub default_schedule_timeout: Duration,
    /// How long the queue head waits before resources are held for it.
    pub reserve_after: Duration,
    /// Typical run times of running jobs the queue head waits before it is held for (0: off).
    pub reserve_after_runtimes: f64,
    /// Later, smaller gangs that may start ahead of the queue head before it is held for (0: off).
    pub reserve_after_overtakes: u32,
    /// Expected run times added to a gang's arrival for its place in the queue (0: FCFS).
    pub order_runtimes: f64,
    /// Queue drain times the run time counted in the queue order is capped at (0: no cap).
    pub order_cap_drains: f64,
    /// How long a gang still being created holds back later ones.
    pub assembly_grace: Duration,
    /// Run times of the head's that must remain before its start for backfill beside it.
    pub backfill_beside_after: f64,
    /// Run times of the head's a backfilled gang may delay it by, in all.
    pub backfill_slack: f64,
    /// Waiting gangs that hold reservations at once (1: the head only).
    pub reserve_depth: u32,
    /// Whether reservations go on the resources freed last before their start.
    pub reserve_on_freed: bool,
    /// Whether pods fill the fullest node first.
    pub best_fit: bool,
    /// Whether higher-priority gangs may evict lower-priority ones.
    pub preemption: bool,
}

/// A problem with the settings, naming the setting.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The config file could not be read.
    #[error("reading config file {path}: {source}")]
    Read {
        /// File path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The config file is not valid.
    #[error("config file {path}: {message}")]
    Parse {
        /// File path.
        path: PathBuf,
        /// What is wrong and where.
        message: String,
    },
    /// A value is out of range.
    #[error("setting {field}: {message}")]
    Invalid {
        /// The setting.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

fn default_identity() -> String {
    let base = std::env::var("POD_NAME")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "phalanx".to_string());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{base}_{:08x}", nanos ^ std::process::id())
}

/// Largest `--config` file read, in bytes.
pub const MAX_CONFIG_BYTES: usize = 1 << 20;
/// Deepest nesting of `[`/`{` read in a `--config` file.
pub const MAX_CONFIG_NESTING: usize = 32;

fn read_file(path: &Path) -> Result<FileConfig, SettingsError> {
    let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
        path: path.into(),
        source,
    })?;
    // A config file is a few hundred bytes; bound what the YAML scanner sees,
    // which goes quadratic on deeply nested flow collections.
    if text.len() > MAX_CONFIG_BYTES {
        return Err(SettingsError::Parse {
            path: path.into(),
            message: format!(
                "{} bytes; config files of at most {MAX_CONFIG_BYTES} bytes are read",
                text.len()
            ),
        });
    }
    fluxion_core::flow_nesting::check(&text, MAX_CONFIG_NESTING).map_err(|e| {
        SettingsError::Parse {
            path: path.into(),
            message: e.to_string(),
        }
    })?;
    let de = serde_yaml_ng::Deserializer::from_str(&text);
    serde_path_to_error::deserialize(de).map_err(|e| SettingsError::Parse {
        path: path.into(),
        message: format!("at {}: {}", e.path(), e.inner()),
    })
}

/// A core duration as a `Duration` (negative ones, which the core never
/// defaults to, as zero).
fn millis_duration(m: gang::Millis) -> Duration {
    Duration::from_millis(u64::try_from(m.0).unwrap_or(0))
}

impl Settings {
    /// Resolves flags/env, then the config file, then defaults; checks ranges.
    pub fn resolve(args: &RunArgs) -> Result<Self, SettingsError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let list = |cli: &Vec<String>, file: Option<Vec<String>>| {
            if cli.is_empty() {
                file.unwrap_or_default()
            } else {
                cli.clone()
            }
        };
        let mut scheduler_names = list(&args.scheduler_names, file.scheduler_names);
        scheduler_names.retain(|n| !n.trim().is_empty());
        if scheduler_names.is_empty() {
            scheduler_names.push("phalanx".to_string());
        }
        // Scheduling-policy defaults are the core's own, so the two never drift.
        let core = gang::GangConfig::default();
        let s = Settings {
            scheduler_names,
            policy: match args.policy.as_deref().or(file.policy.as_deref()) {
                None => gang::PlacementPolicy::default(),
                Some(name) => {
                    name.parse()
                        .map_err(|e: gang::UnknownPolicy| SettingsError::Invalid {
                            field: "policy",
                            message: e.to_string(),
                        })?
                }
            },
            rack_label: args
                .rack_label
                .clone()
                .or(file.rack_label)
                .unwrap_or_else(|| "phalanx.dev/rack".into()),
            namespaces: list(&args.namespaces, file.namespaces),
            kubeconfig: args.kubeconfig.clone().or(file.kubeconfig),
            qps: args.qps.or(file.qps).unwrap_or(2000.0),
            burst: args.burst.or(file.burst).unwrap_or(4000),
            event_qps: args.event_qps.or(file.event_qps).unwrap_or(100.0),
            event_burst: args.event_burst.or(file.event_burst).unwrap_or(200),
            bind_concurrency: args
                .bind_concurrency
                .or(file.bind_concurrency)
                .unwrap_or(256),
            leader_elect: args.leader_elect.or(file.leader_elect).unwrap_or(true),
            lease_name: args
                .lease_name
                .clone()
                .or(file.lease_name)
                .unwrap_or_else(|| "phalanx".into()),
            lease_namespace: args
                .lease_namespace
                .clone()
                .or(file.lease_namespace)
                .or_else(|| std::env::var("POD_NAMESPACE").ok())
                .unwrap_or_else(|| "kube-system".into()),
            lease_duration: args
                .lease_duration
                .or(file.lease_duration)
                .unwrap_or(Duration::from_secs(15)),
            renew_deadline: args
                .renew_deadline
                .or(file.renew_deadline)
                .unwrap_or(Duration::from_secs(10)),
            retry_period: args
                .retry_period
                .or(file.retry_period)
                .unwrap_or(Duration::from_secs(2)),
            identity: args
                .identity
                .clone()
                .or(file.identity)
                .unwrap_or_else(default_identity),
            metrics_addr: args
                .metrics_addr
                .or(file.metrics_addr)
                .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 8080))),
            grpc_addr: match args.grpc_addr.clone().or(file.grpc_addr) {
                Some(a) if a == "none" || a.is_empty() => None,
                Some(a) => Some(a),
                None => Some("0.0.0.0:4242".into()),
            },
            debounce: args
                .debounce
                .or(file.debounce)
                .unwrap_or(Duration::from_millis(5)),
            retry_interval: args
                .retry_interval
                .or(file.retry_interval)
                .unwrap_or(Duration::from_secs(30)),
            default_schedule_timeout: args
                .default_schedule_timeout
                .or(file.default_schedule_timeout)
                .unwrap_or(Duration::from_secs(600)),
            reserve_after: args
                .reserve_after
                .or(file.reserve_after)
                .unwrap_or(millis_duration(core.reserve_after)),
            reserve_after_runtimes: args
                .reserve_after_runtimes
                .or(file.reserve_after_runtimes)
                .unwrap_or(core.reserve_after_runtimes),
            reserve_after_overtakes: args
                .reserve_after_overtakes
                .or(file.reserve_after_overtakes)
                .unwrap_or(core.reserve_after_overtakes),
            order_runtimes: args
                .order_runtimes
                .or(file.order_runtimes)
                .unwrap_or(core.order_runtimes),
            order_cap_drains: args
                .order_cap_drains
                .or(file.order_cap_drains)
                .unwrap_or(core.order_cap_drains),
            assembly_grace: args
                .assembly_grace
                .or(file.assembly_grace)
                .unwrap_or(millis_duration(core.assembly_grace)),
            backfill_beside_after: args
                .backfill_beside_after
                .or(file.backfill_beside_after)
                .unwrap_or(core.backfill_beside_after),
            backfill_slack: args
                .backfill_slack
                .or(file.backfill_slack)
                .unwrap_or(core.backfill_slack),
            reserve_depth: args
                .reserve_depth
                .or(file.reserve_depth)
                .unwrap_or(core.reserve_depth),
            reserve_on_freed: args
                .reserve_on_freed
                .or(file.reserve_on_freed)
                .unwrap_or(core.reserve_on_freed),
            best_fit: args.best_fit.or(file.best_fit).unwrap_or(core.best_fit),
            preemption: args.preemption.or(file.preemption).unwrap_or(true),
        };
        s.check()?;
        Ok(s)
    }

    fn check(&self) -> Result<(), SettingsError> {
        let bad = |field, message: &str| {
            Err(SettingsError::Invalid {
                field,
                message: message.into(),
            })
        };
        if !(self.qps > 0.0 && self.qps.is_finite()) {
            return bad("qps", "must be a positive number");
        }
        if self.burst == 0 {
            return bad("burst", "must be at least 1");
        }
        if !(self.event_qps > 0.0 && self.event_qps.is_finite()) {
            return bad("event_qps", "must be a positive number");
        }
        if self.event_burst == 0 {
            return bad("event_burst", "must be at least 1");
        }
        if self.bind_concurrency == 0 {
            return bad("bind_concurrency", "must be at least 1");
        }
        if self.renew_deadline >= self.lease_duration {
            return bad("renew_deadline", "must be shorter than lease_duration");
        }
        if self.retry_period >= self.renew_deadline {
            return bad("retry_period", "must be shorter than renew_deadline");
        }
        for (field, k) in [
            ("reserve_after_runtimes", self.reserve_after_runtimes),
            ("order_runtimes", self.order_runtimes),
            ("order_cap_drains", self.order_cap_drains),
            ("backfill_beside_after", self.backfill_beside_after),
            ("backfill_slack", self.backfill_slack),
        ] {
            if !(k.is_finite() && (0.0..=1000.0).contains(&k)) {
                return bad(field, "must be a number from 0 to 1000");
            }
        }
        if !(1..=gang::MAX_RESERVE_DEPTH).contains(&self.reserve_depth) {
            return bad("reserve_depth", "must be from 1 to 64");
        }
        if self.retry_interval.is_zero() {
            return bad("retry_interval", "must be positive");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    #[test]
    fn flags_beat_file_beat_defaults() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("c.yaml");
        std::fs::write(
            &path,
            "rack_label: rack\nqps: 10\nlease_duration: 30s\nscheduler_names: [a, b]\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let cli = Cli::parse_from([
            "x",
            "--config",
            path.to_str().unwrap_or_default(),
            "--qps",
            "50",
        ]);
        let s = Settings::resolve(&cli.run).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.qps, 50.0);
        assert_eq!(s.rack_label, "rack");
        assert_eq!(s.lease_duration, Duration::from_secs(30));
        assert_eq!(s.scheduler_names, ["a", "b"]);
        assert_eq!(s.burst, 4000);
    }

    #[test]
    fn nested_or_huge_files_are_refused_before_parsing() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("c.yaml");
        let cli = Cli::parse_from(["x", "--config", path.to_str().unwrap_or_default()]);
        // 200 KB of nested flow sequences: seconds in the YAML scanner before.
        let deep = format!("namespace: {}", "[".repeat(200_000));
        std::fs::write(&path, deep).unwrap_or_else(|e| panic!("{e}"));
        let err = Settings::resolve(&cli.run).unwrap_err().to_string();
        assert!(err.contains("nest deeper than the limit of 32"), "{err}");
        let big = format!("rack_label: r\n# {}\n", "x".repeat(MAX_CONFIG_BYTES));
        std::fs::write(&path, big).unwrap_or_else(|e| panic!("{e}"));
        let err = Settings::resolve(&cli.run).unwrap_err().to_string();
        assert!(err.contains("at most 1048576 bytes"), "{err}");
    }

    #[test]
    fn bad_file_names_the_field() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, "lease_duration: soon\n").unwrap_or_else(|e| panic!("{e}"));
        let cli = Cli::parse_from(["x", "--config", path.to_str().unwrap_or_default()]);
        let err = Settings::resolve(&cli.run).unwrap_err().to_string();
        assert!(err.contains("lease_duration"), "{err}");
        let cli = Cli::parse_from(["x", "--renew-deadline", "20s"]);
        assert!(
            Settings::resolve(&cli.run)
                .unwrap_err()
                .to_string()
                .contains("renew_deadline")
        );
    }

    #[test]
    fn reserve_depth_comes_from_flag_or_file_and_out_of_range_names_the_setting() {
        let cli = Cli::parse_from(["x"]);
        let s = Settings::resolve(&cli.run).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.reserve_depth, gang::GangConfig::default().reserve_depth);
        assert!(!s.reserve_on_freed);
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, "reserve_depth: 4\nreserve_on_freed: true\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let file = path.to_str().unwrap_or_default();
        let cli = Cli::parse_from(["x", "--config", file]);
        let s = Settings::resolve(&cli.run).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((s.reserve_depth, s.reserve_on_freed), (4, true));
        let cli = Cli::parse_from(["x", "--config", file, "--reserve-depth", "2"]);
        let s = Settings::resolve(&cli.run).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.reserve_depth, 2);
        for bad in ["0", "65"] {
            let cli = Cli::parse_from(["x", "--reserve-depth", bad]);
            let err = Settings::resolve(&cli.run).unwrap_err().to_string();
            assert!(err.contains("reserve_depth"), "{err}");
        }
    }

    #[test]
    fn backfill_slack_comes_from_flag_or_file_and_out_of_range_names_the_setting() {
        let cli = Cli::parse_from(["x"]);
        let s = Settings::resolve(&cli.run).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.backfill_slack, 0.0, "off by default");
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, "backfill_slack: 0.5\n").unwrap_or_else(|e| panic!("{e}"));
        let file = path.to_str().unwrap_or_default();
        let cli = Cli::parse_from(["x", "--config", file]);
        let s = Settings::resolve(&cli.run).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.backfill_slack, 0.5);
        let cli = Cli::parse_from(["x", "--config", file, "--backfill-slack", "1"]);
        let s = Settings::resolve(&cli.run).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.backfill_slack, 1.0);
        for bad in ["-0.5", "NaN", "1001"] {
            let flag = format!("--backfill-slack={bad}");
            let cli = Cli::parse_from(["x", flag.as_str()]);
            let err = Settings::resolve(&cli.run).unwrap_err().to_string();
            assert!(err.contains("backfill_slack"), "{bad}: {err}");
        }
    }

    #[test]
    fn policy_defaults_to_pack_and_an_unknown_one_names_the_setting() {
        let cli = Cli::parse_from(["x"]);
        let s = Settings::resolve(&cli.run).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.policy, gang::PlacementPolicy::Pack);
        let cli = Cli::parse_from(["x", "--policy", "spread"]);
        let s = Settings::resolve(&cli.run).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.policy, gang::PlacementPolicy::Spread);
        let cli = Cli::parse_from(["x", "--policy", "hinodex"]);
        let err = Settings::resolve(&cli.run).unwrap_err().to_string();
        assert!(err.contains("policy") && err.contains("hinodex"), "{err}");
    }
}
