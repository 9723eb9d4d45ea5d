//! Which gang a pod belongs to, in every convention users already have.
//!
//! Each convention is one small classifier (one file each) that looks at a pod
//! (and the objects the adapter caches) and may *claim* it for a group. When
//! several conventions claim one pod for different groups, the first in
//! [`PRECEDENCE`] wins and the adapter reports the disagreement in an Event.
//!
//! A claim either makes the pod a member of a group (possibly defining that
//! group: its size comes from a label, an annotation or an owner object),
//! sends it alone (`basic` native groups), or makes it wait with a reason a
//! user can act on. A claim never turns a pod that names a group into a gang
//! of one: a group that names something not seen yet waits.
//!
//! # Elastic groups, priority and disruption
//!
//! Every convention maps onto one shape: a minimum that is placed whole
//! (all-or-nothing) and, where the convention allows more pods than that,
//! elastic members placed as room appears and released first under
//! preemption:
//!
//! | convention | minimum | most |
//! |---|---|---|
//! | coscheduling PodGroup | `minMember` | every pod that names it |
//! | native PodGroup (`gang`) | `minCount` | every pod that names it |
//! | Flux MiniCluster | `spec.size` | `spec.maxSize` (when set) |
//! | the others | their size | their size |
//!
//! A group's priority is the native PodGroup's `spec.priority` where it sets
//! one, otherwise the highest `spec.priority` of its pods (resolved from their
//! PriorityClass by the API server). A native v1beta1 `preemptionPolicy`
//! applies to the whole group; otherwise the pods' own policy does.
//!
//! Disruption (native `disruptionMode`: v1alpha2 `Pod` / `PodGroup`, v1beta1
//! `single` / `all`): Phalanx never breaks a gang's minimum. In either mode
//! a gang loses its elastic members (above the minimum) first, one by one,
//! and its minimum only whole: `Pod` / `single` mode (the default) does not
//! let a gang lose part of its minimum. Only a group whose minimum is one
//! pod in `Pod` / `single` mode may lose every member singly
//! ([`native::disruption`]).

pub mod composite;
pub mod flux;
pub mod gates;
pub mod jobset;
pub mod kueue;
pub mod lws;
pub mod mpijob;
pub mod native;
pub mod status;
pub mod volcano;

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1 as core;
use kube::api::{ApiResource, DynamicObject};
use phalanx_gang as gang;
use serde::de::DeserializeOwned;

use crate::convert::{self, FieldError};

/// Pod annotation giving a group's size where the convention's own object
/// is not available (MPIJob, Volcano, JobSet without their CRDs served).
pub const GROUP_SIZE_ANNOTATION: &str = "phalanx.dev/group-size";

/// Largest group size accepted from a label or annotation; larger values are
/// refused (a typo must not make a group wait for a billion pods unexplained).
pub const MAX_GROUP_SIZE: u32 = 100_000;

/// The conventions, in the order that decides a pod's group when two disagree.
pub const PRECEDENCE: [Convention; 9] = [
    Convention::Native,
    Convention::Coscheduling,
    Convention::Kueue,
    Convention::Volcano,
    Convention::LeaderWorkerSet,
    Convention::JobSet,
    Convention::MpiJob,
    Convention::FluxMiniCluster,
    Convention::GangOwner,
];

/// A way of declaring a pod group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Convention {
    /// `scheduling.k8s.io` Workload/PodGroup (pod `spec.schedulingGroup` or `spec.workloadRef`).
    Native,
    /// `scheduling.x-k8s.io/pod-group` label (coscheduling, Fluence), with the PodGroup CRD or `fluence.group-size`.
    Coscheduling,
    /// Kueue plain-pod groups.
    Kueue,
    /// Volcano's `scheduling.k8s.io/group-name` annotation.
    Volcano,
    /// LeaderWorkerSet: one leader+workers group.
    LeaderWorkerSet,
    /// JobSet: one gang per JobSet.
    JobSet,
    /// Kubeflow MPIJob: launcher and workers.
    MpiJob,
    /// Flux Operator MiniCluster: its indexed Job's pods.
    FluxMiniCluster,
    /// A Job or StatefulSet marked `phalanx.dev/gang`.
    GangOwner,
}

impl Convention {
    /// Short human name used in Events.
    pub fn name(self) -> &'static str {
        match self {
            Convention::Native => "scheduling.k8s.io PodGroup/Workload",
            Convention::Coscheduling => "scheduling.x-k8s.io/pod-group label",
            Convention::Kueue => "Kueue pod group",
            Convention::Volcano => "Volcano group-name annotation",
            Convention::LeaderWorkerSet => "LeaderWorkerSet",
            Convention::JobSet => "JobSet",
            Convention::MpiJob => "MPIJob",
            Convention::FluxMiniCluster => "Flux MiniCluster",
            Convention::GangOwner => "phalanx.dev/gang owner",
        }
    }
}

/// What a convention says about one pod.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A member of the claim's group; `Some` when the adapter defines the group itself.
    Member(Option<gang::PodGroup>),
    /// Scheduled on its own (a `basic` policy).
    Alone,
    /// Must wait; the reason names what is missing or wrong.
    Wait(String),
}

/// One convention's claim on a pod.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    /// Who claims.
    pub convention: Convention,
    /// The group the pod belongs to under this convention.
    pub key: gang::GroupKey,
    /// What follows for the pod.
    pub outcome: Outcome,
}

impl Claim {
    /// A claim.
    pub fn new(convention: Convention, key: gang::GroupKey, outcome: Outcome) -> Self {
        Self {
            convention,
            key,
            outcome,
        }
    }
}

/// A group the adapter defines: `min_member` pods, created at `created`.
pub fn derived(key: &gang::GroupKey, min_member: u32, created: gang::Timestamp) -> gang::PodGroup {
    gang::PodGroup {
        key: key.clone(),
        min_member,
        schedule_timeout: None,
        priority: 0,
        created,
        expected_duration: None,
        topology_key: None,
        max_member: None,
        preemption_policy: None,
        disruption: gang::DisruptionMode::Gang,
    }
}

/// A label of the pod, if set and not empty.
pub fn label<'a>(p: &'a core::Pod, key: &str) -> Option<&'a str> {
    p.metadata
        .labels
        .as_ref()?
        .get(key)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

/// An annotation of the pod, if set.
pub fn annotation<'a>(p: &'a core::Pod, key: &str) -> Option<&'a str> {
    p.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

/// A group size from a string: a positive integer no larger than [`MAX_GROUP_SIZE`].
pub fn parse_size(v: &str) -> Option<u32> {
    v.trim()
        .parse::<u32>()
        .ok()
        .filter(|n| (1..=MAX_GROUP_SIZE).contains(n))
}

/// A group size from an `i64` count read from an object (negative or huge: None).
pub fn size_of(n: i64) -> Option<u32> {
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=MAX_GROUP_SIZE).contains(n))
}

/// The pod's namespace.
pub fn namespace(p: &core::Pod) -> String {
    p.metadata.namespace.clone().unwrap_or_default()
}

/// The pod's creation time.
pub fn created(p: &core::Pod) -> gang::Timestamp {
    convert::time_millis(p.metadata.creation_timestamp.as_ref())
}

/// The pod's `phalanx.dev/group-size` annotation: None if absent, Err(reason) if not a size.
pub fn size_annotation(p: &core::Pod) -> Option<Result<u32, String>> {
    let v = annotation(p, GROUP_SIZE_ANNOTATION)?;
    Some(parse_size(v).ok_or_else(|| {
        format!(
            "annotation {GROUP_SIZE_ANNOTATION}={v:?} is not a positive integer up to {MAX_GROUP_SIZE}"
        )
    }))
}

/// The dynamically watched kinds (each only where the server serves it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `scheduling.k8s.io` PodGroup (v1beta1 or v1alpha2).
    NativePodGroup,
    /// `scheduling.k8s.io` Workload (v1beta1, v1alpha2 or v1alpha1).
    Workload,
    /// `jobset.x-k8s.io` JobSet.
    JobSet,
    /// `kubeflow.org` MPIJob.
    MpiJob,
    /// `flux-framework.org` MiniCluster.
    MiniCluster,
    /// `scheduling.volcano.sh` PodGroup.
    VolcanoPodGroup,
    /// `scheduling.k8s.io` CompositePodGroup (v1alpha3, 1.37 alpha).
    CompositePodGroup,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 7] = [
        Kind::NativePodGroup,
        Kind::CompositePodGroup,
        Kind::Workload,
        Kind::JobSet,
        Kind::MpiJob,
        Kind::MiniCluster,
        Kind::VolcanoPodGroup,
    ];

    /// The name the loop tracks the kind's initial list under.
    pub fn name(self) -> &'static str {
        match self {
            Kind::NativePodGroup => "podgroups.scheduling.k8s.io",
            Kind::Workload => "workloads.scheduling.k8s.io",
            Kind::JobSet => "jobsets.jobset.x-k8s.io",
            Kind::MpiJob => "mpijobs.kubeflow.org",
            Kind::MiniCluster => "miniclusters.flux-framework.org",
            Kind::VolcanoPodGroup => "podgroups.scheduling.volcano.sh",
            Kind::CompositePodGroup => "compositepodgroups.scheduling.k8s.io",
        }
    }

    /// API group, versions in order of preference (newest first), plural and kind.
    pub fn api(
        self,
    ) -> (
        &'static str,
        &'static [&'static str],
        &'static str,
        &'static str,
    ) {
        match self {
            Kind::NativePodGroup => (
                "scheduling.k8s.io",
                &["v1beta1", "v1alpha2"],
                "podgroups",
                "PodGroup",
            ),
            Kind::Workload => (
                "scheduling.k8s.io",
                &["v1beta1", "v1alpha2", "v1alpha1"],
                "workloads",
                "Workload",
            ),
            Kind::JobSet => ("jobset.x-k8s.io", &["v1alpha2"], "jobsets", "JobSet"),
            Kind::MpiJob => ("kubeflow.org", &["v2beta1"], "mpijobs", "MPIJob"),
            Kind::MiniCluster => (
                "flux-framework.org",
                &["v1alpha2", "v1alpha1"],
                "miniclusters",
                "MiniCluster",
            ),
            Kind::VolcanoPodGroup => (
                "scheduling.volcano.sh",
                &["v1beta1"],
                "podgroups",
                "PodGroup",
            ),
            Kind::CompositePodGroup => (
                "scheduling.k8s.io",
                &["v1alpha3"],
                "compositepodgroups",
                "CompositePodGroup",
            ),
        }
    }

    /// The API resource of `version`.
    pub fn resource(self, version: &str) -> ApiResource {
        let (group, _, plural, kind) = self.api();
        ApiResource {
            group: group.into(),
            version: version.into(),
            api_version: format!("{group}/{version}"),
            kind: kind.into(),
            plural: plural.into(),
        }
    }

    /// The `group/version`s of this kind the server offers, newest first
    /// (their resource lists tell whether the kind itself is served).
    pub fn candidates(self, groups: &[(String, Vec<String>)]) -> Vec<String> {
        let (group, versions, _, _) = self.api();
        let Some((_, offered)) = groups.iter().find(|(g, _)| g == group) else {
            return Vec::new();
        };
        versions
            .iter()
            .filter(|v| offered.iter().any(|o| o == *v))
            .map(|v| format!("{group}/{v}"))
            .collect()
    }

    /// The newest version in which the server serves this kind: its group
    /// offers the version and that version lists the resource (a group
    /// version may be on with some of its kinds' feature gates off).
    pub fn served_version(self, d: &Discovery) -> Option<&'static str> {
        let (group, versions, plural, _) = self.api();
        versions.iter().copied().find(|v| {
            d.resources
                .contains(&(format!("{group}/{v}"), plural.to_string()))
        })
    }
}

/// What API discovery found: the group-versions that may hold a watched
/// kind, and the resources each lists.
#[derive(Debug, Default, Clone)]
pub struct Discovery {
    /// `(group/version, plural)` of every resource listed.
    pub resources: BTreeSet<(String, String)>,
}

impl Discovery {
    /// Records the resources one group-version lists.
    pub fn add<'a>(&mut self, group_version: &str, plurals: impl IntoIterator<Item = &'a str>) {
        for p in plurals {
            self.resources
                .insert((group_version.to_string(), p.to_string()));
        }
    }
}

/// A cached object of a dynamic kind, parsed into what the classifiers need.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// A native PodGroup.
    NativePodGroup(native::NativePodGroup),
    /// A native Workload.
    Workload(native::Workload),
    /// A JobSet.
    JobSet(jobset::JobSet),
    /// An MPIJob.
    MpiJob(mpijob::MpiJob),
    /// A MiniCluster.
    MiniCluster(flux::MiniCluster),
    /// A Volcano PodGroup.
    VolcanoPodGroup(volcano::VolcanoPodGroup),
    /// A native CompositePodGroup.
    CompositePodGroup(composite::CompositePodGroup),
}

/// Deserializes a dynamic object into `T`, naming the bad field on error.
pub fn parse_object<T: DeserializeOwned>(obj: &DynamicObject) -> Result<T, FieldError> {
    let v = serde_json::to_value(obj).map_err(|e| FieldError {
        field: "(object)".into(),
        message: e.to_string(),
    })?;
    serde_path_to_error::deserialize::<_, T>(v).map_err(|e| FieldError {
        field: e.path().to_string(),
        message: e.inner().to_string(),
    })
}

/// Parses an object of `kind`.
pub fn parse(kind: Kind, obj: &DynamicObject) -> Result<Parsed, FieldError> {
    Ok(match kind {
        Kind::NativePodGroup => Parsed::NativePodGroup(native::parse_podgroup(obj)?),
        Kind::Workload => Parsed::Workload(native::parse_workload(obj)?),
        Kind::JobSet => Parsed::JobSet(jobset::parse(obj)?),
        Kind::MpiJob => Parsed::MpiJob(mpijob::parse(obj)?),
        Kind::MiniCluster => Parsed::MiniCluster(flux::parse(obj)?),
        Kind::VolcanoPodGroup => Parsed::VolcanoPodGroup(volcano::parse(obj)?),
        Kind::CompositePodGroup => Parsed::CompositePodGroup(composite::parse(obj)?),
    })
}

/// Namespace and name.
pub type NsName = (String, String);

/// The cached dynamic objects, and which kinds the server serves.
#[derive(Debug, Default)]
pub struct Objects {
    /// Served kinds and the version watched.
    pub served: BTreeMap<Kind, &'static str>,
    objects: BTreeMap<Kind, BTreeMap<NsName, Result<Parsed, FieldError>>>,
    /// The groups naming each CompositePodGroup as their parent.
    children: BTreeMap<NsName, BTreeSet<(Kind, String)>>,
    /// What each composite unit's pods are, computed once for all its pods
    /// (cleared by any change in a hierarchy).
    pub(crate) unit_cache: std::cell::RefCell<BTreeMap<NsName, Outcome>>,
}

impl Objects {
    /// Whether the server serves `kind`.
    pub fn serves(&self, kind: Kind) -> bool {
        self.served.contains_key(&kind)
    }

    /// A cached object.
    pub fn get(&self, kind: Kind, ns: &str, name: &str) -> Option<&Result<Parsed, FieldError>> {
        self.objects
            .get(&kind)?
            .get(&(ns.to_string(), name.to_string()))
    }

    /// Stores an object; returns the previous entry.
    pub fn insert(
        &mut self,
        kind: Kind,
        key: NsName,
        parsed: Result<Parsed, FieldError>,
    ) -> Option<Result<Parsed, FieldError>> {
        if kind == Kind::CompositePodGroup
            || matches!(&parsed, Ok(p) if composite::parent_of(p).is_some())
        {
            self.unit_cache.borrow_mut().clear();
        }
        if let Ok(p) = &parsed
            && let Some(parent) = composite::parent_of(p)
        {
            self.children
                .entry((key.0.clone(), parent.to_string()))
                .or_default()
                .insert((kind, key.1.clone()));
        }
        let before = self
            .objects
            .entry(kind)
            .or_default()
            .insert(key.clone(), parsed);
        self.unlink(kind, &key, before.as_ref());
        before
    }

    /// Forgets an object; returns it.
    pub fn remove(&mut self, kind: Kind, key: &NsName) -> Option<Result<Parsed, FieldError>> {
        let before = self.objects.get_mut(&kind)?.remove(key);
        self.unlink(kind, key, before.as_ref());
        before
    }

    /// Drops the parent link of a replaced or removed entry, unless the
    /// entry now there still names the same parent.
    fn unlink(&mut self, kind: Kind, key: &NsName, before: Option<&Result<Parsed, FieldError>>) {
        let Some(Ok(old)) = before else { return };
        let Some(old_parent) = composite::parent_of(old) else {
            return;
        };
        self.unit_cache.borrow_mut().clear();
        let now = match self.get(kind, &key.0, &key.1) {
            Some(Ok(p)) => composite::parent_of(p),
            _ => None,
        };
        if now == Some(old_parent) {
            return;
        }
        let link = (key.0.clone(), old_parent.to_string());
        if let Some(set) = self.children.get_mut(&link) {
            set.remove(&(kind, key.1.clone()));
            if set.is_empty() {
                self.children.remove(&link);
            }
        }
    }

    /// The groups (PodGroups and CompositePodGroups) whose parent is
    /// CompositePodGroup `ns/name`, by kind and name.
    pub fn children(&self, ns: &str, name: &str) -> Vec<(Kind, &String)> {
        self.children
            .get(&(ns.to_string(), name.to_string()))
            .map(|s| s.iter().map(|(k, n)| (*k, n)).collect())
            .unwrap_or_default()
    }

    /// Keys of the cached objects of `kind`.
    pub fn keys(&self, kind: Kind) -> Vec<NsName> {
        self.objects
            .get(&kind)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }
}

/// The reason a pod waits for an object of `kind` that is invalid or not seen.
pub fn object_wait<'a>(
    objects: &'a Objects,
    kind: Kind,
    ns: &str,
    name: &str,
) -> Result<&'a Parsed, String> {
    let (group, versions, _, k) = kind.api();
    match objects.get(kind, ns, name) {
        Some(Ok(p)) => Ok(p),
        Some(Err(e)) => Err(format!("its {k} {ns}/{name} is invalid: {e}")),
        None if objects.serves(kind) => Err(format!("waiting for {k} {ns}/{name}")),
        None => Err(format!(
            "waiting for {k} {ns}/{name}, but this cluster does not serve {group} ({})",
            versions.join(", ")
        )),
    }
}

/// The gang-size claim shared by conventions whose size may come from
/// [`GROUP_SIZE_ANNOTATION`]: Some(outcome) when the annotation is set.
pub fn annotated_member(p: &core::Pod, key: &gang::GroupKey) -> Option<Outcome> {
    Some(match size_annotation(p)? {
        Ok(n) => Outcome::Member(Some(derived(key, n, created(p)))),
        Err(why) => Outcome::Wait(why),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A discovery where each listed group-version serves `plurals`.
    fn served(list: &[(&str, &[&str])], plurals: &[&str]) -> Discovery {
        let groups: Vec<(String, Vec<String>)> = list
            .iter()
            .map(|(g, vs)| (g.to_string(), vs.iter().map(|v| v.to_string()).collect()))
            .collect();
        let mut d = Discovery::default();
        for k in Kind::ALL {
            for gv in k.candidates(&groups) {
                d.add(&gv, plurals.iter().copied());
            }
        }
        d
    }

    #[test]
    fn the_newest_served_version_is_watched_and_unserved_kinds_are_not() {
        let both = ["podgroups", "workloads"];
        let s = served(
            &[("scheduling.k8s.io", &["v1", "v1alpha2", "v1beta1"])],
            &both,
        );
        assert_eq!(Kind::NativePodGroup.served_version(&s), Some("v1beta1"));
        assert_eq!(Kind::Workload.served_version(&s), Some("v1beta1"));
        let s135 = served(
            &[("scheduling.k8s.io", &["v1", "v1alpha1"])],
            &["workloads"],
        );
        assert_eq!(
            Kind::NativePodGroup.served_version(&s135),
            None,
            "1.35 has no PodGroup kind"
        );
        assert_eq!(Kind::Workload.served_version(&s135), Some("v1alpha1"));
        assert_eq!(Kind::JobSet.served_version(&s), None);
        assert_eq!(
            Kind::CompositePodGroup.served_version(&s),
            None,
            "1.37 without the CompositePodGroup gate"
        );
        let v1alpha3 = [("scheduling.k8s.io", &["v1", "v1beta1", "v1alpha3"][..])];
        assert_eq!(
            Kind::CompositePodGroup.served_version(&served(&v1alpha3, &both)),
            None,
            "a version that lists other kinds only"
        );
        let gated = served(&v1alpha3, &["podgroups", "workloads", "compositepodgroups"]);
        assert_eq!(
            Kind::CompositePodGroup.served_version(&gated),
            Some("v1alpha3")
        );
    }

    #[test]
    fn sizes_from_text_are_bounded() {
        assert_eq!(parse_size(" 4 "), Some(4));
        assert_eq!(parse_size("0"), None);
        assert_eq!(parse_size("-1"), None);
        assert_eq!(parse_size("100001"), None);
        assert_eq!(size_of(i64::MAX), None);
    }
}
