#!/usr/bin/env bash
# Runs a real single-node Apache Kafka broker (KRaft) on 127.0.0.1 with an
# extra SASL_SSL listener (SCRAM-SHA-512 over TLS), for security tests.
# TLS material is generated on first start: a throwaway CA, the broker's
# PKCS12 keystore and truststore, and the CA certificate in PEM for clients.
# The SCRAM user is created when the storage is formatted (--add-scram).
#
#   kafka-secure.sh start | stop | kill | status | destroy
#   kafka-secure.sh env      prints KAFKA_SASL_* lines for clients (shell syntax)
#
# Listeners: PLAINTEXT on KAFKA_SECURE_PORT (41200, loopback, inter-broker and
# readiness checks only), CONTROLLER on +1, SASL_SSL on +2.
# Environment: KAFKA_SECURE_PORT, KAFKA_SECURE_DIR
# (/tmp/edu_outbox/kafka-secure-$KAFKA_SECURE_PORT), KAFKA_SASL_USER (outbox),
# KAFKA_SASL_PASSWORD (generated on first start and kept in $DIR/client.env).
#
# A client connects with: security.protocol=SASL_SSL, sasl.mechanisms=SCRAM-SHA-512,
# sasl.username, sasl.password, ssl.ca.location=$DIR/tls/ca.pem (see `env`).
#
# The jar cache and the JVM set-up come from scripts/kafka-lib.sh;
# `kafka.sh fetch` fills the cache.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

# Kafka 4.0.2 and 4.4.0 brokers refuse (invalid credentials) the SCRAM user that
# `StorageTool format --add-scram` creates below; until that is understood this
# broker runs 3.9.1 unless KAFKA_SECURE_VERSION says otherwise.
export KAFKA_VERSION=${KAFKA_SECURE_VERSION:-3.9.1}
. "$here/kafka-lib.sh"

PORT=${KAFKA_SECURE_PORT:-41200}
CPORT=$((PORT + 1))
SPORT=$((PORT + 2))
DIR=${KAFKA_SECURE_DIR:-/tmp/edu_outbox/kafka-secure-$PORT}
TLS=$DIR/tls
BOOTSTRAP=127.0.0.1:$PORT
SASL_BOOTSTRAP=127.0.0.1:$SPORT

pid() { [ -f "$DIR/kafka.pid" ] && cat "$DIR/kafka.pid"; }
running() { local p; p=$(pid) && [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }
ready() { kcat -b "$BOOTSTRAP" -L -m 2 2>/dev/null | grep -q "broker 1 at"; }

# Credentials: generated once, kept with the broker's data.
load_credentials() {
  if [ -f "$DIR/client.env" ]; then
    # shellcheck disable=SC1091
    . "$DIR/client.env"
    return 0
  fi
  KAFKA_SASL_USER=${KAFKA_SASL_USER:-outbox}
  KAFKA_SASL_PASSWORD=${KAFKA_SASL_PASSWORD:-$(openssl rand -hex 16)}
  case "$KAFKA_SASL_USER$KAFKA_SASL_PASSWORD" in
    *[!A-Za-z0-9_.-]*) echo "kafka-secure: user and password may only use A-Z a-z 0-9 _ . -" >&2; exit 2 ;;
  esac
  KAFKA_SASL_BOOTSTRAP=$SASL_BOOTSTRAP
  KAFKA_SSL_CA=$TLS/ca.pem
  mkdir -p "$DIR"
  (umask 077; cat >"$DIR/client.env" <<ENV
KAFKA_SASL_BOOTSTRAP=$KAFKA_SASL_BOOTSTRAP
KAFKA_SASL_USER=$KAFKA_SASL_USER
KAFKA_SASL_PASSWORD=$KAFKA_SASL_PASSWORD
KAFKA_SSL_CA=$KAFKA_SSL_CA
ENV
  )
}

gen_tls() {
  [ -f "$TLS/.complete" ] && return 0
  rm -rf "$TLS"
  mkdir -p "$TLS"
  chmod 755 "$TLS"             # ca.pem must be readable by clients (e.g. postgres)
  local pass
  pass=$(openssl rand -hex 16)
  (
    cd "$TLS"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 30 \
      -subj "/CN=edu_outbox test CA" -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout broker.key -out broker.csr \
      -subj "/CN=localhost" 2>/dev/null
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=serverAuth,clientAuth" "subjectAltName=IP:127.0.0.1,DNS:localhost" >broker.ext
    openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
      -out broker.pem -days 30 -extfile broker.ext 2>/dev/null
    openssl pkcs12 -export -in broker.pem -inkey broker.key -certfile ca.pem -name broker \
      -out broker.p12 -passout "pass:$pass"
    keytool -importcert -noprompt -alias ca -file ca.pem -keystore truststore.p12 \
      -storetype PKCS12 -storepass "$pass" >/dev/null 2>&1
    echo "$pass" >store.pass
    chmod 600 ./*
    chmod 644 ca.pem            # the only file clients need
    touch .complete
  )
}

write_config() {
  local pass
  pass=$(cat "$TLS/store.pass")
  mkdir -p "$DIR/data"
  (umask 077; cat >"$DIR/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CPORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT,SASL_SSL://127.0.0.1:$SPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT,SASL_SSL://127.0.0.1:$SPORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PKCS12
ssl.keystore.location=$TLS/broker.p12
ssl.keystore.password=$pass
ssl.key.password=$pass
ssl.truststore.type=PKCS12
ssl.truststore.location=$TLS/truststore.p12
ssl.truststore.password=$pass
ssl.client.auth=none
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
  )
  kafka_write_log4j "$DIR"
}


sasl_ready() {
  kcat -b "$SASL_BOOTSTRAP" -L -m 5 -X security.protocol=SASL_SSL -X sasl.mechanisms=SCRAM-SHA-512 \
    -X "sasl.username=$KAFKA_SASL_USER" -X "sasl.password=$KAFKA_SASL_PASSWORD" \
    -X "ssl.ca.location=$KAFKA_SSL_CA" 2>/dev/null | grep -q "broker 1 at 127.0.0.1:$SPORT"
}

wait_ready() {
  for _ in $(seq 1 120); do
    ready && sasl_ready && return 0
    running || { echo "kafka-secure: broker exited, see $DIR/kafka.log" >&2; tail -20 "$DIR/kafka.log" >&2; return 1; }
    sleep 0.5
  done
  echo "kafka-secure: broker not ready after 60s, see $DIR/kafka.log" >&2
  return 1
}

start() {
  "$here/kafka.sh" fetch
  load_credentials
  if running; then wait_ready; return; fi
  if ready; then echo "kafka-secure: something already answers on $BOOTSTRAP" >&2; return 1; fi
  if [ ! -f "$DIR/data/meta.properties" ]; then
    gen_tls
    write_config
    kafka_java "$DIR" kafka.tools.StorageTool format -t "$(kafka_java "$DIR" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)" \
      -c "$DIR/server.properties" --ignore-formatted \
      --add-scram "SCRAM-SHA-512=[name=$KAFKA_SASL_USER,password=$KAFKA_SASL_PASSWORD]" \
      >"$DIR/format.log" 2>&1 || { cat "$DIR/format.log" >&2; exit 1; }
  fi
  kafka_launch "$DIR"
  wait_ready
  echo "kafka-secure: broker up, SASL_SSL (SCRAM-SHA-512) on $SASL_BOOTSTRAP, plaintext on $BOOTSTRAP (pid $(pid), dir $DIR)"
}

stop() { kafka_halt "$DIR" "${1:-TERM}"; }

case "${1:-}" in
  start) start ;;
  stop) stop TERM ;;
  kill) stop KILL ;;
  status)
    [ -f "$DIR/client.env" ] && load_credentials
    if running && ready && sasl_ready; then echo "kafka-secure: running, SASL_SSL on $SASL_BOOTSTRAP"
    else echo "kafka-secure: not running"; exit 1; fi ;;
  env) [ -f "$DIR/client.env" ] || { echo "kafka-secure: not started yet" >&2; exit 1; }; cat "$DIR/client.env" ;;
  destroy) stop TERM; rm -rf "$DIR" ;;
  *) echo "usage: $0 start|stop|kill|status|env|destroy" >&2; exit 2 ;;
esac
