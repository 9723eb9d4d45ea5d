//! The Deployment runs Phalanx the way the issue requires: two replicas with
//! Lease leader election, probes, requests and limits, non-root, read-only
//! root filesystem, no capabilities, seccomp RuntimeDefault, the downward API
//! for the Lease identity; and its ServiceAccount, RBAC subjects and Service
//! all point at each other.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::manifests_dir;

/// Every document of `kind` in the top-level manifests, as `T`.
fn objects<T: DeserializeOwned>(kind: &str) -> Vec<T> {
    let mut out = Vec::new();
    let dir = manifests_dir();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap_or_else(|e| panic!("{e}")).path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "yaml") && !p.ends_with("kustomization.yaml")
        })
        .collect();
    files.sort();
    for file in files {
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for de in serde_yaml_ng::Deserializer::from_str(&text) {
            let doc: Value = serde_path_to_error::deserialize(de)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            if doc["kind"] == kind {
                out.push(
                    serde_json::from_value(doc)
                        .unwrap_or_else(|e| panic!("{}: {kind}: {e}", file.display())),
                );
            }
        }
    }
    out
}

fn deployment() -> Deployment {
    let mut all = objects::<Deployment>("Deployment");
    assert_eq!(all.len(), 1, "exactly one Deployment expected");
    all.remove(0)
}

fn scheduler_container(d: &Deployment) -> Container {
    let spec = d
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .unwrap_or_else(|| panic!("no pod spec"));
    let found = spec.containers.iter().find(|c| c.name == "phalanx");
    found
        .cloned()
        .unwrap_or_else(|| panic!("no container named phalanx"))
}

#[test]
fn two_replicas_run_phalanx_run_with_leader_election() {
    let d = deployment();
    let spec = d.spec.as_ref().unwrap_or_else(|| panic!("no spec"));
    assert_eq!(spec.replicas, Some(2));
    let c = scheduler_container(&d);
    let args = c.args.clone().unwrap_or_default();
    assert_eq!(
        args.first().map(String::as_str),
        Some("run"),
        "the container must run `phalanx run`: {args:?}"
    );
    assert!(
        !args.iter().any(|a| a == "--leader-elect=false"),
        "leader election must stay on: {args:?}"
    );
    let env = c.env.clone().unwrap_or_default();
    for (name, field) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
    ] {
        let var = env
            .iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("{name} is not set"));
        let path = var
            .value_from
            .as_ref()
            .and_then(|v| v.field_ref.as_ref())
            .map(|f| f.field_path.as_str());
        assert_eq!(path, Some(field), "{name} must come from the downward API");
    }
}

#[test]
fn the_pod_is_hardened() {
    let d = deployment();
    let pod = d
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .unwrap_or_else(|| panic!("no pod spec"));
    let psc = pod
        .security_context
        .as_ref()
        .unwrap_or_else(|| panic!("no pod securityContext"));
    assert_eq!(psc.run_as_non_root, Some(true));
    assert!(
        psc.run_as_user.is_some_and(|u| u > 0),
        "a numeric non-root user is needed for runAsNonRoot checks"
    );
    assert_eq!(
        psc.seccomp_profile.as_ref().map(|s| s.type_.as_str()),
        Some("RuntimeDefault")
    );
    for c in &pod.containers {
        let sc = c
            .security_context
            .as_ref()
            .unwrap_or_else(|| panic!("{}: no securityContext", c.name));
        assert_eq!(sc.read_only_root_filesystem, Some(true), "{}", c.name);
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{}", c.name);
        let drop = sc
            .capabilities
            .as_ref()
            .and_then(|caps| caps.drop.clone())
            .unwrap_or_default();
        assert_eq!(
            drop,
            ["ALL"],
            "{}: all capabilities must be dropped",
            c.name
        );
        assert!(
            sc.capabilities
                .as_ref()
                .and_then(|caps| caps.add.as_ref())
                .is_none(),
            "{}: adds capabilities",
            c.name
        );
        let resources = c
            .resources
            .as_ref()
            .unwrap_or_else(|| panic!("{}: no resources", c.name));
        for (what, list) in [
            ("requests", &resources.requests),
            ("limits", &resources.limits),
        ] {
            let list = list
                .as_ref()
                .unwrap_or_else(|| panic!("{}: no {what}", c.name));
            assert!(
                list.contains_key("cpu") && list.contains_key("memory"),
                "{}: {what} need cpu and memory",
                c.name
            );
        }
    }
}

#[test]
fn probes_hit_healthz_and_readyz_on_a_declared_port() {
    let c = scheduler_container(&deployment());
    let ports = c.ports.clone().unwrap_or_default();
    for (probe, path) in [
        (c.liveness_probe.as_ref(), "/healthz"),
        (c.readiness_probe.as_ref(), "/readyz"),
    ] {
        let get = probe
            .and_then(|p| p.http_get.as_ref())
            .unwrap_or_else(|| panic!("no httpGet probe for {path}"));
        assert_eq!(get.path.as_deref(), Some(path));
        let declared = match &get.port {
            IntOrString::String(name) => ports.iter().any(|p| p.name.as_deref() == Some(name)),
            IntOrString::Int(n) => ports.iter().any(|p| p.container_port == *n),
        };
        assert!(
            declared,
            "probe {path} uses port {:?}, which the container does not declare",
            get.port
        );
    }
}

#[test]
fn the_service_targets_declared_ports_of_the_scheduler_pods() {
    let d = deployment();
    let c = scheduler_container(&d);
    let ports = c.ports.clone().unwrap_or_default();
    let pod_labels = d
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let services = objects::<Service>("Service");
    assert!(!services.is_empty(), "no Service for metrics");
    for svc in services {
        let spec = svc.spec.unwrap_or_default();
        let selector = spec.selector.unwrap_or_default();
        assert!(!selector.is_empty(), "a Service without a selector");
        for (k, v) in &selector {
            assert_eq!(
                pod_labels.get(k),
                Some(v),
                "Service selector {k}={v} does not match the pod template"
            );
        }
        let svc_ports = spec.ports.unwrap_or_default();
        assert!(
            svc_ports
                .iter()
                .any(|p| p.name.as_deref() == Some("http-metrics")),
            "no http-metrics port"
        );
        for p in svc_ports {
            let ok = match &p.target_port {
                Some(IntOrString::String(name)) => {
                    ports.iter().any(|cp| cp.name.as_deref() == Some(name))
                }
                Some(IntOrString::Int(n)) => ports.iter().any(|cp| cp.container_port == *n),
                None => ports.iter().any(|cp| cp.container_port == p.port),
            };
            assert!(
                ok,
                "Service port {:?} targets a port the container does not declare",
                p.name
            );
        }
    }
}

#[test]
fn the_service_account_is_the_one_bound_to_the_roles() {
    let d = deployment();
    let pod = d
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .unwrap_or_else(|| panic!("no pod spec"));
    let sa_name = pod
        .service_account_name
        .clone()
        .unwrap_or_else(|| panic!("no serviceAccountName"));
    let namespace = d
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| panic!("the Deployment has no namespace"));
    let accounts = objects::<ServiceAccount>("ServiceAccount");
    assert!(
        accounts
            .iter()
            .any(|a| a.metadata.name.as_deref() == Some(&sa_name)
                && a.metadata.namespace.as_deref() == Some(&namespace)),
        "ServiceAccount {namespace}/{sa_name} is not in the manifests"
    );
    let is_ours = |s: &k8s_openapi::api::rbac::v1::Subject| {
        s.kind == "ServiceAccount"
            && s.name == sa_name
            && s.namespace.as_deref() == Some(&namespace)
    };
    let crbs = objects::<ClusterRoleBinding>("ClusterRoleBinding");
    assert!(!crbs.is_empty(), "no ClusterRoleBinding");
    for b in crbs {
        assert!(
            b.subjects.unwrap_or_default().iter().any(is_ours),
            "ClusterRoleBinding does not bind {sa_name}"
        );
    }
    for b in objects::<RoleBinding>("RoleBinding") {
        assert_eq!(
            b.metadata.namespace.as_deref(),
            Some(namespace.as_str()),
            "RoleBinding outside {namespace}"
        );
        assert!(
            b.subjects.unwrap_or_default().iter().any(is_ours),
            "RoleBinding does not bind {sa_name}"
        );
    }
}

#[test]
fn the_image_runs_as_the_user_the_deployment_expects() {
    let root = super::repo_root();
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile"))
        .unwrap_or_else(|e| panic!("Dockerfile: {e}"));
    let build = dockerfile
        .lines()
        .find(|l| l.contains("cargo build"))
        .unwrap_or_else(|| panic!("no cargo build"));
    for part in ["--release", "--locked", "--bin phalanx"] {
        assert!(
            build.contains(part),
            "the image build should use {part}: {build}"
        );
    }
    // The last stage's USER is numeric, so the kubelet can verify runAsNonRoot.
    let user = dockerfile
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .unwrap_or_else(|| panic!("no USER"));
    let uid: i64 = user
        .split(':')
        .next()
        .and_then(|u| u.trim().parse().ok())
        .unwrap_or_else(|| panic!("USER {user} is not numeric"));
    assert!(uid > 0, "the image runs as root");
    let d = deployment();
    let pod = d
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .unwrap_or_else(|| panic!("no pod spec"));
    let run_as = pod.security_context.as_ref().and_then(|s| s.run_as_user);
    assert_eq!(
        run_as,
        Some(uid),
        "Deployment runAsUser and the image's USER differ"
    );
    let ignore = std::fs::read_to_string(root.join(".dockerignore"))
        .unwrap_or_else(|e| panic!(".dockerignore: {e}"));
    for entry in ["target/", ".git/"] {
        assert!(
            ignore.lines().any(|l| l.trim() == entry),
            ".dockerignore should exclude {entry}"
        );
    }
}

#[test]
fn a_disruption_budget_keeps_one_replica_up() {
    let d = deployment();
    let pod_labels = d
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let budgets = objects::<PodDisruptionBudget>("PodDisruptionBudget");
    assert_eq!(budgets.len(), 1, "one PodDisruptionBudget expected");
    let spec = budgets[0].spec.clone().unwrap_or_default();
    assert_eq!(spec.min_available, Some(IntOrString::Int(1)));
    assert_eq!(budgets[0].metadata.namespace, d.metadata.namespace);
    let selector = spec
        .selector
        .and_then(|s| s.match_labels)
        .unwrap_or_default();
    assert!(
        !selector.is_empty(),
        "an empty selector would cover every pod in the namespace"
    );
    for (k, v) in &selector {
        assert_eq!(
            pod_labels.get(k),
            Some(v),
            "PodDisruptionBudget selector {k}={v} misses the scheduler pods"
        );
    }
}
