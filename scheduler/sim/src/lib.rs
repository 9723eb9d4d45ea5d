//! `phalanx simulate`: a discrete-event simulation at virtual time of a
//! cluster and a gang workload, run against Phalanx's gang core and models
//! of kube-scheduler (default, and the coscheduling plugin), with a report.
#![forbid(unsafe_code)]

pub mod builtin;
pub mod engine;
pub mod kube_models;
pub mod phalanx_model;
pub mod report;
pub mod scenario;
pub mod workload;

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;

use crate::engine::{Cluster, Model};
use crate::report::Run;
use crate::scenario::Scenario;
use crate::workload::Workload;

/// Command-line arguments of `phalanx simulate`. [`Default`] is the
/// command line with no flags.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// A built-in scenario (mpi-contention, gpu-training, large, minute-mpi,
    /// minute-gpu, minute-arrivals, priority, elastic) or a scenario YAML file.
    #[arg(long, default_value = "mpi-contention")]
    pub scenario: String,
    /// Schedulers to compare, comma-separated: phalanx (packing each gang's
    /// nodes), phalanx-spread (one pod per node first), default, coscheduling,
    /// native-gang (kube-scheduler's own gang scheduling, alpha since 1.35).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "phalanx,default,coscheduling,native-gang"
    )]
    pub schedulers: Vec<String>,
    /// Seed of the workload generator (default: the scenario's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Phalanx's `--reserve-after`: longest the first waiting gang waits
    /// before resources are held for it, e.g. `0s`, `5m` [default: 1h].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub reserve_after: Option<std::time::Duration>,
    /// Phalanx's `--reserve-after-runtimes`: the first waiting gang is also
    /// reserved for after this many typical run times of running jobs
    /// (0 turns it off) [default: 2].
    #[arg(long)]
    pub reserve_after_runtimes: Option<f64>,
    /// Phalanx's `--reserve-after-overtakes`: the first waiting gang is also
    /// reserved for once this many later, smaller gangs started ahead of it
    /// (0 turns it off) [default: 1].
    #[arg(long)]
    pub reserve_after_overtakes: Option<u32>,
    /// Phalanx's `--order-runtimes`: within a priority, gangs queue by
    /// arrival plus this many expected run times (0: first come, first
    /// served) [default: 2].
    #[arg(long)]
    pub order_runtimes: Option<f64>,
    /// Phalanx's `--order-cap-drains`: the run-time term of the queue
    /// order counts at most this many times the queue's drain time (0: no
    /// cap) [default: 4].
    #[arg(long)]
    pub order_cap_drains: Option<f64>,
    /// Phalanx's `--assembly-grace`: how long a gang still being created
    /// holds back the gangs behind it, e.g. `0s` [default: 1s].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub assembly_grace: Option<std::time::Duration>,
    /// Phalanx's `--backfill-beside-after`: later gangs start beside the
    /// first gang's reservation only while its start is at least this many
    /// of its run times away (0: EASY backfill) [default: 0.1].
    #[arg(long)]
    pub backfill_beside_after: Option<f64>,
    /// Phalanx's `--backfill-slack`: later gangs may delay the first
    /// gang's reservation by at most this many of its run times in all
    /// (0: EASY backfill) [default: 0].
    #[arg(long)]
    pub backfill_slack: Option<f64>,
    /// Phalanx's `--reserve-depth`: how many waiting gangs hold
    /// reservations at once, from the queue head on (1: EASY backfill,
    /// higher: conservative backfill over that many) [default: 1].
    #[arg(long)]
    pub reserve_depth: Option<u32>,
    /// Phalanx's `--reserve-on-freed`: place reservations on the resources
    /// running jobs free last before the start, not on ones free now.
    #[arg(long)]
    pub reserve_on_freed: bool,
    /// Phalanx's `--best-fit`: fill the fullest node first.
    #[arg(long)]
    pub best_fit: bool,
    /// Phalanx never preempts: priority only orders its queue (the
    /// baselines always preempt, as kube-scheduler does by default).
    #[arg(long)]
    pub no_preemption: bool,
    /// Write report.json and report.svg to this directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

impl Default for SimulateArgs {
    fn default() -> Self {
        // The one parser, so the defaults are the command line's own.
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: SimulateArgs,
        }
        <Cli as clap::Parser>::parse_from(["simulate"]).args
    }
}

/// Loads a built-in scenario by name or a scenario file by path.
pub fn load_scenario(name_or_path: &str) -> anyhow::Result<Scenario> {
    if let Some(text) = builtin::yaml(name_or_path) {
        return Scenario::from_yaml(text).context("built-in scenario");
    }
    let path = std::path::Path::new(name_or_path);
    if !path.exists() {
        anyhow::bail!(
            "no scenario {name_or_path:?}: not a built-in ({}) and no such file",
            builtin::NAMES.join(", ")
        );
    }
    let size = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    if size > scenario::MAX_SCENARIO_BYTES as u64 {
        anyhow::bail!(
            "{}: {size} bytes; scenario files of at most {} bytes are read",
            path.display(),
            scenario::MAX_SCENARIO_BYTES
        );
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut s = Scenario::from_yaml(&text)
        .with_context(|| format!("in scenario file {}", path.display()))?;
    if s.name.is_empty() {
        s.name = path
            .file_stem()
            .map_or("scenario".into(), |n| n.to_string_lossy().into_owned());
    }
    Ok(s)
}

/// Runs one scheduler over a workload; `config` sets up Phalanx's gang core
/// (its policy is chosen by the scheduler's name).
pub fn run_one(
    wl: &Workload,
    scheduler: &str,
    config: &phalanx_gang::GangConfig,
    tick: &mut dyn FnMut(u64),
) -> anyhow::Result<Run> {
    let pods: usize = wl.jobs.iter().map(|j| j.pods as usize).sum();
    let mut model: Box<dyn Model> = match scheduler {
        "phalanx" | "phalanx-spread" => {
            let policy = if scheduler == "phalanx" {
                phalanx_gang::PlacementPolicy::Pack
            } else {
                phalanx_gang::PlacementPolicy::Spread
            };
            // The model needs the cluster's node list; build it from the workload.
            let probe = probe_cluster(wl);
            let config = phalanx_gang::GangConfig {
                policy,
                ..config.clone()
            };
            Box::new(phalanx_model::PhalanxModel::new(&probe, config))
        }
        "default" => Box::new(kube_models::DefaultModel::new(pods)),
        "coscheduling" => Box::new(kube_models::CoschedModel::new(
            pods,
            wl.jobs.len(),
            wl.schedule_timeout,
        )),
        "native-gang" => Box::new(kube_models::NativeGangModel::new(pods, wl.jobs.len())),
        other => anyhow::bail!(
            "--schedulers: unknown scheduler {other:?} (phalanx, phalanx-spread, default, coscheduling, native-gang)"
        ),
    };
    Ok(engine::simulate(wl, model.as_mut(), tick)?)
}

fn probe_cluster(wl: &Workload) -> Cluster<'_> {
    Cluster::empty(wl)
}

/// Runs the scenario with every scheduler, Phalanx with its default
/// settings; returns the runs in order.
pub fn run_all(
    s: &Scenario,
    seed: u64,
    schedulers: &[String],
    progress: bool,
) -> anyhow::Result<Vec<Run>> {
    run_all_with(
        s,
        seed,
        schedulers,
        &phalanx_gang::GangConfig::default(),
        progress,
    )
}

/// [`run_all`] with Phalanx's gang core set up by `config`.
pub fn run_all_with(
    s: &Scenario,
    seed: u64,
    schedulers: &[String],
    config: &phalanx_gang::GangConfig,
    progress: bool,
) -> anyhow::Result<Vec<Run>> {
    let wl = workload::build(s, seed);
    let bar = indicatif::ProgressBar::with_draw_target(
        Some((wl.jobs.len() * schedulers.len()) as u64),
        if progress {
            indicatif::ProgressDrawTarget::stderr()
        } else {
            indicatif::ProgressDrawTarget::hidden()
        },
    );
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg:>14} [{bar:40}] {pos}/{len} jobs ({elapsed})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    let mut runs = Vec::new();
    for name in schedulers {
        bar.set_message(name.clone());
        let run = run_one(&wl, name, config, &mut |n| bar.inc(n))?;
        // Jobs that never finish still count toward the bar's length.
        bar.inc((wl.jobs.len() as u64).saturating_sub(run.completed));
        runs.push(run);
    }
    bar.finish_and_clear();
    Ok(runs)
}

/// Runs `phalanx simulate`.
pub fn run(args: SimulateArgs) -> anyhow::Result<()> {
    let scenario = load_scenario(&args.scenario)?;
    let seed = args.seed.or(scenario.seed).unwrap_or(1);
    if args.schedulers.is_empty() {
        anyhow::bail!(
            "--schedulers: name at least one of phalanx, phalanx-spread, default, coscheduling, native-gang"
        );
    }
    // Where the report goes is checked before the run, not after it.
    let outputs = match &args.out {
        Some(dir) => Some(open_outputs(dir)?),
        None => None,
    };
    let progress = std::io::stderr().is_terminal();
    let mut config = phalanx_gang::GangConfig::default();
    if let Some(d) = args.reserve_after {
        config.reserve_after =
            phalanx_gang::Millis(i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    }
    for (flag, value, slot) in [
        (
            "--reserve-after-runtimes",
            args.reserve_after_runtimes,
            &mut config.reserve_after_runtimes,
        ),
        (
            "--order-runtimes",
            args.order_runtimes,
            &mut config.order_runtimes,
        ),
        (
            "--backfill-beside-after",
            args.backfill_beside_after,
            &mut config.backfill_beside_after,
        ),
        (
            "--order-cap-drains",
            args.order_cap_drains,
            &mut config.order_cap_drains,
        ),
        (
            "--backfill-slack",
            args.backfill_slack,
            &mut config.backfill_slack,
        ),
    ] {
        if let Some(k) = value {
            if !k.is_finite() || !(0.0..=1000.0).contains(&k) {
                anyhow::bail!("{flag}: want a number from 0 to 1000, got {k}");
            }
            *slot = k;
        }
    }
    if let Some(d) = args.assembly_grace {
        config.assembly_grace =
            phalanx_gang::Millis(i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    }
    config.best_fit |= args.best_fit;
    config.reserve_on_freed |= args.reserve_on_freed;
    if let Some(n) = args.reserve_depth {
        if !(1..=phalanx_gang::MAX_RESERVE_DEPTH).contains(&n) {
            anyhow::bail!(
                "--reserve-depth: want 1 to {}, got {n}",
                phalanx_gang::MAX_RESERVE_DEPTH
            );
        }
        config.reserve_depth = n;
    }
    if let Some(n) = args.reserve_after_overtakes {
        config.reserve_after_overtakes = n;
    }
    if args.no_preemption {
        config.preemption = false;
    }
    let runs = run_all_with(&scenario, seed, &args.schedulers, &config, progress)?;
    let gpus = scenario.cluster.nodes.iter().any(|p| p.gpus > 0);
    print!("{}", report::table(&scenario.name, seed, &runs, gpus));
    if let Some(out) = outputs {
        use std::io::Write as _;
        let json = serde_json::to_string_pretty(&report::Report {
            scenario: &scenario.name,
            seed,
            runs: &runs,
        })?;
        let (mut jf, mut sf) = (out.json, out.svg);
        jf.write_all(json.as_bytes())
            .with_context(|| format!("writing {}", out.json_path.display()))?;
        sf.write_all(report::svg(&scenario.name, &runs, gpus).as_bytes())
            .with_context(|| format!("writing {}", out.svg_path.display()))?;
        println!(
            "wrote {} and {}",
            out.json_path.display(),
            out.svg_path.display()
        );
    }
    Ok(())
}

/// The report files, created before the run so an unwritable `--out`
/// fails at once.
struct Outputs {
    json_path: PathBuf,
    json: std::fs::File,
    svg_path: PathBuf,
    svg: std::fs::File,
}

fn open_outputs(dir: &std::path::Path) -> anyhow::Result<Outputs> {
    std::fs::create_dir_all(dir).with_context(|| format!("--out: creating {}", dir.display()))?;
    let create = |name: &str| -> anyhow::Result<(PathBuf, std::fs::File)> {
        let path = dir.join(name);
        let file = std::fs::File::create(&path)
            .with_context(|| format!("--out: creating {}", path.display()))?;
        Ok((path, file))
    };
    let (json_path, json) = create("report.json")?;
    let (svg_path, svg) = create("report.svg")?;
    Ok(Outputs {
        json_path,
        json,
        svg_path,
        svg,
    })
}
