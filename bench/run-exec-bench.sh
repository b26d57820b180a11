#!/usr/bin/env bash
# Exec round-trip benchmark: agentpane's DockerProvider vs `docker exec` vs dockerode,
# against the same sandbox container, in one run. See bench/README.md.
#   bash bench/run-exec-bench.sh            # 200 runs each
#   RUNS=500 BUILD_DIR=build-docker bash bench/run-exec-bench.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
RUNS="${RUNS:-200}"
WARMUP="${WARMUP:-10}"
cd "$ROOT"

bash scripts/start-docker.sh
docker image inspect agentpane/sandbox:latest >/dev/null 2>&1 || bash scripts/build-sandbox-image.sh
if [[ ! -d bench/node_modules/dockerode ]]; then
  (cd bench && npm install --no-audit --no-fund)
fi
[[ -f $BUILD_DIR/build.ninja ]] || cmake -G Ninja -S . -B "$BUILD_DIR"
ninja -C "$BUILD_DIR" -j2 exec_bench
"$BUILD_DIR/exec_bench" --runs "$RUNS" --warmup "$WARMUP" --dockerode bench/exec_bench_dockerode.js
