#!/usr/bin/env python3
"""Integration tests of the delivery loop under unusual but ordinary use
(issue 8): big events, huge transactions, rows removed by hand, a relay that
cannot make progress, dead letters while idle. Real PostgreSQL, real Kafka.

Run by test/run.sh after test_operations.py, on the same services.
"""
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import (KAFKA, PG_DIR, PG_PORT, DB, ROOT, connect, new_topic,  # noqa: E402
                     publish, relay_pid, run, server_log, set_and_reload, sql, status,
                     undelivered_count, wait_for_records, wait_until)


def end_offsets(topic):
    """Records the topic holds (sum of its partitions' end offsets), without reading them."""
    out = subprocess.run(["kcat", "-b", KAFKA, "-L", "-t", topic, "-J"],
                         capture_output=True, text=True, timeout=60).stdout
    parts = re.findall(r'"partition":(\d+)', out)
    total = 0
    for p in parts:
        q = subprocess.run(["kcat", "-b", KAFKA, "-Q", "-t", "%s:%s:-1" % (topic, p)],
                           capture_output=True, text=True, timeout=60).stdout
        m = re.search(r"\[%s\]\s+offset\s+(\d+)" % p, q)
        total += int(m.group(1)) if m else 0
    return total


def proc_status(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])   # kB
    raise AssertionError("no %s for pid %d" % (field, pid))


def proc_cpu_seconds(pid):
    """utime + stime of a process (all threads), in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fresh_relay():
    """Kills the relay and waits for the postmaster to start a new one (VmHWM starts over)."""
    old = relay_pid()
    sql("SELECT pg_terminate_backend(%s)", (old,))
    wait_until(lambda: relay_pid() not in (None, old), timeout=30, what="a new relay worker")
    return relay_pid()


def test_big_events_relay_memory_is_bounded():
    # Finding 1: 2,500 events of 900 kB (2.25 GB) published by an ordinary role.
    # The relay holds one chunk, and only once: librdkafka owns the payload
    # bytes until acknowledged. Its peak RSS (VmHWM) is bounded by the shared
    # buffers it touches, plus one chunk's bytes held by librdkafka, plus the
    # piece being read and the process's own size, independent of N.
    n, kb = 2500, 900
    chunk_max = int(sql("SELECT setting FROM pg_settings WHERE name = 'edu_outbox.chunk_max_bytes'")[0][0])
    shared_buffers_mb = int(sql("SELECT setting::int8 * 8192 / 1048576 FROM pg_settings "
                                "WHERE name = 'shared_buffers'")[0][0])
    bound_mb = shared_buffers_mb + 3 * chunk_max // (1024 * 1024) + 150
    topic = new_topic("big")
    pid = fresh_relay()
    sql("DROP ROLE IF EXISTS it_big_app")
    sql("CREATE ROLE it_big_app LOGIN")
    try:
        sql("SELECT outbox_pause()")
        start = time.time()
        out = subprocess.run(
            ["psql", "-h", PG_DIR, "-p", str(PG_PORT), "-U", "it_big_app", "-d", DB, "-Atqc",
             "SELECT count(outbox_publish('%s', jsonb_build_object('i', g, 'pad', repeat('x', %d))))"
             " FROM generate_series(1, %d) g" % (topic, kb * 1000, n)],
            capture_output=True, text=True, timeout=600)
        assert out.stdout.strip() == str(n), out.stderr
        sql("SELECT outbox_resume()")
        wait_until(lambda: undelivered_count() == 0, timeout=600, what="the big events to drain")
        print("# %d x %d kB published and drained in %.1f s" % (n, kb, time.time() - start), flush=True)
        assert end_offsets(topic) >= n, "topic holds %d records, expected %d" % (end_offsets(topic), n)
        hwm_mb = proc_status(pid, "VmHWM") // 1024
        print("# relay VmHWM %d MB (bound %d MB: shared_buffers %d MB + 3 x chunk_max_bytes + 150 MB)"
              % (hwm_mb, bound_mb, shared_buffers_mb), flush=True)
        assert relay_pid() == pid, "the relay restarted during the test"
        assert hwm_mb < bound_mb, "relay peak RSS %d MB exceeds %d MB" % (hwm_mb, bound_mb)
    finally:
        sql("SELECT outbox_resume()")
        sql("DROP ROLE IF EXISTS it_big_app")


def fetch_query():
    """The reader's query, as src/batch.c spells it."""
    with open(os.path.join(ROOT, "src", "batch.c")) as f:
        src = f.read()
    m = re.search(r"static const char \*const fetch_sql =\s*((?:\"(?:[^\"\\]|\\.)*\"\s*|OUTBOX_SCHEMA\s*)+);",
                  src)
    assert m, "fetch_sql not found in src/batch.c"
    parts = re.findall(r'"((?:[^"\\]|\\.)*)"|(OUTBOX_SCHEMA)', m.group(1))
    return "".join('"edu_outbox"' if schema else text for text, schema in parts)


def test_reading_a_huge_transaction_sorts_nothing():
    # Finding 6: each chunk used to sort every remaining row of the transaction.
    # The reader's query must take rows in (xid, id) index order: no Sort node,
    # whatever the position in the transaction (generic plan, as the worker runs it).
    conn = connect()
    with conn.cursor() as cur:
        cur.execute("SELECT outbox_pause()")
        cur.execute("BEGIN")
        cur.execute("SELECT count(outbox_publish('it-plan', jsonb_build_object('n', g), 'k'))"
                    " FROM generate_series(1, 20000) g")
        cur.execute("SELECT pg_current_xact_id()::text")
        xid = cur.fetchone()[0]
        cur.execute("COMMIT")
        cur.execute("ANALYZE edu_outbox.outbox")
        cur.execute("SET plan_cache_mode = force_generic_plan")
        cur.execute("PREPARE fetch_chunk(text, int8, int4) AS " + fetch_query())
        cur.execute("EXPLAIN EXECUTE fetch_chunk(%s, 10000, 100)", ("{%s}" % xid,))
        plan = "\n".join(r[0] for r in cur.fetchall())
        cur.execute("SELECT outbox_resume()")
    conn.close()
    nodes = [re.sub(r"^\s*(->\s*)?", "", line) for line in plan.splitlines() if "(cost=" in line]
    assert not [n for n in nodes if re.match(r"(Incremental )?Sort\b", n)], plan
    assert "Index" in plan, plan
    wait_until(lambda: undelivered_count() == 0, timeout=120, what="the events to drain")


def test_truncate_mid_batch_recovers_with_a_warning():
    # Finding 5: TRUNCATE during delivery of one big transaction used to stall
    # the relay for good. It must log what vanished and go on by itself.
    topic = new_topic("trunc")
    after = new_topic("after-trunc")
    set_and_reload(chunk_max_events="100")
    try:
        sql("SELECT outbox_pause()")
        sql("SELECT count(outbox_publish(%s, jsonb_build_object('n', g), 'k' || (g %% 10)))"
            " FROM generate_series(1, 100000) g", (topic,))
        delivered0 = status()["delivered_since_start"]
        sql("SELECT outbox_resume()")
        wait_until(lambda: status()["delivered_since_start"] > delivered0 + 500, timeout=60,
                   what="delivery to start")
        sql("TRUNCATE edu_outbox.outbox")
        publish(after, {"n": "after"}, "k")
        records = wait_for_records(after, 1, timeout=60)
        assert records[0]["payload"] == '{"n": "after"}', records
        wait_until(lambda: undelivered_count() == 0, timeout=30, what="nothing pending")
        log = server_log()
        assert "undelivered events that vanished from the outbox" in log, log[-3000:]
        st = status()
        assert st["worker_state"] == "delivering", st
    finally:
        sql("SELECT outbox_resume()")
        set_and_reload(chunk_max_events=None)


def test_truncate_of_the_outbox_does_not_deadlock_with_cleanup():
    # A TRUNCATE of the whole outbox locks the parent, then every partition.
    # The relay's cleanup locked a partition first and read the parent after,
    # so with a TRUNCATE in between one of them died of "deadlock detected".
    # Here the TRUNCATE's first lock is taken alone (LOCK TABLE ONLY) while the
    # id sequence enters a new range, which makes the relay's next cycle look
    # at a partition to clean; then the TRUNCATE goes on.
    topic = new_topic("trunc-lock")
    publish(topic, {"n": 0}, "k")
    wait_for_records(topic, 1, timeout=60)
    wait_until(lambda: undelivered_count() == 0, timeout=30, what="nothing pending")
    mark = len(server_log())
    conn = connect(autocommit=False)
    try:
        with conn.cursor() as cur:
            cur.execute("SET statement_timeout = '30s'")
            cur.execute("LOCK TABLE ONLY edu_outbox.outbox IN ACCESS EXCLUSIVE MODE")
            cur.execute("SELECT setval('edu_outbox.outbox_id_seq', "
                        "(last_value / 65536 + 1) * 65536) FROM edu_outbox.outbox_id_seq")
            wait_until(lambda: sql("SELECT wait_event_type FROM pg_stat_activity "
                                   "WHERE backend_type = 'edu_outbox relay'") == [("Lock",)],
                       timeout=30, what="the relay to wait for the outbox")
            cur.execute("TRUNCATE edu_outbox.outbox")
        conn.commit()
    finally:
        conn.close()
    log = server_log()[mark:]
    assert "deadlock detected" not in log, log[-3000:]
    publish(topic, {"n": 1}, "k")
    wait_for_records(topic, 2, timeout=60)


def test_no_progress_shows_as_stalled_with_the_reason():
    # Finding 5: status said "delivering" while nothing moved. With events
    # pending and no progress for stall_timeout, worker_state is 'stalled'.
    topic = new_topic("stall")
    set_and_reload(stall_timeout="2s", brokers="127.0.0.1:1")   # nothing listens there
    try:
        publish(topic, {"n": 1}, "k")
        wait_until(lambda: status()["worker_state"] == "stalled", timeout=30,
                   what="worker_state 'stalled'")
        st = status()
        assert "no delivery progress" in (st["last_error"] or ""), st
        assert "broker" in st["last_error"], st
    finally:
        set_and_reload(stall_timeout=None, brokers=None)
    wait_for_records(topic, 1, timeout=90)
    wait_until(lambda: status()["worker_state"] == "delivering", timeout=30,
               what="worker_state back to 'delivering'")


def test_idle_relay_with_dead_letters_uses_no_cpu():
    # Finding 2/8: dead letters (here 20 with 2 MB keys) used to be re-read
    # every cycle, keys and all: an idle relay burned CPU. Idle must cost ~0.
    set_and_reload(poll_interval="100ms")
    topic = new_topic("dl-idle")
    try:
        sql("""INSERT INTO edu_outbox.dead_letter (id, topic, key, payload, created_at, error)
               SELECT -g, %s, (SELECT string_agg(md5(g::text || i::text), '')
                               FROM generate_series(1, 65536) i),
                      '{}'::jsonb, now(), 'test dead letter'
               FROM generate_series(1, 20) g""", (topic,))
        # one event makes the relay learn the dead letters, then it is idle
        publish(topic, {"n": 1}, "not-parked")
        wait_for_records(topic, 1)
        wait_until(lambda: undelivered_count() == 0, what="nothing pending")
        time.sleep(1)
        pid = relay_pid()
        c0, t0 = proc_cpu_seconds(pid), time.time()
        time.sleep(4)
        used = proc_cpu_seconds(pid) - c0
        print("# idle relay CPU with 20 dead letters of 2 MB keys: %.2f s in %.1f s"
              % (used, time.time() - t0), flush=True)
        assert used < 0.3, "idle relay used %.2f s of CPU in 4 s" % used
    finally:
        sql("DELETE FROM edu_outbox.dead_letter WHERE id < 0")
        set_and_reload(poll_interval=None)


TESTS = [
    test_reading_a_huge_transaction_sorts_nothing,
    test_truncate_mid_batch_recovers_with_a_warning,
    test_truncate_of_the_outbox_does_not_deadlock_with_cleanup,
    test_no_progress_shows_as_stalled_with_the_reason,
    test_idle_relay_with_dead_letters_uses_no_cpu,
    test_big_events_relay_memory_is_bounded,
]

if __name__ == "__main__":
    only = sys.argv[1:]
    selected = [t for t in TESTS if not only or t.__name__ in only]
    sys.exit(1 if run(selected) else 0)
