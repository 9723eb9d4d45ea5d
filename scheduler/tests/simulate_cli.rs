//! `phalanx simulate` as a user runs it.

use std::path::PathBuf;
use std::process::Command;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("phalanx-simulate-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn default_run_reports_phalanx_complete_and_default_deadlocked() {
    let out_dir = scratch("out");
    let out = Command::new(env!("CARGO_BIN_EXE_phalanx"))
        .args(["simulate", "--out"])
        .arg(&out_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = |name: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no row for {name} in:\n{stdout}"))
            .to_owned()
    };
    assert!(line("phalanx ").contains("100/100 (100%)"), "{stdout}");
    assert!(line("default ").contains("yes, since"), "{stdout}");
    let json = std::fs::read_to_string(out_dir.join("report.json")).unwrap();
    assert!(json.contains("\"scheduler\": \"phalanx\""), "{json}");
    assert!(json.contains("\"partial_gangs\": 0"), "{json}");
    let svg = std::fs::read_to_string(out_dir.join("report.svg")).unwrap();
    assert!(svg.starts_with("<svg"));
    let _ = std::fs::remove_dir_all(&out_dir);
}

#[test]
fn bad_scenario_file_names_the_field() {
    let dir = scratch("bad");
    let path = dir.join("bad.yaml");
    std::fs::write(
        &path,
        "cluster:\n  nodes:\n    - {count: 0, cpu: 4, memory: 8Gi}\nworkload:\n  jobs:\n    - {name: a, pods: 1, cpu: 1, duration: 10}\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_phalanx"))
        .args(["simulate", "--scenario"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cluster.nodes[0].count: must be >= 1"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
