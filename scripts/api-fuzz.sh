#!/usr/bin/env bash
# Fuzzes the real server (real Docker engine) from docs/openapi.yaml with schemathesis:
# every route, a bounded number of examples each. Fails on any 5xx, any answer that the
# description does not allow (status, content type, body schema), any error without a code
# of the catalogue, and any sandbox left on the engine after the run.
#   bash scripts/api-fuzz.sh            # AP_FUZZ_EXAMPLES (default 50) examples per operation
# Schemathesis lives in a venv under /var/cache/agentpane/ (made once; later runs reuse it).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
EXAMPLES=${AP_FUZZ_EXAMPLES:-50}
VENV=/var/cache/agentpane/schemathesis-venv
ST_VERSION=('schemathesis==3.39.16' 'hypothesis>=6.108,<6.120')  # newer hypothesis breaks 3.39

if [[ ! -x $VENV/bin/st ]]; then
  echo "[api-fuzz] installing schemathesis into $VENV"
  python3 -m venv "$VENV" && "$VENV/bin/pip" install -q "${ST_VERSION[@]}" || {
    echo "[api-fuzz] cannot install schemathesis"; exit 1; }
fi

WORK=$(mktemp -d /tmp/agentpane-fuzz.XXXXXX)
HOME_DIR=$WORK/home
PROJECT=$WORK/projects/fuzz-project
mkdir -p "$HOME_DIR" "$PROJECT" "$WORK/projects/fixture"
chown 1000:1000 "$PROJECT" "$WORK/projects/fixture" 2>/dev/null || true
# The sandboxes of this server carry its instance label (serve_main.cpp: sha256 of the
# canonical home, 12 hex digits): that is how the engine's containers are counted.
INSTANCE=$(printf '%s' "$(realpath "$HOME_DIR")" | sha256sum | cut -c1-12)
engine_sandboxes() {
  docker ps -aq --filter "label=agentpane.io/instance=$INSTANCE" | sort
}
SERVER_PID=
cleanup() {
  [[ -n $SERVER_PID ]] && kill -TERM "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  local left
  left=$(engine_sandboxes)
  [[ -n $left ]] && docker rm -f $left >/dev/null 2>&1
  # The warm pools' slot roots are mounts that outlive the server (docs/warm-pool.md).
  for m in "$HOME_DIR"/warm-slots/*; do [[ -d $m ]] && umount -l "$m" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT

before=$(engine_sandboxes)
./build/agentpane serve --listen 127.0.0.1:0 --home "$HOME_DIR" --project-root "$WORK/projects" \
  --reconcile-seconds 3600 --warm-pool-limit 2 >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 200); do [[ -s $HOME_DIR/address ]] && break; sleep 0.1; done
[[ -s $HOME_DIR/address ]] || { echo "[api-fuzz] server did not start"; cat "$WORK/server.log"; exit 1; }
URL=$(cat "$HOME_DIR/address")
TOKEN=$(cat "$HOME_DIR/token")

# The codes of the catalogue, from the description (test/unit/server/openapi_test.cpp keeps it
# complete).
CODES=$("$VENV/bin/python3" -c '
import sys, yaml
s = yaml.safe_load(open(sys.argv[1]))
print(",".join(s["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"]))
' docs/openapi.yaml)

# A real sandbox, a tmux session in it and a profile of its own, whose ids the hooks put into
# some path parameters: without them every operation on /api/sandboxes/{id}/... would only
# ever see a 404 for a random id.
api() {  # api METHOD PATH [JSON]
  curl -fsS -X "$1" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    ${3:+--data "$3"} "$URL$2"
}
field() { "$VENV/bin/python3" -c 'import sys, json; print(json.load(sys.stdin)["data"][sys.argv[1]])' "$1"; }
SANDBOX=$(api POST /api/sandboxes "{\"projectPath\":\"$WORK/projects/fixture\"}" | field id) ||
  { echo "[api-fuzz] cannot create the fixture sandbox"; tail -20 "$WORK/server.log"; exit 1; }
api POST "/api/sandboxes/$SANDBOX/tmux" '{"name":"fuzz"}' >/dev/null ||
  { echo "[api-fuzz] cannot create the fixture tmux session"; exit 1; }
PROFILE=$(api POST /api/sandbox-configs '{"name":"fuzz-profile"}' | field id) ||
  { echo "[api-fuzz] cannot create the fixture profile"; exit 1; }

echo "[api-fuzz] $URL, $EXAMPLES examples per operation (fixture sandbox $SANDBOX, profile $PROFILE)"
AP_FUZZ_CODES=$CODES AP_FUZZ_PROJECT=$PROJECT PYTHONPATH=$ROOT/scripts \
AP_FUZZ_SANDBOX=$SANDBOX AP_FUZZ_TMUX=fuzz AP_FUZZ_PROFILE=$PROFILE \
HYPOTHESIS_STORAGE_DIRECTORY=$WORK/hypothesis \
SCHEMATHESIS_HOOKS=api_fuzz_hooks \
  "$VENV/bin/st" run docs/openapi.yaml --base-url "$URL" \
  -H "Authorization: Bearer $TOKEN" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,error_has_code \
  --hypothesis-max-examples "$EXAMPLES" --hypothesis-derandomize \
  --hypothesis-suppress-health-check all \
  --request-timeout 60000 --workers 1 --no-color 2>&1 | tee "$WORK/st.log" | tail -60
st_rc=${PIPESTATUS[0]}

# Warm pools the fuzz made (profiles with warmPoolMin, prewarm) are emptied first: warm
# sandboxes are nobody's and not listed, but they are the server's.
for profile in $(curl -fsS -H "Authorization: Bearer $TOKEN" "$URL/api/sandbox/pool" |
                 "$VENV/bin/python3" -c 'import sys, json; [print(p["profileId"]) for p in json.load(sys.stdin)["data"]["pools"]]'); do
  api POST /api/sandbox/pool/prewarm "{\"count\":0,\"profile\":\"$profile\"}" >/dev/null ||
    { echo "[api-fuzz] emptying the warm pool of $profile failed"; st_rc=1; }
done
# No leak: what the API still lists is removed through the API, then the engine must hold
# nothing of this server.
for id in $(curl -fsS -H "Authorization: Bearer $TOKEN" "$URL/api/sandboxes" |
            "$VENV/bin/python3" -c 'import sys, json; [print(s["id"]) for s in json.load(sys.stdin)["data"]]'); do
  curl -fsS -X DELETE -H "Authorization: Bearer $TOKEN" "$URL/api/sandboxes/$id" >/dev/null ||
    { echo "[api-fuzz] DELETE $id failed"; st_rc=1; }
done
created=$(curl -fsS -H "Authorization: Bearer $TOKEN" "$URL/api/audit?limit=1000" |
  "$VENV/bin/python3" -c 'import sys, json; print(sum(1 for e in json.load(sys.stdin)["data"] if e["action"] == "sandbox.create" and e["ok"]))')
# A deleted profile's pool drains without waiting: its creates in flight end (removing what
# they made) shortly after; look again for up to 30 s before calling anything a leak.
for _ in $(seq 60); do
  after=$(engine_sandboxes)
  [[ "$after" == "$before" ]] && break
  sleep 0.5
done
if [[ "$after" != "$before" ]]; then
  echo "[api-fuzz] LEAK: containers of this server left on the engine: $after"
  st_rc=1
fi
grep -q 'panicked\|terminate called\|Segmentation' "$WORK/server.log" && {
  echo "[api-fuzz] the server log shows a crash"; tail -20 "$WORK/server.log"; st_rc=1; }
kill -0 "$SERVER_PID" 2>/dev/null || { echo "[api-fuzz] the server died"; tail -20 "$WORK/server.log"; st_rc=1; }
# Everything the fuzz did is in the audit ledger, and the ledger's chain holds.
"$ROOT/build/agentpane" audit verify --dir "$HOME_DIR/audit" >"$WORK/verify.log" 2>&1 ||
  { echo "[api-fuzz] audit verify failed"; cat "$WORK/verify.log"; st_rc=1; }
echo "[api-fuzz] sandboxes the fuzz created on the engine: $created; engine clean: $([[ -z $after ]] && echo yes || echo no)"
((st_rc == 0)) && echo "[api-fuzz] PASS" || echo "[api-fuzz] FAIL"
exit "$st_rc"
