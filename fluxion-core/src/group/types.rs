//! Inputs and outputs of pod-group matching.

use std::fmt;

/// Stable id of a node in a [`GroupGraph`](super::GroupGraph) (never reused
/// while the node exists; a removed node's id may be given to a new node).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NodeId(pub u32);

/// One NUMA zone of a node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NumaSpec {
    /// CPU in millicores.
    pub cpu_millis: u64,
    /// GPUs attached.
    pub gpus: u64,
}

/// A node to add to the graph.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeSpec {
    /// Unique name.
    pub name: String,
    /// Topology zone (`""` when unknown).
    pub zone: String,
    /// Rack within the zone (`""` when unknown).
    pub rack: String,
    /// Pods it may hold.
    pub max_pods: u64,
    /// Memory in bytes (a node-level pool).
    pub memory_bytes: u64,
    /// NUMA zones; their CPU and GPUs are the node's. One zone when unknown.
    pub numa: Vec<NumaSpec>,
    /// Other extended resources (node-level pools), by name.
    pub extended: Vec<(String, u64)>,
    /// Whether pods needing whole cores or GPUs must fit one NUMA zone here
    /// (the kubelet's single-numa-node policy).
    pub single_numa: bool,
    /// Whether new pods may go here at all (cordoned or not-ready nodes may not).
    pub schedulable: bool,
}

impl NodeSpec {
    /// Total CPU of the node in millicores.
    pub fn cpu_millis(&self) -> u64 {
        self.numa.iter().map(|z| z.cpu_millis).sum()
    }

    /// Total GPUs of the node.
    pub fn gpus(&self) -> u64 {
        self.numa.iter().map(|z| z.gpus).sum()
    }
}

/// What one pod needs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct Demand {
    /// CPU in millicores.
    pub cpu_millis: u64,
    /// Memory in bytes.
    pub memory_bytes: u64,
    /// GPUs.
    pub gpus: u64,
    /// Extended resources by name.
    pub extended: Vec<(String, u64)>,
}

impl Demand {
    /// Whether this pod wants its cores and GPUs in one NUMA zone: it asks
    /// whole cores (as the static CPU manager pins them) or GPUs.
    pub fn wants_numa_alignment(&self) -> bool {
        self.gpus > 0 || (self.cpu_millis > 0 && self.cpu_millis.is_multiple_of(1000))
    }
}

impl fmt::Display for Demand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.cpu_millis.is_multiple_of(1000) {
            write!(f, "cpu {}", self.cpu_millis / 1000)?;
        } else {
            write!(f, "cpu {}m", self.cpu_millis)?;
        }
        write!(f, ", memory {}Mi", self.memory_bytes / (1 << 20))?;
        if self.gpus > 0 {
            write!(f, ", {} GPU", self.gpus)?;
        }
        for (name, n) in &self.extended {
            write!(f, ", {n} {name}")?;
        }
        Ok(())
    }
}

/// Which nodes a pod may use (from nodeSelector, affinity, taints).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NodeFilter {
    /// Any schedulable node.
    #[default]
    Any,
    /// Only these nodes (sorted or not; looked up as a set).
    Only(Vec<NodeId>),
}

/// Pods of one shape within a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodClass {
    /// What each pod needs.
    pub demand: Demand,
    /// How many pods of this shape.
    pub count: u32,
    /// Where they may go.
    pub filter: NodeFilter,
}

/// A whole group to place at once.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupRequest {
    /// Pods by shape (a launcher and workers are two classes).
    pub classes: Vec<PodClass>,
}

impl GroupRequest {
    /// Total pods requested.
    pub fn pod_count(&self) -> u64 {
        self.classes.iter().map(|c| u64::from(c.count)).sum()
    }
}

/// What one placed pod takes: the node, and per NUMA zone the CPU and GPUs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct PodClaim {
    /// The node.
    pub node: NodeId,
    /// Millicores taken from each NUMA zone (index = zone).
    pub numa_cpu: Vec<u64>,
    /// GPUs taken from each NUMA zone.
    pub numa_gpus: Vec<u64>,
    /// Memory bytes.
    pub memory_bytes: u64,
    /// Extended resources as (interned id, units).
    pub extended: Vec<(u16, u64)>,
    /// Pods this claim stands for: 1 for one pod (0 is read as 1); more for
    /// claims summed over several pods of a node.
    pub pods: u64,
}

impl PodClaim {
    /// CPU millicores in total.
    pub fn cpu_millis(&self) -> u64 {
        self.numa_cpu.iter().sum()
    }

    /// GPUs in total.
    pub fn gpus(&self) -> u64 {
        self.numa_gpus.iter().sum()
    }

    /// Whether the CPU and GPUs sit in a single NUMA zone.
    pub fn numa_aligned(&self) -> bool {
        self.numa_cpu
            .iter()
            .zip(&self.numa_gpus)
            .filter(|(c, g)| **c > 0 || **g > 0)
            .count()
            <= 1
    }
}

/// A placement of a whole group: per class, one claim per pod.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Placement {
    /// `claims[class][i]` is the i-th pod of that class.
    pub claims: Vec<Vec<PodClaim>>,
}

impl Placement {
    /// Every claim, class by class.
    pub fn iter(&self) -> impl Iterator<Item = &PodClaim> {
        self.claims.iter().flatten()
    }
}

/// How a group's pods are laid out over the nodes that can hold them.
///
/// Both policies first look for the fewest racks and zones that hold the
/// whole group (the tightest single rack, then one zone); they differ inside
/// the racks chosen.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum PlacementPolicy {
    /// Fill each node before the next: the fewest nodes, whole nodes left
    /// free for the next big group.
    #[default]
    Pack,
    /// One pod per node before any node takes a second: the most nodes, for
    /// pods that want a node's memory bandwidth or NICs to themselves.
    Spread,
}

impl PlacementPolicy {
    /// Every policy, by name.
    pub const ALL: [PlacementPolicy; 2] = [PlacementPolicy::Pack, PlacementPolicy::Spread];

    /// The policy's name, as `--policy` takes it.
    pub fn name(self) -> &'static str {
        match self {
            PlacementPolicy::Pack => "pack",
            PlacementPolicy::Spread => "spread",
        }
    }
}

impl fmt::Display for PlacementPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A placement policy name that is not one of [`PlacementPolicy::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown placement policy {0:?}: expected pack or spread")]
pub struct UnknownPolicy(pub String);

impl std::str::FromStr for PlacementPolicy {
    type Err = UnknownPolicy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PlacementPolicy::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| UnknownPolicy(s.to_owned()))
    }
}

/// Why a group could not be placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatchError {
    /// It would fit the empty cluster, but not the free resources now.
    #[error("busy: {0}")]
    Busy(String),
    /// It cannot fit even the empty cluster.
    #[error("unsatisfiable: {0}")]
    Unsatisfiable(String),
}
