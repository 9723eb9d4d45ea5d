//! JobSet (`jobset.x-k8s.io/v1alpha2`): all pods of one JobSet form one gang.
//! JobSet labels each pod `jobset.sigs.k8s.io/jobset-name`; the gang's size is
//! the sum over `spec.replicatedJobs[]` of `replicas` times the pods each Job
//! runs at once (`min(parallelism, completions)`, parallelism 1 by default).
//!
//! With the annotation `phalanx.dev/jobset-gang: replicated-job` on the JobSet,
//! each Job of it (one replica of a replicated job) is its own gang instead.
//! Without the JobSet object (not seen yet, or the CRD not served) the pod's
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

/// Pod label naming the JobSet.
pub const NAME_LABEL: &str = "jobset.sigs.k8s.io/jobset-name";
/// Pod label naming the replicated job.
pub const REPLICATED_JOB_LABEL: &str = "jobset.sigs.k8s.io/replicatedjob-name";
/// Pod label giving the Job's index within its replicated job.
pub const JOB_INDEX_LABEL: &str = "jobset.sigs.k8s.io/job-index";
/// JobSet annotation asking for one gang per Job (`replicated-job`) instead of per JobSet.
pub const GANG_PER_ANNOTATION: &str = "phalanx.dev/jobset-gang";

/// A JobSet, as far as scheduling goes.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSet {
    /// Pods of the whole JobSet.
    pub size: u32,
    /// Pods of one Job of each replicated job, by replicated job name.
    pub per_job: BTreeMap<String, u32>,
    /// One gang per Job instead of one per JobSet.
    pub gang_per_job: bool,
    /// Creation time.
    pub created: gang::Timestamp,
}

#[derive(Deserialize, Default)]
struct RawJobSpec {
    #[serde(default)]
    parallelism: Option<i64>,
    #[serde(default)]
    completions: Option<i64>,
}

#[derive(Deserialize, Default)]
struct RawTemplate {
    #[serde(default)]
    spec: RawJobSpec,
}

#[derive(Deserialize)]
struct RawReplicatedJob {
    name: String,
    #[serde(default)]
    replicas: Option<i64>,
    #[serde(default)]
    template: RawTemplate,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSpec {
    #[serde(default)]
    replicated_jobs: Vec<RawReplicatedJob>,
}

#[derive(Deserialize)]
struct Raw {
    metadata: kube::api::ObjectMeta,
    spec: RawSpec,
}

/// Parses a JobSet.
pub fn parse(obj: &DynamicObject) -> Result<JobSet, FieldError> {
    let raw: Raw = super::parse_object(obj)?;
    let mut size: u64 = 0;
    let mut per_job = BTreeMap::new();
    for (i, rj) in raw.spec.replicated_jobs.iter().enumerate() {
        let bad = |field: &str, v: i64| FieldError {
            field: format!("spec.replicatedJobs[{i}].{field}"),
            message: format!("must be a positive integer, got {v}"),
        };
        let replicas = rj.replicas.unwrap_or(1);
        let replicas = size_of(replicas).ok_or_else(|| bad("replicas", replicas))?;
        let par = rj.template.spec.parallelism.unwrap_or(1);
        let par = size_of(par).ok_or_else(|| bad("template.spec.parallelism", par))?;
        let pods = match rj.template.spec.completions {
            Some(c) => par.min(size_of(c).ok_or_else(|| bad("template.spec.completions", c))?),
            None => par,
        };
        per_job.insert(rj.name.clone(), pods);
        size = size.saturating_add(u64::from(replicas) * u64::from(pods));
    }
    let size = u32::try_from(size)
        .ok()
        .filter(|n| (1..=super::MAX_GROUP_SIZE).contains(n))
        .ok_or_else(|| FieldError {
            field: "spec.replicatedJobs".into(),
            message: format!(
                "the JobSet runs {size} pods; a gang must have 1 to {}",
                super::MAX_GROUP_SIZE
            ),
        })?;
    let gang_per_job = raw
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(GANG_PER_ANNOTATION))
        .is_some_and(|v| v == "replicated-job");
    Ok(JobSet {
        size,
        per_job,
        gang_per_job,
        created: convert::time_millis(raw.metadata.creation_timestamp.as_ref()),
    })
}

/// JobSet's claim on a pod.
pub fn claim(p: &core::Pod, objects: &Objects) -> Option<Claim> {
    let name = label(p, NAME_LABEL)?;
    let ns = super::namespace(p);
    let whole = gang::GroupKey::new(ns.clone(), format!("jobset:{name}"));
    match object_wait(objects, Kind::JobSet, &ns, name) {
        Ok(Parsed::JobSet(js)) if js.gang_per_job => {
            let rj = label(p, REPLICATED_JOB_LABEL).unwrap_or_default();
            let index = label(p, JOB_INDEX_LABEL).unwrap_or_default();
            let key = gang::GroupKey::new(ns, format!("jobset:{name}:{rj}:{index}"));
            let out = match js.per_job.get(rj) {
                Some(n) => Outcome::Member(Some(derived(&key, *n, js.created))),
                None => Outcome::Wait(format!(
                    "JobSet {name} has no replicated job {rj:?} (label {REPLICATED_JOB_LABEL})"
                )),
            };
            Some(Claim::new(Convention::JobSet, key, out))
        }
        Ok(Parsed::JobSet(js)) => {
            let out = Outcome::Member(Some(derived(&whole, js.size, js.created)));
            Some(Claim::new(Convention::JobSet, whole, out))
        }
        Ok(_) => None,
        Err(why) => {
            let out = annotated_member(p, &whole).unwrap_or(Outcome::Wait(why));
            Some(Claim::new(Convention::JobSet, whole, out))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn size_is_replicas_times_pods_per_job() {
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet",
            "metadata": {"name": "js", "namespace": "ns"},
            "spec": {"replicatedJobs": [
                {"name": "driver", "replicas": 1, "template": {"spec": {"parallelism": 1}}},
                {"name": "workers", "replicas": 2, "template": {"spec": {"parallelism": 4, "completions": 3}}},
            ]},
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let js = parse(&obj).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(js.size, 1 + 2 * 3);
        assert_eq!(js.per_job.get("workers"), Some(&3));
        let bad: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet",
            "metadata": {"name": "js", "namespace": "ns"},
            "spec": {"replicatedJobs": [{"name": "w", "replicas": -1, "template": {}}]},
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            parse(&bad).map_err(|e| e.field),
            Err("spec.replicatedJobs[0].replicas".to_string())
        );
    }

    #[test]
    fn one_gang_per_job_when_asked_and_annotation_without_the_object() {
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet",
            "metadata": {"name": "js", "namespace": "ns", "annotations": {GANG_PER_ANNOTATION: "replicated-job"}},
            "spec": {"replicatedJobs": [{"name": "workers", "replicas": 3, "template": {"spec": {"parallelism": 2}}}]},
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let mut objects = Objects::default();
        objects.served.insert(Kind::JobSet, "v1alpha2");
        let p: core::Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "labels": {
                NAME_LABEL: "js", REPLICATED_JOB_LABEL: "workers", JOB_INDEX_LABEL: "1"}},
            "spec": {"containers": []},
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let c = claim(&p, &objects).unwrap_or_else(|| panic!("no claim"));
        assert!(
            matches!(c.outcome, Outcome::Wait(ref w) if w.contains("waiting for JobSet ns/js"))
        );
        objects.insert(
            Kind::JobSet,
            ("ns".into(), "js".into()),
            parse(&obj).map(Parsed::JobSet),
        );
        let c = claim(&p, &objects).unwrap_or_else(|| panic!("no claim"));
        assert_eq!(c.key, gang::GroupKey::new("ns", "jobset:js:workers:1"));
        assert!(matches!(c.outcome, Outcome::Member(Some(ref g)) if g.min_member == 2));
        // CRD not served: the pod's own size annotation.
        let mut annotated = p.clone();
        annotated.metadata.annotations = Some(
            [(
                super::super::GROUP_SIZE_ANNOTATION.to_string(),
                "6".to_string(),
            )]
            .into(),
        );
        let c = claim(&annotated, &Objects::default()).unwrap_or_else(|| panic!("no claim"));
        assert!(matches!(c.outcome, Outcome::Member(Some(ref g)) if g.min_member == 6));
    }
}
