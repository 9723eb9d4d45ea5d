//! `phalanx serve` and `phalanx status` as processes: start the server,
//! match through gRPC, read the tables back, stop it with SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use phalanx_grpc::proto::v1 as pb;

const BIN: &str = env!("CARGO_BIN_EXE_phalanx");

struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let mut child = Command::new(BIN)
            .arg("serve")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn phalanx serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the listening line");
        let addr = line
            .trim()
            .strip_prefix("phalanx serve: listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Server { child, addr }
    }

    fn status(&self, args: &[&str]) -> String {
        let out = Command::new(BIN)
            .args(["status", "--addr", &self.addr])
            .args(args)
            .output()
            .expect("run phalanx status");
        assert!(
            out.status.success(),
            "status {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }

    /// Sends SIGTERM and waits for a clean exit.
    fn terminate(mut self) {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(ok.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "exit status after SIGTERM: {status}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "phalanx serve did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh directory under the system temp dir (no tempfile crate here).
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("phalanx-serve-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn row<'a>(table: &'a str, first: &str) -> Vec<&'a str> {
    table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cols| cols.first() == Some(&first))
        .unwrap_or_else(|| panic!("no {first:?} row in\n{table}"))
}

#[test]
fn serve_matches_and_status_shows_tables_then_sigterm_stops_it() {
    let server = Server::start(&["--generate-nodes", "4", "--listen", "127.0.0.1:0"]);
    // 4 nodes x 64 cores x 4 GPUs in the standard shape.
    let table = server.status(&["resources"]);
    assert_eq!(
        row(&table, "STATE"),
        ["STATE", "NNODES", "NCORES", "NGPUS", "NODELIST"]
    );
    assert_eq!(row(&table, "free"), ["free", "4", "256", "16", "node[0-3]"]);

    let job = rt().block_on(async {
        let mut c = phalanx_grpc::connect(&server.addr, None)
            .await
            .expect("connect");
        let req = pb::MatchRequest {
            request: Some(pb::match_request::Request::Pods(pb::PodGroup {
                templates: vec![pb::PodTemplate {
                    count: 2,
                    cpu_millis: 32_000,
                    gpus: 2,
                    ..Default::default()
                }],
            })),
            name: "demo".into(),
            ..Default::default()
        };
        let r = c.r#match(req).await.expect("match").into_inner();
        assert_eq!(r.result, pb::MatchResult::Allocated as i32, "{r:?}");
        r.job_id
    });
    let table = server.status(&["resources"]);
    let alloc = row(&table, "allocated");
    assert_eq!(alloc[2..4], ["64", "4"], "{table}");
    let jobs = server.status(&["jobs"]);
    let r = row(&jobs, &job.to_string());
    assert_eq!(r[1..5], ["demo", "R", "2", r[4]], "{jobs}");
    let json = server.status(&["jobs", "-o", "json"]);
    assert!(json.contains("\"state\": \"allocated\""), "{json}");
    let stat = server.status(&["stat"]);
    assert!(stat.contains("jobs: 1 allocated"), "{stat}");
    server.terminate();
}

#[test]
fn serve_on_a_unix_socket() {
    let dir = scratch("unix");
    let sock = dir.join("p.sock");
    let spec = format!("unix:{}", sock.display());
    let server = Server::start(&["--generate-nodes", "2", "--listen", &spec]);
    assert_eq!(server.addr, spec);
    let json = server.status(&["resources", "-o", "json"]);
    assert!(json.contains("\"name\": \"node1\""), "{json}");
    server.terminate();
    assert!(!sock.exists(), "socket removed on exit");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn serve_rejects_a_bad_graph_file_with_its_name() {
    let dir = scratch("bad-graph");
    let path = dir.join("broken.json");
    std::fs::write(&path, "{ not json").expect("write");
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--graph"])
        .arg(&path)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken.json"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn status_reports_an_unreachable_server() {
    let out = Command::new(BIN)
        .args(["status", "--addr", "127.0.0.1:1", "resources"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("127.0.0.1:1"));
}
