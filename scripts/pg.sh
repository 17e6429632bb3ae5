#!/usr/bin/env bash
# Runs a throwaway PostgreSQL 15 cluster with edu_outbox preloaded, as the
# postgres user (initdb refuses root), in its own directory and port.
#
#   pg.sh start|stop|kill|restart|status|destroy|psql [args]
#
# Environment: PGPORT_EDU (54329), PGDIR_EDU (/tmp/edu_outbox/pg-$PGPORT_EDU),
# OUTBOX_DB (app), KAFKA_PORT (9092), PG_EXTRA_CONF (lines appended to
# postgresql.conf on first start), PG_SERVER_ENV (NAME=value words added to
# the server's environment, e.g. LD_PRELOAD of sanitizer runtimes).
set -euo pipefail

PGBIN=$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)
PORT=${PGPORT_EDU:-54329}
DIR=${PGDIR_EDU:-/tmp/edu_outbox/pg-$PORT}
DB=${OUTBOX_DB:-app}
DATA=$DIR/data

as_pg() { runuser -u postgres -- "$@"; }

init() {
  mkdir -p "$DIR"
  chown postgres: "$DIR"
  as_pg "$PGBIN/initdb" -D "$DATA" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$DIR/initdb.log" 2>&1 ||
    { cat "$DIR/initdb.log" >&2; exit 1; }
  cat >>"$DATA/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$DIR'
shared_preload_libraries = 'edu_outbox'
track_commit_timestamp = on
edu_outbox.database = '$DB'
edu_outbox.brokers = '127.0.0.1:${KAFKA_PORT:-9092}'
edu_outbox.poll_interval = '1s'
log_line_prefix = '%m [%p] %b '
CONF
  [ -n "${PG_EXTRA_CONF:-}" ] && printf '%s\n' "$PG_EXTRA_CONF" >>"$DATA/postgresql.conf"
  return 0
}

# shellcheck disable=SC2086  # PG_SERVER_ENV is a list of words
pg_ctl() { as_pg env ${PG_SERVER_ENV:-} "$PGBIN/pg_ctl" -D "$DATA" -l "$DIR/server.log" "$@"; }

start() {
  [ -f "$DATA/PG_VERSION" ] || init
  if pg_ctl status >/dev/null 2>&1; then return 0; fi
  pg_ctl -w -t 60 start >/dev/null
  "$PGBIN/psql" -h "$DIR" -p "$PORT" -U postgres -d postgres -Atqc \
    "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1 ||
    "$PGBIN/createdb" -h "$DIR" -p "$PORT" -U postgres "$DB"
  echo "postgres: running on port $PORT (dir $DIR, database $DB)"
}

case "${1:-}" in
  start) start ;;
  stop) pg_ctl status >/dev/null 2>&1 && pg_ctl -w -m fast stop >/dev/null; true ;;
  kill) pg_ctl status >/dev/null 2>&1 && pg_ctl -w -m immediate stop >/dev/null; true ;;
  restart) pg_ctl -w -m fast restart >/dev/null ;;
  reload) pg_ctl reload >/dev/null ;;
  status) pg_ctl status ;;
  destroy) pg_ctl status >/dev/null 2>&1 && pg_ctl -w -m immediate stop >/dev/null; rm -rf "$DIR" ;;
  psql) shift; exec "$PGBIN/psql" -h "$DIR" -p "$PORT" -U postgres -d "$DB" "$@" ;;
  *) echo "usage: $0 start|stop|kill|restart|reload|status|destroy|psql" >&2; exit 2 ;;
esac
