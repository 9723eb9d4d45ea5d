//! Workflows from GraphViz DOT: Snakemake's `--dag` output, or any plain
//! `digraph`, with each step's resources as node attributes.
//!
//! ```dot
//! digraph hpc {
//!     graph [minicluster_overhead="3m", cluster="pools.yaml"];
//!     node [image="ghcr.io/x/tools:1"];
//!     0 [label="all"];
//!     1 [label="prep\nsample: A", nodes=4, cpu=16, memory="64Gi", duration="10m"];
//!     2 [label="train", image="ghcr.io/x/train:1", resources="nodes=2,gpu=4,runtime=30"];
//!     1 -> 2
//!     2 -> 0
//! }
//! ```
//!
//! An edge `a -> b` runs `b` after `a` (Snakemake draws inputs to consumers).
//! A step's name is its label (lines joined by `-`), else its node id.
//! Attributes read, directly or inside `resources="k=v,..."`: `nodes`,
//! `cpu` (or `cpus`, `threads`), `memory` (or `mem`, a quantity; `mem_mb`,
//! `mem_mib`), `gpu` (or `gpus`, `nvidia_gpu`), `duration` (`10m`, seconds)
//! or `runtime` (Snakemake's minutes), `image` (or `container`), `command`.
//! A node with neither `duration` nor `runtime`, like Snakemake's target
//! rule `all`, is not a step: its edges pass through it. Subgraphs, ports
//! and HTML labels are not read. Graph attributes: `minicluster_overhead`,
//! `cluster` (a `phalanx simulate` scenario), `name`.

use std::collections::HashMap;

use crate::workflow::{
    ClusterSource, MAX_EDGES, MAX_INPUT, MAX_STEPS, StepSpec, WorkflowError, WorkflowSpec,
};

/// Most attributes one statement may carry.
const MAX_ATTRS: usize = 256;

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Id(String),
    Punct(&'static str),
}

fn error(line: usize, message: impl Into<String>) -> WorkflowError {
    WorkflowError {
        path: format!("line {line}"),
        message: message.into(),
    }
}

/// Splits DOT text into tokens with their line numbers.
fn tokens(text: &str) -> Result<Vec<(Token, usize)>, WorkflowError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1;
    let mut line_start = true;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            line_start = true;
            i += 1;
            continue;
        }
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let at_line_start = line_start;
        line_start = false;
        if c == '#' && at_line_start {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '/' && chars.get(i + 1) == Some(&'*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                if chars[i] == '\n' {
                    line += 1;
                }
                i += 1;
            }
            i += 2;
            continue;
        }
        if c == '"' {
            let start_line = line;
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(error(start_line, "unterminated string")),
                    Some('"') => break,
                    Some('\\') => {
                        match chars.get(i + 1) {
                            Some('"') => s.push('"'),
                            Some('\\') => s.push('\\'),
                            // \n, \l, \r are GraphViz line breaks in labels.
                            Some('n' | 'l' | 'r') => s.push('\n'),
                            Some('\n') => line += 1,
                            Some(other) => {
                                s.push('\\');
                                s.push(*other);
                            }
                            None => return Err(error(start_line, "unterminated string")),
                        }
                        i += 2;
                        continue;
                    }
                    Some(ch) => {
                        if *ch == '\n' {
                            line += 1;
                        }
                        s.push(*ch);
                    }
                }
                i += 1;
            }
            i += 1;
            out.push((Token::Id(s), start_line));
            continue;
        }
        if c == '<' {
            return Err(error(line, "HTML strings (<...>) are not supported"));
        }
        if c == '-' && matches!(chars.get(i + 1), Some('>' | '-')) {
            out.push((Token::Punct("->"), line));
            i += 2;
            continue;
        }
        if let Some(p) = ["{", "}", "[", "]", "=", ";", ",", ":"]
            .into_iter()
            .find(|p| p.starts_with(c))
        {
            out.push((Token::Punct(p), line));
            i += 1;
            continue;
        }
        if c.is_alphanumeric() || c == '_' || c == '.' || c == '-' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '.' | '-'))
                && !(chars[i] == '-' && matches!(chars.get(i + 1), Some('>' | '-')))
            {
                i += 1;
            }
            out.push((Token::Id(chars[start..i].iter().collect()), line));
            continue;
        }
        return Err(error(line, format!("unexpected character {c:?}")));
    }
    Ok(out)
}

type Attrs = Vec<(String, String)>;

/// A node of the DOT graph.
#[derive(Debug, Default)]
struct DotNode {
    id: String,
    attrs: Attrs,
    line: usize,
}

struct Parser {
    toks: Vec<(Token, usize)>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.pos).map(|t| &t.0)
    }

    fn line(&self) -> usize {
        self.toks
            .get(self.pos)
            .or(self.toks.last())
            .map_or(1, |t| t.1)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.toks.get(self.pos).map(|t| t.0.clone());
        self.pos += 1;
        t
    }

    fn punct(&mut self, p: &str) -> bool {
        if self.peek() == Some(&Token::Punct(static_of(p))) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn id(&mut self) -> Result<String, WorkflowError> {
        let line = self.line();
        match self.next() {
            Some(Token::Id(s)) => Ok(s),
            Some(Token::Punct(p)) => Err(error(line, format!("expected a name, found {p:?}"))),
            None => Err(error(line, "expected a name, found the end")),
        }
    }

    /// `[k=v, k=v; ...]`, possibly repeated.
    fn attrs(&mut self) -> Result<Attrs, WorkflowError> {
        let mut out = Vec::new();
        while self.punct("[") {
            loop {
                if self.punct("]") {
                    break;
                }
                let key = self.id()?;
                let value = if self.punct("=") {
                    self.id()?
                } else {
                    "true".to_owned()
                };
                out.push((key, value));
                if out.len() > MAX_ATTRS {
                    return Err(error(
                        self.line(),
                        format!("more than {MAX_ATTRS} attributes"),
                    ));
                }
                let _ = self.punct(",") || self.punct(";");
            }
        }
        Ok(out)
    }

    /// Skips a `:port` after a node id.
    fn port(&mut self) -> Result<(), WorkflowError> {
        while self.punct(":") {
            self.id()?;
        }
        Ok(())
    }
}

fn static_of(p: &str) -> &'static str {
    ["{", "}", "[", "]", "=", ";", ",", ":", "->"]
        .into_iter()
        .find(|q| *q == p)
        .unwrap_or("")
}

/// Parses a DOT workflow.
pub fn parse(text: &str) -> Result<WorkflowSpec, WorkflowError> {
    if text.len() > MAX_INPUT {
        return Err(error(
            0,
            format!("file is {} bytes; at most {MAX_INPUT}", text.len()),
        ));
    }
    let mut p = Parser {
        toks: tokens(text)?,
        pos: 0,
    };
    if matches!(p.peek(), Some(Token::Id(s)) if s.eq_ignore_ascii_case("strict")) {
        p.pos += 1;
    }
    match p.next() {
        Some(Token::Id(s))
            if s.eq_ignore_ascii_case("digraph") || s.eq_ignore_ascii_case("graph") => {}
        _ => return Err(error(1, "expected `digraph NAME {` or `graph NAME {`")),
    }
    let mut graph_name = None;
    if let Some(Token::Id(_)) = p.peek() {
        graph_name = Some(p.id()?);
    }
    if !p.punct("{") {
        return Err(error(p.line(), "expected `{`"));
    }
    let mut graph_attrs: Attrs = Vec::new();
    let mut node_defaults: Attrs = Vec::new();
    let mut nodes: Vec<DotNode> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut edges: Vec<(usize, usize)> = Vec::new();
    let mut node_of = |id: &str,
                       line: usize,
                       nodes: &mut Vec<DotNode>,
                       defaults: &Attrs|
     -> Result<usize, WorkflowError> {
        if let Some(&i) = index.get(id) {
            return Ok(i);
        }
        if nodes.len() >= MAX_STEPS {
            return Err(error(line, format!("more than {MAX_STEPS} nodes")));
        }
        index.insert(id.to_owned(), nodes.len());
        nodes.push(DotNode {
            id: id.to_owned(),
            attrs: defaults.clone(),
            line,
        });
        Ok(nodes.len() - 1)
    };
    loop {
        let line = p.line();
        match p.next() {
            None => return Err(error(line, "missing the closing `}`")),
            Some(Token::Punct("}")) => break,
            Some(Token::Punct(";")) => {}
            Some(Token::Punct("{")) => return Err(error(line, "subgraphs are not supported")),
            Some(Token::Punct(other)) => return Err(error(line, format!("unexpected {other:?}"))),
            Some(Token::Id(word)) => {
                let lower = word.to_ascii_lowercase();
                if lower == "subgraph" {
                    return Err(error(line, "subgraphs are not supported"));
                }
                if matches!(lower.as_str(), "graph" | "node" | "edge")
                    && p.peek() == Some(&Token::Punct("["))
                {
                    let attrs = p.attrs()?;
                    match lower.as_str() {
                        "graph" => graph_attrs.extend(attrs),
                        "node" => node_defaults.extend(attrs),
                        _ => {}
                    }
                    continue;
                }
                if p.punct("=") {
                    let value = p.id()?;
                    graph_attrs.push((word, value));
                    continue;
                }
                p.port()?;
                let mut chain = vec![node_of(&word, line, &mut nodes, &node_defaults)?];
                while p.punct("->") {
                    let line = p.line();
                    if p.peek() == Some(&Token::Punct("{")) {
                        return Err(error(line, "subgraphs are not supported"));
                    }
                    let next = p.id()?;
                    p.port()?;
                    chain.push(node_of(&next, line, &mut nodes, &node_defaults)?);
                }
                let attrs = p.attrs()?;
                if chain.len() == 1 {
                    nodes[chain[0]].attrs.extend(attrs);
                } else {
                    for w in chain.windows(2) {
                        edges.push((w[0], w[1]));
                    }
                    if edges.len() > MAX_EDGES {
                        return Err(error(line, format!("more than {MAX_EDGES} edges")));
                    }
                }
            }
        }
    }
    if p.peek().is_some() {
        return Err(error(p.line(), "text after the graph's closing `}`"));
    }
    build(graph_name, &graph_attrs, &nodes, &edges)
}

fn lookup<'a>(attrs: &'a Attrs, keys: &[&str]) -> Option<&'a str> {
    // The last setting wins, as in GraphViz.
    attrs
        .iter()
        .rev()
        .find(|(k, _)| keys.contains(&k.as_str()))
        .map(|(_, v)| v.as_str())
}

fn duration_ms(v: &str, minutes: bool) -> Result<i64, String> {
    let v = v.trim();
    let secs = if let Ok(n) = v.parse::<f64>() {
        if minutes { n * 60.0 } else { n }
    } else {
        humantime::parse_duration(v)
            .map_err(|e| format!("bad duration {v:?}: {e}"))?
            .as_secs_f64()
    };
    let ms = (secs * 1000.0).round();
    if !ms.is_finite() || ms < 0.0 || ms > crate::workflow::MAX_DURATION_MS as f64 {
        return Err(format!("duration {v:?} must be between 0 and a year"));
    }
    Ok(ms as i64)
}

fn whole(v: &str, what: &str) -> Result<u64, String> {
    v.trim()
        .parse::<u64>()
        .map_err(|_| format!("{what} must be a whole number, not {v:?}"))
}

/// A step name from a label: lines joined by `-`, other characters made safe.
fn name_from(label: &str) -> String {
    let mut out = String::new();
    for c in label.chars() {
        let c = if c.is_ascii_alphanumeric() || matches!(c, '_' | '.') {
            c
        } else {
            '-'
        };
        if !(c == '-' && (out.is_empty() || out.ends_with('-'))) {
            out.push(c);
        }
    }
    out.trim_end_matches('-').to_owned()
}

fn build(
    graph_name: Option<String>,
    graph: &Attrs,
    nodes: &[DotNode],
    edges: &[(usize, usize)],
) -> Result<WorkflowSpec, WorkflowError> {
    let overhead_ms = match lookup(graph, &["minicluster_overhead"]) {
        Some(v) => duration_ms(v, false)
            .map_err(|m| error(0, format!("graph minicluster_overhead: {m}")))?,
        None => 180_000,
    };
    let cluster = lookup(graph, &["cluster"]).map(|s| ClusterSource::Scenario(s.to_owned()));
    let name = lookup(graph, &["name"])
        .map(str::to_owned)
        .or(graph_name)
        .map(|n| name_from(&n))
        .filter(|n| !n.is_empty());
    // Each node's resources: direct attributes, then `resources="k=v,..."` entries.
    let mut steps: Vec<Option<StepSpec>> = Vec::with_capacity(nodes.len());
    let mut names: HashMap<String, usize> = HashMap::new();
    for node in nodes {
        let mut attrs = node.attrs.clone();
        if let Some(res) = lookup(&node.attrs, &["resources"]) {
            for part in res.split([',', ' ', '\n']).filter(|s| !s.is_empty()) {
                let Some((k, v)) = part.split_once('=') else {
                    return Err(error(
                        node.line,
                        format!(
                            "node {}: resources entry {part:?} is not key=value",
                            node.id
                        ),
                    ));
                };
                attrs.push((k.trim().to_owned(), v.trim().to_owned()));
            }
        }
        let at = |m: String| error(node.line, format!("node {}: {m}", node.id));
        let duration = match (lookup(&attrs, &["duration"]), lookup(&attrs, &["runtime"])) {
            (Some(v), _) => Some(duration_ms(v, false).map_err(at)?),
            (None, Some(v)) => Some(duration_ms(v, true).map_err(at)?),
            (None, None) => None,
        };
        let Some(duration_ms) = duration else {
            steps.push(None);
            continue;
        };
        let mut name = lookup(&attrs, &["label"])
            .map(name_from)
            .unwrap_or_default();
        if name.is_empty() {
            name = name_from(&node.id);
        }
        if names.contains_key(&name) {
            name = format!("{name}-{}", name_from(&node.id));
        }
        names.insert(name.clone(), steps.len());
        let cpu_millis = match lookup(&attrs, &["cpu", "cpus", "threads"]) {
            Some(v) => phalanx_sim::scenario::parse_cpu(v).map_err(at)?,
            None => 0,
        };
        let memory_bytes = match (
            lookup(&attrs, &["memory", "mem"]),
            lookup(&attrs, &["mem_mb"]),
            lookup(&attrs, &["mem_mib"]),
        ) {
            (Some(v), _, _) => phalanx_sim::scenario::parse_bytes(v).map_err(at)?,
            (None, Some(v), _) => whole(v, "mem_mb").map_err(at)?.saturating_mul(1_000_000),
            (None, None, Some(v)) => whole(v, "mem_mib").map_err(at)?.saturating_mul(1 << 20),
            _ => 0,
        };
        let gpus = match lookup(&attrs, &["gpu", "gpus", "nvidia_gpu"]) {
            Some(v) => whole(v, "gpu").map_err(at)?,
            None => 0,
        };
        let nodes_needed = match lookup(&attrs, &["nodes"]) {
            Some(v) => u32::try_from(whole(v, "nodes").map_err(at)?)
                .map_err(|_| at("nodes is too large".into()))?,
            None => 1,
        };
        steps.push(Some(StepSpec {
            name,
            image: lookup(&attrs, &["image", "container"])
                .unwrap_or("")
                .to_owned(),
            nodes: nodes_needed,
            cpu_millis,
            memory_bytes,
            gpus,
            duration_ms,
            after: Vec::new(),
            command: lookup(&attrs, &["command"]).map(str::to_owned),
        }));
    }
    // Dependencies pass through nodes that are not steps: walk the graph in
    // topological order (iteratively), carrying each node's nearest step ancestors.
    let n = nodes.len();
    let mut preds: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut succ: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(a, b) in edges {
        preds[b].push(a);
        succ[a].push(b);
    }
    let mut pending: Vec<usize> = preds.iter().map(Vec::len).collect();
    let mut order: Vec<usize> = (0..n).filter(|&i| pending[i] == 0).collect();
    let mut head = 0;
    while head < order.len() {
        let i = order[head];
        head += 1;
        for &j in &succ[i] {
            pending[j] -= 1;
            if pending[j] == 0 {
                order.push(j);
            }
        }
    }
    if order.len() < n {
        let stuck = (0..n).find(|&i| pending[i] > 0).unwrap_or(0);
        return Err(error(
            nodes[stuck].line,
            format!("node {} is in a dependency cycle", nodes[stuck].id),
        ));
    }
    let mut reach: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut total = 0usize;
    for &v in &order {
        let mut mine: Vec<usize> = Vec::new();
        for &u in &preds[v] {
            if steps[u].is_some() {
                mine.push(u);
            } else {
                mine.extend_from_slice(&reach[u]);
            }
        }
        mine.sort_unstable();
        mine.dedup();
        total += mine.len();
        if total > MAX_EDGES {
            return Err(error(
                nodes[v].line,
                format!("more than {MAX_EDGES} dependencies once pass-through nodes are removed"),
            ));
        }
        reach[v] = mine;
    }
    let mut out = Vec::new();
    for v in 0..n {
        let deps: Vec<String> = reach[v]
            .iter()
            .filter_map(|&u| steps[u].as_ref().map(|s| s.name.clone()))
            .collect();
        if let Some(step) = steps[v].as_mut() {
            step.after = deps;
            out.push(step.clone());
        }
    }
    Ok(WorkflowSpec {
        name,
        cluster,
        overhead_ms,
        steps: out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snakemake_dag_with_resources_and_a_target_rule() {
        let text = r#"digraph snakemake_dag {
    graph[bgcolor=white, margin=0];
    node[shape=box, style=rounded, fontname=sans, fontsize=10, penwidth=2];
    edge[penwidth=2, color=grey];
	0[label = "all", color = "0.00 0.6 0.85", style="rounded"];
	1[label = "bwa_map\nsample: A", color = "0.33 0.6 0.85", style="rounded", resources="nodes=2,cpu=8,mem_mb=4000,runtime=10", image="x"];
	2[label = "bwa_map\nsample: B", resources="cpu=8 runtime=12", image="x"];
	3[label = "call", duration="5m", gpu=1, image="y"];
	1 -> 3
	2 -> 3
	3 -> 0
}"#;
        let spec = parse(text).expect("parses");
        assert_eq!(spec.overhead_ms, 180_000);
        let names: Vec<&str> = spec.steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["bwa_map-sample-A", "bwa_map-sample-B", "call"]);
        assert_eq!(spec.steps[0].nodes, 2);
        assert_eq!(spec.steps[0].memory_bytes, 4_000_000_000);
        assert_eq!(spec.steps[1].duration_ms, 720_000);
        assert_eq!(
            spec.steps[2].after,
            ["bwa_map-sample-A", "bwa_map-sample-B"]
        );
        assert_eq!(spec.steps[2].gpus, 1);
    }

    #[test]
    fn pass_through_nodes_keep_order_and_cycles_are_named() {
        let spec =
            parse("digraph { a [duration=60]; b; c [duration=60]; a -> b -> c }").expect("parses");
        assert_eq!(spec.steps[1].after, ["a"]);
        let err =
            parse("digraph { a [duration=1]; b [duration=1]; a -> b; b -> a }").expect_err("cycle");
        assert!(err.message.contains("cycle"), "{err}");
        let err = parse("digraph { subgraph x { a } }").expect_err("subgraph");
        assert!(err.message.contains("subgraph"), "{err}");
        let err = parse("digraph { a [duration=\"ten\"] }").expect_err("bad duration");
        assert!(err.to_string().contains("node a"), "{err}");
    }
}
