//! Turning a traversal's chosen claims into the match's vertex list: every
//! claimed vertex once, its pass-through ancestors, in depth-first
//! post-order (the order resource-query prints and holds them in).

use std::collections::HashMap;

use super::Emit;
use super::search::Shape;
use crate::graph::{ResourceGraph, TypeId, VertexId};
use crate::marks::VertexMarks;

/// What [`order`] needs to know besides the claims.
pub(crate) struct EmitContext<'a> {
    pub(crate) graph: &'a ResourceGraph,
    pub(crate) shape: &'a Shape,
    /// Nodes are handed out whole (a node-exclusive policy).
    pub(crate) whole_nodes: bool,
    pub(crate) node_kind: Option<TypeId>,
    /// Shared vertices the match reached through an association: their
    /// parent in this match (see [`crate::graph::ResourceGraph::is_shared`]).
    pub(crate) via: HashMap<VertexId, VertexId>,
}

impl EmitContext<'_> {
    /// `v`'s parent on the path the match took.
    fn parent(&self, v: VertexId) -> Option<VertexId> {
        self.via.get(&v).copied().or_else(|| self.graph.parent(v))
    }
    /// `v`'s children on the paths the match took: tree children not
    /// taken through another vertex, then associated children taken
    /// through `v`.
    fn children(&self, v: VertexId) -> impl Iterator<Item = VertexId> + '_ {
        let g = self.graph;
        let tree = g
            .children(v)
            .iter()
            .copied()
            .filter(move |c| self.via.get(c).is_none_or(|&p| p == v));
        let assoc = g
            .associated_children(v)
            .iter()
            .copied()
            .filter(move |c| self.via.get(c) == Some(&v));
        tree.chain(assoc)
    }
}

/// Orders `chosen` for the match. Returns the printed vertices in
/// post-order and the "shadow" claims (needs 0: held below an exclusive
/// vertex without being printed) that no printed vertex already covers.
/// The first claim of a vertex wins; ancestors are added as pass-through
/// entries of their whole size. With `whole_nodes`, each node's subtree is
/// replaced by all of its vertices, held exclusively and whole.
pub(crate) fn order(
    cx: &EmitContext<'_>,
    marks: &mut VertexMarks,
    chosen: Vec<Emit>,
) -> (Vec<Emit>, Vec<Emit>) {
    let g = cx.graph;
    let whole_nodes = cx.whole_nodes && cx.node_kind.is_some();
    let is_node = |v: VertexId| g.vertex(v).map(|x| x.kind) == cx.node_kind;
    // With whole nodes, anything claimed inside a node stands for the node.
    let node_of = |v: VertexId| {
        std::iter::once(v)
            .chain(g.ancestors(v))
            .find(|&a| is_node(a))
    };
    marks.clear(g.index_bound());
    let mut shadow = Vec::new();
    let mut list = Vec::with_capacity(chosen.len() + chosen.len() / 4);
    for e in chosen {
        if e.needs == 0 {
            shadow.push(e);
            continue;
        }
        let node = if whole_nodes { node_of(e.vertex) } else { None };
        let e = match node {
            Some(n) => Emit {
                vertex: n,
                needs: 1,
                exclusive: true,
            },
            None => e,
        };
        if marks.insert(e.vertex) {
            list.push(e);
        }
    }
    for i in 0..list.len() {
        let mut cur = cx.parent(list[i].vertex);
        while let Some(p) = cur {
            if !marks.insert(p) {
                break;
            }
            list.push(Emit {
                vertex: p,
                needs: g.vertex(p).map_or(1, |x| x.size),
                exclusive: false,
            });
            cur = cx.parent(p);
        }
    }
    let shadow = shadow
        .into_iter()
        .filter(|e| {
            // Printed already, or inside a node printed whole.
            let covered = marks.contains(e.vertex)
                || (whole_nodes && node_of(e.vertex).is_some_and(|n| marks.contains(n)));
            !covered
        })
        .collect();
    let list = post_order(cx, marks, list);
    if !whole_nodes {
        return (list, shadow);
    }
    // Each node stands for its whole subtree, held exclusively and whole
    // (the node itself counts 1), in depth-first finish order. The list
    // runs to thousands of entries: sized up front, it is written once
    // rather than copied through every doubling.
    let size: usize = list
        .iter()
        .map(|e| match is_node(e.vertex) {
            true => subtree_len(g, cx.shape, e.vertex).unwrap_or(1),
            false => 1,
        })
        .sum();
    let mut out = Vec::with_capacity(size);
    // A walk with its own stack (a graph's depth comes from its file) that
    // keeps each open vertex's remaining children and size: every vertex
    // of the subtree is looked up once, on the way down.
    let mut stack: Vec<(VertexId, &[VertexId], u64)> = Vec::new();
    for e in list {
        if !is_node(e.vertex) {
            out.push(e);
            continue;
        }
        let n = e.vertex;
        // The node itself counts 1.
        stack.push((n, g.children(n), 1));
        while let Some((u, kids, needs)) = stack.last_mut() {
            if let Some((&k, rest)) = kids.split_first() {
                *kids = rest;
                let (grand, size) = g.vertex(k).map_or((&[][..], 1), |x| (x.children(), x.size));
                stack.push((k, grand, size));
            } else {
                out.push(Emit {
                    vertex: *u,
                    needs: *needs,
                    exclusive: true,
                });
                stack.pop();
            }
        }
    }
    (out, shadow)
}

/// The number of vertices in the subtree of `v`, from the finish numbers
/// of `v` and of its first leaf (a subtree is a run of finish numbers);
/// `None` when they are out of date.
pub(crate) fn subtree_len(g: &ResourceGraph, shape: &Shape, v: VertexId) -> Option<usize> {
    let post = |u: VertexId| {
        shape
            .post
            .get(u.index())
            .copied()
            .filter(|&p| p != u32::MAX)
    };
    let mut leaf = v;
    while let Some(&first) = g.children(leaf).first() {
        leaf = first;
    }
    let len = post(v)?.checked_sub(post(leaf)?)?;
    Some(len as usize + 1)
}

/// Sorts `list` (whose vertices are exactly those of `marks`) in post-order:
/// by the shape's cached finish numbers, or, when the graph changed since
/// they were taken, by a walk of the marked vertices.
fn post_order(cx: &EmitContext<'_>, marks: &VertexMarks, list: Vec<Emit>) -> Vec<Emit> {
    let post = &cx.shape.post;
    let finish = |e: &Emit| {
        post.get(e.vertex.index())
            .copied()
            .filter(|&p| p != u32::MAX)
    };
    if cx.via.is_empty() && list.len() <= u32::MAX as usize {
        // Sorting plain integers (finish number, position) is several times
        // faster than sorting the entries by a looked-up key.
        let keys: Option<Vec<u64>> = list
            .iter()
            .enumerate()
            .map(|(i, e)| Some((u64::from(finish(e)?) << 32) | i as u64))
            .collect();
        if let Some(mut keys) = keys {
            keys.sort_unstable();
            return keys
                .iter()
                .map(|k| list[(k & 0xffff_ffff) as usize])
                .collect();
        }
    }
    let g = cx.graph;
    let Some(root) = g.root().filter(|&r| marks.contains(r)) else {
        return Vec::new();
    };
    let mut by_vertex: std::collections::HashMap<VertexId, Emit> =
        list.into_iter().map(|e| (e.vertex, e)).collect();
    let mut out = Vec::with_capacity(by_vertex.len());
    let mut stack: Vec<(VertexId, usize)> = vec![(root, 0)];
    while let Some((v, i)) = stack.pop() {
        if let Some((pos, k)) = cx
            .children(v)
            .enumerate()
            .skip(i)
            .find(|&(_, k)| marks.contains(k))
        {
            stack.push((v, pos + 1));
            stack.push((k, 0));
        } else if let Some(e) = by_vertex.remove(&v) {
            out.push(e);
        }
    }
    out
}
