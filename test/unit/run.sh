#!/usr/bin/env bash
# Builds and runs the unit tests of the PostgreSQL-free relay code:
#   test_relay     topic names, properties, secrets file, headers
#   test_decide    the meaning of a chunk's delivery reports (relay/decide.c)
#   test_producer  producer and delivery reports against librdkafka's mock cluster
#   test_transaction  the transactional producer (exactly once) against the mock cluster
#   test_position  the position record: JSON, and reading it back from the mock cluster
#   symbols.sh     relay/ uses no global name the postgres executable exports
# Output is TAP; the exit status is non-zero if any assertion or build failed.
# UNIT_CFLAGS adds compiler flags (e.g. -fsanitize=address,undefined).
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
relay="$root/relay"
rc=0

build_and_run() {
	local name=$1; shift
	# shellcheck disable=SC2086
	if ! gcc -Wall -Wextra -Werror -Wno-format-truncation -O1 -g ${UNIT_CFLAGS:-} -I"$relay" -I"$here" \
		-o "$here/$name" "$here/$name.c" "$@" -lrdkafka -ljansson; then
		echo "not ok - $name does not build"
		rc=1
		return
	fi
	"$here/$name" || rc=1
}

build_and_run test_relay "$relay/topic.c" "$relay/properties.c" "$relay/headers.c" \
	"$relay/producer.c" "$relay/delivery.c" "$relay/errors.c" "$relay/limits.c"
build_and_run test_decide "$relay/decide.c" "$relay/errors.c"
build_and_run test_producer "$relay/producer.c" "$relay/delivery.c" "$relay/properties.c" \
	"$relay/headers.c" "$relay/errors.c" "$relay/limits.c"
build_and_run test_transaction "$relay/transaction.c" "$relay/producer.c" "$relay/delivery.c" \
	"$relay/properties.c" "$relay/headers.c" "$relay/errors.c" "$relay/limits.c"
build_and_run test_position "$relay/position.c" "$relay/transaction.c" "$relay/producer.c" \
	"$relay/delivery.c" "$relay/properties.c" "$relay/headers.c" "$relay/errors.c" "$relay/limits.c"
bash "$here/symbols.sh" || rc=1
exit $rc
