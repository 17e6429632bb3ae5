#!/usr/bin/env bash
# Sanitizer suite (issue 8): builds edu_outbox with
# -fsanitize=address,undefined, runs the unit tests, the integration tests
# and the fault suite against that build with the sanitizer runtimes
# preloaded into the server, counts the sanitizer reports (zero = pass), and
# puts the normal build back.
#
#   bash test/run.sh sanitize
#   SANITIZE_SUITES="unit integration" bash test/run.sh sanitize   (a subset)
#
# Run by test/run.sh, which exports the ports and directories (KAFKA_PORT,
# PGPORT_EDU, PGDIR_EDU, ...; the fault suite uses FAULT_*). The postmaster
# never frees its memory at exit, so leak checking is off for the server.
# Output is TAP: one line per suite run under the sanitizers, one for the
# report count. ASan's quarantine of freed memory (256 MB by default) would
# count in the relay's peak RSS, which test_delivery_loop bounds: 64 MB here.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

suites=${SANITIZE_SUITES:-unit integration faults}
WORK=$(mktemp -d /tmp/edu_outbox_sanitize.XXXXXX)
chmod 755 "$WORK"
reports=$WORK/reports
mkdir -p "$reports"
chown postgres: "$reports" 2>/dev/null
n=0
failed=0
tap() {   # tap OK|FAIL description
  n=$((n + 1))
  if [ "$1" = OK ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=$((failed + 1)); fi
}

asan=$(realpath "$(gcc -print-file-name=libasan.so)")
ubsan=$(realpath "$(gcc -print-file-name=libubsan.so)")
# ASan's runtime starts at the first malloc. In postgres that is in the
# constructor of libgpg-error (via libsystemd, libgcrypt), inside
# bindtextdomain's lock, and ASan's start-up takes that lock again: postgres
# hangs before main. A shim marked INITFIRST starts ASan before any other
# library's constructor.
cat >"$WORK/asan_first.c" <<'C'
extern void __asan_init(void);
__attribute__((constructor)) static void asan_first(void) { __asan_init(); }
C
gcc -shared -fPIC -o "$WORK/asan_first.so" "$WORK/asan_first.c" -Wl,-z,initfirst -Wl,--no-as-needed "$asan"
sanitizer_env() {   # $1: log file prefix; $2: detect_leaks
  echo "LD_PRELOAD=$asan:$WORK/asan_first.so:$ubsan" \
       "ASAN_OPTIONS=detect_leaks=$2:log_path=$reports/$1-asan:handle_segv=1:quarantine_size_mb=64" \
       "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=0:log_path=$reports/$1-ubsan"
}

restore_build() {
  make -s clean >/dev/null 2>&1
  { make -s && make -s install; } >"$WORK/restore.log" 2>&1 || cat "$WORK/restore.log"
}
cleanup() {
  scripts/pg.sh destroy >/dev/null 2>&1
  scripts/kafka.sh stop >/dev/null 2>&1
  restore_build
  if [ -n "${KEEP_TEST_DIR:-}" ]; then echo "# sanitizer dir kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

start=$(date +%s)
make -s clean >/dev/null 2>&1
if ! { make -s SANITIZE=1 && make -s SANITIZE=1 install; } >"$WORK/build.log" 2>&1; then
  sed 's/^/# /' "$WORK/build.log"; tap FAIL "sanitize: build with -fsanitize=address,undefined"; echo "1..$n"; exit 1
fi
tap OK "sanitize: build with -fsanitize=address,undefined"

# The counter must be able to fail: a planted heap overflow is found.
printf '#include <stdlib.h>\nint main(void){char *p = malloc(4); p[4] = 1; free(p); return 0;}\n' >"$WORK/planted.c"
gcc -fsanitize=address -g -o "$WORK/planted" "$WORK/planted.c" 2>/dev/null
ASAN_OPTIONS=log_path=$WORK/planted-report "$WORK/planted" 2>/dev/null
if grep -qs "ERROR: AddressSanitizer" "$WORK"/planted-report.*; then
  tap OK "sanitize: a planted heap overflow is reported"
else
  tap FAIL "sanitize: a planted heap overflow is reported"
fi

# Runs one test program and turns its TAP into a single line here.
sub_suite() {   # name command...
  local name=$1 out=$WORK/${1//\//_}.out ok nok
  shift
  "$@" >"$out" 2>&1
  ok=$(grep -cE '^ok [0-9]+' "$out" || true)
  nok=$(grep -cE '^not ok [0-9]+' "$out" || true)
  grep -E '^not ok' "$out" | sed 's/^/#   /'
  if [ "$nok" -eq 0 ] && [ "$ok" -gt 0 ] && grep -qE '^1\.\.[0-9]+' "$out"; then
    tap OK "sanitize: $name ($ok passed)"
  else
    tap FAIL "sanitize: $name ($ok passed, $nok failed)"
    tail -30 "$out" | sed 's/^/#   /'
  fi
}

for suite in $suites; do
  case $suite in
    unit)
      # shellcheck disable=SC2046
      sub_suite unit env $(sanitizer_env unit 1 | sed 's/LD_PRELOAD=[^ ]* //') \
        UNIT_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer" bash test/unit/run.sh
      ;;
    integration)
      PG_SERVER_ENV=$(sanitizer_env integration 0)
      export PG_SERVER_ENV
      if ! { scripts/kafka.sh start && scripts/pg.sh start; } >"$WORK/services.log" 2>&1; then
        sed 's/^/# /' "$WORK/services.log"; tap FAIL "sanitize: services did not start"; continue
      fi
      pm=$(head -1 "$PGDIR_EDU/data/postmaster.pid")
      if grep -q libasan "/proc/$pm/maps"; then
        tap OK "sanitize: the server runs with the sanitizer runtime loaded"
      else
        tap FAIL "sanitize: the server runs with the sanitizer runtime loaded"
      fi
      # the order of test/run.sh: test_relay, test_operations, then the rest
      for t in test_relay test_operations $(cd test/integration && ls test_*.py | sed "s/\.py$//" |
                                            grep -vx -e test_relay -e test_operations); do
        sub_suite "integration/$t" /usr/bin/python3 "test/integration/$t.py"
      done
      scripts/pg.sh destroy >/dev/null 2>&1
      scripts/kafka.sh stop >/dev/null 2>&1
      unset PG_SERVER_ENV
      ;;
    faults)
      PG_SERVER_ENV=$(sanitizer_env faults 0)
      export PG_SERVER_ENV
      sub_suite faults bash test/faults/run.sh
      unset PG_SERVER_ENV
      ;;
    *) tap FAIL "sanitize: unknown suite $suite" ;;
  esac
done

# Every report is a file named <suite>-asan.<pid> or <suite>-ubsan.<pid>.
nreports=0
for f in "$reports"/*; do
  [ -s "$f" ] || continue
  if grep -qE "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" "$f"; then
    nreports=$((nreports + 1))
    echo "# --- $(basename "$f")"
    head -40 "$f" | sed 's/^/#   /'
  fi
done
if [ "$nreports" -eq 0 ]; then
  tap OK "sanitize: no sanitizer reports ($suites)"
else
  tap FAIL "sanitize: $nreports sanitizer report(s) ($suites)"
fi
echo "# sanitizer suite finished in $(( $(date +%s) - start ))s"
echo "1..$n"
[ "$failed" -eq 0 ]
