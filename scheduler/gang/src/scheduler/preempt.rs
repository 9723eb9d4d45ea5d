//! Whole-gang preemption by priority, and the nomination that holds the
//! room it makes.
//!
//! When a group's minimum does not fit now but fits the cluster, and it may
//! preempt, victims are looked for among what holds resources with a
//! strictly lower priority: elastic members (above a group's minimum) first,
//! then whole gangs (a gang's minimum goes whole or not at all; a
//! `DisruptionMode::Pod` group loses single pods), and bound pods of other
//! schedulers that belong to no group, one by one; only units with a pod on
//! a node the preemptor may use are considered. Pods that are already
//! going (terminating, or asked to go) count as gone: while they leave, no
//! further victims are chosen, which also covers a restart in the middle of
//! a preemption.
//!
//! The search works on a copy of the graph. It releases elastic members one
//! by one until the group fits; failing that, it tries every single gang on
//! top of them (fewest gangs), cheapest first (lowest priority, then least
//! work lost: running time times size); failing that, it accumulates gangs
//! in that order until the group fits. Then it gives back victims that turn
//! out not to be needed, most expensive first. A first round skips victims
//! whose eviction would break a PodDisruptionBudget; only when that finds
//! nothing does a second round allow it (and marks those victims), as
//! kube-scheduler prefers. The work is bounded: at most [`MAX_CANDIDATES`]
//! units per tier, [`MAX_SINGLE_TRIES`] single-gang tries, matches at
//! doubling steps after [`MAX_GREEDY_MATCHES`], [`MAX_PRUNE`] reprieves,
//! and [`MAX_SEARCHES_PER_PASS`] attempts per pass by groups holding no
//! room yet (the rest follow in a pass due at once).
//!
//! The preemptor's placement on that copy is its nomination: its claims are
//! taken from the real graph at once (over-committing the victims' nodes
//! until they leave), so no other group can take the room while the
//! victims terminate. A group of strictly higher priority may take a
//! nomination over (its search sees the hold as free); an equal one may
//! not. The preemption is emitted once; if victims are still there, not
//! terminating, after `preemption_retry`, it is emitted again. When the
//! victims are gone the preemptor matches on the graph with its own hold
//! given back and is placed by the normal walk, whole.
//!
//! Budgets: a budget's `disruptionsAllowed` is the disruption controller's
//! last count. Victims asked to go (by earlier passes or earlier in this
//! one) that do not terminate yet are not in it, so each uses up one of it
//! here; two preemptions in one pass never spend the same allowance twice.
//!
//! Stuck victims: a pod seen terminating for [`STUCK_RETRIES`] times
//! `preemption_retry` (5 minutes by default, ten times Kubernetes' default
//! grace period), or for its own longer grace period and two retries, is
//! held by something (a finalizer, a node that is gone). It
//! stops counting as leaving: the preemptor waiting on it plans again on a
//! graph where it still holds its resources, and may choose other victims
//! (never the stuck pod again, it is already deleted).
//!
//! Victims are chosen among groups this scheduler placed and among other
//! schedulers' bound pods that belong to no pod group; pods of other
//! schedulers' groups are never victims (their gang semantics are unknown).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use fluxion_core::group::{GroupGraph, GroupRequest, NodeFilter, Placement, PodClaim};

use super::GangScheduler;
use crate::decision::{Decisions, EventType, PodBinding, PodEvent, Preemption, Victim, WaitReason};
use crate::model::{DisruptionBudget, DisruptionMode, GroupKey, PodUid, PreemptionPolicy};
use crate::time::Timestamp;

/// Units (elastic members; gangs and single pods) considered per tier, the
/// cheapest first.
const MAX_CANDIDATES: usize = 2048;
/// Single-gang solutions tried before accumulating several gangs.
const MAX_SINGLE_TRIES: usize = 256;
/// Matches tried while accumulating victims before trying only at doubling steps.
const MAX_GREEDY_MATCHES: usize = 64;
/// Victims tried for a reprieve after a set that fits is found.
const MAX_PRUNE: usize = 256;
/// Preemption attempts per scheduling pass by groups holding no room yet
/// (the rest are tried in the next pass, which is due at once).
const MAX_SEARCHES_PER_PASS: usize = 8;
/// Victims asked to go that neither go nor terminate are no longer counted
/// as leaving after this many times `preemption_retry` (unless asked again).
const ASKED_EXPIRY_RETRIES: i64 = 3;
/// Nominated nodes named in a message.
const MAX_NODES_NAMED: usize = 5;
/// A pod seen terminating for this many times `preemption_retry` (5 minutes
/// by default: ten times Kubernetes' default grace period of 30 s), or for
/// its own longer grace period and two retries, is stuck: a finalizer holds
/// it, or its node is gone (the kubelet kills a pod when its grace period
/// ends). It no longer counts as leaving, so a preemptor waiting on it plans
/// again and may choose other victims.
const STUCK_RETRIES: i64 = 10;

/// What the core remembers about preemptions in flight.
#[derive(Debug, Default)]
pub(super) struct PreemptState {
    /// Preemptors holding room, by group.
    nominations: BTreeMap<GroupKey, Nomination>,
    /// Pods whose deletion was asked for, and when (until they are gone).
    pub(super) asked: HashMap<PodUid, Timestamp>,
    /// Groups evicted whole: they go back to the queue once none of their
    /// pods holds anything, and meanwhile new pods of theirs are not placed
    /// one by one.
    pub(super) evicted: BTreeSet<GroupKey>,
    /// Preemption attempts (without a nomination yet) made this pass.
    searches: usize,
    /// When a pass stopped attempting at the cap: the next pass is due then.
    deferred_at: Option<Timestamp>,
    /// The lowest priority of anything that could be a victim or is
    /// leaving, computed once per pass when first needed (inner None:
    /// nothing at all).
    lowest: Option<Option<i32>>,
    /// Pods holding resources while terminating, and when they count as
    /// stuck (tracked while preemptions are in flight).
    stuck_at: HashMap<PodUid, Timestamp>,
    /// Those of them found stuck (each makes waiting groups plan again once).
    stuck: HashSet<PodUid>,
    /// The time of the pass, to tell stuck pods from leaving ones.
    now: Timestamp,
}

/// The room held for one preemptor.
#[derive(Debug, Clone)]
struct Nomination {
    priority: i32,
    /// Claims taken from the graph for it.
    hold: Vec<PodClaim>,
    /// The preemption last emitted for it, to ask again if victims stay.
    last: Option<Preemption>,
    /// When it was last emitted.
    asked_at: Timestamp,
}

/// One pod that may be a victim.
struct Cand<'a> {
    st: &'a super::PodState,
    claim: &'a PodClaim,
    priority: i32,
    /// Budgets (indices) that select it.
    budgets: Vec<usize>,
}

/// What goes together: one elastic member, one whole gang, or one pod.
struct Unit {
    /// Indices into the candidates.
    pods: Vec<usize>,
    priority: i32,
    /// Running time times size, in pod-milliseconds.
    work: i128,
}

/// A copy of the graph with some candidates released.
struct Trial<'a> {
    graph: GroupGraph,
    cands: &'a [Cand<'a>],
    /// Units holding each candidate released (a gang's elastic members may
    /// also be released on their own).
    refs: Vec<u32>,
    /// Pods selected per budget.
    used: Vec<u32>,
    allowed: &'a [u32],
}

impl Trial<'_> {
    fn add(&mut self, u: &Unit) {
        for &i in &u.pods {
            if self.refs[i] == 0 {
                self.graph.give(self.cands[i].claim);
                for &b in &self.cands[i].budgets {
                    self.used[b] += 1;
                }
            }
            self.refs[i] += 1;
        }
    }

    fn remove(&mut self, u: &Unit) {
        for &i in &u.pods {
            self.refs[i] = self.refs[i].saturating_sub(1);
            if self.refs[i] == 0 {
                self.graph.take(self.cands[i].claim);
                for &b in &self.cands[i].budgets {
                    self.used[b] = self.used[b].saturating_sub(1);
                }
            }
        }
    }

    /// Whether releasing `u` too would evict more pods than a budget allows.
    fn breaks_budget(&self, u: &Unit) -> bool {
        let mut extra: BTreeMap<usize, u32> = BTreeMap::new();
        for &i in &u.pods {
            if self.refs[i] == 0 {
                for &b in &self.cands[i].budgets {
                    *extra.entry(b).or_default() += 1;
                }
            }
        }
        extra
            .iter()
            .any(|(b, n)| self.used[*b] + n > self.allowed[*b])
    }

    fn fits(&mut self, req: &GroupRequest) -> bool {
        self.graph.try_match(req).is_some()
    }
}

/// One pod chosen as a victim.
struct ChosenPod {
    uid: PodUid,
    binding: PodBinding,
    group: GroupKey,
    priority: i32,
    /// Whether a budget that selects it is broken by the whole choice.
    breaks_budget: bool,
}

/// The victims chosen, and the preemptor's placement once they are gone.
struct Chosen {
    pods: Vec<ChosenPod>,
    placement: Placement,
}

/// What a search round found: candidate indices, placement, pods used per budget.
type Found = (Vec<usize>, Placement, Vec<u32>);

impl GangScheduler {
    /// Whether the group may preempt: preemption is on and neither its
    /// PodGroup nor (when that says nothing) any of its pods says `Never`.
    fn may_preempt(&self, g: &super::GroupState) -> bool {
        if !self.config.preemption {
            return false;
        }
        match g.spec.as_ref().and_then(|s| s.preemption_policy) {
            Some(p) => p == PreemptionPolicy::PreemptLowerPriority,
            None => !g
                .members
                .iter()
                .filter_map(|u| self.pods.get(u))
                .any(|p| p.pod.preemption_policy == PreemptionPolicy::Never),
        }
    }

    /// Once per pass: forgets victims that are gone, sends groups evicted
    /// whole back to the queue once nothing of theirs holds resources,
    /// drops nominations of groups placed or gone, and asks again for
    /// victims still running `preemption_retry` after they were asked to go.
    pub(super) fn tend_preemptions(&mut self, now: Timestamp, out: &mut Decisions) {
        self.preempt.searches = 0;
        self.preempt.deferred_at = None;
        self.preempt.lowest = None;
        self.preempt.now = now;
        if self.preempt.asked.is_empty()
            && self.preempt.evicted.is_empty()
            && self.preempt.nominations.is_empty()
        {
            self.preempt.stuck_at.clear();
            self.preempt.stuck.clear();
            return;
        }
        let pods = &self.pods;
        // Only while something may wait on leaving pods: one walk a pass.
        self.preempt
            .stuck_at
            .retain(|u, _| pods.get(u).is_some_and(|st| st.pod.terminating));
        for st in pods.values() {
            if st.pod.terminating && st.claim.is_some() {
                let after = self.stuck_after(&st.pod);
                self.preempt
                    .stuck_at
                    .entry(st.pod.uid.clone())
                    .or_insert(now + after);
            }
        }
        let stuck_at = &self.preempt.stuck_at;
        self.preempt.stuck.retain(|u| stuck_at.contains_key(u));
        let mut newly_stuck = false;
        for (u, t) in stuck_at {
            if now >= *t && self.preempt.stuck.insert(u.clone()) {
                newly_stuck = true;
            }
        }
        if newly_stuck {
            // What counted as leaving stays: groups waiting on it plan again.
            self.freed();
        }
        let pods = &self.pods;
        let expiry = crate::time::Millis(
            self.config
                .preemption_retry
                .0
                .saturating_mul(ASKED_EXPIRY_RETRIES),
        );
        let stuck = &self.preempt.stuck;
        self.preempt.asked.retain(|u, at| {
            pods.get(u).is_some_and(|st| {
                if st.pod.terminating {
                    !stuck.contains(u)
                } else {
                    now.since(*at) < expiry
                }
            })
        });
        let evicted: Vec<GroupKey> = self.preempt.evicted.iter().cloned().collect();
        for key in evicted {
            let Some(g) = self.groups.get(&key) else {
                self.preempt.evicted.remove(&key);
                continue;
            };
            let (mut holding, mut going) = (false, false);
            for st in g.members.iter().filter_map(|u| self.pods.get(u)) {
                if st.claim.is_some() {
                    holding = true;
                    going |= st.pod.terminating || self.preempt.asked.contains_key(&st.pod.uid);
                }
            }
            if holding {
                if !going {
                    // Its pods were never deleted: it keeps running.
                    self.preempt.evicted.remove(&key);
                }
                continue;
            }
            self.preempt.evicted.remove(&key);
            if let Some(g) = self.groups.get_mut(&key) {
                g.placed_at = None;
                g.requeued_at = Some(now);
                g.promised = None;
                g.held = None;
                g.tried_gen = None;
                g.request = None;
                g.satisfiable = false;
                g.deferred = false;
                g.overtaken = 0;
                g.succeeded = 0;
                g.failed = 0;
                g.wait = None;
                g.message = "preempted by a higher-priority group: waits to be placed again, whole"
                    .to_owned();
            }
            self.queue_cache = None;
            self.queue_dirty = true;
            self.touched.insert(key.clone());
            self.forget_group_if_empty(&key);
        }
        let stale: Vec<GroupKey> = self
            .preempt
            .nominations
            .keys()
            .filter(|k| {
                // Placed, gone, or too few pods left to be placed: a hold
                // kept for it would never be used.
                self.groups.get(*k).is_none_or(|g| {
                    g.placed_at.is_some()
                        || g.members.is_empty()
                        || u32::try_from(g.members.len()).unwrap_or(u32::MAX) < Self::min_member(g)
                })
            })
            .cloned()
            .collect();
        for k in stale {
            self.drop_nomination(&k);
        }
        let retry = self.config.preemption_retry;
        let keys: Vec<GroupKey> = self.preempt.nominations.keys().cloned().collect();
        for k in keys {
            let Some(n) = self.preempt.nominations.get(&k) else {
                continue;
            };
            let Some(last) = &n.last else {
                continue;
            };
            if now.since(n.asked_at) < retry {
                continue;
            }
            // Victims still there and not terminating: the deletions were
            // lost or refused; ask again.
            let mut again = last.clone();
            for v in &mut again.victims {
                v.pods.retain(|b| {
                    self.pods
                        .get(&b.pod)
                        .is_some_and(|st| st.claim.is_some() && !st.pod.terminating)
                });
            }
            again.victims.retain(|v| !v.pods.is_empty());
            let Some(n) = self.preempt.nominations.get_mut(&k) else {
                continue;
            };
            if again.victims.is_empty() {
                n.last = None;
                continue;
            }
            n.asked_at = now;
            for v in &again.victims {
                for b in &v.pods {
                    self.preempt.asked.insert(b.pod.clone(), now);
                }
            }
            // A gang evicted whole is so again (its mark may have lapsed
            // with the asks, while its pods kept running).
            self.mark_evicted(&again.victims);
            out.preemptions.push(again);
        }
    }

    /// The groups of `victims` evicted whole go back to the queue, whole,
    /// once their pods are gone (not one pod at a time); slots they kept
    /// for replacements are given up now.
    fn mark_evicted(&mut self, victims: &[Victim]) {
        let mut freed = false;
        for v in victims.iter().filter(|v| v.whole) {
            let Some(g) = self.groups.get_mut(&v.group) else {
                continue;
            };
            g.held = None;
            let vacant = std::mem::take(&mut g.vacant);
            for slot in &vacant {
                self.graph.give(&slot.claim);
                freed = true;
            }
            self.preempt.evicted.insert(v.group.clone());
            self.touched.insert(v.group.clone());
        }
        if freed {
            self.freed();
        }
    }

    /// When a preemption is due to be asked again, or attempts put off
    /// by the per-pass cap are due (at once).
    pub(super) fn preempt_wakeup(&self) -> Option<Timestamp> {
        let retry = self.config.preemption_retry;
        let stuck = (!self.preempt.nominations.is_empty())
            .then(|| {
                self.preempt
                    .stuck_at
                    .values()
                    .filter(|t| **t > self.preempt.now)
                    .min()
                    .copied()
            })
            .flatten();
        self.preempt
            .nominations
            .values()
            .filter(|n| n.last.is_some())
            .map(|n| n.asked_at + retry)
            .chain(self.preempt.deferred_at)
            .chain(stuck)
            .min()
    }

    /// How long `pod` may terminate before it counts as stuck: its own
    /// grace period and two retries more, at least [`STUCK_RETRIES`]
    /// retries (the kubelet kills a pod when its grace period ends).
    fn stuck_after(&self, pod: &crate::model::Pod) -> crate::time::Millis {
        let retry = self.config.preemption_retry.0.max(1000);
        let floor = retry.saturating_mul(STUCK_RETRIES);
        let own = pod
            .termination_grace
            .map_or(0, |g| g.0.max(0).saturating_add(retry.saturating_mul(2)));
        crate::time::Millis(floor.max(own))
    }

    /// Whether a terminating pod is about to free its resources (seen
    /// terminating for less than [`STUCK_RETRIES`] retries).
    fn leaving_soon(&self, st: &super::PodState) -> bool {
        st.pod.terminating && !self.preempt.stuck.contains(&st.pod.uid)
    }

    /// Whether room is held (nominated) for the group while victims leave.
    pub fn holds_room_for(&self, key: &GroupKey) -> bool {
        self.preempt.nominations.contains_key(key)
    }

    /// The status message of a group evicted whole says so while its pods go.
    pub(super) fn preempted_message(&self, key: &GroupKey, message: String) -> String {
        if self.preempt.evicted.contains(key) {
            format!("preempted by a higher-priority group, its pods are being evicted ({message})")
        } else {
            message
        }
    }

    /// A node is going: holds on it are given back before its id is freed.
    pub(super) fn release_holds_on(&mut self, name: &str) {
        let Some(id) = self.graph.node_id(name) else {
            return;
        };
        for n in self.preempt.nominations.values_mut() {
            let (gone, kept): (Vec<PodClaim>, Vec<PodClaim>) =
                n.hold.drain(..).partition(|c| c.node == id);
            for c in &gone {
                self.graph.give(c);
            }
            n.hold = kept;
        }
    }

    /// The lowest priority of what could be a victim or is leaving
    /// (computed once per pass).
    fn lowest_victim_priority(&mut self) -> Option<i32> {
        if let Some(l) = self.preempt.lowest {
            return l;
        }
        let groups = self
            .groups
            .iter()
            .filter(|(k, g)| g.placed_at.is_some() && !self.preempt.evicted.contains(*k))
            .map(|(_, g)| self.priority(g));
        let pods = self
            .pods
            .values()
            .filter(|st| {
                st.claim.is_some() && (st.pod.terminating || (!st.ours && st.pod.group.is_none()))
            })
            .map(|st| st.pod.priority);
        let l = groups.chain(pods).min();
        self.preempt.lowest = Some(l);
        l
    }

    /// Drops a nomination and gives its hold back.
    pub(super) fn drop_nomination(&mut self, key: &GroupKey) {
        if let Some(n) = self.preempt.nominations.remove(key) {
            for c in &n.hold {
                self.graph.give(c);
            }
            self.freed();
        }
    }

    /// A placement that room held by nominations may serve: a nominated
    /// group's own hold, and holds of nominations of lower priority (taken
    /// over: those whose nodes it uses are dropped). None when no such hold
    /// exists or it does not fit with them either; the holds stay then.
    pub(super) fn nominee_match(
        &mut self,
        key: &GroupKey,
        req: &GroupRequest,
    ) -> Option<Placement> {
        if self.preempt.nominations.is_empty() {
            return None;
        }
        let priority = self.groups.get(key).map(|g| self.priority(g))?;
        let usable: Vec<GroupKey> = self
            .preempt
            .nominations
            .iter()
            .filter(|(k, n)| *k == key || n.priority < priority)
            .map(|(k, _)| k.clone())
            .collect();
        if usable.is_empty() {
            return None;
        }
        for k in &usable {
            if let Some(n) = self.preempt.nominations.get(k) {
                for c in &n.hold {
                    self.graph.give(c);
                }
            }
        }
        let found = self.graph.try_match(req);
        let nodes: BTreeSet<u32> = found
            .iter()
            .flat_map(|p| p.iter())
            .map(|c| c.node.0)
            .collect();
        let mut dropped = false;
        for k in &usable {
            let Some(n) = self.preempt.nominations.get(k) else {
                continue;
            };
            let lost =
                found.is_some() && (k == key || n.hold.iter().any(|c| nodes.contains(&c.node.0)));
            if lost {
                self.preempt.nominations.remove(k);
                dropped = true;
            } else {
                for c in &n.hold {
                    self.graph.take(c);
                }
            }
        }
        if dropped {
            // Whatever of those holds it does not take is free for others.
            self.freed();
        }
        found
    }

    /// Called for a group whose minimum does not fit now but fits the
    /// cluster: holds room for it, choosing victims if the pods already
    /// leaving do not make enough. Returns whether it holds room (and so
    /// waits for victims rather than for a reservation).
    pub(super) fn preempt_for(
        &mut self,
        key: &GroupKey,
        req: &GroupRequest,
        members: &[Vec<PodUid>],
        head_seen: bool,
        now: Timestamp,
        out: &mut Decisions,
    ) -> bool {
        let Some(g) = self.groups.get(key) else {
            return false;
        };
        if !self.may_preempt(g) {
            self.drop_nomination(key);
            return false;
        }
        let priority = self.priority(g);
        // Behind a reservation of a group of at least its priority it may
        // not take room that group waits for.
        let behind_head = head_seen
            && self.reservation.as_ref().is_some_and(|r| {
                r.group != *key
                    && self
                        .groups
                        .get(&r.group)
                        .is_some_and(|h| self.priority(h) >= priority)
            });
        if behind_head {
            return self.preempt.nominations.contains_key(key);
        }
        if !self.preempt.nominations.contains_key(key) {
            // Nothing of lower priority anywhere: nothing to preempt or wait for.
            if self.lowest_victim_priority().is_none_or(|l| l >= priority) {
                return false;
            }
            if self.preempt.searches >= MAX_SEARCHES_PER_PASS {
                // Enough this pass: tried again in the next, due at once.
                if let Some(g) = self.groups.get_mut(key) {
                    g.tried_gen = None;
                }
                self.queue_dirty = true;
                self.preempt.deferred_at = Some(now);
                return false;
            }
            self.preempt.searches += 1;
        }
        // Its own hold is recomputed below.
        let old = self.preempt.nominations.remove(key);
        if let Some(n) = &old {
            for c in &n.hold {
                self.graph.give(c);
            }
        }
        // What is leaving anyway counts as gone.
        let mut base = self.graph.clone();
        for st in self.pods.values() {
            if let Some(c) = &st.claim
                && (self.leaving_soon(st) || self.preempt.asked.contains_key(&st.pod.uid))
            {
                base.give(c);
            }
        }
        let mut victims = None;
        let mut takeover = Vec::new();
        let placement = match base.try_match(req) {
            Some(p) => p,
            None => {
                // Room held for lower priorities may be taken over.
                for (k, n) in &self.preempt.nominations {
                    if n.priority < priority {
                        for c in &n.hold {
                            base.give(c);
                        }
                        takeover.push(k.clone());
                    }
                }
                let found = if takeover.is_empty() {
                    None
                } else {
                    base.try_match(req)
                };
                match found {
                    Some(p) => p,
                    None => match self.find_victims(key, priority, req, base, now) {
                        Some(chosen) => {
                            let p = chosen.placement.clone();
                            victims = Some(chosen);
                            p
                        }
                        None => {
                            if old.is_some() {
                                self.freed();
                            }
                            return false;
                        }
                    },
                }
            }
        };
        // Lower nominations whose room it uses lose it.
        let nodes: BTreeSet<u32> = placement.iter().map(|c| c.node.0).collect();
        for k in takeover {
            let overlaps = self
                .preempt
                .nominations
                .get(&k)
                .is_some_and(|n| n.hold.iter().any(|c| nodes.contains(&c.node.0)));
            if overlaps {
                self.drop_nomination(&k);
            }
        }
        let hold: Vec<PodClaim> = placement.iter().cloned().collect();
        for c in &hold {
            self.graph.take(c);
        }
        self.bump();
        let (last, asked_at) = match &old {
            Some(n) => (n.last.clone(), n.asked_at),
            None => (None, now),
        };
        let mut nomination = Nomination {
            priority,
            hold,
            last,
            asked_at,
        };
        let nominated = self.nominated(&placement, members);
        if let Some(chosen) = victims {
            let preemption = self.emit(key, priority, req, chosen, nominated.clone(), now, out);
            nomination.last = Some(preemption);
            nomination.asked_at = now;
        } else if let Some(last) = &mut nomination.last {
            // Asked again later, it names where the room is held now.
            last.nominated = nominated.clone();
        }
        let mut names: Vec<&str> = Vec::new();
        for b in &nominated {
            if !names.contains(&b.node.as_str()) {
                names.push(&b.node);
            }
        }
        let more = names.len().saturating_sub(MAX_NODES_NAMED);
        names.truncate(MAX_NODES_NAMED);
        let mut on = names.join(", ");
        if more > 0 {
            on.push_str(&format!(" and {more} more"));
        }
        let msg = format!(
            "preempting: {} pods are nominated to {on}, held for it while lower-priority pods there terminate",
            req.pod_count()
        );
        self.preempt.nominations.insert(key.clone(), nomination);
        self.set_wait(key, WaitReason::Busy, msg);
        true
    }

    /// Preemptor pod -> node, class by class as `commit` pairs them.
    fn nominated(&self, placement: &Placement, members: &[Vec<PodUid>]) -> Vec<PodBinding> {
        let mut out = Vec::new();
        for (class, claims) in placement.claims.iter().enumerate() {
            for (uid, claim) in members.get(class).into_iter().flatten().zip(claims) {
                let (Some(st), Some(node)) = (self.pods.get(uid), self.graph.node(claim.node))
                else {
                    continue;
                };
                out.push(PodBinding {
                    pod: uid.clone(),
                    namespace: st.pod.namespace.clone(),
                    name: st.pod.name.clone(),
                    node: node.name.clone(),
                });
            }
        }
        out
    }

    /// The cheapest victims that make `req` fit on `base` (see the module docs).
    fn find_victims<'s>(
        &'s self,
        key: &GroupKey,
        priority: i32,
        req: &GroupRequest,
        base: GroupGraph,
        now: Timestamp,
    ) -> Option<Chosen> {
        let budgets: Vec<&DisruptionBudget> = self.budgets.values().collect();
        let mut allowed: Vec<u32> = budgets.iter().map(|b| b.disruptions_allowed).collect();
        // Budgets by namespace and one of their matchLabels pairs (or the
        // values of an `In` requirement), so a pod looks up only those its
        // own labels may meet; budgets selecting by NotIn, Exists or
        // DoesNotExist alone are checked on every pod of their namespace.
        let mut by_label: HashMap<(&str, &str, &str), Vec<usize>> = HashMap::new();
        let mut by_namespace: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, b) in budgets.iter().enumerate() {
            let Some(sel) = &b.selector else {
                continue;
            };
            let ns = b.namespace.as_str();
            if let Some((k, v)) = sel.match_labels.iter().next() {
                by_label
                    .entry((ns, k.as_str(), v.as_str()))
                    .or_default()
                    .push(i);
                continue;
            }
            // An `In` requirement narrows as well as a label pair does: a pod
            // it selects carries one of its values.
            let within = sel
                .match_expressions
                .iter()
                .find(|r| r.operator == crate::model::SelectorOperator::In);
            match within {
                Some(r) => {
                    for v in &r.values {
                        by_label
                            .entry((ns, r.key.as_str(), v.as_str()))
                            .or_default()
                            .push(i);
                    }
                }
                None => by_namespace.entry(ns).or_default().push(i),
            }
        }
        let selecting = |pod: &crate::model::Pod| -> Vec<usize> {
            let ns = pod.namespace.as_str();
            let mut v: Vec<usize> = pod
                .labels
                .iter()
                .filter_map(|(k, v)| by_label.get(&(ns, k.as_str(), v.as_str())))
                .chain(by_namespace.get(ns))
                .flatten()
                .copied()
                .filter(|i| {
                    budgets[*i]
                        .selector
                        .as_ref()
                        .is_some_and(|s| s.matches(&pod.labels))
                })
                .collect();
            // A budget indexed under several of the pod's labels counts once.
            v.sort_unstable();
            v.dedup();
            v
        };
        // `disruptionsAllowed` is what the disruption controller saw last:
        // victims asked to go (by earlier preemptions, this pass's too) that
        // are not terminating yet are not in it, so they use up the budget
        // here. Once they terminate the controller no longer counts them
        // healthy and its own figure takes them in.
        for uid in self.preempt.asked.keys() {
            let Some(st) = self.pods.get(uid) else {
                continue;
            };
            if st.pod.terminating {
                continue;
            }
            for b in selecting(&st.pod) {
                allowed[b] = allowed[b].saturating_sub(1);
            }
        }
        let mut cands: Vec<Cand<'s>> = Vec::new();
        let (mut extras, mut gangs): (Vec<Unit>, Vec<Unit>) = (Vec::new(), Vec::new());
        let leaving =
            |uid: &PodUid, terminating: bool| terminating || self.preempt.asked.contains_key(uid);
        let mut cand = |st: &'s super::PodState, prio: i32| -> Option<usize> {
            let claim = st.claim.as_ref()?;
            let selected = selecting(&st.pod);
            cands.push(Cand {
                st,
                claim,
                priority: prio,
                budgets: selected,
            });
            Some(cands.len() - 1)
        };
        // Nodes the preemptor may use (None: any): victims elsewhere make no
        // room for it and are not considered.
        let mut reach: Option<Vec<bool>> = Some(Vec::new());
        for c in &req.classes {
            match (&c.filter, reach.as_mut()) {
                (NodeFilter::Any, _) => reach = None,
                (NodeFilter::Only(ids), Some(bits)) => {
                    for id in ids {
                        let i = id.0 as usize;
                        if bits.len() <= i {
                            bits.resize(i + 1, false);
                        }
                        bits[i] = true;
                    }
                }
                (NodeFilter::Only(_), None) => {}
            }
        }
        let useful = |st: &super::PodState| {
            st.claim.as_ref().is_some_and(|c| {
                reach
                    .as_ref()
                    .is_none_or(|bits| bits.get(c.node.0 as usize) == Some(&true))
            })
        };
        for (k, g) in &self.groups {
            let Some(placed_at) = g.placed_at else {
                continue;
            };
            let prio = self.priority(g);
            if k == key || prio >= priority || self.preempt.evicted.contains(k) {
                continue;
            }
            let mut live: Vec<&super::PodState> = g
                .members
                .iter()
                .filter_map(|u| self.pods.get(u))
                .filter(|st| st.claim.is_some() && !leaving(&st.pod.uid, st.pod.terminating))
                .collect();
            if live.is_empty() {
                continue;
            }
            // The newest members are the elastic ones.
            live.sort_by(|a, b| {
                (Reverse(a.pod.created), &a.pod.uid).cmp(&(Reverse(b.pod.created), &b.pod.uid))
            });
            let ran = i128::from(now.since(placed_at).0.max(0));
            let mode = g.spec.as_ref().map(|s| s.disruption).unwrap_or_default();
            let min = Self::min_member(g).min(live.len() as u32) as usize;
            let spare = live.len() - min;
            if !live.iter().any(|st| useful(st)) {
                continue;
            }
            let idx: Vec<(usize, bool)> = live
                .iter()
                .filter_map(|st| Some((cand(st, prio)?, useful(st))))
                .collect();
            match mode {
                DisruptionMode::Gang => {
                    for &(i, _) in idx.iter().take(spare).filter(|(_, u)| *u) {
                        extras.push(Unit {
                            pods: vec![i],
                            priority: prio,
                            work: ran,
                        });
                    }
                    // The whole gang goes, wherever its pods run.
                    let pods: Vec<usize> = idx.into_iter().map(|(i, _)| i).collect();
                    gangs.push(Unit {
                        work: ran * pods.len() as i128,
                        pods,
                        priority: prio,
                    });
                }
                DisruptionMode::Pod => {
                    for (n, &(i, _)) in idx.iter().enumerate().filter(|(_, (_, u))| *u) {
                        let unit = Unit {
                            pods: vec![i],
                            priority: prio,
                            work: ran,
                        };
                        if n < spare {
                            extras.push(unit);
                        } else {
                            gangs.push(unit);
                        }
                    }
                }
            }
        }
        // Other schedulers' bound pods outside any pod group, one by one.
        for st in self.pods.values() {
            if st.ours
                || st.pod.group.is_some()
                || st.pod.priority >= priority
                || leaving(&st.pod.uid, st.pod.terminating)
                || !useful(st)
            {
                continue;
            }
            if let Some(i) = cand(st, st.pod.priority) {
                gangs.push(Unit {
                    pods: vec![i],
                    priority: st.pod.priority,
                    work: i128::from(now.since(st.pod.created).0.max(0)),
                });
            }
        }
        if gangs.is_empty() && extras.is_empty() {
            return None;
        }
        let order = |u: &Unit| (u.priority, u.work, u.pods.first().copied());
        extras.sort_by_key(order);
        gangs.sort_by_key(order);
        extras.truncate(MAX_CANDIDATES);
        gangs.truncate(MAX_CANDIDATES);
        let mut skipped = false;
        let found = match search(
            &base,
            &cands,
            &allowed,
            &extras,
            &gangs,
            req,
            true,
            &mut skipped,
        ) {
            Some(f) => f,
            None if skipped => search(
                &base,
                &cands,
                &allowed,
                &extras,
                &gangs,
                req,
                false,
                &mut skipped,
            )?,
            None => return None,
        };
        let (pods, placement, used) = found;
        let broken: Vec<bool> = used
            .iter()
            .zip(&allowed)
            .map(|(used, allowed)| used > allowed)
            .collect();
        let pods = pods
            .into_iter()
            .filter_map(|i| cands.get(i))
            .map(|c| ChosenPod {
                uid: c.st.pod.uid.clone(),
                binding: PodBinding {
                    pod: c.st.pod.uid.clone(),
                    namespace: c.st.pod.namespace.clone(),
                    name: c.st.pod.name.clone(),
                    node: self
                        .graph
                        .node(c.claim.node)
                        .map(|n| n.name.clone())
                        .unwrap_or_default(),
                },
                group: c.st.group.clone(),
                priority: c.priority,
                breaks_budget: c.budgets.iter().any(|b| broken.get(*b) == Some(&true)),
            })
            .collect();
        Some(Chosen { pods, placement })
    }

    /// Emits a preemption: victims per group, the preemptor's nominated
    /// nodes, events on its pods; remembers what was asked.
    #[allow(clippy::too_many_arguments)]
    fn emit(
        &mut self,
        key: &GroupKey,
        priority: i32,
        req: &GroupRequest,
        chosen: Chosen,
        nominated: Vec<PodBinding>,
        now: Timestamp,
        out: &mut Decisions,
    ) -> Preemption {
        let chosen_uids: BTreeSet<&PodUid> = chosen.pods.iter().map(|p| &p.uid).collect();
        let mut by_group: BTreeMap<GroupKey, Victim> = BTreeMap::new();
        for p in &chosen.pods {
            let v = by_group.entry(p.group.clone()).or_insert_with(|| Victim {
                group: p.group.clone(),
                priority: p.priority,
                whole: false,
                pods: Vec::new(),
                violates_budget: false,
            });
            v.pods.push(p.binding.clone());
            v.violates_budget |= p.breaks_budget;
        }
        for (k, v) in &mut by_group {
            // Whole: nothing of the group keeps running (pods already leaving aside).
            v.whole = match self.groups.get(k) {
                None => true,
                Some(g) => g.members.iter().filter_map(|u| self.pods.get(u)).all(|st| {
                    st.claim.is_none()
                        || st.pod.terminating
                        || chosen_uids.contains(&st.pod.uid)
                        || self.preempt.asked.contains_key(&st.pod.uid)
                }),
            };
            v.pods.sort_by(|a, b| a.name.cmp(&b.name));
        }
        drop(chosen_uids);
        for p in &chosen.pods {
            self.preempt.asked.insert(p.uid.clone(), now);
        }
        let mut victims: Vec<Victim> = by_group.into_values().collect();
        victims.sort_by(|a, b| (a.priority, &a.group).cmp(&(b.priority, &b.group)));
        self.mark_evicted(&victims);
        let parts: Vec<String> = victims
            .iter()
            .map(|v| {
                if v.whole {
                    format!("group {} (priority {})", v.group, v.priority)
                } else {
                    format!(
                        "{} pods of group {} (priority {})",
                        v.pods.len(),
                        v.group,
                        v.priority
                    )
                }
            })
            .collect();
        let evicted: usize = victims.iter().map(|v| v.pods.len()).sum();
        let mut nodes: Vec<&str> = Vec::new();
        for b in &nominated {
            if !nodes.contains(&b.node.as_str()) {
                nodes.push(&b.node);
            }
        }
        let more = nodes.len().saturating_sub(MAX_NODES_NAMED);
        nodes.truncate(MAX_NODES_NAMED);
        let mut on = nodes.join(", ");
        if more > 0 {
            on.push_str(&format!(" and {more} more"));
        }
        let mut message = format!(
            "group {key} (priority {priority}) preempts {}: its {} pods do not fit the free resources; evicting {evicted} lower-priority pods makes room on {on}",
            parts.join(", "),
            req.pod_count()
        );
        if victims.iter().any(|v| v.violates_budget) {
            message.push_str(
                "; this goes past a PodDisruptionBudget, as no choice of victims keeps every budget",
            );
        }
        if self.config.pod_events {
            for b in &nominated {
                out.pod_events.push(PodEvent {
                    pod: b.pod.clone(),
                    namespace: b.namespace.clone(),
                    name: b.name.clone(),
                    kind: EventType::Normal,
                    reason: "Preempting".to_owned(),
                    message: format!("{message}; nominated node {}", b.node),
                    unschedulable: false,
                });
            }
        }
        let preemption = Preemption {
            preemptor: key.clone(),
            priority,
            victims,
            nominated,
            message,
        };
        out.preemptions.push(preemption.clone());
        preemption
    }
}

/// Releases `units` in order (those `usable` allows) until `req` fits:
/// matching after each at first, then, after [`MAX_GREEDY_MATCHES`]
/// misses, only at doubling steps (and once more at the end).
fn accumulate<'u>(
    t: &mut Trial<'_>,
    units: &'u [Unit],
    req: &GroupRequest,
    chosen: &mut Vec<&'u Unit>,
    usable: &impl Fn(&Trial<'_>, &Unit, &mut bool) -> bool,
    skipped: &mut bool,
) -> bool {
    let (mut step, mut next_try, mut tries) = (1usize, 1usize, 0usize);
    let mut added = false;
    for (n, u) in units.iter().enumerate() {
        if !usable(t, u, skipped) {
            continue;
        }
        t.add(u);
        chosen.push(u);
        added = true;
        let released = n + 1;
        if released < next_try && released < units.len() {
            continue;
        }
        added = false;
        if t.fits(req) {
            return true;
        }
        tries += 1;
        if tries > MAX_GREEDY_MATCHES {
            step = step.saturating_mul(2);
        }
        next_try = released.saturating_add(step);
    }
    // Units added since the last match may be what makes it fit.
    added && t.fits(req)
}

/// One round of the victim search; `respect` skips victims that would break
/// a budget (and sets `skipped` when it does).
#[allow(clippy::too_many_arguments)]
fn search<'a>(
    base: &GroupGraph,
    cands: &'a [Cand<'a>],
    allowed: &'a [u32],
    extras: &[Unit],
    gangs: &[Unit],
    req: &GroupRequest,
    respect: bool,
    skipped: &mut bool,
) -> Option<Found> {
    let mut t = Trial {
        graph: base.clone(),
        cands,
        refs: vec![0; cands.len()],
        used: vec![0; allowed.len()],
        allowed,
    };
    let mut chosen: Vec<&Unit> = Vec::new();
    let usable = |t: &Trial<'_>, u: &Unit, skipped: &mut bool| {
        if respect && t.breaks_budget(u) {
            *skipped = true;
            false
        } else {
            true
        }
    };
    // 1. Elastic members, one by one.
    let mut done = accumulate(&mut t, extras, req, &mut chosen, &usable, skipped);
    // 2. One gang on top of them: the cheapest that is enough.
    if !done {
        for u in gangs.iter().take(MAX_SINGLE_TRIES) {
            if !usable(&t, u, skipped) {
                continue;
            }
            t.add(u);
            if t.fits(req) {
                chosen.push(u);
                done = true;
                break;
            }
            t.remove(u);
        }
    }
    // 3. Gangs accumulated, cheapest first.
    if !done {
        done = accumulate(&mut t, gangs, req, &mut chosen, &usable, skipped);
    }
    if !done {
        return None;
    }
    // Reprieve victims that are not needed, most expensive first.
    for u in chosen.iter().rev().take(MAX_PRUNE) {
        t.remove(u);
        if !t.fits(req) {
            t.add(u);
        }
    }
    let placement = t.graph.try_match(req)?;
    let pods: Vec<usize> = (0..cands.len()).filter(|i| t.refs[*i] > 0).collect();
    Some((pods, placement, t.used))
}
