//! Publishing `events.k8s.io/v1` Events, counted in series.
//!
//! client-go's event broadcaster (and kube-rs's `Recorder`, which follows
//! it) folds every Event with the same regarding object, type, reason and
//! action into one series, whatever its note says: the second
//! `FailedScheduling` of a pod only raises the count of the first, which
//! keeps the first note. A waiting pod's reason changes as the cluster does
//! (its PodGroup appears, then its sibling groups, then capacity), so
//! `kubectl describe` would keep showing a reason that no longer holds.
//! Here the note is part of the series key: an Event that says the same
//! thing again raises its count, and one that says something new is a new
//! Event.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use tokio::time::Instant;

use crate::text::prefix;

/// How long a series stays open after its last Event (client-go's is 6 minutes).
pub const SERIES_TTL: Duration = Duration::from_secs(6 * 60);

/// Open series kept at most; the oldest is closed first beyond it.
pub const SERIES_CAP: usize = 4096;

/// The longest `reportingInstance` written, in bytes (the API server's limit).
const REPORTING_INSTANCE_MAX_BYTES: usize = 128;

/// The longest note written, in bytes (the API server refuses more than 1024).
const NOTE_MAX_BYTES: usize = 1024;

/// What makes two Events one series.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SeriesKey {
    kind: String,
    namespace: String,
    name: String,
    uid: String,
    warning: bool,
    reason: String,
    note: String,
}

/// The Event object a series writes to, and how often it was seen.
#[derive(Debug, Clone)]
struct Open {
    namespace: String,
    name: String,
    count: i32,
    last: Instant,
}

/// Publishes Events for one reporting controller and instance.
pub struct EventSink {
    client: kube::Client,
    controller: String,
    instance: String,
    action: String,
    series: Mutex<HashMap<SeriesKey, Open>>,
    /// Tells apart Events created in the same nanosecond.
    sequence: AtomicU64,
}

/// What to do for one Event, decided under the lock.
enum Step {
    Create(Box<Event>),
    Count {
        namespace: String,
        name: String,
        series: EventSeries,
    },
}

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSink")
            .field("controller", &self.controller)
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl EventSink {
    /// A sink writing Events as `controller` (instance `instance`), all with `action`.
    pub fn new(client: kube::Client, controller: &str, instance: &str, action: &str) -> Self {
        Self {
            client,
            controller: controller.into(),
            // The API server refuses a reportingInstance over 128 bytes (a
            // long pod name plus the identity's suffix can reach that).
            instance: prefix(instance, REPORTING_INSTANCE_MAX_BYTES).to_string(),
            action: action.into(),
            series: Mutex::new(HashMap::new()),
            sequence: AtomicU64::new(0),
        }
    }

    /// Publishes one Event about `regarding`: a new Event, or the next count
    /// of an open series that said exactly this.
    pub async fn publish(
        &self,
        regarding: &ObjectReference,
        warning: bool,
        reason: &str,
        note: &str,
    ) -> Result<(), kube::Error> {
        let note = prefix(note, NOTE_MAX_BYTES).to_string();
        let key = SeriesKey {
            kind: regarding.kind.clone().unwrap_or_default(),
            namespace: regarding.namespace.clone().unwrap_or_default(),
            name: regarding.name.clone().unwrap_or_default(),
            uid: regarding.uid.clone().unwrap_or_default(),
            warning,
            reason: reason.into(),
            note,
        };
        let step = self.step(&key, regarding);
        match step {
            Step::Count {
                namespace,
                name,
                series,
            } => {
                let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
                let patch = serde_json::json!({ "series": series });
                match api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(_) => Ok(()),
                    // The Event expired (or was deleted) under an open series: start anew.
                    Err(kube::Error::Api(e)) if e.code == 404 => {
                        self.close(&key);
                        let Step::Create(event) = self.step(&key, regarding) else {
                            return Ok(());
                        };
                        self.create(&key, &event).await
                    }
                    Err(e) => Err(e),
                }
            }
            Step::Create(event) => self.create(&key, &event).await,
        }
    }

    /// Open series now (for tests and metrics).
    pub fn open_series(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SeriesKey, Open>> {
        // A panic elsewhere cannot leave the map half-written: every change is one insert or remove.
        self.series.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts the Event into its open series, or opens one (the create follows).
    fn step(&self, key: &SeriesKey, regarding: &ObjectReference) -> Step {
        let now = Instant::now();
        let mut series = self.lock();
        series.retain(|_, o| now.saturating_duration_since(o.last) < SERIES_TTL);
        if let Some(open) = series.get_mut(key) {
            open.count = open.count.saturating_add(1);
            open.last = now;
            return Step::Count {
                namespace: open.namespace.clone(),
                name: open.name.clone(),
                series: EventSeries {
                    count: open.count,
                    last_observed_time: MicroTime(Timestamp::now()),
                },
            };
        }
        if series.len() >= SERIES_CAP
            && let Some(oldest) = series
                .iter()
                .min_by_key(|(_, o)| o.last)
                .map(|(k, _)| k.clone())
        {
            series.remove(&oldest);
        }
        let event = self.event(key, regarding);
        series.insert(
            key.clone(),
            Open {
                namespace: event.metadata.namespace.clone().unwrap_or_default(),
                name: event.metadata.name.clone().unwrap_or_default(),
                count: 1,
                last: now,
            },
        );
        Step::Create(Box::new(event))
    }

    fn close(&self, key: &SeriesKey) {
        self.lock().remove(key);
    }

    async fn create(&self, key: &SeriesKey, event: &Event) -> Result<(), kube::Error> {
        let namespace = event.metadata.namespace.clone().unwrap_or_default();
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        match api.create(&PostParams::default(), event).await {
            Ok(_) => Ok(()),
            Err(e) => {
                // Not written: the next Event that says this opens its series again.
                self.close(key);
                Err(e)
            }
        }
    }

    /// A new Event object, named as client-go names them (`<object>.<hex time>`).
    fn event(&self, key: &SeriesKey, regarding: &ObjectReference) -> Event {
        let now = Timestamp::now();
        let nanos = u64::try_from(now.as_nanosecond()).unwrap_or_default();
        let unique = nanos.wrapping_add(self.sequence.fetch_add(1, Ordering::Relaxed));
        let namespace = if key.namespace.is_empty() {
            "default".to_string()
        } else {
            key.namespace.clone()
        };
        // Names are DNS subdomains of at most 253 characters; the suffix takes up to 17.
        let object = match prefix(&key.name, 236) {
            "" => self.controller.as_str(),
            name => name.trim_end_matches(['.', '-']),
        };
        Event {
            metadata: ObjectMeta {
                name: Some(format!("{object}.{unique:x}")),
                namespace: Some(namespace),
                ..Default::default()
            },
            action: Some(self.action.clone()),
            event_time: Some(MicroTime(now)),
            note: Some(key.note.clone()),
            reason: Some(key.reason.clone()),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            type_: Some(if key.warning { "Warning" } else { "Normal" }.into()),
            ..Default::default()
        }
    }
}
