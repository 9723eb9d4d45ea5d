//! The cost of one preemption decision on a full cluster: 1,000 8-core
//! nodes held by 1,000 low-priority 4-pod gangs (one node each), then a
//! high-priority gang arrives and one pass chooses its victims.
//!
//! `cargo run -p phalanx-gang --example preempt_cost --profile bench`
//! (times in an unoptimised build are several times higher).

use std::collections::BTreeMap;
use std::time::Instant;

use phalanx_gang::*;

const NODES: usize = 1000;

fn node(i: usize) -> Node {
    Node {
        name: format!("n{i}"),
        allocatable: Resources::new(8000, 32 << 30, 0),
        max_pods: 110,
        zone: Some(format!("z{}", i / 200)),
        rack: Some(format!("r{}", i / 20)),
        ready: true,
        ..Default::default()
    }
}

fn group(name: &str, min: u32, priority: i32, t: i64) -> PodGroup {
    PodGroup {
        key: GroupKey::new("ns", name),
        min_member: min,
        schedule_timeout: None,
        priority,
        created: Timestamp::from_secs(t),
        expected_duration: Some(Millis::from_secs(3600)),
        topology_key: None,
        max_member: None,
        preemption_policy: None,
        disruption: DisruptionMode::Gang,
    }
}

fn pod(g: &str, i: u32, cpu: u64, priority: i32, t: i64) -> Pod {
    Pod {
        uid: PodUid(format!("{g}-{i}")),
        namespace: "ns".into(),
        name: format!("{g}-{i}"),
        requests: Resources::new(cpu, 1 << 30, 0),
        group: Some(GroupKey::new("ns", g)),
        priority,
        scheduler_name: "phalanx".into(),
        node_name: None,
        phase: PodPhase::Pending,
        node_selector: BTreeMap::new(),
        required_affinity: Vec::new(),
        tolerations: Vec::new(),
        created: Timestamp::from_secs(t),
        expected_duration: None,
        preemption_policy: PreemptionPolicy::PreemptLowerPriority,
        labels: BTreeMap::from([("job".to_owned(), g.to_owned())]),
        terminating: false,
        termination_grace: None,
    }
}

fn run(core: &mut GangScheduler, pods: &mut BTreeMap<PodUid, Pod>, now: i64) -> Decisions {
    let d = core.schedule(Timestamp::from_secs(now));
    for plan in &d.binds {
        for b in &plan.pods {
            core.apply(Event::BindResult {
                pod: b.pod.clone(),
                node: b.node.clone(),
                outcome: BindOutcome::Bound,
            });
            if let Some(p) = pods.get_mut(&b.pod) {
                p.node_name = Some(b.node.clone());
                p.phase = PodPhase::Running;
                core.apply(Event::PodUpsert(p.clone()));
            }
        }
    }
    d
}

/// A full cluster; with `budgets`, every other gang has a budget allowing nothing.
fn full(budgets: bool) -> (GangScheduler, BTreeMap<PodUid, Pod>) {
    let mut core = GangScheduler::new(GangConfig {
        pod_events: false,
        ..GangConfig::default()
    });
    for i in 0..NODES {
        core.apply(Event::NodeUpsert(node(i)));
    }
    let mut pods = BTreeMap::new();
    for g in 0..NODES {
        let name = format!("low{g}");
        let (prio, t) = ((g % 7) as i32, (g % 13) as i64);
        core.apply(Event::GroupUpsert(group(&name, 4, prio, t)));
        for i in 0..4 {
            let p = pod(&name, i, 2000, prio, t);
            pods.insert(p.uid.clone(), p.clone());
            core.apply(Event::PodUpsert(p));
        }
        if budgets && g % 2 == 0 {
            core.apply(Event::BudgetUpsert(DisruptionBudget {
                namespace: "ns".into(),
                name: format!("pdb-{name}"),
                selector: Some(LabelSelector {
                    match_labels: BTreeMap::from([("job".to_owned(), name.clone())]),
                    match_expressions: Vec::new(),
                }),
                disruptions_allowed: 0,
            }));
        }
    }
    for t in 20..40 {
        run(&mut core, &mut pods, t);
        if !core.more_pending() {
            break;
        }
    }
    // One more pass reports the groups' Running status, so the measured
    // pass holds the preemption alone.
    run(&mut core, &mut pods, 41);
    let bound = pods.values().filter(|p| p.node_name.is_some()).count();
    assert_eq!(bound, NODES * 4, "the cluster is full");
    (core, pods)
}

/// Timings of one run: the preemption pass, the next idle pass, and the
/// pass after one victim pod leaves; and victims (gangs, pods).
fn once(budgets: bool, size: u32, cpu: u64) -> ([f64; 3], (usize, usize)) {
    let (mut core, mut pods) = full(budgets);
    core.apply(Event::GroupUpsert(group("high", size, 1000, 100)));
    for i in 0..size {
        let p = pod("high", i, cpu, 1000, 100);
        pods.insert(p.uid.clone(), p.clone());
        core.apply(Event::PodUpsert(p));
    }
    let start = Instant::now();
    let d = run(&mut core, &mut pods, 100);
    let took = start.elapsed();
    let victims: usize = d.preemptions.iter().map(|p| p.victims.len()).sum();
    let evicted: usize = d
        .preemptions
        .iter()
        .flat_map(|p| &p.victims)
        .map(|v| v.pods.len())
        .sum();
    // The next pass, with nothing new: what holding the nomination costs.
    let start = Instant::now();
    run(&mut core, &mut pods, 101);
    let idle = start.elapsed();
    // One victim pod goes: the preemptor is looked at again.
    let first = d
        .preemptions
        .first()
        .and_then(|p| p.victims.first())
        .and_then(|v| v.pods.first())
        .map(|b| b.pod.clone());
    let mut again = std::time::Duration::ZERO;
    if let Some(uid) = first {
        core.apply(Event::PodDelete(uid));
        let start = Instant::now();
        run(&mut core, &mut pods, 102);
        again = start.elapsed();
    }
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    ([ms(took), ms(idle), ms(again)], (victims, evicted))
}

fn measure(label: &str, budgets: bool, size: u32, cpu: u64) {
    const RUNS: usize = 5;
    let mut runs = Vec::with_capacity(RUNS);
    let mut victims = (0, 0);
    for _ in 0..RUNS {
        let (t, v) = once(budgets, size, cpu);
        runs.push(t);
        victims = v;
    }
    let stat = |k: usize| {
        let mut v: Vec<f64> = runs.iter().map(|r| r[k]).collect();
        v.sort_by(f64::total_cmp);
        (v[0], v[RUNS / 2])
    };
    let (p, i, a) = (stat(0), stat(1), stat(2));
    println!(
        "{label}: {} gangs, {} pods evicted; preemption pass min {:.2} ms, median {:.2} ms; \
         next idle pass median {:.2} ms; pass after a victim leaves median {:.2} ms",
        victims.0, victims.1, p.0, p.1, i.1, a.1,
    );
}

fn main() {
    println!("{NODES} nodes of 8 cores, {NODES} gangs of 4 x 2 cores (priorities 0-6)");
    measure("2 x 4 cores (one gang)", false, 2, 4000);
    measure("64 x 8 cores (64 gangs)", false, 64, 8000);
    measure("2 x 4 cores, budgets on half", true, 2, 4000);
    measure("64 x 8 cores, budgets on half", true, 64, 8000);
}
