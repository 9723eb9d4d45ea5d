//! Graph formats: GRUG recipes (read) and JGF (read, write).

mod grug;
mod jgf;

pub use grug::read_grug;
pub use jgf::{attach_jgf, read_jgf, write_jgf};

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
    /// The graph rejected an edit.
    #[error(transparent)]
    Graph(#[from] GraphError),
}
