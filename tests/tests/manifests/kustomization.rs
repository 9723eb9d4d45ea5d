//! `manifests/kustomization.yaml` lists exactly the manifest files that exist,
//! so `kubectl apply -k manifests/` deploys everything and nothing stale.

use std::collections::BTreeSet;
use std::process::Command;

use serde::Deserialize;

use super::manifests_dir;

/// The fields of a Kustomization this deployment uses; anything else is a mistake.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)] // fields are read through Debug and deserialization checks
struct Kustomization {
    api_version: String,
    kind: String,
    resources: Vec<String>,
    #[serde(default)]
    labels: Vec<serde_yaml_ng::Value>,
    #[serde(default)]
    images: Vec<Image>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Image {
    name: String,
    new_name: Option<String>,
    new_tag: Option<String>,
}

fn kustomization() -> Kustomization {
    let path = manifests_dir().join("kustomization.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let de = serde_yaml_ng::Deserializer::from_str(&text);
    serde_path_to_error::deserialize(de)
        .unwrap_or_else(|e| panic!("{}: at {}: {}", path.display(), e.path(), e.inner()))
}

#[test]
fn kustomization_lists_exactly_the_manifest_files() {
    let k = kustomization();
    assert_eq!(k.api_version, "kustomize.config.k8s.io/v1beta1");
    assert_eq!(k.kind, "Kustomization");
    let listed: BTreeSet<String> = k.resources.iter().cloned().collect();
    assert_eq!(
        listed.len(),
        k.resources.len(),
        "duplicate entries in resources: {:?}",
        k.resources
    );
    let dir = manifests_dir();
    let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap_or_else(|e| panic!("{e}")).path())
        .filter(|p| {
            p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
        })
        .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_string))
        .filter(|n| n != "kustomization.yaml")
        .collect();
    let missing: Vec<_> = on_disk.difference(&listed).collect();
    let stale: Vec<_> = listed.difference(&on_disk).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "not listed: {missing:?}; listed but absent: {stale:?}"
    );
    // The examples are applied by hand or by hack/e2e.sh, never by the deployment.
    assert!(
        !listed.iter().any(|r| r.starts_with("examples")),
        "{listed:?}"
    );
}

#[test]
fn the_image_override_names_the_deployments_image() {
    let k = kustomization();
    let deployment = std::fs::read_to_string(manifests_dir().join("deployment.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    for image in &k.images {
        let reference = format!(
            "image: {}:{}",
            image.new_name.as_deref().unwrap_or(&image.name),
            image.new_tag.as_deref().unwrap_or("latest")
        );
        assert!(
            deployment.contains(&format!("image: {}:", image.name)),
            "kustomization overrides image {:?}, which deployment.yaml does not use",
            image.name
        );
        assert!(
            deployment.contains(&reference),
            "deployment.yaml should say `{reference}` like the kustomization"
        );
    }
}

/// With kubectl on PATH, kustomize itself builds the directory; CI machines
/// without kubectl rely on the checks above.
#[test]
fn kubectl_kustomize_builds_when_available() {
    let Ok(output) = Command::new("kubectl")
        .arg("kustomize")
        .arg(manifests_dir())
        .output()
    else {
        eprintln!("kubectl not found; skipping the kustomize build");
        return;
    };
    assert!(
        output.status.success(),
        "kubectl kustomize failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let built = String::from_utf8_lossy(&output.stdout);
    for kind in [
        "Namespace",
        "CustomResourceDefinition",
        "ClusterRole",
        "Deployment",
        "Service",
    ] {
        assert!(
            built.contains(&format!("\nkind: {kind}\n")),
            "kustomize output has no {kind}"
        );
    }
    assert!(
        built.contains("app.kubernetes.io/part-of: phalanx"),
        "common label missing from the build"
    );
}
