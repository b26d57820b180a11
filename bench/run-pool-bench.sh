#!/usr/bin/env bash
# Warm pool (issue 13): claim -> first exec through the API, sequential and 20 in parallel,
# against a cold create -> first exec in the same run, on Docker and on Kubernetes (the test
# cluster). Each provider gets its own `agentpane serve` on a temporary home with
# --project-root; everything made is removed. See bench/README.md.
#   bash bench/run-pool-bench.sh [docker|k8s|both]      # default both
#   SEQ=100 PAR=20 ROUNDS=5 COLD=20 bash bench/run-pool-bench.sh docker
#   K8S_CPU_REQUEST_PERCENT=10 PREWARM=20 PAR=20 bash bench/run-pool-bench.sh k8s
#   AGENTPANE_LOG_LEVEL=debug KEEP_SERVER_LOG=/tmp/pool bash bench/run-pool-bench.sh k8s
#     (keeps each server's log as /tmp/pool.docker, /tmp/pool.k8s: each claim's steps timed)
#     (the pods' CPU request in percent of their 0.5-core limit; at the default 50, about 7
#     fit the test cluster's one node, so 20 warm and 20 refilling need a smaller request)
# Needs root (mounts, chown 1000:1000 of the project directories), the Docker engine with the
# sandbox image and, for k8s, the test cluster (scripts/test-cluster).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
WHICH="${1:-both}"
SEQ="${SEQ:-100}" PAR="${PAR:-20}" ROUNDS="${ROUNDS:-5}" COLD="${COLD:-20}" PREWARM="${PREWARM:-10}" SETTLE_MS="${SETTLE_MS:-0}"
cd "$ROOT"
BIN=$BUILD_DIR/agentpane
ninja -C "$BUILD_DIR" agentpane agentpane-agent pool_bench >/dev/null

SERVER=""
WORK=""
stop_server() {
  [[ -n $SERVER ]] || return 0
  for id in $(AGENTPANE_URL=$URL AGENTPANE_HOME=$HOME_DIR "$BIN" sandbox ls --json 2>/dev/null | jq -r '.[].id'); do
    AGENTPANE_URL=$URL AGENTPANE_HOME=$HOME_DIR "$BIN" sandbox rm "$id" >/dev/null 2>&1 || true
  done
  AGENTPANE_URL=$URL AGENTPANE_HOME=$HOME_DIR "$BIN" pool prewarm 0 >/dev/null 2>&1 || true
  kill -TERM "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
  SERVER=""
  # The server leaves its warm-slot mount behind (home/warm-slots/<provider>): unmount it.
  awk -v w="$WORK/" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l
  [[ -z ${KEEP_SERVER_LOG:-} ]] || cp "$WORK/server.log" "$KEEP_SERVER_LOG.$PROVIDER"
  rm -rf "$WORK"
}
trap stop_server EXIT

# start_server ENV... : an own server on a temporary home; sets URL, TOKEN, HOME_DIR, WORK.
start_server() {
  WORK=$(mktemp -d /tmp/agentpane-poolbench.XXXXXX)
  HOME_DIR=$WORK/home
  mkdir -p "$HOME_DIR" "$WORK/projects"
  env "$@" "$BIN" serve --listen 127.0.0.1:0 --home "$HOME_DIR" --project-root "$WORK/projects" \
    >"$WORK/server.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 300); do [[ -f $HOME_DIR/address ]] && break; sleep 0.1; done
  URL=$(cat "$HOME_DIR/address")
  TOKEN=$(cat "$HOME_DIR/token")
}

run_bench() {  # LABEL
  echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  "$BUILD_DIR/pool_bench" "$URL" "$TOKEN" "$WORK/projects" "$1" --seq "$SEQ" --prewarm "$PREWARM" \
    --par "$PAR" --rounds "$ROUNDS" --cold "$COLD" --settle-ms "$SETTLE_MS" || { tail -50 "$WORK/server.log"; return 1; }
  echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
  AGENTPANE_URL=$URL AGENTPANE_HOME=$HOME_DIR "$BIN" pool status --json | jq -c '.pools[] | {profile, hits, misses, claimMs}'
}

if [[ $WHICH == docker || $WHICH == both ]]; then
  PROVIDER=docker
  start_server
  run_bench "Docker ($(docker version -f '{{.Server.Version}}'))"
  stop_server
fi
if [[ $WHICH == k8s || $WHICH == both ]]; then
  bash scripts/test-cluster status >/dev/null 2>&1 || bash scripts/test-cluster up
  eval "$(bash scripts/test-cluster env)"
  PROVIDER=k8s
  bash scripts/test-cluster import-image agentpane/sandbox:latest >/dev/null
  start_server ENABLE_K8S_SANDBOX=true K8S_KUBECONFIG="$AGENTPANE_TEST_SA_KUBECONFIG" \
    AGENTPANE_K8S_IMAGE_PULL_POLICY=Never AGENTPANE_K8S_CPU_REQUEST_PERCENT="${K8S_CPU_REQUEST_PERCENT:-50}"
  AGENTPANE_URL=$URL AGENTPANE_HOME=$HOME_DIR "$BIN" profile set default --provider kubernetes \
    --memory-mb "${K8S_MEMORY_MB:-512}" --cpu "${K8S_CPU:-0.5}" >/dev/null
  run_bench "Kubernetes (test cluster, pvc workspace on hostPath PVs, ${K8S_MEMORY_MB:-512} MiB, ${K8S_CPU:-0.5} CPU requesting ${K8S_CPU_REQUEST_PERCENT:-50}%)"
  stop_server
fi
if [[ ($WHICH == k8s || $WHICH == both) && -z ${NO_FLOOR:-} ]]; then
  # The cluster's own share: the claim's label patch alone, from @kubernetes/client-node.
  [[ -d bench/node_modules/@kubernetes/client-node ]] || (cd bench && npm ci --no-audit --no-fund >/dev/null)
  floor=$(node bench/k8s_claim_floor.mjs "$KUBECONFIG" agentpane/sandbox:latest "$PAR" "$ROUNDS" "$SEQ")
  echo "claim's label patch alone, @kubernetes/client-node $(node -p "require('./bench/node_modules/@kubernetes/client-node/package.json').version") (ms):"
  for k in sequential parallel; do
    jq -r --arg k "$k" '.[$k] | sort | "  \($k): runs \(length), median \((if length % 2 == 1 then .[length/2|floor] else (.[length/2-1] + .[length/2]) / 2 end)*10|round/10), p95 \(.[(length*0.95)|floor]*10|round/10), min \(.[0]*10|round/10)"' <<<"$floor"
  done
fi
