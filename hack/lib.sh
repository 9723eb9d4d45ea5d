# Helpers shared by the hack/ scripts. Source it; do not run it.
#   # shellcheck source=lib.sh
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck shell=bash
# The constants here are read by the scripts that source this file.
# shellcheck disable=SC2034

# The repository root, whatever directory the script was started from.
PHALANX_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PHALANX_ROOT

# The extended resource that stands in for "one MPI rank's worth of a node" in
# the examples and the benchmark, so that gang sizes and cluster capacity are
# the same on every machine (kind nodes report the host's whole CPU count).
DEMO_SLOT_RESOURCE="phalanx.dev/demo-slot"
# The rack label Phalanx reads by default (`phalanx run --rack-label`).
RACK_LABEL="${RACK_LABEL:-phalanx.dev/rack}"

# Any command that fails under `set -e` says where, instead of ending the script
# silently (errtrace carries the trap into functions and command substitutions).
set -o errtrace
trap 'printf "error: \"%s\" failed (exit %d) at %s:%d\n" "$BASH_COMMAND" "$?" "${BASH_SOURCE[0]}" "$LINENO" >&2' ERR

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# need TOOL HINT: fail at once, before touching anything, when TOOL is missing.
need() {
  command -v "$1" >/dev/null 2>&1 || die "'$1' is required but not on PATH; $2"
}

# need_bash4: the scripts use associative arrays (macOS ships bash 3.2).
need_bash4() {
  if ((BASH_VERSINFO[0] < 4)); then
    die "bash >= 4 is required (this is ${BASH_VERSION}); on macOS: brew install bash, then run: bash $0"
  fi
}

# need_cluster: kubectl must reach an API server with the current flags.
need_cluster() {
  kubectl "${KUBECTL_ARGS[@]}" version >/dev/null 2>&1 ||
    die "kubectl cannot reach a cluster (context: ${KUBE_CONTEXT:-current}); start one with hack/kind-up.sh or pass --context"
}

# kc ARGS...: kubectl against the chosen context.
KUBECTL_ARGS=()
kc() { kubectl "${KUBECTL_ARGS[@]}" "$@"; }

# worker_nodes: schedulable nodes that are not control-plane nodes, one a line.
# (The control-plane label's value is empty, so it is selected on, not printed.)
worker_nodes() {
  kc get nodes --no-headers -l '!node-role.kubernetes.io/control-plane' \
    -o custom-columns='NAME:.metadata.name,UNSCHED:.spec.unschedulable' |
    awk '$2 != "true" { print $1 }'
}

# advertise NODE RESOURCE QUANTITY: set an extended resource on a node's status,
# the documented way to advertise resources the kubelet does not know about.
# Both capacity and allocatable are set so schedulers see it at once.
advertise() {
  local node=$1 resource=$2 quantity=$3
  kc patch node "$node" --subresource=status --type=merge \
    -p "{\"status\":{\"capacity\":{\"$resource\":\"$quantity\"},\"allocatable\":{\"$resource\":\"$quantity\"}}}" \
    >/dev/null
}

# node_allocatable NODE RESOURCE: the node's allocatable quantity, or 0.
node_allocatable() {
  local escaped value
  escaped=${2//./\\.}
  value=$(kc get node "$1" -o "jsonpath={.status.allocatable.${escaped}}")
  printf '%s\n' "${value:-0}"
}

# need_kubectl_subresource: `kubectl patch --subresource` needs kubectl >= 1.24.
need_kubectl_subresource() {
  kubectl patch --help 2>/dev/null | grep -q -- '--subresource' ||
    die "kubectl >= 1.24 is required (for 'kubectl patch --subresource=status'); found: $(kubectl version --client 2>/dev/null | head -n1)"
}
