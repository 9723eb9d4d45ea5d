//! Kubernetes 1.37's `CompositePodGroup` (`scheduling.k8s.io/v1alpha3`,
//! alpha, behind the CompositePodGroup feature gate): a tree of groups whose
//! inner nodes are CompositePodGroups and whose leaves are native PodGroups
//! (`spec.parentCompositePodGroupName` names the parent). A composite with a
//! `gang` policy admits its child groups all or nothing; `basic` lets them go
//! their own way.
//!
//! How it maps onto the core, which knows one level of gang:
//! - A PodGroup's *unit* is its topmost ancestor with a gang policy, or the
//!   PodGroup itself when no ancestor has one.
//! - Every pod of every PodGroup under a composite unit belongs to one core
//!   group. Its minimum is the sum of the leaves' minimums (`minCount` of a
//!   gang PodGroup, one pod of a basic one). Pods beyond that are elastic
//!   members, placed as room appears.
//! - A gang composite waits until it has at least `minGroupCount` child
//!   groups. Phalanx then admits all the child groups it has together. With
//!   more children than `minGroupCount`, this is stricter than the API, which
//!   would take any `minGroupCount` of them. It never starts a child group in
//!   part.
//! - Priority, preemption policy, disruption mode and topology key come from
//!   the unit composite. The unit's `PodGroupScheduled` condition is written
//!   on each of its PodGroups.
//!
//! Hierarchies are bounded: at most [`MAX_DEPTH`] levels and
//! [`MAX_UNIT_GROUPS`] groups under one unit, and a cycle of parents is
//! refused. Each of these makes the pods wait with a reason that names it.

use std::collections::BTreeSet;

use kube::api::{DynamicObject, ObjectMeta};
use phalanx_gang as gang;
use serde::Deserialize;

use super::native::{self, NativePodGroup, Policy, RawConstraints};
use super::{Kind, Objects, Outcome, Parsed, derived, object_wait, size_of};
use crate::convert::{self, FieldError};

/// Most levels of composite groups above a PodGroup.
pub const MAX_DEPTH: usize = 16;

/// Most groups (composite and leaf) under one gang unit.
pub const MAX_UNIT_GROUPS: usize = 10_000;

/// A CompositePodGroup, as far as scheduling goes.
#[derive(Debug, Clone, PartialEq)]
pub struct CompositePodGroup {
    /// `gang.minGroupCount`, or None for `basic`.
    pub min_groups: Option<u32>,
    /// `spec.parentCompositePodGroupName`: None for the root of a hierarchy.
    pub parent: Option<String>,
    /// `spec.priority`, 0 if unset (the pods' priority then decides).
    pub priority: i32,
    /// `spec.preemptionPolicy`, if set.
    pub preemption_policy: Option<gang::PreemptionPolicy>,
    /// `spec.disruptionMode` is `all`.
    pub disrupt_whole: bool,
    /// `spec.schedulingConstraints.topology[0].key`, if any.
    pub topology_key: Option<String>,
    /// Creation time.
    pub created: gang::Timestamp,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCompositeGang {
    min_group_count: i64,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawCompositePolicy {
    #[serde(default)]
    basic: Option<serde_json::Value>,
    #[serde(default)]
    gang: Option<RawCompositeGang>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawCompositeSpec {
    #[serde(default)]
    scheduling_policy: Option<RawCompositePolicy>,
    #[serde(default)]
    scheduling_constraints: Option<RawConstraints>,
    #[serde(default)]
    parent_composite_pod_group_name: Option<String>,
    #[serde(default)]
    priority: Option<i32>,
    #[serde(default)]
    preemption_policy: Option<String>,
    #[serde(default)]
    disruption_mode: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawComposite {
    metadata: ObjectMeta,
    #[serde(default)]
    spec: RawCompositeSpec,
}

/// Parses a CompositePodGroup.
pub fn parse(obj: &DynamicObject) -> Result<CompositePodGroup, FieldError> {
    let raw: RawComposite = super::parse_object(obj)?;
    let field = "spec.schedulingPolicy";
    let min_groups = match raw.spec.scheduling_policy {
        Some(RawCompositePolicy {
            gang: Some(g),
            basic: None,
        }) => Some(size_of(g.min_group_count).ok_or_else(|| FieldError {
            field: format!("{field}.gang.minGroupCount"),
            message: format!(
                "must be a positive integer up to {}, got {}",
                super::MAX_GROUP_SIZE,
                g.min_group_count
            ),
        })?),
        Some(RawCompositePolicy {
            gang: None,
            basic: Some(_),
        }) => None,
        _ => {
            return Err(FieldError {
                field: field.into(),
                message: "exactly one of basic or gang must be set".into(),
            });
        }
    };
    Ok(CompositePodGroup {
        min_groups,
        parent: native::parent_name(raw.spec.parent_composite_pod_group_name)?,
        priority: raw.spec.priority.unwrap_or(0),
        preemption_policy: native::preemption_policy(raw.spec.preemption_policy.as_deref())?,
        disrupt_whole: native::disrupt_whole(raw.spec.disruption_mode.as_ref())?,
        topology_key: native::topology_key(raw.spec.scheduling_constraints),
        created: convert::time_millis(raw.metadata.creation_timestamp.as_ref()),
    })
}

/// The group key of a composite unit.
pub fn composite_key(ns: &str, name: &str) -> gang::GroupKey {
    gang::GroupKey::new(ns, format!("compositepodgroup:{name}"))
}

/// The composite unit behind a group key, if it is one.
pub fn composite_name(key: &gang::GroupKey) -> Option<&str> {
    key.name.strip_prefix("compositepodgroup:")
}

/// The parent a cached PodGroup or CompositePodGroup names, if any.
pub fn parent_of(parsed: &Parsed) -> Option<&str> {
    match parsed {
        Parsed::NativePodGroup(g) => g.parent.as_deref(),
        Parsed::CompositePodGroup(c) => c.parent.as_deref(),
        _ => None,
    }
}

fn composite<'a>(
    objects: &'a Objects,
    ns: &str,
    name: &str,
) -> Result<&'a CompositePodGroup, String> {
    match object_wait(objects, Kind::CompositePodGroup, ns, name)? {
        Parsed::CompositePodGroup(c) => Ok(c),
        _ => Err(format!("CompositePodGroup {ns}/{name} is of another kind")),
    }
}

/// The gang unit above a PodGroup whose parent is `parent`: the topmost
/// ancestor with a gang policy, None when every ancestor is `basic`. Err
/// when an ancestor is missing or invalid, or the chain is a cycle or too
/// deep (the pods wait with that reason).
pub fn unit_of(objects: &Objects, ns: &str, parent: &str) -> Result<Option<String>, String> {
    let mut seen = BTreeSet::new();
    let mut unit = None;
    let mut cur = parent.to_string();
    loop {
        if !seen.insert(cur.clone()) {
            return Err(format!(
                "CompositePodGroup {ns}/{cur} is its own ancestor (spec.parentCompositePodGroupName)"
            ));
        }
        if seen.len() > MAX_DEPTH {
            return Err(format!(
                "its CompositePodGroup hierarchy in {ns} is deeper than {MAX_DEPTH} levels"
            ));
        }
        let c = composite(objects, ns, &cur)?;
        if c.min_groups.is_some() {
            unit = Some(cur.clone());
        }
        match &c.parent {
            Some(p) => cur = p.clone(),
            None => return Ok(unit),
        }
    }
}

/// What the pods of gang unit `unit` are: one group whose minimum is the
/// sum of its leaves' minimums, once every gang composite in it has its
/// `minGroupCount` children.
pub fn unit_outcome(objects: &Objects, ns: &str, unit: &str) -> Outcome {
    let key = (ns.to_string(), unit.to_string());
    if let Some(o) = objects.unit_cache.borrow().get(&key) {
        return o.clone();
    }
    let out = match unit_group(objects, ns, unit) {
        Ok(g) => Outcome::Member(Some(g)),
        Err(why) => Outcome::Wait(why),
    };
    objects.unit_cache.borrow_mut().insert(key, out.clone());
    out
}

/// The groups under composite `unit`: the composites (the unit first)
/// and the leaf PodGroups, walked without recursion and bounded by
/// [`MAX_UNIT_GROUPS`].
pub fn unit_members(
    objects: &Objects,
    ns: &str,
    unit: &str,
) -> Result<(Vec<String>, Vec<String>), String> {
    let (mut composites, mut leaves) = (vec![unit.to_string()], Vec::new());
    let mut next = 0;
    while let Some(name) = composites.get(next).cloned() {
        next += 1;
        for (kind, child) in objects.children(ns, &name) {
            if composites.len() + leaves.len() > MAX_UNIT_GROUPS {
                return Err(format!(
                    "CompositePodGroup {ns}/{unit} holds more than {MAX_UNIT_GROUPS} groups"
                ));
            }
            match kind {
                Kind::CompositePodGroup => composites.push(child.clone()),
                _ => leaves.push(child.clone()),
            }
        }
    }
    Ok((composites, leaves))
}

fn unit_group(objects: &Objects, ns: &str, unit: &str) -> Result<gang::PodGroup, String> {
    let top = composite(objects, ns, unit)?;
    let (composites, leaves) = unit_members(objects, ns, unit)?;
    for name in &composites {
        let children = objects.children(ns, name).len();
        if let Some(k) = composite(objects, ns, name)?.min_groups
            && (children as u64) < u64::from(k)
        {
            return Err(format!(
                "CompositePodGroup {ns}/{name} has {children} of its {k} child groups (gang.minGroupCount)"
            ));
        }
    }
    let mut minimum: u64 = 0;
    for name in &leaves {
        minimum += match leaf(objects, ns, name)?.policy {
            Policy::Gang(n) => u64::from(n),
            Policy::Basic => 1,
        };
    }
    let minimum = u32::try_from(minimum)
        .ok()
        .filter(|m| *m <= super::MAX_GROUP_SIZE)
        .ok_or_else(|| {
            format!(
                "CompositePodGroup {ns}/{unit} needs {minimum} pods, more than {}",
                super::MAX_GROUP_SIZE
            )
        })?;
    let key = composite_key(ns, unit);
    let mut g = derived(&key, minimum.max(1), top.created);
    g.priority = top.priority;
    g.topology_key = top.topology_key.clone();
    g.preemption_policy = top.preemption_policy;
    g.disruption = native::disruption(minimum, top.disrupt_whole);
    Ok(g)
}

fn leaf<'a>(objects: &'a Objects, ns: &str, name: &str) -> Result<&'a NativePodGroup, String> {
    match object_wait(objects, Kind::NativePodGroup, ns, name)? {
        Parsed::NativePodGroup(g) => Ok(g),
        _ => Err(format!("PodGroup {ns}/{name} is of another kind")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(kind: &str, name: &str, spec: serde_json::Value) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "scheduling.k8s.io/v1alpha3", "kind": kind,
            "metadata": {"name": name, "namespace": "ns"}, "spec": spec,
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn add(objects: &mut Objects, kind: Kind, name: &str, spec: serde_json::Value) {
        let k = if kind == Kind::CompositePodGroup {
            "CompositePodGroup"
        } else {
            "PodGroup"
        };
        let parsed = super::super::parse(kind, &obj(k, name, spec));
        objects.insert(kind, ("ns".into(), name.into()), parsed);
    }

    fn gang_leaf(parent: &str, min: u32) -> serde_json::Value {
        json!({"schedulingPolicy": {"gang": {"minCount": min}}, "parentCompositePodGroupName": parent})
    }

    fn served() -> Objects {
        Objects {
            served: [
                (Kind::NativePodGroup, "v1beta1"),
                (Kind::CompositePodGroup, "v1alpha3"),
            ]
            .into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_gang_composite_is_one_group_of_its_leaves_minimums() {
        let mut o = served();
        add(
            &mut o,
            Kind::CompositePodGroup,
            "root",
            json!({"schedulingPolicy": {"gang": {"minGroupCount": 2}}, "priority": 7}),
        );
        add(&mut o, Kind::NativePodGroup, "leader", gang_leaf("root", 1));
        assert_eq!(unit_of(&o, "ns", "root"), Ok(Some("root".into())));
        match unit_outcome(&o, "ns", "root") {
            Outcome::Wait(why) => assert!(why.contains("1 of its 2 child groups"), "{why}"),
            other => panic!("one child of two must wait: {other:?}"),
        }
        add(
            &mut o,
            Kind::NativePodGroup,
            "workers",
            gang_leaf("root", 4),
        );
        match unit_outcome(&o, "ns", "root") {
            Outcome::Member(Some(g)) => {
                assert_eq!(g.min_member, 5);
                assert_eq!(g.priority, 7);
                assert_eq!(g.key, composite_key("ns", "root"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_topmost_gang_ancestor_is_the_unit_and_basic_roots_are_not() {
        let mut o = served();
        add(
            &mut o,
            Kind::CompositePodGroup,
            "top",
            json!({"schedulingPolicy": {"basic": {}}}),
        );
        add(
            &mut o,
            Kind::CompositePodGroup,
            "replica",
            json!({"schedulingPolicy": {"gang": {"minGroupCount": 1}}, "parentCompositePodGroupName": "top"}),
        );
        add(
            &mut o,
            Kind::CompositePodGroup,
            "inner",
            json!({"schedulingPolicy": {"gang": {"minGroupCount": 1}}, "parentCompositePodGroupName": "replica"}),
        );
        add(&mut o, Kind::NativePodGroup, "g", gang_leaf("inner", 3));
        assert_eq!(unit_of(&o, "ns", "inner"), Ok(Some("replica".into())));
        match unit_outcome(&o, "ns", "replica") {
            Outcome::Member(Some(g)) => assert_eq!(g.min_member, 3),
            other => panic!("{other:?}"),
        }
        add(
            &mut o,
            Kind::CompositePodGroup,
            "solo",
            json!({"schedulingPolicy": {"basic": {}}}),
        );
        assert_eq!(
            unit_of(&o, "ns", "solo"),
            Ok(None),
            "no gang above: the PodGroup is its own unit"
        );
    }

    #[test]
    fn missing_cyclic_deep_and_malformed_hierarchies_wait_with_a_reason() {
        let mut o = served();
        let why = unit_of(&o, "ns", "nowhere").unwrap_err();
        assert!(
            why.contains("waiting for CompositePodGroup ns/nowhere"),
            "{why}"
        );
        add(
            &mut o,
            Kind::CompositePodGroup,
            "a",
            json!({"schedulingPolicy": {"gang": {"minGroupCount": 1}}, "parentCompositePodGroupName": "b"}),
        );
        add(
            &mut o,
            Kind::CompositePodGroup,
            "b",
            json!({"schedulingPolicy": {"gang": {"minGroupCount": 1}}, "parentCompositePodGroupName": "a"}),
        );
        let why = unit_of(&o, "ns", "a").unwrap_err();
        assert!(why.contains("its own ancestor"), "{why}");
        let mut o = served();
        add(
            &mut o,
            Kind::CompositePodGroup,
            "c0",
            json!({"schedulingPolicy": {"gang": {"minGroupCount": 1}}}),
        );
        for i in 1..=MAX_DEPTH + 1 {
            add(
                &mut o,
                Kind::CompositePodGroup,
                &format!("c{i}"),
                json!({
                "schedulingPolicy": {"gang": {"minGroupCount": 1}},
                "parentCompositePodGroupName": format!("c{}", i - 1)}),
            );
        }
        let why = unit_of(&o, "ns", &format!("c{}", MAX_DEPTH + 1)).unwrap_err();
        assert!(why.contains("deeper than"), "{why}");
        let bad = super::super::parse(
            Kind::CompositePodGroup,
            &obj(
                "CompositePodGroup",
                "x",
                json!({"schedulingPolicy": {"gang": {"minGroupCount": -3}}}),
            ),
        );
        assert_eq!(
            bad.unwrap_err().field,
            "spec.schedulingPolicy.gang.minGroupCount"
        );
        let bad = super::super::parse(
            Kind::CompositePodGroup,
            &obj(
                "CompositePodGroup",
                "x",
                json!({"schedulingPolicy": {"basic": {}}, "parentCompositePodGroupName": "a/b"}),
            ),
        );
        assert_eq!(bad.unwrap_err().field, "spec.parentCompositePodGroupName");
    }

    #[test]
    fn the_children_index_follows_changes_and_deletions() {
        let mut o = served();
        add(&mut o, Kind::NativePodGroup, "g", gang_leaf("a", 1));
        add(&mut o, Kind::NativePodGroup, "h", gang_leaf("a", 1));
        let names = |o: &Objects, p: &str| -> Vec<String> {
            o.children("ns", p)
                .into_iter()
                .map(|(_, n)| n.clone())
                .collect()
        };
        assert_eq!(names(&o, "a"), ["g", "h"]);
        // g moves to b; an update with the same parent keeps h where it is.
        add(&mut o, Kind::NativePodGroup, "g", gang_leaf("b", 2));
        add(&mut o, Kind::NativePodGroup, "h", gang_leaf("a", 3));
        assert_eq!(names(&o, "a"), ["h"]);
        assert_eq!(names(&o, "b"), ["g"]);
        // An invalid update no longer counts as a child; a deletion neither.
        add(
            &mut o,
            Kind::NativePodGroup,
            "h",
            json!({"schedulingPolicy": {}, "parentCompositePodGroupName": "a"}),
        );
        assert!(names(&o, "a").is_empty());
        o.remove(Kind::NativePodGroup, &("ns".into(), "g".into()));
        assert!(names(&o, "b").is_empty());
    }

    #[test]
    fn a_unit_larger_than_the_group_size_limit_waits() {
        let mut o = served();
        add(
            &mut o,
            Kind::CompositePodGroup,
            "root",
            json!({"schedulingPolicy": {"gang": {"minGroupCount": 2}}}),
        );
        add(
            &mut o,
            Kind::NativePodGroup,
            "a",
            gang_leaf("root", super::super::MAX_GROUP_SIZE),
        );
        add(&mut o, Kind::NativePodGroup, "b", gang_leaf("root", 1));
        match unit_outcome(&o, "ns", "root") {
            Outcome::Wait(why) => assert!(why.contains("needs 100001 pods"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}
