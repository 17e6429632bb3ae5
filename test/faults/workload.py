#!/usr/bin/python3
"""Concurrent writers that publish per-key numbered events through edu_outbox.

Each writer thread runs short transactions until its deadline (or a total
transaction count) and then stops by itself. One transaction:

    UPDATE fault_counters SET n = n + 1 WHERE scenario = S AND key = K RETURNING n
    SELECT outbox_publish(topic, {"key": K, "seq": n, "tx": T, ...}, K)
    INSERT INTO fault_events (scenario, key, seq, tx, outbox_id)    -- the committed truth
    [SAVEPOINT; bump the counter again and publish a {"savepoint": true} event;
     ROLLBACK TO SAVEPOINT]                                           -- must never appear
    COMMIT, or ROLLBACK for ~10% ("doomed": true in the payload)      -- must never appear

The row lock taken by the UPDATE serialises the transactions of one key, so
per key the seq order is the commit order. Some transactions touch two keys
(locked in sorted order, so writers cannot deadlock).

Faults break the writers' connections. A transaction that failed before
COMMIT was sent is rolled back. One whose COMMIT got no answer has an unknown
outcome: after reconnecting, the writer looks it up in fault_events (and
cross-checks fault_counters) instead of assuming either way. The checker
never trusts the writers' view anyway; it reads the committed truth from
PostgreSQL.

Standalone: workload.py SCENARIO TOPIC [SECONDS]
"""
import json
import os
import random
import sys
import threading
import time
import uuid

import psycopg2
import psycopg2.errors

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faultlib import ServerGone, connect, sql  # noqa: E402

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS fault_counters (
    scenario text NOT NULL,
    key      text NOT NULL,
    n        int  NOT NULL DEFAULT 0,
    PRIMARY KEY (scenario, key)
);
CREATE TABLE IF NOT EXISTS fault_events (
    scenario  text   NOT NULL,
    key       text   NOT NULL,
    seq       int    NOT NULL,
    tx        uuid   NOT NULL,
    outbox_id bigint NOT NULL,
    PRIMARY KEY (scenario, key, seq)
);
CREATE INDEX IF NOT EXISTS fault_events_tx ON fault_events (tx);
"""


def env_float(name, default):
    v = os.environ.get(name)
    return float(v) if v not in (None, "") else default


class Workload:
    def __init__(self, scenario, topic, duration, writers=None, keys=None,
                 rollback_rate=0.10, savepoint_rate=0.20, two_key_rate=0.20,
                 think_ms=None, max_tx=None, seed=None, reconnect_timeout=180, dbname=None):
        self.scenario = scenario
        self.dbname = dbname              # None: faultlib's DB
        self.topic = topic
        self.duration = duration
        self.writers = int(writers or env_float("FAULT_WRITERS", 6))
        self.keys = ["k%02d" % i for i in range(int(keys or env_float("FAULT_KEYS", 20)))]
        self.rollback_rate = rollback_rate
        self.savepoint_rate = savepoint_rate
        self.two_key_rate = two_key_rate
        self.think = (think_ms if think_ms is not None else env_float("FAULT_THINK_MS", 20)) / 1000.0
        self.max_tx = max_tx
        self.seed = seed if seed is not None else random.randrange(1 << 30)
        self.reconnect_timeout = reconnect_timeout
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.threads = []
        self.tx_started = 0
        # outcomes as the clients saw them: tx uuid -> list of (key, seq)
        self.client_committed = {}
        self.client_rolled_back = {}      # ROLLBACK on purpose, or failed before COMMIT
        self.unknown = {}                 # COMMIT sent, no answer: resolved after reconnect
        self.resolved_committed = 0
        self.resolved_aborted = 0
        self.reconnects = 0
        self.errors = []                  # anything that is not a lost connection

    # -- set-up ---------------------------------------------------------------
    def setup(self):
        sql(SCHEMA_SQL, dbname=self.dbname)
        sql("DELETE FROM fault_events WHERE scenario = %s", (self.scenario,), dbname=self.dbname)
        sql("DELETE FROM fault_counters WHERE scenario = %s", (self.scenario,), dbname=self.dbname)
        sql("INSERT INTO fault_counters (scenario, key) SELECT %s, k FROM unnest(%s::text[]) k",
            (self.scenario, self.keys), dbname=self.dbname)

    # -- running --------------------------------------------------------------
    def start(self):
        self.deadline = time.time() + self.duration
        for w in range(self.writers):
            t = threading.Thread(target=self._writer, args=(w,), name="writer-%d" % w, daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def join(self, timeout=None):
        end = None if timeout is None else time.time() + timeout
        for t in self.threads:
            t.join(None if end is None else max(0, end - time.time()))

    def stop(self):
        self.stop_event.set()

    def extend(self, seconds):
        """Keeps writing at least `seconds` more (e.g. after a fault healed)."""
        self.deadline = max(self.deadline, time.time() + seconds)

    def run(self):
        self.setup()
        self.start()
        self.join()
        return self

    def _more(self):
        if self.stop_event.is_set() or time.time() >= self.deadline:
            return False
        with self.lock:
            if self.max_tx is not None and self.tx_started >= self.max_tx:
                return False
            self.tx_started += 1
        return True

    def _reconnect(self, conn):
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass
            with self.lock:
                self.reconnects += 1
        return connect(autocommit=False, timeout=self.reconnect_timeout, dbname=self.dbname)

    @staticmethod
    def _connection_lost(conn, exc):
        if isinstance(exc, (psycopg2.InterfaceError, psycopg2.errors.AdminShutdown,
                            psycopg2.errors.CrashShutdown, psycopg2.errors.CannotConnectNow)):
            return True
        if conn.closed:
            return True
        try:                      # still usable? then the error was a real SQL error
            conn.rollback()       # (psycopg2 may leave closed == 0 on a dead connection)
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
            conn.rollback()
            return False
        except psycopg2.Error:
            return True

    def _resolve(self, conn, pending):
        """Looks up transactions whose COMMIT got no answer."""
        still = []
        for tx, events in pending:
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT key, seq FROM fault_events WHERE tx = %s ORDER BY key",
                                (tx,))
                    found = cur.fetchall()
                    cur.execute("SELECT key, n FROM fault_counters WHERE scenario = %s "
                                "AND key = ANY(%s)", (self.scenario, [k for k, _ in events]))
                    counters = dict(cur.fetchall())
                conn.rollback()
            except psycopg2.Error:
                still.append((tx, events))
                continue
            with self.lock:
                if sorted(found) == sorted(events):
                    if any(counters.get(k, 0) < s for k, s in events):
                        self.errors.append("tx %s is in fault_events but fault_counters %s is "
                                           "behind %s" % (tx, counters, events))
                    self.resolved_committed += 1
                    self.client_committed[tx] = events
                elif not found:
                    self.resolved_aborted += 1
                    self.client_rolled_back[tx] = events
                else:
                    self.errors.append("tx %s partly committed: %s of %s" % (tx, found, events))
                self.unknown.pop(tx, None)
        return still

    def _writer(self, wid):
        rnd = random.Random(self.seed * 1000 + wid)
        conn = None
        pending = []
        try:
            while self._more():
                if conn is None or conn.closed:
                    conn = self._reconnect(conn)
                if pending:
                    pending = self._resolve(conn, pending)
                self._one_transaction(conn, rnd, wid, pending)
                if self.think:
                    time.sleep(rnd.uniform(0, 2 * self.think))
            # outcomes still unknown at the end: resolve before stopping
            for _ in range(3):
                if not pending:
                    break
                if conn is None or conn.closed:
                    conn = self._reconnect(conn)
                pending = self._resolve(conn, pending)
            if pending:
                with self.lock:
                    self.errors.append("writer %d could not resolve %d transactions" % (wid, len(pending)))
        except ServerGone as e:
            with self.lock:
                self.errors.append("writer %d: server did not come back: %s" % (wid, e))
        except Exception as e:  # reported by the scenario
            with self.lock:
                self.errors.append("writer %d: %r" % (wid, e))
        finally:
            if conn is not None:
                conn.close()

    def _one_transaction(self, conn, rnd, wid, pending):
        tx = str(uuid.uuid4())
        doomed = rnd.random() < self.rollback_rate
        keys = sorted(rnd.sample(self.keys, 2)) if rnd.random() < self.two_key_rate \
            else [rnd.choice(self.keys)]
        events = []
        phase = "work"
        try:
            with conn.cursor() as cur:
                for key in keys:
                    cur.execute("UPDATE fault_counters SET n = n + 1 WHERE scenario = %s AND key = %s "
                                "RETURNING n", (self.scenario, key))
                    seq = cur.fetchone()[0]
                    payload = {"s": self.scenario, "key": key, "seq": seq, "tx": tx, "w": wid}
                    if doomed:
                        payload["doomed"] = True
                    cur.execute("SELECT outbox_publish(%s, %s::jsonb, %s)",
                                (self.topic, json.dumps(payload), key))
                    oid = cur.fetchone()[0]
                    cur.execute("INSERT INTO fault_events (scenario, key, seq, tx, outbox_id) "
                                "VALUES (%s, %s, %s, %s, %s)", (self.scenario, key, seq, tx, oid))
                    events.append((key, seq))
                    if rnd.random() < self.savepoint_rate:
                        # a rolled-back savepoint: its counter bump and its event vanish
                        cur.execute("SAVEPOINT sp")
                        cur.execute("UPDATE fault_counters SET n = n + 1 WHERE scenario = %s "
                                    "AND key = %s RETURNING n", (self.scenario, key))
                        sp_seq = cur.fetchone()[0]
                        cur.execute("SELECT outbox_publish(%s, %s::jsonb, %s)",
                                    (self.topic, json.dumps({"s": self.scenario, "key": key,
                                                             "seq": sp_seq, "tx": tx, "w": wid,
                                                             "savepoint": True}), key))
                        cur.execute("ROLLBACK TO SAVEPOINT sp")
            phase = "commit"
            if doomed:
                conn.rollback()
                with self.lock:
                    self.client_rolled_back[tx] = events
            else:
                conn.commit()
                with self.lock:
                    self.client_committed[tx] = events
        except psycopg2.Error as e:
            if self._connection_lost(conn, e):
                if phase == "commit":
                    # COMMIT (or ROLLBACK) sent, no answer: the outcome is unknown
                    with self.lock:
                        self.unknown[tx] = events
                    pending.append((tx, events))
                else:
                    with self.lock:
                        self.client_rolled_back[tx] = events
                try:
                    conn.close()
                except Exception:
                    pass
            else:
                with self.lock:
                    self.errors.append("writer %d: %s: %s (closed=%s, phase=%s)" % (
                        wid, type(e).__name__, " ".join(str(e).split()), conn.closed, phase))
                    self.client_rolled_back[tx] = events

    # -- report ---------------------------------------------------------------
    def stats(self):
        return {
            "transactions": self.tx_started,
            "committed": len(self.client_committed),
            "rolled_back": len(self.client_rolled_back),
            "unknown_resolved_committed": self.resolved_committed,
            "unknown_resolved_aborted": self.resolved_aborted,
            "unknown_unresolved": len(self.unknown),
            "reconnects": self.reconnects,
            "errors": len(self.errors),
        }


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: workload.py SCENARIO TOPIC [SECONDS]")
    w = Workload(sys.argv[1], sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 10).run()
    print(json.dumps(w.stats()))
    for e in w.errors:
        print("error:", e)
    sys.exit(1 if w.errors else 0)
