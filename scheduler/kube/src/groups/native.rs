//! Kubernetes' own gang API, `scheduling.k8s.io`:
//! - 1.35, `v1alpha1`: a `Workload` embeds `spec.podGroups[]` (`name`, `policy`);
//!   a pod names it with `spec.workloadRef` (`name`, `podGroup`, `podGroupReplicaKey`);
//! - 1.36, `v1alpha2`: a standalone `PodGroup` (`spec.schedulingPolicy.gang.minCount`
//!   or `basic`, optional `spec.schedulingConstraints.topology[].key`); a pod names
//!   it with `spec.schedulingGroup.podGroupName`. A `Workload` holds
//!   `spec.podGroupTemplates[]` that controllers copy into PodGroups;
//! - 1.37, `v1beta1`: the same shapes as `v1alpha2`.
//!
//! The objects are read as untyped JSON with the small structs below:
//! k8s-openapi compiles one Kubernetes version, and none of its versions has
//! both pod fields (`workloadRef` went away when `schedulingGroup` came), so
//! the pod watch reads those two fields from the raw object ([`PodObject`])
//! and keeps the typed `Pod` for everything else.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1 as core;
use kube::api::{DynamicObject, ObjectMeta};
use phalanx_gang as gang;
use serde::de::value::MapAccessDeserializer;
use serde::de::{DeserializeSeed, IgnoredAny, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::{Claim, Convention, Kind, Objects, Outcome, Parsed, derived, object_wait, size_of};
use crate::convert::{self, FieldError};

/// The group a pod names through the native API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NativeRef {
    /// `spec.schedulingGroup.podGroupName` (v1alpha2 and later).
    PodGroup(String),
    /// `spec.workloadRef` (v1alpha1).
    Workload {
        /// Workload name.
        name: String,
        /// Pod group within the Workload.
        pod_group: String,
        /// Replica of that pod group, if the Workload has several.
        replica_key: Option<String>,
    },
}

impl NativeRef {
    /// The reference in a pod's raw `spec`, if any.
    pub fn from_spec(spec: Option<&serde_json::Value>) -> Option<Self> {
        let spec = spec?;
        let text = |v: &serde_json::Value, k: &str| {
            v.get(k)
                .and_then(serde_json::Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        if let Some(name) = spec
            .get("schedulingGroup")
            .and_then(|g| text(g, "podGroupName"))
        {
            return Some(NativeRef::PodGroup(name));
        }
        let w = spec.get("workloadRef")?;
        Some(NativeRef::Workload {
            name: text(w, "name")?,
            pod_group: text(w, "podGroup").unwrap_or_default(),
            replica_key: text(w, "podGroupReplicaKey"),
        })
    }
}

/// A Pod as watched: the typed object plus the native group reference read from the raw JSON.
#[derive(Debug, Clone)]
pub struct PodObject {
    /// The pod.
    pub pod: core::Pod,
    /// Its native group reference, if any.
    pub native: Option<NativeRef>,
}

// One pass over the JSON: the two native fields are taken out of `spec` on the
// way to the typed PodSpec (a detour through serde_json::Value cost 40% more per pod).
impl<'de> Deserialize<'de> for PodObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(PodVisitor)
    }
}

struct PodVisitor;

impl<'de> Visitor<'de> for PodVisitor {
    type Value = PodObject;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a Pod object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PodObject, A::Error> {
        let mut pod = core::Pod::default();
        let mut native = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "metadata" => pod.metadata = map.next_value()?,
                "spec" => {
                    if let Some(spec) = map.next_value::<Option<SpecWithRefs>>()? {
                        pod.spec = Some(spec.spec);
                        native = spec.native;
                    }
                }
                "status" => pod.status = map.next_value()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(PodObject { pod, native })
    }
}

/// A PodSpec and the native reference taken out of it.
struct SpecWithRefs {
    spec: core::PodSpec,
    native: Option<NativeRef>,
}

impl<'de> Deserialize<'de> for SpecWithRefs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SpecWithRefs;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a PodSpec object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<SpecWithRefs, A::Error> {
                let mut refs = RefTaker {
                    inner: map,
                    taken: serde_json::Map::new(),
                };
                let spec = core::PodSpec::deserialize(MapAccessDeserializer::new(&mut refs))?;
                let taken = serde_json::Value::Object(refs.taken);
                Ok(SpecWithRefs {
                    spec,
                    native: NativeRef::from_spec(Some(&taken)),
                })
            }
        }
        d.deserialize_map(V)
    }
}

/// Hands a map to PodSpec's deserializer minus `schedulingGroup` and `workloadRef`, kept aside.
struct RefTaker<A> {
    inner: A,
    taken: serde_json::Map<String, serde_json::Value>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for &mut RefTaker<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        loop {
            let Some(key) = self.inner.next_key::<String>()? else {
                return Ok(None);
            };
            if key == "schedulingGroup" || key == "workloadRef" {
                let v: serde_json::Value = self.inner.next_value()?;
                self.taken.insert(key, v);
                continue;
            }
            return seed.deserialize(key.into_deserializer()).map(Some);
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.inner.next_value_seed(seed)
    }
}

impl kube::Resource for PodObject {
    type DynamicType = ();
    type Scope = kube::core::NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "Pod".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "pods".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.pod.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.pod.metadata
    }
}

/// A native scheduling policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// All-or-nothing for at least this many pods.
    Gang(u32),
    /// Pod by pod, as kube-scheduler does without gangs.
    Basic,
}

/// A native PodGroup, as far as scheduling goes.
#[derive(Debug, Clone, PartialEq)]
pub struct NativePodGroup {
    /// Its policy.
    pub policy: Policy,
    /// Its priority (`spec.priority`), 0 if unset (the pods' priority then decides).
    pub priority: i32,
    /// `spec.preemptionPolicy` (v1beta1), if set.
    pub preemption_policy: Option<gang::PreemptionPolicy>,
    /// `spec.disruptionMode`: whether it may only be disrupted whole
    /// (v1alpha2 `PodGroup`, v1beta1 `all`) or pod by pod (v1alpha2 `Pod`,
    /// v1beta1 `single`, the default of both).
    pub disrupt_whole: bool,
    /// The node label its pods must share one value of (`spec.schedulingConstraints.topology[0].key`).
    pub topology_key: Option<String>,
    /// `spec.parentCompositePodGroupName` (v1beta1 with the 1.37
    /// CompositePodGroup gate): the composite group it belongs to.
    pub parent: Option<String>,
    /// Creation time.
    pub created: gang::Timestamp,
}

/// A native Workload: its pod groups (v1alpha1) or pod group templates (v1alpha2+) by name.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// Policy of each named pod group.
    pub groups: BTreeMap<String, Policy>,
    /// Creation time.
    pub created: gang::Timestamp,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawGang {
    min_count: i64,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawPolicy {
    #[serde(default)]
    basic: Option<serde_json::Value>,
    #[serde(default)]
    gang: Option<RawGang>,
}

#[derive(Deserialize)]
pub(super) struct RawTopology {
    key: String,
}

#[derive(Deserialize, Default)]
pub(super) struct RawConstraints {
    #[serde(default)]
    topology: Option<Vec<RawTopology>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawPodGroupSpec {
    #[serde(default)]
    scheduling_policy: Option<RawPolicy>,
    #[serde(default)]
    scheduling_constraints: Option<RawConstraints>,
    #[serde(default)]
    priority: Option<i32>,
    #[serde(default)]
    preemption_policy: Option<String>,
    // A string in v1alpha2 (`Pod`, `PodGroup`), an object in v1beta1 (`{single: {}}`, `{all: {}}`).
    #[serde(default)]
    disruption_mode: Option<serde_json::Value>,
    #[serde(default)]
    parent_composite_pod_group_name: Option<String>,
}

#[derive(Deserialize)]
struct RawPodGroup {
    metadata: ObjectMeta,
    #[serde(default)]
    spec: RawPodGroupSpec,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawWorkloadGroup {
    name: String,
    // v1alpha1 calls it `policy`, v1alpha2 and later `schedulingPolicy`.
    #[serde(default)]
    policy: Option<RawPolicy>,
    #[serde(default)]
    scheduling_policy: Option<RawPolicy>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawWorkloadSpec {
    #[serde(default)]
    pod_groups: Option<Vec<RawWorkloadGroup>>,
    #[serde(default)]
    pod_group_templates: Option<Vec<RawWorkloadGroup>>,
}

#[derive(Deserialize)]
struct RawWorkload {
    metadata: ObjectMeta,
    #[serde(default)]
    spec: RawWorkloadSpec,
}

fn policy(p: Option<&RawPolicy>, field: &str) -> Result<Policy, FieldError> {
    let bad = |message: String| FieldError {
        field: field.to_string(),
        message,
    };
    match p {
        Some(RawPolicy {
            gang: Some(g),
            basic: None,
        }) => size_of(g.min_count)
            .map(Policy::Gang)
            .ok_or_else(|| FieldError {
                field: format!("{field}.gang.minCount"),
                message: format!(
                    "must be a positive integer up to {}, got {}",
                    super::MAX_GROUP_SIZE,
                    g.min_count
                ),
            }),
        Some(RawPolicy {
            gang: None,
            basic: Some(_),
        }) => Ok(Policy::Basic),
        Some(RawPolicy {
            gang: Some(_),
            basic: Some(_),
        }) => Err(bad(
            "exactly one of basic or gang must be set, got both".into()
        )),
        _ => Err(bad("exactly one of basic or gang must be set".into())),
    }
}

/// `spec.disruptionMode` in either version's shape: whether the group may only be disrupted whole.
pub(super) fn disrupt_whole(v: Option<&serde_json::Value>) -> Result<bool, FieldError> {
    let bad = |message: String| FieldError {
        field: "spec.disruptionMode".into(),
        message,
    };
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(false);
    };
    if let Some(s) = v.as_str() {
        return match s {
            "Pod" => Ok(false),
            "PodGroup" => Ok(true),
            other => Err(bad(format!("must be Pod or PodGroup, got {other:?}"))),
        };
    }
    let set = |k: &str| v.get(k).is_some_and(|x| !x.is_null());
    match (set("single"), set("all")) {
        (true, false) => Ok(false),
        (false, true) => Ok(true),
        _ => Err(bad(format!(
            "exactly one of single or all must be set, got {v}"
        ))),
    }
}

/// Parses a native PodGroup (any version).
pub fn parse_podgroup(obj: &DynamicObject) -> Result<NativePodGroup, FieldError> {
    let raw: RawPodGroup = super::parse_object(obj)?;
    let policy = policy(raw.spec.scheduling_policy.as_ref(), "spec.schedulingPolicy")?;
    Ok(NativePodGroup {
        policy,
        priority: raw.spec.priority.unwrap_or(0),
        preemption_policy: preemption_policy(raw.spec.preemption_policy.as_deref())?,
        disrupt_whole: disrupt_whole(raw.spec.disruption_mode.as_ref())?,
        topology_key: topology_key(raw.spec.scheduling_constraints),
        parent: parent_name(raw.spec.parent_composite_pod_group_name)?,
        created: convert::time_millis(raw.metadata.creation_timestamp.as_ref()),
    })
}

/// `spec.preemptionPolicy` of a native group (v1beta1): None when unset.
pub(super) fn preemption_policy(
    v: Option<&str>,
) -> Result<Option<gang::PreemptionPolicy>, FieldError> {
    match v {
        None | Some("") => Ok(None),
        Some("PreemptLowerPriority") => Ok(Some(gang::PreemptionPolicy::PreemptLowerPriority)),
        Some("Never") => Ok(Some(gang::PreemptionPolicy::Never)),
        Some(other) => Err(FieldError {
            field: "spec.preemptionPolicy".into(),
            message: format!("must be PreemptLowerPriority or Never, got {other:?}"),
        }),
    }
}

/// The first topology key of `spec.schedulingConstraints`, if any.
pub(super) fn topology_key(c: Option<RawConstraints>) -> Option<String> {
    c.and_then(|c| c.topology)
        .and_then(|t| t.into_iter().next())
        .map(|t| t.key)
        .filter(|k| !k.is_empty())
}

/// `spec.parentCompositePodGroupName`: None when unset or empty; a name
/// that cannot be an object's name is refused.
pub(super) fn parent_name(v: Option<String>) -> Result<Option<String>, FieldError> {
    match v.filter(|n| !n.is_empty()) {
        Some(n) if n.len() > 253 || n.contains('/') => Err(FieldError {
            field: "spec.parentCompositePodGroupName".into(),
            message: format!(
                "must be a DNS subdomain name, got {:?}",
                crate::text::prefix(&n, 64)
            ),
        }),
        other => Ok(other),
    }
}

/// Parses a native Workload (any version).
pub fn parse_workload(obj: &DynamicObject) -> Result<Workload, FieldError> {
    let raw: RawWorkload = super::parse_object(obj)?;
    let (list, field) = match (raw.spec.pod_groups, raw.spec.pod_group_templates) {
        (Some(l), _) => (l, "spec.podGroups"),
        (None, Some(l)) => (l, "spec.podGroupTemplates"),
        (None, None) => (Vec::new(), "spec.podGroups"),
    };
    let mut groups = BTreeMap::new();
    for (i, g) in list.iter().enumerate() {
        let p = g.policy.as_ref().or(g.scheduling_policy.as_ref());
        let name = if g.policy.is_some() {
            "policy"
        } else {
            "schedulingPolicy"
        };
        groups.insert(g.name.clone(), policy(p, &format!("{field}[{i}].{name}"))?);
    }
    Ok(Workload {
        groups,
        created: convert::time_millis(raw.metadata.creation_timestamp.as_ref()),
    })
}

/// How a native group maps onto the core's disruption modes. Phalanx never
/// breaks a gang's minimum: a gang in `Pod` / `single` mode still loses
/// only members above its minimum, one by one, and its minimum whole; only a
/// group whose minimum is one pod may lose every member singly.
pub fn disruption(min_count: u32, whole: bool) -> gang::DisruptionMode {
    if min_count <= 1 && !whole {
        gang::DisruptionMode::Pod
    } else {
        gang::DisruptionMode::Gang
    }
}

pub(super) fn outcome(
    policy: Policy,
    key: &gang::GroupKey,
    created: gang::Timestamp,
    g: Option<&NativePodGroup>,
) -> Outcome {
    match policy {
        Policy::Gang(n) => {
            let mut out = derived(key, n, created);
            if let Some(g) = g {
                out.priority = g.priority;
                out.topology_key = g.topology_key.clone();
                out.preemption_policy = g.preemption_policy;
                out.disruption = disruption(n, g.disrupt_whole);
            }
            Outcome::Member(Some(out))
        }
        Policy::Basic => Outcome::Alone,
    }
}

/// The group key of a native PodGroup.
pub fn podgroup_key(ns: &str, name: &str) -> gang::GroupKey {
    gang::GroupKey::new(ns, format!("podgroup:{name}"))
}

/// The native PodGroup name behind a group key, if it is one.
pub fn podgroup_name(key: &gang::GroupKey) -> Option<&str> {
    key.name.strip_prefix("podgroup:")
}

/// The native claim on a pod that names a group.
pub fn claim(p: &core::Pod, r: &NativeRef, objects: &Objects) -> Claim {
    let ns = super::namespace(p);
    match r {
        NativeRef::PodGroup(name) => {
            let key = podgroup_key(&ns, name);
            let out = match object_wait(objects, Kind::NativePodGroup, &ns, name) {
                Ok(Parsed::NativePodGroup(g)) => match &g.parent {
                    None => outcome(g.policy, &key, g.created, Some(g)),
                    Some(parent) => match super::composite::unit_of(objects, &ns, parent) {
                        Ok(None) => outcome(g.policy, &key, g.created, Some(g)),
                        Ok(Some(unit)) => {
                            let key = super::composite::composite_key(&ns, &unit);
                            let out = super::composite::unit_outcome(objects, &ns, &unit);
                            return Claim::new(Convention::Native, key, out);
                        }
                        Err(why) => Outcome::Wait(why),
                    },
                },
                Ok(_) => Outcome::Wait(format!("PodGroup {ns}/{name} is of another kind")),
                Err(why) => Outcome::Wait(why),
            };
            Claim::new(Convention::Native, key, out)
        }
        NativeRef::Workload {
            name,
            pod_group,
            replica_key,
        } => {
            let mut key_name = format!("workload:{name}:{pod_group}");
            if let Some(r) = replica_key {
                key_name.push(':');
                key_name.push_str(r);
            }
            let key = gang::GroupKey::new(ns.clone(), key_name);
            let out = match object_wait(objects, Kind::Workload, &ns, name) {
                Ok(Parsed::Workload(w)) => match w.groups.get(pod_group) {
                    Some(policy) => outcome(*policy, &key, w.created, None),
                    None => Outcome::Wait(format!(
                        "Workload {ns}/{name} has no pod group {pod_group:?}"
                    )),
                },
                Ok(_) => Outcome::Wait(format!("Workload {ns}/{name} is of another kind")),
                Err(why) => Outcome::Wait(why),
            };
            Claim::new(Convention::Native, key, out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: serde_json::Value) -> DynamicObject {
        serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn pod_object_keeps_both_native_references() {
        let p: PodObject = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"containers": [], "schedulingGroup": {"podGroupName": "g"}},
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.native, Some(NativeRef::PodGroup("g".into())));
        assert_eq!(p.pod.metadata.name.as_deref(), Some("p"));
        let w: PodObject = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [], "workloadRef": {"name": "w", "podGroup": "workers", "podGroupReplicaKey": "0"}},
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            w.native,
            Some(NativeRef::Workload {
                name: "w".into(),
                pod_group: "workers".into(),
                replica_key: Some("0".into())
            })
        );
    }

    /// Cost of reading the native references from the raw pod, against the typed
    /// Pod alone. Run with `cargo test -p phalanx-kube --release pod_object_cost -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn pod_object_cost() {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "mpi-worker-7", "namespace": "ns", "uid": "0b6f6f1e-2f7e-4c39-9a8a-1d1f0d7f9c11",
                         "resourceVersion": "123456", "creationTimestamp": "2026-01-01T00:00:00Z",
                         "labels": {"app": "mpi", "batch.kubernetes.io/job-name": "mpi", "scheduling.x-k8s.io/pod-group": "mpi"},
                         "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "mpi", "uid": "u", "controller": true}]},
            "spec": {"schedulerName": "phalanx", "schedulingGroup": {"podGroupName": "mpi"},
                     "containers": [{"name": "w", "image": "busybox", "command": ["sh", "-c", "sleep 30"],
                                     "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                                     "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}],
                     "tolerations": [{"key": "k", "operator": "Exists"}], "restartPolicy": "Never"},
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False"}]},
        })
        .to_string();
        let n = 20_000;
        let t = std::time::Instant::now();
        for _ in 0..n {
            let p: core::Pod = serde_json::from_str(&pod).unwrap_or_default();
            std::hint::black_box(p);
        }
        let typed = t.elapsed();
        let t = std::time::Instant::now();
        for _ in 0..n {
            let p: Option<PodObject> = serde_json::from_str(&pod).ok();
            std::hint::black_box(p);
        }
        let object = t.elapsed();
        println!(
            "typed Pod: {:.2} us/pod; PodObject: {:.2} us/pod",
            typed.as_secs_f64() * 1e6 / f64::from(n),
            object.as_secs_f64() * 1e6 / f64::from(n)
        );
    }

    #[test]
    fn podgroup_policies_and_errors_name_fields() {
        let g = parse_podgroup(&obj(json!({
            "apiVersion": "scheduling.k8s.io/v1alpha2", "kind": "PodGroup",
            "metadata": {"name": "g", "namespace": "ns"},
            "spec": {"schedulingPolicy": {"gang": {"minCount": 4}},
                     "schedulingConstraints": {"topology": [{"key": "topology.kubernetes.io/zone"}]}},
        })))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(g.policy, Policy::Gang(4));
        assert_eq!(
            g.topology_key.as_deref(),
            Some("topology.kubernetes.io/zone")
        );
        let basic = parse_podgroup(&obj(json!({
            "apiVersion": "scheduling.k8s.io/v1beta1", "kind": "PodGroup",
            "metadata": {"name": "b", "namespace": "ns"},
            "spec": {"schedulingPolicy": {"basic": {}}},
        })))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(basic.policy, Policy::Basic);
        let zero = parse_podgroup(&obj(json!({
            "apiVersion": "scheduling.k8s.io/v1alpha2", "kind": "PodGroup",
            "metadata": {"name": "z", "namespace": "ns"},
            "spec": {"schedulingPolicy": {"gang": {"minCount": 0}}},
        })));
        assert_eq!(
            zero.map_err(|e| e.field),
            Err("spec.schedulingPolicy.gang.minCount".to_string())
        );
        let typo = parse_podgroup(&obj(json!({
            "apiVersion": "scheduling.k8s.io/v1alpha2", "kind": "PodGroup",
            "metadata": {"name": "t", "namespace": "ns"},
            "spec": {"schedulingPolicy": {"gang": {"minCount": "four"}}},
        })));
        assert!(
            typo.as_ref().is_err_and(|e| e.field.contains("minCount")),
            "{typo:?}"
        );
    }

    #[test]
    fn priority_preemption_policy_and_disruption_modes_of_both_versions() {
        let a2 = parse_podgroup(&obj(json!({
            "apiVersion": "scheduling.k8s.io/v1alpha2", "kind": "PodGroup",
            "metadata": {"name": "g", "namespace": "ns"},
            "spec": {"schedulingPolicy": {"gang": {"minCount": 4}}, "priority": 1000,
                     "disruptionMode": "PodGroup"},
        })))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((a2.priority, a2.disrupt_whole), (1000, true));
        assert_eq!(a2.preemption_policy, None);
        let b1 = parse_podgroup(&obj(json!({
            "apiVersion": "scheduling.k8s.io/v1beta1", "kind": "PodGroup",
            "metadata": {"name": "g", "namespace": "ns"},
            "spec": {"schedulingPolicy": {"gang": {"minCount": 1}}, "priority": -5,
                     "preemptionPolicy": "Never", "disruptionMode": {"single": {}}},
        })))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((b1.priority, b1.disrupt_whole), (-5, false));
        assert_eq!(b1.preemption_policy, Some(gang::PreemptionPolicy::Never));
        let all = parse_podgroup(&obj(json!({
            "apiVersion": "scheduling.k8s.io/v1beta1", "kind": "PodGroup",
            "metadata": {"name": "g", "namespace": "ns"},
            "spec": {"schedulingPolicy": {"gang": {"minCount": 2}}, "disruptionMode": {"all": {}}},
        })))
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(all.disrupt_whole);
        // Single/Pod never breaks a minimum above one; a minimum of one may go pod by pod.
        assert_eq!(disruption(4, false), gang::DisruptionMode::Gang);
        assert_eq!(disruption(4, true), gang::DisruptionMode::Gang);
        assert_eq!(disruption(1, false), gang::DisruptionMode::Pod);
        assert_eq!(disruption(1, true), gang::DisruptionMode::Gang);
        for (mode, field) in [
            (json!("Sometimes"), "spec.disruptionMode"),
            (json!({"single": {}, "all": {}}), "spec.disruptionMode"),
        ] {
            let bad = parse_podgroup(&obj(json!({
                "apiVersion": "scheduling.k8s.io/v1beta1", "kind": "PodGroup",
                "metadata": {"name": "g", "namespace": "ns"},
                "spec": {"schedulingPolicy": {"gang": {"minCount": 2}}, "disruptionMode": mode},
            })));
            assert_eq!(bad.map_err(|e| e.field), Err(field.to_string()));
        }
        let bad = parse_podgroup(&obj(json!({
            "apiVersion": "scheduling.k8s.io/v1beta1", "kind": "PodGroup",
            "metadata": {"name": "g", "namespace": "ns"},
            "spec": {"schedulingPolicy": {"gang": {"minCount": 2}}, "preemptionPolicy": "Sometimes"},
        })));
        assert_eq!(
            bad.map_err(|e| e.field),
            Err("spec.preemptionPolicy".to_string())
        );
    }

    #[test]
    fn hostile_priorities_counts_and_modes_name_the_field() {
        let pg = |spec: serde_json::Value| {
            parse_podgroup(&obj(json!({
                "apiVersion": "scheduling.k8s.io/v1beta1", "kind": "PodGroup",
                "metadata": {"name": "g", "namespace": "ns"}, "spec": spec,
            })))
        };
        let gang = json!({"gang": {"minCount": 2}});
        for p in [i32::MIN, i32::MAX] {
            let g = pg(json!({"schedulingPolicy": gang, "priority": p}))
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(g.priority, p);
        }
        for p in [
            json!(i64::from(i32::MAX) + 1),
            json!(i64::from(i32::MIN) - 1),
            json!(1.5),
            json!("1000"),
        ] {
            let got = pg(json!({"schedulingPolicy": gang, "priority": p}));
            assert!(
                got.as_ref().is_err_and(|e| e.field.contains("priority")),
                "priority {p}: {got:?}"
            );
        }
        for n in [
            json!(-1),
            json!(0),
            json!(i64::MAX),
            json!(u64::MAX),
            json!(u64::from(u32::MAX) + 1),
        ] {
            let got = pg(json!({"schedulingPolicy": {"gang": {"minCount": n}}}));
            assert!(
                got.as_ref().is_err_and(|e| e.field.contains("minCount")),
                "minCount {n}: {got:?}"
            );
        }
        for mode in [
            json!("pod"),
            json!(""),
            json!(7),
            json!([]),
            json!({}),
            json!({"some": {}}),
        ] {
            let got = pg(json!({"schedulingPolicy": gang, "disruptionMode": mode}));
            assert_eq!(
                got.map_err(|e| e.field),
                Err("spec.disruptionMode".to_string()),
                "disruptionMode {mode}"
            );
        }
        for policy in [json!("never"), json!("PreemptHigherPriority"), json!(1)] {
            let got = pg(json!({"schedulingPolicy": gang, "preemptionPolicy": policy}));
            assert!(
                got.as_ref()
                    .is_err_and(|e| e.field.contains("preemptionPolicy")),
                "preemptionPolicy {policy}: {got:?}"
            );
        }
    }

    #[test]
    fn workload_v1alpha1_and_v1alpha2_shapes() {
        let a1 = parse_workload(&obj(json!({
            "apiVersion": "scheduling.k8s.io/v1alpha1", "kind": "Workload",
            "metadata": {"name": "w", "namespace": "ns"},
            "spec": {"podGroups": [{"name": "workers", "policy": {"gang": {"minCount": 3}}},
                                   {"name": "driver", "policy": {"basic": {}}}]},
        })))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a1.groups.get("workers"), Some(&Policy::Gang(3)));
        assert_eq!(a1.groups.get("driver"), Some(&Policy::Basic));
        let a2 = parse_workload(&obj(json!({
            "apiVersion": "scheduling.k8s.io/v1alpha2", "kind": "Workload",
            "metadata": {"name": "w", "namespace": "ns"},
            "spec": {"podGroupTemplates": [{"name": "t", "schedulingPolicy": {}}]},
        })));
        assert_eq!(
            a2.map_err(|e| e.field),
            Err("spec.podGroupTemplates[0].schedulingPolicy".to_string())
        );
    }
}
