#!/usr/bin/env bash
# The one command that sets everything up and runs the product on this machine.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
exec pnpm -s meshlens up "$@"
