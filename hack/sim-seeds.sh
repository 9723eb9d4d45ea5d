#!/usr/bin/env bash
# `phalanx simulate` over several seeds and scenarios, one table per run, so
# a change of scheduling policy is judged on more than one draw of the
# workload. Uses a built binary when PHALANX_BIN is set, else `cargo run
# --release`.
#
#   hack/sim-seeds.sh [--seeds 1-5] [--scenarios a,b] [-- extra simulate args]
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

seeds="1-5"
scenarios="mpi-contention,gpu-training,large,minute-mpi,minute-gpu,minute-arrivals,priority,elastic"
schedulers="phalanx,native-gang"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --seeds) seeds="$2"; shift 2 ;;
    --scenarios) scenarios="$2"; shift 2 ;;
    --schedulers) schedulers="$2"; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [[ ! "$seeds" =~ ^([0-9]+)-([0-9]+)$ ]]; then
  echo "--seeds: want FIRST-LAST, e.g. 1-5; got $seeds" >&2
  exit 2
fi
first="${BASH_REMATCH[1]}"
last="${BASH_REMATCH[2]}"

run() {
  if [[ -n "${PHALANX_BIN:-}" ]]; then
    "$PHALANX_BIN" "$@"
  else
    (cd "$PHALANX_ROOT" && cargo run --quiet --release --bin phalanx -- "$@")
  fi
}

IFS=',' read -r -a names <<< "$scenarios"
for s in "${names[@]}"; do
  for ((seed = first; seed <= last; seed++)); do
    run simulate --scenario "$s" --schedulers "$schedulers" --seed "$seed" "$@"
    echo
  done
done
