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
# Several tests hold injected delays to a millisecond; when the VM's host takes the CPUs
# away (steal), the lab's delays run late and those fail. The share it took is printed at the
# end so that such a failure can be told from ours.
steal() { awk '/^cpu /{print $9; exit}' /proc/stat; }
total() { awk '/^cpu /{s=0; for (i=2; i<=NF; i++) s+=$i; print s; exit}' /proc/stat; }
steal0=$(steal) total0=$(total)
status=0
node --import tsx --test --test-concurrency=1 --test-timeout=300000 --test-reporter=spec "${files[@]}" || status=$?
awk -v s="$(( $(steal) - steal0 ))" -v t="$(( $(total) - total0 ))" 'BEGIN { printf "== CPU time the VM host took (steal) during the tests: %.1f%%\n", t ? 100 * s / t : 0 }'
exit "$status"
