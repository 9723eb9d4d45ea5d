//! What kube-apiserver's per-kind `PrepareForCreate` does to a new object's
//! `status`: a client may not create an object with a status of its own,
//! except for the kinds whose status is written at creation by their owner
//! (a kubelet registers its Node with capacity and conditions).
//!
//! - Pod: the status is replaced by `phase: Pending` and the computed
//!   `qosClass` (pkg/registry/core/pod/strategy.go).
//! - PodDisruptionBudget: the status is reset; only the disruption controller
//!   writes it (pkg/registry/policy/poddisruptionbudget/strategy.go).
//! - Any other kind with a status subresource (custom resources included):
//!   the status is dropped (apiextensions-apiserver's customresource strategy).
//!
//! Tests that need a status the cluster would have written (a running pod, a
//! finished JobSet) set it afterwards through the status subresource or
//! `ApiServer::mutate`, as the owning controller would.

use serde_json::{Value, json};

use super::resources::ResourceType;

/// Applies the create-time status rules to `obj` (already a JSON object).
pub fn prepare_for_create(rt: &ResourceType, obj: &mut Value) {
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "nodes") => {}
        ("", "pods") => {
            let qos = qos_class(&obj["spec"]);
            obj["status"] = json!({"phase": "Pending", "qosClass": qos});
        }
        ("policy", "poddisruptionbudgets") => {
            obj["status"] = json!({
                "disruptionsAllowed": 0, "currentHealthy": 0,
                "desiredHealthy": 0, "expectedPods": 0,
            });
        }
        _ if rt.status_subresource => {
            if let Some(o) = obj.as_object_mut() {
                o.remove("status");
            }
        }
        _ => {}
    }
}

/// The two resources that decide a pod's QoS class.
const QOS_RESOURCES: [&str; 2] = ["cpu", "memory"];

/// A pod's QoS class from its containers' (and init containers') requests
/// and limits, as kubelet and the API server compute it: BestEffort with no
/// cpu or memory request or limit anywhere, Guaranteed when every container
/// limits both and requests what it limits (a missing request defaults to
/// the limit), Burstable otherwise. Zero quantities count as unset.
pub fn qos_class(spec: &Value) -> &'static str {
    let containers = ["containers", "initContainers"]
        .iter()
        .filter_map(|k| spec[*k].as_array())
        .flatten();
    let mut any_set = false;
    let mut guaranteed = true;
    for c in containers {
        let requests = &c["resources"]["requests"];
        let limits = &c["resources"]["limits"];
        for r in QOS_RESOURCES {
            let request = quantity(&requests[r]);
            let limit = quantity(&limits[r]);
            if request.is_some() || limit.is_some() {
                any_set = true;
            }
            match (request, limit) {
                (_, None) => guaranteed = false,
                (Some(req), Some(lim)) if req != lim => guaranteed = false,
                _ => {}
            }
        }
    }
    if !any_set {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// A quantity in nano-units, None when absent, zero or unreadable.
fn quantity(v: &Value) -> Option<i128> {
    let nanos = match v {
        Value::String(s) => phalanx_gang::quantity::parse_nanos(s).ok()?,
        Value::Number(n) => phalanx_gang::quantity::parse_nanos(&n.to_string()).ok()?,
        _ => return None,
    };
    (nanos > 0).then_some(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(resources: Value) -> Value {
        json!({"containers": [{"name": "c", "resources": resources}]})
    }

    #[test]
    fn qos_classes_follow_requests_and_limits() {
        assert_eq!(qos_class(&spec(json!({}))), "BestEffort");
        assert_eq!(
            qos_class(&spec(json!({"requests": {"cpu": "0"}}))),
            "BestEffort",
            "a zero request is no request"
        );
        assert_eq!(
            qos_class(&spec(json!({"requests": {"cpu": "1"}}))),
            "Burstable"
        );
        assert_eq!(
            qos_class(&spec(
                json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1000m"}})
            )),
            "Guaranteed",
            "a missing request defaults to the limit; 1 == 1000m"
        );
        assert_eq!(
            qos_class(&spec(
                json!({"limits": {"cpu": "2", "memory": "1Gi"}, "requests": {"cpu": "1"}})
            )),
            "Burstable"
        );
        let init_unlimited = json!({
            "containers": [{"name": "c", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}],
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "1"}}}],
        });
        assert_eq!(qos_class(&init_unlimited), "Burstable");
    }

    #[test]
    fn create_drops_or_resets_a_client_status() {
        let pods = ResourceType::new("", "v1", "pods", "Pod", true, true);
        let mut pod = json!({"spec": {}, "status": {"phase": "Running", "podIP": "10.0.0.1"}});
        prepare_for_create(&pods, &mut pod);
        assert_eq!(
            pod["status"],
            json!({"phase": "Pending", "qosClass": "BestEffort"})
        );

        let nodes = ResourceType::new("", "v1", "nodes", "Node", false, true);
        let mut node = json!({"status": {"allocatable": {"cpu": "8"}}});
        prepare_for_create(&nodes, &mut node);
        assert_eq!(node["status"]["allocatable"]["cpu"], "8", "a node keeps it");

        let jobsets = ResourceType::jobset();
        let mut js = json!({"spec": {}, "status": {"terminalState": "Completed"}});
        prepare_for_create(&jobsets, &mut js);
        assert!(js.get("status").is_none(), "{js}");

        let plain = ResourceType::node_resource_topology();
        let mut nrt = json!({"zones": [], "status": {"x": 1}});
        prepare_for_create(&plain, &mut nrt);
        assert_eq!(nrt["status"]["x"], 1, "no status subresource: kept");
    }
}
