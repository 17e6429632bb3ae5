"""Exactly-once parts of the fault suite (issue 12): the relay with
edu_outbox.delivery = exactly_once, every chunk one Kafka transaction with
its position record, read back by read_committed consumers.

faults.py runs the usual faults in this mode (the *_eos scenarios: duplicates
must be 0 as well) and adds the two scenarios of this module:

    read_uncommitted_eos  what a read_uncommitted consumer sees of relay_kill_eos's
                          topic (records of aborted transactions), reported;
                          asserted: the read_committed view has no duplicate
                          and the read_uncommitted one holds at least as much
    fencing_eos           another producer takes the relay's transactional.id:
                          the relay is fenced and sends nothing until a reload,
                          which takes the id back and fences the intruder

faults.py imports this module and calls bind() with its Scenario and Failed,
the function that runs relay_kill_eos, and the workload seconds.
"""
import contextlib
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
import uuid

from checker import check
from faultlib import (DB, KAFKA, ServerLog, connect, consume, set_relay_config, sql,
                      undelivered_count, wait_until)

HERE = os.path.dirname(os.path.abspath(__file__))
READ_COMMITTED = "isolation.level=read_committed"
READ_UNCOMMITTED = "isolation.level=read_uncommitted"
# small produce requests: a big chunk takes long enough to send that a fault
# can strike while its records are in Kafka and its transaction is open
SLOW_SEND = "batch.num.messages=5"
RESUME_LINE = "edu_outbox relay resumes from the position it committed to Kafka"
POST_FAULT = 5

Scenario = Failed = run_relay_kill_eos = None
DURATION = 10             # workload seconds of this module's scenarios (faults.py's EOS_DURATION)
LAST = {}                 # scenario name -> the Scenario of its last run (for read_uncommitted_eos)
HELD = []                 # HeldPosition locks not released yet (faults.py releases them after a failure)


def bind(scenario_cls, failed_cls, relay_kill_eos, duration):
    """Takes faults.py's Scenario, Failed, relay_kill_eos runner and workload
    seconds; returns this module's scenarios."""
    global Scenario, Failed, run_relay_kill_eos, DURATION
    Scenario, Failed, run_relay_kill_eos, DURATION = scenario_cls, failed_cls, relay_kill_eos, duration
    return [scenario_read_uncommitted_eos, scenario_fencing_eos]


def note(msg):
    print("# " + msg, flush=True)


def relay_status(dbname=None):
    """(worker_state, producer_state, last_error) of outbox_status()."""
    rows = sql("SELECT worker_state, producer_state, coalesce(last_error, '') FROM outbox_status()",
               dbname=dbname)
    return rows[0] if rows else (None, None, "")


def position_seq(dbname=None):
    """Positions the relay committed to Kafka, as PostgreSQL last recorded them."""
    return sql("SELECT position_seq FROM edu_outbox.relay_state", dbname=dbname)[0][0]


def transactional_id(dbname=None):
    """The relay's transactional.id with the default template edu_outbox-<sysid>-<db>."""
    sysid = sql("SELECT system_identifier FROM pg_control_system()")[0][0]
    return "edu_outbox-%s-%s" % (sysid, dbname or DB)


def kafka_position_seq(dbname=None):
    """The seq of the relay's last position committed to Kafka (read_committed), -1 if none."""
    key = transactional_id(dbname)
    seqs = [json.loads(r["payload"])["seq"]
            for r in consume("edu_outbox_positions", extra=[READ_COMMITTED], timeout=60)
            if r.get("key") == key and r.get("payload")]
    return max(seqs, default=-1)


def relay_waits_on_lock(dbname=None):
    rows = sql("SELECT wait_event_type FROM pg_stat_activity "
               "WHERE backend_type = 'edu_outbox relay' AND datname = %s", (dbname or DB,))
    return bool(rows) and rows[0][0] == "Lock"


@contextlib.contextmanager
def exactly_once(**settings):
    """Switches the relay to exactly_once (plus other edu_outbox settings) with
    ALTER SYSTEM and a reload, waits for its transactional producer, and resets
    every one of them afterwards, so that other scenarios run at least once."""
    had_producer = relay_status()[1] not in (None, "none")
    log = ServerLog().mark()
    set_relay_config(delivery="exactly_once", **settings)
    try:
        # the old producer is replaced first ("reconnecting"), then the new one
        # initializes its transactions and reads its position ("connected")
        wait_until(lambda: (not had_producer or "reconnecting with new Kafka settings" in log.text())
                   and relay_status()[1] == "connected", 120, "the relay's transactional producer")
        yield
    finally:
        set_relay_config(delivery=None, **{name: None for name in settings})


class HeldPosition:
    """Holds the relay between a Kafka commit and PostgreSQL's record of it: a
    row lock on edu_outbox.relay_state makes the relay's next position update
    wait, and while the writers go on that update only comes after a chunk's
    transaction (with its position record) committed in Kafka. A kill then lands exactly where a
    crash loses relay_state's last, asynchronously committed update."""

    def __init__(self, dbname=None):
        self.dbname = dbname
        self.conn = connect(autocommit=False, dbname=dbname)   # before the stall: no delay later
        HELD.append(self)

    def hold(self, attempts=5):
        """Locks until the relay waits on the lock with a position in Kafka past
        PostgreSQL's. The relay also writes relay_state without a Kafka commit
        (an idle move past empty transactions, say): such a wait is let go and
        the hold tried again. Returns PostgreSQL's position_seq."""
        for attempt in range(attempts):
            with self.conn.cursor() as cur:
                cur.execute("SELECT position_seq FROM edu_outbox.relay_state FOR UPDATE")
                self.seq = cur.fetchone()[0]
            wait_until(lambda: relay_waits_on_lock(self.dbname), 60,
                       "the relay to wait for its position update")
            ahead = kafka_position_seq(self.dbname)
            if ahead > self.seq:
                return self.seq
            note("hold: the relay waits with Kafka at position %d, PostgreSQL at %d "
                 "(no commit in Kafka before this update): let go, try again" % (ahead, self.seq))
            self.conn.rollback()
            time.sleep(0.5)
        raise Failed("the relay never waited on its position update after a commit in Kafka "
                     "(%d tries)" % attempts)

    def release(self):
        """After a crash this only tidies up; otherwise it lets the relay go on."""
        if self in HELD:
            HELD.remove(self)
        try:
            self.conn.close()
        except Exception:
            pass


def resumes(text):
    """The relay's "resumes from the position it committed to Kafka" lines and their detail."""
    lines = text.splitlines()
    out = []
    for i, line in enumerate(lines):
        if RESUME_LINE in line:
            detail = next((d for d in lines[i + 1:i + 4] if "DETAIL:" in d), "")
            out.append(detail.split("DETAIL:", 1)[-1].strip())
    return out


# ---------------------------------------------------------------------------
# scenarios

def scenario_read_uncommitted_eos():
    """relay_kill_eos's topic read twice: read_committed must show each event
    once, read_uncommitted also shows the records of the transactions the kill
    left open (aborted when the new relay initialized its transactions). Uses
    relay_kill_eos's run of this suite if there was one, else runs it."""
    s = LAST.get("relay_kill_eos")
    if s is None:
        note("read_uncommitted_eos: no relay_kill_eos run yet, running one")
        s = run_relay_kill_eos()
    committed = consume(s.topic, extra=[READ_COMMITTED])
    uncommitted = consume(s.topic, extra=[READ_UNCOMMITTED])
    rc = check(s.name, s.topic, records=committed)
    ru = check(s.name, s.topic, records=uncommitted)
    ru.scenario = "read_uncommitted_eos"
    print(ru.summary(), flush=True)
    aborted = len(uncommitted) - len(committed)
    note("read_uncommitted_eos: topic %s of relay_kill_eos: read_committed %d records (%d duplicates), "
         "read_uncommitted %d records: %d records of aborted transactions"
         % (s.topic, len(committed), rc.duplicates, len(uncommitted), aborted))
    for line in ru.details():
        note("read_uncommitted view: " + line)
    problems = []
    if not rc.ok or rc.duplicates:
        problems.append("read_committed view: " + rc.summary())
    if s.open_txn_kills and aborted <= 0:
        problems.append("relay_kill_eos killed the relay %d time(s) with records of an open "
                        "transaction in Kafka, yet read_uncommitted sees no more records than "
                        "read_committed" % s.open_txn_kills)
    if len(uncommitted) < len(committed):
        problems.append("read_uncommitted sees fewer records (%d) than read_committed (%d)"
                        % (len(uncommitted), len(committed)))
    if ru.lost or ru.phantom:
        problems.append("read_uncommitted view: " + ru.summary())
    if problems:
        raise Failed("; ".join(problems))


def build_intruder(tmp):
    binary = os.path.join(tmp, "txn_intruder")
    out = subprocess.run(["gcc", "-Wall", "-Wextra", "-Werror", "-O1", "-o", binary,
                          os.path.join(HERE, "txn_intruder.c"), "-lrdkafka"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise Failed("txn_intruder.c does not build: " + (out.stdout + out.stderr)[-500:])
    return binary


class Intruder:
    """txn_intruder.c: a second transactional producer with the relay's id."""

    def __init__(self, binary, txn_id, topic):
        # librdkafka's own log (retries, the fencing) goes to stderr: kept apart, for failures
        self.log_path = binary + ".log"
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen([binary, KAFKA, txn_id, topic], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=log, text=True)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.strip())
        self.lines.put("exited with status %s" % self.proc.wait())

    def answer(self, timeout=90):
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            line = "no answer in %ds" % timeout
        if line not in ("ready", "committed"):
            with open(self.log_path) as f:
                line += " (librdkafka: %s)" % " | ".join(f.read().splitlines()[-3:])
        return line

    def write(self, value):
        self.proc.stdin.write(value + "\n")
        self.proc.stdin.flush()
        return self.answer()

    def close(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except Exception:
            self.proc.kill()
            self.proc.wait()


def scenario_fencing_eos():
    """A second producer initializes the relay's transactional.id while the
    writers go on: the relay is fenced (status and log say so) and sends
    nothing more, not even records of aborted transactions, while the
    intruder still commits. A reload makes the relay take the id back, which
    fences the intruder; then everything arrives once for read_committed."""
    tmp = tempfile.mkdtemp(prefix="edu_outbox_fencing.")
    intruder = None
    try:
        binary = build_intruder(tmp)
        probe = "faults-fencing-probe-" + uuid.uuid4().hex[:8]
        with exactly_once():
            s = Scenario("fencing_eos", duration=max(8, DURATION), eos=True)
            s.start()
            s.at(4)
            txn_id = transactional_id()
            intruder = Intruder(binary, txn_id, probe)
            ready = intruder.answer()
            if ready != "ready":
                raise Failed("the intruder could not initialize %s: %s" % (txn_id, ready))
            first = intruder.write("first")
            note("fencing_eos: intruder initialized transactional.id %s at %.1fs, wrote: %s"
                 % (txn_id, time.time() - s.t0, first))
            s.require(first == "committed", "the intruder's first transaction: " + first)
            wait_until(lambda: relay_status()[0] == "fenced", 60, "the relay to be fenced")
            state = relay_status()
            note("fencing_eos: relay fenced at %.1fs: worker_state=%s producer_state=%s last_error=%r"
                 % (time.time() - s.t0, state[0], state[1], state[2]))
            s.require("fenced" in state[2], "last_error does not say fenced: %r" % state[2])

            # nothing more from the fenced relay: not even uncommitted records
            seen = len(consume(s.topic, extra=[READ_UNCOMMITTED]))
            waiting = undelivered_count()
            time.sleep(3)
            seen_later = len(consume(s.topic, extra=[READ_UNCOMMITTED]))
            waiting_later = undelivered_count()
            state = relay_status()
            note("fencing_eos: while fenced: %d -> %d records in the topic (read_uncommitted), "
                 "undelivered %d -> %d, worker_state %s" % (seen, seen_later, waiting, waiting_later,
                                                             state[0]))
            s.require(seen_later == seen, "the fenced relay still wrote %d records"
                      % (seen_later - seen))
            s.require(waiting_later > waiting, "the outbox did not grow while the relay was fenced")
            s.require(state[0] == "fenced", "the relay left the fenced state by itself: %s" % state[0])
            second = intruder.write("second")
            s.require(second == "committed",
                      "the intruder could not commit while the relay was fenced: " + second)

            set_relay_config()     # reload: the relay takes its transactional.id back
            wait_until(lambda: relay_status()[0] != "fenced" and relay_status()[1] == "connected",
                       60, "the relay to take its transactional.id back after a reload")
            third = intruder.write("third")
            note("fencing_eos: relay reloaded at %.1fs; the intruder's next transaction: %s"
                 % (time.time() - s.t0, third))
            s.require(third.startswith("fenced"),
                      "the intruder was not fenced by the relay's return: " + third)
            intruder.close()
            intruder = None
            s.workload.extend(POST_FAULT)
            s.finish()
            probes = [r["payload"] for r in consume(probe, extra=[READ_COMMITTED])]
            note("fencing_eos: the intruder's topic holds %r (read_committed)" % probes)
            s.require(probes == ["first", "second"],
                      "the intruder's committed records are %r, expected first and second" % probes)
            text = s.log.text()
            s.require("edu_outbox relay was fenced" in text, "the fencing was not logged")
            s.require("tries its Kafka transactional.id again" in text, "the reload was not logged")
            s.verdict()
    finally:
        if intruder is not None:
            intruder.close()
        shutil.rmtree(tmp, ignore_errors=True)
