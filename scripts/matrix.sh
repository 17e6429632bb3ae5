#!/usr/bin/env bash
# Builds and tests edu_outbox on the Debian releases users run, each in a
# root filesystem made with debootstrap from Debian's archive and entered with
# chroot (run as root):
#
#   scripts/matrix.sh [run] [ENV...]   build the extension and run the suites
#   scripts/matrix.sh build [ENV...]   only make (or refresh) the root filesystems
#   scripts/matrix.sh list             environments and what they contain
#
# ENV is one of: trixie (Debian 13, PostgreSQL 17, librdkafka 2.8) and
# sid (Debian unstable, PostgreSQL 18, librdkafka 2.14); default: both.
# The host itself (Debian 12, PostgreSQL 15, librdkafka 2.0.2) is what
# test/run.sh tests directly.
#
# Root filesystems are cached in $MATRIX_CACHE (/var/cache/edu_outbox) and
# rebuilt when their package list changes. Kafka is not installed in them: the
# host's Java and the project's jar cache are mounted read-only, so the
# project's own scripts/kafka.sh starts the broker (KAFKA_VERSION, default
# $MATRIX_KAFKA_VERSION) inside the chroot's view, on the shared network.
#
# In each environment the suites MATRIX_SUITES (unit regress integration) run
# through test/run.sh with EDU_OUTBOX_NO_DEPS=1 (no apt, no Maven in there).
# Output is TAP, each line prefixed with the environment, and the closing
# "N passed, N failed" sums all environments.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)

CACHE_DIR=${MATRIX_CACHE:-/var/cache/edu_outbox}
MIRROR=${MATRIX_MIRROR:-http://deb.debian.org/debian}
MATRIX_KAFKA_VERSION=${MATRIX_KAFKA_VERSION:-4.1.1}
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
        apt-get update -qq && apt-get install -y -qq --no-install-recommends $pkgs && apt-get clean" \
        >>"$tmp.log" 2>&1; then
    tail -20 "$tmp.log" >&2; rm -rf "$tmp"; return 1
  fi
  echo "$stamp" >"$tmp/.edu_outbox-stamp"
  rm -rf "$dest"
  mv "$tmp" "$dest"
  rm -f "$tmp.log"
  echo "matrix: $env ready in $(( $(date +%s) - t0 )) s" >&2
}

# in_ns ROOTFS REPO CMD...: runs CMD chrooted in ROOTFS inside a private mount
# namespace (the mounts vanish with it): /proc, a tmpfs on /dev/shm and /tmp,
# the host's resolv.conf, Java and Kafka jar cache read-only, and REPO (if
# given) at the same path as on the host.
in_ns() {
  local r=$1 repo=$2; shift 2
  unshare --mount --propagation private -- /bin/bash -s "$r" "$repo" "$@" <<'NS'
set -e
r=$1 repo=$2; shift 2
mount -t proc proc "$r/proc"
mkdir -p "$r/dev/shm" "$r/dev/pts"
mount -t tmpfs -o mode=1777 shm "$r/dev/shm"
mount -t tmpfs -o mode=1777 tmp "$r/tmp"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$r/dev/pts" 2>/dev/null || true
for n in null zero full random urandom tty; do
  [ -c "$r/dev/$n" ] || { rm -f "$r/dev/$n"; touch "$r/dev/$n"; mount --bind "/dev/$n" "$r/dev/$n"; }
done
mount --bind /etc/resolv.conf "$r/etc/resolv.conf" 2>/dev/null || cp /etc/resolv.conf "$r/etc/resolv.conf"
ro_bind() { [ -e "$1" ] || return 0; mkdir -p "$r$1"; mount --bind "$1" "$r$1"; mount -o remount,bind,ro "$r$1"; }
ro_bind /usr/lib/jvm
ro_bind /etc/java-17-openjdk
ro_bind /etc/ssl/certs/java
if [ -n "$repo" ]; then
  mkdir -p "$r$repo"; mount --bind "$repo" "$r$repo"
  [ -n "${EDU_OUTBOX_CACHE:-}" ] && { mkdir -p "$r$EDU_OUTBOX_CACHE"; mount --bind "$EDU_OUTBOX_CACHE" "$r$EDU_OUTBOX_CACHE"; }
fi
exec chroot "$r" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  HOME=/root LANG=C.UTF-8 "$@"
NS
}

cmd=${1:-run}
case $cmd in
  run|build|list) shift || true ;;
  *) cmd=run ;;
esac
envs=("$@")
[ ${#envs[@]} -eq 0 ] && envs=("${ALL_ENVS[@]}")

case $cmd in
  build)
    rc=0
    for e in "${envs[@]}"; do build_rootfs "$e" || rc=1; done
    exit $rc ;;
esac
