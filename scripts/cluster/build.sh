#!/usr/bin/env bash
# Builds every binary and image input of the test cluster into the cache
# ($CACHE_ROOT/k8s/$K8S_VERSION/bin), outside the clone. Idempotent: a component whose
# binary is already there is skipped. Usage: build.sh [k8s|coredns|kube-router|pause|all]...
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/versions.sh"
mkdir -p "$K8S_BIN" "$GOCACHE" "$GOMODCACHE"
JOBS=${BUILD_JOBS:-2}
log() { printf '[build] %s\n' "$*"; }

build_k8s() {
  local cmds=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl kube-proxy)
  local missing=() c
  for c in "${cmds[@]}"; do [[ -x $K8S_BIN/$c ]] || missing+=("$c"); done
  ((${#missing[@]})) || { log "kubernetes $K8S_VERSION: cached"; return 0; }
  local v=${K8S_VERSION#v} major minor
  major=${v%%.*}; minor=${v#*.}; minor=${minor%%.*}
  # buildDate: the release's publication time as the Go proxy records it (reproducible);
  # the module carries no commit id, so gitCommit is left empty rather than "$Format:%H$".
  local date
  local info
  info=$(cd "$HERE/k8s" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
    sed -n 's/.*"Info": *"\([^"]*\)".*/\1/p')
  date=$(sed -n 's/.*"Time": *"\([^"]*\)".*/\1/p' "$info" 2>/dev/null || true)
  [[ -n $date ]] || date=1970-01-01T00:00:00Z
  local ld="-s -w"
  local p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=$major -X $p.gitMinor=$minor"
    ld+=" -X $p.gitTreeState=clean -X $p.buildDate=$date -X $p.gitCommit="
  done
  local tmp="$K8S_BIN/.tmp.$$"; mkdir -p "$tmp"
  for c in "${missing[@]}"; do
    log "building $c $K8S_VERSION (go build -p $JOBS; minutes on a cold cache)"
    (cd "$HERE/k8s" && CGO_ENABLED=0 go build -mod=mod -p "$JOBS" -trimpath -ldflags "$ld" \
        -o "$tmp/$c" "k8s.io/kubernetes/cmd/$c")
    mv "$tmp/$c" "$K8S_BIN/$c"
  done
  rmdir "$tmp"
}

build_coredns() {
  if [[ -x $K8S_BIN/coredns && $(cat "$K8S_BIN/.coredns.version" 2>/dev/null) == "$COREDNS_VERSION" ]]; then
    log "coredns $COREDNS_VERSION: cached"; return 0
  fi
  log "building coredns $COREDNS_VERSION"
  (cd "$HERE/coredns" && CGO_ENABLED=0 go build -mod=mod -p "$JOBS" -trimpath -ldflags "-s -w" \
      -o "$K8S_BIN/coredns.tmp" .)
  mv "$K8S_BIN/coredns.tmp" "$K8S_BIN/coredns"
  echo "$COREDNS_VERSION" >"$K8S_BIN/.coredns.version"
}

build_kube_router() {
  if [[ -x $K8S_BIN/kube-router && $(cat "$K8S_BIN/.kube-router.version" 2>/dev/null) == "$KUBE_ROUTER_VERSION" ]]; then
    log "kube-router $KUBE_ROUTER_VERSION: cached"; return 0
  fi
  log "building kube-router $KUBE_ROUTER_VERSION"
  (cd "$HERE/kube-router" && CGO_ENABLED=0 go build -mod=mod -p "$JOBS" -trimpath \
      -ldflags "-s -w -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$KUBE_ROUTER_VERSION" \
      -o "$K8S_BIN/kube-router.tmp" github.com/cloudnativelabs/kube-router/v2/cmd/kube-router)
  mv "$K8S_BIN/kube-router.tmp" "$K8S_BIN/kube-router"
  echo "$KUBE_ROUTER_VERSION" >"$K8S_BIN/.kube-router.version"
}

build_pause() {
  [[ -x $K8S_BIN/pause ]] && { log "pause: cached"; return 0; }
  log "building pause (gcc -static)"
  gcc -static -Os -o "$K8S_BIN/pause.tmp" "$HERE/pause.c"
  strip "$K8S_BIN/pause.tmp"
  mv "$K8S_BIN/pause.tmp" "$K8S_BIN/pause"
}

targets=("$@"); ((${#targets[@]})) || targets=(all)
for t in "${targets[@]}"; do
  case $t in
    k8s) build_k8s ;;
    coredns) build_coredns ;;
    kube-router) build_kube_router ;;
    pause) build_pause ;;
    all) build_pause; build_k8s; build_coredns; build_kube_router ;;
    *) echo "unknown target $t" >&2; exit 2 ;;
  esac
done
