#!/usr/bin/env bash
# relay/ is linked into the server, where the postgres executable's own
# global names come first: a name relay/ defines or calls that PostgreSQL
# also exports binds to PostgreSQL's (jansson's json_object did, to the SQL
# function of that name). Compares the global names of relay/'s objects with
# the executable's dynamic symbols. TAP, one test.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

pg="$(pg_config --bindir 2>/dev/null)/postgres"
if [ ! -x "$pg" ]; then
	echo "ok 1 - relay/ names against PostgreSQL's # SKIP no postgres executable (pg_config)"
	echo "1..1"
	exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for f in "$root"/relay/*.c; do
	if ! gcc -c -O1 -I"$root/relay" -o "$tmp/$(basename "$f" .c).o" "$f"; then
		echo "not ok 1 - relay/$(basename "$f") builds"
		echo "1..1"
		exit 1
	fi
done
nm -D --defined-only "$pg" | awk '{print $NF}' | sort -u >"$tmp/pg.names"
nm -g "$tmp"/*.o | awk 'NF >= 2 {print $NF}' | sort -u >"$tmp/relay.names"
clash=$(comm -12 "$tmp/pg.names" "$tmp/relay.names" | tr '\n' ' ')
if [ -z "$clash" ]; then
	echo "ok 1 - relay/ neither defines nor calls a global name the postgres executable exports"
else
	echo "not ok 1 - relay/ uses names the postgres executable exports, which bind to PostgreSQL's: $clash"
fi
echo "1..1"
[ -z "$clash" ]
