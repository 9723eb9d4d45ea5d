//! Match policies: how candidates of one type are ranked.

use std::fmt;
use std::str::FromStr;

/// A match policy, named as in Fluxion's resource-query `-P`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Policy {
    /// Highest ids first, node-centric, stop at the first match.
    First,
    /// `first`, and nodes are always allocated exclusively.
    FirstNodeX,
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
    /// Variation-aware: prefers vertices of the lowest `perf_class`
    /// property (unset or invalid counts as the worst, 9999), ties by graph
    /// order, so a job's nodes share one performance class where they can.
    Variation,
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
            "firstnodex" => Policy::FirstNodeX,
            "high" => Policy::High,
            "low" => Policy::Low,
            "lonode" => Policy::LoNode,
            "hinode" => Policy::HiNode,
            "lonodex" => Policy::LoNodeX,
            "hinodex" => Policy::HiNodeX,
            "locality" => Policy::Locality,
            "variation" => Policy::Variation,
            _ => return custom(s),
        })
    }
}

/// Fluxion's custom policy strings (`policy=low node_centric=true ...`),
/// accepted when they name one of the built-in combinations.
fn custom(s: &str) -> Result<Policy, UnknownPolicy> {
    let bad = || UnknownPolicy(s.to_string());
    let (mut high, mut centric, mut exclusive, mut first) = (None, false, false, false);
    for opt in s.split_whitespace() {
        let (k, v) = opt.split_once('=').ok_or_else(bad)?;
        let flag = match v {
            "true" => true,
            "false" => false,
            _ if k == "policy" => false,
            _ => return Err(bad()),
        };
        match k {
            "policy" => {
                high = Some(match v {
                    "high" => true,
                    "low" => false,
                    _ => return Err(bad()),
                })
            }
            "node_centric" => centric = flag,
            "node_exclusive" => exclusive = flag,
            "stop_on_1_matches" => first = flag,
            _ => return Err(bad()),
        }
    }
    Ok(match (high.ok_or_else(bad)?, centric, exclusive, first) {
        (true, false, false, false) => Policy::High,
        (false, false, false, false) => Policy::Low,
        (true, true, false, false) => Policy::HiNode,
        (false, true, false, false) => Policy::LoNode,
        (true, true, true, false) => Policy::HiNodeX,
        (false, true, true, false) => Policy::LoNodeX,
        (true, true, false, true) => Policy::First,
        (true, true, true, true) => Policy::FirstNodeX,
        _ => return Err(bad()),
    })
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Policy::First => "first",
            Policy::FirstNodeX => "firstnodex",
            Policy::High => "high",
            Policy::Low => "low",
            Policy::LoNode => "lonode",
            Policy::HiNode => "hinode",
            Policy::LoNodeX => "lonodex",
            Policy::HiNodeX => "hinodex",
            Policy::Locality => "locality",
            Policy::Variation => "variation",
        })
    }
}

impl Policy {
    /// Whether higher scores are preferred.
    pub fn prefers_high(self) -> bool {
        matches!(
            self,
            Policy::First | Policy::FirstNodeX | Policy::High | Policy::HiNode | Policy::HiNodeX
        )
    }
    /// Whether resources below a node are ranked by their node first.
    pub fn node_centric(self) -> bool {
        matches!(
            self,
            Policy::First
                | Policy::FirstNodeX
                | Policy::LoNode
                | Policy::HiNode
                | Policy::LoNodeX
                | Policy::HiNodeX
        )
    }
    /// Whether every matched node is taken exclusively.
    pub fn node_exclusive(self) -> bool {
        matches!(self, Policy::FirstNodeX | Policy::LoNodeX | Policy::HiNodeX)
    }
    /// Whether the search stops at the first complete match.
    pub fn stops_early(self) -> bool {
        matches!(self, Policy::First | Policy::FirstNodeX)
    }
    /// Whether candidates are ranked by their ids (every policy but
    /// [`Policy::Variation`], which ranks by a property), so the search may
    /// stop once the best ids are found.
    pub fn ranks_by_id(self) -> bool {
        self != Policy::Variation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_custom_strings_parse() {
        assert_eq!("hinodex".parse::<Policy>(), Ok(Policy::HiNodeX));
        assert_eq!(
            "policy=low node_centric=true".parse::<Policy>(),
            Ok(Policy::LoNode)
        );
        assert_eq!(
            "policy=high node_centric=true node_exclusive=true stop_on_1_matches=true"
                .parse::<Policy>(),
            Ok(Policy::FirstNodeX)
        );
        assert!("policy=medium".parse::<Policy>().is_err());
        assert!(
            "policy=low stop_on_1_matches=true"
                .parse::<Policy>()
                .is_err()
        );
        assert!("nonsense".parse::<Policy>().is_err());
        for p in [
            Policy::First,
            Policy::Low,
            Policy::LoNodeX,
            Policy::Locality,
            Policy::Variation,
        ] {
            assert_eq!(p.to_string().parse::<Policy>(), Ok(p));
        }
    }
}
