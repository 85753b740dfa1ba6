#!/usr/bin/env bash
# Builds kube-apiserver, kubectl, etcd and a node's kubelet, kube-controller-manager and
# kube-scheduler from the Go modules pinned in go.mod/go.sum and
# prints the directory holding the binaries. Idempotent: binaries for the pinned
# versions are reused as they are; Go's own build and module caches (left at their
# defaults) make a rebuild on a warm machine cheap.
#
# go.mod requires k8s.io/kubernetes and replaces every k8s.io staging module (the lines
# k8s.io/kubernetes's own go.mod pins at v0.0.0 and points at ./staging) with its published
# v0.Y.Z. etcd is go.etcd.io/etcd/server/v3 at the version that Kubernetes release pins,
# so one module graph serves them all: it matches upstream's go.mod for every shared
# dependency. To move to another release run ./update-go-mod.sh vX.Y.Z.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PATH="/usr/local/go/bin:$PATH"

module_version() {
  awk -v m="$1" '$1 == m && $2 ~ /^v/ { sub(/^v/, "", $2); print $2; exit }' "$here/go.mod"
}
kube="$(module_version k8s.io/kubernetes)"
etcd="$(module_version go.etcd.io/etcd/server/v3)"
if [[ -z "$kube" || -z "$etcd" ]]; then
  echo "build.sh: cannot read the k8s.io/kubernetes or etcd version from $here/go.mod" >&2
  exit 1
fi

out="$here/../build/kube-$kube-etcd-$etcd"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

# Without these, /version and `kubectl version` say v0.0.0-master. The same variables
# exist in component-base (servers) and client-go (clients).
minor="$(cut -d. -f2 <<<"$kube")"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=v$kube -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done

build() { # build NAME PACKAGE
  [[ -x "$out/$1" ]] && return
  # CGO off as in upstream release builds: static binaries, no C toolchain needed.
  # Build to a temporary name so an interrupted build never leaves a half-written binary.
  (cd "$here" && CGO_ENABLED=0 go build -mod=readonly -buildvcs=false -trimpath \
    -ldflags "$ldflags" -o "$out/$1.tmp" "$2")
  mv "$out/$1.tmp" "$out/$1"
}
build etcd go.etcd.io/etcd/server/v3
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
build kubectl k8s.io/kubernetes/cmd/kubectl
# The rest are for a real node (../node/): the kubelet and the two controllers that turn
# Deployments, Jobs and `kubectl run` into scheduled Pods. Linking each takes most of its
# time: the packages are mostly those the apiserver already compiled.
build kubelet k8s.io/kubernetes/cmd/kubelet
build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager
build kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler

echo "$out"
