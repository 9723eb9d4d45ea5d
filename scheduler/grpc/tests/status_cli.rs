//! `phalanx status` and `phalanx serve` as the binary runs them (in
//! process): against servers that never answer or are not gRPC, and with
//! TLS material that cannot work.

mod common;

use std::time::{Duration, Instant};

use clap::Parser;
use common::*;
use phalanx_grpc::{ServeArgs, ServerConfig, StatusArgs};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Parser)]
struct StatusCli {
    #[command(flatten)]
    args: StatusArgs,
}

#[derive(Parser)]
struct ServeCli {
    #[command(flatten)]
    args: ServeArgs,
}

async fn status(addr: &str, extra: &[&str]) -> Result<(), String> {
    let mut argv = vec!["status", "--addr", addr];
    argv.extend_from_slice(extra);
    argv.push("stat");
    let cli = StatusCli::try_parse_from(argv).map_err(|e| e.to_string())?;
    phalanx_grpc::status(cli.args)
        .await
        .map_err(|e| format!("{e:#}"))
}

/// No segment of an error line is printed twice in a row.
fn each_cause_once(msg: &str) {
    let parts: Vec<&str> = msg.split(": ").collect();
    for w in parts.windows(2) {
        assert_ne!(w[0], w[1], "repeated cause in {msg:?}");
    }
    assert!(!msg.contains("transport error: transport error"), "{msg}");
}

#[tokio::test]
async fn status_gives_up_on_a_server_that_never_answers() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    // Accepts, holds the connection open, never says a word.
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let t0 = Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(20), status(&addr, &["--timeout", "1"]))
        .await
        .expect("status hung")
        .unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert!(
        err.contains(&addr) && err.contains("no answer within"),
        "{err}"
    );
    each_cause_once(&err);
    silent.abort();
}

#[tokio::test]
async fn status_names_a_server_that_is_not_grpc() {
    // HTTP/1 servers: one reads the request and answers 400 and closes,
    // one answers and closes at once, one keeps the connection open.
    for (read_first, close) in [(true, true), (false, true), (true, false)] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let http1 = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                if read_first {
                    let _ = s.read(&mut buf).await;
                }
                let _ = s
                    .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                    .await;
                if !close {
                    held.push(s);
                }
            }
        });
        let err = status(&addr, &["--timeout", "3"]).await.unwrap_err();
        assert!(
            err.contains(&format!("not a gRPC server at {addr}")),
            "{read_first} {close}: {err}"
        );
        assert!(err.contains("HTTP/1.1 400 Bad Request"), "{err}");
        each_cause_once(&err);
        http1.abort();
    }
}

#[tokio::test]
async fn status_prints_each_cause_once() {
    // A port nobody listens on.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let err = status(&addr, &[]).await.unwrap_err();
    assert!(err.starts_with(&format!("connect to {addr}: ")), "{err}");
    assert!(err.to_lowercase().contains("refused"), "{err}");
    each_cause_once(&err);
}

#[tokio::test]
async fn status_reports_call_errors_in_one_line() {
    let server = TestServer::start(engine(&small_shape()), ServerConfig::default()).await;
    let cli = StatusCli::try_parse_from(["status", "--addr", &server.addr, "info", "77"]).unwrap();
    let err = format!("{:#}", phalanx_grpc::status(cli.args).await.unwrap_err());
    assert_eq!(err, format!("{}: NotFound: job 77 not found", server.addr));
}

#[tokio::test]
async fn serve_stops_on_a_bad_tls_key_before_listening() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pem");
    let cert = dir.path().join("cert.pem");
    let pair = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(&cert, pair.cert.pem()).unwrap();
    std::fs::write(
        &key,
        "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let sock = dir.path().join("s.sock");
    let listen = format!("unix:{}", sock.display());
    let cli = ServeCli::try_parse_from([
        "serve",
        "--generate-nodes",
        "2",
        "--listen",
        &listen,
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ])
    .unwrap();
    let err = tokio::time::timeout(Duration::from_secs(20), phalanx_grpc::serve(cli.args))
        .await
        .expect("serve did not stop")
        .unwrap_err();
    let err = format!("{err:#}");
    assert!(err.contains("--tls-key"), "{err}");
    each_cause_once(&err);
    assert!(
        !sock.exists(),
        "serve bound its socket before the TLS check"
    );
}

#[tokio::test]
async fn serve_refuses_to_generate_a_huge_cluster() {
    let cli = ServeCli::try_parse_from(["serve", "--generate-nodes", "100000000"]).unwrap();
    let t0 = Instant::now();
    let err = format!("{:#}", phalanx_grpc::serve(cli.args).await.unwrap_err());
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert!(
        err.contains("--generate-nodes") && err.contains("at most 65536"),
        "{err}"
    );
}

#[tokio::test]
async fn serve_names_a_bad_graph_file() {
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("bin.graphml");
    std::fs::write(&binary, b"<graphml>\xff\xfe</graphml>").unwrap();
    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, "{\"graph\": [[[[").unwrap();
    let missing = dir.path().join("missing.graphml");
    for (path, needle) in [
        (&binary, "not UTF-8 text (invalid byte at offset 9)"),
        (&garbage, ""),
        (&missing, "No such file"),
    ] {
        let cli = ServeCli::try_parse_from([
            "serve",
            "--graph",
            path.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .unwrap();
        let err = tokio::time::timeout(Duration::from_secs(20), phalanx_grpc::serve(cli.args))
            .await
            .expect("serve did not stop")
            .unwrap_err();
        let err = format!("{err:#}");
        assert!(err.contains(path.to_str().unwrap()), "{err}");
        assert!(err.contains(needle), "{err}");
        each_cause_once(&err);
    }
}
