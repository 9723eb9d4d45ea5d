//! How far the heuristic is from the exhaustive optimum on generated DAGs.
//!
//! `cargo run --release -p phalanx-plan --example plan_gap`

use phalanx_plan::generate::{self, Shape};
use phalanx_plan::planner::{self, Objective, Options};

fn main() -> anyhow::Result<()> {
    for (label, opts) in [
        (
            "cost, no makespan limit",
            Options {
                max_stretch: 1e6,
                ..Options::default()
            },
        ),
        ("cost, makespan <= 1.2x single", Options::default()),
        (
            "makespan",
            Options {
                objective: Objective::Makespan,
                ..Options::default()
            },
        ),
    ] {
        for steps in [6, 8, 10] {
            let (mut sum, mut worst, mut exact, mut runs) = (0.0, 1.0f64, 0, 0);
            for seed in 0..20 {
                let shape = Shape {
                    steps,
                    cpu_nodes: 6,
                    gpu_nodes: 3,
                    images: 3,
                    window: 4,
                };
                let wf = generate::workflow(seed, shape)?;
                let h = planner::plan(&wf, &opts)?.plan;
                let o = planner::optimum(&wf, &opts)?.plan;
                let ratio = match opts.objective {
                    Objective::Makespan => h.makespan_ms as f64 / o.makespan_ms as f64,
                    _ => h.node_ms as f64 / o.node_ms as f64,
                };
                sum += ratio;
                worst = worst.max(ratio);
                exact += usize::from(ratio <= 1.0 + 1e-12);
                runs += 1;
            }
            println!(
                "{label:<30} {steps:>2} steps: heuristic/optimum mean {:.4}, worst {:.4}, optimal in {exact}/{runs}",
                sum / f64::from(runs),
                worst
            );
        }
    }
    Ok(())
}
