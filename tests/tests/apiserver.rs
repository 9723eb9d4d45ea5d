//! The test API server against the real kube-rs client.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::watcher;
use phalanx_tests::apiserver::{ApiServer, KubeletOptions};
use serde_json::json;

fn pod(name: &str, scheduler: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "mpi"}},
        "spec": {"schedulerName": scheduler, "containers": [{"name": "c", "image": "busybox"}]},
    }))
    .unwrap()
}

fn binding(pod: &str, node: &str) -> Binding {
    Binding {
        metadata: kube::api::ObjectMeta {
            name: Some(pod.into()),
            ..Default::default()
        },
        target: ObjectReference {
            kind: Some("Node".into()),
            name: Some(node.into()),
            ..Default::default()
        },
    }
}

async fn bind(api: &Api<Pod>, pod: &str, node: &str) -> Result<serde_json::Value, kube::Error> {
    api.create_subresource("binding", pod, &PostParams::default(), &binding(pod, node))
        .await
}

fn code(err: kube::Error) -> u16 {
    match err {
        kube::Error::Api(s) => s.code,
        other => panic!("expected an API error, got {other}"),
    }
}

#[tokio::test]
async fn crud_binding_and_selectors() {
    let srv = ApiServer::start().await.unwrap();
    let api: Api<Pod> = Api::namespaced(srv.client(), "default");
    let created = api
        .create(&PostParams::default(), &pod("a", "phalanx"))
        .await
        .unwrap();
    assert!(created.metadata.uid.is_some());
    assert_eq!(
        created.status.and_then(|s| s.phase).as_deref(),
        Some("Pending")
    );
    api.create(&PostParams::default(), &pod("b", "default-scheduler"))
        .await
        .unwrap();
    assert_eq!(
        code(
            api.create(&PostParams::default(), &pod("a", "x"))
                .await
                .unwrap_err()
        ),
        409
    );

    let ours = api
        .list(&ListParams::default().fields("spec.schedulerName=phalanx"))
        .await
        .unwrap();
    assert_eq!(ours.items.len(), 1);
    let labelled = api
        .list(&ListParams::default().labels("app in (mpi)"))
        .await
        .unwrap();
    assert_eq!(labelled.items.len(), 2);

    let status = bind(&api, "a", "n1").await.unwrap();
    assert_eq!(status["code"], 201);
    assert_eq!(
        api.get("a")
            .await
            .unwrap()
            .spec
            .unwrap()
            .node_name
            .as_deref(),
        Some("n1")
    );
    assert_eq!(code(bind(&api, "a", "n2").await.unwrap_err()), 409);
    assert_eq!(code(bind(&api, "gone", "n2").await.unwrap_err()), 404);
    let unbound = api
        .list(&ListParams::default().fields("spec.nodeName="))
        .await
        .unwrap();
    assert_eq!(unbound.items.len(), 1);

    srv.inject_bind_error("default", "b", 409);
    assert_eq!(code(bind(&api, "b", "n1").await.unwrap_err()), 409);
    bind(&api, "b", "n1").await.unwrap();
    assert_eq!(srv.request_count("create", "pods/binding"), 5);

    let patched = api
        .patch_status(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Running"}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.status.unwrap().phase.as_deref(), Some("Running"));
    // A bound, running pod is deleted gracefully: it stays, terminating, for its grace period.
    api.delete("a", &DeleteParams::default()).await.unwrap();
    let terminating = api.get("a").await.unwrap();
    assert!(terminating.metadata.deletion_timestamp.is_some());
    assert_eq!(terminating.metadata.deletion_grace_period_seconds, Some(30));
    api.delete("a", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    assert_eq!(code(api.get("a").await.unwrap_err()), 404);
}

#[tokio::test]
async fn lease_updates_are_optimistic() {
    let srv = ApiServer::start().await.unwrap();
    let api: Api<Lease> = Api::namespaced(srv.client(), "kube-system");
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {"name": "phalanx"}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 2},
    }))
    .unwrap();
    let first = api.create(&PostParams::default(), &lease).await.unwrap();
    let mut mine = first.clone();
    mine.spec.as_mut().unwrap().holder_identity = Some("b".into());
    let second = api
        .replace("phalanx", &PostParams::default(), &mine)
        .await
        .unwrap();
    assert_ne!(
        first.metadata.resource_version,
        second.metadata.resource_version
    );
    // `mine` still carries the old resourceVersion: a stale write loses.
    assert_eq!(
        code(
            api.replace("phalanx", &PostParams::default(), &mine)
                .await
                .unwrap_err()
        ),
        409
    );
    // Server-side apply creates and merges.
    let applied = api
        .patch(
            "other",
            &PatchParams::apply("phalanx"),
            &Patch::Apply(json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "spec": {"holderIdentity": "c"}})),
        )
        .await
        .unwrap();
    assert_eq!(applied.spec.unwrap().holder_identity.as_deref(), Some("c"));
}

#[tokio::test]
async fn watch_streams_changes_and_reports_gone_versions() {
    let srv = ApiServer::start().await.unwrap();
    let api: Api<Pod> = Api::namespaced(srv.client(), "default");
    let list = api.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();
    let mut stream = api
        .watch(
            &WatchParams::default().fields("spec.schedulerName=phalanx"),
            &rv,
        )
        .await
        .unwrap()
        .boxed();
    api.create(&PostParams::default(), &pod("other", "default-scheduler"))
        .await
        .unwrap();
    api.create(&PostParams::default(), &pod("p", "phalanx"))
        .await
        .unwrap();
    bind(&api, "p", "n1").await.unwrap();
    api.delete("p", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        match stream.try_next().await.unwrap().unwrap() {
            WatchEvent::Added(p) => seen.push(format!("ADDED {}", p.metadata.name.unwrap())),
            WatchEvent::Modified(p) => {
                seen.push(format!("MODIFIED {}", p.spec.unwrap().node_name.unwrap()))
            }
            WatchEvent::Deleted(p) => seen.push(format!("DELETED {}", p.metadata.name.unwrap())),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(seen, ["ADDED p", "MODIFIED n1", "DELETED p"]);

    srv.compact();
    let mut stale = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    match stale.try_next().await.unwrap().unwrap() {
        WatchEvent::Error(e) => assert_eq!(e.code, 410),
        other => panic!("expected 410 Gone, got {other:?}"),
    }
}

#[tokio::test]
async fn watcher_relists_after_gone_and_sees_kubelet_updates() {
    let srv = ApiServer::start().await.unwrap();
    srv.start_kubelet(KubeletOptions::default());
    let api: Api<Pod> = Api::namespaced(srv.client(), "default");
    // Short server-side watch timeouts make the watcher resume often, so a compaction
    // forces it through the 410 path quickly.
    let cfg = watcher::Config::default().timeout(1);
    let mut events = watcher(api.clone(), cfg).boxed();
    api.create(&PostParams::default(), &pod("p", "phalanx"))
        .await
        .unwrap();
    let mut running = false;
    let mut relisted = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut bound = false;
    while !(running && relisted) && tokio::time::Instant::now() < deadline {
        let Ok(Some(ev)) = tokio::time::timeout(Duration::from_secs(3), events.next()).await else {
            continue;
        };
        let Ok(ev) = ev else { continue };
        if let watcher::Event::Apply(p) | watcher::Event::InitApply(p) = &ev {
            if !bound && p.metadata.name.as_deref() == Some("p") {
                bound = true;
                bind(&api, "p", "n1").await.unwrap();
                srv.compact();
            }
            let phase = p.status.as_ref().and_then(|s| s.phase.clone());
            running |= phase.as_deref() == Some("Running");
        }
        relisted = srv.request_count("list", "pods") >= 2;
    }
    assert!(
        running,
        "the simulated kubelet marked the bound pod Running"
    );
    assert!(relisted, "the watcher re-listed after 410 Gone");
}

#[tokio::test]
async fn discovery_lists_crd_groups() {
    let srv = ApiServer::start().await.unwrap();
    let client = srv.client();
    let groups = client.list_api_groups().await.unwrap();
    assert!(
        groups
            .groups
            .iter()
            .any(|g| g.name == "scheduling.x-k8s.io")
    );
    assert!(
        !groups
            .groups
            .iter()
            .any(|g| g.name == "topology.node.k8s.io")
    );
    srv.install(phalanx_tests::apiserver::ResourceType::node_resource_topology());
    let groups = client.list_api_groups().await.unwrap();
    assert!(
        groups
            .groups
            .iter()
            .any(|g| g.name == "topology.node.k8s.io")
    );
    let version = client.apiserver_version().await.unwrap();
    assert_eq!(version.major, "1");
}

/// Graceful pod deletion over HTTP, as kube-apiserver does it: a UID
/// precondition that does not hold is a 409; a bound pod is marked
/// (`deletionTimestamp`, `deletionGracePeriodSeconds`) and the kubelet removes
/// it once its containers stopped; a terminating pod cannot be bound.
#[tokio::test]
async fn graceful_delete_with_uid_preconditions_and_the_kubelet() {
    use kube::api::Preconditions;
    let srv = ApiServer::start().await.unwrap();
    srv.start_kubelet(KubeletOptions {
        stop_after: Duration::from_millis(300),
        ..Default::default()
    });
    let api: Api<Pod> = Api::namespaced(srv.client(), "default");
    let created = api
        .create(&PostParams::default(), &pod("p", "phalanx"))
        .await
        .unwrap();
    bind(&api, "p", "n1").await.unwrap();
    let with_uid = |uid: &str| DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some(uid.into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    let err = api.delete("p", &with_uid("another-pod")).await.unwrap_err();
    assert_eq!(code(err), 409);
    assert!(
        api.get("p")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_none()
    );
    let uid = created.metadata.uid.unwrap();
    api.delete("p", &with_uid(&uid)).await.unwrap();
    let t = api.get("p").await.unwrap();
    assert!(t.metadata.deletion_timestamp.is_some());
    assert_eq!(t.metadata.deletion_grace_period_seconds, Some(30));
    // Conditions are merged by type (strategic merge), so PodScheduled stays.
    let marked = api
        .patch_status(
            "p",
            &PatchParams::default(),
            &Patch::Strategic(json!({"status": {"conditions": [
                {"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler"}]}})),
        )
        .await
        .unwrap();
    let types: Vec<String> = marked
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.type_)
        .collect();
    assert_eq!(types, ["PodScheduled", "DisruptionTarget"]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while api.get_opt("p").await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the kubelet never removed the pod"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A pod being deleted (no kubelet acts on unbound pods: they go at once).
    api.create(&PostParams::default(), &pod("q", "phalanx"))
        .await
        .unwrap();
    api.delete("q", &DeleteParams::default()).await.unwrap();
    assert_eq!(code(api.get("q").await.unwrap_err()), 404);
}

/// policy/v1 PodDisruptionBudgets list and watch like any other kind, and
/// the Priority admission resolves PriorityClasses at create.
#[tokio::test]
async fn budgets_and_priority_classes_are_served() {
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    use k8s_openapi::api::scheduling::v1::PriorityClass;
    let srv = ApiServer::start().await.unwrap();
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(srv.client(), "default");
    let pdb: PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": {"name": "b"}, "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "mpi"}}},
        "status": {"disruptionsAllowed": 5, "currentHealthy": 6, "desiredHealthy": 1, "expectedPods": 6},
    }))
    .unwrap();
    let created = pdbs.create(&PostParams::default(), &pdb).await.unwrap();
    // A client's status is dropped at create, as kube-apiserver drops it.
    assert_eq!(created.status.map(|s| s.disruptions_allowed), Some(0));
    let listed = pdbs.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    let classes: Api<PriorityClass> = Api::all(srv.client());
    let pc: PriorityClass =
        serde_json::from_value(json!({"metadata": {"name": "high"}, "value": 1000})).unwrap();
    classes.create(&PostParams::default(), &pc).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(srv.client(), "default");
    let mut p = pod("hp", "phalanx");
    p.spec.as_mut().unwrap().priority_class_name = Some("high".into());
    let created = pods.create(&PostParams::default(), &p).await.unwrap();
    let spec = created.spec.unwrap();
    assert_eq!(spec.priority, Some(1000));
    assert_eq!(
        spec.preemption_policy.as_deref(),
        Some("PreemptLowerPriority")
    );
    let mut bad = pod("nope", "phalanx");
    bad.spec.as_mut().unwrap().priority_class_name = Some("missing".into());
    assert_eq!(
        code(pods.create(&PostParams::default(), &bad).await.unwrap_err()),
        403
    );
}
