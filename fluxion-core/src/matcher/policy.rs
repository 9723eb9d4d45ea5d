//! Match policies: how candidates of one type are ranked.

use std::fmt;
use std::str::FromStr;

/// A match policy, named as in Fluxion's resource-query `-P`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Policy {
    /// Highest ids first, node-centric, stop at the first match.
    First,
    /// Highest ids first.
    #[default]
    High,
    /// Lowest ids first.
    Low,
    /// Lowest node ids first (resources ranked by their node).
    LoNode,
    /// Highest node ids first.
    HiNode,
    /// `lonode`, and nodes are always allocated exclusively.
    LoNodeX,
    /// `hinode`, and nodes are always allocated exclusively.
    HiNodeX,
    /// Locality-aware: prefers the subtrees with the most free resources.
    Locality,
}

/// An unknown policy name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown match policy '{0}'")]
pub struct UnknownPolicy(pub String);

impl FromStr for Policy {
    type Err = UnknownPolicy;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "first" => Policy::First,
            "high" => Policy::High,
            "low" => Policy::Low,
            "lonode" => Policy::LoNode,
            "hinode" => Policy::HiNode,
            "lonodex" => Policy::LoNodeX,
            "hinodex" => Policy::HiNodeX,
            "locality" => Policy::Locality,
            _ => return Err(UnknownPolicy(s.to_string())),
        })
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Policy::First => "first",
            Policy::High => "high",
            Policy::Low => "low",
            Policy::LoNode => "lonode",
            Policy::HiNode => "hinode",
            Policy::LoNodeX => "lonodex",
            Policy::HiNodeX => "hinodex",
            Policy::Locality => "locality",
        })
    }
}

impl Policy {
    /// Whether higher scores are preferred.
    pub fn prefers_high(self) -> bool {
        matches!(self, Policy::First | Policy::High | Policy::HiNode | Policy::HiNodeX)
    }
    /// Whether resources below a node are ranked by their node first.
    pub fn node_centric(self) -> bool {
        matches!(
            self,
            Policy::First | Policy::LoNode | Policy::HiNode | Policy::LoNodeX | Policy::HiNodeX
        )
    }
    /// Whether every matched node is taken exclusively.
    pub fn node_exclusive(self) -> bool {
        matches!(self, Policy::LoNodeX | Policy::HiNodeX)
    }
    /// Whether the search stops at the first complete match.
    pub fn stops_early(self) -> bool {
        matches!(self, Policy::First)
    }
}
