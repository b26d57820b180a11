#!/usr/bin/env bash
# Server benchmarks (issue 3): exec through the API vs the provider directly, the server's
# RSS idle and with 100 sandboxes, and requests/s of GET /api/sandboxes under wrk.
#   bash bench/server-bench.sh [RUNS] [SANDBOXES]
# Needs the build (scripts/build.sh) and a running Docker engine with the sandbox image.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-300}
COUNT=${2:-100}
BIN=$PWD/build/agentpane
ninja -C build agentpane api_exec_bench >/dev/null
WORK=$(mktemp -d /tmp/agentpane-bench.XXXXXX)
HOME_DIR=$WORK/home
mkdir -p "$HOME_DIR"
"$BIN" serve --listen 127.0.0.1:0 --home "$HOME_DIR" >"$WORK/server.log" 2>&1 &
SERVER=$!
cleanup() {
  for id in $(AGENTPANE_URL=$URL AGENTPANE_HOME=$HOME_DIR "$BIN" sandbox ls --json 2>/dev/null | jq -r '.[].id'); do
    AGENTPANE_URL=$URL AGENTPANE_HOME=$HOME_DIR "$BIN" sandbox rm "$id" >/dev/null 2>&1 || true
  done
  kill -TERM $SERVER 2>/dev/null || true
  wait $SERVER 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
for _ in $(seq 100); do [[ -f $HOME_DIR/address ]] && break; sleep 0.1; done
URL=$(cat "$HOME_DIR/address")
TOKEN=$(cat "$HOME_DIR/token")
export AGENTPANE_URL=$URL AGENTPANE_HOME=$HOME_DIR
rss() { awk '/VmRSS/ {print $2}' /proc/$SERVER/status; }

echo "== RSS idle: $(rss) KiB"
mkdir -p "$WORK/p0" && chown 1000:1000 "$WORK/p0"
ID=$("$BIN" sandbox create --project-path "$WORK/p0")
echo "== exec round-trip ($RUNS runs each, same sandbox)"
./build/api_exec_bench "$URL" "$TOKEN" "$ID" "$RUNS"

echo "== creating $COUNT sandboxes"
t0=$(date +%s)
for i in $(seq 1 "$COUNT"); do
  mkdir -p "$WORK/p$i"
  "$BIN" sandbox create --project-path "$WORK/p$i" --memory-mb 512 >/dev/null
done
echo "   created in $(( $(date +%s) - t0 )) s"
echo "== RSS with $((COUNT + 1)) sandboxes: $(rss) KiB"

echo "== wrk GET /api/sandboxes (2 threads, 16 connections, 10 s)"
wrk -t2 -c16 -d10s -H "Authorization: Bearer $TOKEN" "$URL/api/sandboxes" | sed -n '1,12p'
echo "== RSS after wrk: $(rss) KiB"
