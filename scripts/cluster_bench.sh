#!/usr/bin/env bash
# Figures for broadcast across servers: deliveries per second from a client
# on one server to receivers on another (through NATS), the latency the NATS
# hop adds, and how long a reconnecting client takes to fail over through
# HAProxy when its server is stopped. Everything on free loopback ports,
# stopped by PID at the end. Needs nats-server and haproxy (apt-get).
#
#   scripts/cluster_bench.sh [RECEIVERS] [COUNT]     (defaults: 10 20000)
set -euo pipefail
cd "$(dirname "$0")/.."
RECEIVERS=${1:-10}
COUNT=${2:-20000}
for tool in nats-server haproxy; do
    command -v "$tool" >/dev/null || { echo "cluster_bench.sh: needs $tool (apt-get install $tool)" >&2; exit 1; }
done
cargo build --release --quiet --bin server --bin client --example cluster_bench
BIN=target/release
WORK=target/cluster-bench
mkdir -p "$WORK"
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT
LOW=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range)
port() { echo $((10000 + RANDOM % (LOW - 10000))); }
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.05; done; echo "nothing on port $1" >&2; exit 1; }

NATS=$(port); nats-server -a 127.0.0.1 -p "$NATS" 2>"$WORK/nats.err" & PIDS+=($!); wait_port "$NATS"
start_server() { # NAME PORT EXTRA...
    local name=$1 p=$2; shift 2
    "$BIN/server" --addr "127.0.0.1:$p" --name "$name" --broadcast --nats "nats://127.0.0.1:$NATS" \
        --max-queued-bytes 67108864 "$@" > /dev/null 2> "$WORK/$name.err" & PIDS+=($!)
    wait_port "$p"
    for _ in $(seq 200); do grep -q "NATS connected" "$WORK/$name.err" && return; sleep 0.05; done
    echo "$name did not connect to NATS" >&2; exit 1
}
S1=$(port); start_server s1 "$S1"
S2=$(port); start_server s2 "$S2"

"$BIN/examples/cluster_bench" fanout "127.0.0.1:$S1" "127.0.0.1:$S2" "$RECEIVERS" "$COUNT"
"$BIN/examples/cluster_bench" latency "127.0.0.1:$S1" "127.0.0.1:$S1" 2000
"$BIN/examples/cluster_bench" latency "127.0.0.1:$S1" "127.0.0.1:$S2" 2000

# Failover: two servers behind HAProxy as in docs/DEPLOY.md.
S3=$(port); start_server s3 "$S3" --proxy-protocol --shutdown-grace-secs 2
S3_PID=${PIDS[-1]}
S4=$(port); start_server s4 "$S4" --proxy-protocol --shutdown-grace-secs 2
FRONT=$(port)
awk '/^```haproxy$/{on=1; next} /^```$/{on=0} on' docs/DEPLOY.md \
    | sed "s/127.0.0.1:8080/127.0.0.1:$FRONT/; s/127.0.0.1:9001/127.0.0.1:$S3/; s/127.0.0.1:9002/127.0.0.1:$S4/" \
    > "$WORK/haproxy.cfg"
haproxy -f "$WORK/haproxy.cfg" -db 2> "$WORK/haproxy.err" & PIDS+=($!)
wait_port "$FRONT"
for _ in $(seq 200); do grep -q "close handshake complete" "$WORK/s3.err" && break; sleep 0.05; done
"$BIN/examples/cluster_bench" failover "127.0.0.1:$FRONT" > "$WORK/failover.out" &
CLIENT=$!
for _ in $(seq 200); do grep -q "connected to" "$WORK/failover.out" && break; sleep 0.05; done
VICTIM=$(grep -o "connected to s[34]" "$WORK/failover.out" | grep -o "s[34]")
if [ "$VICTIM" = s3 ]; then kill -TERM "$S3_PID"; else kill -TERM "${PIDS[-2]}"; fi
wait "$CLIENT"
cat "$WORK/failover.out"
