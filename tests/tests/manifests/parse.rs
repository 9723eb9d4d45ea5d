//! Every YAML document under `manifests/` (examples included) parses into its
//! Kubernetes type, with no field the type does not know (a typo would be
//! silently dropped by the API server), and PodGroups validate against the
//! committed CRD's schema. Unknown kinds fail.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::{Job, JobTemplateSpec};
use k8s_openapi::api::core::v1::{Namespace, Pod, PodTemplateSpec, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrBool,
};
use phalanx_kube::groups;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn manifests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests")
}

/// All `.yaml`/`.yml` files below `dir`, sorted, recursively.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries =
            std::fs::read_dir(&d).unwrap_or_else(|e| panic!("reading {}: {e}", d.display()));
        for entry in entries {
            let path = entry
                .unwrap_or_else(|e| panic!("reading {}: {e}", d.display()))
                .path();
            if path.is_dir() {
                stack.push(path);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            ) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The non-empty documents of a multi-document YAML text, as JSON values.
fn documents(text: &str) -> Result<Vec<Value>, String> {
    let mut docs = Vec::new();
    for (i, de) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value: Value = serde_path_to_error::deserialize(de)
            .map_err(|e| format!("document {i}: at {}: {}", e.path(), e.inner()))?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

/// Paths present in `original` but missing or different in `round_trip`.
fn dropped_fields(original: &Value, round_trip: &Value, path: &str, out: &mut Vec<String>) {
    match (original, round_trip) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                match b.get(key) {
                    Some(other) => dropped_fields(value, other, &format!("{path}.{key}"), out),
                    None => out.push(format!("{path}.{key}")),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                dropped_fields(x, y, &format!("{path}[{i}]"), out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(format!("{path}: {a} became {b}")),
    }
}

/// Deserializes `doc` as `T` and checks that serializing it back loses nothing.
fn typed<T: DeserializeOwned + Serialize>(doc: &Value) -> Result<T, String> {
    let value: T = serde_path_to_error::deserialize(doc.clone())
        .map_err(|e| format!("at {}: {}", e.path(), e.inner()))?;
    let round_trip = serde_json::to_value(&value).map_err(|e| e.to_string())?;
    let mut dropped = Vec::new();
    dropped_fields(doc, &round_trip, "", &mut dropped);
    if dropped.is_empty() {
        Ok(value)
    } else {
        Err(format!(
            "fields unknown to {}: {}",
            std::any::type_name::<T>(),
            dropped.join(", ")
        ))
    }
}

/// Validates `value` against a structural CRD schema, as the API server's pruning
/// and validation would: unknown properties and wrong types are errors.
fn validate(schema: &JSONSchemaProps, value: &Value, path: &str) -> Result<(), String> {
    if schema.x_kubernetes_int_or_string == Some(true) {
        return match value {
            Value::String(_) | Value::Number(_) => Ok(()),
            other => Err(format!(
                "{path}: expected an integer or string, got {other}"
            )),
        };
    }
    match (schema.type_.as_deref(), value) {
        (Some("object"), Value::Object(map)) => {
            for (key, item) in map {
                let child = format!("{path}.{key}");
                if let Some(prop) = schema.properties.as_ref().and_then(|p| p.get(key)) {
                    validate(prop, item, &child)?;
                } else {
                    match &schema.additional_properties {
                        Some(JSONSchemaPropsOrBool::Schema(s)) => validate(s, item, &child)?,
                        Some(JSONSchemaPropsOrBool::Bool(true)) => {}
                        _ if schema.x_kubernetes_preserve_unknown_fields == Some(true) => {}
                        _ => return Err(format!("{child}: unknown field")),
                    }
                }
            }
            for required in schema.required.iter().flatten() {
                if !map.contains_key(required) {
                    return Err(format!("{path}.{required}: required"));
                }
            }
            Ok(())
        }
        (Some("integer"), Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(()),
        (Some("number"), Value::Number(_)) => Ok(()),
        (Some("string"), Value::String(_)) => Ok(()),
        (Some("boolean"), Value::Bool(_)) => Ok(()),
        (Some("array"), Value::Array(items)) => match &schema.items {
            Some(k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrArray::Schema(s)) => {
                items.iter().enumerate().try_for_each(|(i, item)| validate(s, item, &format!("{path}[{i}]")))
            }
            _ => Ok(()),
        },
        (None, _) => Ok(()),
        (Some(t), other) => Err(format!("{path}: expected {t}, got {other}")),
    }
}

/// The committed CRDs, by `group/kind`, from manifests/.
fn committed_crds() -> BTreeMap<String, CustomResourceDefinition> {
    let mut crds = BTreeMap::new();
    for file in yaml_files(&manifests_dir()) {
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for doc in documents(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display())) {
            if doc["kind"] == "CustomResourceDefinition" {
                let crd: CustomResourceDefinition =
                    typed(&doc).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                crds.insert(format!("{}/{}", crd.spec.group, crd.spec.names.kind), crd);
            }
        }
    }
    crds
}

/// The document without the pod fields newer than the compiled Kubernetes
/// version (`spec.schedulingGroup`, 1.36), after checking their shape.
fn without_newer_pod_fields(doc: &Value) -> Result<Value, String> {
    let mut doc = doc.clone();
    for path in ["/spec", "/spec/template/spec"] {
        if let Some(Value::Object(spec)) = doc.pointer_mut(path)
            && let Some(group) = spec.remove("schedulingGroup")
            && (!group["podGroupName"].is_string()
                || group.as_object().is_some_and(|g| g.len() != 1))
        {
            return Err(format!(
                "{path}.schedulingGroup: exactly podGroupName (a string) is expected"
            ));
        }
    }
    Ok(doc)
}

/// A document as the untyped object the scheduler's watches see.
fn dynamic(doc: &Value) -> Result<kube::api::DynamicObject, String> {
    serde_json::from_value(doc.clone()).map_err(|e| e.to_string())
}

/// Every pod template inside another project's kind (JobSet, MPIJob,
/// LeaderWorkerSet) parses into PodTemplateSpec or JobTemplateSpec without loss.
fn embedded_templates(doc: &Value) -> Result<(), String> {
    fn walk(v: &Value, path: &str) -> Result<(), String> {
        let Value::Object(m) = v else {
            if let Value::Array(a) = v {
                for (i, x) in a.iter().enumerate() {
                    walk(x, &format!("{path}[{i}]"))?;
                }
            }
            return Ok(());
        };
        for (k, x) in m {
            let child = format!("{path}.{k}");
            let is_template = k.ends_with("emplate") && x.get("spec").is_some();
            if is_template && x["spec"].get("containers").is_some() {
                typed::<PodTemplateSpec>(x).map_err(|e| format!("{child}: {e}"))?;
            } else if is_template && x["spec"].get("template").is_some() {
                typed::<JobTemplateSpec>(x).map_err(|e| format!("{child}: {e}"))?;
            } else {
                walk(x, &child)?;
            }
        }
        Ok(())
    }
    walk(&doc["spec"], "spec")
}

/// Checks one document: a known kind that parses into its type without loss,
/// or a custom resource valid against the committed CRD of its group and version.
fn check_document(
    doc: &Value,
    crds: &BTreeMap<String, CustomResourceDefinition>,
) -> Result<String, String> {
    let api_version = doc["apiVersion"].as_str().ok_or("no apiVersion")?;
    let kind = doc["kind"].as_str().ok_or("no kind")?;
    match (api_version, kind) {
        ("v1", "Namespace") => typed::<Namespace>(doc).map(drop),
        ("v1", "ServiceAccount") => typed::<ServiceAccount>(doc).map(drop),
        ("v1", "Service") => typed::<Service>(doc).map(drop),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => typed::<ClusterRole>(doc).map(drop),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            typed::<ClusterRoleBinding>(doc).map(drop)
        }
        ("rbac.authorization.k8s.io/v1", "Role") => typed::<Role>(doc).map(drop),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => typed::<RoleBinding>(doc).map(drop),
        ("apps/v1", "Deployment") => typed::<Deployment>(doc).map(drop),
        ("policy/v1", "PodDisruptionBudget") => typed::<PodDisruptionBudget>(doc).map(drop),
        ("batch/v1", "Job") => typed::<Job>(&without_newer_pod_fields(doc)?).map(drop),
        ("v1", "Pod") => typed::<Pod>(&without_newer_pod_fields(doc)?).map(drop),
        (v, "PodGroup" | "Workload") if v.starts_with("scheduling.k8s.io/") => {
            let obj = dynamic(doc)?;
            match kind {
                "PodGroup" => groups::native::parse_podgroup(&obj).map(drop),
                _ => groups::native::parse_workload(&obj).map(drop),
            }
            .map_err(|e| e.to_string())
        }
        ("scheduling.volcano.sh/v1beta1", "PodGroup") => groups::volcano::parse(&dynamic(doc)?)
            .map(drop)
            .map_err(|e| e.to_string()),
        ("jobset.x-k8s.io/v1alpha2", "JobSet") => groups::jobset::parse(&dynamic(doc)?)
            .map(drop)
            .map_err(|e| e.to_string())
            .and_then(|()| embedded_templates(doc)),
        ("kubeflow.org/v2beta1", "MPIJob") => groups::mpijob::parse(&dynamic(doc)?)
            .map(drop)
            .map_err(|e| e.to_string())
            .and_then(|()| embedded_templates(doc)),
        ("flux-framework.org/v1alpha2", "MiniCluster") => groups::flux::parse(&dynamic(doc)?)
            .map(drop)
            .map_err(|e| e.to_string()),
        ("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet") => {
            match doc["spec"]["leaderWorkerTemplate"]["size"].as_i64() {
                Some(n) if n >= 1 => embedded_templates(doc),
                _ => Err("spec.leaderWorkerTemplate.size: a positive integer is required".into()),
            }
        }
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => {
            typed::<CustomResourceDefinition>(doc).map(drop)
        }
        _ => {
            let (group, version) = api_version
                .split_once('/')
                .ok_or_else(|| format!("unknown kind {api_version}/{kind}"))?;
            let crd = crds
                .get(&format!("{group}/{kind}"))
                .ok_or_else(|| format!("unknown kind {api_version}/{kind}"))?;
            let served = crd
                .spec
                .versions
                .iter()
                .find(|v| v.name == version && v.served);
            let served = served
                .ok_or_else(|| format!("{kind}: version {version} is not served by the CRD"))?;
            let schema = served
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .ok_or_else(|| format!("{kind}: the CRD has no schema for {version}"))?;
            let mut body = doc.clone();
            if let Value::Object(map) = &mut body {
                // The API server owns these; the CRD schema does not describe them.
                map.remove("apiVersion");
                map.remove("kind");
                map.remove("metadata");
            }
            validate(schema, &body, kind)
        }
    }
    .map(|()| format!("{api_version}/{kind}"))
}

#[test]
fn every_manifest_parses_into_its_type() {
    let crds = committed_crds();
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    let mut errors = Vec::new();
    for file in yaml_files(&manifests_dir()) {
        if file.file_name().is_some_and(|n| n == "kustomization.yaml") {
            continue;
        }
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let docs = match documents(&text) {
            Ok(docs) => docs,
            Err(e) => {
                errors.push(format!("{}: {e}", file.display()));
                continue;
            }
        };
        if docs.is_empty() {
            errors.push(format!("{}: no documents", file.display()));
        }
        for (i, doc) in docs.iter().enumerate() {
            match check_document(doc, &crds) {
                Ok(kind) => *kinds.entry(kind).or_default() += 1,
                Err(e) => errors.push(format!("{} document {i}: {e}", file.display())),
            }
        }
    }
    assert!(errors.is_empty(), "bad manifests:\n{}", errors.join("\n"));
    // The walk found the deployment and the examples, not an empty directory.
    for kind in [
        "v1/Namespace",
        "apps/v1/Deployment",
        "rbac.authorization.k8s.io/v1/ClusterRole",
        "apiextensions.k8s.io/v1/CustomResourceDefinition",
        "batch/v1/Job",
        "scheduling.x-k8s.io/v1alpha1/PodGroup",
    ] {
        assert!(
            kinds.contains_key(kind),
            "no {kind} found under manifests/: {kinds:?}"
        );
    }
}

#[test]
fn the_checker_rejects_typos_unknown_kinds_and_bad_custom_resources() {
    let crds = committed_crds();
    let check = |yaml: &str| {
        let docs = documents(yaml).unwrap_or_else(|e| panic!("{e}"));
        check_document(&docs[0], &crds)
    };
    let typo = check(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replicaz: 2\n  selector: {}\n  template: {}\n",
    );
    assert!(
        typo.as_ref().is_err_and(|e| e.contains(".spec.replicaz")),
        "{typo:?}"
    );
    let wrong_type = check(
        "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: eighty}]}\n",
    );
    assert!(
        wrong_type.as_ref().is_err_and(|e| e.contains("spec.ports")),
        "{wrong_type:?}"
    );
    let unknown = check("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: x}\n");
    assert!(
        unknown
            .as_ref()
            .is_err_and(|e| e.contains("unknown kind example.com/v1/Widget")),
        "{unknown:?}"
    );
    let pg_typo = check(
        "apiVersion: scheduling.x-k8s.io/v1alpha1\nkind: PodGroup\nmetadata: {name: x}\nspec: {minMembers: 2}\n",
    );
    assert!(
        pg_typo
            .as_ref()
            .is_err_and(|e| e.contains("spec.minMembers: unknown field")),
        "{pg_typo:?}"
    );
    let pg_type = check(
        "apiVersion: scheduling.x-k8s.io/v1alpha1\nkind: PodGroup\nmetadata: {name: x}\nspec: {minMember: two}\n",
    );
    assert!(
        pg_type
            .as_ref()
            .is_err_and(|e| e.contains("spec.minMember: expected integer")),
        "{pg_type:?}"
    );
    let pg_version = check(
        "apiVersion: scheduling.x-k8s.io/v9\nkind: PodGroup\nmetadata: {name: x}\nspec: {}\n",
    );
    assert!(pg_version.is_err(), "{pg_version:?}");
    let good = check(
        "apiVersion: scheduling.x-k8s.io/v1alpha1\nkind: PodGroup\nmetadata: {name: x}\nspec: {minMember: 2, minResources: {cpu: 4, memory: 1Gi}}\n",
    );
    assert_eq!(
        good,
        Ok("scheduling.x-k8s.io/v1alpha1/PodGroup".to_string())
    );
}
