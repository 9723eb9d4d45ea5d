//! Built-in scenarios (the same format as scenario files).

/// Names of the built-in scenarios.
pub const NAMES: [&str; 8] = [
    "mpi-contention",
    "gpu-training",
    "large",
    "minute-mpi",
    "minute-gpu",
    "minute-arrivals",
    "priority",
    "elastic",
];

/// The YAML of a built-in scenario.
pub fn yaml(name: &str) -> Option<&'static str> {
    match name {
        "mpi-contention" => Some(MPI_CONTENTION),
        "gpu-training" => Some(GPU_TRAINING),
        "large" => Some(LARGE),
        "minute-mpi" => Some(MINUTE_MPI),
        "minute-gpu" => Some(MINUTE_GPU),
        "minute-arrivals" => Some(MINUTE_ARRIVALS),
        "priority" => Some(PRIORITY),
        "elastic" => Some(ELASTIC),
        _ => None,
    }
}

const MPI_CONTENTION: &str = r#"
name: mpi-contention
description: >-
  8 nodes x 8 CPUs; ~100 LAMMPS-like MPI jobs of 2-8 pods arriving in bursts.
  A job runs only when all its pods run, so pods bound one at a time can hold
  the whole cluster while no job can start.
# With this draw pod-at-a-time scheduling deadlocks (as with seeds 4 and 5;
# with seeds 1 and 3 it finishes, late): the failure the scenario shows.
seed: 2
cluster:
  nodes:
    - count: 8
      prefix: node
      cpu: 8
      memory: 32Gi
      racks_per_zone: 2
workload:
  pod_interval: 0.3s
  startup: 2s
  schedule_timeout: 60s
  generate:
    - count: 100
      prefix: lammps
      interarrival: 8s
      pods: {min: 2, max: 8}
      cpu: [1, 2, 3, 4]
      memory: 2Gi
      duration: {min: 60, max: 300}
      estimate_error: 0.25
"#;

const GPU_TRAINING: &str = r#"
name: gpu-training
description: >-
  16 GPU nodes with 2 NUMA zones (32 CPUs, 4 GPUs each) under the kubelet's
  single-numa-node policy; distributed-training gangs whose pods need their
  cores and GPUs in one NUMA zone.
seed: 1
cluster:
  nodes:
    - count: 16
      prefix: gpu
      cpu: 32
      memory: 256Gi
      gpus: 4
      numa_zones: 2
      numa_policy: single-numa-node
      zones: 2
      racks_per_zone: 2
workload:
  pod_interval: 0.5s
  startup: 10s
  schedule_timeout: 120s
  generate:
    - count: 40
      prefix: train
      interarrival: 60s
      pods: [2, 4, 8]
      cpu: [6, 8, 12]
      memory: 32Gi
      gpus: [1, 2]
      duration: {min: 600, max: 2400}
      estimate_error: 0.2
"#;

const LARGE: &str = r#"
name: large
description: 5,000 nodes in 100 racks over 4 zones; 2,000 gangs of 8-256 pods.
seed: 1
cluster:
  nodes:
    - count: 5000
      prefix: node
      cpu: 64
      memory: 256Gi
      numa_zones: 2
      zones: 4
      racks_per_zone: 25
workload:
  pod_interval: 0.01s
  startup: 5s
  schedule_timeout: 300s
  generate:
    - count: 2000
      prefix: gang
      interarrival: 5s
      pods: {min: 8, max: 256}
      cpu: [1, 2, 4, 8, 16]
      memory: 4Gi
      duration: {min: 300, max: 3600}
      estimate_error: 0.2
"#;

// The three minute-scale scenarios are shaped like the real-cluster runs of
// issue 17 (A and B): there a wall-clock `--reserve-after` never fires, so
// they show whether protection for big gangs scales with the workload.

const MINUTE_MPI: &str = r#"
name: minute-mpi
description: >-
  8 nodes x 8 CPUs; 100 MPI jobs of 2-8 one-CPU pods, 20-60 s each, all
  submitted at once (minute-scale; shaped like issue 17's scenario A).
seed: 1
cluster:
  nodes:
    - count: 8
      prefix: node
      cpu: 8
      memory: 32Gi
      racks_per_zone: 2
workload:
  pod_interval: 0.05s
  startup: 2s
  schedule_timeout: 60s
  generate:
    - count: 100
      prefix: mpi
      interarrival: 0s
      pods: {min: 2, max: 8}
      cpu: [1]
      memory: 2Gi
      duration: {min: 20, max: 60}
      estimate_error: 0.25
"#;

const MINUTE_GPU: &str = r#"
name: minute-gpu
description: >-
  32 nodes x 8 GPUs; 20 training jobs of 8-16 pods of 4 GPUs, 20-60 s each,
  all submitted at once (minute-scale; shaped like issue 17's scenario B).
seed: 1
cluster:
  nodes:
    - count: 32
      prefix: gpu
      cpu: 64
      memory: 512Gi
      gpus: 8
      zones: 2
      racks_per_zone: 4
workload:
  pod_interval: 0.05s
  startup: 5s
  schedule_timeout: 60s
  generate:
    - count: 20
      prefix: train
      interarrival: 0s
      pods: {min: 8, max: 16}
      cpu: [8]
      memory: 32Gi
      gpus: [4]
      duration: {min: 20, max: 60}
      estimate_error: 0.2
"#;

const MINUTE_ARRIVALS: &str = r#"
name: minute-arrivals
description: >-
  8 nodes x 8 CPUs; 200 MPI jobs of 2-8 one-CPU pods, 20-60 s each,
  arriving over time (a mean gap of 3.5 s, about 90% of the cluster's
  capacity) rather than at once.
seed: 1
cluster:
  nodes:
    - count: 8
      prefix: node
      cpu: 8
      memory: 32Gi
      racks_per_zone: 2
workload:
  pod_interval: 0.05s
  startup: 2s
  schedule_timeout: 60s
  generate:
    - count: 200
      prefix: mpi
      interarrival: 3.5
      pods: {min: 2, max: 8}
      cpu: [1]
      memory: 2Gi
      duration: {min: 20, max: 60}
      estimate_error: 0.25
"#;

// Issue 18: whole-gang preemption. The low-priority backlog keeps every
// node busy for hours, so a high-priority gang starts early only if the
// scheduler preempts; how it picks victims decides whether running gangs
// are left in pieces.
const PRIORITY: &str = r#"
name: priority
description: >-
  8 nodes x 8 CPUs kept full by a backlog of long low-priority MPI gangs
  (2-6 pods, 1-2 h); 12 high-priority gangs of 2-4 pods arrive every
  5 minutes. Evicted pods take 30 s to terminate; an MPI job that loses a
  pod fails and starts over.
seed: 1
cluster:
  nodes:
    - count: 8
      prefix: node
      cpu: 8
      memory: 32Gi
      racks_per_zone: 2
workload:
  pod_interval: 0.2s
  startup: 2s
  schedule_timeout: 60s
  termination_grace: 30s
  generate:
    - count: 20
      prefix: batch
      interarrival: 0s
      pods: {min: 2, max: 6}
      cpu: [2, 4]
      memory: 2Gi
      duration: {min: 3600, max: 7200}
      estimate_error: 0.2
      priority: 0
    - count: 12
      prefix: urgent
      start: 300s
      interarrival: 300s
      pods: [2, 4]
      cpu: [2]
      memory: 2Gi
      duration: {min: 120, max: 600}
      estimate_error: 0.2
      priority: 1000
"#;

// Issue 18: elastic groups (a coscheduling minMember or a native minCount
// below the group's size, a MiniCluster's size below its maxSize).
const ELASTIC: &str = r#"
name: elastic
description: >-
  8 nodes x 8 CPUs; 80 elastic jobs of 4-8 pods that run once 2-4 of them
  are bound; the others join as room appears and leave with the job.
seed: 1
cluster:
  nodes:
    - count: 8
      prefix: node
      cpu: 8
      memory: 32Gi
      racks_per_zone: 2
workload:
  pod_interval: 0.2s
  startup: 2s
  schedule_timeout: 60s
  generate:
    - count: 80
      prefix: elastic
      interarrival: 20s
      pods: {min: 4, max: 8}
      min_pods: {min: 2, max: 4}
      cpu: [1, 2]
      memory: 2Gi
      duration: {min: 120, max: 600}
      estimate_error: 0.2
"#;
