#!/usr/bin/env bash
# Builds a node's container runtime from the Go modules pinned in go.mod/go.sum and prints
# the directory holding the binaries: containerd, its runc shim and ctr (which imports the
# locally built images), plus the CNI plugins the pod network uses in cni/ (bridge,
# host-local, and loopback, which containerd runs itself). No portmap: no test pod uses
# hostPort, and it would need iptables. runc itself is Debian's. The kubelet comes from ../kube
# (same k8s.io/kubernetes module as the apiserver). Idempotent: binaries for the pinned
# versions are reused as they are; Go's own caches make a rebuild on a warm machine cheap.
#
# containerd and the CNI plugins share one module graph (tidy takes the newer of each shared
# dependency). To move on, change their versions in go.mod and run `go mod tidy`.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PATH="/usr/local/go/bin:$PATH"

module_version() {
  awk -v m="$1" '$1 == m && $2 ~ /^v/ { sub(/^v/, "", $2); print $2; exit }' "$here/go.mod"
}
containerd="$(module_version github.com/containerd/containerd/v2)"
cni="$(module_version github.com/containernetworking/plugins)"
if [[ -z "$containerd" || -z "$cni" ]]; then
  echo "build.sh: cannot read the containerd or CNI plugins version from $here/go.mod" >&2
  exit 1
fi

out="$here/../build/node-containerd-$containerd-cni-$cni"
mkdir -p "$out/cni"
out="$(cd "$out" && pwd)"

build() { # build PATH PACKAGE [go build flags...]
  [[ -x "$out/$1" ]] && return
  # CGO off as in upstream's static releases (containerd then leaves out the btrfs
  # snapshotter, which needs cgo; overlayfs is what the node uses). Build to a temporary
  # name so an interrupted build never leaves a half-written binary.
  (cd "$here" && CGO_ENABLED=0 go build -mod=readonly -buildvcs=false -trimpath "${@:3}" -o "$out/$1.tmp" "$2")
  mv "$out/$1.tmp" "$out/$1"
}
pkg=github.com/containerd/containerd/v2
ldflags="-s -w -X $pkg/version.Version=v$containerd -X $pkg/version.Package=$pkg"
# Tags as containerd's Makefile sets them; the shim also drops gRPC (it speaks ttrpc).
build containerd $pkg/cmd/containerd -tags urfave_cli_no_docs -ldflags "$ldflags"
build containerd-shim-runc-v2 $pkg/cmd/containerd-shim-runc-v2 -tags "urfave_cli_no_docs no_grpc" -ldflags "$ldflags"
build ctr $pkg/cmd/ctr -tags urfave_cli_no_docs -ldflags "$ldflags"

cniPkg=github.com/containernetworking/plugins
cniLdflags="-s -w -X $cniPkg/pkg/utils/buildversion.BuildVersion=v$cni"
build cni/bridge $cniPkg/plugins/main/bridge -ldflags "$cniLdflags"
build cni/host-local $cniPkg/plugins/ipam/host-local -ldflags "$cniLdflags"
build cni/loopback $cniPkg/plugins/main/loopback -ldflags "$cniLdflags"

echo "$out"
