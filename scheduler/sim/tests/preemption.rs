//! Preemption and elastic groups in the simulator: the priority scenario
//! under every model, the pod-by-pod baselines leaving gangs in pieces,
//! Phalanx never doing so, and elastic minimums.

use phalanx_gang::GangConfig;
use phalanx_sim::report::{Run, table};
use phalanx_sim::scenario::Scenario;
use phalanx_sim::{load_scenario, run_all, run_all_with};

const ALL: [&str; 5] = [
    "phalanx",
    "phalanx-spread",
    "default",
    "coscheduling",
    "native-gang",
];

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn wait_of(run: &Run, priority: i32) -> Option<f64> {
    run.wait_by_priority
        .iter()
        .find(|w| w.priority == priority)
        .map(|w| w.mean_wait_secs)
}

#[test]
fn the_priority_scenario_runs_under_every_model() {
    let s = load_scenario("priority").unwrap();
    let runs = run_all(&s, 1, &names(&ALL), false).unwrap();
    let text = table(&s.name, 1, &runs, false);
    println!("{text}");
    // More than one priority: the side-by-side table is shown.
    assert!(text.contains("priority 1000 wait"), "{text}");
    // Both ran: Phalanx is set against native gang scheduling in a line.
    assert!(
        text.contains("phalanx against native-gang: makespan "),
        "{text}"
    );
    for r in &runs {
        // The per-job records add up to the summary numbers.
        assert_eq!(r.job_records.len(), r.jobs, "{}", r.scheduler);
        let waits: Vec<f64> = r.job_records.iter().filter_map(|j| j.wait_secs).collect();
        let mean = waits.iter().sum::<f64>() / waits.len() as f64;
        assert!(
            (mean - r.mean_wait_secs).abs() < 1e-6,
            "{}: {mean} against {}",
            r.scheduler,
            r.mean_wait_secs
        );
        let restarts: u64 = r.job_records.iter().map(|j| u64::from(j.restarts)).sum();
        assert_eq!(restarts, r.restarts, "{}", r.scheduler);
        let done = r.job_records.iter().filter(|j| j.completed).count();
        assert_eq!(done as u64, r.completed, "{}", r.scheduler);
        let urgent = r.job_records.iter().filter(|j| j.priority == 1000).count();
        assert_eq!(urgent, 12, "{}", r.scheduler);
        // Every high-priority gang started, under every model.
        let high = r
            .wait_by_priority
            .iter()
            .find(|w| w.priority == 1000)
            .unwrap_or_else(|| panic!("{}: no high-priority wait", r.scheduler));
        assert_eq!(high.jobs, 12, "{}", r.scheduler);
        assert!(
            r.partially_preempted_gangs <= r.preempted_gangs,
            "{}",
            r.scheduler
        );
        let json = serde_json::to_value(r).unwrap();
        for key in [
            "preempted_gangs",
            "partially_preempted_gangs",
            "wait_by_priority",
            "job_records",
        ] {
            assert!(json.get(key).is_some(), "{}: no {key}", r.scheduler);
        }
    }
    for r in &runs[..2] {
        assert_eq!(r.partially_preempted_gangs, 0, "{}", r.scheduler);
        assert_eq!(r.completed as usize, r.jobs, "{}", r.scheduler);
        assert_eq!(r.partial_gangs, 0, "{}", r.scheduler);
    }
    // The baselines preempt pod by pod (default, coscheduling) or, by the
    // native API's default disruption mode, single pods of a gang: they
    // take pods out of running gangs, which then fail whole.
    for r in &runs[2..] {
        assert!(r.preempted_gangs > 0, "{}: no preemption", r.scheduler);
        assert!(
            r.partially_preempted_gangs > 0,
            "{}: no partial preemption",
            r.scheduler
        );
        assert!(r.restarts > 0, "{}", r.scheduler);
        // Preempting, they start the high-priority gangs well before the
        // low-priority backlog.
        let (high, low) = (wait_of(r, 1000), wait_of(r, 0));
        if let (Some(h), Some(l)) = (high, low) {
            assert!(h < l, "{}: high {h}s, low {l}s", r.scheduler);
        }
    }
}

#[test]
fn phalanx_preempts_whole_gangs_and_only_to_gain() {
    let s = load_scenario("priority").unwrap();
    let run = |preemption: bool| {
        let config = GangConfig {
            preemption,
            ..Default::default()
        };
        let runs = run_all_with(&s, 1, &names(&["phalanx"]), &config, false).unwrap();
        runs.into_iter().next().unwrap()
    };
    let (on, off) = (run(true), run(false));
    println!(
        "phalanx: preemption on: {} preempted, high wait {:?}; off: high wait {:?}",
        on.preempted_gangs,
        wait_of(&on, 1000),
        wait_of(&off, 1000)
    );
    for r in [&on, &off] {
        assert_eq!(r.completed as usize, r.jobs);
        assert_eq!(r.partially_preempted_gangs, 0);
        assert_eq!(r.partial_gangs, 0);
    }
    // Off means off.
    assert_eq!(off.preempted_gangs, 0);
    assert_eq!(off.evicted_pods, 0);
    // Whenever it preempts, the high-priority gangs wait less for it.
    if on.preempted_gangs > 0 {
        let (h_on, h_off) = (wait_of(&on, 1000).unwrap(), wait_of(&off, 1000).unwrap());
        assert!(
            h_on < h_off,
            "high-priority wait {h_on}s with, {h_off}s without"
        );
    }
}

/// 2 nodes of 4 CPUs held by two low-priority 2-pod MPI gangs of 2 CPUs a
/// pod (spread one pod per node by LeastAllocated), then a high-priority
/// single pod of 2 CPUs.
fn one_pod_too_many(disruption: &str) -> Scenario {
    let yaml = format!(
        r#"
name: one-pod-too-many
cluster:
  nodes:
    - count: 2
      cpu: 4
      memory: 16Gi
workload:
  pod_interval: 0.1s
  startup: 1s
  termination_grace: 10s
  jobs:
    - {{name: low, count: 2, arrival: 0s, pods: 2, cpu: 2, memory: 1Gi, duration: 1000s, disruption: {disruption}}}
    - {{name: high, arrival: 60s, pods: 1, cpu: 2, memory: 1Gi, duration: 100s, priority: 100}}
"#
    );
    Scenario::from_yaml(&yaml).unwrap()
}

#[test]
fn pod_by_pod_preemption_leaves_a_gang_in_pieces() {
    let s = one_pod_too_many("single");
    let runs = run_all(
        &s,
        1,
        &names(&["default", "coscheduling", "native-gang"]),
        false,
    )
    .unwrap();
    println!("{}", table(&s.name, 1, &runs, false));
    for r in &runs {
        assert_eq!(r.completed as usize, r.jobs, "{}", r.scheduler);
        // One pod makes room: one pod of one gang goes, the other stays
        // until its MPI job fails.
        assert_eq!(r.evicted_pods, 1, "{}", r.scheduler);
        assert_eq!(r.preempted_gangs, 1, "{}", r.scheduler);
        assert_eq!(r.partially_preempted_gangs, 1, "{}", r.scheduler);
        assert_eq!(r.restarts, 1, "{}", r.scheduler);
        // The high-priority pod runs once its victim is gone (10 s grace
        // plus backoff), not after the 1000 s of the low gangs.
        let high = wait_of(r, 100).unwrap();
        assert!(high < 60.0, "{}: high waited {high}s", r.scheduler);
        // ...and not before: a victim holds its room for its 10 s grace.
        assert!(high >= 10.0, "{}: high waited {high}s", r.scheduler);
    }
}

#[test]
fn native_disruption_mode_all_takes_a_whole_gang() {
    let s = one_pod_too_many("all");
    let runs = run_all(&s, 1, &names(&["native-gang"]), false).unwrap();
    let r = &runs[0];
    assert_eq!(r.completed as usize, r.jobs);
    assert_eq!(r.preempted_gangs, 1);
    assert_eq!(r.partially_preempted_gangs, 0);
    assert_eq!(r.evicted_pods, 2);
}

#[test]
fn phalanx_never_leaves_a_gang_in_pieces_on_the_crafted_case() {
    let s = one_pod_too_many("single");
    let runs = run_all(&s, 1, &names(&["phalanx", "phalanx-spread"]), false).unwrap();
    for r in &runs {
        assert_eq!(r.completed as usize, r.jobs, "{}", r.scheduler);
        assert_eq!(r.partially_preempted_gangs, 0, "{}", r.scheduler);
        assert_eq!(r.partial_gangs, 0, "{}", r.scheduler);
        // A whole gang went: both of its pods.
        assert_eq!(r.preempted_gangs, 1, "{}", r.scheduler);
        assert_eq!(r.evicted_pods, 2, "{}", r.scheduler);
        let high = wait_of(r, 100).unwrap();
        assert!((10.0..60.0).contains(&high), "{}: {high}s", r.scheduler);
    }
}

#[test]
fn an_equal_priority_never_preempts() {
    let yaml = r#"
cluster:
  nodes:
    - {count: 1, cpu: 4, memory: 8Gi}
workload:
  jobs:
    - {name: first, pods: 2, cpu: 2, duration: 100s, priority: 5}
    - {name: second, arrival: 10s, pods: 2, cpu: 2, duration: 100s, priority: 5}
"#;
    let s = Scenario::from_yaml(yaml).unwrap();
    let runs = run_all(&s, 1, &names(&ALL), false).unwrap();
    for r in &runs {
        assert_eq!(r.evicted_pods, 0, "{}", r.scheduler);
        assert_eq!(r.preempted_gangs, 0, "{}", r.scheduler);
    }
}

/// One node with `cpu` CPUs; one elastic job of 4 one-CPU pods, minimum 2,
/// 100 s of work on all 4.
fn elastic_on(cpu: u32) -> Scenario {
    let yaml = format!(
        r#"
cluster:
  nodes:
    - {{count: 1, cpu: {cpu}, memory: 8Gi}}
workload:
  pod_interval: 0.1s
  startup: 1s
  jobs:
    - {{name: e, pods: 4, min_pods: 2, cpu: 1, memory: 1Gi, duration: 100s}}
"#
    );
    Scenario::from_yaml(&yaml).unwrap()
}

#[test]
fn an_elastic_job_runs_on_what_fits_above_its_minimum() {
    let s = elastic_on(3);
    let runs = run_all(
        &s,
        1,
        &names(&["phalanx", "default", "coscheduling", "native-gang"]),
        false,
    )
    .unwrap();
    for r in &runs {
        assert_eq!(r.completed, 1, "{}", r.scheduler);
        assert_eq!(r.placements, 3, "{}", r.scheduler);
        // 400 pod-seconds of work on 3 pods.
        let m = r.makespan_secs.unwrap();
        assert!((133.0..140.0).contains(&m), "{}: makespan {m}", r.scheduler);
    }
}

#[test]
fn an_elastic_job_below_its_minimum_does_not_run() {
    let s = elastic_on(1);
    let runs = run_all(&s, 1, &names(&["phalanx", "native-gang"]), false).unwrap();
    for r in &runs {
        assert_eq!(r.completed, 0, "{}", r.scheduler);
        assert_eq!(r.placements, 0, "{}", r.scheduler);
        assert_eq!(r.partial_gangs, 0, "{}", r.scheduler);
    }
}

#[test]
fn the_elastic_scenario_runs_every_job_whole() {
    let s = load_scenario("elastic").unwrap();
    let runs = run_all(&s, 1, &names(&ALL), false).unwrap();
    println!("{}", table(&s.name, 1, &runs, false));
    for r in &runs {
        assert_eq!(r.completed as usize, r.jobs, "{}", r.scheduler);
        assert_eq!(r.partial_gangs, 0, "{}", r.scheduler);
        assert_eq!(r.preempted_gangs, 0, "{}", r.scheduler);
    }
}

#[test]
fn preemption_takes_elastic_members_before_any_gang() {
    // One node of 4 CPUs: a low-priority elastic job runs on all 4 (its
    // minimum is 2) when a high-priority 2-pod gang arrives.
    let yaml = r#"
cluster:
  nodes:
    - {count: 1, cpu: 4, memory: 8Gi}
workload:
  pod_interval: 0.1s
  startup: 1s
  termination_grace: 5s
  jobs:
    - {name: elastic, pods: 4, min_pods: 2, cpu: 1, memory: 1Gi, duration: 400s}
    - {name: urgent, arrival: 50s, pods: 2, cpu: 1, memory: 1Gi, duration: 50s, priority: 10}
"#;
    let s = Scenario::from_yaml(yaml).unwrap();
    let runs = run_all(&s, 1, &names(&ALL), false).unwrap();
    println!("{}", table(&s.name, 1, &runs, false));
    for r in &runs {
        assert_eq!(r.completed as usize, r.jobs, "{}", r.scheduler);
        assert_eq!(r.released_members, 2, "{}", r.scheduler);
        assert_eq!(r.preempted_gangs, 0, "{}", r.scheduler);
        assert_eq!(r.restarts, 0, "{}", r.scheduler);
        assert!(wait_of(r, 10).unwrap() < 30.0, "{}", r.scheduler);
        // The released members come back once the urgent gang is done.
        assert!(r.extra_members_bound >= 2, "{}", r.scheduler);
    }
}

#[test]
fn preemption_policy_never_waits_under_every_model() {
    let yaml = r#"
cluster:
  nodes:
    - {count: 1, cpu: 4, memory: 8Gi}
workload:
  pod_interval: 0.1s
  startup: 1s
  termination_grace: 5s
  jobs:
    - {name: low, pods: 2, cpu: 2, memory: 1Gi, duration: 300s}
    - {name: polite, arrival: 10s, pods: 2, cpu: 2, memory: 1Gi, duration: 10s, priority: 10, preemption_policy: never}
"#;
    let s = Scenario::from_yaml(yaml).unwrap();
    let runs = run_all(&s, 1, &names(&ALL), false).unwrap();
    for r in &runs {
        assert_eq!(r.completed as usize, r.jobs, "{}", r.scheduler);
        assert_eq!(r.evicted_pods, 0, "{}", r.scheduler);
        // It starts only when the low job ends, at about 300 s.
        let w = wait_of(r, 10).unwrap();
        assert!(w >= 280.0, "{}: waited {w}s", r.scheduler);
    }
}

#[test]
fn kube_preemption_picks_the_node_whose_victims_matter_least() {
    // Node 0 holds one priority-3 pod, node 1 two priority-1 pods; a
    // priority-10 pod needs a whole node. kube-scheduler's node choice
    // (lowest highest-victim priority) and workload-aware preemption's
    // importance order (higher priority kept first) both take the two
    // priority-1 pods, though that is more victims.
    let yaml = r#"
cluster:
  nodes:
    - {count: 2, cpu: 2, memory: 8Gi}
workload:
  pod_interval: 0.1s
  startup: 1s
  termination_grace: 5s
  jobs:
    - {name: three, pods: 1, cpu: 2, memory: 1Gi, duration: 1000s, priority: 3}
    - {name: one, count: 2, arrival: 0.5s, pods: 1, cpu: 1, memory: 1Gi, duration: 1000s, priority: 1}
    - {name: urgent, arrival: 10s, pods: 1, cpu: 2, memory: 1Gi, duration: 100s, priority: 10}
"#;
    let s = Scenario::from_yaml(yaml).unwrap();
    let runs = run_all(
        &s,
        1,
        &names(&["default", "coscheduling", "native-gang"]),
        false,
    )
    .unwrap();
    for r in &runs {
        assert_eq!(r.completed as usize, r.jobs, "{}", r.scheduler);
        assert_eq!(r.evicted_pods, 2, "{}", r.scheduler);
        assert_eq!(r.restarts, 2, "{}", r.scheduler);
        assert!(wait_of(r, 3).unwrap() < 5.0, "{}", r.scheduler);
        assert!(wait_of(r, 10).unwrap() < 30.0, "{}", r.scheduler);
    }
}
