//! Carrying out the core's decisions against the API: binds through
//! pods/binding, Events, PodGroup status.
//!
//! Binds and status writes share one rate limiter (`--qps`, `--burst`; the
//! kube client has none of its own) and binds are pipelined up to
//! `--bind-concurrency` in flight. Events stay off that path, as
//! kube-scheduler's event broadcaster keeps them: they go into a bounded
//! queue that one task drains under its own budget (`--event-qps`,
//! `--event-burst`); when the queue is full an Event is dropped and counted
//! (`phalanx_events_dropped_total`), so a burst of binds never waits for, or
//! shares its budget with, the Events that describe it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use phalanx_gang as gang;
use tokio::sync::{Mutex, Semaphore, mpsc, watch};
use tokio::time::Instant;

use crate::crd::PodGroup;
use crate::events::EventSink;
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

/// Events waiting to be published at most; more are dropped, as client-go's
/// event broadcaster drops events beyond its queue of 1,000.
pub const EVENT_QUEUE: usize = 1000;

/// Events in flight at once (each is one small write).
const EVENT_CONCURRENCY: usize = 8;

/// A best-effort write waiting in the Event queue.
#[derive(Debug)]
enum QueuedEvent {
    /// An Event.
    Event {
        regarding: ObjectReference,
        warning: bool,
        reason: String,
        message: String,
    },
    /// A pod's `PodScheduled=False` condition (see [`Writer::mark_unschedulable`]).
    Unschedulable(UnschedulableMark),
}

/// A pod tried and found not to fit, as its cached copy was then.
#[derive(Debug, Clone)]
pub struct UnschedulableMark {
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// The cached pod's resourceVersion: the write is conditional on it, so
    /// a mark that waited in the queue while the pod was bound (which sets
    /// `PodScheduled=True`) fails with a conflict instead of undoing that.
    pub resource_version: String,
    /// Why, in a sentence.
    pub message: String,
    /// The condition's `lastTransitionTime`: kept from the pod's current
    /// `PodScheduled=False` condition, if it has one, else now.
    pub since: String,
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
    /// Where Events are written.
    pub events_sink: Arc<EventSink>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The Event queue, drained by its own task.
    events: mpsc::Sender<QueuedEvent>,
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
        let events_sink = Arc::new(EventSink::new(
            client.clone(),
            "phalanx",
            &settings.identity,
            "Scheduling",
        ));
        let (events, queue) = mpsc::channel(EVENT_QUEUE);
        let w = Self {
            client,
            limiter: Arc::new(RateLimiter::new(settings.qps, settings.burst)),
            bind_slots: Arc::new(Semaphore::new(settings.bind_concurrency)),
            leader,
            alive,
            events_sink,
            metrics,
            events,
        };
        let limiter = RateLimiter::new(settings.event_qps, settings.event_burst);
        tokio::spawn(publish_events(w.publisher(), queue, limiter));
        w
    }

    /// A copy for the Event task: it must not hold the queue's sender, or
    /// the queue would never close.
    fn publisher(&self) -> Publisher {
        Publisher {
            client: self.client.clone(),
            sink: self.events_sink.clone(),
            leader: self.leader.clone(),
            alive: self.alive.clone(),
            metrics: self.metrics.clone(),
        }
    }

    /// Whether this replica may write now (alive and leading).
    pub fn may_write(&self) -> bool {
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

    /// Queues an Event (best effort: when the queue is full it is dropped and
    /// counted, never waited for). Async only so callers may await it.
    pub async fn event(
        &self,
        regarding: ObjectReference,
        warning: bool,
        reason: String,
        message: String,
    ) {
        self.emit(regarding, warning, reason, message);
    }

    /// Queues an Event without waiting (see [`Writer::event`]).
    pub fn emit(&self, regarding: ObjectReference, warning: bool, reason: String, message: String) {
        // Only the leader speaks, so replicas do not report everything twice.
        if !self.may_write() {
            return;
        }
        self.queue(QueuedEvent::Event {
            regarding,
            warning,
            reason,
            message,
        });
    }

    /// Queues a pod's `PodScheduled=False`, reason `Unschedulable` condition,
    /// as kube-scheduler writes it for a pod it tried and could not place
    /// (cluster autoscalers and `kube_pod_status_unschedulable` read it).
    /// Best effort, beside the Events: dropped when the queue is full.
    pub fn mark_unschedulable(&self, mark: UnschedulableMark) {
        if !self.may_write() {
            return;
        }
        self.queue(QueuedEvent::Unschedulable(mark));
    }

    fn queue(&self, note: QueuedEvent) {
        if self.events.try_send(note).is_err() {
            self.metrics.events_dropped.inc();
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

/// What the Event task needs of the writer.
#[derive(Clone)]
struct Publisher {
    client: kube::Client,
    sink: Arc<EventSink>,
    leader: watch::Receiver<bool>,
    alive: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
}

impl Publisher {
    async fn publish(&self, ev: QueuedEvent) {
        // Leadership may have moved while the Event waited in the queue.
        if !(self.alive.load(Ordering::SeqCst) && *self.leader.borrow()) {
            return;
        }
        let (regarding, warning, reason, message) = match ev {
            QueuedEvent::Event {
                regarding,
                warning,
                reason,
                message,
            } => (regarding, warning, reason, message),
            QueuedEvent::Unschedulable(mark) => return self.mark(mark).await,
        };
        match self
            .sink
            .publish(&regarding, warning, &reason, &message)
            .await
        {
            Ok(()) => {
                self.metrics.events_published.inc();
            }
            Err(e) => {
                tracing::debug!(error = %e, object = ?regarding.name, "publishing an event failed")
            }
        };
    }

    async fn mark(&self, m: UnschedulableMark) {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &m.namespace);
        let patch = serde_json::json!({
            "metadata": {"resourceVersion": m.resource_version},
            "status": {"conditions": [{
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": m.message,
                "lastProbeTime": null,
                "lastTransitionTime": m.since,
            }]},
        });
        match api
            .patch_status(&m.name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
        {
            Ok(_) => {}
            // Changed since (bound, most likely) or gone: the mark no longer applies.
            Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => {}
            Err(e) => {
                tracing::debug!(error = %e, pod = %m.name, "marking a pod unschedulable failed")
            }
        }
    }
}

/// Drains the Event queue under its own rate limit, a few Events at a time;
/// ends when every writer is gone.
async fn publish_events(
    p: Publisher,
    mut queue: mpsc::Receiver<QueuedEvent>,
    limiter: RateLimiter,
) {
    let slots = Arc::new(Semaphore::new(EVENT_CONCURRENCY));
    while let Some(ev) = queue.recv().await {
        limiter.acquire().await;
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let p = p.clone();
        tokio::spawn(async move {
            p.publish(ev).await;
            drop(permit);
        });
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
