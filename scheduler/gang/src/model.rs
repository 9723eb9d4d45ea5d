//! What the core is told about the cluster: nodes, pods and pod groups, in
//! plain types that the Kubernetes adapter and the simulator both fill in.
//!
//! Quantities are integers in Kubernetes' base units: CPU in millicores,
//! memory in bytes, GPUs and other extended resources in whole units.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::time::{Millis, Timestamp};

/// The extended-resource name under which GPUs are requested.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";
/// Pod annotation giving the expected run time in seconds, used to plan
/// reservations and backfill.
pub const DURATION_ANNOTATION: &str = "phalanx.dev/duration-seconds";
/// Pod label naming the pod group (the one coscheduling and Fluence use).
pub const POD_GROUP_LABEL: &str = "scheduling.x-k8s.io/pod-group";

/// An amount of each resource kind: a node's allocatable or a pod's requests.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Resources {
    /// CPU in millicores (`"2"` is 2000, `"500m"` is 500).
    pub cpu_millis: u64,
    /// Memory in bytes.
    pub memory_bytes: u64,
    /// `nvidia.com/gpu` units.
    pub gpus: u64,
    /// Other extended resources (e.g. `rdma/hca`, `hugepages-2Mi`) by name, in units.
    #[serde(default)]
    pub extended: BTreeMap<String, u64>,
}

impl Resources {
    /// CPU, memory and GPUs; no extended resources.
    pub fn new(cpu_millis: u64, memory_bytes: u64, gpus: u64) -> Self {
        Resources {
            cpu_millis,
            memory_bytes,
            gpus,
            extended: BTreeMap::new(),
        }
    }

    /// Whether every quantity is zero.
    pub fn is_zero(&self) -> bool {
        self.cpu_millis == 0
            && self.memory_bytes == 0
            && self.gpus == 0
            && self.extended.values().all(|v| *v == 0)
    }
}

/// A node's identity: its Kubernetes name.
pub type NodeName = String;

/// The effect of a taint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TaintEffect {
    /// New pods that do not tolerate it are not scheduled here.
    NoSchedule,
    /// A soft preference only; the core ignores it when filtering.
    PreferNoSchedule,
    /// Like NoSchedule, and running pods are evicted (by the kubelet, not us).
    NoExecute,
}

/// A node taint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Taint {
    /// Taint key.
    pub key: String,
    /// Taint value (empty when absent).
    #[serde(default)]
    pub value: String,
    /// What the taint does to pods that do not tolerate it.
    pub effect: TaintEffect,
}

/// How a toleration compares its value with a taint's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum TolerationOperator {
    /// Key and value must match.
    #[default]
    Equal,
    /// Key must match (any value); an empty key with Exists tolerates everything.
    Exists,
}

/// A pod toleration.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Toleration {
    /// Taint key to match; `None` (with `Exists`) matches every key.
    pub key: Option<String>,
    /// Comparison.
    #[serde(default)]
    pub operator: TolerationOperator,
    /// Value to compare with `Equal`.
    #[serde(default)]
    pub value: String,
    /// Effect to match; `None` matches every effect.
    pub effect: Option<TaintEffect>,
}

impl Toleration {
    /// Whether this toleration tolerates `taint` (Kubernetes' rules).
    pub fn tolerates(&self, taint: &Taint) -> bool {
        if let Some(effect) = self.effect
            && effect != taint.effect
        {
            return false;
        }
        match (&self.key, self.operator) {
            (None, TolerationOperator::Exists) => true,
            (None, TolerationOperator::Equal) => false,
            (Some(key), op) => {
                key == &taint.key
                    && match op {
                        TolerationOperator::Exists => true,
                        TolerationOperator::Equal => self.value == taint.value,
                    }
            }
        }
    }
}

/// Operator of a node-selector requirement (required node affinity).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SelectorOperator {
    /// The label's value is one of `values`.
    In,
    /// The label is absent or its value is none of `values`.
    NotIn,
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
    /// The label's value, as an integer, is greater than the single value.
    Gt,
    /// The label's value, as an integer, is less than the single value.
    Lt,
}

/// One `matchExpressions` entry of a node-selector term.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectorRequirement {
    /// Label key.
    pub key: String,
    /// Comparison.
    pub operator: SelectorOperator,
    /// Values for In/NotIn (any number) and Gt/Lt (exactly one integer).
    #[serde(default)]
    pub values: Vec<String>,
}

impl SelectorRequirement {
    /// Whether a node with `labels` satisfies this requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            SelectorOperator::In => value.is_some_and(|v| self.values.contains(v)),
            SelectorOperator::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            SelectorOperator::Exists => value.is_some(),
            SelectorOperator::DoesNotExist => value.is_none(),
            SelectorOperator::Gt | SelectorOperator::Lt => {
                let (Some(v), [bound]) = (value, self.values.as_slice()) else {
                    return false;
                };
                match (v.parse::<i64>(), bound.parse::<i64>()) {
                    (Ok(v), Ok(b)) if self.operator == SelectorOperator::Gt => v > b,
                    (Ok(v), Ok(b)) => v < b,
                    _ => false,
                }
            }
        }
    }
}

/// A node-selector term: all of its requirements must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SelectorTerm {
    /// `matchExpressions` on node labels.
    #[serde(default)]
    pub match_expressions: Vec<SelectorRequirement>,
    /// `matchFields` on `metadata.name`, as requirements whose key is ignored.
    #[serde(default)]
    pub match_node_names: Vec<SelectorRequirement>,
}

/// How the kubelet's Topology Manager admits pods on a node; with
/// `SingleNumaNode` a pod whose whole cores and GPUs do not fit one NUMA zone
/// is rejected at admission (TopologyAffinityError) even when the node as a
/// whole has room: the failure mode NUMA-unaware scheduling runs into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum NumaPolicy {
    /// No alignment (the kubelet default).
    #[default]
    None,
    /// Align where possible, admit anyway.
    BestEffort,
    /// Pods needing whole cores or GPUs must fit in one NUMA zone.
    SingleNumaNode,
}

/// One NUMA zone of a node (from `NodeResourceTopology`, when known).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NumaZone {
    /// Zone id (e.g. 0 for `node-0`).
    pub id: u32,
    /// Allocatable CPU in this zone, millicores.
    pub cpu_millis: u64,
    /// Allocatable memory in this zone, bytes.
    pub memory_bytes: u64,
    /// GPUs attached to this zone.
    pub gpus: u64,
}

/// A node as the scheduler sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Node {
    /// Kubernetes node name (unique).
    pub name: NodeName,
    /// Allocatable resources (`status.allocatable`).
    pub allocatable: Resources,
    /// Maximum number of pods (`status.allocatable.pods`).
    pub max_pods: u32,
    /// Node labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Node taints.
    #[serde(default)]
    pub taints: Vec<Taint>,
    /// `spec.unschedulable` (cordoned).
    #[serde(default)]
    pub unschedulable: bool,
    /// Whether the node is Ready; a node that is not takes no new pods.
    #[serde(default = "default_true")]
    pub ready: bool,
    /// NUMA zones, when known; empty means one zone holding everything.
    #[serde(default)]
    pub numa_zones: Vec<NumaZone>,
    /// The kubelet's Topology Manager policy, when known.
    #[serde(default)]
    pub numa_policy: NumaPolicy,
    /// Topology zone (`topology.kubernetes.io/zone`).
    pub zone: Option<String>,
    /// Rack (from the configured rack label).
    pub rack: Option<String>,
}

fn default_true() -> bool {
    true
}

/// A pod's identity: its Kubernetes UID.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PodUid(pub String);

impl fmt::Display for PodUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for PodUid {
    fn from(s: &str) -> Self {
        PodUid(s.to_owned())
    }
}

/// The key of a pod group: namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GroupKey {
    /// Namespace of the group and its pods.
    pub namespace: String,
    /// Group name (the PodGroup's name, or the derived name for implicit groups).
    pub name: String,
}

impl GroupKey {
    /// A key from namespace and name.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        GroupKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A pod's lifecycle phase (`status.phase`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum PodPhase {
    /// Not yet running (unscheduled, or bound and starting).
    #[default]
    Pending,
    /// Running on its node.
    Running,
    /// Ended successfully: its resources are free again.
    Succeeded,
    /// Ended in failure: its resources are free again.
    Failed,
    /// The kubelet cannot report it; its resources stay taken.
    Unknown,
}

impl PodPhase {
    /// Whether the pod has ended and holds nothing.
    pub fn is_terminal(self) -> bool {
        matches!(self, PodPhase::Succeeded | PodPhase::Failed)
    }
}

/// A pod as the scheduler sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pod {
    /// Kubernetes UID (unique across the pod's lifetime).
    pub uid: PodUid,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Effective requests (sum of containers, max with init containers, plus overhead).
    pub requests: Resources,
    /// The pod group it belongs to; `None` makes it a group of one.
    pub group: Option<GroupKey>,
    /// Resolved priority (`spec.priority`).
    #[serde(default)]
    pub priority: i32,
    /// `spec.schedulerName`; pods of other schedulers only take capacity.
    pub scheduler_name: String,
    /// `spec.nodeName` once bound.
    pub node_name: Option<NodeName>,
    /// `status.phase`.
    #[serde(default)]
    pub phase: PodPhase,
    /// `spec.nodeSelector`.
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
    /// Required node affinity terms (ORed); empty means no constraint.
    #[serde(default)]
    pub required_affinity: Vec<SelectorTerm>,
    /// `spec.tolerations`.
    #[serde(default)]
    pub tolerations: Vec<Toleration>,
    /// `metadata.creationTimestamp`.
    pub created: Timestamp,
    /// Expected run time (annotation `phalanx.dev/duration-seconds`), if given.
    pub expected_duration: Option<Millis>,
    /// `spec.preemptionPolicy`: whether its group may preempt lower-priority groups.
    #[serde(default)]
    pub preemption_policy: PreemptionPolicy,
    /// `metadata.labels`, matched by PodDisruptionBudget selectors.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `metadata.deletionTimestamp` is set: the pod is terminating and its
    /// resources are about to be freed (it still holds them until it is gone).
    #[serde(default)]
    pub terminating: bool,
    /// How long the pod may take to stop once deleted: the grace period of
    /// its deletion while terminating (`metadata.deletionGracePeriodSeconds`),
    /// else `spec.terminationGracePeriodSeconds`. None is Kubernetes'
    /// default (30 s). A victim still there well after it is stuck.
    #[serde(default)]
    pub termination_grace: Option<Millis>,
}

impl Pod {
    /// `namespace/name`, for messages.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Whether this pod may run on `node`: nodeSelector, required node
    /// affinity, NoSchedule/NoExecute taints, cordon and readiness. Resource
    /// fit is the matcher's job, not this.
    pub fn may_run_on(&self, node: &Node) -> bool {
        if node.unschedulable || !node.ready {
            return false;
        }
        if !self
            .node_selector
            .iter()
            .all(|(k, v)| node.labels.get(k) == Some(v))
        {
            return false;
        }
        if !self.required_affinity.is_empty()
            && !self.required_affinity.iter().any(|term| {
                term.match_expressions
                    .iter()
                    .all(|r| r.matches(&node.labels))
                    && term.match_node_names.iter().all(|r| {
                        let mut name = BTreeMap::new();
                        name.insert(r.key.clone(), node.name.clone());
                        r.matches(&name)
                    })
            })
        {
            return false;
        }
        node.taints
            .iter()
            .filter(|t| t.effect != TaintEffect::PreferNoSchedule)
            .all(|t| self.tolerations.iter().any(|tol| tol.tolerates(t)))
    }
}

/// A pod group (the `PodGroup` CRD, or one derived from labels or owners).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodGroup {
    /// Namespace and name.
    pub key: GroupKey,
    /// Pods that must be placed together before any is bound.
    pub min_member: u32,
    /// How long a group may wait for its pods (and a lost pod for its
    /// replacement) before its unused slots are given up.
    pub schedule_timeout: Option<Millis>,
    /// Priority (highest of its pods when derived).
    #[serde(default)]
    pub priority: i32,
    /// `metadata.creationTimestamp`; orders the queue after priority.
    pub created: Timestamp,
    /// Expected run time of the group, if known (else taken from its pods,
    /// else the configured default).
    pub expected_duration: Option<Millis>,
    /// Node label whose value all pods of the group must share (one zone, one
    /// rack: a native PodGroup's topology constraint); None places anywhere.
    #[serde(default)]
    pub topology_key: Option<String>,
    /// Most members that may run (a MiniCluster's `maxSize`); `None` is no
    /// limit. Members beyond `min_member` are elastic: placed as room
    /// appears, released first under preemption.
    #[serde(default)]
    pub max_member: Option<u32>,
    /// Whether the group's pods may preempt lower-priority groups (the
    /// native PodGroup's `preemptionPolicy`); `None` leaves it to the pods'.
    #[serde(default)]
    pub preemption_policy: Option<PreemptionPolicy>,
    /// How the group may be disrupted when it is a preemption victim.
    #[serde(default)]
    pub disruption: DisruptionMode,
}

/// `spec.preemptionPolicy` of a pod (or a native PodGroup).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum PreemptionPolicy {
    /// It may preempt groups of lower priority (the Kubernetes default).
    #[default]
    PreemptLowerPriority,
    /// It waits for room and never preempts.
    Never,
}

/// How a group may be disrupted when it is chosen as a preemption victim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum DisruptionMode {
    /// Members above `min_member` may be released one by one; the minimum
    /// goes whole or not at all (a native PodGroup's `All` / `PodGroup`
    /// mode, and Phalanx's default for every gang).
    #[default]
    Gang,
    /// Every member may be disrupted on its own (a group of independent
    /// pods: a native `basic` PodGroup, or `Single` / `Pod` mode on a
    /// group whose minimum is one).
    Pod,
}

/// A label selector (`metav1.LabelSelector`): every `match_labels` pair and
/// every expression must hold. An empty selector matches every pod.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LabelSelector {
    /// `matchLabels`.
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    /// `matchExpressions` (In, NotIn, Exists, DoesNotExist).
    #[serde(default)]
    pub match_expressions: Vec<SelectorRequirement>,
}

impl LabelSelector {
    /// Whether a pod with `labels` is selected.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| r.matches(labels))
    }
}

/// A PodDisruptionBudget (`policy/v1`), as far as preemption needs it:
/// kube-scheduler prefers victims whose eviction keeps every budget, and
/// so does Phalanx.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisruptionBudget {
    /// Namespace; it selects pods of this namespace only.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `spec.selector`; `None` (a budget with no selector) selects nothing.
    pub selector: Option<LabelSelector>,
    /// `status.disruptionsAllowed`: pods it lets go now.
    pub disruptions_allowed: u32,
}
