//! Flux Operator MiniCluster (`flux-framework.org`): the operator runs a
//! MiniCluster as an indexed Job that it owns; that Job's pods form one gang
//! of the MiniCluster's `spec.size`, without the user marking the Job.
//! (`spec.pod.schedulerName: phalanx` on the MiniCluster is how users choose
//! Phalanx.) Where the MiniCluster CRD is not served, the Job's own
//! parallelism gives the size.
//!
//! A MiniCluster is elastic when `spec.maxSize` is above `spec.size`: the
//! first `size` pods start together (the gang's minimum), the others join as
//! room appears, up to `maxSize`, and are the first released under preemption.

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
    /// Pods the MiniCluster starts with (the gang's minimum).
    pub size: u32,
    /// Most pods it may grow to (`spec.maxSize`), if set.
    pub max_size: Option<u32>,
    /// Creation time.
    pub created: gang::Timestamp,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSpec {
    #[serde(default)]
    size: Option<i64>,
    #[serde(default)]
    max_size: Option<i64>,
}

#[derive(Deserialize)]
struct Raw {
    metadata: kube::api::ObjectMeta,
    spec: RawSpec,
}

/// Parses a MiniCluster; `spec.size` defaults to 1 as in the operator;
/// `spec.maxSize`, when set, must be at least `size`.
pub fn parse(obj: &DynamicObject) -> Result<MiniCluster, FieldError> {
    let raw: Raw = super::parse_object(obj)?;
    let n = raw.spec.size.unwrap_or(1);
    let size = size_of(n).ok_or_else(|| FieldError {
        field: "spec.size".into(),
        message: format!("must be a positive integer, got {n}"),
    })?;
    let max_size = match raw.spec.max_size {
        // The operator writes 0 for "not elastic".
        None | Some(0) => None,
        Some(m) => match size_of(m) {
            Some(m) if m >= size => Some(m),
            _ => {
                return Err(FieldError {
                    field: "spec.maxSize".into(),
                    message: format!(
                        "must be at least spec.size ({size}) and at most {}, got {m}",
                        super::MAX_GROUP_SIZE
                    ),
                });
            }
        },
    };
    Ok(MiniCluster {
        size,
        max_size,
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
            Ok(Parsed::MiniCluster(m)) => {
                let mut g = derived(&key, m.size, m.created);
                g.max_member = m.max_size;
                Outcome::Member(Some(g))
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mc(spec: serde_json::Value) -> Result<MiniCluster, FieldError> {
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "flux-framework.org/v1alpha2", "kind": "MiniCluster",
            "metadata": {"name": "m", "namespace": "ns"}, "spec": spec,
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        parse(&obj)
    }

    #[test]
    fn size_is_the_minimum_and_max_size_the_most() {
        let m = mc(json!({"size": 2, "maxSize": 4})).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((m.size, m.max_size), (2, Some(4)));
        let fixed = mc(json!({"size": 3})).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((fixed.size, fixed.max_size), (3, None));
        let zero = mc(json!({"size": 3, "maxSize": 0})).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(zero.max_size, None);
        assert_eq!(
            mc(json!({"size": 4, "maxSize": 2})).map_err(|e| e.field),
            Err("spec.maxSize".to_string())
        );
        assert_eq!(
            mc(json!({"size": -1})).map_err(|e| e.field),
            Err("spec.size".to_string())
        );
    }

    #[test]
    fn hostile_sizes_are_errors_that_name_the_field() {
        for max in [
            json!(-1),
            json!(i64::MIN),
            json!(i64::MAX),
            json!(u64::MAX),
            json!(u64::from(u32::MAX)),
            json!(u64::from(u32::MAX) + 1),
            json!(super::super::MAX_GROUP_SIZE + 1),
            json!(1),
            json!(1.5),
            json!("4"),
            json!([4]),
        ] {
            let got = mc(json!({"size": 2, "maxSize": max}));
            assert!(
                got.as_ref().is_err_and(|e| e.field.contains("maxSize")),
                "maxSize {max}: {got:?}"
            );
        }
        for size in [json!(0), json!(i64::MAX), json!(u64::MAX), json!("2")] {
            let got = mc(json!({"size": size, "maxSize": 4}));
            assert!(
                got.as_ref().is_err_and(|e| e.field.contains("size")),
                "size {size}: {got:?}"
            );
        }
        let top = super::super::MAX_GROUP_SIZE;
        let m = mc(json!({"size": top, "maxSize": top})).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((m.size, m.max_size), (top, Some(top)));
    }
}
