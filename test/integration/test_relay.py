#!/usr/bin/env python3
"""Integration tests: edu_outbox with a real PostgreSQL 15 and a real Kafka broker.

Run by test/run.sh, which starts both services and sets the environment.
Every test publishes to its own topic, so tests do not see each other's events.
"""
import json
import os
import signal
import sys
import threading
import time
import random

sys.path.insert(0, os.path.dirname(__file__))
from harness import (by_key, connect, consume, first_occurrences, new_topic,  # noqa: E402
                     publish, relay_pid, run, script, server_log, set_and_reload, sql,
                     undelivered_count, wait_for_records, wait_until)


def test_waits_for_extension_then_delivers():
    # The worker runs before CREATE EXTENSION and waits for it politely.
    sql("DROP EXTENSION IF EXISTS edu_outbox")
    wait_until(lambda: "waiting for the extension to be created" in server_log(),
               timeout=30, what="the relay to log that it waits for the extension")
    assert relay_pid() is not None, "relay worker is not running"
    sql("CREATE EXTENSION edu_outbox")
    topic = new_topic("first")
    publish(topic, {"hello": "world"}, "k1")
    records = wait_for_records(topic, 1)
    assert json.loads(records[0]["payload"]) == {"hello": "world"}


def test_record_format():
    topic = new_topic("format")
    payload = {"type": "user_registered", "userId": 42, "name": "Zoë 🎓", "tags": ["a", "b"]}
    event_id = publish(topic, payload, "42", {"traceparent": "00-abc-01", "source": "web"})
    event_id2 = publish(topic, [1, 2, 3])     # no key, no headers
    deep = [[[[[[[[[[{"a": "\u00e9\U0001d11e\\\"\t"}]]]]]]]]]]
    event_id3 = publish(topic, deep, "deep")
    rows = sql("SELECT id, payload::text, (extract(epoch FROM created_at) * 1000)::int8 "
               "FROM edu_outbox.outbox WHERE id IN (%s, %s) ORDER BY id", (event_id, event_id2))
    records = wait_for_records(topic, 3)
    byid = {int(r["headers"]["outbox-id"]): r for r in records}
    assert set(byid) == {event_id, event_id2, event_id3}, byid.keys()
    deep_text = sql("SELECT payload::text FROM edu_outbox.outbox WHERE id = %s", (event_id3,))[0][0]
    assert byid[event_id3]["payload"] == deep_text and json.loads(deep_text) == deep

    r = byid[event_id]
    assert r["payload"] == rows[0][1], (r["payload"], rows[0][1])   # the JSON text of the payload
    assert json.loads(r["payload"]) == payload
    assert r["key"] == "42"
    assert r["headers"] == {"traceparent": "00-abc-01", "source": "web",
                            "outbox-id": str(event_id)}, r["headers"]
    assert r["tstype"] == "create" and r["ts"] == rows[0][2], (r["ts"], rows[0][2])

    r2 = byid[event_id2]
    assert r2["key"] is None, r2["key"]
    assert r2["headers"] == {"outbox-id": str(event_id2)}
    assert r2["payload"] == "[1, 2, 3]"


def test_rolled_back_work_never_arrives():
    topic = new_topic("rollback")
    conn = connect(autocommit=False)
    with conn.cursor() as cur:
        cur.execute("SELECT outbox_publish(%s, '{\"n\": \"rolled-back-tx\"}', 'k')", (topic,))
    conn.rollback()
    with conn.cursor() as cur:
        cur.execute("SELECT outbox_publish(%s, '{\"n\": \"kept-1\"}', 'k')", (topic,))
        cur.execute("SAVEPOINT s")
        cur.execute("SELECT outbox_publish(%s, '{\"n\": \"rolled-back-savepoint\"}', 'k')", (topic,))
        cur.execute("ROLLBACK TO SAVEPOINT s")
        cur.execute("SELECT outbox_publish(%s, '{\"n\": \"kept-2\"}', 'k')", (topic,))
    conn.commit()
    conn.close()
    # A later event in another transaction proves the relay got past all of them.
    publish(topic, {"n": "marker"}, "k")
    records = wait_for_records(topic, 3)
    time.sleep(1.0)
    names = [json.loads(r["payload"])["n"] for r in first_occurrences(consume(topic))]
    assert names == ["kept-1", "kept-2", "marker"], names


def _two_sessions_out_of_id_order(topic, wait_between):
    a = connect(autocommit=False)
    b = connect(autocommit=False)
    with a.cursor() as cur:
        cur.execute("SELECT outbox_publish(%s, '{\"who\": \"A\"}', 'same-key')", (topic,))
        id_a = cur.fetchone()[0]
    with b.cursor() as cur:
        cur.execute("SELECT outbox_publish(%s, '{\"who\": \"B\"}', 'same-key')", (topic,))
        id_b = cur.fetchone()[0]
    assert id_a < id_b
    b.commit()                       # B commits first although its id is larger
    if wait_between:
        wait_for_records(topic, 1)   # B delivered while A is still open
    a.commit()
    a.close()
    b.close()
    records = first_occurrences(wait_for_records(topic, 2))
    who = [json.loads(r["payload"])["who"] for r in records]
    assert who == ["B", "A"], "expected commit order B, A; got %s (ids A=%d B=%d)" % (who, id_a, id_b)


def test_out_of_order_commit_in_one_batch():
    # The relay is frozen (SIGSTOP) while A and B commit, so its next
    # snapshot sees both: they land in one batch and must go in commit
    # order, not id order.
    topic = new_topic("ooo-batch")
    pid = relay_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        a = connect(autocommit=False)
        b = connect(autocommit=False)
        with a.cursor() as cur:
            cur.execute("SELECT outbox_publish(%s, '{\"who\": \"A\"}', 'same-key')", (topic,))
        with b.cursor() as cur:
            cur.execute("SELECT outbox_publish(%s, '{\"who\": \"B\"}', 'same-key')", (topic,))
        b.commit()
        a.commit()
        a.close()
        b.close()
    finally:
        os.kill(pid, signal.SIGCONT)
    records = first_occurrences(wait_for_records(topic, 2))
    who = [json.loads(r["payload"])["who"] for r in records]
    assert who == ["B", "A"], "expected commit order B, A; got %s" % who


def test_out_of_order_commit_across_batches():
    # B is delivered before A commits; A (smaller id) must still arrive, after B.
    _two_sessions_out_of_id_order(new_topic("ooo-gap"), wait_between=True)


def test_concurrent_writers_keep_per_key_commit_order():
    topic = new_topic("concurrent")
    keys = ["user-%d" % i for i in range(8)]
    sql("CREATE TABLE IF NOT EXISTS it_counters (key text PRIMARY KEY, n int NOT NULL)")
    sql("DELETE FROM it_counters")
    sql("INSERT INTO it_counters SELECT k, 0 FROM unnest(%s::text[]) k", (keys,))
    per_thread, threads, errors = 150, 6, []

    def writer(seed):
        rnd = random.Random(seed)
        conn = connect(autocommit=False)
        try:
            for _ in range(per_thread):
                key = rnd.choice(keys)
                with conn.cursor() as cur:
                    # the row lock orders transactions of one key: seq order = commit order
                    cur.execute("UPDATE it_counters SET n = n + 1 WHERE key = %s RETURNING n", (key,))
                    seq = cur.fetchone()[0]
                    cur.execute("SELECT outbox_publish(%s, %s::jsonb, %s)",
                                (topic, json.dumps({"key": key, "seq": seq}), key))
                    if rnd.random() < 0.3:
                        cur.execute("SAVEPOINT s")
                        cur.execute("SELECT outbox_publish(%s, '{\"phantom\": true}', %s)", (topic, key))
                        cur.execute("ROLLBACK TO SAVEPOINT s")
                if rnd.random() < 0.1:
                    conn.rollback()
                else:
                    conn.commit()
        except Exception as e:  # reported by the main thread
            errors.append(e)
        finally:
            conn.close()

    ts = [threading.Thread(target=writer, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors
    expected = dict(sql("SELECT key, n FROM it_counters"))
    total = sum(expected.values())
    records = first_occurrences(wait_for_records(topic, total, timeout=120))
    assert len(records) == total, (len(records), total)
    for key, recs in by_key(records).items():
        seqs = [json.loads(r["payload"]).get("seq") for r in recs]
        assert seqs == list(range(1, expected[key] + 1)), "key %s: %s" % (key, seqs)


def test_broker_down_then_everything_arrives():
    topic = new_topic("outage")
    publish(topic, {"seq": 0}, "k")
    wait_for_records(topic, 1)
    script("kafka.sh", "stop")
    try:
        ids = [publish(topic, {"seq": i}, "k") for i in range(1, 51)]   # publishing still works
        assert len(ids) == 50
        time.sleep(3)
        assert undelivered_count() >= 50, "rows must stay in the outbox while Kafka is down"
        assert relay_pid() is not None
    finally:
        script("kafka.sh", "start")
    records = first_occurrences(wait_for_records(topic, 51, timeout=120))
    seqs = [json.loads(r["payload"])["seq"] for r in records]
    assert seqs == list(range(51)), seqs
    wait_until(lambda: undelivered_count() == 0, timeout=30, what="the outbox to drain")
    log = server_log()
    assert "edu_outbox relay could not deliver event" in log or \
           "edu_outbox relay cannot reach any Kafka broker" in log, "outage was not logged"


def test_killed_worker_restarts_and_resends():
    topic = new_topic("killed")
    script("kafka.sh", "stop")
    try:
        for i in range(20):
            publish(topic, {"seq": i}, "k")
        wait_until(lambda: "edu_outbox: sending" in (sql(
            "SELECT query FROM pg_stat_activity WHERE backend_type = 'edu_outbox relay'") or [[""]])[0][0],
                   timeout=30, what="the relay to have the events in flight")
        pid = relay_pid()
        os.kill(pid, signal.SIGKILL)   # unacknowledged events die with it
        # the postmaster restarts the cluster's processes, then the worker
        wait_until(lambda: (relay_pid() or pid) != pid, timeout=60, what="a new relay worker")
    finally:
        script("kafka.sh", "start")
    records = first_occurrences(wait_for_records(topic, 20, timeout=120))
    assert [json.loads(r["payload"])["seq"] for r in records] == list(range(20))


def test_reload_switches_brokers():
    topic = new_topic("reload")
    sql("ALTER SYSTEM SET edu_outbox.brokers = '127.0.0.1:1'")   # nothing listens there
    sql("SELECT pg_reload_conf()")
    try:
        wait_until(lambda: "reconnecting with new Kafka settings" in server_log(), timeout=30,
                   what="the relay to pick up the reload")
        publish(topic, {"n": 1}, "k")
        time.sleep(3)
        assert consume(topic) == [], "nothing can be delivered to a wrong broker"
    finally:
        sql("ALTER SYSTEM RESET edu_outbox.brokers")
        sql("SELECT pg_reload_conf()")
    records = wait_for_records(topic, 1, timeout=90)
    assert json.loads(records[0]["payload"]) == {"n": 1}


def test_delivered_partitions_are_truncated_not_deleted():
    topic = new_topic("cleanup")
    # Put events in partition p0 (ids 0..65535), deliver them.
    sql("SELECT setval('edu_outbox.outbox_id_seq', 65536 * 4 * 10 + 100)")
    for i in range(30):
        publish(topic, {"seq": i}, "k")
    wait_for_records(topic, 30)
    assert sql("SELECT count(*) FROM edu_outbox.outbox_p0")[0][0] >= 30
    # Stop Kafka, add undelivered rows to p0 too, then move ids into p3:
    # p0 is next and must not be truncated while it holds undelivered rows.
    script("kafka.sh", "stop")
    try:
        for i in range(30, 40):
            publish(topic, {"seq": i}, "k")
        sql("SELECT setval('edu_outbox.outbox_id_seq', 65536 * 4 * 10 + 65536 * 3)")
        publish(topic, {"seq": 40}, "k")
        time.sleep(4)
        assert sql("SELECT count(*) FROM edu_outbox.outbox_p0")[0][0] >= 40, \
            "undelivered rows were truncated"
    finally:
        script("kafka.sh", "start")
    records = first_occurrences(wait_for_records(topic, 41, timeout=120))
    assert [json.loads(r["payload"])["seq"] for r in records] == list(range(41))
    wait_until(lambda: sql("SELECT count(*) FROM edu_outbox.outbox_p0")[0][0] == 0,
               timeout=30, what="p0 to be truncated")
    dead = sql("SELECT coalesce(sum(n_dead_tup), 0) FROM pg_stat_user_tables "
               "WHERE schemaname = 'edu_outbox' AND relname LIKE 'outbox_p%%'")[0][0]
    assert dead == 0, "outbox partitions have %d dead tuples" % dead


def test_clean_shutdown_and_restart():
    topic = new_topic("restart")
    for i in range(10):
        publish(topic, {"seq": i}, "k")
    wait_for_records(topic, 10)
    script("pg.sh", "restart")
    assert "edu_outbox relay shutting down" in server_log()
    for i in range(10, 20):
        publish(topic, {"seq": i}, "k")
    records = first_occurrences(wait_for_records(topic, 20, timeout=60))
    assert [json.loads(r["payload"])["seq"] for r in records] == list(range(20))


def _separate_commits(topic, n, pause_s):
    """n events, each in its own transaction, pause_s apart (one session, no round trips)."""
    sql("""DO $$ BEGIN
             FOR i IN 0..%d LOOP
               PERFORM outbox_publish(%%s, jsonb_build_object('seq', i), 'k');
               COMMIT;
               PERFORM pg_sleep(%s);
             END LOOP;
           END $$""" % (n - 1, pause_s), (topic,))


def test_position_written_at_most_every_100ms():
    """The relay writes its position lazily (at most every 100 ms), not once
    per commit, and still writes it once it has nothing left to send."""
    topic = new_topic("lazy")
    publish(topic, {"seq": -1}, "k")
    wait_for_records(topic, 1)      # the topic exists: no wait for its creation below
    sql("CREATE TABLE relay_state_writes (at timestamptz NOT NULL)")
    sql("""CREATE FUNCTION note_relay_state_write() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN INSERT INTO public.relay_state_writes VALUES (clock_timestamp()); RETURN NULL; END $$""")
    sql("CREATE TRIGGER note_write AFTER UPDATE ON edu_outbox.relay_state "
        "FOR EACH ROW EXECUTE FUNCTION public.note_relay_state_write()")
    try:
        _separate_commits(topic, 100, 0.005)
        records = first_occurrences(wait_for_records(topic, 101))
        assert [json.loads(r["payload"])["seq"] for r in records] == list(range(-1, 100))
        wait_until(lambda: undelivered_count() == 0, timeout=10, what="the position to be written")
        writes = [r[0] for r in sql("SELECT at FROM relay_state_writes ORDER BY at")]
        assert writes, "the relay never wrote its position"
        gaps = [(b - a).total_seconds() * 1000 for a, b in zip(writes, writes[1:])]
        assert not gaps or min(gaps) >= 95, \
            "%d position writes for 100 commits, %.1f ms apart at the closest" % (len(writes), min(gaps))
    finally:
        sql("DROP TRIGGER note_write ON edu_outbox.relay_state")
        sql("DROP FUNCTION note_relay_state_write()")
        sql("DROP TABLE relay_state_writes")


def _relay_state_reads():
    return sql("SELECT seq_scan + coalesce(idx_scan, 0) FROM pg_stat_user_tables "
               "WHERE schemaname = 'edu_outbox' AND relname = 'relay_state'")[0][0]


def test_coalesce_window_gathers_commits_into_one_cycle():
    """With edu_outbox.coalesce_window, commits arriving close behind the one
    that woke the relay are read in the same cycle instead of one each. Each
    cycle reads relay_state (the paused flag) at least once, which the
    statistics count: 40 commits 20 ms apart take about 40 cycles or more
    without a window and a few with a 1 s window."""
    topic = new_topic("coalesce")
    publish(topic, {"seq": -1}, "k")
    wait_for_records(topic, 1)      # the topic exists: no wait for its creation below
    set_and_reload(coalesce_window="1s")
    try:
        time.sleep(2)       # let the relay's statistics settle
        before = _relay_state_reads()
        _separate_commits(topic, 40, 0.02)
        records = first_occurrences(wait_for_records(topic, 41))
        assert [json.loads(r["payload"])["seq"] for r in records] == list(range(-1, 40))
        time.sleep(3)       # the relay flushes its statistics at most once a second
        cycles = _relay_state_reads() - before
        assert cycles < 20, "%d reads of relay_state for 40 commits" % cycles
    finally:
        set_and_reload(coalesce_window=None)


TESTS = [
    test_waits_for_extension_then_delivers,
    test_record_format,
    test_rolled_back_work_never_arrives,
    test_out_of_order_commit_in_one_batch,
    test_out_of_order_commit_across_batches,
    test_concurrent_writers_keep_per_key_commit_order,
    test_broker_down_then_everything_arrives,
    test_killed_worker_restarts_and_resends,
    test_reload_switches_brokers,
    test_delivered_partitions_are_truncated_not_deleted,
    test_clean_shutdown_and_restart,
    test_position_written_at_most_every_100ms,
    test_coalesce_window_gathers_commits_into_one_cycle,
]

if __name__ == "__main__":
    only = sys.argv[1:]
    selected = [t for t in TESTS if not only or t.__name__ in only]
    sys.exit(1 if run(selected) else 0)
