//! `phalanx run` as a process: its flags, and clear errors for bad settings.

use std::process::Command;

fn phalanx() -> Command {
    Command::new(env!("CARGO_BIN_EXE_phalanx"))
}

#[test]
fn help_lists_the_operating_flags() {
    let out = phalanx().args(["run", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--scheduler-name",
        "--policy",
        "--rack-label",
        "--namespace",
        "--qps",
        "--burst",
        "--leader-elect",
        "--lease-duration",
        "--metrics-addr",
        "--grpc-addr",
        "--config",
        "PHALANX_SCHEDULER_NAMES",
    ] {
        assert!(
            help.contains(flag),
            "`phalanx run --help` lacks {flag}:\n{help}"
        );
    }
}

#[test]
fn bad_config_file_names_the_field() {
    let dir = std::env::temp_dir().join(format!("phalanx-run-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("phalanx.yaml");
    std::fs::write(&path, "qps: fast\n").unwrap();
    let out = phalanx()
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(err.contains("qps") && err.contains("phalanx.yaml"), "{err}");
}

#[test]
fn inconsistent_lease_settings_are_refused() {
    let out = phalanx()
        .args(["run", "--lease-duration", "5s", "--renew-deadline", "10s"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("renew_deadline"), "{err}");
}

#[test]
fn missing_kubeconfig_is_a_clear_error() {
    let out = phalanx()
        .args([
            "run",
            "--kubeconfig",
            "/nonexistent/kubeconfig",
            "--metrics-addr",
            "127.0.0.1:0",
            "--grpc-addr",
            "none",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/kubeconfig"), "{err}");
}
