//! Reader for RFC 20 R (version 1, `execution` only): ranks, their cores and
//! GPUs, and the node list. Builds `cluster0 -> node -> {core, gpu}`.

use serde_json::Value;

use std::collections::HashMap;

use super::IoError;
use crate::graph::{GraphLimits, ResourceGraph, VertexSpec};

fn err(msg: impl Into<String>) -> IoError {
    IoError::Rv1(msg.into())
}

/// Most ids one idset (or hostlist) may expand to: an R or a command
/// naming more is refused before anything is allocated for it.
pub const MAX_IDSET_IDS: u64 = 1_000_000;

/// Errors reading an RFC 22 idset or a hostlist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdsetError {
    /// A part is neither an id nor a range.
    #[error("'{0}' is not an id or a range of ids (like 0-3,7)")]
    Syntax(String),
    /// A range ends before it starts.
    #[error("range '{0}' ends before it starts")]
    Reversed(String),
    /// The set is larger than the limit.
    #[error("expands to {count} ids, more than the limit of {limit} (MAX_IDSET_IDS)")]
    TooMany {
        /// Ids the set names (saturated at `u64::MAX`).
        count: u64,
        /// The limit.
        limit: u64,
    },
    /// A hostlist's brackets do not pair up.
    #[error("'{0}': unbalanced brackets")]
    Brackets(String),
}

/// The parts of an idset, each a range `(first, last)`.
fn idset_ranges(s: &str) -> impl Iterator<Item = Result<(i64, i64), IdsetError>> + '_ {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|part| {
            let syntax = || IdsetError::Syntax(part.chars().take(40).collect());
            let num = |x: &str| x.trim().parse::<i64>().map_err(|_| syntax());
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (num(a)?, num(b)?);
                    if b < a {
                        return Err(IdsetError::Reversed(part.to_string()));
                    }
                    Ok((a, b))
                }
                None => {
                    let n = num(part)?;
                    Ok((n, n))
                }
            }
        })
}

/// How many ids an idset (`0-3,7`) names, without expanding it.
pub fn count_idset(s: &str) -> Result<u64, IdsetError> {
    let mut count: u64 = 0;
    for r in idset_ranges(s) {
        let (a, b) = r?;
        // b >= a, so the difference fits in u64.
        let n = (b.abs_diff(a)).saturating_add(1);
        count = count.saturating_add(n);
    }
    Ok(count)
}

/// Expands an RFC 22 idset (`0-3,7`) of at most `limit` ids; the count is
/// checked before anything is allocated.
pub fn expand_idset(s: &str, limit: u64) -> Result<Vec<i64>, IdsetError> {
    let count = count_idset(s)?;
    if count > limit {
        return Err(IdsetError::TooMany { count, limit });
    }
    let mut out = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    for r in idset_ranges(s) {
        let (a, b) = r?;
        out.extend(a..=b);
    }
    Ok(out)
}

/// Splits a hostlist at its top-level commas (`a[1-2],b` -> `a[1-2]`, `b`).
fn hostlist_items(s: &str) -> Result<Vec<&str>, IdsetError> {
    let mut items = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if !(0..=1).contains(&depth) {
            return Err(IdsetError::Brackets(s.chars().take(40).collect()));
        }
    }
    if depth != 0 {
        return Err(IdsetError::Brackets(s.chars().take(40).collect()));
    }
    items.push(&s[start..]);
    Ok(items.into_iter().filter(|i| !i.is_empty()).collect())
}

/// Expands a hostlist (`node[0-2,5],login1`) into at most `limit` names,
/// in order; the count is checked before anything is allocated.
pub fn expand_hostlist(s: &str, limit: u64) -> Result<Vec<String>, IdsetError> {
    let items = hostlist_items(s)?;
    let mut count: u64 = 0;
    for item in &items {
        count = count.saturating_add(match item.split_once('[') {
            None => 1,
            Some((_, tail)) => {
                let inner = tail
                    .strip_suffix(']')
                    .ok_or_else(|| IdsetError::Brackets(item.chars().take(40).collect()))?;
                count_idset(inner)?
            }
        });
    }
    if count > limit {
        return Err(IdsetError::TooMany { count, limit });
    }
    let mut out = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    for item in items {
        match item.split_once('[') {
            None => out.push(item.to_string()),
            Some((prefix, tail)) => {
                let inner = tail.strip_suffix(']').unwrap_or(tail);
                for n in expand_idset(inner, limit)? {
                    out.push(format!("{prefix}{n}"));
                }
            }
        }
    }
    Ok(out)
}

/// Ids of one child type of a rank (`core`, `0-3`).
type TypedIds = (String, Vec<i64>);

/// Reads R version 1 into a graph, within the default [`GraphLimits`].
pub fn read_rv1exec(text: &str) -> Result<ResourceGraph, IoError> {
    read_rv1exec_with(text, GraphLimits::default())
}

/// Reads R version 1 into a graph with these limits: the vertices the R
/// names are counted before any is made.
pub fn read_rv1exec_with(text: &str, limits: GraphLimits) -> Result<ResourceGraph, IoError> {
    let v: Value = serde_json::from_str(text).map_err(|e| err(format!("invalid JSON: {e}")))?;
    let rlite = v
        .pointer("/execution/R_lite")
        .and_then(Value::as_array)
        .ok_or_else(|| err("execution.R_lite: missing or not an array"))?;
    let mut names = Vec::new();
    if let Some(list) = v.pointer("/execution/nodelist").and_then(Value::as_array) {
        for (i, h) in list.iter().enumerate() {
            let h = h
                .as_str()
                .ok_or_else(|| err(format!("execution.nodelist[{i}]: not a string")))?;
            let room = MAX_IDSET_IDS.saturating_sub(names.len() as u64);
            names.extend(
                expand_hostlist(h, room)
                    .map_err(|e| err(format!("execution.nodelist[{i}]: {e}")))?,
            );
        }
    }
    // A host name may repeat (Fluxion's own test R lists `node` twice):
    // in R a node is known by its rank, which must not.
    // The ids are counted first: an 80-byte R can name billions.
    let mut total: u64 = 1;
    let mut ranks: Vec<(i64, usize)> = Vec::new();
    let mut entries: Vec<Vec<TypedIds>> = Vec::new();
    let mut rank_of: HashMap<i64, usize> = HashMap::new();
    for (i, e) in rlite.iter().enumerate() {
        let field = format!("execution.R_lite[{i}]");
        let r = e
            .get("rank")
            .and_then(Value::as_str)
            .ok_or_else(|| err(format!("{field}.rank: expected an idset string")))?;
        let rank_count = count_idset(r).map_err(|x| err(format!("{field}.rank: {x}")))?;
        let kids = e
            .get("children")
            .and_then(Value::as_object)
            .ok_or_else(|| err(format!("{field}.children: expected an object")))?;
        let mut per_rank: u64 = 1;
        for (t, ids) in kids {
            let ids = ids
                .as_str()
                .ok_or_else(|| err(format!("{field}.children.{t}: expected an idset string")))?;
            let n = count_idset(ids).map_err(|x| err(format!("{field}.children.{t}: {x}")))?;
            per_rank = per_rank.saturating_add(n);
        }
        total = total.saturating_add(rank_count.saturating_mul(per_rank));
        limits
            .check_room(0, total)
            .map_err(|x| err(format!("{field}: {x}")))?;
        let mut typed = Vec::new();
        for (t, ids) in kids {
            let ids = expand_idset(ids.as_str().unwrap_or_default(), MAX_IDSET_IDS)
                .map_err(|x| err(format!("{field}.children.{t}: {x}")))?;
            typed.push((t.clone(), ids));
        }
        // Cores before GPUs before anything else, as Fluxion lays them out.
        typed.sort_by_key(|(t, _)| match t.as_str() {
            "core" => 0,
            "gpu" => 1,
            _ => 2,
        });
        for rank in expand_idset(r, MAX_IDSET_IDS).map_err(|x| err(format!("{field}.rank: {x}")))? {
            if let Some(other) = rank_of.insert(rank, i) {
                return Err(err(format!(
                    "{field}.rank: rank {rank} is also in execution.R_lite[{other}]"
                )));
            }
            ranks.push((rank, entries.len()));
        }
        entries.push(typed);
    }
    ranks.sort_by_key(|(r, _)| *r);
    let mut g = ResourceGraph::with_limits(limits);
    let root = g.add_vertex(VertexSpec::new("cluster", "cluster", 0), None)?;
    for (i, &(rank, entry)) in ranks.iter().enumerate() {
        let name = names
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("node{rank}"));
        let (base, id) = split_host_name(&name).ok_or_else(|| {
            err(format!(
                "execution.nodelist: host name '{name}' ends in a number larger than {}",
                i64::MAX
            ))
        })?;
        let mut spec = VertexSpec::new("node", base, id);
        spec.name = name.clone();
        spec.rank = rank;
        let node = g.add_vertex(spec, Some(root))?;
        for (t, ids) in &entries[entry] {
            for &id in ids {
                let mut s = VertexSpec::new(t, t, id);
                s.rank = rank;
                g.add_vertex(s, Some(node))?;
            }
        }
    }
    Ok(g)
}

/// A host name's basename and id, the way Fluxion's readers split it: the
/// id is the number the name ends in (-1 if none), the basename what comes
/// before it, or the whole name when it is all digits. `None` when the
/// number does not fit an i64: Fluxion refuses such a graph.
fn split_host_name(name: &str) -> Option<(&str, i64)> {
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 {
        return Some((name, -1));
    }
    let (base, num) = name.split_at(name.len() - digits);
    let base = if base.is_empty() { name } else { base };
    let id = match num.trim_start_matches('0') {
        "" => 0,
        n => n.parse().ok()?,
    };
    Some((base, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_split_into_basename_and_id_like_fluxion() {
        assert_eq!(split_host_name("fluke082"), Some(("fluke", 82)));
        assert_eq!(split_host_name("login"), Some(("login", -1)));
        assert_eq!(split_host_name("n000"), Some(("n", 0)));
        assert_eq!(split_host_name("1234"), Some(("1234", 1234)));
        assert_eq!(
            split_host_name("fluke9223372036854775807"),
            Some(("fluke", i64::MAX))
        );
        assert_eq!(split_host_name("fluke9223372036854775808"), None);
        let r = r#"{"version": 1, "execution": {"R_lite": [{"rank": "0", "children": {"core": "0"}}],
            "nodelist": ["fluke9223372036854775808"], "starttime": 0, "expiration": 0}}"#;
        let e = read_rv1exec(r).unwrap_err().to_string();
        assert!(
            e.contains("execution.nodelist") && e.contains("fluke9223372036854775808"),
            "{e}"
        );
    }

    #[test]
    fn builds_nodes_with_cores_and_gpus() {
        let r = r#"{"version": 1, "execution": {"R_lite": [{"rank": "0-1", "children": {"gpu": "0", "core": "0-3"}}], "nodelist": ["n[7-8]"]}}"#;
        let g = read_rv1exec(r).unwrap();
        let n8 = g.find_path("/cluster0/n8").unwrap();
        assert_eq!(g.vertex(n8).unwrap().rank, 1);
        assert_eq!(g.children(n8).len(), 5);
        assert_eq!(g.path(g.children(n8)[4]), "/cluster0/n8/gpu0");
        assert!(read_rv1exec("{}").is_err());
        assert_eq!(expand_hostlist("a[1-2],b", 10).unwrap(), ["a1", "a2", "b"]);
    }
}
