# Sourced by bench/run.sh when BENCH_PEERS contains "debezium": the Debezium
# peer. Kafka Connect standalone (the broker's Kafka version) runs the Debezium
# PostgreSQL connector (pgoutput, a filtered publication on one table) with the
# Outbox Event Router, against the benchmark's own broker and cluster.
#
# The outbox table has the router's default columns plus a bigserial id. The
# router routes by aggregatetype (the topic name itself), the key is
# aggregateid, the value is the jsonb payload as text (StringConverter), and
# the id goes into the "outbox-id" header that bench/kafka_util's consumer
# reads, so the same publisher and consumer measure both systems.
#
# Cleanup: every writer deletes its row again in the same transaction
# (publisher -m debezium, dbz.sql, dbz_backlog.sql; the id as a sub-select,
# as currval() itself is volatile and would make the DELETE a seq scan); the INSERT is still in the
# WAL, the connector skips the delete (skipped.operations). So the table stays
# empty and the DELETE is part of the measured write cost.
#
# Profiles: "defaults" (the connector's and Connect's defaults) and "tuned"
# (poll.interval.ms=10, max.batch.size=4096, producer linger.ms=1,
# batch.size=262144, enable.idempotence=true). One worker; a profile switch
# rewrites the connector's config over REST (producer settings as
# producer.override.*), which restarts its task on the same slot.
#
# Needs from run.sh: ROOT, WORK, BROKER, PGDIR_EDU, PGPORT_EDU, q, log, die.

DBZ_POM=$ROOT/bench/debezium/pom.xml
DBZ_VERSION=$(sed -n 's:.*<debezium.version>\(.*\)</debezium.version>.*:\1:p' "$DBZ_POM")
DBZ_KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$DBZ_POM")
DBZ_CACHE=${EDU_OUTBOX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edu_outbox}
DBZ_LIB=$DBZ_CACHE/debezium-$DBZ_VERSION-connect-$DBZ_KAFKA_VERSION/lib
DBZ_REST_PORT=${BENCH_CONNECT_PORT:-38083}
DBZ_REST=http://127.0.0.1:$DBZ_REST_PORT
DBZ_DIR=$WORK/connect
DBZ_PROFILE=

# The PostgreSQL settings logical decoding needs (before the cluster's first start).
DBZ_PG_CONF="wal_level = logical
max_replication_slots = 4
max_wal_senders = 4"

dbz_fetch() {
  [ -f "$DBZ_LIB/.complete" ] && return 0
  log "debezium: fetching Kafka Connect $DBZ_KAFKA_VERSION and Debezium $DBZ_VERSION from Maven Central"
  mkdir -p "$DBZ_LIB"
  mvn -q -B -f "$DBZ_POM" dependency:copy-dependencies -DoutputDirectory="$DBZ_LIB" \
      >"$DBZ_CACHE/mvn-debezium.log" 2>&1 ||
    { cat "$DBZ_CACHE/mvn-debezium.log" >&2; die "debezium: maven failed"; }
  touch "$DBZ_LIB/.complete"
}

dbz_setup_db() {
  q "CREATE TABLE dbz_outbox (id bigserial PRIMARY KEY, aggregatetype text NOT NULL,
       aggregateid text NOT NULL, type text NOT NULL, payload jsonb)"
  q "CREATE TABLE busy_load (id bigserial PRIMARY KEY, v int NOT NULL)"   # the CPU competitor's
  # pgbench scripts: one event per transaction, and a backlog of :per_txn events
  cat >"$WORK/dbz.sql" <<'SQL'
\set c random(1, 100000)
\set k :c % 1000
BEGIN;
INSERT INTO bench_orders (customer, amount) VALUES (:c, 10.5);
INSERT INTO dbz_outbox (aggregatetype, aggregateid, type, payload) VALUES ('bench-write', 'k' || :k, 'bench', :payload::jsonb);
DELETE FROM dbz_outbox WHERE id = (SELECT currval('dbz_outbox_id_seq'));
COMMIT;
SQL
  cat >"$WORK/dbz_backlog.sql" <<'SQL'
BEGIN;
INSERT INTO dbz_outbox (aggregatetype, aggregateid, type, payload)
  SELECT :topic, 'k' || (random() * 999)::int, 'bench', :payload::jsonb FROM generate_series(1, :per_txn);
DELETE FROM dbz_outbox WHERE xmin = pg_current_xact_id()::xid;
COMMIT;
SQL
}

dbz_pid() { cat "$DBZ_DIR/connect.pid" 2>/dev/null; }
walsender_pid() { q "SELECT pid FROM pg_stat_replication WHERE state = 'streaming' LIMIT 1"; }

dbz_start() {
  mkdir -p "$DBZ_DIR"
  cat >"$DBZ_DIR/worker.properties" <<PROPS
bootstrap.servers=$BROKER
listeners=http://127.0.0.1:$DBZ_REST_PORT
key.converter=org.apache.kafka.connect.storage.StringConverter
value.converter=org.apache.kafka.connect.storage.StringConverter
offset.storage.file.filename=$DBZ_DIR/offsets
offset.flush.interval.ms=10000
connector.client.config.override.policy=All
PROPS
  cat >"$DBZ_DIR/log4j.properties" <<'LOG'
log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
LOG
  (cd "$DBZ_DIR" && exec setsid nohup java -Xms256m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true \
      -Dlog4j.configuration="file:$DBZ_DIR/log4j.properties" -cp "$DBZ_LIB/*" \
      org.apache.kafka.connect.cli.ConnectStandalone "$DBZ_DIR/worker.properties" \
      >>"$DBZ_DIR/connect.log" 2>&1 </dev/null &
   echo $! >"$DBZ_DIR/connect.pid")
  for _ in $(seq 1 240); do
    curl -sf "$DBZ_REST/connectors" >/dev/null 2>&1 && return 0
    kill -0 "$(dbz_pid)" 2>/dev/null || { tail -30 "$DBZ_DIR/connect.log" >&2; die "kafka connect exited"; }
    sleep 0.5
  done
  die "kafka connect REST not up after 120 s (see $DBZ_DIR/connect.log)"
}

dbz_stop() {
  local p; p=$(dbz_pid) || return 0
  [ -n "$p" ] && kill -0 "$p" 2>/dev/null || return 0
  kill -TERM "$p" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.5; done
  kill -KILL "$p" 2>/dev/null || true
}

# dbz_config PROFILE: the connector's JSON config.
dbz_config() {
  local extra=""
  if [ "$1" = tuned ]; then
    extra=',
  "poll.interval.ms": "10", "max.batch.size": "4096",
  "producer.override.linger.ms": "1", "producer.override.batch.size": "262144",
  "producer.override.enable.idempotence": "true"'
  fi
  cat <<JSON
{
  "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
  "tasks.max": "1",
  "plugin.name": "pgoutput",
  "database.hostname": "127.0.0.1", "database.port": "$PGPORT_EDU",
  "database.user": "postgres", "database.password": "", "database.dbname": "bench",
  "topic.prefix": "dbz",
  "slot.name": "dbz_bench", "publication.name": "dbz_bench",
  "publication.autocreate.mode": "filtered",
  "table.include.list": "public.dbz_outbox",
  "snapshot.mode": "no_data",
  "skipped.operations": "u,d,t",
  "tombstones.on.delete": "false",
  "transforms": "outbox",
  "transforms.outbox.type": "io.debezium.transforms.outbox.EventRouter",
  "transforms.outbox.route.by.field": "aggregatetype",
  "transforms.outbox.route.topic.replacement": "\${routedByValue}",
  "transforms.outbox.table.field.event.key": "aggregateid",
  "transforms.outbox.table.fields.additional.placement": "id:header:outbox-id"$extra
}
JSON
}

# dbz_profile PROFILE: (re)configures the connector and waits until its task runs
# and the slot is streaming.
dbz_profile() {
  [ "$DBZ_PROFILE" = "$1" ] && return 0
  dbz_config "$1" >"$DBZ_DIR/connector-$1.json"
  curl -sf -X PUT -H 'Content-Type: application/json' --data @"$DBZ_DIR/connector-$1.json" \
       "$DBZ_REST/connectors/dbz-outbox/config" >/dev/null || die "debezium: connector config rejected"
  for _ in $(seq 1 240); do
    if curl -sf "$DBZ_REST/connectors/dbz-outbox/status" 2>/dev/null | grep -q '"tasks":\[{"id":0,"state":"RUNNING"' &&
       [ "$(q "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'dbz_bench' AND active")" = 1 ]; then
      DBZ_PROFILE=$1
      sleep 2
      return 0
    fi
    sleep 0.5
  done
  curl -s "$DBZ_REST/connectors/dbz-outbox/status" >&2 || true
  die "debezium: connector not running after 120 s (see $DBZ_DIR/connect.log)"
}

dbz_pause() {
  curl -sf -X PUT "$DBZ_REST/connectors/dbz-outbox/pause" >/dev/null
  for _ in $(seq 1 100); do
    curl -sf "$DBZ_REST/connectors/dbz-outbox/status" | grep -q '"tasks":\[{"id":0,"state":"PAUSED"' && return 0
    sleep 0.1
  done
  log "warning: debezium connector not paused after 10 s"
}
dbz_resume() { curl -sf -X PUT "$DBZ_REST/connectors/dbz-outbox/resume" >/dev/null; }

# ---------------------------------------------------------------- side by side
# CPU snapshot: relay, broker, Connect JVM, walsender (CPU seconds each)
sbs_cpu() {
  echo "$(proc_cpu "$(relay_pid)") $(proc_cpu "$(kafka_pid)") $(proc_cpu "$(dbz_pid)") $(proc_cpu "$(walsender_pid)")"
}
sbs_cpu_json() {   # BEFORE AFTER N
  awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { split(a, x, " "); split(b, y, " "); if (n < 1) n = 1
    printf "\"cpu_us_per_event\": {\"relay\": %.1f, \"broker\": %.1f, \"jvm\": %.1f, \"walsender\": %.1f}",
      (y[1]-x[1])/n*1e6, (y[2]-x[2])/n*1e6, (y[3]-x[3])/n*1e6, (y[4]-x[4])/n*1e6 }'
}

BUSY_PID=
busy_start() {   # a fixed CPU competitor: one pgbench client writing another table
  printf '%s\n' '\set v random(1, 1000000)' 'INSERT INTO busy_load (v) VALUES (:v);' >"$WORK/busy.sql"
  ( exec "$PGBIN/pgbench" -h "$PGDIR_EDU" -p "$PGPORT_EDU" -U postgres -n -M prepared -c 1 -j 1 -T 3600 \
      -f "$WORK/busy.sql" bench >/dev/null 2>&1 ) &
  BUSY_PID=$!
  sleep 2
}
busy_stop() {
  [ -n "$BUSY_PID" ] || return 0
  kill -TERM "$BUSY_PID" 2>/dev/null || true   # (async jobs ignore SIGINT)
  wait "$BUSY_PID" 2>/dev/null || true
  BUSY_PID=
  q "TRUNCATE busy_load"
}

# sbs_latency SYSTEM LOAD ROUND: SYSTEM edu | tuned | defaults, LOAD quiet | busy
sbs_latency() {
  local sys=$1 load=$2 round=$3 rate=${BENCH_SBS_RATE:-1000} pf topic mode=edu c0 c1 pubres stats n
  pf=$(payload_file 200)
  [ "$sys" = edu ] || { dbz_profile "$sys"; mode=debezium; }
  topic=bench-sbs-lat-$sys-$load-$round-$RUN_ID
  start_consumer "$topic" "$WORK/sbs_cons.txt"
  [ "$load" = busy ] && busy_start
  c0=$(sbs_cpu)
  pubres=$("$BUILD/publisher" -d "$CONNINFO" -t "$topic" -r "$rate" -s "$LAT_SECS" -w "$LAT_WARMUP" \
           -p "$(pub_procs "$rate")" -f "$pf" -m "$mode" -o "$WORK/sbs_pub.txt")
  c1=$(sbs_cpu)
  [ "$load" = busy ] && busy_stop
  if [ "$sys" = edu ]; then wait_drained 120 || true; sleep 1; else sleep 3; fi
  stop_consumer
  stats=$(/usr/bin/python3 "$BENCH/latency_stats.py" "$WORK/sbs_pub.txt" "$WORK/sbs_cons.txt" \
          "$DATA/cdf_sbs_${sys}_${load}_$round.txt")
  n=$(wc -l <"$WORK/sbs_pub.txt")
  log "   $sys $load round $round: $stats"
  rec "{\"phase\": \"sbs_latency\", \"system\": \"$sys\", \"load\": \"$load\", \"round\": $round, \"rate\": $rate, $(sbs_cpu_json "$c0" "$c1" "$n"), \"loadavg\": $(loadavg), \"publisher\": $pubres, \"stats\": $stats}"
}

# sbs_drain PROFILE N ROUND: Debezium drains a backlog of N 200-byte events
sbs_drain_dbz() {
  local prof=$1 n=$2 round=$3 pf topic per=$BACKLOG_TXN clients=2 txns c0 c1 t0 t1 secs eps
  pf=$(payload_file 200)
  dbz_profile "$prof"
  topic=bench-sbs-drain-$prof-$round-$RUN_ID
  "$KU" create "$BROKER" "$topic" "$PARTITIONS"
  pgb -t 1 -f "$WORK/dbz_backlog.sql" -D "topic=$topic" -D per_txn=1 -D "payload=$(cat "$pf")" >/dev/null
  "$KU" wait "$BROKER" "$topic" 1 60 >/dev/null || die "debezium: warm-up event not delivered"
  dbz_pause
  txns=$(( (n + per * clients - 1) / (per * clients) ))
  n=$(( txns * per * clients ))
  pgb -c $clients -j $clients -t "$txns" -f "$WORK/dbz_backlog.sql" -D "topic=$topic" -D "per_txn=$per" \
      -D "payload=$(cat "$pf")" >/dev/null
  q "CHECKPOINT"
  c0=$(sbs_cpu); t0=$(now)
  dbz_resume
  t1=$("$KU" wait "$BROKER" "$topic" $((n + 1)) 900) || die "debezium did not deliver $n events"
  c1=$(sbs_cpu)
  secs=$(calc "$t1 - $t0"); eps=$(calc "round($n / ($t1 - $t0), 1)")
  log "   debezium $prof round $round: $n events in ${secs}s = $eps events/s"
  q "VACUUM dbz_outbox"   # the backlog's dead rows go, as the relay's TRUNCATE after its drain
  rec "{\"phase\": \"sbs_drain\", \"system\": \"$prof\", \"round\": $round, \"n\": $n, \"seconds\": $secs, \"events_per_s\": $eps, $(sbs_cpu_json "$c0" "$c1" "$n"), \"loadavg\": $(loadavg)}"
}

sbs_write() {   # VARIANT ROUND: publish | dbz | plain, 200 B
  local v=$1 round=$2 pf res tps lat n
  pf=$(payload_file 200)
  q "CHECKPOINT"
  res=$(pgbench_run "$WORK/$v.sql" -D "payload=$(cat "$pf")")
  read -r tps lat n <<<"$res"
  log "   write $v round $round: tps=$tps latency=$lat ms"
  rec "{\"phase\": \"sbs_write\", \"variant\": \"$v\", \"round\": $round, \"tps\": $tps, \"latency_ms\": $lat, \"transactions\": $n, \"loadavg\": $(loadavg)}"
  [ "$v" = publish ] && { wait_drained 300 || true; }
  [ "$v" = dbz ] && sleep 2
  return 0
}

phase_debezium() {
  local r rounds=${BENCH_SBS_ROUNDS:-2} n=${BENCH_SBS_DRAIN_N:-200000}
  log "6. side by side with Debezium $DBZ_VERSION (Connect $DBZ_KAFKA_VERSION): latency at ${BENCH_SBS_RATE:-1000}/s, drain of $n, write tps ($rounds rounds, interleaved)"
  dbz_profile defaults
  sbs_latency defaults quiet 1
  for r in $(seq 1 "$rounds"); do
    sbs_latency edu quiet "$r"
    sbs_latency tuned quiet "$r"
  done
  for r in $(seq 1 "${BENCH_SBS_BUSY_ROUNDS:-1}"); do
    sbs_latency edu busy "$r"
    sbs_latency tuned busy "$r"
  done
  for r in $(seq 1 "${BENCH_SBS_DRAIN_ROUNDS:-1}"); do
    tput_relay 200 "$n" $((100 + r))   # round 10x: the side-by-side drain
    sbs_drain_dbz tuned "$n" "$r"
    sbs_drain_dbz defaults "$n" "$r"
  done
  dbz_profile tuned
  for r in $(seq 1 "$rounds"); do
    sbs_write publish "$r"
    sbs_write dbz "$r"
    sbs_write plain "$r"
  done
}
