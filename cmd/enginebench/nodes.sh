#!/usr/bin/env bash
# nodes.sh MODE [ROUNDS]: the "Several nodes" runs of docs/benchmarks.md.
# MODE: embedded (one engine, Pebble), pg1 (one engine on PostgreSQL) or
# pg3 (three engines in a cluster on one PostgreSQL schema). Each round runs
# enginebench commands, then fanout, with the engines' CPU; the JSON results
# go to $OUT (default /tmp/bench/MODE). PostgreSQL: $ENGINE_TEST_POSTGRES
# (default postgres://postgres@127.0.0.1:5432/test?sslmode=disable); the
# schema is made for the run and dropped after it.
set -euo pipefail
MODE=${1:?embedded, pg1 or pg3}; ROUNDS=${2:-3}
PG=${ENGINE_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
OUT=${OUT:-/tmp/bench/$MODE}; rm -rf "$OUT"; mkdir -p "$OUT"
cd "$(dirname "$0")/../.."
go build -o "$OUT/engine" ./cmd/engine
go build -o "$OUT/enginebench" ./cmd/enginebench
SCHEMA=bench_${MODE}_$$
STORE="$PG&schema=$SCHEMA"
pids=(); targets=()
start() { # node-number extra-flags…
  local i=$1; shift
  "$OUT/engine" -addr 127.0.0.1:1808"$i" -data "$OUT/d$i" -max-connections-per-ip 5000 \
    -max-connections 20000 -log-format json "$@" > "$OUT/node$i.log" 2>&1 &
  pids+=($!); targets+=(http://127.0.0.1:1808"$i")
}
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true; wait || true
  [ "$MODE" = embedded ] || PGOPTIONS=--client-min-messages=warning psql "$PG" -qc "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" >/dev/null
}
trap cleanup EXIT
case $MODE in
embedded) start 1 ;;
pg1) start 1 -store "$STORE" ;;
pg3)
  P=127.0.0.1:17100,127.0.0.1:17200,127.0.0.1:17300
  for i in 1 2 3; do start "$i" -store "$STORE" -cluster-bind 127.0.0.1:17${i}00 -cluster-peers $P; done ;;
*) echo "unknown mode $MODE" >&2; exit 2 ;;
esac
T=$(IFS=,; echo "${targets[*]}"); C=$(IFS=,; echo "${pids[*]}")
for t in "${targets[@]}"; do
  for _ in $(seq 1 300); do curl -sf "$t/readyz" >/dev/null && break; sleep 0.1; done
done
for r in $(seq 1 "$ROUNDS"); do
  echo "round $r: load average $(cut -d' ' -f1-3 /proc/loadavg)"
  "$OUT/enginebench" commands -targets "$T" -cpu-pid "$C" -json "$OUT/commands$r.json" | grep -E 'acks/s|latency'
  "$OUT/enginebench" fanout -targets "$T" -cpu-pid "$C" -json "$OUT/fanout$r.json" | grep -E 'deliveries/s|latency|lost'
done
