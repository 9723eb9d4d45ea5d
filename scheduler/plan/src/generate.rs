//! Seeded random workflows, for property tests, the heuristic's gap report
//! and timing: CPU and GPU pools, images tied to a kind of node, steps of
//! 1 to 4 nodes and 1 to 30 minutes, each after up to three recent steps.

use crate::planner::Rng;
use crate::workflow::{ClusterSource, Pool, StepSpec, Workflow, WorkflowError, WorkflowSpec};

/// Shape of a generated workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Steps.
    pub steps: usize,
    /// Nodes of the CPU pool.
    pub cpu_nodes: u32,
    /// Nodes of the GPU pool.
    pub gpu_nodes: u32,
    /// Distinct images (each for CPU or GPU steps).
    pub images: usize,
    /// How far back (in steps) a dependency may reach.
    pub window: usize,
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            steps: 8,
            cpu_nodes: 8,
            gpu_nodes: 4,
            images: 3,
            window: 6,
        }
    }
}

/// A random workflow of `shape`, the same for the same seed.
pub fn workflow(seed: u64, shape: Shape) -> Result<Workflow, WorkflowError> {
    let mut rng = Rng::new(seed);
    let pools = vec![
        Pool {
            name: "cpu".into(),
            count: shape.cpu_nodes.max(4),
            cpu_millis: 32_000,
            memory_bytes: 128 << 30,
            gpus: 0,
            numa_zones: 1,
            single_numa: false,
        },
        Pool {
            name: "gpu".into(),
            count: shape.gpu_nodes.max(2),
            cpu_millis: 32_000,
            memory_bytes: 256 << 30,
            gpus: 8,
            numa_zones: 1,
            single_numa: false,
        },
    ];
    let images = shape.images.max(1);
    let mut steps = Vec::with_capacity(shape.steps);
    for i in 0..shape.steps {
        let image = rng.below(images);
        // Every third image is a GPU image.
        let gpu = image % 3 == 2;
        let max_nodes = if gpu { pools[1].count.min(4) } else { 4 };
        let nodes = 1 + rng.below(max_nodes as usize) as u32;
        let mut after = Vec::new();
        if i > 0 {
            for _ in 0..rng.below(4) {
                let back = 1 + rng.below(shape.window.max(1).min(i));
                let dep = format!("s{}", i - back);
                if !after.contains(&dep) {
                    after.push(dep);
                }
            }
        }
        steps.push(StepSpec {
            name: format!("s{i}"),
            image: format!("img{image}"),
            nodes,
            cpu_millis: 8_000 * (1 + rng.below(3) as u64),
            memory_bytes: 16 << 30,
            gpus: if gpu { 1 + rng.below(4) as u64 } else { 0 },
            duration_ms: 60_000 * (1 + rng.below(30) as i64),
            after,
            command: None,
        });
    }
    WorkflowSpec {
        name: Some(format!("gen{seed}")),
        cluster: Some(ClusterSource::Pools(pools.clone())),
        overhead_ms: 180_000,
        steps,
    }
    .check(pools)
}
