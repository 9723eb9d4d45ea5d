//! Kubeflow MPIJob (`kubeflow.org/v2beta1`): the launcher and the workers are
//! one heterogeneous gang. The MPI Operator labels its pods
//! `training.kubeflow.org/job-name` and `training.kubeflow.org/job-role`
//! (`launcher` or `worker`; older operators use `training.kubeflow.org/replica-type`).
//! The size is `spec.mpiReplicaSpecs.Launcher.replicas` (1 by default) plus
//! `spec.mpiReplicaSpecs.Worker.replicas`. With
//! `spec.launcherCreationPolicy: WaitForWorkersReady` the launcher is only
//! created once the workers run, so the gang is the workers alone and the
//! launcher is placed by itself.
//!
//! Without the MPIJob object (not seen yet, or the CRD not served) the pod's
//! `phalanx.dev/group-size` annotation gives the size if set; else it waits.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1 as core;
use kube::api::DynamicObject;
use phalanx_gang as gang;
use serde::Deserialize;

use super::{
    Claim, Convention, Kind, Objects, Outcome, Parsed, annotated_member, derived, label,
    object_wait, size_of,
};
use crate::convert::{self, FieldError};

/// Pod label naming the MPIJob.
pub const JOB_NAME_LABEL: &str = "training.kubeflow.org/job-name";
/// Pod label giving the role (`launcher`, `worker`).
pub const JOB_ROLE_LABEL: &str = "training.kubeflow.org/job-role";
/// Older pod label giving the role.
pub const REPLICA_TYPE_LABEL: &str = "training.kubeflow.org/replica-type";

/// An MPIJob, as far as scheduling goes.
#[derive(Debug, Clone, PartialEq)]
pub struct MpiJob {
    /// Launcher pods (0 or 1).
    pub launchers: u32,
    /// Worker pods.
    pub workers: u32,
    /// The launcher is created only after the workers are ready.
    pub launcher_after_workers: bool,
    /// Creation time.
    pub created: gang::Timestamp,
}

#[derive(Deserialize)]
struct RawReplicaSpec {
    #[serde(default)]
    replicas: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSpec {
    #[serde(default)]
    mpi_replica_specs: BTreeMap<String, RawReplicaSpec>,
    #[serde(default)]
    launcher_creation_policy: Option<String>,
}

#[derive(Deserialize)]
struct Raw {
    metadata: kube::api::ObjectMeta,
    spec: RawSpec,
}

/// Parses an MPIJob.
pub fn parse(obj: &DynamicObject) -> Result<MpiJob, FieldError> {
    let raw: Raw = super::parse_object(obj)?;
    let count = |role: &str, default: i64| -> Result<u32, FieldError> {
        let n = raw
            .spec
            .mpi_replica_specs
            .get(role)
            .and_then(|r| r.replicas)
            .unwrap_or(default);
        if n == 0 {
            return Ok(0);
        }
        size_of(n).ok_or_else(|| FieldError {
            field: format!("spec.mpiReplicaSpecs.{role}.replicas"),
            message: format!("must not be negative, got {n}"),
        })
    };
    let launchers = count("Launcher", 1)?;
    let workers = count("Worker", 0)?;
    Ok(MpiJob {
        launchers,
        workers,
        launcher_after_workers: raw.spec.launcher_creation_policy.as_deref()
            == Some("WaitForWorkersReady"),
        created: convert::time_millis(raw.metadata.creation_timestamp.as_ref()),
    })
}

fn role(p: &core::Pod) -> Option<&str> {
    label(p, JOB_ROLE_LABEL)
        .or_else(|| label(p, REPLICA_TYPE_LABEL))
        .filter(|r| r.eq_ignore_ascii_case("launcher") || r.eq_ignore_ascii_case("worker"))
}

/// MPIJob's claim on a pod.
pub fn claim(p: &core::Pod, objects: &Objects) -> Option<Claim> {
    let name = label(p, JOB_NAME_LABEL)?;
    let role = role(p)?;
    let ns = super::namespace(p);
    let key = gang::GroupKey::new(ns.clone(), format!("mpijob:{name}"));
    let out = match object_wait(objects, Kind::MpiJob, &ns, name) {
        Ok(Parsed::MpiJob(j)) if j.launcher_after_workers => {
            if role.eq_ignore_ascii_case("launcher") {
                Outcome::Alone
            } else {
                match size_of(i64::from(j.workers)) {
                    Some(n) => Outcome::Member(Some(derived(&key, n, j.created))),
                    None => Outcome::Wait(format!("MPIJob {ns}/{name} has no workers")),
                }
            }
        }
        Ok(Parsed::MpiJob(j)) => match size_of(i64::from(j.launchers) + i64::from(j.workers)) {
            Some(n) => Outcome::Member(Some(derived(&key, n, j.created))),
            None => Outcome::Wait(format!("MPIJob {ns}/{name} has no pods")),
        },
        Ok(_) => return None,
        Err(why) => annotated_member(p, &key).unwrap_or(Outcome::Wait(why)),
    };
    Some(Claim::new(Convention::MpiJob, key, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mpijob(spec: serde_json::Value) -> Result<MpiJob, FieldError> {
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "kubeflow.org/v2beta1", "kind": "MPIJob",
            "metadata": {"name": "m", "namespace": "ns"}, "spec": spec,
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        parse(&obj)
    }

    #[test]
    fn launcher_plus_workers_unless_launcher_waits() {
        let j = mpijob(
            json!({"mpiReplicaSpecs": {"Launcher": {"replicas": 1}, "Worker": {"replicas": 4}}}),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (j.launchers, j.workers, j.launcher_after_workers),
            (1, 4, false)
        );
        let mut objects = Objects::default();
        objects.served.insert(Kind::MpiJob, "v2beta1");
        objects.insert(
            Kind::MpiJob,
            ("ns".into(), "m".into()),
            Ok(Parsed::MpiJob(j)),
        );
        let pod = |role: &str| -> core::Pod {
            serde_json::from_value(json!({
                "metadata": {"name": "p", "namespace": "ns", "labels": {JOB_NAME_LABEL: "m", JOB_ROLE_LABEL: role}},
                "spec": {"containers": []},
            }))
            .unwrap_or_else(|e| panic!("{e}"))
        };
        let c = claim(&pod("launcher"), &objects).unwrap_or_else(|| panic!("no claim"));
        assert!(matches!(c.outcome, Outcome::Member(Some(ref g)) if g.min_member == 5));
        let later = mpijob(json!({"launcherCreationPolicy": "WaitForWorkersReady",
                                  "mpiReplicaSpecs": {"Worker": {"replicas": 4}}}))
        .unwrap_or_else(|e| panic!("{e}"));
        objects.insert(
            Kind::MpiJob,
            ("ns".into(), "m".into()),
            Ok(Parsed::MpiJob(later)),
        );
        let c = claim(&pod("launcher"), &objects).unwrap_or_else(|| panic!("no claim"));
        assert_eq!(c.outcome, Outcome::Alone);
        let c = claim(&pod("worker"), &objects).unwrap_or_else(|| panic!("no claim"));
        assert!(matches!(c.outcome, Outcome::Member(Some(ref g)) if g.min_member == 4));
        assert_eq!(
            mpijob(json!({"mpiReplicaSpecs": {"Worker": {"replicas": -2}}})).map_err(|e| e.field),
            Err("spec.mpiReplicaSpecs.Worker.replicas".to_string())
        );
    }
}
