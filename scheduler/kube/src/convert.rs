//! Kubernetes objects -> gang core inputs. Bad values are reported with the
//! field path and replaced by a safe default, so one odd object never stops
//! the scheduler.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use phalanx_gang as gang;

use crate::crd::{NodeResourceTopology, PodGroup};
use crate::quantity;

/// Label giving a node's zone.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
/// Fluence's pod label giving the group size when no PodGroup exists.
pub const FLUENCE_GROUP_SIZE_LABEL: &str = "fluence.group-size";

/// A problem found while converting, naming the object field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// Path of the bad field, e.g. `status.allocatable["cpu"]`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

fn field_error(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

/// Longest termination grace period read (about 31 years: far beyond any
/// real one, and small enough that milliseconds of it cannot overflow).
const MAX_GRACE_SECONDS: i64 = 1 << 30;

/// Milliseconds since the Unix epoch of a Kubernetes time.
pub fn time_millis(t: Option<&Time>) -> gang::Timestamp {
    gang::Timestamp::from_millis(t.map(|t| t.0.as_millisecond()).unwrap_or(0))
}

/// Resources from a quantity map; unknown-format entries become problems and count as zero.
fn resources(
    map: Option<&BTreeMap<String, Quantity>>,
    path: &str,
    problems: &mut Vec<FieldError>,
) -> gang::Resources {
    let mut r = gang::Resources::default();
    for (name, q) in map.into_iter().flatten() {
        let field = || format!("{path}[{name:?}]");
        let parsed = match name.as_str() {
            "cpu" => quantity::to_millis(&q.0).map(|v| r.cpu_millis = v),
            "memory" => quantity::to_units(&q.0).map(|v| r.memory_bytes = v),
            gang::GPU_RESOURCE => quantity::to_units(&q.0).map(|v| r.gpus = v),
            // Not matched by the graph: local storage and the pod count are tracked elsewhere.
            "pods" | "ephemeral-storage" => Ok(()),
            other => quantity::to_units(&q.0).map(|v| {
                r.extended.insert(other.to_string(), v);
            }),
        };
        if let Err(e) = parsed {
            problems.push(field_error(field(), e.to_string()));
        }
    }
    r
}

fn add(a: &mut gang::Resources, b: &gang::Resources) {
    a.cpu_millis = a.cpu_millis.saturating_add(b.cpu_millis);
    a.memory_bytes = a.memory_bytes.saturating_add(b.memory_bytes);
    a.gpus = a.gpus.saturating_add(b.gpus);
    for (k, v) in &b.extended {
        let e = a.extended.entry(k.clone()).or_default();
        *e = e.saturating_add(*v);
    }
}

fn max_into(a: &mut gang::Resources, b: &gang::Resources) {
    a.cpu_millis = a.cpu_millis.max(b.cpu_millis);
    a.memory_bytes = a.memory_bytes.max(b.memory_bytes);
    a.gpus = a.gpus.max(b.gpus);
    for (k, v) in &b.extended {
        let e = a.extended.entry(k.clone()).or_default();
        *e = (*e).max(*v);
    }
}

fn taint_effect(s: &str) -> Option<gang::TaintEffect> {
    match s {
        "NoSchedule" => Some(gang::TaintEffect::NoSchedule),
        "PreferNoSchedule" => Some(gang::TaintEffect::PreferNoSchedule),
        "NoExecute" => Some(gang::TaintEffect::NoExecute),
        _ => None,
    }
}

/// A node, with zone and rack from labels and NUMA zones from its NodeResourceTopology.
pub fn node(
    n: &core::Node,
    rack_label: &str,
    nrt: Option<&NodeResourceTopology>,
) -> (gang::Node, Vec<FieldError>) {
    let mut problems = Vec::new();
    let status = n.status.as_ref();
    let allocatable = status.and_then(|s| s.allocatable.as_ref());
    let max_pods = match allocatable.and_then(|a| a.get("pods")) {
        Some(q) => match quantity::to_units(&q.0) {
            Ok(v) => u32::try_from(v).unwrap_or(u32::MAX),
            Err(e) => {
                problems.push(field_error("status.allocatable[\"pods\"]", e.to_string()));
                0
            }
        },
        None => 110,
    };
    let labels = n.metadata.labels.clone().unwrap_or_default();
    let label = |key: &str, problems: &mut Vec<FieldError>| {
        let v = labels.get(key)?;
        if v.is_empty() {
            problems.push(field_error(
                format!("metadata.labels[{key:?}]"),
                "empty value; ignored",
            ));
            return None;
        }
        Some(v.clone())
    };
    let zone = label(ZONE_LABEL, &mut problems);
    let rack = label(rack_label, &mut problems);
    let spec = n.spec.as_ref();
    let mut taints = Vec::new();
    for (i, t) in spec
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .enumerate()
    {
        match taint_effect(&t.effect) {
            Some(effect) => taints.push(gang::Taint {
                key: t.key.clone(),
                value: t.value.clone().unwrap_or_default(),
                effect,
            }),
            None => {
                // An unknown effect is treated as the strictest one that blocks new pods.
                problems.push(field_error(
                    format!("spec.taints[{i}].effect"),
                    format!("unknown effect {:?}; treated as NoSchedule", t.effect),
                ));
                taints.push(gang::Taint {
                    key: t.key.clone(),
                    value: t.value.clone().unwrap_or_default(),
                    effect: gang::TaintEffect::NoSchedule,
                });
            }
        }
    }
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .is_none_or(|c| c.status == "True");
    let (numa_zones, numa_policy) = nrt.map(|t| numa(t, &mut problems)).unwrap_or_default();
    let node = gang::Node {
        name: n.metadata.name.clone().unwrap_or_default(),
        allocatable: resources(allocatable, "status.allocatable", &mut problems),
        max_pods,
        labels,
        taints,
        unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
        ready,
        numa_zones,
        numa_policy,
        zone,
        rack,
    };
    (node, problems)
}

fn numa(
    t: &NodeResourceTopology,
    problems: &mut Vec<FieldError>,
) -> (Vec<gang::NumaZone>, gang::NumaPolicy) {
    let mut zones = Vec::new();
    for (i, z) in t
        .zones
        .iter()
        .enumerate()
        .filter(|(_, z)| z.type_ == "Node")
    {
        let id = z
            .name
            .rsplit('-')
            .next()
            .and_then(|s| s.parse::<u32>().ok())
            .unwrap_or(i as u32);
        let mut zone = gang::NumaZone {
            id,
            ..Default::default()
        };
        for (j, r) in z.resources.iter().enumerate() {
            let Some(q) = r.allocatable.as_ref().or(r.capacity.as_ref()) else {
                continue;
            };
            let field = || format!("zones[{i}].resources[{j}].allocatable");
            let res = match r.name.as_str() {
                "cpu" => quantity::to_millis(&q.0).map(|v| zone.cpu_millis = v),
                "memory" => quantity::to_units(&q.0).map(|v| zone.memory_bytes = v),
                gang::GPU_RESOURCE => quantity::to_units(&q.0).map(|v| zone.gpus = v),
                _ => Ok(()),
            };
            if let Err(e) = res {
                problems.push(field_error(field(), e.to_string()));
            }
        }
        zones.push(zone);
    }
    let policies = t
        .attributes
        .iter()
        .filter(|a| a.name == "topologyManagerPolicy")
        .map(|a| a.value.as_str())
        .chain(t.topology_policies.iter().map(String::as_str));
    let mut policy = gang::NumaPolicy::None;
    for p in policies {
        let lower = p.to_ascii_lowercase();
        if lower.contains("single") {
            policy = gang::NumaPolicy::SingleNumaNode;
        } else if lower.contains("besteffort") || lower.contains("best-effort") {
            policy = gang::NumaPolicy::BestEffort;
        }
    }
    (zones, policy)
}

fn selector_operator(s: &str) -> Option<gang::SelectorOperator> {
    use gang::SelectorOperator as O;
    Some(match s {
        "In" => O::In,
        "NotIn" => O::NotIn,
        "Exists" => O::Exists,
        "DoesNotExist" => O::DoesNotExist,
        "Gt" => O::Gt,
        "Lt" => O::Lt,
        _ => return None,
    })
}

fn requirements(
    reqs: Option<&Vec<core::NodeSelectorRequirement>>,
    path: &str,
    problems: &mut Vec<FieldError>,
) -> Vec<gang::SelectorRequirement> {
    let mut out = Vec::new();
    for (i, r) in reqs.into_iter().flatten().enumerate() {
        match selector_operator(&r.operator) {
            Some(operator) => out.push(gang::SelectorRequirement {
                key: r.key.clone(),
                operator,
                values: r.values.clone().unwrap_or_default(),
            }),
            // An unknown operator must not widen placement: keep a requirement nothing satisfies.
            None => {
                problems.push(field_error(
                    format!("{path}[{i}].operator"),
                    format!("unknown operator {:?}", r.operator),
                ));
                out.push(gang::SelectorRequirement {
                    key: r.key.clone(),
                    operator: gang::SelectorOperator::In,
                    values: Vec::new(),
                });
            }
        }
    }
    out
}

/// A pod (group filled in by the caller), with effective requests and placement constraints.
pub fn pod(p: &core::Pod, group: Option<gang::GroupKey>) -> (gang::Pod, Vec<FieldError>) {
    let mut problems = Vec::new();
    let spec = p.spec.as_ref();
    let mut requests = gang::Resources::default();
    for (i, c) in spec
        .map(|s| s.containers.as_slice())
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        add(
            &mut requests,
            &container_requests(c, &format!("spec.containers[{i}]"), &mut problems),
        );
    }
    let mut init_max = gang::Resources::default();
    for (i, c) in spec
        .and_then(|s| s.init_containers.as_ref())
        .into_iter()
        .flatten()
        .enumerate()
    {
        let r = container_requests(c, &format!("spec.initContainers[{i}]"), &mut problems);
        if c.restart_policy.as_deref() == Some("Always") {
            // Sidecars run beside the main containers for the pod's whole life.
            add(&mut requests, &r);
        } else {
            max_into(&mut init_max, &r);
        }
    }
    max_into(&mut requests, &init_max);
    add(
        &mut requests,
        &resources(
            spec.and_then(|s| s.overhead.as_ref()),
            "spec.overhead",
            &mut problems,
        ),
    );

    let mut tolerations = Vec::new();
    for (i, t) in spec
        .and_then(|s| s.tolerations.as_ref())
        .into_iter()
        .flatten()
        .enumerate()
    {
        let effect = match t.effect.as_deref() {
            None | Some("") => None,
            Some(e) => match taint_effect(e) {
                Some(e) => Some(e),
                None => {
                    problems.push(field_error(
                        format!("spec.tolerations[{i}].effect"),
                        format!("unknown effect {e:?}; toleration ignored"),
                    ));
                    continue;
                }
            },
        };
        let operator = match t.operator.as_deref() {
            Some("Exists") => gang::TolerationOperator::Exists,
            _ => gang::TolerationOperator::Equal,
        };
        tolerations.push(gang::Toleration {
            key: t.key.clone().filter(|k| !k.is_empty()),
            operator,
            value: t.value.clone().unwrap_or_default(),
            effect,
        });
    }
    let mut required_affinity = Vec::new();
    let terms = spec
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(|r| r.node_selector_terms.as_slice())
        .unwrap_or_default();
    for (i, t) in terms.iter().enumerate() {
        let base = format!(
            "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[{i}]"
        );
        required_affinity.push(gang::SelectorTerm {
            match_expressions: requirements(
                t.match_expressions.as_ref(),
                &format!("{base}.matchExpressions"),
                &mut problems,
            ),
            match_node_names: requirements(
                t.match_fields.as_ref(),
                &format!("{base}.matchFields"),
                &mut problems,
            ),
        });
    }
    let annotations = p.metadata.annotations.as_ref();
    let expected_duration = match annotations.and_then(|a| a.get(gang::DURATION_ANNOTATION)) {
        Some(v) => match v.trim().parse::<f64>() {
            Ok(s) if s.is_finite() && s >= 0.0 => Some(gang::Millis((s * 1000.0) as i64)),
            _ => {
                problems.push(field_error(
                    format!("metadata.annotations[{:?}]", gang::DURATION_ANNOTATION),
                    format!("{v:?} is not a number of seconds; ignored"),
                ));
                None
            }
        },
        None => None,
    };
    let phase = match p.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Running") => gang::PodPhase::Running,
        Some("Succeeded") => gang::PodPhase::Succeeded,
        Some("Failed") => gang::PodPhase::Failed,
        Some("Unknown") => gang::PodPhase::Unknown,
        _ => gang::PodPhase::Pending,
    };
    let pod = gang::Pod {
        uid: gang::PodUid(p.metadata.uid.clone().unwrap_or_default()),
        namespace: p.metadata.namespace.clone().unwrap_or_default(),
        name: p.metadata.name.clone().unwrap_or_default(),
        requests,
        group,
        priority: spec.and_then(|s| s.priority).unwrap_or(0),
        scheduler_name: spec
            .and_then(|s| s.scheduler_name.clone())
            .unwrap_or_else(|| "default-scheduler".into()),
        node_name: spec
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty()),
        phase,
        node_selector: spec
            .and_then(|s| s.node_selector.clone())
            .unwrap_or_default(),
        required_affinity,
        tolerations,
        created: time_millis(p.metadata.creation_timestamp.as_ref()),
        expected_duration,
        // Unset is Kubernetes' default; a value the API would not accept
        // is read as the one that evicts nothing.
        preemption_policy: match spec.and_then(|s| s.preemption_policy.as_deref()) {
            None | Some("PreemptLowerPriority") => gang::PreemptionPolicy::PreemptLowerPriority,
            Some(_) => gang::PreemptionPolicy::Never,
        },
        labels: p.metadata.labels.clone().unwrap_or_default(),
        terminating: p.metadata.deletion_timestamp.is_some(),
        termination_grace: p
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| spec.and_then(|s| s.termination_grace_period_seconds))
            .map(|s| gang::Millis(s.clamp(0, MAX_GRACE_SECONDS) * 1000)),
    };
    (pod, problems)
}

fn container_requests(
    c: &core::Container,
    path: &str,
    problems: &mut Vec<FieldError>,
) -> gang::Resources {
    let res = c.resources.as_ref();
    let mut r = resources(
        res.and_then(|r| r.requests.as_ref()),
        &format!("{path}.resources.requests"),
        problems,
    );
    // As the API server defaults them: a limit without a request is the request.
    let limits = resources(
        res.and_then(|r| r.limits.as_ref()),
        &format!("{path}.resources.limits"),
        &mut Vec::new(),
    );
    let requests = res.and_then(|r| r.requests.as_ref());
    let has = |k: &str| requests.is_some_and(|m| m.contains_key(k));
    if !has("cpu") {
        r.cpu_millis = limits.cpu_millis;
    }
    if !has("memory") {
        r.memory_bytes = limits.memory_bytes;
    }
    if !has(gang::GPU_RESOURCE) {
        r.gpus = limits.gpus;
    }
    for (k, v) in limits.extended {
        r.extended.entry(k).or_insert(v);
    }
    r
}

/// A PodGroup object, checked: minMember must be at least 1, timeouts non-negative.
pub fn pod_group(pg: &PodGroup) -> Result<gang::PodGroup, FieldError> {
    let min_member = pg.spec.min_member.unwrap_or(1);
    if min_member < 1 {
        return Err(field_error(
            "spec.minMember",
            format!("must be at least 1, got {min_member}"),
        ));
    }
    let schedule_timeout = match pg.spec.schedule_timeout_seconds {
        Some(s) if s < 0 => {
            return Err(field_error(
                "spec.scheduleTimeoutSeconds",
                format!("must not be negative, got {s}"),
            ));
        }
        Some(s) => Some(gang::Millis::from_secs(i64::from(s))),
        None => None,
    };
    for (name, q) in pg.spec.min_resources.iter().flatten() {
        if quantity::parse_nanos(&q.0).is_err() {
            return Err(field_error(
                format!("spec.minResources[{name:?}]"),
                format!("invalid quantity {:?}", q.0),
            ));
        }
    }
    Ok(gang::PodGroup {
        key: gang::GroupKey::new(
            pg.metadata.namespace.clone().unwrap_or_default(),
            pg.metadata.name.clone().unwrap_or_default(),
        ),
        min_member: min_member as u32,
        schedule_timeout,
        priority: 0,
        created: time_millis(pg.metadata.creation_timestamp.as_ref()),
        expected_duration: None,
        topology_key: None,
        max_member: None,
        preemption_policy: None,
        disruption: gang::DisruptionMode::Gang,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn node_with_topology_labels_and_odd_values() {
        let n: core::Node = from(json!({
            "metadata": {"name": "n1", "labels": {"topology.kubernetes.io/zone": "z1", "rack": "r7", "phalanx.dev/rack": ""}},
            "spec": {"taints": [{"key": "k", "effect": "Sometimes"}], "unschedulable": true},
            "status": {"allocatable": {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "4", "pods": "110", "rdma/hca": "1", "ephemeral-storage": "bogus"},
                       "conditions": [{"type": "Ready", "status": "False"}]},
        }));
        let (node, problems) = node(&n, "rack", None);
        assert_eq!(
            node.allocatable,
            gang::Resources {
                cpu_millis: 8000,
                memory_bytes: 32 << 30,
                gpus: 4,
                extended: [("rdma/hca".to_string(), 1)].into()
            }
        );
        assert_eq!(
            (node.zone.as_deref(), node.rack.as_deref()),
            (Some("z1"), Some("r7"))
        );
        assert!(node.unschedulable && !node.ready);
        assert_eq!(node.taints[0].effect, gang::TaintEffect::NoSchedule);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].field.contains("spec.taints[0].effect"));
    }

    #[test]
    fn preemption_policy_unknown_values_evict_nothing() {
        let policy = |v: serde_json::Value| {
            let p: core::Pod = from(json!({
                "metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
                "spec": {"containers": [{"name": "a"}], "preemptionPolicy": v},
            }));
            pod(&p, None).0.preemption_policy
        };
        use gang::PreemptionPolicy::{Never, PreemptLowerPriority};
        assert_eq!(policy(json!(null)), PreemptLowerPriority);
        assert_eq!(policy(json!("PreemptLowerPriority")), PreemptLowerPriority);
        assert_eq!(policy(json!("Never")), Never);
        assert_eq!(policy(json!("Sometimes")), Never);
    }

    #[test]
    fn termination_grace_prefers_the_deletion_and_is_bounded() {
        let grace = |meta: serde_json::Value, spec_grace: serde_json::Value| {
            let mut m = json!({"name": "p", "namespace": "ns", "uid": "u1"});
            if let (Some(m), Some(extra)) = (m.as_object_mut(), meta.as_object()) {
                m.extend(extra.clone());
            }
            let p: core::Pod = from(json!({
                "metadata": m,
                "spec": {"containers": [{"name": "a"}], "terminationGracePeriodSeconds": spec_grace},
            }));
            pod(&p, None).0.termination_grace
        };
        let secs = |s: i64| Some(gang::Millis::from_secs(s));
        assert_eq!(grace(json!({}), json!(null)), None);
        assert_eq!(grace(json!({}), json!(120)), secs(120));
        assert_eq!(
            grace(json!({"deletionGracePeriodSeconds": 5}), json!(120)),
            secs(5),
            "a deletion's own grace period wins"
        );
        assert_eq!(grace(json!({}), json!(-7)), secs(0));
        assert_eq!(grace(json!({}), json!(i64::MAX)), secs(1 << 30));
    }

    #[test]
    fn pod_effective_requests() {
        let p: core::Pod = from(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "annotations": {"phalanx.dev/duration-seconds": "90"}},
            "spec": {
                "schedulerName": "phalanx",
                "containers": [
                    {"name": "a", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}},
                    {"name": "b", "resources": {"limits": {"cpu": "1", "nvidia.com/gpu": "2"}}},
                ],
                "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "4"}}}],
                "overhead": {"cpu": "100m"},
                "tolerations": [{"operator": "Exists"}],
            },
        }));
        let (pod, problems) = pod(&p, None);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(pod.requests.cpu_millis, 4100);
        assert_eq!(pod.requests.memory_bytes, 1 << 30);
        assert_eq!(pod.requests.gpus, 2);
        assert_eq!(pod.expected_duration, Some(gang::Millis(90_000)));
        assert_eq!(pod.tolerations[0].key, None);
    }

    #[test]
    fn podgroup_validation_names_fields() {
        let mut pg = PodGroup::new("g", Default::default());
        pg.metadata.namespace = Some("ns".into());
        pg.spec.min_member = Some(0);
        assert_eq!(pod_group(&pg).unwrap_err().field, "spec.minMember");
        pg.spec.min_member = Some(4);
        pg.spec.schedule_timeout_seconds = Some(-1);
        assert_eq!(
            pod_group(&pg).unwrap_err().field,
            "spec.scheduleTimeoutSeconds"
        );
        pg.spec.schedule_timeout_seconds = Some(30);
        let g = pod_group(&pg).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (g.min_member, g.schedule_timeout),
            (4, Some(gang::Millis(30_000)))
        );
    }

    #[test]
    fn numa_zones_and_policy_from_node_resource_topology() {
        let n: core::Node =
            from(json!({"metadata": {"name": "n"}, "status": {"allocatable": {"cpu": "8"}}}));
        let t: NodeResourceTopology = from(json!({
            "metadata": {"name": "n"},
            "attributes": [{"name": "topologyManagerPolicy", "value": "single-numa-node"}],
            "zones": [
                {"name": "node-0", "type": "Node", "resources": [{"name": "cpu", "allocatable": "4"}, {"name": "nvidia.com/gpu", "allocatable": "2"}]},
                {"name": "node-1", "type": "Node", "resources": [{"name": "cpu", "allocatable": "4"}, {"name": "memory", "allocatable": "bad"}]},
                {"name": "socket-0", "type": "Socket", "resources": []},
            ],
        }));
        let (node, problems) = node(&n, "rack", Some(&t));
        assert_eq!(node.numa_policy, gang::NumaPolicy::SingleNumaNode);
        assert_eq!(node.numa_zones.len(), 2);
        assert_eq!(
            (
                node.numa_zones[0].id,
                node.numa_zones[0].cpu_millis,
                node.numa_zones[0].gpus
            ),
            (0, 4000, 2)
        );
        assert_eq!(node.numa_zones[1].id, 1);
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].field.starts_with("zones[1].resources[1]"),
            "{problems:?}"
        );
    }
}
