#!/usr/bin/env bash
# The one command that sets everything up and runs every test (CI runs exactly this).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
echo "== typecheck"; pnpm -s typecheck
echo "== lint"; pnpm -s lint
# The tests get embedded Kafka and ClickHouse of their own (own state dir and ports), so a
# running `meshlens up` on the same machine is neither used nor disturbed.
export MESHLENS_STATE_DIR=$(mktemp -d /tmp/meshlens-test-state.XXXXXX)
# Fixed ports stay below the kernel's ephemeral range (32768+ by default), where any outgoing
# connection of the machine (the suite makes thousands) may hold one when a server starts.
export MESHLENS_KAFKA_PORT=25092 MESHLENS_KAFKA_CONTROLLER_PORT=25093 MESHLENS_CLICKHOUSE_PORT=25123
unset MESHLENS_KAFKA_BROKERS MESHLENS_CLICKHOUSE_URL
cleanup() { pnpm -s meshlens infra down >/dev/null || true; rm -rf "$MESHLENS_STATE_DIR"; }
trap cleanup EXIT
echo "== infra up"; pnpm -s meshlens infra up
echo "== tests"; bash scripts/run-tests.sh
