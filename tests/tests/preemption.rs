//! Priority, whole-gang preemption and elastic groups, end to end: the
//! scheduler against the test API server over HTTP, with a simulated kubelet
//! that stops deleted pods after a while, as a real one does.
//!
//! Priorities come from PriorityClasses, resolved into `spec.priority` by
//! the test server's Priority admission, as on a real cluster.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
mod common;

use phalanx_kube::{RunArgs, SchedulerHandle};
use phalanx_tests::apiserver::{ApiServer, ApiServerOptions, KubeletOptions, ResourceType};
use phalanx_tests::fixtures::{
    bound_pods, create_budget, create_minicluster, event_notes as notes, event_regarding_uids,
    minicluster_pod_json, native_member_json, native_podgroup_json, node, object_uid,
    overcommitted_nodes, pod, podgroup_json, wait_for,
};
use serde_json::json;

const NS: &str = "default";
const WAIT: Duration = Duration::from_secs(15);
/// How long a test lets the scheduler try before it checks that nothing happened.
const SETTLE: Duration = Duration::from_millis(800);

use common::test_args as args;

async fn start(srv: &ApiServer) -> SchedulerHandle {
    start_with(srv, args()).await
}

async fn start_with(srv: &ApiServer, args: RunArgs) -> SchedulerHandle {
    common::start_scheduler(srv, args, WAIT).await
}

fn add_nodes(srv: &ApiServer, n: usize, cpus: u32) {
    for i in 0..n {
        srv.create(&node(&format!("n{i}"), cpus, &[])).unwrap();
    }
}

/// A PriorityClass (cluster-scoped), optionally `preemptionPolicy: Never`.
fn priority_class(srv: &ApiServer, name: &str, value: i32, never: bool) {
    let mut pc = json!({
        "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
        "metadata": {"name": name}, "value": value,
    });
    if never {
        pc["preemptionPolicy"] = json!("Never");
    }
    srv.create_json("scheduling.k8s.io", "v1", "priorityclasses", "", pc)
        .unwrap();
}

/// A coscheduling PodGroup `name` of `min` and `pods` pods asking for `cpus`
/// CPUs each, in PriorityClass `class`.
fn add_gang(srv: &ApiServer, name: &str, min: u32, pods: u32, cpus: u32, class: &str) {
    srv.create_json(
        "scheduling.x-k8s.io",
        "v1alpha1",
        "podgroups",
        NS,
        podgroup_json(NS, name, json!({"minMember": min})),
    )
    .unwrap();
    for i in 0..pods {
        let mut p = serde_json::to_value(pod(
            NS,
            &format!("{name}-{i}"),
            "phalanx",
            cpus,
            &[("scheduling.x-k8s.io/pod-group", name), ("app", name)],
        ))
        .unwrap();
        p["spec"]["priorityClassName"] = json!(class);
        srv.create_json("", "v1", "pods", NS, p).unwrap();
    }
}

/// Pods named `prefix*` that still exist.
fn existing(srv: &ApiServer, prefix: &str) -> Vec<Pod> {
    srv.list::<Pod>()
        .into_iter()
        .filter(|p| {
            p.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect()
}

fn terminating(srv: &ApiServer, prefix: &str) -> usize {
    existing(srv, prefix)
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_some())
        .count()
}

/// Pods named `prefix*` that show a `status.nominatedNodeName`, and where.
fn nominations(srv: &ApiServer, prefix: &str) -> Vec<(String, String)> {
    existing(srv, prefix)
        .into_iter()
        .filter_map(|p| {
            Some((
                p.metadata.name?,
                p.status?.nominated_node_name.filter(|n| !n.is_empty())?,
            ))
        })
        .collect()
}

fn pod_deletes(srv: &ApiServer) -> u64 {
    srv.request_count("delete", "pods")
}

/// The scheduler's `/metrics` text.
async fn metrics(sched: &SchedulerHandle) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(sched.metrics_addr())
        .await
        .unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

/// A kubelet whose pods take `stop` to stop once deleted.
fn kubelet(srv: &ApiServer, stop: Duration) {
    srv.start_kubelet(KubeletOptions {
        stop_after: stop,
        ..Default::default()
    });
}

/// A cluster of 2 nodes x 2 CPUs held whole by the 4-pod gang `low-*` of
/// PriorityClass `low` (100), with class `high` (1000) for a preemptor, and
/// the scheduler running. The kubelet stops a deleted pod after `stop`.
async fn held_by_a_low_gang(stop: Duration) -> (ApiServer, SchedulerHandle) {
    let srv = ApiServer::start().await.unwrap();
    kubelet(&srv, stop);
    add_nodes(&srv, 2, 2);
    priority_class(&srv, "low", 100, false);
    priority_class(&srv, "high", 1000, false);
    let sched = start(&srv).await;
    add_gang(&srv, "low", 4, 4, 1, "low");
    assert!(wait_for(WAIT, || bound_pods(&srv, "low-").len() == 4).await);
    (srv, sched)
}

/// The preemption writes on their own, without the core: the victim gets a
/// DisruptionTarget condition and a graceful delete, a pod replaced under the
/// same name is left alone, and the preemptor gets its nominated node.
#[tokio::test]
async fn eviction_marks_the_victim_then_deletes_it_gracefully_by_uid() {
    let srv = ApiServer::start().await.unwrap();
    add_nodes(&srv, 1, 4);
    let (writer, metrics) = common::leading_writer(&srv, &args());
    let created = srv.create(&pod(NS, "victim", "phalanx", 1, &[])).unwrap();
    srv.bind(NS, "victim", "n0").unwrap();
    let uid = created["metadata"]["uid"].as_str().unwrap().to_string();
    let b = phalanx_gang::PodBinding {
        pod: phalanx_gang::PodUid(uid.clone()),
        namespace: NS.into(),
        name: "victim".into(),
        node: "n0".into(),
    };
    assert!(
        writer
            .evict(&b, "phalanx: preempting", "Preempted by pod group x".into())
            .await
    );
    let v: Pod = srv.get(NS, "victim").expect("terminating, not gone yet");
    assert!(v.metadata.deletion_timestamp.is_some());
    assert_eq!(v.metadata.deletion_grace_period_seconds, Some(30));
    let cond = v
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "DisruptionTarget")
        .expect("DisruptionTarget condition");
    assert_eq!(
        (cond.status.as_str(), cond.reason.as_deref()),
        ("True", Some("PreemptionByScheduler"))
    );
    assert_eq!(metrics.preempted_pods.get(), 1);
    assert!(
        wait_for(WAIT, || notes(&srv, "victim")
            .contains("Preempted: Preempted by"))
        .await,
        "{}",
        notes(&srv, "victim")
    );

    // The same name, a new pod: neither marked nor deleted, and that is "done".
    srv.delete::<Pod>(NS, "victim").unwrap();
    srv.create(&pod(NS, "victim", "phalanx", 1, &[])).unwrap();
    srv.bind(NS, "victim", "n0").unwrap();
    assert!(writer.evict(&b, "phalanx: preempting", "x".into()).await);
    let fresh: Pod = srv.get(NS, "victim").unwrap();
    assert!(fresh.metadata.deletion_timestamp.is_none());
    assert!(
        fresh
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .all(|c| c.type_ != "DisruptionTarget")
    );
    // A victim already gone is fine too.
    srv.delete::<Pod>(NS, "victim").unwrap();
    assert!(writer.evict(&b, "phalanx: preempting", "x".into()).await);

    let created = srv
        .create(&pod(NS, "preemptor", "phalanx", 1, &[]))
        .unwrap();
    let nominee = phalanx_gang::PodBinding {
        pod: phalanx_gang::PodUid(created["metadata"]["uid"].as_str().unwrap().into()),
        namespace: NS.into(),
        name: "preemptor".into(),
        node: "n0".into(),
    };
    writer.nominate(&nominee).await;
    let nominated = || {
        srv.get::<Pod>(NS, "preemptor")
            .and_then(|p| p.status)
            .and_then(|s| s.nominated_node_name)
    };
    assert_eq!(nominated().as_deref(), Some("n0"));
    writer.clear_nomination(&nominee).await;
    assert_eq!(nominated(), None);
}

/// PodDisruptionBudgets are watched and served like any other kind, and a
/// scheduler that cannot read them is not ready (no victim is chosen blind).
#[tokio::test]
async fn budgets_are_watched_before_anything_is_placed() {
    let srv = ApiServer::start().await.unwrap();
    add_nodes(&srv, 1, 2);
    srv.fail_next("list", "poddisruptionbudgets", None, 500, 1);
    let sched = start(&srv).await;
    assert!(srv.request_count("list", "poddisruptionbudgets") >= 2);
    assert!(
        wait_for(WAIT, || srv.request_count("watch", "poddisruptionbudgets")
            >= 1)
        .await
    );
    sched.shutdown().await;
}

/// The first "done when": a high-priority 2-pod gang arriving on a
/// cluster held by one low-priority 4-pod gang is bound within seconds, and
/// no pod of the low-priority gang is left: all four are deleted, not two.
#[tokio::test]
async fn a_high_priority_gang_evicts_a_whole_low_priority_gang() {
    let (srv, sched) = held_by_a_low_gang(Duration::from_millis(200)).await;
    let t0 = tokio::time::Instant::now();
    add_gang(&srv, "high", 2, 2, 1, "high");
    assert!(
        wait_for(WAIT, || bound_pods(&srv, "high-").len() == 2).await,
        "high gang not bound: {:?}\n{}",
        bound_pods(&srv, "high-"),
        notes(&srv, "")
    );
    let took = t0.elapsed();
    assert!(
        wait_for(WAIT, || existing(&srv, "low-").is_empty()).await,
        "the whole low gang goes, not a part of it: {:?}",
        bound_pods(&srv, "low-")
    );
    assert_eq!(pod_deletes(&srv), 4, "one delete per victim, no more");
    assert!(overcommitted_nodes(&srv).is_empty());
    // Both sides hear about it; the preemptor was nominated where it went.
    let victims = notes(&srv, "low-");
    assert_eq!(
        victims
            .matches("Preempted: Preempted by pod group default/high")
            .count(),
        4,
        "{victims}"
    );
    assert!(
        wait_for(WAIT, || notes(&srv, "low").contains(
            "Preempted: 4 of its pods preempted by pod group default/high"
        ))
        .await,
        "the victim's PodGroup hears of it: {}",
        notes(&srv, "low")
    );
    assert!(
        notes(&srv, "high-").contains("Preempting: "),
        "{}",
        notes(&srv, "high-")
    );
    // Bound, the preemptor no longer shows a nomination (the binding clears it).
    assert!(
        wait_for(WAIT, || nominations(&srv, "high-").is_empty()).await,
        "{:?}",
        nominations(&srv, "high-")
    );
    let m = metrics(&sched).await;
    assert!(m.contains("phalanx_preemptions_total 1\n"), "{m}");
    assert!(m.contains("phalanx_preempted_pods_total 4\n"), "{m}");
    eprintln!("high gang bound {took:?} after it arrived");
    sched.shutdown().await;
}

/// `preemptionPolicy: Never` (from the PriorityClass) waits for room and evicts nothing.
#[tokio::test]
async fn preemption_policy_never_waits_for_room() {
    let srv = ApiServer::start().await.unwrap();
    kubelet(&srv, Duration::ZERO);
    add_nodes(&srv, 2, 2);
    priority_class(&srv, "low", 100, false);
    priority_class(&srv, "polite", 1000, true);
    let sched = start(&srv).await;
    add_gang(&srv, "low", 4, 4, 1, "low");
    assert!(wait_for(WAIT, || bound_pods(&srv, "low-").len() == 4).await);
    add_gang(&srv, "polite", 2, 2, 1, "polite");
    tokio::time::sleep(SETTLE).await;
    assert!(bound_pods(&srv, "polite-").is_empty());
    assert_eq!(bound_pods(&srv, "low-").len(), 4);
    assert_eq!((pod_deletes(&srv), terminating(&srv, "low-")), (0, 0));
    // Room appears: it runs.
    for i in 0..4 {
        srv.delete::<Pod>(NS, &format!("low-{i}")).unwrap();
    }
    assert!(wait_for(WAIT, || bound_pods(&srv, "polite-").len() == 2).await);
    sched.shutdown().await;
}

/// A gang never preempts one of equal priority.
#[tokio::test]
async fn equal_priority_never_preempts() {
    let srv = ApiServer::start().await.unwrap();
    kubelet(&srv, Duration::ZERO);
    add_nodes(&srv, 2, 2);
    priority_class(&srv, "same", 500, false);
    let sched = start(&srv).await;
    add_gang(&srv, "first", 4, 4, 1, "same");
    assert!(wait_for(WAIT, || bound_pods(&srv, "first-").len() == 4).await);
    add_gang(&srv, "second", 2, 2, 1, "same");
    tokio::time::sleep(SETTLE).await;
    assert!(bound_pods(&srv, "second-").is_empty());
    assert_eq!(bound_pods(&srv, "first-").len(), 4);
    assert_eq!((pod_deletes(&srv), terminating(&srv, "first-")), (0, 0));
    assert!(!notes(&srv, "first-").contains("Preempted"));
    sched.shutdown().await;
}

/// While the victims terminate, the nodes are held for the preemptor: a
/// lower-priority pod arriving then does not take them.
#[tokio::test]
async fn nomination_holds_the_nodes_against_a_lower_priority_newcomer() {
    let (srv, sched) = held_by_a_low_gang(Duration::from_millis(1500)).await;
    // Two pods of 2 CPUs: the high gang needs the whole cluster.
    add_gang(&srv, "high", 2, 2, 2, "high");
    assert!(wait_for(WAIT, || terminating(&srv, "low-") == 4).await);
    let mut newcomer = serde_json::to_value(pod(NS, "newcomer", "phalanx", 1, &[])).unwrap();
    newcomer["spec"]["priorityClassName"] = json!("low");
    srv.create_json("", "v1", "pods", NS, newcomer).unwrap();
    assert!(wait_for(WAIT, || bound_pods(&srv, "high-").len() == 2).await);
    tokio::time::sleep(SETTLE).await;
    assert!(
        bound_pods(&srv, "newcomer").is_empty(),
        "the newcomer took room held for the preemptor"
    );
    assert!(overcommitted_nodes(&srv).is_empty());
    sched.shutdown().await;
}

/// Victims are chosen to keep PodDisruptionBudgets: of two equal gangs the
/// one a budget protects stays, although evicting it would lose less work.
#[tokio::test]
async fn a_disruption_budget_steers_the_choice_of_victims() {
    let srv = ApiServer::start().await.unwrap();
    kubelet(&srv, Duration::from_millis(100));
    add_nodes(&srv, 2, 2);
    priority_class(&srv, "low", 100, false);
    priority_class(&srv, "high", 1000, false);
    let sched = start(&srv).await;
    add_gang(&srv, "older", 2, 2, 1, "low");
    assert!(wait_for(WAIT, || bound_pods(&srv, "older-").len() == 2).await);
    // The younger gang has run for less time: without a budget it is the cheaper victim.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    add_gang(&srv, "younger", 2, 2, 1, "low");
    assert!(wait_for(WAIT, || bound_pods(&srv, "younger-").len() == 2).await);
    let spec = json!({"minAvailable": 2, "selector": {"matchLabels": {"app": "younger"}}});
    create_budget(&srv, NS, "younger", spec, 0, 2);
    tokio::time::sleep(Duration::from_millis(200)).await;
    add_gang(&srv, "high", 2, 2, 1, "high");
    assert!(
        wait_for(WAIT, || bound_pods(&srv, "high-").len() == 2).await,
        "{}",
        notes(&srv, "")
    );
    assert!(
        existing(&srv, "older-").is_empty(),
        "the unprotected gang goes"
    );
    assert_eq!(
        bound_pods(&srv, "younger-").len(),
        2,
        "the protected gang stays"
    );
    assert_eq!(terminating(&srv, "younger-"), 0);
    sched.shutdown().await;
}

/// Elastic: minimum 2 of 4 pods, room for 3: the minimum starts whole and
/// one more joins; the status says how many of how many run.
#[tokio::test]
async fn elastic_minimum_2_of_4_with_room_for_3_runs_3() {
    let srv = ApiServer::start().await.unwrap();
    kubelet(&srv, Duration::ZERO);
    add_nodes(&srv, 3, 1);
    priority_class(&srv, "normal", 0, false);
    let sched = start(&srv).await;
    add_gang(&srv, "el", 2, 4, 1, "normal");
    assert!(wait_for(WAIT, || bound_pods(&srv, "el-").len() == 3).await);
    tokio::time::sleep(SETTLE).await;
    assert_eq!(bound_pods(&srv, "el-").len(), 3);
    let message = || {
        srv.get::<phalanx_kube::crd::PodGroup>(NS, "el")
            .and_then(|g| g.status)
            .and_then(|s| s.message)
            .unwrap_or_default()
    };
    assert!(
        wait_for(WAIT, || message()
            .contains("3 of 4 members running (minimum 2)"))
        .await,
        "{}",
        message()
    );
    assert!(message().contains("1 wait for room"), "{}", message());
    // Room for the fourth: it joins.
    srv.create(&node("n9", 1, &[])).unwrap();
    assert!(wait_for(WAIT, || bound_pods(&srv, "el-").len() == 4).await);
    sched.shutdown().await;
}

/// Elastic: minimum 2, room for 1: nothing runs (the minimum is all-or-nothing).
#[tokio::test]
async fn elastic_minimum_2_with_room_for_1_runs_none() {
    let srv = ApiServer::start().await.unwrap();
    kubelet(&srv, Duration::ZERO);
    add_nodes(&srv, 1, 1);
    priority_class(&srv, "normal", 0, false);
    let sched = start(&srv).await;
    add_gang(&srv, "el", 2, 4, 1, "normal");
    tokio::time::sleep(SETTLE).await;
    assert!(bound_pods(&srv, "el-").is_empty());
    assert_eq!(srv.request_count("create", "pods/binding"), 0);
    sched.shutdown().await;
}

/// A restart while the victims terminate finishes the preemption without
/// choosing more victims: the new scheduler sees the terminating pods (their
/// room is coming) and neither deletes them again nor touches another gang.
#[tokio::test]
async fn a_restart_in_the_middle_of_a_preemption_takes_no_extra_victims() {
    let srv = ApiServer::start().await.unwrap();
    kubelet(&srv, Duration::from_secs(3));
    add_nodes(&srv, 2, 4);
    priority_class(&srv, "low", 100, false);
    priority_class(&srv, "high", 1000, false);
    let first = start(&srv).await;
    add_gang(&srv, "a", 4, 4, 1, "low");
    assert!(wait_for(WAIT, || bound_pods(&srv, "a-").len() == 4).await);
    add_gang(&srv, "b", 4, 4, 1, "low");
    assert!(wait_for(WAIT, || bound_pods(&srv, "b-").len() == 4).await);
    add_gang(&srv, "high", 4, 4, 1, "high");
    // One whole gang is terminating (which one is the core's choice).
    assert!(
        wait_for(WAIT, || terminating(&srv, "a-") == 4
            || terminating(&srv, "b-") == 4)
        .await,
        "{}",
        notes(&srv, "")
    );
    first.kill();
    let deletes = pod_deletes(&srv);
    assert_eq!(deletes, 4);
    let second = start(&srv).await;
    assert!(
        wait_for(WAIT, || bound_pods(&srv, "high-").len() == 4).await,
        "{}",
        notes(&srv, "high-")
    );
    let (gone, kept) = if existing(&srv, "a-").is_empty() {
        ("a-", "b-")
    } else {
        ("b-", "a-")
    };
    assert!(existing(&srv, gone).is_empty());
    assert_eq!(bound_pods(&srv, kept).len(), 4, "no extra victims");
    assert_eq!(terminating(&srv, kept), 0);
    assert_eq!(pod_deletes(&srv), 4, "no victim deleted twice");
    assert!(overcommitted_nodes(&srv).is_empty());
    second.shutdown().await;
}

/// Budgets on the wire: the disruption controller's status is what the
/// scheduler reads; a malformed selector is reported, not obeyed.
#[tokio::test]
async fn an_invalid_budget_is_reported_by_field() {
    let srv = ApiServer::start().await.unwrap();
    add_nodes(&srv, 1, 2);
    let sched = start(&srv).await;
    srv.create_json(
        "policy",
        "v1",
        "poddisruptionbudgets",
        NS,
        json!({
            "metadata": {"name": "odd", "namespace": NS},
            "spec": {"selector": {"matchExpressions": [{"key": "n", "operator": "Gt", "values": ["1"]}]}},
        }),
    )
    .unwrap();
    assert!(
        wait_for(WAIT, || notes(&srv, "odd")
            .contains("InvalidPodDisruptionBudget: PodDisruptionBudget default/odd ignored: spec.selector.matchExpressions[0].operator"))
        .await,
        "{}",
        notes(&srv, "odd")
    );
    sched.shutdown().await;
}

/// A Flux MiniCluster with `size: 2` and `maxSize: 4` is elastic: its first
/// two pods start together, the others join while there is room, and never
/// more than four run (a fifth pod waits although a node is free).
#[tokio::test]
async fn a_minicluster_grows_from_size_towards_max_size() {
    let srv = ApiServer::start().await.unwrap();
    srv.install(ResourceType::minicluster());
    kubelet(&srv, Duration::ZERO);
    add_nodes(&srv, 5, 1);
    let sched = start(&srv).await;
    let spec = json!({"size": 2, "maxSize": 4, "pod": {"schedulerName": "phalanx"}});
    create_minicluster(&srv, NS, "flux", spec, 5);
    let flux_pod = |i: u32| minicluster_pod_json(NS, "flux", i);
    // One pod of a minimum of two: nothing starts.
    srv.create_json("", "v1", "pods", NS, flux_pod(0)).unwrap();
    tokio::time::sleep(SETTLE).await;
    assert!(bound_pods(&srv, "flux-").is_empty());
    for i in 1..5 {
        srv.create_json("", "v1", "pods", NS, flux_pod(i)).unwrap();
    }
    assert!(wait_for(WAIT, || bound_pods(&srv, "flux-").len() == 4).await);
    tokio::time::sleep(SETTLE).await;
    assert_eq!(
        bound_pods(&srv, "flux-").len(),
        4,
        "maxSize is the most that run"
    );
    assert!(overcommitted_nodes(&srv).is_empty());
    sched.shutdown().await;
}

/// A native PodGroup's own `priority` makes it the preemptor (its pods carry
/// no PriorityClass), and `disruptionMode: PodGroup` on the victim is honoured:
/// the whole victim gang goes.
#[tokio::test]
async fn a_native_podgroup_priority_preempts_a_native_gang() {
    let srv = ApiServer::start().await.unwrap();
    kubelet(&srv, Duration::from_millis(100));
    add_nodes(&srv, 2, 2);
    let sched = start(&srv).await;
    let group = |name: &str, min: u32, priority: i32| {
        let spec = json!({"schedulingPolicy": {"gang": {"minCount": min}}, "priority": priority,
                          "disruptionMode": "PodGroup"});
        let pg = native_podgroup_json(NS, "v1alpha2", name, spec);
        srv.create_json("scheduling.k8s.io", "v1alpha2", "podgroups", NS, pg)
            .unwrap();
    };
    let member = |name: String, group: &str| {
        srv.create_json("", "v1", "pods", NS, native_member_json(NS, &name, group))
            .unwrap();
    };
    group("batch", 4, 10);
    for i in 0..4 {
        member(format!("batch-{i}"), "batch");
    }
    assert!(wait_for(WAIT, || bound_pods(&srv, "batch-").len() == 4).await);
    group("urgent", 2, 5000);
    for i in 0..2 {
        member(format!("urgent-{i}"), "urgent");
    }
    assert!(
        wait_for(WAIT, || bound_pods(&srv, "urgent-").len() == 2).await,
        "{}",
        notes(&srv, "")
    );
    assert!(wait_for(WAIT, || existing(&srv, "batch-").is_empty()).await);
    assert!(
        notes(&srv, "batch-").contains("priority 5000"),
        "{}",
        notes(&srv, "batch-")
    );
    assert!(
        wait_for(WAIT, || notes(&srv, "batch").contains(
            "Preempted: 4 of its pods preempted by pod group default/podgroup:urgent"
        ))
        .await,
        "{}",
        notes(&srv, "batch")
    );
    // With the PodGroup's UID, or `kubectl describe podgroup` would not list it.
    let uid = object_uid(
        &srv,
        "scheduling.k8s.io",
        "v1alpha2",
        "podgroups",
        NS,
        "batch",
    );
    assert!(uid.is_some());
    assert_eq!(
        event_regarding_uids(&srv, "PodGroup", "batch", "Preempted"),
        vec![uid]
    );
    sched.shutdown().await;
}

/// A native PodGroup with `minCount` below its pod count is elastic too, and
/// its `PodGroupScheduled` condition says how many of how many pods run
/// (kept up to date while it stays True).
#[tokio::test]
async fn a_native_min_count_below_the_group_size_is_elastic() {
    let srv = ApiServer::start().await.unwrap();
    kubelet(&srv, Duration::ZERO);
    add_nodes(&srv, 3, 1);
    let sched = start(&srv).await;
    let spec = json!({"schedulingPolicy": {"gang": {"minCount": 2}}});
    let pg = native_podgroup_json(NS, "v1alpha2", "nat", spec);
    srv.create_json("scheduling.k8s.io", "v1alpha2", "podgroups", NS, pg)
        .unwrap();
    for i in 0..4 {
        let member = native_member_json(NS, &format!("nat-{i}"), "nat");
        srv.create_json("", "v1", "pods", NS, member).unwrap();
    }
    assert!(wait_for(WAIT, || bound_pods(&srv, "nat-").len() == 3).await);
    let condition = || {
        let store = srv.store();
        store
            .resource_type("scheduling.k8s.io", "v1alpha2", "podgroups")
            .and_then(|rt| store.get(&rt, NS, "nat").ok())
            .and_then(|pg| pg.pointer("/status/conditions/0").cloned())
            .unwrap_or_default()
    };
    assert!(
        wait_for(WAIT, || {
            let c = condition();
            c["status"] == "True"
                && c["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("3 of 4 members running (minimum 2)"))
        })
        .await,
        "{}",
        condition()
    );
    tokio::time::sleep(SETTLE).await;
    assert_eq!(bound_pods(&srv, "nat-").len(), 3);
    sched.shutdown().await;
}

/// Measurement, not a check of speed: a cluster of 64 nodes x 8 CPUs held
/// by 32 low-priority gangs of 16 pods, then a high-priority gang of 64 pods
/// x 2 CPUs. Prints how long until it is bound, and what it cost. Run with
/// `cargo test -p phalanx-tests --test preemption preemption_at_scale -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "measurement; run by hand"]
async fn preemption_at_scale() {
    let srv = ApiServer::start().await.unwrap();
    kubelet(&srv, Duration::ZERO);
    add_nodes(&srv, 64, 8);
    priority_class(&srv, "low", 100, false);
    priority_class(&srv, "high", 1000, false);
    let sched = start(&srv).await;
    for g in 0..32 {
        add_gang(&srv, &format!("low{g:02}"), 16, 16, 1, "low");
    }
    let long = Duration::from_secs(120);
    assert!(wait_for(long, || srv.count_bound_pods("low") == 512).await);
    // Let the kubelet's Running updates and the status writes they cause settle first.
    let running = || {
        srv.list::<Pod>()
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .count()
    };
    assert!(wait_for(long, || running() == 512).await);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before: u64 = srv.request_counts().values().sum();
    let binds_before = srv.request_count("create", "pods/binding");
    let t0 = std::time::Instant::now();
    add_gang(&srv, "high", 64, 64, 2, "high");
    // Polled through request counters: listing pods every few ms would hold
    // the test server's lock and slow down what is measured.
    let (mut first_patch, mut first_delete, mut all_deleted, mut first_bind) =
        (None, None, None, None);
    loop {
        let at = Some(t0.elapsed());
        if first_patch.is_none() && srv.request_count("patch", "pods/status") > 0 {
            first_patch = at;
        }
        let d = pod_deletes(&srv);
        if d > 0 && first_delete.is_none() {
            first_delete = at;
        }
        if d >= 128 && all_deleted.is_none() {
            all_deleted = at;
        }
        let b = srv.request_count("create", "pods/binding") - binds_before;
        if b > 0 && first_bind.is_none() {
            first_bind = at;
        }
        if b >= 64 {
            break;
        }
        assert!(t0.elapsed() < long, "{}", notes(&srv, "high-0"));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = t0.elapsed();
    assert!(wait_for(WAIT, || srv.count_bound_pods("high-") == 64).await);
    let after: u64 = srv.request_counts().values().sum();
    let victims = pod_deletes(&srv);
    let partial: Vec<String> = (0..32)
        .map(|g| format!("low{g:02}-"))
        .filter(|p| {
            let n = existing(&srv, p).len();
            n != 0 && n != 16
        })
        .collect();
    assert!(partial.is_empty(), "partly evicted gangs: {partial:?}");
    assert!(overcommitted_nodes(&srv).is_empty());
    let m = metrics(&sched).await;
    let matching: Vec<&str> = m
        .lines()
        .filter(|l| l.starts_with("phalanx_match_latency_seconds_sum"))
        .collect();
    println!(
        "high gang of 64 bound {:.0} ms after it arrived (first victim marked {first_patch:?}, \
         first deleted {first_delete:?}, all deleted {all_deleted:?}, first bind {first_bind:?}); \
         {victims} victim pods ({} gangs); {} API requests meanwhile; {matching:?}",
        took.as_secs_f64() * 1e3,
        victims / 16,
        after - before
    );
    sched.shutdown().await;
}

/// `--preemption false`: priority only orders the queue; nothing is evicted.
#[tokio::test]
async fn with_preemption_off_a_high_priority_gang_waits() {
    let srv = ApiServer::start().await.unwrap();
    kubelet(&srv, Duration::ZERO);
    add_nodes(&srv, 2, 2);
    priority_class(&srv, "low", 100, false);
    priority_class(&srv, "high", 1000, false);
    let sched = start_with(
        &srv,
        RunArgs {
            preemption: Some(false),
            ..args()
        },
    )
    .await;
    add_gang(&srv, "low", 4, 4, 1, "low");
    assert!(wait_for(WAIT, || bound_pods(&srv, "low-").len() == 4).await);
    add_gang(&srv, "high", 2, 2, 1, "high");
    tokio::time::sleep(SETTLE).await;
    assert!(bound_pods(&srv, "high-").is_empty());
    assert_eq!((pod_deletes(&srv), terminating(&srv, "low-")), (0, 0));
    sched.shutdown().await;
}

/// On a server older than 1.35 the binding leaves `nominatedNodeName`
/// behind; the scheduler clears it once the preemptor is bound, as the
/// nomination is over (a stale one misleads users and other schedulers).
#[tokio::test]
async fn a_bound_preemptor_loses_its_nomination_on_an_older_server() {
    let srv = ApiServer::start_with(ApiServerOptions {
        clear_nominated_on_bind: false,
        ..Default::default()
    })
    .await
    .unwrap();
    kubelet(&srv, Duration::from_millis(300));
    add_nodes(&srv, 2, 2);
    priority_class(&srv, "low", 100, false);
    priority_class(&srv, "high", 1000, false);
    let _sched = start(&srv).await;
    add_gang(&srv, "low", 4, 4, 1, "low");
    assert!(wait_for(WAIT, || bound_pods(&srv, "low-").len() == 4).await);
    add_gang(&srv, "high", 2, 2, 1, "high");
    // While the victims terminate, the preemptor shows where it goes.
    assert!(
        wait_for(WAIT, || nominations(&srv, "high-").len() == 2).await,
        "{}",
        notes(&srv, "")
    );
    assert!(wait_for(WAIT, || bound_pods(&srv, "high-").len() == 2).await);
    assert!(
        wait_for(WAIT, || nominations(&srv, "high-").is_empty()).await,
        "still nominated once bound: {:?}",
        nominations(&srv, "high-")
    );
}

/// A preemptor deleted while its victims terminate: the room it held is
/// free again once they are gone, for a lower priority too.
#[tokio::test]
async fn a_preemptor_deleted_mid_preemption_releases_its_room() {
    let (srv, sched) = held_by_a_low_gang(Duration::from_millis(1500)).await;
    add_gang(&srv, "high", 2, 2, 1, "high");
    assert!(
        wait_for(WAIT, || terminating(&srv, "low-") == 4).await,
        "{}",
        notes(&srv, "")
    );
    // The preemptor goes before its victims do.
    for i in 0..2 {
        srv.delete::<Pod>(NS, &format!("high-{i}")).unwrap();
    }
    assert!(wait_for(WAIT, || existing(&srv, "low-").is_empty()).await);
    // A low-priority gang of the whole cluster fits: nothing is held any more.
    add_gang(&srv, "next", 4, 4, 1, "low");
    assert!(
        wait_for(WAIT, || bound_pods(&srv, "next-").len() == 4).await,
        "the held room leaked: {}",
        notes(&srv, "")
    );
    assert!(overcommitted_nodes(&srv).is_empty());
    sched.shutdown().await;
}

/// A MiniCluster with a `maxSize` no cluster can hold is reported on the
/// MiniCluster by field and nothing of it is placed; fixed, it runs.
#[tokio::test]
async fn a_hostile_minicluster_max_size_is_reported_by_field() {
    let srv = ApiServer::start().await.unwrap();
    srv.install(ResourceType::minicluster());
    kubelet(&srv, Duration::ZERO);
    add_nodes(&srv, 2, 2);
    let sched = start(&srv).await;
    let spec = json!({"size": 2, "maxSize": i64::MAX, "pod": {"schedulerName": "phalanx"}});
    create_minicluster(&srv, NS, "flux", spec, 2);
    for i in 0..2 {
        srv.create_json("", "v1", "pods", NS, minicluster_pod_json(NS, "flux", i))
            .unwrap();
    }
    assert!(
        wait_for(WAIT, || notes(&srv, "").contains("spec.maxSize")).await,
        "{}",
        notes(&srv, "")
    );
    assert!(bound_pods(&srv, "flux-").is_empty());
    srv.store()
        .mutate(&ResourceType::minicluster(), NS, "flux", |m| {
            m["spec"]["maxSize"] = json!(4)
        })
        .unwrap();
    assert!(
        wait_for(WAIT, || bound_pods(&srv, "flux-").len() == 2).await,
        "{}",
        notes(&srv, "")
    );
    sched.shutdown().await;
}

/// Hostile budgets: `disruptionsAllowed` negative and at i32::MAX, a
/// selector of thousands of expressions, hundreds of budgets. The scheduler
/// reads them all without a hitch; a negative allowance protects like 0, so
/// the gang it covers is evicted only as a last resort, and the victims are
/// told a budget was broken.
#[tokio::test]
async fn hostile_budgets_are_read_and_a_negative_allowance_protects() {
    let (srv, sched) = held_by_a_low_gang(Duration::from_millis(100)).await;
    let pdb = |name: &str, selector: serde_json::Value, allowed: i64| {
        let spec = json!({"minAvailable": 1, "selector": selector});
        create_budget(&srv, NS, name, spec, allowed, 4);
    };
    let many: Vec<serde_json::Value> = (0..3000)
        .map(|i| json!({"key": format!("k{i}"), "operator": "NotIn", "values": ["x", "y"]}))
        .collect();
    pdb(
        "huge",
        json!({"matchLabels": {"app": "low"}, "matchExpressions": many}),
        i64::from(i32::MAX),
    );
    pdb(
        "negative",
        json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["low"]}]}),
        -5,
    );
    for i in 0..300 {
        pdb(
            &format!("other{i}"),
            json!({"matchExpressions": [{"key": "app", "operator": "Exists"}, {"key": "tier", "operator": "DoesNotExist"}]}),
            i64::from(i % 3) - 1,
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    add_gang(&srv, "high", 2, 2, 1, "high");
    assert!(
        wait_for(WAIT, || bound_pods(&srv, "high-").len() == 2).await,
        "{}",
        notes(&srv, "")
    );
    assert!(wait_for(WAIT, || existing(&srv, "low-").is_empty()).await);
    assert!(
        notes(&srv, "low-").contains("PodDisruptionBudget"),
        "the victims hear a budget was broken: {}",
        notes(&srv, "low-")
    );
    assert!(!notes(&srv, "").contains("InvalidPodDisruptionBudget"));
    assert!(sched.is_ready());
    sched.shutdown().await;
}

/// A preemptor that can no longer use the room held for it (here it lost a
/// pod and is below its minimum) gives it up, and its remaining pods lose
/// their `nominatedNodeName`, as kube-scheduler clears a nomination that
/// preemption no longer backs.
#[tokio::test]
async fn an_abandoned_nomination_is_cleared_from_the_pods() {
    let (srv, sched) = held_by_a_low_gang(Duration::from_secs(3)).await;
    add_gang(&srv, "high", 2, 2, 1, "high");
    assert!(
        wait_for(WAIT, || nominations(&srv, "high-").len() == 2).await,
        "{}",
        notes(&srv, "")
    );
    srv.delete::<Pod>(NS, "high-1").unwrap();
    assert!(
        wait_for(WAIT, || nominations(&srv, "high-").is_empty()).await,
        "{:?}",
        nominations(&srv, "high-")
    );
    assert!(bound_pods(&srv, "high-").is_empty());
    sched.shutdown().await;
}
