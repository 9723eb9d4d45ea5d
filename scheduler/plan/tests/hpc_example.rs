//! The issue's "Done when": the on-demand HPC example planned, against both
//! extremes, with its manifests and chart written and read back.

use std::path::{Path, PathBuf};

use phalanx_plan::cluster::ClusterGraph;
use phalanx_plan::planner::{Objective, Options};
use phalanx_plan::{Format, PlanArgs};
use serde::Deserialize;

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hpc-on-demand.yaml")
}

#[test]
fn hpc_example_beats_both_extremes_within_the_makespan_limit() {
    let wf = phalanx_plan::load(&example(), None).expect("example loads");
    assert_eq!(wf.steps.len(), 8);
    let out = phalanx_plan::plan_checked(&wf, &Options::default()).expect("plans");
    let plan = &out.plan;
    assert!(
        plan.node_ms < out.per_step.node_ms,
        "plan {} node-ms, one per step {}",
        plan.node_ms,
        out.per_step.node_ms
    );
    assert!(
        plan.node_ms < out.single.node_ms,
        "plan {} node-ms, one for everything {}",
        plan.node_ms,
        out.single.node_ms
    );
    assert!(
        plan.makespan_ms as f64 <= 1.2 * out.single.makespan_ms as f64,
        "makespan {} ms, single {} ms",
        plan.makespan_ms,
        out.single.makespan_ms
    );
    // Fewer MiniClusters than steps: some steps share one.
    assert!(plan.miniclusters.len() < wf.steps.len());
    // Every dependency, by hand as well as by the plan's own check.
    for (i, step) in wf.steps.iter().enumerate() {
        for &d in &step.after {
            assert!(
                plan.steps[i].start_ms >= plan.steps[d].end_ms,
                "{} before {}",
                step.name,
                wf.steps[d].name
            );
        }
    }
    plan.check(&wf).expect("plan keeps every rule");
    ClusterGraph::new(&wf.pools)
        .verify(&wf, plan)
        .expect("every MiniCluster fits the resource graph when it comes up");
    // The GPU step never lands on CPU nodes, and a MiniCluster holds one image.
    for mc in &plan.miniclusters {
        for &s in &mc.steps {
            assert_eq!(wf.steps[s].image, mc.image);
            if wf.steps[s].gpus > 0 {
                assert_eq!(wf.pools[mc.pool].name, "gpu");
            }
        }
    }
}

#[test]
fn makespan_objective_is_no_slower_than_cost() {
    let wf = phalanx_plan::load(&example(), None).expect("example loads");
    let cost = phalanx_plan::plan_checked(&wf, &Options::default()).expect("plans");
    let fast = phalanx_plan::plan_checked(
        &wf,
        &Options {
            objective: Objective::Makespan,
            ..Options::default()
        },
    )
    .expect("plans");
    assert!(fast.plan.makespan_ms <= cost.plan.makespan_ms);
    assert!(fast.plan.makespan_ms <= fast.single.makespan_ms);
    let balanced = phalanx_plan::plan_checked(
        &wf,
        &Options {
            objective: Objective::Balanced,
            ..Options::default()
        },
    )
    .expect("plans");
    balanced
        .plan
        .check(&wf)
        .expect("balanced plan keeps every rule");
}

/// The parts of a MiniCluster manifest read back, strictly where we write them.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    api_version: String,
    kind: String,
    metadata: Metadata,
    spec: Spec,
}

#[derive(Debug, Deserialize)]
struct Metadata {
    name: String,
    namespace: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Spec {
    size: u32,
    tasks: u64,
    interactive: bool,
    pod: Pod,
    containers: Vec<Container>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Pod {
    scheduler_name: String,
    labels: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Container {
    image: String,
    batch: bool,
    batch_raw: bool,
    command: String,
    resources: serde_yaml_ng::Value,
}

#[test]
fn emitted_manifests_parse_back_as_miniclusters_of_the_planned_size() {
    let dir = tempfile::tempdir().expect("temp dir");
    let emit = dir.path().join("manifests");
    let svg = dir.path().join("plan.svg");
    phalanx_plan::run(PlanArgs {
        workflow: example(),
        output: Format::Json,
        emit: Some(emit.clone()),
        svg: Some(svg.clone()),
        objective: Objective::Cost,
        max_stretch: 1.2,
        cluster: None,
        namespace: "hpc".into(),
        seed: 1,
    })
    .expect("runs");
    let wf = phalanx_plan::load(&example(), None).expect("example loads");
    let out = phalanx_plan::plan_checked(&wf, &Options::default()).expect("plans");
    let mut files: Vec<_> = std::fs::read_dir(&emit)
        .expect("emit dir")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    assert_eq!(files.len(), out.plan.miniclusters.len());
    for mc in &out.plan.miniclusters {
        let path = emit.join(format!("{}.yaml", mc.name));
        let text = std::fs::read_to_string(&path).expect("manifest written");
        let m: Manifest = serde_yaml_ng::from_str(&text).expect("parses as a MiniCluster");
        assert_eq!(m.api_version, "flux-framework.org/v1alpha2");
        assert_eq!(m.kind, "MiniCluster");
        assert_eq!(m.metadata.name, mc.name);
        assert_eq!(m.metadata.namespace, "hpc");
        assert_eq!(m.spec.size, mc.size);
        assert!(m.spec.tasks >= u64::from(mc.size));
        assert!(!m.spec.interactive);
        assert_eq!(m.spec.pod.scheduler_name, "phalanx");
        assert_eq!(m.spec.pod.labels["scheduling.x-k8s.io/pod-group"], mc.name);
        assert_eq!(m.spec.pod.labels["fluence.group-size"], mc.size.to_string());
        assert_eq!(m.spec.containers.len(), 1);
        let c = &m.spec.containers[0];
        assert_eq!(c.image, mc.image);
        assert!(c.batch && c.batch_raw);
        assert!(c.resources.get("limits").is_some());
        // Each step is one Flux job of the script, in plan order.
        let mut at = 0;
        for &s in &mc.steps {
            let needle = format!("--job-name={} ", wf.steps[s].name);
            let found = c.command[at..]
                .find(&needle)
                .unwrap_or_else(|| panic!("{needle} in {}", c.command));
            at += found + needle.len();
        }
    }
    let chart = std::fs::read_to_string(&svg).expect("chart written");
    assert!(chart.starts_with("<svg") && chart.trim_end().ends_with("</svg>"));
    for mc in &out.plan.miniclusters {
        assert!(chart.contains(&mc.name), "chart names {}", mc.name);
    }
}

#[test]
fn json_report_has_the_issue_fields() {
    let wf = phalanx_plan::load(&example(), None).expect("example loads");
    let out = phalanx_plan::plan_checked(&wf, &Options::default()).expect("plans");
    let report = phalanx_plan::output::Report::new(&wf, &out);
    let v = serde_json::to_value(&report).expect("serialises");
    for key in [
        "miniclusters",
        "steps",
        "node_seconds",
        "makespan_s",
        "baselines",
    ] {
        assert!(v.get(key).is_some(), "{key}");
    }
    let mc = &v["miniclusters"][0];
    for key in [
        "name",
        "pool",
        "nodes",
        "image",
        "up_at_s",
        "down_at_s",
        "steps",
    ] {
        assert!(mc.get(key).is_some(), "minicluster.{key}");
    }
    let st = &v["steps"][0];
    for key in ["name", "minicluster", "start_s", "end_s"] {
        assert!(st.get(key).is_some(), "step.{key}");
    }
    for b in ["per_step", "single"] {
        assert!(
            v["baselines"][b]["node_seconds"]
                .as_f64()
                .is_some_and(|x| x > 0.0)
        );
        assert!(
            v["baselines"][b]["makespan_s"]
                .as_f64()
                .is_some_and(|x| x > 0.0)
        );
    }
    assert_eq!(
        v["node_seconds"].as_f64(),
        Some(out.plan.node_ms as f64 / 1000.0)
    );
    let table = report.table();
    assert!(table.contains("one per step") && table.contains("one for everything"));
    for mc in &out.plan.miniclusters {
        assert!(table.contains(&mc.name));
    }
}
