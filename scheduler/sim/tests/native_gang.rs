//! The native gang model (kube-scheduler's own gang scheduling) keeps gangs
//! whole but lets small groups pass a large one forever; Phalanx's
//! reservation for the queue head does not.

use phalanx_gang::GangConfig;
use phalanx_sim::run_all;
use phalanx_sim::scenario::Scenario;

/// 4 nodes of 4 CPUs, busy with small jobs when a 4-pod gang that needs the
/// whole cluster arrives, and six more small jobs arriving every 50 s for
/// `stream_secs`.
fn starvation(stream_secs: u32) -> Scenario {
    let mut yaml = String::from(
        r#"
name: starvation
cluster:
  nodes:
    - count: 4
      prefix: node
      cpu: 4
      memory: 16Gi
workload:
  pod_interval: 0.1s
  startup: 1s
  jobs:
    - {name: small-0, count: 6, arrival: 0s, pods: 1, cpu: 2, memory: 1Gi, duration: 100s}
    - {name: big, count: 1, arrival: 1s, pods: 4, cpu: 4, memory: 1Gi, duration: 100s}
"#,
    );
    for t in (50..=stream_secs).step_by(50) {
        yaml.push_str(&format!(
            "    - {{name: small-{t}, count: 6, arrival: {t}s, pods: 1, cpu: 2, memory: 1Gi, duration: 100s}}\n"
        ));
    }
    Scenario::from_yaml(&yaml).unwrap()
}

fn big_wait(run: &phalanx_sim::report::Run) -> f64 {
    let waits: Vec<f64> = run
        .sized_waits()
        .filter(|(pods, _)| *pods == 4)
        .map(|(_, w)| w)
        .collect();
    assert_eq!(waits.len(), 1, "{}: the big gang ran once", run.scheduler);
    waits[0]
}

#[test]
fn small_groups_pass_a_waiting_gang_under_native_gang_but_not_under_phalanx() {
    let s = starvation(1500);
    let names = ["phalanx", "native-gang"].map(String::from).to_vec();
    let runs = run_all(&s, 1, &names, false).unwrap();
    for r in &runs {
        assert_eq!(r.completed as usize, r.jobs, "{}", r.scheduler);
        assert_eq!(r.partial_gangs, 0, "{}", r.scheduler);
    }
    let (phalanx, native) = (big_wait(&runs[0]), big_wait(&runs[1]));
    println!("big gang waited: phalanx {phalanx}s, native-gang {native}s");
    // Once the gang has waited `reserve_after`, Phalanx holds for it the
    // nodes the running small jobs free (they run 100 s).
    let reserve_after = GangConfig::default().reserve_after.0 as f64 / 1000.0;
    assert!(
        phalanx <= reserve_after + 110.0,
        "phalanx: the gang waited {phalanx}s"
    );
    // Native gang scheduling gives them to the small jobs that keep coming,
    // until the stream ends.
    assert!(
        native > phalanx + 500.0,
        "native-gang {native}s vs phalanx {phalanx}s"
    );
}

#[test]
fn native_gang_is_named_in_the_unknown_scheduler_error() {
    let s = starvation(100);
    let err = run_all(&s, 1, &["kube-1.36".to_owned()], false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("native-gang"), "{err}");
}
