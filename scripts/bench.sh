#!/usr/bin/env bash
# Side-by-side benchmarks in one command: our server against a raw TCP byte
# sink (bytes read and discarded, nothing parsed), a minimal
# LengthDelimitedCodec server (what a user would write instead) and
# redis-server with redis-benchmark, on this machine, in alternated rounds;
# then our TLS cost, what an idle connection costs, how throughput, latency
# and memory scale with connections and payload size, typed requests
# against tarpc and tonic (benches/rpc_race), the Python client against
# redis-py (clients/python/bench), v2 over WebSocket against v2 over TCP, and
# how an honest client fares during a distributed slot attack
# (scripts/slot_attack.py).
# Prints the table of ratios and writes a report with its plots.
#
#   scripts/bench.sh            # the full run (about 30 minutes on 2 cores):
#                               # rewrites docs/BENCHMARKS.md and docs/bench/*.svg
#   scripts/bench.sh --quick    # one short round of everything (a check):
#                               # writes target/bench/BENCHMARKS.md only
#
# Options: --rounds N (alternated rounds, default 3), --secs S (seconds per
# measured run, default 2), --out FILE (the report; default as above),
# --before REV (also build the server at git revision REV, say HEAD~3, and
# run it beside today's in every side-by-side, idle and per-request case:
# the report then compares the two, round by round).
# Every process it starts listens on a free 127.0.0.1 port and is stopped by
# its PID when the script ends, however it ends.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
ROUNDS=3
SECS=2
OUT=
BEFORE=
QUICK=0
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1; ROUNDS=1; SECS=0.5 ;;
        --rounds) ROUNDS=$2; shift ;;
        --secs) SECS=$2; shift ;;
        --out) OUT=$2; shift ;;
        --before) BEFORE=$2; shift ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
# Only a full run publishes: a quick check never overwrites the committed page.
if [ -z "$OUT" ]; then
    if [ "$QUICK" = 1 ]; then OUT=target/bench/BENCHMARKS.md; else OUT=docs/BENCHMARKS.md; fi
fi

say() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }
die() { echo "bench.sh: $*" >&2; exit 1; }

# --- what the machine needs -------------------------------------------------
need_packages=()
command -v redis-server >/dev/null || need_packages+=(redis-server)
command -v redis-benchmark >/dev/null || need_packages+=(redis-tools)
command -v openssl >/dev/null || need_packages+=(openssl)
command -v python3 >/dev/null || need_packages+=(python3)
command -v protoc >/dev/null || need_packages+=(protobuf-compiler)   # tonic's code, for the race
command -v valgrind >/dev/null || need_packages+=(valgrind)   # instructions per request
command -v nats-server >/dev/null || need_packages+=(nats-server)   # the session store (JetStream)
if [ ${#need_packages[@]} -gt 0 ]; then
    say "installing ${need_packages[*]}"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq >/dev/null && \
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_packages[@]}" >/dev/null \
        || die "could not install ${need_packages[*]} (apt-get failed)"
fi
# 10,000 connections need 10,000 descriptors on each side.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" -ge 10100 ] || echo "bench.sh: only $(ulimit -n) open files allowed; the 10,000-connection runs may fail" >&2

# What is measured is what is built now.
COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo '+uncommitted changes')"
say "building (release)"
cargo build --release --quiet --bin server --bin client --example raw_sink \
    --example ldc_server --example bench_report --example resume_time
BIN=$ROOT/target/release
WORK=$ROOT/target/bench
rm -rf "$WORK" && mkdir -p "$WORK"
RESULTS=$WORK/results.jsonl
: > "$RESULTS"
cargo build --release --quiet --example alloc_count

# The revision to compare with, built in a worktree of its own (kept
# between runs under target/, so a second run builds only what changed).
BEFORE_BIN=
if [ -n "$BEFORE" ]; then
    BEFORE_REV=$(git rev-parse --short "$BEFORE^{commit}") || die "--before $BEFORE: no such revision"
    say "building $BEFORE ($BEFORE_REV) to run beside it"
    BEFORE_SRC=$ROOT/target/bench-before/src
    git worktree remove --force "$BEFORE_SRC" >/dev/null 2>&1 || rm -rf "$BEFORE_SRC"
    git worktree prune
    git worktree add --quiet --detach "$BEFORE_SRC" "$BEFORE_REV"
    (cd "$BEFORE_SRC" && CARGO_TARGET_DIR=$ROOT/target/bench-before/target \
        cargo build --release --quiet --bin server --example alloc_count) \
        || die "could not build $BEFORE ($BEFORE_REV)"
    git worktree remove --force "$BEFORE_SRC"
    BEFORE_BIN=$ROOT/target/bench-before/target/release
fi

# --- processes: started on free ports, stopped by PID -----------------------
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Below the kernel's ephemeral range, so no client connection can hold it.
EPHEMERAL_LOW=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
free_port() {
    local port
    for _ in $(seq 100); do
        port=$((10000 + RANDOM % (EPHEMERAL_LOW - 10000)))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"; return
        fi
    done
    die "no free port found"
}

# start NAME PORT CMD...: runs CMD (stdout to $WORK/NAME.out), waits until the
# port accepts connections; sets SERVER_PID.
start() {
    local name=$1 port=$2; shift 2
    "$@" > "$WORK/$name.out" 2> "$WORK/$name.err" &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    for _ in $(seq 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return; fi
        kill -0 "$SERVER_PID" 2>/dev/null || die "$name did not start: $(tail -3 "$WORK/$name.err")"
        sleep 0.05
    done
    die "$name is not listening on port $port"
}
stop() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
}
rss_kib() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
# CPU time (user + system) a process has used, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
CLK_TCK=$(getconf CLK_TCK)
# with_cpu JSON: adds the server's CPU time per operation since $cpu_before
# (a fair figure even where the load generators differ).
with_cpu() {
    local ticks ops
    ticks=$(( $(cpu_ticks "$SERVER_PID") - cpu_before ))
    ops=$(printf '%s' "$1" | sed -n 's/.*"operations":\([0-9]*\).*/\1/p')
    [ -n "$ops" ] || ops=$redis_count
    printf '%s' "$1" | sed "s/}\$/,\"server_cpu_us_per_op\":$(awk -v t="$ticks" -v h="$CLK_TCK" -v n="$ops" 'BEGIN { printf "%.3f", t * 1e6 / h / n }')}/"
}

# record CASE IMPL ROUND JSON: one line of results.
record() { printf '{"case":"%s","impl":"%s","round":%s,"result":%s}\n' "$1" "$2" "$3" "$4" >> "$RESULTS"; }

# measure CASE IMPL ROUND CLIENT-ARGS...: one `client bench` run against the
# server on $PORT, recorded with the server's CPU time per operation.
measure() {
    local case=$1 impl=$2 round=$3; shift 3
    cpu_before=$(cpu_ticks "$SERVER_PID")
    record "$case" "$impl" "$round" "$(with_cpu "$(bench "$PORT" "$@")")"
}

# One client bench run against 127.0.0.1:PORT; prints its JSON line.
bench() {
    local port=$1; shift
    bench_to "127.0.0.1:$port" "$@"
}
# bench_to ADDR ARGS...: the same, against any address (ws:// included).
bench_to() {
    local addr=$1; shift
    local line
    line=$("$BIN/client" --addr "$addr" "$@" --json 2>>"$WORK/client.err" | tail -1) \
        || die "client bench $* failed: $(tail -3 "$WORK/client.err")"
    echo "$line"
}

# redis-benchmark PING (the multi-bulk form) as the same JSON fields.
redis_ping() {
    local port=$1 clients=$2 pipeline=$3 count=$4
    redis-benchmark -h 127.0.0.1 -p "$port" -t ping_mbulk -c "$clients" -P "$pipeline" \
        -n "$count" --csv 2>/dev/null | awk -F'"' -v c="$clients" -v p="$pipeline" \
        '$2=="PING_MBULK" { printf "{\"mode\":\"redis-ping\",\"connections\":%s,\"in_flight\":%s,\"per_sec\":%s,\"mb_per_sec\":0,\"latency_us\":{\"p50\":%s,\"p99\":%s,\"max\":%s}}\n", c, p, $4, $10*1000, $14*1000, $16*1000 }'
}

# Requests for about SECS seconds at RATE per second (redis-benchmark has
# no duration option).
count_for() { awk -v r="$1" -v s="$SECS" 'BEGIN { n = int(r * s); if (n < 1000) n = 1000; print n }'; }

# ours IMPL-NAME SERVER-ARGS...: starts our server on $PORT.
# Every load comes from one address (127.0.0.1), which opens thousands of
# connections at once for the idle and scaling runs: the per-address
# connection rate (a defence against floods) is off for these.
ours() {
    PORT=$(free_port)
    start "$1" "$PORT" "$BIN/server" --addr "127.0.0.1:$PORT" --max-connection-rate-per-ip 0 "${@:2}"
}
# before IMPL-NAME SERVER-ARGS...: the --before revision's server, likewise.
before() {
    PORT=$(free_port)
    start "$1" "$PORT" "$BEFORE_BIN/server" --addr "127.0.0.1:$PORT" --max-connection-rate-per-ip 0 "${@:2}"
}
ldc() { PORT=$(free_port); start "$1" "$PORT" "$BIN/examples/ldc_server" "127.0.0.1:$PORT" "${@:2}"; }
raw() { PORT=$(free_port); start raw "$PORT" "$BIN/examples/raw_sink" "127.0.0.1:$PORT"; }
redis() {
    PORT=$(free_port)
    start redis "$PORT" redis-server --bind 127.0.0.1 --port "$PORT" --save '' \
        --appendonly no --protected-mode no --maxclients 20000
}

# --- side by side, alternated -------------------------------------------------
say "side by side: $ROUNDS alternated round(s) of $SECS s runs"
for round in $(seq "$ROUNDS"); do
    say "round $round/$ROUNDS"
    # v2 one-way, one connection, 32-byte and 64 KiB payloads, counting only.
    for impl in ours ${BEFORE:+before} ldc raw; do
        case $impl in
            ours) ours ours --sink ;;
            before) before before --sink ;;
            ldc) ldc ldc --sink ;;
            raw) raw ;;
        esac
        measure oneway32 "$impl" "$round" bench --mode text --size 32 --duration "$SECS"
        measure oneway64k "$impl" "$round" bench --mode binary --size 65536 --duration "$SECS"
        stop
    done
    # v1 ingest, printing every message to a file.
    for impl in ours ${BEFORE:+before} ldc; do
        case $impl in
            ours) ours ours-print ;;
            before) before before-print ;;
            ldc) ldc ldc-print ;;
        esac
        measure v1print "$impl" "$round" --v1 bench --size 20 --duration "$SECS"
        stop
        rm -f "$WORK"/*-print.out
    done
    # Requests: 50 connections x 16 in flight, 50 x 1, 1 x 1.
    for impl in ours ${BEFORE:+before} ldc redis; do
        case $impl in
            ours) ours ours --sink ;;
            before) before before --sink ;;
            ldc) ldc ldc --sink ;;
            redis) redis ;;
        esac
        for shape in "50 16" "50 1" "1 1"; do
            set -- $shape
            case_name="req_${1}x${2}"
            if [ "$impl" = redis ]; then
                rate=$([ "$2" -gt 1 ] && echo 1500000 || { [ "$1" -gt 1 ] && echo 200000 || echo 40000; })
                redis_count=$(count_for "$rate")
                cpu_before=$(cpu_ticks "$SERVER_PID")
                record "$case_name" redis "$round" \
                    "$(with_cpu "$(redis_ping "$PORT" "$1" "$2" "$redis_count")")"
            else
                measure "$case_name" "$impl" "$round" \
                    bench --mode request --connections "$1" --in-flight "$2" --duration "$SECS"
            fi
        done
        stop
    done
done

# --- TLS: the same work over TLS, against ours in plain TCP ------------------
say "TLS: the same table over TLS"
TLS=$WORK/tls
mkdir -p "$TLS"
(
    cd "$TLS"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=bench CA" -keyout ca.key -out ca.pem 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=server" \
        -keyout server.key -out server.csr 2>/dev/null
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile <(printf "subjectAltName=IP:127.0.0.1") -out server.pem 2>/dev/null
)
for round in $(seq "$ROUNDS"); do
    # What the cipher itself does on one core, beside the run: the bound
    # for TLS one-way (the client encrypts on one core, the server decrypts
    # on the other).
    aes=$(openssl speed -mr -evp aes-256-gcm -bytes 16384 -seconds 1 2>/dev/null \
        | awk -F: '/^\+F:/ { print $4 }')
    record aes_gcm cipher "$round" "{\"bytes_per_sec\":${aes:-0}}"
    for impl in plain tls; do
        if [ "$impl" = tls ]; then
            ours ours-tls --sink --tls-cert "$TLS/server.pem" --tls-key "$TLS/server.key"
            conn=(--ca "$TLS/ca.pem")
        else
            ours ours --sink
            conn=()
        fi
        measure tls_oneway32 "$impl" "$round" "${conn[@]}" bench --mode text --size 32 --duration "$SECS"
        measure tls_oneway64k "$impl" "$round" "${conn[@]}" bench --mode binary --size 65536 --duration "$SECS"
        measure tls_req_50x16 "$impl" "$round" "${conn[@]}" bench --mode request --connections 50 --in-flight 16 --duration "$SECS"
        measure tls_req_1x1 "$impl" "$round" "${conn[@]}" bench --mode request --connections 1 --in-flight 1 --duration "$SECS"
        stop
    done
done

# --- what an idle connection costs ------------------------------------------
IDLE=10000
[ "$QUICK" = 1 ] && IDLE=2000
say "memory: $IDLE idle connections"
# idle IMPL ROUND CLIENT...: server RSS growth per connection while CLIENT
# holds $IDLE idle connections (the server is already running).
idle() {
    local impl=$1 round=$2; shift 2
    local before after log=$WORK/idle-client.err
    before=$(rss_kib "$SERVER_PID")
    : > "$log"
    "$@" > "$log" 2>&1 &
    local holder=$!
    PIDS+=("$holder")
    for _ in $(seq 1200); do
        grep -q "idle connections open\|clients: $IDLE" "$log" && break
        kill -0 "$holder" 2>/dev/null || die "idle client ended early: $(tail -2 "$log")"
        sleep 0.05
    done
    sleep 0.5
    after=$(rss_kib "$SERVER_PID")
    kill "$holder" 2>/dev/null || true
    wait "$holder" 2>/dev/null || true
    record "${IDLE_CASE:-idle}" "$impl" "$round" "{\"connections\":$IDLE,\"rss_before_kib\":$before,\"rss_after_kib\":$after,\"bytes_per_conn\":$(( (after - before) * 1024 / IDLE ))}"
}
for round in $(seq "$ROUNDS"); do
    for impl in ours-v2 ${BEFORE:+before-v2} ours-v1 ${BEFORE:+before-v1} redis; do
        case $impl in
            ours-v2|ours-v1|before-v2|before-v1)
                # Idle v1 peers that sent nothing are pending handshakes: the
                # budget must hold them all, or most are displaced.
                "${impl%-v?}" "${impl%-v?}-idle" --sink --max-connections 20000 \
                    --max-connections-per-ip 20000 --max-pending-handshakes 20000
                v1=(); [ "${impl#*-}" = v1 ] && v1=(--v1)
                idle "$impl" "$round" "$BIN/client" --addr "127.0.0.1:$PORT" "${v1[@]}" bench \
                    --mode idle --connections "$IDLE" --duration 3600 ;;
            redis)
                redis
                # redis-benchmark -I opens the connections and waits; its
                # progress line names them once all are open.
                idle redis "$round" redis-benchmark -h 127.0.0.1 -p "$PORT" \
                    -c "$IDLE" -I ;;
        esac
        stop
    done
done

# --- what one request costs: instructions and allocations ----------------------
# Instructions are counted by callgrind on the server alone, which repeats
# to within about 1% where wall-clock figures swing by 2x on this machine:
# the difference between a run of N + 2,000 requests and one of 2,000,
# divided by N, so start-up and the handshakes cancel out.
say "per request: instructions (callgrind) and allocations"
CG_N=100000; [ "$QUICK" = 1 ] && CG_N=10000
# instructions IMPL SHAPE: IMPL's instructions per request at SHAPE
# (CONNECTIONS x IN_FLIGHT), recorded as case instr_SHAPE.
instructions() {
    local impl=$1 shape=$2 counts=() out n
    for n in 2000 $((CG_N + 2000)); do
        out=$WORK/callgrind.$impl.$shape.$n
        case $impl in
            ours) PORT=$(free_port); start "cg-$impl" "$PORT" valgrind --tool=callgrind \
                    --callgrind-out-file="$out" "$BIN/server" --addr "127.0.0.1:$PORT" --sink \
                    --max-connection-rate-per-ip 0 ;;
            before) PORT=$(free_port); start "cg-$impl" "$PORT" valgrind --tool=callgrind \
                    --callgrind-out-file="$out" "$BEFORE_BIN/server" --addr "127.0.0.1:$PORT" \
                    --sink --max-connection-rate-per-ip 0 ;;
            ldc) PORT=$(free_port); start "cg-$impl" "$PORT" valgrind --tool=callgrind \
                    --callgrind-out-file="$out" "$BIN/examples/ldc_server" "127.0.0.1:$PORT" --sink ;;
        esac
        bench "$PORT" bench --mode request --connections "${shape%x*}" --in-flight "${shape#*x}" \
            --count "$n" > /dev/null
        stop
        counts+=("$(awk '/^(summary|totals):/ { print $2; exit }' "$out")")
        rm -f "$out"
    done
    record "instr_$shape" "$impl" 1 "{\"instructions_per_request\":$(( (counts[1] - counts[0]) / CG_N ))}"
}
for shape in 50x16 50x1; do
    for impl in ours ${BEFORE:+before} ldc; do
        instructions "$impl" "$shape"
    done
done
# Allocations on the server's threads per message (examples/alloc_count.rs:
# a counting allocator; exact, so one run each).
for impl in ours ${BEFORE:+before}; do
    dir=$BIN; [ "$impl" = before ] && dir=$BEFORE_BIN
    for args in "request 50 1 500" "request 50 16 2000" "text 50 16 2000"; do
        set -- $args
        record "allocs_$1_${2}x$3" "$impl" 1 "$("$dir/examples/alloc_count" $args)"
    done
done

# --- scaling ------------------------------------------------------------------
say "scaling: connections and payload sizes"
CONNS="1 10 100 1000 10000"
[ "$QUICK" = 1 ] && CONNS="1 10 100 1000"
ours ours-scaling --sink --max-connections 20000 --max-connections-per-ip 20000
for n in $CONNS; do
    before=$(rss_kib "$SERVER_PID")
    result=$(bench "$PORT" bench --mode request --connections "$n" --in-flight 1 --duration "$SECS")
    # The peak only grows, and the runs go from few connections to many.
    peak=$(awk '/VmHWM/{print $2}' "/proc/$SERVER_PID/status")
    record "scale_conns" ours "$n" "$(printf '%s' "$result" | sed "s/}\$/,\"server_hwm_kib\":$peak,\"server_base_kib\":$before}/")"
done
stop
for size in 16 256 4096 65536 1048576; do
    for impl in ours raw; do
        if [ "$impl" = ours ]; then ours ours --sink; else raw; fi
        record scale_size "$impl" "$size" "$(bench "$PORT" bench --mode binary --size "$size" --duration "$SECS")"
        stop
    done
done

# --- typed requests against tarpc and tonic ------------------------------------
# benches/rpc_race is a crate of its own (tarpc, tonic): built here only.
say "building benches/rpc_race (tarpc, tonic)"
cargo build --release --quiet --manifest-path "$ROOT/benches/rpc_race/Cargo.toml" \
    || die "benches/rpc_race did not build"
RACE=$ROOT/benches/rpc_race/target/release/rpc-race
# The race's runs last at least 5 s: at 2 s two runs of the very same bytes
# (the macro and the enum form it generates) differed by up to 14%.
RACE_SECS=$(python3 -c "print(max(5.0, $SECS) if $QUICK == 0 else $SECS)")
for round in $(seq "$ROUNDS"); do
    say "typed requests against tarpc and tonic, round $round/$ROUNDS"
    for load in "1 1" "50 1" "50 16"; do
        read -r conns depth <<< "$load"
        # Forward in odd rounds, backward in even ones: no contestant always
        # runs right after the same other, nor always first.
        kinds=(ours ours-enum ours-macro ours-raw tarpc tonic)
        if [ $((round % 2)) = 0 ]; then kinds=(tonic tarpc ours-raw ours-macro ours-enum ours); fi
        for kind in "${kinds[@]}"; do
            PORT=$(free_port)
            start "race-$kind" "$PORT" "$RACE" server "$kind" "127.0.0.1:$PORT"
            cpu_before=$(cpu_ticks "$SERVER_PID")
            line=$("$RACE" client "$kind" "127.0.0.1:$PORT" "$conns" "$depth" "$RACE_SECS" 2>>"$WORK/race.err") \
                || die "rpc_race client $kind failed: $(tail -3 "$WORK/race.err")"
            record "race_${conns}x${depth}" "$kind" "$round" "$(with_cpu "$line")"
            stop
        done
    done
done

# --- streams and cancellation (calls, spec 3.13) --------------------------------
# Server streaming against tonic's and against our own pushed events; the
# time from a dropped call to its work stopping, against tarpc; the server's
# memory with 1,000 streams whose readers stopped granting.
ITEMS=500000
[ "$QUICK" = 1 ] && ITEMS=100000
for round in $(seq "$ROUNDS"); do
    say "streams and cancellation, round $round/$ROUNDS"
    for kind in ours-stream ours-push tonic-stream; do
        server_kind=ours; [ "$kind" = tonic-stream ] && server_kind=tonic
        impl=$kind; [ "$kind" = ours-stream ] && impl=ours
        PORT=$(free_port)
        start "stream-$kind" "$PORT" "$RACE" server "$server_kind" "127.0.0.1:$PORT"
        cpu_before=$(cpu_ticks "$SERVER_PID")
        line=$("$RACE" stream "$kind" "127.0.0.1:$PORT" "$ITEMS" 2>>"$WORK/race.err") \
            || die "rpc_race stream $kind failed: $(tail -3 "$WORK/race.err")"
        record stream_items "$impl" "$round" "$(with_cpu "$line")"
        stop
    done
    for kind in ours tarpc; do
        PORT=$(free_port)
        start "cancel-$kind" "$PORT" "$RACE" server "$kind" "127.0.0.1:$PORT"
        line=$("$RACE" cancel "$kind" "127.0.0.1:$PORT" 200 2>>"$WORK/race.err") \
            || die "rpc_race cancel $kind failed: $(tail -3 "$WORK/race.err")"
        record cancel "$kind" "$round" "$line"
        stop
    done
    PORT=$(free_port)
    start stalled "$PORT" "$RACE" server ours "127.0.0.1:$PORT"
    line=$("$RACE" stalled "127.0.0.1:$PORT" 1000 "$SERVER_PID" 2>>"$WORK/race.err") \
        || die "rpc_race stalled failed: $(tail -3 "$WORK/race.err")"
    record stalled_streams ours "$round" "$line"
    stop
done

# --- the Python client against redis-py ----------------------------------------
# clients/python in a virtual environment (as scripts/test.sh makes it) with
# redis-py; our server (echo) and redis-server, alternated within the script.
say "the Python client against redis-py"
VENV=$ROOT/target/python-venv
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" || die "cannot create $VENV (apt-get install python3-venv)"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$ROOT/clients/python[bench]" \
    || die "cannot install clients/python[bench] into $VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --force-reinstall \
    "$ROOT/clients/python" || die "cannot install clients/python into $VENV"
"$VENV/bin/python" "$ROOT/clients/python/bench/bench_vs_redis.py" --server "$BIN/server" \
    --seconds "$SECS" --rounds "$ROUNDS" --jsonl >> "$RESULTS" 2>>"$WORK/python.err" \
    || die "the Python benchmark failed: $(tail -3 "$WORK/python.err")"

# --- v2 over WebSocket against v2 over TCP --------------------------------------
# One server (--sink) listening on both; the same load generator drives both
# (`client --addr ws://…` speaks v2 over WebSocket, as a browser does).
say "v2 over WebSocket against v2 over TCP"
ours_ws() {
    WS_PORT=$(free_port)
    ours "$1" --sink --max-connections 20000 --max-connections-per-ip 20000 \
        --max-pending-handshakes 20000 --ws-addr "127.0.0.1:$WS_PORT"
    for _ in $(seq 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$WS_PORT") 2>/dev/null && return
        sleep 0.05
    done
    die "the WebSocket listener is not up on port $WS_PORT"
}
for round in $(seq "$ROUNDS"); do
    ours_ws ours-ws
    for transport in tcp ws; do
        target="127.0.0.1:$PORT"; [ "$transport" = ws ] && target="ws://127.0.0.1:$WS_PORT/"
        cpu_before=$(cpu_ticks "$SERVER_PID")
        record ws_oneway32 "$transport" "$round" \
            "$(with_cpu "$(bench_to "$target" bench --mode text --size 32 --duration "$SECS")")"
        cpu_before=$(cpu_ticks "$SERVER_PID")
        record ws_req_50x16 "$transport" "$round" \
            "$(with_cpu "$(bench_to "$target" bench --mode request --connections 50 --in-flight 16 --duration "$SECS")")"
    done
    stop
    # What an idle connection costs, each way, on a fresh server.
    for transport in tcp ws; do
        ours_ws ours-ws-idle
        target="127.0.0.1:$PORT"; [ "$transport" = ws ] && target="ws://127.0.0.1:$WS_PORT/"
        IDLE_CASE=ws_idle idle "$transport" "$round" "$BIN/client" --addr "$target" bench \
            --mode idle --connections "$IDLE" --duration 3600
        stop
    done
done

# --- resumable sessions against plain ones (spec 3.14) ---------------------------
# The same server (--sink); the same client, with --resume and without,
# alternated; what an idle resumable session costs; how long a resume takes.
say "resumable sessions against plain ones"
# The goal (resumable >= 0.9x plain) sits near this machine's noise, so each
# round measures the pair twice, in both orders (plain first, then resumable
# first): a drift of the machine's speed within a round favours neither.
# Pass P of round R is recorded as run 2R-2+P.
for round in $(seq "$ROUNDS"); do
    ours ours-resume --sink
    for pass in 1 2; do
        kinds="plain resumable"; [ "$pass" = 2 ] && kinds="resumable plain"
        run=$((2 * round - 2 + pass))
        for kind in $kinds; do
            flag=(); [ "$kind" = resumable ] && flag=(--resume)
            measure resume_oneway32 "$kind" "$run" "${flag[@]}" bench --mode text --size 32 --duration "$SECS"
            measure resume_req_50x16 "$kind" "$run" "${flag[@]}" bench --mode request --connections 50 --in-flight 16 --duration "$SECS"
            measure resume_req_50x1 "$kind" "$run" "${flag[@]}" bench --mode request --connections 50 --in-flight 1 --duration "$SECS"
        done
    done
    stop
    for kind in plain resumable; do
        flag=(); [ "$kind" = resumable ] && flag=(--resume)
        ours ours-resume-idle --sink --max-connections 20000 --max-connections-per-ip 20000 \
            --max-pending-handshakes 20000 --max-kept-sessions 20000
        IDLE_CASE=resume_idle idle "$kind" "$((2 * round - 1))" "$BIN/client" --addr "127.0.0.1:$PORT" "${flag[@]}" \
            bench --mode idle --connections "$IDLE" --duration 3600
        stop
    done
    resumes=200; [ "$QUICK" = 1 ] && resumes=50
    record resume_time ours "$((2 * round - 1))" "$("$BIN/examples/resume_time" "$resumes")"
done

# --- sessions kept in a store for the deployment (spec 3.14.6) ------------------
# nats-server with JetStream on a free port; our server with --session-store
# against the same server without, a resumable client both times; and the
# time a session takes to resume on the other of two servers sharing the
# store.
say "resumable sessions kept in JetStream"
NATS_PORT=$(free_port)
mkdir -p "$WORK/jetstream"
start nats "$NATS_PORT" nats-server -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$WORK/jetstream"
NATS_PID=$SERVER_PID
for round in $(seq "$ROUNDS"); do
    for kind in resumable stored; do
        store=(); [ "$kind" = stored ] && store=(--session-store "nats://127.0.0.1:$NATS_PORT")
        ours "ours-$kind" --sink "${store[@]}"
        measure store_oneway32 "$kind" "$round" --resume bench --mode text --size 32 --duration "$SECS"
        measure store_req_50x16 "$kind" "$round" --resume bench --mode request --connections 50 --in-flight 16 --duration "$SECS"
        measure store_req_50x1 "$kind" "$round" --resume bench --mode request --connections 50 --in-flight 1 --duration "$SECS"
        stop
    done
    resumes=200; [ "$QUICK" = 1 ] && resumes=50
    record resume_time_across ours "$round" \
        "$("$BIN/examples/resume_time" "$resumes" --store "nats://127.0.0.1:$NATS_PORT")"
done
kill "$NATS_PID" 2>/dev/null || true
wait "$NATS_PID" 2>/dev/null || true

# --- a distributed slot attack ------------------------------------------------
# 14 addresses x 1,000 silent sockets reconnecting at once when cut, for
# ATTACK_SECS; an honest client tries HELLO -> REQUEST -> CLOSE every 0.25 s.
ATTACK_SECS=30
[ "$QUICK" = 1 ] && ATTACK_SECS=5
for round in $(seq "$ROUNDS"); do
    say "slot attack, round $round"
    line=$(python3 "$ROOT/scripts/slot_attack.py" --server "$BIN/server" --seconds "$ATTACK_SECS" \
        2>>"$WORK/attack.err" | tail -1) || die "slot attack failed: $(tail -3 "$WORK/attack.err")"
    record slot_attack ours "$round" "$line"
done

# --- the report -------------------------------------------------------------
say "writing $OUT"
{
    echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "commit=$COMMIT"
    echo "cpu=$(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)"
    echo "cores=$(nproc)"
    echo "memory=$(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    echo "kernel=$(uname -sr)"
    echo "rustc=$(rustc --version)"
    echo "redis=$(redis-server --version | awk '{print $3}')"
    echo "python=$("$VENV/bin/python" -c 'import platform, redis, importlib.util as u; print(platform.python_version(), "with redis-py", redis.__version__, "(hiredis)" if u.find_spec("hiredis") else "(pure-Python parser)")')"
    echo "rounds=$ROUNDS"
    echo "secs=$SECS"
    echo "idle=$IDLE"
} > "$WORK/machine.txt"
"$BIN/examples/bench_report" "$RESULTS" "$WORK/machine.txt" "$OUT"
