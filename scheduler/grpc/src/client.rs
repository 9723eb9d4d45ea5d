//! Dialing a Phalanx server over TCP (plain or TLS) or a Unix socket.

use std::path::PathBuf;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use phalanx_proto::v1::fluxion_client::FluxionClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity, Uri};

/// Largest response the client accepts (resource tables of big graphs).
const MAX_RESPONSE_BYTES: usize = 256 << 20;

/// Errors dialing a server.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The address is not `HOST:PORT`, `http(s)://HOST:PORT` or `unix:PATH`.
    #[error("bad address {addr:?}: {message}")]
    BadAddress {
        /// The address as given.
        addr: String,
        /// What is wrong with it.
        message: String,
    },
    /// The connection (or TLS handshake) failed.
    #[error("connect to {addr}: {message}")]
    Connect {
        /// The address as given.
        addr: String,
        /// What failed: each cause of the transport error once.
        message: String,
    },
    /// Something answers at the address, but not HTTP/2 (an HTTP/1 server,
    /// say), so not a gRPC server.
    #[error("not a gRPC server at {addr} ({message})")]
    NotGrpc {
        /// The address as given.
        addr: String,
        /// What the HTTP/2 handshake said.
        message: String,
    },
    /// No connection within the connect timeout (a server that accepts but
    /// never answers, or a silent network).
    #[error("connect to {addr}: no answer within {timeout:?}")]
    Timeout {
        /// The address as given.
        addr: String,
        /// The connect timeout.
        timeout: Duration,
    },
}

/// Every cause in `err`'s chain once, joined by ": ". Transport errors
/// repeat their cause in their own text and wrap it again as a source, and
/// tonic's bare "transport error" says nothing: both are left out.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        let text = e.to_string();
        let noise = text.is_empty() || text == "transport error";
        let repeated = parts.iter().any(|p| p.contains(&text));
        if !noise && !repeated {
            parts.push(text);
        }
        cur = e.source();
    }
    if parts.is_empty() {
        "transport error".to_owned()
    } else {
        parts.join(": ")
    }
}

/// Whether a failed connection looks like a peer that does not speak
/// HTTP/2: it answered, but not with an HTTP/2 SETTINGS frame.
fn not_http2(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "http2 error",
        "h2 protocol",
        "frame with invalid size",
        "invalid preface",
        "protocol error",
        "connection closed before message completed",
    ]
    .iter()
    .any(|k| m.contains(k))
        && !m.contains("connection refused")
}

/// Default connect timeout of [`connect_channel`] and [`connect`].
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Client-side TLS material (PEM).
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// CA that the server certificate must chain to.
    pub ca: Option<Vec<u8>>,
    /// Client certificate and key, for servers that require one.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
    /// Name to verify in the server certificate; default: the address host.
    pub domain: Option<String>,
}

/// Opens a channel to `addr`: `HOST:PORT` (plaintext unless `tls` is given),
/// `http://HOST:PORT`, `https://HOST:PORT` or `unix:PATH`, giving up after
/// [`CONNECT_TIMEOUT`].
pub async fn connect_channel(addr: &str, tls: Option<&ClientTls>) -> Result<Channel, ConnectError> {
    connect_channel_with(addr, tls, CONNECT_TIMEOUT, None).await
}

/// [`connect_channel`] with a connect timeout (TCP, TLS and the HTTP/2
/// handshake together) and, if given, a timeout on every call.
pub async fn connect_channel_with(
    addr: &str,
    tls: Option<&ClientTls>,
    connect_timeout: Duration,
    call_timeout: Option<Duration>,
) -> Result<Channel, ConnectError> {
    match tokio::time::timeout(
        connect_timeout,
        dial(addr, tls, connect_timeout, call_timeout),
    )
    .await
    {
        Ok(r) => r,
        Err(_) => Err(ConnectError::Timeout {
            addr: addr.to_owned(),
            timeout: connect_timeout,
        }),
    }
}

async fn dial(
    addr: &str,
    tls: Option<&ClientTls>,
    connect_timeout: Duration,
    call_timeout: Option<Duration>,
) -> Result<Channel, ConnectError> {
    let bad = |message: String| ConnectError::BadAddress {
        addr: addr.to_owned(),
        message,
    };
    let connect_err = |source: tonic::transport::Error| {
        let message = error_chain(&source);
        if not_http2(&message) {
            ConnectError::NotGrpc {
                addr: addr.to_owned(),
                message,
            }
        } else {
            ConnectError::Connect {
                addr: addr.to_owned(),
                message,
            }
        }
    };
    let timeouts = |e: Endpoint| {
        let e = e.connect_timeout(connect_timeout);
        match call_timeout {
            Some(t) => e.timeout(t),
            None => e,
        }
    };
    if let Some(path) = addr.strip_prefix("unix:") {
        let path = PathBuf::from(path);
        // The URI is required by the HTTP/2 layer but never resolved: the
        // connector below always dials the socket path.
        let endpoint = timeouts(Endpoint::from_static("http://localhost"));
        let endpoint = with_tls(endpoint, tls).map_err(connect_err)?;
        return endpoint
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(path).await?;
                    Ok::<_, std::io::Error>(TokioIo::new(stream))
                }
            }))
            .await
            .map_err(connect_err);
    }
    let url = if addr.contains("://") {
        addr.to_owned()
    } else if tls.is_some() {
        format!("https://{addr}")
    } else {
        format!("http://{addr}")
    };
    let endpoint = Endpoint::from_shared(url).map_err(|e| bad(e.to_string()))?;
    let endpoint = with_tls(timeouts(endpoint.tcp_nodelay(true)), tls).map_err(connect_err)?;
    endpoint.connect().await.map_err(connect_err)
}

fn with_tls(
    endpoint: Endpoint,
    tls: Option<&ClientTls>,
) -> Result<Endpoint, tonic::transport::Error> {
    let Some(tls) = tls else {
        return Ok(endpoint);
    };
    let mut config = ClientTlsConfig::new();
    if let Some(ca) = &tls.ca {
        config = config.ca_certificate(Certificate::from_pem(ca));
    }
    if let Some((cert, key)) = &tls.identity {
        config = config.identity(Identity::from_pem(cert, key));
    }
    if let Some(domain) = &tls.domain {
        config = config.domain_name(domain.clone());
    }
    endpoint.tls_config(config)
}

/// A `Fluxion` client on `addr` (see [`connect_channel`]) that accepts
/// large responses.
pub async fn connect(
    addr: &str,
    tls: Option<&ClientTls>,
) -> Result<FluxionClient<Channel>, ConnectError> {
    let channel = connect_channel(addr, tls).await?;
    Ok(FluxionClient::new(channel).max_decoding_message_size(MAX_RESPONSE_BYTES))
}

/// [`connect`] with the timeouts of [`connect_channel_with`].
pub async fn connect_with(
    addr: &str,
    tls: Option<&ClientTls>,
    connect_timeout: Duration,
    call_timeout: Option<Duration>,
) -> Result<FluxionClient<Channel>, ConnectError> {
    let channel = connect_channel_with(addr, tls, connect_timeout, call_timeout).await?;
    Ok(FluxionClient::new(channel).max_decoding_message_size(MAX_RESPONSE_BYTES))
}

/// What a plain TCP server at `addr` says to an HTTP/2 client preface, if
/// it answers like an HTTP/1 server: its status line. Used to name the
/// cause when a call fails at the transport level.
pub async fn http1_status_line(addr: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = addr.strip_prefix("http://").unwrap_or(addr);
    if host.contains("://") || host.starts_with("unix:") {
        return None;
    }
    let probe = async {
        let mut s = tokio::net::TcpStream::connect(host).await.ok()?;
        // The HTTP/2 connection preface and an empty SETTINGS frame.
        s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
            .await
            .ok()?;
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf[..n]);
        text.starts_with("HTTP/")
            .then(|| text.lines().next().unwrap_or_default().trim().to_owned())
    };
    tokio::time::timeout(Duration::from_secs(2), probe)
        .await
        .ok()
        .flatten()
}

/// A failed call as one line: the address, the gRPC code and message, each
/// cause once; a peer that is not a gRPC server is called that.
pub fn call_error(addr: &str, status: &tonic::Status) -> String {
    let mut parts: Vec<String> = Vec::new();
    let chain = std::error::Error::source(status).map(error_chain);
    for piece in std::iter::once(status.message()).chain(chain.iter().map(String::as_str)) {
        for seg in piece.split(": ") {
            if !seg.is_empty() && !parts.iter().any(|p| p == seg) {
                parts.push(seg.to_owned());
            }
        }
    }
    let text = parts.join(": ");
    let missing_grpc = status.code() == tonic::Code::Unknown
        && (text.contains("grpc-status header missing") || text.contains("content-type"));
    if missing_grpc
        || (status.code() == tonic::Code::Unavailable || status.code() == tonic::Code::Internal)
            && not_http2(&text)
    {
        return format!("not a gRPC server at {addr} ({text})");
    }
    if status.code() == tonic::Code::Cancelled && text.contains("Timeout expired") {
        return format!("{addr}: no answer within the time allowed (--timeout)");
    }
    format!("{addr}: {:?}: {text}", status.code())
}
