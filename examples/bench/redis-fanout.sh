#!/usr/bin/env bash
# Rooms over Redis: one room served by three `fanout-node`s sharing it
# through one redis-server, against the same load on one node over Redis and
# on one node with the in-process backplane (StreamHub::local).
#
#   ./redis-fanout.sh            3 rounds (setups interleaved, order rotating)
#                                of: 300 members per node of the three-node
#                                setup (900 in all, the same 900 on the single
#                                node), 200 msgs/s published for 1 s of
#                                warm-up + 10 s measured (~2 min)
#   ./redis-fanout.sh --quick    1 round, 20 members per node, 100 msgs/s for
#                                0.3 s (the CI smoke, a few seconds)
#   options: --rounds N --members-per-node N --rate R --duration S
#            --warmup S --no-build --no-wait (do not wait for a quiet machine)
#            --no-pin (let the scheduler place every process)
#   ./redis-fanout.sh --report results/redis-fanout-<ts>/results.jsonl
#
# The nodes and redis-server run on CPU 0 (taskset -c 0), the load client
# (`fanout-load`: all members, the publisher on the first node) on CPU 1.
# Every process is started on 127.0.0.1 only, every load is bounded (a
# 120 s `timeout`, fixed counts and durations) and everything started here
# is stopped on exit. Before each run the script waits (up to 20 min,
# polling every 10 s) until no rustc or cargo runs on the machine, logs
# what it saw in load.txt, and samples again every second during the run
# (`other_builds` in its JSON line, last column of the table).
# $REDIS_SERVER picks the binary (default redis-server on the PATH). Exit
# status is nonzero if any run was invalid (a message missing, duplicated
# or out of order, a connection lost).
set -euo pipefail
cd "$(dirname "$0")"

ROUNDS=3 PER_NODE=300 RATE=200 DURATION=10 WARMUP=1 BUILD=1 WAIT_QUIET=1 PIN=1 REPORT=
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) ROUNDS=1 PER_NODE=20 RATE=100 DURATION=0.3 WARMUP=0.1 WAIT_QUIET=0 ;;
    --rounds) ROUNDS=$2; shift ;;
    --members-per-node) PER_NODE=$2; shift ;;
    --rate) RATE=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --warmup) WARMUP=$2; shift ;;
    --no-build) BUILD=0 ;;
    --no-wait) WAIT_QUIET=0 ;;
    --no-pin) PIN=0 ;;
    --report) REPORT=$2; shift ;;
    -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

# Medians per setup over the valid runs; node CPU is the sum over the
# setup's nodes; all CPU figures cover the measured window.
table() {
  jq -rs '
  def med: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor]
           else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  def num($d): if . == null then "-" else (. * pow(10; $d) | round / pow(10; $d) | tostring) end;
  def k: if . == null then "-" elif . >= 10000 then "\(. / 100 | round / 10)k" else "\(round)" end;
  def ms: if . == null then "-" else "\(. / 1000 * 100 | round / 100) ms" end;
  def rank($s): ["3 nodes + Redis", "1 node + Redis", "1 node, local"] | index($s) // 9;
  "| setup | members | deliveries/s | p50 | p99 | node CPU s (sum) | redis CPU s | client CPU s | node CPU µs / delivery | redis CPU µs / publication | valid runs | runs with another build running |",
  "|---|---|---|---|---|---|---|---|---|---|---|---|",
  ( group_by(.setup) | sort_by(rank(.[0].setup)) | .[] |
    .[0].setup as $s | map(select(.valid)) as $v |
    ($v | map(.node_cpu_s / .deliveries * 1e6) | med) as $pd |
    ($v | map(select(.redis_cpu_s != null) | .redis_cpu_s / .measured_msgs * 1e6) | med) as $pp |
    "| \($s) | \(.[0].members) | \($v | map(.deliveries_per_s) | med | k) | \($v | map(.p50_us) | med | ms) | \($v | map(.p99_us) | med | ms) | \($v | map(.node_cpu_s) | med | num(2)) | \($v | map(.redis_cpu_s) | map(select(. != null)) | med | num(2)) | \($v | map(.client_cpu_s) | med | num(2)) | \($pd | num(2)) | \($pp | num(1)) | \($v | length)/\(length) | \(map(select(.other_builds == true)) | length) |" ),
  ( map(select(.valid | not)) | if length == 0 then empty else
    "", "Invalid runs:", (.[] | "- round \(.round) \(.setup // "?"): \(.error)") end )
  ' "$1"
}

if [[ -n $REPORT ]]; then table "$REPORT"; exit 0; fi

REDIS_SERVER=${REDIS_SERVER:-redis-server}
command -v "$REDIS_SERVER" >/dev/null || { echo "redis-fanout: $REDIS_SERVER is missing (apt-get install redis-server)" >&2; exit 1; }
command -v jq >/dev/null || { echo "redis-fanout: jq is missing" >&2; exit 1; }
if [[ $BUILD == 1 ]]; then
  cargo build --release --quiet --bin fanout-node --bin fanout-load
fi
BIN=${CARGO_TARGET_DIR:-target}/release
for b in fanout-node fanout-load; do
  [[ -x $BIN/$b ]] || { echo "redis-fanout: $BIN/$b is missing (run without --no-build)" >&2; exit 1; }
done
# Pinning needs two CPUs; on one, everything shares it.
PIN_SERVERS=() PIN_CLIENT=()
if ((PIN == 1)) && command -v taskset >/dev/null && (($(nproc) >= 2)); then
  PIN_SERVERS=(taskset -c 0) PIN_CLIENT=(taskset -c 1)
fi

OUT=results/redis-fanout-$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
RAW=$OUT/results.jsonl
: > "$RAW"
FAILED=0
echo "# $(date -u) $(nproc) CPUs; $(uname -sr); $("$REDIS_SERVER" --version)" | tee "$OUT/load.txt"
echo "# wavecast tree: $(git -C ../.. rev-parse --short HEAD 2>/dev/null || echo '?')" \
  "($(git -C ../.. status --porcelain -- core runtime runtime-tokio examples/bench/src 2>/dev/null | wc -l) uncommitted files)" | tee -a "$OUT/load.txt"
echo "# ${PER_NODE} members per node, ${RATE} msgs/s, ${WARMUP} s + ${DURATION} s;" \
  "pinning: ${PIN_SERVERS[*]:-none} (nodes, redis), ${PIN_CLIENT[*]:-none} (client)" | tee -a "$OUT/load.txt"

STARTED=()
cleanup() {
  for p in "${STARTED[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${STARTED[@]}"; do wait "$p" 2>/dev/null || true; done
  STARTED=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_free() { ! { (exec 3<>"/dev/tcp/127.0.0.1/$1"); } 2>/dev/null; }
# Below the kernel's ephemeral range, so that no outgoing connection of a
# run can hold the port a node or Redis is about to listen on.
EPHEMERAL_LOW=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
free_port() {
  local p
  while :; do
    p=$((10000 + RANDOM % (EPHEMERAL_LOW - 10000)))
    port_free "$p" && { echo "$p"; return; }
  done
}

REDIS_PID= REDIS_URL=
start_redis() {
  local port; port=$(free_port)
  "${PIN_SERVERS[@]}" "$REDIS_SERVER" --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
    --logfile "" --daemonize no >/dev/null &
  REDIS_PID=$!
  STARTED+=("$REDIS_PID")
  REDIS_URL=redis://127.0.0.1:$port/
  for _ in $(seq 100); do
    if { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null; then
      printf 'PING\r\n' >&3
      local answer; read -r -t 1 answer <&3 || true
      exec 3<&-
      [[ $answer == +PONG* ]] && return
    fi
    sleep 0.05
  done
  echo "redis-fanout: redis-server did not answer on $port" >&2
  return 1
}

NODE_PIDS=() NODE_ADDRS=()
start_node() { # [--redis URL]; returns once the node listens
  local port pid; port=$(free_port)
  "${PIN_SERVERS[@]}" "$BIN/fanout-node" --port "$port" "$@" &
  pid=$!
  NODE_PIDS+=("$pid")
  STARTED+=("$pid")
  NODE_ADDRS+=("127.0.0.1:$port")
  for _ in $(seq 200); do
    port_free "$port" || return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "redis-fanout: fanout-node on $port did not start" >&2
  return 1
}

# SIGINT to the nodes (they exit 0), then the rest.
stop_all() {
  for p in "${NODE_PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  for p in "${NODE_PIDS[@]}"; do
    wait "$p" 2>/dev/null || echo "redis-fanout: node $p exited with $?" >&2
  done
  cleanup
  NODE_PIDS=() NODE_ADDRS=() REDIS_PID= REDIS_URL=
}

wait_quiet() {
  local waited=0
  while pgrep -x rustc >/dev/null || pgrep -x cargo >/dev/null; do
    if ((waited == 0)); then
      echo "waiting for a quiet machine (rustc/cargo running): $(uptime)" | tee -a "$OUT/load.txt"
    fi
    if ((waited >= 1200)); then
      echo "still not quiet after 20 min; measuring anyway (other load present)" | tee -a "$OUT/load.txt"
      return
    fi
    sleep 10
    waited=$((waited + 10))
  done
  ((waited == 0)) || echo "quiet after ${waited}s" | tee -a "$OUT/load.txt"
}

# Whether another build ran at any of the samples taken during a run.
OTHERS=0
watch_others() {
  while :; do
    if pgrep -x rustc >/dev/null || pgrep -x cargo >/dev/null; then echo busy > "$OUT/.others"; fi
    sleep 1
  done
}

run() { # round, setup label
  local round=$1 setup=$2 line pids watcher
  rm -f "$OUT/.others"
  watch_others &
  watcher=$!
  STARTED+=("$watcher")
  pids=$(IFS=,; echo "${NODE_PIDS[*]}")
  local redis_arg=()
  [[ -n $REDIS_PID ]] && redis_arg=(--redis-pid "$REDIS_PID")
  if line=$(timeout 120 "${PIN_CLIENT[@]}" "$BIN/fanout-load" --setup "$setup" \
      --nodes "$(IFS=,; echo "${NODE_ADDRS[*]}")" --members $((3 * PER_NODE)) \
      --rate "$RATE" --warmup "$WARMUP" --duration "$DURATION" \
      --pids "$pids" "${redis_arg[@]}"); then :; else
    FAILED=1
    echo "round $round: $setup failed: $line" >&2
  fi
  kill "$watcher" 2>/dev/null || true
  wait "$watcher" 2>/dev/null || true
  OTHERS=$([[ -e $OUT/.others ]] && echo true || echo false)
  [[ -n $line ]] && echo "$line" | jq -c --argjson r "$round" --arg setup "$setup" \
    --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" --argjson others "$OTHERS" \
    '. + {round: $r, setup: $setup, load: $load, other_builds: $others}' | tee -a "$RAW"
  return 0
}

SETUPS=("3 nodes + Redis" "1 node + Redis" "1 node, local")
for ((r = 1; r <= ROUNDS; r++)); do
  echo "round $r: $(uptime)" | tee -a "$OUT/load.txt"
  for ((i = 0; i < ${#SETUPS[@]}; i++)); do
    s=${SETUPS[$(((i + r - 1) % ${#SETUPS[@]}))]}
    ((WAIT_QUIET == 0)) || wait_quiet
    case $s in
      "3 nodes + Redis") start_redis; for _ in 1 2 3; do start_node --redis "$REDIS_URL"; done ;;
      "1 node + Redis") start_redis; start_node --redis "$REDIS_URL" ;;
      "1 node, local") start_node ;;
    esac
    run "$r" "$s"
    stop_all
  done
done
echo "end: $(uptime)" | tee -a "$OUT/load.txt"

table "$RAW" | tee "$OUT/table.md"
echo
echo "raw results: $RAW; load: $OUT/load.txt"
exit $FAILED
