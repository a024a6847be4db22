#!/usr/bin/env bash
# The launcher that runs clickhouse-local from libchdb.so as a process of its own.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
src="$ROOT/deploy/local/clickhouse/launcher.c"
out="$MESHLENS_CACHE/bin/chdb-launcher"
mkdir -p "$(dirname "$out")"
if [ ! -x "$out" ] || [ "$src" -nt "$out" ]; then
  cc -O2 -Wall -Werror -o "$out" "$src" -ldl
fi
