#!/usr/bin/env python3
"""How long an event for a topic Kafka refuses holds back a normal event on
another topic (issue 8, finding 4). Prints the delay; asserts nothing.

Runs against services that are already up, with the environment test/run.sh
sets (PGDIR_EDU, PGPORT_EDU, OUTBOX_DB, KAFKA_PORT), e.g.

    KEEP_TEST_DIR=1 ...   or   scripts/kafka.sh start; scripts/pg.sh start
    /usr/bin/python3 bench/unknown_topic_stall.py [ROUNDS]

"sec.<n>" collides with the existing "sec_<n>" ('.' and '_' are the same to
Kafka's topic checks), so the broker refuses to create it.
"""
import os
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "test", "integration"))
from harness import KAFKA, consume, publish, sql  # noqa: E402


def one_round():
    n = uuid.uuid4().hex[:8]
    exists, bad, other = "sec_%s" % n, "sec.%s" % n, "stall-other-%s" % n
    subprocess.run(["kcat", "-b", KAFKA, "-P", "-t", exists], input=b"seed\n", check=True)
    poison = publish(bad, {"n": 1}, "K")
    time.sleep(0.5)                        # the relay has sent it, in a chunk of its own
    start = time.time()
    good = publish(other, {"n": 2}, "K")
    while not consume(other):
        if sql("SELECT 1 FROM outbox_dead_letters WHERE id = %s", (good,)):
            sql("SELECT outbox_discard_dead_letter(%s)", (good,))
            print("the other topic's event was dead-lettered too: the bound is too short", flush=True)
            break
        time.sleep(0.1)
    delayed = time.time() - start
    while not sql("SELECT 1 FROM outbox_dead_letters WHERE id = %s", (poison,)):
        time.sleep(0.1)
    sql("SELECT outbox_discard_dead_letter(%s)", (poison,))
    return delayed


if __name__ == "__main__":
    sql("CREATE EXTENSION IF NOT EXISTS edu_outbox")
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    props = sql("SELECT current_setting('edu_outbox.kafka_properties')")[0][0]
    delays = [one_round() for _ in range(rounds)]
    print("kafka_properties=%r: other topic's event held back %s s (max %.1f s)"
          % (props, " ".join("%.1f" % d for d in delays), max(delays)))
