#!/usr/bin/env bash
# Exec round trip through the in-sandbox agent channel (issue 11) against the provider's
# native exec and `docker exec`, on one sandbox of a real `agentpane serve`, in one run.
# See bench/README.md.
#   bash bench/run-channel-exec-bench.sh [RUNS]      # default 1000 runs per path
# Needs the build (scripts/build.sh) and a running Docker engine with the sandbox image.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-1000}
BIN=$PWD/build/agentpane
ninja -C build agentpane agentpane-agent channel_exec_bench >/dev/null
WORK=$(mktemp -d /tmp/agentpane-chbench.XXXXXX)
HOME_DIR=$WORK/home
mkdir -p "$HOME_DIR"
"$BIN" serve --listen 127.0.0.1:0 --home "$HOME_DIR" >"$WORK/server.log" 2>&1 &
SERVER=$!
URL=
cleanup() {
  if [[ -n $URL ]]; then
    for id in $(AGENTPANE_URL=$URL AGENTPANE_HOME=$HOME_DIR "$BIN" sandbox ls --json 2>/dev/null | jq -r '.[].id'); do
      AGENTPANE_URL=$URL AGENTPANE_HOME=$HOME_DIR "$BIN" sandbox rm "$id" >/dev/null 2>&1 || true
    done
  fi
  kill -TERM $SERVER 2>/dev/null || true
  wait $SERVER 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
for _ in $(seq 100); do [[ -f $HOME_DIR/address ]] && break; sleep 0.1; done
URL=$(cat "$HOME_DIR/address")
TOKEN=$(cat "$HOME_DIR/token")
export AGENTPANE_URL=$URL AGENTPANE_HOME=$HOME_DIR
mkdir -p "$WORK/p0" && chown 1000:1000 "$WORK/p0"
ID=$("$BIN" sandbox create --project-path "$WORK/p0")
./build/channel_exec_bench "$URL" "$TOKEN" "$ID" "$RUNS"
echo "== server /metrics (exec paths)"
curl -s -H "Authorization: Bearer $TOKEN" "$URL/metrics" | grep -E '^agentpane_exec_(path|channel)'
