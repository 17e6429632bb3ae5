#!/usr/bin/python3
"""Writes DEBEZIUM.md and debezium_latency.png: edu_outbox next to Debezium.

  debezium_report.py DATA_DIR OUT_DIR

Reads the side-by-side records (phase sbs_latency, sbs_drain, sbs_write and
the tput records of round >= 100) that bench/debezium.sh appended to
DATA_DIR/results.jsonl. Each cell is the median over the run's rounds; the
rounds alternate between the systems, so a noisy machine hits both alike.
"""
import json
import os
import statistics
import subprocess
import sys


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def f(x, nd=1):
    return "n/a" if x is None else ("%.*f" % (nd, x))


def ratio(a, b):
    return None if a is None or not b else a / b


def mark(ok):
    return "n/a" if ok is None else ("met" if ok else "NOT met")


SYSTEMS = ("edu", "tuned", "defaults")
LOADS = ("quiet", "busy")
COLUMNS = ("edu", "defaults", "tuned")   # the order of the table's columns
# the parts of each system's pipeline, without and with the broker
PIPELINE = {"edu": ["relay"], "tuned": ["jvm", "walsender"], "defaults": ["jvm", "walsender"]}


def edu_drains(recs):
    """the relay's side-by-side drains: tput records of round >= 100 (bench/debezium.sh)"""
    return [r for r in recs if r["phase"] == "tput" and r.get("kind") == "relay" and r["round"] >= 100]


def measures(recs):
    """the side-by-side medians over the rounds, per system: p50/p99 per load,
    CPU us/event at 1k/s (quiet) without and with the broker, drain events/s, write tps"""
    lat = [r for r in recs if r["phase"] == "sbs_latency"]

    def lat_med(sys_, load, key):
        return med([r["stats"][key] for r in lat if r["system"] == sys_ and r["load"] == load])

    def cpu_med(sys_, parts):
        return med([sum(r["cpu_us_per_event"][p] for p in parts) for r in lat
                    if r["system"] == sys_ and r["load"] == "quiet"])

    drains = {s: med([r["events_per_s"] for r in recs if r["phase"] == "sbs_drain" and r["system"] == s])
              for s in SYSTEMS}
    drains["edu"] = med([r["events_per_s"] for r in edu_drains(recs)])
    return {
        "p50": {(s, l): lat_med(s, l, "p50_ms") for s in SYSTEMS for l in LOADS},
        "p99": {(s, l): lat_med(s, l, "p99_ms") for s in SYSTEMS for l in LOADS},
        "cpu": {s: cpu_med(s, PIPELINE[s]) for s in SYSTEMS},
        "cpu_broker": {s: cpu_med(s, PIPELINE[s] + ["broker"]) for s in SYSTEMS},
        "drain": drains,
        "write": {v: med([r["tps"] for r in recs if r["phase"] == "sbs_write" and r["variant"] == v])
                  for v in ("publish", "dbz", "plain")},
    }


def comparison_rows(m, edu_drain):
    """the side-by-side table: measure, edu, defaults, tuned, goal, ratio, met"""
    rows = []
    for load in LOADS:
        r = ratio(m["p99"][("edu", load)], m["p99"][("tuned", load)])
        rows.append(("latency at 1k/s, p50 / p99 ms (%s%s)" % (load, ", 1 pgbench client on another table" if load == "busy" else ""),
                     *("%s / %s" % (f(m["p50"][(s, load)]), f(m["p99"][(s, load)])) for s in COLUMNS),
                     "edu p99 <= 0.5x tuned", f(r, 2), mark(None if r is None else r <= 0.5)))
    rows.append(("CPU us/event at 1k/s, pipeline alone (relay; JVM + walsender)",
                 *(f(m["cpu"][s], 0) for s in COLUMNS),
                 "(context)", f(ratio(m["cpu"]["edu"], m["cpu"]["tuned"]), 2), ""))
    r = ratio(m["cpu_broker"]["edu"], m["cpu_broker"]["tuned"])
    rows.append(("CPU us/event at 1k/s, pipeline + broker", *(f(m["cpu_broker"][s], 0) for s in COLUMNS),
                 "<= 0.5x tuned", f(r, 2), mark(None if r is None else r <= 0.5)))
    r = ratio(m["drain"]["edu"], m["drain"]["tuned"])
    rows.append(("drain of a %s backlog, events/s" % (edu_drain[0]["n"] if edu_drain else "?"),
                 *(f(m["drain"][s], 0) for s in COLUMNS),
                 ">= 4x tuned", f(r, 2), mark(None if r is None else r >= 4)))
    wp, wd = m["write"]["publish"], m["write"]["dbz"]
    r = ratio(wp, wd)
    rows.append(("write tps: INSERT business row + publish / + Debezium outbox INSERT and DELETE",
                 f(wp, 0), f(wd, 0), f(wd, 0), ">= 1.0x Debezium", f(r, 2), mark(None if r is None else r >= 1.0)))
    return rows


def comparison_table(rows):
    return (["| measure | edu_outbox | Debezium defaults | Debezium tuned | goal | ratio edu/tuned | goal met? |",
             "|---|---|---|---|---|---|---|"] + ["| " + " | ".join(row) + " |" for row in rows])


def main():
    data, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    recs = [json.loads(l) for l in open(os.path.join(data, "results.jsonl")) if l.strip()]
    env = {}
    if os.path.exists(os.path.join(data, "env.txt")):
        for line in open(os.path.join(data, "env.txt")):
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                env[k] = v
    lat = [r for r in recs if r["phase"] == "sbs_latency"]
    drain = [r for r in recs if r["phase"] == "sbs_drain"]
    edu_drain = edu_drains(recs)
    write = [r for r in recs if r["phase"] == "sbs_write"]
    rows = comparison_rows(measures(recs), edu_drain)

    lines = []
    a = lines.append
    a("# edu_outbox next to Debezium")
    a("")
    a("Written by `bench/debezium_report.py` from one run of `bash bench/run.sh debezium` "
      "(or `BENCH_PEERS=debezium bash bench/run.sh`). Same PostgreSQL cluster (wal_level=logical), "
      "same Kafka broker, same publisher (`bench/publisher.c`, `-m debezium` for Debezium's outbox) and "
      "same consumer (`bench/kafka_util consume`), 200-byte events, one event per transaction. "
      "Rounds alternate between the systems; each cell is the median over the rounds.")
    a("")
    a("| | |")
    a("|---|---|")
    for k in ("debezium", "kafka", "postgres", "java", "git", "cpus", "loadavg_start"):
        if k in env:
            a("| %s | %s |" % (k, env[k]))
    a("")
    a("## Side by side")
    a("")
    lines += comparison_table(rows)
    a("")
    a("Debezium tuned = poll.interval.ms=10, max.batch.size=4096, producer linger.ms=1, "
      "batch.size=262144, enable.idempotence=true. Debezium defaults = the connector's and "
      "Kafka Connect's defaults (poll.interval.ms=500). Write tps is measured with the tuned "
      "connector streaming (the defaults column repeats it: the write path is the same).")
    a("")
    a("How Debezium's outbox cleanup is counted: every writer deletes its outbox row again in the "
      "same transaction (`DELETE FROM dbz_outbox WHERE id = (SELECT currval(...))`); the INSERT is still in "
      "the WAL that the connector decodes, and the connector skips the DELETE "
      "(`skipped.operations=u,d,t`). The table therefore stays empty, and the DELETE's cost is inside "
      "the measured write tps and latency. edu_outbox's own cleanup (the relay deleting delivered rows) "
      "runs in the relay and is inside the relay's CPU.")
    a("")
    a("## Every round")
    a("")
    a("| system | load | round | p50 ms | p99 ms | max ms | received / published | relay | broker | JVM | walsender (us/event) | load avg |")
    a("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in lat:
        s, c = r["stats"], r["cpu_us_per_event"]
        a("| %s | %s | %s | %s | %s | %s | %s / %s | %s | %s | %s | %s | %s |" % (
            r["system"], r["load"], r["round"], f(s["p50_ms"]), f(s["p99_ms"]), f(s["max_ms"]),
            s["received"], s["published"], f(c["relay"], 0), f(c["broker"], 0), f(c["jvm"], 0),
            f(c["walsender"], 0), r["loadavg"]))
    a("")
    a("| drain | round | events | seconds | events/s | load avg |")
    a("|---|---|---|---|---|---|")
    for r in edu_drain:
        a("| edu_outbox relay | %d | %d | %.2f | %.0f | %s |" % (r["round"] - 100, r["n"], r["seconds"], r["events_per_s"], r["load"]))
    for r in drain:
        a("| Debezium %s | %d | %d | %.2f | %.0f | %s |" % (r["system"], r["round"], r["n"], r["seconds"], r["events_per_s"], r["loadavg"]))
    a("")
    a("| write variant | round | tps | latency ms | load avg |")
    a("|---|---|---|---|---|")
    for r in write:
        a("| %s | %d | %.0f | %.3f | %s |" % (r["variant"], r["round"], r["tps"], r["latency_ms"], r["loadavg"]))
    a("")
    a("write variants: publish = INSERT business row + `outbox_publish()`; dbz = INSERT business row + "
      "INSERT into Debezium's outbox + DELETE of that row; plain = INSERT business row + INSERT into a "
      "plain table with the outbox's columns (no cleanup, nothing reads it).")
    a("")

    # CDF plot of the quiet latency runs, first round of each system
    plots = []
    for sys_, title in (("edu", "edu_outbox"), ("tuned", "Debezium tuned"), ("defaults", "Debezium defaults")):
        for load in ("quiet", "busy"):
            p = os.path.join(data, "cdf_sbs_%s_%s_1.txt" % (sys_, load))
            if os.path.exists(p) and os.path.getsize(p) > 0:
                plots.append("'%s' using 1:2 with lines lw 2 title '%s, %s'" % (p, title, load))
    if plots:
        script = ("set terminal pngcairo size 900,500 noenhanced\nset output '%s'\nset logscale x\n"
                  "set xlabel 'commit -> consume latency, ms (log)'\nset ylabel 'fraction'\n"
                  "set key bottom right\nset grid\nset title 'Latency at 1k/s, 200 B, round 1'\nplot %s\n"
                  % (os.path.join(out, "debezium_latency.png"), ", ".join(plots)))
        r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
        if r.returncode == 0:
            a("![latency CDF](debezium_latency.png)")
            a("")
        else:
            sys.stderr.write("gnuplot failed: %s\n" % r.stderr)
    with open(os.path.join(out, "DEBEZIUM.md"), "w") as fh:
        fh.write("\n".join(lines))
    print("\n".join(lines[:40]))


if __name__ == "__main__":
    main()
