#!/usr/bin/env bash
# Echo benchmark: wavecast-tokio vs fastwebsockets vs tokio-tungstenite.
#
#   ./run.sh                 5 interleaved rounds: 100 conns x 20 B text, plus
#                            idle memory at 10,000 connections
#   ./run.sh --quick         1 round, ~1.5 s per workload, 1,000 idle conns (CI smoke)
#   ./run.sh --all           also 1 KiB / 16 KiB / 1 MiB binary workloads
#   options: --rounds N --duration S --warmup S --idle-conns C --idle-wait S
#            --inflight K --no-idle --no-build
#   ./run.sh --report results/<ts>/results.jsonl   re-print the table of a past run
#
# Each server runs on CPU 0 (taskset -c 0, one tokio worker), the load
# generator on CPU 1. Rounds interleave the servers (the order rotates every
# round) so background load hits all of them alike. Results go to
# results/<timestamp>/ (raw JSON lines, load averages, the table).
set -euo pipefail
cd "$(dirname "$0")"

ROUNDS=5 DURATION=5 WARMUP=1 IDLE_CONNS=10000 IDLE_WAIT=3 INFLIGHT=8
ALL=0 IDLE=1 BUILD=1 REPORT=
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) ROUNDS=1 DURATION=1.5 WARMUP=0.5 IDLE_CONNS=1000 IDLE_WAIT=1 ;;
    --all) ALL=1 ;;
    --rounds) ROUNDS=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --warmup) WARMUP=$2; shift ;;
    --idle-conns) IDLE_CONNS=$2; shift ;;
    --idle-wait) IDLE_WAIT=$2; shift ;;
    --inflight) INFLIGHT=$2; shift ;;
    --no-idle) IDLE=0 ;;
    --no-build) BUILD=0 ;;
    --report) REPORT=$2; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

# Median and spread per workload and server, ratio to wavecast.
table() {
  jq -rs '
  def med: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor]
           else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  def fmt: if . == null then "-" elif . >= 100000 then "\(. / 1000 | round)k"
           elif . >= 10000 then "\(. / 100 | round / 10)k" else "\(. | round)" end;
  def ratio($a; $b): if $a == null or $b == null or $b == 0 then "-" else "\($a / $b * 100 | round / 100)x" end;
  def stats(f): (map(f) | {med: med, min: min, max: max});
  (map(select(.valid)) ) as $ok |
  "| workload | server | msgs/s median (min–max) | vs wavecast | msgs per server-CPU-s median (min–max) | vs wavecast | server CPU busy | valid rounds |",
  "|---|---|---|---|---|---|---|---|",
  ( map(select(.mode == "throughput")) | group_by([.size, .conns, .kind]) | .[] |
    (.[0] | "\(.conns) conns × \(.size) B \(.kind), \(.inflight) in flight") as $w |
    ($ok | map(select(.mode == "throughput" and .server == "wavecast-echo"))) as $_ |
    . as $all | ($all | map(select(.valid))) as $v |
    ($v | map(select(.server == "wavecast-echo")) | stats(.msgs_per_s).med) as $wr |
    ($v | map(select(.server == "wavecast-echo")) | stats(.msgs_per_server_cpu_s).med) as $wc |
    ($all | group_by(.server) | sort_by(.[0].server != "wavecast-echo") | .[] |
      .[0].server as $s | map(select(.valid)) as $sv |
      ($sv | stats(.msgs_per_s)) as $r | ($sv | stats(.msgs_per_server_cpu_s)) as $c |
      ($sv | map(.server_cpu_s / .seconds * 100) | med) as $busy |
      "| \($w) | \($s) | \($r.med | fmt) (\($r.min | fmt)–\($r.max | fmt)) | \(ratio($r.med; $wr)) | \($c.med | fmt) (\($c.min | fmt)–\($c.max | fmt)) | \(ratio($c.med; $wc)) | \(if $busy == null then "-" else "\($busy | round)%" end) | \($sv | length)/\(length) |")
  ),
  "",
  ( map(select(.mode == "idle")) | if length == 0 then empty else
    (.[0].conns) as $n |
    (map(select(.valid and .server == "wavecast-echo")) | map(.bytes_per_conn) | med) as $wm |
    "| server | idle memory per connection at \($n) conns, median (min–max) | vs wavecast | valid rounds |",
    "|---|---|---|---|",
    (group_by(.server) | sort_by(.[0].server != "wavecast-echo") | .[] |
      .[0].server as $s | map(select(.valid) | .bytes_per_conn) as $b |
      "| \($s) | \($b | med | round) B (\($b | min | round)–\($b | max | round)) | \(ratio($b | med; $wm)) | \($b | length)/\(length) |")
  end )
' "$1"
}

if [[ -n $REPORT ]]; then table "$REPORT"; exit 0; fi

SERVERS=(wavecast-echo fastwebsockets-echo tungstenite-echo)
# conns size kind inflight
WORKLOADS=("100 20 text $INFLIGHT")
if [[ $ALL == 1 ]]; then
  WORKLOADS+=("100 1024 binary $INFLIGHT" "16 16384 binary 4" "4 1048576 binary 2")
fi

if [[ $BUILD == 1 ]]; then cargo build --release --quiet; fi
BIN=${CARGO_TARGET_DIR:-target}/release
OUT=results/$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
RAW=$OUT/results.jsonl
: > "$RAW"
PORT=$((20000 + RANDOM % 10000))
FAILED=0

echo "# $(date -u) $(nproc) CPUs; $(uname -sr)" | tee "$OUT/load.txt"
echo "# wavecast tree: $(git -C ../.. rev-parse --short HEAD 2>/dev/null || echo '?')" \
  "($(git -C ../.. status --porcelain -- core runtime-tokio 2>/dev/null | wc -l) uncommitted files in core/ runtime-tokio/)" | tee -a "$OUT/load.txt"
echo "start: $(uptime)" | tee -a "$OUT/load.txt"

SERVER_PID=
start_server() { # name -> sets SERVER_PID, ADDR
  PORT=$((PORT + 1))
  ADDR=127.0.0.1:$PORT
  taskset -c 0 "$BIN/$1" --addr "$ADDR" &
  SERVER_PID=$!
}
stop_server() {
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
}
trap '[[ -n $SERVER_PID ]] && kill $SERVER_PID 2>/dev/null' EXIT

loadgen() { # round, extra args...
  local round=$1; shift
  local line
  if line=$(timeout 300 taskset -c 1 "$BIN/loadgen" --addr "$ADDR" --pid "$SERVER_PID" "$@"); then :; else
    FAILED=1
    echo "round $round: loadgen failed: $line" >&2
  fi
  [[ -n $line ]] && echo "$line" | jq -c --argjson r "$round" --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" \
    '. + {round: $r, load: $load}' | tee -a "$RAW"
}

for ((r = 1; r <= ROUNDS; r++)); do
  echo "round $r: $(uptime)" | tee -a "$OUT/load.txt"
  for ((i = 0; i < ${#SERVERS[@]}; i++)); do
    s=${SERVERS[$(((i + r - 1) % ${#SERVERS[@]}))]}
    start_server "$s"
    for w in "${WORKLOADS[@]}"; do
      read -r conns size kind inflight <<< "$w"
      loadgen "$r" --server "$s" --conns "$conns" --size "$size" "--$kind" \
        --inflight "$inflight" --warmup "$WARMUP" --duration "$DURATION"
    done
    stop_server
    if [[ $IDLE == 1 ]]; then
      start_server "$s"   # a fresh process, so the RSS baseline is clean
      loadgen "$r" --server "$s" --idle "$IDLE_CONNS" --idle-wait "$IDLE_WAIT"
      stop_server
    fi
  done
done
echo "end: $(uptime)" | tee -a "$OUT/load.txt"

table "$RAW" | tee "$OUT/table.md"
echo
echo "raw results: $RAW; load: $OUT/load.txt"
exit $FAILED
