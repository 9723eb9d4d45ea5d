//! The deployment as a whole against the Kubernetes API test server: the
//! scheduler runs with the Deployment's own flags (leader election on, Lease in
//! phalanx-system) on a cluster shaped like hack/kind-up.sh's, the examples'
//! Jobs get their pods the way the Job controller makes them, and then
//! - every gang is placed whole; of the two competing gangs one runs and the
//!   other has no pod bound until the first finishes, then it is placed whole;
//! - every API request the scheduler made is granted by manifests/rbac.yaml.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use clap::{Args, FromArgMatches};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::rbac::v1::{ClusterRole, Role};
use phalanx_kube::{RunArgs, Settings};
use phalanx_tests::apiserver::ApiServer;
use phalanx_tests::fixtures::wait_for;
use serde_json::{Value, json};

const NS: &str = "examples";
const WAIT: Duration = Duration::from_secs(20);

use super::manifests_dir as manifests;

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|de| {
            serde_path_to_error::deserialize(de)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .filter(|v: &Value| !v.is_null())
        .collect()
}

/// The Deployment's args as `phalanx run` parses them, with the listeners and
/// lease timings made fit for a test (ephemeral port, no gRPC, sub-second lease).
fn deployment_settings() -> Settings {
    let doc = documents(&manifests().join("deployment.yaml")).remove(0);
    let d: Deployment = serde_json::from_value(doc).unwrap_or_else(|e| panic!("{e}"));
    let pod = d
        .spec
        .and_then(|s| s.template.spec)
        .unwrap_or_else(|| panic!("no pod spec"));
    let args = pod.containers[0].args.clone().unwrap_or_default();
    let matches = RunArgs::augment_args(clap::Command::new("run"))
        .try_get_matches_from(&args)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut run = RunArgs::from_arg_matches(&matches).unwrap_or_else(|e| panic!("{e}"));
    run.metrics_addr = Some(([127, 0, 0, 1], 0).into());
    run.grpc_addr = Some("none".into());
    // POD_NAMESPACE, which the Deployment sets, is where the Lease lives.
    run.lease_namespace = d.metadata.namespace.clone();
    run.lease_duration = Some(Duration::from_millis(1000));
    run.renew_deadline = Some(Duration::from_millis(600));
    run.retry_period = Some(Duration::from_millis(100));
    run.retry_interval = Some(Duration::from_millis(100));
    let settings = Settings::resolve(&run).unwrap_or_else(|e| panic!("{e}"));
    assert!(settings.leader_elect, "the Deployment elects a leader");
    settings
}

/// The Deployment's liveness and readiness probe paths.
fn probe_paths() -> Vec<String> {
    let doc = documents(&manifests().join("deployment.yaml")).remove(0);
    let d: Deployment = serde_json::from_value(doc).unwrap_or_else(|e| panic!("{e}"));
    let pod = d
        .spec
        .and_then(|s| s.template.spec)
        .unwrap_or_else(|| panic!("no pod spec"));
    let c = &pod.containers[0];
    [&c.liveness_probe, &c.readiness_probe]
        .iter()
        .map(|p| {
            let get = p.as_ref().and_then(|p| p.http_get.as_ref());
            get.and_then(|g| g.path.clone())
                .unwrap_or_else(|| panic!("a probe without an httpGet path"))
        })
        .collect()
}

/// GET `path` over plain HTTP/1.1 as the kubelet's prober does; (status code, body).
async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("{addr}: {e}"));
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let code = response
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("{response}"));
    (code, response)
}

/// Three workers as hack/kind-up.sh labels and advertises them.
fn add_kind_workers(srv: &ApiServer) {
    for (i, name) in ["phalanx-worker", "phalanx-worker2", "phalanx-worker3"]
        .iter()
        .enumerate()
    {
        let resources = json!({"cpu": "8", "memory": "16Gi", "pods": "110",
            "phalanx.dev/demo-slot": "4", "nvidia.com/gpu": "4"});
        let node = json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {
                "kubernetes.io/hostname": name,
                "topology.kubernetes.io/zone": format!("zone-{}", i / 4),
                "phalanx.dev/rack": format!("rack-{}", i / 2),
            }},
            "spec": {},
            "status": {"capacity": resources, "allocatable": resources,
                "conditions": [{"type": "Ready", "status": "True"}]},
        });
        srv.create_json("", "v1", "nodes", "", node)
            .unwrap_or_else(|e| panic!("node {name}: {e:?}"));
    }
}

/// Creates one example file's objects, and for each Job the pods its
/// controller would create: template labels plus job-name, the completion
/// index, the hostname of an indexed Job, and a controller owner reference.
fn apply_example(srv: &ApiServer, file: &str) {
    for mut doc in documents(&manifests().join("examples").join(file)) {
        doc["metadata"]["namespace"] = json!(NS);
        let kind = doc["kind"].as_str().unwrap_or_default().to_string();
        let (group, version, plural) = match kind.as_str() {
            "PodGroup" => ("scheduling.x-k8s.io", "v1alpha1", "podgroups"),
            "Job" => ("batch", "v1", "jobs"),
            // Services only give the pods DNS names; the scheduler never reads them.
            "Service" => continue,
            other => panic!("{file}: unexpected kind {other}"),
        };
        let stored = srv
            .create_json(group, version, plural, NS, doc.clone())
            .unwrap_or_else(|e| panic!("{file}: {e:?}"));
        if kind != "Job" {
            continue;
        }
        let job = doc["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let uid = stored["metadata"]["uid"]
            .as_str()
            .map_or_else(|| format!("uid-{job}"), str::to_string);
        let template = &doc["spec"]["template"];
        let indexed = doc["spec"]["completionMode"] == "Indexed";
        let parallelism = doc["spec"]["parallelism"].as_u64().unwrap_or(1);
        for i in 0..parallelism {
            let mut labels = template["metadata"]["labels"].clone();
            if labels.is_null() {
                labels = json!({});
            }
            labels["job-name"] = json!(job);
            labels["batch.kubernetes.io/job-name"] = json!(job);
            labels["controller-uid"] = json!(uid);
            let mut annotations = template["metadata"]["annotations"].clone();
            if annotations.is_null() {
                annotations = json!({});
            }
            let mut spec = template["spec"].clone();
            if indexed {
                annotations["batch.kubernetes.io/job-completion-index"] = json!(i.to_string());
                if spec["hostname"].is_null() {
                    spec["hostname"] = json!(format!("{job}-{i}"));
                }
            }
            let pod = json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {
                    "name": format!("{job}-{i}-x{i:04}"), "namespace": NS,
                    "labels": labels, "annotations": annotations,
                    "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": job, "uid": uid,
                        "controller": true, "blockOwnerDeletion": true}],
                },
                "spec": spec,
            });
            srv.create_json("", "v1", "pods", NS, pod)
                .unwrap_or_else(|e| panic!("{file}: pod of {job}: {e:?}"));
        }
    }
}

/// Bound pods per Job.
fn bound_per_job(srv: &ApiServer) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for pod in srv.list::<Pod>() {
        let job = pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("job-name").cloned())
            .unwrap_or_default();
        let bound = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_ref())
            .is_some();
        *out.entry(job).or_default() += usize::from(bound);
    }
    out
}

fn bound(srv: &ApiServer, job: &str) -> usize {
    bound_per_job(srv).get(job).copied().unwrap_or(0)
}

/// (group, resource, verb) granted by the committed ClusterRole and Role.
fn granted() -> BTreeSet<(String, String, String)> {
    let mut rules = Vec::new();
    for doc in documents(&manifests().join("rbac.yaml")) {
        match doc["kind"].as_str() {
            Some("ClusterRole") => {
                let role: ClusterRole =
                    serde_json::from_value(doc).unwrap_or_else(|e| panic!("{e}"));
                rules.extend(role.rules.unwrap_or_default());
            }
            Some("Role") => {
                let role: Role = serde_json::from_value(doc).unwrap_or_else(|e| panic!("{e}"));
                rules.extend(role.rules.unwrap_or_default());
            }
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    for rule in rules {
        for group in rule.api_groups.unwrap_or_default() {
            for resource in rule.resources.clone().unwrap_or_default() {
                for verb in &rule.verbs {
                    out.insert((group.clone(), resource.clone(), verb.clone()));
                }
            }
        }
    }
    out
}

#[tokio::test]
async fn examples_are_placed_whole_with_the_deployed_flags_and_rbac() {
    let srv = ApiServer::start().await.unwrap_or_else(|e| panic!("{e}"));
    add_kind_workers(&srv);
    let sched = phalanx_kube::start(deployment_settings(), Some(srv.client()))
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(
        wait_for(WAIT, || sched.is_ready()).await,
        "caches never synced"
    );
    // The kubelet's probes, at the Deployment's paths, pass once caches are synced.
    for path in probe_paths() {
        let (code, response) = http_get(sched.metrics_addr(), &path).await;
        assert_eq!(code, 200, "probe {path}: {response}");
    }
    assert!(
        wait_for(WAIT, || sched.is_leader()).await,
        "the only replica never took the Lease"
    );
    let (code, metrics) = http_get(sched.metrics_addr(), "/metrics").await;
    assert_eq!(code, 200);
    assert!(
        metrics.contains("phalanx_leader 1"),
        "the leader gauge is not 1:\n{metrics}"
    );

    for file in ["mpi-job.yaml", "flux-minicluster.yaml", "gpu-training.yaml"] {
        apply_example(&srv, file);
    }
    let whole = |srv: &ApiServer| {
        let b = bound_per_job(srv);
        let get = |j: &str| b.get(j).copied().unwrap_or(0);
        get("lammps-launcher") == 1
            && get("lammps-worker") == 4
            && get("flux-sample") == 4
            && get("resnet") == 4
    };
    assert!(
        wait_for(WAIT, || whole(&srv)).await,
        "examples not placed whole: {:?}",
        bound_per_job(&srv)
    );

    apply_example(&srv, "competing-gangs.yaml");
    assert!(
        wait_for(WAIT, || bound(&srv, "gang-a") == 4
            || bound(&srv, "gang-b") == 4)
        .await,
        "neither competing gang was placed: {:?}",
        bound_per_job(&srv)
    );
    let (first, second) = if bound(&srv, "gang-a") == 4 {
        ("gang-a", "gang-b")
    } else {
        ("gang-b", "gang-a")
    };
    // The one that does not fit takes nothing while it waits: no deadlock.
    let took_some = wait_for(Duration::from_secs(1), || bound(&srv, second) > 0).await;
    assert!(
        !took_some,
        "{second} got part of the cluster while {first} runs: {:?}",
        bound_per_job(&srv)
    );

    for pod in srv.list::<Pod>() {
        let name = pod.metadata.name.clone().unwrap_or_default();
        if name.starts_with(&format!("{first}-")) {
            srv.set_pod_phase(NS, &name, "Succeeded")
                .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        }
    }
    assert!(
        wait_for(WAIT, || bound(&srv, second) == 4).await,
        "{second} was not placed whole after {first} finished: {:?}",
        bound_per_job(&srv)
    );
    sched.shutdown().await;

    let granted = granted();
    let mut denied: Vec<_> = srv
        .request_counts_by_group()
        .into_keys()
        .filter(|(g, r, v)| !granted.contains(&(g.clone(), r.clone(), v.clone())))
        .collect();
    denied.sort();
    assert!(
        denied.is_empty(),
        "requests manifests/rbac.yaml does not allow: {denied:?}"
    );
    assert!(
        srv.request_count("create", "pods/binding") >= 21,
        "every example pod is bound through pods/binding"
    );
}

/// A NodeResourceTopology with two NUMA zones of `gpus_per_zone` GPUs and 4 CPUs each.
fn nrt(node: &str, gpus_per_zone: u32) -> Value {
    let zone = |i: u32| {
        let res = |name: &str, q: String| json!({"name": name, "capacity": q, "allocatable": q, "available": q});
        json!({"name": format!("node-{i}"), "type": "Node", "resources": [
            res("cpu", "4".into()), res("memory", "8Gi".into()), res("nvidia.com/gpu", gpus_per_zone.to_string()),
        ]})
    };
    json!({
        "apiVersion": "topology.node.k8s.io/v1alpha2", "kind": "NodeResourceTopology",
        "metadata": {"name": node},
        "topologyPolicies": ["SingleNUMANodeContainerLevel"],
        "attributes": [{"name": "topologyManagerPolicy", "value": "single-numa-node"}],
        "zones": [zone(0), zone(1)],
    })
}

#[tokio::test]
async fn the_gpu_example_waits_for_numa_aligned_gpus() {
    use phalanx_kube::crd::NodeResourceTopology;
    use phalanx_tests::apiserver::{ApiServerOptions, ResourceType};
    let nrt_type = ResourceType::new(
        "topology.node.k8s.io",
        "v1alpha2",
        "noderesourcetopologies",
        "NodeResourceTopology",
        false,
        false,
    );
    let options = ApiServerOptions {
        extra_types: vec![nrt_type],
        ..Default::default()
    };
    let srv = ApiServer::start_with(options)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    add_kind_workers(&srv);
    // Every worker has 4 GPUs by node capacity, but only 1 per NUMA zone: a
    // 2-GPU trainer fits each node's totals yet cannot be aligned anywhere.
    let workers = ["phalanx-worker", "phalanx-worker2", "phalanx-worker3"];
    for node in workers {
        srv.create_json(
            "topology.node.k8s.io",
            "v1alpha2",
            "noderesourcetopologies",
            "",
            nrt(node, 1),
        )
        .unwrap_or_else(|e| panic!("{node}: {e:?}"));
    }
    let sched = phalanx_kube::start(deployment_settings(), Some(srv.client()))
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(
        wait_for(WAIT, || sched.is_ready()).await,
        "caches never synced"
    );
    apply_example(&srv, "gpu-training.yaml");
    let placed_unaligned = wait_for(Duration::from_secs(1), || bound(&srv, "resnet") > 0).await;
    assert!(
        !placed_unaligned,
        "trainers placed with GPUs split across NUMA zones: {:?}",
        bound_per_job(&srv)
    );

    // Two workers now report 2 GPUs per zone: 4 aligned slots, exactly the gang.
    for node in &workers[1..] {
        srv.delete::<NodeResourceTopology>("", node)
            .unwrap_or_else(|e| panic!("{node}: {e:?}"));
        srv.create_json(
            "topology.node.k8s.io",
            "v1alpha2",
            "noderesourcetopologies",
            "",
            nrt(node, 2),
        )
        .unwrap_or_else(|e| panic!("{node}: {e:?}"));
    }
    assert!(
        wait_for(WAIT, || bound(&srv, "resnet") == 4).await,
        "resnet not placed whole: {:?}",
        bound_per_job(&srv)
    );
    let nodes: Vec<String> = srv
        .list::<Pod>()
        .into_iter()
        .filter_map(|p| p.spec.and_then(|s| s.node_name))
        .collect();
    assert!(
        !nodes.iter().any(|n| n == "phalanx-worker"),
        "a trainer on the unaligned worker: {nodes:?}"
    );
    sched.shutdown().await;
}
