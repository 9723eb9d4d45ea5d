//! Prune-filter specs in Fluxion's syntax: `ALL:core,rack:node`.

use std::fmt;
use std::str::FromStr;

/// One rule: vertices of type `anchor` (all types if `None`) track the free
/// units of type `target` in their subtree.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FilterRule {
    /// Anchor type; `None` is Fluxion's `ALL`.
    pub anchor: Option<String>,
    /// Tracked resource type.
    pub target: String,
}

/// A list of [`FilterRule`]s, parsed from e.g. `ALL:core,ALL:node`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct PruneFilters {
    rules: Vec<FilterRule>,
}

/// A malformed prune-filter spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid prune filter '{0}': expected ANCHOR:TYPE, e.g. ALL:core")]
pub struct PruneFilterError(pub String);

impl PruneFilters {
    /// Fluxion resource-query's default: `ALL:core`.
    pub fn fluxion_default() -> Self {
        PruneFilters {
            rules: vec![FilterRule {
                anchor: None,
                target: "core".into(),
            }],
        }
    }
    /// The rules in spec order.
    pub fn rules(&self) -> &[FilterRule] {
        &self.rules
    }
    /// Adds a rule (ignored if already present).
    pub fn push(&mut self, rule: FilterRule) {
        if !self.rules.contains(&rule) {
            self.rules.push(rule);
        }
    }
}

impl FromStr for PruneFilters {
    type Err = PruneFilterError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = PruneFilters::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (a, t) = part
                .split_once(':')
                .ok_or_else(|| PruneFilterError(part.into()))?;
            let (a, t) = (a.trim(), t.trim());
            if a.is_empty() || t.is_empty() || t.contains(':') {
                return Err(PruneFilterError(part.into()));
            }
            let anchor = (!a.eq_ignore_ascii_case("ALL")).then(|| a.to_string());
            out.push(FilterRule {
                anchor,
                target: t.to_string(),
            });
        }
        Ok(out)
    }
}

impl fmt::Display for PruneFilters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.rules.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}:{}", r.anchor.as_deref().unwrap_or("ALL"), r.target)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_fluxion_syntax() {
        let f: PruneFilters = "ALL:core, rack:node".parse().unwrap();
        assert_eq!(f.rules().len(), 2);
        assert_eq!(f.rules()[0].anchor, None);
        assert_eq!(f.rules()[1].anchor.as_deref(), Some("rack"));
        assert_eq!(f.to_string(), "ALL:core,rack:node");
        assert!("core".parse::<PruneFilters>().is_err());
        assert!("a:b:c".parse::<PruneFilters>().is_err());
    }
}
