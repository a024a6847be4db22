#!/usr/bin/env bash
# Builds bpf/build/meshlens.bpf.o (CO-RE, against this kernel's BTF) and the libbpf addon
# bpf/build/meshlens.node. Each step reruns only when its inputs changed.
set -euo pipefail
BPF=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$BPF/build
mkdir -p "$OUT"
log() { printf '[bpf] %s\n' "$*" >&2; }

# vmlinux.h: rewritten only when the kernel's BTF differs, so make-style checks below hold.
bpftool btf dump file /sys/kernel/btf/vmlinux format c > "$OUT/vmlinux.h.new"
if cmp -s "$OUT/vmlinux.h.new" "$OUT/vmlinux.h"; then rm "$OUT/vmlinux.h.new"; else mv "$OUT/vmlinux.h.new" "$OUT/vmlinux.h"; fi

newer() { # target, sources...: true when target is missing or older than any source
  local t=$1; shift
  [ -e "$t" ] || return 0
  local s; for s in "$@"; do [ "$s" -nt "$t" ] && return 0; done
  return 1
}

obj=$OUT/meshlens.bpf.o
if newer "$obj" "$BPF"/src/*.bpf.c "$BPF"/src/*.h "$OUT/vmlinux.h"; then
  log "clang -> $obj"
  clang -g -O2 -Wall -Werror -target bpf -D__TARGET_ARCH_x86 \
    -I "$OUT" -I "$BPF/src" -c "$BPF/src/meshlens.bpf.c" -o "$obj.tmp"
  mv "$obj.tmp" "$obj"
fi

node=$OUT/meshlens.node
if newer "$node" "$BPF"/addon/*.cc "$BPF"/addon/binding.gyp "$BPF"/src/*.h; then
  log "node-gyp -> $node"
  # node-gyp would try to download headers; the machine's own are in /usr/include/node.
  export npm_config_nodedir=${npm_config_nodedir:-/usr}
  # Quiet on success, the whole compiler output on failure.
  if ! out=$(cd "$BPF/addon" && node "$(node -p 'require.resolve("node-gyp/bin/node-gyp.js")')" rebuild --jobs=1 2>&1); then
    printf '%s\n' "$out" >&2
    exit 1
  fi
  cp "$BPF/addon/build/Release/meshlens.node" "$node.tmp"
  mv "$node.tmp" "$node"
fi
