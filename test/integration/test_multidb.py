#!/usr/bin/env python3
"""Integration tests: several databases of one cluster relayed at once
(edu_outbox.database as a list, or '*'), with a real PostgreSQL 15 and a real
Kafka broker.

Run by test/run.sh after the other integration tests, on the same services.
The tests create their own databases (mdb_*) and put edu_outbox.database back
as they found it.
"""
import json
import os
import sys
import threading
import time

import psycopg2.errors

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import (DB, connect, consume, first_occurrences, new_topic, publish,  # noqa: E402
                     run, server_log, sql, wait_for_records, wait_until)

A, B, QUIET, LATE = "mdb_a", "mdb_b", "mdb_quiet", "mdb_late"


def set_databases(value):
    if value is None:
        sql("ALTER SYSTEM RESET edu_outbox.database")
    else:
        sql("ALTER SYSTEM SET edu_outbox.database = %s", (value,))
    sql("SELECT pg_reload_conf()")


def worker_pid(db):
    """The pid of the relay worker connected to db, or None."""
    rows = sql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'edu_outbox relay' "
               "AND datname = %s", (db,))
    assert len(rows) <= 1, "%d relay workers in database %s" % (len(rows), db)
    return rows[0][0] if rows else None


def status(db):
    return harness.status(dbname=db)


def topic_status(db):
    return sql("SELECT topic, delivered FROM outbox_topic_status ORDER BY topic",
               conn=connect(dbname=db))


def recreate_database(db, extension=True):
    """A fresh database; returns the notices CREATE EXTENSION raised."""
    sql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % db)
    sql("CREATE DATABASE %s" % db)
    if not extension:
        return []
    conn = connect(dbname=db)
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE EXTENSION edu_outbox")
        return list(conn.notices)
    finally:
        conn.close()


def publish_in(db, topic, payload, key):
    conn = connect(dbname=db)
    try:
        return publish(topic, payload, key, conn=conn)
    finally:
        conn.close()


def seqs_by_key(records):
    out = {}
    for r in first_occurrences(records):
        out.setdefault(r["key"], []).append(json.loads(r["payload"])["seq"])
    return out


def test_not_relayed_database_says_so():
    # edu_outbox.database names only the test database
    notices = recreate_database(QUIET)
    text = "".join(notices)
    assert 'database "%s" is not relayed to Kafka' % QUIET in text, notices
    assert "edu_outbox.database" in text, notices
    st = status(QUIET)
    assert st["worker_state"] == "not relayed" and st["worker_pid"] is None, st
    topic = new_topic("quiet")
    publish_in(QUIET, topic, {"seq": 0}, "k")
    time.sleep(3)
    assert consume(topic) == [], "a database that is not relayed must not be delivered"
    # the relayed database itself gets no warning and shows its own worker
    assert status(DB)["worker_pid"] == worker_pid(DB)


def test_two_databases_relayed_each_in_order():
    recreate_database(A)
    recreate_database(B)
    main_pid = worker_pid(DB)
    set_databases("%s, %s,%s" % (DB, A, B))
    wait_until(lambda: worker_pid(A) and worker_pid(B), timeout=30, what="workers for both databases")
    assert worker_pid(DB) == main_pid, "a reload must not restart the workers that stay"
    wait_until(lambda: status(A)["worker_state"] == "delivering" and
               status(B)["worker_state"] == "delivering", timeout=30, what="both workers delivering")

    topics = {A: new_topic("multi-a"), B: new_topic("multi-b")}
    per_db, keys = 150, ["k0", "k1", "k2"]

    def writer(db):
        conn = connect(dbname=db)
        try:
            for i in range(per_db):
                key = keys[i % len(keys)]
                publish(topics[db], {"seq": i, "db": db}, key, conn=conn)
        finally:
            conn.close()

    threads = [threading.Thread(target=writer, args=(db,)) for db in (A, B)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for db in (A, B):
        records = wait_for_records(topics[db], per_db)
        assert all(json.loads(r["payload"])["db"] == db for r in records)
        got = seqs_by_key(records)
        want = {k: [i for i in range(per_db) if keys[i % len(keys)] == k] for k in keys}
        assert got == want, (db, got)

    wait_until(lambda: status(A)["pending_events"] == 0 and status(B)["pending_events"] == 0,
               timeout=30, what="both outboxes drained")
    sa, sb = status(A), status(B)
    assert sa["worker_pid"] == worker_pid(A) and sb["worker_pid"] == worker_pid(B), (sa, sb)
    assert sa["worker_pid"] != sb["worker_pid"]
    assert sa["delivered_since_start"] >= per_db and sb["delivered_since_start"] >= per_db, (sa, sb)
    assert [t for t, _ in topic_status(A)] == [topics[A]], topic_status(A)
    assert [t for t, _ in topic_status(B)] == [topics[B]], topic_status(B)
    log = server_log()
    for db in (A, B):
        assert 'edu_outbox relay started for database "%s"' % db in log


def test_reload_stops_and_starts_a_database():
    set_databases("%s, %s" % (DB, A))
    wait_until(lambda: worker_pid(B) is None, timeout=30, what="the worker of %s to stop" % B)
    assert worker_pid(A) is not None
    wait_until(lambda: status(B)["worker_state"] == "not relayed", timeout=10,
               what="%s to say it is not relayed" % B)
    assert 'edu_outbox relay shutting down for database "%s"' % B in server_log()

    topic = new_topic("multi-back")
    publish_in(B, topic, {"seq": 0}, "k")
    time.sleep(3)
    assert consume(topic) == [], "%s is not relayed, nothing may arrive" % B

    starts = server_log().count('edu_outbox relay started for database "%s"' % B)
    set_databases("%s, %s, %s" % (DB, A, B))
    wait_until(lambda: worker_pid(B) is not None, timeout=30, what="the worker of %s again" % B)
    wait_for_records(topic, 1)
    assert server_log().count('edu_outbox relay started for database "%s"' % B) == starts + 1


def test_star_relays_a_later_created_extension():
    recreate_database(LATE, extension=False)
    set_databases("*")
    wait_until(lambda: worker_pid(A) and worker_pid(B) and worker_pid(DB), timeout=30,
               what="workers for every database with the extension")
    time.sleep(2)
    # no extension there: no worker stays (one may have looked and left)
    assert worker_pid(LATE) is None and worker_pid("postgres") is None
    log_before = server_log()
    assert 'relay started for database "%s"' % LATE not in log_before

    conn = connect(dbname=LATE)
    with conn.cursor() as cur:
        cur.execute("CREATE EXTENSION edu_outbox")
    assert not any("not relayed" in n for n in conn.notices), conn.notices
    conn.close()
    wait_until(lambda: worker_pid(LATE) is not None, timeout=8,
               what="a worker for %s soon after CREATE EXTENSION" % LATE)
    topic = new_topic("late")
    publish_in(LATE, topic, {"seq": 0}, "k")
    wait_for_records(topic, 1)
    assert status(LATE)["worker_pid"] == worker_pid(LATE)

    # dropping the extension ends that database's relay, and it stays ended
    sql("DROP EXTENSION edu_outbox", conn=connect(dbname=LATE))
    wait_until(lambda: worker_pid(LATE) is None, timeout=15, what="the worker of %s to stop" % LATE)
    time.sleep(3)
    assert worker_pid(LATE) is None, "a database without the extension must not be relayed"


def test_drop_database_of_a_relayed_database():
    # someone who may not drop it cannot stop its relay either
    pid_b = worker_pid(B)
    sql("DROP ROLE IF EXISTS mdb_intruder")
    sql("CREATE ROLE mdb_intruder")
    conn = connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SET ROLE mdb_intruder")
            try:
                cur.execute("DROP DATABASE %s" % B)
                raise AssertionError("mdb_intruder dropped a database it does not own")
            except psycopg2.errors.InsufficientPrivilege:
                pass
    finally:
        conn.close()
        sql("DROP ROLE mdb_intruder")
    time.sleep(1)
    assert worker_pid(B) == pid_b, "a refused DROP DATABASE must not stop the relay"

    assert worker_pid(A) is not None
    sql("DROP DATABASE %s" % A)   # no FORCE: the relay worker steps aside
    assert 'stops the relay worker of database "%s" for DROP DATABASE' % A in server_log()
    time.sleep(7)                 # past the launcher's pause before restarting a worker
    assert worker_pid(A) is None
    assert worker_pid(B) is not None and worker_pid(DB) is not None


def test_cleanup_back_to_one_database():
    set_databases(None)
    for db in (A, B, LATE):
        wait_until(lambda: worker_pid(db) is None, timeout=30, what="the worker of %s to stop" % db)
    for db in (A, B, LATE, QUIET):
        sql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % db)
    assert worker_pid(DB) is not None


TESTS = [
    test_not_relayed_database_says_so,
    test_two_databases_relayed_each_in_order,
    test_reload_stops_and_starts_a_database,
    test_star_relays_a_later_created_extension,
    test_drop_database_of_a_relayed_database,
    test_cleanup_back_to_one_database,
]

if __name__ == "__main__":
    only = sys.argv[1:]
    failed = run([t for t in TESTS if not only or t.__name__ in only])
    sys.exit(1 if failed else 0)
