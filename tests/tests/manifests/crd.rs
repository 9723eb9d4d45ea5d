//! The committed PodGroup CRD is exactly what `phalanx_kube::PodGroup`
//! generates, so the API server validates what the scheduler reads.
//!
//! After changing the type, regenerate the file with:
//!   PHALANX_UPDATE_MANIFESTS=1 cargo test -p phalanx-tests --test manifests crd::

use std::path::PathBuf;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use phalanx_kube::PodGroup;
use serde_json::Value;

const HEADER: &str = "\
# Generated from phalanx_kube::PodGroup (scheduler/kube/src/crd.rs): do not edit.
# Regenerate: PHALANX_UPDATE_MANIFESTS=1 cargo test -p phalanx-tests --test manifests crd::
";

fn crd_path() -> PathBuf {
    super::manifests_dir().join("crd-podgroups.yaml")
}

fn generated() -> CustomResourceDefinition {
    PodGroup::crd()
}

/// The file's text for a CRD: header plus YAML, stable across runs.
fn render(crd: &CustomResourceDefinition) -> String {
    let yaml = serde_yaml_ng::to_string(crd).unwrap_or_else(|e| panic!("serializing the CRD: {e}"));
    format!("{HEADER}{yaml}")
}

/// Paths where two JSON values differ, for a readable failure.
fn differences(a: &Value, b: &Value, path: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for key in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                match (x.get(key), y.get(key)) {
                    (Some(p), Some(q)) => differences(p, q, &format!("{path}.{key}"), out),
                    (Some(_), None) => {
                        out.push(format!("{path}.{key}: only in the committed file"))
                    }
                    (None, _) => out.push(format!("{path}.{key}: only in the type")),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                differences(p, q, &format!("{path}[{i}]"), out);
            }
        }
        (p, q) if p == q => {}
        (p, q) => out.push(format!("{path}: committed {p}, type {q}")),
    }
}

#[test]
fn committed_crd_matches_the_podgroup_type() {
    let path = crd_path();
    let expected = generated();
    if std::env::var("PHALANX_UPDATE_MANIFESTS").as_deref() == Ok("1") {
        std::fs::write(&path, render(&expected))
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        eprintln!("rewrote {}", path.display());
    }
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let de = serde_yaml_ng::Deserializer::from_str(&text);
    let committed: CustomResourceDefinition = serde_path_to_error::deserialize(de)
        .unwrap_or_else(|e| panic!("{}: at {}: {}", path.display(), e.path(), e.inner()));
    let mut diff = Vec::new();
    let committed_json = serde_json::to_value(&committed).unwrap_or_else(|e| panic!("{e}"));
    let expected_json = serde_json::to_value(&expected).unwrap_or_else(|e| panic!("{e}"));
    differences(&committed_json, &expected_json, "", &mut diff);
    assert!(
        diff.is_empty(),
        "{} has drifted from phalanx_kube::PodGroup:\n  {}\nRegenerate it: PHALANX_UPDATE_MANIFESTS=1 cargo test -p phalanx-tests --test manifests crd::",
        path.display(),
        diff.join("\n  ")
    );
    // The file is byte-for-byte what the generator writes, header included.
    assert_eq!(
        text,
        render(&committed),
        "{} is not in generated form; regenerate it",
        path.display()
    );
}

#[test]
fn the_crd_is_the_coscheduling_podgroup() {
    let crd = generated();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("podgroups.scheduling.x-k8s.io")
    );
    assert_eq!(crd.spec.scope, "Namespaced");
    let version = crd
        .spec
        .versions
        .iter()
        .find(|v| v.name == "v1alpha1")
        .unwrap_or_else(|| panic!("no v1alpha1"));
    assert!(version.served && version.storage);
    assert!(
        version
            .subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some(),
        "status subresource missing"
    );
    let schema = serde_json::to_value(&version.schema).unwrap_or_else(|e| panic!("{e}"));
    let spec = &schema["openAPIV3Schema"]["properties"]["spec"]["properties"];
    for field in ["minMember", "minResources", "scheduleTimeoutSeconds"] {
        assert!(
            spec.get(field).is_some(),
            "spec.{field} missing from the schema"
        );
    }
}

#[test]
fn the_drift_check_notices_a_changed_schema() {
    let expected = serde_json::to_value(generated()).unwrap_or_else(|e| panic!("{e}"));
    let mut changed = expected.clone();
    changed["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        .as_object_mut()
        .unwrap_or_else(|| panic!("spec properties are not an object"))
        .remove("minMember");
    let mut diff = Vec::new();
    differences(&changed, &expected, "", &mut diff);
    assert_eq!(diff.len(), 1, "{diff:?}");
    assert!(diff[0].ends_with("minMember: only in the type"), "{diff:?}");
}

#[test]
fn example_podgroups_deserialize_into_the_type() {
    let dir = super::manifests_dir().join("examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let file = entry.unwrap_or_else(|e| panic!("{e}")).path();
        // conventions/ holds other projects' kinds (native and Volcano PodGroups among them).
        if file.is_dir() {
            continue;
        }
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for de in serde_yaml_ng::Deserializer::from_str(&text) {
            let doc: Value = serde_path_to_error::deserialize(de)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            if doc["kind"] == "PodGroup"
                && doc["apiVersion"]
                    .as_str()
                    .is_some_and(|v| v.starts_with("scheduling.x-k8s.io/"))
            {
                let pg: PodGroup = serde_json::from_value(doc)
                    .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                assert!(
                    pg.spec.min_member.is_some_and(|m| m >= 1),
                    "{}: minMember must be at least 1",
                    file.display()
                );
                seen += 1;
            }
        }
    }
    assert!(seen >= 4, "expected the examples' PodGroups, found {seen}");
}
