//! The scheduler's cache of the cluster and the rules that turn it into gang
//! core inputs: which pods are ours, which group each belongs to, which pods
//! must wait for their PodGroup or owner to be seen.

use std::collections::{BTreeMap, HashMap, HashSet};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Resource;
use phalanx_gang as gang;

use crate::convert::{self, FLUENCE_GROUP_SIZE_LABEL, FieldError};
use crate::crd::{NodeResourceTopology, PodGroup};
use crate::groups::native::{NativeRef, PodObject};
use crate::groups::{self, Claim, Convention, Kind, Outcome, Parsed, kueue};

/// Label or annotation on a Job or StatefulSet that makes its pods one gang.
pub const GANG_OWNER_MARKER: &str = "phalanx.dev/gang";

/// Something worth a Kubernetes Event and a log line that the core does not produce.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// The object the notice is about.
    pub regarding: ObjectReference,
    /// CamelCase reason.
    pub reason: String,
    /// Human message.
    pub message: String,
}

type NsName = (String, String);

fn ns_name<K: Resource>(o: &K) -> NsName {
    (
        o.meta().namespace.clone().unwrap_or_default(),
        o.meta().name.clone().unwrap_or_default(),
    )
}

/// How one pod is handed to the core.
#[derive(Debug, Clone, PartialEq)]
enum Class {
    /// Given to the core, with its group (None: a group of one) and a group the
    /// adapter derived for it (Fluence label, gang owner), if any.
    Send(Option<gang::GroupKey>, Option<gang::PodGroup>),
    /// One of our unbound pods that waits for an object it needs (reason).
    Park(String),
}

/// The cache and the conversion state.
#[derive(Debug, Default)]
pub struct Cluster {
    scheduler_names: Vec<String>,
    namespaces: Vec<String>,
    rack_label: String,
    nodes: BTreeMap<String, core::Node>,
    nrts: BTreeMap<String, NodeResourceTopology>,
    pods: HashMap<String, core::Pod>,
    podgroups: BTreeMap<NsName, Result<gang::PodGroup, FieldError>>,
    /// UIDs of the coscheduling PodGroups and of the native PodGroups, for
    /// Events about them (`kubectl describe` finds Events by UID).
    podgroup_uids: HashMap<NsName, String>,
    native_podgroup_uids: HashMap<NsName, String>,
    jobs: BTreeMap<NsName, Job>,
    statefulsets: BTreeMap<NsName, StatefulSet>,
    derived: BTreeMap<gang::GroupKey, gang::PodGroup>,
    /// Pods given to the core, with the group they were given with.
    sent: HashMap<String, Option<gang::GroupKey>>,
    pod_groups: HashMap<String, gang::GroupKey>,
    parked: BTreeMap<String, String>,
    reported: HashSet<String>,
    /// Native group references of pods (read from the raw pod), by UID.
    native_refs: HashMap<String, NativeRef>,
    /// Objects of the dynamically watched kinds, and which kinds are served.
    objects: groups::Objects,
    /// Kueue groups: pod name -> its total-count annotation.
    kueue: HashMap<NsName, kueue::Members>,
    /// PodDisruptionBudgets (None: present but invalid, so not given to the core).
    budgets: BTreeMap<NsName, Option<gang::DisruptionBudget>>,
    /// The highest `spec.priority` seen among each group's pods: a group
    /// whose object gives no priority (coscheduling PodGroups, groups the
    /// adapter derives) takes its pods' (pod priority never changes, so the
    /// highest seen is never wrong for long).
    pod_priority: HashMap<gang::GroupKey, i32>,
}

impl Cluster {
    /// An empty cache for these scheduler names and namespaces (empty: all).
    pub fn new(scheduler_names: Vec<String>, namespaces: Vec<String>, rack_label: String) -> Self {
        Self {
            scheduler_names,
            namespaces,
            rack_label,
            ..Default::default()
        }
    }

    /// The core's name for our pods.
    pub fn core_scheduler_name(&self) -> &str {
        self.scheduler_names
            .first()
            .map(String::as_str)
            .unwrap_or("phalanx")
    }

    /// Number of nodes known.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Our pods that wait for a PodGroup or owner.
    pub fn parked_count(&self) -> usize {
        self.parked.len()
    }

    /// Our pods not bound yet.
    pub fn pending_pod_count(&self) -> usize {
        self.pods
            .values()
            .filter(|p| {
                self.is_ours(p) && p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_none()
            })
            .count()
    }

    /// (group, pod name, node) of every bound pod of ours that belongs to a group.
    pub fn grouped_bound_pods(&self) -> Vec<(gang::GroupKey, String, String)> {
        self.pod_groups
            .iter()
            .filter_map(|(uid, key)| {
                let p = self.pods.get(uid)?;
                let node = p.spec.as_ref()?.node_name.clone()?;
                Some((
                    key.clone(),
                    p.metadata.name.clone().unwrap_or_default(),
                    node,
                ))
            })
            .collect()
    }

    /// A group whose object sets no priority (0) takes the highest of its pods'.
    fn with_pod_priority(&self, mut g: gang::PodGroup) -> gang::PodGroup {
        if g.priority == 0
            && let Some(p) = self.pod_priority.get(&g.key)
        {
            g.priority = *p;
        }
        g
    }

    fn set_pod_group(&mut self, uid: &str, key: Option<gang::GroupKey>) {
        match key {
            Some(k) => self.pod_groups.insert(uid.to_string(), k),
            None => self.pod_groups.remove(uid),
        };
    }

    /// A cached pod by UID.
    pub fn pod(&self, uid: &str) -> Option<&core::Pod> {
        self.pods.get(uid)
    }

    /// Whether a group is backed by a valid PodGroup object (its status is ours to write).
    pub fn has_podgroup(&self, key: &gang::GroupKey) -> bool {
        matches!(
            self.podgroups
                .get(&(key.namespace.clone(), key.name.clone())),
            Some(Ok(_))
        )
    }

    pub(crate) fn is_ours(&self, p: &core::Pod) -> bool {
        let name = p
            .spec
            .as_ref()
            .and_then(|s| s.scheduler_name.as_deref())
            .unwrap_or("default-scheduler");
        let ns = p.metadata.namespace.as_deref().unwrap_or("");
        self.scheduler_names.iter().any(|n| n == name)
            && (self.namespaces.is_empty() || self.namespaces.iter().any(|n| n == ns))
    }

    fn note_once(
        &mut self,
        notes: &mut Vec<Notice>,
        regarding: ObjectReference,
        reason: &str,
        message: String,
    ) {
        let key = format!(
            "{}/{}/{}/{reason}/{message}",
            regarding.kind.as_deref().unwrap_or(""),
            regarding.namespace.as_deref().unwrap_or(""),
            regarding.name.as_deref().unwrap_or("")
        );
        if self.reported.insert(key) {
            notes.push(Notice {
                regarding,
                reason: reason.into(),
                message,
            });
        }
    }

    // ---- nodes ----

    fn node_event(&mut self, name: &str, out: &mut Vec<gang::Event>, notes: &mut Vec<Notice>) {
        let Some(n) = self.nodes.get(name) else {
            return;
        };
        let (node, problems) = convert::node(n, &self.rack_label, self.nrts.get(name));
        let reference = n.object_ref(&());
        for p in problems {
            self.note_once(notes, reference.clone(), "InvalidNodeField", p.to_string());
        }
        out.push(gang::Event::NodeUpsert(node));
    }

    /// A node was added or changed.
    pub fn apply_node(
        &mut self,
        n: core::Node,
        out: &mut Vec<gang::Event>,
        notes: &mut Vec<Notice>,
    ) {
        let name = n.metadata.name.clone().unwrap_or_default();
        self.nodes.insert(name.clone(), n);
        self.node_event(&name, out, notes);
    }

    /// Names of the nodes whose labels include every `key = value` of `selector`.
    pub fn nodes_matching(&self, selector: &HashMap<String, String>) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|(_, n)| {
                let labels = n.metadata.labels.as_ref();
                selector
                    .iter()
                    .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
            })
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// A node is gone.
    pub fn delete_node(&mut self, name: &str, out: &mut Vec<gang::Event>) {
        if self.nodes.remove(name).is_some() {
            out.push(gang::Event::NodeDelete(name.to_string()));
        }
    }

    /// Node names known (for re-list reconciliation).
    pub fn node_names(&self) -> Vec<String> {
        self.nodes.keys().cloned().collect()
    }

    /// A NodeResourceTopology was added or changed; its node is re-sent.
    pub fn apply_nrt(
        &mut self,
        t: NodeResourceTopology,
        out: &mut Vec<gang::Event>,
        notes: &mut Vec<Notice>,
    ) {
        let name = t.metadata.name.clone().unwrap_or_default();
        self.nrts.insert(name.clone(), t);
        self.node_event(&name, out, notes);
    }

    /// A NodeResourceTopology is gone.
    pub fn delete_nrt(&mut self, name: &str, out: &mut Vec<gang::Event>, notes: &mut Vec<Notice>) {
        if self.nrts.remove(name).is_some() {
            self.node_event(name, out, notes);
        }
    }

    /// NodeResourceTopology names known.
    pub fn nrt_names(&self) -> Vec<String> {
        self.nrts.keys().cloned().collect()
    }

    // ---- pods ----

    fn owner_claim(&self, p: &core::Pod) -> Option<Claim> {
        let owner = p
            .metadata
            .owner_references
            .as_ref()?
            .iter()
            .find(|o| o.controller == Some(true))?;
        let ns = p.metadata.namespace.clone().unwrap_or_default();
        let key = (ns.clone(), owner.name.clone());
        let marked = |meta: &kube::api::ObjectMeta| {
            let is_true = |m: Option<&BTreeMap<String, String>>| {
                m.and_then(|m| m.get(GANG_OWNER_MARKER))
                    .is_some_and(|v| v == "true")
            };
            is_true(meta.labels.as_ref()) || is_true(meta.annotations.as_ref())
        };
        let (kind, meta, size) = match (owner.api_version.as_str(), owner.kind.as_str()) {
            ("batch/v1", "Job") => {
                let Some(job) = self.jobs.get(&key) else {
                    return Some(Claim::new(
                        Convention::GangOwner,
                        gang::GroupKey::new(ns.clone(), format!("job-{}", owner.name)),
                        Outcome::Wait(format!("waiting for its owner Job {ns}/{}", owner.name)),
                    ));
                };
                let spec = job.spec.as_ref();
                let parallelism = spec.and_then(|s| s.parallelism).unwrap_or(1);
                let size = match spec.and_then(|s| s.completions) {
                    Some(c) => parallelism.min(c),
                    None => parallelism,
                };
                ("job", &job.metadata, size)
            }
            ("apps/v1", "StatefulSet") => {
                let Some(sts) = self.statefulsets.get(&key) else {
                    return Some(Claim::new(
                        Convention::GangOwner,
                        gang::GroupKey::new(ns.clone(), format!("statefulset-{}", owner.name)),
                        Outcome::Wait(format!(
                            "waiting for its owner StatefulSet {ns}/{}",
                            owner.name
                        )),
                    ));
                };
                (
                    "statefulset",
                    &sts.metadata,
                    sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                )
            }
            _ => return None,
        };
        if !marked(meta) {
            return None;
        }
        let gkey = gang::GroupKey::new(ns, format!("{kind}-{}", owner.name));
        let g = groups::derived(
            &gkey,
            size.max(1) as u32,
            convert::time_millis(meta.creation_timestamp.as_ref()),
        );
        Some(Claim::new(
            Convention::GangOwner,
            gkey,
            Outcome::Member(Some(g)),
        ))
    }

    /// The coscheduling/Fluence claim: label `scheduling.x-k8s.io/pod-group`.
    fn coscheduling_claim(&self, p: &core::Pod, bound: bool) -> Option<Claim> {
        let ns = p.metadata.namespace.clone().unwrap_or_default();
        let labels = p.metadata.labels.as_ref();
        let name = labels
            .and_then(|l| l.get(gang::POD_GROUP_LABEL))
            .filter(|n| !n.is_empty())?;
        let key = gang::GroupKey::new(ns.clone(), name.clone());
        let object = self.podgroups.get(&(ns.clone(), name.clone()));
        let out = match object {
            // Already placed (by us before a restart): it belongs to its group's allocation
            // even before the PodGroup itself is seen.
            Some(Ok(_)) => Outcome::Member(None),
            None if bound => Outcome::Member(None),
            Some(Err(e)) => Outcome::Wait(format!("its PodGroup {key} is invalid: {e}")),
            None => match labels.and_then(|l| l.get(FLUENCE_GROUP_SIZE_LABEL)) {
                Some(size) => match size.trim().parse::<u32>() {
                    Ok(n) if n >= 1 => {
                        Outcome::Member(Some(groups::derived(&key, n, groups::created(p))))
                    }
                    _ => Outcome::Wait(format!(
                        "label {FLUENCE_GROUP_SIZE_LABEL}={size:?} is not a positive integer"
                    )),
                },
                None => Outcome::Wait(format!("waiting for PodGroup {key}")),
            },
        };
        Some(Claim::new(Convention::Coscheduling, key, out))
    }

    /// Every convention's claim on a pod, in precedence order.
    fn claims(&self, uid: &str, p: &core::Pod, bound: bool) -> Vec<Claim> {
        let ns = groups::namespace(p);
        let mut claims = Vec::new();
        if let Some(r) = self.native_refs.get(uid) {
            claims.push(groups::native::claim(p, r, &self.objects));
        }
        claims.extend(self.coscheduling_claim(p, bound));
        if let Some(name) = kueue::group_name(p) {
            let none = kueue::Members::new();
            let members = self
                .kueue
                .get(&(ns.clone(), name.to_string()))
                .unwrap_or(&none);
            claims.extend(kueue::claim(p, members));
        }
        claims.extend(groups::volcano::claim(p, &self.objects));
        claims.extend(groups::lws::claim(p));
        claims.extend(groups::jobset::claim(p, &self.objects));
        claims.extend(groups::mpijob::claim(p, &self.objects));
        let job = p
            .metadata
            .owner_references
            .as_ref()
            .and_then(|os| {
                os.iter().find(|o| {
                    o.controller == Some(true) && o.kind == "Job" && o.api_version == "batch/v1"
                })
            })
            .and_then(|o| self.jobs.get(&(ns.clone(), o.name.clone())));
        if let Some(job) = job {
            claims.extend(groups::flux::claim(p, job, &self.objects));
        }
        claims.extend(self.owner_claim(p));
        claims
    }

    /// How a pod goes to the core, and a message if conventions disagree on its group.
    fn classify(&self, uid: &str, p: &core::Pod) -> (Class, Option<String>) {
        let bound = p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty());
        if !bound && let Some(why) = groups::gates::waiting(p) {
            return (Class::Park(why), None);
        }
        let claims = self.claims(uid, p, bound);
        let Some(first) = claims.first() else {
            return (Class::Send(None, None), None);
        };
        // An owner not seen yet says nothing about a pod another convention already claims.
        let conflict = claims
            .iter()
            .skip(1)
            .filter(|c| {
                !(c.convention == Convention::GangOwner && matches!(c.outcome, Outcome::Wait(_)))
            })
            .find(|c| c.key != first.key)
            .map(|c| {
                let order: Vec<&str> = groups::PRECEDENCE.iter().map(|c| c.name()).collect();
                format!(
                    "pod is in group {} by its {} and in group {} by its {}; the {} decides (order: {})",
                    first.key.name,
                    first.convention.name(),
                    c.key.name,
                    c.convention.name(),
                    first.convention.name(),
                    order.join(" > ")
                )
            });
        let class = match &first.outcome {
            Outcome::Member(g) => Class::Send(Some(first.key.clone()), g.clone()),
            Outcome::Alone => Class::Send(None, None),
            Outcome::Wait(_) if bound => Class::Send(None, None),
            Outcome::Wait(why) => Class::Park(why.clone()),
        };
        (class, conflict)
    }

    fn send_pod(&mut self, uid: &str, out: &mut Vec<gang::Event>, notes: &mut Vec<Notice>) {
        let Some(p) = self.pods.get(uid) else { return };
        let ours = self.is_ours(p);
        let (class, conflict) = if ours {
            self.classify(uid, p)
        } else {
            (Class::Send(None, None), None)
        };
        let reference = p.object_ref(&());
        if let Some(message) = conflict {
            self.note_once(notes, reference.clone(), "ConflictingPodGroups", message);
        }
        self.send_pod_class(uid, class, reference, out, notes)
    }

    fn send_pod_class(
        &mut self,
        uid: &str,
        class: Class,
        reference: ObjectReference,
        out: &mut Vec<gang::Event>,
        notes: &mut Vec<Notice>,
    ) {
        let Some(p) = self.pods.get(uid) else { return };
        let ours = self.is_ours(p);
        match class {
            Class::Park(why) => {
                self.set_pod_group(uid, None);
                let was_sent = self.sent.remove(uid).is_some();
                if was_sent {
                    out.push(gang::Event::PodDelete(gang::PodUid(uid.to_string())));
                }
                self.parked.insert(uid.to_string(), why.clone());
                self.note_once(
                    notes,
                    reference,
                    "FailedScheduling",
                    format!("not scheduled yet: {why}"),
                );
            }
            Class::Send(group, derived) => {
                self.parked.remove(uid);
                let priority = p.spec.as_ref().and_then(|s| s.priority).unwrap_or(0);
                let raised = match &group {
                    Some(k) if ours => {
                        let before = self.pod_priority.get(k).copied();
                        let now = before.map_or(priority, |b| b.max(priority));
                        self.pod_priority.insert(k.clone(), now);
                        // A group first upserted without pods had priority 0.
                        before.unwrap_or(0) != now
                    }
                    _ => false,
                };
                // Groups derived from pods carry each pod's creation time: only a change in
                // what matters (size, timeout, priority, disruption) is worth a new upsert.
                if let Some(g) = derived.map(|g| self.with_pod_priority(g))
                    && self.derived.get(&g.key).is_none_or(|d| {
                        d.min_member != g.min_member
                            || d.max_member != g.max_member
                            || d.schedule_timeout != g.schedule_timeout
                            || d.priority != g.priority
                            || d.preemption_policy != g.preemption_policy
                            || d.disruption != g.disruption
                            || d.topology_key != g.topology_key
                    })
                {
                    self.derived.insert(g.key.clone(), g.clone());
                    out.push(gang::Event::GroupUpsert(g));
                } else if raised
                    && let Some(k) = &group
                    && let Some(Ok(g)) = self.podgroups.get(&(k.namespace.clone(), k.name.clone()))
                    && g.priority == 0
                {
                    // A PodGroup object without a priority of its own follows its pods'.
                    out.push(gang::Event::GroupUpsert(self.with_pod_priority(g.clone())));
                }
                let Some(p) = self.pods.get(uid) else { return };
                let (mut pod, problems) = convert::pod(p, group);
                for prob in problems {
                    self.note_once(
                        notes,
                        reference.clone(),
                        "InvalidPodField",
                        prob.to_string(),
                    );
                }
                pod.scheduler_name = if ours {
                    self.core_scheduler_name().to_string()
                } else {
                    // Not ours even if the name matches (another namespace): capacity only.
                    format!("other:{}", pod.scheduler_name)
                };
                // The core keeps a pod in the group it first came with: a pod that changes
                // group (its PodGroup or owner was seen late) is removed and added again.
                if let Some(before) = self.sent.insert(uid.to_string(), pod.group.clone())
                    && before != pod.group
                {
                    out.push(gang::Event::PodDelete(gang::PodUid(uid.to_string())));
                }
                let member = pod.group.clone().filter(|_| ours);
                self.set_pod_group(uid, member);
                out.push(gang::Event::PodUpsert(pod));
            }
        }
    }

    /// A pod was added or changed (no native group reference).
    pub fn apply_pod(&mut self, p: core::Pod, out: &mut Vec<gang::Event>, notes: &mut Vec<Notice>) {
        self.apply_pod_object(
            PodObject {
                pod: p,
                native: None,
            },
            out,
            notes,
        );
    }

    /// A pod, as watched, was added or changed.
    pub fn apply_pod_object(
        &mut self,
        p: PodObject,
        out: &mut Vec<gang::Event>,
        notes: &mut Vec<Notice>,
    ) {
        let Some(uid) = p.pod.metadata.uid.clone() else {
            return;
        };
        match p.native {
            Some(r) => self.native_refs.insert(uid.clone(), r),
            None => self.native_refs.remove(&uid),
        };
        let before = self.pods.get(&uid).and_then(kueue_entry);
        let after = kueue_entry(&p.pod);
        self.pods.insert(uid.clone(), p.pod);
        let mut changed = Vec::new();
        if before != after {
            if let Some((group, name, _)) = before {
                changed.extend(self.kueue_update(group, &name, None));
            }
            if let Some((group, name, count)) = after {
                changed.extend(self.kueue_update(group, &name, Some(count)));
            }
        }
        self.send_pod(&uid, out, notes);
        for group in changed {
            self.resend_kueue_group(&group, &uid, out, notes);
        }
    }

    /// Records one member's total count; returns the group if its distinct counts changed.
    fn kueue_update(
        &mut self,
        group: NsName,
        pod: &str,
        count: Option<Option<String>>,
    ) -> Option<NsName> {
        let members = self.kueue.entry(group.clone()).or_default();
        let before = kueue::distinct(members);
        match count {
            Some(c) => members.insert(pod.to_string(), c),
            None => members.remove(pod),
        };
        let after = kueue::distinct(members);
        if members.is_empty() {
            self.kueue.remove(&group);
        }
        (before != after).then_some(group)
    }

    fn resend_kueue_group(
        &mut self,
        group: &NsName,
        except: &str,
        out: &mut Vec<gang::Event>,
        notes: &mut Vec<Notice>,
    ) {
        let uids: Vec<String> = self
            .pods
            .iter()
            .filter(|(uid, p)| {
                uid.as_str() != except
                    && p.metadata.namespace.as_deref() == Some(group.0.as_str())
                    && kueue::group_name(p) == Some(group.1.as_str())
            })
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in uids {
            self.send_pod(&uid, out, notes);
        }
    }

    /// A pod is gone.
    pub fn delete_pod(&mut self, uid: &str, out: &mut Vec<gang::Event>) {
        if let Some((group, name, _)) = self.pods.get(uid).and_then(kueue_entry)
            && let Some(changed) = self.kueue_update(group, &name, None)
        {
            // Members that disagreed with the one that left may agree now.
            let mut notes = Vec::new();
            self.pods.remove(uid);
            self.resend_kueue_group(&changed, uid, out, &mut notes);
        }
        self.native_refs.remove(uid);
        self.pods.remove(uid);
        self.parked.remove(uid);
        self.set_pod_group(uid, None);
        if self.sent.remove(uid).is_some() {
            out.push(gang::Event::PodDelete(gang::PodUid(uid.to_string())));
        }
    }

    /// Pod UIDs known.
    pub fn pod_uids(&self) -> Vec<String> {
        self.pods.keys().cloned().collect()
    }

    fn retry_parked(&mut self, out: &mut Vec<gang::Event>, notes: &mut Vec<Notice>) {
        let parked: Vec<String> = self.parked.keys().cloned().collect();
        self.resend_uids(parked, out, notes);
    }

    // ---- groups and owners ----

    /// A PodGroup was added or changed; a malformed one becomes a notice.
    pub fn apply_podgroup(
        &mut self,
        obj: kube::api::DynamicObject,
        out: &mut Vec<gang::Event>,
        notes: &mut Vec<Notice>,
    ) {
        let key = (
            obj.metadata.namespace.clone().unwrap_or_default(),
            obj.metadata.name.clone().unwrap_or_default(),
        );
        let reference = ObjectReference {
            api_version: Some("scheduling.x-k8s.io/v1alpha1".into()),
            kind: Some("PodGroup".into()),
            namespace: Some(key.0.clone()),
            name: Some(key.1.clone()),
            uid: obj.metadata.uid.clone(),
            ..Default::default()
        };
        let parsed = serde_json::to_value(&obj)
            .map_err(|e| FieldError {
                field: "(object)".into(),
                message: e.to_string(),
            })
            .and_then(|v| {
                serde_path_to_error::deserialize::<_, PodGroup>(v).map_err(|e| FieldError {
                    field: e.path().to_string(),
                    message: e.inner().to_string(),
                })
            })
            .and_then(|pg| convert::pod_group(&pg));
        let gkey = gang::GroupKey::new(key.0.clone(), key.1.clone());
        match &parsed {
            Ok(g) => {
                self.derived.remove(&gkey);
                out.push(gang::Event::GroupUpsert(self.with_pod_priority(g.clone())));
            }
            Err(e) => {
                self.note_once(
                    notes,
                    reference,
                    "InvalidPodGroup",
                    format!("PodGroup {gkey} ignored: {e}"),
                );
                if matches!(self.podgroups.get(&key), Some(Ok(_))) {
                    out.push(gang::Event::GroupDelete(gkey.clone()));
                }
            }
        }
        let was_valid = matches!(self.podgroups.get(&key), Some(Ok(_)));
        let now_valid = parsed.is_ok();
        match obj.metadata.uid.clone() {
            Some(uid) => self.podgroup_uids.insert(key.clone(), uid),
            None => self.podgroup_uids.remove(&key),
        };
        self.podgroups.insert(key, parsed);
        if was_valid != now_valid {
            self.resend_group_members(&gkey, out, notes);
        }
        self.retry_parked(out, notes);
    }

    fn resend_group_members(
        &mut self,
        key: &gang::GroupKey,
        out: &mut Vec<gang::Event>,
        notes: &mut Vec<Notice>,
    ) {
        let uids = self.uids_where(|_, p| {
            p.metadata.namespace.as_deref() == Some(key.namespace.as_str())
                && p.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(gang::POD_GROUP_LABEL))
                    == Some(&key.name)
        });
        self.resend_uids(uids, out, notes);
    }

    /// UIDs of the cached pods that `pick` selects.
    fn uids_where(&self, pick: impl Fn(&str, &core::Pod) -> bool) -> Vec<String> {
        self.pods
            .iter()
            .filter(|(uid, p)| pick(uid, p))
            .map(|(uid, _)| uid.clone())
            .collect()
    }

    /// Sends these pods again: each is classified anew.
    fn resend_uids(
        &mut self,
        uids: Vec<String>,
        out: &mut Vec<gang::Event>,
        notes: &mut Vec<Notice>,
    ) {
        for uid in uids {
            self.send_pod(&uid, out, notes);
        }
    }

    /// A PodGroup is gone; its pods wait for it again (or use their Fluence label).
    pub fn delete_podgroup(
        &mut self,
        ns: &str,
        name: &str,
        out: &mut Vec<gang::Event>,
        notes: &mut Vec<Notice>,
    ) {
        let key = (ns.to_string(), name.to_string());
        self.podgroup_uids.remove(&key);
        if let Some(was) = self.podgroups.remove(&key) {
            let gkey = gang::GroupKey::new(ns, name);
            if was.is_ok() {
                out.push(gang::Event::GroupDelete(gkey.clone()));
            }
            self.resend_group_members(&gkey, out, notes);
        }
    }

    /// PodGroup keys known.
    pub fn podgroup_keys(&self) -> Vec<NsName> {
        self.podgroups.keys().cloned().collect()
    }

    /// A Job was added or changed.
    pub fn apply_job(&mut self, j: Job, out: &mut Vec<gang::Event>, notes: &mut Vec<Notice>) {
        self.jobs.insert(ns_name(&j), j);
        self.retry_parked(out, notes);
    }

    /// A Job is gone.
    pub fn delete_job(&mut self, ns: &str, name: &str) {
        self.jobs.remove(&(ns.to_string(), name.to_string()));
    }

    /// Job keys known.
    pub fn job_keys(&self) -> Vec<NsName> {
        self.jobs.keys().cloned().collect()
    }

    /// A StatefulSet was added or changed.
    pub fn apply_statefulset(
        &mut self,
        s: StatefulSet,
        out: &mut Vec<gang::Event>,
        notes: &mut Vec<Notice>,
    ) {
        self.statefulsets.insert(ns_name(&s), s);
        self.retry_parked(out, notes);
    }

    /// A StatefulSet is gone.
    pub fn delete_statefulset(&mut self, ns: &str, name: &str) {
        self.statefulsets
            .remove(&(ns.to_string(), name.to_string()));
    }

    /// StatefulSet keys known.
    pub fn statefulset_keys(&self) -> Vec<NsName> {
        self.statefulsets.keys().cloned().collect()
    }

    // ---- dynamically watched group objects ----

    /// Records which group kinds the server serves (and the version watched).
    pub fn set_served(&mut self, served: BTreeMap<Kind, &'static str>) {
        self.objects.served = served;
    }

    /// Whether a pod refers to the object `kind` `ns/name` (so its claim may change with it).
    fn refers_to(&self, uid: &str, p: &core::Pod, kind: Kind, ns: &str, name: &str) -> bool {
        if p.metadata.namespace.as_deref() != Some(ns) {
            return false;
        }
        match kind {
            Kind::NativePodGroup => {
                matches!(self.native_refs.get(uid), Some(NativeRef::PodGroup(n)) if n == name)
            }
            Kind::Workload => {
                matches!(self.native_refs.get(uid), Some(NativeRef::Workload { name: n, .. }) if n == name)
            }
            // Any change in a hierarchy may change every unit in the namespace.
            Kind::CompositePodGroup => self.under_a_composite(uid, ns),
            Kind::JobSet => groups::label(p, groups::jobset::NAME_LABEL) == Some(name),
            Kind::MpiJob => groups::label(p, groups::mpijob::JOB_NAME_LABEL) == Some(name),
            Kind::VolcanoPodGroup => {
                groups::annotation(p, groups::volcano::GROUP_ANNOTATION) == Some(name)
            }
            Kind::MiniCluster => p
                .metadata
                .owner_references
                .iter()
                .flatten()
                .filter(|o| o.kind == "Job")
                .filter_map(|o| self.jobs.get(&(ns.to_string(), o.name.clone())))
                .any(|j| groups::flux::owner(j) == Some(name)),
        }
    }

    /// Whether a pod's native PodGroup names a CompositePodGroup parent.
    fn under_a_composite(&self, uid: &str, ns: &str) -> bool {
        let Some(NativeRef::PodGroup(n)) = self.native_refs.get(uid) else {
            return false;
        };
        matches!(
            self.objects.get(Kind::NativePodGroup, ns, n),
            Some(Ok(Parsed::NativePodGroup(g))) if g.parent.is_some()
        )
    }

    fn resend_referring(
        &mut self,
        kind: Kind,
        ns: &str,
        name: &str,
        out: &mut Vec<gang::Event>,
        notes: &mut Vec<Notice>,
    ) {
        let uids = self.uids_where(|uid, p| self.refers_to(uid, p, kind, ns, name));
        self.resend_uids(uids, out, notes);
    }

    /// An object of a dynamically watched kind was added or changed; a malformed one
    /// becomes a notice and its pods wait.
    pub fn apply_object(
        &mut self,
        kind: Kind,
        obj: kube::api::DynamicObject,
        out: &mut Vec<gang::Event>,
        notes: &mut Vec<Notice>,
    ) {
        let ns = obj.metadata.namespace.clone().unwrap_or_default();
        let name = obj.metadata.name.clone().unwrap_or_default();
        let parsed = groups::parse(kind, &obj);
        if let Err(e) = &parsed {
            let (group, _, _, k) = kind.api();
            let version = self.objects.served.get(&kind).copied().unwrap_or_default();
            let reference = ObjectReference {
                api_version: Some(format!("{group}/{version}")),
                kind: Some(k.into()),
                namespace: Some(ns.clone()),
                name: Some(name.clone()),
                uid: obj.metadata.uid.clone(),
                ..Default::default()
            };
            self.note_once(
                notes,
                reference,
                &format!("Invalid{k}"),
                format!("{k} {ns}/{name} ignored: {e}"),
            );
        }
        if kind == Kind::NativePodGroup {
            let key = (ns.clone(), name.clone());
            match obj.metadata.uid.clone() {
                Some(uid) => self.native_podgroup_uids.insert(key, uid),
                None => self.native_podgroup_uids.remove(&key),
            };
        }
        let before = self
            .objects
            .insert(kind, (ns.clone(), name.clone()), parsed.clone());
        // Our own status writes come back as changes that change nothing here.
        if before.as_ref() != Some(&parsed) {
            self.resend_referring(kind, &ns, &name, out, notes);
            if [before.as_ref(), Some(&parsed)]
                .into_iter()
                .any(names_a_parent)
            {
                self.resend_referring(Kind::CompositePodGroup, &ns, &name, out, notes);
            }
        }
    }

    /// An object of a dynamically watched kind is gone; its pods wait for it again.
    pub fn delete_object(
        &mut self,
        kind: Kind,
        ns: &str,
        name: &str,
        out: &mut Vec<gang::Event>,
        notes: &mut Vec<Notice>,
    ) {
        if kind == Kind::NativePodGroup {
            self.native_podgroup_uids
                .remove(&(ns.to_string(), name.to_string()));
        }
        if let Some(before) = self
            .objects
            .remove(kind, &(ns.to_string(), name.to_string()))
        {
            self.resend_referring(kind, ns, name, out, notes);
            if names_a_parent(Some(&before)) {
                self.resend_referring(Kind::CompositePodGroup, ns, name, out, notes);
            }
        }
    }

    /// Keys of the cached objects of `kind`.
    pub fn object_keys(&self, kind: Kind) -> Vec<NsName> {
        self.objects.keys(kind)
    }

    /// A reference to the PodGroup object behind a group key, for Events:
    /// the coscheduling PodGroup if there is one, else the native one.
    pub fn podgroup_ref(&self, key: &gang::GroupKey) -> Option<ObjectReference> {
        let ns_name = (key.namespace.clone(), key.name.clone());
        let (api_version, name, uid) = if self.has_podgroup(key) {
            (
                "scheduling.x-k8s.io/v1alpha1".to_string(),
                key.name.clone(),
                self.podgroup_uids.get(&ns_name),
            )
        } else {
            let (version, name) = self.native_podgroup(key)?;
            let uid = self
                .native_podgroup_uids
                .get(&(key.namespace.clone(), name.to_string()));
            (
                format!("scheduling.k8s.io/{version}"),
                name.to_string(),
                uid,
            )
        };
        Some(ObjectReference {
            api_version: Some(api_version),
            kind: Some("PodGroup".into()),
            namespace: Some(key.namespace.clone()),
            name: Some(name),
            uid: uid.cloned(),
            ..Default::default()
        })
    }

    /// The native PodGroup behind a group key, with the API version to write its status through.
    pub fn native_podgroup<'a>(
        &'a self,
        key: &'a gang::GroupKey,
    ) -> Option<(&'static str, &'a str)> {
        let name = groups::native::podgroup_name(key)?;
        let version = *self.objects.served.get(&Kind::NativePodGroup)?;
        matches!(
            self.objects.get(Kind::NativePodGroup, &key.namespace, name),
            Some(Ok(_))
        )
        .then_some((version, name))
    }

    /// The native PodGroups under the composite unit behind a group key,
    /// with the API version to write their status through.
    pub fn composite_leaves(&self, key: &gang::GroupKey) -> Option<(&'static str, Vec<String>)> {
        let unit = groups::composite::composite_name(key)?;
        let version = *self.objects.served.get(&Kind::NativePodGroup)?;
        let (_, leaves) =
            groups::composite::unit_members(&self.objects, &key.namespace, unit).ok()?;
        Some((version, leaves))
    }

    // ---- disruption budgets ----

    /// A PodDisruptionBudget was added or changed; an invalid one becomes a
    /// notice and is not given to the core (a budget it cannot read must
    /// not silently protect, or expose, pods it was not meant for).
    pub fn apply_budget(
        &mut self,
        pdb: PodDisruptionBudget,
        out: &mut Vec<gang::Event>,
        notes: &mut Vec<Notice>,
    ) {
        let key = ns_name(&pdb);
        let parsed = crate::budget::budget(&pdb);
        let before = self.budgets.get(&key).cloned().flatten();
        match parsed {
            Ok(b) => {
                if before.as_ref() != Some(&b) {
                    out.push(gang::Event::BudgetUpsert(b.clone()));
                }
                self.budgets.insert(key, Some(b));
            }
            Err(e) => {
                self.note_once(
                    notes,
                    pdb.object_ref(&()),
                    "InvalidPodDisruptionBudget",
                    format!("PodDisruptionBudget {}/{} ignored: {e}", key.0, key.1),
                );
                if before.is_some() {
                    out.push(gang::Event::BudgetDelete {
                        namespace: key.0.clone(),
                        name: key.1.clone(),
                    });
                }
                self.budgets.insert(key, None);
            }
        }
    }

    /// A PodDisruptionBudget is gone.
    pub fn delete_budget(&mut self, ns: &str, name: &str, out: &mut Vec<gang::Event>) {
        if let Some(Some(_)) = self.budgets.remove(&(ns.to_string(), name.to_string())) {
            out.push(gang::Event::BudgetDelete {
                namespace: ns.to_string(),
                name: name.to_string(),
            });
        }
    }

    /// PodDisruptionBudget keys known.
    pub fn budget_keys(&self) -> Vec<NsName> {
        self.budgets.keys().cloned().collect()
    }

    /// Forgets which problems were reported, so a new leader reports them again.
    pub fn forget_reports(&mut self) {
        self.reported.clear();
    }

    /// Everything the cache knows as core events, for a fresh core: nodes, groups, then pods.
    pub fn replay(&mut self, out: &mut Vec<gang::Event>, notes: &mut Vec<Notice>) {
        self.sent.clear();
        self.pod_groups.clear();
        self.derived.clear();
        self.parked.clear();
        let names: Vec<String> = self.nodes.keys().cloned().collect();
        for n in names {
            self.node_event(&n, out, notes);
        }
        for g in self.podgroups.values().flatten() {
            out.push(gang::Event::GroupUpsert(self.with_pod_priority(g.clone())));
        }
        for b in self.budgets.values().flatten() {
            out.push(gang::Event::BudgetUpsert(b.clone()));
        }
        // Bound pods first, so allocations exist before any pending pod is considered.
        let mut uids: Vec<(bool, String)> = self
            .pods
            .iter()
            .map(|(uid, p)| {
                (
                    p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_none(),
                    uid.clone(),
                )
            })
            .collect();
        uids.sort();
        for (_, uid) in uids {
            self.send_pod(&uid, out, notes);
        }
    }
}

/// A pod's Kueue group and what it says the total is.
fn kueue_entry(p: &core::Pod) -> Option<(NsName, String, Option<String>)> {
    let group = kueue::group_name(p)?;
    Some((
        (
            p.metadata.namespace.clone().unwrap_or_default(),
            group.to_string(),
        ),
        p.metadata.name.clone().unwrap_or_default(),
        kueue::total_count(p),
    ))
}

/// Whether a cached group object names a CompositePodGroup parent (its
/// change moves pods between units).
fn names_a_parent(o: Option<&Result<Parsed, FieldError>>) -> bool {
    matches!(o, Some(Ok(p)) if groups::composite::parent_of(p).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"))
    }

    fn pod(name: &str, labels: serde_json::Value, owner: Option<(&str, &str, &str)>) -> core::Pod {
        let owners = owner.map(|(api, kind, n)| json!([{"apiVersion": api, "kind": kind, "name": n, "uid": "o", "controller": true}]));
        from(json!({
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"), "labels": labels, "ownerReferences": owners},
            "spec": {"schedulerName": "phalanx", "containers": []},
        }))
    }

    fn upserted_group(out: &[gang::Event]) -> Option<gang::PodGroup> {
        out.iter().find_map(|e| match e {
            gang::Event::GroupUpsert(g) => Some(g.clone()),
            _ => None,
        })
    }

    fn pod_group_of(out: &[gang::Event]) -> Option<Option<gang::GroupKey>> {
        out.iter().find_map(|e| match e {
            gang::Event::PodUpsert(p) => Some(p.group.clone()),
            _ => None,
        })
    }

    #[test]
    fn label_waits_for_podgroup_unless_fluence_size() {
        let mut c = Cluster::new(vec!["phalanx".into()], vec![], "rack".into());
        let (mut out, mut notes) = (Vec::new(), Vec::new());
        c.apply_pod(
            pod("a", json!({"scheduling.x-k8s.io/pod-group": "g"}), None),
            &mut out,
            &mut notes,
        );
        assert!(out.is_empty());
        assert_eq!(c.parked_count(), 1);
        assert_eq!(notes[0].reason, "FailedScheduling");
        c.apply_pod(
            pod(
                "b",
                json!({"scheduling.x-k8s.io/pod-group": "f", "fluence.group-size": "4"}),
                None,
            ),
            &mut out,
            &mut notes,
        );
        assert_eq!(upserted_group(&out).map(|g| g.min_member), Some(4));
        let pg: kube::api::DynamicObject = from(json!({
            "apiVersion": "scheduling.x-k8s.io/v1alpha1", "kind": "PodGroup",
            "metadata": {"name": "g", "namespace": "ns"}, "spec": {"minMember": 2},
        }));
        out.clear();
        c.apply_podgroup(pg, &mut out, &mut notes);
        assert_eq!(c.parked_count(), 0);
        assert_eq!(
            pod_group_of(&out),
            Some(Some(gang::GroupKey::new("ns", "g")))
        );
    }

    #[test]
    fn groups_without_a_priority_of_their_own_take_their_pods() {
        let mut c = Cluster::new(vec!["phalanx".into()], vec![], "rack".into());
        let (mut out, mut notes) = (Vec::new(), Vec::new());
        let pg: kube::api::DynamicObject = from(json!({
            "apiVersion": "scheduling.x-k8s.io/v1alpha1", "kind": "PodGroup",
            "metadata": {"name": "g", "namespace": "ns"}, "spec": {"minMember": 2},
        }));
        c.apply_podgroup(pg, &mut out, &mut notes);
        assert_eq!(upserted_group(&out).map(|g| g.priority), Some(0));
        let key = gang::GroupKey::new("ns", "g");
        for (name, priority) in [("b", 1000), ("a", 0), ("c", 1000)] {
            let mut p = pod(name, json!({"scheduling.x-k8s.io/pod-group": "g"}), None);
            if let Some(s) = p.spec.as_mut() {
                s.priority = Some(priority);
            }
            out.clear();
            c.apply_pod(p, &mut out, &mut notes);
            // The group is raised (once) before the pod that raises it is given to the core.
            let raised = upserted_group(&out).map(|g| g.priority);
            assert_eq!(raised, (name == "b").then_some(1000), "{name}");
        }
        // Replayed to a fresh core, the group comes with its pods' priority.
        out.clear();
        c.replay(&mut out, &mut notes);
        let replayed = out.iter().find_map(|e| match e {
            gang::Event::GroupUpsert(g) if g.key == key => Some(g.priority),
            _ => None,
        });
        assert_eq!(replayed, Some(1000));
        // A derived (Fluence-size) group takes its pods' priority too.
        let mut f = pod(
            "f",
            json!({"scheduling.x-k8s.io/pod-group": "fl", "fluence.group-size": "2"}),
            None,
        );
        if let Some(s) = f.spec.as_mut() {
            s.priority = Some(-5);
        }
        out.clear();
        c.apply_pod(f, &mut out, &mut notes);
        assert_eq!(upserted_group(&out).map(|g| g.priority), Some(-5));
    }

    #[test]
    fn malformed_podgroup_is_a_notice_and_parks_members() {
        let mut c = Cluster::new(vec!["phalanx".into()], vec![], "rack".into());
        let (mut out, mut notes) = (Vec::new(), Vec::new());
        let pg: kube::api::DynamicObject = from(json!({
            "apiVersion": "scheduling.x-k8s.io/v1alpha1", "kind": "PodGroup",
            "metadata": {"name": "g", "namespace": "ns"}, "spec": {"minMember": "many"},
        }));
        c.apply_podgroup(pg, &mut out, &mut notes);
        assert!(out.is_empty());
        assert_eq!(notes[0].reason, "InvalidPodGroup");
        assert!(
            notes[0].message.contains("spec.minMember"),
            "{}",
            notes[0].message
        );
        c.apply_pod(
            pod("a", json!({"scheduling.x-k8s.io/pod-group": "g"}), None),
            &mut out,
            &mut notes,
        );
        assert_eq!(c.parked_count(), 1);
    }

    #[test]
    fn gang_owner_forms_group_of_parallelism() {
        let mut c = Cluster::new(vec!["phalanx".into()], vec![], "rack".into());
        let (mut out, mut notes) = (Vec::new(), Vec::new());
        c.apply_pod(
            pod("j-0", json!({}), Some(("batch/v1", "Job", "j"))),
            &mut out,
            &mut notes,
        );
        assert_eq!(c.parked_count(), 1, "owner not seen yet");
        let job: Job = from(
            json!({"metadata": {"name": "j", "namespace": "ns", "labels": {"phalanx.dev/gang": "true"}},
                                   "spec": {"parallelism": 8, "completions": 8, "template": {}}}),
        );
        c.apply_job(job, &mut out, &mut notes);
        assert_eq!(
            upserted_group(&out).map(|g| (g.key.name, g.min_member)),
            Some(("job-j".into(), 8))
        );
        let plain: StatefulSet = from(
            json!({"metadata": {"name": "s", "namespace": "ns"}, "spec": {"replicas": 3, "selector": {}, "template": {}, "serviceName": "s"}}),
        );
        c.apply_statefulset(plain, &mut out, &mut notes);
        out.clear();
        c.apply_pod(
            pod("s-0", json!({}), Some(("apps/v1", "StatefulSet", "s"))),
            &mut out,
            &mut notes,
        );
        assert_eq!(
            pod_group_of(&out),
            Some(None),
            "an unmarked owner gives a group of one"
        );
    }

    #[test]
    fn other_schedulers_pods_are_capacity_only() {
        let mut c = Cluster::new(vec!["phalanx".into()], vec!["mine".into()], "rack".into());
        let (mut out, mut notes) = (Vec::new(), Vec::new());
        c.apply_pod(
            pod("x", json!({"scheduling.x-k8s.io/pod-group": "g"}), None),
            &mut out,
            &mut notes,
        );
        let name = out.iter().find_map(|e| match e {
            gang::Event::PodUpsert(p) => Some(p.scheduler_name.clone()),
            _ => None,
        });
        assert_eq!(
            name.as_deref(),
            Some("other:phalanx"),
            "namespace ns is not served"
        );
    }

    fn pod_json(name: &str, meta: serde_json::Value, spec: serde_json::Value) -> PodObject {
        let mut v = json!({
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}")},
            "spec": {"schedulerName": "phalanx", "containers": []},
        });
        if let (Some(m), Some(extra)) = (v["metadata"].as_object_mut(), meta.as_object()) {
            m.extend(extra.clone());
        }
        if let (Some(m), Some(extra)) = (v["spec"].as_object_mut(), spec.as_object()) {
            m.extend(extra.clone());
        }
        from(v)
    }

    fn upserted_pods(out: &[gang::Event]) -> Vec<(String, Option<gang::GroupKey>)> {
        out.iter()
            .filter_map(|e| match e {
                gang::Event::PodUpsert(p) => Some((p.name.clone(), p.group.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn gated_pod_is_parked_until_its_last_gate_goes() {
        let mut c = Cluster::new(vec!["phalanx".into()], vec![], "rack".into());
        let (mut out, mut notes) = (Vec::new(), Vec::new());
        let labels =
            json!({"labels": {"scheduling.x-k8s.io/pod-group": "f", "fluence.group-size": "2"}});
        let gated = json!({"schedulingGates": [{"name": "a"}, {"name": "b"}]});
        c.apply_pod_object(pod_json("g", labels.clone(), gated), &mut out, &mut notes);
        assert!(
            upserted_pods(&out).is_empty(),
            "a gated pod never reaches the core"
        );
        assert_eq!(c.parked_count(), 1);
        assert!(
            notes[0]
                .message
                .contains("scheduling gates to be removed: a, b"),
            "{notes:?}"
        );
        c.apply_pod_object(
            pod_json(
                "g",
                labels.clone(),
                json!({"schedulingGates": [{"name": "b"}]}),
            ),
            &mut out,
            &mut notes,
        );
        assert!(
            upserted_pods(&out).is_empty(),
            "one gate left is still gated"
        );
        c.apply_pod_object(pod_json("g", labels, json!({})), &mut out, &mut notes);
        assert_eq!(
            upserted_pods(&out),
            vec![("g".to_string(), Some(gang::GroupKey::new("ns", "f")))]
        );
        assert_eq!(c.parked_count(), 0);
    }

    fn native_pg(name: &str, policy: serde_json::Value) -> kube::api::DynamicObject {
        from(json!({
            "apiVersion": "scheduling.k8s.io/v1alpha2", "kind": "PodGroup",
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"schedulingPolicy": policy},
        }))
    }

    #[test]
    fn native_pod_waits_for_its_podgroup_then_joins_or_goes_alone() {
        let mut c = Cluster::new(vec!["phalanx".into()], vec![], "rack".into());
        c.set_served([(Kind::NativePodGroup, "v1alpha2")].into());
        let (mut out, mut notes) = (Vec::new(), Vec::new());
        let native = |n: &str, g: &str| {
            pod_json(
                n,
                json!({}),
                json!({"schedulingGroup": {"podGroupName": g}}),
            )
        };
        c.apply_pod_object(native("a", "g"), &mut out, &mut notes);
        assert!(upserted_pods(&out).is_empty(), "never a gang of one");
        assert!(
            notes[0].message.contains("waiting for PodGroup ns/g"),
            "{notes:?}"
        );
        c.apply_object(
            Kind::NativePodGroup,
            native_pg("g", json!({"gang": {"minCount": 3}})),
            &mut out,
            &mut notes,
        );
        assert!(
            !notes
                .iter()
                .any(|n| n.reason == "TopologyConstraintNotEnforced")
        );
        let key = gang::GroupKey::new("ns", "podgroup:g");
        assert_eq!(
            upserted_group(&out).map(|g| (g.key, g.min_member)),
            Some((key.clone(), 3))
        );
        assert_eq!(
            upserted_pods(&out),
            vec![("a".to_string(), Some(key.clone()))]
        );
        assert_eq!(c.native_podgroup(&key), Some(("v1alpha2", "g")));
        out.clear();
        c.apply_object(
            Kind::NativePodGroup,
            native_pg("b", json!({"basic": {}})),
            &mut out,
            &mut notes,
        );
        c.apply_pod_object(native("s", "b"), &mut out, &mut notes);
        assert_eq!(
            upserted_pods(&out),
            vec![("s".to_string(), None)],
            "basic: pod by pod"
        );
        let mut topo = native_pg("t", json!({"gang": {"minCount": 2}}));
        topo.data["spec"]["schedulingConstraints"] = json!({"topology": [{"key": "rack"}]});
        c.apply_object(Kind::NativePodGroup, topo, &mut out, &mut notes);
        out.clear();
        c.apply_pod_object(native("t0", "t"), &mut out, &mut notes);
        assert_eq!(
            upserted_group(&out).and_then(|g| g.topology_key).as_deref(),
            Some("rack"),
            "the constraint reaches the core"
        );
        // The PodGroup goes away: its member waits again, out of the core.
        out.clear();
        c.delete_object(Kind::NativePodGroup, "ns", "g", &mut out, &mut notes);
        assert!(
            out.iter()
                .any(|e| matches!(e, gang::Event::PodDelete(u) if u.0 == "uid-a"))
        );
        assert_eq!(c.parked_count(), 1);
    }

    #[test]
    fn kueue_members_wait_while_they_disagree() {
        let mut c = Cluster::new(vec!["phalanx".into()], vec![], "rack".into());
        let (mut out, mut notes) = (Vec::new(), Vec::new());
        let kq = |n: &str, count: &str| {
            pod_json(
                n,
                json!({"labels": {"kueue.x-k8s.io/pod-group-name": "q"},
                       "annotations": {"kueue.x-k8s.io/pod-group-total-count": count}}),
                json!({}),
            )
        };
        c.apply_pod_object(kq("a", "3"), &mut out, &mut notes);
        assert_eq!(upserted_group(&out).map(|g| g.min_member), Some(3));
        out.clear();
        c.apply_pod_object(kq("b", "4"), &mut out, &mut notes);
        assert_eq!(
            c.parked_count(),
            2,
            "both wait, including the one already sent"
        );
        assert!(
            out.iter()
                .any(|e| matches!(e, gang::Event::PodDelete(u) if u.0 == "uid-a"))
        );
        out.clear();
        c.apply_pod_object(kq("b", "3"), &mut out, &mut notes);
        assert_eq!(c.parked_count(), 0);
        let key = Some(gang::GroupKey::new("ns", "kueue:q"));
        let mut sent = upserted_pods(&out);
        sent.sort();
        assert_eq!(
            sent,
            vec![("a".to_string(), key.clone()), ("b".to_string(), key)]
        );
    }

    #[test]
    fn first_convention_decides_and_the_conflict_is_reported() {
        let mut c = Cluster::new(vec!["phalanx".into()], vec![], "rack".into());
        c.set_served([(Kind::NativePodGroup, "v1alpha2")].into());
        let (mut out, mut notes) = (Vec::new(), Vec::new());
        c.apply_object(
            Kind::NativePodGroup,
            native_pg("g", json!({"gang": {"minCount": 2}})),
            &mut out,
            &mut notes,
        );
        let both = pod_json(
            "x",
            json!({"labels": {"kueue.x-k8s.io/pod-group-name": "q"},
                   "annotations": {"kueue.x-k8s.io/pod-group-total-count": "5"}}),
            json!({"schedulingGroup": {"podGroupName": "g"}}),
        );
        c.apply_pod_object(both, &mut out, &mut notes);
        assert_eq!(
            upserted_pods(&out),
            vec![(
                "x".to_string(),
                Some(gang::GroupKey::new("ns", "podgroup:g"))
            )]
        );
        let n = notes
            .iter()
            .find(|n| n.reason == "ConflictingPodGroups")
            .unwrap_or_else(|| panic!("{notes:?}"));
        assert!(
            n.message.contains("kueue:q") && n.message.contains("decides"),
            "{}",
            n.message
        );
    }

    #[test]
    fn minicluster_job_pods_are_one_gang_without_a_marker() {
        let mut c = Cluster::new(vec!["phalanx".into()], vec![], "rack".into());
        let (mut out, mut notes) = (Vec::new(), Vec::new());
        let job: Job = from(json!({
            "metadata": {"name": "flux", "namespace": "ns", "ownerReferences": [
                {"apiVersion": "flux-framework.org/v1alpha2", "kind": "MiniCluster", "name": "mc", "uid": "u", "controller": true}]},
            "spec": {"parallelism": 4, "completions": 4, "template": {}},
        }));
        c.apply_job(job, &mut out, &mut notes);
        c.apply_pod(
            pod("flux-0", json!({}), Some(("batch/v1", "Job", "flux"))),
            &mut out,
            &mut notes,
        );
        assert_eq!(
            upserted_group(&out).map(|g| (g.key.name, g.min_member)),
            Some(("minicluster:mc".into(), 4)),
            "CRD not served: the Job's parallelism"
        );
        // Served: the MiniCluster's spec.size, once seen.
        c.set_served([(Kind::MiniCluster, "v1alpha2")].into());
        out.clear();
        c.apply_pod(
            pod("flux-1", json!({}), Some(("batch/v1", "Job", "flux"))),
            &mut out,
            &mut notes,
        );
        assert_eq!(c.parked_count(), 1, "waits for the MiniCluster");
        let mc: kube::api::DynamicObject = from(json!({
            "apiVersion": "flux-framework.org/v1alpha2", "kind": "MiniCluster",
            "metadata": {"name": "mc", "namespace": "ns"}, "spec": {"size": 6},
        }));
        c.apply_object(Kind::MiniCluster, mc, &mut out, &mut notes);
        assert_eq!(c.parked_count(), 0);
        assert_eq!(upserted_group(&out).map(|g| g.min_member), Some(6));
    }
}
