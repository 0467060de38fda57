#!/usr/bin/env bash
# Builds the real Kubernetes components meshrev's tests run against (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl, kwok) and helm (the chart test renders
# deploy/charts/meshrev with it) from their Go modules, and caches the binaries outside the repo keyed
# by version. Only missing binaries are built. Prints the directory
# holding the binaries as its last line.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
K8S_VERSION="$(awk '$1=="k8s.io/kubernetes" && $2 ~ /^v/ {print $2; exit}' "$HERE/k8s/go.mod")"
KWOK_VERSION="v0.8.0"
HELM_VERSION="v4.3.1"
CACHE_ROOT="${MESHREV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshrev}"
BIN_DIR="$CACHE_ROOT/k8s-$K8S_VERSION-kwok-$KWOK_VERSION/bin"
mkdir -p "$BIN_DIR"

export CGO_ENABLED=0 GOTOOLCHAIN="${GOTOOLCHAIN:-local}" GOFLAGS="-buildvcs=false"

major="${K8S_VERSION#v}"; major="${major%%.*}"
minor="${K8S_VERSION#v*.}"; minor="${minor%%.*}"
build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done

log() { printf '[build-k8s] %s\n' "$*" >&2; }

# Runs "$@" while printing a heartbeat with the elapsed time, so a cold build (many minutes on two
# cores) is visibly alive.
with_progress() {
  local what="$1"; shift
  local start=$SECONDS
  ( while sleep 30; do log "  ... still building $what ($((SECONDS - start))s)"; done ) &
  local ticker=$!
  local rc=0
  "$@" || rc=$?
  kill "$ticker" 2>/dev/null || true
  wait "$ticker" 2>/dev/null || true
  if [ "$rc" -ne 0 ]; then log "FAILED building $what after $((SECONDS - start))s"; return "$rc"; fi
  log "built $what in $((SECONDS - start))s"
}

build_tool() { # name go-package
  local name="$1" pkg="$2"
  if [ -x "$BIN_DIR/$name" ]; then return 0; fi
  log "building $name ($pkg @ $K8S_VERSION)"
  with_progress "$name" bash -c "cd '$HERE/k8s' && go build -trimpath -tags selinux,notest \
    -ldflags '$ldflags' -o '$BIN_DIR/$name.tmp' '$pkg' && mv '$BIN_DIR/$name.tmp' '$BIN_DIR/$name'"
}

total_start=$SECONDS
build_tool etcd go.etcd.io/etcd/server/v3
build_tool kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
build_tool kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager
build_tool kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler
build_tool kubectl k8s.io/kubernetes/cmd/kubectl
if [ ! -x "$BIN_DIR/kwok" ]; then
  log "building kwok (sigs.k8s.io/kwok/cmd/kwok @ $KWOK_VERSION)"
  with_progress kwok bash -c "GOBIN='$BIN_DIR' go install -trimpath -ldflags '-s -w' sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
fi
# helm does not change the cluster, so it shares the directory (and its key) with the cluster binaries.
if [ ! -x "$BIN_DIR/helm" ]; then
  log "building helm (helm.sh/helm/v4/cmd/helm @ $HELM_VERSION)"
  with_progress helm bash -c "GOBIN='$BIN_DIR' go install -trimpath -ldflags '-s -w' helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
fi
log "binaries ready in $BIN_DIR ($((SECONDS - total_start))s)"
echo "$BIN_DIR"
