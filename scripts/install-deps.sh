#!/usr/bin/env bash
# Installs everything edu_outbox needs on a Debian 12 machine (run as root):
# PostgreSQL 15 + server headers, librdkafka, jansson, kcat, psycopg2 for the
# integration tests, Chromium for the browser test of the Next.js example,
# debootstrap for the Debian 13 / unstable test environments (scripts/matrix.sh),
# and the Apache Kafka jars from Maven Central.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

pkgs=(build-essential postgresql-15 postgresql-server-dev-15 librdkafka-dev
      libjansson-dev kcat python3 python3-psycopg2 openjdk-17-jre-headless maven
      chromium debootstrap)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Debian's postgresql package creates and may start a "main" cluster; ours
# run in their own directories and ports, so it is left alone.
"$here/kafka.sh" fetch
