//! Elastic groups: a minimum that starts whole, all-or-nothing, and members
//! beyond it (up to `max_member`) that join one by one as room appears,
//! near the members already running (same rack, then same zone), and only
//! inside the domain they run in when the group has a topology key (a
//! replacement for a lost member takes the same path).
//!
//! A group's first placement tries `min(members, max_member)` pods whole,
//! else its minimum; the pods left over are placed by
//! `place_late_members`, in the same pass when room is left.

use std::collections::BTreeSet;

use fluxion_core::group::{GroupRequest, NodeFilter, NodeId, Placement, PodClaim};

use super::{AWAITING_SPEC, Bind, GangScheduler, GroupState};
use crate::model::{GroupKey, NodeName, PodUid};

/// Which free state a first placement is matched on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MatchOn {
    /// Nothing may be placed (no backfill behind the reservation head).
    Nothing,
    /// The reservation's view (free now and still free for the head).
    View,
    /// The free resources now.
    Graph,
}

/// `req` cut down to `n` pods, taken from the largest classes first, so a
/// launcher (a class of its own) stays in the minimum.
fn shrink(req: &GroupRequest, n: u32) -> GroupRequest {
    let mut out = req.clone();
    let total: u64 = out.pod_count();
    let mut cut = total.saturating_sub(u64::from(n));
    while cut > 0 {
        // The last of the largest classes gives up one pod.
        let Some(c) = out
            .classes
            .iter_mut()
            .rev()
            .max_by_key(|c| c.count)
            .filter(|c| c.count > 0)
        else {
            break;
        };
        c.count -= 1;
        cut -= 1;
    }
    out
}

/// `req` with every class limited to the nodes in `ids`.
fn restrict(req: &GroupRequest, ids: &BTreeSet<NodeId>) -> GroupRequest {
    let mut r = req.clone();
    for c in &mut r.classes {
        c.filter = NodeFilter::Only(match &c.filter {
            NodeFilter::Any => ids.iter().copied().collect(),
            NodeFilter::Only(v) => v.iter().filter(|i| ids.contains(i)).copied().collect(),
        });
    }
    r
}

impl GangScheduler {
    /// Most members the group may run (`max_member`, never below its minimum).
    pub(super) fn max_members(g: &GroupState) -> Option<u32> {
        let spec = g.spec.as_ref()?;
        spec.max_member.map(|m| m.max(spec.min_member.max(1)))
    }

    /// For a group with more pods than its minimum: the request for as many
    /// as it may run, and the request for its minimum. None for a plain gang.
    pub(super) fn elastic_sizes(
        &self,
        key: &GroupKey,
        req: &GroupRequest,
    ) -> Option<(GroupRequest, GroupRequest)> {
        let g = self.groups.get(key)?;
        let n = u32::try_from(req.pod_count()).unwrap_or(u32::MAX);
        let min = Self::min_member(g);
        let max = Self::max_members(g);
        if min == AWAITING_SPEC || (n <= min && max.is_none_or(|m| m >= n)) {
            return None;
        }
        let want = max.map_or(n, |m| m.min(n));
        Some((shrink(req, want), shrink(req, min.min(want))))
    }

    /// A group's first placement: `want` whole if given and larger, else `req`.
    pub(super) fn match_sized(
        &mut self,
        key: &GroupKey,
        want: Option<&GroupRequest>,
        req: &GroupRequest,
        on: MatchOn,
    ) -> Option<Placement> {
        if let Some(w) = want.filter(|w| w.pod_count() > req.pod_count()) {
            let within = self.within_one_domain(key, w);
            if let Some(p) = self.match_on(within.as_ref().unwrap_or(w), on) {
                return Some(p);
            }
        }
        self.match_on(req, on)
    }

    fn match_on(&mut self, req: &GroupRequest, on: MatchOn) -> Option<Placement> {
        match on {
            MatchOn::Nothing => None,
            MatchOn::View => self
                .reservation
                .as_mut()
                .and_then(|r| r.view.try_match(req)),
            MatchOn::Graph => self.graph.try_match(req),
        }
    }

    /// Places one member of an already placed group on free resources (not
    /// a vacant slot): never beyond `max_member`, near the members already
    /// running, and not on what the reservation holds for a group of at
    /// least its priority.
    pub(super) fn place_extra(
        &mut self,
        key: &GroupKey,
        uid: &PodUid,
    ) -> Option<(PodClaim, NodeName)> {
        let g = self.groups.get(key)?;
        if let Some(max) = Self::max_members(g) {
            let taken = g
                .members
                .iter()
                .filter(|u| {
                    self.pods
                        .get(*u)
                        .is_some_and(|p| p.claim.is_some() || p.bind != Bind::Unplaced)
                })
                .count()
                + g.vacant.len();
            if taken >= max as usize {
                return None;
            }
        }
        let own_priority = self.priority(g);
        let respect_view = self.reservation.as_ref().is_some_and(|r| {
            r.group != *key
                && self
                    .groups
                    .get(&r.group)
                    .is_some_and(|h| self.priority(h) >= own_priority)
        });
        // Racks and zones the group runs in now.
        let mut racks: BTreeSet<(String, String)> = BTreeSet::new();
        for st in g.members.iter().filter_map(|u| self.pods.get(u)) {
            if let Some(c) = &st.claim
                && let Some((z, r)) = self.graph.node_location(c.node)
            {
                racks.insert((z.to_owned(), r.to_owned()));
            }
        }
        let zones: BTreeSet<&str> = racks.iter().map(|(z, _)| z.as_str()).collect();
        let (mut in_racks, mut in_zones) = (BTreeSet::new(), BTreeSet::new());
        if !racks.is_empty() {
            for id in self.graph.node_ids() {
                if let Some((z, r)) = self.graph.node_location(id)
                    && zones.contains(z)
                {
                    in_zones.insert(id);
                    if racks.contains(&(z.to_owned(), r.to_owned())) {
                        in_racks.insert(id);
                    }
                }
            }
        }
        let (req, _) = self.request_for(std::slice::from_ref(uid));
        let mut tries = Vec::with_capacity(3);
        if !in_racks.is_empty() {
            tries.push(restrict(&req, &in_racks));
        }
        if in_zones.len() > in_racks.len() {
            tries.push(restrict(&req, &in_zones));
        }
        tries.push(req);
        if let Some(domain) = self.running_domain(key) {
            // A topology constraint binds members placed later too.
            for r in &mut tries {
                *r = restrict(r, &domain);
            }
        }
        for r in &tries {
            let found = if respect_view {
                self.reservation
                    .as_mut()
                    .and_then(|res| res.view.try_match(r))
            } else {
                self.graph.try_match(r)
            };
            let Some(claim) = found.and_then(|p| p.iter().next().cloned()) else {
                continue;
            };
            let Some(node) = self.graph.node(claim.node).map(|n| n.name.clone()) else {
                continue;
            };
            // The view may lag the real graph: re-check before taking.
            if !self.graph.take_if_fits(&[&claim]) {
                continue;
            }
            if respect_view && let Some(res) = self.reservation.as_mut() {
                res.view.take(&claim);
            }
            self.graph_gen += 1;
            return Some((claim, node));
        }
        None
    }

    /// For a placed group with a topology key: the nodes of the domain(s)
    /// its members hold resources in (claims and vacant slots), where
    /// replacements and elastic members must go. None without a key.
    fn running_domain(&self, key: &GroupKey) -> Option<BTreeSet<NodeId>> {
        let g = self.groups.get(key)?;
        let label = g.spec.as_ref()?.topology_key.as_deref()?;
        let value_of = |id: NodeId| {
            let name = &self.graph.node(id)?.name;
            self.nodes.get(name)?.labels.get(label)
        };
        let claimed = g
            .members
            .iter()
            .filter_map(|u| self.pods.get(u)?.claim.as_ref().map(|c| c.node));
        let vacant = g.vacant.iter().map(|v| v.claim.node);
        let values: BTreeSet<&String> = claimed.chain(vacant).filter_map(value_of).collect();
        Some(
            self.graph
                .node_ids()
                .filter(|id| value_of(*id).is_some_and(|v| values.contains(v)))
                .collect(),
        )
    }

    /// Unplaced members of a placed group that holds at least its minimum:
    /// elastic members waiting for room (or beyond `max_member`).
    pub(super) fn extras_waiting(g: &GroupState, unplaced: u32) -> u32 {
        if g.placed_at.is_none() || unplaced == 0 {
            return 0;
        }
        let total = g.members.len() as u32;
        let holding = total.saturating_sub(unplaced) + g.vacant.len() as u32;
        if holding >= Self::min_member(g) {
            unplaced
        } else {
            0
        }
    }

    /// The status message of an elastic group says how many of how many run.
    pub(super) fn elastic_message(
        &self,
        g: &GroupState,
        message: String,
        running: u32,
        extras_waiting: u32,
    ) -> String {
        let total = g.members.len() as u32;
        let min = Self::min_member(g);
        let max = Self::max_members(g);
        if g.placed_at.is_none() || total == 0 || (total <= min && max.is_none()) {
            return message;
        }
        let mut m = format!("{message}; {running} of {total} members running (minimum {min}");
        if let Some(max) = max {
            m.push_str(&format!(", at most {max}"));
        }
        m.push(')');
        let over = max
            .map_or(0, |mx| total.saturating_sub(mx))
            .min(extras_waiting);
        let room = extras_waiting - over;
        if room > 0 {
            m.push_str(&format!("; {room} wait for room"));
        }
        if over > 0 {
            m.push_str(&format!("; {over} above the maximum are not placed"));
        }
        m
    }
}
