//! The resource graph: typed vertices in a containment tree, per-vertex
//! allocation state over time, and subtree aggregates for pruning.
//!
//! Built on [`petgraph::stable_graph::StableGraph`], so a [`VertexId`] stays
//! valid when other subtrees are added or removed. Every vertex also keeps an
//! ordered child list: traversal order is insertion order, as in Fluxion.
//!
//! Allocation state lives on the vertices as [`Span`]s (one per job touching
//! the vertex). Vertices whose type is an *anchor* of the [`PruneFilters`]
//! also hold an aggregate: the total units of each tracked type in their
//! subtree, the units under down vertices, and per-job spans of units used,
//! so [`ResourceGraph::free_units`] answers "how many free cores below this
//! rack during `[t, t+d)`" without descending.

mod aggregate;
mod filters;
mod partial_release;
mod slots;
mod subsystems;

use aggregate::Aggregate;
pub use filters::{FilterRule, PruneFilters};
pub use partial_release::RecordsAbove;
pub use slots::IdEnd;
use slots::ResolvedFilters;
pub use subsystems::{CONTAINMENT, Link, SubsystemId};

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use petgraph::stable_graph::{NodeIndex, StableGraph};
use smallvec::SmallVec;

use crate::idhash::IdBuild;
use crate::marks::VertexMarks;
use crate::planner::{self, JobId, Span, Time, Usage};
use crate::timeline::Timeline;

/// Stable identifier of a vertex (survives removal of other vertices).
pub type VertexId = NodeIndex<u32>;

/// Interned resource type (`core`, `node`, ...); see [`ResourceGraph::type_name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TypeId(pub u16);

/// Whether a vertex may be matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Status {
    /// Usable.
    #[default]
    Up,
    /// Not usable; its whole subtree is skipped by the matcher.
    Down,
}

/// Errors of graph edits and allocation bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// The vertex id does not name a live vertex.
    #[error("no such vertex: {0:?}")]
    NoSuchVertex(VertexId),
    /// A second root was added; the containment tree has exactly one.
    #[error("graph already has a root ({0})")]
    RootExists(String),
    /// The job holds nothing in the graph.
    #[error("nonexistent job {0}")]
    NoSuchJob(JobId),
    /// A job id is already in use.
    #[error("job {0} already exists")]
    JobExists(JobId),
    /// Too many distinct resource types (more than 65535).
    #[error("too many resource types")]
    TooManyTypes,
    /// Adding vertices would exceed the graph's vertex budget.
    #[error(
        "graph would have {wanted} vertices, more than the limit of {limit} (max_vertices; `phalanx query --max-vertices` raises it)"
    )]
    TooManyVertices {
        /// Vertices the graph would have.
        wanted: u64,
        /// The budget ([`GraphLimits::max_vertices`]).
        limit: usize,
    },
    /// A vertex would sit deeper in the containment tree than the limit.
    #[error(
        "vertex '{name}' would be at depth {depth}, deeper than the limit of {limit} levels (max_depth)"
    )]
    TooDeep {
        /// The vertex's name.
        name: String,
        /// Its depth (the root is at 0).
        depth: usize,
        /// The limit ([`MAX_DEPTH`]).
        limit: usize,
    },
    /// A vertex name, basename or type that cannot be printed unambiguously.
    #[error("{field} {value:?}: {why}")]
    BadName {
        /// Which field (`name`, `basename`, `type`, `unit`).
        field: &'static str,
        /// The value, cut to a printable length.
        value: String,
        /// What is wrong with it.
        why: String,
    },
    /// `-S` named a subsystem the graph does not have.
    #[error("no subsystem '{0}' in the graph")]
    NoSuchSubsystem(String),
    /// A subsystem made dominant does not have exactly one root.
    #[error("subsystem '{subsystem}' has {roots} roots; a match walks from exactly one")]
    SubsystemRoots {
        /// The subsystem.
        subsystem: String,
        /// How many vertices start its edges without being entered by one.
        roots: usize,
    },
    /// A number outside the range the graph can add up without overflow.
    #[error("{field} {value}: must be at most {limit}")]
    OutOfRange {
        /// Which field (`size`, `uniq_id`).
        field: &'static str,
        /// The value given.
        value: u64,
        /// The largest allowed.
        limit: u64,
    },
}

/// Deepest containment level a graph may have (the root is level 0).
/// Fluxion's graphs are about 10 levels deep; the matcher walks the tree
/// recursively, and this bound keeps that walk well inside a 2 MiB thread
/// stack.
pub const MAX_DEPTH: usize = 128;

/// Default for [`GraphLimits::max_vertices`]: about 1.3 GB of graph (a
/// 10,000-node Fluxion graph is 730,001 vertices).
pub const DEFAULT_MAX_VERTICES: usize = 5_000_000;

/// Largest vertex size (units of a pool): with at most
/// [`MAX_VERTICES_CEILING`] vertices, the sums of sizes the aggregates keep
/// cannot overflow.
pub const MAX_VERTEX_SIZE: u64 = 1 << 38;

/// The most [`GraphLimits::max_vertices`] may be raised to (16,777,216,
/// about 4.4 GB of graph).
pub const MAX_VERTICES_CEILING: usize = 1 << 24;

/// Longest name, basename, type or unit, in bytes.
pub const MAX_NAME_LEN: usize = 255;

/// Limits on the size of a graph, checked before anything is allocated for
/// the vertices that would break them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GraphLimits {
    /// Most live vertices the graph may hold.
    pub max_vertices: usize,
}

impl Default for GraphLimits {
    fn default() -> Self {
        GraphLimits {
            max_vertices: DEFAULT_MAX_VERTICES,
        }
    }
}

impl GraphLimits {
    /// Errors unless `more` vertices can join a graph of `have` (checked
    /// arithmetic: a count from input may be anything).
    pub fn check_room(&self, have: usize, more: u64) -> Result<(), GraphError> {
        let wanted = (have as u64).saturating_add(more);
        let limit = self.max_vertices.min(MAX_VERTICES_CEILING);
        if wanted > limit as u64 {
            return Err(GraphError::TooManyVertices { wanted, limit });
        }
        Ok(())
    }
}

/// Checks a name-like field: at most [`MAX_NAME_LEN`] bytes, and no `/`
/// (it separates path parts), NUL or other control characters (they break
/// the printed tables and paths).
pub fn check_name(field: &'static str, value: &str) -> Result<(), GraphError> {
    let bad = |why: String| {
        let mut shown: String = value.chars().take(40).collect();
        if shown.len() < value.len() {
            shown.push_str("...");
        }
        Err(GraphError::BadName {
            field,
            value: shown,
            why,
        })
    };
    if value.len() > MAX_NAME_LEN {
        return bad(format!(
            "{} bytes, longer than the limit of {MAX_NAME_LEN}",
            value.len()
        ));
    }
    if let Some(c) = value.chars().find(|&c| c == '/' || c.is_control()) {
        return bad(format!("must not contain {c:?}"));
    }
    Ok(())
}

/// Fields of a new vertex, for [`ResourceGraph::add_vertex`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VertexSpec {
    /// Resource type, e.g. `core`.
    pub kind: String,
    /// Base name, e.g. `core`; the name is usually basename + id.
    pub basename: String,
    /// Full name, e.g. `core35`.
    pub name: String,
    /// Logical id among siblings of the same type (`35` in `core35`).
    pub id: i64,
    /// Execution-target rank (`-1` when unknown).
    pub rank: i64,
    /// Number of units (1 for a plain resource; e.g. GiB for a memory pool).
    pub size: u64,
    /// Unit of `size` (`GB`, ...), empty if none.
    pub unit: String,
    /// Arbitrary key/value properties.
    pub properties: Vec<(String, String)>,
    /// Initial status.
    pub status: Status,
    /// Fluxion's unique id, if the source gives one; `None` assigns the next.
    pub uniq_id: Option<u64>,
}

impl VertexSpec {
    /// A plain vertex of `kind` named `basename{id}`, size 1, rank -1.
    pub fn new(kind: &str, basename: &str, id: i64) -> Self {
        VertexSpec {
            kind: kind.to_string(),
            basename: basename.to_string(),
            name: format!("{basename}{id}"),
            id,
            rank: -1,
            size: 1,
            unit: String::new(),
            properties: Vec::new(),
            status: Status::Up,
            uniq_id: None,
        }
    }
}

/// A resource vertex.
#[derive(Debug, Clone)]
pub struct Vertex {
    /// Interned type; see [`ResourceGraph::type_name`].
    pub kind: TypeId,
    /// Base name (`core`); shared between vertices.
    pub basename: Arc<str>,
    /// The name when it is not basename + id; see [`Vertex::name`]. Most
    /// names are (`core35`), and building them when printed saves an
    /// allocation per vertex (about 23 MB at 10k nodes).
    other_name: Option<Box<str>>,
    /// Logical id.
    pub id: i64,
    /// Execution-target rank, -1 if unknown.
    pub rank: i64,
    /// Unique id across the graph (never reused).
    pub uniq_id: u64,
    /// Units held by this vertex (pools: more than 1).
    pub size: u64,
    /// Unit of `size`, empty if none; shared between vertices.
    pub unit: Arc<str>,
    /// Properties (key, value).
    pub properties: Vec<(Box<str>, Box<str>)>,
    /// Up or down (as set; see [`ResourceGraph::is_effectively_up`]).
    pub status: Status,
    parent: Option<VertexId>,
    children: Vec<VertexId>,
    /// Most vertices are held by at most one job at a time: its span sits
    /// in the vertex itself, so holding a vertex allocates nothing.
    spans: SmallVec<[Span; 1]>,
    agg: Option<Box<Aggregate>>,
}

impl Vertex {
    /// Name (`core35`): the basename followed by the id, unless the graph
    /// named the vertex otherwise.
    pub fn name(&self) -> Cow<'_, str> {
        match &self.other_name {
            Some(n) => Cow::Borrowed(n),
            None => Cow::Owned(format!("{}{}", self.basename, self.id)),
        }
    }
    /// Appends the name to `out`.
    pub fn write_name(&self, out: &mut String) {
        match &self.other_name {
            Some(n) => out.push_str(n),
            None => {
                out.push_str(&self.basename);
                push_decimal(out, self.id);
            }
        }
    }
    /// The name the graph gave the vertex when it is not basename + id
    /// (`None` for the usual `core35`), so a writer can reuse a line's
    /// start for a run of siblings and only append the id.
    pub fn other_name(&self) -> Option<&str> {
        self.other_name.as_deref()
    }
    /// Whether the vertex is named `name` (without building its name).
    pub fn is_named(&self, name: &str) -> bool {
        match &self.other_name {
            Some(n) => **n == *name,
            None => name
                .strip_prefix(&*self.basename)
                .is_some_and(|digits| is_decimal(digits, self.id)),
        }
    }
    /// Parent in the containment tree (`None` for the root).
    pub fn parent(&self) -> Option<VertexId> {
        self.parent
    }
    /// Children in insertion order.
    pub fn children(&self) -> &[VertexId] {
        &self.children
    }
    /// Jobs' spans on this vertex.
    pub fn spans(&self) -> &[Span] {
        &self.spans
    }
    /// Value of property `key`, if set.
    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| &**k == key)
            .map(|(_, v)| &**v)
    }
}

/// One vertex claimed by a job, for [`ResourceGraph::allocate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// The vertex.
    pub vertex: VertexId,
    /// Units consumed (0 for a shared pass-through vertex such as a node
    /// whose cores are taken).
    pub amount: u64,
    /// Whether the job holds it exclusively.
    pub exclusive: bool,
}

/// What a job holds: its window and claims (see [`ResourceGraph::job`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobHold {
    /// Start of the hold.
    pub start: Time,
    /// End of the hold (exclusive).
    pub end: Time,
    /// Whether it is a reservation.
    pub reserved: bool,
    /// Claimed vertices, in claim order.
    pub claims: Vec<Claim>,
}

/// The resource graph. See the module docs.
#[derive(Debug, Clone, Default)]
pub struct ResourceGraph {
    /// Vertex store. The containment tree lives in each vertex's `parent`
    /// and `children`, once: petgraph edge lists would hold a second copy
    /// (16 bytes a vertex, 12 MB at 10k nodes) that nothing walks.
    g: StableGraph<Vertex, (), petgraph::Directed, u32>,
    root: Option<VertexId>,
    types: Vec<Box<str>>,
    type_index: HashMap<Box<str>, TypeId>,
    filters: ResolvedFilters,
    jobs: HashMap<JobId, JobHold>,
    next_uniq: u64,
    generation: u64,
    /// See [`ResourceGraph::property_epoch`].
    property_epoch: u64,
    /// See [`ResourceGraph::free_epoch`].
    free_epoch: u64,
    /// Interned basenames and units (few distinct values, many vertices).
    strings: HashMap<Box<str>, Arc<str>>,
    /// Size limits, see [`GraphLimits`].
    limits: GraphLimits,
    /// Subsystem names, the edges outside the tree, associations.
    subsystems: subsystems::Subsystems,
    /// The summed holds of vertices held by many jobs at once (see
    /// [`LOAD_AFTER`]); the others answer from their few spans.
    loads: HashMap<VertexId, Timeline, IdBuild>,
    /// Aggregates that got an entry for the job being added, whose load
    /// timelines still lack it.
    fresh: Vec<VertexId>,
    /// The exclusive claims of the job being added or released (see
    /// [`ResourceGraph::mark_exclusive`]).
    held: VertexMarks,
}

/// A vertex with this many spans keeps a [`Timeline`] of them, and drops
/// it when back under half of it: below that a scan of the spans is faster
/// than keeping the timeline.
const LOAD_AFTER: usize = 16;

/// Columns of a vertex's load timeline.
const LOAD_AMOUNT: usize = 0;
const LOAD_EXCLUSIVE: usize = 1;
const LOAD_HOLDERS: usize = 2;

/// Adds (`take = false`) or takes a span to or from a load timeline.
fn apply_span(tl: &mut Timeline, s: &Span, take: bool) {
    let cols = [
        (LOAD_AMOUNT, s.amount),
        (LOAD_EXCLUSIVE, u64::from(s.exclusive)),
        (LOAD_HOLDERS, 1),
    ];
    for (col, units) in cols {
        if take {
            tl.sub(s.start, s.end, col, units);
        } else {
            tl.add(s.start, s.end, col, units);
        }
    }
}

impl ResourceGraph {
    /// An empty graph with no prune filters.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty graph with these limits.
    pub fn with_limits(limits: GraphLimits) -> Self {
        ResourceGraph {
            limits,
            ..Self::default()
        }
    }

    /// The graph's size limits.
    pub fn limits(&self) -> GraphLimits {
        self.limits
    }

    /// Changes the graph's size limits (for graphs already loaded; the
    /// vertices already there stay).
    pub fn set_limits(&mut self, limits: GraphLimits) {
        self.limits = limits;
    }

    // ----- types -----

    /// Interns a type name (idempotent).
    pub fn intern_type(&mut self, name: &str) -> Result<TypeId, GraphError> {
        if let Some(&t) = self.type_index.get(name) {
            return Ok(t);
        }
        let id = u16::try_from(self.types.len()).map_err(|_| GraphError::TooManyTypes)?;
        self.types.push(name.into());
        self.type_index.insert(name.into(), TypeId(id));
        Ok(TypeId(id))
    }
    fn shared(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.strings.get(s) {
            return a.clone();
        }
        let a: Arc<str> = s.into();
        self.strings.insert(s.into(), a.clone());
        a
    }
    /// The interned id of a type name, if any vertex or filter used it.
    pub fn type_id(&self, name: &str) -> Option<TypeId> {
        self.type_index.get(name).copied()
    }
    /// The name of an interned type.
    pub fn type_name(&self, t: TypeId) -> &str {
        self.types.get(t.0 as usize).map_or("", |s| s)
    }
    /// How many types are interned (ids `0..type_count()`).
    pub fn type_count(&self) -> usize {
        self.types.len()
    }

    // ----- structure -----

    /// Adds a vertex under `parent` (`None` adds the root). Aggregates of the
    /// ancestors are updated.
    pub fn add_vertex(
        &mut self,
        spec: VertexSpec,
        parent: Option<VertexId>,
    ) -> Result<VertexId, GraphError> {
        self.add_vertex_at(spec, parent, false)
    }

    /// [`ResourceGraph::add_vertex`], or with `detached` a vertex outside
    /// the tree.
    fn add_vertex_at(
        &mut self,
        spec: VertexSpec,
        parent: Option<VertexId>,
        detached: bool,
    ) -> Result<VertexId, GraphError> {
        match parent {
            None if detached => {}
            None => {
                if let Some(r) = self.root {
                    return Err(GraphError::RootExists(self.g[r].name().into_owned()));
                }
            }
            Some(p) => {
                if !self.g.contains_node(p) {
                    return Err(GraphError::NoSuchVertex(p));
                }
            }
        }
        self.limits.check_room(self.g.node_count(), 1)?;
        check_name("type", &spec.kind)?;
        check_name("basename", &spec.basename)?;
        check_name("name", &spec.name)?;
        check_name("unit", &spec.unit)?;
        if let Some(p) = parent {
            // Walks at most MAX_DEPTH parents: no vertex is deeper.
            let depth = 1 + self.depth(p);
            if depth > MAX_DEPTH {
                return Err(GraphError::TooDeep {
                    name: spec.name,
                    depth,
                    limit: MAX_DEPTH,
                });
            }
        }
        if spec.size > MAX_VERTEX_SIZE {
            return Err(GraphError::OutOfRange {
                field: "size",
                value: spec.size,
                limit: MAX_VERTEX_SIZE,
            });
        }
        let uniq_id = spec.uniq_id.unwrap_or(self.next_uniq);
        let next = uniq_id.checked_add(1).ok_or(GraphError::OutOfRange {
            field: "uniq_id",
            value: uniq_id,
            limit: u64::MAX - 1,
        })?;
        let kind = self.intern_type(&spec.kind)?;
        self.next_uniq = self.next_uniq.max(next);
        let vertex = Vertex {
            kind,
            other_name: (!spec
                .name
                .strip_prefix(spec.basename.as_str())
                .is_some_and(|digits| is_decimal(digits, spec.id)))
            .then(|| spec.name.into()),
            basename: self.shared(&spec.basename),
            id: spec.id,
            rank: spec.rank,
            uniq_id,
            size: spec.size,
            unit: self.shared(&spec.unit),
            properties: spec
                .properties
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            status: Status::Up,
            parent,
            children: Vec::new(),
            spans: SmallVec::new(),
            agg: None,
        };
        let v = self.g.add_node(vertex);
        self.generation += 1;
        self.free_epoch += 1;
        if let Some(p) = parent {
            self.g[p].children.push(v);
            self.count_new_vertex(v);
        } else if !detached {
            self.root = Some(v);
        }
        if spec.status == Status::Down {
            self.set_status(v, Status::Down)?;
        }
        Ok(v)
    }

    /// Removes `v` and its whole subtree; jobs lose their claims there.
    /// Returns the number of vertices removed.
    pub fn remove_subtree(&mut self, v: VertexId) -> Result<usize, GraphError> {
        if !self.g.contains_node(v) {
            return Err(GraphError::NoSuchVertex(v));
        }
        let jobs: Vec<JobId> = self.jobs.keys().copied().collect();
        for j in jobs {
            self.release_subtree(j, v)?;
        }
        // Bring the subtree up first so ancestors' down counts are undone.
        let sub = self.subtree(v);
        for &u in sub.iter().rev() {
            if self.g[u].status == Status::Down {
                self.set_status(u, Status::Up)?;
            }
        }
        let parent = self.g[v].parent;
        self.uncount_subtree(v);
        if let Some(p) = parent {
            self.g[p].children.retain(|&c| c != v);
        } else {
            self.root = None;
        }
        for &u in &sub {
            self.g.remove_node(u);
            self.loads.remove(&u);
        }
        self.forget_dead_links();
        self.generation += 1;
        self.free_epoch += 1;
        Ok(sub.len())
    }

    /// Counter bumped by every change that may make something usable
    /// again: a release, a status change, a vertex added or removed, new
    /// prune filters.
    /// Holding more leaves it as it is, so a fact such as "these vertices
    /// are held during this window" stays true while it does not change.
    pub fn free_epoch(&self) -> u64 {
        self.free_epoch
    }

    /// Counter bumped by every structural edit (add or remove of vertices),
    /// for caches derived from the shape of the graph.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Counter bumped by every property edit, for caches derived from
    /// vertex properties (such as the performance classes per type).
    pub fn property_epoch(&self) -> u64 {
        self.property_epoch
    }
    /// The root vertex, if the graph is not empty.
    pub fn root(&self) -> Option<VertexId> {
        self.root
    }
    /// Number of live vertices.
    pub fn vertex_count(&self) -> usize {
        self.g.node_count()
    }
    /// The vertex behind `v`, if live.
    pub fn vertex(&self, v: VertexId) -> Option<&Vertex> {
        self.g.node_weight(v)
    }
    /// Whether `v` is a live vertex.
    pub fn contains(&self, v: VertexId) -> bool {
        self.g.contains_node(v)
    }
    /// Children of `v` in insertion order (empty if `v` is not live).
    pub fn children(&self, v: VertexId) -> &[VertexId] {
        self.g.node_weight(v).map_or(&[], |x| &x.children)
    }
    /// Parent of `v`.
    pub fn parent(&self, v: VertexId) -> Option<VertexId> {
        self.g.node_weight(v).and_then(|x| x.parent)
    }
    /// Type name of `v` (empty if not live).
    pub fn kind_name(&self, v: VertexId) -> &str {
        self.g.node_weight(v).map_or("", |x| self.type_name(x.kind))
    }
    /// All live vertices, in id order.
    pub fn vertices(&self) -> impl Iterator<Item = VertexId> + '_ {
        self.g.node_indices()
    }
    /// One more than the largest vertex index ever handed out (indices of
    /// removed vertices are not reused), for tables indexed by vertex.
    pub fn index_bound(&self) -> usize {
        petgraph::visit::NodeIndexable::node_bound(&self.g)
    }
    /// Containment edges: every live vertex but the roots has one.
    pub fn edge_count(&self) -> usize {
        self.g.node_weights().filter(|x| x.parent.is_some()).count()
    }
    /// `v` and all its descendants in depth-first pre-order.
    pub fn subtree(&self, v: VertexId) -> Vec<VertexId> {
        let mut out = Vec::new();
        if !self.g.contains_node(v) {
            return out;
        }
        let mut stack = vec![v];
        while let Some(u) = stack.pop() {
            out.push(u);
            stack.extend(self.g[u].children.iter().rev());
        }
        out
    }
    /// `v` and all its descendants in depth-first post-order (each vertex
    /// after all of its children, children in their listed order).
    pub fn subtree_post_order(&self, v: VertexId) -> Vec<VertexId> {
        let mut out = Vec::new();
        if !self.g.contains_node(v) {
            return out;
        }
        let mut stack: Vec<(VertexId, usize)> = vec![(v, 0)];
        while let Some((u, i)) = stack.pop() {
            if let Some(&k) = self.g[u].children.get(i) {
                stack.push((u, i + 1));
                stack.push((k, 0));
            } else {
                out.push(u);
            }
        }
        out
    }
    /// The vertices above `v`, nearest first (its parent, then the
    /// parent's parent, up to the root).
    pub fn ancestors(&self, v: VertexId) -> impl Iterator<Item = VertexId> + '_ {
        std::iter::successors(self.parent(v), |&p| self.parent(p))
    }
    /// Depth of `v` (root = 0).
    pub fn depth(&self, v: VertexId) -> usize {
        let mut d = 0;
        let mut cur = self.parent(v);
        while let Some(p) = cur {
            d += 1;
            cur = self.parent(p);
        }
        d
    }
    /// Containment path, e.g. `/tiny0/rack0/node1`.
    pub fn path(&self, v: VertexId) -> String {
        let mut line = Vec::new();
        let mut cur = Some(v);
        while let Some(u) = cur {
            match self.g.node_weight(u) {
                Some(x) => {
                    line.push(x);
                    cur = x.parent;
                }
                None => break,
            }
        }
        let mut s = String::new();
        for x in line.iter().rev() {
            s.push('/');
            x.write_name(&mut s);
        }
        s
    }
    /// The vertex at containment path `path` (`/tiny0/rack0/node1`).
    pub fn find_path(&self, path: &str) -> Option<VertexId> {
        let mut parts = path.split('/').filter(|p| !p.is_empty());
        let root = self.root?;
        if !self.g[root].is_named(parts.next()?) {
            return None;
        }
        let mut cur = root;
        for part in parts {
            cur = *self.g[cur]
                .children
                .iter()
                .find(|&&c| self.g[c].is_named(part))?;
        }
        Some(cur)
    }
    /// Live vertices named `name` (names repeat across nodes, e.g. `core0`).
    pub fn find_by_name<'a>(&'a self, name: &'a str) -> impl Iterator<Item = VertexId> + 'a {
        self.g
            .node_indices()
            .filter(move |&v| self.g[v].is_named(name))
    }

    /// Sets (or replaces) property `key` of `v`.
    pub fn set_property(&mut self, v: VertexId, key: &str, value: &str) -> Result<(), GraphError> {
        let x = self
            .g
            .node_weight_mut(v)
            .ok_or(GraphError::NoSuchVertex(v))?;
        match x.properties.iter_mut().find(|(k, _)| &**k == key) {
            Some((_, val)) => *val = value.into(),
            None => x.properties.push((key.into(), value.into())),
        }
        self.property_epoch += 1;
        Ok(())
    }

    // ----- status -----

    /// Marks `v` up or down. A down vertex hides its subtree from the matcher;
    /// aggregates of `v` and its ancestors count the hidden units as down.
    pub fn set_status(&mut self, v: VertexId, status: Status) -> Result<(), GraphError> {
        let cur = self
            .g
            .node_weight(v)
            .ok_or(GraphError::NoSuchVertex(v))?
            .status;
        if cur == status {
            return Ok(());
        }
        self.change_status(v, status);
        Ok(())
    }

    /// Whether `v` and all its ancestors are up.
    pub fn is_effectively_up(&self, v: VertexId) -> bool {
        let mut cur = Some(v);
        while let Some(u) = cur {
            match self.g.node_weight(u) {
                Some(x) if x.status == Status::Up => cur = x.parent,
                _ => return false,
            }
        }
        true
    }

    // ----- allocation state -----

    /// Peak usage of `v` during `[start, end)`.
    pub fn usage(&self, v: VertexId, start: Time, end: Time) -> Usage {
        self.g
            .node_weight(v)
            .map_or(Usage::default(), |x| self.vertex_usage(v, x, start, end))
    }
    /// Units of `v` not in use anywhere in `[start, end)` (0 if held exclusively).
    pub fn available(&self, v: VertexId, start: Time, end: Time) -> u64 {
        let Some(x) = self.g.node_weight(v) else {
            return 0;
        };
        let u = self.vertex_usage(v, x, start, end);
        if u.exclusive_held {
            0
        } else {
            x.size.saturating_sub(u.peak_amount)
        }
    }

    /// Usage of `v` (whose vertex is `x`) during `[start, end)`, from its
    /// load timeline when it has one.
    fn vertex_usage(&self, v: VertexId, x: &Vertex, start: Time, end: Time) -> Usage {
        // Only a vertex with many spans can have a timeline (it is dropped
        // under half of LOAD_AFTER), so most skip the map lookup.
        if x.spans.len() < LOAD_AFTER / 2 {
            return planner::usage(&x.spans, start, end);
        }
        match self.loads.get(&v) {
            None => planner::usage(&x.spans, start, end),
            Some(tl) => Usage {
                peak_amount: tl.peak(LOAD_AMOUNT, start, end),
                exclusive_held: tl.peak(LOAD_EXCLUSIVE, start, end) > 0,
                any_held: tl.peak(LOAD_HOLDERS, start, end) > 0,
            },
        }
    }

    /// Adds a span to `v`, keeping its load timeline.
    fn push_span(&mut self, v: VertexId, span: Span) {
        let spans = &mut self.g[v].spans;
        spans.push(span);
        // Only a vertex with more than LOAD_AFTER / 2 spans can have a
        // timeline (see `remove_span`): most skip the map lookup.
        if spans.len() <= LOAD_AFTER / 2 {
            return;
        }
        if let Some(tl) = self.loads.get_mut(&v) {
            apply_span(tl, &span, false);
        } else if spans.len() >= LOAD_AFTER {
            let mut tl = Timeline::new(3);
            for s in spans.iter() {
                apply_span(&mut tl, s, false);
            }
            self.loads.insert(v, tl);
        }
    }

    /// Removes `job`'s span from `v`, keeping its load timeline.
    fn remove_span(&mut self, v: VertexId, job: JobId) {
        let spans = &mut self.g[v].spans;
        let Some(i) = spans.iter().position(|s| s.job == job) else {
            return;
        };
        let span = spans.remove(i);
        let left = spans.len();
        if left <= 1 {
            // Back into the vertex, freeing the spilled list.
            spans.shrink_to_fit();
        }
        if left < LOAD_AFTER / 2 {
            // It had a timeline only if it had LOAD_AFTER / 2 spans or more.
            if left + 1 >= LOAD_AFTER / 2 {
                self.loads.remove(&v);
            }
        } else if let Some(tl) = self.loads.get_mut(&v) {
            apply_span(tl, &span, true);
        }
    }

    /// Records `job` holding `claims` during `[start, end)`.
    pub fn allocate(
        &mut self,
        job: JobId,
        start: Time,
        end: Time,
        reserved: bool,
        claims: Vec<Claim>,
    ) -> Result<(), GraphError> {
        if self.jobs.contains_key(&job) {
            return Err(GraphError::JobExists(job));
        }
        if let Some(c) = claims.iter().find(|c| !self.g.contains_node(c.vertex)) {
            return Err(GraphError::NoSuchVertex(c.vertex));
        }
        self.mark_exclusive(&claims);
        for c in &claims {
            self.push_span(
                c.vertex,
                Span {
                    job,
                    start,
                    end,
                    amount: c.amount,
                    exclusive: c.exclusive,
                    reserved,
                },
            );
        }
        self.add_agg_usage(job, start, end, &claims, 1);
        self.flush_fresh_loads();
        self.jobs.insert(
            job,
            JobHold {
                start,
                end,
                reserved,
                claims,
            },
        );
        Ok(())
    }

    /// Releases everything `job` holds.
    pub fn release(&mut self, job: JobId) -> Result<JobHold, GraphError> {
        let hold = self.jobs.remove(&job).ok_or(GraphError::NoSuchJob(job))?;
        self.mark_exclusive(&hold.claims);
        self.drop_claims(job, &hold, &hold.claims);
        Ok(hold)
    }

    /// Releases `claims` of `job` (held during `hold`'s window): their
    /// spans and their aggregate units. The job's exclusive claims must be
    /// marked (see [`ResourceGraph::mark_exclusive`]).
    fn drop_claims(&mut self, job: JobId, hold: &JobHold, claims: &[Claim]) {
        self.free_epoch += 1;
        for c in claims {
            if self.g.contains_node(c.vertex) {
                self.remove_span(c.vertex, job);
            }
        }
        self.add_agg_usage(job, hold.start, hold.end, claims, -1);
    }

    /// Whether `u` lies in the subtree rooted at `root` (inclusive).
    pub fn is_in_subtree(&self, u: VertexId, root: VertexId) -> bool {
        let mut cur = Some(u);
        while let Some(x) = cur {
            if x == root {
                return true;
            }
            cur = self.parent(x);
        }
        false
    }

    /// What `job` holds, if anything.
    pub fn job(&self, job: JobId) -> Option<&JobHold> {
        self.jobs.get(&job)
    }
    /// All jobs holding something.
    pub fn jobs(&self) -> impl Iterator<Item = (JobId, &JobHold)> + '_ {
        self.jobs.iter().map(|(j, h)| (*j, h))
    }
}

#[cfg(test)]
mod tests;

/// Writes `n` in decimal into the end of `buf`; returns where it starts.
/// (Printing a match writes thousands of names: this skips `fmt`'s
/// machinery.)
fn decimal(buf: &mut [u8; 20], n: i64) -> usize {
    let mut m = n.unsigned_abs();
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    if n < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    i
}

/// Appends `n` in decimal, as `{n}` formats it.
fn push_decimal(out: &mut String, n: i64) {
    let mut buf = [0u8; 20];
    let i = decimal(&mut buf, n);
    // Only ASCII digits and '-' were written.
    out.push_str(std::str::from_utf8(&buf[i..]).unwrap_or_default());
}

/// Whether `text` is exactly `n` written in decimal (as `{n}` formats it).
fn is_decimal(text: &str, n: i64) -> bool {
    let mut buf = [0u8; 20];
    let i = decimal(&mut buf, n);
    text.as_bytes() == &buf[i..]
}

/// Pushes `x`, giving a vector's first entry exactly one slot instead of
/// the four a growing `Vec` starts with: most vertices are held by one job
/// at a time, and the spare slots were most of the memory a match touched.
fn push_snug<T>(v: &mut Vec<T>, x: T) {
    if v.capacity() == 0 {
        v.reserve_exact(1);
    }
    v.push(x);
}
