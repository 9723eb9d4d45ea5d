//! Running the service: listeners (TCP or Unix socket), TLS, health,
//! reflection, request-size limits and graceful shutdown.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use phalanx_proto::v1::fluxion_server::FluxionServer;
use tonic::codegen::http;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use crate::backend::Backend;
use crate::service::{FluxionService, Limits};

/// Errors starting or running the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Binding or inspecting the listening socket failed.
    #[error("listen on {addr}: {message}")]
    Listen {
        /// The address as given.
        addr: String,
        /// The I/O error, as text (each cause once).
        message: String,
    },
    /// The TLS material was rejected (each cause once).
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// The reflection service could not load the descriptor set.
    #[error("reflection service: {0}")]
    Reflection(String),
    /// The HTTP/2 server failed (each cause once).
    #[error("gRPC server: {0}")]
    Transport(String),
}

impl From<tonic_reflection::server::Error> for ServeError {
    fn from(e: tonic_reflection::server::Error) -> Self {
        Self::Reflection(crate::client::error_chain(&e))
    }
}

fn tls_error(e: tonic::transport::Error) -> ServeError {
    ServeError::Tls(crate::client::error_chain(&e))
}

/// A bound listening socket.
#[derive(Debug)]
pub enum Listener {
    /// A TCP socket.
    Tcp(tokio::net::TcpListener),
    /// A Unix-domain socket and its path (removed at shutdown).
    Unix(tokio::net::UnixListener, PathBuf),
}

impl Listener {
    /// Binds `spec`: `unix:PATH` or a socket address such as `127.0.0.1:4242`.
    pub async fn bind(spec: &str) -> Result<Self, ServeError> {
        let listen_err = |source: std::io::Error| ServeError::Listen {
            addr: spec.to_owned(),
            message: crate::client::error_chain(&source),
        };
        if let Some(path) = spec.strip_prefix("unix:") {
            let path = PathBuf::from(path);
            remove_stale_socket(&path).await;
            let l = tokio::net::UnixListener::bind(&path).map_err(listen_err)?;
            Ok(Self::Unix(l, path))
        } else {
            let l = tokio::net::TcpListener::bind(spec)
                .await
                .map_err(listen_err)?;
            Ok(Self::Tcp(l))
        }
    }

    /// The address clients dial: `127.0.0.1:PORT` or `unix:PATH`.
    pub fn local_addr(&self) -> String {
        match self {
            Self::Tcp(l) => l
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|e| format!("<unknown: {e}>")),
            Self::Unix(_, p) => format!("unix:{}", p.display()),
        }
    }
}

/// A socket file left by a server that died is removed; a live one is not.
async fn remove_stale_socket(path: &std::path::Path) {
    use std::os::unix::fs::FileTypeExt;
    let Ok(meta) = tokio::fs::symlink_metadata(path).await else {
        return;
    };
    if meta.file_type().is_socket() && tokio::net::UnixStream::connect(path).await.is_err() {
        let _ = tokio::fs::remove_file(path).await;
    }
}

/// PEM material for TLS.
#[derive(Debug, Clone, Default)]
pub struct TlsPem {
    /// Server certificate chain.
    pub cert: Vec<u8>,
    /// Server private key.
    pub key: Vec<u8>,
    /// CA that client certificates must chain to; `None` accepts any client.
    pub client_ca: Option<Vec<u8>>,
}

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// TLS, or plaintext when `None`.
    pub tls: Option<TlsPem>,
    /// Largest encoded request accepted; bigger ones get RESOURCE_EXHAUSTED.
    pub max_request_bytes: usize,
    /// Checks applied before the backend sees a request.
    pub limits: Limits,
    /// After the shutdown signal, how long in-flight calls and open streams
    /// (health watches, say) may take before their connections are closed.
    pub drain_timeout: std::time::Duration,
    /// Health turns NOT_SERVING while the backend has not answered a ping
    /// for this long (a graph owner stuck on one request), and SERVING
    /// again once it answers.
    pub stall_after: std::time::Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            tls: None,
            max_request_bytes: 4 << 20,
            limits: Limits::default(),
            drain_timeout: std::time::Duration::from_secs(5),
            stall_after: std::time::Duration::from_secs(5),
        }
    }
}

/// Serves `backend` on `listener` with default settings until `shutdown`
/// completes; see [`serve_with_config`].
pub async fn serve_with<B, F>(
    listener: Listener,
    backend: Arc<B>,
    shutdown: F,
) -> Result<(), ServeError>
where
    B: Backend,
    F: Future<Output = ()> + Send,
{
    serve_with_config(listener, backend, ServerConfig::default(), shutdown).await
}

/// Serves the `Fluxion` service over `backend`, plus `grpc.health.v1.Health`
/// and server reflection (v1 and v1alpha), on `listener` until `shutdown`
/// completes. At shutdown the health status turns NOT_SERVING, new
/// connections are refused and in-flight calls finish.
pub async fn serve_with_config<B, F>(
    listener: Listener,
    backend: Arc<B>,
    config: ServerConfig,
    shutdown: F,
) -> Result<(), ServeError>
where
    B: Backend,
    F: Future<Output = ()> + Send,
{
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<FluxionServer<FluxionService<B>>>()
        .await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(phalanx_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(phalanx_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let fluxion = FluxionServer::new(FluxionService::new(backend.clone(), config.limits))
        .max_decoding_message_size(config.max_request_bytes);

    let mut builder = Server::builder();
    if let Some(tls) = &config.tls {
        builder = builder.tls_config(tls_config(tls)).map_err(tls_error)?;
    }
    let watchdog = tokio::spawn(watch_owner(
        backend.clone(),
        health.clone(),
        config.stall_after,
    ));
    let router = builder
        .layer(tower::util::MapResponseLayer::new(
            too_large_is_resource_exhausted as fn(_) -> _,
        ))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(fluxion);

    let (fired, fired_rx) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        let _ = fired.send(());
        tracing::info!("shutting down: draining in-flight calls");
        // Stopped first, so it cannot mark the service SERVING again.
        watchdog.abort();
        health
            .set_not_serving::<FluxionServer<FluxionService<B>>>()
            .await;
        health
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
    };
    // Graceful shutdown waits for every connection to close, and a client
    // holding a stream open (a health watch) would hold it forever: after
    // the signal, allow `drain_timeout`, then drop what is left.
    let drain = config.drain_timeout;
    let drain_deadline = async move {
        if fired_rx.await.is_ok() {
            tokio::time::sleep(drain).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let (serving, socket_path) = match listener {
        Listener::Tcp(l) => {
            if let Ok(addr) = l.local_addr() {
                tracing::info!(%addr, "serving");
            }
            let incoming = TcpIncoming::from(l).with_nodelay(Some(true));
            let fut: std::pin::Pin<
                Box<dyn Future<Output = Result<(), tonic::transport::Error>> + Send>,
            > = Box::pin(router.serve_with_incoming_shutdown(incoming, signal));
            (fut, None)
        }
        Listener::Unix(l, path) => {
            tracing::info!(path = %path.display(), "serving");
            let incoming = tokio_stream::wrappers::UnixListenerStream::new(l);
            let fut: std::pin::Pin<
                Box<dyn Future<Output = Result<(), tonic::transport::Error>> + Send>,
            > = Box::pin(router.serve_with_incoming_shutdown(incoming, signal));
            (fut, Some(path))
        }
    };
    let result = tokio::select! {
        r = serving => r.map_err(|e| ServeError::Transport(crate::client::error_chain(&e))),
        () = drain_deadline => {
            tracing::warn!(?drain, "drain timeout: closing the remaining connections");
            Ok(())
        }
    };
    if let Some(path) = socket_path {
        let _ = tokio::fs::remove_file(&path).await;
    }
    result
}

fn tls_config(tls: &TlsPem) -> ServerTlsConfig {
    let mut config = ServerTlsConfig::new().identity(Identity::from_pem(&tls.cert, &tls.key));
    if let Some(ca) = &tls.client_ca {
        config = config.client_ca_root(Certificate::from_pem(ca));
    }
    config
}

/// Checks TLS material the way the server will load it, so a bad key or
/// certificate stops `serve` before it binds or announces anything.
pub fn check_tls(tls: &TlsPem) -> Result<(), ServeError> {
    Server::builder()
        .tls_config(tls_config(tls))
        .map(|_| ())
        .map_err(tls_error)
}

/// Pings the backend forever; health follows whether it answers within
/// `stall_after`. A ping that times out is abandoned (the owner skips a
/// read whose caller has gone) and the next one waits again.
async fn watch_owner<B: Backend>(
    backend: Arc<B>,
    health: tonic_health::server::HealthReporter,
    stall_after: std::time::Duration,
) {
    let period = (stall_after / 4).clamp(
        std::time::Duration::from_millis(10),
        std::time::Duration::from_secs(1),
    );
    let mut serving = true;
    loop {
        let answered = matches!(
            tokio::time::timeout(stall_after, backend.ping()).await,
            Ok(Ok(()))
        );
        if answered != serving {
            serving = answered;
            // The server as a whole ("") is only as healthy as its owner.
            let status = if serving {
                tracing::info!("the graph owner answers again: SERVING");
                tonic_health::ServingStatus::Serving
            } else {
                tracing::warn!(
                    ?stall_after,
                    "the graph owner has not answered: NOT_SERVING"
                );
                tonic_health::ServingStatus::NotServing
            };
            health.set_service_status("", status).await;
            health
                .set_service_status(
                    <FluxionServer<FluxionService<B>> as tonic::server::NamedService>::NAME,
                    status,
                )
                .await;
        }
        tokio::time::sleep(period).await;
    }
}

/// tonic reports a request over the decoding limit as OUT_OF_RANGE; the
/// gRPC convention (and our API contract) is RESOURCE_EXHAUSTED. Only that
/// one message is rewritten; other OUT_OF_RANGE statuses pass unchanged.
fn too_large_is_resource_exhausted(
    mut resp: http::Response<tonic::body::Body>,
) -> http::Response<tonic::body::Body> {
    let headers = resp.headers_mut();
    let is_out_of_range = headers
        .get("grpc-status")
        .is_some_and(|v| v.as_bytes() == b"11");
    let is_too_large = headers.get("grpc-message").is_some_and(|m| {
        let m = m.as_bytes();
        m.windows(b"too large".len()).any(|w| w == b"too large")
            || m.windows(b"too%20large".len()).any(|w| w == b"too%20large")
    });
    if is_out_of_range && is_too_large {
        headers.insert("grpc-status", http::HeaderValue::from_static("8"));
    }
    resp
}
