"""Failover and lost-WAL scenarios of the fault suite (issue 11): never send an
event whose transaction can still vanish, and carry on after a promotion.

The suite's server (scripts/pg.sh, PGDIR_EDU/PGPORT_EDU) is the primary. A
failover scenario makes a streaming standby of it with pg_basebackup (over
127.0.0.1, port FAULT_STANDBY_PORT, directory FAULT_STANDBY_DIR), runs the
writers, crashes the primary with `pg_ctl stop -m immediate`, promotes the
standby and points the writers at it. The checker then compares the topic with
what the PROMOTED server holds: a record of a transaction the promoted server
does not have is a phantom. Afterwards the promoted server's data directory
takes the primary's place, so later scenarios find the usual set-up.

    failover_async_wait   async standby held back (its walsender frozen), crash,
                          promote; edu_outbox.wait_for_standbys = on:
                          phantom = 0, everything the standby has is delivered
    failover_async_nowait the same with the setting off: phantoms reported only
    failover_sync         synchronous standby: every acknowledged commit
                          delivered, phantom = 0
    async_commit_crash    one server, writers with synchronous_commit = off, the
                          WAL writer frozen so that a crash really loses the WAL
                          tail: phantom = 0

faults.py imports this module and calls bind() with its Scenario and Failed.
"""
import os
import pwd
import shutil
import signal
import subprocess
import time

import psycopg2

import faultlib
from faultlib import ServerLog, relay_pid, script, set_relay_config, sql, wait_until
from workload import env_float

PRIMARY_DIR = faultlib.PG_DIR
PRIMARY_PORT = faultlib.PG_PORT
STANDBY_DIR = os.environ.get("FAULT_STANDBY_DIR") or PRIMARY_DIR + "-standby"
STANDBY_PORT = int(os.environ.get("FAULT_STANDBY_PORT") or PRIMARY_PORT + 1)
STANDBY_NAME = "standby1"
STANDBY_ENV = {"PGDIR_EDU": STANDBY_DIR, "PGPORT_EDU": str(STANDBY_PORT)}
PGBIN = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,
                       check=True).stdout.strip()
LAG = env_float("FAULT_STANDBY_LAG", 4)     # seconds the standby is held back
POST_FAULT = 5
PG_DOWN = 3

Scenario = Failed = None


def bind(scenario_cls, failed_cls):
    """Takes faults.py's Scenario and Failed; returns this module's scenarios."""
    global Scenario, Failed
    Scenario, Failed = scenario_cls, failed_cls
    return [scenario_failover_async_wait, scenario_failover_async_nowait, scenario_failover_sync,
            scenario_async_commit_crash]


def note(msg):
    print("# " + msg, flush=True)


def as_pg(*cmd, check=True):
    return subprocess.run(["runuser", "-u", "postgres", "--"] + [str(c) for c in cmd],
                          check=check, capture_output=True, text=True)


def query(pg_dir, port, q, args=None, timeout=5):
    """One statement on a given server, no retries."""
    conn = psycopg2.connect(host=pg_dir, port=port, user="postgres", dbname=faultlib.DB,
                            connect_timeout=timeout)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(q, args)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()


def backend_pid(backend_type, pg_dir=None, port=None):
    rows = query(pg_dir or PRIMARY_DIR, port or PRIMARY_PORT,
                 "SELECT pid FROM pg_stat_activity WHERE backend_type = %s", (backend_type,))
    return rows[0][0] if rows else None


def relay_children(data_dir):
    """PIDs of edu_outbox workers (launcher, relays) among the children of the
    postmaster of data_dir."""
    try:
        with open(os.path.join(data_dir, "postmaster.pid")) as f:
            pm = f.readline().strip()
    except OSError:
        return []
    out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", pm], capture_output=True, text=True)
    return [line.split()[0] for line in out.stdout.splitlines() if "edu_outbox" in line]


def append_conf(data_dir, lines):
    path = os.path.join(data_dir, "postgresql.auto.conf")
    with open(path, "a") as f:
        f.write("".join(line + "\n" for line in lines))


def drop_conf(data_dir, names):
    path = os.path.join(data_dir, "postgresql.auto.conf")
    with open(path) as f:
        kept = [line for line in f if line.split("=")[0].strip() not in names]
    with open(path, "w") as f:
        f.writelines(kept)


def immediate_stop(frozen=()):
    """pg_ctl stop -m immediate on the primary; processes we froze (SIGSTOP)
    cannot act on the postmaster's SIGQUIT, so they get SIGKILL once the stop
    is under way (they never run again, so whatever they held back is gone)."""
    stop = subprocess.Popen([os.path.join(faultlib.SCRIPTS, "pg.sh"), "kill"],
                            stdout=subprocess.DEVNULL)
    time.sleep(0.3)
    for pid in frozen:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    stop.wait(timeout=120)


class Pair:
    """The suite's primary plus a streaming standby made with pg_basebackup."""

    def __init__(self):
        self.promoted = False

    def make_standby(self):
        shutil.rmtree(STANDBY_DIR, ignore_errors=True)
        os.makedirs(STANDBY_DIR)
        pw = pwd.getpwnam("postgres")
        os.chown(STANDBY_DIR, pw.pw_uid, pw.pw_gid)
        data = os.path.join(STANDBY_DIR, "data")
        out = as_pg(os.path.join(PGBIN, "pg_basebackup"), "-h", "127.0.0.1", "-p", PRIMARY_PORT,
                    "-U", "postgres", "-D", data, "-X", "stream", "-c", "fast", "-R", check=False)
        if out.returncode != 0:
            raise Failed("pg_basebackup failed: " + out.stderr[-500:])
        append_conf(data, ["port = %d" % STANDBY_PORT,
                           "unix_socket_directories = '%s'" % STANDBY_DIR,
                           "primary_conninfo = 'host=127.0.0.1 port=%d user=postgres "
                           "application_name=%s'" % (PRIMARY_PORT, STANDBY_NAME)])
        script("pg.sh", "start", env=STANDBY_ENV)
        wait_until(lambda: sql("SELECT count(*) FROM pg_stat_replication WHERE application_name = %s "
                               "AND state = 'streaming'", (STANDBY_NAME,))[0][0] == 1,
                   60, "the standby to stream")
        note("standby %s streaming from the primary over 127.0.0.1:%d (port %d)"
             % (STANDBY_NAME, PRIMARY_PORT, STANDBY_PORT))

    def lag(self):
        """(primary's current WAL position, standby's flushed position, bytes behind)."""
        return sql("SELECT pg_current_wal_lsn()::text, flush_lsn::text, "
                   "pg_wal_lsn_diff(pg_current_wal_lsn(), flush_lsn)::bigint "
                   "FROM pg_stat_replication WHERE application_name = %s", (STANDBY_NAME,))[0]

    def promote(self):
        out = as_pg(os.path.join(PGBIN, "pg_ctl"), "-D", os.path.join(STANDBY_DIR, "data"),
                    "-w", "-t", "60", "promote", check=False)
        if out.returncode != 0:
            raise Failed("pg_ctl promote failed: " + (out.stderr or out.stdout)[-500:])
        self.promoted = True
        faultlib.use_server(STANDBY_DIR, STANDBY_PORT)

    def old_primary_as_standby(self, s):
        """Restarts the crashed primary as a standby of the promoted server:
        it must not run the relay."""
        data = os.path.join(PRIMARY_DIR, "data")
        with open(os.path.join(data, "standby.signal"), "w"):
            pass
        pw = pwd.getpwnam("postgres")
        os.chown(os.path.join(data, "standby.signal"), pw.pw_uid, pw.pw_gid)
        append_conf(data, ["primary_conninfo = 'host=127.0.0.1 port=%d user=postgres "
                           "application_name=old_primary'" % STANDBY_PORT])
        log = ServerLog(os.path.join(PRIMARY_DIR, "server.log")).mark()
        # no -w: a diverged old primary may never reach a state that takes connections
        as_pg(os.path.join(PGBIN, "pg_ctl"), "-D", data, "-l",
              os.path.join(PRIMARY_DIR, "server.log"), "start")
        time.sleep(6)
        relays = relay_children(data)
        try:
            rows = query(PRIMARY_DIR, PRIMARY_PORT,
                         "SELECT pg_is_in_recovery(), (SELECT count(*) FROM pg_stat_activity "
                         "WHERE backend_type LIKE 'edu_outbox%%')")
            state = "in recovery=%s, edu_outbox backends=%d" % rows[0]
            s.require(rows[0][0] and rows[0][1] == 0, "old primary as standby: " + state)
        except psycopg2.OperationalError as e:
            state = "takes no connections (%s)" % " ".join(str(e).split())[:120]
        started = "edu_outbox relay started" in log.text()
        note("%s: old primary restarted as a standby: %s; relay processes %s; relay started "
             "in its log: %s" % (s.name, state, relays or "none", started))
        s.require(not relays and not started, "the old primary runs the relay as a standby")

    def restore(self):
        """Leaves the usual set-up: one primary at PGDIR_EDU, no standby."""
        data = os.path.join(PRIMARY_DIR, "data")
        sdata = os.path.join(STANDBY_DIR, "data")
        if self.promoted:
            script("pg.sh", "stop", check=False)
            script("pg.sh", "stop", env=STANDBY_ENV, check=False)
            shutil.rmtree(data, ignore_errors=True)
            shutil.move(sdata, data)
            drop_conf(data, {"port", "unix_socket_directories", "primary_conninfo"})
            try:
                os.unlink(os.path.join(data, "standby.signal"))
            except FileNotFoundError:
                pass
            shutil.copy(os.path.join(STANDBY_DIR, "server.log"),
                        os.path.join(os.path.dirname(PRIMARY_DIR), "promoted-%d.log" % int(time.time())))
        script("pg.sh", "destroy", env=STANDBY_ENV, check=False)
        faultlib.use_server(PRIMARY_DIR, PRIMARY_PORT)
        script("pg.sh", "start")
        sql("ALTER SYSTEM RESET synchronous_standby_names")
        set_relay_config(wait_for_standbys=None)


class FailoverScenario:
    """Mixed into faults.py's Scenario at run time: a commit acknowledged to a
    client may be missing afterwards (the crash or failover took it); that is
    counted, and asserted to be zero or non-zero as the scenario requires."""

    @staticmethod
    def make(name, expect_acked_lost, **kw):
        cls = type("FailoverScenario", (Scenario,), {"cross_check_clients": _cross_check})
        s = cls(name, **kw)
        s.expect_acked_lost = expect_acked_lost   # True: must be > 0, False: must be 0
        s.acked_lost = None
        return s


def _cross_check(self):
    w = self.workload
    committed = {str(tx) for (tx,) in sql(
        "SELECT DISTINCT tx FROM fault_events WHERE scenario = %s", (self.name,))}
    missing = [tx for tx in w.client_committed if tx not in committed]
    ghost = [tx for tx in w.client_rolled_back if tx in committed]
    self.acked_lost = len(missing)
    note("%s: %d of %d commits acknowledged to the writers are not on the server now"
         % (self.name, len(missing), len(w.client_committed)))
    if self.expect_acked_lost:
        self.require(missing, "no acknowledged commit was lost: the fault proved nothing")
    else:
        self.require(not missing, "%d acknowledged commits are missing: %s"
                     % (len(missing), missing[:3]))
    self.require(not ghost, "%d transactions the client rolled back are on the server: %s"
                 % (len(ghost), ghost[:3]))
    self.require(not w.unknown, "%d commit outcomes stayed unknown" % len(w.unknown))


def relay_status():
    rows = sql("SELECT worker_state, coalesce(last_error, '') FROM outbox_status()")
    return rows[0] if rows else (None, "")


def run_failover(name, wait, sync):
    pair = Pair()
    s = None
    try:
        pair.make_standby()
        if sync:
            sql("ALTER SYSTEM SET synchronous_standby_names = %s", (STANDBY_NAME,))
        set_relay_config(wait_for_standbys="on" if wait else None)
        # async: the standby is held back, so the failover must lose commits
        s = FailoverScenario.make(name, expect_acked_lost=not sync, expected_relay_starts=1)
        s.phantoms_reported_only = not wait and not sync
        s.log = ServerLog(os.path.join(STANDBY_DIR, "server.log"))
        s.start()
        note("%s: wait_for_standbys=%s, synchronous_standby_names=%s" % (
            name, sql("SHOW edu_outbox.wait_for_standbys")[0][0],
            sql("SHOW synchronous_standby_names")[0][0] or "''"))
        s.at(4)
        frozen = []
        if sync:
            armed = s.arm(0)
        else:
            walsender = backend_pid("walsender")
            os.kill(walsender, signal.SIGSTOP)
            frozen.append(walsender)
            note("%s: walsender %d frozen at %.1fs; the standby gets no WAL for %.0fs"
                 % (name, walsender, time.time() - s.t0, LAG))
            waited = None
            deadline = time.time() + LAG
            while time.time() < deadline:
                state, err = relay_status()
                if state == "waiting for standby":
                    waited = err
                time.sleep(0.2)
            if wait:
                note("%s: relay status while the standby lagged: %s" % (name, waited))
                s.require(waited and STANDBY_NAME in waited,
                          "the relay never reported waiting for the standby")
            armed = "relay status %r" % (relay_status(),)
        lsn, flushed, behind = pair.lag()
        note("%s: at the crash the primary is at %s, the standby has flushed %s: %s bytes behind; %s"
             % (name, lsn, flushed, behind, armed))
        if not sync:
            s.require(behind and behind > 0, "the standby did not lag")
        immediate_stop(frozen)
        crashed = time.time()
        pair.promote()
        if sync:
            sql("ALTER SYSTEM RESET synchronous_standby_names")
            sql("SELECT pg_reload_conf()")
        note("%s: primary crashed at %.1fs, standby promoted %.1fs later"
             % (name, crashed - s.t0, time.time() - crashed))
        wait_until(lambda: relay_pid() is not None, 60, "the relay on the promoted server")
        note("%s: relay running on the promoted server %.1fs after the crash"
             % (name, time.time() - crashed))
        s.workload.extend(POST_FAULT)
        s.finish()
        if wait:
            pair.old_primary_as_standby(s)
        s.verdict()
    finally:
        if s is not None:
            s.workload.stop()
            s.workload.join(timeout=30)
        pair.restore()


def scenario_failover_async_wait():
    """Async standby held back, primary crash, promotion; wait_for_standbys = on:
    nothing phantom, everything the promoted server has is delivered; the old
    primary restarted as a standby does not relay."""
    run_failover("failover_async_wait", wait=True, sync=False)


def scenario_failover_async_nowait():
    """The same with wait_for_standbys = off: the phantoms this leaves are reported."""
    run_failover("failover_async_nowait", wait=False, sync=False)


def scenario_failover_sync():
    """Synchronous standby (synchronous_standby_names set, synchronous_commit on),
    primary crash while the relay sends, promotion: every acknowledged commit is
    delivered and nothing is phantom."""
    run_failover("failover_sync", wait=True, sync=True)


def scenario_async_commit_crash():
    """Writers with synchronous_commit = off on one server. The WAL writer is
    frozen, so commits stay in WAL buffers; the relay goes on; then Kafka is
    frozen so that the relay is stuck mid-batch while the writers go on, and
    PostgreSQL is stopped with -m immediate: the unflushed tail is lost for
    real. No event of a lost transaction may be in Kafka."""
    kafka_pid_file = os.path.join(os.environ["KAFKA_HOME_DIR"], "kafka.pid")
    sql("ALTER DATABASE %s SET synchronous_commit = off" % faultlib.DB)
    kafka = None
    try:
        s = FailoverScenario.make("async_commit_crash", expect_acked_lost=True,
                                  expected_relay_starts=1)
        s.start()
        s.at(4)
        walwriter = backend_pid("walwriter")
        os.kill(walwriter, signal.SIGSTOP)
        note("async_commit_crash: walwriter %d frozen at %.1fs" % (walwriter, time.time() - s.t0))
        time.sleep(2)
        with open(kafka_pid_file) as f:
            kafka = int(f.read().strip())
        os.kill(kafka, signal.SIGSTOP)
        note("async_commit_crash: Kafka frozen at %.1fs, relay %r"
             % (time.time() - s.t0, faultlib.relay_activity()))
        time.sleep(2)
        lsn = sql("SELECT pg_current_wal_insert_lsn()::text, pg_current_wal_flush_lsn()::text, "
                  "pg_wal_lsn_diff(pg_current_wal_insert_lsn(), pg_current_wal_flush_lsn())::bigint")
        note("async_commit_crash: WAL inserted up to %s, flushed up to %s: %s bytes unflushed"
             % lsn[0])
        immediate_stop([walwriter])
        os.kill(kafka, signal.SIGCONT)
        kafka = None
        note("async_commit_crash: immediate stop at %.1fs, Kafka thawed" % (time.time() - s.t0))
        time.sleep(PG_DOWN)
        script("pg.sh", "start")
        wait_until(lambda: relay_pid() is not None, 60, "the relay after recovery")
        s.workload.extend(POST_FAULT)
        s.finish()
        s.verdict()
    finally:
        if kafka is not None:
            os.kill(kafka, signal.SIGCONT)
        script("pg.sh", "start", check=False)
        sql("ALTER DATABASE %s RESET synchronous_commit" % faultlib.DB)
