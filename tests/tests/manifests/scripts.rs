//! The hack/ scripts: valid bash (and shellcheck-clean when shellcheck is
//! installed), strict mode, loud early failure when a tool is missing, and
//! their gang checks run end to end against a stand-in kubectl
//! (hack/testdata/fake-kubectl) that reports gangs whole or stuck.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// `hack/*.sh`, sorted.
fn scripts() -> Vec<PathBuf> {
    let dir = root().join("hack");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap_or_else(|e| panic!("{e}")).path())
        .filter(|p| p.extension().is_some_and(|e| e == "sh"))
        .collect();
    out.sort();
    assert!(
        out.len() >= 4,
        "expected kind-up.sh, e2e.sh, bench.sh and lib.sh in hack/: {out:?}"
    );
    out
}

/// The first `name` on the test's own PATH.
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn bash() -> PathBuf {
    which("bash").unwrap_or_else(|| panic!("bash is needed to test the hack/ scripts"))
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn every_script_parses_with_bash_n() {
    for script in scripts() {
        let output = Command::new(bash())
            .arg("-n")
            .arg(&script)
            .output()
            .unwrap_or_else(|e| panic!("bash: {e}"));
        assert!(
            output.status.success(),
            "{}: {}",
            script.display(),
            text(&output)
        );
    }
    // The check has teeth: a broken script is reported.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let broken = dir.path().join("broken.sh");
    std::fs::write(&broken, "if true; then\n  echo unterminated\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let output = Command::new(bash())
        .arg("-n")
        .arg(&broken)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!output.status.success());
}

#[test]
fn every_script_passes_shellcheck_when_installed() {
    let Some(shellcheck) = which("shellcheck") else {
        eprintln!("shellcheck not installed; skipping (apt-get install shellcheck)");
        return;
    };
    let mut files = scripts();
    files.push(root().join("hack/testdata/fake-kubectl"));
    files.push(root().join("hack/testdata/fake-tool"));
    // -x follows `source lib.sh`; the scripts declare source-path=SCRIPTDIR.
    let output = Command::new(shellcheck)
        .arg("-x")
        .args(&files)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(output.status.success(), "shellcheck:\n{}", text(&output));
}

#[test]
fn runnable_scripts_are_executable_and_strict() {
    use std::os::unix::fs::PermissionsExt;
    // The deployment scripts (other areas' scripts in hack/ get bash -n and shellcheck).
    for name in ["kind-up.sh", "e2e.sh", "bench.sh", "fuzz.sh"] {
        let script = root().join("hack").join(name);
        let body = std::fs::read_to_string(&script).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mode = std::fs::metadata(&script)
            .unwrap_or_else(|e| panic!("{e}"))
            .permissions()
            .mode();
        assert!(mode & 0o111 != 0, "{} is not executable", script.display());
        assert!(
            body.starts_with("#!/usr/bin/env bash\n"),
            "{}: use #!/usr/bin/env bash",
            script.display()
        );
        assert!(
            body.contains("\nset -euo pipefail\n"),
            "{}: no `set -euo pipefail`",
            script.display()
        );
    }
}

/// Runs a script with PATH holding only `dirname` and `cat`, so every tool the
/// scripts check for is missing.
fn run_without_tools(script: &str, args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for tool in ["dirname", "cat"] {
        let found = which(tool).unwrap_or_else(|| panic!("{tool} is needed"));
        std::os::unix::fs::symlink(found, dir.path().join(tool)).unwrap_or_else(|e| panic!("{e}"));
    }
    Command::new(bash())
        .arg(root().join("hack").join(script))
        .args(args)
        .env("PATH", dir.path())
        .output()
        .unwrap_or_else(|e| panic!("{script}: {e}"))
}

#[test]
fn scripts_fail_early_and_by_name_when_a_tool_is_missing() {
    for (script, tool) in [
        ("kind-up.sh", "docker"),
        ("e2e.sh", "kubectl"),
        ("bench.sh", "kubectl"),
        ("fuzz.sh", "cargo"),
    ] {
        let output = run_without_tools(script, &[]);
        let said = text(&output);
        assert!(
            !output.status.success(),
            "{script} succeeded without {tool}: {said}"
        );
        assert!(
            said.contains(&format!("'{tool}' is required")),
            "{script} did not name {tool}: {said}"
        );
    }
}

#[test]
fn scripts_explain_usage_and_reject_unknown_arguments() {
    for script in ["kind-up.sh", "e2e.sh", "bench.sh", "fuzz.sh"] {
        let help = run_without_tools(script, &["--help"]);
        assert!(
            help.status.success() && text(&help).contains("Usage:"),
            "{script} --help: {}",
            text(&help)
        );
        let bad = run_without_tools(script, &["--no-such-flag"]);
        assert!(!bad.status.success(), "{script} accepted an unknown flag");
        assert!(
            text(&bad).contains("unknown argument: --no-such-flag"),
            "{script}: {}",
            text(&bad)
        );
    }
    let bad = run_without_tools("bench.sh", &["--jobs", "many"]);
    assert!(
        !bad.status.success() && text(&bad).contains("--jobs must be"),
        "{}",
        text(&bad)
    );
    for (args, said) in [
        (&["--time", "soon"][..], "--time must be"),
        (&["--seeds", "/no/such/dir"][..], "--seeds must be"),
        (&["every_target"][..], "unknown target: every_target"),
    ] {
        let bad = run_without_tools("fuzz.sh", args);
        assert!(
            !bad.status.success() && text(&bad).contains(said),
            "fuzz.sh {args:?}: {}",
            text(&bad)
        );
    }
    let bad = run_without_tools("kind-up.sh", &["--workers", "0"]);
    assert!(
        !bad.status.success() && text(&bad).contains("--workers must be"),
        "{}",
        text(&bad)
    );
}

/// Runs `script` against the stand-in kubectl (and docker and kind) in `mode`
/// (complete or deadlock).
fn run_with_fake_kubectl(script: &str, mode: &str, args: &[&str]) -> (Output, tempfile::TempDir) {
    run_with_fake_kubectl_env(script, mode, args, &[])
}

/// As [`run_with_fake_kubectl`], with extra environment for the stand-in.
fn run_with_fake_kubectl_env(
    script: &str,
    mode: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Output, tempfile::TempDir) {
    let bin = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let state = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for (tool, fake) in [
        ("kubectl", "fake-kubectl"),
        ("docker", "fake-tool"),
        ("kind", "fake-tool"),
    ] {
        std::os::unix::fs::symlink(
            root().join("hack/testdata").join(fake),
            bin.path().join(tool),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }
    let path = std::env::join_paths(std::iter::once(bin.path().to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let output = Command::new(bash())
        .arg(root().join("hack").join(script))
        .args(args)
        .env("PATH", path)
        .env("FAKE_STATE", state.path())
        .env("FAKE_MODE", mode)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("{script}: {e}"));
    (output, state)
}

#[test]
fn e2e_passes_whole_gangs() {
    let (output, state) = run_with_fake_kubectl("e2e.sh", "complete", &["--grace", "0"]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("PASS: 5 groups complete"),
        "{}",
        text(&output)
    );
    // It applied every example and cleaned up after itself.
    let calls =
        std::fs::read_to_string(state.path().join("calls")).unwrap_or_else(|e| panic!("{e}"));
    for example in [
        "mpi-job.yaml",
        "flux-minicluster.yaml",
        "competing-gangs.yaml",
        "gpu-training.yaml",
    ] {
        assert!(
            calls.contains(example),
            "{example} was not applied:\n{calls}"
        );
    }
    assert!(calls.contains("delete namespace phalanx-e2e"), "{calls}");
}

#[test]
fn e2e_fails_on_part_bound_gangs_and_pending_pods() {
    let (output, _state) =
        run_with_fake_kubectl("e2e.sh", "deadlock", &["--grace", "0", "--timeout", "60"]);
    let said = text(&output);
    assert!(!output.status.success(), "{said}");
    for gang in [
        "pg/lammps",
        "pg/gang-a",
        "pg/gang-b",
        "pg/resnet",
        "job/flux-sample",
    ] {
        assert!(
            said.contains(&format!("FAIL: gang {gang} has been part-bound")),
            "{gang} not reported: {said}"
        );
    }
    assert!(said.contains("FAIL: pods left Pending"), "{said}");
}

#[test]
fn e2e_refuses_a_cluster_without_the_demo_capacity() {
    // Two workers with one demo slot each cannot hold a competing gang of 4 x 2 slots.
    let (output, _state) =
        run_with_fake_kubectl_env("e2e.sh", "complete", &[], &[("FAKE_ALLOC", "1")]);
    assert!(!output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("the competing gangs need >= 8"),
        "{}",
        text(&output)
    );
}

/// The report row of one scheduler from `--csv`, and the workload's pod count.
fn bench(mode: &str, schedulers: &str) -> (Vec<String>, usize, String) {
    let csv_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let csv = csv_dir.path().join("report.csv");
    let csv_arg = csv.to_string_lossy().to_string();
    let args = [
        "--jobs",
        "6",
        "--max-size",
        "4",
        "--stall",
        "1",
        "--schedulers",
        schedulers,
        "--csv",
        &csv_arg,
    ];
    let (output, _state) = run_with_fake_kubectl("bench.sh", mode, &args);
    let said = text(&output);
    assert!(output.status.success(), "{said}");
    let pods: usize = said
        .split("workload: 6 jobs, ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no workload line: {said}"));
    let report = std::fs::read_to_string(&csv).unwrap_or_else(|e| panic!("{e}"));
    let mut lines = report.lines();
    let fields = |line: &str| -> Vec<String> {
        let inner = line.strip_prefix('"').and_then(|l| l.strip_suffix('"'));
        let inner = inner.unwrap_or_else(|| panic!("unquoted CSV line: {line}"));
        inner.split("\",\"").map(str::to_string).collect()
    };
    let header = fields(lines.next().unwrap_or_default());
    // The columns of `phalanx simulate`'s table, then the scheduler's CPU time.
    let expected = [
        "scheduler",
        "completed",
        "makespan",
        "mean wait",
        "p99 wait",
        "slot util",
        "partial gangs",
        "stranded pods",
        "deadlock",
        "placements/s",
        "sched cpu s",
    ];
    assert_eq!(header, expected);
    let row = lines.next().unwrap_or_else(|| panic!("no row: {report}"));
    (fields(row), pods, said)
}

#[test]
fn bench_reports_every_job_done_when_gangs_are_whole() {
    let (row, _pods, said) = bench("complete", "phalanx");
    assert_eq!(row[0], "phalanx", "{said}");
    assert_eq!(row[1], "6/6 (100%)", "{said}");
    assert_eq!(
        (row[6].as_str(), row[7].as_str(), row[8].as_str()),
        ("0", "0", "no"),
        "{said}"
    );
    assert_ne!(row[2], "-", "a finished run has a makespan: {said}");
    // Scheduler CPU comes from the kubelet's container counters, read before and after.
    assert!(
        row[10].parse::<f64>().is_ok_and(|cpu| cpu > 0.0),
        "sched cpu s: {said}"
    );
}

#[test]
fn bench_reports_deadlock_partial_gangs_and_stranded_pods() {
    let (row, pods, said) = bench("deadlock", "default");
    assert_eq!(row[0], "default", "{said}");
    assert_eq!(row[1], "0/6 (0%)", "{said}");
    assert_eq!(row[2], "-", "no makespan without completion: {said}");
    assert_eq!(row[6], "6", "every gang is one pod short: {said}");
    // All pods but one per job are bound and stuck.
    assert_eq!(row[7], (pods - 6).to_string(), "{said}");
    assert!(row[8].starts_with("yes, since t="), "{said}");
}

#[test]
fn kind_up_creates_builds_loads_deploys_and_describes_numa_zones() {
    let args = [
        "--workers",
        "2",
        "--image",
        "registry.example/phalanx:1",
        "--fake-numa",
    ];
    let env = [("FAKE_ALLOC", "8"), ("FAKE_MEMORY", "16000000Ki")];
    let (output, state) = run_with_fake_kubectl_env("kind-up.sh", "complete", &args, &env);
    let said = text(&output);
    assert!(output.status.success(), "{said}");
    assert!(
        said.contains("ready: kubectl context 'kind-phalanx'"),
        "{said}"
    );

    let config = std::fs::read_to_string(state.path().join("kind-config.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.matches("role: control-plane").count(), 1, "{config}");
    assert_eq!(config.matches("role: worker").count(), 2, "{config}");

    let calls =
        std::fs::read_to_string(state.path().join("calls")).unwrap_or_else(|e| panic!("{e}"));
    let position = |needle: &str| {
        calls
            .find(needle)
            .unwrap_or_else(|| panic!("no `{needle}` in:\n{calls}"))
    };
    let steps = [
        "docker info",
        "kind create cluster --name phalanx",
        "docker build -t registry.example/phalanx:1",
        "kind load docker-image registry.example/phalanx:1 --name phalanx",
        "--context kind-phalanx apply -k",
        "set image deployment/phalanx phalanx=registry.example/phalanx:1",
        "rollout status deployment/phalanx",
    ];
    let order: Vec<usize> = steps.iter().map(|s| position(s)).collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "steps out of order:\n{calls}"
    );

    // Each worker becomes two NUMA zones the scheduler can read.
    let applied =
        std::fs::read_to_string(state.path().join("applied")).unwrap_or_else(|e| panic!("{e}"));
    let mut described = Vec::new();
    for de in serde_yaml_ng::Deserializer::from_str(&applied) {
        let doc: serde_json::Value =
            serde_path_to_error::deserialize(de).unwrap_or_else(|e| panic!("{e}"));
        if doc["kind"] == "NodeResourceTopology" {
            let nrt: phalanx_kube::crd::NodeResourceTopology =
                serde_json::from_value(doc).unwrap_or_else(|e| panic!("{e}"));
            described.push(nrt);
        }
    }
    let names: Vec<_> = described
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    assert_eq!(names, ["w1", "w2"], "one per schedulable worker");
    for nrt in &described {
        assert_eq!(nrt.zones.len(), 2);
        for zone in &nrt.zones {
            assert_eq!(zone.type_, "Node");
            let amount = |name: &str| {
                let r = zone.resources.iter().find(|r| r.name == name);
                r.and_then(|r| r.allocatable.clone())
                    .map(|q| q.0)
                    .unwrap_or_else(|| panic!("{name} missing in {zone:?}"))
            };
            assert_eq!(
                (amount("cpu"), amount("nvidia.com/gpu")),
                ("4".to_string(), "2".to_string())
            );
            assert_eq!(amount("memory"), "8000000Ki");
        }
    }
}
