#!/usr/bin/env bash
# How the relay's librdkafka recovers from a broker SIGKILL (bench/broker_kill.py),
# in the environment this runs in. Builds and installs the extension, starts a
# broker (KAFKA_VERSION) and a cluster on TEST_KAFKA_PORT / TEST_PG_PORT, and
# removes them afterwards. For the Debian 13 / unstable chroots:
#
#   scripts/matrix.sh exec trixie bash bench/broker_kill.sh
#   bash bench/broker_kill.sh              (the host)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
make -s >/dev/null && make -s install >/dev/null
WORK=$(mktemp -d /tmp/edu_outbox_bench_kill.XXXXXX)
chmod 755 "$WORK"
export KAFKA_PORT=${TEST_KAFKA_PORT:-19092} KAFKA_HOME_DIR=$WORK/kafka
export PGPORT_EDU=${TEST_PG_PORT:-54339} PGDIR_EDU=$WORK/pg OUTBOX_DB=bench_kill
trap 'scripts/pg.sh destroy >/dev/null 2>&1; scripts/kafka.sh destroy >/dev/null 2>&1; rm -rf "$WORK"' EXIT
scripts/kafka.sh start >/dev/null
scripts/pg.sh start >/dev/null
scripts/pg.sh psql -qc "CREATE EXTENSION edu_outbox" >/dev/null
rdk=$(dpkg-query -W -f '${Version}' librdkafka1 2>/dev/null || echo unknown)
pg=$(pg_config --version | awk '{print $2}')
LABEL="librdkafka=${rdk%%-*} pg=$pg kafka=${KAFKA_VERSION:-default}" /usr/bin/python3 bench/broker_kill.py
