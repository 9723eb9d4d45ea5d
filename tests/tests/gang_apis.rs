//! Every gang convention users bring, end to end: the scheduler against the
//! test API server, through the real kube client. Starts with the three
//! failures issue 15 reported from a real 1.36 control plane (a native
//! minCount-4 group with 3 pods, a gang with a gated member, a Kueue group of
//! total 3 with 2 pods): none of them may bind anything.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
mod common;

use phalanx_kube::SchedulerHandle;
use phalanx_tests::apiserver::{ApiServer, KubeletOptions, ResourceType};
use phalanx_tests::fixtures::{
    bound_pods, event_notes as notes, event_reasons, native_member_json, native_podgroup_json,
    node, pod, wait_for,
};
use serde_json::{Value, json};

const NS: &str = "default";
const WAIT: Duration = Duration::from_secs(10);
/// How long a test lets the scheduler try before it checks that nothing was bound.
const SETTLE: Duration = Duration::from_millis(400);

async fn start(srv: &ApiServer) -> SchedulerHandle {
    common::start_scheduler(srv, common::test_args(), WAIT).await
}

fn add_nodes(srv: &ApiServer, n: usize, cpus: u32) {
    for i in 0..n {
        srv.create(&node(
            &format!("n{i}"),
            cpus,
            &[("topology.kubernetes.io/zone", "z1")],
        ))
        .unwrap();
    }
}

/// A pod of ours as JSON, with labels, annotations and extra `spec` fields
/// (JSON, because the typed Pod of the compiled Kubernetes version may lack them).
fn pod_json(
    name: &str,
    labels: &[(&str, &str)],
    annotations: &[(&str, &str)],
    spec: Value,
) -> Value {
    let mut v = serde_json::to_value(pod(NS, name, "phalanx", 1, labels)).unwrap();
    let ann: BTreeMap<&str, &str> = annotations.iter().copied().collect();
    v["metadata"]["annotations"] = json!(ann);
    if let (Some(s), Some(extra)) = (v["spec"].as_object_mut(), spec.as_object()) {
        for (k, x) in extra {
            s.insert(k.clone(), x.clone());
        }
    }
    v
}

fn create_pod(srv: &ApiServer, v: Value) {
    srv.create_json("", "v1", "pods", NS, v).unwrap();
}

fn native_pod(name: &str, group: &str) -> Value {
    native_member_json(NS, name, group)
}

fn native_podgroup(srv: &ApiServer, version: &str, name: &str, policy: Value) {
    let pg = native_podgroup_json(NS, version, name, json!({"schedulingPolicy": policy}));
    srv.create_json("scheduling.k8s.io", version, "podgroups", NS, pg)
        .unwrap();
}

fn binds(srv: &ApiServer) -> u64 {
    srv.request_count("create", "pods/binding")
}

/// Failure 1 of issue 15: a native minCount-4 PodGroup with 3 pods gets no bind.
#[tokio::test]
async fn native_min_count_4_with_3_pods_gets_no_bind() {
    let srv = ApiServer::start().await.unwrap();
    add_nodes(&srv, 4, 4);
    let sched = start(&srv).await;
    native_podgroup(&srv, "v1alpha2", "train", json!({"gang": {"minCount": 4}}));
    for i in 0..3 {
        create_pod(&srv, native_pod(&format!("train-{i}"), "train"));
    }
    tokio::time::sleep(SETTLE).await;
    assert_eq!(binds(&srv), 0, "3 of 4: no bind may even be tried");
    create_pod(&srv, native_pod("train-3", "train"));
    assert!(
        wait_for(WAIT, || bound_pods(&srv, "train-").len() == 4).await,
        "{:?}",
        bound_pods(&srv, "train-")
    );
    // PodGroupScheduled, as kube-scheduler writes it for v1alpha2.
    let scheduled = || {
        let store = srv.store();
        store
            .resource_type("scheduling.k8s.io", "v1alpha2", "podgroups")
            .and_then(|rt| store.get(&rt, NS, "train").ok())
            .and_then(|pg| pg.pointer("/status/conditions").cloned())
            .and_then(|c| c.as_array().cloned())
            .is_some_and(|c| {
                c.iter().any(|c| {
                    c["type"] == "PodGroupScheduled"
                        && c["status"] == "True"
                        && c["reason"] == "Scheduled"
                })
            })
    };
    assert!(wait_for(WAIT, scheduled).await, "PodGroupScheduled=True");
    // Reading and writing native PodGroups stays inside the deployed RBAC.
    for (group, resource, verb) in srv.request_counts_by_group().keys() {
        assert!(
            phalanx_kube::rbac::allows(group, resource, verb),
            "{verb} {group}/{resource} is not in RBAC_RULES"
        );
    }
    sched.shutdown().await;
}

/// Failure 2 of issue 15: a 3-pod gang with one gated pod gets no bind until the gate goes, then all.
#[tokio::test]
async fn gated_member_holds_its_gang_until_the_gate_goes() {
    let srv = ApiServer::start().await.unwrap();
    add_nodes(&srv, 3, 2);
    let sched = start(&srv).await;
    let labels = [
        ("scheduling.x-k8s.io/pod-group", "fl"),
        ("fluence.group-size", "3"),
    ];
    create_pod(&srv, pod_json("fl-0", &labels, &[], json!({})));
    create_pod(&srv, pod_json("fl-1", &labels, &[], json!({})));
    create_pod(
        &srv,
        pod_json(
            "fl-2",
            &labels,
            &[],
            json!({"schedulingGates": [{"name": "example.com/quota"}]}),
        ),
    );
    tokio::time::sleep(SETTLE).await;
    assert_eq!(binds(&srv), 0, "no bind while a member is gated");
    assert!(
        notes(&srv, "fl-2").contains("example.com/quota"),
        "the gated pod says what it waits for: {}",
        notes(&srv, "fl-2")
    );
    srv.mutate::<Pod>(NS, "fl-2", |p| p["spec"]["schedulingGates"] = json!([]))
        .unwrap();
    assert!(
        wait_for(WAIT, || bound_pods(&srv, "fl-").len() == 3).await,
        "{:?}",
        bound_pods(&srv, "fl-")
    );
    assert_eq!(binds(&srv), 3, "one bind per pod, none refused");
    sched.shutdown().await;
}

/// Failure 3 of issue 15: a Kueue pod group of total 3 with 2 pods gets no bind.
#[tokio::test]
async fn kueue_total_3_with_2_pods_gets_no_bind() {
    let srv = ApiServer::start().await.unwrap();
    add_nodes(&srv, 3, 2);
    let sched = start(&srv).await;
    let labels = [("kueue.x-k8s.io/pod-group-name", "kq")];
    let total = [("kueue.x-k8s.io/pod-group-total-count", "3")];
    create_pod(&srv, pod_json("kq-0", &labels, &total, json!({})));
    create_pod(&srv, pod_json("kq-1", &labels, &total, json!({})));
    tokio::time::sleep(SETTLE).await;
    assert_eq!(binds(&srv), 0, "2 of 3: no bind");
    create_pod(&srv, pod_json("kq-2", &labels, &total, json!({})));
    assert!(
        wait_for(WAIT, || bound_pods(&srv, "kq-").len() == 3).await,
        "{:?}",
        bound_pods(&srv, "kq-")
    );
    sched.shutdown().await;
}

#[tokio::test]
async fn kueue_members_that_disagree_wait_with_a_reason() {
    let srv = ApiServer::start().await.unwrap();
    add_nodes(&srv, 3, 2);
    let sched = start(&srv).await;
    let labels = [("kueue.x-k8s.io/pod-group-name", "kd")];
    let count = |n| [("kueue.x-k8s.io/pod-group-total-count", n)];
    create_pod(&srv, pod_json("kd-0", &labels, &count("2"), json!({})));
    create_pod(&srv, pod_json("kd-1", &labels, &count("3"), json!({})));
    tokio::time::sleep(SETTLE).await;
    assert_eq!(binds(&srv), 0, "a disputed size binds nothing");
    assert!(
        wait_for(WAIT, || notes(&srv, "kd-").contains("disagree")).await,
        "{}",
        notes(&srv, "kd-")
    );
    // The odd one out leaves and a pod that agrees comes: a complete group of 2.
    srv.delete::<Pod>(NS, "kd-1").unwrap();
    create_pod(&srv, pod_json("kd-2", &labels, &count("2"), json!({})));
    assert!(
        wait_for(WAIT, || bound_pods(&srv, "kd-").len() == 2).await,
        "{:?}",
        bound_pods(&srv, "kd-")
    );
    sched.shutdown().await;
}

#[tokio::test]
async fn native_group_named_before_it_exists_waits_and_basic_goes_pod_by_pod() {
    let srv = ApiServer::start().await.unwrap();
    add_nodes(&srv, 1, 2);
    let sched = start(&srv).await;
    create_pod(&srv, native_pod("late-0", "late"));
    create_pod(&srv, native_pod("late-1", "late"));
    tokio::time::sleep(SETTLE).await;
    assert_eq!(
        binds(&srv),
        0,
        "a group not seen yet is never a gang of one"
    );
    assert!(
        notes(&srv, "late-").contains("waiting for PodGroup default/late"),
        "{}",
        notes(&srv, "late-")
    );
    native_podgroup(&srv, "v1alpha2", "late", json!({"gang": {"minCount": 2}}));
    assert!(wait_for(WAIT, || bound_pods(&srv, "late-").len() == 2).await);
    // `basic`: pods go one by one; one fits now, the other when room appears.
    srv.create(&node("n9", 1, &[])).unwrap();
    native_podgroup(&srv, "v1alpha2", "svc", json!({"basic": {}}));
    create_pod(&srv, native_pod("svc-0", "svc"));
    create_pod(&srv, native_pod("svc-1", "svc"));
    assert!(wait_for(WAIT, || bound_pods(&srv, "svc-").len() == 1).await);
    tokio::time::sleep(SETTLE).await;
    assert_eq!(bound_pods(&srv, "svc-").len(), 1, "room for one only");
    sched.shutdown().await;
}

/// A pod seen before its PodGroup waits for it; once the PodGroup is there
/// the pod waits for its siblings, and its Events say so: the second reason
/// is a new Event, not a count on the first (which would keep the old note).
#[tokio::test]
async fn a_pods_new_waiting_reason_is_a_new_event() {
    let srv = ApiServer::start().await.unwrap();
    add_nodes(&srv, 1, 4);
    let sched = start(&srv).await;
    create_pod(&srv, native_pod("why-0", "why"));
    assert!(
        wait_for(WAIT, || notes(&srv, "why-")
            .contains("waiting for PodGroup default/why"))
        .await,
        "{}",
        notes(&srv, "why-")
    );
    native_podgroup(&srv, "v1alpha2", "why", json!({"gang": {"minCount": 3}}));
    assert!(
        wait_for(WAIT, || notes(&srv, "why-")
            .contains("1 of 3 pods exist, waiting for 2"))
        .await,
        "{}",
        notes(&srv, "why-")
    );
    let all = notes(&srv, "why-");
    assert!(
        all.contains("waiting for PodGroup default/why"),
        "the first Event stays: {all}"
    );
    create_pod(&srv, native_pod("why-1", "why"));
    create_pod(&srv, native_pod("why-2", "why"));
    assert!(wait_for(WAIT, || bound_pods(&srv, "why-").len() == 3).await);
    sched.shutdown().await;
}

#[tokio::test]
async fn malformed_native_podgroup_is_reported_and_others_go_on() {
    let srv = ApiServer::start().await.unwrap();
    add_nodes(&srv, 2, 2);
    let sched = start(&srv).await;
    native_podgroup(
        &srv,
        "v1alpha2",
        "bad",
        json!({"gang": {"minCount": "many"}}),
    );
    native_podgroup(&srv, "v1alpha2", "good", json!({"gang": {"minCount": 2}}));
    create_pod(&srv, native_pod("bad-0", "bad"));
    create_pod(&srv, native_pod("good-0", "good"));
    create_pod(&srv, native_pod("good-1", "good"));
    assert!(wait_for(WAIT, || bound_pods(&srv, "good-").len() == 2).await);
    assert!(bound_pods(&srv, "bad-").is_empty());
    assert!(
        wait_for(WAIT, || notes(&srv, "bad").contains("minCount")).await,
        "{}",
        notes(&srv, "bad")
    );
    sched.shutdown().await;
}

/// Kubernetes 1.35: `Workload` v1alpha1 with embedded pod groups, pods point with `spec.workloadRef`.
#[tokio::test]
async fn v1alpha1_workload_ref_gangs_per_replica_key() {
    let srv = ApiServer::start().await.unwrap();
    srv.uninstall(&ResourceType::native_podgroup("v1alpha2"));
    srv.uninstall(&ResourceType::native_workload("v1alpha2"));
    srv.install(ResourceType::native_workload("v1alpha1"));
    add_nodes(&srv, 2, 2);
    let sched = start(&srv).await;
    srv.create_json(
        "scheduling.k8s.io",
        "v1alpha1",
        "workloads",
        NS,
        json!({
            "apiVersion": "scheduling.k8s.io/v1alpha1", "kind": "Workload",
            "metadata": {"name": "wl", "namespace": NS},
            "spec": {"podGroups": [{"name": "workers", "policy": {"gang": {"minCount": 2}}}]},
        }),
    )
    .unwrap();
    let wpod = |name: &str, replica: &str| {
        pod_json(
            name,
            &[],
            &[],
            json!({"workloadRef": {"name": "wl", "podGroup": "workers", "podGroupReplicaKey": replica}}),
        )
    };
    create_pod(&srv, wpod("wl-a0", "a"));
    create_pod(&srv, wpod("wl-b0", "b"));
    tokio::time::sleep(SETTLE).await;
    assert_eq!(binds(&srv), 0, "each replica is a gang of 2 with 1 pod");
    create_pod(&srv, wpod("wl-a1", "a"));
    assert!(wait_for(WAIT, || bound_pods(&srv, "wl-a").len() == 2).await);
    assert!(bound_pods(&srv, "wl-b").is_empty());
    sched.shutdown().await;
}

/// Issue 15's "done when": 100 MPI-style jobs declared only through the native
/// API (a PodGroup per job, pods pointing at it) complete with no partial gang.
#[tokio::test]
async fn hundred_native_mpi_jobs_complete_with_no_partial_gang() {
    const JOBS: usize = 100;
    const SIZE: usize = 4;
    let srv = ApiServer::start().await.unwrap();
    add_nodes(&srv, 10, 4);
    srv.start_kubelet(KubeletOptions {
        run_for: Some(Duration::from_millis(100)),
        ..Default::default()
    });
    let sched = start(&srv).await;
    for j in 0..JOBS {
        native_podgroup(
            &srv,
            "v1alpha2",
            &format!("mpi{j:03}"),
            json!({"gang": {"minCount": SIZE}}),
        );
        // The launcher last: until it exists, no member of its job may bind.
        for i in 1..SIZE {
            create_pod(
                &srv,
                native_pod(&format!("mpi{j:03}-{i}"), &format!("mpi{j:03}")),
            );
        }
    }
    tokio::time::sleep(SETTLE).await;
    assert_eq!(
        binds(&srv),
        0,
        "every job lacks its launcher: nothing binds"
    );
    for j in 0..JOBS {
        create_pod(
            &srv,
            native_pod(&format!("mpi{j:03}-0"), &format!("mpi{j:03}")),
        );
    }
    let done = || {
        srv.list::<Pod>()
            .iter()
            .filter(|p| {
                p.metadata
                    .name
                    .as_deref()
                    .is_some_and(|n| n.starts_with("mpi"))
            })
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded"))
            .count()
            == JOBS * SIZE
    };
    assert!(
        wait_for(Duration::from_secs(60), done).await,
        "{} of {} pods bound",
        srv.count_bound_pods("mpi"),
        JOBS * SIZE
    );
    assert_eq!(binds(&srv), (JOBS * SIZE) as u64, "one bind per pod");
    sched.shutdown().await;
}

#[tokio::test]
async fn conventions_from_lws_jobset_mpijob_flux_and_volcano() {
    let srv = ApiServer::start().await.unwrap();
    for rt in [
        ResourceType::jobset(),
        ResourceType::mpijob(),
        ResourceType::minicluster(),
        ResourceType::volcano_podgroup(),
    ] {
        srv.install(rt);
    }
    add_nodes(&srv, 6, 4);
    let sched = start(&srv).await;

    // LeaderWorkerSet: size from the pods' annotation, one gang per group index.
    let lws = |name: &str, idx: &str| {
        pod_json(
            name,
            &[
                ("leaderworkerset.sigs.k8s.io/name", "lws"),
                ("leaderworkerset.sigs.k8s.io/group-index", idx),
            ],
            &[("leaderworkerset.sigs.k8s.io/size", "3")],
            json!({}),
        )
    };
    // JobSet: one gang of 1 + 2x2 pods.
    srv.create_json(
        "jobset.x-k8s.io",
        "v1alpha2",
        "jobsets",
        NS,
        json!({
            "apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet",
            "metadata": {"name": "js", "namespace": NS},
            "spec": {"replicatedJobs": [
                {"name": "driver", "replicas": 1, "template": {"spec": {"parallelism": 1}}},
                {"name": "workers", "replicas": 2, "template": {"spec": {"parallelism": 2}}},
            ]},
        }),
    )
    .unwrap();
    let js = |name: &str| {
        pod_json(
            name,
            &[("jobset.sigs.k8s.io/jobset-name", "js")],
            &[],
            json!({}),
        )
    };
    // MPIJob: launcher + 3 workers.
    srv.create_json(
        "kubeflow.org",
        "v2beta1",
        "mpijobs",
        NS,
        json!({
            "apiVersion": "kubeflow.org/v2beta1", "kind": "MPIJob",
            "metadata": {"name": "pi", "namespace": NS},
            "spec": {"mpiReplicaSpecs": {"Launcher": {"replicas": 1}, "Worker": {"replicas": 3}}},
        }),
    )
    .unwrap();
    let mpi = |name: &str, role: &str| {
        pod_json(
            name,
            &[
                ("training.kubeflow.org/job-name", "pi"),
                ("training.kubeflow.org/job-role", role),
            ],
            &[],
            json!({}),
        )
    };
    // Flux: a MiniCluster of size 3 owns an unmarked indexed Job.
    srv.create_json(
        "flux-framework.org",
        "v1alpha2",
        "miniclusters",
        NS,
        json!({
            "apiVersion": "flux-framework.org/v1alpha2", "kind": "MiniCluster",
            "metadata": {"name": "flux", "namespace": NS},
            "spec": {"size": 3, "pod": {"schedulerName": "phalanx"}},
        }),
    )
    .unwrap();
    srv.create_json("batch", "v1", "jobs", NS, json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "flux", "namespace": NS, "ownerReferences": [
            {"apiVersion": "flux-framework.org/v1alpha2", "kind": "MiniCluster", "name": "flux", "uid": "mc", "controller": true}]},
        "spec": {"parallelism": 3, "completions": 3, "completionMode": "Indexed", "template": {"spec": {"containers": []}}},
    })).unwrap();
    let flux = |name: &str| {
        let mut v = pod_json(name, &[], &[], json!({}));
        v["metadata"]["ownerReferences"] = json!([
            {"apiVersion": "batch/v1", "kind": "Job", "name": "flux", "uid": "job", "controller": true}]);
        v
    };
    // Volcano: annotation, with its PodGroup's minMember.
    srv.create_json(
        "scheduling.volcano.sh",
        "v1beta1",
        "podgroups",
        NS,
        json!({
            "apiVersion": "scheduling.volcano.sh/v1beta1", "kind": "PodGroup",
            "metadata": {"name": "vc", "namespace": NS}, "spec": {"minMember": 2},
        }),
    )
    .unwrap();
    let vc = |name: &str| {
        pod_json(
            name,
            &[],
            &[("scheduling.k8s.io/group-name", "vc")],
            json!({}),
        )
    };

    // Every gang but one pod.
    for v in [
        lws("lws-0", "0"),
        lws("lws-0-1", "0"),
        lws("lws-1", "1"),
        lws("lws-1-1", "1"),
        lws("lws-1-2", "1"),
    ] {
        create_pod(&srv, v);
    }
    for n in ["js-d", "js-w0", "js-w1", "js-w2"] {
        create_pod(&srv, js(n));
    }
    for (n, r) in [
        ("pi-launcher", "launcher"),
        ("pi-worker-0", "worker"),
        ("pi-worker-1", "worker"),
    ] {
        create_pod(&srv, mpi(n, r));
    }
    create_pod(&srv, flux("flux-0"));
    create_pod(&srv, flux("flux-1"));
    create_pod(&srv, vc("vc-0"));
    assert!(
        wait_for(WAIT, || bound_pods(&srv, "lws-1").len() == 3).await,
        "LWS group 1 is complete"
    );
    tokio::time::sleep(SETTLE).await;
    for prefix in ["lws-0", "js-", "pi-", "flux-", "vc-"] {
        assert!(
            bound_pods(&srv, prefix).is_empty(),
            "{prefix}: partial gang bound"
        );
    }
    create_pod(&srv, lws("lws-0-2", "0"));
    create_pod(&srv, js("js-w3"));
    create_pod(&srv, mpi("pi-worker-2", "worker"));
    create_pod(&srv, flux("flux-2"));
    create_pod(&srv, vc("vc-1"));
    for (prefix, n) in [
        ("lws-0", 3),
        ("js-", 5),
        ("pi-", 4),
        ("flux-", 3),
        ("vc-", 2),
    ] {
        assert!(
            wait_for(WAIT, || bound_pods(&srv, prefix).len() == n).await,
            "{prefix}: {:?}",
            bound_pods(&srv, prefix)
        );
    }
    sched.shutdown().await;
}

#[tokio::test]
async fn two_conventions_on_one_pod_follow_the_documented_order() {
    let srv = ApiServer::start().await.unwrap();
    add_nodes(&srv, 2, 2);
    let sched = start(&srv).await;
    native_podgroup(&srv, "v1alpha2", "nat", json!({"gang": {"minCount": 2}}));
    // Native API says "nat" (2 pods); Kueue says "kx" of 3: the native API wins.
    let both = |name: &str| {
        pod_json(
            name,
            &[("kueue.x-k8s.io/pod-group-name", "kx")],
            &[("kueue.x-k8s.io/pod-group-total-count", "3")],
            json!({"schedulingGroup": {"podGroupName": "nat"}}),
        )
    };
    create_pod(&srv, both("both-0"));
    create_pod(&srv, both("both-1"));
    assert!(wait_for(WAIT, || bound_pods(&srv, "both-").len() == 2).await);
    assert!(
        wait_for(WAIT, || event_reasons(&srv, "both-0").iter().any(
            |(r, n)| r == "ConflictingPodGroups"
                && n.contains("podgroup:nat")
                && n.contains("kueue:kx")
        ))
        .await,
        "{}",
        notes(&srv, "both-0")
    );
    sched.shutdown().await;
}

/// Where the server does not serve `scheduling.k8s.io`, nothing of it is watched.
#[tokio::test]
async fn without_the_native_api_nothing_is_watched_and_pods_still_wait() {
    let srv = ApiServer::start().await.unwrap();
    srv.uninstall(&ResourceType::native_podgroup("v1alpha2"));
    srv.uninstall(&ResourceType::native_workload("v1alpha2"));
    add_nodes(&srv, 1, 2);
    let sched = start(&srv).await;
    create_pod(&srv, native_pod("orphan-0", "nowhere"));
    create_pod(
        &srv,
        serde_json::to_value(pod(NS, "plain-0", "phalanx", 1, &[])).unwrap(),
    );
    assert!(wait_for(WAIT, || bound_pods(&srv, "plain-").len() == 1).await);
    tokio::time::sleep(SETTLE).await;
    assert!(bound_pods(&srv, "orphan-").is_empty());
    assert!(
        notes(&srv, "orphan-").contains("does not serve scheduling.k8s.io"),
        "{}",
        notes(&srv, "orphan-")
    );
    assert_eq!(srv.request_count("watch", "workloads"), 0);
    sched.shutdown().await;
}

/// A native PodGroup's topology constraint keeps the whole gang inside one
/// value of the node label, where unconstrained placement would span two.
#[tokio::test]
async fn native_topology_constraint_keeps_the_gang_in_one_domain() {
    let srv = ApiServer::start().await.unwrap();
    for (n, zone, cpus, switch) in [
        ("a0", "a", 2, "s1"),
        ("a1", "a", 2, "s2"),
        ("b0", "b", 4, "s1"),
        ("b1", "b", 4, "s2"),
    ] {
        srv.create(&node(
            n,
            cpus,
            &[
                ("topology.kubernetes.io/zone", zone),
                ("example.com/switch", switch),
            ],
        ))
        .unwrap();
    }
    let sched = start(&srv).await;
    srv.create_json(
        "scheduling.k8s.io",
        "v1alpha2",
        "podgroups",
        NS,
        json!({
            "apiVersion": "scheduling.k8s.io/v1alpha2", "kind": "PodGroup",
            "metadata": {"name": "sw", "namespace": NS},
            "spec": {"schedulingPolicy": {"gang": {"minCount": 3}},
                     "schedulingConstraints": {"topology": [{"key": "example.com/switch"}]}},
        }),
    )
    .unwrap();
    for i in 0..3 {
        let mut p = native_pod(&format!("sw-{i}"), "sw");
        p["spec"]["containers"][0]["resources"]["requests"]["cpu"] = json!("2");
        create_pod(&srv, p);
    }
    assert!(wait_for(WAIT, || bound_pods(&srv, "sw-").len() == 3).await);
    let nodes: Vec<String> = bound_pods(&srv, "sw-").into_values().collect();
    assert!(
        nodes.iter().all(|n| n == "a0" || n == "b0"),
        "one switch (s1) only: {nodes:?}"
    );
    sched.shutdown().await;
}

/// Kubernetes 1.37's CompositePodGroup (gate on): a leader PodGroup and a
/// workers PodGroup under one gang composite start together or not at all.
/// One child alone waits for its sibling; both wait while the cluster holds
/// four of their five pods; a third node lets all five start at once.
#[tokio::test]
async fn a_gang_composite_starts_its_child_groups_together() {
    let srv = ApiServer::start().await.unwrap();
    srv.install(ResourceType::native_podgroup("v1beta1"));
    srv.install(ResourceType::composite_podgroup());
    add_nodes(&srv, 2, 2);
    let sched = start(&srv).await;
    srv.create_json(
        "scheduling.k8s.io",
        "v1alpha3",
        "compositepodgroups",
        NS,
        json!({
            "apiVersion": "scheduling.k8s.io/v1alpha3", "kind": "CompositePodGroup",
            "metadata": {"name": "train", "namespace": NS},
            "spec": {"schedulingPolicy": {"gang": {"minGroupCount": 2}},
                     "workloadRef": {"workloadName": "train", "templateName": "replica"}},
        }),
    )
    .unwrap();
    let child = |name: &str, min: u32, pods: u32| {
        let spec = json!({"schedulingPolicy": {"gang": {"minCount": min}},
                          "parentCompositePodGroupName": "train"});
        let pg = native_podgroup_json(NS, "v1beta1", name, spec);
        srv.create_json("scheduling.k8s.io", "v1beta1", "podgroups", NS, pg)
            .unwrap();
        for i in 0..pods {
            create_pod(&srv, native_pod(&format!("{name}-{i}"), name));
        }
    };
    child("leader", 1, 1);
    assert!(
        wait_for(WAIT, || notes(&srv, "leader-")
            .contains("1 of its 2 child groups"))
        .await,
        "{}",
        notes(&srv, "leader-")
    );
    assert_eq!(
        binds(&srv),
        0,
        "the leader alone waits for its sibling group"
    );
    child("workers", 4, 4);
    tokio::time::sleep(SETTLE).await;
    assert_eq!(binds(&srv), 0, "4 CPUs for 5 pods: nothing starts");
    srv.create(&node("n2", 2, &[("topology.kubernetes.io/zone", "z1")]))
        .unwrap();
    assert!(
        wait_for(WAIT, || bound_pods(&srv, "leader-").len()
            + bound_pods(&srv, "workers-").len()
            == 5)
        .await,
        "{}",
        notes(&srv, "")
    );
    // The unit's condition goes on each of its PodGroups.
    let scheduled = |name: &str| {
        let store = srv.store();
        store
            .resource_type("scheduling.k8s.io", "v1beta1", "podgroups")
            .and_then(|rt| store.get(&rt, NS, name).ok())
            .and_then(|pg| pg.pointer("/status/conditions").cloned())
            .and_then(|c| c.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .any(|c| c["type"] == "PodGroupInitiallyScheduled" && c["status"] == "True")
    };
    assert!(wait_for(WAIT, || scheduled("leader") && scheduled("workers")).await);
    sched.shutdown().await;
}
