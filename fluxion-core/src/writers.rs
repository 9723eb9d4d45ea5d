//! Match writers: the text resource-query prints for a match (`-F`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::str::FromStr;
use std::sync::Arc;

use crate::graph::{ResourceGraph, Vertex, VertexId};
use crate::matcher::Emit;
use crate::planner::Time;

/// Output format of a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Format {
    /// One line per vertex, leaves first: `      ------node1[1:s]`.
    #[default]
    Simple,
    /// One line per vertex, root first: `      ---node1[1:shared]`.
    PrettySimple,
    /// JSON Graph Format of the matched subgraph.
    Jgf,
    /// RFC 20 R version 1 without the scheduling key.
    Rv1NoSched,
}

/// An unknown writer name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown match format '{0}'")]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "simple" => Format::Simple,
            "pretty_simple" => Format::PrettySimple,
            "jgf" => Format::Jgf,
            "rv1_nosched" | "rv1" => Format::Rv1NoSched,
            _ => return Err(UnknownFormat(s.to_string())),
        })
    }
}

/// Appends one vertex line: indentation for `depth`, the name and the
/// amount, as resource-query prints it.
fn push_line(out: &mut String, depth: usize, x: &Vertex, needs: u64, how: &str) {
    push_indent(out, depth);
    x.write_name(out);
    match (needs, how) {
        (1, "x") => out.push_str("[1:x]\n"),
        (1, "s") => out.push_str("[1:s]\n"),
        _ => {
            let _ = writeln!(out, "[{needs}:{how}]");
        }
    }
}

/// Extra per-vertex data for the JGF writer (e.g. `find agfilter=t` counts).
pub type VertexExtra<'a> = &'a dyn Fn(VertexId) -> Option<String>;

/// Renders `emitted` (post-order, as returned by the matcher) in `format`.
/// `at` and `duration` feed the R writer's times.
pub fn render(
    g: &ResourceGraph,
    emitted: &[Emit],
    format: Format,
    at: Time,
    duration: u64,
    extra: Option<VertexExtra<'_>>,
) -> String {
    let mut out = String::new();
    render_into(&mut out, g, emitted, format, at, duration, extra);
    out
}

/// Like [`render`], appending to `out`: a caller printing many matches
/// keeps one buffer, whose pages stay mapped from one match to the next.
pub fn render_into(
    out: &mut String,
    g: &ResourceGraph,
    emitted: &[Emit],
    format: Format,
    at: Time,
    duration: u64,
    extra: Option<VertexExtra<'_>>,
) {
    match format {
        Format::Simple => simple(out, g, emitted),
        Format::PrettySimple => pretty_simple(out, g, emitted),
        Format::Jgf => out.push_str(&jgf(g, emitted, extra)),
        Format::Rv1NoSched => out.push_str(&rv1(g, emitted, at, duration)),
    }
}

/// Depth of each emitted vertex on the path the match took, for a graph
/// with associations (where a vertex's tree depth may not be it).
/// `emitted` is in post-order with every ancestor present: read backwards,
/// each vertex follows its parent or a later sibling's subtree, so a
/// stack of the open ancestors finds its parent (tree parent or the
/// association that holds it).
fn match_depths(g: &ResourceGraph, emitted: &[Emit]) -> Vec<usize> {
    let mut depths = vec![0; emitted.len()];
    let mut open: Vec<VertexId> = Vec::new();
    for (i, e) in emitted.iter().enumerate().rev() {
        let v = e.vertex;
        while let Some(&p) = open.last() {
            if g.parent(v) == Some(p) || g.associated_children(p).contains(&v) {
                break;
            }
            open.pop();
        }
        depths[i] = if open.is_empty() {
            g.depth(v)
        } else {
            open.len()
        };
        open.push(v);
    }
    depths
}

fn simple(out: &mut String, g: &ResourceGraph, emitted: &[Emit]) {
    out.reserve(emitted.len() * 40);
    if g.has_associations() {
        for (e, depth) in emitted.iter().zip(match_depths(g, emitted)) {
            if let Some(x) = g.vertex(e.vertex) {
                push_line(out, depth, x, e.needs, if e.exclusive { "x" } else { "s" });
            }
        }
        return;
    }
    // Siblings come one after another in post-order: their depth is known
    // from the last vertex with the same parent, without climbing.
    let mut last: Option<(Option<VertexId>, usize)> = None;
    let mut start = LineStart::default();
    for e in emitted {
        let Some(x) = g.vertex(e.vertex) else {
            continue;
        };
        let depth = match last {
            Some((p, d)) if p == x.parent() => d,
            _ => g.depth(e.vertex),
        };
        last = Some((x.parent(), depth));
        start.push(out, depth, x);
        push_amount(out, e.needs, e.exclusive);
    }
}

/// The start of a simple line (indentation and basename) for the last
/// depth and basename written. An answer lists runs of siblings of one
/// type (`core0`, `core1`, ...), whose lines differ only from the id on:
/// the start is built once per run.
#[derive(Default)]
struct LineStart {
    depth: usize,
    basename: Option<Arc<str>>,
    text: String,
}

impl LineStart {
    /// Appends `x`'s indentation for `depth` and its name.
    fn push(&mut self, out: &mut String, depth: usize, x: &Vertex) {
        if let Some(name) = x.other_name() {
            push_indent(out, depth);
            out.push_str(name);
            return;
        }
        let same = self.depth == depth
            && self
                .basename
                .as_ref()
                .is_some_and(|b| Arc::ptr_eq(b, &x.basename) || **b == *x.basename);
        if !same {
            self.text.clear();
            push_indent(&mut self.text, depth);
            self.text.push_str(&x.basename);
            self.depth = depth;
            self.basename = Some(Arc::clone(&x.basename));
        }
        out.push_str(&self.text);
        push_digits(out, x.id.unsigned_abs(), x.id < 0);
    }
}

/// Appends six spaces, then three dashes per level (one for the root).
fn push_indent(out: &mut String, depth: usize) {
    // One copy for any depth a real graph has; deeper ones loop.
    const INDENT: &str = "      ------------------------------------------------";
    let mut dashes = 3 * (depth + 1);
    let n = dashes.min(INDENT.len() - 6);
    out.push_str(&INDENT[..6 + n]);
    dashes -= n;
    while dashes > 0 {
        let n = dashes.min(INDENT.len() - 6);
        out.push_str(&INDENT[6..6 + n]);
        dashes -= n;
    }
}

/// Appends `n` in decimal (with a minus sign when `negative`).
fn push_digits(out: &mut String, mut n: u64, negative: bool) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if negative {
        out.push('-');
    }
    // Byte by byte: the digits are ASCII, and a handful of pushes into
    // reserved room is cheaper than checking them as UTF-8 for `push_str`.
    for &b in &buf[i..] {
        out.push(char::from(b));
    }
}

/// Appends a simple line's end: `[needs:x]` or `[needs:s]`, and the newline.
fn push_amount(out: &mut String, needs: u64, exclusive: bool) {
    match (needs, exclusive) {
        (1, true) => out.push_str("[1:x]\n"),
        (1, false) => out.push_str("[1:s]\n"),
        _ => {
            out.push('[');
            push_digits(out, needs, false);
            out.push_str(if exclusive { ":x]\n" } else { ":s]\n" });
        }
    }
}

fn pretty_simple(out: &mut String, g: &ResourceGraph, emitted: &[Emit]) {
    // Rebuild the tree from the post-order list; print root first with the
    // children of each vertex in reverse emission order.
    let pos: BTreeMap<VertexId, usize> = emitted
        .iter()
        .enumerate()
        .map(|(i, e)| (e.vertex, i))
        .collect();
    let mut kids: Vec<Vec<usize>> = vec![Vec::new(); emitted.len()];
    let mut roots = Vec::new();
    for (i, e) in emitted.iter().enumerate() {
        match g.parent(e.vertex).and_then(|p| pos.get(&p)) {
            Some(&p) => kids[p].push(i),
            None => roots.push(i),
        }
    }
    out.reserve(emitted.len() * 48);
    let mut stack: Vec<usize> = roots.into_iter().collect();
    while let Some(i) = stack.pop() {
        let e = &emitted[i];
        if let Some(x) = g.vertex(e.vertex) {
            let how = if e.exclusive { "exclusive" } else { "shared" };
            push_line(out, g.depth(e.vertex), x, e.needs, how);
        }
        // Pushing in order pops the last-emitted child first.
        stack.extend(kids[i].iter().copied());
    }
}

fn json_str(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

fn jgf(g: &ResourceGraph, emitted: &[Emit], extra: Option<VertexExtra<'_>>) -> String {
    let mut nodes = Vec::new();
    let mut edges = Vec::new();
    let set: std::collections::HashSet<VertexId> = emitted.iter().map(|e| e.vertex).collect();
    for e in emitted {
        let Some(x) = g.vertex(e.vertex) else {
            continue;
        };
        let kind = g.type_name(x.kind);
        let mut m = format!("\"type\": {}", json_str(kind));
        if &*x.basename != kind {
            let _ = write!(m, ", \"basename\": {}", json_str(&x.basename));
        }
        let _ = write!(m, ", \"id\": {}, \"rank\": {}", x.id, x.rank);
        if e.exclusive {
            m.push_str(", \"exclusive\": true");
        }
        if e.needs != 1 {
            let _ = write!(m, ", \"size\": {}", e.needs);
        }
        if !x.properties.is_empty() {
            let props: Vec<String> = x
                .properties
                .iter()
                .map(|(k, v)| format!("{}: {}", json_str(k), json_str(v)))
                .collect();
            let _ = write!(m, ", \"properties\": {{{}}}", props.join(", "));
        }
        let _ = write!(
            m,
            ", \"paths\": {{\"containment\": {}}}",
            json_str(&g.path(e.vertex))
        );
        if let Some(s) = extra.and_then(|f| f(e.vertex)) {
            let _ = write!(m, ", {s}");
        }
        nodes.push(format!(
            "{{\"id\": \"{}\", \"metadata\": {{{m}}}}}",
            x.uniq_id
        ));
        if let Some(p) = x
            .parent()
            .filter(|p| set.contains(p))
            .and_then(|p| g.vertex(p))
        {
            edges.push(format!(
                "{{\"source\": \"{}\", \"target\": \"{}\"}}",
                p.uniq_id, x.uniq_id
            ));
        }
    }
    format!(
        "{{\"graph\": {{\"nodes\": [{}], \"edges\": [{}]}}}}\n",
        nodes.join(", "),
        edges.join(", ")
    )
}

/// Compresses sorted ids into an idset string: `0-3,7`.
pub fn idset(ids: &[i64]) -> String {
    let mut v: Vec<i64> = ids.to_vec();
    v.sort_unstable();
    v.dedup();
    let mut out = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            v[i].to_string()
        } else {
            format!("{}-{}", v[i], v[j])
        });
        i = j + 1;
    }
    out.join(",")
}

mod hostlist;
pub use hostlist::hostlist;

fn rv1(g: &ResourceGraph, emitted: &[Emit], at: Time, duration: u64) -> String {
    // Emission is post-order, so a node's cores and GPUs come just before
    // it: they gather until the node arrives, and a node that gathered
    // nothing is not in R. Nodes with identical children share an entry,
    // entries sort by their children's text.
    let mut gathered: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    let mut groups: BTreeMap<String, Vec<(i64, Option<String>)>> = BTreeMap::new();
    let children = |gathered: &mut BTreeMap<&str, Vec<i64>>| {
        let body: Vec<String> = std::mem::take(gathered)
            .iter()
            .map(|(t, ids)| format!("{}: {}", json_str(t), json_str(&idset(ids))))
            .collect();
        body.join(", ")
    };
    let mut last_rank = -1;
    for e in emitted {
        let Some(x) = g.vertex(e.vertex) else {
            continue;
        };
        match g.type_name(x.kind) {
            kind @ ("core" | "gpu") => {
                last_rank = x.rank;
                gathered
                    .entry(if kind == "core" { "core" } else { "gpu" })
                    .or_default()
                    .push(x.id);
            }
            "node" if !gathered.is_empty() => groups
                .entry(children(&mut gathered))
                .or_default()
                .push((x.rank, Some(x.name().into_owned()))),
            _ => {}
        }
    }
    // A graph without nodes (Fluxion would print nothing): its cores and
    // GPUs still make an entry, under their own rank, with no host.
    if !gathered.is_empty() {
        groups
            .entry(children(&mut gathered))
            .or_default()
            .push((last_rank, None));
    }
    let mut hosts: Vec<(i64, String)> = Vec::new();
    let rlite: Vec<String> = groups
        .into_iter()
        .map(|(body, mut members)| {
            members.sort_by_key(|m| m.0);
            let ranks: Vec<i64> = members.iter().map(|m| m.0).collect();
            hosts.extend(members.into_iter().filter_map(|(r, h)| Some((r, h?))));
            format!(
                "{{\"rank\": {}, \"children\": {{{body}}}}}",
                json_str(&idset(&ranks))
            )
        })
        .collect();
    // The nodelist follows rank order (ties keep the entries' order); the
    // names are not re-sorted, so rank 0 on node7 puts node7 first.
    hosts.sort_by_key(|h| h.0);
    let names: Vec<&str> = hosts.iter().map(|h| h.1.as_str()).collect();
    format!(
        "{{\"version\": 1, \"execution\": {{\"R_lite\": [{}], \"nodelist\": [{}], \"starttime\": {}, \"expiration\": {}}}}}\n",
        rlite.join(", "),
        json_str(&hostlist(&names)),
        at,
        at.saturating_add(duration as i64)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vertex_reached_through_an_association_prints_at_that_path_depth() {
        use crate::graph::{CONTAINMENT, VertexSpec};
        let mut g = ResourceGraph::new();
        let mut add = |k: &str, p| g.add_vertex(VertexSpec::new(k, k, 0), p).unwrap();
        let root = add("cluster", None);
        let room = add("room", Some(root));
        let rack = add("rack", Some(room));
        let store = add("store", Some(rack));
        let disk = add("disk", Some(store));
        let tier = add("tier", Some(root));
        g.add_link(CONTAINMENT, tier, store).unwrap();
        let emit = |v| Emit {
            vertex: v,
            needs: 1,
            exclusive: false,
        };
        // Through the tier the store is two levels down, not three.
        let text = render(
            &g,
            &[emit(disk), emit(store), emit(tier), emit(root)],
            Format::Simple,
            0,
            0,
            None,
        );
        let dashes: Vec<usize> = text
            .lines()
            .map(|l| l.trim_start().chars().take_while(|&c| c == '-').count())
            .collect();
        assert_eq!(dashes, [12, 9, 6, 3], "{text}");
    }

    #[test]
    fn simple_lines_indent_three_dashes_per_level_at_any_depth() {
        use crate::graph::VertexSpec;
        let mut g = ResourceGraph::new();
        let mut v = g
            .add_vertex(VertexSpec::new("cluster", "c", 0), None)
            .unwrap();
        let mut chain = vec![v];
        for i in 0..20 {
            v = g
                .add_vertex(VertexSpec::new("box", "box", i), Some(v))
                .unwrap();
            chain.push(v);
        }
        let emit = |v, needs, exclusive| Emit {
            vertex: v,
            needs,
            exclusive,
        };
        let text = render(
            &g,
            &[emit(chain[20], 1, true), emit(chain[3], 7, false)],
            Format::Simple,
            0,
            0,
            None,
        );
        let want = format!(
            "      {}box19[1:x]\n      {}box2[7:s]\n",
            "-".repeat(3 * 21),
            "-".repeat(3 * 4)
        );
        assert_eq!(text, want);
    }

    #[test]
    fn simple_lines_reuse_a_run_start_without_changing_a_byte() {
        use crate::graph::VertexSpec;
        let mut g = ResourceGraph::new();
        let root = g
            .add_vertex(VertexSpec::new("cluster", "c", 0), None)
            .unwrap();
        let rack = g
            .add_vertex(VertexSpec::new("rack", "rack", 7), Some(root))
            .unwrap();
        let mut emitted = Vec::new();
        let emit = |v, needs, exclusive| Emit {
            vertex: v,
            needs,
            exclusive,
        };
        // Runs of one type whose ids cross digit counts, go down, repeat
        // and go negative; a type change and a depth change with the same
        // basename break a run; a vertex named otherwise stands alone.
        for (kind, id, needs) in [
            ("core", 8, 1),
            ("core", 9, 1),
            ("core", 10, 1),
            ("core", 99, 1),
            ("core", 100, 256),
            ("core", 3, 1),
            ("core", 3, 1),
            ("core", -4, 1),
            ("core", i64::MIN, 1),
            ("gpu", 0, 1),
            ("core", 11, 1),
        ] {
            let v = g
                .add_vertex(VertexSpec::new(kind, kind, id), Some(rack))
                .unwrap();
            emitted.push(emit(v, needs, id % 2 == 0));
        }
        let mut odd = VertexSpec::new("core", "core", 5);
        odd.name = "spare-core".to_string();
        let v = g.add_vertex(odd, Some(rack)).unwrap();
        emitted.push(emit(v, 1, true));
        let deep = g
            .add_vertex(VertexSpec::new("core", "core", 12), Some(v))
            .unwrap();
        emitted.push(emit(deep, 1, true));
        emitted.push(emit(rack, 1, false));
        emitted.push(emit(root, 1, false));
        let text = render(&g, &emitted, Format::Simple, 0, 0, None);
        let want: String = emitted
            .iter()
            .map(|e| {
                let x = g.vertex(e.vertex).unwrap();
                let how = if e.exclusive { "x" } else { "s" };
                let dashes = "-".repeat(3 * (g.depth(e.vertex) + 1));
                format!("      {dashes}{}[{}:{how}]\n", x.name(), e.needs)
            })
            .collect();
        assert_eq!(text, want);
        assert!(text.contains("core-9223372036854775808[1:x]"), "{text}");
    }

    #[test]
    fn idsets_and_hostlists_compress_runs() {
        assert_eq!(idset(&[3, 0, 1, 2, 7]), "0-3,7");
        assert_eq!(idset(&[]), "");
    }

    #[test]
    fn rv1_lists_nodes_by_rank_and_leaves_out_nodes_without_cores() {
        use crate::graph::VertexSpec;
        let mut g = ResourceGraph::new();
        let root = g
            .add_vertex(VertexSpec::new("cluster", "c", 0), None)
            .unwrap();
        let mut emitted = Vec::new();
        let emit = |v| Emit {
            vertex: v,
            needs: 1,
            exclusive: true,
        };
        // node5 holds rank 0 and node2 rank 1: rank order, not name order.
        for (id, rank, cores) in [(2, 1, 1), (5, 0, 1), (9, 2, 0)] {
            let mut spec = VertexSpec::new("node", "node", id);
            spec.rank = rank;
            let n = g.add_vertex(spec, Some(root)).unwrap();
            for c in 0..cores {
                let core = g
                    .add_vertex(VertexSpec::new("core", "core", c), Some(n))
                    .unwrap();
                emitted.push(emit(core));
            }
            emitted.push(emit(n));
        }
        let text = render(&g, &emitted, Format::Rv1NoSched, 0, 10, None);
        assert!(text.contains("\"R_lite\": [{\"rank\": \"0-1\""), "{text}");
        assert!(text.contains("\"nodelist\": [\"node[5,2]\"]"), "{text}");
    }
}
