#!/usr/bin/env bash
# Runs a real three-node Apache Kafka cluster (KRaft; every node is broker and
# controller) on 127.0.0.1 from the Maven Central jars that scripts/kafka.sh
# caches. Topics default to replication factor 3 and min.insync.replicas 2,
# so one node may die without losing acknowledged (acks=all) records.
#
#   kafka-cluster.sh start | stop | kill | status | destroy | bootstrap
#   kafka-cluster.sh kill-node N | stop-node N | start-node N     (N = 1, 2, 3)
#   kafka-cluster.sh leader TOPIC PARTITION      node id of the partition leader (-1: none)
#   kafka-cluster.sh isr TOPIC PARTITION         in-sync replica ids, e.g. 1,2,3
#   kafka-cluster.sh create-topic TOPIC [PARTITIONS]   replication factor 3
#
# Environment: KAFKA_CLUSTER_PORT (41100): node N listens on port BASE+N for
# clients and BASE+10+N for the controller quorum; KAFKA_CLUSTER_DIR
# (/tmp/edu_outbox/kafka-cluster-$BASE).
#
# The jar cache and the JVM set-up come from scripts/kafka-lib.sh;
# `kafka.sh fetch` fills the cache.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

. "$here/kafka-lib.sh"

BASE=${KAFKA_CLUSTER_PORT:-41100}
DIR=${KAFKA_CLUSTER_DIR:-/tmp/edu_outbox/kafka-cluster-$BASE}
NODES=(1 2 3)

port() { echo $((BASE + $1)); }
cport() { echo $((BASE + 10 + $1)); }
ndir() { echo "$DIR/node$1"; }
bootstrap() { local n s=; for n in "${NODES[@]}"; do s+="${s:+,}127.0.0.1:$(port "$n")"; done; echo "$s"; }
voters() { local n s=; for n in "${NODES[@]}"; do s+="${s:+,}$n@127.0.0.1:$(cport "$n")"; done; echo "$s"; }

check_node() {
  case "${1:-}" in 1|2|3) ;; *) echo "kafka-cluster: node must be 1, 2 or 3" >&2; exit 2 ;; esac
}

pid() { [ -f "$(ndir "$1")/kafka.pid" ] && cat "$(ndir "$1")/kafka.pid"; }
running() { local p; p=$(pid "$1") && [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }

# A node is ready when it answers a metadata request on its own port and the
# cluster it sees has a controller.
node_ready() { kcat -b "127.0.0.1:$(port "$1")" -L -m 2 2>/dev/null | grep -q "broker $1 at"; }

# The cluster is ready when every running node is ready and sees every running node.
cluster_ready() {
  local n meta
  meta=$(kcat -b "$(bootstrap)" -L -m 2 2>/dev/null) || return 1
  for n in "${NODES[@]}"; do
    running "$n" || continue
    node_ready "$n" || return 1
    grep -q "broker $n at" <<<"$meta" || return 1
  done
}

wait_ready() {
  local n
  for _ in $(seq 1 240); do
    cluster_ready && return 0
    for n in "${NODES[@]}"; do
      [ -f "$(ndir "$n")/kafka.pid" ] && ! running "$n" && {
        echo "kafka-cluster: node $n exited, see $(ndir "$n")/kafka.log" >&2
        tail -20 "$(ndir "$n")/kafka.log" >&2
        return 1
      }
    done
    sleep 0.5
  done
  echo "kafka-cluster: not ready after 120s, see $DIR/node*/kafka.log" >&2
  return 1
}

write_config() {
  local n=$1 d
  d=$(ndir "$n")
  mkdir -p "$d/data"
  cat >"$d/server.properties" <<PROPS
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$(voters)
listeners=PLAINTEXT://127.0.0.1:$(port "$n"),CONTROLLER://127.0.0.1:$(cport "$n")
advertised.listeners=PLAINTEXT://127.0.0.1:$(port "$n")
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$d/data
num.partitions=3
default.replication.factor=3
min.insync.replicas=2
unclean.leader.election.enable=false
offsets.topic.replication.factor=3
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
PROPS
  kafka_write_log4j "$d"
}


format_all() {
  local n id
  mkdir -p "$DIR"
  write_config 1
  id=$(kafka_java "$(ndir 1)" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)
  for n in "${NODES[@]}"; do
    write_config "$n"
    kafka_java "$(ndir "$n")" kafka.tools.StorageTool format -t "$id" \
      -c "$(ndir "$n")/server.properties" --ignore-formatted >"$(ndir "$n")/format.log" 2>&1 ||
      { cat "$(ndir "$n")/format.log" >&2; exit 1; }
  done
}

launch() {
  local n=$1 d
  d=$(ndir "$n")
  running "$n" && return 0
  [ -f "$d/data/meta.properties" ] || { echo "kafka-cluster: node $n is not formatted; run start" >&2; exit 1; }
  kafka_launch "$d"
}

halt() { kafka_halt "$(ndir "$1")" "$2"; }

start() {
  local n
  "$here/kafka.sh" fetch
  if [ ! -f "$(ndir 1)/data/meta.properties" ]; then
    for n in "${NODES[@]}"; do
      if node_ready "$n"; then echo "kafka-cluster: something already answers on 127.0.0.1:$(port "$n")" >&2; exit 1; fi
    done
    format_all
  fi
  for n in "${NODES[@]}"; do launch "$n"; done
  wait_ready
  echo "kafka-cluster: 3 nodes up on $(bootstrap) (dir $DIR)"
}

stop_all() {
  local sig=$1 n
  # stop in parallel: a node that stops last waits for no quorum
  for n in "${NODES[@]}"; do halt "$n" "$sig" & done
  wait
}

partition_line() {
  kcat -b "$(bootstrap)" -L -t "$1" -m 5 2>/dev/null | grep -E "^ +partition $2, " | head -1
}

leader() {
  local line
  line=$(partition_line "$1" "$2")
  [ -n "$line" ] || { echo "kafka-cluster: no metadata for $1 partition $2" >&2; return 1; }
  sed -n 's/.*leader \(-\{0,1\}[0-9]*\),.*/\1/p' <<<"$line"
}

isr() {
  local line
  line=$(partition_line "$1" "$2")
  [ -n "$line" ] || { echo "kafka-cluster: no metadata for $1 partition $2" >&2; return 1; }
  sed -n 's/.*isrs: \([0-9,]*\).*/\1/p' <<<"$line"
}

create_topic() {
  local topic=$1 parts=${2:-3} src=$DIR/CreateTopic.java
  mkdir -p "$DIR"
  cat >"$src" <<'JAVA'
import java.util.*;
import org.apache.kafka.clients.admin.*;

public class CreateTopic {
    public static void main(String[] a) throws Exception {
        Properties p = new Properties();
        p.put("bootstrap.servers", a[0]);
        try (Admin admin = Admin.create(p)) {
            NewTopic t = new NewTopic(a[1], Integer.parseInt(a[2]), (short) 3);
            t.configs(Map.of("min.insync.replicas", "2"));
            admin.createTopics(List.of(t)).all().get();
        }
    }
}
JAVA
  java -Xmx256m "$(kafka_log_opt "$(ndir 1)")" -cp "$LIB/*" \
    "$src" "$(bootstrap)" "$topic" "$parts" >"$DIR/create-topic.log" 2>&1 ||
    { cat "$DIR/create-topic.log" >&2; return 1; }
  # wait until every partition has a leader and a full ISR
  for _ in $(seq 1 60); do
    local ok=1 p
    for ((p = 0; p < parts; p++)); do
      [ "$(isr "$topic" "$p" 2>/dev/null | tr ',' '\n' | grep -c .)" = 3 ] || ok=
    done
    [ -n "$ok" ] && return 0
    sleep 0.5
  done
  echo "kafka-cluster: topic $topic has no full ISR after 30s" >&2
  return 1
}

status() {
  local n rc=0
  for n in "${NODES[@]}"; do
    if running "$n" && node_ready "$n"; then echo "node $n: running on 127.0.0.1:$(port "$n") (pid $(pid "$n"))"
    elif running "$n"; then echo "node $n: starting (pid $(pid "$n"))"; rc=1
    else echo "node $n: not running"; rc=1
    fi
  done
  return $rc
}

case "${1:-}" in
  start) start ;;
  stop) stop_all TERM ;;
  kill) stop_all KILL ;;
  status) status ;;
  bootstrap) bootstrap ;;
  destroy) stop_all KILL; rm -rf "$DIR" ;;
  kill-node) check_node "${2:-}"; halt "$2" KILL ;;
  stop-node) check_node "${2:-}"; halt "$2" TERM ;;
  start-node) check_node "${2:-}"; launch "$2"; wait_ready ;;
  leader) [ $# -eq 3 ] || { echo "usage: $0 leader TOPIC PARTITION" >&2; exit 2; }; leader "$2" "$3" ;;
  isr) [ $# -eq 3 ] || { echo "usage: $0 isr TOPIC PARTITION" >&2; exit 2; }; isr "$2" "$3" ;;
  create-topic) [ $# -ge 2 ] || { echo "usage: $0 create-topic TOPIC [PARTITIONS]" >&2; exit 2; }; create_topic "$2" "${3:-3}" ;;
  *) echo "usage: $0 start|stop|kill|status|destroy|bootstrap|kill-node N|stop-node N|start-node N|leader TOPIC PARTITION|isr TOPIC PARTITION|create-topic TOPIC [PARTITIONS]" >&2; exit 2 ;;
esac
