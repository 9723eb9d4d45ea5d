//! What the fuzz targets share: the small cluster they match on.
#![forbid(unsafe_code)]

use fluxion_core::generate::{ClusterShape, cluster};
use fluxion_core::graph::ResourceGraph;

/// 4 nodes in 2 racks, each 2 sockets of 4 cores, a GPU and 8 GiB.
pub fn small_cluster() -> ResourceGraph {
    let mut shape = ClusterShape::standard(4);
    shape.nodes_per_rack = 2;
    shape.cores_per_socket = 4;
    shape.gpus_per_socket = 1;
    shape.memory_gib_per_socket = 8;
    cluster(&shape).expect("the fixed shape builds")
}
