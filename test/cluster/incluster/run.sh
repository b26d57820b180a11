#!/usr/bin/env bash
# The server inside the real test cluster, deployed from `agentpane manifests`:
#   - every generated manifest (both workspace kinds) passes the apiserver with dryRun=All;
#   - the server image (scripts/build-server-image.sh) is imported into the cluster, the
#     manifests are applied into a namespace of this run (PodSecurity "restricted"), and the
#     Deployment becomes Ready: its pod was admitted under restricted;
#   - the server's egress is the cluster DNS and the apiserver's endpoints alone
#     (--apiserver-endpoint, from the kubernetes Service's Endpoints), and it still works:
#   - the server runs on its ServiceAccount's in-cluster credentials: a sandbox created
#     through its Service (the ClusterIP, reached from this host through kube-proxy) runs a
#     command and is removed;
#   - the ServiceAccount has exactly the verbs it needs: no PersistentVolumes without PV
#     workspaces, no Secrets, nothing outside its namespace but reading namespaces.
# One line per check ("PASS in-cluster: …" / "FAIL …") and "N passed, N failed" at the end; the
# namespace and the cluster-wide RBAC of the run are deleted at the end (also on interrupt).
#
#   test/cluster/incluster/run.sh       # needs build/agentpane (AGENTPANE_BIN to override)
#   CLUSTER_TEST_TIMEOUT=120 ...        # bound of each wait, seconds
#   INCLUSTER_KEEP=1 ...                # leave the namespace and its server for a look
set -uo pipefail

ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
TC=$ROOT_DIR/scripts/test-cluster
BIN=${AGENTPANE_BIN:-$ROOT_DIR/build/agentpane}
WAIT=${CLUSTER_TEST_TIMEOUT:-120}
RUN_ID=$(date +%s)$$
NS=agentpane-ic-$RUN_ID
IMAGE=agentpane/server:latest
PASS=0 FAIL=0

pass() { PASS=$((PASS + 1)); echo "PASS in-cluster: $1"; }
fail() { FAIL=$((FAIL + 1)); echo "FAIL in-cluster: $1${2:+: $2}"; }
finish() { echo "$PASS passed, $FAIL failed"; ((FAIL == 0)); exit $?; }

if [[ ! -x $BIN || ! -x $(dirname "$BIN")/agentpane-agent ]]; then
  fail "binaries" "no $BIN or no agentpane-agent beside it (bash scripts/build.sh agentpane agentpane-agent)"
  finish
fi
if ! "$TC" status >/dev/null 2>&1; then
  "$TC" up >/dev/null || { fail "cluster up"; finish; }
fi
eval "$("$TC" env)"
K() { timeout $((WAIT + 30)) kubectl --request-timeout=30s "$@"; }

made_namespace=0
cleanup() {
  ((made_namespace)) || return 0
  if [[ -n ${INCLUSTER_KEEP:-} ]]; then echo "# kept: namespace $NS, clusterrole(binding) agentpane:$NS"; return 0; fi
  K delete clusterrolebinding "agentpane:$NS" --ignore-not-found >/dev/null 2>&1
  K delete clusterrole "agentpane:$NS" --ignore-not-found >/dev/null 2>&1
  K delete namespace "$NS-probe" --ignore-not-found --wait=false >/dev/null 2>&1
  # The namespace goes with the server, its sandboxes and their pods.
  K delete namespace "$NS" --wait=true --timeout="${WAIT}s" >/dev/null 2>&1 ||
    echo "# namespace $NS still terminating after ${WAIT}s"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# until_ok TIMEOUT CMD...: CMD again every second until it succeeds or TIMEOUT seconds pass.
until_ok() {
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do ((SECONDS < deadline)) || return 1; sleep 1; done
}

# Where pods reach the apiserver: the kubernetes Service's endpoints (after kube-proxy).
mapfile -t ENDPOINTS < <(K -n default get endpoints kubernetes -o json |
  jq -r '.subsets[] | .addresses[].ip as $ip | .ports[] | "\($ip):\(.port)"')
EP_FLAGS=()
for e in "${ENDPOINTS[@]}"; do EP_FLAGS+=(--apiserver-endpoint "$e"); done

# ---- every manifest, with dryRun=All --------------------------------------------------------
# Into the cluster's existing sandbox namespace (namespaced objects need their namespace to
# exist; a dry run creates nothing), for each workspace kind.
for variant in "--workspace emptyDir" "--workspace pvc" "--workspace pvc --storage-class standard" \
  "--workspace emptyDir ${EP_FLAGS[*]}"; do
  # shellcheck disable=SC2086  # the variant is a fixed list of flags
  out=$("$BIN" manifests $variant | K apply --dry-run=server -f - 2>&1)
  want=$("$BIN" manifests $variant --json | jq '.items | length')
  got=$(grep -c '(server dry run)$' <<<"$out")
  if [[ $got == "$want" ]] && ! grep -q '^Error' <<<"$out"; then
    pass "manifests ($variant) accepted with dryRun=All ($got objects)"
  else
    fail "manifests ($variant) with dryRun=All" "$(grep -v 'server dry run' <<<"$out" | head -5)"
  fi
done

# ---- the server image in the cluster --------------------------------------------------------
if bash "$ROOT_DIR/scripts/build-server-image.sh" "$BIN" >/tmp/agentpane-ic-image.$$ 2>&1 &&
  "$TC" import-image "$IMAGE" >>/tmp/agentpane-ic-image.$$ 2>&1; then
  pass "server image built from the binary and imported into the cluster"
else
  fail "server image" "$(tail -5 /tmp/agentpane-ic-image.$$)"
  rm -f /tmp/agentpane-ic-image.$$
  finish
fi
rm -f /tmp/agentpane-ic-image.$$

# ---- deploy ---------------------------------------------------------------------------------
TOKEN=$(openssl rand -hex 32)
made_namespace=1
if ((${#ENDPOINTS[@]} == 0)); then
  fail "apiserver endpoints" "the kubernetes Service has no endpoints"
  finish
fi
if out=$("$BIN" manifests --namespace "$NS" --image "$IMAGE" --image-pull-policy Never \
  --sandbox-image-pull-policy Never "${EP_FLAGS[@]}" | K apply -f - 2>&1) &&
  out2=$(K -n "$NS" create secret generic agentpane-token --from-literal=token="$TOKEN" 2>&1); then
  pass "manifests applied into namespace $NS"
else
  fail "apply manifests" "$out ${out2:-}"
  finish
fi

# The server's egress as applied: DNS, then exactly the apiserver's endpoints.
got=$(K -n "$NS" get networkpolicy agentpane-server -o json |
  jq -r '.spec.egress[1:][] | .to[0].ipBlock.cidr as $c | .ports[] | "\($c)|\(.port)"' | sort)
want=$(for e in "${ENDPOINTS[@]}"; do echo "${e%:*}/32|${e##*:}"; done | sort)
dns=$(K -n "$NS" get networkpolicy agentpane-server -o json | jq -c '.spec.egress[0].ports')
if [[ $got == "$want" && $dns == *'"port":53'* ]]; then
  pass "server egress: DNS and the apiserver's endpoints only ($(tr '\n' ' ' <<<"$got"))"
else
  fail "server egress policy" "got [$got] want [$want] dns $dns"
fi

level=$(K get namespace "$NS" -o jsonpath='{.metadata.labels.pod-security\.kubernetes\.io/enforce}')
if K -n "$NS" rollout status deployment/agentpane-server --timeout="${WAIT}s" >/dev/null 2>&1; then
  pass "Deployment agentpane-server Ready"
else
  fail "Deployment Ready within ${WAIT}s" "$(K -n "$NS" get pods -o wide 2>&1 | tail -3; K -n "$NS" get events --sort-by=.lastTimestamp 2>&1 | tail -5; K -n "$NS" logs deployment/agentpane-server --tail=20 2>&1)"
  finish
fi
POD=$(K -n "$NS" get pods -l app.kubernetes.io/component=server -o jsonpath='{.items[0].metadata.name}')
# Admitted by the namespace's PodSecurity (enforce=restricted): the pod exists and runs. The
# apiserver's own verdict on the running pod's spec, asked again with a dry-run create.
verdict=$(K -n "$NS" get pod "$POD" -o json |
  jq 'del(.metadata.uid, .metadata.resourceVersion, .metadata.creationTimestamp, .metadata.ownerReferences, .metadata.generateName, .status) | .metadata.name = "pss-check"' |
  K create --dry-run=server -f - 2>&1)
if [[ $level == restricted && $verdict == *"created (server dry run)"* && $verdict != *Warning* ]]; then
  pass "server pod admitted under PodSecurity restricted (namespace enforce=$level)"
else
  fail "PodSecurity restricted" "namespace enforce=$level; $verdict"
fi

# In-cluster credentials: the provider's apiserver is the kubernetes Service, from the
# ServiceAccount token (the log line of buildProviders).
logs=$(K -n "$NS" logs "$POD" 2>&1)
if grep -qE "Kubernetes provider [^ ]*: https://" <<<"$logs" && grep -q "namespace $NS)" <<<"$logs"; then
  pass "server uses in-cluster credentials ($(grep -oE "Kubernetes provider [^ ]*: [^ ]*" <<<"$logs" | head -1))"
else
  fail "in-cluster credentials" "$(tail -10 <<<"$logs")"
fi

# ---- a sandbox through the Service ----------------------------------------------------------
IP=$(K -n "$NS" get service agentpane-server -o jsonpath='{.spec.clusterIP}')
export AGENTPANE_URL=http://$IP:7300 AGENTPANE_TOKEN=$TOKEN
if until_ok 30 curl -fsS --max-time 5 "$AGENTPANE_URL/api/health"; then
  pass "Service reachable at its ClusterIP ($AGENTPANE_URL)"
else
  fail "Service at $AGENTPANE_URL" "no answer within 30s"
  finish
fi
status=$(curl -fsS --max-time 20 -H "Authorization: Bearer $TOKEN" "$AGENTPANE_URL/api/sandbox/k8s/status" 2>&1)
if [[ $(jq -r '.data.connected' <<<"$status" 2>/dev/null) == true ]]; then
  pass "k8s status through the server: connected ($(jq -r '.data.version // empty' <<<"$status"))"
else
  fail "k8s status through the server" "$status"
fi

created=$(timeout $((WAIT + 30)) "$BIN" sandbox create --provider kubernetes \
  --project-path /projects/scratch --json 2>&1)
ID=$(jq -r '.id // .data.id // empty' <<<"$created" 2>/dev/null)
if [[ -n $ID ]] && K -n "$NS" get pod "agentpane-$ID" >/dev/null 2>&1; then
  pass "sandbox $ID created through the in-cluster server (pod agentpane-$ID in $NS)"
else
  fail "sandbox create through the server" "$created"
  finish
fi
out=$(timeout 60 "$BIN" exec "$ID" -- echo in-cluster-exec-ok 2>&1)
rc=$?
if [[ $rc -eq 0 && $out == *in-cluster-exec-ok* ]]; then
  # Which way the exec went (the exec channel's agent, or the provider's own exec): reported.
  path=$(curl -fsS --max-time 10 -H "Authorization: Bearer $TOKEN" "$AGENTPANE_URL/metrics" 2>/dev/null |
    grep -E '^agentpane_exec_path_total' | awk '$2 > 0 {print $1}' | tr '\n' ' ')
  pass "command run in the sandbox through the server (${path:-exec path not in /metrics})"
else
  fail "exec through the server" "exit $rc: $out"
fi
out=$(timeout $((WAIT + 30)) "$BIN" sandbox rm "$ID" 2>&1)
if [[ $? -eq 0 ]] && ! K -n "$NS" get pod "agentpane-$ID" >/dev/null 2>&1; then
  pass "sandbox removed (its pod is gone)"
else
  fail "sandbox rm" "$out"
fi

# With only its own verbs the server never met a refusal (reconcile, list, cleanup and the
# create all stayed inside them: no PersistentVolume call without PV workspaces).
logs=$(K -n "$NS" logs "$POD" 2>&1)
if grep -qiE 'K8S_FORBIDDEN|forbidden' <<<"$logs"; then
  fail "server log without refusals" "$(grep -iE 'K8S_FORBIDDEN|forbidden' <<<"$logs" | head -3)"
else
  pass "server log shows no RBAC refusal"
fi

# ---- the server's egress, from inside its pod ------------------------------------------------
# A listener this test starts in a namespace of its own (no policy there). A probe container
# added to the server's pod (an ephemeral container: it shares the pod's network namespace, so
# the server's NetworkPolicy governs it) reaches an apiserver endpoint but not the listener;
# the same probe from a pod of the listener's namespace reaches it (the listener is up).
PROBE_NS=$NS-probe
SANDBOX_IMAGE=agentpane/sandbox:latest
SEC='"securityContext":{"runAsNonRoot":true,"runAsUser":1000,"runAsGroup":1000,"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]},"seccompProfile":{"type":"RuntimeDefault"}}'
# probe_cmd HOST PORT: bash's /dev/tcp connect, 5 s at most; prints "open" or "closed".
# (kube-router refuses what a policy does not allow: "closed" comes at once, not after 5 s.)
probe_cmd() { echo "if timeout 5 bash -c 'exec 3<>/dev/tcp/$1/$2' 2>/dev/null; then echo open; else echo closed; fi"; }
if K create namespace "$PROBE_NS" >/dev/null 2>&1 &&
  K -n "$PROBE_NS" run listener --image="$SANDBOX_IMAGE" --image-pull-policy=Never --restart=Never \
    --overrides='{"spec":{"terminationGracePeriodSeconds":0,"containers":[{"name":"listener","image":"'"$SANDBOX_IMAGE"'","imagePullPolicy":"Never","command":["python3","-m","http.server","8080"],'"$SEC"'}]}}' >/dev/null 2>&1 &&
  K -n "$PROBE_NS" wait --for=condition=Ready pod/listener --timeout="${WAIT}s" >/dev/null 2>&1; then
  LISTENER=$(K -n "$PROBE_NS" get pod listener -o jsonpath='{.status.podIP}')
  # From a pod of its own namespace (no policy): open.
  K -n "$PROBE_NS" run control --image="$SANDBOX_IMAGE" --image-pull-policy=Never --restart=Never \
    --overrides='{"spec":{"containers":[{"name":"control","image":"'"$SANDBOX_IMAGE"'","imagePullPolicy":"Never","command":["bash","-c","'"$(probe_cmd "$LISTENER" 8080)"'"],'"$SEC"'}]}}' >/dev/null 2>&1
  until_ok "$WAIT" bash -c "[[ \$(kubectl -n $PROBE_NS get pod control -o jsonpath='{.status.phase}') == Succeeded ]]"
  control=$(K -n "$PROBE_NS" logs control 2>&1)
  # From the server's pod: the apiserver (its own egress) and the listener.
  api=${ENDPOINTS[0]}
  probe=$(probe_cmd "${api%:*}" "${api##*:}"); probe+="; $(probe_cmd "$LISTENER" 8080)"
  K -n "$NS" get pod "$POD" -o json |
    jq --arg image "$SANDBOX_IMAGE" --arg probe "$probe" --argjson sec "{$SEC}" \
      '.spec.ephemeralContainers += [{name: "egress-probe", image: $image, imagePullPolicy: "Never", command: ["bash", "-c", $probe], securityContext: $sec.securityContext}]' |
    K replace --raw "/api/v1/namespaces/$NS/pods/$POD/ephemeralcontainers" -f - >/dev/null 2>&1
  until_ok "$WAIT" bash -c "kubectl -n $NS get pod $POD -o json | jq -e '.status.ephemeralContainerStatuses[]? | select(.name == \"egress-probe\") | .state.terminated' >/dev/null"
  from_server=$(K -n "$NS" logs "$POD" -c egress-probe 2>&1 | tr '\n' ' ')
  if [[ $control == open* && $from_server == "open closed " ]]; then
    pass "server egress enforced: from its pod the apiserver ($api) is open, a listener pod ($LISTENER:8080) is not; from an unrestricted pod it is"
  else
    fail "server egress enforced" "control pod: [$control]; from the server pod (apiserver, listener): [$from_server]"
  fi
else
  fail "egress probe listener" "$(K -n "$PROBE_NS" get pods 2>&1 | tail -2)"
fi

# ---- least privilege of the ServiceAccount --------------------------------------------------
SA=system:serviceaccount:$NS:agentpane
can() { K auth can-i --as="$SA" "$@" 2>/dev/null; }
bad=()
for v in "create pods" "get pods/exec" "create pods/exec" "list events" "get namespaces"; do
  # shellcheck disable=SC2086
  [[ $(can $v -n "$NS") == yes ]] || bad+=("missing: $v")
done
for v in "create persistentvolumes" "list persistentvolumes" "get secrets" "create namespaces" \
  "delete namespaces" "create deployments.apps" "create roles.rbac.authorization.k8s.io"; do
  # shellcheck disable=SC2086
  [[ $(can $v -n "$NS") == no ]] || bad+=("granted: $v")
done
# Nothing namespaced outside its own namespace.
[[ $(can create pods -n default) == no ]] || bad+=("granted: create pods in default")
if ((${#bad[@]} == 0)); then
  pass "ServiceAccount least privilege (needed verbs granted; PVs, Secrets, other namespaces not)"
else
  fail "ServiceAccount least privilege" "${bad[*]}"
fi

finish
