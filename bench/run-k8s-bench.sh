#!/usr/bin/env bash
# Kubernetes exec and GET benchmark: ours vs `kubectl exec` vs @kubernetes/client-node,
# against the same pod of the test cluster, in one run. See bench/README.md.
#   bash bench/run-k8s-bench.sh                 # 200 runs each after 10 warm-up
#   RUNS=500 BUILD_DIR=build bash bench/run-k8s-bench.sh
# Uses the least-privilege ServiceAccount kubeconfig for all three clients (KCFG= to change).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
RUNS="${RUNS:-200}"
WARMUP="${WARMUP:-10}"
NS=agentpane-sandboxes
cd "$ROOT"

bash scripts/test-cluster status >/dev/null 2>&1 || bash scripts/test-cluster up
eval "$(bash scripts/test-cluster env)"
KCFG="${KCFG:-$AGENTPANE_TEST_SA_KUBECONFIG}"
bash scripts/test-cluster import-image agentpane/sandbox:latest >/dev/null
if [[ ! -d bench/node_modules/@kubernetes/client-node ]]; then
  (cd bench && npm ci --no-audit --no-fund)
fi
[[ -f $BUILD_DIR/build.ninja ]] || cmake -G Ninja -S . -B "$BUILD_DIR"
ninja -C "$BUILD_DIR" -j2 k8s_exec_bench

POD=agentpane-bench-$RANDOM$RANDOM
cleanup() { kubectl --kubeconfig "$KCFG" -n "$NS" delete pod "$POD" --grace-period=0 --wait=false >/dev/null 2>&1 || true; }
trap cleanup EXIT
kubectl --kubeconfig "$KCFG" -n "$NS" create -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: $POD, labels: {agentpane-bench: exec}}
spec:
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 0
  securityContext: {runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, seccompProfile: {type: RuntimeDefault}}
  containers:
  - name: main
    image: agentpane/sandbox:latest
    imagePullPolicy: Never
    command: [sleep, "3600"]
    resources: {limits: {cpu: "1", memory: 256Mi}}
    securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
YAML
kubectl --kubeconfig "$KCFG" -n "$NS" wait --for=condition=Ready "pod/$POD" --timeout=120s >/dev/null
echo "kubectl: $(kubectl version --client -o json | sed -nE 's/.*"gitVersion": *"([^"]+)".*/\1/p' | head -1)," \
  "server: $(kubectl --kubeconfig "$KCFG" version -o json 2>/dev/null | sed -nE 's/.*"gitVersion": *"([^"]+)".*/\1/p' | tail -1)," \
  "client-node: $(node -p "require('./bench/node_modules/@kubernetes/client-node/package.json').version")," \
  "load: $(cut -d' ' -f1-3 /proc/loadavg)"
"$BUILD_DIR/k8s_exec_bench" --kubeconfig "$KCFG" --namespace "$NS" --pod "$POD" \
  --runs "$RUNS" --warmup "$WARMUP" --client-node bench/k8s_bench_client_node.mjs
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
