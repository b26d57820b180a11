#!/usr/bin/env bash
# Exec round trip through the in-sandbox agent channel (issue 11) against every other client,
# on a Docker sandbox and a Kubernetes sandbox of one real `agentpane serve`, in one run.
# See bench/README.md.
#   bash bench/run-channel-exec-bench.sh [RUNS]      # default 1000 runs per path
#   DOCKER_ONLY=1 bash bench/run-channel-exec-bench.sh   # without the test cluster
# Needs the build (scripts/build.sh), a running Docker engine with the sandbox image and,
# unless DOCKER_ONLY=1, the test cluster (scripts/test-cluster up). The server and all the
# Kubernetes clients use the least-privilege ServiceAccount kubeconfig.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-1000}
BLOCK=${BLOCK:-50}
BIN=$PWD/build/agentpane
ninja -C build agentpane agentpane-agent channel_exec_bench >/dev/null
bash scripts/build-sandbox-image.sh >/dev/null  # the current agent baked in (a second when cached)
if [[ ! -d bench/node_modules/dockerode || ! -d bench/node_modules/@kubernetes/client-node ]]; then
  (cd bench && npm ci --no-audit --no-fund)
fi
K8S=
if [[ ${DOCKER_ONLY:-0} != 1 ]]; then
  bash scripts/test-cluster status >/dev/null 2>&1 || bash scripts/test-cluster up
  eval "$(bash scripts/test-cluster env)"
  K8S=1
  KCFG=$AGENTPANE_TEST_SA_KUBECONFIG
  bash scripts/test-cluster import-image agentpane/sandbox:latest >/dev/null
fi
WORK=$(mktemp -d /tmp/agentpane-chbench.XXXXXX)
HOME_DIR=$WORK/home
mkdir -p "$HOME_DIR"
if [[ -n $K8S ]]; then
  ENABLE_K8S_SANDBOX=true K8S_KUBECONFIG=$KCFG AGENTPANE_K8S_IMAGE_PULL_POLICY=Never \
    "$BIN" serve --listen 127.0.0.1:0 --home "$HOME_DIR" >"$WORK/server.log" 2>&1 &
else
  "$BIN" serve --listen 127.0.0.1:0 --home "$HOME_DIR" >"$WORK/server.log" 2>&1 &
fi
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
ARGS=(--url "$URL" --token "$TOKEN" --runs "$RUNS" --block "$BLOCK" --node-dir bench)
mkdir -p "$WORK/p0" && chown 1000:1000 "$WORK/p0"
ARGS+=(--docker "$("$BIN" sandbox create --project-path "$WORK/p0")")
if [[ -n $K8S ]]; then
  mkdir -p "$WORK/p1" && chown 1000:1000 "$WORK/p1"
  ARGS+=(--k8s "$("$BIN" sandbox create --provider kubernetes --project-path "$WORK/p1" \
    --project-id "chbench-$RANDOM$RANDOM" --memory-mb 512)" --kubeconfig "$KCFG" --home "$HOME_DIR")
fi
echo "docker: $(docker version -f '{{.Server.Version}}')," \
  "dockerode: $(node -p "require('./bench/node_modules/dockerode/package.json').version")" \
  "${K8S:+, kubectl: $(kubectl version --client -o json | jq -r .clientVersion.gitVersion), server: $(kubectl --kubeconfig "$KCFG" version -o json 2>/dev/null | jq -r .serverVersion.gitVersion), client-node: $(node -p "require('./bench/node_modules/@kubernetes/client-node/package.json').version")}"
echo "cores: $(nproc), load before: $(cut -d' ' -f1-3 /proc/loadavg)"
./build/channel_exec_bench "${ARGS[@]}"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== server /metrics (exec paths)"
curl -s -H "Authorization: Bearer $TOKEN" "$URL/metrics" | grep -E '^agentpane_exec_(path|channel)'
