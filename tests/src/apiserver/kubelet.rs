//! A simulated kubelet: it starts pods once they are bound and, if asked,
//! finishes them; a pod deleted gracefully (`metadata.deletionTimestamp` set)
//! is stopped and then removed, as the kubelet removes it with a final
//! delete of grace 0.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::Shared;
use super::store::{ApiError, ChangeType};

/// How the simulated kubelet behaves.
#[derive(Debug, Clone, Default)]
pub struct KubeletOptions {
    /// After this long Running, a pod becomes Succeeded; None keeps it Running.
    pub run_for: Option<Duration>,
    /// How long a pod's containers take to stop once it is deleted gracefully
    /// (capped by its grace period); zero removes it at once.
    pub stop_after: Duration,
}

/// Removes a terminating pod for good, if it is still the same pod.
fn remove(shared: &Shared, ns: &str, name: &str, uid: &str) {
    let mut store = shared.lock();
    let Some(rt) = store.resource_type("", "v1", "pods") else {
        return;
    };
    let _ = store.delete_with(
        &rt,
        ns,
        name,
        &json!({"gracePeriodSeconds": 0, "preconditions": {"uid": uid}}),
    );
}

pub(super) fn set_phase(
    shared: &Shared,
    ns: &str,
    pod: &str,
    phase: &str,
) -> Result<Value, ApiError> {
    let mut store = shared.lock();
    let rt = store
        .resource_type("", "v1", "pods")
        .ok_or_else(|| ApiError::new(404, "NotFound", "pods"))?;
    store.mutate(&rt, ns, pod, |p| {
        if !p["status"].is_object() {
            p["status"] = json!({});
        }
        p["status"]["phase"] = json!(phase);
        if phase == "Running" {
            p["status"]["startTime"] = p["metadata"]["creationTimestamp"].clone();
        }
    })
}

pub(super) fn spawn(shared: Arc<Shared>, opts: KubeletOptions) -> tokio::task::JoinHandle<()> {
    let mut rx = shared.lock().subscribe();
    tokio::spawn(async move {
        loop {
            let change = match rx.recv().await {
                Ok(c) => c,
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return,
            };
            if change.resource != "/v1/pods" || change.kind == ChangeType::Deleted {
                continue;
            }
            let pod = &change.object;
            let text = |ptr: &str| {
                pod.pointer(ptr)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            if pod.pointer("/metadata/deletionTimestamp").is_some() {
                let grace = pod
                    .pointer("/metadata/deletionGracePeriodSeconds")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                let wait = opts.stop_after.min(Duration::from_secs(grace));
                let (ns, name, uid) = (
                    text("/metadata/namespace"),
                    text("/metadata/name"),
                    text("/metadata/uid"),
                );
                let shared = shared.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(wait).await;
                    remove(&shared, &ns, &name, &uid);
                });
                continue;
            }
            let bound = pod
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty());
            let pending = pod.pointer("/status/phase").and_then(Value::as_str) == Some("Pending");
            if !(bound && pending) {
                continue;
            }
            let ns = pod
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let name = pod
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            // The pod may have been deleted meanwhile; that is not the kubelet's problem.
            let _ = set_phase(&shared, &ns, &name, "Running");
            if let Some(d) = opts.run_for {
                let shared = shared.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(d).await;
                    let _ = set_phase(&shared, &ns, &name, "Succeeded");
                });
            }
        }
    })
}
