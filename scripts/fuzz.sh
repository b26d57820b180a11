#!/usr/bin/env bash
# Builds every libFuzzer target (fuzz/*_fuzz.cpp, see fuzz/CMakeLists.txt) with Debian's
# clang into its own build dir and runs each for a bounded time. Fails on a crash, a leak,
# undefined behaviour or a timeout in any target; the input that did it is kept in
# $BUILD_DIR/artifacts/. Ends with "N passed, N failed" (one per target).
#   bash scripts/fuzz.sh                     # every target, 30 s each
#   FUZZ_TIME=300 bash scripts/fuzz.sh exec_channel_fuzz
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD_DIR="${FUZZ_BUILD_DIR:-$ROOT/build/fuzz}"
FUZZ_TIME="${FUZZ_TIME:-30}"
export CCACHE_DIR="${CCACHE_DIR:-/var/cache/agentpane/ccache}"
export CCACHE_BASEDIR="$ROOT" CCACHE_NOHASHDIR=true

command -v clang++ >/dev/null || { echo "FATAL: clang++ missing (scripts/install-deps.sh)"; echo "0 passed, 1 failed"; exit 1; }
if [[ ! -f $BUILD_DIR/build.ninja ]]; then
  cmake -G Ninja -S fuzz -B "$BUILD_DIR" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=None >/dev/null ||
    { echo "FATAL: fuzz configure failed"; echo "0 passed, 1 failed"; exit 1; }
fi
if ! ninja -C "$BUILD_DIR" -j"${JOBS:-2}"; then
  echo "FATAL: fuzz build failed"; echo "0 passed, 1 failed"; exit 1
fi

if (($#)); then targets=("$@"); else
  targets=()
  for f in fuzz/*_fuzz.cpp; do targets+=("$(basename "$f" .cpp)"); done
fi
passed=0 failed=0
mkdir -p "$BUILD_DIR/artifacts" "$BUILD_DIR/logs"
for t in "${targets[@]}"; do
  name=${t%_fuzz}
  corpus="$BUILD_DIR/corpus/$name"
  mkdir -p "$corpus"
  [[ -d fuzz/corpus/$name ]] && cp -n fuzz/corpus/"$name"/* "$corpus"/ 2>/dev/null
  log="$BUILD_DIR/logs/$t.log"
  echo "[fuzz] $t for ${FUZZ_TIME}s"
  # -timeout: one input running over 10 s counts as a hang; leaks are found by ASan at exit
  # of each run (libFuzzer's -detect_leaks, on by default).
  "$BUILD_DIR/$t" -max_total_time="$FUZZ_TIME" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$BUILD_DIR/artifacts/$t-" "$corpus" >"$log" 2>&1
  rc=$?
  if ((rc == 0)); then
    passed=$((passed + 1))
    echo "PASS $t: $(grep -E 'stat::number_of_executed_units' "$log" | awk '{print $2}') runs"
  else
    failed=$((failed + 1))
    echo "FAIL $t (rc=$rc; log $log)"
    grep -E 'ERROR|SUMMARY|runtime error|Test unit written' "$log" | head -10
  fi
done
echo "$passed passed, $failed failed"
((failed == 0))
