#!/usr/bin/env bash
# Runs every edu_outbox test against real servers and prints "N passed, N failed".
#
#   bash test/run.sh            all suites
#   bash test/run.sh SUITE...   some of: unit regress integration e2e faults matrix sanitize
#
# sanitize (not in the default list) rebuilds with -fsanitize=address,undefined
# and runs unit, integration and faults again under the sanitizers.
#
# It installs missing dependencies, builds and installs the extension, then
# starts its own Kafka broker and PostgreSQL cluster (own ports, temp dirs)
# and removes them afterwards. EDU_OUTBOX_NO_DEPS=1 skips the installing
# (scripts/matrix.sh runs this script so inside its Debian root filesystems).
#
# Kafka versions: unit/regress/integration/e2e use KAFKA_VERSION (default
# 3.9.1, scripts/kafka/pom.xml), faults FAULTS_KAFKA_VERSION (default 4.4.0,
# the newest 4.x), matrix its own (scripts/matrix.sh list).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

suites=("$@")
[ ${#suites[@]} -eq 0 ] && suites=(unit regress integration e2e faults matrix)
FAULTS_KAFKA_VERSION=${FAULTS_KAFKA_VERSION:-4.4.0}

passed=0
failed=0
failures=()

# Counts TAP lines ("ok N", "not ok N") from a suite's output.
count_tap() {
  local name=$1 out=$2 ok nok
  ok=$(grep -cE '^ok [0-9]+' "$out" || true)
  nok=$(grep -cE '^not ok [0-9]+' "$out" || true)
  passed=$((passed + ok))
  failed=$((failed + nok))
  while read -r line; do failures+=("$name: $line"); done < <(grep -E '^not ok [0-9]+' "$out" || true)
}

fail_suite() {
  failed=$((failed + 1))
  failures+=("$1")
}

if [ -z "${EDU_OUTBOX_NO_DEPS:-}" ]; then
  bash scripts/install-deps.sh || { echo "install-deps failed"; echo "0 passed, 1 failed"; exit 1; }
fi
build_log=$(mktemp)
if ! make -s >"$build_log" 2>&1 || ! make -s install >>"$build_log" 2>&1; then
  cat "$build_log"; echo "build failed"; echo "$passed passed, 1 failed"; exit 1
fi
if grep -E "warning:" "$build_log"; then
  fail_suite "build: compiler warnings"
fi
rm -f "$build_log"

WORK=$(mktemp -d /tmp/edu_outbox_test.XXXXXX)
chmod 755 "$WORK"
export KAFKA_PORT=${TEST_KAFKA_PORT:-19092}
export KAFKA_HOME_DIR=$WORK/kafka
export PGPORT_EDU=${TEST_PG_PORT:-54339}
export PGDIR_EDU=$WORK/pg
export OUTBOX_DB=outbox_test

cleanup() {
  scripts/pg.sh destroy >/dev/null 2>&1
  scripts/kafka.sh stop >/dev/null 2>&1
  if [ -n "${KEEP_TEST_DIR:-}" ]; then echo "test dir kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

services_up=
start_services() {
  [ -n "$services_up" ] && return 0
  scripts/kafka.sh start >/dev/null && scripts/pg.sh start >/dev/null || return 1
  services_up=1
}

# Suites that start their own servers stop ours first, to spare the CPU.
stop_services() {
  [ -n "$services_up" ] || return 0
  scripts/pg.sh destroy >/dev/null 2>&1; scripts/kafka.sh stop >/dev/null 2>&1; services_up=
}

# run_tap NAME OUT CMD...: runs a command whose output is TAP, shows it and counts it.
run_tap() {
  local name=$1 out=$2; shift 2
  "$@" >"$out" 2>&1
  cat "$out"
  count_tap "$name" "$out"
  grep -qE '^1\.\.[0-9]+' "$out" || fail_suite "$name: did not finish"
}

for suite in "${suites[@]}"; do
  out=$WORK/$suite.out
  echo "== $suite"
  case $suite in
    unit)
      run_tap unit "$out" bash test/unit/run.sh
      ;;
    regress)
      if ! start_services; then fail_suite "regress: services did not start"; continue; fi
      make -s installcheck PGHOST="$PGDIR_EDU" PGPORT="$PGPORT_EDU" PGUSER=postgres >"$out" 2>&1
      cat "$out"
      # PostgreSQL 15 prints "test NAME ... ok", 16 and later TAP ("ok N - NAME")
      ok=$(grep -cE '^(test| ) *[a-z_]+ +\.\.\. ok|^ok [0-9]+ ' "$out" || true)
      nok=$(grep -cE '\.\.\. FAILED|^not ok [0-9]+ ' "$out" || true)
      passed=$((passed + ok)); failed=$((failed + nok))
      [ "$nok" -gt 0 ] && { failures+=("regress: see regression.diffs"); cat regression.diffs 2>/dev/null | head -100; }
      [ $((ok + nok)) -eq 0 ] && fail_suite "regress: no test ran"
      ;;
    integration)
      if ! start_services; then fail_suite "integration: services did not start"; continue; fi
      # test_relay first (it creates the extension after checking that the worker waits for
      # it), then test_operations (its dead-letter tests expect none left by others), then the rest
      # INTEGRATION_ONLY="test_relay test_x" runs just those files, in that order
      for t in ${INTEGRATION_ONLY:-test_relay test_operations $(cd test/integration && ls test_*.py |
                                   sed "s/\.py$//" | grep -vx -e test_relay -e test_operations)}; do
        run_tap "integration/$t" "$out.$t" /usr/bin/python3 "test/integration/$t.py"
      done
      ;;
    e2e)
      # Next.js + Prisma + KafkaJS example, against the same services
      if ! start_services; then fail_suite "e2e: services did not start"; continue; fi
      run_tap e2e "$out" bash test/e2e/run.sh
      ;;
    faults)
      # starts (and removes) its own brokers and cluster: stop ours first to spare the CPU
      stop_services
      echo "# Kafka $FAULTS_KAFKA_VERSION"
      if ! KAFKA_VERSION=$FAULTS_KAFKA_VERSION scripts/kafka.sh fetch >/dev/null; then
        fail_suite "faults: Kafka $FAULTS_KAFKA_VERSION jars not fetched"; continue
      fi
      run_tap faults "$out" env KAFKA_VERSION="$FAULTS_KAFKA_VERSION" bash test/faults/run.sh
      ;;
    matrix)
      # Debian 13 and unstable in chroots (scripts/matrix.sh), on the same ports
      stop_services
      run_tap matrix "$out" bash scripts/matrix.sh run
      ;;
    sanitize)
      # rebuilds the extension and restarts the services with the sanitizer runtimes
      stop_services
      run_tap sanitize "$out" bash test/sanitize.sh
      ;;
    *) fail_suite "unknown suite $suite" ;;
  esac
done

if [ ${#failures[@]} -gt 0 ]; then
  echo "failures:"
  printf '  %s\n' "${failures[@]}"
  [ -f "$PGDIR_EDU/server.log" ] && { echo "--- last server log lines"; tail -40 "$PGDIR_EDU/server.log"; }
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
