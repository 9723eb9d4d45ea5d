#!/usr/bin/env bash
# Phalanx against the default scheduler on a real cluster: the same seeded
# workload of MPI-style gangs is submitted to each scheduler in turn, and the
# script reports jobs completed, makespan, wait, utilisation, partial gangs and
# deadlock in the shape of `phalanx simulate`'s table.
#
# Every pod asks one 'phalanx.dev/demo-slot' (advertised by this script on the
# chosen workers, so capacity is the same on any machine) and, like an MPI
# rank, waits until all pods of its job have started before it works for the
# job's duration: a job runs only when all of its pods run, and a bound pod
# holds its slot while it waits. That is what makes one-pod-at-a-time
# scheduling deadlock.
#
#   hack/bench.sh [--context CTX] [--schedulers phalanx,default] [--jobs 100]
#                 [--nodes N] [--slots 8] [--seed 1] ...   (see --help)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<USAGE
Usage: $0 [options]
  --context CTX          kubectl context (default: the current one)
  --schedulers LIST      comma-separated: phalanx, default (default: phalanx,default)
  --jobs N               jobs in the workload (default: 100)
  --min-size N           smallest gang, in pods (default: 2)
  --max-size N           largest gang, in pods (default: 8)
  --min-duration S       shortest job run time in seconds, once all its pods run (default: 10)
  --max-duration S       longest job run time in seconds (default: 40)
  --nodes N              workers to use; the rest get no slots (default: all workers)
  --slots N              ${DEMO_SLOT_RESOURCE} per used worker; one pod takes one (default: 8)
  --arrival-gap S        seconds between job submissions; 0 submits all at once (default: 0)
  --grouping MODE        how Phalanx learns the gangs: owner (phalanx.dev/gang on the Job)
                         or podgroup (a PodGroup per job) (default: owner)
  --seed N               workload seed: same seed, same jobs (default: 1)
  --stall S              no pod bound and no job finished for S seconds = deadlock (default: 3 x max-duration, >= 120)
  --timeout S            give up on one scheduler's run after S seconds (default: 1800)
  --csv FILE             also write the report as CSV
  --keep                 keep each run's namespace (phalanx-bench-<scheduler>)
USAGE
}

schedulers=phalanx,default
jobs=100
min_size=2
max_size=8
min_duration=10
max_duration=40
use_nodes=0
slots=8
arrival_gap=0
grouping=owner
seed=1
stall=0
timeout=1800
csv=""
keep=0
KUBE_CONTEXT=""
while (($# > 0)); do
  case $1 in
  --context) KUBE_CONTEXT=${2:?--context needs a value}; shift 2 ;;
  --schedulers) schedulers=${2:?--schedulers needs a value}; shift 2 ;;
  --jobs) jobs=${2:?--jobs needs a value}; shift 2 ;;
  --min-size) min_size=${2:?--min-size needs a value}; shift 2 ;;
  --max-size) max_size=${2:?--max-size needs a value}; shift 2 ;;
  --min-duration) min_duration=${2:?--min-duration needs a value}; shift 2 ;;
  --max-duration) max_duration=${2:?--max-duration needs a value}; shift 2 ;;
  --nodes) use_nodes=${2:?--nodes needs a value}; shift 2 ;;
  --slots) slots=${2:?--slots needs a value}; shift 2 ;;
  --arrival-gap) arrival_gap=${2:?--arrival-gap needs a value}; shift 2 ;;
  --grouping) grouping=${2:?--grouping needs a value}; shift 2 ;;
  --seed) seed=${2:?--seed needs a value}; shift 2 ;;
  --stall) stall=${2:?--stall needs a value}; shift 2 ;;
  --timeout) timeout=${2:?--timeout needs a value}; shift 2 ;;
  --csv) csv=${2:?--csv needs a value}; shift 2 ;;
  --keep) keep=1; shift ;;
  -h | --help) usage; exit 0 ;;
  *) usage >&2; die "unknown argument: $1" ;;
  esac
done
for pair in jobs:"$jobs" min-size:"$min_size" max-size:"$max_size" min-duration:"$min_duration" \
  max-duration:"$max_duration" nodes:"$use_nodes" slots:"$slots" arrival-gap:"$arrival_gap" \
  seed:"$seed" stall:"$stall" timeout:"$timeout"; do
  [[ ${pair#*:} =~ ^[0-9]+$ ]] || die "--${pair%%:*} must be a non-negative integer, got '${pair#*:}'"
done
((jobs > 0)) || die "--jobs must be at least 1"
((min_size >= 1 && min_size <= max_size)) || die "need 1 <= --min-size <= --max-size (got $min_size, $max_size)"
((min_duration >= 1 && min_duration <= max_duration)) || die "need 1 <= --min-duration <= --max-duration"
((slots > 0)) || die "--slots must be at least 1"
[[ $grouping == owner || $grouping == podgroup ]] || die "--grouping must be owner or podgroup, got '$grouping'"
IFS=, read -r -a scheduler_list <<<"$schedulers"
for s in "${scheduler_list[@]}"; do
  [[ $s == phalanx || $s == default ]] || die "unknown scheduler '$s' in --schedulers (known: phalanx, default)"
done
((stall > 0)) || stall=$((3 * max_duration > 120 ? 3 * max_duration : 120))
[[ -n $KUBE_CONTEXT ]] && KUBECTL_ARGS=(--context "$KUBE_CONTEXT")

need_bash4
need kubectl "install kubectl: https://kubernetes.io/docs/tasks/tools/"
need awk "install awk (any POSIX awk)"
need sort "install coreutils"
need_kubectl_subresource
need_cluster
for s in "${scheduler_list[@]}"; do
  if [[ $s == phalanx ]]; then
    kc -n phalanx-system rollout status deployment/phalanx --timeout=60s >/dev/null 2>&1 ||
      die "Phalanx is not running in phalanx-system; deploy it with hack/kind-up.sh or kubectl apply -k manifests/"
  fi
done
if [[ $grouping == podgroup ]]; then
  kc get crd podgroups.scheduling.x-k8s.io >/dev/null 2>&1 || die "--grouping podgroup needs the PodGroup CRD: kubectl apply -k manifests/"
fi
for s in "${scheduler_list[@]}"; do
  if kc get namespace "phalanx-bench-$s" >/dev/null 2>&1; then
    die "namespace phalanx-bench-$s exists (a previous run?); delete it first"
  fi
done

# The cluster: slots on the first N workers, none on the others.
mapfile -t all_nodes < <(worker_nodes)
((${#all_nodes[@]} > 0)) || die "the cluster has no schedulable worker nodes"
((use_nodes == 0 || use_nodes > ${#all_nodes[@]})) && use_nodes=${#all_nodes[@]}
for i in "${!all_nodes[@]}"; do
  if ((i < use_nodes)); then
    advertise "${all_nodes[$i]}" "$DEMO_SLOT_RESOURCE" "$slots"
  else
    advertise "${all_nodes[$i]}" "$DEMO_SLOT_RESOURCE" 0
  fi
done
total_slots=$((use_nodes * slots))
((max_size <= total_slots)) || die "--max-size $max_size exceeds the cluster's $total_slots slots; no scheduler could run such a job"

# The workload, drawn once from the seed so every scheduler gets the same jobs.
RANDOM=$seed
sizes=()
durations=()
total_pods=0
work=0
for ((i = 0; i < jobs; i++)); do
  sizes[i]=$((min_size + RANDOM % (max_size - min_size + 1)))
  durations[i]=$((min_duration + RANDOM % (max_duration - min_duration + 1)))
  total_pods=$((total_pods + sizes[i]))
  work=$((work + sizes[i] * durations[i]))
done
log "workload: $jobs jobs, $total_pods pods, $use_nodes nodes x $slots slots; ideal makespan >= $(((work + total_slots - 1) / total_slots))s (slot-seconds / slots)"

tmp=$(mktemp -d)
current_ns=""
cleanup() {
  rm -rf "$tmp"
  if [[ -n $current_ns ]] && ((!keep)); then
    kc delete namespace "$current_ns" --wait=false >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

# job_yaml INDEX SCHEDULER: one job of the workload as Kubernetes objects.
job_yaml() {
  local i=$1 scheduler=$2 name
  name=$(printf 'job-%03d' "$i")
  local scheduler_name=default-scheduler job_labels="" pod_labels=""
  if [[ $scheduler == phalanx ]]; then
    scheduler_name=phalanx
    if [[ $grouping == owner ]]; then
      job_labels=$'\n    phalanx.dev/gang: "true"'
    else
      pod_labels=$'\n        scheduling.x-k8s.io/pod-group: '"$name"
      cat <<YAML
---
apiVersion: scheduling.x-k8s.io/v1alpha1
kind: PodGroup
metadata:
  name: $name
spec:
  minMember: ${sizes[i]}
YAML
    fi
  fi
  cat <<YAML
---
apiVersion: batch/v1
kind: Job
metadata:
  name: $name
  labels:
    phalanx.dev/bench: "true"$job_labels
spec:
  completionMode: Indexed
  completions: ${sizes[i]}
  parallelism: ${sizes[i]}
  backoffLimit: 0
  activeDeadlineSeconds: $timeout
  template:
    metadata:
      labels:
        phalanx.dev/bench: "true"$pod_labels
      annotations:
        phalanx.dev/duration-seconds: "${durations[i]}"
    spec:
      schedulerName: $scheduler_name
      restartPolicy: Never
      subdomain: ranks
      terminationGracePeriodSeconds: 0
      securityContext:
        runAsNonRoot: true
        runAsUser: 65534
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: rank
          image: busybox:1.36
          command: [/bin/sh, -c]
          args:
            - |
              i=0
              while [ "\$i" -lt ${sizes[i]} ]; do
                until nslookup "$name-\$i.ranks.\$NAMESPACE.svc.cluster.local" 2>/dev/null | grep -q '^Name:'; do sleep 1; done
                i=\$((i + 1))
              done
              sleep ${durations[i]}
          env:
            - name: NAMESPACE
              valueFrom:
                fieldRef:
                  fieldPath: metadata.namespace
          resources:
            requests:
              cpu: 10m
              memory: 16Mi
              $DEMO_SLOT_RESOURCE: "1"
            limits:
              memory: 32Mi
              $DEMO_SLOT_RESOURCE: "1"
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop: [ALL]
YAML
}

# scheduler_cpu_seconds NAMESPACE CONTAINER: CPU seconds used so far by the
# containers named CONTAINER in NAMESPACE, from the kubelets' resource metrics
# through the API server's node proxy (cluster admins may read nodes/proxy).
# Works alike for Phalanx (both replicas) and kube-scheduler; "-" when no
# kubelet reports it.
scheduler_cpu_seconds() {
  local ns=$1 container=$2 node value total=0 found=0
  while read -r node; do
    [[ -z $node || $node == "<none>" ]] && continue
    value=$(kc get --raw "/api/v1/nodes/$node/proxy/metrics/resource" 2>/dev/null |
      awk -v ns="namespace=\"$ns\"" -v c="container=\"$container\"" '
        index($1, "container_cpu_usage_seconds_total{") == 1 && index($1, ns) && index($1, c) { s += $2; n++ }
        END { if (n) printf "%.3f", s }') || true
    if [[ -n $value ]]; then
      found=1
      total=$(awk -v a="$total" -v b="$value" 'BEGIN { printf "%.3f", a + b }')
    fi
  done < <(kc get pods -n "$ns" --no-headers -o custom-columns=NODE:.spec.nodeName 2>/dev/null | sort -u)
  if ((found)); then echo "$total"; else echo "-"; fi
}

# The scheduler process each run is measured on.
cpu_of() {
  case $1 in
  phalanx) scheduler_cpu_seconds phalanx-system phalanx ;;
  default) scheduler_cpu_seconds kube-system kube-scheduler ;;
  esac
}

# secs SECONDS: a duration as `phalanx simulate` prints it (12.0s, 3.5m, 1.2h).
secs() {
  awk -v s="$1" 'BEGIN { if (s >= 3600) printf "%.1fh", s / 3600; else if (s >= 60) printf "%.1fm", s / 60; else printf "%.1fs", s }'
}

print_table() {
  printf '%s\n' "$@" | awk -F'|' '
    { for (i = 1; i <= NF; i++) { cell[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) } n = NF; rows = NR }
    END {
      for (r = 1; r <= rows; r++) {
        line = ""
        for (i = 1; i <= n; i++) line = line (i > 1 ? "  " : "") sprintf("%-" w[i] "s", cell[r, i])
        sub(/ +$/, "", line)
        print line
        if (r == 1) {
          line = ""
          for (i = 1; i <= n; i++) { dash = sprintf("%" w[i] "s", ""); gsub(/ /, "-", dash); line = line (i > 1 ? "  " : "") dash }
          print line
        }
      }
    }'
}

rows=()
fairness_rows=()
for scheduler in "${scheduler_list[@]}"; do
  ns="phalanx-bench-$scheduler"
  log "$scheduler: submitting to namespace $ns"
  kc create namespace "$ns" >/dev/null
  current_ns=$ns
  kc apply -n "$ns" -f - >/dev/null <<YAML
apiVersion: v1
kind: Service
metadata:
  name: ranks
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector:
    phalanx.dev/bench: "true"
  ports:
    - name: rank
      port: 5000
YAML
  for ((i = 0; i < jobs; i++)); do
    job_yaml "$i" "$scheduler" >"$tmp/$i.yaml"
  done
  cpu_before=$(cpu_of "$scheduler")

  declare -A placed_at=() done_at=() partial_polls=() ever_partial=() bound=() succeeded=()
  t0=$(date +%s)
  submitted=0
  if ((arrival_gap == 0)); then
    cat "$tmp"/*.yaml | kc apply -n "$ns" -f - >/dev/null
    submitted=$jobs
  fi
  last_progress=$t0
  last_signature=""
  deadlock="no"
  while :; do
    now=$(date +%s)
    while ((submitted < jobs && now - t0 >= submitted * arrival_gap)); do
      kc apply -n "$ns" -f "$tmp/$submitted.yaml" >/dev/null
      submitted=$((submitted + 1))
    done
    bound=()
    succeeded=()
    while read -r job node phase; do
      [[ $job == "<none>" || $phase == Failed ]] && continue
      [[ $node != "<none>" ]] && bound[$job]=$((${bound[$job]:-0} + 1))
      [[ $phase == Succeeded ]] && succeeded[$job]=$((${succeeded[$job]:-0} + 1))
    done < <(kc get pods -n "$ns" -l phalanx.dev/bench=true --no-headers \
      -o custom-columns='JOB:.metadata.labels.job-name,NODE:.spec.nodeName,PHASE:.status.phase')
    total_bound=0
    total_done=0
    for ((i = 0; i < submitted; i++)); do
      name=$(printf 'job-%03d' "$i")
      b=${bound[$name]:-0}
      s=${succeeded[$name]:-0}
      total_bound=$((total_bound + b))
      total_done=$((total_done + s))
      if ((b == sizes[i])) && [[ -z ${placed_at[$name]+x} ]]; then placed_at[$name]=$now; fi
      if ((s == sizes[i])) && [[ -z ${done_at[$name]+x} ]]; then done_at[$name]=$now; fi
      # Seen part-bound on two polls in a row: a partial gang, not binds in flight.
      if ((b > 0 && b < sizes[i])); then
        partial_polls[$name]=$((${partial_polls[$name]:-0} + 1))
        ((partial_polls[$name] >= 2)) && ever_partial[$name]=1
      else
        partial_polls[$name]=0
      fi
    done
    signature="$submitted/$total_bound/$total_done"
    if [[ $signature != "$last_signature" ]]; then
      last_signature=$signature
      last_progress=$now
    fi
    printf '\r  %5ds: %d/%d jobs done, %d/%d pods bound, %d partial gangs' \
      $((now - t0)) "${#done_at[@]}" "$jobs" "$total_bound" "$total_pods" "${#ever_partial[@]}" >&2
    ((${#done_at[@]} == jobs)) && break
    if ((submitted == jobs && now - last_progress >= stall)); then
      deadlock="yes, since t=$(secs $((last_progress - t0)))"
      break
    fi
    ((now - t0 >= timeout)) && break
    sleep 2
  done
  echo >&2
  end=$(date +%s)

  cpu="-"
  cpu_after=$(cpu_of "$scheduler")
  if [[ $cpu_before != - && $cpu_after != - ]]; then
    cpu=$(awk -v a="$cpu_before" -v b="$cpu_after" 'BEGIN { printf "%.1f", b - a }')
  fi

  # Waits (submission to whole gang bound), makespan, utilisation, stranded pods.
  completed=${#done_at[@]}
  last_done=$t0
  done_work=0
  waits=()
  sized_waits=()
  stranded=0
  for ((i = 0; i < jobs; i++)); do
    name=$(printf 'job-%03d' "$i")
    submit_at=$((t0 + i * arrival_gap))
    if [[ -n ${placed_at[$name]+x} ]]; then
      waits+=($((placed_at[$name] - submit_at)))
      sized_waits+=("${sizes[i]} $((placed_at[$name] - submit_at))")
    fi
    if [[ -n ${done_at[$name]+x} ]]; then
      ((done_at[$name] > last_done)) && last_done=${done_at[$name]}
      done_work=$((done_work + sizes[i] * durations[i]))
    else
      b=${bound[$name]:-0}
      ((b > 0 && b < sizes[i])) && stranded=$((stranded + b))
    fi
  done
  if ((completed == jobs)); then makespan=$(secs $((last_done - t0))); else makespan="-"; fi
  span=$(((completed == jobs ? last_done : end) - t0))
  ((span > 0)) || span=1
  utilisation=$(awk -v w="$done_work" -v s="$total_slots" -v t="$span" 'BEGIN { printf "%.1f%%", 100 * w / (s * t) }')
  placements=$(awk -v p="$total_bound" -v t="$span" 'BEGIN { printf "%.0f", p / t }')
  completed_cell="$completed/$jobs ($(awk -v c="$completed" -v j="$jobs" 'BEGIN { printf "%.0f", 100 * c / j }')%)"
  if ((${#waits[@]} > 0)); then
    mean_wait=$(secs "$(printf '%s\n' "${waits[@]}" | awk '{ s += $1 } END { printf "%.3f", s / NR }')")
    p99_wait=$(secs "$(printf '%s\n' "${waits[@]}" | sort -n | awk '{ v[NR] = $1 } END { i = int(0.99 * NR + 0.999999); if (i < 1) i = 1; print v[i] }')")
  else
    mean_wait="-"
    p99_wait="-"
  fi
  # Big/small as the simulator reports it: mean wait of the gangs at or above
  # the upper quartile of sizes over that of the gangs at or below the lower
  # one ('-' with fewer than 4 gangs, one size, or small gangs that waited < 1 s).
  big_small="-"
  quarters="-"
  if ((${#sized_waits[@]} >= 4)); then
    read -r small_q big_q < <(printf '%s\n' "${sized_waits[@]}" | sort -n -k1,1 | awk '
      { size[NR] = $1; wait[NR] = $2 }
      END {
        lo = size[int(NR / 4) + 1]; hi = size[int(NR * 3 / 4) + 1]
        if (lo >= hi) { print "- -"; exit }
        for (i = 1; i <= NR; i++) {
          if (size[i] <= lo) { s += wait[i]; ns++ }
          if (size[i] >= hi) { b += wait[i]; nb++ }
        }
        printf "%.3f %.3f\n", s / ns, b / nb
      }')
    if [[ $small_q != - ]]; then
      quarters="$(secs "$big_q") / $(secs "$small_q")"
      big_small=$(awk -v b="$big_q" -v s="$small_q" 'BEGIN { if (s >= 1) printf "%.2fx", b / s; else print "-" }')
    fi
  fi
  rows+=("$scheduler|$completed_cell|$makespan|$mean_wait|$p99_wait|$utilisation|${#ever_partial[@]}|$stranded|$deadlock|$placements|$cpu")
  fairness_rows+=("$scheduler|$big_small|$quarters")

  if ((keep)); then
    log "keeping namespace $ns"
  else
    log "$scheduler: deleting namespace $ns"
    kc delete namespace "$ns" --wait=true --timeout=300s >/dev/null ||
      die "namespace $ns did not go away; delete it before the next run"
  fi
  current_ns=""
  unset placed_at done_at partial_polls ever_partial bound succeeded
done

# The table has the columns and number formats of `phalanx simulate`'s, plus the
# CPU time the scheduler itself used.
header="scheduler|completed|makespan|mean wait|p99 wait|slot util|partial gangs|stranded pods|deadlock|placements/s|sched cpu s"
echo
echo "bench on ${KUBE_CONTEXT:-the current context}: $jobs jobs, $total_pods pods, $use_nodes nodes x $slots slots, seed $seed"
print_table "$header" "${rows[@]}"
# Fairness as the simulator reports it (kept out of the CSV, whose columns
# stay those of the table above).
echo
print_table "scheduler|big/small wait|big / small q. wait" "${fairness_rows[@]}"
if [[ -n $csv ]]; then
  # Quoted, because the deadlock cell holds a comma.
  printf '%s\n' "$header" "${rows[@]}" | awk -F'|' '{ for (i = 1; i <= NF; i++) printf "%s\"%s\"", (i > 1 ? "," : ""), $i; print "" }' >"$csv"
  log "wrote $csv"
fi
