//! Partial release: a job gives back some subtrees (some of its nodes) and
//! keeps the rest.
//!
//! Everything the job holds inside a released subtree goes. Above it the
//! job has pass-through records (its match went through the rack and the
//! cluster on the way to the nodes), and two rules say when those go (see
//! [`RecordsAbove`]): the plain one drops a record once the job holds
//! nothing below it; Fluxion's, which `resource-query` scripts read, drops
//! it only when the vertex's subtree aggregate says the job no longer uses
//! anything there. Under Fluxion's rule a record above a released subtree
//! stays unless all three hold:
//! - the vertex keeps an aggregate (it has children and a prune filter
//!   anchors on its type);
//! - the job counted in it: when matched, the job held below the vertex a
//!   vertex of a type some prune filter tracks (tracked at this vertex or
//!   not: the count is made for every tracked type at once), a vertex the
//!   match printed, not one only held under an exclusive vertex;
//! - after the release the job holds nothing below the vertex, exclusively
//!   or in part, of a type this vertex's aggregate tracks.
//!
//! So a node given whole to a job leaves nothing a core-only aggregate
//! counts, and the rack and cluster above keep the job's records (and the
//! job stays, holding no units) until it is cancelled whole. (Rule read
//! from Fluxion's `dfu_impl_t::remove` for partial cancel and
//! `mod_agfilter` in `resource/traversers/dfu_impl_update.cpp`, with
//! `planner_multi_reduce_span` in
//! `resource/planner/c/planner_multi_c_interface.cpp`.)

use std::collections::HashSet;

use super::{Claim, GraphError, JobId, ResourceGraph, VertexId};

/// When a partial release drops the job's pass-through records above the
/// released subtrees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecordsAbove {
    /// A record goes once the job holds nothing below it.
    #[default]
    Drain,
    /// Fluxion's rule: a record goes only when the vertex's aggregate
    /// counted the job and now counts nothing of it (see the module docs).
    ByAggregates,
}

impl ResourceGraph {
    /// Releases what `job` holds in the subtree of `v` (partial cancel, e.g.
    /// one node of a gang); records above go once nothing below them is
    /// held ([`RecordsAbove::Drain`]).
    pub fn release_subtree(&mut self, job: JobId, v: VertexId) -> Result<bool, GraphError> {
        self.release_subtrees(job, &[v], RecordsAbove::Drain)
    }

    /// Releases what `job` holds in the subtrees of `roots` together; `rule`
    /// says which records above them go too. A job left with nothing is
    /// removed. Returns whether the job is now gone entirely.
    pub fn release_subtrees(
        &mut self,
        job: JobId,
        roots: &[VertexId],
        rule: RecordsAbove,
    ) -> Result<bool, GraphError> {
        let mut hold = self.jobs.remove(&job).ok_or(GraphError::NoSuchJob(job))?;
        let inside: Vec<Claim> = hold
            .claims
            .iter()
            .copied()
            .filter(|c| roots.iter().any(|&r| self.is_in_subtree(c.vertex, r)))
            .collect();
        if inside.is_empty() {
            self.jobs.insert(job, hold);
            return Ok(false);
        }
        let inside_set: HashSet<VertexId> = inside.iter().map(|c| c.vertex).collect();
        // Under Fluxion's rule, which records above counted the job, judged
        // before the release.
        let counted: Vec<VertexId> = match rule {
            RecordsAbove::Drain => Vec::new(),
            RecordsAbove::ByAggregates => {
                let above: HashSet<VertexId> =
                    roots.iter().flat_map(|&r| self.ancestors(r)).collect();
                hold.claims
                    .iter()
                    .filter(|c| is_pass_through(c) && above.contains(&c.vertex))
                    .map(|c| c.vertex)
                    .filter(|&a| self.keeps_aggregate(a) && self.counted_below(a, &hold.claims))
                    .collect()
            }
        };
        self.mark_exclusive(&hold.claims);
        self.drop_claims(job, &hold, &inside);
        hold.claims.retain(|c| !inside_set.contains(&c.vertex));
        let drained: Vec<Claim> = hold
            .claims
            .iter()
            .filter(|c| is_pass_through(c))
            .filter(|c| match rule {
                RecordsAbove::Drain => !holds_below(self, c.vertex, &hold.claims),
                RecordsAbove::ByAggregates => {
                    counted.contains(&c.vertex) && !self.uses_tracked_below(c.vertex, &hold.claims)
                }
            })
            .copied()
            .collect();
        self.drop_claims(job, &hold, &drained);
        hold.claims.retain(|c| !drained.contains(c));
        let gone = hold.claims.is_empty();
        if !gone {
            self.jobs.insert(job, hold);
        }
        Ok(gone)
    }

    /// Whether `a` keeps a subtree aggregate: an inner vertex of a type a
    /// prune filter anchors on.
    fn keeps_aggregate(&self, a: VertexId) -> bool {
        !self.g[a].children.is_empty() && self.filters.is_anchor(self.g[a].kind)
    }

    /// Whether `claims` has a printed one strictly below `a` of a type any
    /// prune filter tracks (the job was counted in `a`'s aggregate).
    fn counted_below(&self, a: VertexId, claims: &[Claim]) -> bool {
        claims.iter().any(|c| {
            c.vertex != a
                && !is_shadow(c)
                && self.filters.slot(self.g[c.vertex].kind).is_some()
                && self.is_in_subtree(c.vertex, a)
        })
    }

    /// Whether `claims` uses something strictly below `a` (exclusively or
    /// some units) of a type `a`'s aggregate tracks.
    fn uses_tracked_below(&self, a: VertexId, claims: &[Claim]) -> bool {
        let anchor = self.g[a].kind;
        claims.iter().any(|c| {
            c.vertex != a
                && !is_pass_through(c)
                && !is_shadow(c)
                && self
                    .filters
                    .slot(self.g[c.vertex].kind)
                    .is_some_and(|s| self.filters.tracks(anchor, s))
                && self.is_in_subtree(c.vertex, a)
        })
    }
}

/// Whether `claims` uses something (exclusively or some units) in the
/// subtree of `a`.
fn holds_below(g: &ResourceGraph, a: VertexId, claims: &[Claim]) -> bool {
    claims
        .iter()
        .any(|d| !is_pass_through(d) && g.is_in_subtree(d.vertex, a))
}

/// A record the match holds without printing it (below a vertex it holds
/// exclusively, with no units of its own): Fluxion's update walk never
/// reaches it, so no aggregate counted it.
fn is_shadow(c: &Claim) -> bool {
    c.exclusive && c.amount == 0
}

/// A record that only says the match went through the vertex.
fn is_pass_through(c: &Claim) -> bool {
    !c.exclusive && c.amount == 0
}
