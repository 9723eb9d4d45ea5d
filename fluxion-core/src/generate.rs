//! Synthetic graphs for tests and benches.

use crate::graph::{GraphError, ResourceGraph, VertexId, VertexSpec};

/// Shape of a generated cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterShape {
    /// Number of nodes.
    pub nodes: usize,
    /// Nodes per rack (0 = no rack level: nodes sit under the cluster).
    pub nodes_per_rack: usize,
    /// Sockets per node.
    pub sockets: usize,
    /// Cores per socket.
    pub cores_per_socket: usize,
    /// GPUs per socket.
    pub gpus_per_socket: usize,
    /// Size of the one memory pool per socket, in GiB (0 = no memory vertex).
    pub memory_gib_per_socket: u64,
    /// Socket, core, gpu and memory ids restart at 0 in every node, as in
    /// GRUG recipes that scope ids by node (the bench's `gen*.graphml`);
    /// otherwise they run across the whole graph.
    pub per_node_ids: bool,
}

impl ClusterShape {
    /// The standard shape: racks of 18 nodes; per node 2 sockets, each with
    /// 32 cores, 2 GPUs and one 256 GiB memory pool.
    pub fn standard(nodes: usize) -> Self {
        ClusterShape {
            nodes,
            nodes_per_rack: 18,
            sockets: 2,
            cores_per_socket: 32,
            gpus_per_socket: 2,
            memory_gib_per_socket: 256,
            per_node_ids: false,
        }
    }
}

impl ClusterShape {
    /// How many vertices [`cluster`] builds for this shape (saturating at
    /// `u64::MAX`: a shape may come from a flag).
    pub fn vertex_count(&self) -> u64 {
        let per_socket = (self.cores_per_socket as u64)
            .saturating_add(self.gpus_per_socket as u64)
            .saturating_add(u64::from(self.memory_gib_per_socket > 0))
            .saturating_add(1);
        let per_node = (self.sockets as u64)
            .saturating_mul(per_socket)
            .saturating_add(1);
        let racks = match self.nodes_per_rack {
            0 => 0,
            k => self.nodes.div_ceil(k) as u64,
        };
        (self.nodes as u64)
            .saturating_mul(per_node)
            .saturating_add(racks)
            .saturating_add(1)
    }
}

/// Builds `cluster0 -> rack{i} -> node{i} -> socket{j} -> core/gpu/memory`.
/// Node ids and ranks are global (`node0..nodeN-1`); socket, core, gpu and
/// memory ids are global too, so every name is unique, unless
/// [`ClusterShape::per_node_ids`] restarts them in each node. Vertices are
/// created in id order.
pub fn cluster(shape: &ClusterShape) -> Result<ResourceGraph, GraphError> {
    let mut g = ResourceGraph::new();
    // Counted first, so a shape past the vertex budget is refused before
    // anything is built.
    let total = shape.vertex_count();
    g.limits().check_room(0, total)?;
    if shape.memory_gib_per_socket > crate::graph::MAX_VERTEX_SIZE {
        return Err(GraphError::OutOfRange {
            field: "size",
            value: shape.memory_gib_per_socket,
            limit: crate::graph::MAX_VERTEX_SIZE,
        });
    }
    let root = g.add_vertex(VertexSpec::new("cluster", "cluster", 0), None)?;
    let (mut socket_id, mut core_id, mut gpu_id, mut mem_id) = (0i64, 0i64, 0i64, 0i64);
    let mut rack: Option<VertexId> = None;
    for n in 0..shape.nodes {
        let parent = if shape.nodes_per_rack == 0 {
            root
        } else {
            if n % shape.nodes_per_rack == 0 || rack.is_none() {
                let r = (n / shape.nodes_per_rack) as i64;
                rack = Some(g.add_vertex(VertexSpec::new("rack", "rack", r), Some(root))?);
            }
            rack.unwrap_or(root)
        };
        if shape.per_node_ids {
            (socket_id, core_id, gpu_id, mem_id) = (0, 0, 0, 0);
        }
        let mut ns = VertexSpec::new("node", "node", n as i64);
        ns.rank = n as i64;
        let node = g.add_vertex(ns, Some(parent))?;
        for _ in 0..shape.sockets {
            let mut ss = VertexSpec::new("socket", "socket", socket_id);
            ss.rank = n as i64;
            socket_id += 1;
            let socket = g.add_vertex(ss, Some(node))?;
            for _ in 0..shape.cores_per_socket {
                let mut cs = VertexSpec::new("core", "core", core_id);
                cs.rank = n as i64;
                core_id += 1;
                g.add_vertex(cs, Some(socket))?;
            }
            for _ in 0..shape.gpus_per_socket {
                let mut gs = VertexSpec::new("gpu", "gpu", gpu_id);
                gs.rank = n as i64;
                gpu_id += 1;
                g.add_vertex(gs, Some(socket))?;
            }
            if shape.memory_gib_per_socket > 0 {
                let mut ms = VertexSpec::new("memory", "memory", mem_id);
                ms.rank = n as i64;
                ms.size = shape.memory_gib_per_socket;
                ms.unit = "GB".into();
                mem_id += 1;
                g.add_vertex(ms, Some(socket))?;
            }
        }
    }
    Ok(g)
}
