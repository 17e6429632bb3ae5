#!/usr/bin/env python3
"""Integration tests for capture triggers and operations (status, pause,
replay, dead letters) with a real PostgreSQL 15 and a real Kafka broker.

Run by test/run.sh after test_relay.py, on the same services.
"""
import json
import os
import subprocess
import sys
import time

import psycopg2
import psycopg2.extras

sys.path.insert(0, os.path.dirname(__file__))
from harness import (SCRIPTS, connect, consume, first_occurrences, new_topic,  # noqa: E402
                     publish, relay_pid, run, server_log, set_and_reload, sql, status,
                     wait_for_records, wait_until)


def payloads(records):
    return [json.loads(r["payload"]) for r in records]


def test_capture_trigger_events_in_commit_order():
    topic = new_topic("capture")
    sql('DROP TABLE IF EXISTS "Course"')
    sql('CREATE TABLE "Course" ("id" text PRIMARY KEY, "title" text, "secretNote" text)')
    sql("SELECT outbox_capture_table('\"Course\"', %s, exclude => ARRAY['secretNote'])", (topic,))
    sql('INSERT INTO "Course" VALUES (\'SQL-101\', \'Intro\', \'x\')')
    sql('UPDATE "Course" SET "title" = \'Intro to SQL\' WHERE "id" = \'SQL-101\'')
    conn = connect(autocommit=False)
    with conn.cursor() as cur:
        cur.execute('UPDATE "Course" SET "title" = \'rolled back\'')
    conn.rollback()
    conn.close()
    sql('DELETE FROM "Course" WHERE "id" = \'SQL-101\'')
    records = first_occurrences(wait_for_records(topic, 3))
    time.sleep(1)
    records = first_occurrences(consume(topic))
    ops = [(r["key"], json.loads(r["payload"])["op"], r["headers"]["event-type"]) for r in records]
    assert ops == [("SQL-101", "insert", "Course.insert"), ("SQL-101", "update", "Course.update"),
                   ("SQL-101", "delete", "Course.delete")], ops
    update = json.loads(records[1]["payload"])
    assert update["changed"] == ["title"] and update["data"]["title"] == "Intro to SQL", update
    assert all("secretNote" not in r["payload"] for r in records)
    assert all("rolled back" not in r["payload"] for r in records)
    sql('DROP TABLE "Course"')


def test_status_reports_worker_deliveries_and_topics():
    topic = new_topic("status")
    before = status()
    for i in range(5):
        publish(topic, {"i": i}, "k")
    wait_for_records(topic, 5)
    wait_until(lambda: status()["pending_events"] == 0, timeout=20, what="no pending events")
    st = status()
    assert st["worker_pid"] == relay_pid(), st
    assert st["worker_state"] == "delivering", st
    assert st["producer_state"] == "connected", st
    assert st["paused"] is False
    assert st["delivered_since_start"] >= before["delivered_since_start"] + 5, (before, st)
    assert st["lag"].total_seconds() == 0
    per_topic = dict(sql("SELECT topic, delivered FROM outbox_topic_status"))
    assert per_topic.get(topic) == 5, per_topic
    activity = sql("SELECT query FROM pg_stat_activity WHERE backend_type = 'edu_outbox relay'")
    assert activity and activity[0][0].startswith("edu_outbox:"), activity


def test_pause_keeps_events_and_resume_delivers_in_order():
    topic = new_topic("pause")
    resumed = server_log().count("edu_outbox relay resumed")
    assert sql("SELECT outbox_pause()")[0][0] is True
    try:
        wait_until(lambda: status()["worker_state"] == "paused", timeout=20, what="paused state")
        for i in range(20):
            publish(topic, {"seq": i}, "k")          # publishing keeps working
        time.sleep(2)
        assert consume(topic) == [], "nothing may be delivered while paused"
        st = status()
        assert st["paused"] is True and st["pending_events"] >= 20, st
        assert st["lag"].total_seconds() > 1, st
        assert sql("SELECT outbox_pause()")[0][0] is False   # already paused
    finally:
        assert sql("SELECT outbox_resume()")[0][0] is True
    records = first_occurrences(wait_for_records(topic, 20))
    assert [p["seq"] for p in payloads(records)] == list(range(20))
    assert "edu_outbox relay is paused" in server_log()
    # resumed into a backlog: said once the backlog goes out, not only on an idle cycle
    wait_until(lambda: server_log().count("edu_outbox relay resumed") > resumed, timeout=10,
               what="the log line saying the relay resumed")


def test_publishing_does_not_wake_a_paused_relay():
    """A paused relay delivers nothing, so a commit that only published leaves it
    asleep (issue 13: every wake-up is a cycle of SQL in the relay, taken from
    the writers' CPU); outbox_resume() still wakes it at once."""
    topic = new_topic("pause-asleep")
    set_and_reload(poll_interval="10min")
    try:
        assert sql("SELECT outbox_pause()")[0][0] is True
        wait_until(lambda: status()["worker_state"] == "paused", timeout=20, what="paused state")
        time.sleep(2)   # the wake-ups of the reload and of the pause are over

        def last_cycle():
            return sql("SELECT state_change FROM pg_stat_activity "
                       "WHERE backend_type = 'edu_outbox relay' AND datname = current_database()")[0][0]
        before = last_cycle()
        for i in range(5):
            publish(topic, {"seq": i}, "k")
        time.sleep(1)
        assert last_cycle() == before, "a commit that only published woke the paused relay"
    finally:
        assert sql("SELECT outbox_resume()")[0][0] is True
        # delivered long before the 10-minute poll: the resume woke the relay
        records = first_occurrences(wait_for_records(topic, 5, timeout=60))
        set_and_reload(poll_interval=None)
    assert [p["seq"] for p in payloads(records)] == list(range(5))


def test_replay_by_id_and_by_time():
    topic = new_topic("replay")
    ids = [publish(topic, {"seq": i}, "k") for i in range(3)]
    wait_for_records(topic, 3)
    wait_until(lambda: status()["pending_events"] == 0, timeout=20, what="delivery")
    assert sql("SELECT outbox_replay(%s, %s)", (ids[0], ids[1]))[0][0] == 2
    records = wait_for_records(topic, 5)
    replayed = [r for r in records if "outbox-replay-of" in r["headers"]]
    assert [r["headers"]["outbox-replay-of"] for r in replayed] == [str(ids[0]), str(ids[1])]
    assert [json.loads(r["payload"])["seq"] for r in replayed] == [0, 1]
    t = sql("SELECT min(created_at), max(created_at) FROM edu_outbox.outbox WHERE id = ANY(%s)", (ids,))[0]
    assert sql("SELECT outbox_replay(%s::timestamptz, %s::timestamptz)", t)[0][0] == 3
    wait_for_records(topic, 8)
    try:
        sql("SELECT outbox_replay(10, 1)")
        raise AssertionError("an inverted range must be refused")
    except psycopg2.Error as e:
        assert e.pgcode == "22023", e.pgcode


def publish_then_shrink_limit(topic, payload, key, **settings):
    """Publishes an event while it fits, then lowers the producer's
    message.max.bytes to 2000 so that librdkafka refuses it for good (publish
    itself refuses events that cannot be sent under the current limit)."""
    assert sql("SELECT outbox_pause()")[0][0] is True
    try:
        wait_until(lambda: status()["worker_state"] == "paused", timeout=20, what="paused state")
        poison = publish(topic, payload, key)
        set_and_reload(kafka_properties="message.max.bytes=2000", **settings)
    finally:
        sql("SELECT outbox_resume()")
    return poison


def test_poison_message_is_dead_lettered_and_its_key_parked():
    topic = new_topic("poison")
    other = new_topic("poison-other")
    # librdkafka refuses records over message.max.bytes for good
    try:
        poison = publish_then_shrink_limit(topic, {"blob": "x" * 5000}, "K")
        after_k = [publish(topic, {"seq": i}, "K") for i in range(3)]
        publish(topic, {"seq": 0}, "L")
        publish(other, {"ok": True}, "K")
        # L and the other topic flow; K is held back behind the poison event
        wait_for_records(other, 1)
        records = wait_for_records(topic, 1)
        assert [r["key"] for r in records] == ["L"], records
        dead = sql("SELECT id, parked_behind, error FROM outbox_dead_letters ORDER BY id")
        assert dead[0][0] == poison and dead[0][1] is None and "too large" in dead[0][2].lower(), dead
        assert [d[0] for d in dead[1:]] == after_k and all(d[1] == poison for d in dead[1:]), dead
        assert status()["dead_letters"] == 4
        assert "moved event %d to the dead-letter table" % poison in server_log()
        # new events for K keep queueing behind it
        later = publish(topic, {"seq": 3}, "K")
        wait_until(lambda: sql("SELECT count(*) FROM outbox_dead_letters WHERE id = %s", (later,))[0][0] == 1,
                   timeout=20, what="a later K event to be parked")
    finally:
        set_and_reload(kafka_properties=None)
    # discarding the poison event releases the parked ones, in order
    assert sql("SELECT outbox_discard_dead_letter(%s)", (poison,))[0][0] == 4
    records = first_occurrences(wait_for_records(topic, 5))
    k = [json.loads(r["payload"])["seq"] for r in records if r["key"] == "K"]
    assert k == [0, 1, 2, 3], k
    assert sql("SELECT count(*) FROM outbox_dead_letters")[0][0] == 0
    try:
        sql("SELECT outbox_retry_dead_letter(%s)", (poison,))
        raise AssertionError("retrying a discarded dead letter must fail")
    except psycopg2.Error as e:
        assert e.pgcode == "P0002", e.pgcode


def test_retry_dead_letter_after_fixing_the_cause():
    topic = new_topic("retry")
    try:
        poison = publish_then_shrink_limit(topic, {"blob": "y" * 3000}, "K")
        publish(topic, {"seq": 1}, "K")
        wait_until(lambda: sql("SELECT count(*) FROM outbox_dead_letters")[0][0] == 2,
                   timeout=30, what="dead letter and parked event")
    finally:
        set_and_reload(kafka_properties=None)
    assert sql("SELECT outbox_retry_dead_letter(%s)", (poison,))[0][0] == 2
    records = first_occurrences(wait_for_records(topic, 2))
    assert [r["headers"]["outbox-retry-of"] for r in records] == [str(poison), str(poison + 1)]
    assert "blob" in records[0]["payload"] and json.loads(records[1]["payload"]) == {"seq": 1}


def test_skip_mode_lets_later_events_of_the_key_go_on():
    topic = new_topic("skip")
    try:
        poison = publish_then_shrink_limit(topic, {"blob": "z" * 3000}, "K", dead_letter_mode="skip")
        publish(topic, {"seq": 1}, "K")
        records = wait_for_records(topic, 1)
        assert json.loads(records[0]["payload"]) == {"seq": 1}
        assert sql("SELECT id, parked_behind FROM outbox_dead_letters") == [(poison, None)]
    finally:
        set_and_reload(kafka_properties=None, dead_letter_mode=None)
        sql("SELECT outbox_discard_dead_letter(id) FROM outbox_dead_letters WHERE parked_behind IS NULL")


def test_broker_refusing_an_oversized_record():
    # Larger than the broker's message.max.bytes but allowed by the client:
    # the broker itself refuses it, asynchronously.
    topic = new_topic("too-big")
    set_and_reload(kafka_properties="message.max.bytes=3000000")
    try:
        conn = connect()
        with conn.cursor() as cur:
            cur.execute("SET edu_outbox.max_payload_size = 3000000")
            cur.execute("SELECT outbox_publish(%s, %s::jsonb, 'K')", (topic, json.dumps({"b": "q" * 1200000})))
            poison = cur.fetchone()[0]
        conn.close()
        publish(topic, {"seq": 1}, "L")
        records = wait_for_records(topic, 1, timeout=90)
        assert [r["key"] for r in records] == ["L"], [r["key"] for r in records]
        dead = sql("SELECT id, parked_behind FROM outbox_dead_letters")
        assert dead == [(poison, None)], dead
    finally:
        set_and_reload(kafka_properties=None)
        sql("SELECT outbox_discard_dead_letter(id) FROM outbox_dead_letters WHERE parked_behind IS NULL")


def test_credentials_stay_out_of_logs_and_nothing_is_lost():
    # A wrong SASL set-up (the broker speaks PLAINTEXT): events wait, the
    # password never reaches the server log, and all arrive once it is fixed.
    topic = new_topic("secrets")
    secret = "TOPSECRET-%d" % int(time.time())
    path = os.path.join(os.environ["PGDIR_EDU"], "kafka-secrets.conf")
    with open(path, "w") as f:
        f.write("# relay credentials\nsasl.password=%s\n" % secret)
    os.chmod(path, 0o600)
    os.system("chown postgres %s" % path)
    wait_until(lambda: relay_pid() is not None, timeout=30, what="the relay worker")
    pid = relay_pid()
    set_and_reload(kafka_properties="security.protocol=SASL_PLAINTEXT; sasl.mechanisms=PLAIN; "
                                    "sasl.username=relay; message.timeout.ms=5000",
                   kafka_secrets_file=path)
    try:
        for i in range(5):
            publish(topic, {"seq": i}, "k")
        time.sleep(8)
        assert consume(topic) == [], "nothing can be delivered with the wrong protocol"
        assert status()["pending_events"] >= 5
        assert relay_pid() == pid, "the worker must back off, not crash-loop"
    finally:
        set_and_reload(kafka_properties=None, kafka_secrets_file=None)
    records = first_occurrences(wait_for_records(topic, 5, timeout=90))
    assert [json.loads(r["payload"])["seq"] for r in records] == list(range(5))
    assert secret not in server_log(), "the password appeared in the server log"
    assert status()["last_error"] is None or secret not in status()["last_error"]


def test_garbage_broker_list_is_reported_without_crash_loop():
    topic = new_topic("garbage")
    wait_until(lambda: relay_pid() is not None, timeout=30, what="the relay worker")
    pid = relay_pid()
    set_and_reload(brokers="this is :: not a broker list", kafka_properties="message.timeout.ms=3000")
    try:
        publish(topic, {"n": 1}, "k")
        time.sleep(6)
        assert relay_pid() == pid, "the worker must keep running"
        st = status()
        assert st["pending_events"] >= 1 and st["worker_state"] in ("failing", "bad configuration"), st
        assert st["last_error"], st
    finally:
        set_and_reload(brokers=None, kafka_properties=None)
    records = wait_for_records(topic, 1, timeout=90)
    assert json.loads(records[0]["payload"]) == {"n": 1}


def _second_broker(action, port, home):
    env = dict(os.environ, KAFKA_PORT=str(port), KAFKA_HOME_DIR=home)
    subprocess.run([os.path.join(SCRIPTS, "kafka.sh"), action], check=True, env=env,
                   stdout=subprocess.DEVNULL)


def test_unknown_topic_with_auto_creation_off_is_dead_lettered():
    # A second broker: the topic "exists-<n>" is created while auto-creation is
    # on, then the broker restarts with auto.create.topics.enable=false.
    port = int(os.environ["KAFKA_PORT"]) + 4
    home = os.path.join(os.path.dirname(os.environ["PGDIR_EDU"]), "kafka-noauto")
    broker = "127.0.0.1:%d" % port
    exists, missing = new_topic("exists"), new_topic("missing")
    _second_broker("start", port, home)
    try:
        subprocess.run(["kcat", "-b", broker, "-P", "-t", exists], input=b"seed\n", check=True)
        seeded = subprocess.run(["kcat", "-b", broker, "-C", "-t", exists, "-o", "beginning", "-e", "-q"],
                                capture_output=True, text=True, timeout=60).stdout
        assert "seed" in seeded, seeded
        _second_broker("stop", port, home)
        with open(os.path.join(home, "server.properties"), "a") as f:
            f.write("auto.create.topics.enable=false\n")
        _second_broker("start", port, home)
        set_and_reload(brokers=broker, kafka_properties="topic.metadata.propagation.max.ms=3000")
        poison = publish(missing, {"n": 1}, "K")
        parked = publish(missing, {"n": 2}, "K")
        publish(exists, {"n": 3}, "K")       # another topic: not held back
        wait_until(lambda: sql("SELECT count(*) FROM outbox_dead_letters")[0][0] == 2,
                   timeout=60, what="the unknown-topic event and the one behind it")
        dead = sql("SELECT id, parked_behind, error FROM outbox_dead_letters ORDER BY id")
        assert dead[0][:2] == (poison, None) and dead[1][:2] == (parked, poison), dead
        assert "unknown" in dead[0][2].lower(), dead
        # exactly_once records the dead letters before it sends the chunk again without them
        wait_until(lambda: '{"n": 3}' in subprocess.run(
            ["kcat", "-b", broker, "-C", "-t", exists, "-o", "beginning", "-e", "-q",
             "-X", "isolation.level=read_committed"],
            capture_output=True, text=True, timeout=60).stdout, timeout=30, what="the event of the other topic")
    finally:
        set_and_reload(brokers=None, kafka_properties=None)
        _second_broker("destroy", port, home)
        sql("SELECT outbox_discard_dead_letter(id) FROM outbox_dead_letters WHERE parked_behind IS NULL")


TESTS = [
    test_capture_trigger_events_in_commit_order,
    test_status_reports_worker_deliveries_and_topics,
    test_pause_keeps_events_and_resume_delivers_in_order,
    test_publishing_does_not_wake_a_paused_relay,
    test_replay_by_id_and_by_time,
    test_poison_message_is_dead_lettered_and_its_key_parked,
    test_retry_dead_letter_after_fixing_the_cause,
    test_skip_mode_lets_later_events_of_the_key_go_on,
    test_broker_refusing_an_oversized_record,
    test_credentials_stay_out_of_logs_and_nothing_is_lost,
    test_garbage_broker_list_is_reported_without_crash_loop,
    test_unknown_topic_with_auto_creation_off_is_dead_lettered,
]

if __name__ == "__main__":
    import psycopg2.extras  # noqa: F401  (RealDictCursor)
    only = sys.argv[1:]
    selected = [t for t in TESTS if not only or t.__name__ in only]
    sys.exit(1 if run(selected) else 0)
