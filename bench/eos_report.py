#!/usr/bin/python3
"""Writes EXACTLY_ONCE.md from a run of `bash bench/run.sh eos` (issue 12).

  eos_report.py DATA_DIR OUT_DIR

Each round measured both delivery modes back to back (the order alternating
between rounds): the drain of a backlog for each chunk_max_events, then the
latency at a fixed rate. Ratios are exactly_once / at_least_once within a
round; the summary gives the median of the rounds' values and ratios.
"""
import glob
import json
import os
import shutil
import statistics
import sys

ALO, EOS = "at_least_once", "exactly_once"
KEEP_ENV = ("date", "nproc", "cpu_model", "kernel", "os", "librdkafka", "kafka", "kafka_jvm", "git", "git_modified",
            "loadavg_start", "partitions", "backlog_txn_events", "lat_seconds", "lat_warmup", "eos_backlog",
            "eos_rounds", "eos_rate", "eos_chunks", "coalesce_window", "chunk_max_bytes")


def find(data, name):
    """DATA/eos_name when written again from results/data (which also holds other reports'
    env.txt), else DATA/name from a run."""
    for n in (name if name.startswith("eos_") else "eos_" + name, name):
        if os.path.exists(os.path.join(data, n)):
            return os.path.join(data, n)
    return os.path.join(data, name)


def read_env(data):
    env = {}
    path = find(data, "env.txt")
    if os.path.exists(path):
        for line in open(path):
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                env[k] = v
    return env


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def fmt(v, digits=1):
    if v is None:
        return "-"
    if abs(v) >= 1000:
        return "{:,.0f}".format(v)
    return ("%%.%df" % digits) % v


def per_round(rows, key, f):
    """{round: value} of the runs selected by key (a dict of field: value)."""
    out = {}
    for r in rows:
        if all(r.get(k) == v for k, v in key.items()):
            out[r["round"]] = f(r)
    return out


def ratio_line(alo, eos):
    """(median ALO, median EOS, median of per-round ratios, per-round ratios text)."""
    rounds = sorted(set(alo) & set(eos))
    ratios = [eos[r] / alo[r] for r in rounds if alo[r]]
    return (med(alo.values()), med(eos.values()), med(ratios),
            " / ".join("%.2f" % x for x in ratios))


def main():
    data, out = sys.argv[1:3]
    rows = [json.loads(l) for l in open(find(data, "results.jsonl")) if l.strip()]
    drains = [r for r in rows if r.get("phase") == "eos_drain"]
    lats = [r for r in rows if r.get("phase") == "eos_latency"]
    env = read_env(data)
    end = {}
    if os.path.exists(find(data, "end.json")):
        end = json.load(open(find(data, "end.json")))
    chunks = []
    for r in drains:
        if r["chunk_max_events"] not in chunks:
            chunks.append(r["chunk_max_events"])
    nrounds = len(set(r["round"] for r in rows if "round" in r))

    def cpu(r, which):
        return r["%s_cpu_us_per_event" % which]

    summary = []
    for c in chunks:
        for label, f, digits in (("drain, events/s", lambda r: r["events_per_s"], 0),
                                 ("drain, relay CPU us/event", lambda r: cpu(r, "relay"), 2),
                                 ("drain, broker CPU us/event", lambda r: cpu(r, "broker"), 2)):
            a = per_round(drains, {"delivery": ALO, "chunk_max_events": c}, f)
            e = per_round(drains, {"delivery": EOS, "chunk_max_events": c}, f)
            summary.append(("%s (chunk_max_events %d)" % (label, c), digits) + ratio_line(a, e))
    for label, f, digits in (("latency p50, ms", lambda r: r["stats"]["p50_ms"], 1),
                             ("latency p99, ms", lambda r: r["stats"]["p99_ms"], 1),
                             ("latency max, ms", lambda r: r["stats"]["max_ms"], 1),
                             ("1k/s: relay CPU us/event", lambda r: cpu(r, "relay"), 0),
                             ("1k/s: broker CPU us/event", lambda r: cpu(r, "broker"), 0)):
        a = per_round(lats, {"delivery": ALO}, f)
        e = per_round(lats, {"delivery": EOS}, f)
        summary.append((label, digits) + ratio_line(a, e))

    rate = env.get("eos_rate", "1000")
    lines = [
        "# What exactly-once delivery costs (issue 12)", "",
        "Written by `bench/eos_report.py` from one run of `bash bench/run.sh eos` on %s at commit `%s`. "
        "In each of %d rounds the relay ran with `edu_outbox.delivery = at_least_once` and with `exactly_once` "
        "back to back (the order alternates between rounds), on one PostgreSQL cluster and one Kafka broker; "
        "switching is a reload, which rebuilds the producer. Nothing here is asserted." % (
            env.get("date", "?"), env.get("git", "?"), nrounds), "",
        "- **Drain**: %s events of 200 bytes are written with the relay paused (`outbox_pause()`, "
        "%s events per writing transaction), then `outbox_resume()`. The time runs until a read_committed "
        "reader can see every event: `bench/kafka_util.c visible` polls the partitions' last stable offsets "
        "every 10 ms (ListOffsets with `isolation.level=read_committed`), and the drain ends when they reach "
        "their final value (commit markers included). Afterwards a read_committed consumer reads the topic and "
        "counts the records and distinct `outbox-id`s. Once per `edu_outbox.chunk_max_events` in (%s)." % (
            env.get("eos_backlog", "?"), env.get("backlog_txn_events", "?"), env.get("eos_chunks", "?")),
        "- **Latency**: `bench/publisher.c` commits one event per transaction at %s events/s for %s s "
        "(after %s s not counted); the latency is commit to receipt by `kafka_util consume`, a librdkafka "
        "consumer with `isolation.level=read_committed`, matched by `outbox-id`. `chunk_max_events` %s." % (
            rate, env.get("lat_seconds", "?"), env.get("lat_warmup", "?"), (env.get("eos_chunks") or "?").split()[0]),
        "- **CPU**: the relay process (with librdkafka's threads) and the broker's JVM, from `/proc`, over the "
        "drain (resume to drained) or the publishing time, per event.",
        "- **Transactions**: counted from the position topic's offsets (each transaction adds one position "
        "record and one commit marker); 0 in at_least_once mode, which confirms the mode in effect.", "",
        "## Summary", "",
        "Medians over the rounds; the ratio column is the median of the per-round ratios exactly_once / "
        "at_least_once (each round's ratio after it). Below 1 is slower for throughput, above 1 is slower "
        "for latency and CPU.", "",
        "| measure | at_least_once | exactly_once | EOS / ALO | per round |",
        "|---|---:|---:|---:|---|",
    ]
    for label, digits, a, e, ratio, rounds in summary:
        lines.append("| %s | %s | %s | %s | %s |" % (label, fmt(a, digits), fmt(e, digits),
                                                   "-" if ratio is None else "%.2f" % ratio, rounds))

    # what one transaction costs, from the drains: extra time per transaction
    lines += ["", "## Per transaction", "",
              "| chunk_max_events | transactions per drain | events per transaction | drain seconds ALO / EOS "
              "| extra time per transaction, ms |", "|---:|---:|---:|---|---:|"]
    for c in chunks:
        a = per_round(drains, {"delivery": ALO, "chunk_max_events": c}, lambda r: r["seconds"])
        e = per_round(drains, {"delivery": EOS, "chunk_max_events": c}, lambda r: r["seconds"])
        t = per_round(drains, {"delivery": EOS, "chunk_max_events": c}, lambda r: r["transactions"])
        n = med(per_round(drains, {"delivery": EOS, "chunk_max_events": c}, lambda r: r["n"]).values())
        extra = [(e[r] - a[r]) * 1000 / t[r] for r in sorted(set(a) & set(e) & set(t)) if t[r]]
        lines.append("| %d | %s | %s | %s / %s | %s |" % (
            c, fmt(med(t.values()), 0), fmt(n / med(t.values()), 0) if n and med(t.values()) else "-",
            fmt(med(a.values()), 2), fmt(med(e.values()), 2), fmt(med(extra), 2)))
    # the transactions were counted over the whole publishing time, warm-up included
    lt = per_round(lats, {"delivery": EOS}, lambda r: r["transactions"])
    lp = per_round(lats, {"delivery": EOS}, lambda r: r["stats"]["published"] +
                   r["publisher"].get("warmup", 0) * r["publisher"].get("target_rate", 0))
    if lt:
        lines += ["", "At %s events/s, exactly_once ran %s transactions for %s events (warm-up included): %s events "
                  "per transaction (median)." % (rate, fmt(med(lt.values()), 0), fmt(med(lp.values()), 0),
                                                 fmt(med([lp[r] / lt[r] for r in lt if lt[r]]), 1))]

    def first_visible(r):
        """Seconds from resume until the first chunk was visible, from the drain's timeline."""
        path = os.path.join(data, "eos_visible_%s_%d_r%d.txt" % (r["delivery"], r["chunk_max_events"], r["round"]))
        if "t0" not in r or not os.path.exists(path):
            return None
        pts = [tuple(float(x) for x in l.split()) for l in open(path) if l.strip()]
        if not pts:
            return None
        start = pts[0][1]
        for t, v in pts:
            if v > start and t >= r["t0"]:
                return t - r["t0"]
        return None

    lines += ["", "## Every drain", "",
              "| round | delivery | chunk_max_events | events | first visible after s | visible after s | events/s "
              "| SQL drained after s "
              "| transactions | read_committed records / distinct ids | relay us/event | broker us/event "
              "| machine busy % | load |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
    for r in drains:
        v = r.get("visible", {})
        lines.append("| %d | %s | %d | %d | %s | %.2f | %s | %.2f | %d | %s / %s | %.2f | %.2f | %.0f | %s |" % (
            r["round"], r["delivery"], r["chunk_max_events"], r["n"], fmt(first_visible(r), 2), r["seconds"],
            fmt(r["events_per_s"], 0),
            r["seconds_until_sql_drained"], r["transactions"], v.get("records", "?"), v.get("distinct_ids", "?"),
            r["relay_cpu_us_per_event"], r["broker_cpu_us_per_event"], r["machine_busy_pct"], r["load"]))
    lines += ["", "The drained topic also holds the one event sent before the clock started, so a complete "
              "topic has events + 1 records.", "",
              "## Every latency run", "",
              "| round | delivery | p50 ms | p95 ms | p99 ms | max ms | received / published | duplicates "
              "| transactions | relay us/event | broker us/event | machine busy % | load |",
              "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in lats:
        s = r["stats"]
        lines.append("| %d | %s | %.1f | %.1f | %.1f | %.1f | %d / %d | %d | %d | %.0f | %.0f | %.0f | %s |" % (
            r["round"], r["delivery"], s["p50_ms"], s["p95_ms"], s["p99_ms"], s["max_ms"], s["received"],
            s["published"], s["duplicates"], r["transactions"], r["relay_cpu_us_per_event"],
            r["broker_cpu_us_per_event"], r["machine_busy_pct"], r["load"]))

    lines += ["", "## Where the cost comes from", "",
              "In exactly_once mode every chunk is one Kafka transaction, and the relay settles a chunk "
              "before it reads the next one, so the transaction's round trips add to each chunk's time:", "",
              "1. before librdkafka produces to a partition for the first time in a transaction it registers the "
              "partition with the transaction coordinator (AddPartitionsToTxn) and waits for the answer. While the "
              "previous transaction's markers are still being written the coordinator answers "
              "CONCURRENT_TRANSACTIONS, and librdkafka asks again 20 ms later. Brokers from Kafka 3.6 on also check "
              "a partition's first transactional produce with the coordinator "
              "(`transaction.partition.verification.enable`);",
              "2. the events are produced and acknowledged as in at_least_once mode;",
              "3. the position record goes to the position topic: one more registration and produce;",
              "4. `commit_transaction`: EndTxn. The coordinator writes the commit decision to "
              "`__transaction_state`, answers, and then writes a commit marker into every partition the "
              "transaction touched (one offset each, counted in the drains' final offsets). A read_committed "
              "consumer gets the chunk's records only once the marker of their partition is written: the last "
              "stable offset stops at the first open transaction.", "",
              "So the cost is per transaction, not per event, and `edu_outbox.chunk_max_events` / "
              "`chunk_max_bytes` decide how many events share one: a backlog drains in full chunks (the default "
              "10000 events), while at a moderate rate a chunk holds what committed while the previous one was "
              "being settled, and every event waits for about one transaction. The broker also does more work per "
              "transaction (the transaction log, the markers), and the relay's librdkafka threads more requests.", ""]

    steps_path = find(data, "eos_txn_steps.jsonl")
    steps = [json.loads(l) for l in open(steps_path) if l.strip()] if os.path.exists(steps_path) else []
    if steps:
        where = steps[0].get("where", "on the same broker after the rounds")
        lines += ["## One transaction, step by step", "",
                  "`bench/txn_steps.c` (librdkafka %s, idempotent with linger.ms=1 like the relay, no PostgreSQL), %s: per "
                  "round one transaction like a relay chunk, medians of %d rounds in ms. *events*: "
                  "begin_transaction, produce the events (200 B, spread over 3 partitions) and wait for their "
                  "delivery reports; *baseline*: the same with an idempotent producer and no transaction; "
                  "*position + commit*: one record to a 1-partition topic and `commit_transaction`; *markers*: "
                  "from the commit's return until the last stable offsets reach the end offsets (what a "
                  "read_committed consumer waits for). The relay overlaps the markers of one chunk with the "
                  "next chunk; a consumer waits for them. CPU: the tool's process, librdkafka's threads included, "
                  "per round (markers' polling left out)." % (
                      steps[0].get("librdkafka", "?"), where, steps[0].get("transactions", 0)), "",
                  "| events per transaction | baseline | events | position + commit | markers | transaction total "
                  "| total - baseline | CPU ms baseline / transaction |", "|---:|---:|---:|---:|---:|---:|---:|---|"]
        for t in steps:
            lines.append("| %d | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %s |" % (
                t["events_per_transaction"], t["baseline_events_ms"], t["txn_events_ms"],
                t["txn_position_and_commit_ms"], t["txn_markers_visible_ms"], t["txn_total_ms"],
                t["txn_total_ms"] - t["baseline_events_ms"],
                "%.2f / %.2f" % (t["baseline_cpu_ms"], t["txn_cpu_ms"]) if "txn_cpu_ms" in t else "-"))
        lines.append("")

    failures = "?"
    if os.path.exists(find(data, "eos_txn_failures.txt")):
        failures = open(find(data, "eos_txn_failures.txt")).read().strip() or "0"
    pg = open(find(data, "postgres_version.txt")).read().strip() \
        if os.path.exists(find(data, "postgres_version.txt")) else "?"
    lines += ["", "Relay log lines about failed or fenced Kafka transactions during the run: %s." % failures, "",
              "## Environment", "",
              "```", "\n".join("%s=%s" % (k, env[k]) for k in KEEP_ENV if k in env),
              "loadavg_end=%s" % end.get("loadavg_end", "?"),
              "measure_seconds=%s" % end.get("measure_seconds", "?"),
              "postgres=%s" % pg, "```", "",
              "The broker is `scripts/kafka.sh`'s single KRaft node (`transaction.state.log.replication.factor=1`, "
              "`transaction.state.log.min.isr=1`); the relay creates the position topic itself. PostgreSQL settings: "
              "`data/eos_pg_settings.txt`; per-run data: `data/eos_results.jsonl`, latency CDFs "
              "`data/eos_cdf_*.txt`, visibility timelines of the drains `data/eos_visible_*.txt` "
              "(epoch seconds, sum of last stable offsets), the relay's log lines `data/eos_relay_log.txt`. "
              "`python3 bench/eos_report.py bench/results/data bench/results` writes this file again from them."]

    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "EXACTLY_ONCE.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    data_out = os.path.join(out, "data")
    os.makedirs(data_out, exist_ok=True)
    if os.path.realpath(data) == os.path.realpath(data_out):
        return
    shutil.copy(os.path.join(data, "results.jsonl"), os.path.join(data_out, "eos_results.jsonl"))
    for name, target in (("env.txt", "eos_env.txt"), ("pg_settings.txt", "eos_pg_settings.txt"),
                         ("kafka_server.properties", "eos_kafka_server.properties"),
                         ("eos_relay_log.txt", "eos_relay_log.txt"), ("end.json", "eos_end.json"),
                         ("postgres_version.txt", "eos_postgres_version.txt"),
                         ("eos_txn_failures.txt", "eos_txn_failures.txt"),
                         ("eos_txn_steps.jsonl", "eos_txn_steps.jsonl")):
        if os.path.exists(os.path.join(data, name)):
            shutil.copy(os.path.join(data, name), os.path.join(data_out, target))
    for old in glob.glob(os.path.join(data_out, "eos_cdf_*.txt")) + glob.glob(os.path.join(data_out, "eos_visible_*.txt")):
        os.remove(old)
    for path in glob.glob(os.path.join(data, "eos_cdf_*.txt")) + glob.glob(os.path.join(data, "eos_visible_*.txt")):
        shutil.copy(path, data_out)


if __name__ == "__main__":
    main()
