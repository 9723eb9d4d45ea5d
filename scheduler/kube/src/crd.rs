//! Custom resources the scheduler reads and writes: the PodGroup of
//! scheduler-plugins (`scheduling.x-k8s.io/v1alpha1`) and, where installed,
//! NodeResourceTopology (`topology.node.k8s.io/v1alpha2`).
//!
//! The deployment generates the CRD YAML from these types with
//! `kube::CustomResourceExt::crd()` (e.g. `serde_yaml_ng::to_string(&PodGroup::crd())`).

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Spec of a PodGroup: a set of pods scheduled all-or-nothing.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "scheduling.x-k8s.io",
    version = "v1alpha1",
    kind = "PodGroup",
    plural = "podgroups",
    shortname = "pg",
    shortname = "pgs",
    namespaced,
    status = "PodGroupStatus",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"MinMember","type":"integer","jsonPath":".spec.minMember"}"#,
    printcolumn = r#"{"name":"Running","type":"integer","jsonPath":".status.running"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct PodGroupSpec {
    /// Pods that must be placed together before any is bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_member: Option<i32>,
    /// Resources the whole group needs at least (informational for the matcher).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_resources: Option<BTreeMap<String, Quantity>>,
    /// Seconds the group may wait for its pods before unused slots are given up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_timeout_seconds: Option<i32>,
}

/// Status of a PodGroup, written through the status subresource.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodGroupStatus {
    /// Pending, Scheduling, Scheduled, Running, Finished or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Why the group waits or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Member pods bound to nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled: Option<i32>,
    /// Member pods running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<i32>,
    /// Member pods that succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succeeded: Option<i32>,
    /// Member pods that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<i32>,
    /// When the scheduler first tried to place the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_start_time: Option<Time>,
}

/// NodeResourceTopology (`topology.node.k8s.io/v1alpha2`): per-NUMA-zone resources of one node.
/// Cluster-scoped; its name is the node's name. Only the fields the scheduler reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeResourceTopology {
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: kube::api::ObjectMeta,
    /// Topology Manager policies, e.g. `SingleNUMANodeContainerLevel` (v1alpha1 field, kept by some exporters).
    #[serde(default)]
    pub topology_policies: Vec<String>,
    /// Attributes, among them `topologyManagerPolicy` (v1alpha2).
    #[serde(default)]
    pub attributes: Vec<NrtAttribute>,
    /// Zones (NUMA nodes and others).
    #[serde(default)]
    pub zones: Vec<NrtZone>,
}

/// A name/value attribute of a NodeResourceTopology.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NrtAttribute {
    /// Attribute name.
    #[serde(default)]
    pub name: String,
    /// Attribute value.
    #[serde(default)]
    pub value: String,
}

/// One zone of a NodeResourceTopology.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NrtZone {
    /// Zone name, e.g. `node-0`.
    #[serde(default)]
    pub name: String,
    /// Zone type; NUMA zones are `Node`.
    #[serde(default, rename = "type")]
    pub type_: String,
    /// Resources in the zone.
    #[serde(default)]
    pub resources: Vec<NrtResource>,
}

/// One resource of a zone.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NrtResource {
    /// Resource name (`cpu`, `memory`, `nvidia.com/gpu`).
    #[serde(default)]
    pub name: String,
    /// Allocatable amount.
    #[serde(default)]
    pub allocatable: Option<Quantity>,
    /// Capacity.
    #[serde(default)]
    pub capacity: Option<Quantity>,
}

impl kube::Resource for NodeResourceTopology {
    type DynamicType = ();
    type Scope = kube::core::ClusterResourceScope;

    fn kind(_: &()) -> std::borrow::Cow<'_, str> {
        "NodeResourceTopology".into()
    }
    fn group(_: &()) -> std::borrow::Cow<'_, str> {
        "topology.node.k8s.io".into()
    }
    fn version(_: &()) -> std::borrow::Cow<'_, str> {
        "v1alpha2".into()
    }
    fn plural(_: &()) -> std::borrow::Cow<'_, str> {
        "noderesourcetopologies".into()
    }
    fn meta(&self) -> &kube::api::ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut kube::api::ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;

    #[test]
    fn podgroup_crd_has_status_subresource_and_fields() {
        let crd = PodGroup::crd();
        assert_eq!(crd.spec.group, "scheduling.x-k8s.io");
        assert_eq!(crd.spec.names.plural, "podgroups");
        let v = &crd.spec.versions[0];
        assert_eq!(v.name, "v1alpha1");
        assert!(
            v.subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some()
        );
        let schema = serde_json::to_string(&v.schema).unwrap_or_default();
        for field in [
            "minMember",
            "minResources",
            "scheduleTimeoutSeconds",
            "scheduleStartTime",
            "succeeded",
        ] {
            assert!(schema.contains(field), "schema lacks {field}");
        }
    }

    #[test]
    fn podgroup_reads_coscheduling_json() {
        let pg: PodGroup = serde_json::from_value(serde_json::json!({
            "apiVersion": "scheduling.x-k8s.io/v1alpha1", "kind": "PodGroup",
            "metadata": {"name": "g", "namespace": "ns"},
            "spec": {"minMember": 4, "scheduleTimeoutSeconds": 10, "minResources": {"cpu": "4"}},
            "status": {"phase": "Pending", "running": 0},
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(pg.spec.min_member, Some(4));
        assert_eq!(pg.status.and_then(|s| s.phase).as_deref(), Some("Pending"));
    }
}
