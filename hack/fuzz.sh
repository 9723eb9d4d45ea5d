#!/usr/bin/env bash
# Coverage-guided fuzzing of what users send Phalanx, with cargo-fuzz
# (libFuzzer) on the stable toolchain. Targets (tests/fuzz):
#   jobspec_match  a jobspec, matched on a small cluster under every policy
#   graph_read     a GRUG, JGF, rv1exec or hwloc graph file, and id/host lists
#   kube_objects   a PodGroup, Workload, JobSet, MPIJob, MiniCluster, Volcano
#                  or Composite PodGroup, a pod, a node, as JSON
#   grpc_requests  a session of match, cancel, graph update, info, resources
#                  and jobs requests (protobuf), served by the gRPC engine
# A crash or a timeout stops the run and leaves the input under
# tests/fuzz/artifacts/TARGET/; replay it with `--replay FILE`.
#
#   hack/fuzz.sh [--time SECONDS] [--seeds DIR] [--replay FILE] [TARGET ...]
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<USAGE
Usage: $0 [options] [TARGET ...]
  TARGET            jobspec_match, graph_read, kube_objects, grpc_requests (default: all)
  --time SECONDS    how long to fuzz each target (default: 300)
  --seeds DIR       more seed files: jobspecs (*.yaml, *.json), graph files
                    (*.graphml, *.xml, *.json), e.g. Fluxion's t/data/resource
  --replay FILE     run one saved input again (name its one TARGET)
USAGE
}

secs=300
seeds=""
replay=""
targets=()
while (($# > 0)); do
  case $1 in
  --time) secs=${2:?--time needs a value}; shift 2 ;;
  --seeds) seeds=${2:?--seeds needs a value}; shift 2 ;;
  --replay) replay=${2:?--replay needs a value}; shift 2 ;;
  -h | --help) usage; exit 0 ;;
  -*) usage >&2; die "unknown argument: $1" ;;
  *) targets+=("$1"); shift ;;
  esac
done
[[ "$secs" =~ ^[1-9][0-9]*$ ]] || die "--time must be a whole number of seconds, got '$secs'"
[[ -z "$seeds" || -d "$seeds" ]] || die "--seeds must be a directory, got '$seeds'"
if [[ ${#targets[@]} -eq 0 ]]; then
  targets=(jobspec_match graph_read kube_objects grpc_requests)
fi
for t in "${targets[@]}"; do
  case "$t" in
  jobspec_match | graph_read | kube_objects | grpc_requests) ;;
  *) die "unknown target: $t (jobspec_match, graph_read, kube_objects, grpc_requests)" ;;
  esac
done
need cargo "install Rust with rustup (https://rustup.rs)"

if ! cargo fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
# cargo-fuzz passes -Z flags; the stable compiler takes them with this set.
export RUSTC_BOOTSTRAP=1
fuzz_dir="$PHALANX_ROOT/tests/fuzz"
corpus_root="$PHALANX_ROOT/target/fuzz-corpus"
# Safe Rust (every crate forbids unsafe code): no sanitizer, 2-3x the speed.
fuzz=(cargo fuzz run --fuzz-dir "$fuzz_dir" -O -s none)
# The project's own lock pins what the targets build with (cargo adds
# libfuzzer-sys to the copy).
[[ -f "$fuzz_dir/Cargo.lock" ]] || cp "$PHALANX_ROOT/Cargo.lock" "$fuzz_dir/Cargo.lock"

# One byte of value $1 (0-255): the selector byte a target reads first.
byte() { printf '%b' "\\x$(printf '%02x' "$1")"; }

# A seed file: the target's selector byte, then the content.
seed() {
  local dir="$1" pick="$2" src="$3" name
  name="$(basename "$src")"
  { byte "$pick"; cat "$src"; } > "$dir/$pick-$name"
}

seed_json() {
  local dir="$1" pick="$2" name="$3" json="$4"
  { byte "$pick"; printf '%s' "$json"; } > "$dir/$pick-$name"
}

# A protobuf varint of $1 (below 2^14: jobspecs and requests here are smaller).
varint() {
  if (($1 < 128)); then
    byte "$1"
  else
    byte $((($1 & 127) | 128))
    byte $(($1 >> 7))
  fi
}

# One request of a grpc_requests session: selector byte, 2-byte length, body.
request() {
  local pick="$1" body="$2" len
  len=$(wc -c < "$body")
  byte "$pick"
  byte $((len >> 8))
  byte $((len & 255))
  cat "$body"
}

# A session: match the jobspec in $2 (allocate), ask for job 1, cancel it.
grpc_seed() {
  local dir="$1" src="$2" tmp len
  tmp="$(mktemp -d)"
  len=$(wc -c < "$src")
  ((len < 16384)) || { rm -rf "$tmp"; return 0; }
  { byte 10; varint "$len"; cat "$src"; } > "$tmp/match"
  { byte 8; byte 1; } > "$tmp/job1"
  {
    request 0 "$tmp/match"
    request 3 "$tmp/job1"
    request 1 "$tmp/job1"
    request 0 "$tmp/match"
  } > "$dir/$(basename "$src").session"
  rm -rf "$tmp"
}

make_corpus() {
  local t="$1" dir="$corpus_root/$1" f i=0
  mkdir -p "$dir"
  case "$t" in
    jobspec_match)
      for f in "$PHALANX_ROOT"/fluxion-core/tests/data/*.yaml; do
        seed "$dir" $((i++ % 10)) "$f"
      done
      if [[ -n "$seeds" ]]; then
        while IFS= read -r -d '' f; do
          seed "$dir" $((i++ % 10)) "$f"
        done < <(find "$seeds" -type f \( -name '*.yaml' -o -name '*.json' \) -size -64k -print0)
      fi
      ;;
    graph_read)
      seed "$dir" 0 "$PHALANX_ROOT/fluxion-core/tests/data/mini.graphml"
      seed "$dir" 3 "$PHALANX_ROOT/fluxion-core/tests/data/tiny-hwloc.xml"
      if [[ -n "$seeds" ]]; then
        while IFS= read -r -d '' f; do
          case "$f" in
            *.graphml) seed "$dir" 0 "$f" ;;
            *.xml) seed "$dir" 3 "$f" ;;
            *.json) seed "$dir" 1 "$f"; seed "$dir" 2 "$f" ;;
          esac
        done < <(find "$seeds" -type f -size -256k -print0)
      fi
      ;;
    grpc_requests)
      for f in "$PHALANX_ROOT"/fluxion-core/tests/data/*.yaml; do
        grpc_seed "$dir" "$f"
      done
      if [[ -n "$seeds" ]]; then
        while IFS= read -r -d '' f; do
          grpc_seed "$dir" "$f"
        done < <(find "$seeds" -type f -name '*.yaml' -size -16k -print0)
      fi
      ;;
    kube_objects)
      # Selector bytes: 0-6 the group kinds in `groups::Kind::ALL` order,
      # 7 a pod, 8 a node, 9 a coscheduling PodGroup.
      seed_json "$dir" 0 native.json '{"apiVersion":"scheduling.k8s.io/v1alpha2","kind":"PodGroup","metadata":{"name":"g","namespace":"d"},"spec":{"schedulingPolicy":{"gang":{"minCount":4}},"priority":10}}'
      seed_json "$dir" 4 minicluster.json '{"apiVersion":"flux-framework.org/v1alpha2","kind":"MiniCluster","metadata":{"name":"m","namespace":"d"},"spec":{"size":4,"maxSize":8}}'
      seed_json "$dir" 6 composite.json '{"apiVersion":"scheduling.k8s.io/v1alpha3","kind":"CompositePodGroup","metadata":{"name":"c","namespace":"d"},"spec":{"schedulingPolicy":{"gang":{"minGroupCount":2}}}}'
      seed_json "$dir" 7 pod.json '{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"d","labels":{"scheduling.x-k8s.io/pod-group":"g"},"annotations":{"phalanx.dev/group-size":"4","phalanx.dev/duration-seconds":"60"}},"spec":{"schedulerName":"phalanx","containers":[{"name":"c","resources":{"requests":{"cpu":"2","memory":"1Gi","nvidia.com/gpu":"1"}}}]}}'
      seed_json "$dir" 8 node.json '{"apiVersion":"v1","kind":"Node","metadata":{"name":"n","labels":{"topology.kubernetes.io/zone":"z","phalanx.dev/rack":"r"}},"spec":{"taints":[{"key":"k","value":"v","effect":"NoSchedule"}]},"status":{"allocatable":{"cpu":"8","memory":"32Gi","nvidia.com/gpu":"4","pods":"110"}}}'
      seed_json "$dir" 9 coscheduling.json '{"apiVersion":"scheduling.x-k8s.io/v1alpha1","kind":"PodGroup","metadata":{"name":"g","namespace":"d"},"spec":{"minMember":4,"scheduleTimeoutSeconds":60}}'
      ;;
  esac
}

if [[ -n "$replay" ]]; then
  [[ -f "$replay" ]] || die "--replay: no such file: $replay"
  [[ ${#targets[@]} -eq 1 ]] || die "--replay: name the one target it is for"
  "${fuzz[@]}" "${targets[0]}" "$replay"
  exit
fi

for t in "${targets[@]}"; do
  make_corpus "$t"
  log "fuzzing $t for ${secs}s (corpus: $corpus_root/$t)"
  "${fuzz[@]}" "$t" "$corpus_root/$t" -- \
    -max_total_time="$secs" -timeout=20 -rss_limit_mb=4096 -max_len=65536
done
log "no crash or timeout found"
