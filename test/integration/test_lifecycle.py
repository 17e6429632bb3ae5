#!/usr/bin/env python3
"""Integration tests for the extension's life cycle with a real PostgreSQL 15
and a real Kafka broker: pg_dump/pg_restore, ALTER EXTENSION UPDATE from 0.1,
DROP EXTENSION with events pending.

Run by test/run.sh after test_operations.py, on the same services. Tests that
relay another database point edu_outbox.database at it and restart the
server; each puts the setting back.
"""
import difflib
import json
import os
import re
import subprocess
import sys
import threading
import time

import psycopg2

sys.path.insert(0, os.path.dirname(__file__))
from harness import (DB, PG_DIR, PG_PORT, connect, consume, new_topic,  # noqa: E402
                     script, sql, wait_for_records, wait_until)

PGBIN = subprocess.run(["pg_config", "--bindir"], capture_output=True,
                       text=True).stdout.strip()
CONN_ARGS = ["-h", PG_DIR, "-p", str(PG_PORT), "-U", "postgres"]


def pg_tool(name, *args):
    out = subprocess.run([os.path.join(PGBIN, name)] + CONN_ARGS + list(args),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, "%s failed: %s" % (name, out.stderr)
    return out.stdout


def fresh_db(name, create_extension=True, version=None):
    sql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % name, dbname="postgres")
    sql("CREATE DATABASE %s" % name, dbname="postgres")
    if create_extension:
        sql("CREATE EXTENSION edu_outbox" + (" VERSION '%s'" % version if version else ""),
            dbname=name)


def relay_database(name):
    """Points the relay at database name (a restart: the setting is postmaster-level)."""
    sql("ALTER SYSTEM SET edu_outbox.database = %s", (name,), dbname="postgres")
    script("pg.sh", "restart")
    wait_until(lambda: sql("SELECT count(*) FROM pg_stat_activity "
                           "WHERE backend_type = 'edu_outbox relay' AND datname = %s",
                           (name,), dbname="postgres")[0][0] == 1,
               what="relay worker in %s" % name)


def restore_relay_database():
    sql("ALTER SYSTEM RESET edu_outbox.database", dbname="postgres")
    script("pg.sh", "restart")
    wait_until(lambda: sql("SELECT count(*) FROM pg_stat_activity "
                           "WHERE backend_type = 'edu_outbox relay'", dbname="postgres")[0][0] == 1,
               what="relay worker back in %s" % DB)


def ids(records):
    return [int(r["headers"]["outbox-id"]) for r in records]


def pending(db):
    return sql("SELECT pending_events FROM outbox_status()", dbname=db)[0][0]


def test_dump_restore_keeps_pending_events_and_ids():
    """pg_dump -Fc + pg_restore (plain and -1): pending events survive and are
    delivered once, in order, when the restored database is relayed; ids go on
    above the old ones; relay_state does not collide."""
    topic = new_topic("dump")
    dump = "/tmp/edu_outbox_dump_%d.fc" % os.getpid()
    try:
        fresh_db("lc_src")
        relay_database("lc_src")
        delivered = [sql("SELECT outbox_publish(%s, %s::jsonb, 'k')", (topic, json.dumps({"n": n})),
                         dbname="lc_src")[0][0] for n in range(3)]
        wait_for_records(topic, 3)
        wait_until(lambda: pending("lc_src") == 0, what="delivered state persisted")
        sql("SELECT outbox_pause()", dbname="lc_src")
        conn = connect(autocommit=False, dbname="lc_src")
        with conn.cursor() as cur:   # several transactions, several rows each
            waiting = []
            for n in range(3, 8):
                cur.execute("SELECT outbox_publish(%s, %s::jsonb, 'k')", (topic, json.dumps({"n": n})))
                waiting.append(cur.fetchone()[0])
                if n % 2:
                    conn.commit()
        conn.commit()
        conn.close()
        assert pending("lc_src") == 5
        sql("INSERT INTO edu_outbox.dead_letter (id, topic, key, payload, created_at, error, parked_behind) "
            "VALUES (12, 'dl', 'k', '{\"d\": 2}', now(), 'held back', 11), "
            "(11, 'dl', 'k', '{\"d\": 1}', now(), 'Broker: Message size too large', NULL)", dbname="lc_src")
        last_src = max(waiting)
        pg_tool("pg_dump", "-Fc", "-f", dump, "lc_src")
        os.chmod(dump, 0o644)

        for target, extra in (("lc_dst", []), ("lc_dst1", ["-1"])):
            fresh_db(target, create_extension=False)
            pg_tool("pg_restore", "--exit-on-error", *extra, "-d", target, dump)
            assert sql("SELECT paused FROM outbox_status()", dbname=target)[0][0] is True, \
                "the pause travels with the dump"
            assert pending(target) == 5, "%s: pending after restore" % target
            assert sql("SELECT id, parked_behind FROM outbox_dead_letters ORDER BY id", dbname=target) == \
                [(11, None), (12, 11)], "%s: dead letters" % target
            before = len(consume(topic))
            relay_database(target)
            sql("SELECT outbox_resume()", dbname=target)
            new_id = sql("SELECT outbox_publish(%s, '{\"n\": 8}'::jsonb, 'k')", (topic,),
                         dbname=target)[0][0]
            assert new_id > last_src, "%s: id %d after restore is not above %d" % (target, new_id, last_src)
            records = wait_for_records(topic, before + 6)
            time.sleep(2)
            got = ids(consume(topic)[before:])
            assert got == waiting + [new_id], "%s: got %s, expected %s" % (target, got, waiting + [new_id])
            assert pending(target) == 0
            assert set(ids(records[:3])) == set(delivered)

        # DROP + CREATE EXTENSION does not restart ids below earlier ones
        # (the restored dead letters are still there: say so to drop them)
        sql("SET edu_outbox.discard_pending_on_drop = on; DROP EXTENSION edu_outbox; "
            "CREATE EXTENSION edu_outbox", dbname="lc_dst1")
        again = sql("SELECT outbox_publish(%s, '{}')", (topic,), dbname="lc_dst1")[0][0]
        assert again > new_id, "id %d after DROP + CREATE EXTENSION is not above %d" % (again, new_id)
    finally:
        if os.path.exists(dump):
            os.unlink(dump)
        restore_relay_database()
        for db in ("lc_src", "lc_dst", "lc_dst1"):
            sql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % db, dbname="postgres")


def test_publish_after_the_extension_is_recreated():
    """outbox_publish() looks the outbox up once per session (issue 13): a DROP
    and CREATE EXTENSION, in the same session or in another one, must not
    leave it writing to the dropped tables."""
    fresh_db("lc_recreate")   # not relayed: its events stay where we can count them
    here = connect(dbname="lc_recreate")
    other = connect(dbname="lc_recreate")
    try:
        def publish_on(conn, n):
            cur = conn.cursor()
            cur.execute("SELECT outbox_publish('recreate-test', %s::jsonb)", (json.dumps({"n": n}),))
            return cur.fetchone()[0]

        def recreate(conn):
            cur = conn.cursor()
            cur.execute("SET edu_outbox.discard_pending_on_drop = on")
            cur.execute("DROP EXTENSION edu_outbox")
            cur.execute("CREATE EXTENSION edu_outbox")

        publish_on(here, 1)
        publish_on(other, 2)
        recreate(here)
        publish_on(here, 3)      # same session as the DROP
        publish_on(other, 4)     # a session that cached the old tables
        rows = sql("SELECT payload->>'n' FROM edu_outbox.outbox ORDER BY id", dbname="lc_recreate")
        assert [r[0] for r in rows] == ["3", "4"], rows
        # an owner change is seen too: events are written with the new owner's rights
        sql("DROP ROLE IF EXISTS lc_recreate_owner", dbname="postgres")
        sql("CREATE ROLE lc_recreate_owner", dbname="postgres")
        sql("ALTER TABLE edu_outbox.outbox OWNER TO lc_recreate_owner", dbname="lc_recreate")
        try:
            publish_on(other, 5)
            raise AssertionError("published without the owner's INSERT right")
        except psycopg2.Error as e:
            assert "permission denied" in str(e), str(e)
    finally:
        here.close()
        other.close()
        sql("DROP DATABASE IF EXISTS lc_recreate WITH (FORCE)", dbname="postgres")
        sql("DROP ROLE IF EXISTS lc_recreate_owner", dbname="postgres")


def test_drop_extension_refuses_while_events_are_pending():
    """DROP EXTENSION (with or without CASCADE, or DROP SCHEMA ... CASCADE of its
    schema) says how many events would be lost and refuses, unless
    edu_outbox.discard_pending_on_drop is on."""
    fresh_db("lc_drop")   # not relayed: its events stay pending
    try:
        for n in range(3):
            sql("SELECT outbox_publish('drop-test', %s::jsonb)", (json.dumps({"n": n}),), dbname="lc_drop")
        for stmt in ("DROP EXTENSION edu_outbox", "DROP EXTENSION edu_outbox CASCADE",
                     "DROP EXTENSION IF EXISTS edu_outbox, plpgsql CASCADE",
                     "DROP SCHEMA public CASCADE"):
            try:
                sql(stmt, dbname="lc_drop")
                raise AssertionError("%s succeeded with 3 events pending" % stmt)
            except psycopg2.Error as e:
                assert "3 events" in str(e), "%s: %s" % (stmt, e)
        assert sql("SELECT count(*) FROM edu_outbox.outbox", dbname="lc_drop")[0][0] == 3
        # a dead letter counts too: it was never delivered
        sql("INSERT INTO edu_outbox.dead_letter (id, topic, payload, created_at, error) "
            "VALUES (1, 'drop-test', '{}', now(), 'test')", dbname="lc_drop")
        try:
            sql("DROP EXTENSION edu_outbox", dbname="lc_drop")
            raise AssertionError("DROP EXTENSION succeeded with events pending")
        except psycopg2.Error as e:
            assert "1 dead letter" in str(e), str(e)
        # saying so explicitly drops them, with a warning that counts them
        conn = connect(dbname="lc_drop")
        conn.cursor().execute("SET edu_outbox.discard_pending_on_drop = on")
        conn.cursor().execute("DROP EXTENSION edu_outbox")
        assert any("3 pending events" in n for n in conn.notices), conn.notices
        conn.close()
        assert sql("SELECT count(*) FROM pg_extension WHERE extname = 'edu_outbox'", dbname="lc_drop")[0][0] == 0
        # with nothing pending, DROP EXTENSION needs no setting
        sql("CREATE EXTENSION edu_outbox", dbname="lc_drop")
        sql("DROP EXTENSION edu_outbox", dbname="lc_drop")
    finally:
        sql("DROP DATABASE IF EXISTS lc_drop WITH (FORCE)", dbname="postgres")


def test_alter_extension_update_from_0_1_with_events_pending_and_relay_running():
    """CREATE EXTENSION ... VERSION '0.1', events pending, a writer publishing
    and the relay delivering: ALTER EXTENSION edu_outbox UPDATE loses nothing
    and keeps the order."""
    topic = new_topic("upgrade")
    fresh_db("lc_up", version="0.1")
    try:
        assert sql("SELECT extversion FROM pg_extension WHERE extname = 'edu_outbox'",
                   dbname="lc_up")[0][0] == "0.1"
        relay_database("lc_up")
        # the library is newer than the extension's tables: the relay waits, it does not fail
        wait_until(lambda: sql("SELECT worker_state FROM outbox_status()", dbname="lc_up")[0][0]
                   == "waiting for extension update", what="relay waiting for the update")
        sql("SELECT outbox_pause()", dbname="lc_up")
        published = []
        conn = connect(dbname="lc_up")
        for n in range(100):
            published.append(sql("SELECT outbox_publish(%s, %s::jsonb, 'k')",
                                 (topic, json.dumps({"n": n})), conn=conn)[0][0])
        assert pending("lc_up") == 100
        stop = threading.Event()
        errors = []

        def writer():   # one writer: its commit order is its publish order
            try:
                n = 100
                while not stop.is_set() or n < 400:
                    with conn.cursor() as cur:
                        cur.execute("SELECT outbox_publish(%s, %s::jsonb, 'k')", (topic, json.dumps({"n": n})))
                        published.append(cur.fetchone()[0])
                    n += 1
                    time.sleep(0.002)
            except Exception as e:   # reported by the main thread
                errors.append(e)

        t = threading.Thread(target=writer)
        t.start()
        sql("SELECT outbox_resume()", dbname="lc_up")
        time.sleep(0.3)
        sql("ALTER EXTENSION edu_outbox UPDATE", dbname="lc_up")
        time.sleep(0.5)
        stop.set()
        t.join(120)
        conn.close()
        assert not errors, errors
        assert sql("SELECT extversion = default_version FROM pg_extension, pg_available_extensions "
                   "WHERE extname = 'edu_outbox' AND name = extname", dbname="lc_up")[0][0]
        records = wait_for_records(topic, len(published), timeout=120)
        got = []
        for i in ids(records):
            if i not in got:
                got.append(i)
        assert got == published, "lost %s, order kept: %s" % (
            sorted(set(published) - set(got)), got == sorted(got, key=published.index))
        wait_until(lambda: pending("lc_up") == 0, what="nothing pending after the upgrade")
    finally:
        restore_relay_database()
        sql("DROP DATABASE IF EXISTS lc_up WITH (FORCE)", dbname="postgres")


def extension_schema(db):
    """Every object of the extension, as pg_dump --binary-upgrade writes them
    (it spells out extension members), without oids and xids."""
    out = pg_tool("pg_dump", "--schema-only", "--binary-upgrade", db)
    lines = []
    for line in out.splitlines():
        if not line or line.startswith("--") or line.startswith("\\") or "binary_upgrade_set_next" in line:
            continue
        line = re.sub(r"'\{[0-9,]+\}'", "'{oids}'", line)
        line = re.sub(r"oid = '[0-9]+'", "oid = ?", line)
        line = re.sub(r"(setval\('edu_outbox.outbox_id_seq', )[0-9]+", r"\1?", line)
        line = re.sub(r"relfrozenxid = '[0-9]+', relminmxid = '[0-9]+'", "xids", line)
        lines.append(line)
    return lines


def test_fresh_install_and_upgrade_from_0_1_have_the_same_schema():
    """CREATE EXTENSION edu_outbox (0.2) and CREATE ... VERSION '0.1' + ALTER
    EXTENSION UPDATE give the same objects, definitions, grants and dump
    configuration."""
    fresh_db("lc_fresh")
    fresh_db("lc_upgraded", version="0.1")
    try:
        sql("ALTER EXTENSION edu_outbox UPDATE", dbname="lc_upgraded")
        for db in ("lc_fresh", "lc_upgraded"):
            installed, default = sql("SELECT installed_version, default_version FROM pg_available_extensions "
                                     "WHERE name = 'edu_outbox'", dbname=db)[0]
            assert installed == default != "0.1", (db, installed, default)
        a, b = extension_schema("lc_fresh"), extension_schema("lc_upgraded")
        assert any("ALTER EXTENSION edu_outbox ADD TABLE edu_outbox.outbox_p3" in line for line in a), a[:20]
        diff = list(difflib.unified_diff(a, b, "fresh 0.2", "0.1 -> 0.2", lineterm="", n=1))
        assert not diff, "\n".join(diff[:60])
    finally:
        for db in ("lc_fresh", "lc_upgraded"):
            sql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % db, dbname="postgres")


def test_restored_rows_in_the_create_extension_transaction_stay_pending():
    """pg_restore -1 loads the outbox in the transaction that ran CREATE
    EXTENSION, whose snapshot can count that very transaction as delivered
    (its own xid is never in its snapshot's in-progress list, and a later xid
    may have committed before the snapshot). Restored rows must stay pending."""
    sql("DROP DATABASE IF EXISTS lc_same_tx WITH (FORCE)", dbname="postgres")
    sql("CREATE DATABASE lc_same_tx", dbname="postgres")
    restore = connect(autocommit=False, dbname="lc_same_tx")
    try:
        with restore.cursor() as cur:
            cur.execute("SELECT pg_current_xact_id()")
            sql("BEGIN; SELECT pg_current_xact_id(); COMMIT", dbname="lc_same_tx")  # a later xid commits first
            cur.execute("CREATE EXTENSION edu_outbox")
            cur.execute("SELECT pg_visible_in_snapshot(pg_current_xact_id(), delivered_snapshot) "
                        "FROM edu_outbox.relay_state")
            assert cur.fetchone()[0], "setup: this transaction should look delivered to its own snapshot"
            # what pg_restore's COPY does: rows with the old cluster's xids
            cur.execute("INSERT INTO edu_outbox.outbox (id, xid, topic, payload) "
                        "VALUES (7, '123456', 'restored', '{}'), (8, '3', 'restored', '{}')")
        restore.commit()
        assert pending("lc_same_tx") == 2
    finally:
        restore.close()
        sql("DROP DATABASE IF EXISTS lc_same_tx WITH (FORCE)", dbname="postgres")


TESTS = [
    test_restored_rows_in_the_create_extension_transaction_stay_pending,
    test_fresh_install_and_upgrade_from_0_1_have_the_same_schema,
    test_alter_extension_update_from_0_1_with_events_pending_and_relay_running,
    test_drop_extension_refuses_while_events_are_pending,
    test_publish_after_the_extension_is_recreated,
    test_dump_restore_keeps_pending_events_and_ids,
]

if __name__ == "__main__":
    from harness import run
    only = sys.argv[1:]
    selected = [t for t in TESTS if not only or t.__name__ in only]
    sys.exit(1 if run(selected) else 0)
