//! TLS: server-only TLS, mutual TLS, and clients that must be refused.

mod common;

use common::*;
use phalanx_grpc::{ClientTls, ServerConfig, TlsPem};
use phalanx_proto::v1 as pb;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self { issuer }
    }

    fn pem(&self) -> Vec<u8> {
        self.issuer.pem().into_bytes()
    }

    /// A leaf certificate and key for `names`.
    fn leaf(&self, names: &[&str]) -> (Vec<u8>, Vec<u8>) {
        let params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem().into_bytes(), key.serialize_pem().into_bytes())
    }
}

async fn works(addr: &str, tls: Option<&ClientTls>) -> bool {
    let Ok(mut c) = phalanx_grpc::connect(addr, tls).await else {
        return false;
    };
    c.stat(pb::StatRequest {}).await.is_ok()
}

#[tokio::test]
async fn server_tls_without_client_certificates() {
    let ca = Ca::new("phalanx test CA");
    let (cert, key) = ca.leaf(&["localhost"]);
    let config = ServerConfig {
        tls: Some(TlsPem {
            cert,
            key,
            client_ca: None,
        }),
        ..ServerConfig::default()
    };
    let server = TestServer::start(engine(&small_shape()), config).await;
    let trusted = ClientTls {
        ca: Some(ca.pem()),
        identity: None,
        domain: Some("localhost".into()),
    };
    assert!(
        works(&server.addr, Some(&trusted)).await,
        "a client trusting the CA gets in"
    );
    assert!(!works(&server.addr, None).await, "plaintext is refused");
    let other = Ca::new("someone else");
    let untrusting = ClientTls {
        ca: Some(other.pem()),
        identity: None,
        domain: Some("localhost".into()),
    };
    assert!(
        !works(&server.addr, Some(&untrusting)).await,
        "an unknown server CA is refused by the client"
    );
    let wrong_name = ClientTls {
        ca: Some(ca.pem()),
        identity: None,
        domain: Some("example.com".into()),
    };
    assert!(
        !works(&server.addr, Some(&wrong_name)).await,
        "the server name is verified"
    );
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate_from_the_ca() {
    let ca = Ca::new("phalanx test CA");
    let (cert, key) = ca.leaf(&["localhost"]);
    let config = ServerConfig {
        tls: Some(TlsPem {
            cert,
            key,
            client_ca: Some(ca.pem()),
        }),
        ..ServerConfig::default()
    };
    let server = TestServer::start(engine(&small_shape()), config).await;
    let client_id = ca.leaf(&["client.phalanx"]);
    let with_cert = ClientTls {
        ca: Some(ca.pem()),
        identity: Some(client_id),
        domain: Some("localhost".into()),
    };
    assert!(
        works(&server.addr, Some(&with_cert)).await,
        "a client certificate from the CA gets in"
    );
    let without = ClientTls {
        ca: Some(ca.pem()),
        identity: None,
        domain: Some("localhost".into()),
    };
    assert!(
        !works(&server.addr, Some(&without)).await,
        "no client certificate is refused"
    );
    let rogue = Ca::new("rogue");
    let rogue_id = ClientTls {
        ca: Some(ca.pem()),
        identity: Some(rogue.leaf(&["client.phalanx"])),
        domain: Some("localhost".into()),
    };
    assert!(
        !works(&server.addr, Some(&rogue_id)).await,
        "a certificate from another CA is refused"
    );
    // The server survived all of that.
    assert!(works(&server.addr, Some(&with_cert)).await);
}
