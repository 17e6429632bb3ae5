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
            checker.py --self-test     (no servers needed)
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


def committed_truth(scenario, dbname=None):
    counters = dict(sql("SELECT key, n FROM fault_counters WHERE scenario = %s", (scenario,),
                        dbname=dbname))
    events = {(k, s): (str(tx), oid) for k, s, tx, oid in sql(
        "SELECT key, seq, tx, outbox_id FROM fault_events WHERE scenario = %s", (scenario,),
        dbname=dbname)}
    return counters, events


def check(scenario, topic, brokers=None, extra=(), records=None, truth=None, dbname=None):
    res = Result(scenario)
    counters, events = truth if truth is not None else committed_truth(scenario, dbname)
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


def self_test():
    """The checker must see what it is meant to see: feeds it made-up topics
    against a made-up truth. Returns a list of failures (empty: fine)."""
    counters = {"a": 3, "b": 2}
    events = {("a", 1): ("t1", 11), ("a", 2): ("t2", 12), ("a", 3): ("t3", 13),
              ("b", 1): ("t4", 14), ("b", 2): ("t5", 15)}

    def rec(off, key, seq, tx, oid, part=0, **flags):
        payload = dict(s="self", key=key, seq=seq, tx=tx, **flags)
        return {"partition": part, "offset": off, "key": key, "payload": json.dumps(payload),
                "headers": {"outbox-id": str(oid)}}

    good = [rec(0, "a", 1, "t1", 11), rec(1, "b", 1, "t4", 14), rec(2, "a", 2, "t2", 12),
            rec(3, "a", 3, "t3", 13), rec(4, "b", 2, "t5", 15)]
    cases = [
        ("clean", good, (0, 0, 0, 0)),
        ("lost", good[:2] + good[3:], (1, 0, 0, 0)),
        ("duplicate", good + [rec(5, "a", 2, "t2", 12)], (0, 0, 0, 1)),
        ("redelivery after a gap keeps order", good[:3] + [rec(3, "a", 2, "t2", 12)] + good[3:],
         (0, 0, 0, 1)),
        ("order", [good[0], good[1], good[3], good[2], good[4]], (0, 0, 1, 0)),
        ("rolled-back tx", good + [rec(5, "a", 4, "t9", 19, doomed=True)], (0, 1, 0, 0)),
        ("rolled-back savepoint reusing a committed seq",
         good + [rec(5, "b", 2, "t5", 16, savepoint=True)], (0, 1, 0, 0)),
        ("same key and seq from another tx", good + [rec(5, "a", 3, "tX", 13)], (0, 1, 0, 0)),
        ("wrong outbox-id", good[:4] + [rec(4, "b", 2, "t5", 99)], (1, 1, 0, 0)),
        ("key in two partitions", good[:4] + [rec(0, "b", 2, "t5", 15, part=1)], (0, 0, 1, 0)),
        ("unparsable", good + [{"partition": 0, "offset": 9, "key": "a", "payload": "x",
                                "headers": {}}], (0, 1, 0, 0)),
    ]
    failures = []
    for name, records, want in cases:
        r = check("self", None, records=records, truth=(counters, events))
        got = (len(r.lost), len(r.phantom), len(r.order_violations), r.duplicates)
        if got != want:
            failures.append("%s: lost/phantom/order/duplicates %s, expected %s" % (name, got, want))
    r = check("self", None, records=good, truth=({"a": 4, "b": 2}, events))
    if not r.truth_errors:
        failures.append("a counter ahead of fault_events was not reported")
    return failures


if __name__ == "__main__":
    args = sys.argv[1:]
    if args == ["--self-test"]:
        problems = self_test()
        print("\n".join(problems) or "checker self-test passed")
        sys.exit(1 if problems else 0)
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
