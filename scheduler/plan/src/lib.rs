//! `phalanx plan`: a workflow DAG planned into the fewest Flux MiniClusters,
//! each brought up just before its first step and down after its last,
//! within the cluster's capacity (checked on fluxion-core's graph). Pure: no
//! cluster is needed.
//!
//! - [`workflow`]: the YAML/JSON format and its checks; [`dot`]: GraphViz
//!   and Snakemake `--dag` input.
//! - [`planner`]: the heuristic, the baselines and the exhaustive optimum.
//! - [`cluster`]: the plan replayed on the resource graph.
//! - [`output`], [`emit`], [`svg`]: the table, JSON/YAML, MiniCluster
//!   manifests and the Gantt chart.
#![forbid(unsafe_code)]

pub mod cluster;
pub mod dot;
pub mod emit;
pub mod generate;
pub mod output;
pub mod plan;
pub mod planner;
pub mod svg;
pub mod workflow;

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::cluster::ClusterGraph;
use crate::output::Report;
use crate::planner::{Objective, Options, Outcome};
use crate::workflow::{ClusterSource, MAX_INPUT, Workflow, WorkflowSpec};

/// Output format of `phalanx plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// A table for people.
    #[default]
    Table,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// Command-line arguments of `phalanx plan`.
#[derive(Debug, Clone, clap::Args)]
pub struct PlanArgs {
    /// The workflow: YAML or JSON, or GraphViz DOT (Snakemake's `--dag`) ending in .dot or .gv.
    pub workflow: PathBuf,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table)]
    pub output: Format,
    /// Write one MiniCluster manifest per planned MiniCluster into this directory.
    #[arg(long)]
    pub emit: Option<PathBuf>,
    /// Write a Gantt chart of the plan (SVG) to this file.
    #[arg(long)]
    pub svg: Option<PathBuf>,
    /// What to minimise: cost (node-seconds, makespan within --max-stretch
    /// of one MiniCluster's), makespan, or balanced.
    #[arg(long, value_enum, default_value_t = Objective::Cost)]
    pub objective: Objective,
    /// With `--objective cost`: the most the makespan may grow over the single-MiniCluster plan's.
    #[arg(long, default_value_t = 1.2)]
    pub max_stretch: f64,
    /// The cluster: a `phalanx simulate` scenario (built-in name or file), instead of the workflow's own.
    #[arg(long)]
    pub cluster: Option<String>,
    /// Namespace of the emitted MiniClusters.
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// Seed of the local search.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Whether the text is GraphViz DOT rather than YAML or JSON.
fn looks_like_dot(path: &Path, text: &str) -> bool {
    if matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("dot" | "gv")
    ) {
        return true;
    }
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("//") && !l.starts_with('#'))
        .unwrap_or("");
    let word = first
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("");
    ["digraph", "strict"].contains(&word.to_ascii_lowercase().as_str())
}

/// Loads the pools of a scenario: a file next to the workflow, a file, or a built-in name.
fn scenario_pools(name: &str, base: Option<&Path>) -> anyhow::Result<Vec<workflow::Pool>> {
    let near = base.map(|b| b.join(name)).filter(|p| p.is_file());
    let target = near.map_or_else(|| name.to_owned(), |p| p.to_string_lossy().into_owned());
    let scenario = phalanx_sim::load_scenario(&target)
        .with_context(|| format!("loading the cluster from scenario {name:?}"))?;
    Ok(workflow::pools_from_scenario(&scenario)?)
}

/// Parses and checks a workflow from text; `cluster` (a scenario) replaces the file's own.
pub fn load_text(path: &Path, text: &str, cluster: Option<&str>) -> anyhow::Result<Workflow> {
    let spec: WorkflowSpec = if looks_like_dot(path, text) {
        dot::parse(text)?
    } else {
        WorkflowSpec::parse(text)?
    };
    let base = path.parent();
    let pools = match (cluster, &spec.cluster) {
        (Some(name), _) => scenario_pools(name, None)?,
        (None, Some(ClusterSource::Scenario(name))) => scenario_pools(name, base)?,
        (None, Some(ClusterSource::Pools(pools))) => pools.clone(),
        (None, None) => anyhow::bail!(
            "the workflow names no cluster: give --cluster SCENARIO (or `cluster` in the file)"
        ),
    };
    let mut wf = spec.check(pools)?;
    if wf.name == "workflow"
        && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
    {
        wf.name = planner::dns_name(stem);
    }
    ClusterGraph::new(&wf.pools).refine_hosts(&mut wf)?;
    Ok(wf)
}

/// Reads, parses and checks a workflow file.
pub fn load(path: &Path, cluster: Option<&str>) -> anyhow::Result<Workflow> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    if size > MAX_INPUT as u64 {
        anyhow::bail!("{} is {size} bytes; at most {MAX_INPUT}", path.display());
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    load_text(path, &text, cluster).with_context(|| format!("in workflow {}", path.display()))
}

/// Plans a checked workflow and replays the plan on the resource graph.
pub fn plan_checked(wf: &Workflow, opts: &Options) -> anyhow::Result<Outcome> {
    let out = planner::plan(wf, opts)?;
    out.plan
        .check(wf)
        .map_err(|e| anyhow::anyhow!("internal error, the plan breaks a rule: {e}"))?;
    ClusterGraph::new(&wf.pools)
        .verify(wf, &out.plan)
        .map_err(|e| anyhow::anyhow!("the plan does not fit the resource graph: {e}"))?;
    Ok(out)
}

/// Runs `phalanx plan`.
pub fn run(args: PlanArgs) -> anyhow::Result<()> {
    if !(args.max_stretch.is_finite() && args.max_stretch >= 1.0) {
        anyhow::bail!(
            "--max-stretch must be a number >= 1, not {}",
            args.max_stretch
        );
    }
    let wf = load(&args.workflow, args.cluster.as_deref())?;
    let opts = Options {
        objective: args.objective,
        max_stretch: args.max_stretch,
        seed: args.seed,
        ..Options::default()
    };
    let out = plan_checked(&wf, &opts)?;
    let report = Report::new(&wf, &out);
    let text = match args.output {
        Format::Table => report.table(),
        Format::Json => serde_json::to_string_pretty(&report)? + "\n",
        Format::Yaml => serde_yaml_ng::to_string(&report)?,
    };
    print!("{text}");
    if let Some(dir) = &args.emit {
        let paths = emit::write_all(&wf, &out.plan, dir, &args.namespace)?;
        eprintln!(
            "wrote {} MiniCluster manifests to {}",
            paths.len(),
            dir.display()
        );
    }
    if let Some(file) = &args.svg {
        let hours = |ms: i128| ms as f64 / 3.6e6;
        let title = format!(
            "{}: {} MiniClusters, {:.2} node-hours, makespan {} (one per step: {:.2}, {}; one for everything: {:.2}, {})",
            wf.name,
            out.plan.miniclusters.len(),
            hours(out.plan.node_ms),
            output::clock(out.plan.makespan_ms as f64 / 1000.0),
            hours(out.per_step.node_ms),
            output::clock(out.per_step.makespan_ms as f64 / 1000.0),
            hours(out.single.node_ms),
            output::clock(out.single.makespan_ms as f64 / 1000.0),
        );
        std::fs::write(file, svg::gantt(&wf, &out.plan, &title))
            .with_context(|| format!("writing {}", file.display()))?;
        eprintln!("wrote {}", file.display());
    }
    Ok(())
}
