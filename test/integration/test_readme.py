#!/usr/bin/env python3
"""Runs the ```sql blocks of README.md, in order, in a fresh database of the
test cluster, so the README's examples stay true. One TAP line per block.

An HTML comment on the line(s) right before a block steers it:
  <!-- readme-test setup: SQL -->     run SQL before the block
  <!-- readme-test cleanup: SQL -->   run SQL after the block (also when it failed)
  <!-- readme-test skip: reason -->   do not run the block (illustrative, needs a relay ...)
README_PATH overrides which file is read (to check an older README).
"""
import os
import re
import sys

import psycopg2

sys.path.insert(0, os.path.dirname(__file__))
from harness import ROOT, connect, run, sql  # noqa: E402

README = os.environ.get("README_PATH", os.path.join(ROOT, "README.md"))
DB = "readme_test"
DIRECTIVE = re.compile(r"^\s*<!--\s*readme-test\s+(setup|cleanup|skip):\s*(.*?)\s*-->\s*$")


def sql_blocks(path):
    """(line number, sql, {directive: [text]}) for each ```sql block."""
    with open(path) as f:
        lines = f.read().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = re.match(r"^(\s*)```sql\s*$", lines[i])
        if not m:
            i += 1
            continue
        directives, j = {}, i - 1
        while j >= 0 and DIRECTIVE.match(lines[j]):
            kind, text = DIRECTIVE.match(lines[j]).groups()
            directives.setdefault(kind, []).insert(0, text)
            j -= 1
        start, body, i = i + 1, [], i + 1
        while i < len(lines) and not re.match(r"^\s*```\s*$", lines[i]):
            body.append(lines[i][len(m.group(1)):])
            i += 1
        blocks.append((start, "\n".join(body), directives))
        i += 1
    return blocks


def make_test(conn_holder, line, body, directives):
    def test():
        if "skip" in directives:
            print("# skipped: %s" % directives["skip"][0])
            return
        conn = conn_holder[0]
        try:
            with conn.cursor() as cur:
                for setup in directives.get("setup", []):
                    cur.execute(setup)
                try:
                    cur.execute(body)
                except psycopg2.Error as e:
                    cur.execute("ROLLBACK")   # a block that opened a transaction
                    raise AssertionError("README line %d: %s" % (line, e))
        finally:
            with conn.cursor() as cur:
                for cleanup in directives.get("cleanup", []):
                    cur.execute(cleanup)
    test.__name__ = "readme_sql_block_at_line_%d%s" % (line, " (skipped)" if "skip" in directives else "")
    return test


def main():
    blocks = sql_blocks(README)
    sql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % DB, dbname="postgres")
    sql("CREATE DATABASE %s" % DB, dbname="postgres")
    holder = [connect(dbname=DB)]

    def test_readme_has_sql_examples():
        assert len(blocks) >= 3, blocks
        assert sum("skip" not in d for _, _, d in blocks) >= 2, "almost every block is skipped"

    tests = [test_readme_has_sql_examples] + [make_test(holder, *b) for b in blocks]
    try:
        return run(tests)
    finally:
        holder[0].close()
        sql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % DB, dbname="postgres")


if __name__ == "__main__":
    sys.exit(1 if main() else 0)
