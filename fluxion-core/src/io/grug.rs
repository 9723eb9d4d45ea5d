//! GRUG reader: Fluxion's GraphML generation recipes.
//!
//! A recipe is a small graph of resource *kinds* whose edges say "each
//! source contains `multi_scale` targets". Expanding it walks the recipe
//! depth first and, for every recipe edge, creates the targets under every
//! source generated so far, in order. Names are basename + id, where the id
//! comes from the edge's `id_start`, `id_stride` and `id_scope` (scope k:
//! ids run on across the k levels above the source, e.g. cores numbered per
//! node rather than per socket).
//!
//! Every subsystem of the recipe is built: each has its root (a recipe
//! vertex with `root=1`), and the recipe is walked from every recipe vertex
//! in document order, as a depth-first search over the whole recipe does.
//! A `MULTIPLY` edge of the `containment` subsystem makes tree vertices; of
//! another subsystem (`power`, ...), vertices outside the tree joined by
//! that subsystem's links. `ASSOCIATE_IN` links every vertex made so far of
//! the target's type under each source; `ASSOCIATE_BY_PATH_IN` only those
//! whose path in `as_tgt_subsystem`, cut by `as_tgt_uplvl` levels, equals
//! the source's cut by `as_src_uplvl`. Associated vertices are not copied:
//! the same vertex gains an edge (a second parent, when the edge is of
//! the containment subsystem).

use std::collections::{HashMap, VecDeque};

use quick_xml::Reader;
use quick_xml::events::Event;

use super::IoError;
use crate::graph::{CONTAINMENT, GraphLimits, ResourceGraph, VertexId, VertexSpec};

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
    as_tgt_subsystem: String,
    as_tgt_uplvl: i64,
    as_src_uplvl: i64,
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
const WANTED: [&str; 15] = [
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
    "as_tgt_subsystem",
    "as_tgt_uplvl",
    "as_src_uplvl",
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
            as_tgt_subsystem: d
                .get("as_tgt_subsystem")
                .cloned()
                .unwrap_or_else(|| CONTAINMENT.into()),
            as_tgt_uplvl: int("as_tgt_uplvl", 1)?,
            as_src_uplvl: int("as_src_uplvl", 1)?,
        };
        if e.multi_scale < 0 {
            return Err(err(format!("{owner}: multi_scale must be >= 0")));
        }
        edges.push(e);
    }
    Ok((vertices, edges))
}

/// How a recipe edge makes its targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Multiply,
    AssociateIn,
    AssociateByPathIn,
}

fn method(e: &RecipeEdge) -> Option<Method> {
    let m = e.gen_method.as_str();
    if m.eq_ignore_ascii_case("MULTIPLY") {
        Some(Method::Multiply)
    } else if m.eq_ignore_ascii_case("ASSOCIATE_IN") {
        Some(Method::AssociateIn)
    } else if m.eq_ignore_ascii_case("ASSOCIATE_BY_PATH_IN") {
        Some(Method::AssociateByPathIn)
    } else {
        None
    }
}

/// `path` without its last `up` parts, ending in `/` (`/a/b/c`, 1 ->
/// `/a/b/`); `None` when it has no more than `up` parts to cut.
fn path_prefix(path: &str, up: i64) -> Option<String> {
    let slashes = path.matches('/').count() as i64;
    if up >= slashes || up < 0 {
        return None;
    }
    let keep = usize::try_from(slashes - up).unwrap_or(0);
    let mut out = String::with_capacity(path.len());
    for part in path.split('/').filter(|p| !p.is_empty()).take(keep) {
        out.push('/');
        out.push_str(part);
    }
    out.push('/');
    Some(out)
}

/// The expansion's state: the graph so far, the vertices each recipe
/// vertex made, vertices by type, and paths in subsystems other than
/// containment (containment paths are the tree's).
struct Expansion<'a> {
    vertices: &'a [RecipeVertex],
    edges: &'a [RecipeEdge],
    g: ResourceGraph,
    made: Vec<Vec<VertexId>>,
    by_type: HashMap<String, Vec<VertexId>>,
    paths: HashMap<(String, VertexId), String>,
    roots: HashMap<String, VertexId>,
    /// multi_scale of the levels above, nearest first (for id_scope).
    hier: VecDeque<i64>,
}

impl Expansion<'_> {
    fn path(&self, subsystem: &str, v: VertexId) -> String {
        if subsystem == CONTAINMENT {
            // A vertex outside the containment tree has no path there.
            let attached = self.g.root().is_some_and(|r| self.g.is_in_subtree(v, r));
            return if attached {
                self.g.path(v)
            } else {
                String::new()
            };
        }
        self.paths
            .get(&(subsystem.to_string(), v))
            .cloned()
            .unwrap_or_default()
    }

    fn set_path(&mut self, subsystem: &str, v: VertexId, parent: Option<VertexId>) {
        if subsystem == CONTAINMENT {
            return;
        }
        let mut p = parent.map_or_else(String::new, |u| self.path(subsystem, u));
        p.push('/');
        if let Some(x) = self.g.vertex(v) {
            x.write_name(&mut p);
        }
        self.paths.insert((subsystem.to_string(), v), p);
    }

    fn note(&mut self, kind: &str, v: VertexId) {
        self.by_type.entry(kind.to_string()).or_default().push(v);
    }

    /// The root vertex of recipe vertex `rv`'s subsystem, made on first use.
    fn root_of(&mut self, rv: usize) -> Result<VertexId, IoError> {
        let r = &self.vertices[rv];
        if let Some(&v) = self.roots.get(&r.subsystem) {
            return Ok(v);
        }
        let mut spec = VertexSpec::new(&r.kind, &r.basename, 0);
        spec.size = r.size.unsigned_abs();
        spec.unit = r.unit.clone();
        let v = if r.subsystem == CONTAINMENT {
            self.g.add_vertex(spec, None)?
        } else {
            self.g.add_detached_vertex(spec)?
        };
        self.roots.insert(r.subsystem.clone(), v);
        self.note(&r.kind, v);
        self.set_path(&r.subsystem, v, None);
        Ok(v)
    }

    /// Makes the targets of recipe edge `ei` under the vertices its source made.
    fn tree_edge(&mut self, ei: usize) -> Result<(), IoError> {
        let e = &self.edges[ei];
        let (src_rv, tgt_rv) = (e.source, e.target);
        if self.vertices[src_rv].root && self.made[src_rv].is_empty() {
            let r = self.root_of(src_rv)?;
            self.made[src_rv].push(r);
        }
        let from_to = || {
            format!(
                "edge from '{}' to '{}'",
                self.vertices[src_rv].id, self.vertices[tgt_rv].id
            )
        };
        let Some(m) = method(e) else {
            return Err(err(format!(
                "{}: unknown gen_method '{}' (MULTIPLY, ASSOCIATE_IN or ASSOCIATE_BY_PATH_IN)",
                from_to(),
                e.gen_method
            )));
        };
        let srcs = self.made[src_rv].clone();
        let made = match m {
            Method::Multiply => {
                let made = self.multiply(ei, &srcs).map_err(|x| match x {
                    IoError::Grug(s) => err(format!("{}: {s}", from_to())),
                    other => other,
                })?;
                self.hier.push_front(self.edges[ei].multi_scale);
                made
            }
            Method::AssociateIn | Method::AssociateByPathIn => self
                .associate(ei, &srcs, m == Method::AssociateByPathIn)
                .map_err(|x| match x {
                    IoError::Grug(s) => err(format!("{}: {s}", from_to())),
                    other => other,
                })?,
        };
        self.made[tgt_rv] = made;
        Ok(())
    }

    fn multiply(&mut self, ei: usize, srcs: &[VertexId]) -> Result<Vec<VertexId>, IoError> {
        let e = &self.edges[ei];
        let tv = &self.vertices[e.target];
        // Checked before anything is allocated: multi_scale comes from the
        // file and may be anything up to i64::MAX.
        let more = (srcs.len() as u64).saturating_mul(e.multi_scale.unsigned_abs());
        self.g
            .limits()
            .check_room(self.g.vertex_count(), more)
            .map_err(|x| err(format!("multi_scale {}: {x}", e.multi_scale)))?;
        let wrap: i64 = if e.id_scope > 0 {
            self.hier
                .iter()
                .take(usize::try_from(e.id_scope).unwrap_or(usize::MAX))
                .try_fold(1i64, |acc, &m| acc.checked_mul(m))
                .unwrap_or(i64::MAX)
                .max(1)
        } else {
            1
        };
        let overflow = || {
            err(format!(
                "id_start {} + id_stride {} x multi_scale {} overflows a 64-bit id",
                e.id_start, e.id_stride, e.multi_scale
            ))
        };
        let tree = e.subsystem == CONTAINMENT;
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
                let v = if tree {
                    self.g.add_vertex(spec, Some(src))
                } else {
                    self.g
                        .add_detached_vertex(spec)
                        .and_then(|v| self.g.add_link(&e.subsystem, src, v).map(|()| v))
                }
                .map_err(|x| err(x.to_string()))?;
                self.note(&tv.kind, v);
                self.set_path(&tv.subsystem, v, Some(src));
                made.push(v);
            }
        }
        Ok(made)
    }

    /// Links the vertices made so far of the target's type under each
    /// source (those on the source's path only, `by_path`).
    fn associate(
        &mut self,
        ei: usize,
        srcs: &[VertexId],
        by_path: bool,
    ) -> Result<Vec<VertexId>, IoError> {
        let e = &self.edges[ei];
        let kind = &self.vertices[e.target].kind;
        let targets = self.by_type.get(kind).cloned().unwrap_or_default();
        let subsystem = e.subsystem.clone();
        // Targets by their cut path, so pairing is linear, not sources x targets.
        let mut by_prefix: HashMap<String, Vec<VertexId>> = HashMap::new();
        if by_path {
            for &t in &targets {
                let p = path_prefix(&self.path(&e.as_tgt_subsystem, t), e.as_tgt_uplvl);
                by_prefix.entry(p.unwrap_or_default()).or_default().push(t);
            }
        }
        let mut made = Vec::new();
        for &src in srcs {
            let chosen: &[VertexId] = if by_path {
                let p = path_prefix(&self.path(&e.as_tgt_subsystem, src), e.as_src_uplvl);
                by_prefix
                    .get(&p.unwrap_or_default())
                    .map_or(&[], Vec::as_slice)
            } else {
                &targets
            };
            for &t in chosen {
                self.g
                    .add_link(&subsystem, src, t)
                    .map_err(|x| err(x.to_string()))?;
                self.set_path(&subsystem, t, Some(src));
                made.push(t);
            }
        }
        Ok(made)
    }
}

/// Expands the recipe: a depth-first search from every unvisited recipe
/// vertex in document order, one recipe edge at a time.
fn expand(
    vertices: &[RecipeVertex],
    edges: &[RecipeEdge],
    limits: GraphLimits,
) -> Result<ResourceGraph, IoError> {
    let mut containment_roots = vertices
        .iter()
        .filter(|v| v.root && v.subsystem == CONTAINMENT);
    let Some(first) = containment_roots.next() else {
        return Err(err(
            "no root node (a node with root=1 in the containment subsystem)",
        ));
    };
    if let Some(second) = containment_roots.next() {
        return Err(err(format!(
            "two root nodes ('{}' and '{}'): the containment subsystem has one root",
            first.id, second.id
        )));
    }
    // Each recipe vertex's edges, in document order.
    let mut out_edges: Vec<Vec<usize>> = vec![Vec::new(); vertices.len()];
    for (i, e) in edges.iter().enumerate() {
        out_edges[e.source].push(i);
    }
    let mut x = Expansion {
        vertices,
        edges,
        g: ResourceGraph::with_limits(limits),
        made: vec![Vec::new(); vertices.len()],
        by_type: HashMap::new(),
        paths: HashMap::new(),
        roots: HashMap::new(),
        hier: VecDeque::new(),
    };
    let mut visited = vec![false; vertices.len()];
    for start in 0..vertices.len() {
        if visited[start] {
            continue;
        }
        visited[start] = true;
        // Explicit stack of (recipe vertex, next edge).
        let mut stack = vec![(start, 0usize)];
        while let Some(top) = stack.last_mut() {
            let Some(&ei) = out_edges[top.0].get(top.1) else {
                stack.pop();
                // A vertex finished: the search leaves the level below it.
                x.hier.pop_front();
                continue;
            };
            top.1 += 1;
            let t = edges[ei].target;
            if visited[t] {
                continue;
            }
            visited[t] = true;
            x.tree_edge(ei)?;
            stack.push((t, 0));
        }
    }
    // A containment root with no edges still makes the one-vertex graph.
    let root = vertices
        .iter()
        .position(|v| v.root && v.subsystem == CONTAINMENT)
        .unwrap_or(0);
    x.root_of(root)?;
    Ok(x.g)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two racks of two nodes, a pdu per rack; a power panel associated
    /// with every pdu, each pdu with the nodes of its own rack, and a
    /// power capacity made under each node in the power subsystem.
    const POWERED: &str = r#"<graphml xmlns="http://graphml.graphdrawing.org/xmlns">
  <key id="root" for="node" attr.name="root" attr.type="int"><default>0</default></key>
  <key id="type" for="node" attr.name="type" attr.type="string"/>
  <key id="subsystem" for="node" attr.name="subsystem" attr.type="string"><default>containment</default></key>
  <key id="e_subsystem" for="edge" attr.name="e_subsystem" attr.type="string"><default>containment</default></key>
  <key id="multi_scale" for="edge" attr.name="multi_scale" attr.type="int"><default>1</default></key>
  <key id="id_scope" for="edge" attr.name="id_scope" attr.type="int"><default>0</default></key>
  <key id="gen_method" for="edge" attr.name="gen_method" attr.type="string"><default>MULTIPLY</default></key>
  <graph id="g" edgedefault="directed">
    <node id="cluster"><data key="root">1</data><data key="type">cluster</data></node>
    <node id="rack"><data key="type">rack</data></node>
    <node id="pdu"><data key="type">pdu</data></node>
    <node id="node"><data key="type">node</data></node>
    <edge source="cluster" target="rack"><data key="multi_scale">2</data></edge>
    <edge source="rack" target="pdu"><data key="id_scope">1</data></edge>
    <edge source="rack" target="node"><data key="id_scope">1</data><data key="multi_scale">2</data></edge>
    <node id="panel"><data key="root">1</data><data key="type">panel</data><data key="subsystem">power</data></node>
    <node id="ppdu"><data key="type">pdu</data><data key="subsystem">power</data></node>
    <node id="pnode"><data key="type">node</data><data key="subsystem">power</data></node>
    <node id="cap"><data key="type">power</data><data key="subsystem">power</data></node>
    <edge source="panel" target="ppdu"><data key="e_subsystem">power</data><data key="gen_method">ASSOCIATE_IN</data></edge>
    <edge source="ppdu" target="pnode"><data key="e_subsystem">power</data><data key="gen_method">ASSOCIATE_BY_PATH_IN</data></edge>
    <edge source="pnode" target="cap"><data key="e_subsystem">power</data></edge>
  </graph>
</graphml>"#;

    fn names(g: &ResourceGraph, vs: &[VertexId]) -> Vec<String> {
        vs.iter()
            .map(|&v| g.vertex(v).unwrap().name().into_owned())
            .collect()
    }

    #[test]
    fn path_prefix_cuts_whole_parts() {
        assert_eq!(
            path_prefix("/c0/rack1/node3", 1).as_deref(),
            Some("/c0/rack1/")
        );
        assert_eq!(
            path_prefix("/c0/rack1/node3", 0).as_deref(),
            Some("/c0/rack1/node3/")
        );
        assert_eq!(path_prefix("/c0/rack1/node3", 3), None);
        assert_eq!(path_prefix("", 1), None);
    }

    #[test]
    fn associations_reuse_vertices_and_by_path_pairs_within_a_rack() {
        let mut g = read_grug(POWERED).unwrap();
        // 1 + 2 racks + 2 pdus + 4 nodes, the panel, 4 capacities.
        assert_eq!(g.vertex_count(), 14);
        // panel->pdu x2, pdu->node x4 (not x8), node->power x4.
        assert_eq!(g.links().len(), 10);
        let pdu0 = g.find_path("/cluster0/rack0/pdu0").unwrap();
        let node1 = g.find_path("/cluster0/rack0/node1").unwrap();
        g.select_dominant("power").unwrap();
        assert_eq!(g.kind_name(g.root().unwrap()), "panel");
        // The containment pdu and nodes themselves, not copies.
        assert_eq!(names(&g, g.children(pdu0)), ["node0", "node1"]);
        assert_eq!(g.path(node1), "/panel0/pdu0/node1");
        assert_eq!(names(&g, g.children(node1)), ["power0"]);
    }

    #[test]
    fn a_containment_association_gives_a_second_way_in() {
        // The panel's subsystem made containment: pdus gain a second parent.
        let text = POWERED.replace(
            r#"<data key="e_subsystem">power</data><data key="gen_method">ASSOCIATE_IN</data>"#,
            r#"<data key="gen_method">ASSOCIATE_IN</data>"#,
        );
        let g = read_grug(&text).unwrap();
        let pdu1 = g.find_path("/cluster0/rack1/pdu1").unwrap();
        assert!(g.is_shared(pdu1));
        let panel = g.vertices().find(|&v| g.kind_name(v) == "panel").unwrap();
        assert_eq!(names(&g, g.associated_children(panel)), ["pdu0", "pdu1"]);
    }

    #[test]
    fn an_unknown_generation_method_names_the_edge() {
        let text = POWERED.replace("ASSOCIATE_BY_PATH_IN", "TELEPORT");
        let e = read_grug(&text).unwrap_err().to_string();
        assert!(e.contains("edge from 'ppdu' to 'pnode'"), "{e}");
        assert!(e.contains("TELEPORT"), "{e}");
    }
}
