//! The deployment grants exactly the API access `phalanx run` uses, both ways:
//! every (group, resource, verb) in `phalanx_kube::RBAC_RULES` is granted, and
//! nothing else is. Cluster-wide rights live in the ClusterRole; the leader
//! election Lease is granted by a Role in the scheduler's own namespace only.

use std::collections::BTreeSet;
use std::path::Path;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// (API group, resource, verb).
type Grant = (String, String, String);

/// Resources whose objects live in one namespace the scheduler owns.
const NAMESPACED_TO_PHALANX: [(&str, &str); 1] = [("coordination.k8s.io", "leases")];

fn objects<T: DeserializeOwned>(kind: &str) -> Vec<T> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests");
    let mut out = Vec::new();
    for file in ["rbac.yaml", "deployment.yaml"] {
        let text =
            std::fs::read_to_string(path.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        for de in serde_yaml_ng::Deserializer::from_str(&text) {
            let doc: Value =
                serde_path_to_error::deserialize(de).unwrap_or_else(|e| panic!("{file}: {e}"));
            if doc["kind"] == kind {
                out.push(
                    serde_json::from_value(doc).unwrap_or_else(|e| panic!("{file}: {kind}: {e}")),
                );
            }
        }
    }
    out
}

/// Expands rules into single grants; wildcards and resource names are refused,
/// because least privilege cannot be checked through them.
fn grants(rules: &[PolicyRule], owner: &str) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for rule in rules {
        assert!(
            rule.resource_names.is_none(),
            "{owner}: resourceNames would need the code's lease name; keep rules plain"
        );
        assert!(
            rule.non_resource_urls.is_none(),
            "{owner}: non-resource URLs are not used"
        );
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    for part in [group, resource, verb] {
                        assert!(
                            !part.contains('*'),
                            "{owner}: wildcard in {group}/{resource} {verb}"
                        );
                    }
                    let fresh = out.insert((group.clone(), resource.clone(), verb.clone()));
                    assert!(fresh, "{owner}: {group}/{resource} {verb} granted twice");
                }
            }
        }
    }
    out
}

fn code_grants() -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for (group, resource, verbs) in phalanx_kube::RBAC_RULES {
        for verb in *verbs {
            out.insert((group.to_string(), resource.to_string(), verb.to_string()));
        }
    }
    out
}

fn is_namespaced_to_phalanx(g: &Grant) -> bool {
    NAMESPACED_TO_PHALANX
        .iter()
        .any(|(group, resource)| g.0 == *group && g.1 == *resource)
}

#[test]
fn cluster_role_grants_exactly_what_the_code_uses_cluster_wide() {
    let roles = objects::<ClusterRole>("ClusterRole");
    assert_eq!(roles.len(), 1, "one ClusterRole expected");
    let granted = grants(roles[0].rules.as_deref().unwrap_or_default(), "ClusterRole");
    let wanted: BTreeSet<Grant> = code_grants()
        .into_iter()
        .filter(|g| !is_namespaced_to_phalanx(g))
        .collect();
    let unused: Vec<_> = granted.difference(&wanted).collect();
    let missing: Vec<_> = wanted.difference(&granted).collect();
    assert!(
        unused.is_empty() && missing.is_empty(),
        "ClusterRole vs phalanx_kube::RBAC_RULES\n  granted but not used by the code: {unused:?}\n  used by the code but not granted: {missing:?}"
    );
}

#[test]
fn the_lease_role_grants_exactly_the_lease_verbs_in_phalanxs_namespace() {
    let roles = objects::<Role>("Role");
    assert_eq!(roles.len(), 1, "one Role (leader election) expected");
    let deployment = objects::<Deployment>("Deployment")
        .pop()
        .unwrap_or_else(|| panic!("no Deployment"));
    // The Lease namespace defaults to POD_NAMESPACE, i.e. the Deployment's namespace.
    assert_eq!(
        roles[0].metadata.namespace, deployment.metadata.namespace,
        "the Role must be where the Lease is"
    );
    let granted = grants(roles[0].rules.as_deref().unwrap_or_default(), "Role");
    let wanted: BTreeSet<Grant> = code_grants()
        .into_iter()
        .filter(is_namespaced_to_phalanx)
        .collect();
    assert!(!wanted.is_empty(), "the code uses no Lease; drop the Role");
    assert_eq!(granted, wanted, "Role vs phalanx_kube::RBAC_RULES");
}

#[test]
fn rules_expand_to_single_grants_and_wildcards_are_refused() {
    let rule = PolicyRule {
        api_groups: Some(vec!["".into()]),
        resources: Some(vec!["pods".into()]),
        verbs: vec!["get".into(), "list".into()],
        ..Default::default()
    };
    let g = grants(&[rule], "test");
    assert_eq!(g.len(), 2);
    assert!(g.contains(&("".into(), "pods".into(), "list".into())));
    let wildcard = PolicyRule {
        api_groups: Some(vec!["".into()]),
        resources: Some(vec!["*".into()]),
        verbs: vec!["get".into()],
        ..Default::default()
    };
    assert!(
        std::panic::catch_unwind(|| grants(&[wildcard], "test")).is_err(),
        "wildcards must be refused"
    );
}
