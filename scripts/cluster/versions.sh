# shellcheck shell=bash disable=SC2034
# Pinned versions of everything the test cluster builds. Sourced by scripts/test-cluster
# and scripts/cluster/build.sh. The go.mod files under scripts/cluster/{k8s,coredns,
# kube-router}/ hold the same pins; change both together.
K8S_VERSION=v1.30.14          # k8s.io/kubernetes (staging modules at v0.30.14)
COREDNS_VERSION=v1.14.7        # github.com/coredns/coredns
KUBE_ROUTER_VERSION=v2.1.0     # github.com/cloudnativelabs/kube-router/v2 (the newest the Go proxy here serves)
CACHE_ROOT=${AGENTPANE_CACHE:-/var/cache/agentpane}
K8S_BIN=$CACHE_ROOT/k8s/$K8S_VERSION/bin
export GOPATH=$CACHE_ROOT/go/path
export GOMODCACHE=$CACHE_ROOT/go/path/pkg/mod
export GOCACHE=$CACHE_ROOT/go/cache
export GOTOOLCHAIN=local
export GOFLAGS=-buildvcs=false
