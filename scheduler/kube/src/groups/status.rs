//! The native PodGroup's status condition, written the way kube-scheduler
//! writes it: `PodGroupScheduled` (v1alpha2; `PodGroupInitiallyScheduled` in
//! v1beta1) is `True` with reason `Scheduled` once the gang is placed, and
//! `False` with reason `Unschedulable` and the scheduler's message while it
//! cannot be placed. Like kube-scheduler, a condition that is `True` is never
//! turned back: it records the initial placement, not the group's health.
//! Its message is the core's (for an elastic group: how many of how many
//! members run, which changes after the minimum is placed) and is kept up
//! to date.

use std::sync::atomic::Ordering;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use phalanx_gang as gang;
use serde_json::{Value, json};

use super::Kind;
use crate::binder::Writer;

/// The condition to write for a group change, if any: (type, status, reason, message).
pub fn condition(version: &str, ch: &gang::GroupChange) -> Option<Value> {
    let type_ = if version == "v1alpha2" {
        "PodGroupScheduled"
    } else {
        "PodGroupInitiallyScheduled"
    };
    let (status, reason, message) = match (ch.phase, &ch.wait) {
        (
            gang::GroupPhase::Scheduled | gang::GroupPhase::Running | gang::GroupPhase::Finished,
            _,
        ) => ("True", "Scheduled", ch.message.clone()),
        (gang::GroupPhase::Failed, _)
        | (
            gang::GroupPhase::Pending,
            Some(
                gang::WaitReason::Unsatisfiable
                | gang::WaitReason::Busy
                | gang::WaitReason::Reserved { .. },
            ),
        ) => ("False", "Unschedulable", ch.message.clone()),
        _ => return None,
    };
    Some(json!({"type": type_, "status": status, "reason": reason, "message": message}))
}

/// Writes `cond` into the PodGroup's `status.conditions` (keeping the others),
/// unless a `True` one of its type is there already. Best effort: failures are logged.
pub async fn write(w: Writer, version: &'static str, ns: String, name: String, cond: Value) {
    if !(w.alive.load(Ordering::SeqCst) && *w.leader.borrow()) {
        return;
    }
    w.limiter.acquire().await;
    let api: Api<DynamicObject> = Api::namespaced_with(
        w.client.clone(),
        &ns,
        &Kind::NativePodGroup.resource(version),
    );
    let current = match api.get_status(&name).await {
        Ok(o) => o,
        Err(e) => {
            tracing::debug!(podgroup = %name, error = %e, "reading native PodGroup failed");
            return;
        }
    };
    let mut conditions: Vec<Value> = current
        .data
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let type_ = cond["type"].clone();
    let same_type = |c: &Value| c["type"] == type_;
    let now = jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default();
    let mut cond = cond;
    match conditions.iter().find(|c| same_type(c)) {
        Some(old) if old["status"] == cond["status"] && old["message"] == cond["message"] => return,
        Some(old) if old["status"] == "True" && cond["status"] != "True" => return,
        Some(old) if old["status"] == cond["status"] => {
            cond["lastTransitionTime"] = old["lastTransitionTime"].clone()
        }
        _ => cond["lastTransitionTime"] = json!(now),
    }
    if let Some(g) = current.metadata.generation {
        cond["observedGeneration"] = json!(g);
    }
    conditions.retain(|c| !same_type(c));
    conditions.push(cond);
    let patch = json!({"status": {"conditions": conditions}});
    if let Err(e) = api
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        tracing::warn!(podgroup = %name, error = %e, "updating native PodGroup status failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(phase: gang::GroupPhase, wait: Option<gang::WaitReason>) -> gang::GroupChange {
        gang::GroupChange {
            group: gang::GroupKey::new("ns", "podgroup:g"),
            phase,
            wait,
            message: "0 of 4 pods fit".into(),
            bound: 0,
            running: 0,
            succeeded: 0,
            failed: 0,
        }
    }

    #[test]
    fn scheduled_true_unschedulable_false_waiting_for_pods_nothing() {
        let mut placed = change(gang::GroupPhase::Scheduled, None);
        placed.message = "all 4 pods bound; 3 of 4 members running (minimum 2)".into();
        let c = condition("v1alpha2", &placed);
        assert_eq!(
            c,
            Some(
                json!({"type": "PodGroupScheduled", "status": "True", "reason": "Scheduled", "message": "all 4 pods bound; 3 of 4 members running (minimum 2)"})
            )
        );
        let c = condition(
            "v1beta1",
            &change(
                gang::GroupPhase::Pending,
                Some(gang::WaitReason::Unsatisfiable),
            ),
        );
        assert_eq!(
            c,
            Some(
                json!({"type": "PodGroupInitiallyScheduled", "status": "False", "reason": "Unschedulable", "message": "0 of 4 pods fit"})
            )
        );
        let waiting = gang::WaitReason::WaitingForPods { have: 3, want: 4 };
        assert_eq!(
            condition(
                "v1alpha2",
                &change(gang::GroupPhase::Pending, Some(waiting))
            ),
            None
        );
    }
}
