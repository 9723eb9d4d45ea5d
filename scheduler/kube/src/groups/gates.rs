//! Scheduling gates (`spec.schedulingGates`): a gated pod is not ready to be
//! scheduled, so it is not a present member of any gang. The API server
//! refuses to bind it (409, "pod has non-empty .spec.schedulingGates"), so
//! the adapter keeps it from the core until its last gate is removed: its gang
//! waits whole, and no bind is ever sent for it.

use k8s_openapi::api::core::v1 as core;

/// The reason a pod waits for its gates, or None if it has none.
pub fn waiting(p: &core::Pod) -> Option<String> {
    let gates = p.spec.as_ref()?.scheduling_gates.as_ref()?;
    if gates.is_empty() {
        return None;
    }
    let names: Vec<&str> = gates.iter().map(|g| g.name.as_str()).collect();
    Some(format!(
        "waiting for its scheduling gates to be removed: {}",
        names.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(gates: serde_json::Value) -> core::Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [], "schedulingGates": gates},
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn gates_name_themselves_and_empty_list_is_ungated() {
        let why = waiting(&pod(
            serde_json::json!([{"name": "kueue.x-k8s.io/admission"}, {"name": "b"}]),
        ));
        assert_eq!(
            why.as_deref(),
            Some("waiting for its scheduling gates to be removed: kueue.x-k8s.io/admission, b")
        );
        assert_eq!(waiting(&pod(serde_json::json!([]))), None);
        assert_eq!(waiting(&pod(serde_json::Value::Null)), None);
    }
}
