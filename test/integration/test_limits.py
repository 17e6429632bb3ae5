#!/usr/bin/env python3
"""Integration tests for the size limits and for events Kafka refuses, with a
real PostgreSQL 15 and a real Kafka broker (issue 8, findings 2-4).

Run by test/run.sh after test_operations.py, on the same services.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import (connect, first_occurrences, new_topic, publish, run, sql,  # noqa: E402
                     wait_for_records, wait_until)


def default_setting(name):
    return int(sql("SELECT boot_val FROM pg_settings WHERE name = %s", ("edu_outbox." + name,))[0][0])


def test_event_at_every_default_limit_is_delivered():
    # The payload, key and headers each exactly at its default limit: accepted
    # by publish, so it must also be accepted by the producer and a broker
    # with default settings, not dead-lettered.
    payload_size = default_setting("max_payload_size")
    key_size = default_setting("max_key_size")
    headers_size = default_setting("max_headers_size")
    headers_count = default_setting("max_headers_count")
    topic = new_topic("at-limits")
    payload = "p" * (payload_size - 2)                   # a JSON string: two quotes
    key = "k" * key_size
    name_len = len("h%03d" % 0)
    value_len = headers_size // headers_count - name_len
    headers = {"h%03d" % i: "v" * value_len for i in range(headers_count)}
    headers["h000"] += "v" * (headers_size - headers_count * (name_len + value_len))
    assert sum(len(n) + len(v) for n, v in headers.items()) == headers_size
    big = publish(topic, payload, key, headers)
    small = publish(topic, {"after": True}, key)
    records = first_occurrences(wait_for_records(topic, 2, timeout=90))
    assert [int(r["headers"]["outbox-id"]) for r in records] == [big, small], \
        [r["headers"]["outbox-id"] for r in records]
    r = records[0]
    assert len(r["payload"]) == payload_size and json.loads(r["payload"]) == payload
    assert r["key"] == key
    assert len(r["headers"]) == headers_count + 1 and r["headers"]["h001"] == headers["h001"]
    assert sql("SELECT count(*) FROM outbox_dead_letters WHERE topic = %s", (topic,))[0][0] == 0


def test_oversized_parts_are_refused_at_publish():
    # One byte over each limit fails the caller's statement; nothing is stored.
    topic = new_topic("over-limits")
    cases = [
        ({"x": "p" * default_setting("max_payload_size")}, None, None),
        ({}, "k" * (default_setting("max_key_size") + 1), None),
        ({}, None, {"h": "v" * default_setting("max_headers_size")}),
        ({}, None, {"h%d" % i: "" for i in range(default_setting("max_headers_count") + 1)}),
    ]
    conn = connect()
    for payload, key, headers in cases:
        try:
            publish(topic, payload, key, headers, conn)
            raise AssertionError("accepted an oversized event: key %s, headers %s"
                                 % (key and len(key), headers and len(headers)))
        except Exception as e:   # psycopg2.Error
            assert getattr(e, "pgcode", None) == "54000", e
    conn.close()
    assert sql("SELECT count(*) FROM edu_outbox.outbox WHERE topic = %s", (topic,))[0][0] == 0


TESTS = [
    test_event_at_every_default_limit_is_delivered,
    test_oversized_parts_are_refused_at_publish,
]

if __name__ == "__main__":
    sql("CREATE EXTENSION IF NOT EXISTS edu_outbox")   # when run on its own
    only = sys.argv[1:]
    selected = [t for t in TESTS if not only or t.__name__ in only]
    sys.exit(1 if run(selected) else 0)
