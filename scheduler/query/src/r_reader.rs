//! What an R names: the vertices of a job's resource set, read from an
//! rv1exec or JGF R against the graph.
//!
//! `partial-cancel` needs the nodes an R names; `update allocate` needs the
//! whole allocation, as the post-ordered list a match would have emitted:
//! the vertices the R names, held exclusively, below the ancestors they
//! pass through. Every error names the field of the R that is wrong.

use std::collections::{HashMap, HashSet};

use fluxion_core::graph::{ResourceGraph, VertexId};
use fluxion_core::io::{IdsetError, MAX_IDSET_IDS, expand_idset};
use fluxion_core::matcher::Emit;
use serde_json::Value;

/// Parses an RFC 22 idset (`0-3,7`, brackets allowed), of at most
/// [`MAX_IDSET_IDS`] ids, counted before any is made.
pub(crate) fn parse_idset(s: &str) -> Result<Vec<i64>, IdsetError> {
    expand_idset(s.trim_matches(|c| c == '[' || c == ']'), MAX_IDSET_IDS)
}

/// The node vertices of `ranks`, in graph order.
pub(crate) fn nodes_of_ranks(g: &ResourceGraph, ranks: &[i64]) -> Vec<VertexId> {
    let ranks: HashSet<i64> = ranks.iter().copied().collect();
    g.vertices()
        .filter(|&v| {
            g.kind_name(v) == "node" && g.vertex(v).is_some_and(|x| ranks.contains(&x.rank))
        })
        .collect()
}

/// One `execution.R_lite` entry: its field name (for errors), ranks and
/// children (type, ids).
struct RliteEntry {
    field: String,
    ranks: Vec<i64>,
    children: Vec<(String, Vec<i64>)>,
}

fn rlite_entries(text: &str) -> Result<Vec<RliteEntry>, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let rlite = v
        .pointer("/execution/R_lite")
        .and_then(|r| r.as_array())
        .ok_or("execution.R_lite: missing or not a list")?;
    let mut out = Vec::new();
    // The whole R expands to at most MAX_IDSET_IDS ids, counted before
    // each set is made: many entries of a large set each add up too.
    let mut room = MAX_IDSET_IDS;
    let mut take = |r: &str, field: &str| -> Result<Vec<i64>, String> {
        let r = r.trim_matches(|c| c == '[' || c == ']');
        let ids = expand_idset(r, room).map_err(|e| match e {
            IdsetError::TooMany { .. } => {
                format!("{field}: {e}; the whole R may name at most {MAX_IDSET_IDS} ids")
            }
            e => format!("{field}: {e}"),
        })?;
        room -= ids.len() as u64;
        Ok(ids)
    };
    for (i, entry) in rlite.iter().enumerate() {
        let field = format!("execution.R_lite[{i}]");
        let ranks = entry
            .get("rank")
            .and_then(|r| r.as_str())
            .ok_or_else(|| format!("{field}.rank: missing or not an idset"))
            .and_then(|r| take(r, &format!("{field}.rank")))?;
        let mut children = Vec::new();
        if let Some(c) = entry.get("children") {
            let c = c
                .as_object()
                .ok_or_else(|| format!("{field}.children: not an object"))?;
            for (kind, ids) in c {
                let ids = ids
                    .as_str()
                    .ok_or_else(|| format!("{field}.children.{kind}: not an idset"))
                    .and_then(|r| take(r, &format!("{field}.children.{kind}")))?;
                children.push((kind.clone(), ids));
            }
        }
        out.push(RliteEntry {
            field,
            ranks,
            children,
        });
    }
    Ok(out)
}

/// The nodes of the ranks an rv1exec R names.
pub(crate) fn rv1exec_nodes(g: &ResourceGraph, text: &str) -> Result<Vec<VertexId>, String> {
    let ranks: Vec<i64> = rlite_entries(text)?
        .into_iter()
        .flat_map(|e| e.ranks)
        .collect();
    Ok(nodes_of_ranks(g, &ranks))
}

/// The node vertices a JGF R lists (vertices not in the graph are skipped).
pub(crate) fn jgf_nodes(g: &ResourceGraph, text: &str) -> Result<Vec<VertexId>, String> {
    Ok(jgf_listed(g, text, true)?
        .into_iter()
        .filter(|&(v, _)| g.kind_name(v) == "node")
        .map(|(v, _)| v)
        .collect())
}

/// The vertices an rv1exec R holds: for each rank of each `R_lite` entry,
/// the rank's node and its children of the listed types and ids. The
/// second list has the nodes to hold as pass-through: as in Fluxion's
/// rv1exec reader, a node is taken only when the R names every other
/// vertex of its rank (it is printed exclusive either way).
pub(crate) fn rv1exec_emits(
    g: &ResourceGraph,
    text: &str,
) -> Result<(Vec<Emit>, Vec<VertexId>), String> {
    let entries = rlite_entries(text)?;
    // One pass over the graph finds every rank's node (the first in graph
    // order when a rank has several).
    let ranks: Vec<i64> = entries
        .iter()
        .flat_map(|e| e.ranks.iter().copied())
        .collect();
    let mut node_of: HashMap<i64, VertexId> = HashMap::new();
    for v in nodes_of_ranks(g, &ranks) {
        if let Some(x) = g.vertex(v) {
            node_of.entry(x.rank).or_insert(v);
        }
    }
    // Every vertex of a rank, the way Fluxion's by-rank index counts them.
    let mut of_rank: HashMap<i64, usize> = HashMap::new();
    for v in g.vertices() {
        if let Some(x) = g.vertex(v).filter(|x| node_of.contains_key(&x.rank)) {
            *of_rank.entry(x.rank).or_default() += 1;
        }
    }
    let mut named: HashMap<VertexId, HashSet<VertexId>> = HashMap::new();
    let mut held = Vec::new();
    for entry in &entries {
        let field = &entry.field;
        for &rank in &entry.ranks {
            let node = *node_of
                .get(&rank)
                .ok_or_else(|| format!("{field}.rank: no node has rank {rank}"))?;
            held.push((node, true));
            let below = g.subtree(node);
            for (kind, ids) in &entry.children {
                for &id in ids {
                    let found = below.iter().copied().find(|&u| {
                        g.kind_name(u) == kind && g.vertex(u).is_some_and(|x| x.id == id)
                    });
                    let u = found.ok_or_else(|| {
                        format!("{field}.children.{kind}: rank {rank} has no {kind} with id {id}")
                    })?;
                    held.push((u, true));
                    if g.vertex(u).is_some_and(|x| x.rank == rank) {
                        named.entry(node).or_default().insert(u);
                    }
                }
            }
        }
    }
    let passing = node_of
        .iter()
        .filter(|&(rank, node)| {
            let others = of_rank.get(rank).copied().unwrap_or(1).saturating_sub(1);
            named.get(node).map_or(0, HashSet::len) != others
        })
        .map(|(_, &node)| node)
        .collect();
    Ok((post_order(g, &held), passing))
}

/// The vertices a JGF R lists, found by their containment path; each is
/// held exclusively when its metadata says `exclusive`.
pub(crate) fn jgf_emits(g: &ResourceGraph, text: &str) -> Result<Vec<Emit>, String> {
    Ok(post_order(g, &jgf_listed(g, text, false)?))
}

/// Each vertex a JGF R lists, with whether it is held exclusively. A listed
/// vertex must agree with the graph (see [`jgf_vertex_agrees`]); one the
/// graph does not have is skipped when `skip_missing`, else an error.
fn jgf_listed(
    g: &ResourceGraph,
    text: &str,
    skip_missing: bool,
) -> Result<Vec<(VertexId, bool)>, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let nodes = v
        .pointer("/graph/nodes")
        .and_then(|n| n.as_array())
        .ok_or("graph.nodes: missing or not a list")?;
    let mut listed = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let field = format!("graph.nodes[{i}].metadata");
        let Some(meta) = n.get("metadata") else {
            if skip_missing {
                continue;
            }
            return Err(format!("{field}: missing"));
        };
        let path = meta.pointer("/paths/containment").and_then(|p| p.as_str());
        let Some(vx) = path.and_then(|p| g.find_path(p)) else {
            if skip_missing {
                continue;
            }
            return Err(match path {
                Some(p) => format!("{field}.paths.containment: no vertex at {p}"),
                None => format!("{field}.paths.containment: missing"),
            });
        };
        jgf_vertex_agrees(g, vx, meta).map_err(|e| format!("{field}.{e}"))?;
        let exclusive = match meta.get("exclusive") {
            Some(Value::Bool(b)) => *b,
            Some(Value::Number(n)) => n.as_i64() == Some(1),
            _ => false,
        };
        listed.push((vx, exclusive));
    }
    Ok(listed)
}

/// Whether the metadata of a JGF vertex names the same vertex as the graph
/// holds at its path: a partial cancel must not release resources that a
/// stale or hand-edited R describes differently. The error names the field.
fn jgf_vertex_agrees(g: &ResourceGraph, v: VertexId, meta: &Value) -> Result<(), String> {
    let Some(x) = g.vertex(v) else {
        return Ok(());
    };
    let int = |k: &str| meta.get(k).and_then(|x| x.as_i64());
    let text = |k: &str| meta.get(k).and_then(|x| x.as_str());
    if let Some(t) = text("type")
        && t != g.kind_name(v)
    {
        return Err(format!("type: {t} where the graph has {}", g.kind_name(v)));
    }
    if let Some(n) = text("name")
        && !x.is_named(n)
    {
        return Err(format!("name: {n} where the graph has {}", x.name()));
    }
    if let Some(r) = int("rank")
        && r != x.rank
    {
        return Err(format!("rank: {r} where {} has rank {}", x.name(), x.rank));
    }
    if let Some(i) = int("id")
        && i != x.id
    {
        return Err(format!("id: {i} where {} has id {}", x.name(), x.id));
    }
    if let Some(sz) = int("size")
        && u64::try_from(sz).ok() != Some(x.size)
    {
        return Err(format!("size: {sz} where {} has size {}", x.name(), x.size));
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use fluxion_core::io::read_rv1exec;

    /// The node of a rank is taken only when the R names all the rank has.
    #[test]
    fn an_rv1exec_r_takes_a_node_only_when_it_names_all_of_it() {
        let g = read_rv1exec(
            r#"{"version": 1, "execution": {"R_lite": [{"rank": "0-1", "children": {"core": "0-3", "gpu": "0"}}],
                "nodelist": ["n[0-1]"], "starttime": 0, "expiration": 0}}"#,
        )
        .unwrap();
        let r = |children: &str| {
            format!(
                r#"{{"version": 1, "execution": {{"R_lite": [{{"rank": "1", "children": {children}}}],
                    "nodelist": ["n1"], "starttime": 0, "expiration": 0}}}}"#
            )
        };
        let n1 = nodes_of_ranks(&g, &[1])[0];
        let (some, passing) = rv1exec_emits(&g, &r(r#"{"core": "2"}"#)).unwrap();
        assert_eq!(passing, vec![n1]);
        assert!(some.iter().any(|e| e.vertex == n1 && e.exclusive));
        let (_, passing) = rv1exec_emits(&g, &r(r#"{"core": "0-3", "gpu": "0"}"#)).unwrap();
        assert!(passing.is_empty());
    }
}
