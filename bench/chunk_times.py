#!/usr/bin/python3
"""Sums the relay's DEBUG2 chunk lines of one backlog drain (bench/drain.sh chunks).

  ... | chunk_times.py SIZE WALL_SECONDS RELAY_CPU_SECONDS MAIN_THREAD_CPU_SECONDS

stdin: server log lines "edu_outbox relay chunk of N events: read X ms, send and
acknowledgements Y ms, decide and commit Z ms". Prints one line: the sums, the
time outside the chunks (the loop, waits, the end-of-drain poll), and what
reading chunk i+1 while chunk i's acknowledgements arrive could save at most:
the sum over i of min(send_i, read_i+1), if the two never competed for a CPU.
"""
import re
import sys

LINE = re.compile(r"chunk of (\d+) events: read ([\d.]+) ms, send and acknowledgements ([\d.]+) ms, "
                  r"decide and commit ([\d.]+) ms")

size, wall, cpu, main_cpu = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
chunks = [tuple(float(x) for x in m.groups()) for m in map(LINE.search, sys.stdin) if m]
chunks = [c for c in chunks if c[0] > 0]
n = int(sum(c[0] for c in chunks))
read, send, commit = (sum(c[i] for c in chunks) / 1000 for i in (1, 2, 3))
overlap = sum(min(a[2], b[1]) for a, b in zip(chunks, chunks[1:])) / 1000
print("%s B: %d events in %d chunks, %.2f s wall (%.0f events/s), relay CPU %.2f s (main thread %.2f s); "
      "read %.2f s (%.0f%%), send and acknowledgements %.2f s (%.0f%%), decide and commit %.2f s (%.0f%%), "
      "outside the chunks %.2f s; overlapping read with acknowledgements saves at most %.2f s: "
      "%.0f events/s (%.2fx)" % (
          size, n, len(chunks), wall, n / wall, cpu, main_cpu,
          read, 100 * read / wall, send, 100 * send / wall, commit, 100 * commit / wall,
          wall - read - send - commit, overlap, n / (wall - overlap), wall / (wall - overlap)))
