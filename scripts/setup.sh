#!/usr/bin/env bash
# Installs everything meshlens needs on one of our Debian machines; safe to run again.
# Downloads are cached under $MESHLENS_CACHE so a second run (and CI on the same machine)
# does not fetch them again.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export MESHLENS_CACHE=${MESHLENS_CACHE:-$HOME/.cache/meshlens}
PNPM_VERSION=$(sed -n 's/.*"packageManager": *"pnpm@\([^"]*\)".*/\1/p' "$ROOT/package.json")
mkdir -p "$MESHLENS_CACHE"
log() { printf '[setup] %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  echo "meshlens setup: run as root (it installs Debian packages and later loads eBPF programs)" >&2
  exit 1
fi

mapfile -t pkgs < <(grep -vE '^\s*(#|$)' "$ROOT/scripts/apt-packages.txt")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "apt: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "$(pnpm --version 2>/dev/null || true)" != "$PNPM_VERSION" ]; then
  log "installing pnpm@$PNPM_VERSION"
  npm install -g --silent "pnpm@$PNPM_VERSION" >/dev/null
fi

log "pnpm install"
cd "$ROOT"
# node-gyp must use the machine's Node headers: there is no way to download them here.
export npm_config_nodedir=/usr
# pnpm's bundled node-gyp can be incomplete when pnpm comes from npm -g; npm's own works.
npm_gyp=$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js
[ -f "$npm_gyp" ] && export npm_config_node_gyp="$npm_gyp"
if ! pnpm install --frozen-lockfile --store-dir "$MESHLENS_CACHE/pnpm-store" --reporter=append-only >"$MESHLENS_CACHE/pnpm-install.log" 2>&1; then
  grep -v '^npm warn' "$MESHLENS_CACHE/pnpm-install.log" | tail -20 >&2
  echo "meshlens setup: pnpm install failed (full log: $MESHLENS_CACHE/pnpm-install.log)" >&2
  exit 1
fi

for step in "$ROOT"/scripts/setup.d/*.sh; do
  log "$(basename "$step")"
  bash "$step"
done
log "ready"
