//! `find` expressions: `status=up and sched-now=allocated or jobid-span=2`.

use fluxion_core::graph::{ResourceGraph, Status, VertexId};

/// One predicate of a find expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pred {
    Status(Status),
    /// `sched-now=allocated` (true) or `free` (false).
    Allocated(bool),
    /// `sched-future=reserved` (true) or `free` (false).
    Reserved(bool),
    JobAlloc(u64),
    JobReserved(u64),
    /// `jobid-tag=ID`: the job's match went through the vertex.
    JobTag(u64),
    /// `jobid-span=ID`: the vertex's subtree aggregate counts units the job
    /// holds below it (a tagged vertex with a tagged descendant of a type
    /// the prune filters track).
    JobSpan(u64),
    /// `agfilter=t`: selects vertices with aggregates.
    AgFilter(bool),
    /// `names=hostlist`
    Names(Vec<String>),
    /// `property=name`
    Property(String),
}

fn parse_pred(tok: &str) -> Result<Pred, String> {
    let (k, v) = tok
        .split_once('=')
        .ok_or_else(|| format!("malformed predicate: {tok}"))?;
    let num = |v: &str| v.parse::<u64>().map_err(|_| format!("invalid jobid: {v}"));
    let truthy = |v: &str| matches!(v, "t" | "true" | "T" | "True");
    Ok(match k {
        "status" => match v {
            "up" => Pred::Status(Status::Up),
            "down" => Pred::Status(Status::Down),
            _ => return Err(format!("invalid status: {v}")),
        },
        "sched-now" => match v {
            "allocated" => Pred::Allocated(true),
            "free" => Pred::Allocated(false),
            _ => return Err(format!("invalid sched-now: {v}")),
        },
        "sched-future" => match v {
            "reserved" => Pred::Reserved(true),
            "free" => Pred::Reserved(false),
            _ => return Err(format!("invalid sched-future: {v}")),
        },
        "jobid-alloc" => Pred::JobAlloc(num(v)?),
        "jobid-reserved" => Pred::JobReserved(num(v)?),
        "jobid-tag" => Pred::JobTag(num(v)?),
        "jobid-span" => Pred::JobSpan(num(v)?),
        "agfilter" => Pred::AgFilter(truthy(v)),
        "names" => Pred::Names(v.split(',').map(str::to_string).collect()),
        "property" => Pred::Property(v.to_string()),
        _ => return Err(format!("unknown predicate: {k}")),
    })
}

/// Deepest nesting of parentheses a find expression may have.
pub(crate) const MAX_FIND_NESTING: usize = 32;

/// A node of a parsed expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    Pred(Pred),
    /// All of these.
    And(Vec<Node>),
    /// Any of these.
    Or(Vec<Node>),
}

/// A parsed expression: predicates joined by `and` (also by juxtaposition)
/// and `or`, `and` binding tighter, grouped by parentheses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Expr {
    pub(crate) root: Node,
    /// Every predicate, in order (for [`Expr::job`] and [`Expr::wants_agfilter`]).
    preds: Vec<Pred>,
}

/// An operator waiting on the parser's stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    And,
    Or,
    Open,
}

/// Combines the two topmost operands with `op`, flattening runs of the
/// same operator (`a and b and c` is one `And` of three).
fn reduce(out: &mut Vec<Node>, op: Op) -> Result<(), String> {
    let (Some(b), Some(a)) = (out.pop(), out.pop()) else {
        return Err("incomplete expression".into());
    };
    let join = |a: Node, b: Node, and: bool| -> Node {
        let mut parts = Vec::new();
        for x in [a, b] {
            match (x, and) {
                (Node::And(v), true) | (Node::Or(v), false) => parts.extend(v),
                (x, _) => parts.push(x),
            }
        }
        if and {
            Node::And(parts)
        } else {
            Node::Or(parts)
        }
    };
    out.push(join(a, b, op == Op::And));
    Ok(())
}

/// Splits `criteria` into words, with each parenthesis a word of its own.
fn tokens(criteria: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for word in criteria.split_whitespace() {
        let mut rest = word;
        while !rest.is_empty() {
            match rest.find(['(', ')']) {
                Some(0) => {
                    out.push(&rest[..1]);
                    rest = &rest[1..];
                }
                Some(i) => {
                    out.push(&rest[..i]);
                    rest = &rest[i..];
                }
                None => {
                    out.push(rest);
                    rest = "";
                }
            }
        }
    }
    out
}

/// Parses `criteria` with an operator stack (no recursion): `and` binds
/// tighter than `or`, parentheses group, nested at most
/// [`MAX_FIND_NESTING`] deep.
pub(crate) fn parse(criteria: &str) -> Result<Expr, String> {
    let mut out: Vec<Node> = Vec::new();
    let mut ops: Vec<Op> = Vec::new();
    let mut preds = Vec::new();
    let mut depth = 0usize;
    // Whether the last thing read was an operand (a predicate or a ')').
    let mut after_operand = false;
    // Pops operators binding at least as tightly as `op` (and all of them
    // down to a '(' for `None`).
    let unwind = |out: &mut Vec<Node>, ops: &mut Vec<Op>, op: Option<Op>| -> Result<(), String> {
        while let Some(&top) = ops.last() {
            let pops = match (top, op) {
                (Op::Open, _) => false,
                (_, None) | (_, Some(Op::Or)) => true,
                (Op::And, Some(Op::And)) => true,
                _ => false,
            };
            if !pops {
                break;
            }
            ops.pop();
            reduce(out, top)?;
        }
        Ok(())
    };
    for tok in tokens(criteria) {
        match tok {
            "and" | "&&" | "or" | "||" => {
                if !after_operand {
                    return Err(format!("'{tok}' needs a predicate before it"));
                }
                let op = if matches!(tok, "and" | "&&") {
                    Op::And
                } else {
                    Op::Or
                };
                unwind(&mut out, &mut ops, Some(op))?;
                ops.push(op);
                after_operand = false;
            }
            "(" => {
                if after_operand {
                    // Juxtaposed groups are joined by "and".
                    unwind(&mut out, &mut ops, Some(Op::And))?;
                    ops.push(Op::And);
                }
                depth += 1;
                if depth > MAX_FIND_NESTING {
                    return Err(format!(
                        "parentheses nest deeper than the limit of {MAX_FIND_NESTING}"
                    ));
                }
                ops.push(Op::Open);
                after_operand = false;
            }
            ")" => {
                if !after_operand {
                    return Err("')' needs a predicate before it".into());
                }
                unwind(&mut out, &mut ops, None)?;
                if ops.pop() != Some(Op::Open) {
                    return Err("unbalanced parentheses: a ')' without its '('".into());
                }
                depth -= 1;
            }
            _ => {
                let pred = parse_pred(tok)?;
                if after_operand {
                    // Juxtaposed predicates are joined by "and".
                    unwind(&mut out, &mut ops, Some(Op::And))?;
                    ops.push(Op::And);
                }
                preds.push(pred.clone());
                out.push(Node::Pred(pred));
                after_operand = true;
            }
        }
    }
    if !after_operand {
        return Err("incomplete expression".into());
    }
    while let Some(op) = ops.pop() {
        if op == Op::Open {
            return Err("unbalanced parentheses: a '(' without its ')'".into());
        }
        reduce(&mut out, op)?;
    }
    let root = match (out.pop(), out.is_empty()) {
        (Some(root), true) => root,
        _ => return Err("incomplete expression".into()),
    };
    Ok(Expr { root, preds })
}

impl Expr {
    /// Whether vertex `v` satisfies the expression (the tree is at most
    /// [`MAX_FIND_NESTING`] groups deep, so the recursion is bounded).
    pub(crate) fn eval(&self, g: &ResourceGraph, v: VertexId) -> bool {
        fn node(g: &ResourceGraph, v: VertexId, n: &Node) -> bool {
            match n {
                Node::Pred(p) => pred(g, v, p),
                Node::And(all) => all.iter().all(|x| node(g, v, x)),
                Node::Or(any) => any.iter().any(|x| node(g, v, x)),
            }
        }
        node(g, v, &self.root)
    }
    /// The job a `jobid-*` predicate names, if any.
    pub(crate) fn job(&self) -> Option<u64> {
        self.preds.iter().find_map(|p| match p {
            Pred::JobAlloc(j) | Pred::JobReserved(j) | Pred::JobTag(j) | Pred::JobSpan(j) => {
                Some(*j)
            }
            _ => None,
        })
    }
    /// Whether the expression asks for aggregate counts.
    pub(crate) fn wants_agfilter(&self) -> bool {
        self.preds.contains(&Pred::AgFilter(true))
    }
}

/// Whether `v` is in use now. A vertex a running job holds exclusively is;
/// one no job has a record on is when a vertex above it is held exclusively
/// (a whole node given to a job takes its GPUs and memory out of use too,
/// even the ones the job did not ask for).
fn held_now(g: &ResourceGraph, v: VertexId) -> bool {
    let Some(x) = g.vertex(v) else { return false };
    if !x.spans().is_empty() {
        return x.spans().iter().any(|s| s.exclusive && !s.reserved);
    }
    let mut at = g.parent(v);
    while let Some(u) = at {
        let Some(x) = g.vertex(u) else { return false };
        if x.spans().iter().any(|s| s.exclusive && !s.reserved) {
            return true;
        }
        at = g.parent(u);
    }
    false
}

/// Whether `job` holds a vertex of a prune-filter type below `v`. A job's
/// records are closed upwards (every ancestor of a held vertex has one), so
/// the walk only enters children the job has a record on.
fn holds_tracked_below(g: &ResourceGraph, v: VertexId, job: u64) -> bool {
    let tracked = g.tracked_types();
    let on_job = |u: &VertexId| {
        g.vertex(*u)
            .is_some_and(|x| x.spans().iter().any(|s| s.job == job))
    };
    let mut stack: Vec<VertexId> = g.children(v).iter().copied().filter(on_job).collect();
    while let Some(u) = stack.pop() {
        if g.vertex(u).is_some_and(|x| tracked.contains(&x.kind)) {
            return true;
        }
        stack.extend(g.children(u).iter().copied().filter(on_job));
    }
    false
}

fn pred(g: &ResourceGraph, v: VertexId, p: &Pred) -> bool {
    let Some(x) = g.vertex(v) else { return false };
    let spans = x.spans();
    match p {
        Pred::Status(s) => x.status == *s,
        Pred::Allocated(a) => held_now(g, v) == *a,
        Pred::Reserved(r) => spans.iter().any(|s| s.exclusive && s.reserved) == *r,
        Pred::JobAlloc(j) => spans
            .iter()
            .any(|s| s.job == *j && s.exclusive && !s.reserved),
        Pred::JobReserved(j) => spans
            .iter()
            .any(|s| s.job == *j && s.exclusive && s.reserved),
        Pred::JobTag(j) => spans.iter().any(|s| s.job == *j),
        Pred::JobSpan(j) => spans.iter().any(|s| s.job == *j) && holds_tracked_below(g, v, *j),
        Pred::AgFilter(want) => !*want || !g.children(v).is_empty(),
        Pred::Names(ns) => ns.iter().any(|n| x.is_named(n)),
        Pred::Property(k) => x.property(k).is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_or() {
        let e = parse("status=up and sched-now=allocated or jobid-span=2").unwrap();
        let Node::Or(any) = &e.root else {
            panic!("{e:?}")
        };
        assert_eq!(any.len(), 2);
        assert!(matches!(&any[0], Node::And(all) if all.len() == 2));
        assert!(parse("status=sideways").is_err());
        assert!(parse("status=up and").is_err());
        assert!(parse("bogus").is_err());
        let e = parse("jobid-alloc=2 agfilter=t").unwrap();
        assert!(matches!(&e.root, Node::And(all) if all.len() == 2));
        assert_eq!(e.job(), Some(2));
        assert!(e.wants_agfilter());
    }

    #[test]
    fn parentheses_group_and_nest_within_a_limit() {
        let up = Node::Pred(Pred::Status(Status::Up));
        let down = Node::Pred(Pred::Status(Status::Down));
        let alloc = Node::Pred(Pred::Allocated(true));
        let e = parse("(sched-now=allocated or status=up) and status=down").unwrap();
        assert_eq!(
            e.root,
            Node::And(vec![
                Node::Or(vec![alloc.clone(), up.clone()]),
                down.clone()
            ])
        );
        let e = parse("sched-now=allocated or status=up and status=down").unwrap();
        assert_eq!(
            e.root,
            Node::Or(vec![
                alloc.clone(),
                Node::And(vec![up.clone(), down.clone()])
            ])
        );
        // Juxtaposed groups are joined by "and".
        let e = parse("(status=up)(status=down)").unwrap();
        assert_eq!(e.root, Node::And(vec![up.clone(), down.clone()]));
        let ok = format!("{}status=up{}", "(".repeat(32), ")".repeat(32));
        assert_eq!(parse(&ok).unwrap().root, up);
        let deep = format!("{}status=up{}", "(".repeat(100_000), ")".repeat(100_000));
        assert!(parse(&deep).unwrap_err().contains("limit of 32"));
        for bad in [
            "(status=up",
            "status=up)",
            "()",
            "( and status=up)",
            "status=up or",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    /// A node held whole takes its GPU out of use though the job only
    /// claimed a core; a core that has a record of its own goes by it.
    #[test]
    fn a_whole_node_held_takes_its_unclaimed_children_with_it() {
        use fluxion_core::generate::{ClusterShape, cluster};
        use fluxion_core::graph::Claim;
        let shape = ClusterShape {
            nodes: 2,
            nodes_per_rack: 2,
            sockets: 1,
            cores_per_socket: 2,
            gpus_per_socket: 1,
            memory_gib_per_socket: 1,
            per_node_ids: false,
        };
        let mut g = cluster(&shape).unwrap();
        let node0 = g.find_path("/cluster0/rack0/node0").unwrap();
        let c0 = g.find_path("/cluster0/rack0/node0/socket0/core0").unwrap();
        let c1 = g.find_path("/cluster0/rack0/node0/socket0/core1").unwrap();
        let gpu0 = g.find_path("/cluster0/rack0/node0/socket0/gpu0").unwrap();
        let gpu1 = g.find_path("/cluster0/rack0/node1/socket1/gpu1").unwrap();
        let claim = |vertex, amount| Claim {
            vertex,
            amount,
            exclusive: true,
        };
        g.allocate(1, 0, 100, false, vec![claim(node0, 0), claim(c0, 1)])
            .unwrap();
        let used = parse("sched-now=allocated").unwrap();
        assert!(used.eval(&g, node0));
        assert!(used.eval(&g, c0));
        assert!(used.eval(&g, gpu0), "unclaimed GPU of a node held whole");
        assert!(used.eval(&g, c1), "unclaimed core of a node held whole");
        assert!(!used.eval(&g, gpu1), "the other node is free");
        assert!(parse("sched-now=free").unwrap().eval(&g, gpu1));
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    fn token() -> impl Strategy<Value = &'static str> {
        prop_oneof![
            Just("("),
            Just(")"),
            Just("and"),
            Just("or"),
            Just("&&"),
            Just("||"),
            Just("status=up"),
            Just("status=down"),
            Just("sched-now=free"),
            Just("jobid-alloc=99999999999999999999999"),
            Just("names=a,b"),
            Just("bogus"),
            Just("=x"),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Any sequence of tokens parses or gives an error; a parsed
        /// expression keeps every predicate and evaluates without panic.
        #[test]
        fn find_expressions_never_panic(toks in proptest::collection::vec(token(), 0..80)) {
            let text = toks.join(" ");
            if let Ok(e) = parse(&text) {
                let preds = toks.iter().filter(|t| t.contains('=')).count();
                prop_assert_eq!(e.preds.len(), preds);
                let g = fluxion_core::generate::cluster(&fluxion_core::generate::ClusterShape {
                    nodes: 1,
                    nodes_per_rack: 0,
                    sockets: 1,
                    cores_per_socket: 1,
                    gpus_per_socket: 0,
                    memory_gib_per_socket: 0,
                    per_node_ids: false,
                }).expect("graph");
                for v in g.vertices() {
                    let _ = e.eval(&g, v);
                }
            }
        }
    }
}
