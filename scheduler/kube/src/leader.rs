//! Leader election on a coordination.k8s.io/v1 Lease. A candidate takes the
//! lease when its holder has not renewed it for `lease_duration` (measured on
//! our own clock from when we last saw it change, so clock skew between
//! replicas does not matter); the leader renews every `retry_period` and stops
//! leading as soon as it could not renew for `renew_deadline`.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;
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
                Ok(_) => Ok(true),
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
        Ok(_) => Ok(true),
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
    };
    let mut last_renew: Option<Instant> = None;
    loop {
        let attempt = tokio::time::timeout(
            cfg.retry_period.max(Duration::from_millis(100)),
            try_acquire(&api, &cfg, &mut observed),
        )
        .await;
        let held = match attempt {
            Ok(Ok(true)) => {
                last_renew = Some(Instant::now());
                true
            }
            Ok(Ok(false)) => {
                last_renew = None;
                false
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, lease = %cfg.name, "lease request failed");
                last_renew.is_some_and(|t| t.elapsed() < cfg.renew_deadline)
            }
            Err(_) => {
                tracing::warn!(lease = %cfg.name, "lease request timed out");
                last_renew.is_some_and(|t| t.elapsed() < cfg.renew_deadline)
            }
        };
        if !held {
            last_renew = None;
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
