//! The resource types the test server knows, and discovery documents built from them.

use serde_json::{Value, json};

/// One served resource type (a REST collection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceType {
    /// API group; "" for the core group.
    pub group: String,
    /// API version, e.g. `v1`.
    pub version: String,
    /// Plural resource name in URLs, e.g. `pods`.
    pub plural: String,
    /// Object kind, e.g. `Pod`.
    pub kind: String,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Whether `/status` is a subresource (main-resource writes then keep the old status).
    pub status_subresource: bool,
}

impl ResourceType {
    /// A resource type description.
    pub fn new(
        group: &str,
        version: &str,
        plural: &str,
        kind: &str,
        namespaced: bool,
        status: bool,
    ) -> Self {
        Self {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
            kind: kind.into(),
            namespaced,
            status_subresource: status,
        }
    }

    /// `apiVersion` as written in objects.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The storage key, `group/version/plural`.
    pub fn key(&self) -> String {
        format!("{}/{}/{}", self.group, self.version, self.plural)
    }

    /// The NodeResourceTopology CRD (`topology.node.k8s.io/v1alpha2`), which tests install on demand.
    pub fn node_resource_topology() -> Self {
        Self::new(
            "topology.node.k8s.io",
            "v1alpha2",
            "noderesourcetopologies",
            "NodeResourceTopology",
            false,
            false,
        )
    }
}

impl ResourceType {
    /// Kubernetes' native PodGroup (`scheduling.k8s.io`) in `version` (`v1alpha2`, `v1beta1`).
    pub fn native_podgroup(version: &str) -> Self {
        Self::new(
            "scheduling.k8s.io",
            version,
            "podgroups",
            "PodGroup",
            true,
            true,
        )
    }

    /// Kubernetes' native Workload (`scheduling.k8s.io`) in `version` (`v1alpha1`, `v1alpha2`, `v1beta1`).
    pub fn native_workload(version: &str) -> Self {
        Self::new(
            "scheduling.k8s.io",
            version,
            "workloads",
            "Workload",
            true,
            true,
        )
    }

    /// Kubernetes 1.37's CompositePodGroup (`scheduling.k8s.io/v1alpha3`,
    /// served with the CompositePodGroup feature gate on).
    pub fn composite_podgroup() -> Self {
        Self::new(
            "scheduling.k8s.io",
            "v1alpha3",
            "compositepodgroups",
            "CompositePodGroup",
            true,
            true,
        )
    }

    /// The JobSet CRD (`jobset.x-k8s.io/v1alpha2`).
    pub fn jobset() -> Self {
        Self::new(
            "jobset.x-k8s.io",
            "v1alpha2",
            "jobsets",
            "JobSet",
            true,
            true,
        )
    }

    /// The Kubeflow MPIJob CRD (`kubeflow.org/v2beta1`).
    pub fn mpijob() -> Self {
        Self::new("kubeflow.org", "v2beta1", "mpijobs", "MPIJob", true, true)
    }

    /// The Flux Operator MiniCluster CRD (`flux-framework.org/v1alpha2`).
    pub fn minicluster() -> Self {
        Self::new(
            "flux-framework.org",
            "v1alpha2",
            "miniclusters",
            "MiniCluster",
            true,
            true,
        )
    }

    /// Volcano's PodGroup CRD (`scheduling.volcano.sh/v1beta1`).
    pub fn volcano_podgroup() -> Self {
        Self::new(
            "scheduling.volcano.sh",
            "v1beta1",
            "podgroups",
            "PodGroup",
            true,
            true,
        )
    }
}

/// The resource types served from start: what the scheduler reads and writes.
pub fn builtin() -> Vec<ResourceType> {
    vec![
        ResourceType::new("", "v1", "pods", "Pod", true, true),
        ResourceType::new("", "v1", "nodes", "Node", false, true),
        ResourceType::new("", "v1", "namespaces", "Namespace", false, true),
        ResourceType::new("", "v1", "events", "Event", true, false),
        ResourceType::new("events.k8s.io", "v1", "events", "Event", true, false),
        ResourceType::new("coordination.k8s.io", "v1", "leases", "Lease", true, false),
        ResourceType::new("apps", "v1", "statefulsets", "StatefulSet", true, true),
        ResourceType::new("batch", "v1", "jobs", "Job", true, true),
        ResourceType::new(
            "scheduling.x-k8s.io",
            "v1alpha1",
            "podgroups",
            "PodGroup",
            true,
            true,
        ),
        // What preemption reads: budgets, and the classes the Priority admission resolves.
        ResourceType::new(
            "policy",
            "v1",
            "poddisruptionbudgets",
            "PodDisruptionBudget",
            true,
            true,
        ),
        ResourceType::new(
            "scheduling.k8s.io",
            "v1",
            "priorityclasses",
            "PriorityClass",
            false,
            false,
        ),
        // Kubernetes 1.36's gang API (feature gates on), as a 1.36 control plane serves it.
        ResourceType::native_podgroup("v1alpha2"),
        ResourceType::native_workload("v1alpha2"),
    ]
}

/// `/api`: the legacy core group versions.
pub fn core_versions() -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})
}

/// `/apis`: every named group and its versions.
pub fn group_list(types: &[ResourceType]) -> Value {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for t in types.iter().filter(|t| !t.group.is_empty()) {
        match groups.iter_mut().find(|(g, _)| *g == t.group) {
            Some((_, versions)) if !versions.contains(&t.version) => {
                versions.push(t.version.clone())
            }
            Some(_) => {}
            None => groups.push((t.group.clone(), vec![t.version.clone()])),
        }
    }
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(name, versions)| {
            let vs: Vec<Value> = versions
                .iter()
                .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
                .collect();
            json!({"name": name, "versions": vs, "preferredVersion": vs[0].clone()})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/{group}/{version}` or `/api/v1`: the resources of one group version.
pub fn resource_list(types: &[ResourceType], group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for t in types
        .iter()
        .filter(|t| t.group == group && t.version == version)
    {
        let verbs = [
            "create", "delete", "get", "list", "patch", "update", "watch",
        ];
        resources.push(json!({
            "name": t.plural, "singularName": t.kind.to_lowercase(), "namespaced": t.namespaced,
            "kind": t.kind, "verbs": verbs,
        }));
        if t.status_subresource {
            resources.push(json!({
                "name": format!("{}/status", t.plural), "singularName": "", "namespaced": t.namespaced,
                "kind": t.kind, "verbs": ["get", "patch", "update"],
            }));
        }
        if t.plural == "pods" && t.group.is_empty() {
            resources.push(json!({
                "name": "pods/binding", "singularName": "", "namespaced": true,
                "kind": "Binding", "verbs": ["create"],
            }));
        }
    }
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}
