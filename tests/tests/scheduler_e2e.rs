//! The scheduler's library entry point against the test API server, through the real kube client.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
mod common;

use phalanx_kube::{PodGroup, RunArgs, SchedulerHandle};
use phalanx_tests::apiserver::ApiServer;
use phalanx_tests::fixtures::{
    bound_pods, event_reasons, event_regarding_uids, node, overcommitted_nodes, pod, podgroup_json,
    wait_for,
};
use serde_json::json;

const NS: &str = "default";
const WAIT: Duration = Duration::from_secs(10);

/// The shared test settings, with a fast Lease for the leader-election tests.
fn args() -> RunArgs {
    RunArgs {
        lease_namespace: Some("kube-system".into()),
        lease_duration: Some(Duration::from_millis(1000)),
        renew_deadline: Some(Duration::from_millis(600)),
        retry_period: Some(Duration::from_millis(100)),
        ..common::test_args()
    }
}

async fn start(srv: &ApiServer, args: RunArgs) -> SchedulerHandle {
    common::start_scheduler(srv, args, WAIT).await
}

fn add_nodes(srv: &ApiServer, prefix: &str, n: usize, cpus: u32) {
    for i in 0..n {
        srv.create(&node(
            &format!("{prefix}{i}"),
            cpus,
            &[("topology.kubernetes.io/zone", "z1")],
        ))
        .unwrap();
    }
}

fn add_gang(srv: &ApiServer, group: &str, size: usize, cpus: u32) {
    add_partial_gang(srv, group, size, size, cpus);
}

/// A PodGroup of minimum `min` and `pods` of its pods (fewer: it waits for the rest).
fn add_partial_gang(srv: &ApiServer, group: &str, min: usize, pods: usize, cpus: u32) {
    let mut pg = PodGroup::new(
        group,
        phalanx_kube::PodGroupSpec {
            min_member: Some(min as i32),
            ..Default::default()
        },
    );
    pg.metadata.namespace = Some(NS.into());
    srv.create(&pg).unwrap();
    for i in 0..pods {
        srv.create(&pod(
            NS,
            &format!("{group}-{i}"),
            "phalanx",
            cpus,
            &[("scheduling.x-k8s.io/pod-group", group)],
        ))
        .unwrap();
    }
}

fn delete_gang(srv: &ApiServer, group: &str, size: usize) {
    for i in 0..size {
        srv.delete::<Pod>(NS, &format!("{group}-{i}")).unwrap();
    }
    srv.delete::<PodGroup>(NS, group).unwrap();
}

#[tokio::test]
async fn gang_of_16_on_8_nodes_binds_whole() {
    let srv = ApiServer::start().await.unwrap();
    add_nodes(&srv, "n", 8, 4);
    let sched = start(&srv, args()).await;
    add_gang(&srv, "mpi", 16, 2);
    assert!(
        wait_for(WAIT, || bound_pods(&srv, "mpi-").len() == 16).await,
        "bound: {:?}",
        bound_pods(&srv, "mpi-")
    );
    assert!(
        overcommitted_nodes(&srv).is_empty(),
        "{:?}",
        overcommitted_nodes(&srv)
    );
    assert_eq!(
        srv.request_count("create", "pods/binding"),
        16,
        "one bind per pod"
    );
    assert!(
        wait_for(WAIT, || event_reasons(&srv, "mpi-")
            .iter()
            .filter(|(r, _)| r == "Scheduled")
            .count()
            == 16)
        .await,
        "a Scheduled event per pod: {:?}",
        event_reasons(&srv, "mpi-")
    );
    assert!(
        wait_for(WAIT, || srv
            .get::<PodGroup>(NS, "mpi")
            .and_then(|g| g.status)
            .and_then(|s| s.scheduled)
            == Some(16))
        .await,
        "PodGroup status: {:?}",
        srv.get::<PodGroup>(NS, "mpi").and_then(|g| g.status)
    );
    // The PodGroup's own Event carries its UID (`kubectl describe` selects by it).
    let uid = srv.get::<PodGroup>(NS, "mpi").and_then(|g| g.metadata.uid);
    assert!(uid.is_some());
    assert!(
        wait_for(WAIT, || event_regarding_uids(
            &srv,
            "PodGroup",
            "mpi",
            "Scheduled"
        ) == vec![uid.clone()])
        .await,
        "{:?}",
        event_regarding_uids(&srv, "PodGroup", "mpi", "Scheduled")
    );
    sched.shutdown().await;
}

#[tokio::test]
async fn second_gang_waits_then_binds_when_first_leaves() {
    let srv = ApiServer::start().await.unwrap();
    add_nodes(&srv, "n", 4, 4);
    let sched = start(&srv, args()).await;
    add_gang(&srv, "a", 8, 2);
    assert!(wait_for(WAIT, || bound_pods(&srv, "a-").len() == 8).await);
    add_gang(&srv, "b", 8, 2);
    assert!(
        wait_for(WAIT, || event_reasons(&srv, "b-")
            .iter()
            .any(|(r, _)| r == "FailedScheduling"))
        .await,
        "b waits with a reason: {:?}",
        event_reasons(&srv, "b-")
    );
    assert!(
        bound_pods(&srv, "b-").is_empty(),
        "no partial gang: {:?}",
        bound_pods(&srv, "b-")
    );
    delete_gang(&srv, "a", 8);
    assert!(
        wait_for(WAIT, || bound_pods(&srv, "b-").len() == 8).await,
        "b binds: {:?}",
        bound_pods(&srv, "b-")
    );
    assert!(overcommitted_nodes(&srv).is_empty());
    sched.shutdown().await;
}

#[tokio::test]
async fn conflict_in_the_middle_of_a_gang_is_retried() {
    let srv = ApiServer::start().await.unwrap();
    add_nodes(&srv, "n", 4, 4);
    let sched = start(&srv, args()).await;
    srv.inject_bind_error(NS, "g-3", 409);
    add_gang(&srv, "g", 8, 2);
    assert!(
        wait_for(WAIT, || bound_pods(&srv, "g-").len() == 8).await,
        "bound: {:?}",
        bound_pods(&srv, "g-")
    );
    assert!(
        srv.request_count("create", "pods/binding") >= 9,
        "the conflicting bind was retried"
    );
    assert!(overcommitted_nodes(&srv).is_empty());
    sched.shutdown().await;
}

#[tokio::test]
async fn bind_retry_wakes_on_the_cores_deadline_not_the_safety_net() {
    let srv = ApiServer::start().await.unwrap();
    add_nodes(&srv, "n", 4, 4);
    // The safety-net pass is an hour away: only the core's own bind-retry
    // deadline (about a second after the conflict) can wake the loop.
    let sched = start(
        &srv,
        RunArgs {
            retry_interval: Some(Duration::from_secs(3600)),
            ..args()
        },
    )
    .await;
    srv.inject_bind_error(NS, "g-3", 409);
    add_gang(&srv, "g", 8, 2);
    assert!(
        wait_for(WAIT, || bound_pods(&srv, "g-").len() == 8).await,
        "bound: {:?}",
        bound_pods(&srv, "g-")
    );
    assert!(overcommitted_nodes(&srv).is_empty());
    sched.shutdown().await;
}

#[tokio::test]
async fn pack_and_spread_policies_lay_a_gang_out_differently() {
    for (policy, nodes_used) in [("pack", 1), ("spread", 4)] {
        let srv = ApiServer::start().await.unwrap();
        add_nodes(&srv, "n", 4, 8);
        let sched = start(
            &srv,
            RunArgs {
                policy: Some(policy.into()),
                ..args()
            },
        )
        .await;
        add_gang(&srv, "g", 4, 2);
        assert!(wait_for(WAIT, || bound_pods(&srv, "g-").len() == 4).await);
        let nodes: std::collections::BTreeSet<String> =
            bound_pods(&srv, "g-").into_values().collect();
        assert_eq!(nodes.len(), nodes_used, "{policy}: {nodes:?}");
        sched.shutdown().await;
    }
}

#[tokio::test]
async fn killed_and_restarted_scheduler_double_books_nothing() {
    let srv = ApiServer::start().await.unwrap();
    add_nodes(&srv, "n", 6, 4);
    // Slow binds, one at a time: the kill lands in the middle of a gang.
    srv.set_delay("create", "pods/binding", Duration::from_millis(40));
    let first = start(
        &srv,
        RunArgs {
            bind_concurrency: Some(1),
            ..args()
        },
    )
    .await;
    for g in ["a", "b", "c", "d"] {
        add_gang(&srv, g, 4, 2);
    }
    assert!(wait_for(WAIT, || !bound_pods(&srv, "").is_empty()).await);
    first.kill();
    // Requests the killed process had already sent still land (a restart takes longer than that).
    tokio::time::sleep(Duration::from_millis(150)).await;
    let at_kill: Vec<usize> = ["a", "b", "c", "d"]
        .iter()
        .map(|g| bound_pods(&srv, &format!("{g}-")).len())
        .collect();
    assert!(
        at_kill.iter().any(|n| *n > 0 && *n < 4),
        "the kill interrupted a gang: {at_kill:?}"
    );
    srv.set_delay("create", "pods/binding", Duration::ZERO);
    let second = start(&srv, args()).await;
    for g in ["e", "f"] {
        add_gang(&srv, g, 4, 2);
    }
    // 6 nodes x 4 CPUs hold 12 two-CPU pods: three of the six gangs.
    assert!(
        wait_for(WAIT, || bound_pods(&srv, "").len() == 12).await,
        "bound: {:?}",
        bound_pods(&srv, "")
    );
    assert!(
        overcommitted_nodes(&srv).is_empty(),
        "{:?}",
        overcommitted_nodes(&srv)
    );
    for g in ["a", "b", "c", "d", "e", "f"] {
        let n = bound_pods(&srv, &format!("{g}-")).len();
        assert!(
            n == 0 || n == 4,
            "gang {g} is partly bound ({n} of 4); at the kill: {at_kill:?}"
        );
    }
    second.shutdown().await;
}

#[tokio::test]
async fn removed_node_is_not_used() {
    let srv = ApiServer::start().await.unwrap();
    add_nodes(&srv, "n", 4, 4);
    let sched = start(&srv, args()).await;
    srv.delete::<Node>("", "n3").unwrap();
    add_gang(&srv, "g", 4, 4);
    assert!(
        wait_for(WAIT, || event_reasons(&srv, "g-")
            .iter()
            .any(|(r, _)| r == "FailedScheduling"))
        .await
    );
    assert!(bound_pods(&srv, "g-").is_empty());
    srv.create(&node("n4", 4, &[])).unwrap();
    assert!(
        wait_for(WAIT, || bound_pods(&srv, "g-").len() == 4).await,
        "bound: {:?}",
        bound_pods(&srv, "g-")
    );
    assert!(bound_pods(&srv, "g-").values().all(|n| n != "n3"));
    sched.shutdown().await;
}

#[tokio::test]
async fn other_schedulers_pods_hold_capacity() {
    let srv = ApiServer::start().await.unwrap();
    add_nodes(&srv, "n", 2, 4);
    srv.create(&pod(NS, "web", "default-scheduler", 4, &[]))
        .unwrap();
    srv.bind(NS, "web", "n0").unwrap();
    srv.set_pod_phase(NS, "web", "Running").unwrap();
    let sched = start(&srv, args()).await;
    srv.create(&pod(NS, "solo", "phalanx", 4, &[])).unwrap();
    assert!(
        wait_for(WAIT, || bound_pods(&srv, "solo")
            .get("solo")
            .map(String::as_str)
            == Some("n1"))
        .await
    );
    add_gang(&srv, "g", 2, 2);
    assert!(
        wait_for(WAIT, || event_reasons(&srv, "g-")
            .iter()
            .any(|(r, _)| r == "FailedScheduling"))
        .await
    );
    assert!(bound_pods(&srv, "g-").is_empty());
    srv.delete::<Pod>(NS, "web").unwrap();
    assert!(wait_for(WAIT, || bound_pods(&srv, "g-").len() == 2).await);
    assert!(bound_pods(&srv, "g-").values().all(|n| n == "n0"));
    sched.shutdown().await;
}

#[tokio::test]
async fn two_replicas_elect_one_leader_and_fail_over() {
    let srv = ApiServer::start().await.unwrap();
    add_nodes(&srv, "n", 4, 4);
    let elect = || RunArgs {
        leader_elect: Some(true),
        ..args()
    };
    let a = start(
        &srv,
        RunArgs {
            identity: Some("a".into()),
            ..elect()
        },
    )
    .await;
    let b = start(
        &srv,
        RunArgs {
            identity: Some("b".into()),
            ..elect()
        },
    )
    .await;
    assert!(wait_for(WAIT, || a.is_leader() || b.is_leader()).await);
    assert!(!(a.is_leader() && b.is_leader()), "one leader");
    add_gang(&srv, "g", 4, 2);
    assert!(wait_for(WAIT, || bound_pods(&srv, "g-").len() == 4).await);
    assert_eq!(
        srv.request_count("create", "pods/binding"),
        4,
        "only the leader binds"
    );
    let (leader, follower) = if a.is_leader() { (a, b) } else { (b, a) };
    leader.kill();
    assert!(
        wait_for(WAIT, || follower.is_leader()).await,
        "the follower takes over after the lease expires"
    );
    add_gang(&srv, "h", 4, 2);
    assert!(wait_for(WAIT, || bound_pods(&srv, "h-").len() == 4).await);
    assert!(overcommitted_nodes(&srv).is_empty());
    follower.shutdown().await;
}

#[tokio::test]
async fn malformed_podgroup_gets_an_event_and_others_go_on() {
    let srv = ApiServer::start().await.unwrap();
    add_nodes(&srv, "n", 2, 4);
    let sched = start(&srv, args()).await;
    srv.create_json(
        "scheduling.x-k8s.io",
        "v1alpha1",
        "podgroups",
        NS,
        podgroup_json(NS, "bad", json!({"minMember": "four"})),
    )
    .unwrap();
    for i in 0..2 {
        srv.create(&pod(
            NS,
            &format!("bad-{i}"),
            "phalanx",
            1,
            &[("scheduling.x-k8s.io/pod-group", "bad")],
        ))
        .unwrap();
    }
    add_gang(&srv, "good", 2, 2);
    assert!(wait_for(WAIT, || bound_pods(&srv, "good-").len() == 2).await);
    assert!(
        wait_for(WAIT, || event_reasons(&srv, "bad")
            .iter()
            .any(|(r, m)| r == "InvalidPodGroup" && m.contains("minMember")))
        .await,
        "{:?}",
        event_reasons(&srv, "bad")
    );
    assert!(bound_pods(&srv, "bad-").is_empty());
    assert!(sched.is_ready());
    sched.shutdown().await;
}

#[tokio::test]
async fn metrics_and_health_are_served() {
    let srv = ApiServer::start().await.unwrap();
    add_nodes(&srv, "n", 2, 4);
    let sched = start(&srv, args()).await;
    add_gang(&srv, "g", 2, 2);
    assert!(wait_for(WAIT, || bound_pods(&srv, "g-").len() == 2).await);
    let addr = sched.metrics_addr();
    let get = |path: &'static str| async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    };
    assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
    assert!(get("/readyz").await.starts_with("HTTP/1.1 200"));
    let m = get("/metrics").await;
    assert!(m.contains("phalanx_binds_total 2"), "{m}");
    assert!(m.contains("phalanx_graph_nodes 2"), "{m}");
    assert!(m.contains("phalanx_leader 1"), "{m}");
    // The gang of 2 waited once, in the 2-3 size class.
    assert!(
        m.contains("phalanx_group_wait_seconds_count{pods=\"2-3\"} 1"),
        "{m}"
    );
    sched.shutdown().await;
}

#[tokio::test]
async fn every_request_is_covered_by_the_rbac_list() {
    let srv = ApiServer::start().await.unwrap();
    add_nodes(&srv, "n", 2, 4);
    let sched = start(
        &srv,
        RunArgs {
            leader_elect: Some(true),
            identity: Some("x".into()),
            ..args()
        },
    )
    .await;
    add_gang(&srv, "g", 2, 2);
    assert!(wait_for(WAIT, || bound_pods(&srv, "g-").len() == 2).await);
    sched.shutdown().await;
    for (key, _) in srv.request_counts_by_group() {
        let (group, resource, verb) = key;
        assert!(
            phalanx_kube::rbac::allows(&group, &resource, &verb),
            "RBAC_RULES lack {verb} {group}/{resource}"
        );
    }
}

#[tokio::test]
async fn grpc_status_api_reports_the_live_scheduler() {
    use phalanx_proto::v1 as pb;
    let srv = ApiServer::start().await.unwrap();
    add_nodes(&srv, "n", 3, 4);
    let sched = start(
        &srv,
        RunArgs {
            grpc_addr: Some("127.0.0.1:0".into()),
            ..args()
        },
    )
    .await;
    add_gang(&srv, "g", 4, 2);
    assert!(wait_for(WAIT, || bound_pods(&srv, "g-").len() == 4).await);
    let addr = sched.grpc_addr().unwrap().to_string();
    let mut client = phalanx_grpc::connect(&addr, None).await.unwrap();
    let stat = client.stat(pb::StatRequest {}).await.unwrap().into_inner();
    assert_eq!(stat.nodes_up, 3);
    assert_eq!(stat.jobs_allocated, 1);
    let jobs = client
        .jobs(pb::JobsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .jobs;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].name, "default/g");
    assert_eq!(jobs[0].npods, 4);
    let res = client
        .resources(pb::ResourcesRequest::default())
        .await
        .unwrap()
        .into_inner();
    let cpu = res.totals.iter().find(|t| t.r#type == "cpu").unwrap();
    assert_eq!((cpu.total, cpu.allocated), (12_000, 8_000));
    let template = pb::PodTemplate {
        count: 1,
        cpu_millis: 1000,
        ..Default::default()
    };
    let req = pb::MatchRequest {
        request: Some(pb::match_request::Request::Pods(pb::PodGroup {
            templates: vec![template],
        })),
        ..Default::default()
    };
    let refused = client.r#match(req).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);

    // A satisfiability Match is a read: would these pods fit, and where now?
    let what_if = |count: u32, cpu_millis: u64, selector: &[(&str, &str)]| pb::MatchRequest {
        request: Some(pb::match_request::Request::Pods(pb::PodGroup {
            templates: vec![pb::PodTemplate {
                name: "worker".into(),
                count,
                cpu_millis,
                node_selector: selector
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..Default::default()
            }],
        })),
        operation: pb::Operation::Satisfiability as i32,
        ..Default::default()
    };
    let fits = client
        .r#match(what_if(2, 2000, &[]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fits.result, pb::MatchResult::Satisfiable as i32);
    assert_eq!(fits.reason, "fits now");
    assert_eq!(fits.pods.len(), 2);
    assert!(
        fits.pods
            .iter()
            .all(|p| p.template == "worker" && p.node.starts_with('n'))
    );
    let later = client
        .r#match(what_if(3, 2000, &[]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(later.result, pb::MatchResult::Satisfiable as i32);
    assert!(later.reason.contains("not now"), "{}", later.reason);
    assert!(later.pods.is_empty());
    let never = client
        .r#match(what_if(1, 8000, &[]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(never.result, pb::MatchResult::Unsatisfiable as i32);
    assert!(never.reason.contains("largest node"), "{}", never.reason);
    let elsewhere = client
        .r#match(what_if(1, 1000, &[("topology.kubernetes.io/zone", "z2")]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(elsewhere.result, pb::MatchResult::Unsatisfiable as i32);
    let empty = client.r#match(what_if(1, 0, &[])).await.unwrap_err();
    assert_eq!(empty.code(), tonic::Code::InvalidArgument);
    assert!(
        empty.message().contains("pods.templates[0]"),
        "{}",
        empty.message()
    );
    // Asking changed nothing: the live jobs are as before.
    let stat = client.stat(pb::StatRequest {}).await.unwrap().into_inner();
    assert_eq!(stat.jobs_allocated, 1);
    sched.shutdown().await;
}

#[tokio::test]
async fn watches_relist_after_gone_and_scheduling_goes_on() {
    use phalanx_tests::apiserver::ApiServerOptions;
    let opts = ApiServerOptions {
        max_watch_timeout: Some(Duration::from_millis(300)),
        ..Default::default()
    };
    let srv = ApiServer::start_with(opts).await.unwrap();
    add_nodes(&srv, "n", 2, 4);
    let sched = start(&srv, args()).await;
    let lists_before = srv.request_count("list", "pods");
    // Changes the watches miss: after compaction they must re-list to see them.
    srv.compact();
    srv.delete::<Node>("", "n1").unwrap();
    srv.compact();
    assert!(
        wait_for(WAIT, || srv.request_count("list", "pods") > lists_before).await,
        "pods re-listed after 410"
    );
    add_gang(&srv, "g", 2, 4);
    assert!(
        wait_for(WAIT, || event_reasons(&srv, "g-")
            .iter()
            .any(|(r, _)| r == "FailedScheduling"))
        .await,
        "n1 is known to be gone"
    );
    assert!(bound_pods(&srv, "g-").is_empty());
    srv.create(&node("n2", 4, &[])).unwrap();
    assert!(wait_for(WAIT, || bound_pods(&srv, "g-").len() == 2).await);
    assert!(bound_pods(&srv, "g-").values().all(|n| n != "n1"));
    sched.shutdown().await;
}

#[tokio::test]
async fn node_resource_topology_is_watched_when_installed() {
    use phalanx_tests::apiserver::{ApiServerOptions, ResourceType};
    let opts = ApiServerOptions {
        extra_types: vec![ResourceType::node_resource_topology()],
        ..Default::default()
    };
    let srv = ApiServer::start_with(opts).await.unwrap();
    add_nodes(&srv, "n", 1, 8);
    srv.create_json(
        "topology.node.k8s.io",
        "v1alpha2",
        "noderesourcetopologies",
        "",
        json!({
            "metadata": {"name": "n0"},
            "attributes": [{"name": "topologyManagerPolicy", "value": "single-numa-node"}],
            "zones": [
                {"name": "node-0", "type": "Node", "resources": [{"name": "cpu", "allocatable": "4", "capacity": "4"}]},
                {"name": "node-1", "type": "Node", "resources": [{"name": "cpu", "allocatable": "4", "capacity": "4"}]},
            ],
        }),
    )
    .unwrap();
    let sched = start(&srv, args()).await;
    assert!(srv.request_count("list", "noderesourcetopologies") >= 1);
    srv.create(&pod(NS, "p", "phalanx", 2, &[])).unwrap();
    assert!(wait_for(WAIT, || bound_pods(&srv, "p").len() == 1).await);
    sched.shutdown().await;
    let plain = ApiServer::start().await.unwrap();
    let sched = start(&plain, args()).await;
    assert_eq!(
        plain.request_count("list", "noderesourcetopologies"),
        0,
        "not watched when the CRD is absent"
    );
    sched.shutdown().await;
}

#[tokio::test]
async fn not_found_on_an_existing_pod_is_retried() {
    let srv = ApiServer::start().await.unwrap();
    add_nodes(&srv, "n", 2, 4);
    let sched = start(&srv, args()).await;
    srv.inject_bind_error(NS, "g-1", 404);
    add_gang(&srv, "g", 4, 2);
    assert!(
        wait_for(WAIT, || bound_pods(&srv, "g-").len() == 4).await,
        "bound: {:?}",
        bound_pods(&srv, "g-")
    );
    assert!(srv.request_count("create", "pods/binding") >= 5);
    sched.shutdown().await;
}

#[tokio::test]
async fn replacement_of_a_lost_member_joins_its_gang() {
    let srv = ApiServer::start().await.unwrap();
    add_nodes(&srv, "n", 2, 4);
    let sched = start(&srv, args()).await;
    add_gang(&srv, "g", 4, 2);
    assert!(wait_for(WAIT, || bound_pods(&srv, "g-").len() == 4).await);
    srv.delete::<Pod>(NS, "g-2").unwrap();
    srv.create(&pod(
        NS,
        "g-2b",
        "phalanx",
        2,
        &[("scheduling.x-k8s.io/pod-group", "g")],
    ))
    .unwrap();
    assert!(
        wait_for(WAIT, || bound_pods(&srv, "g-").len() == 4).await,
        "{:?}",
        bound_pods(&srv, "g-")
    );
    assert!(overcommitted_nodes(&srv).is_empty());
    sched.shutdown().await;
}

#[tokio::test]
async fn restart_completes_a_partly_bound_gang() {
    let srv = ApiServer::start().await.unwrap();
    add_nodes(&srv, "n", 3, 4);
    add_gang(&srv, "a", 4, 2);
    srv.bind(NS, "a-0", "n0").unwrap();
    srv.bind(NS, "a-1", "n0").unwrap();
    let sched = start(&srv, args()).await;
    assert!(
        wait_for(WAIT, || bound_pods(&srv, "a-").len() == 4).await,
        "{:?}",
        bound_pods(&srv, "a-")
    );
    assert!(overcommitted_nodes(&srv).is_empty());
    sched.shutdown().await;
}

#[tokio::test]
async fn losing_the_lease_stops_binding() {
    use k8s_openapi::api::coordination::v1::Lease;
    let srv = ApiServer::start().await.unwrap();
    add_nodes(&srv, "n", 2, 4);
    let sched = start(
        &srv,
        RunArgs {
            leader_elect: Some(true),
            identity: Some("me".into()),
            ..args()
        },
    )
    .await;
    assert!(wait_for(WAIT, || sched.is_leader()).await);
    // Another replica takes the lease (as after a long pause of ours) and keeps it.
    srv.mutate::<Lease>("kube-system", "phalanx", |l| {
        l["spec"]["holderIdentity"] = json!("intruder");
        l["spec"]["leaseDurationSeconds"] = json!(3600);
    })
    .unwrap();
    assert!(
        wait_for(WAIT, || !sched.is_leader()).await,
        "leadership is given up"
    );
    add_gang(&srv, "g", 2, 2);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        srv.request_count("create", "pods/binding"),
        0,
        "a follower never binds"
    );
    assert!(bound_pods(&srv, "g-").is_empty());
    sched.shutdown().await;
}

fn owned_pod(name: &str, job: &str, scheduler: &str) -> Pod {
    let mut p = pod(NS, name, scheduler, 1, &[]);
    p.metadata.owner_references = Some(vec![
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "batch/v1".into(),
            kind: "Job".into(),
            name: job.into(),
            uid: "job-uid".into(),
            controller: Some(true),
            ..Default::default()
        },
    ]);
    p
}

#[tokio::test]
async fn gang_job_binds_only_when_all_its_pods_exist() {
    use k8s_openapi::api::batch::v1::Job;
    let srv = ApiServer::start().await.unwrap();
    add_nodes(&srv, "n", 2, 4);
    let sched = start(
        &srv,
        RunArgs {
            scheduler_names: vec!["phalanx".into(), "gang".into()],
            ..args()
        },
    )
    .await;
    let job: Job = serde_json::from_value(json!({
        "metadata": {"name": "train", "namespace": NS, "labels": {"phalanx.dev/gang": "true"}},
        "spec": {"parallelism": 4, "completions": 4, "completionMode": "Indexed", "template": {"spec": {"containers": []}}},
    }))
    .unwrap();
    srv.create(&job).unwrap();
    for i in 0..3 {
        srv.create(&owned_pod(&format!("train-{i}"), "train", "gang"))
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        bound_pods(&srv, "train-").is_empty(),
        "3 of 4 pods: nothing binds"
    );
    srv.create(&owned_pod("train-3", "train", "gang")).unwrap();
    assert!(
        wait_for(WAIT, || bound_pods(&srv, "train-").len() == 4).await,
        "{:?}",
        bound_pods(&srv, "train-")
    );
    sched.shutdown().await;
}

#[tokio::test]
async fn finished_gangs_free_their_nodes_for_waiting_ones() {
    use phalanx_tests::apiserver::KubeletOptions;
    let srv = ApiServer::start().await.unwrap();
    srv.start_kubelet(KubeletOptions {
        run_for: Some(Duration::from_millis(300)),
        ..Default::default()
    });
    add_nodes(&srv, "n", 2, 4);
    let sched = start(&srv, args()).await;
    add_gang(&srv, "a", 4, 2);
    add_gang(&srv, "b", 4, 2);
    assert!(wait_for(WAIT, || bound_pods(&srv, "a-").len() == 4).await);
    assert!(bound_pods(&srv, "b-").is_empty());
    // a's pods succeed after 300 ms; b then takes the same nodes without any deletion.
    assert!(
        wait_for(WAIT, || srv
            .get::<PodGroup>(NS, "a")
            .and_then(|g| g.status)
            .and_then(|s| s.succeeded)
            == Some(4))
        .await,
        "PodGroup a counts its succeeded pods: {:?}",
        srv.get::<PodGroup>(NS, "a").and_then(|g| g.status)
    );
    assert!(
        wait_for(WAIT, || bound_pods(&srv, "b-").len() == 4).await,
        "{:?}",
        bound_pods(&srv, "b-")
    );
    assert!(overcommitted_nodes(&srv).is_empty());
    sched.shutdown().await;
}

#[tokio::test]
async fn cordoned_and_tainted_nodes_take_no_new_pods() {
    let srv = ApiServer::start().await.unwrap();
    add_nodes(&srv, "n", 3, 4);
    let sched = start(&srv, args()).await;
    srv.mutate::<Node>("", "n0", |n| n["spec"]["unschedulable"] = json!(true))
        .unwrap();
    srv.mutate::<Node>("", "n1", |n| {
        n["spec"]["taints"] = json!([{"key": "gpu", "value": "only", "effect": "NoSchedule"}])
    })
    .unwrap();
    add_gang(&srv, "g", 2, 4);
    assert!(
        wait_for(WAIT, || event_reasons(&srv, "g-")
            .iter()
            .any(|(r, _)| r == "FailedScheduling"))
        .await
    );
    assert!(
        bound_pods(&srv, "g-").is_empty(),
        "{:?}",
        bound_pods(&srv, "g-")
    );
    srv.mutate::<Node>("", "n0", |n| n["spec"]["unschedulable"] = json!(false))
        .unwrap();
    assert!(
        wait_for(WAIT, || bound_pods(&srv, "g-").len() == 2).await,
        "{:?}",
        bound_pods(&srv, "g-")
    );
    assert!(
        bound_pods(&srv, "g-").values().all(|n| n != "n1"),
        "the taint is respected"
    );
    sched.shutdown().await;
}

/// The Event sink against the API server's own Event validation: the same
/// note again counts in its series, a new note is a new Event, a note too
/// long for the API is cut at a character boundary, a long object name still
/// makes a valid Event name, and a series whose Event is gone starts again.
#[tokio::test]
async fn events_count_repeats_and_a_new_note_is_a_new_event() {
    use k8s_openapi::api::events::v1::Event;
    use phalanx_kube::events::EventSink;
    let srv = ApiServer::start().await.unwrap();
    // An identity longer than the API's 128 bytes for reportingInstance is cut.
    let identity = format!("{}_0badcafe", "p".repeat(200));
    let sink = EventSink::new(srv.client(), "phalanx", &identity, "Scheduling");
    let pod_ref = |name: &str| phalanx_kube::binder::pod_ref(NS, name, "uid-1");
    let events = |name: &str| -> Vec<Event> {
        srv.list::<Event>()
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .collect()
    };
    let count = |e: &Event| e.series.as_ref().map_or(1, |s| s.count);
    let p = pod_ref("p");
    sink.publish(&p, true, "FailedScheduling", "waiting for PodGroup")
        .await
        .unwrap();
    sink.publish(&p, true, "FailedScheduling", "waiting for PodGroup")
        .await
        .unwrap();
    sink.publish(&p, true, "FailedScheduling", "2 of 3 pods exist")
        .await
        .unwrap();
    let mut seen: Vec<(String, i32)> = events("p")
        .iter()
        .map(|e| (e.note.clone().unwrap_or_default(), count(e)))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("2 of 3 pods exist".to_string(), 1),
            ("waiting for PodGroup".to_string(), 2)
        ]
    );
    assert_eq!(sink.open_series(), 2);

    let long = "é".repeat(2000);
    sink.publish(&p, false, "Scheduled", &long).await.unwrap();
    let name = "n".repeat(253);
    sink.publish(&pod_ref(&name), false, "Scheduled", "bound")
        .await
        .unwrap();
    assert_eq!(
        events(&name).len(),
        1,
        "a valid Event name for a 253-character pod"
    );
    let cut = events("p")
        .into_iter()
        .find(|e| e.reason.as_deref() == Some("Scheduled"))
        .and_then(|e| e.note)
        .unwrap_or_default();
    assert!(cut.len() <= 1024 && cut.len() > 1000, "{} bytes", cut.len());

    for e in events("p") {
        srv.delete::<Event>(NS, e.metadata.name.as_deref().unwrap_or(""))
            .unwrap();
    }
    sink.publish(&p, true, "FailedScheduling", "waiting for PodGroup")
        .await
        .unwrap();
    let again = events("p");
    assert_eq!(again.len(), 1, "a series whose Event is gone starts again");
    assert_eq!(count(&again[0]), 1);
}

/// The `PodScheduled` condition of a pod, as `(status, reason, message)`.
fn pod_scheduled(srv: &ApiServer, name: &str) -> Option<(String, String, String)> {
    let p: Pod = srv.get(NS, name)?;
    let c = p
        .status?
        .conditions?
        .into_iter()
        .find(|c| c.type_ == "PodScheduled")?;
    Some((
        c.status,
        c.reason.unwrap_or_default(),
        c.message.unwrap_or_default(),
    ))
}

/// A gang that was tried and does not fit is marked as kube-scheduler marks
/// such pods (`PodScheduled=False`, `Unschedulable`: what cluster
/// autoscalers look for); a gang still waiting for its own pods is not;
/// the bind turns the mark to `True`.
#[tokio::test]
async fn pods_that_do_not_fit_are_marked_unschedulable_until_bound() {
    let srv = ApiServer::start().await.unwrap();
    add_nodes(&srv, "n", 1, 2);
    let sched = start(&srv, args()).await;
    add_gang(&srv, "wide", 4, 1);
    add_partial_gang(&srv, "part", 3, 2, 1);
    assert!(
        wait_for(WAIT, || (0..4).all(|i| pod_scheduled(
            &srv,
            &format!("wide-{i}")
        )
        .is_some_and(|(s, r, m)| s == "False"
            && r == "Unschedulable"
            && m.contains("wide"))))
        .await,
        "{:?}",
        pod_scheduled(&srv, "wide-0")
    );
    assert!(
        wait_for(WAIT, || event_reasons(&srv, "part-").len() == 2).await,
        "{:?}",
        event_reasons(&srv, "part-")
    );
    assert_eq!(
        pod_scheduled(&srv, "part-0"),
        None,
        "waiting for its own pods only"
    );
    add_nodes(&srv, "m", 1, 2);
    assert!(wait_for(WAIT, || bound_pods(&srv, "wide-").len() == 4).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..4 {
        let (status, _, _) = pod_scheduled(&srv, &format!("wide-{i}")).unwrap_or_default();
        assert_eq!(status, "True", "wide-{i}");
    }
    sched.shutdown().await;
}

/// A mark decided on a copy of the pod that is no longer current (the pod
/// was bound while the mark waited in the queue) is refused by the API
/// server and changes nothing.
#[tokio::test]
async fn a_stale_unschedulable_mark_does_not_undo_a_bind() {
    let srv = ApiServer::start().await.unwrap();
    add_nodes(&srv, "n", 1, 2);
    let (writer, _) = common::leading_writer(&srv, &args());
    let created = srv.create(&pod(NS, "p", "phalanx", 1, &[])).unwrap();
    let seen = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mark = |rv: &str| phalanx_kube::binder::UnschedulableMark {
        namespace: NS.into(),
        name: "p".into(),
        resource_version: rv.into(),
        message: "group default/p: busy".into(),
        since: "2026-12-06T14:00:00Z".into(),
    };
    writer.mark_unschedulable(mark(&seen));
    assert!(
        wait_for(WAIT, || pod_scheduled(&srv, "p")
            == Some((
                "False".into(),
                "Unschedulable".into(),
                "group default/p: busy".into()
            )))
        .await,
        "{:?}",
        pod_scheduled(&srv, "p")
    );
    srv.bind(NS, "p", "n0").unwrap();
    writer.mark_unschedulable(mark(&seen));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        pod_scheduled(&srv, "p").map(|(s, _, _)| s),
        Some("True".into()),
        "the bind's True stands"
    );
}
