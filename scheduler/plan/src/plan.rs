//! A plan: MiniClusters with their up and down times, and each step's
//! MiniCluster and run time; and an independent check of the plan's rules.

use crate::workflow::Workflow;

/// One planned MiniCluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MiniCluster {
    /// Name (a Kubernetes object name).
    pub name: String,
    /// Index of its node pool.
    pub pool: usize,
    /// Nodes (Flux brokers, one pod per node).
    pub size: u32,
    /// Container image of its steps.
    pub image: String,
    /// When it is asked for (its bring-up starts), ms from the plan's start.
    pub up_ms: i64,
    /// When it is deleted: the end of its last step, ms.
    pub down_ms: i64,
    /// Its steps, by start time.
    pub steps: Vec<usize>,
}

/// When and where one step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepTime {
    /// Index of its MiniCluster in [`Plan::miniclusters`].
    pub minicluster: usize,
    /// Start, ms.
    pub start_ms: i64,
    /// End, ms.
    pub end_ms: i64,
}

/// A whole plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// MiniClusters by up time.
    pub miniclusters: Vec<MiniCluster>,
    /// Per step (workflow order).
    pub steps: Vec<StepTime>,
    /// Sum over MiniClusters of size x (down - up), node-milliseconds.
    pub node_ms: i128,
    /// End of the last step, ms.
    pub makespan_ms: i64,
}

/// Node-seconds and makespan of a baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    /// Node-milliseconds.
    pub node_ms: i128,
    /// Makespan, ms.
    pub makespan_ms: i64,
}

impl Plan {
    /// The plan's totals.
    pub fn cost(&self) -> Cost {
        Cost {
            node_ms: self.node_ms,
            makespan_ms: self.makespan_ms,
        }
    }

    /// Checks every rule of a plan, independently of how it was made:
    /// dependencies, each step inside an up MiniCluster of its image on a
    /// pool that hosts it, a MiniCluster never running more nodes of steps
    /// than its size, each pool never asked for more nodes than it has, and
    /// the totals. Says what is broken first.
    pub fn check(&self, wf: &Workflow) -> Result<(), String> {
        if self.steps.len() != wf.steps.len() {
            return Err(format!(
                "plan has {} steps, workflow {}",
                self.steps.len(),
                wf.steps.len()
            ));
        }
        for (i, st) in self.steps.iter().enumerate() {
            let step = &wf.steps[i];
            if st.end_ms - st.start_ms != step.duration_ms {
                return Err(format!(
                    "step {}: runs {} ms, not its duration",
                    step.name,
                    st.end_ms - st.start_ms
                ));
            }
            for &d in &step.after {
                if st.start_ms < self.steps[d].end_ms {
                    return Err(format!(
                        "step {} starts at {} ms, before {} ends at {} ms",
                        step.name, st.start_ms, wf.steps[d].name, self.steps[d].end_ms
                    ));
                }
            }
            let Some(mc) = self.miniclusters.get(st.minicluster) else {
                return Err(format!(
                    "step {}: no MiniCluster {}",
                    step.name, st.minicluster
                ));
            };
            if !mc.steps.contains(&i) {
                return Err(format!("step {}: not listed by {}", step.name, mc.name));
            }
            if st.start_ms < mc.up_ms + wf.overhead_ms || st.end_ms > mc.down_ms {
                return Err(format!(
                    "step {}: runs outside {}'s up time",
                    step.name, mc.name
                ));
            }
            if mc.image != step.image {
                return Err(format!(
                    "step {}: image differs from {}'s",
                    step.name, mc.name
                ));
            }
            if step.pools & (1 << mc.pool) == 0 || step.nodes > mc.size {
                return Err(format!("step {}: {} cannot host it", step.name, mc.name));
            }
        }
        let mut node_ms: i128 = 0;
        let mut makespan = 0;
        let mut pool_events: Vec<Vec<(i64, i64)>> = vec![Vec::new(); wf.pools.len()];
        for (m, mc) in self.miniclusters.iter().enumerate() {
            if mc.up_ms < 0 || mc.down_ms < mc.up_ms {
                return Err(format!(
                    "{}: up at {} ms, down at {} ms",
                    mc.name, mc.up_ms, mc.down_ms
                ));
            }
            let mut inner: Vec<(i64, i64)> = Vec::with_capacity(mc.steps.len() * 2);
            for &s in &mc.steps {
                let st = self
                    .steps
                    .get(s)
                    .ok_or_else(|| format!("{}: no step {s}", mc.name))?;
                if st.minicluster != m {
                    return Err(format!(
                        "{}: lists step {} of another",
                        mc.name, wf.steps[s].name
                    ));
                }
                inner.push((st.start_ms, i64::from(wf.steps[s].nodes)));
                inner.push((st.end_ms, -i64::from(wf.steps[s].nodes)));
            }
            if peak(inner) > i64::from(mc.size) {
                return Err(format!(
                    "{}: its steps need more than {} nodes at once",
                    mc.name, mc.size
                ));
            }
            node_ms += i128::from(mc.size) * i128::from(mc.down_ms - mc.up_ms);
            makespan = makespan.max(mc.down_ms);
            let events = pool_events
                .get_mut(mc.pool)
                .ok_or_else(|| format!("{}: no pool {}", mc.name, mc.pool))?;
            events.push((mc.up_ms, i64::from(mc.size)));
            events.push((mc.down_ms, -i64::from(mc.size)));
        }
        for (p, events) in pool_events.into_iter().enumerate() {
            let most = peak(events);
            if most > i64::from(wf.pools[p].count) {
                return Err(format!(
                    "pool {} is asked for {most} nodes at once; it has {}",
                    wf.pools[p].name, wf.pools[p].count
                ));
            }
        }
        if node_ms != self.node_ms || makespan != self.makespan_ms {
            return Err("totals do not add up".into());
        }
        Ok(())
    }
}

/// The highest running sum of (time, delta) events, ends before starts at equal times.
fn peak(mut events: Vec<(i64, i64)>) -> i64 {
    events.sort();
    let mut level = 0;
    let mut most = 0;
    for (_, d) in events {
        level += d;
        most = most.max(level);
    }
    most
}
