//! The cluster as fluxion-core's pod-group graph, and the plan checked on it:
//! every MiniCluster, at the time it comes up, is matched as one gang of
//! `size` pods on the nodes of its pool, and its nodes are given back when it
//! goes down.
//!
//! Each node holds at most one MiniCluster pod (`max_pods: 1`): a Flux broker
//! owns its node, so a MiniCluster of size 4 is 4 distinct nodes, and the
//! matcher, not the planner's own counting, has the last word on whether the
//! plan fits.

use fluxion_core::group::{
    Demand, GroupGraph, GroupRequest, NodeFilter, NodeId, NodeSpec, NumaSpec, PodClaim, PodClass,
};

use crate::plan::Plan;
use crate::workflow::{Pool, Step, Workflow, WorkflowError};

/// The cluster's graph and which nodes belong to which pool.
pub struct ClusterGraph {
    graph: GroupGraph,
    pool_nodes: Vec<Vec<NodeId>>,
}

/// `total` split over `parts`, the remainder going to the first parts.
fn share(total: u64, parts: u32, i: u32) -> u64 {
    let parts = u64::from(parts.max(1));
    total / parts + u64::from(u64::from(i) < total % parts)
}

impl ClusterGraph {
    /// Builds the graph of the workflow's pools: `NAME-i` nodes, one zone and rack per pool.
    pub fn new(pools: &[Pool]) -> Self {
        let mut graph = GroupGraph::new();
        let mut pool_nodes = Vec::with_capacity(pools.len());
        for pool in pools {
            let mut ids = Vec::with_capacity(pool.count as usize);
            for i in 0..pool.count {
                let zones = pool.numa_zones.max(1);
                let numa = (0..zones)
                    .map(|z| NumaSpec {
                        cpu_millis: share(pool.cpu_millis, zones, z),
                        gpus: share(pool.gpus, zones, z),
                    })
                    .collect();
                ids.push(graph.upsert_node(NodeSpec {
                    name: format!("{}-{i}", pool.name),
                    zone: pool.name.clone(),
                    rack: pool.name.clone(),
                    max_pods: 1,
                    memory_bytes: pool.memory_bytes,
                    numa,
                    extended: Vec::new(),
                    single_numa: pool.single_numa,
                    schedulable: true,
                }));
            }
            pool_nodes.push(ids);
        }
        ClusterGraph { graph, pool_nodes }
    }

    fn request(&self, pool: usize, demand: Demand, count: u32) -> GroupRequest {
        GroupRequest {
            classes: vec![PodClass {
                demand,
                count,
                filter: NodeFilter::Only(self.pool_nodes.get(pool).cloned().unwrap_or_default()),
            }],
        }
    }

    /// Drops from each step's pools those the matcher says can never host it
    /// (NUMA alignment can refuse what plain sums allow); errors name a step
    /// left with none.
    pub fn refine_hosts(&mut self, wf: &mut Workflow) -> Result<(), WorkflowError> {
        for (i, step) in wf.steps.iter_mut().enumerate() {
            for p in 0..wf.pools.len() {
                if step.pools & (1 << p) == 0 {
                    continue;
                }
                let req = self.request(p, demand_of(step), step.nodes);
                if self.graph.satisfiable(&req).is_err() {
                    step.pools &= !(1 << p);
                }
            }
            if step.pools == 0 {
                return Err(WorkflowError {
                    path: format!("steps[{i}]"),
                    message: format!(
                        "step {:?}: no node pool can host it on the resource graph (NUMA alignment)",
                        step.name
                    ),
                });
            }
        }
        Ok(())
    }

    /// Replays the plan on the graph: MiniClusters come up and go down in
    /// time order (down first at equal times), each matched as one gang.
    /// Errors name the first MiniCluster that does not fit.
    pub fn verify(&mut self, wf: &Workflow, plan: &Plan) -> Result<(), String> {
        let mut events: Vec<(i64, bool, usize)> = Vec::with_capacity(plan.miniclusters.len() * 2);
        for (m, mc) in plan.miniclusters.iter().enumerate() {
            events.push((mc.up_ms, true, m));
            events.push((mc.down_ms, false, m));
        }
        // At equal times, `false` (down) sorts before `true` (up).
        events.sort();
        let mut held: Vec<Vec<PodClaim>> = vec![Vec::new(); plan.miniclusters.len()];
        for (t, up, m) in events {
            let mc = &plan.miniclusters[m];
            if up {
                let demand = mc_demand(wf, &mc.steps);
                let req = self.request(mc.pool, demand, mc.size);
                let placement = self.graph.match_group(&req).map_err(|e| {
                    format!(
                        "MiniCluster {} ({} x {}) does not fit at {}s: {e}",
                        mc.name,
                        mc.size,
                        wf.pools[mc.pool].name,
                        t / 1000
                    )
                })?;
                let claims: Vec<PodClaim> = placement.iter().cloned().collect();
                for c in &claims {
                    self.graph.take(c);
                }
                held[m] = claims;
            } else {
                for c in std::mem::take(&mut held[m]) {
                    self.graph.give(&c);
                }
            }
        }
        Ok(())
    }
}

/// What one node of a step asks.
pub fn demand_of(step: &Step) -> Demand {
    Demand {
        cpu_millis: step.cpu_millis,
        memory_bytes: step.memory_bytes,
        gpus: step.gpus,
        extended: Vec::new(),
    }
}

/// What each pod of a MiniCluster asks: the most any of its steps asks per node.
pub fn mc_demand(wf: &Workflow, steps: &[usize]) -> Demand {
    let mut d = Demand::default();
    for &s in steps {
        let step = &wf.steps[s];
        d.cpu_millis = d.cpu_millis.max(step.cpu_millis);
        d.memory_bytes = d.memory_bytes.max(step.memory_bytes);
        d.gpus = d.gpus.max(step.gpus);
    }
    d
}
