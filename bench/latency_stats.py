#!/usr/bin/python3
"""Commit-to-consume latency from the publisher's and the consumer's logs.

  latency_stats.py PUBLISHED CONSUMED CDF_OUT [--windows SECONDS]

PUBLISHED: "OUTBOX_ID COMMIT_US" lines (bench/publisher.py).
CONSUMED:  "OUTBOX_ID RECV_US TS_MS" lines (kafka_util consume).
Latency = first receive time - commit time, in milliseconds (both clocks are
this machine's CLOCK_REALTIME). Writes a CDF ("latency_ms fraction") with at
most ~2000 points to CDF_OUT and prints a JSON summary. With --windows,
also prints per-window p50/p99 (for the sustained run) under "windows".
"""
import json
import sys


def pct(sorted_vals, p):
    if not sorted_vals:
        return None
    k = min(len(sorted_vals) - 1, max(0, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def main():
    args = sys.argv[1:]
    window = None
    if "--windows" in args:
        i = args.index("--windows")
        window = float(args[i + 1])
        del args[i:i + 2]
    pub_path, con_path, cdf_path = args
    commit = {}
    with open(pub_path) as f:
        for line in f:
            p = line.split()
            if len(p) >= 2:
                commit[int(p[0])] = int(p[1])
    recv = {}
    dups = 0
    with open(con_path) as f:
        for line in f:
            p = line.split()
            if len(p) < 2:
                continue
            oid = int(p[0])
            if oid in recv:
                dups += 1
                continue
            recv[oid] = int(p[1])
    lat = []
    timeline = []
    for oid, c in commit.items():
        r = recv.get(oid)
        if r is not None:
            ms = (r - c) / 1000.0
            lat.append(ms)
            timeline.append((c, ms))
    lat.sort()
    n = len(lat)
    summary = {
        "published": len(commit), "received": n, "missing": len(commit) - n,
        "duplicates": dups,
        "p50_ms": pct(lat, 50), "p95_ms": pct(lat, 95), "p99_ms": pct(lat, 99),
        "max_ms": lat[-1] if lat else None, "min_ms": lat[0] if lat else None,
        "mean_ms": (sum(lat) / n) if n else None,
    }
    with open(cdf_path, "w") as f:
        step = max(1, n // 2000)
        for i in range(0, n, step):
            f.write("%.3f %.5f\n" % (lat[i], (i + 1) / n))
        if n:
            f.write("%.3f 1.0\n" % lat[-1])
    if window and timeline:
        timeline.sort()
        t0 = timeline[0][0]
        buckets = {}
        for c, ms in timeline:
            buckets.setdefault(int((c - t0) / 1e6 // window), []).append(ms)
        summary["windows"] = []
        for b in sorted(buckets):
            v = sorted(buckets[b])
            summary["windows"].append({"t": b * window, "n": len(v), "p50_ms": pct(v, 50),
                                       "p99_ms": pct(v, 99), "max_ms": v[-1]})
    for k, v in list(summary.items()):
        if isinstance(v, float):
            summary[k] = round(v, 3)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
