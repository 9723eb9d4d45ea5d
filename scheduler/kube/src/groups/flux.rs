//! Flux Operator MiniCluster (`flux-framework.org`): the operator runs a
//! MiniCluster as an indexed Job that it owns; that Job's pods form one gang
//! of the MiniCluster's `spec.size`, without the user marking the Job.
//! (`spec.pod.schedulerName: phalanx` on the MiniCluster is how users choose
//! Phalanx.) Where the MiniCluster CRD is not served, the Job's own
//! parallelism gives the size.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1 as core;
use kube::api::DynamicObject;
use phalanx_gang as gang;
use serde::Deserialize;

use super::{Claim, Convention, Kind, Objects, Outcome, Parsed, derived, object_wait, size_of};
use crate::convert::{self, FieldError};

/// A MiniCluster, as far as scheduling goes.
#[derive(Debug, Clone, PartialEq)]
pub struct MiniCluster {
    /// Pods the MiniCluster starts with.
    pub size: u32,
    /// Creation time.
    pub created: gang::Timestamp,
}

#[derive(Deserialize)]
struct RawSpec {
    #[serde(default)]
    size: Option<i64>,
}

#[derive(Deserialize)]
struct Raw {
    metadata: kube::api::ObjectMeta,
    spec: RawSpec,
}

/// Parses a MiniCluster; `spec.size` defaults to 1 as in the operator.
pub fn parse(obj: &DynamicObject) -> Result<MiniCluster, FieldError> {
    let raw: Raw = super::parse_object(obj)?;
    let n = raw.spec.size.unwrap_or(1);
    Ok(MiniCluster {
        size: size_of(n).ok_or_else(|| FieldError {
            field: "spec.size".into(),
            message: format!("must be a positive integer, got {n}"),
        })?,
        created: convert::time_millis(raw.metadata.creation_timestamp.as_ref()),
    })
}

/// The MiniCluster controlling a Job, if any.
pub fn owner(job: &Job) -> Option<&str> {
    job.metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|o| {
            o.controller == Some(true)
                && o.kind == "MiniCluster"
                && o.api_version.starts_with("flux-framework.org/")
        })
        .map(|o| o.name.as_str())
}

/// The Flux claim on a pod whose controlling Job is `job` (already looked up).
pub fn claim(p: &core::Pod, job: &Job, objects: &Objects) -> Option<Claim> {
    let mc = owner(job)?;
    let ns = super::namespace(p);
    let key = gang::GroupKey::new(ns.clone(), format!("minicluster:{mc}"));
    let out = if objects.serves(Kind::MiniCluster) {
        match object_wait(objects, Kind::MiniCluster, &ns, mc) {
            Ok(Parsed::MiniCluster(m)) => Outcome::Member(Some(derived(&key, m.size, m.created))),
            Ok(_) => return None,
            Err(why) => Outcome::Wait(why),
        }
    } else {
        let spec = job.spec.as_ref();
        let par = spec.and_then(|s| s.parallelism).unwrap_or(1);
        let n = match spec.and_then(|s| s.completions) {
            Some(c) => par.min(c),
            None => par,
        };
        match size_of(i64::from(n)) {
            Some(n) => Outcome::Member(Some(derived(
                &key,
                n,
                convert::time_millis(job.metadata.creation_timestamp.as_ref()),
            ))),
            None => Outcome::Wait(format!(
                "the Job of MiniCluster {ns}/{mc} runs {n} pods at once"
            )),
        }
    };
    Some(Claim::new(Convention::FluxMiniCluster, key, out))
}
