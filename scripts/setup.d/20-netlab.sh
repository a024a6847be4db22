#!/usr/bin/env bash
# Builds the network lab's delay program (e2e/netlab) into e2e/netlab/build/; safe to run again.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SRC="$ROOT/e2e/netlab/delay/netlab-delay.c"
OUT="$ROOT/e2e/netlab/build/netlab-delay"

# The delay program needs NFQUEUE; there is no modprobe here, so it must be built into the kernel.
if [ ! -e /proc/net/netfilter/nfnetlink_queue ]; then
  echo "20-netlab: this kernel has no nfnetlink_queue; the network lab cannot inject delay" >&2
  exit 1
fi

if [ ! -x "$OUT" ] || [ "$SRC" -nt "$OUT" ] || [ "$0" -nt "$OUT" ]; then
  mkdir -p "$(dirname "$OUT")"
  # shellcheck disable=SC2046 # pkg-config emits several flags on purpose
  cc -O2 -Wall -Wextra -Werror -o "$OUT.tmp" "$SRC" $(pkg-config --cflags --libs libnetfilter_queue)
  mv "$OUT.tmp" "$OUT"
fi
