//! JSON Graph Format, as Fluxion reads and writes it.
//!
//! Nodes carry `metadata` {type, basename, name, id, uniq_id, rank,
//! exclusive, unit, size, paths{containment}, properties}; containment edges
//! go parent -> child. Children keep the order of the edge list.

use std::collections::{HashMap, HashSet};

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::IoError;
use crate::graph::{CONTAINMENT, GraphLimits, ResourceGraph, Status, VertexId, VertexSpec};

#[derive(Deserialize)]
struct Doc {
    graph: GraphDoc,
}

#[derive(Deserialize)]
struct GraphDoc {
    #[serde(default)]
    nodes: Vec<NodeDoc>,
    #[serde(default)]
    edges: Vec<EdgeDoc>,
}

#[derive(Deserialize)]
struct NodeDoc {
    id: Value,
    #[serde(default)]
    metadata: Meta,
}

#[derive(Deserialize, Default)]
struct Meta {
    #[serde(rename = "type")]
    kind: Option<String>,
    basename: Option<String>,
    name: Option<String>,
    id: Option<i64>,
    uniq_id: Option<u64>,
    rank: Option<i64>,
    unit: Option<String>,
    size: Option<u64>,
    #[serde(default)]
    paths: HashMap<String, String>,
    #[serde(default)]
    properties: HashMap<String, Value>,
    status: Option<Value>,
}

#[derive(Deserialize)]
struct EdgeDoc {
    source: Value,
    target: Value,
    #[serde(default)]
    metadata: Option<Value>,
}

fn id_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn is_containment(e: &EdgeDoc) -> bool {
    edge_subsystem(e).is_some_and(|s| s == CONTAINMENT)
}

/// The subsystem of an edge in its generated direction, or `None` for the
/// reverse edge of a pair (older JGF lists both: `contains` and `in`,
/// `supplies_to` and `draws_from`), which adds nothing.
fn edge_subsystem(e: &EdgeDoc) -> Option<&str> {
    let Some(m) = &e.metadata else {
        return Some(CONTAINMENT);
    };
    if let Some(s) = m.get("subsystem").and_then(Value::as_str) {
        return Some(s);
    }
    if let Some(n) = m.get("name").and_then(Value::as_object) {
        if let Some(r) = n.get(CONTAINMENT).and_then(Value::as_str) {
            return (r == "contains").then_some(CONTAINMENT);
        }
        if let Some((s, r)) = n.iter().next() {
            let reverse = matches!(r.as_str(), Some("in" | "draws_from"));
            return (!reverse).then_some(s.as_str());
        }
    }
    Some(CONTAINMENT)
}

/// Reads a JGF document into a new graph, within the default [`GraphLimits`].
pub fn read_jgf(text: &str) -> Result<ResourceGraph, IoError> {
    read_jgf_with(text, GraphLimits::default())
}

/// Reads a JGF document into a new graph with these limits.
pub fn read_jgf_with(text: &str, limits: GraphLimits) -> Result<ResourceGraph, IoError> {
    let mut g = ResourceGraph::with_limits(limits);
    attach_jgf(&mut g, text)?;
    Ok(g)
}

/// Adds the vertices of a JGF document to `g`: vertices whose containment
/// path already exists are reused, the others are added under their parent.
/// Returns the new vertices.
pub fn attach_jgf(g: &mut ResourceGraph, text: &str) -> Result<Vec<VertexId>, IoError> {
    let de = &mut serde_json::Deserializer::from_str(text);
    let doc: Doc = serde_path_to_error::deserialize(de)
        .map_err(|e| IoError::Jgf(format!("{}: {}", e.path(), e.inner())))?;
    let mut index: HashMap<String, usize> = HashMap::new();
    for (i, n) in doc.graph.nodes.iter().enumerate() {
        if index.insert(id_string(&n.id), i).is_some() {
            return Err(IoError::Jgf(format!(
                "graph.nodes[{i}].id: duplicate id {}",
                id_string(&n.id)
            )));
        }
        if n.metadata.kind.as_deref().is_none_or(str::is_empty) {
            return Err(IoError::Jgf(format!(
                "graph.nodes[{i}].metadata.type: missing"
            )));
        }
    }
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); doc.graph.nodes.len()];
    let mut has_parent = vec![false; doc.graph.nodes.len()];
    let mut associations: Vec<(usize, usize)> = Vec::new();
    for (i, e) in doc.graph.edges.iter().enumerate() {
        if !is_containment(e) {
            continue;
        }
        let s = index.get(&id_string(&e.source)).copied().ok_or_else(|| {
            IoError::Jgf(format!(
                "graph.edges[{i}].source: unknown node {}",
                id_string(&e.source)
            ))
        })?;
        let t = index.get(&id_string(&e.target)).copied().ok_or_else(|| {
            IoError::Jgf(format!(
                "graph.edges[{i}].target: unknown node {}",
                id_string(&e.target)
            ))
        })?;
        if has_parent[t] {
            // A second container makes an association (a graph being
            // attached to another may not bring one).
            if g.vertex_count() > 0 {
                return Err(IoError::Jgf(format!(
                    "graph.edges[{i}]: node {} has two parents",
                    id_string(&e.target)
                )));
            }
            associations.push((s, t));
            continue;
        }
        has_parent[t] = true;
        children[s].push(t);
    }
    // Vertices of other subsystems only (e.g. power) are not part of the
    // containment tree.
    let in_tree = |i: usize| {
        let p = &doc.graph.nodes[i].metadata.paths;
        p.is_empty() || p.contains_key("containment")
    };
    let roots: Vec<usize> = (0..doc.graph.nodes.len())
        .filter(|&i| !has_parent[i] && in_tree(i))
        .collect();
    let outside = (0..doc.graph.nodes.len()).filter(|&i| !in_tree(i)).count();
    if roots.len() > 1 {
        return Err(IoError::Jgf(format!(
            "{} roots in the containment subsystem; expected one",
            roots.len()
        )));
    }
    // A uniq_id, a containment path or a node's rank names one vertex: a
    // second one would make answers ambiguous. Ids of the graph being
    // attached to count too.
    let mut uniq_seen: HashSet<u64> = if g.vertex_count() > 0 {
        g.vertices()
            .filter_map(|v| g.vertex(v).map(|x| x.uniq_id))
            .collect()
    } else {
        HashSet::new()
    };
    let mut paths_seen: HashSet<&str> = HashSet::new();
    let mut ranks_seen: HashMap<i64, usize> = HashMap::new();
    for (i, n) in doc.graph.nodes.iter().enumerate() {
        let m = &n.metadata;
        if let Some(p) = m.paths.get("containment")
            && !paths_seen.insert(p)
        {
            return Err(IoError::Jgf(format!(
                "graph.nodes[{i}].metadata.paths.containment: path {p} appears twice"
            )));
        }
        if m.kind.as_deref() == Some("node")
            && let Some(r) = m.rank.filter(|&r| r >= 0)
            && let Some(other) = ranks_seen.insert(r, i)
        {
            return Err(IoError::Jgf(format!(
                "graph.nodes[{i}].metadata.rank: rank {r} is also node graph.nodes[{other}]'s"
            )));
        }
    }
    let fresh = g.vertex_count() == 0;
    let mut added = Vec::new();
    let mut vid: Vec<Option<VertexId>> = vec![None; doc.graph.nodes.len()];
    // The tree first (parents before children), then, for a fresh graph,
    // the vertices only other subsystems have, in document order.
    let mut stack: Vec<(usize, Option<VertexId>, bool)> =
        roots.iter().map(|&r| (r, None, false)).collect();
    let mut outside_left: Vec<usize> = if fresh {
        (0..doc.graph.nodes.len())
            .rev()
            .filter(|&i| !in_tree(i))
            .collect()
    } else {
        Vec::new()
    };
    let mut seen = 0usize;
    loop {
        let (i, parent, detached) = match stack.pop() {
            Some(x) => x,
            None => match outside_left.pop() {
                Some(i) => (i, None, true),
                None => break,
            },
        };
        if !detached {
            seen += 1;
        }
        let m = &doc.graph.nodes[i].metadata;
        let kind = m.kind.clone().unwrap_or_default();
        let basename = m.basename.clone().unwrap_or_else(|| kind.clone());
        // Fluxion's defaults: the unique id is the node's outer id when it
        // is a number; the logical id is a node's hostname suffix, else the
        // unique id; the name is basename + id.
        let outer_id = match &doc.graph.nodes[i].id {
            Value::String(s) => s.parse::<u64>().ok(),
            v => v.as_u64(),
        };
        let uniq_id = m.uniq_id.or(outer_id);
        let id = m.id.unwrap_or_else(|| {
            let suffix = m.name.as_deref().filter(|_| kind == "node").and_then(|n| {
                let digits = n.len() - n.trim_end_matches(|c: char| c.is_ascii_digit()).len();
                n[n.len() - digits..].parse::<i64>().ok()
            });
            suffix
                .or_else(|| uniq_id.and_then(|u| i64::try_from(u).ok()))
                .unwrap_or(-1)
        });
        let name = m.name.clone().unwrap_or_else(|| {
            if id >= 0 {
                format!("{basename}{id}")
            } else {
                basename.clone()
            }
        });
        let path = m.paths.get("containment").cloned();
        let existing = path.as_deref().and_then(|p| g.find_path(p));
        let v = match existing {
            Some(v) => v,
            None => {
                let parent = match parent {
                    Some(p) => Some(p),
                    None => match (&path, g.root()) {
                        (Some(p), Some(_)) if p.matches('/').count() <= 1 => {
                            return Err(IoError::DuplicateRoot(p.clone()));
                        }
                        (Some(p), Some(_)) => {
                            let cut = p.rfind('/').unwrap_or(0);
                            let pv = g.find_path(&p[..cut]).ok_or_else(|| {
                                IoError::Jgf(format!(
                                    "cannot attach {p}: parent path not in the graph"
                                ))
                            })?;
                            Some(pv)
                        }
                        _ => None,
                    },
                };
                let mut spec = VertexSpec {
                    kind,
                    basename,
                    name,
                    id,
                    rank: m.rank.unwrap_or(-1),
                    size: m.size.unwrap_or(1),
                    unit: m.unit.clone().unwrap_or_default(),
                    properties: m
                        .properties
                        .iter()
                        .map(|(k, v)| {
                            (
                                k.clone(),
                                v.as_str().map_or_else(|| v.to_string(), str::to_string),
                            )
                        })
                        .collect(),
                    status: match m.status.as_ref().and_then(Value::as_str) {
                        Some("down") => Status::Down,
                        _ => Status::Up,
                    },
                    uniq_id,
                };
                if let Some(u) = spec.uniq_id
                    && !uniq_seen.insert(u)
                {
                    if m.uniq_id.is_some() {
                        return Err(IoError::Jgf(format!(
                            "graph.nodes[{i}].metadata.uniq_id: {u} is another vertex's too"
                        )));
                    }
                    // Only derived from the node's outer id, which is unique
                    // within the document: the graph gives it a fresh one.
                    spec.uniq_id = None;
                }
                let made = if detached {
                    g.add_detached_vertex(spec)
                } else {
                    g.add_vertex(spec, parent)
                };
                let v = made.map_err(|e| {
                    IoError::Jgf(format!(
                        "graph.nodes[{i}] ({}): {e}",
                        id_string(&doc.graph.nodes[i].id)
                    ))
                })?;
                if let Some(x) = g.vertex(v) {
                    uniq_seen.insert(x.uniq_id);
                }
                added.push(v);
                v
            }
        };
        vid[i] = Some(v);
        if !detached {
            for &c in children[i].iter().rev() {
                stack.push((c, Some(v), false));
            }
        }
    }
    if seen + outside < doc.graph.nodes.len() {
        return Err(IoError::Jgf("containment edges form a cycle".into()));
    }
    for &(s, t) in &associations {
        if let (Some(s), Some(t)) = (vid[s], vid[t]) {
            g.add_link(CONTAINMENT, s, t)
                .map_err(|x| IoError::Jgf(format!("association: {x}")))?;
        }
    }
    if fresh {
        // The edges of the other subsystems, in document order.
        for (i, e) in doc.graph.edges.iter().enumerate() {
            let Some(sub) = edge_subsystem(e).filter(|&s| s != CONTAINMENT) else {
                continue;
            };
            let end = |x: &Value, which: &str| {
                index
                    .get(&id_string(x))
                    .and_then(|&k| vid[k])
                    .ok_or_else(|| {
                        IoError::Jgf(format!(
                            "graph.edges[{i}].{which}: unknown node {}",
                            id_string(x)
                        ))
                    })
            };
            let (s, t) = (end(&e.source, "source")?, end(&e.target, "target")?);
            g.add_link(sub, s, t)
                .map_err(|x| IoError::Jgf(format!("graph.edges[{i}]: {x}")))?;
        }
    }
    Ok(added)
}

/// Writes the whole graph as JGF (the format [`read_jgf`] reads): the
/// tree of the dominant subsystem, and the edges of the other subsystems
/// between the vertices written.
pub fn write_jgf(g: &ResourceGraph) -> String {
    let mut nodes = Vec::new();
    let mut edges = Vec::new();
    let dominant = g.dominant();
    let mut written = HashSet::new();
    if let Some(root) = g.root() {
        for v in g.subtree(root) {
            let Some(x) = g.vertex(v) else { continue };
            let mut props = Map::new();
            for (k, val) in &x.properties {
                props.insert(k.to_string(), Value::String(val.to_string()));
            }
            let mut meta = json!({
                "type": g.type_name(x.kind),
                "basename": &*x.basename,
                "name": x.name(),
                "id": x.id,
                "uniq_id": x.uniq_id,
                "rank": x.rank,
                "exclusive": false,
                "unit": &*x.unit,
                "size": x.size,
                "paths": {dominant: g.path(v)},
            });
            if !props.is_empty() {
                meta["properties"] = Value::Object(props);
            }
            if x.status == Status::Down {
                meta["status"] = Value::String("down".into());
            }
            nodes.push(json!({"id": x.uniq_id.to_string(), "metadata": meta}));
            written.insert(v);
            if let Some(p) = x.parent().and_then(|p| g.vertex(p)) {
                edges.push(json!({
                    "source": p.uniq_id.to_string(),
                    "target": x.uniq_id.to_string(),
                    "metadata": {"subsystem": dominant},
                }));
            }
        }
    }
    for l in g.links() {
        let (Some(s), Some(t)) = (g.vertex(l.source), g.vertex(l.target)) else {
            continue;
        };
        if written.contains(&l.source) && written.contains(&l.target) {
            edges.push(json!({
                "source": s.uniq_id.to_string(),
                "target": t.uniq_id.to_string(),
                "metadata": {"subsystem": g.subsystem_name(l.subsystem)},
            }));
        }
    }
    json!({"graph": {"nodes": nodes, "edges": edges}}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: u64, kind: &str, paths: Value) -> Value {
        json!({"id": id.to_string(), "metadata": {
            "type": kind, "basename": kind, "id": 0, "uniq_id": id, "paths": paths}})
    }

    #[test]
    fn other_subsystems_load_as_links_and_a_second_container_as_an_association() {
        let doc = json!({"graph": {
            "nodes": [
                node(0, "cluster", json!({"containment": "/cluster0"})),
                node(1, "node", json!({"containment": "/cluster0/node0", "power": "/panel0/node0"})),
                node(2, "store", json!({"containment": "/cluster0/store0"})),
                node(3, "panel", json!({"power": "/panel0"})),
            ],
            "edges": [
                {"source": "0", "target": "1", "metadata": {"subsystem": "containment"}},
                {"source": "0", "target": "2", "metadata": {"subsystem": "containment"}},
                {"source": "2", "target": "1", "metadata": {"subsystem": "containment"}},
                {"source": "3", "target": "1", "metadata": {"name": {"power": "supplies_to"}}},
                {"source": "1", "target": "3", "metadata": {"name": {"power": "draws_from"}}},
            ],
        }});
        let mut g = read_jgf(&doc.to_string()).unwrap();
        assert_eq!(g.vertex_count(), 4);
        let n = g.find_path("/cluster0/node0").unwrap();
        let store = g.find_path("/cluster0/store0").unwrap();
        assert_eq!(g.associated_children(store), &[n]);
        // The reverse power edge adds nothing: one power link.
        let power = g.subsystem_id("power").unwrap();
        assert_eq!(g.links().iter().filter(|l| l.subsystem == power).count(), 1);
        // Written out and read back, the association stays one.
        let again = read_jgf(&write_jgf(&g)).unwrap();
        let (n2, store2) = (
            again.find_path("/cluster0/node0").unwrap(),
            again.find_path("/cluster0/store0").unwrap(),
        );
        assert_eq!(again.associated_children(store2), &[n2]);
        g.select_dominant("power").unwrap();
        assert_eq!(g.path(n), "/panel0/node0");
    }
}
