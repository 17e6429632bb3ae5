"""Small harness for the integration tests: real PostgreSQL, real Kafka.

The services are started by test/run.sh; this module only talks to them:
psycopg2 for PostgreSQL, kcat (a real librdkafka consumer) for Kafka, and
the project's own scripts to stop and start them.
"""
import json
import os
import subprocess
import time
import traceback
import uuid

import psycopg2
import psycopg2.extras

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PG_DIR = os.environ["PGDIR_EDU"]
PG_PORT = int(os.environ["PGPORT_EDU"])
DB = os.environ["OUTBOX_DB"]
KAFKA = "127.0.0.1:%s" % os.environ["KAFKA_PORT"]
SCRIPTS = os.path.join(ROOT, "scripts")


def connect(autocommit=True, dbname=None):
    for attempt in range(120):
        try:
            conn = psycopg2.connect(host=PG_DIR, port=PG_PORT, user="postgres",
                                    dbname=dbname or DB)
            conn.autocommit = autocommit
            return conn
        except psycopg2.OperationalError:
            # the server may be restarting (crash recovery after a SIGKILL)
            if attempt == 119:
                raise
            time.sleep(0.5)


def sql(query, args=None, conn=None, dbname=None):
    own = conn is None
    conn = conn or connect(dbname=dbname)
    try:
        with conn.cursor() as cur:
            cur.execute(query, args)
            return cur.fetchall() if cur.description else None
    finally:
        if own:
            conn.close()


def publish(topic, payload, key=None, headers=None, conn=None):
    rows = sql("SELECT outbox_publish(%s, %s::jsonb, %s, %s::jsonb)",
               (topic, json.dumps(payload), key,
                None if headers is None else json.dumps(headers)), conn)
    return rows[0][0]


def new_topic(name):
    return "it-%s-%s" % (name, uuid.uuid4().hex[:8])


def consume(topic, committed=True):
    """Everything the topic holds now, as kcat's JSON envelopes, by partition
    and offset: committed only (as consumers of exactly_once must read), or
    with committed=False also what aborted Kafka transactions wrote."""
    out = subprocess.run(["kcat", "-b", KAFKA, "-C", "-t", topic, "-o", "beginning",
                          "-e", "-J", "-q", "-m", "10", "-X",
                          "isolation.level=%s" % ("read_committed" if committed else "read_uncommitted")],
                         capture_output=True, text=True, timeout=60)
    records = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    for r in records:
        h = r.get("headers") or []
        r["headers"] = dict(zip(h[0::2], h[1::2]))
    records.sort(key=lambda r: (r["partition"], r["offset"]))
    return records


def wait_for_records(topic, count, timeout=60):
    """Polls the topic until it holds at least count records."""
    deadline = time.time() + timeout
    records = []
    while time.time() < deadline:
        records = consume(topic)
        if len(records) >= count:
            return records
        time.sleep(0.3)
    raise AssertionError("topic %s holds %d records after %ds, expected %d"
                         % (topic, len(records), timeout, count))


def first_occurrences(records):
    """Records in topic order without redeliveries (at-least-once may repeat one)."""
    seen, out = set(), []
    for r in records:
        oid = r["headers"]["outbox-id"]
        if oid not in seen:
            seen.add(oid)
            out.append(r)
    return out


def by_key(records):
    keyed = {}
    for r in records:
        keyed.setdefault(r["key"], []).append(r)
    return keyed


def wait_until(predicate, timeout=60, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if predicate():
                return
        except (psycopg2.OperationalError, psycopg2.InterfaceError):
            pass   # the server is restarting (crash recovery): ask again
        time.sleep(0.2)
    raise AssertionError("timed out after %ds waiting for %s" % (timeout, what))


def script(name, *args):
    subprocess.run([os.path.join(SCRIPTS, name)] + list(args), check=True,
                   stdout=subprocess.DEVNULL)


def relay_pid():
    """The relay worker of the test database (other databases may have their own)."""
    rows = sql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'edu_outbox relay' "
               "AND datname = current_database()")
    return rows[0][0] if rows else None


def server_log():
    with open(os.path.join(PG_DIR, "server.log"), errors="replace") as f:
        return f.read()


def set_and_reload(**settings):
    """ALTER SYSTEM SET edu_outbox.NAME for each setting (None: RESET), then reload."""
    for name, value in settings.items():
        if value is None:
            sql("ALTER SYSTEM RESET edu_outbox.%s" % name)
        else:
            sql("ALTER SYSTEM SET edu_outbox.%s = %%s" % name, (value,))
    sql("SELECT pg_reload_conf()")
    time.sleep(1.5)   # the worker applies SIGHUP between chunks


def status(dbname=None):
    """outbox_status() as a dict."""
    conn = connect(dbname=dbname)
    try:
        with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute("SELECT * FROM outbox_status()")
            return cur.fetchone()
    finally:
        conn.close()


def undelivered_count():
    """Committed outbox rows the relay has not finished with."""
    return sql("""SELECT count(*) FROM edu_outbox.outbox
                  WHERE NOT pg_visible_in_snapshot(xid,
                        (SELECT delivered_snapshot FROM edu_outbox.relay_state))""")[0][0]


def run(tests):
    """Runs test functions, prints TAP lines, returns the number of failures."""
    failed = 0
    for i, test in enumerate(tests, 1):
        start = time.time()
        try:
            test()
            print("ok %d - %s (%.1fs)" % (i, test.__name__, time.time() - start), flush=True)
        except Exception:  # a failing test must not stop the others
            failed += 1
            print("not ok %d - %s" % (i, test.__name__), flush=True)
            for line in traceback.format_exc().splitlines():
                print("#   " + line, flush=True)
    print("1..%d" % len(tests), flush=True)
    return failed
