#!/usr/bin/env bash
# End-to-end test of examples/nextjs-prisma: a real Next.js server (Prisma 7 +
# @prisma/adapter-pg) writes to PostgreSQL, edu_outbox relays to a real Kafka
# broker, and the example's KafkaJS consumer checks what arrives (e2e.mjs).
# Then Debian's Chromium, driven by playwright-core, clicks through the learner
# page while two notification services (notifier/) push to it over Socket.IO
# (browser.mjs).
#
# Kafka and PostgreSQL must already run (test/run.sh starts them). Environment,
# as for test/integration: KAFKA_PORT, PGPORT_EDU, PGDIR_EDU, OUTBOX_DB, and for
# stopping/starting the broker with scripts/kafka.sh: KAFKA_HOME_DIR.
# Optional: E2E_PORT (3107) for `next start`; another free port is used if it
# is taken. The two notifiers listen on E2E_NOTIFIER_PORTS (E2E_PORT+1,+2).
# CHROMIUM (/usr/bin/chromium). MEASURE_LATENCY=N: also measure commit-to-DOM
# latency over N events (test/e2e/latency.mjs). SCREENSHOT_OUT: where to copy
# the screenshot of the learner page. E2E_PARTS ("api browser"): which of the
# two to run. The app's tables are dropped and recreated in $OUTBOX_DB (the relay
# only serves that database).
#
# Needs Node.js >= 20.19 with npm (the npm registry is used once, by npm ci).
# Prints TAP ("ok N - ...", "1..N") and exits non-zero on any failure.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
APP=$ROOT/examples/nextjs-prisma
HERE=$ROOT/test/e2e
: "${KAFKA_PORT:?KAFKA_PORT is not set}" "${PGPORT_EDU:?PGPORT_EDU is not set}"
: "${PGDIR_EDU:?PGDIR_EDU is not set}" "${OUTBOX_DB:?OUTBOX_DB is not set}"
export KAFKA_PORT PGPORT_EDU PGDIR_EDU OUTBOX_DB
export NEXT_TELEMETRY_DISABLED=1
export DATABASE_URL="postgresql://postgres@127.0.0.1:$PGPORT_EDU/$OUTBOX_DB"
# `prisma generate` downloads a schema-engine binary unless this names a file;
# generating the client does not run it.
export PRISMA_SCHEMA_ENGINE_BINARY=${PRISMA_SCHEMA_ENGINE_BINARY:-$(type -P true)}

PGBIN=$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)
LOG=$(mktemp -d /tmp/edu_outbox_e2e.XXXXXX)
server_pid=

cleanup() {
  # Interrupted while the test had the broker stopped: start it again.
  if [ -f "$LOG/kafka-stopped" ]; then bash "$ROOT/scripts/kafka.sh" start >/dev/null 2>&1; fi
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM -- "-$server_pid" 2>/dev/null || kill -TERM "$server_pid" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$server_pid" 2>/dev/null || true
  fi
  # Notifiers left behind by a browser.mjs that did not finish.
  for f in "$LOG"/notifier-*.pid; do
    [ -f "$f" ] && kill -TERM "$(cat "$f")" 2>/dev/null
  done
  if [ -n "${KEEP_TEST_DIR:-}" ]; then echo "# e2e logs kept in $LOG"; else rm -rf "$LOG"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A setup step that fails is reported as one failed test, with its log.
setup_failed() {
  echo "not ok 1 - setup: $1"
  [ -f "$2" ] && tail -40 "$2" | sed 's/^/#   /'
  echo "1..1"
  exit 1
}

step() { # step NAME LOGFILE COMMAND...
  local name=$1 log=$2; shift 2
  local t0=$SECONDS
  "$@" >"$log" 2>&1 || setup_failed "$name" "$log"
  echo "# $name ($((SECONDS - t0))s)"
}

cd "$APP"

check_node() {
  command -v node && command -v npm || { echo "node and npm are required"; return 1; }
  node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' ||
    { echo "Node.js >= 20.19 is required (Prisma 7), found $(node --version)"; return 1; }
}
step "node $(node --version 2>/dev/null), npm $(npm --version 2>/dev/null)" "$LOG/node.log" check_node

# npm ci only when package-lock.json changed since the last install. No install
# scripts: the only ones are Prisma's, which would fetch engine binaries that
# the driver-adapter client does not use.
install_deps() {
  local want have=
  want=$(sha256sum package-lock.json | cut -d' ' -f1)
  [ -f node_modules/.e2e-lock-sha256 ] && have=$(cat node_modules/.e2e-lock-sha256)
  if [ "$want" = "$have" ] && [ -x node_modules/.bin/next ]; then echo "node_modules up to date"; return 0; fi
  npm ci --ignore-scripts --no-audit --no-fund --prefer-offline && echo "$want" >node_modules/.e2e-lock-sha256
}
step "npm ci" "$LOG/npm.log" install_deps
step "prisma generate (offline)" "$LOG/generate.log" node_modules/.bin/prisma generate
step "next build" "$LOG/build.log" node_modules/.bin/next build

apply_schema() {
  local psql=("$PGBIN/psql" -h "$PGDIR_EDU" -p "$PGPORT_EDU" -U postgres -d "$OUTBOX_DB" -v ON_ERROR_STOP=1 -q)
  "${psql[@]}" -c 'DROP TABLE IF EXISTS "Notification", "LessonCompletion", "Enrollment", "Course", "User", socket_io_attachments CASCADE' -c 'DROP TYPE IF EXISTS "Role"' &&
    "${psql[@]}" -f prisma/schema.sql &&
    # Distinct id ranges, so that a user id can never pass for a course id.
    "${psql[@]}" -c "SELECT setval('\"User_id_seq\"', 1000), setval('\"Course_id_seq\"', 200), setval('\"Enrollment_id_seq\"', 5000)"
}
step "schema.sql applied to $OUTBOX_DB" "$LOG/schema.log" apply_schema

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
PORT=${E2E_PORT:-3107}
if ! port_free "$PORT"; then
  PORT=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
fi

NOTIFIER_PORTS=${E2E_NOTIFIER_PORTS:-$((PORT + 1)),$((PORT + 2))}
export NOTIFIER_PORTS
export NOTIFIER_URLS="http://127.0.0.1:${NOTIFIER_PORTS%,*},http://127.0.0.1:${NOTIFIER_PORTS#*,}"

start_server() {
  setsid node_modules/.bin/next start -H 127.0.0.1 -p "$PORT" >"$LOG/server.log" 2>&1 </dev/null &
  server_pid=$!
  for _ in $(seq 1 100); do
    kill -0 "$server_pid" 2>/dev/null || { echo "next start exited"; return 1; }
    node -e 'fetch(process.argv[1]).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' \
      "http://127.0.0.1:$PORT/" 2>/dev/null && return 0
    sleep 0.2
  done
  echo "next start did not answer within 20s"; return 1
}
start_server >"$LOG/start.log" 2>&1 || { cat "$LOG/server.log" >>"$LOG/start.log"; setup_failed "next start on port $PORT" "$LOG/start.log"; }
echo "# next start on http://127.0.0.1:$PORT"

export APP_URL="http://127.0.0.1:$PORT" ROOT="$ROOT" STATE_DIR="$LOG"
rc=0
# E2E_PARTS=browser skips e2e.mjs (when working on the browser test).
if [[ " ${E2E_PARTS:-api browser} " == *" api "* ]]; then
  TAP_PLAN_FILE="$LOG/e2e-count" node "$HERE/e2e.mjs" || rc=1
fi
# The browser test continues the numbering and prints the plan for both.
if [ -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
  TAP_START=$(cat "$LOG/e2e-count" 2>/dev/null || echo 0) node "$HERE/browser.mjs" || rc=1
else
  n=$(( $(cat "$LOG/e2e-count" 2>/dev/null || echo 0) + 1 ))
  echo "not ok $n - browser: ${CHROMIUM:-/usr/bin/chromium} is missing (scripts/install-deps.sh installs Debian's chromium)"
  echo "1..$n"; rc=1
fi
if [ $rc -ne 0 ]; then
  echo "# last lines of the Next.js server log:"
  tail -30 "$LOG/server.log" | sed 's/^/#   /'
fi
exit $rc
