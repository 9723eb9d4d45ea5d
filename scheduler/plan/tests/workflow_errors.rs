//! Bad workflows get errors that name the field and the step.

use std::path::Path;

use phalanx_plan::workflow::{MAX_STEPS, WorkflowSpec};

const POOLS: &str = "cluster:\n  nodes:\n    - {name: cpu, count: 4, cpu: 32, memory: 128Gi}\n    - {name: gpu, count: 2, cpu: 32, memory: 256Gi, gpu: 8}\n";

fn load(steps: &str) -> anyhow::Result<phalanx_plan::workflow::Workflow> {
    let text = format!("{POOLS}steps:\n{steps}");
    phalanx_plan::load_text(Path::new("wf.yaml"), &text, None)
}

fn message(steps: &str) -> String {
    format!("{:#}", load(steps).expect_err("must fail"))
}

#[test]
fn unknown_field_names_the_field_and_the_step() {
    let m = message("  - {name: prep, duration: 1m, gpus: 2}\n");
    assert!(m.contains("steps[0]"), "{m}");
    assert!(m.contains("\"prep\""), "{m}");
    assert!(m.contains("unknown field `gpus`"), "{m}");
    let m = message("  - {name: prep, duration: 1m}\nextra: 1\n");
    assert!(m.contains("unknown field `extra`"), "{m}");
}

#[test]
fn cycles_are_named_step_by_step() {
    let m = message(
        "  - {name: a, duration: 1m, after: [c]}\n  - {name: b, duration: 1m, after: [a]}\n  - {name: c, duration: 1m, after: [b]}\n  - {name: d, duration: 1m}\n",
    );
    assert!(m.contains("cycle"), "{m}");
    for step in ["a", "b", "c"] {
        assert!(
            m.contains(&format!("{step} ->")) || m.contains(&format!("-> {step}")),
            "{m}"
        );
    }
    assert!(!m.contains("d ->"), "{m}");
    let m = message("  - {name: a, duration: 1m, after: [a]}\n");
    assert!(m.contains("\"a\"") && m.contains("itself"), "{m}");
}

#[test]
fn missing_dependencies_and_duplicates_are_named() {
    let m = message("  - {name: a, duration: 1m}\n  - {name: b, duration: 1m, after: [a, zz]}\n");
    assert!(
        m.contains("steps[1].after[1]") && m.contains("\"b\"") && m.contains("\"zz\""),
        "{m}"
    );
    let m = message("  - {name: a, duration: 1m}\n  - {name: a, duration: 2m}\n");
    assert!(m.contains("steps[1].name") && m.contains("steps[0]"), "{m}");
}

#[test]
fn steps_no_pool_can_host_are_named() {
    let m = message("  - {name: big, duration: 1m, gpu: 16}\n");
    assert!(
        m.contains("\"big\"") && m.contains("no node pool can host it"),
        "{m}"
    );
    let m = message("  - {name: wide, duration: 1m, nodes: 5, cpu: 1}\n");
    assert!(m.contains("\"wide\""), "{m}");
    // Four nodes fit the CPU pool: the same step with 4 nodes loads.
    load("  - {name: wide, duration: 1m, nodes: 4, cpu: 1}\n").expect("fits");
}

#[test]
fn values_are_checked() {
    for (steps, needle) in [
        ("  - {name: a, duration: 0s}\n", "steps[0].duration"),
        ("  - {name: a, duration: ten}\n", "steps[0].duration"),
        ("  - {name: a, duration: 1m, nodes: 0}\n", "steps[0].nodes"),
        (
            "  - {name: a, duration: 1m, memory: lots}\n",
            "steps[0].memory",
        ),
        ("  - {name: 'a b', duration: 1m}\n", "steps[0].name"),
        ("  - {name: a, duration: 100000h}\n", "steps[0].duration"),
    ] {
        let m = message(steps);
        assert!(m.contains(needle), "{steps}: {m}");
    }
    let empty = format!(
        "{:#}",
        phalanx_plan::load_text(
            Path::new("w.yaml"),
            "cluster: {nodes: []}\nsteps: []\n",
            None
        )
        .expect_err("no pools")
    );
    assert!(empty.contains("cluster.nodes"), "{empty}");
}

#[test]
fn too_many_steps_is_refused_before_planning() {
    let mut text = String::from(
        "{\"cluster\": {\"nodes\": [{\"name\": \"cpu\", \"count\": 1, \"cpu\": 1, \"memory\": 1}]}, \"steps\": [",
    );
    for i in 0..=MAX_STEPS {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&format!("{{\"name\":\"s{i}\",\"duration\":1}}"));
    }
    text.push_str("]}");
    let err = WorkflowSpec::parse(&text).expect_err("too many");
    assert_eq!(err.path, "steps");
    assert!(err.message.contains("at most"), "{err}");
}

#[test]
fn json_workflows_read_like_yaml() {
    let text = r#"{"cluster": {"nodes": [{"name": "cpu", "count": 2, "cpu": "4", "memory": "8Gi"}]},
        "minicluster_overhead": "90s",
        "steps": [{"name": "a", "duration": "2m", "cpu": "500m"}, {"name": "b", "duration": 60, "after": ["a"], "nodez": 1}]}"#;
    let err = WorkflowSpec::parse(text).expect_err("unknown field");
    assert!(
        err.path.starts_with("steps[1]")
            && err.message.contains("\"b\"")
            && err.message.contains("nodez"),
        "{err}"
    );
    let wf = phalanx_plan::load_text(
        Path::new("w.json"),
        &text.replace("\"nodez\"", "\"nodes\""),
        None,
    )
    .expect("loads");
    assert_eq!(wf.overhead_ms, 90_000);
    assert_eq!(wf.steps[0].cpu_millis, 500);
    assert_eq!(wf.steps[1].after, [0]);
}

#[test]
fn clusters_come_from_scenarios_and_numa_alignment_is_checked() {
    // The built-in gpu-training scenario: 16 nodes, 2 NUMA zones of 2 GPUs, single-numa-node.
    let steps = "steps:\n  - {name: train, duration: 10m, nodes: 4, cpu: 8, gpu: 2}\n";
    let text = format!("cluster: {{scenario: gpu-training}}\n{steps}");
    let wf = phalanx_plan::load_text(Path::new("w.yaml"), &text, None).expect("loads");
    assert_eq!(wf.pools.len(), 1);
    assert_eq!(wf.pools[0].name, "gpu");
    assert_eq!(wf.pools[0].count, 16);
    // Four GPUs on one node do fit the node's sum, but not one NUMA zone.
    let text =
        "cluster: {scenario: gpu-training}\nsteps:\n  - {name: wide-gpu, duration: 10m, gpu: 4}\n";
    let m = format!(
        "{:#}",
        phalanx_plan::load_text(Path::new("w.yaml"), text, None).expect_err("NUMA")
    );
    assert!(m.contains("\"wide-gpu\"") && m.contains("NUMA"), "{m}");
    // --cluster replaces the file's pools.
    let text = format!("{POOLS}{steps}");
    let wf =
        phalanx_plan::load_text(Path::new("w.yaml"), &text, Some("gpu-training")).expect("loads");
    assert_eq!(wf.pools[0].count, 16);
    let m = format!(
        "{:#}",
        phalanx_plan::load_text(Path::new("w.yaml"), &text, Some("no-such-scenario"))
            .expect_err("missing")
    );
    assert!(m.contains("no-such-scenario"), "{m}");
}

#[test]
fn dot_workflows_need_a_cluster_and_plan_like_yaml() {
    let dot = "digraph hpc {\n  node [image=\"tools\"];\n  0 [label=\"all\"];\n  1 [label=\"prep\", nodes=2, cpu=8, duration=\"10m\"];\n  2 [label=\"post\", resources=\"nodes=2,cpu=8,runtime=5\"];\n  1 -> 2\n  2 -> 0\n}\n";
    let m = format!(
        "{:#}",
        phalanx_plan::load_text(Path::new("dag.dot"), dot, None).expect_err("no cluster")
    );
    assert!(m.contains("--cluster"), "{m}");
    let wf =
        phalanx_plan::load_text(Path::new("dag.dot"), dot, Some("mpi-contention")).expect("loads");
    assert_eq!(wf.steps.len(), 2);
    assert_eq!(wf.steps[1].after, [0]);
    let out = phalanx_plan::plan_checked(&wf, &Default::default()).expect("plans");
    // Same image, back to back: one MiniCluster runs both.
    assert_eq!(out.plan.miniclusters.len(), 1);
}

#[test]
fn the_shipped_snakemake_dag_plans() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/snakemake-dag.dot");
    let wf = phalanx_plan::load(&path, None).expect("loads");
    let names: Vec<&str> = wf.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["map-sample-A", "map-sample-B", "call"]);
    assert_eq!(wf.overhead_ms, 120_000);
    assert_eq!(wf.steps[2].after, [0, 1]);
    let out = phalanx_plan::plan_checked(&wf, &Default::default()).expect("plans");
    assert!(out.plan.node_ms <= out.per_step.node_ms);
    assert!(out.plan.makespan_ms < out.per_step.makespan_ms);
}
