"""Shared plumbing for the fault-injection suite: PostgreSQL connections,
the project's service scripts, a real Kafka consumer (kcat) and the server log.

test/faults/run.sh starts the services and sets the environment:
PGDIR_EDU, PGPORT_EDU, OUTBOX_DB, KAFKA_PORT (single broker), and for the
extra scenarios KAFKA_CLUSTER_PORT/KAFKA_CLUSTER_DIR and
KAFKA_SECURE_PORT/KAFKA_SECURE_DIR.
"""
import json
import os
import re
import signal
import subprocess
import time

import psycopg2

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPTS = os.path.join(ROOT, "scripts")
PG_DIR = os.environ["PGDIR_EDU"]
PG_PORT = int(os.environ["PGPORT_EDU"])
DB = os.environ["OUTBOX_DB"]
KAFKA = "127.0.0.1:%s" % os.environ["KAFKA_PORT"]


def use_server(pg_dir, port):
    """Points connect() and sql() (so the workload, the checker and the helpers
    below) at another server, e.g. a standby after its promotion."""
    global PG_DIR, PG_PORT
    PG_DIR, PG_PORT = pg_dir, int(port)


class ServerGone(Exception):
    """PostgreSQL did not accept connections within the allowed time."""


def connect(autocommit=True, timeout=120, dbname=None):
    """A connection (to DB unless dbname), retried while the server restarts or recovers."""
    deadline = time.time() + timeout
    while True:
        try:
            conn = psycopg2.connect(host=PG_DIR, port=PG_PORT, user="postgres",
                                    dbname=dbname or DB, connect_timeout=5)
            conn.autocommit = autocommit
            return conn
        except psycopg2.OperationalError as e:
            if time.time() > deadline:
                raise ServerGone(str(e))
            time.sleep(0.3)


def sql(query, args=None, retries=True, dbname=None):
    """Runs one statement on a fresh connection (to DB unless dbname); retried if the
    server is restarting."""
    deadline = time.time() + (120 if retries else 0)
    while True:
        conn = None
        try:
            conn = connect(dbname=dbname)
            with conn.cursor() as cur:
                cur.execute(query, args)
                return cur.fetchall() if cur.description else None
        except (psycopg2.OperationalError, psycopg2.InterfaceError, ServerGone):
            if time.time() > deadline:
                raise
            time.sleep(0.5)
        finally:
            if conn is not None:
                conn.close()


def script(name, *args, env=None, check=True, capture=False):
    e = dict(os.environ)
    if env:
        e.update(env)
    out = subprocess.run([os.path.join(SCRIPTS, name)] + [str(a) for a in args], env=e,
                         check=check, text=True,
                         stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                         stderr=subprocess.PIPE if capture else None)
    return out.stdout.strip() if capture else out.returncode


def consume(topic, brokers=None, extra=(), timeout=180):
    """Every record the topic holds now, read by kcat (a real librdkafka
    consumer), as (partition, offset)-ordered dicts with decoded headers.
    A topic that does not exist yet reads as empty."""
    cmd = ["kcat", "-b", brokers or KAFKA, "-C", "-t", topic, "-o", "beginning",
           "-e", "-J", "-q", "-m", "15"]
    for prop in extra:
        cmd += ["-X", prop]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0 and "Unknown topic" not in out.stderr \
            and "UNKNOWN_TOPIC" not in out.stderr:
        raise RuntimeError("kcat failed (%d): %s" % (out.returncode, out.stderr.strip()[-500:]))
    records = []
    for line in out.stdout.splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        h = r.get("headers") or []
        r["headers"] = dict(zip(h[0::2], h[1::2]))
        records.append(r)
    records.sort(key=lambda r: (r["partition"], r["offset"]))
    return records


RELAY_OF_DB = "backend_type = 'edu_outbox relay' AND datname = %s"


def relay_pid(dbname=None):
    """The pid of the relay worker of DB (or dbname), or None."""
    rows = sql("SELECT pid FROM pg_stat_activity WHERE " + RELAY_OF_DB, (dbname or DB,))
    return rows[0][0] if rows else None


def stall_relay(seconds, dbname=None, while_frozen=None):
    """Freezes the relay (SIGSTOP) while the writers go on, so that a backlog
    builds up and its next chunk is a big one. Returns what while_frozen(),
    called at the end of the freeze, returns."""
    pid = relay_pid(dbname)
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(seconds)
        return while_frozen() if while_frozen else None
    finally:
        os.kill(pid, signal.SIGCONT)


def relay_activity(dbname=None):
    rows = sql("SELECT coalesce(query, '') FROM pg_stat_activity WHERE " + RELAY_OF_DB,
               (dbname or DB,))
    return rows[0][0] if rows else None


def wait_relay_sending(min_events=1, timeout=3.0, dbname=None):
    """Waits (briefly) until the relay reports at least min_events in flight
    ("edu_outbox: sending N events"); returns N, or None if it did not happen."""
    deadline = time.time() + timeout
    conn = connect()
    try:
        with conn.cursor() as cur:
            while time.time() < deadline:
                cur.execute("SELECT coalesce(query, '') FROM pg_stat_activity WHERE " +
                            RELAY_OF_DB, (dbname or DB,))
                row = cur.fetchone()
                m = row and re.match(r"edu_outbox: sending (\d+) events", row[0])
                if m and int(m.group(1)) >= min_events:
                    return int(m.group(1))
                time.sleep(0.002)
    finally:
        conn.close()
    return None


def undelivered_count(dbname=None):
    """Committed outbox rows the relay has not finished with."""
    return sql("""SELECT count(*) FROM edu_outbox.outbox
                  WHERE NOT pg_visible_in_snapshot(xid,
                        (SELECT delivered_snapshot FROM edu_outbox.relay_state))""",
               dbname=dbname)[0][0]


def set_relay_config(**settings):
    """ALTER SYSTEM SET edu_outbox.<name> (None: RESET) and reload."""
    conn = connect()
    try:
        with conn.cursor() as cur:
            for name, value in settings.items():
                if value is None:
                    cur.execute("ALTER SYSTEM RESET edu_outbox.%s" % name)
                else:
                    cur.execute("ALTER SYSTEM SET edu_outbox.%s = %%s" % name, (value,))
            cur.execute("SELECT pg_reload_conf()")
    finally:
        conn.close()


def wait_until(predicate, timeout=60, what="condition", interval=0.3):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if predicate():
                return
        except (psycopg2.OperationalError, psycopg2.InterfaceError, ServerGone):
            pass
        time.sleep(interval)
    raise AssertionError("timed out after %ds waiting for %s" % (timeout, what))


class ServerLog:
    """The part of the PostgreSQL server log written since mark()."""

    path = os.path.join(PG_DIR, "server.log")

    def __init__(self, path=None):
        self.offset = 0
        if path:
            self.path = path

    def mark(self):
        try:
            self.offset = os.path.getsize(self.path)
        except OSError:
            self.offset = 0
        return self

    def text(self):
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            return f.read().decode("utf-8", "replace")

    @classmethod
    def whole(cls):
        with open(cls.path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def relay_lines(self):
        """Lines written by the relay or about it (its exits), for reports."""
        return [line for line in self.text().splitlines()
                if "edu_outbox relay" in line or "edu_outbox:" in line]

    def relay_abnormal_exits(self):
        """Postmaster lines saying the relay exited with an error or a signal."""
        return [line for line in self.text().splitlines()
                if 'background worker "edu_outbox relay' in line and
                ("exited with exit code" in line or "terminated by signal" in line)]
