#!/usr/bin/env bash
# Run the examples in manifests/examples/ against a cluster where Phalanx is
# deployed (hack/kind-up.sh), and check, while they run, that every gang is
# placed whole: at no time does a gang have some but not all of its pods bound
# (beyond a short grace for the binds of one gang in flight), and at the end
# every Job has completed and no pod is left Pending.
#
#   hack/e2e.sh [--context CTX] [--namespace NS] [--timeout SECONDS]
#               [--advertise] [--keep]
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<USAGE
Usage: $0 [options]
  --context CTX      kubectl context (default: the current one)
  --namespace NS     namespace to run the examples in; created and deleted (default: phalanx-e2e)
  --timeout SECONDS  how long the examples may take to complete (default: 420)
  --grace SECONDS    how long a gang may be seen part-bound while its binds are in flight (default: 10)
  --advertise        advertise ${DEMO_SLOT_RESOURCE} (4) and fake nvidia.com/gpu (4) on workers that lack them
  --keep             keep the namespace afterwards, for inspection
USAGE
}

namespace=phalanx-e2e
timeout=420
grace=10
do_advertise=0
keep=0
KUBE_CONTEXT=""
while (($# > 0)); do
  case $1 in
  --context) KUBE_CONTEXT=${2:?--context needs a value}; shift 2 ;;
  --namespace) namespace=${2:?--namespace needs a value}; shift 2 ;;
  --timeout) timeout=${2:?--timeout needs a value}; shift 2 ;;
  --grace) grace=${2:?--grace needs a value}; shift 2 ;;
  --advertise) do_advertise=1; shift ;;
  --keep) keep=1; shift ;;
  -h | --help) usage; exit 0 ;;
  *) usage >&2; die "unknown argument: $1" ;;
  esac
done
[[ $timeout =~ ^[1-9][0-9]*$ ]] || die "--timeout must be a positive integer, got '$timeout'"
[[ $grace =~ ^[0-9]+$ ]] || die "--grace must be a non-negative integer, got '$grace'"
[[ -n $KUBE_CONTEXT ]] && KUBECTL_ARGS=(--context "$KUBE_CONTEXT")

need_bash4
need kubectl "install kubectl: https://kubernetes.io/docs/tasks/tools/"
need awk "install awk (any POSIX awk)"
need_cluster
kc get crd podgroups.scheduling.x-k8s.io >/dev/null 2>&1 ||
  die "the PodGroup CRD is not installed; deploy Phalanx first: kubectl apply -k manifests/ (or hack/kind-up.sh)"
kc -n phalanx-system rollout status deployment/phalanx --timeout=60s >/dev/null 2>&1 ||
  die "Phalanx is not running in phalanx-system; deploy it with hack/kind-up.sh or kubectl apply -k manifests/"
if kc get namespace "$namespace" >/dev/null 2>&1; then
  die "namespace '$namespace' already exists; delete it or pick another with --namespace"
fi

examples_dir="$PHALANX_ROOT/manifests/examples"
examples=(mpi-job.yaml flux-minicluster.yaml competing-gangs.yaml gpu-training.yaml)

# Capacity the examples need: demo slots for the competing gangs, GPUs for training.
mapfile -t nodes < <(worker_nodes)
((${#nodes[@]} > 0)) || die "the cluster has no schedulable worker nodes"
total_slots=0
total_gpus=0
for node in "${nodes[@]}"; do
  slots=$(node_allocatable "$node" "$DEMO_SLOT_RESOURCE")
  gpus=$(node_allocatable "$node" nvidia.com/gpu)
  if ((do_advertise)); then
    if [[ $slots == 0 ]]; then advertise "$node" "$DEMO_SLOT_RESOURCE" 4 && slots=4; fi
    if [[ $gpus == 0 ]]; then advertise "$node" nvidia.com/gpu 4 && gpus=4; fi
  fi
  [[ $slots =~ ^[0-9]+$ ]] || die "node $node has a non-integer $DEMO_SLOT_RESOURCE: $slots"
  [[ $gpus =~ ^[0-9]+$ ]] || die "node $node has a non-integer nvidia.com/gpu: $gpus"
  total_slots=$((total_slots + slots))
  total_gpus=$((total_gpus + gpus))
done
if ((total_slots < 8)); then
  die "the competing gangs need >= 8 '$DEMO_SLOT_RESOURCE' in the cluster (found $total_slots); use hack/kind-up.sh or pass --advertise"
fi
if ((total_slots >= 16)); then
  warn "the cluster has $total_slots demo slots, so both competing gangs fit at once and do not contend (12 makes them contend)"
fi
if ((total_gpus < 8)); then
  warn "only $total_gpus nvidia.com/gpu in the cluster; skipping gpu-training.yaml (pass --advertise on a test cluster)"
  examples=(mpi-job.yaml flux-minicluster.yaml competing-gangs.yaml)
fi

cleanup() {
  if ((keep)); then
    log "keeping namespace $namespace"
  else
    kc delete namespace "$namespace" --wait=false >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

log "running ${examples[*]} in namespace $namespace"
kc create namespace "$namespace" >/dev/null
for example in "${examples[@]}"; do
  kc apply -n "$namespace" -f "$examples_dir/$example" >/dev/null
done

# Gang sizes: a PodGroup's minMember, or an owner-grouped Job's parallelism.
declare -A size=()
while read -r name min; do
  size["pg/$name"]=$min
done < <(kc get podgroups -n "$namespace" --no-headers -o custom-columns='NAME:.metadata.name,MIN:.spec.minMember')
while read -r name parallelism group; do
  [[ $group == "<none>" ]] && size["job/$name"]=$parallelism
done < <(kc get jobs -n "$namespace" --no-headers \
  -o custom-columns='NAME:.metadata.name,P:.spec.parallelism,PG:.spec.template.metadata.labels.scheduling\.x-k8s\.io/pod-group')

# A gang's key: its PodGroup when the pod names one, else its Job.
pod_table() {
  kc get pods -n "$namespace" --no-headers -o custom-columns='NAME:.metadata.name,PG:.metadata.labels.scheduling\.x-k8s\.io/pod-group,JOB:.metadata.labels.job-name,NODE:.spec.nodeName,PHASE:.status.phase' |
    awk '{ key = ($2 != "<none>") ? "pg/" $2 : "job/" $3; print $1, key, $4, $5 }'
}

declare -A partial_since=() bound=()
failures=()
start=$(date +%s)
while :; do
  now=$(date +%s)
  bound=()
  pending=0
  while read -r _ key node phase; do
    [[ $phase == Failed ]] && continue
    [[ $phase == Pending && $node == "<none>" ]] && pending=$((pending + 1))
    [[ $node != "<none>" ]] && bound[$key]=$((${bound[$key]:-0} + 1))
  done < <(pod_table)

  for key in "${!size[@]}"; do
    b=${bound[$key]:-0}
    if ((b > 0 && b < size[$key])); then
      : "${partial_since[$key]:=$now}"
      if ((now - partial_since[$key] > grace)); then
        failures+=("gang $key has been part-bound ($b of ${size[$key]} pods) for more than ${grace}s")
        unset 'partial_since[$key]'
      fi
    else
      unset 'partial_since[$key]'
    fi
  done

  incomplete=$(kc get jobs -n "$namespace" --no-headers -o custom-columns='NAME:.metadata.name,DONE:.status.succeeded,WANT:.spec.completions,FAILED:.status.failed' |
    awk '$2 != $3 { print $1 }')
  failed_jobs=$(kc get jobs -n "$namespace" --no-headers -o custom-columns='NAME:.metadata.name,FAILED:.status.failed' |
    awk '$2 != "<none>" && $2 > 0 { print $1 }')
  [[ -n $failed_jobs ]] && failures+=("jobs with failed pods: $(echo "$failed_jobs" | tr '\n' ' ')")
  elapsed=$((now - start))
  printf '\r%4ds: %d pods pending, jobs not done: %-60s' "$elapsed" "$pending" "$(echo "$incomplete" | tr '\n' ' ')" >&2
  ((${#failures[@]} > 0)) && break
  [[ -z $incomplete ]] && break
  if ((elapsed > timeout)); then
    failures+=("not complete after ${timeout}s: $(echo "$incomplete" | tr '\n' ' ')")
    break
  fi
  sleep 2
done
echo >&2

leftover=$(kc get pods -n "$namespace" --no-headers --field-selector=status.phase=Pending -o custom-columns=NAME:.metadata.name)
[[ -n $leftover ]] && failures+=("pods left Pending: $(echo "$leftover" | tr '\n' ' ')")

if ((${#failures[@]} > 0)); then
  for failure in "${failures[@]}"; do printf 'FAIL: %s\n' "$failure" >&2; done
  log "state for diagnosis"
  kc get podgroups,jobs,pods -n "$namespace" -o wide >&2 || true
  kc get events -n "$namespace" --field-selector=reason=FailedScheduling >&2 || true
  log "the scheduler: Lease holder (the replica that binds) and recent logs"
  kc -n phalanx-system get lease phalanx -o 'jsonpath={.spec.holderIdentity}{"\n"}' >&2 || true
  kc -n phalanx-system logs deployment/phalanx --tail=40 >&2 || true
  exit 1
fi
log "PASS: ${#size[@]} groups complete, every gang placed whole, nothing left Pending ($(($(date +%s) - start))s)"
kc get podgroups -n "$namespace" 2>/dev/null || true
