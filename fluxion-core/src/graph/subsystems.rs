//! Subsystems: several edge sets over one set of vertices.
//!
//! Fluxion keeps one vertex per resource and tags every edge with the
//! subsystem it belongs to: `containment` (cluster -> rack -> node -> ...),
//! and auxiliary ones such as `power` (panel -> pdu -> node), `ibnet` or
//! storage bandwidth. A match walks one *dominant* subsystem from its root.
//!
//! Here the dominant subsystem is the graph's tree (each vertex's `parent`
//! and `children`), so the matcher, the aggregates and the writers walk it
//! with no cost for the others. Every other edge is a [`Link`]: the edges
//! of the other subsystems, and the edges of the dominant one that give a
//! vertex a second parent (an association, as GRUG's `ASSOCIATE_IN`
//! makes). [`ResourceGraph::select_dominant`] swaps which subsystem is the
//! tree. A vertex that is in no tree edge of the dominant subsystem is
//! *detached*: it keeps its allocation state but no match reaches it.
//!
//! A match walks the tree, and from a vertex also its association children
//! (see [`ResourceGraph::associated_children`]). A vertex reachable along
//! more than one path is *shared*: a walk takes it at most once, through
//! the first path that explores it (Fluxion's visit colours).

use std::collections::{HashMap, HashSet};

use super::{GraphError, MAX_DEPTH, ResourceGraph, VertexId, VertexSpec};

/// The subsystem every graph has: what contains what.
pub const CONTAINMENT: &str = "containment";

/// Longest subsystem name, in bytes.
const MAX_SUBSYSTEM_NAME: usize = 64;

/// Most distinct subsystems a graph may have.
const MAX_SUBSYSTEMS: usize = 255;

/// Interned subsystem; see [`ResourceGraph::subsystem_name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubsystemId(pub u8);

/// An edge outside the dominant subsystem's tree, in its generated
/// direction (`contains`, `supplies_to`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// The subsystem the edge belongs to.
    pub subsystem: SubsystemId,
    /// Where it starts (the container, the supplier).
    pub source: VertexId,
    /// Where it ends.
    pub target: VertexId,
}

/// The subsystem bookkeeping of a graph: names, the edges outside the
/// tree, and the association children of the dominant subsystem.
#[derive(Debug, Clone, Default)]
pub(super) struct Subsystems {
    /// Names by id; empty until the first use (id 0 is then containment).
    names: Vec<Box<str>>,
    /// Which subsystem the tree is (index into `names`; 0 = containment).
    dominant: u8,
    /// Edges outside the tree, in the order they were added.
    links: Vec<Link>,
    /// Dominant-subsystem links by source, in link order.
    assoc: HashMap<VertexId, Vec<VertexId>>,
    /// Targets of `assoc` links: vertices a walk may reach twice.
    shared: HashSet<VertexId>,
}

impl Subsystems {
    fn ensure_names(&mut self) {
        if self.names.is_empty() {
            self.names.push(CONTAINMENT.into());
        }
    }
}

impl ResourceGraph {
    /// Interns a subsystem name (idempotent).
    pub fn intern_subsystem(&mut self, name: &str) -> Result<SubsystemId, GraphError> {
        let s = &mut self.subsystems;
        s.ensure_names();
        if let Some(i) = s.names.iter().position(|n| **n == *name) {
            return Ok(SubsystemId(i as u8));
        }
        super::check_name("subsystem", name)?;
        if name.is_empty() || name.len() > MAX_SUBSYSTEM_NAME {
            return Err(GraphError::BadName {
                field: "subsystem",
                value: name.chars().take(40).collect(),
                why: format!("must be 1 to {MAX_SUBSYSTEM_NAME} bytes"),
            });
        }
        if s.names.len() >= MAX_SUBSYSTEMS {
            return Err(GraphError::OutOfRange {
                field: "subsystems",
                value: s.names.len() as u64 + 1,
                limit: MAX_SUBSYSTEMS as u64,
            });
        }
        s.names.push(name.into());
        Ok(SubsystemId((s.names.len() - 1) as u8))
    }

    /// The id of a subsystem name, if the graph has it.
    pub fn subsystem_id(&self, name: &str) -> Option<SubsystemId> {
        if name == CONTAINMENT {
            return Some(SubsystemId(0));
        }
        self.subsystems
            .names
            .iter()
            .position(|n| **n == *name)
            .map(|i| SubsystemId(i as u8))
    }

    /// The name of a subsystem id (empty if unknown).
    pub fn subsystem_name(&self, s: SubsystemId) -> &str {
        match self.subsystems.names.get(s.0 as usize) {
            Some(n) => n,
            None if s.0 == 0 => CONTAINMENT,
            None => "",
        }
    }

    /// The subsystem the tree (`parent`, `children`, `root`) belongs to.
    pub fn dominant(&self) -> &str {
        self.subsystem_name(SubsystemId(self.subsystems.dominant))
    }

    /// Whether subsystem `name` has a root: the tree's subsystem when the
    /// graph is not empty, or another one with at least one edge.
    pub fn has_subsystem(&self, name: &str) -> bool {
        if name == self.dominant() {
            return self.root.is_some();
        }
        self.subsystem_id(name)
            .is_some_and(|s| self.subsystems.links.iter().any(|l| l.subsystem == s))
    }

    /// Adds a vertex outside the tree (the root of an auxiliary subsystem,
    /// or a vertex only an auxiliary subsystem has, such as a power
    /// capacity); [`ResourceGraph::add_link`] connects it.
    pub fn add_detached_vertex(&mut self, spec: VertexSpec) -> Result<VertexId, GraphError> {
        self.add_vertex_at(spec, None, true)
    }

    /// Adds an edge of `subsystem` from `source` to `target`. An edge of
    /// the tree's subsystem to a vertex that has a parent already is an
    /// association: the match may reach `target` through `source` too.
    pub fn add_link(
        &mut self,
        subsystem: &str,
        source: VertexId,
        target: VertexId,
    ) -> Result<(), GraphError> {
        for v in [source, target] {
            if !self.g.contains_node(v) {
                return Err(GraphError::NoSuchVertex(v));
            }
        }
        let s = self.intern_subsystem(subsystem)?;
        // The links share the vertex budget: an association recipe could
        // otherwise ask for every pair of two large vertex sets.
        self.limits
            .check_room(self.subsystems.links.len(), 1)
            .map_err(|_| GraphError::OutOfRange {
                field: "subsystem edges",
                value: self.subsystems.links.len() as u64 + 1,
                limit: self.limits.max_vertices as u64,
            })?;
        let link = Link {
            subsystem: s,
            source,
            target,
        };
        self.subsystems.links.push(link);
        if s.0 == self.subsystems.dominant && source != target {
            self.note_association(source, target);
        }
        self.generation += 1;
        Ok(())
    }

    fn note_association(&mut self, source: VertexId, target: VertexId) {
        let subs = &mut self.subsystems;
        let kids = subs.assoc.entry(source).or_default();
        if !kids.contains(&target) {
            kids.push(target);
            subs.shared.insert(target);
        }
    }

    /// Drops the links that lost an end (after a subtree was removed).
    pub(super) fn forget_dead_links(&mut self) {
        if self.subsystems.links.is_empty() {
            return;
        }
        let g = &self.g;
        self.subsystems
            .links
            .retain(|l| g.contains_node(l.source) && g.contains_node(l.target));
        let dominant = self.subsystems.dominant;
        let assoc: Vec<Link> = self
            .subsystems
            .links
            .iter()
            .filter(|l| l.subsystem.0 == dominant && l.source != l.target)
            .copied()
            .collect();
        self.subsystems.assoc.clear();
        self.subsystems.shared.clear();
        for l in assoc {
            // A link that became a tree edge (none do today) is no association.
            if self.g[l.target].parent != Some(l.source) {
                self.note_association(l.source, l.target);
            }
        }
    }

    /// The edges outside the tree, in the order they were added.
    pub fn links(&self) -> &[Link] {
        &self.subsystems.links
    }

    /// Children `v` has through associations of the dominant subsystem
    /// (beyond its tree children), in the order they were added.
    pub fn associated_children(&self, v: VertexId) -> &[VertexId] {
        // Most graphs have none: skip hashing on the matcher's hot path.
        if self.subsystems.assoc.is_empty() {
            return &[];
        }
        self.subsystems.assoc.get(&v).map_or(&[], Vec::as_slice)
    }

    /// Whether some vertex has more than one parent in the dominant
    /// subsystem (a match must then take care not to take it twice).
    pub fn has_associations(&self) -> bool {
        !self.subsystems.shared.is_empty()
    }

    /// Whether a walk may reach `v` along more than one path.
    pub fn is_shared(&self, v: VertexId) -> bool {
        !self.subsystems.shared.is_empty() && self.subsystems.shared.contains(&v)
    }

    /// Makes `name` the dominant subsystem: its edges become the tree (the
    /// first edge into a vertex gives its parent; later ones are
    /// associations), and the old tree's edges become links. Aggregates
    /// are rebuilt. Errors if the subsystem has no edges, more than one
    /// root, or a path deeper than [`MAX_DEPTH`].
    pub fn select_dominant(&mut self, name: &str) -> Result<(), GraphError> {
        if name == self.dominant() {
            return Ok(());
        }
        let Some(new) = self.subsystem_id(name) else {
            return Err(GraphError::NoSuchSubsystem(name.to_string()));
        };
        let old = SubsystemId(self.subsystems.dominant);
        // The new root: the one source of the subsystem's edges that no
        // edge of it enters. Checked before anything changes.
        let (mine, others): (Vec<Link>, Vec<Link>) = std::mem::take(&mut self.subsystems.links)
            .into_iter()
            .partition(|l| l.subsystem == new);
        let targets: HashSet<VertexId> = mine.iter().map(|l| l.target).collect();
        let mut roots: Vec<VertexId> = Vec::new();
        for l in &mine {
            if !targets.contains(&l.source) && !roots.contains(&l.source) {
                roots.push(l.source);
            }
        }
        if roots.len() != 1 {
            self.subsystems.links = others;
            self.subsystems.links.extend(mine);
            return Err(GraphError::SubsystemRoots {
                subsystem: name.to_string(),
                roots: roots.len(),
            });
        }
        let root = roots[0];
        // The old tree's edges (detached subtrees too), parents before
        // children, children in order.
        let tops: Vec<VertexId> = self
            .g
            .node_indices()
            .filter(|&v| self.g[v].parent.is_none() && !self.g[v].children.is_empty())
            .collect();
        let mut links: Vec<Link> = Vec::new();
        for top in tops {
            for u in self.subtree(top) {
                for &c in &self.g[u].children {
                    links.push(Link {
                        subsystem: old,
                        source: u,
                        target: c,
                    });
                }
            }
        }
        links.extend(others);
        let ids: Vec<VertexId> = self.g.node_indices().collect();
        for &v in &ids {
            let x = &mut self.g[v];
            x.parent = None;
            x.children.clear();
        }
        self.subsystems.assoc.clear();
        self.subsystems.shared.clear();
        self.subsystems.dominant = new.0;
        // The first edge into a vertex gives its parent; a later one, or
        // one that would close a cycle or enter the root, is an association.
        let mut extra: Vec<Link> = Vec::new();
        for l in &mine {
            let (s, t) = (l.source, l.target);
            if t == root || s == t || self.g[t].parent.is_some() || self.is_in_subtree(s, t) {
                extra.push(*l);
                continue;
            }
            self.g[t].parent = Some(s);
            self.g[s].children.push(t);
        }
        self.root = Some(root);
        for l in &extra {
            if l.source != l.target {
                self.note_association(l.source, l.target);
            }
        }
        links.extend(extra);
        self.subsystems.links = links;
        self.generation += 1;
        self.free_epoch += 1;
        self.rebuild_aggregates();
        self.check_tree_depth(root)
    }

    /// Errors if some vertex of the tree under `root` is deeper than
    /// [`MAX_DEPTH`] (the matcher walks the tree recursively).
    fn check_tree_depth(&self, root: VertexId) -> Result<(), GraphError> {
        let mut stack = vec![(root, 0usize)];
        while let Some((u, d)) = stack.pop() {
            if d > MAX_DEPTH {
                return Err(GraphError::TooDeep {
                    name: self.g[u].name().into_owned(),
                    depth: d,
                    limit: MAX_DEPTH,
                });
            }
            stack.extend(self.g[u].children.iter().map(|&c| (c, d + 1)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// cluster0 -> rack0 -> {node0, node1}, rack1 -> node2; a power panel
    /// feeds pdu0 (node0, node1) and pdu1 (node2); node0 has a capacity.
    struct Powered {
        g: ResourceGraph,
        rack0: VertexId,
        nodes: [VertexId; 3],
        panel: VertexId,
        pdus: [VertexId; 2],
        cap: VertexId,
    }

    fn powered() -> Powered {
        let mut g = ResourceGraph::new();
        let add = |g: &mut ResourceGraph, k: &str, id: i64, p: Option<VertexId>| {
            g.add_vertex(VertexSpec::new(k, k, id), p).unwrap()
        };
        let root = add(&mut g, "cluster", 0, None);
        let rack0 = add(&mut g, "rack", 0, Some(root));
        let rack1 = add(&mut g, "rack", 1, Some(root));
        let nodes = [
            add(&mut g, "node", 0, Some(rack0)),
            add(&mut g, "node", 1, Some(rack0)),
            add(&mut g, "node", 2, Some(rack1)),
        ];
        let detached = |g: &mut ResourceGraph, k: &str, id: i64| {
            g.add_detached_vertex(VertexSpec::new(k, k, id)).unwrap()
        };
        let panel = detached(&mut g, "panel", 0);
        let pdus = [detached(&mut g, "pdu", 0), detached(&mut g, "pdu", 1)];
        let cap = detached(&mut g, "power", 0);
        for (s, t) in [
            (panel, pdus[0]),
            (panel, pdus[1]),
            (pdus[0], nodes[0]),
            (pdus[0], nodes[1]),
            (pdus[1], nodes[2]),
            (nodes[0], cap),
        ] {
            g.add_link("power", s, t).unwrap();
        }
        Powered {
            g,
            rack0,
            nodes,
            panel,
            pdus,
            cap,
        }
    }

    #[test]
    fn the_walked_subsystem_becomes_the_tree_and_the_old_one_comes_back() {
        let Powered {
            mut g,
            rack0,
            nodes,
            panel,
            pdus,
            cap,
        } = powered();
        assert_eq!(g.dominant(), CONTAINMENT);
        assert!(g.has_subsystem("power") && !g.has_subsystem("ibnet"));
        // Detached vertices are in no tree until their subsystem is walked.
        assert_eq!(g.parent(cap), None);
        assert_ne!(g.root(), Some(panel));

        g.select_dominant("power").unwrap();
        assert_eq!(g.dominant(), "power");
        assert_eq!(g.root(), Some(panel));
        assert_eq!(g.children(panel), &pdus);
        assert_eq!(g.children(pdus[0]), &nodes[..2]);
        assert_eq!(g.path(cap), "/panel0/pdu0/node0/power0");
        // Racks carry no power: outside the walked tree now.
        assert_eq!(g.parent(rack0), None);
        assert!(g.children(rack0).is_empty());

        g.select_dominant(CONTAINMENT).unwrap();
        assert_eq!(g.children(rack0), &nodes[..2]);
        assert_eq!(g.path(nodes[2]), "/cluster0/rack1/node2");
        assert_eq!(g.parent(cap), None);
        assert!(!g.has_associations());
    }

    #[test]
    fn a_second_container_makes_an_association() {
        let Powered {
            mut g,
            nodes,
            rack0,
            ..
        } = powered();
        let store = g
            .add_vertex(VertexSpec::new("store", "store", 0), g.root())
            .unwrap();
        g.add_link(CONTAINMENT, store, nodes[1]).unwrap();
        // The tree is unchanged: the association is an extra way in.
        assert_eq!(g.parent(nodes[1]), Some(rack0));
        assert_eq!(g.associated_children(store), &[nodes[1]]);
        assert!(g.is_shared(nodes[1]) && !g.is_shared(nodes[0]));
        assert!(g.has_associations());
        // An edge of an auxiliary subsystem is no association.
        assert!(g.associated_children(nodes[0]).is_empty());
    }

    #[test]
    fn removing_a_subtree_drops_the_links_that_touched_it() {
        let Powered {
            mut g,
            rack0,
            nodes,
            pdus,
            ..
        } = powered();
        let store = g
            .add_vertex(VertexSpec::new("store", "store", 0), g.root())
            .unwrap();
        g.add_link(CONTAINMENT, store, nodes[0]).unwrap();
        g.remove_subtree(rack0).unwrap();
        assert!(!g.has_associations());
        assert!(g.associated_children(store).is_empty());
        // pdu0 fed only rack0's nodes; pdu1 still feeds node2.
        assert!(
            g.links()
                .iter()
                .all(|l| g.contains(l.source) && g.contains(l.target))
        );
        assert!(
            g.links()
                .iter()
                .any(|l| l.source == pdus[1] && l.target == nodes[2])
        );
    }

    #[test]
    fn a_subsystem_without_exactly_one_root_is_refused_and_nothing_changes() {
        let Powered { mut g, nodes, .. } = powered();
        assert_eq!(
            g.select_dominant("ibnet"),
            Err(GraphError::NoSuchSubsystem("ibnet".into()))
        );
        // Two separate networks: two roots.
        g.add_link("ibnet", nodes[0], nodes[1]).unwrap();
        g.add_link("ibnet", nodes[2], nodes[1]).unwrap();
        let before = g.path(nodes[1]);
        assert!(matches!(
            g.select_dominant("ibnet"),
            Err(GraphError::SubsystemRoots { .. })
        ));
        assert_eq!(g.dominant(), CONTAINMENT);
        assert_eq!(g.path(nodes[1]), before);
        // The links of power and ibnet are all still there.
        assert_eq!(g.links().len(), 8);
    }
}
