//! Hostile scenario files: every out-of-range size or time is refused by
//! name before anything is allocated, and no run's clock can wrap.

use phalanx_sim::scenario::{MAX_SECONDS, Scenario};
use proptest::prelude::*;

const CLUSTER: &str = "cluster:\n  nodes:\n    - count: 2\n      cpu: 4\n      memory: 8Gi\n";
const JOB: &str = "  jobs:\n    - {name: a, pods: 2, cpu: 1, duration: 10}\n";

fn workload(extra: &str) -> String {
    format!("{CLUSTER}workload:\n{extra}{JOB}")
}

fn refused(text: &str) -> phalanx_sim::scenario::ScenarioError {
    let t0 = std::time::Instant::now();
    let err = Scenario::from_yaml(text).expect_err("accepted");
    // Not a speed target: a guard that nothing was built first.
    assert!(t0.elapsed() < std::time::Duration::from_secs(5), "{err}");
    err
}

#[test]
fn non_finite_and_negative_times_are_refused_by_name() {
    for (value, needle) in [
        ("\"inf\"", "inf"),
        ("\"infinity\"", "inf"),
        ("\"NaN\"", "NaN"),
        (".nan", "NaN"),
        (".inf", "inf"),
        ("-.inf", "inf"),
        ("\"-5\"", ">= 0"),
        ("-5", ">= 0"),
        ("1e300", "at most"),
        ("\"1000000000s\"", "at most"),
    ] {
        let err = refused(&workload(&format!("  pod_interval: {value}\n")));
        assert_eq!(err.path, "workload.pod_interval", "{value}: {err}");
        assert!(err.message.contains(needle), "{value}: {err}");
    }
    let text = format!(
        "{CLUSTER}workload:\n  jobs:\n    - {{name: a, pods: 1, cpu: 1, duration: \"inf\"}}\n"
    );
    assert_eq!(refused(&text).path, "workload.jobs[0].duration");
    let text = format!(
        "{CLUSTER}workload:\n  jobs:\n    - {{name: a, pods: 1, cpu: 1, duration: 1, arrival: .nan}}\n"
    );
    assert_eq!(refused(&text).path, "workload.jobs[0].arrival");
}

#[test]
fn a_zero_horizon_is_refused() {
    let err = refused(&format!("horizon: 0\n{}", workload("")));
    assert_eq!(err.path, "horizon");
    assert!(err.message.contains("must be > 0"), "{err}");
}

#[test]
fn sizes_are_limited_before_allocation() {
    let huge_pool =
        "cluster:\n  nodes:\n    - count: 1000000000\n      cpu: 4\n      memory: 8Gi\n";
    let err = refused(&format!("{huge_pool}workload:\n{JOB}"));
    assert_eq!(err.path, "cluster.nodes[0].count", "{err}");
    assert!(err.message.contains("at most 100000"), "{err}");

    let copies = format!(
        "{CLUSTER}workload:\n  jobs:\n    - {{name: a, count: 1000000000, pods: 1, cpu: 1, duration: 1}}\n"
    );
    let err = refused(&copies);
    assert_eq!(err.path, "workload.jobs[0].count", "{err}");

    let pods = format!(
        "{CLUSTER}workload:\n  jobs:\n    - {{name: a, pods: 1000000000, cpu: 1, duration: 1}}\n"
    );
    assert_eq!(refused(&pods).path, "workload.jobs[0].pods");

    let generated = format!(
        "{CLUSTER}workload:\n  generate:\n    - {{count: 1000000000, pods: 1, cpu: 1, duration: 1}}\n"
    );
    let err = refused(&generated);
    assert_eq!(err.path, "workload.generate[0].count", "{err}");

    // 2^32 + 1 pods would have been cut to 1 pod.
    let wrapped = format!(
        "{CLUSTER}workload:\n  generate:\n    - {{count: 1, pods: 4294967297, cpu: 1, duration: 1}}\n"
    );
    let err = refused(&wrapped);
    assert_eq!(err.path, "workload.generate[0].pods", "{err}");

    // Many jobs of many pods: the total is capped too.
    let total = format!(
        "{CLUSTER}workload:\n  generate:\n    - {{count: 1000, pods: 100000, cpu: 1, duration: 1}}\n"
    );
    let err = refused(&total);
    assert!(err.message.contains("at most 5000000"), "{err}");
}

#[test]
fn huge_resources_cannot_overflow_aggregates() {
    let cases = [
        (
            "cluster:\n  nodes:\n    - count: 1\n      cpu: 1e15\n      memory: 8Gi\n",
            "cluster.nodes[0].cpu",
        ),
        (
            "cluster:\n  nodes:\n    - count: 1\n      cpu: 4\n      memory: 18446744073709551615\n",
            "cluster.nodes[0].memory",
        ),
        (
            "cluster:\n  nodes:\n    - count: 90000\n      cpu: 4\n      memory: 1Pi\n",
            "cluster.nodes[0].memory",
        ),
        (
            "cluster:\n  nodes:\n    - count: 1\n      cpu: 4\n      memory: 8Gi\n      gpus: 18446744073709551615\n",
            "cluster.nodes[0].gpus",
        ),
    ];
    for (cluster, path) in cases {
        let err = refused(&format!("{cluster}workload:\n{JOB}"));
        assert_eq!(err.path, path, "{err}");
    }
    let job = format!(
        "{CLUSTER}workload:\n  jobs:\n    - {{name: a, pods: 1, cpu: 1, memory: 18446744073709551615, duration: 1}}\n"
    );
    assert_eq!(refused(&job).path, "workload.jobs[0].memory");
    let job = format!(
        "{CLUSTER}workload:\n  generate:\n    - {{count: 1, pods: 1, cpu: .inf, duration: 1}}\n"
    );
    assert_eq!(refused(&job).path, "workload.generate[0].cpu");
}

#[test]
fn deeply_nested_files_are_refused_before_parsing() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let err = refused(&format!("{}  labels: {deep}\n", workload("")));
    assert!(
        err.message.contains("nest deeper than the limit of 64"),
        "{err}"
    );
}

#[test]
fn an_unwritable_out_fails_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let args = phalanx_sim::SimulateArgs {
        scenario: "mpi-contention".into(),
        schedulers: vec!["phalanx".into()],
        out: Some(file.join("reports")),
        ..phalanx_sim::SimulateArgs::default()
    };
    let err = format!("{:#}", phalanx_sim::run(args).unwrap_err());
    assert!(err.starts_with("--out: creating"), "{err}");
}

#[test]
fn a_bad_multiple_of_run_times_is_refused_by_name() {
    for k in [f64::NAN, -1.0, f64::INFINITY, 1e9] {
        let base = phalanx_sim::SimulateArgs {
            scenario: "minute-mpi".into(),
            schedulers: vec!["phalanx".into()],
            ..phalanx_sim::SimulateArgs::default()
        };
        let cases = [
            (
                "--reserve-after-runtimes",
                phalanx_sim::SimulateArgs {
                    reserve_after_runtimes: Some(k),
                    ..base.clone()
                },
            ),
            (
                "--order-runtimes",
                phalanx_sim::SimulateArgs {
                    order_runtimes: Some(k),
                    ..base.clone()
                },
            ),
            (
                "--backfill-beside-after",
                phalanx_sim::SimulateArgs {
                    backfill_beside_after: Some(k),
                    ..base.clone()
                },
            ),
            (
                "--backfill-slack",
                phalanx_sim::SimulateArgs {
                    backfill_slack: Some(k),
                    ..base
                },
            ),
        ];
        for (flag, args) in cases {
            let err = format!("{:#}", phalanx_sim::run(args).unwrap_err());
            assert!(err.starts_with(flag), "{flag} {k}: {err}");
        }
    }
}

#[test]
fn a_reserve_depth_out_of_range_is_refused_by_name() {
    for depth in [0, phalanx_gang::MAX_RESERVE_DEPTH + 1, u32::MAX] {
        let args = phalanx_sim::SimulateArgs {
            scenario: "minute-mpi".into(),
            schedulers: vec!["phalanx".into()],
            reserve_depth: Some(depth),
            ..phalanx_sim::SimulateArgs::default()
        };
        let err = format!("{:#}", phalanx_sim::run(args).unwrap_err());
        assert!(err.starts_with("--reserve-depth"), "{depth}: {err}");
    }
}

fn secs(max: f64) -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.0), Just(max), 0.0..max]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Times anywhere in their allowed range, in jobs that queue behind
    /// each other: every run ends with a clock that never went backwards.
    #[test]
    fn virtual_time_never_wraps(
        interval in secs(MAX_SECONDS),
        startup in secs(MAX_SECONDS),
        grace in secs(MAX_SECONDS),
        jobs in prop::collection::vec(
            (secs(MAX_SECONDS), secs(MAX_SECONDS), 1u32..4, 0i32..3, 1u32..4),
            1..6,
        ),
    ) {
        let mut text = format!(
            "cluster:\n  nodes:\n    - count: 1\n      cpu: 2\n      memory: 1Gi\nworkload:\n  pod_interval: {interval}\n  startup: {startup}\n  termination_grace: {grace}\n  jobs:\n"
        );
        // Priorities make later jobs preempt earlier ones, with any grace;
        // minimums below the pods make jobs elastic.
        for (i, (arrival, duration, pods, priority, min)) in jobs.iter().enumerate() {
            let duration = duration.max(1.0);
            let min = (*min).min(*pods);
            text.push_str(&format!(
                "    - {{name: j{i}, pods: {pods}, min_pods: {min}, priority: {priority}, cpu: 1, arrival: {arrival}, duration: {duration}}}\n"
            ));
        }
        let s = Scenario::from_yaml(&text).unwrap();
        // kube-scheduler's default model does not poll: a step per event,
        // whatever the times (the polling models are covered by the step
        // budget, which these times would make them spend).
        let names: Vec<String> = vec!["default".to_owned()];
        for run in phalanx_sim::run_all(&s, 1, &names, false).unwrap() {
            prop_assert!(run.end >= 0 && run.makespan_end >= 0, "{}: {} {}", run.scheduler, run.end, run.makespan_end);
            if let Some(m) = run.makespan_secs {
                prop_assert!(m >= 0.0 && m.is_finite(), "{}: makespan {m}", run.scheduler);
            }
            prop_assert!(run.sized_waits().all(|(_, w)| w >= 0.0 && w.is_finite()));
        }
    }

    /// Any time text is either refused or a finite, non-negative time.
    #[test]
    fn times_are_finite_or_refused(text in "[-+0-9a-zA-Z. ]{0,12}") {
        let yaml = workload(&format!("  startup: \"{text}\"\n"));
        match Scenario::from_yaml(&yaml) {
            Ok(s) => prop_assert!(s.workload.startup.0.is_finite() && s.workload.startup.0 >= 0.0),
            Err(e) => prop_assert_eq!(e.path, "workload.startup"),
        }
    }
}
