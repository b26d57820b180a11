#!/usr/bin/env bash
# Second command of the README: runs every test, from a fresh machine if need be.
# Installs what is missing, starts the Docker engine and the test cluster, builds, lints,
# and runs unit, contract, integration and cluster suites. Ends with "N passed, N failed".
#   bash scripts/test.sh            # everything
#   SKIP_CLUSTER=1 bash scripts/test.sh   # without the Kubernetes cluster (local iteration)
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
LOGDIR=${TEST_LOG_DIR:-$ROOT/build/test-logs}
PASSED=0
FAILED=0
FAILURES=()

step() { printf '\n== %s (%s)\n' "$*" "$(date +%H:%M:%S)"; }
must() { "$@" || { echo "FATAL: $* failed"; echo "0 passed, 1 failed"; exit 1; }; }
record() {  # record NAME PASSED FAILED
  PASSED=$((PASSED + $2)); FAILED=$((FAILED + $3))
  ((${3} > 0)) && FAILURES+=("$1")
  echo "-- $1: $2 passed, $3 failed"
}
run_ctest() {  # run_ctest NAME ctest-args...
  local name=$1; shift
  local out="$LOGDIR/ctest-$name.log"
  (cd build && ctest --output-on-failure "$@") >"$out" 2>&1
  local rc=$?
  grep -E '^[0-9]+% tests passed|Failed|\*\*\*' "$out" | tail -40
  local total failed
  total=$(sed -nE 's/.* tests failed out of ([0-9]+).*/\1/p' "$out" | tail -1)
  failed=$(sed -nE 's/.*, ([0-9]+) tests failed out of.*/\1/p' "$out" | tail -1)
  if [[ -z $total ]]; then
    # A suite that finds no tests has not passed. The one exception: the cluster label
    # before any test/cluster/<area>/*.cpp exists (nothing to run is then the truth).
    if grep -q 'No tests were found' "$out"; then
      if [[ $name == k8s-cluster ]] && ! compgen -G 'test/cluster/*/*.cpp' >/dev/null; then
        echo "-- $name: no cluster tests in the tree yet"; record "$name" 0 0; return
      fi
      echo "-- $name: no tests were found (a build or discovery problem)"; record "$name" 0 1; return
    fi
    tail -30 "$out"; record "$name" 0 1; return
  fi
  ((rc != 0 && failed == 0)) && failed=1
  record "$name" $((total - failed)) "$failed"
}

step "Debian packages";  must bash scripts/install-deps.sh
step "Docker engine";    must bash scripts/start-docker.sh
step "Build";            must bash scripts/build.sh all
# After the build: the image bakes in build/agentpane-agent (its hash is in the image's key).
step "Sandbox image";    must bash scripts/build-sandbox-image.sh
step "Web page build";   must bash scripts/build-web.sh
mkdir -p "$LOGDIR"

step "clang-format"
mapfile -t CXX_FILES < <(git ls-files -- 'src/*.cpp' 'src/*.hpp' 'include/*.hpp' 'test/*.cpp' 'test/*.hpp' 'bench/*.cpp' 'fuzz/*.cpp')
if clang-format --dry-run -Werror "${CXX_FILES[@]}" >"$LOGDIR/clang-format.log" 2>&1; then
  record clang-format 1 0
else
  head -30 "$LOGDIR/clang-format.log"; record clang-format 0 1
fi

step "clang-tidy"
# A configure-only tree without precompiled headers gives clang-tidy its compile commands.
# Boost 1.74 only enables asio coroutines for clang with libc++, and its awaitable.hpp
# relies on <utility> arriving transitively: both are stated explicitly for clang.
cmake -G Ninja -S . -B build/tidy -DAP_PCH=OFF >/dev/null
mapfile -t TIDY_FILES < <(git ls-files -- 'src/*.cpp')
if printf '%s\n' "${TIDY_FILES[@]}" | xargs -P2 -n4 clang-tidy -p build/tidy --quiet \
    --extra-arg=-DBOOST_ASIO_HAS_CO_AWAIT=1 --extra-arg=-DBOOST_ASIO_HAS_STD_COROUTINE=1 \
    --extra-arg=-include --extra-arg=utility >"$LOGDIR/clang-tidy.log" 2>&1; then
  record clang-tidy 1 0
else
  grep -E 'error:' "$LOGDIR/clang-tidy.log" | head -30; record clang-tidy 0 1
fi

step "Unit tests";                 run_ctest unit -L unit -j2

step "Web type check (svelte-check)"
if (cd web && npx svelte-check --tsconfig ./tsconfig.json --fail-on-warnings) >"$LOGDIR/svelte-check.log" 2>&1; then
  record web-typecheck 1 0
else
  tail -30 "$LOGDIR/svelte-check.log"; record web-typecheck 0 1
fi

step "Web component tests (Vitest)"
(cd web && npx vitest run --reporter=default --reporter=json --outputFile="$LOGDIR/vitest.json") >"$LOGDIR/vitest.log" 2>&1
vitest_rc=$?
if [[ -s $LOGDIR/vitest.json ]]; then
  v_passed=$(jq '.numPassedTests' "$LOGDIR/vitest.json"); v_failed=$(jq '.numFailedTests' "$LOGDIR/vitest.json")
  ((vitest_rc != 0 && v_failed == 0)) && v_failed=1
  ((v_failed > 0)) && tail -40 "$LOGDIR/vitest.log"
  record web-components "$v_passed" "$v_failed"
else
  tail -30 "$LOGDIR/vitest.log"; record web-components 0 1
fi
step "Fuzzing (libFuzzer, ${FUZZ_TIME:-30} s per target)"
# Each fuzz/*_fuzz.cpp target counts once: passed, or failed on a crash, leak or UB.
bash scripts/fuzz.sh 2>&1 | tee "$LOGDIR/fuzz.log" | grep -E '^(PASS|FAIL|FATAL)|ERROR|SUMMARY'
line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$LOGDIR/fuzz.log" | tail -1)
if [[ -n $line ]]; then
  record fuzz "$(cut -d' ' -f1 <<<"$line")" "$(cut -d' ' -f3 <<<"$line")"
else
  tail -20 "$LOGDIR/fuzz.log"; record fuzz 0 1
fi

step "Contract suite (Docker)";    run_ctest contract -L contract
step "Integration tests (Docker)"; run_ctest integration -L integration

step "API fuzz (schemathesis over docs/openapi.yaml)"
# A real server on the real engine; each operation of the description counts once. The script's
# own checks (no sandbox left on the engine, no crash in the server log) fail it as a whole.
bash scripts/api-fuzz.sh >"$LOGDIR/api-fuzz.log" 2>&1
fuzz_rc=$?
summary=$(grep -E '^=+ .*[0-9]+ (passed|failed|errored).* in [0-9.]+s =+$' "$LOGDIR/api-fuzz.log" | tail -1)
count() { sed -nE "s/.*[^0-9]([0-9]+) $1.*/\1/p" <<<" $summary"; }
fuzz_passed=$(count passed); fuzz_failed=$(count failed); fuzz_errored=$(count errored)
fuzz_passed=${fuzz_passed:-0}; fuzz_failed=$((${fuzz_failed:-0} + ${fuzz_errored:-0}))
((fuzz_rc != 0 && fuzz_failed == 0)) && fuzz_failed=1
((fuzz_failed > 0)) && grep -vE '^  - ' "$LOGDIR/api-fuzz.log" | tail -40
record api-fuzz "$fuzz_passed" "$fuzz_failed"

if [[ -z ${SKIP_CLUSTER:-} && -x scripts/test-cluster ]]; then
  step "Kubernetes test cluster"
  if bash scripts/test-cluster up; then
    record cluster-up 1 0
    bash test/cluster/run.sh 2>&1 | tee "$LOGDIR/cluster.log"
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$LOGDIR/cluster.log" | tail -1)
    if [[ -n $line ]]; then
      record cluster "$(cut -d' ' -f1 <<<"$line")" "$(cut -d' ' -f3 <<<"$line")"
    else
      record cluster 0 1
    fi
    step "Kubernetes client and provider on the cluster"
    eval "$(bash scripts/test-cluster env)"
    run_ctest k8s-cluster -L cluster -E 'ApiserverRestart\.'
    # Alone and last of the cluster's own tests: it stops the apiserver for 5 s, which would
    # fail whatever else talked to the cluster meanwhile.
    step "Kubernetes client across an apiserver restart"
    run_ctest k8s-restart -L cluster -R 'ApiserverRestart\.'
    step "The server inside the cluster (manifests with dryRun=All, image, Deployment, a sandbox)"
    bash test/cluster/incluster/run.sh 2>&1 | tee "$LOGDIR/incluster.log"
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$LOGDIR/incluster.log" | tail -1)
    if [[ -n $line ]]; then
      record in-cluster "$(cut -d' ' -f1 <<<"$line")" "$(cut -d' ' -f3 <<<"$line")"
    else
      record in-cluster 0 1
    fi
  else
    record cluster-up 0 1
  fi
fi

# After the cluster block: with its environment, the Kubernetes panel test runs on the real
# cluster; without it (SKIP_CLUSTER), that test is reported as skipped and not counted.
step "Web browser tests (Chromium, real server, Docker${AGENTPANE_TEST_SA_KUBECONFIG:+, cluster})"
(cd web && node --test --test-reporter=tap browser/) >"$LOGDIR/web-browser.log" 2>&1
browser_rc=$?
tap() { sed -nE "s/^# $1 ([0-9]+)$/\1/p" "$LOGDIR/web-browser.log" | tail -1; }
b_passed=$(tap pass); b_failed=$(tap fail); b_cancelled=$(tap cancelled); b_skipped=$(tap skipped)
b_passed=${b_passed:-0}; b_failed=$((${b_failed:-0} + ${b_cancelled:-0}))
((browser_rc != 0 && b_failed == 0)) && b_failed=1
((b_failed > 0)) && grep -E '^not ok|^# |error|Error' "$LOGDIR/web-browser.log" | head -40
((${b_skipped:-0} > 0)) && echo "-- web-browser: ${b_skipped} skipped (not counted)"
record web-browser "$b_passed" "$b_failed"

echo
((${#FAILURES[@]})) && echo "failing suites: ${FAILURES[*]} (logs in $LOGDIR)"
echo "$PASSED passed, $FAILED failed"
((FAILED == 0))
