//! `phalanx run`: the Kubernetes secondary scheduler around the gang core.
//!
//! Watches Nodes, Pods, PodGroups, Jobs, StatefulSets (and, where the server
//! serves them, NodeResourceTopology, native `scheduling.k8s.io` PodGroups and
//! Workloads, JobSets, MPIJobs, MiniClusters and Volcano PodGroups), feeds the pure gang core, and carries out its decisions:
//! binds through pods/binding, Events, PodGroup status. Only the Lease holder binds.
#![forbid(unsafe_code)]

pub mod args;
pub mod binder;
pub mod budget;
pub mod cluster;
pub mod convert;
pub mod crd;
pub mod events;
pub mod groups;
pub mod health;
pub mod leader;
pub mod metrics;
pub mod preempt;
pub use phalanx_gang::quantity;
pub mod rbac;
pub mod scheduler;
pub mod status_api;
mod text;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1 as core;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

pub use args::{RunArgs, Settings};
pub use crd::{PodGroup, PodGroupSpec, PodGroupStatus};
pub use rbac::RBAC_RULES;

use scheduler::{Input, Loop, Status};

/// A running scheduler started with [`start`].
#[derive(Debug)]
pub struct SchedulerHandle {
    metrics_addr: SocketAddr,
    status: Arc<Status>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    leader_task: Option<leader::LeaderTask>,
    identity: String,
    grpc_addr: Option<String>,
}

impl SchedulerHandle {
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    /// Where the gRPC API (`phalanx status`) is served, if it is.
    pub fn grpc_addr(&self) -> Option<&str> {
        self.grpc_addr.as_deref()
    }

    /// Whether this replica holds the lease now.
    pub fn is_leader(&self) -> bool {
        self.status.leader.load(Ordering::SeqCst)
    }

    /// Whether every watched kind has been listed.
    pub fn is_ready(&self) -> bool {
        self.status.ready.load(Ordering::SeqCst)
    }

    /// Scheduling passes run so far.
    pub fn passes(&self) -> usize {
        self.status.passes.load(Ordering::Relaxed)
    }

    /// This replica's lease identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Stops gracefully: no new writes, the lease is released, tasks end.
    pub async fn shutdown(mut self) {
        self.status.alive.store(false, Ordering::SeqCst);
        let _ = self.stop.send(true);
        // Watches never end by themselves; only the lease release is worth waiting for.
        if let Some(leader) = self.leader_task.take() {
            leader.stopped(std::time::Duration::from_secs(5)).await;
        }
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }

    /// Stops abruptly, as a killed process would: nothing is released or cleaned up.
    pub fn kill(mut self) {
        self.status.alive.store(false, Ordering::SeqCst);
        if let Some(leader) = self.leader_task.take() {
            leader.abort();
        }
        self.tasks.abort_all();
    }
}

fn spawn_watch<K>(
    tasks: &mut JoinSet<()>,
    api: Api<K>,
    cfg: watcher::Config,
    tx: mpsc::Sender<Input>,
    wrap: fn(watcher::Event<K>) -> Input,
) where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    tasks.spawn(async move {
        // The watcher re-lists by itself on 410 Gone; errors are logged and retried with backoff.
        let mut stream = watcher(api, cfg).default_backoff().boxed();
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(ev) => {
                    if tx.send(wrap(ev)).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(kind = std::any::type_name::<K>(), error = %e, "watch error")
                }
            }
        }
    });
}

/// The server's API groups and their versions (empty if discovery fails).
async fn served_groups(client: &kube::Client) -> Vec<(String, Vec<String>)> {
    match client.list_api_groups().await {
        Ok(groups) => groups
            .groups
            .into_iter()
            .map(|g| (g.name, g.versions.into_iter().map(|v| v.version).collect()))
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "API discovery failed; optional kinds (NodeResourceTopology, native PodGroups, JobSet, MPIJob, MiniCluster, Volcano) are not watched");
            Vec::new()
        }
    }
}

/// The resources of every group-version that may hold a watched group
/// kind (a version that fails to list counts as serving none of them).
async fn served_resources(
    client: &kube::Client,
    served: &[(String, Vec<String>)],
) -> groups::Discovery {
    let gvs: std::collections::BTreeSet<String> = groups::Kind::ALL
        .iter()
        .flat_map(|k| k.candidates(served))
        .collect();
    let mut d = groups::Discovery::default();
    for gv in gvs {
        match client.list_api_group_resources(&gv).await {
            Ok(list) => d.add(&gv, list.resources.iter().map(|r| r.name.as_str())),
            Err(e) => tracing::warn!(group_version = %gv, error = %e, "API discovery failed"),
        }
    }
    d
}

fn nrt_installed(served: &[(String, Vec<String>)]) -> bool {
    served
        .iter()
        .any(|(g, vs)| g == "topology.node.k8s.io" && vs.iter().any(|v| v == "v1alpha2"))
}

/// Builds the API client from the settings (kubeconfig file, or in-cluster/default).
pub async fn client_for(settings: &Settings) -> anyhow::Result<kube::Client> {
    let config = config_for(settings).await?;
    kube::Client::try_from(config).context("building the Kubernetes client")
}

/// The API client configuration from the settings (kubeconfig file, or in-cluster/default).
pub async fn config_for(settings: &Settings) -> anyhow::Result<kube::Config> {
    Ok(match &settings.kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .with_context(|| format!("loading kubeconfig {}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .context("finding Kubernetes credentials (in-cluster or $KUBECONFIG)")?,
    })
}

/// Starts the scheduler: watches, the loop, leader election, metrics/health.
/// With `client` None the client comes from the settings, and leader
/// election gets a client of its own from the same configuration; a given
/// client is shared with leader election (see [`start_with_lease_config`]).
pub async fn start(
    settings: Settings,
    client: Option<kube::Client>,
) -> anyhow::Result<SchedulerHandle> {
    match client {
        Some(c) => start_inner(settings, c.clone(), leader::LeaseClient::Shared(c)).await,
        None => {
            let config = config_for(&settings).await?;
            let client =
                kube::Client::try_from(config.clone()).context("building the Kubernetes client")?;
            start_inner(settings, client, leader::LeaseClient::Own(Box::new(config))).await
        }
    }
}

/// Starts the scheduler with `client`, and leader election with a client of
/// its own built from `lease_config`.
pub async fn start_with_lease_config(
    settings: Settings,
    client: kube::Client,
    lease_config: kube::Config,
) -> anyhow::Result<SchedulerHandle> {
    start_inner(
        settings,
        client,
        leader::LeaseClient::Own(Box::new(lease_config)),
    )
    .await
}

async fn start_inner(
    settings: Settings,
    client: kube::Client,
    lease_client: leader::LeaseClient,
) -> anyhow::Result<SchedulerHandle> {
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Arc::new(metrics::Metrics::new(&mut registry));
    let status = Arc::new(Status {
        alive: Arc::new(AtomicBool::new(true)),
        ..Default::default()
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let (leader_tx, leader_rx) = watch::channel(!settings.leader_elect);
    let (tx, rx) = mpsc::channel::<Input>(65536);
    let mut tasks = JoinSet::new();

    let listener = tokio::net::TcpListener::bind(settings.metrics_addr)
        .await
        .with_context(|| format!("listening for metrics on {}", settings.metrics_addr))?;
    let metrics_addr = listener.local_addr()?;
    tasks.spawn(health::serve(
        listener,
        Arc::new(registry),
        status.clone(),
        stop_rx.clone(),
    ));

    let served = served_groups(&client).await;
    let nrt = nrt_installed(&served);
    // Group kinds are watched in the newest version the server serves them in, and only there.
    let discovery = served_resources(&client, &served).await;
    let group_kinds: std::collections::BTreeMap<groups::Kind, &'static str> = groups::Kind::ALL
        .iter()
        .filter_map(|k| k.served_version(&discovery).map(|v| (*k, v)))
        .collect();
    tracing::info!(kinds = ?group_kinds, "group kinds served");
    let writer = binder::Writer::new(
        client.clone(),
        &settings,
        leader_rx.clone(),
        status.alive.clone(),
        metrics.clone(),
    );
    let mut lp = Loop::new(
        settings.clone(),
        tx.clone(),
        writer,
        metrics.clone(),
        status.clone(),
        nrt,
    );
    lp.set_served(group_kinds.clone());
    let (query_tx, query_rx) = mpsc::channel(64);
    let mut grpc_addr = None;
    if let Some(addr) = &settings.grpc_addr {
        let listener = phalanx_grpc::Listener::bind(addr)
            .await
            .with_context(|| format!("listening for gRPC on {addr}"))?;
        grpc_addr = Some(listener.local_addr());
        let backend = Arc::new(status_api::LiveBackend::new(query_tx));
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            let shutdown = async move {
                let _ = stop.changed().await;
            };
            if let Err(e) = phalanx_grpc::serve_with(listener, backend, shutdown).await {
                tracing::error!(error = %e, "gRPC server failed");
            }
        });
    } else {
        drop(query_tx);
    }
    tasks.spawn(lp.run(rx, query_rx, stop_rx.clone()));

    // Ended pods are watched too: they hold nothing, but PodGroup status counts them.
    let pod_cfg = watcher::Config::default();
    spawn_watch(
        &mut tasks,
        Api::<core::Node>::all(client.clone()),
        watcher::Config::default(),
        tx.clone(),
        Input::Node,
    );
    spawn_watch(
        &mut tasks,
        Api::<groups::native::PodObject>::all(client.clone()),
        pod_cfg,
        tx.clone(),
        Input::Pod,
    );
    let pg_resource = ApiResource::erase::<PodGroup>(&());
    spawn_watch(
        &mut tasks,
        Api::<DynamicObject>::all_with(client.clone(), &pg_resource),
        watcher::Config::default(),
        tx.clone(),
        Input::PodGroup,
    );
    spawn_watch(
        &mut tasks,
        Api::<Job>::all(client.clone()),
        watcher::Config::default(),
        tx.clone(),
        Input::Job,
    );
    spawn_watch(
        &mut tasks,
        Api::<StatefulSet>::all(client.clone()),
        watcher::Config::default(),
        tx.clone(),
        Input::StatefulSet,
    );
    spawn_watch(
        &mut tasks,
        Api::<k8s_openapi::api::policy::v1::PodDisruptionBudget>::all(client.clone()),
        watcher::Config::default(),
        tx.clone(),
        Input::Budget,
    );
    for (kind, version) in &group_kinds {
        let kind = *kind;
        let resource = kind.resource(version);
        let tx = tx.clone();
        let api = Api::<DynamicObject>::all_with(client.clone(), &resource);
        tasks.spawn(async move {
            let mut stream = watcher(api, watcher::Config::default())
                .default_backoff()
                .boxed();
            while let Some(ev) = stream.next().await {
                match ev {
                    Ok(ev) => {
                        if tx.send(Input::GroupObject(kind, ev)).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => tracing::warn!(kind = kind.name(), error = %e, "watch error"),
                }
            }
        });
    }
    if nrt {
        spawn_watch(
            &mut tasks,
            Api::<crd::NodeResourceTopology>::all(client.clone()),
            watcher::Config::default(),
            tx.clone(),
            Input::Nrt,
        );
    }

    // Leadership: forward changes into the loop; the binder reads the watch directly.
    let mut leader_task = None;
    if settings.leader_elect {
        let cfg = leader::LeaseConfig {
            name: settings.lease_name.clone(),
            namespace: settings.lease_namespace.clone(),
            identity: settings.identity.clone(),
            lease_duration: settings.lease_duration,
            renew_deadline: settings.renew_deadline,
            retry_period: settings.retry_period,
        };
        leader_task = Some(
            leader::spawn(lease_client, cfg, leader_tx, stop_rx.clone())
                .context("starting the leader election thread")?,
        );
    }
    let mut leader_watch = leader_rx;
    let tx_leader = tx.clone();
    tasks.spawn(async move {
        let first = *leader_watch.borrow_and_update();
        if tx_leader.send(Input::Leader(first)).await.is_err() {
            return;
        }
        while leader_watch.changed().await.is_ok() {
            let now = *leader_watch.borrow_and_update();
            if tx_leader.send(Input::Leader(now)).await.is_err() {
                return;
            }
        }
    });
    tracing::info!(identity = %settings.identity, names = ?settings.scheduler_names, %metrics_addr, "phalanx scheduler started");
    Ok(SchedulerHandle {
        metrics_addr,
        status,
        stop: stop_tx,
        tasks,
        leader_task,
        identity: settings.identity,
        grpc_addr,
    })
}

/// Runs the scheduler until SIGTERM or Ctrl-C.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let settings = Settings::resolve(&args)?;
    let handle = start(settings, None).await?;
    shutdown_signal().await;
    tracing::info!("shutting down");
    handle.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
