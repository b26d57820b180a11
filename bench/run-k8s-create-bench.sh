#!/usr/bin/env bash
# Cold create-to-first-exec on the test cluster: the Kubernetes provider (claim + hostPath PV
# workspace, and emptyDir) vs `kubectl run` + `kubectl wait` + `kubectl exec`, interleaved
# in one run. See bench/README.md.
#   bash bench/run-k8s-create-bench.sh            # 20 runs each after one warm-up
#   RUNS=40 BUILD_DIR=build bash bench/run-k8s-create-bench.sh
# Uses the least-privilege ServiceAccount kubeconfig for both (KCFG= to change).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
RUNS="${RUNS:-20}"
cd "$ROOT"

bash scripts/test-cluster status >/dev/null 2>&1 || bash scripts/test-cluster up
eval "$(bash scripts/test-cluster env)"
KCFG="${KCFG:-$AGENTPANE_TEST_SA_KUBECONFIG}"
bash scripts/test-cluster import-image agentpane/sandbox:latest >/dev/null
[[ -f $BUILD_DIR/build.ninja ]] || cmake -G Ninja -S . -B "$BUILD_DIR"
ninja -C "$BUILD_DIR" -j2 k8s_create_bench
echo "kubectl: $(kubectl version --client -o json | sed -nE 's/.*"gitVersion": *"([^"]+)".*/\1/p' | head -1)," \
  "load: $(cut -d' ' -f1-3 /proc/loadavg)"
"$BUILD_DIR/k8s_create_bench" --kubeconfig "$KCFG" --runs "$RUNS"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
