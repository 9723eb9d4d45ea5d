//! GRUG reader: Fluxion's GraphML generation recipes.
//!
//! A recipe is a small graph of resource *kinds* whose edges say "each
//! source contains `multi_scale` targets". Expanding it walks the recipe
//! depth first and, for every recipe edge, creates the targets under every
//! source generated so far, in order. Names are basename + id, where the id
//! comes from the edge's `id_start`, `id_stride` and `id_scope` (scope k:
//! ids run on across the k levels above the source, e.g. cores numbered per
//! node rather than per socket). Only the `containment` subsystem is built.

use std::collections::{HashMap, VecDeque};

use quick_xml::Reader;
use quick_xml::events::Event;

use super::IoError;
use crate::graph::{GraphLimits, ResourceGraph, VertexId, VertexSpec};

#[derive(Debug, Clone, Default)]
struct RecipeVertex {
    id: String,
    root: bool,
    kind: String,
    basename: String,
    unit: String,
    size: i64,
    subsystem: String,
}

#[derive(Debug, Clone, Default)]
struct RecipeEdge {
    source: usize,
    target: usize,
    subsystem: String,
    gen_method: String,
    multi_scale: i64,
    id_scope: i64,
    id_start: i64,
    id_stride: i64,
}

fn err(msg: impl Into<String>) -> IoError {
    IoError::Grug(msg.into())
}

fn parse_int(key: &str, owner: &str, v: &str) -> Result<i64, IoError> {
    v.trim()
        .parse::<i64>()
        .map_err(|_| err(format!("{owner}: {key}: expected an integer, got '{v}'")))
}

/// Reads a GRUG recipe and expands it into a graph, within the default
/// [`GraphLimits`].
pub fn read_grug(text: &str) -> Result<ResourceGraph, IoError> {
    read_grug_with(text, GraphLimits::default())
}

/// Reads a GRUG recipe and expands it into a graph of at most
/// `limits.max_vertices` vertices (checked before each level is made).
pub fn read_grug_with(text: &str, limits: GraphLimits) -> Result<ResourceGraph, IoError> {
    let (vertices, edges) = parse(text)?;
    expand(&vertices, &edges, limits)
}

/// The attributes the reader uses; defaults of other keys are not copied
/// to each element.
const WANTED: [&str; 12] = [
    "type",
    "basename",
    "root",
    "unit",
    "size",
    "subsystem",
    "e_subsystem",
    "gen_method",
    "multi_scale",
    "id_scope",
    "id_start",
    "id_stride",
];

/// An element's attribute values: its own `<data>`, then its kind's defaults.
struct Resolved<'a> {
    own: HashMap<String, String>,
    defaults: &'a HashMap<String, String>,
}

impl Resolved<'_> {
    fn get(&self, k: &str) -> Option<&String> {
        self.own.get(k).or_else(|| self.defaults.get(k))
    }
}

/// `el`'s attribute values: its `<data>` by attribute name, then `defaults`.
fn resolve<'a>(
    keys: &HashMap<String, (String, String, Option<String>)>,
    el: &Element,
    defaults: &'a HashMap<String, String>,
) -> Resolved<'a> {
    let mut own = HashMap::with_capacity(el.data.len());
    for (k, v) in &el.data {
        let an = keys.get(k).map_or(k.as_str(), |x| x.0.as_str());
        own.insert(an.to_string(), v.clone());
    }
    Resolved { own, defaults }
}

/// Parsed `<data>` values keyed by attribute name, plus the element's id attributes.
struct Element {
    attrs: HashMap<String, String>,
    data: HashMap<String, String>,
}

fn parse(text: &str) -> Result<(Vec<RecipeVertex>, Vec<RecipeEdge>), IoError> {
    let mut reader = Reader::from_str(text);
    // key id -> (attr.name, for, default)
    let mut keys: HashMap<String, (String, String, Option<String>)> = HashMap::new();
    let mut cur_key: Option<String> = None;
    let mut cur_el: Option<(String, Element)> = None;
    let mut cur_data: Option<String> = None;
    let mut in_default = false;
    let mut text_buf = String::new();
    let mut raw_nodes: Vec<Element> = Vec::new();
    let mut raw_edges: Vec<Element> = Vec::new();
    loop {
        let ev = super::xml::next_event(&mut reader).map_err(err)?;
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(ev, Event::Empty(_));
                let name = e.name().as_ref().to_string();
                let attrs = super::xml::attributes(e).map_err(err)?;
                match name.as_str() {
                    "key" => {
                        let id = attrs
                            .get("id")
                            .cloned()
                            .ok_or_else(|| err("<key> without id"))?;
                        let an = attrs
                            .get("attr.name")
                            .cloned()
                            .unwrap_or_else(|| id.clone());
                        let f = attrs.get("for").cloned().unwrap_or_default();
                        keys.insert(id.clone(), (an, f, None));
                        if !empty {
                            cur_key = Some(id);
                        }
                    }
                    "default" => {
                        in_default = true;
                        text_buf.clear();
                    }
                    "node" | "edge" => {
                        let el = Element {
                            attrs,
                            data: HashMap::new(),
                        };
                        if empty {
                            if name == "node" {
                                raw_nodes.push(el);
                            } else {
                                raw_edges.push(el);
                            }
                        } else {
                            cur_el = Some((name, el));
                        }
                    }
                    "data" => {
                        let k = attrs
                            .get("key")
                            .cloned()
                            .ok_or_else(|| err("<data> without key"))?;
                        cur_data = Some(k);
                        text_buf.clear();
                    }
                    _ => {}
                }
            }
            Event::Text(t) if in_default || cur_data.is_some() => {
                text_buf.push_str(&t.xml10_content());
            }
            Event::End(e) => {
                let name = e.name().as_ref().to_string();
                match name.as_str() {
                    "default" => {
                        in_default = false;
                        if let Some(k) = &cur_key
                            && let Some(entry) = keys.get_mut(k)
                        {
                            entry.2 = Some(text_buf.trim().to_string());
                        }
                    }
                    "key" => cur_key = None,
                    "data" => {
                        if let (Some(k), Some((_, el))) = (cur_data.take(), cur_el.as_mut()) {
                            el.data.insert(k, text_buf.trim().to_string());
                        }
                    }
                    "node" | "edge" => {
                        if let Some((n, el)) = cur_el.take() {
                            if n == "node" {
                                raw_nodes.push(el);
                            } else {
                                raw_edges.push(el);
                            }
                        }
                    }
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    // Resolve data keys to attribute names with defaults. The defaults of
    // each element kind are gathered once: going through every key for
    // every element was quadratic in a recipe with many keys.
    let defaults = |kind: &str| -> HashMap<String, String> {
        keys.values()
            .filter(|(an, f, _)| (f == kind || f == "all") && WANTED.contains(&an.as_str()))
            .filter_map(|(an, _, d)| Some((an.clone(), d.clone()?)))
            .collect()
    };
    let (node_defaults, edge_defaults) = (defaults("node"), defaults("edge"));
    let mut vertices = Vec::new();
    let mut index = HashMap::new();
    for el in &raw_nodes {
        let id = el
            .attrs
            .get("id")
            .cloned()
            .ok_or_else(|| err("<node> without id"))?;
        let d = resolve(&keys, el, &node_defaults);
        let owner = format!("node '{id}'");
        let kind = d.get("type").cloned().filter(|s| !s.is_empty());
        let kind = kind.ok_or_else(|| err(format!("{owner}: missing type")))?;
        let v = RecipeVertex {
            id: id.clone(),
            root: d
                .get("root")
                .map(|s| parse_int("root", &owner, s))
                .transpose()?
                .unwrap_or(0)
                != 0,
            basename: d.get("basename").cloned().unwrap_or_else(|| kind.clone()),
            kind,
            unit: d.get("unit").cloned().unwrap_or_default(),
            size: d
                .get("size")
                .map(|s| parse_int("size", &owner, s))
                .transpose()?
                .unwrap_or(1),
            subsystem: d
                .get("subsystem")
                .cloned()
                .unwrap_or_else(|| "containment".into()),
        };
        if v.size < 0 {
            return Err(err(format!("{owner}: size must be >= 0")));
        }
        if index.insert(id.clone(), vertices.len()).is_some() {
            return Err(err(format!("{owner}: duplicate id")));
        }
        vertices.push(v);
    }
    let mut edges = Vec::new();
    for el in &raw_edges {
        let eid = el.attrs.get("id").cloned().unwrap_or_default();
        let owner = format!("edge '{eid}'");
        let end = |k: &str| -> Result<usize, IoError> {
            let n = el
                .attrs
                .get(k)
                .ok_or_else(|| err(format!("{owner}: missing {k}")))?;
            index
                .get(n)
                .copied()
                .ok_or_else(|| err(format!("{owner}: {k} '{n}' is not a node")))
        };
        let d = resolve(&keys, el, &edge_defaults);
        let int = |k: &str, def: i64| -> Result<i64, IoError> {
            d.get(k)
                .map(|s| parse_int(k, &owner, s))
                .transpose()
                .map(|x| x.unwrap_or(def))
        };
        let e = RecipeEdge {
            source: end("source")?,
            target: end("target")?,
            subsystem: d
                .get("e_subsystem")
                .cloned()
                .unwrap_or_else(|| "containment".into()),
            gen_method: d
                .get("gen_method")
                .cloned()
                .unwrap_or_else(|| "MULTIPLY".into()),
            multi_scale: int("multi_scale", 1)?,
            id_scope: int("id_scope", 0)?,
            id_start: int("id_start", 0)?,
            id_stride: int("id_stride", 1)?,
        };
        if e.multi_scale < 0 {
            return Err(err(format!("{owner}: multi_scale must be >= 0")));
        }
        edges.push(e);
    }
    Ok((vertices, edges))
}

/// Expands the recipe from its root, depth first, one recipe edge at a time.
fn expand(
    vertices: &[RecipeVertex],
    edges: &[RecipeEdge],
    limits: GraphLimits,
) -> Result<ResourceGraph, IoError> {
    let mut roots = vertices
        .iter()
        .enumerate()
        .filter(|(_, v)| v.root && v.subsystem == "containment")
        .map(|(i, _)| i);
    let root = roots
        .next()
        .ok_or_else(|| err("no root node (a node with root=1 in the containment subsystem)"))?;
    if let Some(second) = roots.next() {
        return Err(err(format!(
            "two root nodes ('{}' and '{}'): the containment subsystem has one root",
            vertices[root].id, vertices[second].id
        )));
    }
    // Each recipe vertex's containment edges, in document order, so a
    // vertex finds its next edge without rescanning the whole list.
    let mut out_edges: Vec<Vec<usize>> = vec![Vec::new(); vertices.len()];
    for (i, e) in edges.iter().enumerate() {
        if e.subsystem == "containment" {
            out_edges[e.source].push(i);
        }
    }
    let mut g = ResourceGraph::with_limits(limits);
    let rv = &vertices[root];
    let mut spec = VertexSpec::new(&rv.kind, &rv.basename, 0);
    spec.size = rv.size.unsigned_abs();
    spec.unit = rv.unit.clone();
    let top = g.add_vertex(spec, None)?;
    let mut visited = vec![false; vertices.len()];
    visited[root] = true;
    // multi_scale of the levels above, nearest first (for id_scope).
    let mut hier: VecDeque<i64> = VecDeque::new();
    // Explicit stack of (recipe vertex, its generated vertices, next edge).
    struct Frame {
        rv: usize,
        made: Vec<VertexId>,
        next_edge: usize,
    }
    let mut stack = vec![Frame {
        rv: root,
        made: vec![top],
        next_edge: 0,
    }];
    while let Some(frame) = stack.last_mut() {
        let Some(&ei) = out_edges[frame.rv].get(frame.next_edge) else {
            stack.pop();
            hier.pop_front();
            continue;
        };
        frame.next_edge += 1;
        let e = &edges[ei];
        if visited[e.target] {
            continue;
        }
        // An association links vertices generated elsewhere in the tree (a
        // storage tier's units to the racks that already hold them). The
        // containment graph here is a tree: the associated vertices keep
        // their one parent, which is also the way a match reaches them
        // first in Fluxion, so the extra edges are not generated.
        if e.gen_method.eq_ignore_ascii_case("ASSOCIATE_IN")
            || e.gen_method.eq_ignore_ascii_case("ASSOCIATE_BY_PATH_IN")
        {
            continue;
        }
        let from_to = || {
            format!(
                "edge from '{}' to '{}'",
                vertices[e.source].id, vertices[e.target].id
            )
        };
        if !e.gen_method.eq_ignore_ascii_case("MULTIPLY") {
            return Err(err(format!(
                "{}: gen_method '{}' is not supported in the containment subsystem",
                from_to(),
                e.gen_method
            )));
        }
        visited[e.target] = true;
        let tv = &vertices[e.target];
        let srcs = std::mem::take(&mut frame.made);
        // Checked before anything is allocated: multi_scale comes from the
        // file and may be anything up to i64::MAX.
        let more = (srcs.len() as u64).saturating_mul(e.multi_scale.unsigned_abs());
        g.limits()
            .check_room(g.vertex_count(), more)
            .map_err(|x| err(format!("{}: multi_scale {}: {x}", from_to(), e.multi_scale)))?;
        let wrap: i64 = if e.id_scope > 0 {
            hier.iter()
                .take(usize::try_from(e.id_scope).unwrap_or(usize::MAX))
                .try_fold(1i64, |acc, &m| acc.checked_mul(m))
                .unwrap_or(i64::MAX)
                .max(1)
        } else {
            1
        };
        let overflow = || {
            err(format!(
                "{}: id_start {} + id_stride {} x multi_scale {} overflows a 64-bit id",
                from_to(),
                e.id_start,
                e.id_stride,
                e.multi_scale
            ))
        };
        let mut made = Vec::with_capacity(usize::try_from(more).unwrap_or(0));
        for (j, &src) in srcs.iter().enumerate() {
            for i in 0..e.multi_scale {
                let id = if e.id_scope < 0 {
                    -1
                } else if e.id_scope == 0 {
                    e.id_start.checked_add(i).ok_or_else(overflow)?
                } else {
                    // id_start + (j % wrap) * multi_scale * id_stride + i * id_stride
                    let block = (j as i64 % wrap)
                        .checked_mul(e.multi_scale)
                        .and_then(|x| x.checked_add(i))
                        .and_then(|x| x.checked_mul(e.id_stride))
                        .and_then(|x| x.checked_add(e.id_start));
                    block.ok_or_else(overflow)?
                };
                let name = if id == -1 {
                    tv.basename.clone()
                } else {
                    format!("{}{id}", tv.basename)
                };
                let spec = VertexSpec {
                    kind: tv.kind.clone(),
                    basename: tv.basename.clone(),
                    name,
                    id,
                    rank: -1,
                    size: tv.size.unsigned_abs(),
                    unit: tv.unit.clone(),
                    properties: Vec::new(),
                    status: Default::default(),
                    uniq_id: None,
                };
                made.push(
                    g.add_vertex(spec, Some(src))
                        .map_err(|x| err(format!("{}: {x}", from_to())))?,
                );
            }
        }
        frame.made = srcs;
        hier.push_front(e.multi_scale);
        stack.push(Frame {
            rv: e.target,
            made,
            next_edge: 0,
        });
    }
    Ok(g)
}
