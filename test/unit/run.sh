#!/usr/bin/env bash
# Builds and runs the unit tests of the pure relay helpers (relay/topic.c,
# relay/properties.c, relay/headers.c; the producer without a broker). Output is TAP; the exit status is the
# test program's (non-zero if any assertion failed or the build failed).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="$here/test_relay"

gcc -Wall -Wextra -Werror -Wno-format-truncation -O1 -g ${UNIT_CFLAGS:-} \
	-I"$root/relay" \
	-o "$bin" \
	"$here/test_relay.c" \
	"$root/relay/topic.c" \
	"$root/relay/properties.c" \
	"$root/relay/headers.c" \
	"$root/relay/producer.c" \
	"$root/relay/delivery.c" \
	"$root/relay/errors.c" \
	"$root/relay/limits.c" \
	-lrdkafka -ljansson

exec "$bin"
