//! The plan as a report: a table for people, JSON and YAML for programs.

use serde::Serialize;

use crate::plan::Cost;
use crate::planner::{Objective, Outcome};
use crate::workflow::Workflow;

/// The whole report (the JSON and YAML output).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Workflow name.
    pub workflow: String,
    /// What was minimised.
    pub objective: Objective,
    /// The planned MiniClusters, by up time.
    pub miniclusters: Vec<McReport>,
    /// Every step, in workflow order.
    pub steps: Vec<StepReport>,
    /// Sum over MiniClusters of nodes x up time.
    pub node_seconds: f64,
    /// End of the last step, from the plan's start.
    pub makespan_s: f64,
    /// The two extremes.
    pub baselines: Baselines,
}

/// One MiniCluster.
#[derive(Debug, Clone, Serialize)]
pub struct McReport {
    /// Name.
    pub name: String,
    /// Node pool.
    pub pool: String,
    /// Nodes (`spec.size`).
    pub nodes: u32,
    /// Container image.
    pub image: String,
    /// When it is created (bring-up starts).
    pub up_at_s: f64,
    /// When it is deleted.
    pub down_at_s: f64,
    /// Its steps, by start time.
    pub steps: Vec<String>,
}

/// One step.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// Name.
    pub name: String,
    /// Its MiniCluster.
    pub minicluster: String,
    /// Start.
    pub start_s: f64,
    /// End.
    pub end_s: f64,
}

/// The extremes the plan is measured against.
#[derive(Debug, Clone, Serialize)]
pub struct Baselines {
    /// One MiniCluster per step, asked for when the step is ready.
    pub per_step: CostReport,
    /// One MiniCluster for everything, up for the whole run.
    pub single: CostReport,
}

/// Totals of a baseline.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CostReport {
    /// Node-seconds.
    pub node_seconds: f64,
    /// Makespan.
    pub makespan_s: f64,
}

fn secs(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

fn cost(c: Cost) -> CostReport {
    CostReport {
        node_seconds: c.node_ms as f64 / 1000.0,
        makespan_s: secs(c.makespan_ms),
    }
}

impl Report {
    /// The report of an outcome.
    pub fn new(wf: &Workflow, out: &Outcome) -> Report {
        let plan = &out.plan;
        Report {
            workflow: wf.name.clone(),
            objective: out.objective,
            miniclusters: plan
                .miniclusters
                .iter()
                .map(|m| McReport {
                    name: m.name.clone(),
                    pool: wf.pools[m.pool].name.clone(),
                    nodes: m.size,
                    image: m.image.clone(),
                    up_at_s: secs(m.up_ms),
                    down_at_s: secs(m.down_ms),
                    steps: m.steps.iter().map(|&s| wf.steps[s].name.clone()).collect(),
                })
                .collect(),
            steps: plan
                .steps
                .iter()
                .enumerate()
                .map(|(i, s)| StepReport {
                    name: wf.steps[i].name.clone(),
                    minicluster: plan.miniclusters[s.minicluster].name.clone(),
                    start_s: secs(s.start_ms),
                    end_s: secs(s.end_ms),
                })
                .collect(),
            node_seconds: plan.node_ms as f64 / 1000.0,
            makespan_s: secs(plan.makespan_ms),
            baselines: Baselines {
                per_step: cost(out.per_step),
                single: cost(out.single),
            },
        }
    }

    /// The table: MiniClusters, then totals against both extremes.
    pub fn table(&self) -> String {
        let mut rows: Vec<[String; 7]> = vec![[
            "MINICLUSTER".into(),
            "POOL".into(),
            "NODES".into(),
            "IMAGE".into(),
            "UP".into(),
            "DOWN".into(),
            "STEPS".into(),
        ]];
        for m in &self.miniclusters {
            rows.push([
                m.name.clone(),
                m.pool.clone(),
                m.nodes.to_string(),
                m.image.clone(),
                clock(m.up_at_s),
                clock(m.down_at_s),
                m.steps.join(", "),
            ]);
        }
        let mut out = columns(&rows);
        out.push('\n');
        let plan = CostReport {
            node_seconds: self.node_seconds,
            makespan_s: self.makespan_s,
        };
        let mut totals: Vec<[String; 7]> = vec![[
            "PLAN".into(),
            "MINICLUSTERS".into(),
            "NODE-SECONDS".into(),
            "NODE-HOURS".into(),
            "VS PLAN".into(),
            "MAKESPAN".into(),
            "VS PLAN".into(),
        ]];
        let per_step_count = self.steps.len();
        for (name, count, c) in [
            (
                format!("this plan ({})", objective_name(self.objective)),
                self.miniclusters.len(),
                plan,
            ),
            (
                "one per step".to_owned(),
                per_step_count,
                self.baselines.per_step,
            ),
            ("one for everything".to_owned(), 1, self.baselines.single),
        ] {
            totals.push([
                name,
                count.to_string(),
                format!("{:.0}", c.node_seconds),
                format!("{:.2}", c.node_seconds / 3600.0),
                ratio(c.node_seconds, plan.node_seconds),
                clock(c.makespan_s),
                ratio(c.makespan_s, plan.makespan_s),
            ]);
        }
        out.push_str(&columns(&totals));
        out
    }
}

fn objective_name(o: Objective) -> &'static str {
    match o {
        Objective::Cost => "cost",
        Objective::Makespan => "makespan",
        Objective::Balanced => "balanced",
    }
}

fn ratio(x: f64, base: f64) -> String {
    if base <= 0.0 {
        return "-".into();
    }
    format!("{:.2}x", x / base)
}

/// Seconds as `m:ss` or `h:mm:ss`.
pub fn clock(s: f64) -> String {
    let total = s.round() as i64;
    let (h, m, sec) = (total / 3600, (total / 60) % 60, total % 60);
    if h > 0 {
        format!("{h}:{m:02}:{sec:02}")
    } else {
        format!("{m}:{sec:02}")
    }
}

/// Left-aligned columns, two spaces apart; the last column is not padded.
fn columns<const N: usize>(rows: &[[String; N]]) -> String {
    let mut width = [0usize; N];
    for r in rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (k, c) in r.iter().enumerate() {
            line.push_str(c);
            if k + 1 < N {
                line.extend(std::iter::repeat_n(' ', width[k] - c.chars().count() + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
