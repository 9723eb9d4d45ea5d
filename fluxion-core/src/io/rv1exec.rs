//! Reader for RFC 20 R (version 1, `execution` only): ranks, their cores and
//! GPUs, and the node list. Builds `cluster0 -> node -> {core, gpu}`.

use serde_json::Value;

use super::IoError;
use crate::graph::{ResourceGraph, VertexSpec};

fn err(msg: impl Into<String>) -> IoError {
    IoError::Rv1(msg.into())
}

/// Expands an RFC 22 idset (`0-3,7`).
pub fn expand_idset(s: &str) -> Option<Vec<i64>> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (i64, i64) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                if b < a || b - a > 10_000_000 {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

/// Expands a hostlist (`node[0-2,5],login1`) into names, in order.
pub fn expand_hostlist(s: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        // Split at the first comma outside brackets.
        let mut depth = 0;
        let mut cut = rest.len();
        for (i, c) in rest.char_indices() {
            match c {
                '[' => depth += 1,
                ']' => depth -= 1,
                ',' if depth == 0 => {
                    cut = i;
                    break;
                }
                _ => {}
            }
        }
        let item = &rest[..cut];
        rest = rest.get(cut + 1..).unwrap_or("");
        match item.split_once('[') {
            None => out.push(item.to_string()),
            Some((prefix, tail)) => {
                let inner = tail.strip_suffix(']')?;
                for n in expand_idset(inner)? {
                    out.push(format!("{prefix}{n}"));
                }
            }
        }
    }
    Some(out)
}

/// Ids of one child type of a rank (`core`, `0-3`).
type TypedIds = (String, Vec<i64>);

/// Reads R version 1 into a graph.
pub fn read_rv1exec(text: &str) -> Result<ResourceGraph, IoError> {
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
            names.extend(
                expand_hostlist(h)
                    .ok_or_else(|| err(format!("execution.nodelist[{i}]: bad hostlist")))?,
            );
        }
    }
    let mut ranks: Vec<(i64, Vec<TypedIds>)> = Vec::new();
    for (i, e) in rlite.iter().enumerate() {
        let r = e
            .get("rank")
            .and_then(Value::as_str)
            .and_then(expand_idset)
            .ok_or_else(|| {
                err(format!(
                    "execution.R_lite[{i}].rank: expected an idset string"
                ))
            })?;
        let kids = e
            .get("children")
            .and_then(Value::as_object)
            .ok_or_else(|| {
                err(format!(
                    "execution.R_lite[{i}].children: expected an object"
                ))
            })?;
        let mut typed = Vec::new();
        for (t, ids) in kids {
            let ids = ids.as_str().and_then(expand_idset).ok_or_else(|| {
                err(format!(
                    "execution.R_lite[{i}].children.{t}: expected an idset string"
                ))
            })?;
            typed.push((t.clone(), ids));
        }
        // Cores before GPUs before anything else, as Fluxion lays them out.
        typed.sort_by_key(|(t, _)| match t.as_str() {
            "core" => 0,
            "gpu" => 1,
            _ => 2,
        });
        for rank in r {
            ranks.push((rank, typed.clone()));
        }
    }
    ranks.sort_by_key(|(r, _)| *r);
    let mut g = ResourceGraph::new();
    let root = g.add_vertex(VertexSpec::new("cluster", "cluster", 0), None)?;
    for (i, (rank, kids)) in ranks.iter().enumerate() {
        let name = names
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("node{rank}"));
        let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        let (base, num) = name.split_at(name.len() - digits);
        let mut spec = VertexSpec::new("node", base, num.parse().unwrap_or(-1));
        spec.name = name.clone();
        spec.rank = *rank;
        let node = g.add_vertex(spec, Some(root))?;
        for (t, ids) in kids {
            for &id in ids {
                let mut s = VertexSpec::new(t, t, id);
                s.rank = *rank;
                g.add_vertex(s, Some(node))?;
            }
        }
    }
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_nodes_with_cores_and_gpus() {
        let r = r#"{"version": 1, "execution": {"R_lite": [{"rank": "0-1", "children": {"gpu": "0", "core": "0-3"}}], "nodelist": ["n[7-8]"]}}"#;
        let g = read_rv1exec(r).unwrap();
        let n8 = g.find_path("/cluster0/n8").unwrap();
        assert_eq!(g.vertex(n8).unwrap().rank, 1);
        assert_eq!(g.children(n8).len(), 5);
        assert_eq!(g.path(g.children(n8)[4]), "/cluster0/n8/gpu0");
        assert!(read_rv1exec("{}").is_err());
        assert_eq!(expand_hostlist("a[1-2],b").unwrap(), ["a1", "a2", "b"]);
    }
}
