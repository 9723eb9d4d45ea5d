//! The planner: which steps share a MiniCluster, on which pool, and when
//! each step runs.
//!
//! A solution is an assignment: each step to a group (a future MiniCluster)
//! with a pool and a size cap. A decoder turns it into times: steps are
//! placed in the order they become ready (longest remaining path first),
//! each at the earliest time when its group has room under its cap and the
//! pool has room for the group's nodes over its whole up time (grown to the
//! left by the overhead before its first step, to the right to its last
//! step). Groups are kept in one piece: a gap inside a MiniCluster costs its
//! nodes idle, and the search splits the group when a new bring-up is
//! cheaper than the gap.
//!
//! The assignment starts from greedy constructions (each step joins the
//! group, or opens the new one, that adds the fewest node-seconds, with
//! several weights on delaying the step) and is improved by local search:
//! move a step, merge or split groups, change a group's pool or cap.
//! For at most [`OPTIMUM_MAX_STEPS`] steps, [`optimum`] tries every
//! assignment to bound how far the heuristic is.

use std::cell::Cell;
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};

use crate::plan::{Cost, MiniCluster, Plan, StepTime};
use crate::workflow::Workflow;

/// What the plan minimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Objective {
    /// Node-seconds, with the makespan kept within `max_stretch` of the single-MiniCluster plan's.
    #[default]
    Cost,
    /// Makespan first, node-seconds second.
    Makespan,
    /// Node-seconds and makespan, each relative to the single-MiniCluster plan, summed.
    Balanced,
}

/// How to plan.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// What to minimise.
    pub objective: Objective,
    /// With [`Objective::Cost`]: the makespan may be at most this times the single-MiniCluster plan's.
    pub max_stretch: f64,
    /// Seed of the local search.
    pub seed: u64,
    /// Work of the local search, in step placements (each try re-places every step).
    pub effort: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            objective: Objective::Cost,
            max_stretch: 1.2,
            seed: 1,
            effort: 150_000,
        }
    }
}

/// Most steps [`optimum`] accepts.
pub const OPTIMUM_MAX_STEPS: usize = 12;

/// Errors of the planner.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// No placement was found (should not happen for a checked workflow).
    #[error("no plan found: {0}")]
    NoPlan(String),
    /// [`optimum`] was asked for too many steps.
    #[error("exhaustive search takes at most {OPTIMUM_MAX_STEPS} steps, not {0}")]
    TooManySteps(usize),
}

/// The plan and the two extremes it is measured against.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The plan.
    pub plan: Plan,
    /// One MiniCluster per step, each asked for when its step is ready.
    pub per_step: Cost,
    /// One MiniCluster for everything, up from the start to the last step's end.
    pub single: Cost,
    /// The objective planned for.
    pub objective: Objective,
}

/// A step function of time: `pts[k].1` holds from `pts[k].0` to the next point.
#[derive(Debug, Clone)]
struct Profile {
    pts: Vec<(i64, i64)>,
}

impl Profile {
    fn new() -> Self {
        Profile {
            pts: vec![(i64::MIN, 0)],
        }
    }

    fn seg(&self, t: i64) -> usize {
        self.pts.partition_point(|p| p.0 <= t).saturating_sub(1)
    }

    /// The highest level over `[a, b)`.
    fn max(&self, a: i64, b: i64) -> i64 {
        if a >= b {
            return 0;
        }
        let mut i = self.seg(a);
        let mut most = self.pts[i].1;
        i += 1;
        while i < self.pts.len() && self.pts[i].0 < b {
            most = most.max(self.pts[i].1);
            i += 1;
        }
        most
    }

    fn split(&mut self, t: i64) -> usize {
        let i = self.seg(t);
        if self.pts[i].0 == t {
            return i;
        }
        self.pts.insert(i + 1, (t, self.pts[i].1));
        i + 1
    }

    fn add(&mut self, a: i64, b: i64, amount: i64) {
        if a >= b || amount == 0 {
            return;
        }
        let i = self.split(a);
        let j = self.split(b);
        for p in &mut self.pts[i..j] {
            p.1 += amount;
        }
    }

    /// Where the last segment over `[a, b)` with a level above `limit` ends.
    fn last_over(&self, a: i64, b: i64, limit: i64) -> Option<i64> {
        if a >= b {
            return None;
        }
        let start = self.seg(a);
        let mut i = start;
        let mut clear = None;
        while i < self.pts.len() && (i == start || self.pts[i].0 < b) {
            if self.pts[i].1 > limit {
                clear = Some(self.pts.get(i + 1).map_or(i64::MAX, |p| p.0));
            }
            i += 1;
        }
        clear
    }
}

/// A group of the assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct GroupDef {
    pool: usize,
    cap: u32,
}

/// An assignment: each step's group, and the groups.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Solution {
    groups: Vec<GroupDef>,
    of_step: Vec<usize>,
}

impl Solution {
    /// Drops empty groups and numbers the rest in order of first use.
    fn compact(&mut self) {
        let mut map = vec![usize::MAX; self.groups.len()];
        let mut groups = Vec::new();
        for g in &mut self.of_step {
            if map[*g] == usize::MAX {
                map[*g] = groups.len();
                groups.push(self.groups[*g]);
            }
            *g = map[*g];
        }
        self.groups = groups;
    }
}

/// Facts about the workflow the planner reads often.
struct Ctx<'a> {
    wf: &'a Workflow,
    ovh: i64,
    succ: Vec<Vec<usize>>,
    tail: Vec<i64>,
    image: Vec<usize>,
    count: Vec<u32>,
    /// Each step's first choice of pool: the smallest that hosts it.
    home: Vec<usize>,
}

impl<'a> Ctx<'a> {
    fn new(wf: &'a Workflow) -> Self {
        let n = wf.steps.len();
        let mut succ = vec![Vec::new(); n];
        for (i, s) in wf.steps.iter().enumerate() {
            for &d in &s.after {
                succ[d].push(i);
            }
        }
        let mut tail = vec![0i64; n];
        for &i in wf.order.iter().rev() {
            let after = succ[i].iter().map(|&s| tail[s]).max().unwrap_or(0);
            tail[i] = wf.steps[i].duration_ms.saturating_add(after);
        }
        let mut images: HashMap<&str, usize> = HashMap::new();
        let image = wf
            .steps
            .iter()
            .map(|s| {
                let k = images.len();
                *images.entry(s.image.as_str()).or_insert(k)
            })
            .collect();
        let count = wf.pools.iter().map(|p| p.count).collect();
        // Smallest by GPUs, then CPU, then memory: a CPU step prefers CPU nodes.
        let home = wf
            .steps
            .iter()
            .map(|s| {
                (0..wf.pools.len())
                    .filter(|&p| s.pools & (1 << p) != 0)
                    .min_by_key(|&p| {
                        let q = &wf.pools[p];
                        (q.gpus, q.cpu_millis, q.memory_bytes, p)
                    })
                    .unwrap_or(0)
            })
            .collect();
        Ctx {
            wf,
            ovh: wf.overhead_ms,
            succ,
            tail,
            image,
            count,
            home,
        }
    }

    fn hosts(&self, step: usize, pool: usize) -> bool {
        self.wf.steps[step].pools & (1 << pool) != 0
    }

    fn pools_of(&self, step: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.wf.pools.len()).filter(move |&p| self.hosts(step, p))
    }
}

/// A group while steps are being placed.
#[derive(Debug, Clone)]
struct GroupState {
    pool: usize,
    cap: u32,
    min_size: u32,
    size: u32,
    lo: i64,
    hi: i64,
    used: bool,
    usage: Profile,
}

impl GroupState {
    fn new(pool: usize, cap: u32, min_size: u32) -> Self {
        GroupState {
            pool,
            cap,
            min_size,
            size: 0,
            lo: 0,
            hi: 0,
            used: false,
            usage: Profile::new(),
        }
    }

    fn node_ms(&self) -> i128 {
        if self.used {
            i128::from(self.size) * i128::from(self.hi - self.lo)
        } else {
            0
        }
    }
}

/// Whether a step fits a group at a time, and if not, whether later may.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fit {
    /// Yes, with the group at this size.
    Yes(u32),
    /// No; a later time may.
    Retry,
    /// No; not before this time.
    From(i64),
    /// No, at no later time.
    Never,
}

/// Where a step would go.
#[derive(Debug, Clone, Copy)]
struct Spot {
    t: i64,
    size: u32,
}

/// Places steps into groups over time, keeping each pool's nodes in use.
struct Placer<'c, 'a> {
    ctx: &'c Ctx<'a>,
    pools: Vec<Profile>,
    groups: Vec<GroupState>,
    start: Vec<i64>,
    group_of: Vec<usize>,
    prewarm: bool,
}

impl<'c, 'a> Placer<'c, 'a> {
    fn new(ctx: &'c Ctx<'a>, groups: Vec<GroupState>, prewarm: bool) -> Self {
        let n = ctx.wf.steps.len();
        Placer {
            ctx,
            pools: vec![Profile::new(); ctx.count.len()],
            groups,
            start: vec![0; n],
            group_of: vec![usize::MAX; n],
            prewarm,
        }
    }

    /// The size `g` would have with step `j` at `t`, if the group and its
    /// pool have room; else how later times may fare.
    /// `mid_free` is what the pool has free over the group's current up time
    /// (read once per search: the pool does not change during it).
    fn fits(
        &self,
        g: &GroupState,
        j: usize,
        t: i64,
        cap: u32,
        mid_free: &Cell<Option<i64>>,
    ) -> Fit {
        let step = &self.ctx.wf.steps[j];
        let (d, n) = (step.duration_ms, step.nodes);
        let count = i64::from(self.ctx.count[g.pool]);
        let pool = &self.pools[g.pool];
        let Some(end) = t.checked_add(d) else {
            return Fit::Never;
        };
        let ovh = self.ctx.ovh;
        if !g.used {
            let size = g.min_size.max(n);
            if size > cap {
                return Fit::Never;
            }
            if t - ovh < 0 {
                return Fit::Retry;
            }
            // The whole up time must clear the last segment that is too full.
            return match pool.last_over(t - ovh, end, count - i64::from(size)) {
                None => Fit::Yes(size),
                Some(clear) => Fit::From(clear.saturating_add(ovh)),
            };
        }
        let inner = g.usage.max(t, end) + i64::from(n);
        if inner > i64::from(cap) {
            return Fit::Retry;
        }
        let Ok(size) = u32::try_from(inner) else {
            return Fit::Never;
        };
        let size = g.size.max(size);
        let lo = g.lo.min(t - ovh);
        let hi = g.hi.max(end);
        if lo < 0 {
            return Fit::Retry;
        }
        let (s, old) = (i64::from(size), i64::from(g.size));
        if lo < g.lo && pool.max(lo, g.lo) + s > count {
            return Fit::Retry;
        }
        // Read only when the group must grow: its up time may span the whole plan.
        let free = || match mid_free.get() {
            Some(f) => f,
            None => {
                let f = count - pool.max(g.lo, g.hi);
                mid_free.set(Some(f));
                f
            }
        };
        if s > old && s - old > free() {
            return Fit::Retry;
        }
        if hi > g.hi && pool.max(g.hi, hi) + s > count {
            // A later start only lengthens this extension at the same size.
            return if s == old { Fit::Never } else { Fit::Retry };
        }
        Fit::Yes(size)
    }

    /// The earliest spot for step `j` in `g` at or after `ready`.
    fn earliest(&self, g: &GroupState, j: usize, ready: i64, cap: u32) -> Option<Spot> {
        let ovh = self.ctx.ovh;
        let base = if !g.used && !self.prewarm {
            ready.checked_add(ovh)?
        } else {
            ready.max(ovh)
        };
        let mut floor = base;
        let mid_free = Cell::new(None);
        match self.fits(g, j, base, cap, &mid_free) {
            Fit::Yes(size) => return Some(Spot { t: base, size }),
            Fit::Never => return None,
            Fit::Retry => {}
            Fit::From(t) => floor = t,
        }
        // Room can only appear where a level changes: a step of the group
        // ending, or a MiniCluster of the pool going down (its nodes usable
        // by a new bring-up `ovh` earlier than our start). The three sorted
        // sequences of such times are merged lazily: the first fit is
        // usually near, and a pool may have thousands of changes.
        let pool = &self.pools[g.pool];
        let inner = &g.usage.pts[g.usage.seg(base) + 1..];
        let downs = &pool.pts[pool.seg(base) + 1..];
        let later = &pool.pts[pool.seg(base.saturating_sub(ovh)) + 1..];
        let (mut i, mut k, mut l) = (0, 0, 0);
        loop {
            let next = [
                inner.get(i).map(|p| p.0),
                downs.get(k).map(|p| p.0),
                later.get(l).map(|p| p.0.saturating_add(ovh)),
            ]
            .into_iter()
            .flatten()
            .min()?;
            while inner.get(i).is_some_and(|p| p.0 <= next) {
                i += 1;
            }
            while downs.get(k).is_some_and(|p| p.0 <= next) {
                k += 1;
            }
            while later
                .get(l)
                .is_some_and(|p| p.0.saturating_add(ovh) <= next)
            {
                l += 1;
            }
            if next <= base || next < floor {
                continue;
            }
            match self.fits(g, j, next, cap, &mid_free) {
                Fit::Yes(size) => return Some(Spot { t: next, size }),
                Fit::Never => return None,
                Fit::Retry => {}
                Fit::From(t) => floor = floor.max(t),
            }
        }
    }

    fn commit(&mut self, gi: usize, j: usize, spot: Spot) {
        let step = &self.ctx.wf.steps[j];
        let (t, end) = (spot.t, spot.t + step.duration_ms);
        let ovh = self.ctx.ovh;
        let g = &mut self.groups[gi];
        let pool = &mut self.pools[g.pool];
        let s = i64::from(spot.size);
        if !g.used {
            pool.add(t - ovh, end, s);
            g.used = true;
            g.lo = t - ovh;
            g.hi = end;
        } else {
            let (lo, hi) = (g.lo.min(t - ovh), g.hi.max(end));
            pool.add(lo, g.lo, s);
            pool.add(g.lo, g.hi, s - i64::from(g.size));
            pool.add(g.hi, hi, s);
            g.lo = lo;
            g.hi = hi;
        }
        g.size = spot.size;
        g.usage.add(t, end, i64::from(step.nodes));
        self.start[j] = t;
        self.group_of[j] = gi;
    }

    /// Places every step in ready order; `choose` picks the group and spot.
    fn run(
        mut self,
        mut choose: impl FnMut(&mut Self, usize, i64) -> Option<(usize, Spot)>,
    ) -> Option<Self> {
        let ctx = self.ctx;
        let n = ctx.wf.steps.len();
        let mut pending: Vec<usize> = ctx.wf.steps.iter().map(|s| s.after.len()).collect();
        let mut ready = vec![0i64; n];
        let mut heap: BinaryHeap<Reverse<(i64, i64, usize)>> = (0..n)
            .filter(|&i| pending[i] == 0)
            .map(|i| Reverse((0, -ctx.tail[i], i)))
            .collect();
        while let Some(Reverse((r, _, j))) = heap.pop() {
            let (g, spot) = choose(&mut self, j, r)?;
            self.commit(g, j, spot);
            let end = spot.t + ctx.wf.steps[j].duration_ms;
            for &s in &ctx.succ[j] {
                ready[s] = ready[s].max(end);
                pending[s] -= 1;
                if pending[s] == 0 {
                    heap.push(Reverse((ready[s], -ctx.tail[s], s)));
                }
            }
        }
        Some(self)
    }

    /// The plan and the assignment that gives it back (caps at the sizes reached).
    /// Moves steps as late as their successors and their MiniCluster's end
    /// allow (latest first, in reverse dependency order), so MiniClusters
    /// come up later and idle less. No MiniCluster grows or lasts longer,
    /// so node-time only falls, pools stay within capacity, and the
    /// makespan is kept.
    fn settle(&mut self) {
        /// Other start times tried per step, past its latest.
        const TRIES: usize = 8;
        let ctx = self.ctx;
        let wf = ctx.wf;
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); self.groups.len()];
        for (j, &g) in self.group_of.iter().enumerate() {
            if let Some(m) = members.get_mut(g) {
                m.push(j);
            }
        }
        for &j in wf.order.iter().rev() {
            let g = self.group_of[j];
            let d = wf.steps[j].duration_ms;
            let mut latest = self.groups[g].hi - d;
            for &s in &ctx.succ[j] {
                latest = latest.min(self.start[s] - d);
            }
            if latest <= self.start[j] {
                continue;
            }
            let room = |t: i64, start: &[i64]| {
                let mut events: Vec<(i64, i64)> = Vec::new();
                for &m in &members[g] {
                    let (a, b) = (start[m], start[m] + wf.steps[m].duration_ms);
                    if m != j && a < t + d && b > t {
                        let n = i64::from(wf.steps[m].nodes);
                        events.push((a.max(t), n));
                        events.push((b.min(t + d), -n));
                    }
                }
                events.sort_unstable();
                let mut level = 0;
                let mut most = 0;
                for (_, e) in events {
                    level += e;
                    most = most.max(level);
                }
                most + i64::from(wf.steps[j].nodes) <= i64::from(self.groups[g].size)
            };
            // Candidates: the latest start, then just before another member starts.
            let mut candidates: Vec<i64> = members[g]
                .iter()
                .map(|&m| self.start[m] - d)
                .filter(|&t| t > self.start[j] && t < latest)
                .collect();
            candidates.sort_unstable_by(|a, b| b.cmp(a));
            candidates.truncate(TRIES);
            if let Some(t) = std::iter::once(latest)
                .chain(candidates)
                .find(|&t| room(t, &self.start))
            {
                self.start[j] = t;
            }
        }
        for (g, m) in members.iter().enumerate() {
            if let Some(first) = m.iter().map(|&j| self.start[j]).min() {
                self.groups[g].lo = first - ctx.ovh;
            }
        }
    }

    fn finish(mut self) -> (Plan, Solution) {
        self.settle();
        let ctx = self.ctx;
        let wf = ctx.wf;
        let mut order: Vec<usize> = (0..self.groups.len())
            .filter(|&g| self.groups[g].used)
            .collect();
        order.sort_by_key(|&g| (self.groups[g].lo, self.groups[g].hi, g));
        let mut index = vec![usize::MAX; self.groups.len()];
        for (k, &g) in order.iter().enumerate() {
            index[g] = k;
        }
        let base = dns_name(&wf.name);
        let mut miniclusters: Vec<MiniCluster> = order
            .iter()
            .enumerate()
            .map(|(k, &g)| {
                let gs = &self.groups[g];
                MiniCluster {
                    name: format!("{base}-{}-{}", dns_name(&wf.pools[gs.pool].name), k + 1),
                    pool: gs.pool,
                    size: gs.size,
                    image: String::new(),
                    up_ms: gs.lo,
                    down_ms: gs.hi,
                    steps: Vec::new(),
                }
            })
            .collect();
        let mut steps = Vec::with_capacity(wf.steps.len());
        for (j, step) in wf.steps.iter().enumerate() {
            let m = index[self.group_of[j]];
            steps.push(StepTime {
                minicluster: m,
                start_ms: self.start[j],
                end_ms: self.start[j] + step.duration_ms,
            });
            miniclusters[m].steps.push(j);
            miniclusters[m].image.clone_from(&step.image);
        }
        for mc in &mut miniclusters {
            mc.steps.sort_by_key(|&j| (steps[j].start_ms, j));
        }
        let node_ms = miniclusters
            .iter()
            .map(|m| i128::from(m.size) * i128::from(m.down_ms - m.up_ms))
            .sum();
        let makespan_ms = miniclusters.iter().map(|m| m.down_ms).max().unwrap_or(0);
        let solution = Solution {
            groups: order
                .iter()
                .map(|&g| GroupDef {
                    pool: self.groups[g].pool,
                    cap: self.groups[g].size,
                })
                .collect(),
            of_step: self.group_of.iter().map(|&g| index[g]).collect(),
        };
        (
            Plan {
                miniclusters,
                steps,
                node_ms,
                makespan_ms,
            },
            solution,
        )
    }
}

/// A Kubernetes-safe name: lowercase letters, digits and '-'.
pub fn dns_name(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    out.truncate(40);
    let trimmed = out.trim_matches('-');
    if trimmed.is_empty() {
        "wf".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// Times for a fixed assignment.
fn decode(ctx: &Ctx<'_>, sol: &Solution, prewarm: bool) -> Option<(Plan, Solution)> {
    let mut min_size = vec![0u32; sol.groups.len()];
    for (j, &g) in sol.of_step.iter().enumerate() {
        let slot = min_size.get_mut(g)?;
        *slot = (*slot).max(ctx.wf.steps[j].nodes);
    }
    let groups = sol
        .groups
        .iter()
        .zip(&min_size)
        .map(|(d, &m)| GroupState::new(d.pool, d.cap, m))
        .collect();
    let placer = Placer::new(ctx, groups, prewarm).run(|p, j, ready| {
        let g = sol.of_step[j];
        let gs = &p.groups[g];
        if !ctx.hosts(j, gs.pool) {
            return None;
        }
        p.earliest(gs, j, ready, gs.cap).map(|spot| (g, spot))
    })?;
    Some(placer.finish())
}

/// Greedy construction: each step, in ready order, joins the recent group of
/// its image (growing it or waiting inside it) or opens a new one, whichever
/// adds the least node-time plus `weight` x nodes x delay.
fn construct(ctx: &Ctx<'_>, weight: f64) -> Option<(Plan, Solution)> {
    const RECENT: usize = 6;
    let mut recent: HashMap<usize, Vec<usize>> = HashMap::new();
    let placer = Placer::new(ctx, Vec::new(), true).run(|p, j, ready| {
        let step = &ctx.wf.steps[j];
        let nodes = f64::from(step.nodes);
        let mut best: Option<(f64, Option<usize>, usize, Spot)> = None;
        let mut consider = |score: f64, g: Option<usize>, pool: usize, spot: Spot| {
            if best.as_ref().is_none_or(|b| score < b.0) {
                best = Some((score, g, pool, spot));
            }
        };
        let mine = recent.get(&ctx.image[j]).map(Vec::as_slice).unwrap_or(&[]);
        for &g in mine.iter().rev().take(RECENT) {
            let gs = &p.groups[g];
            // Idle for longer than a bring-up: a new MiniCluster is cheaper
            // than keeping this one, and checking it would scan the pool's
            // whole gap.
            if !ctx.hosts(j, gs.pool) || gs.hi.saturating_add(ctx.ovh) < ready {
                continue;
            }
            let full = ctx.count[gs.pool];
            for cap in [full, gs.size] {
                if let Some(spot) = p.earliest(gs, j, ready, cap) {
                    let lo = gs.lo.min(spot.t - ctx.ovh);
                    let hi = gs.hi.max(spot.t + step.duration_ms);
                    let added = i128::from(spot.size) * i128::from(hi - lo) - gs.node_ms();
                    let delay = (spot.t - ready.max(ctx.ovh)) as f64;
                    consider(
                        added as f64 + weight * nodes * delay,
                        Some(g),
                        gs.pool,
                        spot,
                    );
                }
            }
        }
        for pool in ctx.pools_of(j) {
            let gs = GroupState::new(pool, ctx.count[pool], step.nodes);
            if let Some(spot) = p.earliest(&gs, j, ready, gs.cap) {
                let added = i128::from(spot.size) * i128::from(step.duration_ms + ctx.ovh);
                let delay = (spot.t - ready.max(ctx.ovh)) as f64;
                // A new group costs a bring-up: on a tie, join an existing one.
                let tie = if pool == ctx.home[j] { 0.5 } else { 1.0 };
                consider(
                    added as f64 + weight * nodes * delay + tie,
                    None,
                    pool,
                    spot,
                );
            }
        }
        let (_, g, pool, spot) = best?;
        let g = match g {
            Some(g) => g,
            None => {
                p.groups
                    .push(GroupState::new(pool, ctx.count[pool], step.nodes));
                p.groups.len() - 1
            }
        };
        let list = recent.entry(ctx.image[j]).or_default();
        if let Some(at) = list.iter().rposition(|&x| x == g) {
            list.remove(at);
        }
        list.push(g);
        Some((g, spot))
    })?;
    Some(placer.finish())
}

/// A plan's score under the objective: lower is better, compared in order.
#[derive(Debug, Clone, Copy, PartialEq)]
/// The last part is the node-time spent on pools that are not a step's
/// first choice (CPU steps on GPU nodes): it only breaks ties.
struct Score(u8, f64, f64, f64);

impl Score {
    fn cmp(&self, other: &Score) -> Ordering {
        self.0
            .cmp(&other.0)
            .then(self.1.total_cmp(&other.1))
            .then(self.2.total_cmp(&other.2))
            .then(self.3.total_cmp(&other.3))
    }
}

/// How plans are ranked.
#[derive(Debug, Clone)]
struct Judge {
    objective: Objective,
    limit_ms: f64,
    ref_node_ms: f64,
    ref_ms: f64,
    home: Vec<usize>,
}

impl Judge {
    fn new(opts: &Options, single: Cost, ctx: &Ctx<'_>) -> Self {
        Judge {
            objective: opts.objective,
            limit_ms: single.makespan_ms as f64 * opts.max_stretch,
            ref_node_ms: (single.node_ms as f64).max(1.0),
            ref_ms: (single.makespan_ms as f64).max(1.0),
            home: ctx.home.clone(),
        }
    }

    fn score(&self, plan: &Plan) -> Score {
        let ns = plan.node_ms as f64;
        let ms = plan.makespan_ms as f64;
        let away: f64 = plan
            .miniclusters
            .iter()
            .filter(|m| m.steps.iter().any(|&s| self.home[s] != m.pool))
            .map(|m| f64::from(m.size) * (m.down_ms - m.up_ms) as f64)
            .sum();
        match self.objective {
            Objective::Cost if ms > self.limit_ms => Score(1, ms, ns, away),
            Objective::Cost => Score(0, ns, ms, away),
            Objective::Makespan => Score(0, ms, ns, away),
            Objective::Balanced => Score(0, ns / self.ref_node_ms + ms / self.ref_ms, ns, away),
        }
    }
}

/// SplitMix64: a small seeded generator (the search must be reproducible).
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// A random neighbour of `sol`, or `None` when the move picked does not apply.
fn neighbour(ctx: &Ctx<'_>, sol: &Solution, plan: &Plan, rng: &mut Rng) -> Option<Solution> {
    let n = sol.of_step.len();
    let mut next = sol.clone();
    let groups = sol.groups.len();
    // Per group: its steps, and the pools that host all of them (one pass).
    let mut lists: Vec<Vec<usize>> = vec![Vec::new(); groups];
    let mut hosts_all = vec![u64::MAX; groups];
    for (j, &g) in sol.of_step.iter().enumerate() {
        lists[g].push(j);
        hosts_all[g] &= ctx.wf.steps[j].pools;
    }
    let members = |g: usize| lists[g].iter().copied();
    let image_of = |g: usize| lists[g].first().map(|&k| ctx.image[k]);
    let all_host = |g: usize, pool: usize| hosts_all[g] & (1 << pool) != 0;
    let max_nodes = |g: usize| members(g).map(|j| ctx.wf.steps[j].nodes).max().unwrap_or(1);
    match rng.below(6) {
        // Move one step to another group of its image, or to a new one.
        0 | 1 => {
            let j = rng.below(n);
            let targets: Vec<usize> = (0..groups)
                .filter(|&g| g != sol.of_step[j])
                .filter(|&g| ctx.hosts(j, sol.groups[g].pool))
                .filter(|&g| {
                    members(g)
                        .next()
                        .is_some_and(|k| ctx.image[k] == ctx.image[j])
                })
                .collect();
            let pick = rng.below(targets.len() + 1);
            if let Some(&g) = targets.get(pick) {
                next.of_step[j] = g;
                let nodes = ctx.wf.steps[j].nodes;
                if next.groups[g].cap < nodes || rng.below(2) == 0 {
                    next.groups[g].cap = ctx.count[next.groups[g].pool];
                }
            } else {
                let pools: Vec<usize> = ctx.pools_of(j).collect();
                let pool = pools[rng.below(pools.len())];
                next.groups.push(GroupDef {
                    pool,
                    cap: ctx.count[pool],
                });
                next.of_step[j] = groups;
            }
        }
        // Merge a group into another of the same image.
        2 => {
            let a = rng.below(groups);
            let image = image_of(a)?;
            let targets: Vec<usize> = (0..groups)
                .filter(|&b| b != a && all_host(a, sol.groups[b].pool))
                .filter(|&b| image_of(b) == Some(image))
                .collect();
            if targets.is_empty() {
                return None;
            }
            let b = targets[rng.below(targets.len())];
            for j in 0..n {
                if next.of_step[j] == a {
                    next.of_step[j] = b;
                }
            }
            if rng.below(2) == 0 {
                next.groups[b].cap = ctx.count[next.groups[b].pool];
            } else {
                next.groups[b].cap = next.groups[b].cap.max(next.groups[a].cap);
            }
        }
        // Split a group: its later steps (by start time) go to a new one.
        3 => {
            let g = rng.below(groups);
            let mut mine: Vec<usize> = members(g).collect();
            if mine.len() < 2 {
                return None;
            }
            mine.sort_by_key(|&j| plan.steps[j].start_ms);
            let cut = 1 + rng.below(mine.len() - 1);
            let pool = sol.groups[g].pool;
            next.groups.push(GroupDef {
                pool,
                cap: ctx.count[pool],
            });
            for &j in &mine[cut..] {
                next.of_step[j] = groups;
            }
        }
        // Change a group's cap: serial, free, or one node either way.
        4 => {
            let g = rng.below(groups);
            let least = max_nodes(g);
            let full = ctx.count[sol.groups[g].pool];
            let cap = sol.groups[g].cap;
            next.groups[g].cap = match rng.below(4) {
                0 => least,
                1 => full,
                2 => cap.saturating_sub(1).max(least),
                _ => cap.saturating_add(1).min(full),
            };
        }
        // Move a group to another pool that hosts all its steps.
        _ => {
            let g = rng.below(groups);
            let pools: Vec<usize> = (0..ctx.count.len())
                .filter(|&p| p != sol.groups[g].pool && all_host(g, p))
                .collect();
            if pools.is_empty() {
                return None;
            }
            let pool = pools[rng.below(pools.len())];
            next.groups[g] = GroupDef {
                pool,
                cap: sol.groups[g].cap.min(ctx.count[pool]).max(max_nodes(g)),
            };
        }
    }
    next.compact();
    (next != *sol).then_some(next)
}

/// The two extremes as assignments: one MiniCluster per step (on its home
/// pool, sized to it), and one per pool holding every node of it.
fn extremes(ctx: &Ctx<'_>) -> (Solution, Solution) {
    let n = ctx.wf.steps.len();
    let per_step = Solution {
        groups: (0..n)
            .map(|j| GroupDef {
                pool: ctx.home[j],
                cap: ctx.wf.steps[j].nodes,
            })
            .collect(),
        of_step: (0..n).collect(),
    };
    let mut pools: Vec<usize> = ctx.home.clone();
    pools.sort_unstable();
    pools.dedup();
    let single = Solution {
        groups: pools
            .iter()
            .map(|&p| GroupDef {
                pool: p,
                cap: ctx.count[p],
            })
            .collect(),
        of_step: ctx
            .home
            .iter()
            .map(|h| pools.iter().position(|p| p == h).unwrap_or(0))
            .collect(),
    };
    (per_step, single)
}

/// One MiniCluster per step as a plan (each asked for when its step is
/// ready), and the cost of one MiniCluster for everything.
fn baselines(ctx: &Ctx<'_>) -> Result<(Plan, Cost), PlanError> {
    let (per_step, single) = extremes(ctx);
    let (p, _) = decode(ctx, &per_step, false)
        .ok_or_else(|| PlanError::NoPlan("one MiniCluster per step".into()))?;
    let (s, _) = decode(ctx, &single, true)
        .ok_or_else(|| PlanError::NoPlan("one MiniCluster for everything".into()))?;
    // One MiniCluster: every node it has is up from the start to the end.
    let nodes: i128 = s.miniclusters.iter().map(|m| i128::from(m.size)).sum();
    Ok((
        p,
        Cost {
            node_ms: nodes * i128::from(s.makespan_ms),
            makespan_ms: s.makespan_ms,
        },
    ))
}

/// Plans the workflow: greedy constructions, then local search.
pub fn plan(wf: &Workflow, opts: &Options) -> Result<Outcome, PlanError> {
    let ctx = Ctx::new(wf);
    let (per_step_plan, single) = baselines(&ctx)?;
    let per_step = per_step_plan.cost();
    let judge = Judge::new(opts, single, &ctx);
    let mut starts: Vec<(Score, Plan, Solution)> = Vec::new();
    let add = |plan: Plan, sol: Solution, starts: &mut Vec<(Score, Plan, Solution)>| {
        if !starts.iter().any(|s| s.2 == sol) {
            starts.push((judge.score(&plan), plan, sol));
        }
    };
    for weight in [0.0, 0.25, 1.0, 4.0, 1e9] {
        if let Some((plan, sol)) = construct(&ctx, weight) {
            // The decoder's plan of the same assignment: the local search and
            // the exhaustive optimum both live in the decoder's space.
            let (plan, sol) = decode(&ctx, &sol, true).unwrap_or((plan, sol));
            add(plan, sol, &mut starts);
        }
    }
    // One MiniCluster per step starts a search too, so the plan never comes
    // out worse than it (the greedy constructions can all miss it). The
    // other extreme is not a start: it mixes images in one MiniCluster.
    let (per_step_sol, _) = extremes(&ctx);
    if let Some((plan, sol)) = decode(&ctx, &per_step_sol, true) {
        add(plan, sol, &mut starts);
    }
    starts.sort_by(|a, b| a.0.cmp(&b.0));
    // Local search from the best few constructions (it can stall in a
    // local optimum; different starts stall in different ones).
    starts.truncate(3);
    if starts.is_empty() {
        return Err(PlanError::NoPlan(
            "no greedy construction placed every step".into(),
        ));
    }
    let n = wf.steps.len().max(1) as u64;
    let tries = (opts.effort / n / starts.len() as u64).max(10);
    let mut rng = Rng::new(opts.seed ^ 0x5EED_0F5E_A5C4);
    let mut best: Option<(Score, Plan)> = None;
    for (mut score, mut plan, mut sol) in starts {
        for _ in 0..tries {
            let Some(next) = neighbour(&ctx, &sol, &plan, &mut rng) else {
                continue;
            };
            let Some((p, _)) = decode(&ctx, &next, true) else {
                continue;
            };
            let sc = judge.score(&p);
            // Sideways moves are taken: plateaus are common (ties in node-time).
            // The caps stay as chosen (not tightened to the sizes reached), so
            // later moves may still grow a group.
            if sc.cmp(&score) != Ordering::Greater {
                score = sc;
                plan = p;
                sol = next;
            }
        }
        if best
            .as_ref()
            .is_none_or(|b| score.cmp(&b.0) == Ordering::Less)
        {
            best = Some((score, plan));
        }
    }
    let Some(best) = best else {
        return Err(PlanError::NoPlan("local search lost its plan".into()));
    };
    let plan = at_least_per_step(&judge, best, per_step_plan);
    Ok(Outcome {
        plan,
        per_step,
        single,
        objective: opts.objective,
    })
}

/// The better of the plan found and one MiniCluster per step, each asked
/// for when its step is ready: the search decodes with MiniClusters up
/// before their steps are ready, and on some workflows waiting for them
/// costs less.
fn at_least_per_step(judge: &Judge, best: (Score, Plan), per_step: Plan) -> Plan {
    if judge.score(&per_step).cmp(&best.0) == Ordering::Less {
        per_step
    } else {
        best.1
    }
}

/// The best plan over every assignment (each grouping of steps of one image
/// into MiniClusters, each pool that hosts a group, each size cap from one
/// step at a time to all at once), with the same timing rule as the heuristic. Exponential:
/// for at most [`OPTIMUM_MAX_STEPS`] steps, to measure the heuristic.
pub fn optimum(wf: &Workflow, opts: &Options) -> Result<Outcome, PlanError> {
    let n = wf.steps.len();
    if n > OPTIMUM_MAX_STEPS {
        return Err(PlanError::TooManySteps(n));
    }
    let ctx = Ctx::new(wf);
    let (per_step_plan, single) = baselines(&ctx)?;
    let per_step = per_step_plan.cost();
    let judge = Judge::new(opts, single, &ctx);
    let mut best: Option<(Score, Plan)> = None;
    // Restricted growth strings enumerate the set partitions, iteratively.
    let mut rgs = vec![0usize; n];
    loop {
        let blocks = rgs.iter().copied().max().map_or(0, |m| m + 1);
        let mut ok = true;
        let mut hosts = vec![u64::MAX; blocks];
        let mut image = vec![usize::MAX; blocks];
        let mut least = vec![0u32; blocks];
        let mut sum = vec![0u32; blocks];
        for (j, &b) in rgs.iter().enumerate() {
            hosts[b] &= wf.steps[j].pools;
            if image[b] == usize::MAX {
                image[b] = ctx.image[j];
            }
            ok &= image[b] == ctx.image[j];
            least[b] = least[b].max(wf.steps[j].nodes);
            sum[b] = sum[b].saturating_add(wf.steps[j].nodes);
        }
        ok &= hosts.iter().all(|&h| h != 0);
        if ok {
            let options: Vec<Vec<GroupDef>> = (0..blocks)
                .map(|b| {
                    let mut v = Vec::new();
                    for p in (0..wf.pools.len()).filter(|&p| hosts[b] & (1 << p) != 0) {
                        v.push(GroupDef {
                            pool: p,
                            cap: ctx.count[p],
                        });
                        if least[b] < ctx.count[p] {
                            v.push(GroupDef {
                                pool: p,
                                cap: least[b],
                            });
                        }
                    }
                    v
                })
                .collect();
            let mut pick = vec![0usize; blocks];
            loop {
                let sol = Solution {
                    groups: (0..blocks).map(|b| options[b][pick[b]]).collect(),
                    of_step: rgs.clone(),
                };
                if let Some((p, _)) = decode(&ctx, &sol, true) {
                    let sc = judge.score(&p);
                    if best.as_ref().is_none_or(|b| sc.cmp(&b.0) == Ordering::Less) {
                        best = Some((sc, p));
                    }
                }
                // Odometer over the blocks' options.
                let mut b = 0;
                while b < blocks {
                    pick[b] += 1;
                    if pick[b] < options[b].len() {
                        break;
                    }
                    pick[b] = 0;
                    b += 1;
                }
                if b == blocks {
                    break;
                }
            }
        }
        // Next restricted growth string: bump the rightmost digit that may grow.
        let mut i = n;
        let mut advanced = false;
        while i > 1 {
            i -= 1;
            let prefix_max = rgs[..i].iter().copied().max().unwrap_or(0);
            if rgs[i] <= prefix_max {
                rgs[i] += 1;
                for r in &mut rgs[i + 1..] {
                    *r = 0;
                }
                advanced = true;
                break;
            }
        }
        if !advanced {
            break;
        }
    }
    let best = best.ok_or_else(|| PlanError::NoPlan("no assignment fits".into()))?;
    let plan = at_least_per_step(&judge, best, per_step_plan);
    Ok(Outcome {
        plan,
        per_step,
        single,
        objective: opts.objective,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_levels_add_and_max() {
        let mut p = Profile::new();
        p.add(0, 10, 2);
        p.add(5, 15, 3);
        assert_eq!(p.max(0, 5), 2);
        assert_eq!(p.max(4, 6), 5);
        assert_eq!(p.max(10, 15), 3);
        assert_eq!(p.max(15, 20), 0);
        p.add(5, 10, -5);
        assert_eq!(p.max(0, 15), 3);
    }

    #[test]
    fn dns_names_are_lowercase_and_dashed() {
        assert_eq!(dns_name("My_Workflow.v2"), "my-workflow-v2");
        assert_eq!(dns_name("__"), "wf");
    }
}
