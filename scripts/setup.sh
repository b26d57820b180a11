#!/usr/bin/env bash
# First command of the README: sets everything up on a fresh Debian 12 machine and starts
# the server. Idempotent: a second run only restarts the server.
#   sudo bash scripts/setup.sh [--no-serve]
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n== %s\n' "$*"; }

step "Debian packages";            bash scripts/install-deps.sh
step "Docker engine";              bash scripts/start-docker.sh
step "Build agentpane";            bash scripts/build.sh agentpane agentpane-agent
step "Sandbox image";              bash scripts/build-sandbox-image.sh  # bakes in the agent
step "Build the web page";         bash scripts/build-web.sh
[[ ${1:-} == --no-serve ]] && exit 0

step "Start the server"
HOME_DIR="${AGENTPANE_HOME:-$HOME/.agentpane}"
mkdir -p "$HOME_DIR"
if [[ -f $HOME_DIR/server.pid ]] && kill -0 "$(cat "$HOME_DIR/server.pid")" 2>/dev/null; then
  echo "stopping the running server (pid $(cat "$HOME_DIR/server.pid"))"
  kill -TERM "$(cat "$HOME_DIR/server.pid")" || true
  for _ in $(seq 50); do kill -0 "$(cat "$HOME_DIR/server.pid")" 2>/dev/null || break; sleep 0.2; done
fi
# Projects must lie strictly inside a project root. The README's examples use this checkout
# ($PWD) as the project, so its parent is a root, next to the defaults ($HOME, the temp dir).
# AGENTPANE_PROJECT_ROOTS (colon-separated), when set, is used instead.
ROOT_ARGS=()
if [[ -z ${AGENTPANE_PROJECT_ROOTS:-} ]]; then
  for r in "$(dirname "$PWD")" "$HOME" "${TMPDIR:-/tmp}"; do ROOT_ARGS+=(--project-root "$r"); done
fi
setsid ./build/agentpane serve --home "$HOME_DIR" "${ROOT_ARGS[@]}" >"$HOME_DIR/server.log" 2>&1 < /dev/null &
echo $! >"$HOME_DIR/server.pid"
for _ in $(seq 100); do
  curl -fsS http://127.0.0.1:7300/api/health >/dev/null 2>&1 && break
  kill -0 "$(cat "$HOME_DIR/server.pid")" 2>/dev/null || { echo "server exited:"; tail -20 "$HOME_DIR/server.log"; exit 1; }
  sleep 0.2
done
curl -fsS http://127.0.0.1:7300/api/health >/dev/null || { echo "server did not answer; log: $HOME_DIR/server.log"; exit 1; }
echo "agentpane is serving on http://127.0.0.1:7300 (token: $HOME_DIR/token, log: $HOME_DIR/server.log)"
echo "web page: http://127.0.0.1:7300/#token=$(cat "$HOME_DIR/token")"
echo "try: ./build/agentpane doctor && ./build/agentpane sandbox create --project-path \$PWD"
