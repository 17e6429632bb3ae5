#!/usr/bin/python3
"""Writes the benchmark report (markdown) and its PNG plots (gnuplot).

  report.py all DATA_DIR OUT_DIR        -> OUT_DIR/REPORT.md + *.png
  report.py sustained DATA_DIR OUT_DIR  -> OUT_DIR/SUSTAINED.md + sustained_table_size.png

DATA_DIR is what bench/run.sh collected (results.jsonl, env.txt, ...). The
small data files behind the plots are copied to OUT_DIR/data/.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys

import debezium_report as dbz

# Issue 13's goals (the row label says which goal), and the first benchmark's
# absolute targets (f95c7f7) that still mean something on their own ("earlier").
TARGETS = {
    "write": 1.15,          # 13.5: tps_plain / tps_publish (relay paused) <=
    "write_dbz": 1.0,       # 13.5: tps_publish (relay paused) / tps_debezium_insert_delete >=
    "capture": 1.3,         # 13.5: tps_without / tps_with (relay paused), 200 B <=
    "capture_2k": 1.6,      # 13.5: the same, 2 KB <=
    "tput_ratio": 0.9,      # 13.4: relay / raw, 200 B >=
    "tput_ratio_2k": 0.8,   # 13.4: the same, 2 KB >=
    "drain_dbz": 4.0,       # 13.4: relay / Debezium tuned, drain events/s >=
    "lat_dbz": 0.5,         # 13.2: p99 edu / p99 Debezium tuned at 1k/s, quiet and busy <=
    "cpu_dbz": 0.5,         # 13.3: CPU/event relay + broker / JVM + walsender + broker <=
    "tput_abs_200": 30000,  # earlier: relay events/s (200 B) >=
    "lat_p50": 5.0,         # earlier: ms at 1000/s, 200 B <=
    "lat_p99": 25.0,
}
EARLIER = "earlier"         # the label of the first benchmark's targets


def load(data):
    rows = []
    with open(os.path.join(data, "results.jsonl")) as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    env = {}
    with open(os.path.join(data, "env.txt")) as f:
        for line in f:
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                env[k] = v
    return rows, env


def read(data, name, default=""):
    p = os.path.join(data, name)
    return open(p).read().strip() if os.path.exists(p) else default


def mean(xs):
    return statistics.mean(xs) if xs else float("nan")


def fmt(x, nd=0):
    if x is None or (isinstance(x, float) and x != x):
        return "n/a"
    if nd == 0:
        return "{:,.0f}".format(x)
    return "{:,.{}f}".format(x, nd)


def size_label(size):
    return "2 KB" if int(size) >= 1024 else "%d B" % int(size)


def met(ok):
    if ok is None:
        return "n/a"
    return "**met**" if ok else "**not met**"


def ratio_target(goal, what, a, b, limit, at_most, nd=0, unit=""):
    """a target row for the ratio a / b, with both values in brackets"""
    r = a / b if a is not None and b else None
    got = "n/a" if r is None else "%s (%s / %s%s)" % (fmt(r, 2), fmt(a, nd), fmt(b, nd), unit)
    ok = None if r is None else (r <= limit if at_most else r >= limit)
    return (goal, what, "%s %g" % ("<=" if at_most else ">=", limit), got, ok)


def targets_table(summary):
    """issue 13's goals in order, then the earlier targets"""
    lines = ["| goal | measure | target | this run | |", "|---|---|---|---|---|"]
    for goal, what, target, got, ok in sorted(summary, key=lambda row: (row[0] == EARLIER, row[0])):
        lines.append("| %s | %s | %s | %s | %s |" % (goal, what, target, got, met(ok)))
    return lines + ["", "Goal 13.N is issue 13's goal N; **%s** rows are the first benchmark's absolute "
                    "targets (commit f95c7f7), kept for reference. Ratios are medians over the rounds "
                    "(the drains: ratio of the means); the values behind each ratio are in brackets." % EARLIER, ""]


def gnuplot(script, cwd):
    r = subprocess.run(["gnuplot"], input=script, text=True, cwd=cwd, capture_output=True)
    if r.returncode != 0:
        sys.stderr.write("gnuplot failed:\n%s\n%s\n" % (script, r.stderr))


TERM = "set terminal pngcairo noenhanced size 1000,560 font 'DejaVu Sans,11'\n"


# ---------------------------------------------------------------- sections
def machine_section(env, data):
    free = read(data, "free.txt")
    lines = ["## Machine", "",
             "| | |", "|---|---|",
             "| CPUs (`nproc`) | %s |" % env.get("nproc"),
             "| CPU model | %s |" % env.get("cpu_model"),
             "| kernel | %s |" % env.get("kernel"),
             "| OS | %s |" % env.get("os"),
             "| PostgreSQL | %s |" % read(data, "postgres_version.txt"),
             "| librdkafka | %s (Debian package) |" % env.get("librdkafka"),
             "| Apache Kafka | %s (single KRaft broker+controller, JVM %s) |" % (env.get("kafka"), env.get("kafka_jvm")),
             "| Java | %s |" % env.get("java"),
             "| gnuplot | %s |" % env.get("gnuplot"),
             "| load average at start | %s |" % env.get("loadavg_start"),
             "| load average at end | %s |" % json.loads(read(data, "end.json", "{}") or "{}").get("loadavg_end", "n/a"),
             "", "`free -h`:", "", "```", free, "```", ""]
    return lines


def settings_section(env, data):
    lines = ["## Settings", "",
             "Everything ran on this one machine: the Kafka broker, PostgreSQL, the relay (a background "
             "worker inside PostgreSQL), the load generators and the consumer share its %s CPUs. "
             "The machine is shared with other work, so absolute numbers are noisy; each comparison "
             "is made side by side within one run and reported as a ratio." % env.get("nproc"), "",
             "PostgreSQL (from `scripts/pg.sh`, plus `shared_buffers`, `max_wal_size`, "
             "`checkpoint_timeout` set by the benchmark; everything else default):", "",
             "| setting | value |", "|---|---|"]
    for line in read(data, "pg_settings.txt").splitlines():
        if "|" in line:
            k, v = line.split("|", 1)
            lines.append("| `%s` | `%s` |" % (k, v))
    lines += ["",
              "Relay producer (librdkafka, `relay/producer.c`), used unchanged by the raw producer "
              "baseline: `enable.idempotence=true` (acks=all), `enable.gapless.guarantee=true`, "
              "`linger.ms=1`, `message.timeout.ms=30000`, `socket.keepalive.enable=true`, "
              "`log.connection.close=false`; everything else librdkafka's defaults (no compression, "
              "default batching).", "",
              "Kafka broker (`scripts/kafka.sh`, port 39092):", "", "```",
              read(data, "kafka_server.properties"), "```", "",
              "Benchmark parameters:", "", "| parameter | value |", "|---|---|"]
    for k in ["pgbench", "rounds", "sizes", "n_200", "n_2k", "tput_rounds", "backlog_txn_events",
              "partitions", "pause_method", "lat_rates", "lat_seconds", "lat_warmup",
              "short_sustained_seconds", "short_sustained_rate", "sustained_seconds",
              "sustained_rate", "sample_seconds"]:
        if k in env:
            lines.append("| %s | `%s` |" % (k, env[k]))
    lines.append("")
    return lines


def cpu_cells(r):
    if r is None or "relay_cpu_us_per_event" not in r:
        return "n/a", "n/a"
    return ("%s + %s" % (fmt(r["relay_cpu_us_per_event"], 0), fmt(r["broker_cpu_us_per_event"], 0)),
            fmt(r["machine_busy_pct"], 0) + " %")


def ratio_rows(rs, a, b, key="tps", build="current"):
    """per-round b/a ratios of key (tps or pg_cpu_us_per_txn), for one build"""
    out = []
    for rnd in sorted({r["round"] for r in rs}):
        g = {r["variant"]: r.get(key) for r in rs
             if r["round"] == rnd and r.get("build", "current") in (build, None)}
        # variants that do not depend on the build (plain, dbz, cap_off) ran with the current one
        g.update({r["variant"]: r.get(key) for r in rs if r["round"] == rnd and
                  r["variant"] in ("plain", "dbz", "cap_off")})
        if g.get(a) and g.get(b):
            out.append(g[b] / g[a])
    return out


def median_cell(xs, nd=3):
    if not xs:
        return "n/a", None
    m = statistics.median(xs)
    return "%s (%s)" % (fmt(m, nd), ", ".join(fmt(x, 2) for x in xs)), m


def runs_table(rs, order, names, with_bytes=False):
    lines = ["| payload | round | build | variant | tps | latency ms | PostgreSQL CPU/txn (us) | "
             "relay + broker CPU/event (us) | machine busy |", "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rs, key=lambda r: (r["size"], r["round"], r.get("build", "current") != "current",
                                       order.index(r["variant"]))):
        cpu, busy = cpu_cells(r)
        lab = size_label(r["size"]) + (" (%s)" % r.get("event_bytes", "?") if with_bytes else "")
        lines.append("| %s | %d | %s | %s | %s | %s | %s | %s | %s |" % (
            lab, r["round"], r.get("build", "current"), names[r["variant"]], fmt(r["tps"]),
            fmt(r["latency_ms"], 2), fmt(r.get("pg_cpu_us_per_txn"), 0), cpu, busy))
    return lines


def write_section(rows, summary):
    w = [r for r in rows if r["phase"] == "write"]
    names = {"publish": "publish", "plain": "plain", "dbz": "Debezium INSERT + DELETE",
             "publish_paused": "publish, relay paused"}
    lines = ["## 1. Write cost: `outbox_publish` vs a plain INSERT vs Debezium's outbox INSERT", "",
             "pgbench (`-M prepared`, see the parameters below), one transaction per event, runs "
             "interleaved per round, a `CHECKPOINT` before each run. Every transaction first inserts "
             "a business row (`INSERT INTO bench_orders ...`), then writes its event:", "",
             "- **publish**: `SELECT outbox_publish('bench-write', :payload::jsonb, 'k' || :k)` while "
             "the relay runs and sends every event to Kafka as it commits (the relay and the broker "
             "share the machine's 2 CPUs with the clients and PostgreSQL);",
             "- **publish, relay paused**: the same while `outbox_pause()` holds the relay: the "
             "SQL-side cost of the write alone (the events are delivered after the run);",
             "- **plain**: `INSERT INTO plain_events (topic, key, payload) VALUES (...)`, an ordinary "
             "table with the outbox's data columns (topic text, key text, payload jsonb, headers "
             "jsonb, created_at timestamptz default clock_timestamp()), no index, nothing reads it;",
             "- **Debezium INSERT + DELETE**: Debezium's outbox write with its cleanup in the same "
             "transaction, as `bench/debezium.sh` measures it: `INSERT INTO dbz_write (aggregatetype, "
             "aggregateid, type, payload) ...; DELETE FROM dbz_write WHERE id = (SELECT "
             "currval(...))` (bigserial primary key). Only the SQL: no connector decodes it here, just "
             "as no relay sends the paused publish, so the two compare the same thing.", "",
             "PostgreSQL CPU/txn is the CPU time of the whole cluster (backends, relay, WAL writer, "
             "...) per transaction: less disturbed by other work on the machine than tps, since it "
             "does not count the time a process waits for a CPU. Relay + broker CPU/event and machine "
             "busy as in the other sections.", ""]
    if any(r.get("build") == "baseline" for r in w):
        lines += ["Rows of build **baseline** ran `%s`'s `edu_outbox.so` in the same rounds "
                  "(the library swapped with a restart)." % ENV[0].get("write_baseline", "?"), ""]
    lines += runs_table(w, ["publish", "plain", "dbz", "publish_paused"], names)
    lines += ["", "Ratios per payload size: the median of the rounds' ratios, each round's in brackets. "
              "A tps ratio above 1 means the second is faster; a CPU ratio compares "
              "PostgreSQL CPU/txn the same way round (cost ratio).", "",
              "| payload | build | plain / publish paused (tps) | same, CPU/txn | publish paused / Debezium (tps) | "
              "same, CPU/txn (Debezium / publish paused) | plain / publish, relay running (tps) | "
              "publish, relay running / Debezium (tps) |", "|---|---|---|---|---|---|---|---|"]
    for size in sorted({r["size"] for r in w}):
        rs = [r for r in w if r["size"] == size]
        for build in ["current", "baseline"]:
            if not any(r.get("build", "current") == build for r in rs):
                continue
            pp, m_pp = median_cell(ratio_rows(rs, "publish_paused", "plain", build=build))
            pc, m_pc = median_cell(ratio_rows(rs, "plain", "publish_paused", "pg_cpu_us_per_txn", build=build))
            pd, m_pd = median_cell(ratio_rows(rs, "dbz", "publish_paused", build=build))
            dc, m_dc = median_cell(ratio_rows(rs, "publish_paused", "dbz", "pg_cpu_us_per_txn", build=build))
            rr, _ = median_cell(ratio_rows(rs, "publish", "plain", build=build))
            rd, _ = median_cell(ratio_rows(rs, "dbz", "publish", build=build))
            lines.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
                size_label(size), build, pp, pc, pd, dc, rr, rd))
            if build == "current" and m_pp is not None:
                summary.append(("13.5", "write cost, %s: tps plain / tps publish (relay paused)" % size_label(size),
                                "<= %.2f" % TARGETS["write"], fmt(m_pp, 3), m_pp <= TARGETS["write"]))
            if build == "current" and m_pd is not None:
                summary.append(("13.5", "write, %s: tps publish (relay paused) / tps Debezium INSERT + DELETE"
                                % size_label(size), ">= %.1f" % TARGETS["write_dbz"], fmt(m_pd, 3),
                                m_pd >= TARGETS["write_dbz"]))
            if build == "current" and m_pc is not None and m_dc is not None:
                summary.append(("13.5", "the same two, %s, by PostgreSQL CPU/txn: publish (paused) / plain; "
                                "Debezium / publish (paused)" % size_label(size),
                                "<= %.2f; >= %.1f" % (TARGETS["write"], TARGETS["write_dbz"]),
                                "%s; %s" % (fmt(m_pc, 3), fmt(m_dc, 3)),
                                m_pc <= TARGETS["write"] and m_dc >= TARGETS["write_dbz"]))
    lines += ["", "The targets (issue 13, goal 5) compare the SQL-side write: publish with the relay "
              "paused against the plain INSERT and against Debezium's INSERT + DELETE, neither "
              "of which has a pipeline reading it here. With the relay running, the relay's and the "
              "broker's CPU per event (see the runs) compete with the writers for the 2 CPUs; that "
              "cost is the pipeline's (issue 13, goal 3), and Debezium's connector and walsender "
              "have theirs (bench/results/DEBEZIUM.md).", ""]
    return lines


def capture_section(rows, summary):
    c = [r for r in rows if r["phase"] == "capture"]
    names = {"cap_on": "with trigger", "cap_off": "without", "cap_on_paused": "with trigger, relay paused"}
    lines = ["## 2. Capture trigger cost", "",
             "pgbench, one single-row `INSERT INTO cap_on|cap_off (customer, amount, note) VALUES "
             "(...)` per transaction (autocommit). `cap_on` has the trigger from "
             "`outbox_capture_table('cap_on', 'bench-capture')`; `cap_off` is the same table "
             "without it. `note` is sized so that the captured event's payload (the row as JSON with "
             "op, table and schema; its bytes in brackets) has about the payload size. Runs "
             "interleaved per round: with the trigger and the relay running, without the trigger, "
             "and with the trigger and the relay paused.", ""]
    if any(r.get("build") == "baseline" for r in c):
        lines += ["Rows of build **baseline** ran `%s`'s `edu_outbox.so` in the same rounds."
                  % ENV[0].get("write_baseline", "?"), ""]
    lines += runs_table(c, ["cap_on", "cap_off", "cap_on_paused"], names, with_bytes=True)
    lines += ["", "| payload | build | without / with, relay paused (tps) | same, CPU/txn | "
              "without / with, relay running (tps) | same, CPU/txn |", "|---|---|---|---|---|---|"]
    for size in sorted({r["size"] for r in c}):
        rs = [r for r in c if r["size"] == size]
        target = TARGETS["capture"] if size <= 1024 else TARGETS["capture_2k"]
        for build in ["current", "baseline"]:
            if not any(r.get("build", "current") == build for r in rs):
                continue
            pp, m_pp = median_cell(ratio_rows(rs, "cap_on_paused", "cap_off", build=build))
            pc, m_pc = median_cell(ratio_rows(rs, "cap_off", "cap_on_paused", "pg_cpu_us_per_txn", build=build))
            rr, _ = median_cell(ratio_rows(rs, "cap_on", "cap_off", build=build))
            rc, _ = median_cell(ratio_rows(rs, "cap_off", "cap_on", "pg_cpu_us_per_txn", build=build))
            lines.append("| %s | %s | %s | %s | %s | %s |" % (size_label(size), build, pp, pc, rr, rc))
            if build == "current" and m_pp is not None:
                summary.append(("13.5", "capture trigger cost, %s: tps without / tps with (relay paused)"
                                % size_label(size), "<= %.1f" % target, fmt(m_pp, 3), m_pp <= target))
            if build == "current" and m_pc is not None:
                summary.append(("13.5", "the same, %s, by PostgreSQL CPU/txn: with (paused) / without"
                                % size_label(size), "<= %.1f" % target, fmt(m_pc, 3), m_pc <= target))
    lines += ["", "The target compares the trigger's own cost (relay paused); with the relay running, "
              "its and the broker's CPU per event come on top (see the runs).", ""]
    return lines


def tput_section(rows, summary, out, data_out):
    # rounds >= 100 are the side-by-side drains of bench/debezium.sh (section 6)
    t = [r for r in rows if r["phase"] == "tput" and r["round"] < 100]
    lines = ["## 3. Relay throughput vs a raw librdkafka producer", "",
             "A backlog of N events (transactions of %s events each, keys `k0`..`k999`, the same "
             "payload bytes as below) is written while the relay is paused, the outbox is vacuumed "
             "and checkpointed, then the relay is resumed and timed until the topic's end offsets "
             "add up to N (a fresh topic per run, %s partitions). The baseline, "
             "`bench/raw_producer.c`, sends the same N records (same key space, value size, an "
             "`outbox-id` header, CreateTime timestamps) from memory with the relay's librdkafka "
             "settings, timed from the first produce call to the last delivery report. "
             "**raw, chunked** is the same producer sending `edu_outbox.chunk_max_events` records and "
             "waiting for all their reports before the next chunk, as the relay does. "
             "CPU seconds are user+system of the relay process (all its threads) during the drain." %
             (BACKLOG_TXN[0], PARTITIONS[0]), ""]
    lines += ["| payload | N | round | relay events/s | raw events/s | raw, chunked events/s | relay/raw | relay CPU s (us/event) | broker CPU s relay / raw |",
              "|---|---|---|---|---|---|---|---|---|"]
    bars = []
    for size in sorted({r["size"] for r in t}):
        rs = [r for r in t if r["size"] == size]
        rel_all, raw_all, rch_all = [], [], []
        for rnd in sorted({r["round"] for r in rs}):
            rel = next((r for r in rs if r["round"] == rnd and r["kind"] == "relay"), None)
            raw = next((r for r in rs if r["round"] == rnd and r["kind"] == "raw"), None)
            rch = next((r for r in rs if r["round"] == rnd and r["kind"] == "raw_chunked"), None)
            re = rel["events_per_s"] if rel else None
            ra = raw["raw"]["events_per_s"] if raw else None
            rc = rch["raw"]["events_per_s"] if rch else None
            if re: rel_all.append(re)
            if ra: raw_all.append(ra)
            if rc: rch_all.append(rc)
            lines.append("| %s | %s | %d | %s | %s | %s | %s | %s (%s) | %s / %s |" % (
                size_label(size), fmt(rel["n"]) if rel else "?", rnd, fmt(re), fmt(ra), fmt(rc),
                fmt(re / ra, 3) if re and ra else "n/a",
                fmt(rel["relay_cpu_s"], 2) if rel else "n/a",
                fmt(rel["relay_cpu_s"] / rel["n"] * 1e6, 1) if rel else "n/a",
                fmt(rel["broker_cpu_s"], 1) if rel else "n/a", fmt(raw["broker_cpu_s"], 1) if raw else "n/a"))
            if rel and rel.get("leaked_before_resume"):
                lines.append("| | | | (%d events left while paused: the pause did not hold) | | | | | |" %
                             rel["leaked_before_resume"])
        mr, ma, mc = mean(rel_all), mean(raw_all), mean(rch_all)
        ratio = mr / ma     # relay and raw rounds alternate; few long runs: ratio of means
        lines.append("| %s | | **mean** | **%s** | **%s** | **%s** | **%s** | | |" % (
            size_label(size), fmt(mr), fmt(ma), fmt(mc), fmt(ratio, 3)))
        bars.append((size_label(size), mr, ma, mc))
        target = TARGETS["tput_ratio"] if int(size) < 1024 else TARGETS["tput_ratio_2k"]
        summary.append(ratio_target("13.4", "drain, %s: relay / raw producer (events/s)" % size_label(size),
                                    mr, ma, target, False))
        if int(size) < 1024:
            summary.append((EARLIER, "drain, %s: relay events/s" % size_label(size),
                            ">= {:,}".format(TARGETS["tput_abs_200"]), fmt(mr), mr >= TARGETS["tput_abs_200"]))
    if t:
        rel0 = next(r for r in t if r["kind"] == "relay")
        lines += ["", "Backlog written at about %s events/s (bulk `outbox_publish` in %s-event "
                  "transactions); the relay was paused with `%s`." % (
                      fmt(mean([r["backlog_build_events_per_s"] for r in t if r["kind"] == "relay"])),
                      BACKLOG_TXN[0], "outbox_pause()" if rel0.get("pause_method") == "sql" else "SIGSTOP"),
                  "", "![relay vs raw producer](throughput.png)", ""]
        with open(os.path.join(data_out, "throughput.dat"), "w") as f:
            f.write("# size relay raw raw_chunked\n")
            for lab, mr, ma, mc in bars:
                f.write('"%s" %.1f %.1f %.1f\n' % (lab, mr, ma, mc))
        gnuplot(TERM + """set output 'throughput.png'
set title 'Relay throughput vs raw librdkafka producer (same settings, same records)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set ylabel 'events/s'
set format y '%.0s%c'
set yrange [0:*]
set grid ytics
set key top right
plot 'data/throughput.dat' using 2:xtic(1) title 'edu_outbox relay', \
     '' using 3 title 'raw producer (streaming)', \
     '' using 4 title 'raw producer, chunked like the relay'
""", out)
    return lines


def latency_section(rows, summary, out, data_out):
    lat = [r for r in rows if r["phase"] == "latency"]
    lines = ["## 4. End-to-end latency", "",
             "A C publisher (`bench/publisher.c`, libpq) sends one event per transaction "
             "(`BEGIN; INSERT INTO bench_orders ...; SELECT outbox_publish(...); COMMIT` in one round "
             "trip) at a fixed rate from several connections (open-loop schedule), and logs the "
             "client's wall clock right after COMMIT returns. A consumer started before publishing "
             "(`bench/kafka_util.c consume`, librdkafka, partitions assigned from the start of a "
             "fresh topic) logs when each record arrives; records are matched by their `outbox-id` "
             "header. Latency = arrival - commit. The first %s s of each run are a warm-up and not "
             "counted. Both clocks are this machine's; a slightly negative minimum means the "
             "publisher process was scheduled after the consumer had the record already." %
             (lat[0]["publisher"].get("warmup", "?") if lat else "?"), "",
             "| payload | target rate/s | achieved rate/s | events | p50 ms | p95 ms | p99 ms | max ms | min ms | lost | relay + broker CPU/event (us) | machine busy |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    plots = []
    for r in sorted(lat, key=lambda r: (r["size"], r["rate"])):
        s, p = r["stats"], r["publisher"]
        cpu, busy = cpu_cells(r)
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %d | %s | %s |" % (
            size_label(r["size"]), fmt(r["rate"]), fmt(p["achieved_rate"]), fmt(s["received"]),
            fmt(s["p50_ms"], 2), fmt(s["p95_ms"], 2), fmt(s["p99_ms"], 2), fmt(s["max_ms"], 1),
            fmt(s["min_ms"], 1), s["missing"], cpu, busy))
        plots.append((r["size"], r["rate"]))
        if int(r["rate"]) == 1000 and int(r["size"]) < 1024:
            lab = size_label(r["size"])
            summary.append((EARLIER, "latency at 1000/s, %s: p50" % lab, "<= %g ms" % TARGETS["lat_p50"],
                            fmt(s["p50_ms"], 2) + " ms", s["p50_ms"] <= TARGETS["lat_p50"]))
            summary.append((EARLIER, "latency at 1000/s, %s: p99" % lab, "<= %g ms" % TARGETS["lat_p99"],
                            fmt(s["p99_ms"], 2) + " ms", s["p99_ms"] <= TARGETS["lat_p99"]))
    lines += ["", "The first benchmark's absolute targets (p50 <= 5 ms, p99 <= 25 ms at 1k/s) apply "
              "to 200-byte events. Issue 13's latency goal compares edu_outbox with Debezium "
              "(section 6). When the achieved rate is below the target rate, the "
              "publishing side (PostgreSQL commits on 2 shared CPUs) could not go faster.", "",
              "![latency distribution](latency_cdf.png)", ""]
    nt = [r for r in rows if r["phase"] == "newtopic"]
    if nt:
        lines += ["### 4b. The first event to a new topic", "",
                  "One event published to a topic (created beforehand) that the relay's producer has "
                  "not sent to yet, measured the same way, three times: %s ms. Every later event of "
                  "the runs above was to a topic the producer already knew (the warm-up)." %
                  ", ".join(fmt(r["stats"]["max_ms"], 1) for r in nt), ""]
    if plots:
        for size, rate in plots:
            src = os.path.join(DATA[0], "cdf_%s_%s.txt" % (size, rate))
            if os.path.exists(src):
                shutil.copy(src, data_out)
        sizes = sorted({s for s, _ in plots})
        script = TERM.replace("1000,560", "1100,520") + "set output 'latency_cdf.png'\n"
        script += "set multiplot layout 1,%d title 'Commit-to-consumer latency (CDF)'\n" % len(sizes)
        script += "set logscale x\nset xlabel 'latency (ms, log scale)'\nset ylabel 'fraction of events'\n"
        script += "set yrange [0:1]\nset grid\nset key bottom right\nset xrange [0.5:*]\n"
        for size in sizes:
            script += "set title '%s events'\n" % size_label(size)
            parts = ["'data/cdf_%s_%s.txt' using ($1 < 0.5 ? 0.5 : $1):2 with lines lw 2 title '%s/s'" % (size, rate, rate)
                     for s, rate in plots if s == size]
            script += "plot " + ", ".join(parts) + "\n"
        script += "unset multiplot\n"
        gnuplot(script, out)
    return lines


def sustained_plot(tsv, png, title, out):
    gnuplot(TERM + """set output '%s'
set title '%s'
set xlabel 'time (s)'
set ylabel 'outbox size (MB, partitions p0..p3 with indexes and TOAST)'
set y2label 'events'
set y2tics
set ytics nomirror
set yrange [0:*]
set y2range [0:*]
set grid
set key outside bottom center horizontal
plot '%s' using 1:($2/1048576) with linespoints lw 2 title 'outbox size (MB)', \\
     '' using 1:6 axes x1y2 with linespoints title 'pending (not yet acknowledged)', \\
     '' using 1:5 axes x1y2 with lines dt 2 title 'rows in outbox', \\
     '' using 1:3 axes x1y2 with lines dt 3 lw 2 title 'n_dead_tup'
""" % (png, title, tsv), out)


def latency_windows_plot(windows, name, png, title, out, data_out):
    """Commit-to-consumer latency per sampling window over the run (p50, p99, max)."""
    tsv = os.path.join(data_out, name + "_latency_windows.tsv")
    with open(tsv, "w") as f:
        f.write("t_s\tevents\tp50_ms\tp99_ms\tmax_ms\n")
        for w in windows:
            f.write("%s\t%d\t%.3f\t%.3f\t%.3f\n" % (w["t"], w["n"], w["p50_ms"], w["p99_ms"], w["max_ms"]))
    gnuplot(TERM + """set output '%s'
set title '%s'
set xlabel 'time (s)'
set ylabel 'latency (ms, log scale)'
set logscale y
set grid
set key outside bottom center horizontal
plot 'data/%s' using 1:($3 < 0.1 ? 0.1 : $3) skip 1 with lines lw 2 title 'p50', \\
     '' using 1:($4 < 0.1 ? 0.1 : $4) skip 1 with lines lw 2 title 'p99', \\
     '' using 1:($5 < 0.1 ? 0.1 : $5) skip 1 with lines dt 2 title 'max'
""" % (png, title, os.path.basename(tsv)), out)


def sustained_section(rows, name, out, data_out, heading):
    r = next((x for x in rows if x["phase"] == name), None)
    if r is None:
        return []
    tsv = os.path.join(DATA[0], name + ".tsv")
    shutil.copy(tsv, data_out)
    samples = []
    with open(tsv) as f:
        next(f)
        for line in f:
            p = line.split()
            if len(p) >= 6 and p[1] != "":
                samples.append([float(x) for x in p])
    png = "table_size_short.png" if name == "short_sustained" else "sustained_table_size.png"
    sustained_plot("data/%s.tsv" % name, png,
                   "Outbox size over time at %s events/s (200 B)" % fmt(r["rate"]), out)
    s, p = r["stats"], r["publisher"]
    mb = [x[1] / 1048576 for x in samples]
    lines = [heading, "",
             "The latency publisher (`bench/publisher.c`, one event per transaction) sends 200-byte "
             "events at a steady %s events/s for %s s (%s connections), starting from an empty "
             "outbox, while a sampler records, every %s s, the summed "
             "`pg_total_relation_size` of `edu_outbox.outbox_p0..p3`, their `n_dead_tup` and "
             "`n_live_tup`, the number of rows and the number of pending (not yet acknowledged) "
             "events; the latency consumer (`bench/kafka_util.c consume`) measures commit-to-consumer "
             "latency throughout." % (
                 fmt(r["rate"]), fmt(r["seconds"]), p.get("procs"), ENV[0].get("sample_seconds")), "",
             "| | |", "|---|---|",
             "| achieved rate | %s events/s (%s events) |" % (fmt(p["achieved_rate"]), fmt(p["sent"])),
             "| outbox size: min / max / last sample | %s / %s / %s MB |" % (
                 fmt(min(mb), 1) if mb else "n/a", fmt(max(mb), 1) if mb else "n/a", fmt(mb[-1], 1) if mb else "n/a"),
             "| n_dead_tup: max | %s |" % (fmt(max(x[2] for x in samples)) if samples else "n/a"),
             "| rows in outbox: max | %s |" % (fmt(max(x[4] for x in samples)) if samples else "n/a"),
             "| pending events: max | %s |" % (fmt(max(x[5] for x in samples)) if samples else "n/a"),
             "| latency p50 / p95 / p99 / max | %s / %s / %s / %s ms |" % (
                 fmt(s["p50_ms"], 2), fmt(s["p95_ms"], 2), fmt(s["p99_ms"], 2), fmt(s["max_ms"], 1)),
             "| events lost | %d |" % s["missing"],
             "| relay + broker CPU/event, machine busy | %s us, %s |" % cpu_cells(r),
             "", "![outbox size over time](%s)" % png, ""]
    if s.get("windows"):
        lat_png = png.replace("table_size", "latency")
        latency_windows_plot(s["windows"], name, lat_png,
                             "Latency per %s-s window at %s events/s (200 B)" % (
                                 ENV[0].get("sample_seconds"), fmt(r["rate"])), out, data_out)
        lines += ["![latency per window](%s)" % lat_png, ""]
        worst = max(s["windows"], key=lambda w: w["p99_ms"])
        lines += ["Worst %s-s window: p99 %s ms, max %s ms (at t=%s s)." % (
            ENV[0].get("sample_seconds"), fmt(worst["p99_ms"], 1), fmt(worst["max_ms"], 1), fmt(worst["t"])), ""]
    lines += ["Samples (relay CPU = the relay process's CPU time over the preceding interval, "
              "in % of one CPU):", "", "```",
              "    t s  size MB dead_tup live_tup     rows  pending  relay CPU %"]
    for x in samples:
        lines.append("%7.1f %8.1f %8d %8d %8d %8d %12s" % (x[0], x[1] / 1048576, x[2], x[3], x[4], x[5],
                                                         "%.1f" % x[6] if len(x) > 6 else "n/a"))
    lines += ["```", ""]
    return lines


def durability_report(rows, env, out, data_out):
    """DURABILITY.md: what the WAL flush before sending and wait_for_standbys cost."""
    runs = [r for r in rows if r.get("phase") == "durability"]
    groups = {}
    for r in runs:
        groups.setdefault(r["variant"].rsplit("_r", 1)[0], []).append(r)
    labels = [
        ("baseline_sync", "baseline relay (no flush), writers synchronous_commit = on"),
        ("flush_sync", "flush before sending, writers synchronous_commit = on"),
        ("standby_wait_sync", "flush + wait_for_standbys = on (local async standby), writers on"),
        ("baseline_async", "baseline relay (no flush), writers synchronous_commit = off"),
        ("flush_async", "flush before sending, writers synchronous_commit = off"),
        ("standby_wait_async", "flush + wait_for_standbys = on (local async standby), writers off"),
    ]
    lines = ["# edu_outbox: the cost of durable-before-sent", "",
             "Generated by `bash bench/run.sh durability` on %s at commit `%s`; baseline `%s`. "
             "Commit-to-consumer latency (ms) of 200-byte events published at %s events/s, one per "
             "transaction, %s s per run, rounds interleaved. Nothing here is asserted." % (
                 env.get("date"), env.get("git"), env.get("baseline", "?"),
                 env.get("durability_rate", "?"), env.get("lat_seconds", "?")), "",
             "| variant | rounds | p50 | p99 | max | load (1 min) | received/published |",
             "|---|---|---|---|---|---|---|"]
    for key, label in labels:
        g = groups.get(key, [])
        if not g:
            continue
        st = [r["stats"] for r in g]
        lines.append("| %s | %d | %s | %s | %s | %s | %d/%d |" % (
            label, len(g), " / ".join(fmt(x["p50_ms"], 2) for x in st),
            " / ".join(fmt(x["p99_ms"], 2) for x in st), " / ".join(fmt(x["max_ms"], 1) for x in st),
            " / ".join(str(r.get("load", "?")) for r in g),
            sum(x["received"] for x in st), sum(x["published"] for x in st)))
    lines += ["", "Per-round values are separated by `/`; the load column is the machine's "
              "1-minute load average after each run (2 CPUs). The first round also warms up "
              "the broker and the relay's producer after each restart, so compare rounds of "
              "the same number. With synchronous_commit = on the commit "
              "has flushed its own WAL before it becomes visible, so the relay's flush finds "
              "nothing to do; with off it is one WAL flush per batch.", ""]
    for name in ["results.jsonl", "env.txt", "pg_settings.txt"]:
        if os.path.exists(os.path.join(DATA[0], name)):
            shutil.copy(os.path.join(DATA[0], name), os.path.join(data_out, "durability_" + name))
    with open(os.path.join(out, "DURABILITY.md"), "w") as f:
        f.write("\n".join(lines + machine_section(env, DATA[0])) + "\n")


def debezium_section(rows, summary, data_out):
    """6. the side-by-side comparison (bench/debezium.sh), and issue 13's goals 2, 3, 4 against Debezium tuned"""
    if not any(r["phase"].startswith("sbs_") for r in rows):
        summary.append(("13.2-4", "the goals against Debezium", "BENCH_PEERS=debezium", "not run", None))
        return []
    m = dbz.measures(rows)
    for load, label in (("quiet", "quiet"), ("busy", "with 1 pgbench client on another table")):
        summary.append(ratio_target("13.2", "latency at 1k/s, 200 B, %s: p99 edu_outbox / p99 Debezium tuned" % label,
                                    m["p99"][("edu", load)], m["p99"][("tuned", load)],
                                    TARGETS["lat_dbz"], True, 1, " ms"))
    summary.append(ratio_target("13.3", "CPU/event at 1k/s, 200 B: relay + broker / Debezium tuned's JVM + "
                                "walsender + broker", m["cpu_broker"]["edu"], m["cpu_broker"]["tuned"],
                                TARGETS["cpu_dbz"], True, 0, " us"))
    drains = dbz.edu_drains(rows)
    summary.append(ratio_target("13.4", "drain of a %s-event backlog, 200 B: relay / Debezium tuned (events/s)"
                                % fmt(drains[0]["n"] if drains else None), m["drain"]["edu"], m["drain"]["tuned"],
                                TARGETS["drain_dbz"], False))
    for name in os.listdir(DATA[0]):
        if name.startswith("cdf_sbs_"):
            shutil.copy(os.path.join(DATA[0], name), data_out)
    return (["## 6. Side by side with Debezium", "",
             "`bench/debezium.sh`: %s, `pgoutput`, on the same cluster and broker, measured with the "
             "same publisher and consumer, rounds alternating between the systems; medians over the "
             "rounds. Its outbox cleanup (a DELETE of the row in the writing transaction) is in its "
             "write cost. Every round, the profiles and the CDF plot: `DEBEZIUM.md`." %
             ENV[0].get("debezium", "Debezium"), ""]
            + dbz.comparison_table(dbz.comparison_rows(m, drains)) + [""])


def sustained_target(data_out):
    """13.6: the committed 30-minute run (bench/run.sh sustained, SUSTAINED.md), not re-run here:
    nothing lost, and the outbox no bigger in its second half than in its first (bounded)"""
    what = "the committed 30-minute sustained run (`SUSTAINED.md`, not re-run here): events lost; outbox MB, max of 1st / 2nd half"
    path = os.path.join(data_out, "sustained_results.jsonl")
    if not os.path.exists(path):
        return ("13.6", what, "0 lost, 2nd <= 1.5x 1st", "no committed run", False)
    r = json.loads(open(path).readline())
    with open(os.path.join(data_out, "sustained.tsv")) as f:
        mb = [float(line.split()[1]) / 1048576 for line in list(f)[1:] if len(line.split()) > 1]
    first, second = max(mb[:len(mb) // 2]), max(mb[len(mb) // 2:])
    got = "%d lost of %s in %s s; %s / %s MB" % (r["stats"]["missing"], fmt(r["stats"]["published"]),
                                                 fmt(r["seconds"]), fmt(first, 1), fmt(second, 1))
    ok = r["seconds"] >= 1800 and r["stats"]["missing"] == 0 and second <= 1.5 * first
    return ("13.6", what, "0 lost, 2nd <= 1.5x 1st", got, ok)


DATA = [None]
ENV = [None]
BACKLOG_TXN = ["?"]
COPIED = ("results.jsonl", "env.txt", "pg_settings.txt", "kafka_server.properties", "free.txt")
PARTITIONS = ["?"]


def main():
    mode, data, out = sys.argv[1:4]
    DATA[0] = data
    rows, env = load(data)
    ENV[0] = env
    BACKLOG_TXN[0] = env.get("backlog_txn_events", "?")
    PARTITIONS[0] = env.get("partitions", "?")
    os.makedirs(out, exist_ok=True)
    data_out = os.path.join(out, "data")
    os.makedirs(data_out, exist_ok=True)
    if mode == "durability":
        durability_report(rows, env, out, data_out)
        return
    # drop what an earlier run of the same mode left (the other modes' files stay)
    prefix = {"all": "", "sustained": "sustained_", "write": "write_"}[mode]
    own = {"all": COPIED + ("cdf_", "throughput", "short_sustained"), "sustained": ("sustained",),
           "write": ("write_",)}[mode]
    for name in os.listdir(data_out):
        if name.startswith(own):
            os.unlink(os.path.join(data_out, name))
    stale = {"sustained": ["SUSTAINED.md", "sustained_table_size.png", "sustained_latency.png"],
             "write": ["WRITE.md"]}.get(
        mode, ["REPORT.md", "throughput.png", "latency_cdf.png", "table_size_short.png", "latency_short.png"])
    for name in stale:
        if os.path.exists(os.path.join(out, name)):
            os.unlink(os.path.join(out, name))
    for name in COPIED:
        if os.path.exists(os.path.join(data, name)):
            shutil.copy(os.path.join(data, name), os.path.join(data_out, prefix + name))
    end = json.loads(read(data, "end.json", "{}") or "{}")

    if mode == "sustained":
        body = sustained_section(rows, "sustained", out, data_out, "## Sustained load")
        doc = ["# edu_outbox sustained-load benchmark", "",
               "Generated by `bash bench/run.sh sustained` on %s at commit `%s`%s." % (
                   env.get("date"), env.get("git"),
                   " (plus %s locally modified files)" % env["git_modified"] if env.get("git_modified", "0") != "0" else ""),
               ""] + body + machine_section(env, data) + settings_section(env, data)
        with open(os.path.join(out, "SUSTAINED.md"), "w") as f:
            f.write("\n".join(doc) + "\n")
        return

    summary = []
    body = []
    body += write_section(rows, summary)
    body += capture_section(rows, summary)
    if mode == "write":
        head = ["# edu_outbox write-path benchmark", "",
                "Generated by `bash bench/run.sh write` on %s at commit `%s`%s; measuring took %s min. "
                "Issue 13, goal 5: what `outbox_publish()` and the capture trigger cost the writing "
                "transaction. No pass/fail assertions; all comparisons side by side in this one run "
                "on a small shared machine, so read the ratios and their spread." % (
                    env.get("date"), env.get("git"),
                    " (plus %s locally modified files)" % env["git_modified"] if env.get("git_modified", "0") != "0" else "",
                    fmt(end.get("measure_seconds", 0) / 60.0, 1)), "",
                "## Targets", ""] + targets_table(summary)
        doc = head + body + machine_section(env, data) + settings_section(env, data)
        with open(os.path.join(out, "WRITE.md"), "w") as f:
            f.write("\n".join(doc) + "\n")
        return
    body += tput_section(rows, summary, out, data_out)
    body += latency_section(rows, summary, out, data_out)
    body += sustained_section(rows, "short_sustained", out, data_out,
                              "## 5. Sustained load (short run)")
    body += ["For the long run (30 minutes by default) use `bash bench/run.sh sustained`; "
             "it writes `SUSTAINED.md`.", ""]
    body += debezium_section(rows, summary, data_out)
    summary.append(sustained_target(data_out))

    head = ["# edu_outbox benchmark report", "",
            "Generated by `bash bench/run.sh`%s on %s at commit `%s`%s; measuring took %s min. "
            "There are no pass/fail assertions: the table says whether this run met each target. "
            "All comparisons are side by side in this one run, on a small shared machine, so read "
            "the ratios rather than the absolute numbers." % (
                " with BENCH_QUICK=1 (smoke check, small N and short runs)" if env.get("quick") == "1" else "",
                env.get("date"), env.get("git"),
                " (plus %s locally modified files)" % env["git_modified"] if env.get("git_modified", "0") != "0" else "",
                fmt(end.get("measure_seconds", 0) / 60.0, 1)), "",
            "## Targets", ""] + targets_table(summary)
    doc = head + body + machine_section(env, data) + settings_section(env, data)
    with open(os.path.join(out, "REPORT.md"), "w") as f:
        f.write("\n".join(doc) + "\n")


if __name__ == "__main__":
    main()
