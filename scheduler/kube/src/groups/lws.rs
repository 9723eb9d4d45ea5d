//! LeaderWorkerSet: every replica of an LWS is a group of one leader and
//! `size - 1` workers, placed as one gang. The LWS controller labels each pod
//! `leaderworkerset.sigs.k8s.io/name` and `leaderworkerset.sigs.k8s.io/group-index`
//! and annotates it `leaderworkerset.sigs.k8s.io/size` (leader included),
//! so no LWS object needs to be read.

use k8s_openapi::api::core::v1 as core;
use phalanx_gang as gang;

use super::{Claim, Convention, Outcome, annotation, derived, label, parse_size};

/// Pod label naming the LeaderWorkerSet.
pub const NAME_LABEL: &str = "leaderworkerset.sigs.k8s.io/name";
/// Pod label giving the group (replica) index.
pub const GROUP_INDEX_LABEL: &str = "leaderworkerset.sigs.k8s.io/group-index";
/// Pod annotation giving the group size (leader plus workers).
pub const SIZE_ANNOTATION: &str = "leaderworkerset.sigs.k8s.io/size";

/// LeaderWorkerSet's claim on a pod.
pub fn claim(p: &core::Pod) -> Option<Claim> {
    let name = label(p, NAME_LABEL)?;
    let ns = super::namespace(p);
    let Some(index) = label(p, GROUP_INDEX_LABEL) else {
        let key = gang::GroupKey::new(ns, format!("lws:{name}"));
        let why = format!("LeaderWorkerSet {name}: label {GROUP_INDEX_LABEL} is missing");
        return Some(Claim::new(
            Convention::LeaderWorkerSet,
            key,
            Outcome::Wait(why),
        ));
    };
    let key = gang::GroupKey::new(ns, format!("lws:{name}:{index}"));
    let out = match annotation(p, SIZE_ANNOTATION) {
        Some(v) => match parse_size(v) {
            Some(n) => Outcome::Member(Some(derived(&key, n, super::created(p)))),
            None => Outcome::Wait(format!(
                "LeaderWorkerSet {name}: annotation {SIZE_ANNOTATION}={v:?} is not a positive integer"
            )),
        },
        None => Outcome::Wait(format!(
            "LeaderWorkerSet {name}: annotation {SIZE_ANNOTATION} is missing"
        )),
    };
    Some(Claim::new(Convention::LeaderWorkerSet, key, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_gang_per_group_index_of_the_annotated_size() {
        let p: core::Pod = serde_json::from_value(json!({
            "metadata": {"name": "lws-1-2", "namespace": "ns",
                         "labels": {NAME_LABEL: "lws", GROUP_INDEX_LABEL: "1"},
                         "annotations": {SIZE_ANNOTATION: "4"}},
            "spec": {"containers": []},
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let c = claim(&p).unwrap_or_else(|| panic!("no claim"));
        assert_eq!(c.key, gang::GroupKey::new("ns", "lws:lws:1"));
        assert!(matches!(c.outcome, Outcome::Member(Some(ref g)) if g.min_member == 4));
        let mut bad = p.clone();
        bad.metadata.annotations = Some([(SIZE_ANNOTATION.to_string(), "0".to_string())].into());
        let c = claim(&bad).unwrap_or_else(|| panic!("no claim"));
        assert!(matches!(c.outcome, Outcome::Wait(ref w) if w.contains("not a positive integer")));
    }
}
