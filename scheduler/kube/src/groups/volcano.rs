//! Volcano: a pod names its group with the annotation
//! `scheduling.k8s.io/group-name`; the group's size is `spec.minMember` of the
//! Volcano PodGroup (`scheduling.volcano.sh/v1beta1`) of that name.
//!
//! Without that PodGroup (not created yet, or Volcano's CRD not installed)
//! the pod's `phalanx.dev/group-size` annotation gives the size if set;
//! otherwise the pod waits, naming what is missing.

use k8s_openapi::api::core::v1 as core;
use kube::api::DynamicObject;
use phalanx_gang as gang;
use serde::Deserialize;

use super::{
    Claim, Convention, Kind, Objects, Outcome, Parsed, annotated_member, annotation, derived,
    object_wait, size_of,
};
use crate::convert::{self, FieldError};

/// Pod annotation naming the Volcano group.
pub const GROUP_ANNOTATION: &str = "scheduling.k8s.io/group-name";

/// A Volcano PodGroup, as far as scheduling goes.
#[derive(Debug, Clone, PartialEq)]
pub struct VolcanoPodGroup {
    /// Pods placed together.
    pub min_member: u32,
    /// Creation time.
    pub created: gang::Timestamp,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSpec {
    #[serde(default)]
    min_member: Option<i64>,
}

#[derive(Deserialize)]
struct Raw {
    metadata: kube::api::ObjectMeta,
    spec: Option<RawSpec>,
}

/// Parses a Volcano PodGroup; `spec.minMember` defaults to 1 as in Volcano.
pub fn parse(obj: &DynamicObject) -> Result<VolcanoPodGroup, FieldError> {
    let raw: Raw = super::parse_object(obj)?;
    let n = raw.spec.and_then(|s| s.min_member).unwrap_or(1);
    let min_member = size_of(n).ok_or_else(|| FieldError {
        field: "spec.minMember".into(),
        message: format!("must be a positive integer, got {n}"),
    })?;
    Ok(VolcanoPodGroup {
        min_member,
        created: convert::time_millis(raw.metadata.creation_timestamp.as_ref()),
    })
}

/// Volcano's claim on a pod.
pub fn claim(p: &core::Pod, objects: &Objects) -> Option<Claim> {
    let name = annotation(p, GROUP_ANNOTATION).filter(|n| !n.is_empty())?;
    let ns = super::namespace(p);
    let key = gang::GroupKey::new(ns.clone(), format!("volcano:{name}"));
    let out = match object_wait(objects, Kind::VolcanoPodGroup, &ns, name) {
        Ok(Parsed::VolcanoPodGroup(g)) => {
            Outcome::Member(Some(derived(&key, g.min_member, g.created)))
        }
        Ok(_) => Outcome::Wait(format!("PodGroup {ns}/{name} is of another kind")),
        Err(why) => annotated_member(p, &key).unwrap_or(Outcome::Wait(why)),
    };
    Some(Claim::new(Convention::Volcano, key, out))
}
