//! Dialing a Phalanx server over TCP (plain or TLS) or a Unix socket.

use std::path::PathBuf;

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
    #[error("connect to {addr}: {source}")]
    Connect {
        /// The address as given.
        addr: String,
        /// The transport error.
        source: tonic::transport::Error,
    },
}

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
/// `http://HOST:PORT`, `https://HOST:PORT` or `unix:PATH`.
pub async fn connect_channel(addr: &str, tls: Option<&ClientTls>) -> Result<Channel, ConnectError> {
    let bad = |message: String| ConnectError::BadAddress {
        addr: addr.to_owned(),
        message,
    };
    let connect_err = |source| ConnectError::Connect {
        addr: addr.to_owned(),
        source,
    };
    if let Some(path) = addr.strip_prefix("unix:") {
        let path = PathBuf::from(path);
        // The URI is required by the HTTP/2 layer but never resolved: the
        // connector below always dials the socket path.
        let endpoint = Endpoint::from_static("http://localhost");
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
    let endpoint = with_tls(endpoint.tcp_nodelay(true), tls).map_err(connect_err)?;
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
