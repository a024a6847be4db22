#!/usr/bin/env bash
# Runs every *.test.ts in the workspace with node's test runner. Expects the embedded
# infrastructure to be up already (scripts/test.sh does that).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
mapfile -t files < <(find . -name node_modules -prune -o -name '*.test.ts' -print | sort)
if [ ${#files[@]} -eq 0 ]; then echo "no test files found" >&2; exit 1; fi
# One file at a time: several tests create namespaces, attach programs to the root cgroup
# and measure timing on a 2-core machine, where parallel files would disturb each other.
exec node --import tsx --test --test-concurrency=1 --test-timeout=300000 --test-reporter=spec "${files[@]}"
