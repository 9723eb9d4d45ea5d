//! Carrying out the core's decisions against the API: binds through
//! pods/binding, Events, PodGroup status. Every write goes through one rate limiter.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event as KubeEvent, EventType as KubeEventType, Recorder, Reporter};
use phalanx_gang as gang;
use tokio::sync::{Mutex, Semaphore, watch};
use tokio::time::Instant;

use crate::crd::PodGroup;
use crate::metrics::{Metrics, result};

/// A token bucket: `qps` tokens a second, up to `burst` saved.
#[derive(Debug)]
pub struct RateLimiter {
    qps: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    /// A full bucket.
    pub fn new(qps: f64, burst: u32) -> Self {
        Self {
            qps,
            burst: f64::from(burst),
            state: Mutex::new((f64::from(burst), Instant::now())),
        }
    }

    /// Waits for one token.
    pub async fn acquire(&self) {
        let wait = {
            let mut s = self.state.lock().await;
            let now = Instant::now();
            let refill = now.saturating_duration_since(s.1).as_secs_f64() * self.qps;
            s.0 = (s.0 + refill).min(self.burst) - 1.0;
            s.1 = now;
            if s.0 >= 0.0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(-s.0 / self.qps)
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// Shared by every write task.
#[derive(Clone)]
pub struct Writer {
    /// API client.
    pub client: kube::Client,
    /// Write limiter.
    pub limiter: Arc<RateLimiter>,
    /// Bounds binds in flight.
    pub bind_slots: Arc<Semaphore>,
    /// Whether we lead (binds check it right before sending).
    pub leader: watch::Receiver<bool>,
    /// Cleared when the scheduler is stopped or killed.
    pub alive: Arc<AtomicBool>,
    /// Event recorder.
    pub recorder: Recorder,
    /// Metrics.
    pub metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

impl Writer {
    /// A writer with the settings' limits, reporting events as `phalanx` from the settings' identity.
    pub fn new(
        client: kube::Client,
        settings: &crate::args::Settings,
        leader: watch::Receiver<bool>,
        alive: Arc<AtomicBool>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let reporter = Reporter {
            controller: "phalanx".into(),
            instance: Some(settings.identity.clone()),
        };
        let recorder = Recorder::new(client.clone(), reporter);
        Self {
            client,
            limiter: Arc::new(RateLimiter::new(settings.qps, settings.burst)),
            bind_slots: Arc::new(Semaphore::new(settings.bind_concurrency)),
            leader,
            alive,
            recorder,
            metrics,
        }
    }

    fn may_write(&self) -> bool {
        self.alive.load(Ordering::SeqCst) && *self.leader.borrow()
    }

    /// Binds one pod and says what happened, in the core's terms.
    pub async fn bind(&self, b: &gang::PodBinding) -> gang::BindOutcome {
        let Ok(_permit) = self.bind_slots.acquire().await else {
            return gang::BindOutcome::Failed {
                message: "scheduler stopping".into(),
            };
        };
        self.limiter.acquire().await;
        // Leadership can be lost while this bind waited for a slot: check at the last moment.
        if !self.may_write() {
            return gang::BindOutcome::Failed {
                message: "not the leader".into(),
            };
        }
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &b.namespace);
        let binding = Binding {
            metadata: ObjectMeta {
                name: Some(b.name.clone()),
                uid: Some(b.pod.0.clone()),
                ..Default::default()
            },
            target: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Node".into()),
                name: Some(b.node.clone()),
                ..Default::default()
            },
        };
        let started = Instant::now();
        let res = api
            .create_subresource::<Binding, serde_json::Value>(
                "binding",
                &b.name,
                &PostParams::default(),
                &binding,
            )
            .await;
        self.metrics
            .bind_latency
            .observe(started.elapsed().as_secs_f64());
        let outcome = match res {
            Ok(_) => gang::BindOutcome::Bound,
            Err(kube::Error::Api(e)) if e.code == 409 => {
                // Already bound: find out where, so the core can tell "ours, earlier" from "stolen".
                match api.get_opt(&b.name).await {
                    Ok(Some(p)) => match p.spec.and_then(|s| s.node_name).filter(|n| !n.is_empty())
                    {
                        Some(n) if n == b.node => gang::BindOutcome::Bound,
                        Some(n) => gang::BindOutcome::Conflict { bound_to: Some(n) },
                        // A conflict on a pod that is still unbound is transient: retry the same reservation.
                        None => gang::BindOutcome::Failed {
                            message: format!("conflict binding {}: {}", b.name, e.message),
                        },
                    },
                    Ok(None) => gang::BindOutcome::PodGone,
                    Err(get_err) => gang::BindOutcome::Failed {
                        message: format!("conflict, then reading the pod failed: {get_err}"),
                    },
                }
            }
            Err(kube::Error::Api(e)) if e.code == 404 => match api.get_opt(&b.name).await {
                // Only a pod that is really gone (or replaced under the same name) frees its slot.
                Ok(Some(p)) if p.metadata.uid.as_deref() == Some(b.pod.0.as_str()) => {
                    gang::BindOutcome::Failed {
                        message: format!(
                            "not found binding {}, but the pod exists: {}",
                            b.name, e.message
                        ),
                    }
                }
                _ => gang::BindOutcome::PodGone,
            },
            Err(e) => gang::BindOutcome::Failed {
                message: e.to_string(),
            },
        };
        match &outcome {
            gang::BindOutcome::Bound => self.metrics.binds.inc(),
            gang::BindOutcome::Conflict { .. } => self
                .metrics
                .bind_failures
                .get_or_create(&result("conflict"))
                .inc(),
            gang::BindOutcome::PodGone => self
                .metrics
                .bind_failures
                .get_or_create(&result("gone"))
                .inc(),
            gang::BindOutcome::Failed { .. } => self
                .metrics
                .bind_failures
                .get_or_create(&result("error"))
                .inc(),
        };
        outcome
    }

    /// Publishes an Event (best effort: a lost Event is logged, never fatal).
    pub async fn event(
        &self,
        regarding: ObjectReference,
        warning: bool,
        reason: String,
        message: String,
    ) {
        // Only the leader speaks, so replicas do not report everything twice.
        if !self.may_write() {
            return;
        }
        self.limiter.acquire().await;
        let ev = KubeEvent {
            type_: if warning {
                KubeEventType::Warning
            } else {
                KubeEventType::Normal
            },
            reason,
            note: Some(message.chars().take(1000).collect()),
            action: "Scheduling".into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &regarding).await {
            tracing::debug!(error = %e, object = ?regarding.name, "publishing an event failed");
        }
    }

    /// Writes a PodGroup's status through the status subresource.
    pub async fn podgroup_status(&self, key: &gang::GroupKey, status: serde_json::Value) {
        if !self.may_write() {
            return;
        }
        self.limiter.acquire().await;
        let api: Api<PodGroup> = Api::namespaced(self.client.clone(), &key.namespace);
        let patch = serde_json::json!({ "status": status });
        if let Err(e) = api
            .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::warn!(group = %key, error = %e, "updating PodGroup status failed");
        }
    }
}

/// A reference to a pod for Events.
pub fn pod_ref(namespace: &str, name: &str, uid: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        namespace: Some(namespace.into()),
        name: Some(name.into()),
        uid: Some(uid.into()).filter(|u: &String| !u.is_empty()),
        ..Default::default()
    }
}
