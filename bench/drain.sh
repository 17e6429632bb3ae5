#!/usr/bin/env bash
# Drain time of big transactions and the relay's peak memory for big events.
#
#   bash bench/drain.sh [txn|mem|chunks|all]
#
#   txn  drain time of N events (BENCH_DRAIN_N, 1000000) written in ONE
#        transaction, then the same N in BENCH_DRAIN_TXNS (100) transactions:
#        the relay is paused while they are written, then timed from resume
#        until outbox_status() shows nothing pending.
#   mem  BENCH_MEM_N (2500) events of BENCH_MEM_KB (900) kB each, published by
#        an unprivileged role; reports the time to drain and the relay's peak
#        RSS (VmHWM from /proc/PID/status, the worker starts fresh first).
#   chunks  where a backlog drain's time goes: BENCH_CHUNK_N_200 (1000000)
#        events of 200 B and BENCH_CHUNK_N_2K (200000) of 2 KB, written in
#        100-event transactions while paused (as bench/run.sh section 3), are
#        drained with log_min_messages = debug2; the relay's per-chunk lines
#        (read, send and acknowledgements, decide and commit) are summed, with
#        what overlapping the next chunk's read with the acknowledgements could
#        save at most (bench/chunk_times.py).
#
# Uses the pg_config first on PATH (e.g. after
# eval "$(scripts/private-pg.sh DIR)"): it installs the extension built from
# this checkout, starts its own Kafka (BENCH_KAFKA_PORT, 39192) and
# PostgreSQL (BENCH_PG_PORT, 54369) in a temp directory and removes them at
# the end. Nothing asserts on timings; it prints one line per measurement.
set -Eeuo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
MODE=${1:-all}
N=${BENCH_DRAIN_N:-1000000}
TXNS=${BENCH_DRAIN_TXNS:-100}
MEM_N=${BENCH_MEM_N:-2500}
MEM_KB=${BENCH_MEM_KB:-900}
CHUNK_N_200=${BENCH_CHUNK_N_200:-1000000}
CHUNK_N_2K=${BENCH_CHUNK_N_2K:-200000}

log() { printf '%s [drain] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [ -z "${BENCH_NO_BUILD:-}" ]; then
  make -s >/dev/null && make -s install >/dev/null
fi
PGBIN=$(pg_config --bindir)
export KAFKA_PORT=${BENCH_KAFKA_PORT:-39192}
export PGPORT_EDU=${BENCH_PG_PORT:-54369}
export OUTBOX_DB=bench
WORK=$(mktemp -d /tmp/edu_outbox_drain.XXXXXX)
chmod 755 "$WORK"
export KAFKA_HOME_DIR=$WORK/kafka
export PGDIR_EDU=$WORK/pg
export PG_EXTRA_CONF="max_wal_size = '4GB'
checkpoint_timeout = '30min'"
# chunks: the buffers of bench/run.sh, whose section 3 it explains
[ "$MODE" = chunks ] && PG_EXTRA_CONF="$PG_EXTRA_CONF
shared_buffers = '512MB'"
cleanup() {
  scripts/pg.sh destroy >/dev/null 2>&1 || true
  scripts/kafka.sh stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
scripts/kafka.sh start >/dev/null
scripts/pg.sh start >/dev/null

q() { "$PGBIN/psql" -h "$PGDIR_EDU" -p "$PGPORT_EDU" -U postgres -d bench -v ON_ERROR_STOP=1 -Atqc "$1"; }
q "CREATE EXTENSION IF NOT EXISTS edu_outbox"
relay_pid() { q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'edu_outbox relay'"; }
for _ in $(seq 1 100); do [ -n "$(relay_pid)" ] && break; sleep 0.2; done
now() { date +%s.%N; }
pending() { q "SELECT pending_events FROM outbox_status()"; }
wait_drained() {
  while [ "$(pending)" != 0 ]; do sleep 0.05; done
}
main_cpu() {    # the same, its main thread only (without librdkafka's threads)
  awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/task/$1/stat"
}
relay_cpu() {   # user+system seconds of the relay process
  awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$(relay_pid)/stat"
}

# drain <label> <events> <transactions>
drain() {
  local label=$1 n=$2 t=$3 per t0 t1 c0 c1
  per=$((n / t))
  q "SELECT outbox_pause()" >/dev/null
  for i in $(seq 1 "$t"); do
    q "SELECT count(outbox_publish('bench-drain-$label', jsonb_build_object('n', g), 'k' || (g % 1000)))
       FROM generate_series(1, $per) g" >/dev/null
  done
  q "VACUUM ANALYZE edu_outbox.outbox"
  c0=$(relay_cpu); t0=$(now)
  q "SELECT outbox_resume()" >/dev/null
  wait_drained
  t1=$(now); c1=$(relay_cpu)
  printf 'drain %s: %d events in %d transaction(s): %.1f s (relay CPU %.1f s)\n' \
    "$label" "$n" "$t" "$(echo "$t1 - $t0" | bc)" "$(echo "$c1 - $c0" | bc)"
  q "TRUNCATE edu_outbox.outbox" 2>/dev/null || q "SELECT 1" >/dev/null
}

mem() {
  local pid t0 t1 hwm
  # a fresh worker, so VmHWM covers only this run
  kill "$(relay_pid)"
  sleep 6
  for _ in $(seq 1 100); do [ -n "$(relay_pid)" ] && break; sleep 0.2; done
  pid=$(relay_pid)
  q "DROP ROLE IF EXISTS bench_app; CREATE ROLE bench_app LOGIN"
  q "SELECT outbox_pause()" >/dev/null
  "$PGBIN/psql" -h "$PGDIR_EDU" -p "$PGPORT_EDU" -U bench_app -d bench -v ON_ERROR_STOP=1 -Atqc \
    "SELECT count(outbox_publish('bench-mem', jsonb_build_object('i', g, 'pad', repeat('x', $MEM_KB * 1000)))) FROM generate_series(1, $MEM_N) g" >/dev/null
  t0=$(now)
  q "SELECT outbox_resume()" >/dev/null
  wait_drained
  t1=$(now)
  hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  printf 'mem: %d events of %d kB: drained in %.1f s, relay VmHWM %d MB (chunk_max_bytes %s, shared_buffers %s)\n' \
    "$MEM_N" "$MEM_KB" "$(echo "$t1 - $t0" | bc)" $((hwm / 1024)) \
    "$(q "SELECT current_setting('edu_outbox.chunk_max_bytes', true)")" "$(q "SHOW shared_buffers")"
}

# chunk_times SIZE N: drain N events of SIZE bytes with the relay's DEBUG2 chunk lines
chunk_times() {
  local size=$1 n=$2 topic=bench-chunks-$1-$2 pad mark t0 t1 c0 c1 m0 m1 pid
  pad=$(/usr/bin/python3 -c "import random; r = random.Random($size); print(''.join(r.choice('0123456789abcdef') for _ in range($size - 19)))")
  q "SELECT outbox_publish('$topic', '{}'::jsonb, 'k0')" >/dev/null   # the producer learns the topic first
  wait_drained
  q "SELECT outbox_pause()" >/dev/null
  echo "SELECT count(outbox_publish(:topic, :payload::jsonb, 'k' || (random() * 999)::int)) FROM generate_series(1, 100);" >"$WORK/backlog.sql"
  "$PGBIN/pgbench" -h "$PGDIR_EDU" -p "$PGPORT_EDU" -U postgres -n -M prepared -c 2 -j 2 -t $((n / 200)) \
    -f "$WORK/backlog.sql" -D "topic=$topic" -D "payload={\"n\": 0, \"pad\": \"$pad\"}" bench >/dev/null
  q "VACUUM ANALYZE edu_outbox.outbox"
  q "CHECKPOINT"
  q "ALTER SYSTEM SET log_min_messages = debug2" && q "SELECT pg_reload_conf()" >/dev/null
  sleep 1
  mark=$(wc -l <"$PGDIR_EDU/server.log")
  pid=$(relay_pid)
  c0=$(relay_cpu); m0=$(main_cpu "$pid"); t0=$(now)
  q "SELECT outbox_resume()" >/dev/null
  wait_drained
  t1=$(now); c1=$(relay_cpu); m1=$(main_cpu "$pid")
  q "ALTER SYSTEM RESET log_min_messages" && q "SELECT pg_reload_conf()" >/dev/null
  tail -n +"$((mark + 1))" "$PGDIR_EDU/server.log" | grep 'relay chunk of' |
    /usr/bin/python3 "$ROOT/bench/chunk_times.py" "$size" "$(echo "$t1 - $t0" | bc)" "$(echo "$c1 - $c0" | bc)" \
      "$(echo "$m1 - $m0" | bc)"
}

case $MODE in
  txn) drain one "$N" 1; drain many "$N" "$TXNS" ;;
  mem) mem ;;
  chunks)
    # a first drain warms the broker's JIT and the relay's producer, as bench/run.sh's warm-up does
    chunk_times 200 100000 >/dev/null
    chunk_times 200 "$CHUNK_N_200"; chunk_times 2048 "$CHUNK_N_2K" ;;
  all) mem; drain one "$N" 1; drain many "$N" "$TXNS" ;;
  *) echo "usage: $0 [txn|mem|chunks|all]" >&2; exit 2 ;;
esac
