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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(annotations: serde_json::Value) -> core::Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "annotations": annotations},
            "spec": {"containers": []},
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn min_member_from_the_podgroup_else_the_size_annotation_else_wait() {
        let mut objects = Objects::default();
        let bare = pod(json!({GROUP_ANNOTATION: "g"}));
        let c = claim(&bare, &objects).unwrap_or_else(|| panic!("no claim"));
        assert!(
            matches!(c.outcome, Outcome::Wait(ref w) if w.contains("does not serve scheduling.volcano.sh")),
            "{c:?}"
        );
        let sized = pod(json!({GROUP_ANNOTATION: "g", super::super::GROUP_SIZE_ANNOTATION: "3"}));
        let c = claim(&sized, &objects).unwrap_or_else(|| panic!("no claim"));
        assert!(matches!(c.outcome, Outcome::Member(Some(ref g)) if g.min_member == 3));
        objects.served.insert(Kind::VolcanoPodGroup, "v1beta1");
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "scheduling.volcano.sh/v1beta1", "kind": "PodGroup",
            "metadata": {"name": "g", "namespace": "ns"}, "spec": {"minMember": 5},
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        objects.insert(
            Kind::VolcanoPodGroup,
            ("ns".into(), "g".into()),
            parse(&obj).map(Parsed::VolcanoPodGroup),
        );
        let c = claim(&sized, &objects).unwrap_or_else(|| panic!("no claim"));
        assert_eq!(c.key, gang::GroupKey::new("ns", "volcano:g"));
        assert!(matches!(c.outcome, Outcome::Member(Some(ref g)) if g.min_member == 5));
    }
}
