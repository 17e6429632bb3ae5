#!/usr/bin/env bash
# Builds and tests edu_outbox on the Debian releases users run, each in a
# root filesystem made with debootstrap from Debian's archive and entered with
# chroot (run as root):
#
#   scripts/matrix.sh [run] [ENV...]   build the extension and run the suites
#   scripts/matrix.sh build [ENV...]   only make (or refresh) the root filesystems
#   scripts/matrix.sh list             environments and what they contain
#   scripts/matrix.sh exec ENV CMD...  run CMD in ENV (in a copy of this checkout)
#
# ENV is one of: trixie (Debian 13, PostgreSQL 17, librdkafka 2.8) and
# sid (Debian unstable, PostgreSQL 18, librdkafka 2.14); default: both.
# The host itself (Debian 12, PostgreSQL 15, librdkafka 2.0.2) is what
# test/run.sh tests directly.
#
# Root filesystems are cached in $MATRIX_CACHE (/var/cache/edu_outbox) and
# rebuilt when their package list changes. Kafka is not installed in them: the
# host's Java and the project's jar cache are mounted read-only, so the
# project's own scripts/kafka.sh starts the broker inside the chroot's view,
# on the shared network: trixie against Kafka 4.0.2 (MATRIX_KAFKA_TRIXIE), sid
# against the newest 4.x, 4.4.0 (MATRIX_KAFKA_NEWEST).
#
# In each environment the suites MATRIX_SUITES (unit regress integration) run
# through test/run.sh with EDU_OUTBOX_NO_DEPS=1 (no apt, no Maven in there).
# Output is TAP, each line prefixed with the environment, and the closing
# "N passed, N failed" sums all environments.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)

CACHE_DIR=${MATRIX_CACHE:-/var/cache/edu_outbox}
MIRROR=${MATRIX_MIRROR:-http://deb.debian.org/debian}
MATRIX_SUITES=${MATRIX_SUITES:-unit regress integration}
ALL_ENVS=(trixie sid)

env_pg() {
  case $1 in
    trixie) echo 17 ;;
    sid) echo 18 ;;
    *) return 1 ;;
  esac
}

env_packages() {
  local v
  v=$(env_pg "$1") || return 1
  echo "build-essential postgresql-$v postgresql-server-dev-$v librdkafka-dev" \
       "libjansson-dev kcat python3 python3-psycopg2 ca-certificates"
}

# build_rootfs ENV: debootstraps the environment into a temporary directory
# and moves it into the cache when complete, so an interrupted build never
# leaves a half-made root filesystem behind.
build_rootfs() {
  local env=$1 dest pkgs stamp tmp t0
  dest=$CACHE_DIR/rootfs-$env
  pkgs=$(env_packages "$env") || { echo "matrix: unknown environment $env" >&2; return 2; }
  stamp="$env $MIRROR $pkgs"
  if [ -f "$dest/.edu_outbox-stamp" ] && [ "$(cat "$dest/.edu_outbox-stamp")" = "$stamp" ]; then
    return 0
  fi
  command -v debootstrap >/dev/null || {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null || return 1
  }
  mkdir -p "$CACHE_DIR"
  tmp=$(mktemp -d "$CACHE_DIR/.build-$env.XXXXXX")
  t0=$(date +%s)
  echo "matrix: building $env root filesystem (debootstrap $env from $MIRROR)" >&2
  if ! debootstrap --variant=minbase "$env" "$tmp" "$MIRROR" >"$tmp.log" 2>&1; then
    tail -20 "$tmp.log" >&2; rm -rf "$tmp"; return 1
  fi
  # no service starts from package scripts; no "main" cluster either
  printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"
  chmod 755 "$tmp/usr/sbin/policy-rc.d"
  mkdir -p "$tmp/etc/postgresql-common"
  echo "create_main_cluster = false" >"$tmp/etc/postgresql-common/createcluster.conf"
  # shellcheck disable=SC2086
  if ! in_ns "$tmp" "" sh -c "export DEBIAN_FRONTEND=noninteractive;
        apt-get -o Acquire::Check-Valid-Until=false update -qq && apt-get install -y -qq --no-install-recommends $pkgs && apt-get clean" \
        >>"$tmp.log" 2>&1; then
    tail -20 "$tmp.log" >&2; rm -rf "$tmp"; return 1
  fi
  echo "$stamp" >"$tmp/.edu_outbox-stamp"
  rm -rf "$dest"
  mv "$tmp" "$dest"
  rm -f "$tmp.log"
  echo "matrix: $env ready in $(( $(date +%s) - t0 )) s" >&2
}

# in_ns ROOTFS SRC CMD...: runs CMD chrooted in ROOTFS inside a private mount
# namespace (the mounts vanish with it): /proc, tmpfs on /dev/shm and /tmp,
# the host's resolv.conf, Java and the Kafka jar cache read-only. With SRC
# (a checkout), the root filesystem is an overlay whose changes live in
# memory (the cache stays as built), and SRC's files are copied to /tmp/src.
in_ns() {
  local r=$1 src=$2; shift 2
  unshare --mount --propagation private -- /bin/bash -s "$r" "$src" "$@" <<'NS'
set -e
r=$1 src=$2; shift 2
if [ -n "$src" ]; then
  ov=$(mktemp -d /tmp/edu_outbox_matrix.XXXXXX)
  mount -t tmpfs ov "$ov"
  mkdir "$ov/upper" "$ov/work" "$ov/root"
  mount -t overlay overlay -o "lowerdir=$r,upperdir=$ov/upper,workdir=$ov/work" "$ov/root"
  r=$ov/root
fi
mount -t proc proc "$r/proc"
mkdir -p "$r/dev/shm" "$r/dev/pts"
mount -t tmpfs -o mode=1777 shm "$r/dev/shm"
mount -t tmpfs -o mode=1777 tmp "$r/tmp"
for n in null zero full random urandom tty; do
  [ -c "$r/dev/$n" ] || { rm -f "$r/dev/$n"; touch "$r/dev/$n"; mount --bind "/dev/$n" "$r/dev/$n"; }
done
cp /etc/resolv.conf "$r/etc/resolv.conf" 2>/dev/null || true
ro_bind() { [ -e "$1" ] || return 0; mkdir -p "$r$1"; mount --bind "$1" "$r$1"; mount -o remount,bind,ro "$r$1"; }
ro_bind /usr/lib/jvm
ro_bind /etc/java-17-openjdk
ro_bind /etc/ssl/certs/java
if [ -n "$src" ]; then
  [ -n "${EDU_OUTBOX_CACHE:-}" ] && ro_bind "$EDU_OUTBOX_CACHE"
  mkdir "$r/tmp/src"
  # the checkout's files as they are now, without its build products
  if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
    (cd "$src" && git ls-files -z -co --exclude-standard | tar --null -T - -cf -) | tar -xf - -C "$r/tmp/src"
  else
    tar -C "$src" --exclude=.git --exclude='*.o' --exclude='*.so' --exclude='*.bc' -cf - . | tar -xf - -C "$r/tmp/src"
  fi
  rmdir "$r/tmp/src/.git" 2>/dev/null || true
fi
exec chroot "$r" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  HOME=/root LANG=C.UTF-8 "$@"
NS
}

# kafka_for ENV: the Kafka broker each environment is tested against, so that
# 4.0 and the newest 4.x are both exercised (the host covers 3.9).
kafka_for() {
  case $1 in
    trixie) echo "${MATRIX_KAFKA_TRIXIE:-4.0.2}" ;;
    *) echo "${MATRIX_KAFKA_NEWEST:-4.4.0}" ;;
  esac
}

passed=0
failed=0
n=0
tap() { # tap OK|FAIL DESCRIPTION
  n=$((n + 1))
  if [ "$1" = OK ]; then passed=$((passed + 1)); echo "ok $n - $2"
  else failed=$((failed + 1)); echo "not ok $n - $2"; fi
}

# in_env ENV CMD...: runs CMD in ENV's root filesystem (an in-memory overlay)
# with this checkout in /tmp/src, Kafka KAFKA_VERSION's jars and the host's Java
# at hand, and the test ports of the environment passed on.
in_env() {
  local env=$1 kv=${KAFKA_VERSION:-} cache java_bin; shift
  [ -n "$kv" ] || kv=$(kafka_for "$env")
  cache=${EDU_OUTBOX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edu_outbox}
  EDU_OUTBOX_CACHE=$cache KAFKA_VERSION=$kv "$ROOT/scripts/kafka.sh" fetch >/dev/null ||
    { echo "matrix: Kafka $kv jars fetched: no" >&2; echo "Kafka $kv jars fetched: no"; return 1; }
  java_bin=$(dirname "$(readlink -f "$(command -v java)")")
  EDU_OUTBOX_CACHE=$cache in_ns "$CACHE_DIR/rootfs-$env" "$ROOT" \
    PATH="/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$java_bin" \
    EDU_OUTBOX_CACHE="$cache" EDU_OUTBOX_NO_DEPS=1 KAFKA_VERSION="$kv" \
    TEST_KAFKA_PORT="${TEST_KAFKA_PORT:-19092}" TEST_PG_PORT="${TEST_PG_PORT:-54339}" \
    /bin/sh -c 'cd /tmp/src && exec "$@"' sh "$@"
}

# desc TEXT: a TAP description without pg_regress's timing and padding
desc() { sed -E 's/ +[0-9]+ ms$//; s/ +/ /g' <<<"$1"; }

# run_env ENV: the suites in ENV; its output becomes TAP lines tagged [ENV].
run_env() {
  local env=$1 kv out t0 line ok nok sum_p sum_f
  kv=$(kafka_for "$env")
  out=$(mktemp /tmp/edu_outbox_matrix_"$env".XXXXXX)
  t0=$(date +%s)
  echo "# == $env: build rootfs"
  if ! build_rootfs "$env"; then tap FAIL "[$env] root filesystem built"; rm -f "$out"; return; fi
  echo "# == $env: PostgreSQL $(env_pg "$env"), Kafka $kv, suites $MATRIX_SUITES"
  # shellcheck disable=SC2086
  if ! KAFKA_VERSION=$kv in_env "$env" /bin/bash /tmp/src/test/run.sh $MATRIX_SUITES >"$out" 2>&1; then
    grep -q "Kafka .* jars fetched" "$out" && { tap FAIL "[$env] Kafka $kv jars fetched"; rm -f "$out"; return; }
  fi
  sed 's/^/#   /' "$out"
  # every pass and failure the inner run counted, as TAP tagged with the environment
  ok=0; nok=0
  while IFS= read -r line; do
    case $line in
      "ok "[0-9]*) tap OK "[$env] $(desc "${line#ok * - }")"; ok=$((ok + 1)) ;;
      "not ok "[0-9]*) tap FAIL "[$env] $(desc "${line#not ok * - }")"; nok=$((nok + 1)) ;;
      "test "*" ... ok"*|" "*" ... ok"*)
        line=${line#test }; line=${line# }; tap OK "[$env] regress ${line%% *}"; ok=$((ok + 1)) ;;
      *"... FAILED"*)
        line=${line#test }; line=${line# }; tap FAIL "[$env] regress ${line%% *}"; nok=$((nok + 1)) ;;
    esac
  done < <(grep -E '^(ok [0-9]|not ok [0-9])|\.\.\. (ok|FAILED)' "$out")
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -1)
  if [ -z "$line" ]; then
    tap FAIL "[$env] test run finished"
  else
    sum_p=${line%% passed*}; sum_f=${line#* passed, }; sum_f=${sum_f%% failed}
    # failures outside TAP: build, compiler warnings, a suite that did not finish
    while IFS= read -r line; do
      tap FAIL "[$env] $line"; nok=$((nok + 1))
    done < <(sed -n '/^failures:/,/^---/p' "$out" | grep '^  ' | sed 's/^ *//' |
             grep -v ': not ok \|^regress: see regression.diffs' || true)
    [ "$nok" -eq "$sum_f" ] || tap FAIL "[$env] counted $nok failures, the run said $sum_f"
    [ "$ok" -eq "$sum_p" ] || tap FAIL "[$env] counted $ok passes, the run said $sum_p"
  fi
  echo "# == $env: $(( $(date +%s) - t0 )) s"
  rm -f "$out"
}

cmd=${1:-run}
case $cmd in
  run|build|list|exec) shift || true ;;
  *) cmd=run ;;
esac
envs=("$@")
[ ${#envs[@]} -eq 0 ] && envs=("${ALL_ENVS[@]}")

case $cmd in
  build)
    rc=0
    for e in "${envs[@]}"; do build_rootfs "$e" || rc=1; done
    exit $rc ;;
  exec)
    [ $# -ge 2 ] || { echo "usage: $0 exec ENV CMD..." >&2; exit 2; }
    build_rootfs "$1" || exit 1
    in_env "$@"
    exit ;;
  list)
    for e in "${ALL_ENVS[@]}"; do
      echo "$e: PostgreSQL $(env_pg "$e"), Kafka $(kafka_for "$e"), packages: $(env_packages "$e")"
    done
    exit 0 ;;
esac

[ "$(id -u)" = 0 ] || { echo "matrix: run as root (debootstrap, chroot, mounts)" >&2; exit 1; }
for e in "${envs[@]}"; do run_env "$e"; done
echo "1..$n"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
