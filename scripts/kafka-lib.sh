# Sourced by kafka.sh, kafka-cluster.sh and kafka-secure.sh: where the Kafka
# jars are cached, and how a broker JVM is configured, started and stopped.
#
# KAFKA_VERSION picks the broker release (default: the version in
# scripts/kafka/pom.xml); each version has its own jar cache. Kafka 3.x logs
# through reload4j (pom.xml), 4.x through log4j2 (pom-4.xml).

KAFKA_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KAFKA_DEFAULT_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$KAFKA_LIB_DIR/kafka/pom.xml")
KAFKA_VERSION=${KAFKA_VERSION:-$KAFKA_DEFAULT_VERSION}
case $KAFKA_VERSION in
  [0-2].*|3.*) KAFKA_POM=$KAFKA_LIB_DIR/kafka/pom.xml; KAFKA_LOG4J2= ;;
  *) KAFKA_POM=$KAFKA_LIB_DIR/kafka/pom-4.xml; KAFKA_LOG4J2=1 ;;
esac
CACHE=${EDU_OUTBOX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edu_outbox}
LIB=$CACHE/kafka-$KAFKA_VERSION/lib
KAFKA_JVM_OPTS=(-Xms256m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true)

# Quiet logging: warnings, plus the lines that say the server started.
kafka_write_log4j() {
  if [ -n "$KAFKA_LOG4J2" ]; then
    cat >"$1/log4j2.properties" <<'LOG'
status = warn
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.stdout.ref = STDOUT
logger.raft.name = kafka.server.KafkaRaftServer
logger.raft.level = info
LOG
  else
    cat >"$1/log4j.properties" <<'LOG'
log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaServer=INFO
log4j.logger.kafka.server.KafkaRaftServer=INFO
LOG
  fi
}

# kafka_log_opt DIR: the JVM flag that points the logging backend at DIR's config.
kafka_log_opt() {
  if [ -n "$KAFKA_LOG4J2" ]; then
    echo "-Dlog4j2.configurationFile=file:$1/log4j2.properties"
  else
    echo "-Dlog4j.configuration=file:$1/log4j.properties"
  fi
}

# kafka_fetch: copies KAFKA_VERSION's jars from Maven Central into LIB once.
kafka_fetch() {
  [ -f "$LIB/.complete" ] && return 0
  echo "kafka: fetching Apache Kafka $KAFKA_VERSION jars from Maven Central"
  local tmp
  mkdir -p "$CACHE"
  tmp=$(mktemp -d "$CACHE/.fetch-$KAFKA_VERSION.XXXXXX")
  if ! mvn -q -B -f "$KAFKA_POM" -Dkafka.version="$KAFKA_VERSION" dependency:copy-dependencies \
      -DoutputDirectory="$tmp/lib" >"$tmp/mvn.log" 2>&1; then
    cat "$tmp/mvn.log"; rm -rf "$tmp"; echo "kafka: maven failed" >&2; return 1
  fi
  touch "$tmp/lib/.complete"
  mkdir -p "$(dirname "$LIB")"
  # another checkout may have fetched the same version meanwhile
  if [ -f "$LIB/.complete" ]; then rm -rf "$tmp"; return 0; fi
  rm -rf "$LIB"
  mv "$tmp/lib" "$LIB"
  rm -rf "$tmp"
}

# kafka_java DIR CLASS ARGS...: runs a Kafka tool in the foreground.
kafka_java() {
  local d=$1; shift
  java "${KAFKA_JVM_OPTS[@]}" "$(kafka_log_opt "$d")" -cp "$LIB/*" "$@"
}

# kafka_launch DIR: starts the broker of DIR/server.properties in the
# background, in its own session, and records its pid in DIR/kafka.pid.
kafka_launch() {
  local d=$1
  (cd "$d" && exec setsid nohup java "${KAFKA_JVM_OPTS[@]}" \
       "$(kafka_log_opt "$d")" -cp "$LIB/*" \
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
