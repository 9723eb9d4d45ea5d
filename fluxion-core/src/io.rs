//! Graph formats: GRUG recipes (read), JGF (read, write), hwloc XML (read).

mod grug;
mod hwloc;
mod jgf;
mod rv1exec;
mod xml;

pub use grug::{read_grug, read_grug_with};
pub use hwloc::{read_hwloc, read_hwloc_with};
pub use jgf::{attach_jgf, read_jgf, read_jgf_with, write_jgf};
pub use rv1exec::{
    IdsetError, MAX_IDSET_IDS, count_idset, expand_hostlist, expand_idset, read_rv1exec,
    read_rv1exec_with,
};

use crate::graph::GraphError;

/// Errors reading a graph file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IoError {
    /// Malformed GRUG recipe.
    #[error("GRUG: {0}")]
    Grug(String),
    /// Malformed JGF document.
    #[error("JGF: {0}")]
    Jgf(String),
    /// Malformed hwloc XML topology.
    #[error("hwloc: {0}")]
    Hwloc(String),
    /// A JGF document to attach has a different root than the graph.
    #[error("JGF: root {0} differs from the graph's root (duplicate root)")]
    DuplicateRoot(String),
    /// Malformed R (rv1exec) document.
    #[error("R: {0}")]
    Rv1(String),
    /// The graph rejected an edit.
    #[error(transparent)]
    Graph(#[from] GraphError),
}
