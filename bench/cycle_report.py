#!/usr/bin/python3
"""Writes CYCLE.md from a run of `bash bench/run.sh cycle` (issue 13).

  cycle_report.py DATA_DIR OUT_DIR

Each variant (the baseline relay, this relay with each coalesce window) ran
once per round, interleaved; the table gives every run and the median per
variant. Debezium tuned's numbers come from DEBEZIUM.md's run (the same
machine, the same publisher and consumer), for the goals' ratios.
"""
import json
import os
import shutil
import statistics
import sys

# Debezium tuned at 1k/s, quiet machine (bench/results/DEBEZIUM.md, median of 3 rounds)
DBZ_TUNED_P99_MS = 17.0
DBZ_TUNED_CPU_US = 478  # JVM + walsender + broker, per event
KEEP_ENV = ("date", "nproc", "cpu_model", "librdkafka", "kafka", "git", "git_modified", "loadavg_start",
            "partitions", "lat_seconds", "baseline", "cycle_rate", "cycle_busy", "cycle_windows")


def main():
    data, out = sys.argv[1:3]
    rows = [json.loads(l) for l in open(os.path.join(data, "results.jsonl")) if l.strip()]
    rows = [r for r in rows if r.get("phase") == "cycle"]
    env = open(os.path.join(data, "env.txt")).read() if os.path.exists(os.path.join(data, "env.txt")) else ""
    variants = []
    for r in rows:
        if r["variant"] not in variants:
            variants.append(r["variant"])

    def cpu(r):
        return r["relay_cpu_us_per_event"] + r["broker_cpu_us_per_event"]

    lines = ["# The relay cycle at 1k events/s (issue 13)%s" % (
        ", with a CPU competitor (one pgbench client updating another table)" if "cycle_busy=1" in env else ""), "",
             "Written by `bench/cycle_report.py` from one run of `bash bench/run.sh cycle`: "
             "200-byte events, one per transaction, at 1000 events/s for the time given below per run; "
             "the baseline relay (the .so of the commit below) and this relay with each "
             "`edu_outbox.coalesce_window`, interleaved round by round on one cluster and broker. "
             "CPU is the relay process and the broker process over the publishing time, per published event. "
             "Segments: TCP segments the relay sent to the broker per event (about one per produce request).", "",
             "```", "\n".join(l for l in env.strip().splitlines()
                               if l.split("=")[0] in KEEP_ENV), "```", "",
             "## Median per variant", "",
             "| variant | runs | p50 ms | p99 ms | relay us/event | of which main thread | broker us/event | relay + broker us/event | segments/event | relay_state reads/event | p99 / Debezium tuned (%.1f ms) | CPU / Debezium tuned (%d us) |" % (DBZ_TUNED_P99_MS, DBZ_TUNED_CPU_US),
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for v in variants:
        rs = [r for r in rows if r["variant"] == v]
        med = lambda f: statistics.median(f(r) for r in rs)
        p99 = med(lambda r: r["stats"]["p99_ms"])
        c = med(cpu)
        lines.append("| %s | %d | %.1f | %.1f | %.0f | %.0f | %.0f | %.0f | %.2f | %.2f | %.2f | %.2f |" % (
            v, len(rs), med(lambda r: r["stats"]["p50_ms"]), p99,
            med(lambda r: r["relay_cpu_us_per_event"]), med(lambda r: r.get("relay_main_thread_us_per_event", 0)),
            med(lambda r: r["broker_cpu_us_per_event"]), c,
            med(lambda r: r["relay_segments"] / max(1, r["stats"]["published"])),
            med(lambda r: r.get("relay_state_reads_per_event", 0)),
            p99 / DBZ_TUNED_P99_MS, c / DBZ_TUNED_CPU_US))
    lines += ["", "Goals (issue 13): p99 <= 0.5x Debezium tuned, relay + broker CPU per event <= 0.5x Debezium tuned "
              "(Debezium's from DEBEZIUM.md, a different run: compare the ratios with care).", "",
              "## Every run", "",
              "| round | variant | p50 ms | p99 ms | max ms | received / published | relay us/event | broker us/event | segments | machine busy % | load |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        s = r["stats"]
        lines.append("| %d | %s | %.1f | %.1f | %.1f | %d / %d | %.0f | %.0f | %d | %.0f | %s |" % (
            r["round"], r["variant"], s["p50_ms"], s["p99_ms"], s["max_ms"], s["received"], s["published"],
            r["relay_cpu_us_per_event"], r["broker_cpu_us_per_event"], r["relay_segments"],
            r["machine_busy_pct"], r["load"]))
    os.makedirs(out, exist_ok=True)
    # a run with the CPU competitor gets its own report, next to the quiet one
    name = "cycle_busy" if "cycle_busy=1" in env else "cycle"
    with open(os.path.join(out, name.upper() + ".md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    data_out = os.path.join(out, "data")
    os.makedirs(data_out, exist_ok=True)
    shutil.copy(os.path.join(data, "results.jsonl"), os.path.join(data_out, name + "_results.jsonl"))
    if os.path.exists(os.path.join(data, "env.txt")):
        shutil.copy(os.path.join(data, "env.txt"), os.path.join(data_out, name + "_env.txt"))


if __name__ == "__main__":
    main()
