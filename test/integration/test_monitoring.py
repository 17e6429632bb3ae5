#!/usr/bin/env python3
"""The roles created with the extension, and the postgres_exporter query
file examples/monitoring/queries.yaml, against a real PostgreSQL 15 with a
real Kafka broker.

Run by test/run.sh with the other integration tests, on the same services.
"""
import os
import sys

import psycopg2
import yaml

sys.path.insert(0, os.path.dirname(__file__))
from harness import (DB, PG_DIR, PG_PORT, ROOT, new_topic, publish, run, sql,  # noqa: E402
                     wait_for_records)

QUERIES = os.path.join(ROOT, "examples", "monitoring", "queries.yaml")
USAGES = {"LABEL", "GAUGE", "COUNTER", "DURATION", "DISCARD", "MAPPEDMETRIC", "HISTOGRAM"}


def as_role(role, query):
    conn = psycopg2.connect(host=PG_DIR, port=PG_PORT, user=role, dbname=DB)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(query)
            return [d.name for d in cur.description], cur.fetchall()
    finally:
        conn.close()


def test_exporter_queries_run_as_the_monitor_role():
    """Each query of queries.yaml runs as a member of edu_outbox_monitor and
    returns exactly the columns its metrics name, numbers where they are
    gauges or counters."""
    sql("CREATE EXTENSION IF NOT EXISTS edu_outbox")
    topic = new_topic("exporter")
    publish(topic, {"n": 1}, key="k")
    wait_for_records(topic, 1)
    sql("INSERT INTO edu_outbox.dead_letter (id, topic, payload, created_at, error) "
        "VALUES (-4242, 'exporter-dl', '{}', now(), 'test') ON CONFLICT DO NOTHING")
    sql("DROP ROLE IF EXISTS it_exporter")
    sql("CREATE ROLE it_exporter LOGIN IN ROLE edu_outbox_monitor")
    sql("DROP ROLE IF EXISTS it_nobody")
    sql("CREATE ROLE it_nobody LOGIN")
    try:
        with open(QUERIES) as f:
            spec = yaml.safe_load(f)
        assert set(spec) >= {"edu_outbox", "edu_outbox_topic", "edu_outbox_dead_letters"}, spec.keys()
        for name, q in spec.items():
            declared = {}
            for m in q["metrics"]:
                (col, attrs), = m.items()
                assert attrs["usage"] in USAGES and attrs.get("description"), (name, col)
                declared[col] = attrs["usage"]
            cols, rows = as_role("it_exporter", q["query"])
            assert set(cols) == set(declared), "%s: columns %s, metrics %s" % (name, cols, sorted(declared))
            assert rows, "%s returned no rows" % name
            for row in rows:
                for col, value in zip(cols, row):
                    if declared[col] != "LABEL":
                        float(value)   # a number, never NULL
            # the role's rights are what makes it work: a plain role is refused
            try:
                as_role("it_nobody", q["query"])
                raise AssertionError("%s ran for a role without edu_outbox_monitor" % name)
            except psycopg2.errors.InsufficientPrivilege:
                pass
        cols, rows = as_role("it_exporter", spec["edu_outbox"]["query"])
        status = dict(zip(cols, rows[0]))
        assert status["worker_up"] == 1 and status["dead_letters"] >= 1, status
    finally:
        sql("DELETE FROM edu_outbox.dead_letter WHERE id = -4242")
        sql("DROP ROLE it_exporter")
        sql("DROP ROLE it_nobody")


def test_roles_survive_a_second_database_and_drop_extension():
    """The roles are cluster-wide: CREATE EXTENSION in another database finds
    them and does not fail; DROP EXTENSION leaves them."""
    sql("DROP DATABASE IF EXISTS it_roles_db WITH (FORCE)", dbname="postgres")
    sql("CREATE DATABASE it_roles_db", dbname="postgres")
    try:
        sql("CREATE EXTENSION edu_outbox", dbname="it_roles_db")
        granted = sql("SELECT has_function_privilege('edu_outbox_monitor', 'outbox_status()', 'EXECUTE'), "
                      "has_function_privilege('edu_outbox_operator', 'outbox_pause()', 'EXECUTE'), "
                      "has_function_privilege('edu_outbox_monitor', 'outbox_pause()', 'EXECUTE')",
                      dbname="it_roles_db")[0]
        assert granted == (True, True, False), granted
        sql("DROP EXTENSION edu_outbox", dbname="it_roles_db")
        left = sql("SELECT count(*) FROM pg_roles WHERE rolname IN ('edu_outbox_monitor', 'edu_outbox_operator')")
        assert left[0][0] == 2, left
    finally:
        sql("DROP DATABASE IF EXISTS it_roles_db WITH (FORCE)", dbname="postgres")


TESTS = [
    test_exporter_queries_run_as_the_monitor_role,
    test_roles_survive_a_second_database_and_drop_extension,
]

if __name__ == "__main__":
    only = sys.argv[1:]
    selected = [t for t in TESTS if not only or t.__name__ in only]
    sys.exit(1 if run(selected) else 0)
