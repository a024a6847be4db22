#!/usr/bin/env bash
# Builds the kernel probes and their libbpf addon (bpf/build/); reruns only changed steps.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# Loading eBPF and attaching to the root cgroup needs root; setup.sh already insists on it.
bash "$ROOT/bpf/scripts/build.sh"
