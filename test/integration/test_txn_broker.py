"""Exactly-once parts of relay/ against the real broker (issue 12).

librdkafka 2.0.2's mock cluster (test/unit) neither fences a producer when
another initializes the same transactional.id, nor creates topics, nor
filters aborted transactions for read_committed consumers. txn_broker.c
tests those against the broker test/run.sh started; this wrapper builds it
with the unit tests' flags and passes its TAP output on.
"""
import os
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
KAFKA = "127.0.0.1:%s" % os.environ["KAFKA_PORT"]
RELAY_SOURCES = ["position", "transaction", "producer", "delivery", "properties",
                 "headers", "errors", "limits"]


def main():
    with tempfile.TemporaryDirectory() as tmp:
        binary = os.path.join(tmp, "txn_broker")
        cmd = ["gcc", "-Wall", "-Wextra", "-Werror", "-Wno-format-truncation", "-O1", "-g",
               "-I" + os.path.join(ROOT, "relay"), "-I" + os.path.join(ROOT, "test", "unit"),
               "-o", binary, os.path.join(ROOT, "test", "integration", "txn_broker.c")]
        cmd += [os.path.join(ROOT, "relay", s + ".c") for s in RELAY_SOURCES]
        cmd += ["-lrdkafka", "-ljansson", "-lpthread"]
        build = subprocess.run(cmd, capture_output=True, text=True)
        if build.returncode != 0:
            print(build.stdout + build.stderr)
            print("not ok 1 - txn_broker.c builds")
            print("1..1")
            return 1
        run = subprocess.run([binary, KAFKA], capture_output=True, text=True, timeout=600)
        sys.stdout.write(run.stdout)
        if run.returncode not in (0, 1):
            sys.stdout.write(run.stderr)
            print("not ok - txn_broker exited with status %d" % run.returncode)
        return 0 if run.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
