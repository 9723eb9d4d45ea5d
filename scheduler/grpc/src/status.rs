//! `phalanx status`: tables in the style of `flux resource list` and
//! `flux jobs`, or JSON. Rendering is pure so it is unit-tested without a
//! server.

use std::fmt::Write as _;

use phalanx_proto::v1 as pb;
use serde_json::{Value, json};

use crate::hostlist;

/// Resource types shown as columns of the resource table.
const CORE: &str = "core";
const GPU: &str = "gpu";

fn count<'a>(node: &'a pb::NodeResources, ty: &str) -> Option<&'a pb::ResourceCount> {
    node.resources.iter().find(|r| r.r#type == ty)
}

#[derive(Default)]
struct Row<'a> {
    nodes: Vec<&'a str>,
    cores: u64,
    gpus: u64,
}

/// The `flux resource list`-style table: one row per state (free,
/// allocated, down). A partly used node counts in both free and allocated,
/// with its free and allocated cores and GPUs respectively.
pub fn resources_table(resp: &pb::ResourcesResponse) -> String {
    let (mut free, mut alloc, mut down) = (Row::default(), Row::default(), Row::default());
    for node in &resp.nodes {
        let get = |ty, f: fn(&pb::ResourceCount) -> u64| count(node, ty).map_or(0, f);
        if !node.up {
            down.nodes.push(&node.name);
            down.cores += get(CORE, |c| c.total);
            down.gpus += get(GPU, |c| c.total);
            continue;
        }
        let any_alloc = node.resources.iter().any(|r| r.allocated > 0);
        let any_free = node.resources.iter().any(|r| r.free > 0);
        if any_free || !any_alloc {
            free.nodes.push(&node.name);
            free.cores += get(CORE, |c| c.free);
            free.gpus += get(GPU, |c| c.free);
        }
        if any_alloc {
            alloc.nodes.push(&node.name);
            alloc.cores += get(CORE, |c| c.allocated);
            alloc.gpus += get(GPU, |c| c.allocated);
        }
    }
    let mut out = format!(
        "{:>10} {:>6} {:>8} {:>8} NODELIST\n",
        "STATE", "NNODES", "NCORES", "NGPUS"
    );
    for (state, row) in [("free", free), ("allocated", alloc), ("down", down)] {
        let _ = writeln!(
            out,
            "{:>10} {:>6} {:>8} {:>8} {}",
            state,
            row.nodes.len(),
            row.cores,
            row.gpus,
            printable(&hostlist::compress(row.nodes.iter().copied()))
        );
    }
    out
}

/// Resources as JSON: per node and the totals, with types as keys.
pub fn resources_json(resp: &pb::ResourcesResponse) -> Value {
    let counts = |rs: &[pb::ResourceCount]| -> Value {
        rs.iter()
            .map(|r| {
                (
                    r.r#type.clone(),
                    json!({"total": r.total, "free": r.free, "allocated": r.allocated, "down": r.down}),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    json!({
        "nodes": resp.nodes.iter().map(|n| json!({
            "name": n.name,
            "path": n.path,
            "state": if n.up { "up" } else { "down" },
            "resources": counts(&n.resources),
            "jobs": n.jobs,
        })).collect::<Vec<_>>(),
        "totals": counts(&resp.totals),
    })
}

/// One-letter job state, as in `flux jobs` (R running, S scheduled).
fn state_letter(state: i32) -> &'static str {
    match pb::JobState::try_from(state) {
        Ok(pb::JobState::Allocated) => "R",
        Ok(pb::JobState::Reserved) => "S",
        _ => "?",
    }
}

fn state_name(state: i32) -> &'static str {
    match pb::JobState::try_from(state) {
        Ok(pb::JobState::Allocated) => "allocated",
        Ok(pb::JobState::Reserved) => "reserved",
        _ => "unknown",
    }
}

/// Flux's compact duration: `12.0s`, `3.5m`, `1.2h`, `2.0d`.
pub fn flux_duration(seconds: i64) -> String {
    let s = seconds.max(0) as f64;
    if s < 60.0 {
        format!("{s:.1}s")
    } else if s < 3600.0 {
        format!("{:.1}m", s / 60.0)
    } else if s < 86400.0 {
        format!("{:.1}h", s / 3600.0)
    } else {
        format!("{:.1}d", s / 86400.0)
    }
}

/// The `flux jobs`-style table. TIME is how long a running job has held its
/// resources (graph clock `now` minus its start); a reserved job shows how
/// long until it starts, prefixed with `+`.
pub fn jobs_table(resp: &pb::JobsResponse, now: i64) -> String {
    let mut out = format!(
        "{:>8} {:<16} {:>2} {:>6} {:>6} {:>8}\n",
        "JOBID", "NAME", "ST", "NPODS", "NNODES", "TIME"
    );
    for job in &resp.jobs {
        let time = if job.state == pb::JobState::Reserved as i32 {
            format!("+{}", flux_duration(job.start_time - now))
        } else {
            flux_duration(now - job.start_time)
        };
        let name = if job.name.is_empty() {
            "-".to_owned()
        } else {
            printable(&job.name)
        };
        let _ = writeln!(
            out,
            "{:>8} {:<16} {:>2} {:>6} {:>6} {:>8}",
            job.job_id,
            truncate(&name, 16),
            state_letter(job.state),
            job.npods,
            job.nnodes,
            time
        );
    }
    out
}

/// `s` with control characters (newline, NUL, escape, ...) escaped, so a
/// name from the server cannot break a table row or drive the terminal.
pub fn printable(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_owned();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('+');
        t
    }
}

/// Jobs as JSON.
pub fn jobs_json(resp: &pb::JobsResponse) -> Value {
    Value::Array(resp.jobs.iter().map(job_json).collect())
}

/// One job as JSON.
pub fn job_json(job: &pb::Job) -> Value {
    json!({
        "id": job.job_id,
        "name": job.name,
        "state": state_name(job.state),
        "start_time": job.start_time,
        "duration": job.duration,
        "npods": job.npods,
        "nnodes": job.nnodes,
        "nodes": job.nodes,
        "nodelist": hostlist::compress(job.nodes.iter().map(String::as_str)),
        "policy": job.policy,
        "created_unix_ms": job.created_unix_ms,
        "pods": job.pods.iter().map(|p| json!({
            "index": p.index, "template": p.template, "node": p.node, "vertices": p.vertices,
        })).collect::<Vec<_>>(),
    })
}

/// Stat as text: `key: value` lines.
pub fn stat_text(s: &pb::StatResponse) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "vertices: {}  edges: {}", s.vertices, s.edges);
    let types: Vec<String> = s
        .by_type
        .iter()
        .map(|t| format!("{}={}", printable(&t.r#type), t.count))
        .collect();
    let _ = writeln!(out, "by type: {}", types.join(" "));
    let _ = writeln!(out, "nodes: {} up, {} down", s.nodes_up, s.nodes_down);
    let _ = writeln!(
        out,
        "jobs: {} allocated, {} reserved",
        s.jobs_allocated, s.jobs_reserved
    );
    let _ = writeln!(
        out,
        "matches: {} placed, {} not placed",
        s.matches_succeeded, s.matches_failed
    );
    match &s.match_latency {
        Some(l) if l.count > 0 => {
            let _ = writeln!(
                out,
                "match latency (last {}): min {}us p50 {}us p99 {}us max {}us mean {:.1}us",
                l.count, l.min_micros, l.p50_micros, l.p99_micros, l.max_micros, l.mean_micros
            );
        }
        _ => {
            let _ = writeln!(out, "match latency: no matches yet");
        }
    }
    let _ = writeln!(
        out,
        "policy: {}  graph clock: {}s",
        printable(&s.policy),
        s.now
    );
    out
}

/// Stat as JSON.
pub fn stat_json(s: &pb::StatResponse) -> Value {
    let l = s.match_latency.unwrap_or_default();
    json!({
        "vertices": s.vertices,
        "edges": s.edges,
        "by_type": s.by_type.iter().map(|t| (t.r#type.clone(), Value::from(t.count))).collect::<serde_json::Map<_,_>>(),
        "nodes_up": s.nodes_up,
        "nodes_down": s.nodes_down,
        "jobs_allocated": s.jobs_allocated,
        "jobs_reserved": s.jobs_reserved,
        "matches_succeeded": s.matches_succeeded,
        "matches_failed": s.matches_failed,
        "match_latency_micros": {"count": l.count, "min": l.min_micros, "p50": l.p50_micros,
            "p99": l.p99_micros, "max": l.max_micros, "mean": l.mean_micros},
        "policy": s.policy,
        "now": s.now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rc(ty: &str, total: u64, free: u64) -> pb::ResourceCount {
        pb::ResourceCount {
            r#type: ty.into(),
            total,
            free,
            allocated: total - free,
            down: 0,
        }
    }

    fn node(name: &str, up: bool, cores_free: u64, gpus_free: u64) -> pb::NodeResources {
        pb::NodeResources {
            name: name.into(),
            up,
            resources: vec![rc("core", 8, cores_free), rc("gpu", 2, gpus_free)],
            ..Default::default()
        }
    }

    #[test]
    fn resource_table_splits_partly_used_nodes() {
        let resp = pb::ResourcesResponse {
            nodes: vec![
                node("node0", true, 8, 2),
                node("node1", true, 8, 2),
                node("node2", true, 3, 0),
                node("node3", true, 0, 0),
                node("node4", false, 8, 2),
            ],
            totals: vec![],
        };
        let table = resources_table(&resp);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            ["STATE", "NNODES", "NCORES", "NGPUS", "NODELIST"]
        );
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            ["free", "3", "19", "4", "node[0-2]"]
        );
        assert_eq!(
            lines[2].split_whitespace().collect::<Vec<_>>(),
            ["allocated", "2", "13", "4", "node[2-3]"]
        );
        assert_eq!(
            lines[3].split_whitespace().collect::<Vec<_>>(),
            ["down", "1", "8", "2", "node4"]
        );
    }

    #[test]
    fn jobs_table_shows_state_and_elapsed_time() {
        let resp = pb::JobsResponse {
            jobs: vec![
                pb::Job {
                    job_id: 7,
                    name: "mpi-a".into(),
                    state: pb::JobState::Allocated as i32,
                    start_time: 10,
                    npods: 8,
                    nnodes: 2,
                    ..Default::default()
                },
                pb::Job {
                    job_id: 9,
                    state: pb::JobState::Reserved as i32,
                    start_time: 400,
                    npods: 4,
                    nnodes: 4,
                    ..Default::default()
                },
            ],
        };
        let table = jobs_table(&resp, 100);
        let rows: Vec<Vec<&str>> = table
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(rows[0], ["JOBID", "NAME", "ST", "NPODS", "NNODES", "TIME"]);
        assert_eq!(rows[1], ["7", "mpi-a", "R", "8", "2", "1.5m"]);
        assert_eq!(rows[2], ["9", "-", "S", "4", "4", "+5.0m"]);
        assert_eq!(jobs_json(&resp)[1]["state"], "reserved");
    }

    #[test]
    fn names_cannot_break_the_tables() {
        let mut a = node("evil\nnode1", true, 4, 0);
        a.name = "evil\nfree 99 99 99 node9\u{1b}[2J".into();
        let t = resources_table(&pb::ResourcesResponse {
            nodes: vec![a],
            totals: vec![],
        });
        assert_eq!(t.lines().count(), 4, "{t}");
        assert!(t.contains("evil\\nfree"), "{t}");
        assert!(!t.contains('\u{1b}'), "{t}");
        let jobs = pb::JobsResponse {
            jobs: vec![pb::Job {
                job_id: 1,
                name: "a\nb\0".into(),
                ..Default::default()
            }],
        };
        let t = jobs_table(&jobs, 0);
        assert_eq!(t.lines().count(), 2, "{t}");
        assert!(t.contains("a\\nb\\u{0}"), "{t}");
    }

    #[test]
    fn stat_without_matches_prints_no_bogus_latency() {
        let s = pb::StatResponse {
            match_latency: Some(latency_summary_empty()),
            ..Default::default()
        };
        let t = stat_text(&s);
        assert!(t.contains("match latency: no matches yet"), "{t}");
        assert!(!t.contains("min "), "{t}");
    }

    fn latency_summary_empty() -> pb::LatencySummary {
        crate::latency_summary(std::iter::empty())
    }

    #[test]
    fn flux_durations() {
        assert_eq!(flux_duration(5), "5.0s");
        assert_eq!(flux_duration(90), "1.5m");
        assert_eq!(flux_duration(7200), "2.0h");
        assert_eq!(flux_duration(-3), "0.0s");
    }
}
