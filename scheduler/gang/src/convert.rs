//! From Kubernetes-shaped model types to the pod-group graph's types.

use fluxion_core::group::{Demand, GroupGraph, NodeFilter, NodeSpec, NumaSpec};

use crate::model::{Node, NumaPolicy, Pod, TaintEffect};

/// The pod-group graph's view of a node (zone, rack, NUMA zones, pools).
pub fn node_spec(node: &Node) -> NodeSpec {
    let numa = if node.numa_zones.is_empty() {
        vec![NumaSpec {
            cpu_millis: node.allocatable.cpu_millis,
            gpus: node.allocatable.gpus,
        }]
    } else {
        node.numa_zones
            .iter()
            .map(|z| NumaSpec {
                cpu_millis: z.cpu_millis,
                gpus: z.gpus,
            })
            .collect()
    };
    NodeSpec {
        name: node.name.clone(),
        zone: node.zone.clone().unwrap_or_default(),
        rack: node.rack.clone().unwrap_or_default(),
        max_pods: u64::from(node.max_pods),
        memory_bytes: node.allocatable.memory_bytes,
        numa,
        extended: node
            .allocatable
            .extended
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect(),
        single_numa: node.numa_policy == NumaPolicy::SingleNumaNode,
        schedulable: !node.unschedulable && node.ready,
    }
}

/// What a pod asks of the graph.
pub(crate) fn demand(pod: &Pod) -> Demand {
    Demand {
        cpu_millis: pod.requests.cpu_millis,
        memory_bytes: pod.requests.memory_bytes,
        gpus: pod.requests.gpus,
        extended: pod
            .requests
            .extended
            .iter()
            .filter(|(_, v)| **v > 0)
            .map(|(k, v)| (k.clone(), *v))
            .collect(),
    }
}

/// Whether a pod's constraints can be ignored (it may go to any schedulable node).
pub(crate) fn unconstrained(pod: &Pod, any_taints: bool) -> bool {
    pod.node_selector.is_empty() && pod.required_affinity.is_empty() && !any_taints
}

/// Which nodes a pod may use.
pub(crate) fn filter<'a>(
    pod: &Pod,
    nodes: impl Iterator<Item = &'a Node>,
    graph: &GroupGraph,
    any_taints: bool,
) -> NodeFilter {
    if unconstrained(pod, any_taints) {
        return NodeFilter::Any;
    }
    NodeFilter::Only(
        nodes
            .filter(|n| pod.may_run_on(n))
            .filter_map(|n| graph.node_id(&n.name))
            .collect(),
    )
}

/// Whether a node carries taints that keep pods off.
pub(crate) fn has_hard_taints(node: &Node) -> bool {
    node.taints
        .iter()
        .any(|t| t.effect != TaintEffect::PreferNoSchedule)
}
