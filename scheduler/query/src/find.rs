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

/// A parsed expression: a disjunction of conjunctions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Expr {
    pub(crate) any_of: Vec<Vec<Pred>>,
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

/// Parses `criteria` (tokens joined by `and` / `or`; `and` binds tighter).
pub(crate) fn parse(criteria: &str) -> Result<Expr, String> {
    let mut any_of = vec![Vec::new()];
    let mut want_pred = true;
    for tok in criteria.split_whitespace() {
        let tok = tok.trim_matches(|c| c == '(' || c == ')');
        if tok.is_empty() {
            continue;
        }
        if want_pred {
            let pred = parse_pred(tok)?;
            if let Some(last) = any_of.last_mut() {
                last.push(pred);
            }
            want_pred = false;
        } else {
            match tok {
                "and" | "&&" => want_pred = true,
                "or" | "||" => {
                    any_of.push(Vec::new());
                    want_pred = true;
                }
                // Juxtaposed predicates are joined by "and".
                _ => {
                    let pred = parse_pred(tok)?;
                    if let Some(last) = any_of.last_mut() {
                        last.push(pred);
                    }
                }
            }
        }
    }
    if want_pred {
        return Err("incomplete expression".into());
    }
    Ok(Expr { any_of })
}

impl Expr {
    /// Whether vertex `v` satisfies the expression.
    pub(crate) fn eval(&self, g: &ResourceGraph, v: VertexId) -> bool {
        self.any_of
            .iter()
            .any(|all| all.iter().all(|p| pred(g, v, p)))
    }
    /// The job a `jobid-*` predicate names, if any.
    pub(crate) fn job(&self) -> Option<u64> {
        self.any_of.iter().flatten().find_map(|p| match p {
            Pred::JobAlloc(j) | Pred::JobReserved(j) | Pred::JobTag(j) | Pred::JobSpan(j) => {
                Some(*j)
            }
            _ => None,
        })
    }
    /// Whether the expression asks for aggregate counts.
    pub(crate) fn wants_agfilter(&self) -> bool {
        self.any_of
            .iter()
            .flatten()
            .any(|p| *p == Pred::AgFilter(true))
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
        assert_eq!(e.any_of.len(), 2);
        assert_eq!(e.any_of[0].len(), 2);
        assert!(parse("status=sideways").is_err());
        assert!(parse("status=up and").is_err());
        assert!(parse("bogus").is_err());
        assert_eq!(
            parse("jobid-alloc=2 agfilter=t").unwrap().any_of[0].len(),
            2
        );
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
