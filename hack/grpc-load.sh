#!/usr/bin/env bash
# Load test of `phalanx serve`: a 1,000-node generated graph served by the
# release binary, loaded over loopback by the loadgen example (8-pod gangs,
# match then cancel) at 1, 16 and 64 clients, first with unary Match/Cancel
# calls, then over one Session stream per client. The loadgen reports
# throughput, client-side latency and the CPU of each process (cores used,
# and CPU microseconds per match+cancel pair).
#
#   hack/grpc-load.sh [NODES] [SECONDS] [CLIENTS] [CONNECTIONS]
#   hack/grpc-load.sh 1000 5 1,16,64 2
set -euo pipefail
cd "$(dirname "$0")/.."
nodes=${1:-1000}
seconds=${2:-5}
clients=${3:-1,16,64}
connections=${4:-2}
port=${PHALANX_LOAD_PORT:-4299}

cargo build --release -p phalanx --bin phalanx -p phalanx-grpc --example loadgen
target/release/phalanx serve --generate-nodes "$nodes" --listen "127.0.0.1:$port" >/dev/null 2>&1 &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  if target/release/phalanx status --addr "127.0.0.1:$port" stat >/dev/null 2>&1; then break; fi
  sleep 0.1
done
echo "load: $(uptime)"
for mode in "" --stream; do
  target/release/examples/loadgen --addr "127.0.0.1:$port" --server-pid "$server" \
    --seconds "$seconds" --clients "$clients" --connections "$connections" $mode
done
echo "load: $(uptime)"
