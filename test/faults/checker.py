#!/usr/bin/python3
"""Compares what a topic holds (read with kcat, a real consumer) with what
PostgreSQL committed for one workload scenario.

The committed truth is PostgreSQL's, never the writers' belief:
  fault_counters  per key, n = the committed highest seq;
  fault_events    one row per committed event (key, seq, tx, outbox_id),
                  written in the same transaction as the event itself.
The two must agree (seq 1..n for every key) or the check fails.

A record is
  genuine  if its (key, seq) is committed, its tx and outbox-id are the
           committed ones and it carries no "doomed"/"savepoint" flag;
  phantom  otherwise (from a rolled-back transaction or savepoint, or not
           matching the committed event with that key and seq).
Then
  lost             committed (key, seq) with no genuine record;
  duplicates       genuine records beyond the first per (key, seq);
  order_violations per key, first occurrences (in partition/offset order)
                   whose seq is below one already seen, plus keys whose
                   records are spread over several partitions.

Standalone: checker.py SCENARIO TOPIC [BROKERS] [-X prop=value ...]
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faultlib import consume, sql  # noqa: E402


class Result:
    def __init__(self, scenario):
        self.scenario = scenario
        self.written = 0
        self.records = 0
        self.lost = []
        self.phantom = []
        self.order_violations = []
        self.duplicates = 0
        self.truth_errors = []

    @property
    def ok(self):
        return not (self.lost or self.phantom or self.order_violations or self.truth_errors)

    def summary(self):
        return ("scenario=%s written=%d lost=%d phantom=%d order_violations=%d duplicates=%d"
                % (self.scenario, self.written, len(self.lost), len(self.phantom),
                   len(self.order_violations), self.duplicates))

    def details(self, limit=10):
        out = ["records in topic: %d" % self.records]
        for name, items in (("truth", self.truth_errors), ("lost", self.lost),
                            ("phantom", self.phantom), ("order", self.order_violations)):
            if items:
                out.append("%s (%d): %s%s" % (name, len(items), "; ".join(map(str, items[:limit])),
                                              " ..." if len(items) > limit else ""))
        return out


def committed_truth(scenario):
    counters = dict(sql("SELECT key, n FROM fault_counters WHERE scenario = %s", (scenario,)))
    events = {(k, s): (str(tx), oid) for k, s, tx, oid in sql(
        "SELECT key, seq, tx, outbox_id FROM fault_events WHERE scenario = %s", (scenario,))}
    return counters, events


def check(scenario, topic, brokers=None, extra=(), records=None):
    res = Result(scenario)
    counters, events = committed_truth(scenario)
    res.written = len(events)
    for key, n in sorted(counters.items()):
        have = sorted(s for (k, s) in events if k == key)
        if have != list(range(1, n + 1)):
            res.truth_errors.append("key %s: counter %d but events %s" % (key, n, have[:5]))
    for (k, s) in events:
        if k not in counters:
            res.truth_errors.append("event %s/%d has no counter" % (k, s))

    if records is None:
        records = consume(topic, brokers, extra)
    res.records = len(records)

    seen = set()
    firsts = {}          # key -> [seq of first occurrences, in topic order]
    partitions = {}      # key -> set of partitions
    for r in records:
        where = "p%d@%d" % (r["partition"], r["offset"])
        try:
            p = json.loads(r["payload"])
            key, seq, tx = p["key"], p["seq"], p["tx"]
        except (TypeError, ValueError, KeyError):
            res.phantom.append("%s unparsable %r" % (where, r.get("payload")))
            continue
        flags = [f for f in ("doomed", "savepoint") if p.get(f)]
        truth = events.get((key, seq))
        oid = r["headers"].get("outbox-id")
        if flags or p.get("s") != scenario or truth is None or truth[0] != tx or \
                oid != str(truth[1]) or r.get("key") != key:
            res.phantom.append("%s %s/%s tx=%s outbox-id=%s %s" % (
                where, key, seq, tx[:8], oid, ",".join(flags) or "not committed"))
            continue
        partitions.setdefault(key, set()).add(r["partition"])
        if (key, seq) in seen:
            res.duplicates += 1
            continue
        seen.add((key, seq))
        firsts.setdefault(key, []).append((seq, where))

    res.lost = ["%s/%d" % ks for ks in sorted(set(events) - seen)]
    for key, occ in sorted(firsts.items()):
        top = 0
        for seq, where in occ:
            if seq < top:
                res.order_violations.append("%s: seq %d at %s after seq %d" % (key, seq, where, top))
            top = max(top, seq)
    for key, parts in sorted(partitions.items()):
        if len(parts) > 1:
            res.order_violations.append("%s: spread over partitions %s" % (key, sorted(parts)))
    return res


if __name__ == "__main__":
    args = sys.argv[1:]
    extra = []
    while "-X" in args:
        i = args.index("-X")
        extra.append(args[i + 1])
        del args[i:i + 2]
    if len(args) < 2:
        sys.exit("usage: checker.py SCENARIO TOPIC [BROKERS] [-X prop=value ...]")
    result = check(args[0], args[1], args[2] if len(args) > 2 else None, extra)
    print(result.summary())
    for line in result.details():
        print("# " + line)
    sys.exit(0 if result.ok else 1)
