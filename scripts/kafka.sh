#!/usr/bin/env bash
# Runs a real single-node Apache Kafka broker (KRaft, broker+controller) on
# 127.0.0.1 from Maven Central jars.
#
#   kafka.sh fetch                 download the jars once into the cache
#   kafka.sh start|stop|kill|status|wait
#
# Environment: KAFKA_VERSION (scripts/kafka/pom.xml's), KAFKA_PORT (9092), KAFKA_HOME_DIR (/tmp/edu_outbox/kafka-$KAFKA_PORT),
# KAFKA_EXTRA_PROPS (file whose lines are appended to server.properties).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/kafka-lib.sh"
PORT=${KAFKA_PORT:-9092}
CPORT=$((PORT + 1))
DIR=${KAFKA_HOME_DIR:-/tmp/edu_outbox/kafka-$PORT}
BOOTSTRAP=127.0.0.1:$PORT

fetch() { kafka_fetch; }

pid() { [ -f "$DIR/kafka.pid" ] && cat "$DIR/kafka.pid"; }
running() { local p; p=$(pid) && [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }

# Ready means the broker answers a metadata request and a controller exists.
ready() { kcat -b "$BOOTSTRAP" -L -m 2 2>/dev/null | grep -q "broker 1 at"; }

wait_ready() {
  for _ in $(seq 1 120); do
    ready && return 0
    running || { echo "kafka: broker exited, see $DIR/kafka.log" >&2; tail -20 "$DIR/kafka.log" >&2; return 1; }
    sleep 0.5
  done
  echo "kafka: broker not ready after 60s, see $DIR/kafka.log" >&2
  return 1
}

write_config() {
  mkdir -p "$DIR/data"
  cat >"$DIR/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CPORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DIR/data
num.partitions=3
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
PROPS
  [ -n "${KAFKA_EXTRA_PROPS:-}" ] && cat "$KAFKA_EXTRA_PROPS" >>"$DIR/server.properties"
  kafka_write_log4j "$DIR"
}


start() {
  fetch
  if running; then wait_ready; return; fi
  # A broker from an earlier run may hold the port without a pid file here.
  if ready; then echo "kafka: something already answers on $BOOTSTRAP" >&2; return 1; fi
  if [ ! -f "$DIR/data/meta.properties" ]; then
    write_config
    kafka_java "$DIR" kafka.tools.StorageTool format -t "edu-outbox-$PORT-cluster0000" \
      -c "$DIR/server.properties" --ignore-formatted >"$DIR/format.log" 2>&1 ||
      { cat "$DIR/format.log" >&2; exit 1; }
  fi
  kafka_launch "$DIR"
  wait_ready
  echo "kafka: broker up on $BOOTSTRAP (pid $(pid), dir $DIR)"
}

stop() { kafka_halt "$DIR" "${1:-TERM}"; }

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop TERM ;;
  kill) stop KILL ;;
  wait) wait_ready ;;
  status) if running && ready; then echo "kafka: running on $BOOTSTRAP"; else echo "kafka: not running"; exit 1; fi ;;
  destroy) stop TERM; rm -rf "$DIR" ;;
  *) echo "usage: $0 fetch|start|stop|kill|wait|status|destroy" >&2; exit 2 ;;
esac
