#!/usr/bin/env python3
"""exactly_once delivery against a real broker: chunks as Kafka
transactions, the position recorded in Kafka and taken back from there, and
dead letters. Crash scenarios are in test/faults.

Run by test/run.sh after test_relay.py and test_operations.py, on the same services.
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import (KAFKA, consume, new_topic, publish, relay_pid, run,  # noqa: E402
                     server_log, set_and_reload, sql, status, wait_for_records, wait_until)
import test_operations  # noqa: E402

POSITION_TOPIC = "edu_outbox_positions"


def outbox_ids(records):
    return [int(r["headers"]["outbox-id"]) for r in records]


def exactly_once():
    set_and_reload(delivery="exactly_once")
    wait_until(lambda: status()["producer_state"] == "connected", timeout=60,
               what="the transactional producer")


def at_least_once():
    set_and_reload(delivery=None, dead_letter_mode=None, kafka_properties=None)


def saved_position():
    return sql("SELECT delivered_snapshot, batch_snapshot, batch_pos_index, batch_pos_xid, "
               "batch_pos_done, batch_pos_last_id, position_seq FROM edu_outbox.relay_state")[0]


def rewind_position(saved):
    """Puts back an older relay_state position, as a crash that lost the
    relay's last (asynchronous) commits would."""
    sql("UPDATE edu_outbox.relay_state SET delivered_snapshot = %s, batch_snapshot = %s, "
        "batch_pos_index = %s, batch_pos_xid = %s, batch_pos_done = %s, batch_pos_last_id = %s, "
        "position_seq = %s", saved)


def positions(key):
    """The position records of one relay, read committed."""
    out = subprocess.run(["kcat", "-b", KAFKA, "-C", "-t", POSITION_TOPIC, "-o", "beginning",
                          "-e", "-q", "-f", "%k\t%s\n", "-X", "isolation.level=read_committed"],
                         capture_output=True, text=True, timeout=60)
    return [json.loads(line.split("\t", 1)[1]) for line in out.stdout.splitlines()
            if line.startswith(key + "\t")]


def test_chunks_commit_with_their_position():
    topic = eos_topic("eos")
    exactly_once()
    try:
        seq0 = sql("SELECT position_seq FROM edu_outbox.relay_state")[0][0]
        ids = [publish(topic, {"n": n}, "k") for n in range(20)]
        records = wait_for_records(topic, 20)
        assert outbox_ids(records) == ids, outbox_ids(records)
        wait_until(lambda: sql("SELECT position_seq FROM edu_outbox.relay_state")[0][0] > seq0,
                   what="position_seq in relay_state")
        seq, state_id = sql("SELECT position_seq, state_id::text FROM edu_outbox.relay_state")[0]
        system_id = sql("SELECT system_identifier FROM pg_control_system()")[0][0]
        txn_id = "edu_outbox-%s-%s" % (system_id, sql("SELECT current_database()")[0][0])
        mine = positions(txn_id)
        assert mine, "no position record keyed %s" % txn_id
        assert mine[-1]["seq"] == seq and mine[-1]["state_id"] == state_id, (mine[-1], seq, state_id)
        assert status()["worker_state"] == "delivering"
    finally:
        at_least_once()


def test_resumes_from_kafka_when_postgres_lost_its_position():
    """relay_state is put back to an older position while the relay is
    stopped (what a PostgreSQL crash does to the relay's asynchronous
    commits). exactly_once finds the later position in Kafka and sends
    nothing twice; at_least_once, as a control, sends the events again."""
    for mode in ("exactly_once", "at_least_once"):
        topic = (eos_topic if mode == "exactly_once" else new_topic)("resume-" + mode.replace("_", "-"))
        if mode == "exactly_once":
            exactly_once()
        else:
            at_least_once()
        first = [publish(topic, {"n": n}, "k") for n in range(5)]
        wait_for_records(topic, 5)
        wait_until(lambda: sql("SELECT count(*) FROM edu_outbox.outbox WHERE NOT pg_visible_in_snapshot("
                               "xid, (SELECT delivered_snapshot FROM edu_outbox.relay_state))")[0][0] == 0,
                   what="first events recorded as delivered")
        saved = saved_position()
        second = [publish(topic, {"n": n}, "k") for n in range(5, 10)]
        wait_for_records(topic, 10)
        wait_until(lambda: saved_position() != saved and
                   sql("SELECT count(*) FROM edu_outbox.outbox WHERE NOT pg_visible_in_snapshot("
                       "xid, (SELECT delivered_snapshot FROM edu_outbox.relay_state))")[0][0] == 0,
                   what="second events recorded as delivered")
        # the relay must be gone while relay_state is rewound: it would write its own back
        set_and_reload(database="postgres")
        wait_until(lambda: relay_pid() is None, what="the relay to stop")
        rewind_position(saved)
        set_and_reload(database=None)
        wait_until(lambda: relay_pid() is not None, what="a new relay")
        marker = publish(topic, {"n": "marker"}, "k")
        records = wait_for_records(topic, 11)
        got = outbox_ids(records)
        if mode == "exactly_once":
            assert got == first + second + [marker], got
            assert "resumes from the position it committed to Kafka" in server_log()
        else:
            assert got == first + second + second + [marker], got
    at_least_once()


# topics written in exactly_once mode, checked for repeats at the end
EOS_TOPICS = []


def eos_topic(name):
    topic = new_topic(name)
    EOS_TOPICS.append(topic)
    return topic


test_operations.new_topic = eos_topic


def test_dead_letters_and_parked_keys():
    """The dead-letter scenarios of test_operations, in exactly_once mode:
    a chunk with a poison event is aborted, its dead letters are recorded,
    and it is sent again without them."""
    exactly_once()
    try:
        test_operations.test_poison_message_is_dead_lettered_and_its_key_parked()
        test_operations.test_retry_dead_letter_after_fixing_the_cause()
        test_operations.test_skip_mode_lets_later_events_of_the_key_go_on()
        test_operations.test_unknown_topic_with_auto_creation_off_is_dead_lettered()
    finally:
        at_least_once()


def test_replay_is_new_records():
    exactly_once()
    try:
        test_operations.test_replay_by_id_and_by_time()
    finally:
        at_least_once()


def test_each_event_once_in_every_topic():
    """Every topic written in exactly_once mode by this file holds each
    outbox-id once for a read_committed reader."""
    assert len(EOS_TOPICS) >= 5, EOS_TOPICS
    aborted = 0
    for t in EOS_TOPICS:
        got = outbox_ids(consume(t))
        assert len(got) == len(set(got)), "%s repeats %s" % (t, sorted(i for i in got if got.count(i) > 1))
        aborted += len(consume(t, committed=False)) - len(got)
    print("# records of aborted transactions, visible only to read_uncommitted readers: %d" % aborted)


TESTS = [
    test_chunks_commit_with_their_position,
    test_resumes_from_kafka_when_postgres_lost_its_position,
    test_dead_letters_and_parked_keys,
    test_replay_is_new_records,
    test_each_event_once_in_every_topic,
]

if __name__ == "__main__":
    only = sys.argv[1:]
    selected = [t for t in TESTS if not only or t.__name__ in only]
    sys.exit(1 if run(selected) else 0)
