//! One Flux Operator MiniCluster manifest (`flux-framework.org/v1alpha2`)
//! per planned MiniCluster: `spec.size` brokers of the pool's shape, the
//! image, the steps as Flux jobs of one batch script (dependencies inside
//! the MiniCluster as `--dependency=afterok`), and pods that Phalanx
//! gang-schedules (`schedulerName: phalanx`, pod-group labels).
//!
//! Dependencies across MiniClusters are kept by the plan's times: the
//! annotations say when to create and delete each MiniCluster and which
//! ones it waits for.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::cluster::mc_demand;
use crate::plan::Plan;
use crate::workflow::{Workflow, bytes_text, cpu_text};

/// Label Phalanx (and coscheduling) read for a pod's group.
pub const POD_GROUP_LABEL: &str = "scheduling.x-k8s.io/pod-group";
/// Fluence's group-size label, read by Phalanx for the gang's size.
pub const GROUP_SIZE_LABEL: &str = "fluence.group-size";

/// Single-quotes `s` for a POSIX shell.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A shell variable name for a step's job id.
fn var(name: &str) -> String {
    let mut v: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    v.insert_str(0, "job_");
    v
}

/// The manifest of MiniCluster `m` of the plan, as a JSON value (written as YAML).
pub fn manifest(wf: &Workflow, plan: &Plan, m: usize, namespace: &str) -> Value {
    let mc = &plan.miniclusters[m];
    let demand = mc_demand(wf, &mc.steps);
    let mut script = String::from("#!/bin/sh\nset -eu\n");
    for &s in &mc.steps {
        let step = &wf.steps[s];
        let deps: Vec<String> = step
            .after
            .iter()
            .filter(|&&d| plan.steps[d].minicluster == m)
            .map(|&d| format!("--dependency=afterok:${}", var(&wf.steps[d].name)))
            .collect();
        let command = step
            .command
            .clone()
            .unwrap_or_else(|| format!("echo {}", step.name));
        let _ = writeln!(
            script,
            "{}=$(flux submit --job-name={} --nodes={} --exclusive{}{} sh -c {})",
            var(&step.name),
            step.name,
            step.nodes,
            if deps.is_empty() { "" } else { " " },
            deps.join(" "),
            quote(&command)
        );
    }
    script.push_str("flux queue drain\n");
    let mut limits = serde_json::Map::new();
    if demand.cpu_millis > 0 {
        limits.insert("cpu".into(), json!(cpu_text(demand.cpu_millis)));
    }
    if demand.memory_bytes > 0 {
        limits.insert("memory".into(), json!(bytes_text(demand.memory_bytes)));
    }
    if demand.gpus > 0 {
        limits.insert("nvidia.com/gpu".into(), json!(demand.gpus));
    }
    let waits: Vec<String> = {
        let mut v: Vec<String> = mc
            .steps
            .iter()
            .flat_map(|&s| wf.steps[s].after.iter())
            .map(|&d| plan.steps[d].minicluster)
            .filter(|&o| o != m)
            .map(|o| plan.miniclusters[o].name.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let mut annotations = serde_json::Map::new();
    annotations.insert("phalanx.dev/pool".into(), json!(wf.pools[mc.pool].name));
    annotations.insert(
        "phalanx.dev/create-at-seconds".into(),
        json!((mc.up_ms / 1000).to_string()),
    );
    annotations.insert(
        "phalanx.dev/delete-at-seconds".into(),
        json!((mc.down_ms / 1000).to_string()),
    );
    if !waits.is_empty() {
        annotations.insert("phalanx.dev/after".into(), json!(waits.join(",")));
    }
    let tasks = u64::from(mc.size) * (demand.cpu_millis / 1000).max(1);
    json!({
        "apiVersion": "flux-framework.org/v1alpha2",
        "kind": "MiniCluster",
        "metadata": {
            "name": mc.name,
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/managed-by": "phalanx-plan",
                "phalanx.dev/workflow": crate::planner::dns_name(&wf.name),
            },
            "annotations": Value::Object(annotations),
        },
        "spec": {
            "size": mc.size,
            "tasks": tasks,
            "interactive": false,
            "pod": {
                "schedulerName": "phalanx",
                "labels": {
                    POD_GROUP_LABEL: mc.name,
                    GROUP_SIZE_LABEL: mc.size.to_string(),
                },
            },
            "containers": [{
                "image": mc.image,
                "batch": true,
                "batchRaw": true,
                "command": script,
                "resources": {
                    "limits": Value::Object(limits.clone()),
                    "requests": Value::Object(limits),
                },
            }],
        },
    })
}

/// Writes `DIR/NAME.yaml` for every MiniCluster; returns the paths.
pub fn write_all(
    wf: &Workflow,
    plan: &Plan,
    dir: &std::path::Path,
    namespace: &str,
) -> anyhow::Result<Vec<std::path::PathBuf>> {
    use anyhow::Context;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut paths = Vec::with_capacity(plan.miniclusters.len());
    for (m, mc) in plan.miniclusters.iter().enumerate() {
        let text = serde_yaml_ng::to_string(&manifest(wf, plan, m, namespace))
            .context("writing a manifest as YAML")?;
        let path = dir.join(format!("{}.yaml", mc.name));
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        paths.push(path);
    }
    Ok(paths)
}
