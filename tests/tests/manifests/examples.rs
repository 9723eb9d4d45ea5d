//! The examples say what they claim: every pod asks for Phalanx, every gang is
//! declared consistently (a PodGroup whose minMember is the number of pods that
//! name it, or a Job marked for grouping by owner), peer DNS works, and the
//! competing gangs and the GPU gang are sized for the cluster hack/kind-up.sh
//! creates: each competing gang fits alone, both together do not.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PodTemplateSpec, Service};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde_json::Value;

const POD_GROUP_LABEL: &str = "scheduling.x-k8s.io/pod-group";
const GANG_LABEL: &str = "phalanx.dev/gang";
const SLOT: &str = "phalanx.dev/demo-slot";
const EXAMPLES: [&str; 4] = [
    "mpi-job.yaml",
    "flux-minicluster.yaml",
    "gpu-training.yaml",
    "competing-gangs.yaml",
];

use super::repo_root as root;

/// One example file's objects.
#[derive(Default)]
struct Example {
    jobs: Vec<Job>,
    services: Vec<Service>,
    /// PodGroup name -> minMember.
    pod_groups: BTreeMap<String, i64>,
}

fn example(name: &str) -> Example {
    let path = root().join("manifests/examples").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut ex = Example::default();
    for de in serde_yaml_ng::Deserializer::from_str(&text) {
        let doc: Value =
            serde_path_to_error::deserialize(de).unwrap_or_else(|e| panic!("{name}: {e}"));
        match doc["kind"].as_str() {
            Some("Job") => ex
                .jobs
                .push(serde_json::from_value(doc).unwrap_or_else(|e| panic!("{name}: {e}"))),
            Some("Service") => ex
                .services
                .push(serde_json::from_value(doc).unwrap_or_else(|e| panic!("{name}: {e}"))),
            Some("PodGroup") => {
                let pg_name = doc["metadata"]["name"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{name}: PodGroup without a name"));
                let min = doc["spec"]["minMember"]
                    .as_i64()
                    .unwrap_or_else(|| panic!("{name}: {pg_name} has no minMember"));
                ex.pod_groups.insert(pg_name.to_string(), min);
            }
            _ => {}
        }
    }
    ex
}

fn name_of(job: &Job) -> String {
    job.metadata
        .name
        .clone()
        .unwrap_or_else(|| panic!("a Job without a name"))
}

fn template(job: &Job) -> &PodTemplateSpec {
    &job.spec
        .as_ref()
        .unwrap_or_else(|| panic!("{}: no spec", name_of(job)))
        .template
}

fn pods_of(job: &Job) -> i64 {
    let spec = job
        .spec
        .as_ref()
        .unwrap_or_else(|| panic!("{}: no spec", name_of(job)));
    let parallelism = i64::from(spec.parallelism.unwrap_or(1));
    assert_eq!(
        spec.completions.map(i64::from),
        Some(parallelism),
        "{}: a gang runs all its pods at once",
        name_of(job)
    );
    parallelism
}

/// Labels the pods get: the template's plus the ones the Job controller adds.
fn pod_labels(job: &Job) -> BTreeMap<String, String> {
    let mut labels = template(job)
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert("job-name".into(), name_of(job));
    labels.insert("batch.kubernetes.io/job-name".into(), name_of(job));
    labels
}

/// A resource quantity of the one container, from requests, as an integer.
fn request(job: &Job, resource: &str) -> i64 {
    let spec = template(job)
        .spec
        .as_ref()
        .unwrap_or_else(|| panic!("no pod spec"));
    let requests = spec.containers[0]
        .resources
        .as_ref()
        .and_then(|r| r.requests.clone())
        .unwrap_or_default();
    requests.get(resource).map_or(0, |Quantity(q)| {
        q.parse().unwrap_or_else(|e| panic!("{resource}={q}: {e}"))
    })
}

/// An integer default from hack/kind-up.sh, e.g. `workers=${WORKERS:-3}` or `slots=4`.
fn kind_up_default(var: &str) -> i64 {
    let script =
        std::fs::read_to_string(root().join("hack/kind-up.sh")).unwrap_or_else(|e| panic!("{e}"));
    let line = script
        .lines()
        .find(|l| l.starts_with(&format!("{var}=")))
        .unwrap_or_else(|| panic!("no {var}= in kind-up.sh"));
    let digits: String = line
        .rsplit(['-', '='])
        .next()
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap_or_else(|e| panic!("{line}: {e}"))
}

#[test]
fn every_example_is_one_or_more_consistent_gangs_for_phalanx() {
    for file in EXAMPLES {
        let ex = example(file);
        assert!(!ex.jobs.is_empty(), "{file}: no Job");
        let mut members: BTreeMap<String, i64> = BTreeMap::new();
        for job in &ex.jobs {
            let name = name_of(job);
            let spec = template(job)
                .spec
                .as_ref()
                .unwrap_or_else(|| panic!("{file}: {name}: no pod spec"));
            assert_eq!(
                spec.scheduler_name.as_deref(),
                Some("phalanx"),
                "{file}: {name} does not ask for Phalanx"
            );
            match pod_labels(job).get(POD_GROUP_LABEL) {
                Some(group) => *members.entry(group.clone()).or_default() += pods_of(job),
                None => {
                    let labels = job.metadata.labels.clone().unwrap_or_default();
                    assert_eq!(
                        labels.get(GANG_LABEL).map(String::as_str),
                        Some("true"),
                        "{file}: {name} is in no gang"
                    );
                }
            }
            // Peers find each other through a headless Service that selects them.
            if let Some(sub) = &spec.subdomain {
                let svc = ex
                    .services
                    .iter()
                    .find(|s| s.metadata.name.as_deref() == Some(sub.as_str()));
                let svc = svc.unwrap_or_else(|| {
                    panic!("{file}: {name}: no Service {sub} for its subdomain")
                });
                let svc_spec = svc.spec.clone().unwrap_or_default();
                assert_eq!(
                    svc_spec.cluster_ip.as_deref(),
                    Some("None"),
                    "{file}: {sub} must be headless"
                );
                let labels = pod_labels(job);
                for (k, v) in svc_spec.selector.unwrap_or_default() {
                    assert_eq!(
                        labels.get(&k),
                        Some(&v),
                        "{file}: Service {sub} does not select {name}'s pods"
                    );
                }
            }
        }
        assert_eq!(
            members, ex.pod_groups,
            "{file}: each PodGroup's minMember must be the number of pods naming it"
        );
    }
}

#[test]
fn competing_gangs_each_fit_the_kind_cluster_alone_but_not_together() {
    let workers = kind_up_default("workers");
    let slots_per_node = kind_up_default("slots");
    let ex = example("competing-gangs.yaml");
    assert_eq!(ex.jobs.len(), 2, "two competing gangs");
    let per_pod: Vec<i64> = ex.jobs.iter().map(|j| request(j, SLOT)).collect();
    assert!(
        per_pod.iter().all(|&s| s > 0 && s <= slots_per_node),
        "slots per pod {per_pod:?}"
    );
    // Whole pods per node, so the count is what the kubelet would admit.
    let capacity = |per: i64| workers * (slots_per_node / per);
    for (job, per) in ex.jobs.iter().zip(&per_pod) {
        assert!(
            pods_of(job) <= capacity(*per),
            "{} does not fit alone",
            name_of(job)
        );
    }
    let total: i64 = ex.jobs.iter().map(pods_of).sum();
    assert!(
        per_pod.iter().all(|&p| p == per_pod[0]),
        "same pod shape in both gangs keeps the arithmetic honest"
    );
    assert!(
        total > capacity(per_pod[0]),
        "both gangs ({total} pods) fit at once: no contention to show"
    );
}

#[test]
fn the_gpu_gang_is_guaranteed_qos_and_fits_the_kind_cluster() {
    let workers = kind_up_default("workers");
    let gpus_per_node = kind_up_default("fake_gpus");
    let ex = example("gpu-training.yaml");
    for job in &ex.jobs {
        let spec = template(job)
            .spec
            .as_ref()
            .unwrap_or_else(|| panic!("no pod spec"));
        for c in &spec.containers {
            let r = c.resources.clone().unwrap_or_default();
            // Equal requests and limits with whole CPUs: the static CPU manager and
            // the topology manager can then align cores and GPUs to one NUMA zone.
            assert_eq!(
                r.requests, r.limits,
                "{}: requests and limits differ",
                c.name
            );
            let cpu = r
                .requests
                .unwrap_or_default()
                .get("cpu")
                .map(|q| q.0.clone())
                .unwrap_or_default();
            assert!(
                cpu.parse::<u32>().is_ok_and(|n| n >= 1),
                "{}: cpu {cpu:?} is not whole cores",
                c.name
            );
        }
        let gpus = request(job, "nvidia.com/gpu");
        assert!(
            gpus > 0 && gpus <= gpus_per_node,
            "{}: {gpus} GPUs per pod",
            name_of(job)
        );
        assert!(
            pods_of(job) <= workers * (gpus_per_node / gpus),
            "{}: does not fit the kind cluster",
            name_of(job)
        );
    }
}

#[test]
fn e2e_runs_every_example() {
    let script =
        std::fs::read_to_string(root().join("hack/e2e.sh")).unwrap_or_else(|e| panic!("{e}"));
    let dir = root().join("manifests/examples");
    // conventions/ needs operators or feature gates a kind cluster lacks: run by hand.
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    on_disk.sort();
    let mut expected: Vec<String> = EXAMPLES.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(on_disk, expected);
    for file in EXAMPLES {
        assert!(script.contains(file), "hack/e2e.sh does not run {file}");
    }
}

/// The examples in conventions/: one per gang convention (README's table).
const CONVENTIONS: [&str; 7] = [
    "native-podgroup.yaml",
    "kueue-pod-group.yaml",
    "jobset.yaml",
    "leaderworkerset.yaml",
    "mpijob.yaml",
    "flux-operator-minicluster.yaml",
    "volcano.yaml",
];

fn convention_docs(file: &str) -> Vec<Value> {
    let path = root().join("manifests/examples/conventions").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|de| serde_path_to_error::deserialize(de).unwrap_or_else(|e| panic!("{file}: {e}")))
        .collect()
}

/// Every pod spec inside `v` (an object with `containers`), with its path.
fn pod_specs<'a>(v: &'a Value, path: String, out: &mut Vec<(String, &'a Value)>) {
    match v {
        Value::Object(m) if m.contains_key("containers") => out.push((path, v)),
        Value::Object(m) => {
            for (k, x) in m {
                pod_specs(x, format!("{path}.{k}"), out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                pod_specs(x, format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn dynamic(doc: &Value) -> kube::api::DynamicObject {
    serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_convention_has_an_example_whose_pods_ask_for_phalanx() {
    let dir = root().join("manifests/examples/conventions");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    on_disk.sort();
    let mut expected: Vec<String> = CONVENTIONS.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(on_disk, expected);
    let readme =
        std::fs::read_to_string(root().join("README.md")).unwrap_or_else(|e| panic!("{e}"));
    for file in CONVENTIONS {
        assert!(readme.contains(file), "README does not list {file}");
        let docs = convention_docs(file);
        let mut specs = Vec::new();
        for (i, d) in docs.iter().enumerate() {
            pod_specs(d, format!("document {i}"), &mut specs);
        }
        if file == "flux-operator-minicluster.yaml" {
            // The operator writes the pod spec; the MiniCluster chooses the scheduler.
            assert_eq!(docs[0]["spec"]["pod"]["schedulerName"], "phalanx", "{file}");
            continue;
        }
        assert!(!specs.is_empty(), "{file}: no pod spec");
        for (path, spec) in specs {
            assert_eq!(spec["schedulerName"], "phalanx", "{file}: {path}");
        }
    }
}

#[test]
fn convention_examples_declare_the_size_their_pods_make() {
    use phalanx_kube::groups;
    // Native: the PodGroup's minCount is the Job's pod count, and its pods name it.
    let docs = convention_docs("native-podgroup.yaml");
    let pg = docs
        .iter()
        .find(|d| d["kind"] == "PodGroup")
        .unwrap_or_else(|| panic!("no PodGroup"));
    let parsed = groups::native::parse_podgroup(&dynamic(pg)).unwrap_or_else(|e| panic!("{e}"));
    let job = docs
        .iter()
        .find(|d| d["kind"] == "Job")
        .unwrap_or_else(|| panic!("no Job"));
    assert_eq!(parsed.policy, groups::native::Policy::Gang(4));
    assert_eq!(job["spec"]["parallelism"], 4);
    assert_eq!(
        job["spec"]["template"]["spec"]["schedulingGroup"]["podGroupName"],
        pg["metadata"]["name"]
    );
    let wl = docs
        .iter()
        .find(|d| d["kind"] == "Workload")
        .unwrap_or_else(|| panic!("no Workload"));
    groups::native::parse_workload(&dynamic(wl)).unwrap_or_else(|e| panic!("{e}"));
    // Kueue: as many pods as each one's total count.
    let pods = convention_docs("kueue-pod-group.yaml");
    for p in &pods {
        assert_eq!(
            p["metadata"]["annotations"][groups::kueue::TOTAL_COUNT_ANNOTATION],
            pods.len().to_string()
        );
        assert_eq!(p["metadata"]["labels"][groups::kueue::GROUP_LABEL], "kq");
    }
    // JobSet, MPIJob, MiniCluster: sizes as Phalanx reads them.
    let js = groups::jobset::parse(&dynamic(&convention_docs("jobset.yaml")[0]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(js.size, 5);
    let mpi = groups::mpijob::parse(&dynamic(&convention_docs("mpijob.yaml")[0]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((mpi.launchers, mpi.workers), (1, 4));
    let mc = groups::flux::parse(&dynamic(
        &convention_docs("flux-operator-minicluster.yaml")[0],
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(mc.size, 4);
    // LeaderWorkerSet: the controller annotates pods with this size.
    let lws = &convention_docs("leaderworkerset.yaml")[0];
    assert_eq!(lws["spec"]["leaderWorkerTemplate"]["size"], 4);
    // Volcano: minMember is the Job's pod count, and the fallback annotation agrees.
    let docs = convention_docs("volcano.yaml");
    let vpg = groups::volcano::parse(&dynamic(&docs[0])).unwrap_or_else(|e| panic!("{e}"));
    let job = &docs[1];
    assert_eq!(job["spec"]["parallelism"], i64::from(vpg.min_member));
    let ann = &job["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(
        ann[groups::volcano::GROUP_ANNOTATION],
        docs[0]["metadata"]["name"]
    );
    assert_eq!(
        ann[groups::GROUP_SIZE_ANNOTATION],
        vpg.min_member.to_string()
    );
}
