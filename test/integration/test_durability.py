#!/usr/bin/env python3
"""Integration tests of edu_outbox.wait_for_standbys (issue 11) on a single
server: a standby it names that is not there holds delivery back, loudly, for
as long as it takes; edu_outbox.standby_wait_timeout lets the relay send
anyway; `on` with no standby configured or connected waits for nothing. The
failover scenarios with a real standby live in the fault suite
(test/faults/failover.py).

Run by test/run.sh on the integration services.
"""
import os
import sys
import time

import psycopg2

sys.path.insert(0, os.path.dirname(__file__))
from harness import (consume, new_topic, publish, run, server_log, set_and_reload,  # noqa: E402
                     sql, status, wait_for_records, wait_until)


def test_absent_named_standby_holds_delivery_back():
    log_start = len(server_log())
    topic = new_topic("durability-absent")
    set_and_reload(wait_for_standbys="nosuch")
    try:
        for i in range(3):
            publish(topic, {"n": i}, key="k")
        wait_until(lambda: status()["worker_state"] == "waiting for standby", 30,
                   "worker_state 'waiting for standby'")
        time.sleep(2)
        st = status()
        assert '"nosuch"' in (st["last_error"] or "") and "not connected" in st["last_error"], st
        assert consume(topic) == [], "events were sent although the standby never had them"
        wait_until(lambda: 'edu_outbox relay is waiting for standby "nosuch"'
                   in server_log()[log_start:], 30, "the log line about the standby")
    finally:
        set_and_reload(wait_for_standbys=None)
    wait_for_records(topic, 3)
    assert "no longer waiting for standbys" in server_log()[log_start:]


def test_any_standby_needs_one_connected():
    topic = new_topic("durability-any")
    set_and_reload(wait_for_standbys="*")
    try:
        publish(topic, {"n": 1})
        wait_until(lambda: status()["worker_state"] == "waiting for standby", 30,
                   "worker_state 'waiting for standby'")
        assert consume(topic) == []
    finally:
        set_and_reload(wait_for_standbys=None)
    wait_for_records(topic, 1)


def test_timeout_sends_anyway_with_a_warning():
    log_start = len(server_log())
    topic = new_topic("durability-timeout")
    set_and_reload(wait_for_standbys="nosuch", standby_wait_timeout="2s")
    try:
        publish(topic, {"n": 1})
        wait_for_records(topic, 1, timeout=30)
        assert 'does not have yet' in server_log()[log_start:], "no WARNING about sending anyway"
    finally:
        set_and_reload(wait_for_standbys=None, standby_wait_timeout=None)


def test_on_without_standbys_waits_for_none():
    assert sql("SHOW synchronous_standby_names")[0][0] == ""
    assert sql("SELECT count(*) FROM pg_stat_replication")[0][0] == 0
    topic = new_topic("durability-on")
    set_and_reload(wait_for_standbys="on")
    try:
        publish(topic, {"n": 1})
        wait_for_records(topic, 1, timeout=30)
    finally:
        set_and_reload(wait_for_standbys=None)


def test_bad_values_are_refused():
    for bad in (",", "a,,b", ""):
        try:
            sql("ALTER SYSTEM SET edu_outbox.wait_for_standbys = %s", (bad,))
        except psycopg2.errors.InvalidParameterValue:
            continue
        sql("ALTER SYSTEM RESET edu_outbox.wait_for_standbys")
        raise AssertionError("wait_for_standbys = %r was accepted" % bad)
    sql("ALTER SYSTEM SET edu_outbox.wait_for_standbys = 'a, \"B c\"'")
    sql("ALTER SYSTEM RESET edu_outbox.wait_for_standbys")


if __name__ == "__main__":
    sys.exit(1 if run([test_absent_named_standby_holds_delivery_back,
                       test_any_standby_needs_one_connected,
                       test_timeout_sends_anyway_with_a_warning,
                       test_on_without_standbys_waits_for_none,
                       test_bad_values_are_refused]) else 0)
