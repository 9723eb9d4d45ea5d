//! Times `phalanx plan` on generated workflows of 100 to 5,000 steps.
//!
//! `cargo run --release -p phalanx-plan --example plan_bench`

use std::time::Instant;

use phalanx_plan::generate::{self, Shape};
use phalanx_plan::planner::{self, Options};

fn main() -> anyhow::Result<()> {
    println!(
        "steps  miniclusters  plan-ms  node-hours  vs-per-step  vs-single  makespan-vs-single"
    );
    // Sizes from the command line, e.g. `plan_bench 1000`; by default 100 to 5,000.
    let mut sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    if sizes.is_empty() {
        sizes = vec![100, 1_000, 2_000, 5_000];
    }
    for steps in sizes {
        let shape = Shape {
            steps,
            cpu_nodes: 64,
            gpu_nodes: 16,
            images: 6,
            window: 30,
        };
        let wf = generate::workflow(7, shape)?;
        let t = Instant::now();
        let out = planner::plan(&wf, &Options::default())?;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        out.plan.check(&wf).map_err(anyhow::Error::msg)?;
        let p = &out.plan;
        println!(
            "{steps:>5}  {:>12}  {ms:>7.0}  {:>10.1}  {:>11.3}  {:>9.3}  {:>18.3}",
            p.miniclusters.len(),
            p.node_ms as f64 / 3.6e6,
            p.node_ms as f64 / out.per_step.node_ms as f64,
            p.node_ms as f64 / out.single.node_ms as f64,
            p.makespan_ms as f64 / out.single.makespan_ms as f64,
        );
    }
    Ok(())
}
