//! Test harness: real servers on ephemeral loopback ports or Unix sockets.
#![allow(dead_code, missing_docs)]

use std::sync::Arc;

use fluxion_core::generate::{ClusterShape, cluster};
use phalanx_grpc::{
    ClientTls, Listener, OwnerBackend, ServerConfig, StandaloneEngine, serve_with_config,
};
use phalanx_proto::v1 as pb;
use phalanx_proto::v1::fluxion_client::FluxionClient;
use tokio::sync::oneshot;
use tonic::transport::Channel;

/// A small graph: 4 nodes in racks of 2; per node 2 sockets x 4 cores, 1 GPU
/// and 16 GB memory per socket.
pub fn small_shape() -> ClusterShape {
    ClusterShape {
        nodes: 4,
        nodes_per_rack: 2,
        sockets: 2,
        cores_per_socket: 4,
        gpus_per_socket: 1,
        memory_gib_per_socket: 16,
        per_node_ids: false,
    }
}

pub fn engine(shape: &ClusterShape) -> StandaloneEngine {
    let graph = cluster(shape).expect("generated graph");
    StandaloneEngine::new(graph, "first").expect("engine")
}

pub struct TestServer {
    pub addr: String,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<Result<(), phalanx_grpc::ServeError>>>,
    _dir: Option<tempfile::TempDir>,
}

impl TestServer {
    pub async fn start(engine: StandaloneEngine, config: ServerConfig) -> Self {
        let listener = Listener::bind("127.0.0.1:0").await.expect("bind");
        Self::start_on(listener, engine, config, None).await
    }

    pub async fn start_unix(engine: StandaloneEngine) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = format!("unix:{}", dir.path().join("phalanx.sock").display());
        let listener = Listener::bind(&spec).await.expect("bind unix");
        Self::start_on(listener, engine, ServerConfig::default(), Some(dir)).await
    }

    async fn start_on(
        listener: Listener,
        engine: StandaloneEngine,
        config: ServerConfig,
        dir: Option<tempfile::TempDir>,
    ) -> Self {
        let addr = listener.local_addr();
        let backend = Arc::new(OwnerBackend::spawn(engine).expect("owner"));
        let (stop, stopped) = oneshot::channel();
        let handle = tokio::spawn(serve_with_config(listener, backend, config, async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            stop: Some(stop),
            handle: Some(handle),
            _dir: dir,
        }
    }

    pub async fn client(&self) -> FluxionClient<Channel> {
        self.client_tls(None).await.expect("connect")
    }

    pub async fn client_tls(
        &self,
        tls: Option<&ClientTls>,
    ) -> Result<FluxionClient<Channel>, phalanx_grpc::ConnectError> {
        phalanx_grpc::connect(&self.addr, tls).await
    }

    /// Sends the shutdown signal without waiting.
    pub fn trigger_stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }

    /// Stops the server and waits for it to drain.
    pub async fn stop(mut self) {
        self.trigger_stop();
        if let Some(h) = self.handle.take() {
            h.await.expect("server task").expect("server result");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

pub fn pods(count: u32, cpu_millis: u64, gpus: u32) -> pb::MatchRequest {
    pb::MatchRequest {
        request: Some(pb::match_request::Request::Pods(pb::PodGroup {
            templates: vec![pb::PodTemplate {
                name: "worker".into(),
                count,
                cpu_millis,
                gpus,
                ..Default::default()
            }],
        })),
        operation: pb::Operation::Allocate as i32,
        ..Default::default()
    }
}

pub fn jobspec(text: &str) -> pb::MatchRequest {
    pb::MatchRequest {
        request: Some(pb::match_request::Request::Jobspec(text.into())),
        operation: pb::Operation::Allocate as i32,
        ..Default::default()
    }
}

/// Sum of allocated units of `ty` over all nodes.
pub async fn allocated(client: &mut FluxionClient<Channel>, ty: &str) -> u64 {
    let r = client
        .resources(pb::ResourcesRequest::default())
        .await
        .expect("resources")
        .into_inner();
    r.totals
        .iter()
        .filter(|t| t.r#type == ty)
        .map(|t| t.allocated)
        .sum()
}
