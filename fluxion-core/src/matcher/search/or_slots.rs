//! Alternative slots under Fluxion's flexible traverser: sibling slots of
//! one request are alternatives ("or" slots), not all required.
//!
//! Where they can be hosted, the children's candidates are pooled by type,
//! and the alternatives are dealt out so that as many slots as possible
//! fit (the first alternative wins ties). The request above then takes the
//! best of those slots by score, as many as its largest alternative count
//! asks for.

use std::collections::HashMap;

use super::{Cand, Request, Search, SlotFill, answering};
use crate::graph::{ResourceGraph, VertexId};

/// Most slots one vertex deals out (bounds the search for the best mix).
const MAX_SLOTS: u64 = 512;

/// The alternatives of a group of slots.
#[derive(Debug, Clone)]
pub(crate) struct OrGroup {
    /// The slots to choose from.
    pub(super) slots: Vec<Request>,
    /// Per slot, per resource: the pooled type (index in the group's
    /// `with`) it draws from; `None` when one is of a type the graph lacks,
    /// so the slot never fits.
    pools: Vec<Option<Vec<usize>>>,
    /// Units of each tracked type the request above counts for the group:
    /// the least any alternative needs in all its slots.
    pub(super) parent_needs: Vec<u64>,
}

/// Replaces two or more plain slots of `list` by one group of
/// alternatives, at the place of the first.
pub(super) fn group(g: &ResourceGraph, list: Vec<Request>) -> Vec<Request> {
    let plain = |r: &Request| r.is_slot && r.alternatives.is_none();
    if list.iter().filter(|r| plain(r)).count() < 2 {
        return list;
    }
    let at = list.iter().position(plain).unwrap_or(0);
    let (alts, mut rest): (Vec<Request>, Vec<Request>) = list.into_iter().partition(plain);
    // One request per type the alternatives use, open-ended: a vertex
    // hosting the slots pools all it has of each.
    let mut with: Vec<Request> = Vec::new();
    for e in alts.iter().flat_map(|a| &a.with) {
        if !with.iter().any(|w| w.kind == e.kind) {
            let mut e = e.clone();
            e.count.min = 1;
            e.count.max = u64::MAX;
            with.push(e);
        }
    }
    // As Fluxion primes them: the request above needs, of each tracked
    // type, what the least demanding alternative needs in all its slots;
    // a vertex that could host some of the slots is kept when it holds
    // one slot of the last alternative (Fluxion's prune checks each
    // sibling slot in turn and the last one's verdict stands).
    let width = g.tracked_types().len();
    let parent_needs = (0..width)
        .map(|i| {
            alts.iter()
                .map(|a| a.total_needs().nth(i).unwrap_or(0))
                .min()
                .unwrap_or(0)
        })
        .collect();
    let unit_needs = alts
        .last()
        .map(|a| a.unit_needs.clone())
        .unwrap_or_default();
    let count = alts
        .iter()
        .map(|a| a.count)
        .max_by_key(|c| c.min)
        .unwrap_or(alts[0].count);
    let pools = alts
        .iter()
        .map(|a| {
            a.with
                .iter()
                .map(|e| {
                    e.kind?;
                    with.iter().position(|w| w.kind == e.kind)
                })
                .collect()
        })
        .collect();
    let grouped = Request {
        kind: None,
        is_slot: true,
        count,
        exclusive: None,
        with,
        slot_child: None,
        unit_needs,
        alternatives: Some(Box::new(OrGroup {
            slots: alts,
            pools,
            parent_needs,
        })),
    };
    rest.insert(at.min(rest.len()), grouped);
    rest
}

/// The best mix of alternatives for some remaining units per pooled type:
/// how many slots it makes, the alternative to deal first, and what that
/// leaves.
type Config = (u64, Option<usize>, Vec<u64>);

impl Search<'_> {
    /// Deals `kids` (sorted by [`Search::sort`], answering `slot.with`,
    /// the types the alternatives pool) out into the mix of `group`'s
    /// slots that makes the most slots, each taking the best of what is
    /// left.
    pub(super) fn pack_or_slots(
        &self,
        u: VertexId,
        slot: &Request,
        group: &OrGroup,
        kids: &[Cand],
    ) -> Vec<Cand> {
        let pool_of = &group.pools;
        let pools: Vec<&[Cand]> = (0..slot.with.len()).map(|i| answering(kids, i)).collect();
        let total: Vec<u64> = pools
            .iter()
            .map(|p| p.iter().map(|c| c.count).sum())
            .collect();
        let mut memo: HashMap<Vec<u64>, Config> = HashMap::new();
        let (n, _, _) = best_mix(&group.slots, pool_of, total.clone(), 0, &mut memo);
        let uniq = self.g.vertex(u).map_or(0, |x| x.uniq_id);
        let mut cursors = vec![0usize; pools.len()];
        let mut left = total.clone();
        let mut out = Vec::new();
        for i in 0..n {
            let Some((_, Some(ai), next)) = memo.get(&left).cloned() else {
                break;
            };
            let (Some(alt), Some(Some(pools_of_alt))) = (group.slots.get(ai), pool_of.get(ai))
            else {
                break;
            };
            let mut slot = SlotFill::default();
            for (e, &pi) in alt.with.iter().zip(pools_of_alt) {
                // Like Fluxion, each resource takes its count as judged
                // against the whole pool.
                let want = e.count.best_within(total[pi]).unwrap_or(0);
                if !slot.take(pools[pi], &mut cursors[pi], want) {
                    return out;
                }
            }
            out.push(slot.into_cand(u, uniq, i));
            left = next;
        }
        out
    }
}

/// The most slots the alternatives make from `left` units per pool (at
/// most [`MAX_SLOTS`] from `depth` on), memoized by what is left.
fn best_mix(
    alts: &[Request],
    pool_of: &[Option<Vec<usize>>],
    left: Vec<u64>,
    depth: u64,
    memo: &mut HashMap<Vec<u64>, Config>,
) -> Config {
    if let Some(c) = memo.get(&left) {
        return c.clone();
    }
    let mut best: Config = (0, None, Vec::new());
    if depth < MAX_SLOTS {
        for (ai, alt) in alts.iter().enumerate() {
            let Some(pools) = &pool_of[ai] else { continue };
            let mut next = left.clone();
            let fits =
                alt.with
                    .iter()
                    .zip(pools)
                    .all(|(e, &pi)| match e.count.best_within(next[pi]) {
                        Some(n) if n > 0 => {
                            next[pi] -= n;
                            true
                        }
                        _ => false,
                    });
            if !fits {
                continue;
            }
            let (more, _, _) = best_mix(alts, pool_of, next.clone(), depth + 1, memo);
            if best.1.is_none() || more + 1 > best.0 {
                best = (more + 1, Some(ai), next);
            }
        }
    }
    memo.insert(left, best.clone());
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{ClusterShape, cluster};
    use crate::jobspec::Jobspec;

    fn alternatives(g: &ResourceGraph, a: u64, b: u64) -> Request {
        let spec = Jobspec::parse(&format!(
            "version: 9999
resources:
  - type: socket
    count: 1
    with:
      - {{type: slot, count: 1, label: a, with: [{{type: core, count: {a}}}]}}
      - {{type: slot, count: 1, label: b, with: [{{type: core, count: {b}}}]}}
attributes: {{system: {{duration: 10}}}}
tasks: [{{command: [app], slot: a, count: {{per_slot: 1}}}}]
"
        ))
        .unwrap();
        let mut socket = Request::build(g, &spec, true).unwrap().remove(0);
        socket.with.remove(0)
    }

    #[test]
    fn the_mix_of_alternatives_fits_the_most_slots() {
        let shape = ClusterShape {
            nodes: 1,
            nodes_per_rack: 1,
            sockets: 1,
            cores_per_socket: 8,
            gpus_per_socket: 0,
            memory_gib_per_socket: 0,
            per_node_ids: false,
        };
        let mut g = cluster(&shape).unwrap();
        g.set_prune_filters(&"ALL:core".parse().unwrap()).unwrap();
        let group = alternatives(&g, 3, 2);
        // Needs at least the smaller alternative.
        assert_eq!(group.unit_needs, [2]);
        let alts = group.alternatives.as_deref().unwrap();
        assert_eq!(alts.slots.len(), 2);
        let pool_of = &alts.pools;
        assert_eq!(*pool_of, vec![Some(vec![0]), Some(vec![0])]);
        let mut memo = HashMap::new();
        // 8 cores: four of the smaller (starting with the larger makes 3).
        let (n, first, left) = best_mix(&alts.slots, pool_of, vec![8], 0, &mut memo);
        assert_eq!((n, first, left), (4, Some(1), vec![6]));
        // 7 cores: 3 either way; the first alternative wins the tie.
        let mut memo = HashMap::new();
        assert_eq!(
            best_mix(&alts.slots, pool_of, vec![7], 0, &mut memo),
            (3, Some(0), vec![4])
        );
        // Nothing fits in 1 core.
        let mut memo = HashMap::new();
        assert_eq!(
            best_mix(&alts.slots, pool_of, vec![1], 0, &mut memo),
            (0, None, Vec::new())
        );
    }
}
