#!/usr/bin/env bash
# wavecast benchmark: wavecast on tokio / smol / async-std vs fastwebsockets,
# tokio-websockets and tokio-tungstenite. One command for the whole table:
#
#   ./run.sh                 5 interleaved rounds of: echo with one message in
#                            flight per connection (100 conns x 20 B, 10 x
#                            1 KiB, 10 x 16 KiB, 1 x 1 MiB binary; wavecast is
#                            the examples/echo program); handshakes/s (16
#                            workers); broadcast to 1,000 and 10,000
#                            subscribers (as fast as the room drains, and at
#                            20,000 deliveries/s for latency; the peers get a
#                            naive tokio broadcast fan-out); idle memory at
#                            10,000 connections; large messages (16 MiB whole,
#                            and one streamed message on the wavecast servers:
#                            MiB/s and the server's peak RSS) (~35 min)
#   ./run.sh --quick         1 round, ~1 s per workload, 1,000 idle conns, 200
#                            subscribers (CI smoke, a few minutes once built)
#   ./run.sh --echo-only     only the echo workloads
#   ./run.sh --broadcast-only  only the broadcast workloads
#   ./run.sh --small-only    echo only the 20 B workload
#   ./run.sh --large-only    only the large-message workload
#   options: --rounds N --duration S --warmup S --idle-conns C --idle-wait S
#            --inflight K --subs "N1 N2" --hs-workers C --no-idle
#            --no-broadcast --no-handshakes --no-large --large-size BYTES
#            --bcast-sizes "B1 B2" (broadcast payloads, default 64)
#            --fixed-rate-only (broadcast at the fixed rate only)
#            --no-build (--all: accepted, the default)
#   ./run.sh --report results/<ts>/results.jsonl   re-print the table of a past run
#
# Echo uses `pingpong` (one message in flight per connection, the way the
# peers publish their numbers); `--inflight K` with K > 1 uses `loadgen`'s
# pipelined mode instead (not comparable with published figures).
# UWS_ECHO=/path/to/uWebSockets/EchoServer adds uWebSockets' echo example to
# the echo workloads (built by hand; it listens on port 9001).
#
# Each server runs on CPU 0 (taskset -c 0; one tokio worker, SMOL_THREADS=1,
# ASYNC_STD_THREAD_COUNT=1), the load generator on CPU 1. Rounds interleave
# the servers (the order rotates every round) so background load hits all of
# them alike. Results go to results/<timestamp>/ (raw JSON lines, `uptime`
# before every round, the table). Exit status is nonzero if any run was invalid.
set -euo pipefail
cd "$(dirname "$0")"

ROUNDS=5 DURATION=5 WARMUP=1 IDLE_CONNS=10000 IDLE_WAIT=3 INFLIGHT=1
SUBS="1000 10000" BDURATION=3 BCAST_DELIVERIES=20000 BCAST_SIZES=64 BCAST_DRAIN=1 HS_WORKERS=16 HS_DURATION=3
LARGE_SIZE=16777216
ECHO_ONLY_SMALL=0 ECHO=1 IDLE=1 BROADCAST=1 HANDSHAKES=1 LARGE=1 BUILD=1 REPORT=
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) ROUNDS=1 DURATION=1 WARMUP=0.5 IDLE_CONNS=1000 IDLE_WAIT=1 SUBS=200 BDURATION=1 HS_DURATION=1 ;;
    --all) ;; # the default now; kept so older command lines still work
    --small-only) ECHO_ONLY_SMALL=1 ;;
    --large-only) ECHO=0 IDLE=0 BROADCAST=0 HANDSHAKES=0 ;;
    --echo-only) LARGE=0 IDLE=0 BROADCAST=0 HANDSHAKES=0 ;;
    --broadcast-only) ECHO=0 LARGE=0 IDLE=0 HANDSHAKES=0 ;;
    --bcast-sizes) BCAST_SIZES=$2; shift ;;
    --fixed-rate-only) BCAST_DRAIN=0 ;;
    --rounds) ROUNDS=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --warmup) WARMUP=$2; shift ;;
    --idle-conns) IDLE_CONNS=$2; shift ;;
    --idle-wait) IDLE_WAIT=$2; shift ;;
    --inflight) INFLIGHT=$2; shift ;;
    --subs) SUBS=$2; shift ;;
    --hs-workers) HS_WORKERS=$2; shift ;;
    --no-idle) IDLE=0 ;;
    --no-broadcast) BROADCAST=0 ;;
    --no-handshakes) HANDSHAKES=0 ;;
    --no-large) LARGE=0 ;;
    --large-size) LARGE_SIZE=$2; shift ;;
    --no-build) BUILD=0 ;;
    --report) REPORT=$2; shift ;;
    -h|--help) sed -n '2,40p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

# Median and spread per workload and server, ratio to wavecast-echo (the
# tokio adapter).
table() {
  jq -rs '
  def med: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor]
           else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  def fmt: if . == null then "-" elif . >= 100000 then "\(. / 1000 | round)k"
           elif . >= 10000 then "\(. / 100 | round / 10)k"
           elif . >= 100 then "\(. | round)" else "\(. * 10 | round / 10)" end;
  def ratio($a; $b): if $a == null or $b == null or $b == 0 then "-" else "\($a / $b * 100 | round / 100)x" end;
  def stats(f): (map(f) | map(select(. != null)) | {med: med, min: min, max: max});
  def spread(f): stats(f) as $x | "\($x.med | fmt) (\($x.min | fmt)–\($x.max | fmt))";
  def rank: . as $s | (["wavecast-echo", "wavecast-smol-echo", "wavecast-async-std-echo", "uws-echo",
                        "fastwebsockets-echo", "tokio-websockets-echo", "tungstenite-echo"] | index($s)) // 99;
  def busy: map(select(.server_cpu_s != null) | .server_cpu_s / .seconds * 100) | med |
            if . == null then "-" else "\(round)%" end;
  # rows for one workload group: $lab, rate field f
  def rows($lab; f):
    . as $all | (map(select(.valid and .server == "wavecast-echo")) | stats(f).med) as $wr |
    (map(select(.valid and .server == "wavecast-echo")) | stats(.msgs_per_server_cpu_s).med) as $wc |
    group_by(.server) | sort_by(.[0].server | rank) | .[] |
      .[0].server as $s | map(select(.valid)) as $sv |
      "| \($lab) | \($s) | \($sv | spread(f)) | \(ratio($sv | stats(f).med; $wr)) | \($sv | spread(.msgs_per_server_cpu_s)) | \(ratio($sv | stats(.msgs_per_server_cpu_s).med; $wc)) | \($sv | busy) | \($sv | length)/\(length) |";
  ( if any(.[]; .mode == "throughput") then
  "### Echo",
  "",
  "wavecast rows: the `examples/echo` program (`--runtime tokio|smol|async-std`). Last column: messages per server-CPU-second over the best of fastwebsockets, tokio-websockets and tokio-tungstenite on that workload.",
  "",
  "| workload | server | msgs/s median (min–max) | vs wavecast-tokio | msgs per server-CPU-s median (min–max) | vs wavecast-tokio | server CPU busy | client CPU busy | valid runs | per CPU vs best Rust peer |",
  "|---|---|---|---|---|---|---|---|---|---|"
  else empty end ),
  ( map(select(.mode == "throughput")) | group_by([.size, .conns, .kind, .inflight]) | .[] |
    (.[0] | "\(.conns) conns × \(.size) B \(.kind), \(.inflight) in flight") as $lab |
    (map(select(.valid and .server == "wavecast-echo")) | stats(.msgs_per_s).med) as $wr |
    (map(select(.valid and .server == "wavecast-echo")) | stats(.msgs_per_server_cpu_s).med) as $wc |
    ([group_by(.server) | .[] | select(.[0].server | IN("fastwebsockets-echo", "tokio-websockets-echo", "tungstenite-echo")) |
      map(select(.valid)) | stats(.msgs_per_server_cpu_s).med | select(. != null)] | max) as $best |
    group_by(.server) | sort_by(.[0].server | rank) | .[] |
      .[0].server as $s | map(select(.valid)) as $sv |
      ($sv | map(select(.client_cpu_s != null) | .client_cpu_s / .seconds * 100) | med) as $cb |
      "| \($lab) | \($s) | \($sv | spread(.msgs_per_s)) | \(ratio($sv | stats(.msgs_per_s).med; $wr)) | \($sv | spread(.msgs_per_server_cpu_s)) | \(ratio($sv | stats(.msgs_per_server_cpu_s).med; $wc)) | \($sv | busy) | \(if $cb == null then "-" else "\($cb | round)%" end) | \($sv | length)/\(length) | \(ratio($sv | stats(.msgs_per_server_cpu_s).med; $best)) |" ),
  ( map(select(.mode == "handshakes")) | if length == 0 then empty else
    "",
    "### Handshakes (connect, upgrade, close handshake, TCP close)",
    "",
    "| workload | server | handshakes/s median (min–max) | vs wavecast-tokio | handshakes per server-CPU-s median (min–max) | vs wavecast-tokio | server CPU busy | valid runs |",
    "|---|---|---|---|---|---|---|---|",
    ( group_by(.workers) | .[] | rows("\(.[0].workers) concurrent workers"; .msgs_per_s) )
  end ),
  ( map(select(.mode == "broadcast")) | if length == 0 then empty else
    "",
    "### Broadcast (one publisher, N subscribers, binary; wavecast: a room, peers: naive tokio::sync::broadcast fan-out)",
    "",
    "| workload | server | delivered msgs/s median (min–max) | vs wavecast-tokio | delivered per server-CPU-s median (min–max) | vs wavecast-tokio | p50 latency µs median (min–max) | p99 latency µs median (min–max) | server CPU busy | valid runs |",
    "|---|---|---|---|---|---|---|---|---|---|",
    ( group_by([.size, .subs, .rate]) | .[] |
      (.[0] | "\(.subs) subs × \(.size) B, " + (if .rate == 0 then "as fast as the room drains (≤ \(.window) msgs in flight)"
                                  else "\(.rate) msgs/s published" end)) as $lab |
      (map(select(.valid and .server == "wavecast-echo")) | stats(.msgs_per_s).med) as $wr |
      (map(select(.valid and .server == "wavecast-echo")) | stats(.msgs_per_server_cpu_s).med) as $wc |
      group_by(.server) | sort_by(.[0].server | rank) | .[] |
        .[0].server as $s | map(select(.valid)) as $sv |
        "| \($lab) | \($s) | \($sv | spread(.msgs_per_s)) | \(ratio($sv | stats(.msgs_per_s).med; $wr)) | \($sv | spread(.msgs_per_server_cpu_s)) | \(ratio($sv | stats(.msgs_per_server_cpu_s).med; $wc)) | \($sv | spread(.p50_us)) | \($sv | spread(.p99_us)) | \($sv | busy) | \($sv | length)/\(length) |" )
  end ),
  ( map(select(.mode == "large")) | if length == 0 then empty else
    (map(select(.valid and .streaming == false)) | group_by(.server) |
      map({key: .[0].server, value: (map(.mib_per_s) | med)}) | from_entries) as $whole |
    "",
    "### Large messages (one connection, MiB of echoed payload; streaming: the wavecast servers with `--stream`)",
    "",
    "| workload | server | MiB/s median (min–max) | vs wavecast-tokio | MiB per server-CPU-s median (min–max) | vs wavecast-tokio | MiB/s vs whole messages, same server | server peak RSS growth, MiB median (max) | server CPU busy | valid runs |",
    "|---|---|---|---|---|---|---|---|---|---|",
    ( group_by(.streaming) | .[] |
      (.[0] | if .streaming then "one binary message streamed for the whole run (send_reader / next_message, 64 KiB frames, ≤ \(.window / 1024) KiB not yet echoed)"
              else "\(.size / 1048576 * 10 | round / 10) MiB binary messages, whole, \(.inflight) in flight" end) as $lab |
      (map(select(.valid and .server == "wavecast-echo")) | stats(.mib_per_s).med) as $wr |
      (map(select(.valid and .server == "wavecast-echo")) | stats(.mib_per_server_cpu_s).med) as $wc |
      group_by(.server) | sort_by(.[0].server | rank) | .[] |
        .[0].server as $s | map(select(.valid)) as $sv |
        ($sv | map(.server_hwm_growth_kib | select(. != null) / 1024)) as $m |
        "| \($lab) | \($s) | \($sv | spread(.mib_per_s)) | \(ratio($sv | stats(.mib_per_s).med; $wr)) | \($sv | spread(.mib_per_server_cpu_s)) | \(ratio($sv | stats(.mib_per_server_cpu_s).med; $wc)) | \(if .[0].streaming then ratio($sv | stats(.mib_per_s).med; $whole[$s]) else "-" end) | \($m | med | fmt) (\($m | max | fmt)) | \($sv | busy) | \($sv | length)/\(length) |" )
  end ),
  ( map(select(.mode == "idle")) | if length == 0 then empty else
    (.[0].conns) as $n |
    (map(select(.valid and .server == "wavecast-echo")) | map(.bytes_per_conn) | med) as $wm |
    "",
    "### Idle memory",
    "",
    "| server | idle memory per connection at \($n) conns, median (min–max) | vs wavecast-tokio | valid runs |",
    "|---|---|---|---|",
    (group_by(.server) | sort_by(.[0].server | rank) | .[] |
      .[0].server as $s | map(select(.valid) | .bytes_per_conn) as $b |
      "| \($s) | \($b | med | round) B (\($b | min | round)–\($b | max | round)) | \(ratio($b | med; $wm)) | \($b | length)/\(length) |")
  end ),
  ( map(select(.valid | not)) | if length == 0 then empty else
    "", "Invalid runs:", (.[] | "- round \(.round) \(.mode) \(.server): \(.error)") end )
' "$1"
}

if [[ -n $REPORT ]]; then table "$REPORT"; exit 0; fi

# BENCH_SERVERS (space-separated binary names) replaces the list, e.g. to
# compare builds of two revisions side by side.
DEFAULT_SERVERS="wavecast-echo wavecast-smol-echo wavecast-async-std-echo fastwebsockets-echo tokio-websockets-echo tungstenite-echo"
[[ -n ${UWS_ECHO:-} ]] && DEFAULT_SERVERS+=" uws-echo"
read -r -a SERVERS <<< "${BENCH_SERVERS:-$DEFAULT_SERVERS}"
# Single-threaded executors for the async-io adapters (tokio servers use a
# current-thread runtime in code).
export SMOL_THREADS=1 ASYNC_STD_THREAD_COUNT=1
# conns size: the echo workloads the peers publish (binary messages).
WORKLOADS=("100 20")
if [[ $ECHO_ONLY_SMALL == 0 ]]; then
  WORKLOADS+=("10 1024" "10 16384" "1 1048576")
fi

# wavecast's echo rows run the examples/echo program of the main workspace,
# built with the same release profile as this workspace's peers.
# An absolute path: the build below runs from the workspace root.
ROOT_TARGET=$(realpath -m "${ROOT_TARGET_DIR:-../../target}")
if [[ $BUILD == 1 ]]; then
  cargo build --release --quiet
  (cd ../.. && CARGO_TARGET_DIR=$ROOT_TARGET CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 \
    CARGO_PROFILE_RELEASE_DEBUG=line-tables-only cargo build --release --quiet -p wavecast-examples --bin echo)
fi
BIN=${CARGO_TARGET_DIR:-target}/release
ECHO_BIN=$ROOT_TARGET/release/echo
[[ $ECHO == 0 || -x $ECHO_BIN ]] || { echo "run.sh: $ECHO_BIN is missing (run without --no-build)" >&2; exit 1; }
OUT=results/$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
RAW=$OUT/results.jsonl
: > "$RAW"
PORT=$((20000 + RANDOM % 10000))
FAILED=0

echo "# $(date -u) $(nproc) CPUs; $(uname -sr)" | tee "$OUT/load.txt"
echo "# wavecast tree: $(git -C ../.. rev-parse --short HEAD 2>/dev/null || echo '?')" \
  "($(git -C ../.. status --porcelain -- core runtime runtime-tokio runtime-smol runtime-async-std examples/src 2>/dev/null | wc -l) uncommitted files in core/ runtime*/ examples/src/)" | tee -a "$OUT/load.txt"
echo "start: $(uptime)" | tee -a "$OUT/load.txt"

SERVER_PID=
start_server() { # name [server args] -> sets SERVER_PID, ADDR
  PORT=$((PORT + 1))
  ADDR=127.0.0.1:$PORT
  taskset -c 0 "$BIN/$1" --addr "$ADDR" "${@:2}" &
  SERVER_PID=$!
}
start_echo_server() { # name -> the program a user runs for the echo workloads
  PORT=$((PORT + 1))
  ADDR=127.0.0.1:$PORT
  case $1 in
    wavecast-echo) taskset -c 0 "$ECHO_BIN" --runtime tokio --addr "$ADDR" >/dev/null & ;;
    wavecast-smol-echo) taskset -c 0 "$ECHO_BIN" --runtime smol --addr "$ADDR" >/dev/null & ;;
    wavecast-async-std-echo) taskset -c 0 "$ECHO_BIN" --runtime async-std --addr "$ADDR" >/dev/null & ;;
    uws-echo) ADDR=127.0.0.1:9001; (cd "$(dirname "$UWS_ECHO")" && exec taskset -c 0 "$UWS_ECHO" >/dev/null) & ;;
    *) taskset -c 0 "$BIN/$1" --addr "$ADDR" & ;;
  esac
  SERVER_PID=$!
}
stop_server() {
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
}
trap '[[ -n $SERVER_PID ]] && kill $SERVER_PID 2>/dev/null' EXIT

loadgen() { # round, extra args...
  client "$1" loadgen "${@:2}"
}
client() { # round, client binary, extra args...
  local round=$1 bin=$2; shift 2
  local line
  if line=$(timeout 300 taskset -c 1 "$BIN/$bin" --addr "$ADDR" --pid "$SERVER_PID" "$@"); then :; else
    FAILED=1
    echo "round $round: $bin failed: $line" >&2
  fi
  [[ -n $line ]] && echo "$line" | jq -c --argjson r "$round" --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" \
    '. + {round: $r, load: $load}' | tee -a "$RAW"
}

for ((r = 1; r <= ROUNDS; r++)); do
  echo "round $r: $(uptime)" | tee -a "$OUT/load.txt"
  for ((i = 0; i < ${#SERVERS[@]}; i++)); do
    s=${SERVERS[$(((i + r - 1) % ${#SERVERS[@]}))]}
    if [[ $ECHO == 1 ]]; then
      start_echo_server "$s"
      for w in "${WORKLOADS[@]}"; do
        read -r conns size <<< "$w"
        if [[ $INFLIGHT == 1 ]]; then
          client "$r" pingpong --server "$s" --conns "$conns" --size "$size" \
            --warmup "$WARMUP" --duration "$DURATION"
        else
          loadgen "$r" --server "$s" --conns "$conns" --size "$size" --binary \
            --inflight "$INFLIGHT" --warmup "$WARMUP" --duration "$DURATION"
        fi
      done
      stop_server
    fi
    # uWebSockets takes part in the echo workloads only.
    [[ $s == uws-echo ]] && continue
    # Large messages, each on a fresh server so its peak RSS (VmHWM) starts
    # at the baseline: whole messages on every server, then (wavecast only,
    # started with --stream) one message streamed for the whole run.
    if [[ $LARGE == 1 ]]; then
      start_server "$s"
      loadgen "$r" --server "$s" --large --conns 1 --size "$LARGE_SIZE" --binary --inflight 1 \
        --warmup "$WARMUP" --duration "$DURATION"
      stop_server
      if [[ $s == wavecast-* ]]; then
        start_server "$s" --stream
        loadgen "$r" --server "$s" --large --stream --warmup "$WARMUP" --duration "$DURATION"
        stop_server
      fi
    fi
    if [[ $HANDSHAKES == 1 ]]; then
      start_server "$s"
      loadgen "$r" --server "$s" --handshakes "$HS_WORKERS" --warmup "$WARMUP" \
        --duration "$HS_DURATION"
      stop_server
    fi
    if [[ $IDLE == 1 ]]; then
      start_server "$s"   # a fresh process, so the RSS baseline is clean
      loadgen "$r" --server "$s" --idle "$IDLE_CONNS" --idle-wait "$IDLE_WAIT"
      stop_server
    fi
    # Broadcast: wavecast servers use a room; fastwebsockets and tungstenite
    # have none, so theirs is a naive tokio::sync::broadcast fan-out. Per
    # subscriber count: as fast as the room drains, then at a fixed publish
    # rate ($BCAST_DELIVERIES deliveries/s in all) for latency; a fresh
    # server each time.
    # tokio-websockets has no broadcast written for it here.
    if [[ $BROADCAST == 1 && $s != tokio-websockets-echo ]]; then
      for size in $BCAST_SIZES; do
        for n in $SUBS; do
          rates="$(awk -v d="$BCAST_DELIVERIES" -v n="$n" 'BEGIN { print d / n }')"
          [[ $BCAST_DRAIN == 1 ]] && rates="0 $rates"
          for rate in $rates; do
            start_server "$s" --broadcast
            loadgen "$r" --server "$s" --broadcast "$n" --rate "$rate" --size "$size" \
              --warmup "$WARMUP" --duration "$BDURATION"
            stop_server
          done
        done
      done
    fi
  done
done
echo "end: $(uptime)" | tee -a "$OUT/load.txt"

table "$RAW" | tee "$OUT/table.md"
echo
echo "raw results: $RAW; load: $OUT/load.txt"
exit $FAILED
