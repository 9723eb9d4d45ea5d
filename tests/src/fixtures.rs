//! Builders for the Kubernetes objects the end-to-end tests create, and checks
//! over what the test server holds afterwards.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{Value, json};

use crate::apiserver::ApiServer;

/// A Ready node with `cpus` whole CPUs, 64 GiB and the given labels.
pub fn node(name: &str, cpus: u32, labels: &[(&str, &str)]) -> Node {
    let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {},
        "status": {
            "allocatable": {"cpu": cpus.to_string(), "memory": "64Gi", "pods": "110"},
            "capacity": {"cpu": cpus.to_string(), "memory": "64Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }))
    .unwrap_or_else(|e| panic!("node fixture: {e}"))
}

/// An unbound pod asking for `cpus` CPUs, with a scheduler name and labels.
pub fn pod(ns: &str, name: &str, scheduler: &str, cpus: u32, labels: &[(&str, &str)]) -> Pod {
    let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {
            "schedulerName": scheduler,
            "containers": [{"name": "main", "image": "busybox", "resources": {"requests": {"cpu": cpus.to_string(), "memory": "1Gi"}}}],
        },
    }))
    .unwrap_or_else(|e| panic!("pod fixture: {e}"))
}

/// A PodGroup object as JSON (typed or malformed specs alike).
pub fn podgroup_json(ns: &str, name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "scheduling.x-k8s.io/v1alpha1", "kind": "PodGroup",
        "metadata": {"name": name, "namespace": ns}, "spec": spec,
    })
}

/// Polls `cond` every 10 ms until it holds or `timeout` passes; returns whether it held.
pub async fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Pod name -> node name for bound pods whose name starts with `prefix`.
pub fn bound_pods(srv: &ApiServer, prefix: &str) -> BTreeMap<String, String> {
    srv.list::<Pod>()
        .into_iter()
        .filter_map(|p| {
            let name = p.metadata.name.clone()?;
            let node = p.spec?.node_name?;
            name.starts_with(prefix).then_some((name, node))
        })
        .collect()
}

fn cpu_millis(q: &str) -> u64 {
    phalanx_gang::quantity::to_millis(q).unwrap_or(0)
}

/// Nodes whose bound, non-terminal pods ask for more CPU than the node has, with the amounts.
pub fn overcommitted_nodes(srv: &ApiServer) -> Vec<(String, u64, u64)> {
    let mut used: BTreeMap<String, u64> = BTreeMap::new();
    for p in srv.list::<Pod>() {
        let phase = p
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        if phase == "Succeeded" || phase == "Failed" {
            continue;
        }
        let Some(spec) = p.spec else { continue };
        let Some(node) = spec.node_name else { continue };
        let cpu: u64 = spec
            .containers
            .iter()
            .filter_map(|c| {
                c.resources
                    .as_ref()?
                    .requests
                    .as_ref()?
                    .get("cpu")
                    .map(|q| cpu_millis(&q.0))
            })
            .sum();
        *used.entry(node).or_default() += cpu;
    }
    let mut bad = Vec::new();
    for n in srv.list::<Node>() {
        let name = n.metadata.name.clone().unwrap_or_default();
        let alloc = n
            .status
            .and_then(|s| s.allocatable)
            .and_then(|a| a.get("cpu").map(|q| cpu_millis(&q.0)))
            .unwrap_or(0);
        let u = used.get(&name).copied().unwrap_or(0);
        if u > alloc {
            bad.push((name, u, alloc));
        }
    }
    bad
}

/// Reasons of events.k8s.io Events about an object whose name starts with `prefix`.
pub fn event_reasons(srv: &ApiServer, prefix: &str) -> Vec<(String, String)> {
    srv.list::<k8s_openapi::api::events::v1::Event>()
        .into_iter()
        .filter(|e| {
            e.regarding
                .as_ref()
                .and_then(|r| r.name.as_deref())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
        .collect()
}

/// The `regarding.uid` of every Event with `reason` about the `kind` object `name`.
pub fn event_regarding_uids(
    srv: &ApiServer,
    kind: &str,
    name: &str,
    reason: &str,
) -> Vec<Option<String>> {
    srv.list::<k8s_openapi::api::events::v1::Event>()
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .filter_map(|e| e.regarding)
        .filter(|r| r.kind.as_deref() == Some(kind) && r.name.as_deref() == Some(name))
        .map(|r| r.uid)
        .collect()
}

/// The UID of a stored object, by API group, version and plural.
pub fn object_uid(
    srv: &ApiServer,
    group: &str,
    version: &str,
    plural: &str,
    ns: &str,
    name: &str,
) -> Option<String> {
    let store = srv.store();
    let rt = store.resource_type(group, version, plural)?;
    let obj = store.get(&rt, ns, name).ok()?;
    obj.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The Events about objects named `prefix*`, one `Reason: note` a line (for
/// assertion messages and `contains` checks).
pub fn event_notes(srv: &ApiServer, prefix: &str) -> String {
    event_reasons(srv, prefix)
        .into_iter()
        .map(|(r, n)| format!("{r}: {n}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A native PodGroup (`scheduling.k8s.io/{version}`) with the given spec.
pub fn native_podgroup_json(ns: &str, version: &str, name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": format!("scheduling.k8s.io/{version}"), "kind": "PodGroup",
        "metadata": {"name": name, "namespace": ns}, "spec": spec,
    })
}

/// A one-CPU pod of ours that names native PodGroup `group` in
/// `spec.schedulingGroup` (JSON: the compiled Pod type may lack the field).
pub fn native_member_json(ns: &str, name: &str, group: &str) -> Value {
    let mut v = serde_json::to_value(pod(ns, name, "phalanx", 1, &[]))
        .unwrap_or_else(|e| panic!("pod fixture: {e}"));
    v["spec"]["schedulingGroup"] = json!({"podGroupName": group});
    v
}

/// A Flux Operator MiniCluster `name` with the given spec, and the indexed
/// Job of `parallelism` pods it owns, as the operator creates them. Its pods
/// come from [`minicluster_pod_json`].
pub fn create_minicluster(srv: &ApiServer, ns: &str, name: &str, spec: Value, parallelism: u32) {
    srv.create_json(
        "flux-framework.org",
        "v1alpha2",
        "miniclusters",
        ns,
        json!({
            "apiVersion": "flux-framework.org/v1alpha2", "kind": "MiniCluster",
            "metadata": {"name": name, "namespace": ns}, "spec": spec,
        }),
    )
    .unwrap_or_else(|e| panic!("minicluster fixture: {e:?}"));
    srv.create_json("batch", "v1", "jobs", ns, json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": ns, "ownerReferences": [
            {"apiVersion": "flux-framework.org/v1alpha2", "kind": "MiniCluster", "name": name, "uid": "mc", "controller": true}]},
        "spec": {"parallelism": parallelism, "completions": parallelism, "completionMode": "Indexed",
                 "template": {"spec": {"containers": []}}},
    }))
    .unwrap_or_else(|e| panic!("minicluster job fixture: {e:?}"));
}

/// Pod `i` of MiniCluster `name`'s Job: one CPU, scheduled by us.
pub fn minicluster_pod_json(ns: &str, name: &str, i: u32) -> Value {
    let mut v = serde_json::to_value(pod(ns, &format!("{name}-{i}"), "phalanx", 1, &[]))
        .unwrap_or_else(|e| panic!("pod fixture: {e}"));
    v["metadata"]["ownerReferences"] = json!([
        {"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": "job", "controller": true}]);
    v
}

/// A policy/v1 PodDisruptionBudget with the given spec, then the status the
/// disruption controller would write (`create` cannot set one): `allowed`
/// disruptions of `healthy` pods.
pub fn create_budget(
    srv: &ApiServer,
    ns: &str,
    name: &str,
    spec: Value,
    allowed: i64,
    healthy: i64,
) {
    srv.create_json(
        "policy",
        "v1",
        "poddisruptionbudgets",
        ns,
        json!({"metadata": {"name": name, "namespace": ns}, "spec": spec}),
    )
    .unwrap_or_else(|e| panic!("budget fixture: {e:?}"));
    let desired = (healthy - allowed).max(0);
    srv.mutate::<k8s_openapi::api::policy::v1::PodDisruptionBudget>(ns, name, |o| {
        o["status"] = json!({"disruptionsAllowed": allowed, "currentHealthy": healthy,
                             "desiredHealthy": desired, "expectedPods": healthy});
    })
    .unwrap_or_else(|e| panic!("budget status: {e:?}"));
}
