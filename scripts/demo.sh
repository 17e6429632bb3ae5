#!/usr/bin/env bash
# End-to-end demo on a fresh Debian machine (as root): installs what is
# needed, builds and installs edu_outbox, starts a local Kafka broker and a
# PostgreSQL 15 cluster with the extension preloaded, publishes events inside
# transactions and shows them consumed from Kafka.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Installing dependencies (apt, Maven Central)"
bash scripts/install-deps.sh

step "Building and installing the extension"
make -s
make -s install

step "Starting Kafka (127.0.0.1:${KAFKA_PORT:-9092}) and PostgreSQL (port ${PGPORT_EDU:-54329})"
scripts/kafka.sh start
scripts/pg.sh start

run=$(date +%s)
step "Publishing events inside transactions (demo run $run)"
scripts/pg.sh psql -v ON_ERROR_STOP=1 -v run="$run" <<'SQL'
CREATE EXTENSION IF NOT EXISTS edu_outbox;

-- The app's own table, written in the same transaction as the event.
CREATE TABLE IF NOT EXISTS users (id bigserial PRIMARY KEY, email text NOT NULL);

BEGIN;
INSERT INTO users (email) VALUES ('ada@example.edu');
SELECT outbox_publish('user-events',
       jsonb_build_object('type', 'user_registered', 'userId', currval('users_id_seq'), 'demoRun', :'run'),
       currval('users_id_seq')::text,
       '{"source": "demo"}') AS event_id;
COMMIT;

BEGIN;
SELECT outbox_publish('user-events',
       jsonb_build_object('type', 'course_enrolled', 'userId', currval('users_id_seq'), 'course', 'SQL-101', 'demoRun', :'run'),
       currval('users_id_seq')::text) AS event_id;
COMMIT;

-- This transaction rolls back: its event must never reach Kafka.
BEGIN;
SELECT outbox_publish('user-events',
       jsonb_build_object('type', 'never_sent', 'demoRun', :'run'), 'rolled-back') AS event_id;
ROLLBACK;

BEGIN;
SELECT outbox_publish('user-events',
       jsonb_build_object('type', 'course_completed', 'userId', currval('users_id_seq'), 'course', 'SQL-101', 'demoRun', :'run'),
       currval('users_id_seq')::text) AS event_id;
COMMIT;
SQL

step "Consuming user-events from Kafka with kcat"
got=""
for _ in $(seq 1 60); do
  got=$(kcat -b "127.0.0.1:${KAFKA_PORT:-9092}" -C -t user-events -o beginning -e -q \
          -f 'partition=%p offset=%o key=%k headers=%h\n  value=%s\n' 2>/dev/null |
        grep -B1 "\"demoRun\": \"$run\"" || true)
  [ "$(grep -c 'value=' <<<"$got")" -ge 3 ] && break
  sleep 0.5
done
echo "$got"
n=$(grep -c 'value=' <<<"$got" || true)
if [ "$n" -ne 3 ] || grep -q never_sent <<<"$got"; then
  echo "demo: expected exactly the 3 committed events, got $n" >&2
  exit 1
fi

step "Relay status"
scripts/pg.sh psql -c "SELECT pid, backend_type, state, query FROM pg_stat_activity WHERE backend_type = 'edu_outbox relay'"

cat <<EOF

Demo complete: 3 committed events arrived in Kafka in commit order; the rolled-back one did not.
  psql:          scripts/pg.sh psql
  consume:       kcat -b 127.0.0.1:${KAFKA_PORT:-9092} -C -t user-events -o beginning
  stop services: scripts/pg.sh stop && scripts/kafka.sh stop
EOF
