#!/usr/bin/env bash
# edu_outbox benchmark. One command; see bench/README.md.
#
#   bash bench/run.sh              the default run (~10-15 min): write cost, capture
#                                  trigger cost, relay throughput vs a raw producer,
#                                  end-to-end latency, a short sustained-load run;
#                                  writes bench/results/REPORT.md and PNG plots
#   BENCH_QUICK=1 bash bench/run.sh   the same, small and short (~3 min smoke check)
#   bash bench/run.sh sustained    the long sustained-load run only (default 30 min);
#                                  writes bench/results/SUSTAINED.md and a plot
#   bash bench/run.sh durability   what durable-before-sent costs (issue 11): latency
#                                  at 1k events/s with and without the WAL flush and
#                                  with wait_for_standbys = on against a local standby;
#                                  writes bench/results/DURABILITY.md (~3 min)
#   bash bench/run.sh write        only the write path (issue 13, goal 5): publish vs a
#                                  plain INSERT vs Debezium's INSERT + DELETE, capture
#                                  trigger vs none; BENCH_WRITE_BASELINE_REF=REF adds
#                                  that commit's edu_outbox.so side by side; writes
#                                  bench/results/WRITE.md (~8 min, ~12 with a baseline)
#   bash bench/run.sh cycle        the relay's per-cycle cost (issue 13): latency and CPU
#                                  per event at 1k events/s, the baseline relay
#                                  (BENCH_BASELINE_REF) against this one with
#                                  edu_outbox.coalesce_window = BENCH_CYCLE_WINDOWS (ms,
#                                  or ms/librdkafka-properties, e.g. "2/linger.ms=0"),
#                                  interleaved; writes bench/results/CYCLE.md
#   bash bench/run.sh eos          what exactly-once delivery costs (issue 12): drain of a
#                                  1M-event backlog until a read_committed reader sees it all,
#                                  and latency at 1k events/s, at_least_once against
#                                  exactly_once in interleaved rounds; writes
#                                  bench/results/EXACTLY_ONCE.md (~15 min)
#   BENCH_PEERS=debezium bash bench/run.sh [debezium]
#                                  adds Debezium (Kafka Connect + PostgreSQL connector +
#                                  Outbox Event Router, bench/debezium.sh) side by side;
#                                  mode "debezium" runs only that comparison and writes
#                                  bench/results/DEBEZIUM.md and a plot
#
# It installs what it needs (scripts/install-deps.sh, gnuplot-nox), builds and
# installs the extension, starts its OWN Kafka broker (127.0.0.1:39092) and
# PostgreSQL cluster (port 54359, database "bench") in a temp directory, and
# stops them at the end. Nothing here asserts on timings: the report says for
# each target whether this run met it.
set -Eeuo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$ROOT/bench
cd "$ROOT"

MODE=${1:-all}
case $MODE in all|sustained|durability|debezium|write|cycle|eos) ;; *) echo "usage: $0 [all|sustained|durability|debezium|write|cycle|eos]" >&2; exit 2 ;; esac
PEERS=${BENCH_PEERS:-}
[ "$MODE" = debezium ] && PEERS="$PEERS debezium"
has_peer() { case " $PEERS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

log() { printf '%s [bench] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
trap 'log "failed at line $LINENO: $BASH_COMMAND"' ERR

# ---------------------------------------------------------------- parameters
QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then
  d_write_secs=5; d_rounds=1; d_n200=50000; d_n2k=10000; d_tput_rounds=1
  d_lat_secs=5; d_short_secs=30; d_sample=5; d_eos_rounds=1
else
  d_write_secs=10; d_rounds=3; d_n200=1000000; d_n2k=200000; d_tput_rounds=2
  d_lat_secs=20; d_short_secs=120; d_sample=10; d_eos_rounds=3
fi
WRITE_SECS=${BENCH_WRITE_SECONDS:-$d_write_secs}     # pgbench -T per run
ROUNDS=${BENCH_ROUNDS:-$d_rounds}                    # A,B rounds for write/capture cost
CLIENTS=${BENCH_CLIENTS:-4}                          # pgbench -c
THREADS=${BENCH_THREADS:-2}                          # pgbench -j
N200=${BENCH_N_200:-$d_n200}                         # relay backlog, 200-byte events
N2K=${BENCH_N_2K:-$d_n2k}                            # relay backlog, 2 KB events
TPUT_ROUNDS=${BENCH_TPUT_ROUNDS:-$d_tput_rounds}     # relay/raw rounds per size
BACKLOG_TXN=${BENCH_BACKLOG_TXN_EVENTS:-100}         # events per backlog transaction
LAT_SECS=${BENCH_LAT_SECONDS:-$d_lat_secs}           # per latency rate
LAT_RATES=${BENCH_LAT_RATES:-"100 1000 5000"}
LAT_WARMUP=${BENCH_LAT_WARMUP:-2}
SHORT_SECS=${BENCH_SHORT_SUSTAINED_SECONDS:-$d_short_secs}
SHORT_RATE=${BENCH_SHORT_SUSTAINED_RATE:-2000}
SUST_SECS=${BENCH_SUSTAINED_SECONDS:-1800}
SUST_RATE=${BENCH_SUSTAINED_RATE:-2000}
SAMPLE=${BENCH_SAMPLE_SECONDS:-$d_sample}
SIZES=${BENCH_SIZES:-"200 2048"}
PARTITIONS=${BENCH_PARTITIONS:-3}
PAUSE_METHOD=${BENCH_PAUSE_METHOD:-auto}             # auto | sql | sigstop

export KAFKA_PORT=${BENCH_KAFKA_PORT:-39092}
export PGPORT_EDU=${BENCH_PG_PORT:-54359}
STANDBY_PORT=${BENCH_STANDBY_PORT:-$((PGPORT_EDU + 1))}
DUR_RATE=${BENCH_DURABILITY_RATE:-1000}
DUR_ROUNDS=${BENCH_DURABILITY_ROUNDS:-3}
CYCLE_ROUNDS=${BENCH_CYCLE_ROUNDS:-2}
CYCLE_WINDOWS=${BENCH_CYCLE_WINDOWS:-"0 1 2 5"}
CYCLE_BUSY=${BENCH_CYCLE_BUSY:-0}                    # 1: a pgbench client on another table meanwhile
EOS_N=${BENCH_EOS_BACKLOG:-$d_n200}                  # backlog drained per delivery mode (200-byte events)
EOS_ROUNDS=${BENCH_EOS_ROUNDS:-$d_eos_rounds}
EOS_RATE=${BENCH_EOS_RATE:-1000}                     # events/s of the latency runs
EOS_CHUNKS=${BENCH_EOS_CHUNKS:-"10000 1000"}         # edu_outbox.chunk_max_events of the drains; the first also for latency
export OUTBOX_DB=bench
BROKER=127.0.0.1:$KAFKA_PORT
OUT=${BENCH_OUT:-$BENCH/results}
BUILD=$BENCH/build

# ---------------------------------------------------------------- install, build
log "installing dependencies (scripts/install-deps.sh, gnuplot-nox)"
bash scripts/install-deps.sh
if ! command -v gnuplot >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq gnuplot-nox >/dev/null
fi
PGBIN=$(pg_config --bindir)
if [ -n "${BENCH_PERF:-}" ] && ! command -v perf >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null
fi

log "building and installing the extension"
# PGXS here tracks no header dependencies, so a clean build avoids objects
# compiled against older headers.
make -s clean >/dev/null
make -s
make -s install
mkdir -p "$BUILD"
gcc -O2 -Wall -o "$BUILD/raw_producer" "$BENCH/raw_producer.c" -lrdkafka
gcc -O2 -Wall -o "$BUILD/kafka_util" "$BENCH/kafka_util.c" -lrdkafka
gcc -O2 -Wall -I"$(pg_config --includedir)" -o "$BUILD/publisher" "$BENCH/publisher.c" -lpq
[ "$MODE" = eos ] && gcc -O2 -Wall -o "$BUILD/txn_steps" "$BENCH/txn_steps.c" -lrdkafka
KU=$BUILD/kafka_util

# ---------------------------------------------------------------- services
for port in $KAFKA_PORT $((KAFKA_PORT + 1)) $PGPORT_EDU $STANDBY_PORT; do
  if ss -Hltn "sport = :$port" | grep -q .; then die "port $port is in use; is another benchmark running?"; fi
done
WORK=$(mktemp -d /tmp/edu_outbox_bench.XXXXXX)
chmod 755 "$WORK"
export KAFKA_HOME_DIR=$WORK/kafka
export PGDIR_EDU=$WORK/pg
export PG_EXTRA_CONF="shared_buffers = '512MB'
max_wal_size = '4GB'
checkpoint_timeout = '30min'"
if has_peer debezium; then
  . "$BENCH/debezium.sh"
  dbz_fetch
  PG_EXTRA_CONF="$PG_EXTRA_CONF
$DBZ_PG_CONF"
fi

cleanup() {
  local rc=$?
  trap - ERR
  [ -n "${CONS_PID:-}" ] && kill "$CONS_PID" 2>/dev/null
  [ -n "${VIS_PID:-}" ] && kill "$VIS_PID" 2>/dev/null
  [ -n "${SAMPLER_PID:-}" ] && kill "$SAMPLER_PID" 2>/dev/null
  [ -n "${RELAY_STOPPED:-}" ] && kill -CONT "$RELAY_STOPPED" 2>/dev/null
  PGDIR_EDU=$WORK/pg-standby PGPORT_EDU=$STANDBY_PORT scripts/pg.sh destroy >/dev/null 2>&1 || true
  [ -n "${BUSY_PID:-}" ] && kill -TERM "$BUSY_PID" 2>/dev/null
  has_peer debezium && { log "stopping Kafka Connect"; dbz_stop; }
  log "stopping PostgreSQL and Kafka"
  scripts/pg.sh destroy >/dev/null 2>&1 || true
  scripts/kafka.sh stop >/dev/null 2>&1 || true
  if [ -n "${BENCH_KEEP:-}" ]; then log "work dir kept: $WORK"; else rm -rf "$WORK"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "starting Kafka on $BROKER and PostgreSQL on port $PGPORT_EDU (work dir $WORK)"
scripts/kafka.sh start >/dev/null
scripts/pg.sh start >/dev/null

q() { "$PGBIN/psql" -h "$PGDIR_EDU" -p "$PGPORT_EDU" -U postgres -d bench -v ON_ERROR_STOP=1 -Atqc "$1"; }
pgb() { "$PGBIN/pgbench" -h "$PGDIR_EDU" -p "$PGPORT_EDU" -U postgres -n -M prepared "$@" bench; }
CONNINFO="host=$PGDIR_EDU port=$PGPORT_EDU user=postgres dbname=bench"

q "CREATE EXTENSION IF NOT EXISTS edu_outbox"
for _ in $(seq 1 50); do
  [ -n "$(q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'edu_outbox relay'")" ] && break
  sleep 0.2
done
relay_pid() { q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'edu_outbox relay'"; }
[ -n "$(relay_pid)" ] || die "the relay worker is not running (see $PGDIR_EDU/server.log)"

q "CREATE TABLE bench_orders (id bigserial PRIMARY KEY, customer int NOT NULL,
     amount numeric(12,2) NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
# the plain table has the outbox's data columns and nothing else
q "CREATE TABLE plain_events (topic text NOT NULL, key text, payload jsonb NOT NULL,
     headers jsonb, created_at timestamptz NOT NULL DEFAULT clock_timestamp())"
# Debezium's outbox table, for its write cost only (no connector reads it):
# each writer deletes its row again in the same transaction (bench/debezium.sh)
q "CREATE TABLE dbz_write (id bigserial PRIMARY KEY, aggregatetype text NOT NULL,
     aggregateid text NOT NULL, type text NOT NULL, payload jsonb)"
for t in cap_on cap_off; do
  q "CREATE TABLE $t (id bigserial PRIMARY KEY, customer int NOT NULL, amount numeric(12,2) NOT NULL,
       note text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
done
q "SELECT outbox_capture_table('cap_on', 'bench-capture')" >/dev/null
if has_peer debezium; then
  dbz_setup_db
  log "starting Kafka Connect (REST on $DBZ_REST_PORT) with the Debezium connector"
  dbz_start
fi

# ---------------------------------------------------------------- helpers
RUN_ID=$(date +%s)
DATA=$WORK/data
mkdir -p "$DATA"
RESULTS=$DATA/results.jsonl
: >"$RESULTS"
rec() { printf '%s\n' "$1" >>"$RESULTS"; }
loadavg() { cut -d' ' -f1 /proc/loadavg; }
now() { date +%s.%N; }
calc() { /usr/bin/python3 -c "print($1)"; }

# A payload whose normalized jsonb text is exactly SIZE bytes: {"n": 0, "pad": "<hex>"}
# (pseudo-random hex so that TOAST compression cannot shrink it).
payload_file() {
  local size=$1 f=$WORK/payload_$1.json
  if [ ! -f "$f" ]; then
    /usr/bin/python3 - "$size" >"$f" <<'PY'
import random, sys
size = int(sys.argv[1]); pre, post = '{"n": 0, "pad": "', '"}'
r = random.Random(size)
print(pre + ''.join(r.choice('0123456789abcdef') for _ in range(size - len(pre) - len(post))) + post, end='')
PY
    local got; got=$(q "SELECT length(\$\$$(cat "$f")\$\$::jsonb::text)")
    [ "$got" = "$size" ] || die "payload of size $size normalizes to $got bytes"
  fi
  echo "$f"
}

pending() {
  q "SELECT count(*) FROM edu_outbox.outbox
     WHERE NOT pg_visible_in_snapshot(xid, (SELECT delivered_snapshot FROM edu_outbox.relay_state))"
}
wait_drained() {   # until the relay has acknowledged everything (max $1 s)
  local limit=${1:-120} start; start=$(date +%s)
  while [ "$(pending)" != 0 ]; do
    [ $(( $(date +%s) - start )) -ge "$limit" ] && { log "warning: outbox not drained after ${limit}s"; return 1; }
    sleep 0.2
  done
}

has_pause_fn() { [ "$(q "SELECT to_regprocedure('outbox_pause()') IS NOT NULL AND to_regprocedure('outbox_resume()') IS NOT NULL")" = t ]; }
pause_method() {
  case $PAUSE_METHOD in
    sql) echo sql ;;
    sigstop) echo sigstop ;;
    *) if has_pause_fn; then echo sql; else echo sigstop; fi ;;
  esac
}
RELAY_STOPPED=
relay_pause() {
  if [ "$(pause_method)" = sql ]; then
    q "SELECT outbox_pause()" >/dev/null
    # wait until the worker says it is paused (outbox_status() comes with outbox_pause())
    if [ "$(q "SELECT to_regprocedure('outbox_status()') IS NOT NULL")" = t ]; then
      for _ in $(seq 1 100); do
        [ "$(q "SELECT worker_state FROM outbox_status()")" = paused ] && return 0
        sleep 0.1
      done
      log "warning: relay not reported paused after 10 s"
    else
      sleep 1
    fi
  else
    RELAY_STOPPED=$(relay_pid)
    kill -STOP "$RELAY_STOPPED"
  fi
}
relay_resume() {
  if [ -n "$RELAY_STOPPED" ]; then
    kill -CONT "$RELAY_STOPPED"
    RELAY_STOPPED=
  else
    q "SELECT outbox_resume()" >/dev/null
  fi
}
proc_cpu() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat" 2>/dev/null || echo 0; }
kafka_pid() { cat "$KAFKA_HOME_DIR/kafka.pid"; }
# TCP segments the relay sent to the broker (about one per produce request)
relay_segs() {
  ss -tinp "dport = :$KAFKA_PORT" 2>/dev/null | grep -A1 "pid=$1," | grep -o 'segs_out:[0-9]*' |
    cut -d: -f2 | awk '{s += $1} END {print s + 0}'
}
# CPU snapshot: relay CPU s, broker CPU s, machine busy and total jiffies, relay segments
cpu_snap() {
  local rpid; rpid=$(relay_pid)
  echo "$(proc_cpu "$rpid") $(proc_cpu "$(kafka_pid)") $(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat) $(relay_segs "$rpid")"
}
# CPU seconds of the whole PostgreSQL cluster: the postmaster with the backends it
# reaped (cutime, cstime) and its live children (relay, walwriter, open backends)
pg_cpu() {
  local pm; pm=$(head -1 "$PGDIR_EDU/data/postmaster.pid")
  # cat, not awk's own file list: a process may end between the glob and the read
  { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v pm="$pm" '{
      pid = $1; line = $0; sub(/^.*\) /, "", line); split(line, f, " ")
      if (pid == pm) t += f[12] + f[13] + f[14] + f[15]
      else if (f[2] == pm) t += f[12] + f[13]
    } END { printf "%.2f", t / 100 }'
}
# JSON fields for the CPU use between two snapshots and N events
cpu_json() {
  awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN {
    split(a, x, " "); split(b, y, " "); if (n < 1) n = 1; t = y[4] - x[4]; if (t < 1) t = 1
    printf "\"relay_cpu_s\": %.2f, \"broker_cpu_s\": %.2f, \"machine_busy_pct\": %.1f, ", y[1] - x[1], y[2] - x[2], 100 * (y[3] - x[3]) / t
    printf "\"relay_cpu_us_per_event\": %.1f, \"broker_cpu_us_per_event\": %.1f, \"relay_segments\": %d", (y[1] - x[1]) / n * 1e6, (y[2] - x[2]) / n * 1e6, y[5] - x[5]
  }'
}

# pgbench scripts (prepared statements; :payload / :note come from -D)
cat >"$WORK/publish.sql" <<'SQL'
\set c random(1, 100000)
\set k :c % 1000
BEGIN;
INSERT INTO bench_orders (customer, amount) VALUES (:c, 10.5);
SELECT outbox_publish('bench-write', :payload::jsonb, 'k' || :k);
COMMIT;
SQL
cat >"$WORK/plain.sql" <<'SQL'
\set c random(1, 100000)
\set k :c % 1000
BEGIN;
INSERT INTO bench_orders (customer, amount) VALUES (:c, 10.5);
INSERT INTO plain_events (topic, key, payload) VALUES ('bench-write', 'k' || :k, :payload::jsonb);
COMMIT;
SQL
cat >"$WORK/dbz_write.sql" <<'SQL'
\set c random(1, 100000)
\set k :c % 1000
BEGIN;
INSERT INTO bench_orders (customer, amount) VALUES (:c, 10.5);
INSERT INTO dbz_write (aggregatetype, aggregateid, type, payload) VALUES ('bench-write', 'k' || :k, 'bench', :payload::jsonb);
DELETE FROM dbz_write WHERE id = (SELECT currval('dbz_write_id_seq'));
COMMIT;
SQL
cat >"$WORK/cap_on.sql" <<'SQL'
\set c random(1, 100000)
INSERT INTO cap_on (customer, amount, note) VALUES (:c, 10.5, :note);
SQL
sed 's/cap_on/cap_off/' "$WORK/cap_on.sql" >"$WORK/cap_off.sql"
cat >"$WORK/backlog.sql" <<'SQL'
SELECT count(outbox_publish(:topic, :payload::jsonb, 'k' || (random() * 999)::int)) FROM generate_series(1, :per_txn);
SQL

# Runs pgbench for WRITE_SECS; prints "tps latency_ms".
pgbench_run() {
  local script=$1; shift
  local outf=$WORK/pgbench.out
  pgb -c "$CLIENTS" -j "$THREADS" -T "$WRITE_SECS" -f "$script" "$@" >"$outf" 2>&1 ||
    { cat "$outf" >&2; die "pgbench failed"; }
  local tps lat n
  tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$outf")
  lat=$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' "$outf")
  n=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$outf")
  echo "$tps $lat $n"
}

# ---------------------------------------------------------------- environment
record_environment() {
  q "SELECT version()" >"$DATA/postgres_version.txt"
  q "SELECT name, setting || coalesce(' ' || unit, '') FROM pg_settings
     WHERE name IN ('shared_buffers', 'max_wal_size', 'checkpoint_timeout', 'synchronous_commit', 'fsync',
                    'wal_level', 'track_commit_timestamp', 'shared_preload_libraries', 'autovacuum',
                    'max_connections', 'work_mem', 'jit')
        OR name LIKE 'edu_outbox.%' ORDER BY name" >"$DATA/pg_settings.txt"
  grep -v '^#' "$KAFKA_HOME_DIR/server.properties" >"$DATA/kafka_server.properties"
  {
    echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "mode=$MODE"
    echo "quick=$QUICK"
    echo "nproc=$(nproc)"
    echo "cpu_model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "kernel=$(uname -r)"
    echo "os=$(. /etc/os-release; echo "$PRETTY_NAME")"
    echo "librdkafka=$(dpkg-query -W -f='${Version}' librdkafka1 2>/dev/null || echo '?')"
    echo "kafka=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' scripts/kafka/pom.xml)"
    has_peer debezium && echo "debezium=Debezium $DBZ_VERSION PostgreSQL connector + Outbox Event Router in Kafka Connect standalone $DBZ_KAFKA_VERSION (bench/debezium/pom.xml)"
    echo "kafka_jvm=-Xms256m -Xmx512m -XX:+UseG1GC (scripts/kafka.sh)"
    echo "java=$(java -version 2>&1 | head -1)"
    echo "gnuplot=$(gnuplot --version)"
    echo "git=$(git log -1 --format='%h %s')"
    echo "git_modified=$(git status --porcelain --untracked-files=no | grep -vc ' bench/' || true)"
    echo "loadavg_start=$(cat /proc/loadavg)"
    echo "pause_method=$(pause_method)"
    echo "pgbench=-M prepared -c $CLIENTS -j $THREADS -T $WRITE_SECS"
    echo "rounds=$ROUNDS"
    echo "sizes=$SIZES"
    echo "n_200=$N200"
    echo "n_2k=$N2K"
    echo "tput_rounds=$TPUT_ROUNDS"
    echo "backlog_txn_events=$BACKLOG_TXN"
    echo "partitions=$PARTITIONS"
    echo "lat_seconds=$LAT_SECS"
    echo "lat_rates=$LAT_RATES"
    echo "lat_warmup=$LAT_WARMUP"
    echo "short_sustained_seconds=$SHORT_SECS"
    echo "short_sustained_rate=$SHORT_RATE"
    echo "sustained_seconds=$SUST_SECS"
    echo "sustained_rate=$SUST_RATE"
    echo "sample_seconds=$SAMPLE"
  } >"$DATA/env.txt"
  free -h >"$DATA/free.txt"
}

# ---------------------------------------------------------------- warm-up
warm_up() {
  log "warm-up: broker JIT, relay producer, PostgreSQL caches"
  local p200; p200=$(payload_file 200)
  "$KU" create "$BROKER" bench-warmup-raw "$PARTITIONS"
  "$BUILD/raw_producer" -b "$BROKER" -t bench-warmup-raw -n 300000 -f "$p200" >/dev/null 2>&1
  "$KU" create "$BROKER" bench-warmup-relay "$PARTITIONS"
  pgb -c 2 -j 2 -t 200 -f "$WORK/backlog.sql" -D topic=bench-warmup-relay -D per_txn=100 \
      -D "payload=$(cat "$p200")" >/dev/null
  wait_drained 120 || true
  pgb -c "$CLIENTS" -j "$THREADS" -T 3 -f "$WORK/publish.sql" -D "payload=$(cat "$p200")" >/dev/null
  pgb -c "$CLIENTS" -j "$THREADS" -T 3 -f "$WORK/plain.sql" -D "payload=$(cat "$p200")" >/dev/null
  wait_drained 120 || true
}

# ---------------------------------------------------------------- 1. write cost
# Issue 13, goal 5. With BENCH_WRITE_BASELINE_REF the rounds also run that
# commit's edu_outbox.so (only the library is swapped, with a restart: its SQL
# must be the current one's), so that before and after share one run.
WRITE_BASE_REF=${BENCH_WRITE_BASELINE_REF:-}
CUR_BUILD=current
prepare_write_builds() {
  [ -n "$WRITE_BASE_REF" ] || return 0
  log "building the write baseline $(git log -1 --format=%h "$WRITE_BASE_REF")"
  mkdir -p "$WORK/write-baseline"
  git archive "$WRITE_BASE_REF" | tar -x -C "$WORK/write-baseline"
  make -s -C "$WORK/write-baseline" >/dev/null 2>&1 || die "the baseline $WRITE_BASE_REF does not build"
  cp "$(pg_config --pkglibdir)/edu_outbox.so" "$WORK/edu_outbox.current.so"
  echo "write_baseline=$(git log -1 --format='%h %s' "$WRITE_BASE_REF")" >>"$DATA/env.txt"
}
use_build() {   # current | baseline: install that edu_outbox.so, restart, warm up
  [ -n "$WRITE_BASE_REF" ] && [ "$CUR_BUILD" != "$1" ] || return 0
  if [ "$1" = baseline ]; then
    cp "$WORK/write-baseline/edu_outbox.so" "$(pg_config --pkglibdir)/edu_outbox.so"
  else
    cp "$WORK/edu_outbox.current.so" "$(pg_config --pkglibdir)/edu_outbox.so"
  fi
  scripts/pg.sh restart >/dev/null
  for _ in $(seq 1 50); do [ -n "$(relay_pid)" ] && break; sleep 0.2; done
  [ -n "$(relay_pid)" ] || die "the relay did not come back after the restart"
  CUR_BUILD=$1
  pgb -c "$CLIENTS" -j "$THREADS" -T 2 -f "$WORK/publish.sql" -D "payload=$(cat "$(payload_file 200)")" >/dev/null
  pgb -c "$CLIENTS" -j "$THREADS" -T 1 -f "$WORK/cap_on.sql" -D "note=warm-up" >/dev/null
  wait_drained 120 || true
}

# write_variant PHASE SIZE ROUND VARIANT SCRIPT PGBENCH_ARGS...: one recorded pgbench
# run; a VARIANT ending in _paused runs with the relay paused. WRITE_EXTRA: more JSON.
WRITE_EXTRA=
write_variant() {
  local phase=$1 size=$2 round=$3 variant=$4 script=$5 res c0 c1 p0 p1 tps lat n paused=
  shift 5
  case $variant in *_paused) paused=1 ;; esac
  q "CHECKPOINT"
  [ -n "$paused" ] && relay_pause
  c0=$(cpu_snap); p0=$(pg_cpu)
  res=$(pgbench_run "$WORK/$script.sql" "$@")
  c1=$(cpu_snap); p1=$(pg_cpu)
  [ -n "$paused" ] && relay_resume
  read -r tps lat n <<<"$res"
  log "   ${size}B round $round $variant ($CUR_BUILD): tps=$tps latency=$lat ms"
  rec "{\"phase\": \"$phase\", \"size\": $size, $WRITE_EXTRA\"round\": $round, \"variant\": \"$variant\", \"build\": \"$CUR_BUILD\", \"tps\": $tps, \"latency_ms\": $lat, \"transactions\": $n, \"pg_cpu_us_per_txn\": $(calc "round(($p1 - $p0) * 1e6 / max($n, 1), 1)"), $(cpu_json "$c0" "$c1" "$n"), \"load\": $(loadavg)}"
  case $variant in plain|dbz|cap_off) ;; *) wait_drained 300 || true ;; esac
}

phase_write() {
  log "1. write cost: publish vs plain INSERT vs Debezium's INSERT + DELETE (pgbench -c $CLIENTS -j $THREADS -T $WRITE_SECS, $ROUNDS rounds)"
  local size round variant pf
  for size in $SIZES; do
    pf=$(payload_file "$size")
    for round in $(seq 1 "$ROUNDS"); do
      use_build current
      for variant in publish plain dbz publish_paused; do
        case $variant in
          publish|publish_paused) write_variant write "$size" "$round" "$variant" publish -D "payload=$(cat "$pf")" ;;
          plain) write_variant write "$size" "$round" plain plain -D "payload=$(cat "$pf")" ;;
          dbz) write_variant write "$size" "$round" dbz dbz_write -D "payload=$(cat "$pf")" ;;
        esac
      done
      if [ -n "$WRITE_BASE_REF" ]; then
        use_build baseline
        for variant in publish publish_paused; do
          write_variant write "$size" "$round" "$variant" publish -D "payload=$(cat "$pf")"
        done
      fi
    done
  done
  use_build current
}

# ---------------------------------------------------------------- 2. capture trigger cost
phase_capture() {
  log "2. capture trigger cost: INSERT with vs without outbox_capture trigger"
  local size round variant base note
  for size in $SIZES; do
    # note length so that the captured event's payload is about SIZE bytes
    base=$(q "BEGIN; INSERT INTO cap_on (customer, amount, note) VALUES (12345, 10.5, '');
              SELECT length(payload::text) FROM edu_outbox.outbox WHERE topic = 'bench-capture' ORDER BY id DESC LIMIT 1;
              ROLLBACK;" | tail -1)
    note=$(head -c $(( (size - base) / 2 + 1 )) /dev/urandom | od -An -tx1 | tr -d ' \n' | head -c $((size - base)))
    WRITE_EXTRA="\"event_bytes\": $((base + ${#note})), "
    for round in $(seq 1 "$ROUNDS"); do
      use_build current
      for variant in cap_on cap_off cap_on_paused; do
        write_variant capture "$size" "$round" "$variant" "${variant%_paused}" -D "note=$note"
      done
      if [ -n "$WRITE_BASE_REF" ]; then
        use_build baseline
        for variant in cap_on cap_on_paused; do
          write_variant capture "$size" "$round" "$variant" cap_on -D "note=$note"
        done
      fi
    done
  done
  WRITE_EXTRA=
  use_build current
}

# ---------------------------------------------------------------- 3. relay throughput
tput_relay() {
  local size=$1 n=$2 round=$3 pf topic per clients txns leak rpid kpid c0 k0 c1 k1 t0 t1 t2 bl0 bl1 method
  pf=$(payload_file "$size")
  topic=bench-tput-relay-$size-$round-$RUN_ID
  "$KU" create "$BROKER" "$topic" "$PARTITIONS"
  # one event first, so that the relay's producer knows the topic before the clock
  # starts (the raw producer fetches its metadata too); see 4b for a new topic's cost
  q "SELECT outbox_publish('$topic', \$\$$(cat "$pf")\$\$::jsonb, 'k0')" >/dev/null
  "$KU" wait "$BROKER" "$topic" 1 60 >/dev/null || die "warm-up event not delivered"
  method=$(pause_method)
  relay_pause
  per=$BACKLOG_TXN; clients=2
  txns=$(( (n + per * clients - 1) / (per * clients) ))
  n=$(( txns * per * clients ))
  bl0=$(now)
  pgb -c $clients -j $clients -t "$txns" -f "$WORK/backlog.sql" -D "topic=$topic" -D "per_txn=$per" \
      -D "payload=$(cat "$pf")" >/dev/null
  bl1=$(now)
  q "VACUUM (ANALYZE) edu_outbox.outbox"
  q "CHECKPOINT"
  leak=$(( $("$KU" offsets "$BROKER" "$topic") - 1 ))
  [ "$leak" = 0 ] || log "warning: $leak events reached Kafka while the relay was paused"
  rpid=$(relay_pid); kpid=$(kafka_pid)
  c0=$(proc_cpu "$rpid"); k0=$(proc_cpu "$kpid")
  local perf_pid=
  if [ -n "${BENCH_PERF:-}" ] && [ "$round" = 1 ]; then
    perf record -g -o "$WORK/perf_$size.data" -p "$rpid" >/dev/null 2>&1 &
    perf_pid=$!
    sleep 0.5
  fi
  t0=$(now)
  relay_resume
  t1=$("$KU" wait "$BROKER" "$topic" $((n + 1)) 900) || die "relay did not deliver $n events"
  c1=$(proc_cpu "$rpid"); k1=$(proc_cpu "$kpid")
  if [ -n "$perf_pid" ]; then
    kill -INT "$perf_pid"; wait "$perf_pid" 2>/dev/null || true
    ( set +eo pipefail
      echo "# perf profile of the relay process while it drained $n events of $size bytes"
      echo "## by thread"; perf report -i "$WORK/perf_$size.data" --no-children --sort comm --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -5
      echo "## by function, including callees (main thread)"
      perf report -i "$WORK/perf_$size.data" --children --comm postgres --sort symbol --stdio -g none 2>/dev/null |
        grep -v '^#' | grep -v '^$' | grep -v ' 0x0000' | head -40
    ) >"$DATA/perf_relay_$size.txt" 2>/dev/null || true
  fi
  wait_drained 120 || true
  t2=$(now)
  local secs eps
  secs=$(calc "$t1 - $t0"); eps=$(calc "round($n / ($t1 - $t0), 1)")
  log "   ${size}B round $round relay: $n events in ${secs}s = $eps events/s (relay CPU $(calc "round($c1 - $c0, 2)") s)"
  rec "{\"phase\": \"tput\", \"kind\": \"relay\", \"size\": $size, \"round\": $round, \"n\": $n, \"t0\": $t0, \"seconds\": $secs, \"events_per_s\": $eps, \"seconds_until_sql_drained\": $(calc "$t2 - $t0"), \"relay_cpu_s\": $(calc "round($c1 - $c0, 2)"), \"broker_cpu_s\": $(calc "round($k1 - $k0, 2)"), \"leaked_before_resume\": $leak, \"pause_method\": \"$method\", \"backlog_build_events_per_s\": $(calc "round($n / ($bl1 - $bl0), 1)"), \"load\": $(loadavg)}"
  # the delivered backlog is of no further use: start the next run with an empty outbox
  q "TRUNCATE edu_outbox.outbox"
}

tput_raw() {
  local size=$1 n=$2 round=$3 chunk=$4 pf topic res kpid k0 k1
  pf=$(payload_file "$size")
  topic=bench-tput-raw$chunk-$size-$round-$RUN_ID
  "$KU" create "$BROKER" "$topic" "$PARTITIONS"
  kpid=$(kafka_pid); k0=$(proc_cpu "$kpid")
  res=$("$BUILD/raw_producer" -b "$BROKER" -t "$topic" -n "$n" -f "$pf" -c "$chunk" 2>/dev/null) ||
    die "raw producer failed: $res"
  k1=$(proc_cpu "$kpid")
  local kind=raw; [ "$chunk" -gt 0 ] && kind=raw_chunked
  log "   ${size}B round $round $kind: $(echo "$res" | sed 's/.*"events_per_s": \([0-9.]*\).*/\1/') events/s"
  rec "{\"phase\": \"tput\", \"kind\": \"$kind\", \"size\": $size, \"round\": $round, \"broker_cpu_s\": $(calc "round($k1 - $k0, 2)"), \"load\": $(loadavg), \"raw\": $res}"
}

phase_throughput() {
  local bs; bs=$(q "SHOW edu_outbox.chunk_max_events")
  log "3. relay throughput vs raw librdkafka producer (backlog of N events, $TPUT_ROUNDS rounds)"
  local size n round
  for size in $SIZES; do
    if [ "$size" -le 1024 ]; then n=$N200; else n=$N2K; fi
    for round in $(seq 1 "$TPUT_ROUNDS"); do
      tput_relay "$size" "$n" "$round"
      tput_raw "$size" "$n" "$round" 0
      tput_raw "$size" "$n" "$round" "$bs"
    done
  done
}

# ---------------------------------------------------------------- 4. latency
# Starts the latency consumer on a fresh topic; sets CONS_PID.
start_consumer() {
  local topic=$1 outf=$2
  "$KU" create "$BROKER" "$topic" "$PARTITIONS"
  rm -f "$WORK/consumer.ready"
  ( exec "$KU" consume "$BROKER" "$topic" "$outf" >"$WORK/consumer.ready" 2>>"$WORK/consumer.log" ) &
  CONS_PID=$!
  for _ in $(seq 1 100); do grep -q ready "$WORK/consumer.ready" 2>/dev/null && return 0; sleep 0.1; done
  die "latency consumer did not start"
}
stop_consumer() {
  kill -TERM "$CONS_PID" 2>/dev/null || true
  wait "$CONS_PID" 2>/dev/null || true
  CONS_PID=
}
pub_procs() {   # enough connections for the rate: a commit takes ~1-2 ms here
  local r=$1 p; p=$(( (r + 399) / 400 )); [ $p -lt 4 ] && p=4
  echo "${BENCH_PUB_PROCS:-$p}"
}

phase_latency() {
  log "4. end-to-end latency: commit -> consumer, at $LAT_RATES events/s, ${LAT_SECS}s each"
  local size rate pf topic pubres stats c0 c1 n
  for size in $SIZES; do
    pf=$(payload_file "$size")
    for rate in $LAT_RATES; do
      topic=bench-lat-$size-$rate-$RUN_ID
      start_consumer "$topic" "$WORK/lat_cons_${size}_$rate.txt"
      c0=$(cpu_snap)
      pubres=$("$BUILD/publisher" -d "$CONNINFO" -t "$topic" -r "$rate" -s "$LAT_SECS" -w "$LAT_WARMUP" \
               -p "$(pub_procs "$rate")" -f "$pf" -o "$WORK/lat_pub_${size}_$rate.txt")
      c1=$(cpu_snap)
      wait_drained 120 || true
      sleep 1
      stop_consumer
      stats=$(/usr/bin/python3 "$BENCH/latency_stats.py" "$WORK/lat_pub_${size}_$rate.txt" \
              "$WORK/lat_cons_${size}_$rate.txt" "$DATA/cdf_${size}_$rate.txt")
      n=$(wc -l <"$WORK/lat_pub_${size}_$rate.txt")
      log "   ${size}B $rate/s: $stats"
      rec "{\"phase\": \"latency\", \"size\": $size, \"rate\": $rate, $(cpu_json "$c0" "$c1" "$n"), \"load\": $(loadavg), \"publisher\": $pubres, \"stats\": $stats}"
    done
  done

  # The first event to a topic the relay's producer has not used yet.
  log "4b. latency of the first event to a new topic (3 tries)"
  local i pf200; pf200=$(payload_file 200)
  for i in 1 2 3; do
    topic=bench-newtopic-$i-$RUN_ID
    start_consumer "$topic" "$WORK/new_cons_$i.txt"
    "$BUILD/publisher" -d "$CONNINFO" -t "$topic" -r 1 -s 1 -p 1 -f "$pf200" -o "$WORK/new_pub_$i.txt" >/dev/null
    wait_drained 30 || true
    sleep 0.5
    stop_consumer
    stats=$(/usr/bin/python3 "$BENCH/latency_stats.py" "$WORK/new_pub_$i.txt" "$WORK/new_cons_$i.txt" /dev/null)
    log "   try $i: $stats"
    rec "{\"phase\": \"newtopic\", \"try\": $i, \"stats\": $stats}"
  done
}

# ---------------------------------------------------------------- 5. sustained load
# sustained NAME SECONDS RATE: steady publishing, samples every SAMPLE s.
sustained() {
  local name=$1 secs=$2 rate=$3 pf topic tsv=$DATA/$1.tsv pubres stats
  pf=$(payload_file 200)
  topic=bench-$name-$RUN_ID
  log "5. sustained load ($name): ${rate} events/s of 200 B for ${secs}s, sampling every ${SAMPLE}s"
  # start from an empty outbox (everything earlier has been delivered)
  wait_drained 300 || true
  q "TRUNCATE edu_outbox.outbox"
  start_consumer "$topic" "$WORK/${name}_cons.txt"
  # the relay's producer learns the new topic first (see 4b), so that its
  # one-time metadata lookup does not count as sustained-load latency
  "$BUILD/publisher" -d "$CONNINFO" -t "$topic" -r 10 -s 1 -p 1 -f "$pf" -o "$WORK/${name}_warm.txt" >/dev/null
  wait_drained 30 || true
  local c0 c1 n
  c0=$(cpu_snap)
  echo "t_s outbox_bytes dead_tup live_tup rows pending relay_cpu_pct" >"$tsv"
  (
    t0=$(date +%s.%N)
    rpid=$(relay_pid); rc0=$(proc_cpu "$rpid"); rt0=$(now)
    while :; do
      rc1=$(proc_cpu "$rpid"); rt1=$(now)
      cpu_pct=$(calc "round(100 * ($rc1 - $rc0) / ($rt1 - $rt0), 1) if $rt1 - $rt0 > 1 else 'nan'")
      rc0=$rc1; rt0=$rt1
      line=$(q "SELECT sum(pg_total_relation_size(c.oid)), sum(s.n_dead_tup), sum(s.n_live_tup),
                       (SELECT count(*) FROM edu_outbox.outbox),
                       (SELECT count(*) FROM edu_outbox.outbox WHERE NOT pg_visible_in_snapshot(xid,
                          (SELECT delivered_snapshot FROM edu_outbox.relay_state)))
                FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid
                WHERE c.relnamespace = 'edu_outbox'::regnamespace
                  AND c.relname IN ('outbox_p0', 'outbox_p1', 'outbox_p2', 'outbox_p3')" | tr '|' ' ')
      echo "$(calc "round($(date +%s.%N) - $t0, 1)") $line $cpu_pct" >>"$tsv"
      sleep "$SAMPLE"
    done
  ) &
  SAMPLER_PID=$!
  pubres=$("$BUILD/publisher" -d "$CONNINFO" -t "$topic" -r "$rate" -s "$secs" -w 0 \
           -p "$(pub_procs "$rate")" -f "$pf" -o "$WORK/${name}_pub.txt")
  c1=$(cpu_snap)
  n=$(wc -l <"$WORK/${name}_pub.txt")
  sleep "$SAMPLE"          # one more sample after publishing stops
  kill "$SAMPLER_PID" 2>/dev/null; wait "$SAMPLER_PID" 2>/dev/null || true
  SAMPLER_PID=
  wait_drained 300 || true
  sleep 1
  stop_consumer
  stats=$(/usr/bin/python3 "$BENCH/latency_stats.py" --windows "$SAMPLE" "$WORK/${name}_pub.txt" \
          "$WORK/${name}_cons.txt" "$DATA/cdf_$name.txt")
  rec "{\"phase\": \"$name\", \"seconds\": $secs, \"rate\": $rate, $(cpu_json "$c0" "$c1" "$n"), \"load\": $(loadavg), \"publisher\": $pubres, \"stats\": $stats}"
  log "   $name: publisher $pubres"
}

# ---------------------------------------------------------------- 6. durability
# The relay flushes WAL up to each batch's snapshot before sending it, and with
# edu_outbox.wait_for_standbys waits for the standbys. Baseline: the relay of
# BENCH_BASELINE_REF (default: the merge base with main, which must not have
# src/durability.c yet and must have the same SQL), swapped in as the .so only.
use_library() {   # use_library FILE: install that edu_outbox.so and restart
  cp "$1" "$(pg_config --pkglibdir)/edu_outbox.so"
  scripts/pg.sh restart >/dev/null
  for _ in $(seq 1 50); do [ -n "$(relay_pid)" ] && break; sleep 0.2; done
  [ -n "$(relay_pid)" ] || die "the relay did not come back after the restart"
  # warm the new relay's producer and the caches; not measured
  "$KU" create "$BROKER" "bench-dur-warm-$RUN_ID" "$PARTITIONS"
  "$BUILD/publisher" -d "$CONNINFO" -t "bench-dur-warm-$RUN_ID" -r "$DUR_RATE" -s 3 -p 4 \
    -f "$(payload_file 200)" -o "$WORK/dur_warm.txt" >/dev/null
  wait_drained 60 || true
}
start_standby() {
  local sdir=$WORK/pg-standby
  mkdir -p "$sdir"; chown postgres: "$sdir"
  runuser -u postgres -- "$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$PGPORT_EDU" -U postgres \
    -D "$sdir/data" -X stream -c fast -R
  printf "port = %s\nunix_socket_directories = '%s'\nprimary_conninfo = 'host=127.0.0.1 port=%s user=postgres application_name=bench_standby'\n" \
    "$STANDBY_PORT" "$sdir" "$PGPORT_EDU" >>"$sdir/data/postgresql.auto.conf"
  PGDIR_EDU=$sdir PGPORT_EDU=$STANDBY_PORT scripts/pg.sh start >/dev/null
  for _ in $(seq 1 100); do
    [ "$(q "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")" = 1 ] && return 0
    sleep 0.2
  done
  die "the standby does not stream"
}
stop_standby() { PGDIR_EDU=$WORK/pg-standby PGPORT_EDU=$STANDBY_PORT scripts/pg.sh destroy >/dev/null 2>&1 || true; }

# dur_run NAME CONNINFO: latency at DUR_RATE events/s of 200 B, recorded as phase "durability"
dur_run() {
  local name=$1 conninfo=$2 pf topic pubres stats c0 c1 n
  pf=$(payload_file 200)
  topic=bench-dur-$name-$RUN_ID
  start_consumer "$topic" "$WORK/dur_cons_$name.txt"
  c0=$(cpu_snap)
  pubres=$("$BUILD/publisher" -d "$conninfo" -t "$topic" -r "$DUR_RATE" -s "$LAT_SECS" -w "$LAT_WARMUP" \
           -p "$(pub_procs "$DUR_RATE")" -f "$pf" -o "$WORK/dur_pub_$name.txt")
  c1=$(cpu_snap)
  wait_drained 120 || true
  sleep 1
  stop_consumer
  stats=$(/usr/bin/python3 "$BENCH/latency_stats.py" "$WORK/dur_pub_$name.txt" \
          "$WORK/dur_cons_$name.txt" "$DATA/cdf_dur_$name.txt")
  n=$(wc -l <"$WORK/dur_pub_$name.txt")
  log "   $name: $stats"
  rec "{\"phase\": \"durability\", \"variant\": \"$name\", \"rate\": $DUR_RATE, $(cpu_json "$c0" "$c1" "$n"), \"load\": $(loadavg), \"publisher\": $pubres, \"stats\": $stats}"
}

phase_durability() {
  local ref current=$WORK/edu_outbox.current.so async="$CONNINFO options='-c synchronous_commit=off'" round
  ref=${BENCH_BASELINE_REF:-$(git merge-base HEAD main)}
  git cat-file -e "$ref:src/durability.c" 2>/dev/null &&
    die "baseline $ref already flushes before sending; set BENCH_BASELINE_REF to a commit without src/durability.c"
  log "6. durability cost: $DUR_RATE events/s of 200 B, ${LAT_SECS}s per variant, baseline $(git log -1 --format=%h "$ref")"
  mkdir -p "$WORK/baseline"
  git archive "$ref" | tar -x -C "$WORK/baseline"
  make -s -C "$WORK/baseline" >/dev/null 2>&1 || die "the baseline $ref does not build"
  cp "$(pg_config --pkglibdir)/edu_outbox.so" "$current"
  echo "baseline=$(git log -1 --format='%h %s' "$ref")" >>"$DATA/env.txt"
  echo "durability_rate=$DUR_RATE" >>"$DATA/env.txt"
  for round in $(seq 1 "$DUR_ROUNDS"); do
    use_library "$WORK/baseline/edu_outbox.so"
    dur_run "baseline_sync_r$round" "$CONNINFO"
    dur_run "baseline_async_r$round" "$async"
    use_library "$current"
    dur_run "flush_sync_r$round" "$CONNINFO"
    dur_run "flush_async_r$round" "$async"
  done
  start_standby
  q "ALTER SYSTEM SET edu_outbox.wait_for_standbys = 'on'" && q "SELECT pg_reload_conf()" >/dev/null
  for round in $(seq 1 "$DUR_ROUNDS"); do
    dur_run "standby_wait_sync_r$round" "$CONNINFO"
    dur_run "standby_wait_async_r$round" "$async"
  done
  q "ALTER SYSTEM RESET edu_outbox.wait_for_standbys" && q "SELECT pg_reload_conf()" >/dev/null
  stop_standby
}

# ---------------------------------------------------------------- 7. relay cycle
# What a relay cycle costs at a moderate rate (issue 13): the relay of
# BENCH_BASELINE_REF (default: the merge base with main) swapped in as the .so
# only, against this one with each coalesce window, interleaved per round.
phase_cycle() {
  local ref current=$WORK/edu_outbox.current.so round v w props busy=
  ref=${BENCH_BASELINE_REF:-$(git merge-base HEAD main)}
  log "7. relay cycle: $DUR_RATE events/s of 200 B, ${LAT_SECS}s per variant, baseline $(git log -1 --format=%h "$ref"), windows $CYCLE_WINDOWS"
  mkdir -p "$WORK/baseline"
  git archive "$ref" | tar -x -C "$WORK/baseline"
  make -s -C "$WORK/baseline" >/dev/null 2>&1 || die "the baseline $ref does not build"
  cp "$(pg_config --pkglibdir)/edu_outbox.so" "$current"
  echo "baseline=$(git log -1 --format='%h %s' "$ref")" >>"$DATA/env.txt"
  echo "cycle_rate=$DUR_RATE" >>"$DATA/env.txt"
  echo "cycle_busy=$CYCLE_BUSY" >>"$DATA/env.txt"
  echo "cycle_windows=$CYCLE_WINDOWS" >>"$DATA/env.txt"
  if [ "$CYCLE_BUSY" = 1 ]; then
    q "CREATE TABLE IF NOT EXISTS busy_t (id int PRIMARY KEY, n bigint NOT NULL DEFAULT 0)"
    q "INSERT INTO busy_t SELECT g FROM generate_series(1, 1000) g ON CONFLICT DO NOTHING"
    printf '\\set i random(1, 1000)\nUPDATE busy_t SET n = n + 1 WHERE id = :i;\n' >"$WORK/busy.sql"
    ( exec "$PGBIN/pgbench" -h "$PGDIR_EDU" -p "$PGPORT_EDU" -U postgres -n -M prepared -c 1 -T 100000 \
        -f "$WORK/busy.sql" bench >/dev/null 2>&1 ) &
    BUSY_PID=$!
    busy=_busy
  fi
  for round in $(seq 1 "$CYCLE_ROUNDS"); do
    use_library "$WORK/baseline/edu_outbox.so"
    cycle_run "baseline$busy" "$round"
    use_library "$current"
    for v in $CYCLE_WINDOWS; do
      # W or W/PROPERTIES: the window in ms, and librdkafka properties for the producer
      w=${v%%/*}; props=; [ "$v" != "$w" ] && props=${v#*/}
      q "ALTER SYSTEM SET edu_outbox.coalesce_window = '${w}ms'"
      q "ALTER SYSTEM SET edu_outbox.kafka_properties = '$props'"
      q "SELECT pg_reload_conf()" >/dev/null
      sleep 1
      cycle_run "window_${w}ms${props:+_$props}$busy" "$round"
    done
    q "ALTER SYSTEM RESET edu_outbox.coalesce_window" && q "ALTER SYSTEM RESET edu_outbox.kafka_properties"
    q "SELECT pg_reload_conf()" >/dev/null
  done
  if [ -n "${BUSY_PID:-}" ]; then kill -TERM "$BUSY_PID" 2>/dev/null; wait "$BUSY_PID" 2>/dev/null || true; BUSY_PID=; fi
}

# CPU seconds of a process's main thread only (the relay's SQL side, without librdkafka's threads)
thread_cpu() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/task/$1/stat" 2>/dev/null || echo 0; }
# scans of relay_state so far: the relay reads it at least once a cycle (the paused flag)
relay_state_reads() {
  q "SELECT seq_scan + coalesce(idx_scan, 0) FROM pg_stat_user_tables WHERE schemaname = 'edu_outbox' AND relname = 'relay_state'"
}

# cycle_run VARIANT ROUND: latency and CPU at DUR_RATE events/s of 200 B, phase "cycle"
cycle_run() {
  local name=$1 round=$2 pf topic pubres stats c0 c1 n rpid m0 m1 s0 s1 extra
  pf=$(payload_file 200)
  topic=bench-cycle-$(echo "$name" | tr -c "A-Za-z0-9._\n-" _)-$round-$RUN_ID
  start_consumer "$topic" "$WORK/cycle_cons.txt"
  rpid=$(relay_pid)
  m0=$(thread_cpu "$rpid"); s0=$(relay_state_reads)
  c0=$(cpu_snap)
  pubres=$("$BUILD/publisher" -d "$CONNINFO" -t "$topic" -r "$DUR_RATE" -s "$LAT_SECS" -w "$LAT_WARMUP" \
           -p "$(pub_procs "$DUR_RATE")" -f "$pf" -o "$WORK/cycle_pub.txt")
  c1=$(cpu_snap)
  m1=$(thread_cpu "$rpid")
  wait_drained 120 || true
  sleep 1
  stop_consumer
  stats=$(/usr/bin/python3 "$BENCH/latency_stats.py" "$WORK/cycle_pub.txt" "$WORK/cycle_cons.txt" /dev/null)
  n=$(wc -l <"$WORK/cycle_pub.txt")
  # the relay flushes its table statistics at most once a second, and polls every second when idle
  sleep 2; s1=$(relay_state_reads)
  extra="\"relay_main_thread_us_per_event\": $(calc "round(($m1 - $m0) / $n * 1e6, 1)"), \"relay_state_reads_per_event\": $(calc "round(($s1 - $s0) / $n, 3)")"
  log "   round $round $name: $stats $(cpu_json "$c0" "$c1" "$n") $extra"
  rec "{\"phase\": \"cycle\", \"variant\": \"$name\", \"round\": $round, \"rate\": $DUR_RATE, $(cpu_json "$c0" "$c1" "$n"), $extra, \"load\": $(loadavg), \"publisher\": $pubres, \"stats\": $stats}"
}

# ---------------------------------------------------------------- 8. exactly once
# What edu_outbox.delivery = exactly_once costs (issue 12): each chunk becomes
# one Kafka transaction with a position record. Both modes are measured as a
# read_committed consumer sees them, in interleaved rounds whose order
# alternates. Switching the mode is a reload: the relay rebuilds its producer.
POS_TOPIC=
position_offsets() { "$KU" offsets "$BROKER" "$POS_TOPIC"; }

# set_delivery MODE CHUNK: reload with that mode and chunk_max_events, then a short
# warm-up through the (new) producer, not measured
set_delivery() {
  q "ALTER SYSTEM SET edu_outbox.delivery = '$1'"
  q "ALTER SYSTEM SET edu_outbox.chunk_max_events = '$2'"
  q "SELECT pg_reload_conf()" >/dev/null
  sleep 1
  "$KU" create "$BROKER" "bench-eos-warm-$RUN_ID" "$PARTITIONS"
  "$BUILD/publisher" -d "$CONNINFO" -t "bench-eos-warm-$RUN_ID" -r "$EOS_RATE" -s 2 -p 4 \
    -f "$(payload_file 200)" -o "$WORK/eos_warm.txt" >/dev/null
  wait_drained 120 || die "the relay did not deliver the warm-up in $1 mode"
}

# eos_drain MODE CHUNK ROUND: a backlog of EOS_N events written while paused, then
# timed from outbox_resume() until a read_committed reader can see every event
# (the topic's last stable offsets stop moving; they count commit markers too)
eos_drain() {
  local delivery=$1 chunk=$2 round=$3 n pf topic per=$BACKLOG_TXN clients=2 txns bl0 bl1 c0 c1 t0 t1 t2 \
        pos0 pos1 final count load deadline
  pf=$(payload_file 200)
  topic=bench-eos-drain-$delivery-$chunk-$round-$RUN_ID
  "$KU" create "$BROKER" "$topic" "$PARTITIONS"
  # one event first, so that the producer knows the topic before the clock starts
  q "SELECT outbox_publish('$topic', \$\$$(cat "$pf")\$\$::jsonb, 'k0')" >/dev/null
  wait_drained 60 || die "warm-up event not delivered"
  relay_pause
  txns=$(( (EOS_N + per * clients - 1) / (per * clients) ))
  n=$(( txns * per * clients ))
  bl0=$(now)
  pgb -c $clients -j $clients -t "$txns" -f "$WORK/backlog.sql" -D "topic=$topic" -D "per_txn=$per" \
      -D "payload=$(cat "$pf")" >/dev/null
  bl1=$(now)
  q "VACUUM (ANALYZE) edu_outbox.outbox"
  q "CHECKPOINT"
  rm -f "$WORK/visible.ready"
  ( exec "$KU" visible "$BROKER" "$topic" "$WORK/visible.txt" >"$WORK/visible.ready" 2>>"$WORK/consumer.log" ) &
  VIS_PID=$!
  for _ in $(seq 1 100); do grep -q ready "$WORK/visible.ready" 2>/dev/null && break; sleep 0.1; done
  pos0=$(position_offsets)
  c0=$(cpu_snap)
  t0=$(now)
  relay_resume
  # every record is in (the offsets also count markers, so this is a lower bound) ...
  deadline=$(( $(date +%s) + 900 ))
  until [ "$(tail -1 "$WORK/visible.txt" 2>/dev/null | cut -d' ' -f2)" -ge $((n + 1)) ] 2>/dev/null; do
    [ "$(date +%s)" -ge "$deadline" ] && die "relay did not deliver $n events in 900 s"
    sleep 0.1
  done
  # ... and the relay has recorded all of it as delivered (in exactly_once: committed)
  wait_drained 300 || die "outbox not drained"
  t2=$(now)
  c1=$(cpu_snap)
  load=$(loadavg)
  # the coordinator writes the last transaction's markers after EndTxn returns
  sleep 1.5
  kill -TERM "$VIS_PID" 2>/dev/null; wait "$VIS_PID" 2>/dev/null || true
  VIS_PID=
  pos1=$(position_offsets)
  final=$(tail -1 "$WORK/visible.txt" | cut -d' ' -f2)
  t1=$(awk -v f="$final" '$2 >= f {print $1; exit}' "$WORK/visible.txt")
  count=$("$KU" count "$BROKER" "$topic" 120) || die "could not count $topic"
  local secs eps
  secs=$(calc "round($t1 - $t0, 3)"); eps=$(calc "round($n / ($t1 - $t0), 1)")
  log "   round $round $delivery chunk $chunk: $n events visible after ${secs}s = $eps events/s; $count; $(( (pos1 - pos0) / 2 )) transactions"
  rec "{\"phase\": \"eos_drain\", \"delivery\": \"$delivery\", \"chunk_max_events\": $chunk, \"round\": $round, \"n\": $n, \"t0\": $t0, \"seconds\": $secs, \"events_per_s\": $eps, \"seconds_until_sql_drained\": $(calc "round($t2 - $t0, 3)"), \"final_offsets\": $final, \"visible\": $count, \"transactions\": $(( (pos1 - pos0) / 2 )), $(cpu_json "$c0" "$c1" "$n"), \"backlog_build_events_per_s\": $(calc "round($n / ($bl1 - $bl0), 1)"), \"load\": $load}"
  cp "$WORK/visible.txt" "$DATA/eos_visible_${delivery}_${chunk}_r$round.txt"
  q "TRUNCATE edu_outbox.outbox"
}

# eos_latency MODE ROUND: commit-to-consumer latency at EOS_RATE events/s of 200 B,
# the consumer reading read_committed
eos_latency() {
  local delivery=$1 round=$2 pf topic pubres stats c0 c1 n pos0 pos1
  pf=$(payload_file 200)
  topic=bench-eos-lat-$delivery-$round-$RUN_ID
  start_consumer "$topic" "$WORK/eos_cons.txt"
  pos0=$(position_offsets)
  c0=$(cpu_snap)
  pubres=$("$BUILD/publisher" -d "$CONNINFO" -t "$topic" -r "$EOS_RATE" -s "$LAT_SECS" -w "$LAT_WARMUP" \
           -p "$(pub_procs "$EOS_RATE")" -f "$pf" -o "$WORK/eos_pub.txt")
  c1=$(cpu_snap)
  wait_drained 120 || true
  sleep 1
  stop_consumer
  pos1=$(position_offsets)
  stats=$(/usr/bin/python3 "$BENCH/latency_stats.py" "$WORK/eos_pub.txt" "$WORK/eos_cons.txt" \
          "$DATA/eos_cdf_${delivery}_r$round.txt")
  n=$(wc -l <"$WORK/eos_pub.txt")
  log "   round $round $delivery latency: $stats, $(( (pos1 - pos0) / 2 )) transactions"
  rec "{\"phase\": \"eos_latency\", \"delivery\": \"$delivery\", \"round\": $round, \"rate\": $EOS_RATE, \"transactions\": $(( (pos1 - pos0) / 2 )), $(cpu_json "$c0" "$c1" "$n"), \"load\": $(loadavg), \"publisher\": $pubres, \"stats\": $stats}"
}

phase_eos() {
  local round modes mode chunk lat_chunk
  lat_chunk=${EOS_CHUNKS%% *}
  POS_TOPIC=$(q "SHOW edu_outbox.position_topic")
  log "8. exactly once: drain of $EOS_N events (chunk_max_events $EOS_CHUNKS) and latency at $EOS_RATE events/s, at_least_once vs exactly_once, $EOS_ROUNDS rounds"
  {
    echo "eos_backlog=$EOS_N"
    echo "eos_rounds=$EOS_ROUNDS"
    echo "eos_rate=$EOS_RATE"
    echo "eos_chunks=$EOS_CHUNKS"
    echo "coalesce_window=$(q "SHOW edu_outbox.coalesce_window")"
    echo "chunk_max_bytes=$(q "SHOW edu_outbox.chunk_max_bytes")"
  } >>"$DATA/env.txt"
  # the first exactly_once start creates the position topic and warms the transaction coordinator
  set_delivery exactly_once "$lat_chunk"
  for round in $(seq 1 "$EOS_ROUNDS"); do
    # alternate which mode goes first, so that a drift of the machine's load favours neither
    if [ $((round % 2)) = 1 ]; then modes="at_least_once exactly_once"; else modes="exactly_once at_least_once"; fi
    for mode in $modes; do
      for chunk in $EOS_CHUNKS; do
        set_delivery "$mode" "$chunk"
        eos_drain "$mode" "$chunk" "$round"
      done
      set_delivery "$mode" "$lat_chunk"
      eos_latency "$mode" "$round"
    done
  done
  q "ALTER SYSTEM RESET edu_outbox.delivery" && q "ALTER SYSTEM RESET edu_outbox.chunk_max_events"
  q "SELECT pg_reload_conf()" >/dev/null
  # one transaction step by step, on the same broker, without the relay (bench/txn_steps.c)
  log "   one transaction step by step (bench/txn_steps.c, 100 transactions per size)"
  "$KU" create "$BROKER" "bench-eos-steps-$RUN_ID" "$PARTITIONS"
  "$KU" create "$BROKER" "bench-eos-steps-pos-$RUN_ID" 1
  local n
  for n in 1 100 1000 10000; do
    "$BUILD/txn_steps" "$BROKER" "bench-eos-steps-$RUN_ID" "bench-eos-steps-pos-$RUN_ID" 100 "$n" \
      2>>"$WORK/consumer.log" >>"$DATA/eos_txn_steps.jsonl" || log "warning: txn_steps $n failed"
  done
  # what the relay logged about transactions that failed, if anything
  grep -c -E 'could not (begin|commit|abort|initialize) a Kafka transaction|was fenced' "$PGDIR_EDU/server.log" \
    >"$DATA/eos_txn_failures.txt" || true
  grep 'edu_outbox' "$PGDIR_EDU/server.log" | grep -v 'statement:' >"$DATA/eos_relay_log.txt" || true
}

# ---------------------------------------------------------------- main
record_environment
warm_up
T_START=$(date +%s)
if [ "$MODE" = sustained ]; then
  sustained sustained "$SUST_SECS" "$SUST_RATE"
elif [ "$MODE" = durability ]; then
  phase_durability
elif [ "$MODE" = debezium ]; then
  phase_debezium
elif [ "$MODE" = write ]; then
  prepare_write_builds
  phase_write
  phase_capture
elif [ "$MODE" = cycle ]; then
  phase_cycle
elif [ "$MODE" = eos ]; then
  phase_eos
else
  prepare_write_builds
  phase_write
  phase_capture
  phase_throughput
  phase_latency
  sustained short_sustained "$SHORT_SECS" "$SHORT_RATE"
  has_peer debezium && phase_debezium
fi
echo "{\"measure_seconds\": $(( $(date +%s) - T_START )), \"loadavg_end\": \"$(cat /proc/loadavg)\"}" >"$DATA/end.json"

log "writing the report and plots to $OUT"
mkdir -p "$OUT"
if [ "$MODE" = cycle ]; then
  /usr/bin/python3 "$BENCH/cycle_report.py" "$DATA" "$OUT"
elif [ "$MODE" = eos ]; then
  /usr/bin/python3 "$BENCH/eos_report.py" "$DATA" "$OUT"
elif [ "$MODE" != debezium ]; then
  /usr/bin/python3 "$BENCH/report.py" "$MODE" "$DATA" "$OUT"
fi
has_peer debezium && [ "$MODE" != sustained ] && /usr/bin/python3 "$BENCH/debezium_report.py" "$DATA" "$OUT"
log "done: $OUT/$(case $MODE in sustained) echo SUSTAINED.md ;; durability) echo DURABILITY.md ;; cycle) echo "CYCLE.md or CYCLE_BUSY.md" ;; eos) echo EXACTLY_ONCE.md ;; debezium) echo DEBEZIUM.md ;; write) echo WRITE.md ;; *) echo REPORT.md ;; esac)"
