# Sourced by kafka.sh, kafka-cluster.sh and kafka-secure.sh: where the Kafka
# jars are cached, and how a broker JVM is configured, started and stopped.

KAFKA_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$KAFKA_LIB_DIR/kafka/pom.xml")
CACHE=${EDU_OUTBOX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edu_outbox}
LIB=$CACHE/kafka-$KAFKA_VERSION/lib
KAFKA_JVM_OPTS=(-Xms256m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true)

# Quiet logging: warnings, plus the lines that say the server started.
kafka_write_log4j() {
  cat >"$1/log4j.properties" <<'LOG'
log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaServer=INFO
log4j.logger.kafka.server.KafkaRaftServer=INFO
LOG
}

# kafka_java DIR CLASS ARGS...: runs a Kafka tool in the foreground.
kafka_java() {
  local d=$1; shift
  java "${KAFKA_JVM_OPTS[@]}" -Dlog4j.configuration="file:$d/log4j.properties" -cp "$LIB/*" "$@"
}

# kafka_launch DIR: starts the broker of DIR/server.properties in the
# background, in its own session, and records its pid in DIR/kafka.pid.
kafka_launch() {
  local d=$1
  (cd "$d" && exec setsid nohup java "${KAFKA_JVM_OPTS[@]}" \
       -Dlog4j.configuration="file:$d/log4j.properties" -cp "$LIB/*" \
       kafka.Kafka "$d/server.properties" >>"$d/kafka.log" 2>&1 </dev/null &
   echo $! >"$d/kafka.pid")
}

# kafka_halt DIR SIGNAL: stops the broker recorded in DIR/kafka.pid (SIGKILL
# after 30 s) and waits until it is gone.
kafka_halt() {
  local d=$1 sig=$2 p
  p=$(cat "$d/kafka.pid" 2>/dev/null) || true
  if [ -z "$p" ] || ! kill -0 "$p" 2>/dev/null; then rm -f "$d/kafka.pid"; return 0; fi
  kill "-$sig" "$p" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$p" 2>/dev/null || break; sleep 0.5; done
  kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
  while kill -0 "$p" 2>/dev/null; do sleep 0.2; done
  rm -f "$d/kafka.pid"
}
