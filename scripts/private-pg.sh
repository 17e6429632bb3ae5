#!/usr/bin/env bash
# Makes a private copy of the installed PostgreSQL (binaries, libraries,
# share files, server headers) under DIR, so that several checkouts can each
# `make install` their own build and run their own test clusters side by side.
# PostgreSQL finds its share and lib directories relative to its binaries, so
# the copy works as an installation of its own.
#
#   eval "$(scripts/private-pg.sh DIR)"     # puts DIR's pg_config first on PATH
set -euo pipefail
dir=${1:?usage: private-pg.sh DIR}
bindir=$(pg_config --bindir)
major=$(basename "$(dirname "$bindir")")
if [ ! -x "$dir/usr/lib/postgresql/$major/bin/postgres" ]; then
  mkdir -p "$dir/usr/lib/postgresql" "$dir/usr/share/postgresql" "$dir/usr/include"
  cp -a "/usr/lib/postgresql/$major" "$dir/usr/lib/postgresql/"
  cp -a "/usr/share/postgresql/$major" "$dir/usr/share/postgresql/"
  cp -a /usr/include/postgresql "$dir/usr/include/"
  chmod 755 "$dir"
fi
echo "export PATH=$dir/usr/lib/postgresql/$major/bin:\$PATH"
