"""After a broker SIGKILL and restart, how long until the relay delivers again?

Needs a running PostgreSQL with edu_outbox and a Kafka broker (bench/broker_kill.sh
starts both). A writer publishes WRITE_RATE events a second on one key; each
round kills the broker (SIGKILL), keeps it down DOWN_S seconds, starts it again
and measures, from the moment the broker answers again (broker_outage_s after
the kill, JVM start included):
  resume_s  until the outbox backlog first shrinks (delivery has resumed)
  drain_s   until the backlog is back to what it was before the kill
Afterwards it checks the topic (every event, in order) and counts the
relay's log lines about fatal producer errors and sequence desynchronization.
Prints one "result ..." line per round and a "summary ..." line.
"""
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "test", "integration"))
from harness import (connect, first_occurrences, new_topic, publish, script,  # noqa: E402
                     server_log, undelivered_count, wait_for_records, wait_until)

ROUNDS = int(os.environ.get("ROUNDS", "3"))
DOWN_S = float(os.environ.get("DOWN_S", "5"))
WRITE_RATE = float(os.environ.get("WRITE_RATE", "20"))
LABEL = os.environ.get("LABEL", "")


def main():
    topic = new_topic("bench-kill")
    stop = threading.Event()
    sent = [0]
    slowest = [0.0]     # longest outbox_publish() call since the last reset

    def writer():
        conn = connect()
        while not stop.is_set():
            t = time.time()
            publish(topic, {"seq": sent[0]}, "k", conn=conn)
            slowest[0] = max(slowest[0], time.time() - t)
            sent[0] += 1
            time.sleep(1.0 / WRITE_RATE)

    log_start = len(server_log())
    t = threading.Thread(target=writer, daemon=True)
    t.start()
    wait_until(lambda: sent[0] > 10 and undelivered_count() < 5, timeout=60, what="steady delivery")
    results = []
    for rnd in range(1, ROUNDS + 1):
        time.sleep(3)
        before = undelivered_count()
        t_kill = time.time()
        sent_at_kill = sent[0]
        slowest[0] = 0.0
        script("kafka.sh", "kill")
        time.sleep(DOWN_S)
        script("kafka.sh", "start")           # returns once the broker answers metadata
        t0 = time.time()
        outage = t0 - t_kill
        written_while_down = sent[0] - sent_at_kill
        peak = undelivered_count()
        resume = drain = None
        while time.time() - t0 < 180:
            n = undelivered_count()
            now = time.time() - t0
            if resume is None and n < peak:
                resume = now
            peak = max(peak, n)
            if resume is not None and n <= max(before, 5):
                drain = now
                break
            time.sleep(0.1)
        results.append((resume, drain))
        print("result %s round=%d broker_outage_s=%.1f resume_s=%s drain_s=%s "
              "kill_to_resume_s=%s backlog_peak=%d written_while_down=%d slowest_publish_s=%.2f"
              % (LABEL, rnd, outage, fmt(resume), fmt(drain),
                 fmt(None if resume is None else resume + outage), peak,
                 written_while_down, slowest[0]), flush=True)
    stop.set()
    t.join()
    wait_until(lambda: undelivered_count() == 0, timeout=180, what="the outbox to drain")
    records = first_occurrences(wait_for_records(topic, sent[0], timeout=120))
    seqs = [json.loads(r["payload"])["seq"] for r in records]
    in_order = seqs == list(range(sent[0]))
    log = server_log()[log_start:]
    lines = log.splitlines()
    fatal = [ln for ln in lines if "atal" in ln and "edu_outbox" in ln]
    desync = [ln for ln in lines if "desynchroni" in ln.lower()]
    for ln in (fatal + desync)[:5]:
        print("#   log: %s" % ln[:300])
    resumes = [r for r, _ in results if r is not None]
    print("summary %s rounds=%d resume_s_max=%s resume_s_mean=%s events=%d all_in_order=%s "
          "fatal_lines=%d desync_lines=%d"
          % (LABEL, ROUNDS, fmt(max(resumes) if resumes else None),
             fmt(sum(resumes) / len(resumes) if resumes else None), sent[0], in_order,
             len(fatal), len(desync)), flush=True)


def fmt(x):
    return "none" if x is None else "%.1f" % x


if __name__ == "__main__":
    main()
