#!/usr/bin/python3
"""Fault-injection scenarios for edu_outbox: break Kafka, the relay worker or
PostgreSQL on purpose while writers publish, then prove that nothing was lost,
nothing phantom arrived and per-key commit order held (duplicates are allowed:
delivery is at least once, and they are counted). The *_eos scenarios run the
relay with edu_outbox.delivery = exactly_once and read the topic read_committed:
there a duplicate fails as well (exactly_once.py).

Run by test/faults/run.sh, which starts a single Kafka broker and PostgreSQL
and sets the environment. Prints TAP (`ok N - name`, `1..N`) and one line per
scenario: scenario=<name> written=<n> lost=<n> phantom=<n> order_violations=<n> duplicates=<n>

    faults.py [SCENARIO ...]     default: all, in this order:
        checker_self_test kafka_kill kafka_kill_eos kafka_outage kafka_outage_eos
        kafka_stop_eos (not on Kafka 4.4: KNOWN_FAILING) relay_kill relay_kill_eos
        read_uncommitted_eos two_databases pg_crash pg_crash_eos fencing_eos cluster_leader_kill cluster_leader_kill_eos
        sasl_ssl failover_async_wait failover_async_nowait failover_sync
        async_commit_crash

Knobs (environment): FAULT_QUICK=1 (shorter spells), FAULT_SOAK=1 (long
workloads, repeated faults), FAULT_DURATION (workload seconds per scenario),
FAULT_OUTAGE_SECONDS (broker down time in kafka_outage), FAULT_EOS_DURATION and
FAULT_EOS_OUTAGE_SECONDS (the same for the *_eos scenarios, default half),
FAULT_ROUNDS (faults per scenario), FAULT_WRITERS, FAULT_KEYS, FAULT_THINK_MS,
FAULT_DRAIN_TIMEOUT.
"""
import contextlib
import json
import os
import pwd
import re
import signal
import subprocess
import sys
import threading
import time
import traceback
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checker import check, self_test  # noqa: E402
import psycopg2.errors  # noqa: E402
from faultlib import (DB, PG_DIR, ServerLog, consume, relay_activity, relay_pid, script,  # noqa: E402
                      set_relay_config, sql, stall_relay, undelivered_count, wait_relay_sending,
                      wait_until)
from workload import Workload, env_float  # noqa: E402
import failover  # noqa: E402
import exactly_once  # noqa: E402

QUICK = os.environ.get("FAULT_QUICK") == "1"
SOAK = os.environ.get("FAULT_SOAK") == "1"
DURATION = env_float("FAULT_DURATION", 150 if SOAK else (14 if QUICK else 20))
OUTAGE = env_float("FAULT_OUTAGE_SECONDS", 180 if SOAK else (20 if QUICK else 60))
ROUNDS = int(env_float("FAULT_ROUNDS", 5 if SOAK else 1))
DRAIN_TIMEOUT = env_float("FAULT_DRAIN_TIMEOUT", 180)
# the exactly_once variants repeat faults the suite already shows at least once: shorter spells
EOS_DURATION = env_float("FAULT_EOS_DURATION", DURATION / 2)
EOS_OUTAGE = env_float("FAULT_EOS_OUTAGE_SECONDS", OUTAGE / 2)
KAFKA_DOWN = 4          # seconds a SIGKILLed broker stays down
KAFKA_RELEASE = tuple(int(x) for x in re.findall(r"\d+", os.environ.get("KAFKA_VERSION", "4.4"))[:2])
CLUSTER_NODE_DOWN = 15  # seconds (at least) the killed partition leader stays down
PG_DOWN = 3             # seconds PostgreSQL stays down after an immediate stop
POST_FAULT = 5          # seconds the writers go on at least after a fault healed
STALL = 3               # seconds the relay is frozen to build a backlog before a fault

STARTED_LINE = 'edu_outbox relay started for database "%s"'
RELAY_ERROR_RE = re.compile(r"\[\d+\] edu_outbox relay (ERROR|FATAL|PANIC): ")


ACTIVE = []              # workloads of the running scenario, stopped if it fails


def note(msg):
    print("# " + msg, flush=True)


class Failed(AssertionError):
    pass


class Scenario:
    """One run: workload + scheduled faults + drain + check."""

    def __init__(self, name, duration=None, brokers=None, kafka_extra=(), expected_relay_starts=0,
                 dbname=None, eos=False):
        self.name = name
        self.eos = eos           # exactly_once: read_committed, and duplicates fail too
        self.resumes = []        # exactly_once: the relay took its position from Kafka (details)
        self.open_txn_kills = 0  # faults that struck with an open transaction's records in Kafka
        self.dbname = dbname or DB
        self.topic = "faults-%s-%s" % (name.replace("_", "-"), uuid.uuid4().hex[:8])
        self.duration = duration or DURATION
        self.brokers = brokers
        self.kafka_extra = ((exactly_once.READ_COMMITTED,) if self.eos else ()) + tuple(kafka_extra)
        self.expected_relay_starts = expected_relay_starts
        self.problems = []
        self.log = ServerLog()
        self.phantoms_reported_only = False   # a scenario that shows a risk, not a guarantee

    def require(self, cond, msg):
        if not cond:
            self.problems.append(msg)

    def start(self):
        wait_until(lambda: relay_pid(self.dbname) is not None, 60, "the relay worker")
        wait_until(lambda: undelivered_count(self.dbname) == 0, DRAIN_TIMEOUT,
                   "earlier scenarios' events to be delivered")
        self.log.mark()
        if self.eos:
            self.position_seq = exactly_once.position_seq(self.dbname)
        self.workload = Workload(self.name, self.topic, self.duration, dbname=self.dbname)
        self.workload.setup()
        self.t0 = time.time()
        ACTIVE.append(self.workload)
        self.workload.start()
        note("%s: topic %s, %d writers, %d keys, %.0fs" % (
            self.name, self.topic, self.workload.writers, len(self.workload.keys), self.duration))

    def at(self, seconds):
        """Sleeps until `seconds` after the workload started."""
        delay = self.t0 + seconds - time.time()
        if delay > 0:
            time.sleep(delay)

    def fault_times(self, first, rounds):
        """Times for the faults: the first at `first`, the rest spread over the run."""
        if rounds <= 1:
            return [first]
        gap = max(1.0, (self.duration - first - 5) / rounds)
        return [first + i * gap for i in range(rounds)]

    def arm(self, round_no, big_first=True):
        """Gets the relay mid-stream before a fault. Every other round (the first
        one if big_first) freezes the relay for STALL seconds so that it then
        sends a big chunk, and the fault hits while that chunk is in flight;
        the other rounds just wait until some events are in flight."""
        big = (round_no % 2 == 0) == big_first
        if big:
            stall_relay(STALL, self.dbname)
            n = wait_relay_sending(50, 10, self.dbname)
            return "after a %ds freeze the relay was sending %s events just before" % (
                STALL, n or "? (missed)")
        n = wait_relay_sending(1, 3, self.dbname)
        return "the relay was sending %s events just before" % (n or "? (missed)")

    def arm_in_kafka(self):
        """Gets the relay to send a big chunk and catches it with some of the
        chunk's records in Kafka (read_uncommitted) while it still says it is
        sending: in exactly_once mode the chunk's transaction is then open with
        records in the log. To see that without a race, the relay runs in
        short steps: 20 ms on, then frozen (SIGSTOP) for a look. Two looks in a
        row at the same "sending N events", the second with more records in the
        topic, show records of that very chunk in Kafka. Returns (seen,
        description, pid): if seen, the relay is left frozen in that state for
        the fault, which must kill it (SIGKILL ends a frozen process too)."""
        def in_kafka():
            return len(consume(self.topic, self.brokers, [exactly_once.READ_UNCOMMITTED]))
        self.workload.extend(STALL + POST_FAULT)     # the writers go on meanwhile
        stall_relay(STALL, self.dbname)
        pid = relay_pid(self.dbname)
        base = last = None        # records in the topic at the first look at this chunk
        activity, count = "", 0
        deadline = time.time() + 30
        while time.time() < deadline:
            time.sleep(0.02)
            os.kill(pid, signal.SIGSTOP)
            try:
                activity = relay_activity(self.dbname) or ""
                count = in_kafka()
            except BaseException:
                os.kill(pid, signal.SIGCONT)
                raise
            m = re.match(r"edu_outbox: sending (\d+) events", activity)
            if m and activity == last and count > base:
                return True, ("after a %ds freeze, frozen while sending %s events, %d of them "
                              "put in Kafka since the look before (transaction open)"
                              % (STALL, m.group(1), count - base)), pid
            os.kill(pid, signal.SIGCONT)
            if m and activity != last:
                base = count
            elif not m and base is not None:
                break          # the chunk got through between two looks
            last = activity
        return False, ("after a %ds freeze the relay was not caught with records of its chunk in "
                       "Kafka while sending (relay %r, status %s)"
                       % (STALL, activity, exactly_once.relay_status(self.dbname))), None

    def arm_committed(self):
        """Gets the relay between a Kafka commit and PostgreSQL's record of it
        (exactly_once.HeldPosition) after a big chunk: the fault that follows loses the
        chunk's position in PostgreSQL but not in Kafka. Returns the hold (to
        release after the fault) and a description."""
        held = exactly_once.HeldPosition(self.dbname)
        # the writers go on, so the relay's next position update follows a commit in Kafka
        # (an idle relay also rewrites its position now and then, without one)
        self.workload.extend(STALL + POST_FAULT)
        stall_relay(STALL, self.dbname)
        n = wait_relay_sending(50, 10, self.dbname)
        missed = "" if n else " (status then: %s)" % (exactly_once.relay_status(self.dbname),)
        seq = held.hold()
        return held, ("after a %ds freeze the relay was sending %s events%s; it committed in Kafka "
                      "and waits to record a position_seq past %d in PostgreSQL (row locked)"
                      % (STALL, n or "? (missed)", missed, seq))

    def in_flight(self):
        try:
            return "undelivered=%d relay=%r" % (undelivered_count(self.dbname),
                                                relay_activity(self.dbname))
        except Exception as e:
            return "undelivered=? (%s)" % type(e).__name__

    def finish(self):
        self.workload.join()
        w = self.workload
        note("%s: workload %s" % (self.name, w.stats()))
        for e in w.errors[:10]:
            self.problems.append("workload: " + e)
        self.require(w.client_committed, "no transaction committed")
        drained = True
        try:
            wait_until(lambda: undelivered_count(self.dbname) == 0, DRAIN_TIMEOUT,
                       "the outbox to drain")
        except AssertionError as e:
            drained = False
            self.problems.append("%s (undelivered=%s)" % (e, self.in_flight()))
        # a committed record becomes readable once acknowledged; allow a short grace
        deadline = time.time() + (15 if drained else 1)
        while True:
            res = check(self.name, self.topic, self.brokers, self.kafka_extra, dbname=self.dbname)
            if not res.lost or time.time() > deadline:
                break
            time.sleep(2)
        print(res.summary(), flush=True)
        for line in res.details():
            note(line)
        if self.phantoms_reported_only and res.phantom:
            note("%s: %d phantom records reported, not asserted" % (self.name, len(res.phantom)))
        if not res.ok and not (self.phantoms_reported_only and res.ok_but_phantoms):
            self.problems.append("checker: " + res.summary())
        if self.eos:
            self.check_exactly_once(res)
        self.cross_check_clients()
        self.check_relay_log()
        self.check_dead_letters()
        return res

    def check_exactly_once(self, res):
        """No duplicate for a read_committed reader, and the chunks really went
        as Kafka transactions (the position committed with them moved on)."""
        self.require(not res.duplicates, "exactly_once: %d duplicates for a read_committed reader"
                     % res.duplicates)
        seq = exactly_once.position_seq(self.dbname)
        note("%s: position_seq %d -> %d (chunks committed as Kafka transactions)"
             % (self.name, self.position_seq, seq))
        self.require(seq > self.position_seq, "exactly_once: no position was committed to Kafka")
        self.resumes = exactly_once.resumes(self.log.text())
        for detail in self.resumes:
            note("%s: the relay resumed from its position in Kafka: %s" % (self.name, detail))

    def cross_check_clients(self):
        """What the writers saw must match what PostgreSQL committed."""
        w = self.workload
        committed = {str(tx) for (tx,) in sql(
            "SELECT DISTINCT tx FROM fault_events WHERE scenario = %s", (self.name,),
            dbname=self.dbname)}
        missing = [tx for tx in w.client_committed if tx not in committed]
        ghost = [tx for tx in w.client_rolled_back if tx in committed]
        self.require(not missing, "%d transactions acknowledged by COMMIT are not in fault_events: %s"
                     % (len(missing), missing[:3]))
        self.require(not ghost, "%d transactions the client rolled back are in fault_events: %s"
                     % (len(ghost), ghost[:3]))
        self.require(not w.unknown, "%d commit outcomes stayed unknown" % len(w.unknown))

    def check_relay_log(self):
        text = self.log.text()
        starts = text.count(STARTED_LINE % self.dbname)
        errors = [line for line in text.splitlines() if RELAY_ERROR_RE.search(line)]
        exits = self.log.relay_abnormal_exits()
        note("%s: relay started %d time(s) (expected %d), %d relay ERROR/FATAL line(s), "
             "%d abnormal exit line(s)" % (self.name, starts, self.expected_relay_starts,
                                          len(errors), len(exits)))
        for line in self.log.relay_lines()[:12]:
            note("  log: " + line[:300])
        self.require(starts <= self.expected_relay_starts,
                     "relay started %d times, expected at most %d (crash loop?)"
                     % (starts, self.expected_relay_starts))
        self.require(not errors, "relay logged errors: %s" % errors[:3])
        self.require(relay_pid(self.dbname) is not None, "relay worker is not running at the end")

    def check_dead_letters(self):
        try:
            rows = sql("SELECT count(*) FROM edu_outbox.dead_letter WHERE topic = %s", (self.topic,),
                       dbname=self.dbname)
        except Exception:
            return  # no dead-letter table in this build
        if rows[0][0]:
            detail = sql("SELECT id, key, error FROM edu_outbox.dead_letter WHERE topic = %s "
                         "ORDER BY id LIMIT 5", (self.topic,), dbname=self.dbname)
            self.problems.append("%d events of the topic went to the dead-letter table: %s"
                                 % (rows[0][0], detail))

    def verdict(self):
        if self.problems:
            raise Failed("; ".join(self.problems))


# ---------------------------------------------------------------------------
# scenarios

def run_kafka_kill(name, duration=None, eos=False):
    s = Scenario(name, duration=duration, eos=eos)
    s.start()
    for i, t in enumerate(s.fault_times(5, ROUNDS)):
        s.at(t)
        armed = s.arm(i)
        script("kafka.sh", "kill")
        note("%s: SIGKILL broker at %.1fs, %s" % (name, time.time() - s.t0, armed))
        time.sleep(KAFKA_DOWN)
        script("kafka.sh", "start")
        note("%s: broker back at %.1fs" % (name, time.time() - s.t0))
        s.workload.extend(POST_FAULT)
    s.finish()
    s.verdict()


def scenario_kafka_kill():
    """The broker is SIGKILLed mid-stream and restarted a few seconds later."""
    run_kafka_kill("kafka_kill")


def scenario_kafka_kill_eos():
    """kafka_kill in exactly_once mode: the broker (also the transaction
    coordinator) dies while a chunk's transaction is open."""
    with exactly_once.exactly_once():
        run_kafka_kill("kafka_kill_eos", EOS_DURATION, eos=True)


def run_kafka_outage(name, outage, duration, eos=False, how="stop"):
    """how: "stop" (SIGTERM, the broker shuts down in order) or "kill" (SIGKILL)."""
    s = Scenario(name, duration=5 + outage + duration * 0.6, eos=eos)
    s.start()
    s.at(5)
    script("kafka.sh", how)
    down_at = time.time()
    note("%s: broker %s at %.1fs for %.0fs"
         % (name, "stopped" if how == "stop" else "killed", down_at - s.t0, outage))
    try:
        time.sleep(min(5, outage / 4))
        early = undelivered_count()
        committed_early = len(s.workload.client_committed)
        time.sleep(max(0, down_at + outage - time.time()))
        late = undelivered_count()
        committed_late = len(s.workload.client_committed)
        note("%s: undelivered %d -> %d while down; commits %d -> %d"
             % (name, early, late, committed_early, committed_late))
        s.require(committed_late > committed_early, "publishing stopped while Kafka was down")
        s.require(late > early > 0, "the outbox did not grow while Kafka was down (%d -> %d)"
                  % (early, late))
        s.require(relay_pid() is not None, "relay not running during the outage")
    finally:
        script("kafka.sh", "start")
    up_at = time.time()
    note("%s: broker back at %.1fs" % (name, up_at - s.t0))
    s.workload.extend(POST_FAULT)
    s.finish()
    note("%s: drained %.1fs after the broker came back" % (name, time.time() - up_at))
    s.require(any("cannot reach any Kafka broker" in line or "could not deliver" in line
                  for line in s.log.relay_lines()), "the outage was not logged")
    s.verdict()


def scenario_kafka_outage():
    """The broker is stopped for a long spell: the outbox grows, then drains."""
    run_kafka_outage("kafka_outage", OUTAGE, DURATION)


def scenario_kafka_outage_eos():
    """kafka_outage in exactly_once mode, with a shorter outage; the broker
    process dies (SIGKILL) instead of shutting down (see kafka_stop_eos)."""
    with exactly_once.exactly_once():
        run_kafka_outage("kafka_outage_eos", EOS_OUTAGE, EOS_DURATION, eos=True, how="kill")


def scenario_kafka_stop_eos():
    """kafka_outage_eos with the broker shut down in order (SIGTERM)."""
    with exactly_once.exactly_once():
        run_kafka_outage("kafka_stop_eos", EOS_OUTAGE, EOS_DURATION, eos=True)


def run_relay_kill(name, duration=None, eos=False):
    """At least once: every other round a big chunk is in flight. exactly_once:
    a big chunk's transaction is open with records in Kafka (round 0, 2, ...),
    or the relay has committed it in Kafka and waits to record that in
    PostgreSQL (1, 3, ...)."""
    rounds = max(2, ROUNDS)
    s = Scenario(name, duration=duration, expected_relay_starts=rounds, eos=eos)
    s.start()
    for i, t in enumerate(s.fault_times(5, rounds) if rounds > 2 else
                             [5, max(9, s.duration * 0.55)]):
        s.at(t)
        held = None
        if eos and i % 2 == 1:
            held, armed = s.arm_committed()
        elif eos:
            in_kafka, armed, _ = s.arm_in_kafka()
            s.open_txn_kills += in_kafka
        else:
            armed = s.arm(i, big_first=False)
        pid = relay_pid()
        os.kill(pid, signal.SIGKILL)
        note("%s: SIGKILL relay pid %d at %.1fs, %s" % (name, pid, time.time() - s.t0, armed))
        wait_until(lambda: (relay_pid() or pid) != pid, 90, "a new relay worker")
        note("%s: new relay pid %d at %.1fs" % (name, relay_pid(), time.time() - s.t0))
        if held:
            held.release()
        s.workload.extend(POST_FAULT)
    s.finish()
    if eos:
        s.require(s.resumes, "the relay never resumed from its position in Kafka after a kill "
                  "between the Kafka commit and the PostgreSQL update")
    exactly_once.LAST[name] = s
    s.verdict()
    return s


def scenario_relay_kill():
    """The relay worker is SIGKILLed while sending; the postmaster restarts
    every backend (writers reconnect), then the worker."""
    run_relay_kill("relay_kill")


def relay_kill_eos():
    with exactly_once.exactly_once(kafka_properties=exactly_once.SLOW_SEND):
        return run_relay_kill("relay_kill_eos", EOS_DURATION, eos=True)


def scenario_relay_kill_eos():
    """relay_kill in exactly_once mode: once with a chunk's transaction open,
    once between its commit in Kafka and the update of relay_state: nothing
    may be sent twice."""
    relay_kill_eos()


def scenario_two_databases():
    """Two relayed databases of one cluster publish at once; the relay worker of
    the second is SIGKILLed while sending (twice). The postmaster restarts every
    backend, the launcher both workers. Each database is checked on its own."""
    other = DB + "_b"
    rounds = max(2, ROUNDS)
    sql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % other)
    sql("CREATE DATABASE %s" % other)
    sql("CREATE EXTENSION edu_outbox", dbname=other)
    set_relay_config(database="%s, %s" % (DB, other))
    try:
        first = Scenario("two_databases_a", expected_relay_starts=rounds)
        second = Scenario("two_databases_b", expected_relay_starts=rounds, dbname=other)
        first.start()
        second.start()
        for i, t in enumerate([5, max(9, second.duration * 0.55)]):
            second.at(t)
            armed = second.arm(i, big_first=False)
            pid = relay_pid(other)
            os.kill(pid, signal.SIGKILL)
            note("two_databases: SIGKILL relay pid %d of %s at %.1fs, %s"
                 % (pid, other, time.time() - second.t0, armed))
            wait_until(lambda: (relay_pid(other) or pid) != pid, 90, "a new relay worker in " + other)
            wait_until(lambda: relay_pid(DB) is not None, 90, "the relay worker in " + DB)
            note("two_databases: relay pids %s (%s) and %s (%s) at %.1fs"
                 % (relay_pid(DB), DB, relay_pid(other), other, time.time() - second.t0))
            first.workload.extend(POST_FAULT)
            second.workload.extend(POST_FAULT)
        first.finish()
        second.finish()
        first.problems += ["%s: %s" % (other, p) for p in second.problems]
        first.verdict()
    finally:
        set_relay_config(database=None)
        wait_until(lambda: relay_pid(other) is None, 60, "the relay worker of %s to stop" % other)
        sql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % other)


def run_pg_crash(name, duration=None, eos=False):
    """exactly_once: at least two rounds, the first between the Kafka commit
    and the update of relay_state (the crash loses that update), the next one
    with a chunk's transaction open."""
    rounds = max(2, ROUNDS) if eos else ROUNDS
    s = Scenario(name, duration=duration, expected_relay_starts=rounds, eos=eos)
    s.start()
    for i, t in enumerate(s.fault_times(6, rounds)):
        s.at(t)
        held = None
        frozen = None
        if eos and i % 2 == 0:
            held, armed = s.arm_committed()
        elif eos:
            in_kafka, armed, frozen = s.arm_in_kafka()
            s.open_txn_kills += in_kafka
        else:
            armed = s.arm(i)
        if frozen:
            failover.immediate_stop([frozen])    # the frozen relay cannot act on the stop
        else:
            script("pg.sh", "kill")
        note("%s: immediate stop at %.1fs, %s" % (name, time.time() - s.t0, armed))
        if held:
            held.release()
        time.sleep(PG_DOWN)
        script("pg.sh", "start")
        note("%s: PostgreSQL back at %.1fs" % (name, time.time() - s.t0))
        wait_until(lambda: relay_pid() is not None, 60, "the relay after recovery")
        s.workload.extend(POST_FAULT)
    s.finish()
    if eos:
        s.require(s.resumes, "the relay never resumed from its position in Kafka after a crash "
                  "that lost the PostgreSQL update")
    s.verdict()


def scenario_pg_crash():
    """PostgreSQL is stopped with -m immediate (crash) mid-stream, then recovers."""
    run_pg_crash("pg_crash")


def scenario_pg_crash_eos():
    """pg_crash in exactly_once mode: the crash loses relay_state's record of
    a chunk that Kafka has committed; the relay must take the position from
    Kafka and send none of it again. Then a crash with a transaction open."""
    with exactly_once.exactly_once(kafka_properties=exactly_once.SLOW_SEND):
        run_pg_crash("pg_crash_eos", EOS_DURATION, eos=True)


CLUSTER = {"up": False, "keep": False}     # keep: the next scenario uses it too


def cluster_up():
    """The three-node cluster, started unless the previous scenario left it running."""
    if not CLUSTER["up"]:
        script("kafka-cluster.sh", "start")
        CLUSTER["up"] = True
    return script("kafka-cluster.sh", "bootstrap", capture=True)


def cluster_release(ok):
    if ok and CLUSTER["keep"]:
        return
    script("kafka-cluster.sh", "destroy", check=False)
    CLUSTER["up"] = False


@contextlib.contextmanager
def relay_on(eos_mode, **settings):
    """The relay with these settings, in exactly_once mode or not; reset afterwards."""
    if eos_mode:
        with exactly_once.exactly_once(**settings):
            yield
        return
    set_relay_config(**settings)
    try:
        yield
    finally:
        set_relay_config(**{name: None for name in settings})


def run_cluster_leader_kill(name, duration, eos_mode=False):
    bootstrap = cluster_up()
    ok = False
    try:
        s = Scenario(name, duration=duration + CLUSTER_NODE_DOWN, brokers=bootstrap, eos=eos_mode)
        script("kafka-cluster.sh", "create-topic", s.topic, 3)
        with relay_on(eos_mode, brokers=bootstrap):
            run_cluster_faults(s)
        ok = True
    finally:
        cluster_release(ok)


def run_cluster_faults(s):
    """Kills the leader of the topic's partition 0 (ROUNDS times) and checks."""
    s.start()
    for i, t in enumerate(s.fault_times(6, ROUNDS)):
        s.at(t)
        # a leader with a full ISR: this is about failover, not about losing the quorum
        wait_until(lambda: len(script("kafka-cluster.sh", "isr", s.topic, 0, capture=True,
                                      check=False).split(",")) == 3,
                   60, "a full ISR for partition 0")
        leader = script("kafka-cluster.sh", "leader", s.topic, 0, capture=True)
        isr = script("kafka-cluster.sh", "isr", s.topic, 0, capture=True)
        armed = s.arm(i)
        script("kafka-cluster.sh", "kill-node", leader)
        killed_at = time.time()
        note("%s: SIGKILL node %s (leader of partition 0, isr %s) at %.1fs, %s"
             % (s.name, leader, isr, time.time() - s.t0, armed))
        wait_until(lambda: script("kafka-cluster.sh", "leader", s.topic, 0, capture=True,
                                  check=False) not in ("", leader, "-1"),
                   60, "a new leader for partition 0")
        note("%s: new leader %s at %.1fs" % (
            s.name, script("kafka-cluster.sh", "leader", s.topic, 0, capture=True),
            time.time() - s.t0))
        time.sleep(max(0, killed_at + CLUSTER_NODE_DOWN - time.time()))
        script("kafka-cluster.sh", "start-node", leader)
        note("%s: node %s back at %.1fs" % (s.name, leader, time.time() - s.t0))
        s.workload.extend(POST_FAULT)
    s.finish()
    note("%s: partition 0 isr after the run: %s" % (s.name, script(
        "kafka-cluster.sh", "isr", s.topic, 0, capture=True, check=False)))
    if s.eos:
        check_replication(s, ["edu_outbox_positions", "__transaction_state"])
    s.verdict()


def check_replication(s, topics):
    """exactly_once on the cluster: the position topic and the transaction state
    log must survive a node, so every partition needs all three replicas."""
    for topic in topics:
        out = subprocess.run(["kcat", "-b", s.brokers, "-L", "-J", "-t", topic],
                             capture_output=True, text=True, timeout=60)
        try:
            t = json.loads(out.stdout)["topics"][0]
        except (ValueError, KeyError, IndexError):
            s.problems.append("kcat -L -t %s: %s" % (topic, (out.stderr or out.stdout)[-300:]))
            continue
        replicas = sorted({len(p.get("replicas", [])) for p in t.get("partitions", [])})
        note("%s: topic %s: %d partition(s) with %s replicas%s" % (
            s.name, topic, len(t.get("partitions", [])), replicas,
            " (%s)" % t["error"] if t.get("error") else ""))
        s.require(replicas == [3], "topic %s is not replicated 3 times: %s %s"
                  % (topic, replicas, t.get("error", "")))


def scenario_cluster_leader_kill():
    """Three-node KRaft cluster (RF 3, min.insync.replicas 2): the leader of the
    topic's partition 0 is SIGKILLed mid-stream and restarted later."""
    run_cluster_leader_kill("cluster_leader_kill", DURATION)


def scenario_cluster_leader_kill_eos():
    """cluster_leader_kill in exactly_once mode; the position topic (created by
    the relay) and the transaction state log are replicated 3 times,
    min.insync.replicas 2. Reuses the cluster of cluster_leader_kill."""
    run_cluster_leader_kill("cluster_leader_kill_eos", EOS_DURATION, eos_mode=True)


def write_secrets(path, password):
    """The relay's secrets file (owner postgres, mode 0600); its mtime always moves
    forward, since the relay notices a changed file by mtime on reload."""
    old = os.stat(path).st_mtime if os.path.exists(path) else 0
    with open(path, "w") as f:
        f.write("# written by test/faults\nsasl.password=%s\n" % password)
    os.chmod(path, 0o600)
    pw = pwd.getpwnam("postgres")
    os.chown(path, pw.pw_uid, pw.pw_gid)
    now = time.time()
    if int(now) <= int(old):
        os.utime(path, (old + 1, old + 1))


def scenario_sasl_ssl():
    """A SASL_SSL (SCRAM-SHA-512) listener: kcat works with the right password
    and fails with a wrong one; the relay (password in edu_outbox.kafka_secrets_file)
    holds events back while the password is wrong and delivers every one once it is
    fixed; neither password ever shows up in the server log."""
    script("kafka-secure.sh", "start")
    env = dict(line.split("=", 1) for line in
               script("kafka-secure.sh", "env", capture=True).splitlines() if "=" in line)
    user, password = env["KAFKA_SASL_USER"], env["KAFKA_SASL_PASSWORD"]
    bootstrap, ca = env["KAFKA_SASL_BOOTSTRAP"], env["KAFKA_SSL_CA"]
    wrong = "wrong-" + uuid.uuid4().hex[:12]
    inline = "inline-" + uuid.uuid4().hex[:12]
    common = ["security.protocol=SASL_SSL", "sasl.mechanisms=SCRAM-SHA-512",
              "sasl.username=" + user, "ssl.ca.location=" + ca]
    good = common + ["sasl.password=" + password]
    secrets = os.path.join(PG_DIR, "kafka-relay.secrets")
    x = lambda props: sum((["-X", p] for p in props), [])  # noqa: E731
    try:
        # kcat against the listener: right password works, wrong one is refused
        probe = "faults-sasl-probe-" + uuid.uuid4().hex[:8]
        out = subprocess.run(["kcat", "-b", bootstrap, "-P", "-t", probe, "-k", "k"] + x(good),
                             input="probe\n", capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise Failed("kcat could not produce with the right password: " + out.stderr[-300:])
        got = consume(probe, bootstrap, good)
        if [r["payload"] for r in got] != ["probe"]:
            raise Failed("kcat read back %r" % got)
        out = subprocess.run(["kcat", "-b", bootstrap, "-L", "-m", "5"] +
                             x(common + ["sasl.password=" + wrong]),
                             capture_output=True, text=True, timeout=60)
        if out.returncode == 0 or "Authentication failed" not in out.stderr:
            raise Failed("kcat with a wrong password was not refused: rc=%d %s"
                         % (out.returncode, out.stderr[-300:]))
        note("sasl_ssl: kcat produce/consume with the right password ok; wrong password refused")

        # edu_outbox refuses a password inline in kafka_properties (settings are logged on
        # reload). PostgreSQL itself still echoes the refused value in the ERROR and
        # STATEMENT lines, so this probe uses a throwaway value and is only reported.
        try:
            set_relay_config(kafka_properties="; ".join(common + ["sasl.password=" + inline]))
            raise Failed("an inline sasl.password was accepted in edu_outbox.kafka_properties")
        except psycopg2.errors.InvalidParameterValue:
            pass
        echoed = sum(1 for line in ServerLog.whole().splitlines() if inline in line)
        note("sasl_ssl: inline sasl.password refused by the setting's check; the refused "
             "throwaway value appears in %d server log line(s) (PostgreSQL's ERROR/STATEMENT echo)"
             % echoed)

        s = Scenario("sasl_ssl", duration=max(12, DURATION * 0.6), brokers=bootstrap,
                     kafka_extra=good)
        write_secrets(secrets, wrong)
        set_relay_config(brokers=bootstrap, kafka_properties="; ".join(common),
                         kafka_secrets_file=secrets)
        s.start()
        s.at(s.duration * 0.6)
        held = consume(s.topic, bootstrap, good)
        waiting = undelivered_count()
        note("sasl_ssl: with the wrong password at %.1fs: %d records in the topic, %d undelivered"
             % (time.time() - s.t0, len(held), waiting))
        s.require(not held, "%d records arrived although the password was wrong" % len(held))
        s.require(waiting > 0, "no events waited while the password was wrong")
        write_secrets(secrets, password)
        set_relay_config()          # reload: the relay sees the file changed
        note("sasl_ssl: password fixed at %.1fs" % (time.time() - s.t0))
        s.finish()
        s.require(any("reconnecting with new Kafka settings" in line for line in s.log.relay_lines()),
                  "the relay did not rebuild its producer after the secrets file changed")
        log = ServerLog.whole()
        for label, secret in (("right", password), ("wrong", wrong)):
            lines = [line for line in log.splitlines() if secret in line]
            for line in lines[:3]:
                note("sasl_ssl: %s password in server log: %s" % (label, line[:300]))
            s.require(not lines, "the %s password appears %d time(s) in the server log"
                      % (label, len(lines)))
        s.verdict()
    finally:
        set_relay_config(brokers=None, kafka_properties=None, kafka_secrets_file=None)
        script("kafka-secure.sh", "stop", check=False)


def scenario_checker_self_test():
    """The checker flags made-up lost, phantom, out-of-order and duplicate records."""
    problems = self_test()
    if problems:
        raise Failed("; ".join(problems))


scenario_read_uncommitted_eos, scenario_fencing_eos = exactly_once.bind(
    Scenario, Failed, relay_kill_eos, EOS_DURATION)

SCENARIOS = [
    scenario_checker_self_test,
    scenario_kafka_kill,
    scenario_kafka_kill_eos,
    scenario_kafka_outage,
    scenario_kafka_outage_eos,
    scenario_kafka_stop_eos,
    scenario_relay_kill,
    scenario_relay_kill_eos,
    scenario_read_uncommitted_eos,     # reads relay_kill_eos's topic again
    scenario_two_databases,
    scenario_pg_crash,
    scenario_pg_crash_eos,
    scenario_fencing_eos,
    scenario_cluster_leader_kill,
    scenario_cluster_leader_kill_eos,  # on the same cluster
    scenario_sasl_ssl,
] + failover.bind(Scenario, Failed)   # last: they swap the primary's data directory
CLUSTER_SCENARIOS = {scenario_cluster_leader_kill, scenario_cluster_leader_kill_eos}
# Known failing, run only when named. kafka_stop_eos on Kafka 4.4: a broker
# that shuts down in order just after acknowledging a transaction's commit can
# come back without that transaction's commit markers in the partitions (its
# coordinator says COMPLETE_COMMIT). Read_committed readers then stop at those
# records (the relay's position read too), and the producer's next abort on such
# a partition turns the committed records into aborted ones: 3 runs in 5 on
# Kafka 4.4.0, none in 6 on 4.0.2 or in 6 on 3.9.1 (2026-11-23; see README,
# "Exactly once"). Versions between were not tried.
KNOWN_FAILING = {scenario_kafka_stop_eos} if KAFKA_RELEASE >= (4, 4) else set()


def main(names):
    chosen = [f for f in SCENARIOS if f.__name__[len("scenario_"):] in names
              or (not names and f not in KNOWN_FAILING)]
    unknown = set(names) - {f.__name__[len("scenario_"):] for f in SCENARIOS}
    if unknown:
        print("unknown scenario(s): %s" % ", ".join(sorted(unknown)), file=sys.stderr)
        return 2
    sql("CREATE EXTENSION IF NOT EXISTS edu_outbox")
    note("settings: duration=%.0fs outage=%.0fs rounds=%d quick=%s soak=%s"
         % (DURATION, OUTAGE, ROUNDS, QUICK, SOAK))
    failed = 0
    for i, f in enumerate(chosen, 1):
        name = f.__name__[len("scenario_"):]
        start = time.time()
        CLUSTER["keep"] = i < len(chosen) and chosen[i] in CLUSTER_SCENARIOS
        try:
            f()
            print("ok %d - %s (%.1fs)" % (i, name, time.time() - start), flush=True)
        except Exception as e:  # one failing scenario must not stop the others
            failed += 1
            print("not ok %d - %s (%.1fs)" % (i, name, time.time() - start), flush=True)
            if isinstance(e, Failed):
                for part in str(e).split("; "):
                    note("  " + " ".join(part.split())[:1000])
            else:
                for line in traceback.format_exc().splitlines():
                    note("  " + line)
        finally:
            for w in ACTIVE:          # a failed scenario must not leave writers running
                w.stop()
                w.join(timeout=15)
            ACTIVE.clear()
            for held in list(exactly_once.HELD):   # nor the relay waiting on a row lock
                held.release()
    print("1..%d" % len(chosen), flush=True)
    return 1 if failed else 0


def on_term(signum, frame):
    # unwinds through the finally blocks: a frozen relay gets SIGCONT, settings are reset
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    threading.current_thread().name = "main"
    signal.signal(signal.SIGTERM, on_term)
    sys.exit(main(sys.argv[1:]))
