//! Every API permission the scheduler uses, in one place, so the deployment's
//! ClusterRole can be checked against the code.

/// One ClusterRole rule: API group ("" is core), resource (with `/subresource`), verbs.
pub type Rule = (&'static str, &'static str, &'static [&'static str]);

/// The API access `phalanx run` needs.
pub const RBAC_RULES: &[Rule] = &[
    ("", "nodes", &["get", "list", "watch"]),
    ("", "pods", &["get", "list", "watch"]),
    ("", "pods/binding", &["create"]),
    // Preemption: victims are marked (DisruptionTarget) and deleted; the
    // preemptor's pods get status.nominatedNodeName.
    ("", "pods", &["delete"]),
    ("", "pods/status", &["patch"]),
    ("policy", "poddisruptionbudgets", &["get", "list", "watch"]),
    ("events.k8s.io", "events", &["create", "patch"]),
    (
        "scheduling.x-k8s.io",
        "podgroups",
        &["get", "list", "watch"],
    ),
    (
        "scheduling.x-k8s.io",
        "podgroups/status",
        &["get", "patch", "update"],
    ),
    // Kubernetes' own gang API (1.35+), where served; status carries PodGroupScheduled.
    ("scheduling.k8s.io", "podgroups", &["get", "list", "watch"]),
    (
        "scheduling.k8s.io",
        "podgroups/status",
        &["get", "patch", "update"],
    ),
    ("scheduling.k8s.io", "workloads", &["get", "list", "watch"]),
    // 1.37's CompositePodGroup (v1alpha3, behind its feature gate), where served.
    (
        "scheduling.k8s.io",
        "compositepodgroups",
        &["get", "list", "watch"],
    ),
    // Group sizes of other conventions, each watched only where its CRD is served.
    ("jobset.x-k8s.io", "jobsets", &["get", "list", "watch"]),
    ("kubeflow.org", "mpijobs", &["get", "list", "watch"]),
    (
        "flux-framework.org",
        "miniclusters",
        &["get", "list", "watch"],
    ),
    (
        "scheduling.volcano.sh",
        "podgroups",
        &["get", "list", "watch"],
    ),
    ("batch", "jobs", &["get", "list", "watch"]),
    ("apps", "statefulsets", &["get", "list", "watch"]),
    (
        "topology.node.k8s.io",
        "noderesourcetopologies",
        &["get", "list", "watch"],
    ),
    (
        "coordination.k8s.io",
        "leases",
        &["create", "get", "update"],
    ),
];

/// Whether `RBAC_RULES` allow `verb` on `group`/`resource`.
pub fn allows(group: &str, resource: &str, verb: &str) -> bool {
    RBAC_RULES
        .iter()
        .any(|(g, r, verbs)| *g == group && *r == resource && verbs.contains(&verb))
}
