//! Kueue's plain-pod groups: pods labelled `kueue.x-k8s.io/pod-group-name`
//! form one gang whose size is the annotation
//! `kueue.x-k8s.io/pod-group-total-count`, which every member carries. Kueue
//! admits such a group by removing its `kueue.x-k8s.io/admission` scheduling
//! gate from every pod; gated pods wait (see `gates`).
//!
//! A total count that is missing, not a number, or different between members
//! makes the whole group wait with a reason naming the pods: guessing a size
//! could bind part of a gang.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1 as core;
use phalanx_gang as gang;

use super::{Claim, Convention, Outcome, annotation, derived, label, parse_size};

/// Pod label naming the group.
pub const GROUP_LABEL: &str = "kueue.x-k8s.io/pod-group-name";
/// Pod annotation giving the group's total pod count.
pub const TOTAL_COUNT_ANNOTATION: &str = "kueue.x-k8s.io/pod-group-total-count";

/// The group a pod names, if any.
pub fn group_name(p: &core::Pod) -> Option<&str> {
    label(p, GROUP_LABEL)
}

/// What a member says the total is (None: no annotation).
pub fn total_count(p: &core::Pod) -> Option<String> {
    annotation(p, TOTAL_COUNT_ANNOTATION).map(str::to_string)
}

/// The group's key.
pub fn key(ns: &str, name: &str) -> gang::GroupKey {
    gang::GroupKey::new(ns, format!("kueue:{name}"))
}

/// Members of one Kueue group: pod name -> its total count annotation.
pub type Members = BTreeMap<String, Option<String>>;

/// The distinct total counts members give (for noticing when they change).
pub fn distinct(members: &Members) -> BTreeSet<Option<String>> {
    members.values().cloned().collect()
}

/// Kueue's claim on a pod; `members` are all known pods of its group (this one included).
pub fn claim(p: &core::Pod, members: &Members) -> Option<Claim> {
    let name = group_name(p)?;
    let ns = super::namespace(p);
    let key = key(&ns, name);
    let values = distinct(members);
    let out = if values.len() > 1 {
        let mut by_value: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for (pod, v) in members {
            let shown = v
                .as_deref()
                .map_or("(none)".to_string(), |v| format!("{v:?}"));
            by_value.entry(shown).or_default().push(pod);
        }
        let parts: Vec<String> = by_value
            .iter()
            .map(|(v, pods)| format!("{v} on {}", pods.join(", ")))
            .collect();
        Outcome::Wait(format!(
            "Kueue pod group {name}: members disagree on annotation {TOTAL_COUNT_ANNOTATION}: {}",
            parts.join("; ")
        ))
    } else {
        match total_count(p) {
            None => Outcome::Wait(format!(
                "Kueue pod group {name}: annotation {TOTAL_COUNT_ANNOTATION} is missing"
            )),
            Some(v) => match parse_size(&v) {
                Some(n) => Outcome::Member(Some(derived(&key, n, super::created(p)))),
                None => Outcome::Wait(format!(
                    "Kueue pod group {name}: annotation {TOTAL_COUNT_ANNOTATION}={v:?} is not a positive integer"
                )),
            },
        }
    };
    Some(Claim::new(Convention::Kueue, key, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, count: Option<&str>) -> core::Pod {
        let ann = count.map(|c| json!({TOTAL_COUNT_ANNOTATION: c}));
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns", "labels": {GROUP_LABEL: "g"}, "annotations": ann},
            "spec": {"containers": []},
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn members(pods: &[&core::Pod]) -> Members {
        pods.iter()
            .map(|p| (p.metadata.name.clone().unwrap_or_default(), total_count(p)))
            .collect()
    }

    #[test]
    fn agreeing_members_form_a_gang_of_the_total() {
        let (a, b) = (pod("a", Some("3")), pod("b", Some("3")));
        let c = claim(&a, &members(&[&a, &b])).unwrap_or_else(|| panic!("no claim"));
        assert_eq!(c.key, key("ns", "g"));
        assert!(matches!(c.outcome, Outcome::Member(Some(ref g)) if g.min_member == 3));
    }

    #[test]
    fn disagreement_or_garbage_waits_with_the_pods_named() {
        let (a, b) = (pod("a", Some("3")), pod("b", Some("4")));
        let c = claim(&a, &members(&[&a, &b])).unwrap_or_else(|| panic!("no claim"));
        let Outcome::Wait(why) = c.outcome else {
            panic!("{c:?}")
        };
        assert!(
            why.contains("\"3\" on a") && why.contains("\"4\" on b"),
            "{why}"
        );
        let x = pod("x", Some("three"));
        let c = claim(&x, &members(&[&x])).unwrap_or_else(|| panic!("no claim"));
        assert!(matches!(c.outcome, Outcome::Wait(ref w) if w.contains("not a positive integer")));
        let none = pod("n", None);
        let c = claim(&none, &members(&[&none])).unwrap_or_else(|| panic!("no claim"));
        assert!(matches!(c.outcome, Outcome::Wait(ref w) if w.contains("missing")));
    }
}
