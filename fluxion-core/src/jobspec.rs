//! Fluxion jobspec V1 (YAML or JSON; `version: 1` or `9999`).
//!
//! Parsing is two-step: serde into a raw tree (errors name the path through
//! `serde_path_to_error`), then validation that names the path of the
//! offending field, e.g. `resources[0].with[1].count: must be >= 1`.

use serde::Deserialize;

mod prescan;
mod raw_count;
mod variants;

use raw_count::{RawCount, Scalar};

pub use prescan::{MAX_FLOW_NESTING, MAX_JOBSPEC_BYTES};

/// Deepest nesting of resources (`with` inside `with`) a jobspec may have.
pub const MAX_RESOURCE_DEPTH: usize = 32;

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
#[error("{}{message}", if path == "." { String::new() } else { format!("{path}: ") })]
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
    /// Read by hand ([`parse_count`]), so that an error names the field
    /// and the allowed range.
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
    /// Parses a jobspec from bytes, which must be UTF-8 YAML or JSON.
    pub fn parse_bytes(bytes: &[u8]) -> Result<Jobspec, JobspecError> {
        Self::parse(Self::text(bytes)?)
    }

    /// The text of a jobspec file's bytes: at most [`MAX_JOBSPEC_BYTES`]
    /// of UTF-8 (errors say which).
    pub fn text(bytes: &[u8]) -> Result<&str, JobspecError> {
        if bytes.len() > MAX_JOBSPEC_BYTES {
            return Err(prescan::too_big(bytes.len()));
        }
        std::str::from_utf8(bytes).map_err(|e| {
            JobspecError::new(
                ".",
                format!(
                    "not UTF-8 text (invalid byte at offset {}); a jobspec is YAML or JSON",
                    e.valid_up_to()
                ),
            )
        })
    }

    /// Parses a jobspec from YAML or JSON text. Its size and the nesting of
    /// its flow collections (`[...]`, `{...}`) are checked first, by a scan
    /// linear in the text: the YAML scanner is quadratic in that nesting.
    pub fn parse(text: &str) -> Result<Jobspec, JobspecError> {
        prescan::check(text)?;
        let de = serde_yaml_ng::Deserializer::from_str(text);
        let raw: RawJobspec = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            // serde_yaml_ng starts with the path too: say it once. It also
            // appends " at line L column C"; keep that, it helps.
            let inner = inner
                .strip_prefix(&format!("{path}: "))
                .map(str::to_string)
                .unwrap_or(inner);
            JobspecError::new(if path.is_empty() { ".".into() } else { path }, inner)
        })?;
        Self::validate(raw)
    }

    /// The `type` of every resource in a jobspec's text, parents before
    /// their children in document order, read without checking anything
    /// else (`None` when the text is not a jobspec's shape at all). Fluxion
    /// rejects a resource type it does not know before it checks anything
    /// else about the resource, so a caller with its own list of known
    /// types can report that first.
    pub fn resource_types(text: &str) -> Option<Vec<String>> {
        prescan::check(text).ok()?;
        let raw: RawJobspec = serde_yaml_ng::from_str(text).ok()?;
        let mut out = Vec::new();
        // Depth is bounded by the prescan's nesting check and by the
        // deserializer's own recursion limit.
        let mut stack: Vec<&RawResource> = raw.resources.iter().flatten().rev().collect();
        while let Some(r) = stack.pop() {
            out.extend(r.kind.iter().cloned());
            stack.extend(r.with.iter().flatten().rev());
        }
        Some(out)
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
            .map(|(i, r)| convert(r, &format!("resources[{i}]"), 1))
            .collect::<Result<Vec<_>, _>>()?;
        if !resources.iter().any(has_slot) {
            return Err(JobspecError::new(
                "resources",
                "no slot: a jobspec asks for its resources inside a `slot` (with a label its tasks name)",
            ));
        }
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

/// Whether `r` or a resource below it is a slot (walked without recursion).
fn has_slot(r: &Resource) -> bool {
    let mut stack = vec![r];
    while let Some(x) = stack.pop() {
        if x.is_slot() {
            return true;
        }
        stack.extend(&x.with);
    }
    false
}

/// A whole number from 1 to `i64::MAX` (`path` names the field): a count
/// of 2^64 or -1 says what is allowed.
fn whole(v: &Scalar, path: &str) -> Result<u64, JobspecError> {
    match v {
        Scalar::Int(i) if (1..=i128::from(i64::MAX)).contains(i) => Ok(*i as u64),
        other => Err(JobspecError::new(
            path,
            format!(
                "must be a whole number from 1 to {}, got {}",
                i64::MAX,
                other.describe()
            ),
        )),
    }
}

/// Reads a resource's `count`: a number, or `{min, max, operator, operand}`.
fn parse_count(v: &RawCount, cpath: &str) -> Result<Count, JobspecError> {
    let map = match v {
        RawCount::Map(m) => m,
        RawCount::Scalar(Scalar::Other(what)) => {
            return Err(JobspecError::new(
                cpath,
                format!(
                    "must be a number or a mapping {{min, max, operator, operand}}, got {what}"
                ),
            ));
        }
        RawCount::Scalar(x) => return Ok(Count::exact(whole(x, cpath)?)),
    };
    let mut min = None;
    let mut max = None;
    let mut operator = None;
    let mut operand = None;
    for (key, val) in map {
        let field = format!("{cpath}.{key}");
        match key.as_str() {
            "min" => min = Some(whole(val, &field)?),
            "max" => max = Some(whole(val, &field)?),
            "operand" => operand = Some(whole(val, &field)?),
            "operator" => match val {
                Scalar::Str(o) => operator = Some(o.clone()),
                _ => return Err(JobspecError::new(field, "must be one of +, *, ^")),
            },
            _ => {
                return Err(JobspecError::new(
                    cpath,
                    format!("unknown field {key:?}; expected min, max, operator or operand"),
                ));
            }
        }
    }
    let min = min.ok_or_else(|| JobspecError::new(format!("{cpath}.min"), "missing"))?;
    let max = match max {
        None => u64::MAX,
        Some(m) if m < min => {
            return Err(JobspecError::new(format!("{cpath}.max"), "must be >= min"));
        }
        Some(m) => m,
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
    if bad && max > min {
        return Err(JobspecError::new(
            format!("{cpath}.operand"),
            "must be >= 1 for + and >= 2 for * and ^",
        ));
    }
    Ok(Count {
        min,
        max,
        op,
        operand,
    })
}

fn convert(r: RawResource, path: &str, depth: usize) -> Result<Resource, JobspecError> {
    if depth > MAX_RESOURCE_DEPTH {
        return Err(JobspecError::new(
            path,
            format!("resources nest deeper than the limit of {MAX_RESOURCE_DEPTH} levels"),
        ));
    }
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
    let count = match &r.count {
        None => return Err(JobspecError::new(cpath, "missing")),
        Some(v) => parse_count(v, &cpath)?,
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
        .map(|(i, c)| convert(c, &format!("{path}.with[{i}]"), depth + 1))
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

    #[test]
    fn resource_types_lists_parents_before_children_even_when_invalid() {
        let text = "version: 9999\nresources:\n  - type: node\n    count: 0\n    with:\n      - type: socket\n        count: 1\n        with:\n          - type: widget\n            count: 1\n  - type: rack\n    count: 1\n";
        assert!(Jobspec::parse(text).is_err());
        assert_eq!(
            Jobspec::resource_types(text).unwrap(),
            ["node", "socket", "widget", "rack"]
        );
        assert_eq!(Jobspec::resource_types("[1, 2"), None);
    }

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
        let json = r#"{"version": 1, "resources": [{"type": "slot", "label": "s", "count": 1, "with": [{"type": "core", "count": 1}]}], "tasks": []}"#;
        assert_eq!(
            Jobspec::parse(json).unwrap().resources[0].with[0].kind,
            "core"
        );
    }

    #[test]
    fn errors_name_the_path() {
        let bad = GOOD.replace("count: 1\n        with", "count: 0\n        with");
        let e = Jobspec::parse(&bad).unwrap_err();
        assert_eq!(
            e.to_string(),
            "resources[0].with[0].count: must be a whole number from 1 to 9223372036854775807, got 0"
        );
        let e = Jobspec::parse("version: 2\nresources: []").unwrap_err();
        assert_eq!(e.path, "version");
        let e =
            Jobspec::parse("version: 1\nresources:\n  - type: core\n    count: x\n").unwrap_err();
        assert!(e.path.starts_with("resources[0]"), "{e}");
        let e = Jobspec::parse("version: 1\nresources:\n  - type: slot\n    count: 1\n    with: [{type: core, count: 1}]\n").unwrap_err();
        assert_eq!(e.path, "resources[0].label");
    }

    #[test]
    fn counts_at_the_limits_say_which_field_and_what_is_allowed() {
        for (count, path, got) in [
            (
                "18446744073709551616",
                "resources[0].with[0].count",
                "got 18446744073709551616",
            ),
            ("-1", "resources[0].with[0].count", "got -1"),
            ("1.5", "resources[0].with[0].count", "got 1.5"),
            ("'3'", "resources[0].with[0].count", "got the string \"3\""),
            (
                "{min: 1, max: 18446744073709551615}",
                "resources[0].with[0].count.max",
                "got 18446744073709551615",
            ),
            ("{min: 0}", "resources[0].with[0].count.min", "got 0"),
            (
                "{min: 2, operand: 9223372036854775808, max: 4}",
                "resources[0].with[0].count.operand",
                "got",
            ),
        ] {
            let text = GOOD.replace(
                "count: 1\n        with",
                &format!("count: {count}\n        with"),
            );
            let e = Jobspec::parse(&text).unwrap_err();
            assert_eq!(e.path, path, "{count}: {e}");
            assert!(e.message.contains(got), "{count}: {e}");
            assert!(
                e.message.contains("from 1 to 9223372036854775807"),
                "{count}: {e}"
            );
        }
        let e = Jobspec::parse(&GOOD.replace("count: 1\n        with", "count: [1]\n        with"))
            .unwrap_err();
        assert!(e.message.contains("must be a number or a mapping"), "{e}");
        let e = Jobspec::parse(&GOOD.replace(
            "count: 1\n        with",
            "count: {min: 1, step: 2}\n        with",
        ))
        .unwrap_err();
        assert!(e.message.contains("unknown field \"step\""), "{e}");
        let max = GOOD.replace(
            "count: 1\n        with",
            "count: 9223372036854775807\n        with",
        );
        assert_eq!(
            Jobspec::parse(&max).unwrap().resources[0].with[0].count.min,
            i64::MAX as u64
        );
    }

    #[test]
    fn a_jobspec_without_a_slot_is_refused() {
        let e = Jobspec::parse("version: 1\nresources:\n  - type: node\n    count: 1\n    with:\n      - type: core\n        count: 1\ntasks: []\n").unwrap_err();
        assert_eq!(e.path, "resources");
        assert!(e.message.starts_with("no slot"), "{e}");
    }

    #[test]
    fn size_nesting_and_encoding_are_checked_before_parsing() {
        let e = Jobspec::parse_bytes(b"version: 1\nresources: \xff\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "not UTF-8 text (invalid byte at offset 22); a jobspec is YAML or JSON"
        );
        // 200 KB of nested flow lists: refused by the scan, at once.
        let deep = format!(
            "version: 1\nresources: {}{}\n",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let e = Jobspec::parse(&deep).unwrap_err();
        assert!(e.message.contains("MAX_FLOW_NESTING"), "{e}");
        let wide = format!(
            "version: 1\nresources: {}{}\n",
            "{a: ".repeat(100_000),
            "}".repeat(100_000)
        );
        assert!(
            Jobspec::parse(&wide)
                .unwrap_err()
                .message
                .contains("MAX_FLOW_NESTING")
        );
        let big = format!("{GOOD}#{}\n", "x".repeat(MAX_JOBSPEC_BYTES));
        assert!(
            Jobspec::parse(&big)
                .unwrap_err()
                .message
                .contains("MAX_JOBSPEC_BYTES")
        );
        // Nested resources in block style, past the limit.
        let mut text = String::from("version: 1\nresources:\n");
        for i in 0..MAX_RESOURCE_DEPTH + 1 {
            let pad = "  ".repeat(2 * i);
            text.push_str(&format!(
                "{pad}  - type: slot\n{pad}    label: s{i}\n{pad}    count: 1\n{pad}    with:\n"
            ));
        }
        let pad = "  ".repeat(2 * (MAX_RESOURCE_DEPTH + 1));
        text.push_str(&format!("{pad}  - type: core\n{pad}    count: 1\n"));
        let e = Jobspec::parse(&text).unwrap_err();
        assert!(
            e.message.contains("deeper than the limit") || e.message.contains("recursion limit"),
            "{e}"
        );
    }

    #[test]
    fn aliases_cannot_blow_up() {
        // A "billion laughs": each level repeats the one before ten times.
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            text.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
        }
        text.push_str("version: 1\nresources: *a9\n");
        assert!(Jobspec::parse(&text).is_err());
    }
}
