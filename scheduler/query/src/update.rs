//! The allocation an R describes, for `update allocate FORMAT FILE ...`.
//!
//! Another scheduler (or this one, before a restart) has already placed a
//! job; its R names what the job holds. These readers turn that R into the
//! post-ordered list a match would have emitted: the vertices the R names,
//! held exclusively, below the ancestors they pass through. Every error
//! names the field of the R that is wrong.

use std::collections::HashSet;

use fluxion_core::graph::{ResourceGraph, VertexId};
use fluxion_core::matcher::Emit;

use crate::shell::{jgf_vertex_agrees, nodes_of_ranks, parse_idset};

/// The vertices an rv1exec R holds: for each rank of each `R_lite` entry,
/// the rank's node and its children of the listed types and ids.
pub(crate) fn rv1exec_emits(g: &ResourceGraph, text: &str) -> Result<Vec<Emit>, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let rlite = v
        .pointer("/execution/R_lite")
        .and_then(|r| r.as_array())
        .ok_or("execution.R_lite: missing or not a list")?;
    let mut held = Vec::new();
    for (i, entry) in rlite.iter().enumerate() {
        let field = format!("execution.R_lite[{i}]");
        let ranks = entry
            .get("rank")
            .and_then(|r| r.as_str())
            .and_then(parse_idset)
            .ok_or_else(|| format!("{field}.rank: missing or not an idset"))?;
        let children = entry
            .get("children")
            .and_then(|c| c.as_object())
            .ok_or_else(|| format!("{field}.children: missing or not an object"))?;
        for rank in ranks {
            let node = *nodes_of_ranks(g, &[rank])
                .first()
                .ok_or_else(|| format!("{field}.rank: no node has rank {rank}"))?;
            held.push(node);
            for (kind, ids) in children {
                let ids = ids
                    .as_str()
                    .and_then(parse_idset)
                    .ok_or_else(|| format!("{field}.children.{kind}: not an idset"))?;
                for id in ids {
                    let found = g.subtree(node).into_iter().find(|&u| {
                        g.kind_name(u) == kind && g.vertex(u).is_some_and(|x| x.id == id)
                    });
                    let u = found.ok_or_else(|| {
                        format!("{field}.children.{kind}: rank {rank} has no {kind} with id {id}")
                    })?;
                    held.push(u);
                }
            }
        }
    }
    Ok(post_order(
        g,
        &held.into_iter().map(|v| (v, true)).collect::<Vec<_>>(),
    ))
}

/// The vertices a JGF R lists, found by their containment path; each is
/// held exclusively when its metadata says `exclusive`.
pub(crate) fn jgf_emits(g: &ResourceGraph, text: &str) -> Result<Vec<Emit>, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let nodes = v
        .pointer("/graph/nodes")
        .and_then(|n| n.as_array())
        .ok_or("graph.nodes: missing or not a list")?;
    let mut held = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let field = format!("graph.nodes[{i}].metadata");
        let meta = n
            .get("metadata")
            .ok_or_else(|| format!("{field}: missing"))?;
        let path = meta
            .pointer("/paths/containment")
            .and_then(|p| p.as_str())
            .ok_or_else(|| format!("{field}.paths.containment: missing"))?;
        let vx = g
            .find_path(path)
            .ok_or_else(|| format!("{field}.paths.containment: no vertex at {path}"))?;
        jgf_vertex_agrees(g, vx, meta).map_err(|e| format!("{field}.{e}"))?;
        let exclusive = match meta.get("exclusive") {
            Some(serde_json::Value::Bool(b)) => *b,
            Some(serde_json::Value::Number(n)) => n.as_i64() == Some(1),
            _ => false,
        };
        held.push((vx, exclusive));
    }
    Ok(post_order(g, &held))
}

/// `held` and every ancestor of it, children before parents in graph
/// order, as a match emits them; ancestors not in `held` pass through.
fn post_order(g: &ResourceGraph, held: &[(VertexId, bool)]) -> Vec<Emit> {
    let exclusive: HashSet<VertexId> = held.iter().filter(|h| h.1).map(|h| h.0).collect();
    let mut needed: HashSet<VertexId> = HashSet::new();
    for &(v, _) in held {
        let mut at = Some(v);
        while let Some(u) = at.filter(|u| needed.insert(*u)) {
            at = g.parent(u);
        }
    }
    let mut out = Vec::new();
    let Some(root) = g.root().filter(|r| needed.contains(r)) else {
        return out;
    };
    // (vertex, children already pushed)
    let mut stack = vec![(root, false)];
    while let Some((v, expanded)) = stack.pop() {
        if expanded {
            let size = g.vertex(v).map_or(1, |x| x.size);
            out.push(Emit {
                vertex: v,
                needs: size,
                exclusive: exclusive.contains(&v),
            });
            continue;
        }
        stack.push((v, true));
        for &c in g.children(v).iter().rev() {
            if needed.contains(&c) {
                stack.push((c, false));
            }
        }
    }
    out
}
