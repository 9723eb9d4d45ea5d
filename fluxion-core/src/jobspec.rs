//! Fluxion jobspec V1 (YAML or JSON; `version: 1` or `9999`).
//!
//! Parsing is two-step: serde into a raw tree (errors name the path through
//! `serde_path_to_error`), then validation that names the path of the
//! offending field, e.g. `resources[0].with[1].count: must be >= 1`.

use serde::Deserialize;

mod variants;

/// The type of an alternative slot: of several `xor_slot` siblings, a
/// match uses exactly one (see [`Jobspec::xor_variants`]).
pub const XOR_SLOT: &str = "xor_slot";

/// A parsed, validated jobspec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jobspec {
    /// `version` (1 or 9999).
    pub version: u32,
    /// Top-level resource requests.
    pub resources: Vec<Resource>,
    /// Tasks (kept for completeness; matching does not need them).
    pub tasks: Vec<Task>,
    /// `attributes.system.duration` in seconds; 0 means "the graph's horizon".
    pub duration: u64,
}

/// One resource request vertex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// Resource type (`node`, `core`, ... or `slot`).
    pub kind: String,
    /// How many.
    pub count: Count,
    /// Nested requests.
    pub with: Vec<Resource>,
    /// Explicit exclusivity, if given.
    pub exclusive: Option<bool>,
    /// Label (required on slots).
    pub label: Option<String>,
    /// Unit of pool amounts, if given.
    pub unit: Option<String>,
}

impl Resource {
    /// Whether this is a `slot` (or an `xor_slot`, one of several
    /// alternative slots: see [`Jobspec::xor_variants`]).
    pub fn is_slot(&self) -> bool {
        self.kind == "slot" || self.is_xor_slot()
    }
    /// Whether this is an `xor_slot`.
    pub fn is_xor_slot(&self) -> bool {
        self.kind == XOR_SLOT
    }
}

/// Operator of a count range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountOp {
    /// `+`: min, min+k, min+2k, ...
    Add,
    /// `*`: min, min*k, ...
    Mul,
    /// `^`: min, min^k, ...
    Pow,
}

/// A count: exact (`min == max`) or a range walked with an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    /// Smallest acceptable count (>= 1).
    pub min: u64,
    /// Largest acceptable count (`u64::MAX` = unbounded).
    pub max: u64,
    /// Step operator.
    pub op: CountOp,
    /// Step operand.
    pub operand: u64,
}

impl Count {
    /// An exact count.
    pub fn exact(n: u64) -> Self {
        Count {
            min: n,
            max: n,
            op: CountOp::Add,
            operand: 1,
        }
    }
    /// Next count after `n` in the range, if any.
    pub fn next(&self, n: u64) -> Option<u64> {
        let v = match self.op {
            CountOp::Add => n.checked_add(self.operand)?,
            CountOp::Mul => n.checked_mul(self.operand)?,
            CountOp::Pow => n.checked_pow(u32::try_from(self.operand).ok()?)?,
        };
        (v > n && v <= self.max).then_some(v)
    }
    /// Largest count in the range that is `<= limit`, if any (>= min).
    pub fn best_within(&self, limit: u64) -> Option<u64> {
        if limit < self.min {
            return None;
        }
        let mut cur = self.min;
        while let Some(n) = self.next(cur) {
            if n > limit {
                break;
            }
            cur = n;
        }
        Some(cur)
    }
}

/// A task entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// Command argv.
    pub command: Vec<String>,
    /// Slot label the task runs in.
    pub slot: String,
    /// Tasks per slot, if given.
    pub per_slot: Option<u64>,
    /// Total tasks, if given.
    pub total: Option<u64>,
}

/// A jobspec that could not be parsed or validated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct JobspecError {
    /// Where the problem is, e.g. `resources[0].with[1].count` (`.` = the document).
    pub path: String,
    /// What was expected.
    pub message: String,
}

impl JobspecError {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        JobspecError {
            path: path.into(),
            message: message.into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJobspec {
    version: Option<serde_yaml_ng::Value>,
    resources: Option<Vec<RawResource>>,
    #[serde(default)]
    tasks: Vec<RawTask>,
    #[serde(default)]
    attributes: Option<RawAttributes>,
}

#[derive(Deserialize)]
struct RawAttributes {
    #[serde(default)]
    system: Option<RawSystem>,
    #[serde(default)]
    #[allow(dead_code)]
    user: Option<serde_yaml_ng::Value>,
}

#[derive(Deserialize)]
struct RawSystem {
    #[serde(default)]
    duration: Option<f64>,
    #[serde(flatten)]
    #[allow(dead_code)]
    other: std::collections::BTreeMap<String, serde_yaml_ng::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResource {
    #[serde(rename = "type")]
    kind: Option<String>,
    count: Option<RawCount>,
    #[serde(default)]
    with: Option<Vec<RawResource>>,
    #[serde(default)]
    exclusive: Option<bool>,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    unit: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    id: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    #[allow(dead_code)]
    requires: Option<serde_yaml_ng::Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawCount {
    Int(i64),
    Range {
        min: i64,
        max: Option<i64>,
        operator: Option<String>,
        operand: Option<i64>,
    },
}

#[derive(Deserialize)]
struct RawTask {
    #[serde(default)]
    command: Vec<String>,
    #[serde(default)]
    slot: Option<String>,
    #[serde(default)]
    count: Option<RawTaskCount>,
    #[serde(flatten)]
    #[allow(dead_code)]
    other: std::collections::BTreeMap<String, serde_yaml_ng::Value>,
}

#[derive(Deserialize)]
struct RawTaskCount {
    per_slot: Option<u64>,
    total: Option<u64>,
}

impl Jobspec {
    /// Parses a jobspec from YAML or JSON text.
    pub fn parse(text: &str) -> Result<Jobspec, JobspecError> {
        let de = serde_yaml_ng::Deserializer::from_str(text);
        let raw: RawJobspec = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            // serde_yaml_ng appends " at line L column C"; keep it, it helps.
            JobspecError::new(if path.is_empty() { ".".into() } else { path }, inner)
        })?;
        Self::validate(raw)
    }

    fn validate(raw: RawJobspec) -> Result<Jobspec, JobspecError> {
        let version = match &raw.version {
            None => return Err(JobspecError::new("version", "missing")),
            Some(v) => match v.as_u64() {
                Some(n @ (1 | 9999)) => n as u32,
                _ => return Err(JobspecError::new("version", "must be 1 or 9999")),
            },
        };
        let raw_res = raw
            .resources
            .ok_or_else(|| JobspecError::new("resources", "missing"))?;
        if raw_res.is_empty() {
            return Err(JobspecError::new("resources", "must not be empty"));
        }
        let resources = raw_res
            .into_iter()
            .enumerate()
            .map(|(i, r)| convert(r, &format!("resources[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let duration = match raw
            .attributes
            .and_then(|a| a.system)
            .and_then(|s| s.duration)
        {
            None => 0,
            Some(d) if d.is_finite() && d >= 0.0 => d as u64,
            Some(_) => {
                return Err(JobspecError::new(
                    "attributes.system.duration",
                    "must be a number >= 0",
                ));
            }
        };
        let tasks = raw
            .tasks
            .into_iter()
            .map(|t| Task {
                command: t.command,
                slot: t.slot.unwrap_or_default(),
                per_slot: t.count.as_ref().and_then(|c| c.per_slot),
                total: t.count.as_ref().and_then(|c| c.total),
            })
            .collect();
        Ok(Jobspec {
            version,
            resources,
            tasks,
            duration,
        })
    }
}

fn convert(r: RawResource, path: &str) -> Result<Resource, JobspecError> {
    let kind = r
        .kind
        .ok_or_else(|| JobspecError::new(format!("{path}.type"), "missing"))?;
    if kind.is_empty() {
        return Err(JobspecError::new(
            format!("{path}.type"),
            "must not be empty",
        ));
    }
    let cpath = format!("{path}.count");
    let count = match r.count {
        None => return Err(JobspecError::new(cpath, "missing")),
        Some(RawCount::Int(n)) => {
            if n < 1 {
                return Err(JobspecError::new(cpath, "must be >= 1"));
            }
            Count::exact(n as u64)
        }
        Some(RawCount::Range {
            min,
            max,
            operator,
            operand,
        }) => {
            if min < 1 {
                return Err(JobspecError::new(format!("{cpath}.min"), "must be >= 1"));
            }
            let max = match max {
                None => u64::MAX,
                Some(m) if m < min => {
                    return Err(JobspecError::new(format!("{cpath}.max"), "must be >= min"));
                }
                Some(m) => m as u64,
            };
            let op = match operator.as_deref() {
                None | Some("+") => CountOp::Add,
                Some("*") => CountOp::Mul,
                Some("^") => CountOp::Pow,
                Some(_) => {
                    return Err(JobspecError::new(
                        format!("{cpath}.operator"),
                        "must be one of +, *, ^",
                    ));
                }
            };
            let operand = operand.unwrap_or(1);
            let bad = match op {
                CountOp::Add => operand < 1,
                CountOp::Mul | CountOp::Pow => operand < 2,
            };
            if bad && max as i128 > min as i128 {
                return Err(JobspecError::new(
                    format!("{cpath}.operand"),
                    "must be >= 1 for + and >= 2 for * and ^",
                ));
            }
            Count {
                min: min as u64,
                max,
                op,
                operand: operand.max(1) as u64,
            }
        }
    };
    let slot = kind == "slot" || kind == XOR_SLOT;
    if slot && r.label.as_deref().is_none_or(str::is_empty) {
        return Err(JobspecError::new(
            format!("{path}.label"),
            "a slot needs a label",
        ));
    }
    let with = r
        .with
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, c)| convert(c, &format!("{path}.with[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    if slot && with.is_empty() {
        return Err(JobspecError::new(
            format!("{path}.with"),
            "a slot must contain resources",
        ));
    }
    Ok(Resource {
        kind,
        count,
        with,
        exclusive: r.exclusive,
        label: r.label,
        unit: r.unit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "
version: 9999
resources:
  - type: node
    count: 2
    with:
      - type: slot
        label: default
        count: 1
        with:
          - type: core
            count: {min: 2, max: 8, operator: '*', operand: 2}
attributes:
  system:
    duration: 60
tasks:
  - command: [app]
    slot: default
    count: {per_slot: 1}
";

    #[test]
    fn parses_yaml_and_json() {
        let j = Jobspec::parse(GOOD).unwrap();
        assert_eq!(j.duration, 60);
        let core = &j.resources[0].with[0].with[0];
        assert_eq!(core.count.best_within(7), Some(4));
        assert_eq!(core.count.best_within(100), Some(8));
        assert_eq!(core.count.best_within(1), None);
        let json = r#"{"version": 1, "resources": [{"type": "core", "count": 1}], "tasks": []}"#;
        assert_eq!(Jobspec::parse(json).unwrap().resources[0].kind, "core");
    }

    #[test]
    fn errors_name_the_path() {
        let bad = GOOD.replace("count: 1\n        with", "count: 0\n        with");
        let e = Jobspec::parse(&bad).unwrap_err();
        assert_eq!(e.to_string(), "resources[0].with[0].count: must be >= 1");
        let e = Jobspec::parse("version: 2\nresources: []").unwrap_err();
        assert_eq!(e.path, "version");
        let e =
            Jobspec::parse("version: 1\nresources:\n  - type: core\n    count: x\n").unwrap_err();
        assert!(e.path.starts_with("resources[0]"), "{e}");
        let e = Jobspec::parse("version: 1\nresources:\n  - type: slot\n    count: 1\n    with: [{type: core, count: 1}]\n").unwrap_err();
        assert_eq!(e.path, "resources[0].label");
    }
}
