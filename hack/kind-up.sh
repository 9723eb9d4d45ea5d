#!/usr/bin/env bash
# Create a kind cluster, build the Phalanx image, load it into the cluster and
# deploy Phalanx with `kubectl apply -k manifests/`.
#
#   hack/kind-up.sh [--name NAME] [--workers N] [--image IMAGE] [--node-image IMG]
#                   [--slots N] [--fake-gpus N] [--no-build]
#
# Afterwards: hack/e2e.sh (the examples, checked) and hack/bench.sh (Phalanx
# against the default scheduler). Delete with: kind delete cluster --name NAME
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<USAGE
Usage: $0 [options]
  --name NAME        kind cluster name (default: \$KIND_CLUSTER or phalanx)
  --workers N        worker nodes (default: \$WORKERS or 3)
  --image IMAGE      image to build and load (default: \$IMAGE or phalanx:dev)
  --node-image IMG   kindest/node image, to pick the Kubernetes version (default: kind's)
  --slots N          '${DEMO_SLOT_RESOURCE}' per worker for examples and bench (default: 4)
  --fake-gpus N      advertise N 'nvidia.com/gpu' per worker for the GPU example (default: 4; 0 = none)
  --fake-numa        describe each worker as 2 NUMA zones (half its CPUs and fake GPUs each) with
                     NodeResourceTopology objects, so Phalanx places NUMA-aligned; installs a
                     minimal NodeResourceTopology CRD if none exists (kind only: real clusters
                     get these from the NFD topology updater)
  --no-build         do not build the image; load IMAGE as it is
USAGE
}

name=${KIND_CLUSTER:-phalanx}
workers=${WORKERS:-3}
image=${IMAGE:-phalanx:dev}
node_image=""
slots=4
fake_gpus=4
fake_numa=0
build=1
while (($# > 0)); do
  case $1 in
  --name) name=${2:?--name needs a value}; shift 2 ;;
  --workers) workers=${2:?--workers needs a value}; shift 2 ;;
  --image) image=${2:?--image needs a value}; shift 2 ;;
  --node-image) node_image=${2:?--node-image needs a value}; shift 2 ;;
  --slots) slots=${2:?--slots needs a value}; shift 2 ;;
  --fake-gpus) fake_gpus=${2:?--fake-gpus needs a value}; shift 2 ;;
  --fake-numa) fake_numa=1; shift ;;
  --no-build) build=0; shift ;;
  -h | --help) usage; exit 0 ;;
  *) usage >&2; die "unknown argument: $1" ;;
  esac
done
[[ $workers =~ ^[1-9][0-9]*$ ]] || die "--workers must be a positive integer, got '$workers'"
[[ $slots =~ ^[0-9]+$ ]] || die "--slots must be a non-negative integer, got '$slots'"
[[ $fake_gpus =~ ^[0-9]+$ ]] || die "--fake-gpus must be a non-negative integer, got '$fake_gpus'"

# Every tool is checked before anything is created.
need docker "install Docker: https://docs.docker.com/get-docker/"
need kind "install kind: https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
need kubectl "install kubectl: https://kubernetes.io/docs/tasks/tools/"
need_kubectl_subresource
docker info >/dev/null 2>&1 || die "the Docker daemon is not reachable ('docker info' failed); start Docker first"
[[ -f $PHALANX_ROOT/manifests/kustomization.yaml ]] || die "no manifests/kustomization.yaml under $PHALANX_ROOT"

KUBE_CONTEXT="kind-$name"
KUBECTL_ARGS=(--context "$KUBE_CONTEXT")

if kind get clusters 2>/dev/null | grep -qx -- "$name"; then
  log "kind cluster '$name' exists; reusing it (its worker count is left as it is)"
else
  log "creating kind cluster '$name' with $workers workers"
  config=$(mktemp)
  trap 'rm -f "$config"' EXIT
  {
    echo "kind: Cluster"
    echo "apiVersion: kind.x-k8s.io/v1alpha4"
    echo "nodes:"
    echo "  - role: control-plane"
    for ((i = 0; i < workers; i++)); do
      echo "  - role: worker"
    done
  } >"$config"
  create_args=(create cluster --name "$name" --config "$config" --wait 120s)
  [[ -n $node_image ]] && create_args+=(--image "$node_image")
  kind "${create_args[@]}"
fi
need_cluster

# Topology labels, so the graph has zones and racks: two workers per rack,
# two racks per zone.
log "labelling workers with zones and racks; advertising demo resources"
mapfile -t nodes < <(worker_nodes)
((${#nodes[@]} > 0)) || die "the cluster has no schedulable worker nodes"
for i in "${!nodes[@]}"; do
  rack=$((i / 2))
  zone=$((rack / 2))
  kc label node "${nodes[$i]}" --overwrite \
    "topology.kubernetes.io/zone=zone-$zone" "$RACK_LABEL=rack-$rack" >/dev/null
  advertise "${nodes[$i]}" "$DEMO_SLOT_RESOURCE" "$slots"
  if ((fake_gpus > 0)); then
    advertise "${nodes[$i]}" nvidia.com/gpu "$fake_gpus"
  fi
done

if ((fake_numa)); then
  log "describing workers as 2 NUMA zones each (NodeResourceTopology)"
  if ! kc get crd noderesourcetopologies.topology.node.k8s.io >/dev/null 2>&1; then
    kc apply -f - >/dev/null <<'CRD'
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: noderesourcetopologies.topology.node.k8s.io
spec:
  group: topology.node.k8s.io
  names:
    kind: NodeResourceTopology
    listKind: NodeResourceTopologyList
    plural: noderesourcetopologies
    singular: noderesourcetopology
    shortNames: [nrt]
  scope: Cluster
  versions:
    - name: v1alpha2
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
CRD
    kc wait --for condition=Established --timeout=60s crd/noderesourcetopologies.topology.node.k8s.io >/dev/null
  fi
  for node in "${nodes[@]}"; do
    cpus=$(node_allocatable "$node" cpu)
    [[ $cpus =~ ^[0-9]+$ ]] || die "node $node has a fractional cpu allocatable ($cpus); cannot split it into NUMA zones"
    ((cpus >= 2)) || die "node $node has $cpus CPU; --fake-numa needs at least 2"
    memory=$(node_allocatable "$node" memory)
    half_memory=""
    [[ $memory =~ ^([0-9]+)Ki$ ]] && half_memory="$((BASH_REMATCH[1] / 2))Ki"
    zones=""
    for z in 0 1; do
      # Zone 0 takes the odd CPU, as the first NUMA node usually does.
      zone_cpus=$(((cpus + 1 - z) / 2))
      zone_gpus=$(((fake_gpus + 1 - z) / 2))
      zones+="
  - name: node-$z
    type: Node
    resources:
      - {name: cpu, capacity: \"$zone_cpus\", allocatable: \"$zone_cpus\", available: \"$zone_cpus\"}"
      if [[ -n $half_memory ]]; then
        zones+="
      - {name: memory, capacity: \"$half_memory\", allocatable: \"$half_memory\", available: \"$half_memory\"}"
      fi
      if ((zone_gpus > 0)); then
        zones+="
      - {name: nvidia.com/gpu, capacity: \"$zone_gpus\", allocatable: \"$zone_gpus\", available: \"$zone_gpus\"}"
      fi
    done
    kc apply -f - >/dev/null <<NRT
apiVersion: topology.node.k8s.io/v1alpha2
kind: NodeResourceTopology
metadata:
  name: $node
topologyPolicies: [SingleNUMANodeContainerLevel]
attributes:
  - {name: topologyManagerPolicy, value: single-numa-node}
  - {name: topologyManagerScope, value: container}
zones:$zones
NRT
  done
fi

if ((build)); then
  log "building $image"
  DOCKER_BUILDKIT=1 docker build -t "$image" "$PHALANX_ROOT"
else
  docker image inspect "$image" >/dev/null 2>&1 || die "--no-build given but image '$image' is not in the local Docker"
fi
log "loading $image into kind"
kind load docker-image "$image" --name "$name"

# The examples run busybox; loading it once saves every node a pull. A failure
# here only costs time, so it is a warning.
if docker pull -q busybox:1.36 >/dev/null 2>&1 && kind load docker-image busybox:1.36 --name "$name" >/dev/null 2>&1; then
  :
else
  warn "could not preload busybox:1.36; nodes will pull it themselves"
fi

log "deploying Phalanx (kubectl apply -k manifests/)"
kc apply -k "$PHALANX_ROOT/manifests"
kc wait --for condition=Established --timeout=60s crd/podgroups.scheduling.x-k8s.io >/dev/null
if [[ $image != "phalanx:dev" ]]; then
  kc -n phalanx-system set image deployment/phalanx "phalanx=$image"
fi
kc -n phalanx-system rollout status deployment/phalanx --timeout=180s ||
  die "Phalanx did not become ready; see: kubectl --context $KUBE_CONTEXT -n phalanx-system logs deployment/phalanx"

log "ready: kubectl context '$KUBE_CONTEXT', Phalanx in namespace phalanx-system"
cat <<NEXT
Next:
  hack/e2e.sh --context $KUBE_CONTEXT        # run the examples and check every gang is placed whole
  hack/bench.sh --context $KUBE_CONTEXT      # Phalanx against the default scheduler
  kind delete cluster --name $name     # clean up
NEXT
