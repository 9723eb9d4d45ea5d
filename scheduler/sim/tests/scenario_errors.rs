//! Bad scenario files get errors naming the field; seeds reproduce reports.

use phalanx_sim::scenario::Scenario;
use phalanx_sim::{load_scenario, run_all};

const BASE: &str =
    "cluster:\n  nodes:\n    - count: 2\n      cpu: 4\n      memory: 8Gi\nworkload:\n";

#[test]
fn zero_pods_names_the_job() {
    let text = format!(
        "{BASE}  jobs:\n    - {{name: a, pods: 2, cpu: 1, duration: 10}}\n    - {{name: b, pods: 0, cpu: 1, duration: 10}}\n"
    );
    let err = Scenario::from_yaml(&text).unwrap_err();
    assert_eq!(err.to_string(), "workload.jobs[1].pods: must be >= 1");
}

#[test]
fn wrong_type_names_the_path() {
    let text = format!("{BASE}  jobs:\n    - {{name: a, pods: lots, cpu: 1, duration: 10}}\n");
    let err = Scenario::from_yaml(&text).unwrap_err();
    assert_eq!(err.path, "workload.jobs[0].pods");
}

#[test]
fn bad_quantity_names_the_field() {
    let text = "cluster:\n  nodes:\n    - count: 2\n      cpu: 4\n      memory: 8Qi\nworkload:\n  jobs:\n    - {name: a, pods: 1, cpu: 1, duration: 10}\n";
    let err = Scenario::from_yaml(text).unwrap_err();
    assert_eq!(err.path, "cluster.nodes[0].memory");
    assert!(err.message.contains("8Qi"), "{}", err.message);
}

#[test]
fn unknown_field_is_rejected() {
    let text =
        format!("{BASE}  jobs:\n    - {{name: a, pods: 1, cpus: 1, cpu: 1, duration: 10}}\n");
    let err = Scenario::from_yaml(&text).unwrap_err();
    assert!(err.to_string().contains("cpus"), "{err}");
}

#[test]
fn generator_range_is_checked() {
    let text = format!(
        "{BASE}  generate:\n    - {{count: 3, pods: {{min: 4, max: 2}}, cpu: 1, duration: 5}}\n"
    );
    let err = Scenario::from_yaml(&text).unwrap_err();
    assert_eq!(
        err.to_string(),
        "workload.generate[0].pods: min (4) must be <= max (2)"
    );
}

#[test]
fn same_seed_same_report_other_seed_other_workload() {
    let s = load_scenario("mpi-contention").unwrap();
    let names = ["phalanx", "default", "coscheduling"]
        .map(String::from)
        .to_vec();
    let strip = |runs: Vec<phalanx_sim::report::Run>| {
        runs.into_iter()
            .map(|mut r| {
                // Wall-clock numbers are the only thing allowed to differ.
                r.wall_secs = 0.0;
                r.placements_per_sec = 0.0;
                serde_json::to_string(&r).unwrap()
            })
            .collect::<Vec<_>>()
    };
    let a = strip(run_all(&s, 7, &names, false).unwrap());
    let b = strip(run_all(&s, 7, &names, false).unwrap());
    assert_eq!(a, b);
    let w7 = phalanx_sim::workload::build(&s, 7);
    let w8 = phalanx_sim::workload::build(&s, 8);
    assert_ne!(w7.jobs, w8.jobs);
}

#[test]
fn bad_cpu_quantity_is_reported_once_with_its_path() {
    let text = format!(
        "{BASE}  jobs:\n    - {{name: a, pods: 1, cpu: 1, duration: 10}}\n    - {{name: b, pods: 2, cpu: lots, duration: 10}}\n"
    );
    let err = Scenario::from_yaml(&text).unwrap_err().to_string();
    assert!(
        err.starts_with("workload.jobs[1].cpu: bad cpu quantity \"lots\""),
        "{err}"
    );
}

#[test]
fn elastic_and_preemption_keys_name_their_field() {
    let job = |extra: &str| {
        format!("{BASE}  jobs:\n    - {{name: a, pods: 2, cpu: 1, duration: 10{extra}}}\n")
    };
    let err = Scenario::from_yaml(&job(", min_pods: 0")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "workload.jobs[0].min_pods: must be between 1 and the job's pods (2), got 0"
    );
    let err = Scenario::from_yaml(&job(", min_pods: 3")).unwrap_err();
    assert_eq!(err.path, "workload.jobs[0].min_pods");
    let err = Scenario::from_yaml(&job(", disruption: sometimes")).unwrap_err();
    assert_eq!(err.path, "workload.jobs[0].disruption");
    let err = Scenario::from_yaml(&job(", preemption_policy: always")).unwrap_err();
    assert_eq!(err.path, "workload.jobs[0].preemption_policy");
    let err = Scenario::from_yaml(&format!(
        "{BASE}  termination_grace: -1\n  jobs:\n    - {{name: a, pods: 1, cpu: 1, duration: 10}}\n"
    ))
    .unwrap_err();
    assert_eq!(err.path, "workload.termination_grace");
    let err = Scenario::from_yaml(&format!(
        "{BASE}  generate:\n    - {{count: 3, pods: 4, min_pods: {{min: 3, max: 1}}, cpu: 1, duration: 5}}\n"
    ))
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "workload.generate[0].min_pods: min (3) must be <= max (1)"
    );
    let err = Scenario::from_yaml(&format!(
        "{BASE}  generate:\n    - {{count: 3, pods: 4, min_pods: 0, cpu: 1, duration: 5}}\n"
    ))
    .unwrap_err();
    assert_eq!(err.path, "workload.generate[0].min_pods");
    // Accepted: a minimum up to the pods, either disruption mode.
    let ok = Scenario::from_yaml(&job(", min_pods: 2, disruption: all")).unwrap();
    assert_eq!(ok.workload.jobs[0].min_pods, Some(2));
}
