#!/usr/bin/env bash
# Fault-injection suite: starts its own Kafka broker and PostgreSQL cluster,
# runs the scenarios of test/faults/faults.py (TAP output plus one
# "scenario=... written=... lost=... phantom=... order_violations=... duplicates=..."
# line each) and tears everything down, also on failure or Ctrl-C.
#
#   bash test/faults/run.sh [SCENARIO...]
#
# The extension must already be built and installed (make && make install).
# Ports (override with the variables in brackets): Kafka 41092/41093
# [FAULT_KAFKA_PORT], PostgreSQL 54370 [FAULT_PG_PORT], three-node cluster
# 41101-41103/41111-41113 [FAULT_CLUSTER_PORT=41100], SASL_SSL broker
# 41200-41202 [FAULT_SECURE_PORT=41200], standby of the failover scenarios
# PostgreSQL port + 1 [FAULT_STANDBY_PORT]. See test/faults/README.md for the knobs.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

WORK=$(mktemp -d /tmp/edu_outbox_faults.XXXXXX)
chmod 755 "$WORK"
export KAFKA_PORT=${FAULT_KAFKA_PORT:-41092}
export KAFKA_HOME_DIR=$WORK/kafka
export PGPORT_EDU=${FAULT_PG_PORT:-54370}
export PGDIR_EDU=$WORK/pg
export OUTBOX_DB=faults
export KAFKA_CLUSTER_PORT=${FAULT_CLUSTER_PORT:-41100}
export KAFKA_CLUSTER_DIR=$WORK/cluster
export KAFKA_SECURE_PORT=${FAULT_SECURE_PORT:-41200}
export KAFKA_SECURE_DIR=$WORK/secure
export FAULT_STANDBY_PORT=${FAULT_STANDBY_PORT:-$((PGPORT_EDU + 1))}
export FAULT_STANDBY_DIR=$WORK/pg-standby

cleanup() {
  cp "$PGDIR_EDU/server.log" "$WORK/server.log" 2>/dev/null
  scripts/pg.sh destroy >/dev/null 2>&1
  PGDIR_EDU=$FAULT_STANDBY_DIR PGPORT_EDU=$FAULT_STANDBY_PORT scripts/pg.sh destroy >/dev/null 2>&1
  scripts/kafka.sh stop >/dev/null 2>&1
  scripts/kafka-cluster.sh destroy >/dev/null 2>&1
  scripts/kafka-secure.sh destroy >/dev/null 2>&1
  if [ -n "${KEEP_TEST_DIR:-}" ]; then echo "# test dir kept: $WORK"; else rm -rf "$WORK"; fi
}
child=
trap cleanup EXIT
# the suite runs in the background so that a signal is handled at once, not when it ends
trap '[ -n "$child" ] && { kill -TERM "$child" 2>/dev/null; wait "$child"; }; exit 130' INT TERM

start=$(date +%s)
if ! scripts/kafka.sh start >"$WORK/kafka-start.log" 2>&1; then
  cat "$WORK/kafka-start.log"; echo "not ok 1 - services: Kafka did not start"; echo "1..1"; exit 1
fi
if ! scripts/pg.sh start >"$WORK/pg-start.log" 2>&1; then
  cat "$WORK/pg-start.log"; echo "not ok 1 - services: PostgreSQL did not start"; echo "1..1"; exit 1
fi

/usr/bin/python3 -u test/faults/faults.py "$@" &
child=$!
wait "$child"
rc=$?
child=
echo "# fault suite finished in $(( $(date +%s) - start ))s"
if [ $rc -ne 0 ] && [ -f "$PGDIR_EDU/server.log" ]; then
  echo "# --- last server log lines"
  tail -40 "$PGDIR_EDU/server.log" | sed 's/^/# /'
fi
exit $rc
