#!/usr/bin/env bash
# Builds the web page into web/dist (served by `agentpane serve`): `npm ci` from the lockfile,
# then Vite. npm's registry is the machine's own npm configuration. The npm cache lives
# outside the clone so that fresh clones (CI) reuse downloads.
set -euo pipefail
cd "$(dirname "$0")/../web"
export npm_config_cache="${npm_config_cache:-/var/cache/agentpane/npm}"
mkdir -p "$npm_config_cache"
if [[ ! -d node_modules ]] || ! cmp -s package-lock.json node_modules/.package-lock.json.copy; then
  echo "[web] npm ci"
  npm ci --no-audit --no-fund --prefer-offline
  cp package-lock.json node_modules/.package-lock.json.copy
fi
echo "[web] vite build"
npx vite build --logLevel warn
echo "[web] built $(find dist -type f | wc -l) files into web/dist"
