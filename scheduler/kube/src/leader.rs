//! Leader election on a coordination.k8s.io/v1 Lease. A candidate takes the
//! lease when its holder has not renewed it for `lease_duration` (measured on
//! our own clock from when we last saw it change, so clock skew between
//! replicas does not matter); the leader renews every `retry_period` and stops
//! leading as soon as it could not renew for `renew_deadline`.
//!
//! The election is isolated from the scheduling work, so that binds at full
//! speed cannot make the leader miss its renewals: it runs on a thread and
//! runtime of its own ([`spawn`]), with a client of its own built there
//! ([`LeaseClient::Own`]: its own connections, so binds cannot take its
//! HTTP/2 streams or queue ahead of it, and no write limiter: the binder's
//! `--qps` budget is not its budget). An attempt may take until the renew
//! deadline; a leader renews with one write (the Lease it last wrote), and
//! reads the Lease first only when that write conflicts.

use std::time::Duration;

use futures::future::{AbortHandle, Abortable};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

/// Lease settings.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// Lease name.
    pub name: String,
    /// Lease namespace.
    pub namespace: String,
    /// This candidate's identity.
    pub identity: String,
    /// How long a lease holds without renewal.
    pub lease_duration: Duration,
    /// How long the leader may fail to renew before it steps down.
    pub renew_deadline: Duration,
    /// Time between attempts.
    pub retry_period: Duration,
}

/// What we last saw of the lease.
struct Observed {
    record: Option<(Option<String>, Option<MicroTime>, Option<i32>)>,
    at: Instant,
    /// The Lease as we last wrote it while holding it: the next renewal
    /// writes over it without reading first.
    written: Option<Lease>,
}

fn now_micro() -> MicroTime {
    MicroTime(jiff::Timestamp::now())
}

/// One attempt to take or renew the lease; Ok(true) if we hold it afterwards.
async fn try_acquire(
    api: &Api<Lease>,
    cfg: &LeaseConfig,
    observed: &mut Observed,
) -> Result<bool, kube::Error> {
    let secs = i32::try_from(cfg.lease_duration.as_secs())
        .unwrap_or(i32::MAX)
        .max(1);
    // Renewing what we wrote last: its resourceVersion makes the write a
    // compare-and-swap, so a conflict only means someone else wrote since.
    if let Some(mut mine) = observed.written.take()
        && let Some(spec) = mine.spec.as_mut()
    {
        spec.renew_time = Some(now_micro());
        spec.lease_duration_seconds = Some(secs);
        match api.replace(&cfg.name, &PostParams::default(), &mine).await {
            Ok(written) => {
                observed.written = Some(written);
                return Ok(true);
            }
            Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let current = match api.get_opt(&cfg.name).await? {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(cfg.name.clone()),
                    namespace: Some(cfg.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(cfg.identity.clone()),
                    lease_duration_seconds: Some(secs),
                    acquire_time: Some(now_micro()),
                    renew_time: Some(now_micro()),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match api.create(&PostParams::default(), &lease).await {
                Ok(written) => {
                    observed.written = Some(written);
                    Ok(true)
                }
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        }
        Some(l) => l,
    };
    let spec = current.spec.clone().unwrap_or_default();
    let record = (
        spec.holder_identity.clone(),
        spec.renew_time.clone(),
        spec.lease_transitions,
    );
    if observed.record.as_ref() != Some(&record) {
        observed.record = Some(record);
        observed.at = Instant::now();
    }
    let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
    let mine = holder.as_deref() == Some(cfg.identity.as_str());
    let held_for = spec
        .lease_duration_seconds
        .map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(0)))
        .unwrap_or(cfg.lease_duration);
    if !mine && holder.is_some() && observed.at.elapsed() < held_for {
        return Ok(false);
    }
    let mut next = current;
    let mut s = spec;
    if !mine {
        s.holder_identity = Some(cfg.identity.clone());
        s.acquire_time = Some(now_micro());
        s.lease_transitions = Some(s.lease_transitions.unwrap_or(0) + 1);
    }
    s.renew_time = Some(now_micro());
    s.lease_duration_seconds = Some(secs);
    next.spec = Some(s);
    // The resourceVersion in `next` makes this a compare-and-swap: a 409 means someone else wrote first.
    match api.replace(&cfg.name, &PostParams::default(), &next).await {
        Ok(written) => {
            observed.written = Some(written);
            Ok(true)
        }
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Gives up the lease (holder cleared) so another replica takes over at once.
async fn release(api: &Api<Lease>, cfg: &LeaseConfig) {
    if let Ok(Some(mut l)) = api.get_opt(&cfg.name).await
        && let Some(spec) = l.spec.as_mut()
        && spec.holder_identity.as_deref() == Some(cfg.identity.as_str())
    {
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        if let Err(e) = api.replace(&cfg.name, &PostParams::default(), &l).await {
            tracing::warn!(error = %e, "releasing the lease");
        }
    }
}

/// Where the election gets its API client.
#[derive(Clone)]
pub enum LeaseClient {
    /// A client of its own, built on the election's thread from this config.
    Own(Box<kube::Config>),
    /// A client shared with the rest of the scheduler (its connections and
    /// runtime are shared too).
    Shared(kube::Client),
}

impl std::fmt::Debug for LeaseClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LeaseClient::Own(c) => f.debug_tuple("Own").field(&c.cluster_url).finish(),
            LeaseClient::Shared(_) => f.write_str("Shared"),
        }
    }
}

/// The election running on its own thread (see [`spawn`]).
#[derive(Debug)]
pub struct LeaderTask {
    done: oneshot::Receiver<()>,
    abort: AbortHandle,
}

impl LeaderTask {
    /// Waits up to `timeout` for the election to end (after `stop` turned
    /// true, a leader releases the Lease first); whether it ended.
    pub async fn stopped(self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.done).await.is_ok()
    }

    /// Ends the election at once, as a killed process would: the Lease is
    /// not released.
    pub fn abort(self) {
        self.abort.abort();
    }
}

/// Starts the election on a thread with a runtime of its own, so neither
/// the scheduling loop's CPU nor the binds' connections can delay a renewal.
pub fn spawn(
    client: LeaseClient,
    cfg: LeaseConfig,
    tx: watch::Sender<bool>,
    stop: watch::Receiver<bool>,
) -> std::io::Result<LeaderTask> {
    let (abort, registration) = AbortHandle::new_pair();
    let (done_tx, done) = oneshot::channel();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("phalanx-lease".into())
        .spawn(move || {
            runtime.block_on(async move {
                let client = match client {
                    LeaseClient::Shared(c) => c,
                    // Built here, so its connection tasks live on this runtime.
                    LeaseClient::Own(config) => match kube::Client::try_from(*config) {
                        Ok(c) => c,
                        Err(e) => {
                            tracing::error!(error = %e, "building the lease client; this replica never leads");
                            return;
                        }
                    },
                };
                let _ = Abortable::new(run(client, cfg, tx, stop), registration).await;
            });
            // Connections of the lease client end with the runtime.
            drop(runtime);
            let _ = done_tx.send(());
        })?;
    Ok(LeaderTask { done, abort })
}

/// How long one attempt may take: a leader may go on until its renew
/// deadline (a slow renewal that lands in time still counts), a candidate
/// for one retry period.
fn attempt_timeout(cfg: &LeaseConfig, last_renew: Option<Instant>) -> Duration {
    let floor = Duration::from_millis(100);
    match last_renew {
        Some(t) => (t + cfg.renew_deadline)
            .saturating_duration_since(Instant::now())
            .max(floor),
        None => cfg.retry_period.max(floor),
    }
}

/// Runs the election until `stop` turns true; publishes leadership on `tx`.
pub async fn run(
    client: kube::Client,
    cfg: LeaseConfig,
    tx: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    let mut observed = Observed {
        record: None,
        at: Instant::now(),
        written: None,
    };
    let mut last_renew: Option<Instant> = None;
    loop {
        let started = Instant::now();
        let attempt = tokio::time::timeout(
            attempt_timeout(&cfg, last_renew),
            try_acquire(&api, &cfg, &mut observed),
        )
        .await;
        let held = match attempt {
            Ok(Ok(true)) => {
                // The renewal counts from when it was sent: the API server may
                // have written it any time after that.
                last_renew = Some(started);
                true
            }
            Ok(Ok(false)) => {
                last_renew = None;
                false
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, lease = %cfg.name, "lease request failed");
                observed.written = None;
                last_renew.is_some_and(|t| t.elapsed() < cfg.renew_deadline)
            }
            Err(_) => {
                tracing::warn!(lease = %cfg.name, "lease request timed out");
                observed.written = None;
                last_renew.is_some_and(|t| t.elapsed() < cfg.renew_deadline)
            }
        };
        if !held {
            last_renew = None;
            observed.written = None;
        }
        if *tx.borrow() != held {
            tracing::info!(identity = %cfg.identity, leader = held, "leadership changed");
            let _ = tx.send(held);
        }
        // A leader that cannot renew must stop binding before its lease could expire elsewhere.
        let wait = match last_renew {
            Some(t) => cfg
                .retry_period
                .min((t + cfg.renew_deadline).saturating_duration_since(Instant::now())),
            None => cfg.retry_period,
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => {
                if *tx.borrow() {
                    let _ = tx.send(false);
                    release(&api, &cfg).await;
                }
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> LeaseConfig {
        LeaseConfig {
            name: "phalanx".into(),
            namespace: "kube-system".into(),
            identity: "me".into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    #[test]
    fn a_leader_may_wait_for_a_renewal_until_its_deadline_a_candidate_one_period() {
        let cfg = cfg();
        assert_eq!(attempt_timeout(&cfg, None), Duration::from_secs(2));
        let just_renewed = attempt_timeout(&cfg, Some(Instant::now()));
        assert!(just_renewed > Duration::from_secs(9), "{just_renewed:?}");
        assert!(just_renewed <= Duration::from_secs(10), "{just_renewed:?}");
        // Past the deadline an attempt still gets a moment, never zero.
        let late = Instant::now().checked_sub(Duration::from_secs(20));
        if let Some(late) = late {
            assert_eq!(
                attempt_timeout(&cfg, Some(late)),
                Duration::from_millis(100)
            );
        }
    }
}
