#!/usr/bin/env python3
"""Integration tests for the privacy of captured rows (issue 9): what an
outbox_capture() trigger sends, read back from a real Kafka broker with kcat.

Run by test/run.sh after test_operations.py, on the same services.
"""
import json
import os
import sys
import time

import psycopg2

sys.path.insert(0, os.path.dirname(__file__))
from harness import (connect, consume, first_occurrences, new_topic, run, sql,  # noqa: E402
                     wait_for_records)

SSN = "123-45-6789"


def record_text(r):
    """Everything a consumer receives: key, value and every header name and value."""
    return json.dumps([r["key"], r["payload"], r["headers"]])


def test_excluded_primary_key_reaches_no_part_of_the_record():
    topic = new_topic("citizens")
    sql("DROP TABLE IF EXISTS citizens")
    sql("CREATE TABLE citizens (ssn text PRIMARY KEY, name text)")
    try:
        # The primary key is the default key: excluding it must not leave it there.
        try:
            sql("SELECT outbox_capture_table('citizens', %s, exclude => ARRAY['ssn'])", (topic,))
            refused = False
        except psycopg2.Error as e:
            refused = True
            assert 'key column "ssn"' in str(e) and "not sent" in str(e), str(e)
        if refused:
            # the documented way: no Kafka key at all
            sql("SELECT outbox_capture_table('citizens', %s, exclude => ARRAY['ssn'], "
                "key => ARRAY[]::text[])", (topic,))
        sql("INSERT INTO citizens VALUES (%s, 'Ann')", (SSN,))
        sql("UPDATE citizens SET name = 'Anne'")
        sql("DELETE FROM citizens")
        wait_for_records(topic, 3)
        time.sleep(1)
        records = first_occurrences(consume(topic))
        # keyless records spread over partitions: compare without order
        assert sorted(json.loads(r["payload"])["op"] for r in records) == ["delete", "insert", "update"], records
        for r in records:
            assert SSN not in record_text(r) and "ssn" not in record_text(r), r
        assert all(r["key"] is None for r in records), records
    finally:
        sql("DROP TABLE citizens")


def test_partitioned_table_events_carry_the_table_written_to():
    topic = new_topic("partitioned")
    sql("DROP TABLE IF EXISTS orders")
    sql("CREATE TABLE orders (id int, region text, card text, PRIMARY KEY (id, region)) "
        "PARTITION BY LIST (region)")
    sql("CREATE TABLE orders_p_eu PARTITION OF orders FOR VALUES IN ('eu')")
    try:
        sql("SELECT outbox_capture_table('orders', %s, exclude => ARRAY['card'])", (topic,))
        sql("INSERT INTO orders VALUES (1, 'eu', '4111-1111')")
        sql("ALTER TABLE orders RENAME COLUMN card TO card_number")
        sql("INSERT INTO orders_p_eu VALUES (2, 'eu', '4222-2222')")
        wait_for_records(topic, 2)
        time.sleep(1)
        records = first_occurrences(consume(topic))
        assert len(records) == 2, records
        for r in records:
            assert r["headers"]["event-type"] == "orders.insert", r
            assert json.loads(r["payload"])["table"] == "orders", r
            assert "4111" not in record_text(r) and "4222" not in record_text(r), r
            assert "card" not in record_text(r) and "orders_p_eu" not in record_text(r), r
    finally:
        sql("DROP TABLE orders")


def test_upgrade_from_0_1_names_captures_that_now_fail_and_follows_renames():
    db = "capture_upgrade_test"
    sql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % db)
    sql("CREATE DATABASE %s" % db)
    conn = connect(dbname=db)
    notices = []
    try:
        sql("CREATE EXTENSION edu_outbox VERSION '0.1'", conn=conn)
        sql("CREATE TABLE citizens (ssn text PRIMARY KEY, name text)", conn=conn)
        sql("CREATE TABLE members (id int PRIMARY KEY, pin text)", conn=conn)
        # made under 0.1: the excluded primary key would be the Kafka key
        sql("CREATE TRIGGER leaky AFTER INSERT ON citizens FOR EACH ROW "
            "EXECUTE FUNCTION outbox_capture('it-upgrade', 'exclude=ssn')", conn=conn)
        sql("CREATE TRIGGER fine AFTER INSERT ON members FOR EACH ROW "
            "EXECUTE FUNCTION outbox_capture('it-upgrade', 'exclude=pin')", conn=conn)
        sql("ALTER EXTENSION edu_outbox UPDATE TO '0.2'", conn=conn)
        notices = list(conn.notices)
        assert any('capture trigger "leaky" on table citizens now fails every write' in n
                   for n in notices), notices
        assert not any('"fine"' in n for n in notices), notices
        # 0.2's event trigger follows renames of triggers made under 0.1
        sql("ALTER TABLE members RENAME COLUMN pin TO secret_pin", conn=conn)
        sql("INSERT INTO members VALUES (1, '0000')", conn=conn)
        payload = sql("SELECT payload::text FROM edu_outbox.outbox", conn=conn)
        assert len(payload) == 1 and "0000" not in payload[0][0], payload
    finally:
        conn.close()
        sql("DROP DATABASE %s WITH (FORCE)" % db)


TESTS = [
    test_excluded_primary_key_reaches_no_part_of_the_record,
    test_partitioned_table_events_carry_the_table_written_to,
    test_upgrade_from_0_1_names_captures_that_now_fail_and_follows_renames,
]

if __name__ == "__main__":
    sql("CREATE EXTENSION IF NOT EXISTS edu_outbox")   # the suite may run this file first
    only = sys.argv[1:]
    selected = [t for t in TESTS if not only or t.__name__ in only]
    sys.exit(1 if run(selected) else 0)
