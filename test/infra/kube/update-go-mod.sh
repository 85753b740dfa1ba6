#!/usr/bin/env bash
# Rewrites go.mod for another Kubernetes release: ./update-go-mod.sh v1.36.3
# k8s.io/kubernetes cannot be required as is: its go.mod pins the staging modules
# (k8s.io/api, k8s.io/apiserver, ...) at v0.0.0 and replaces them with ./staging paths,
# which only work inside its own repository. Each staging module is published as
# v0.Y.Z for release v1.Y.Z, so we replace every one with that. etcd server follows the
# release: the version k8s.io/kubernetes's go.mod pins (the one it was tested with).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PATH="/usr/local/go/bin:$PATH"

kube="${1:?usage: $0 vX.Y.Z}"
staging="v0.${kube#v1.}"
upstream="$(go mod download -json "k8s.io/kubernetes@$kube" | sed -n 's/^\s*"GoMod": "\(.*\)",$/\1/p')"
etcd="$(awk '$1 == "go.etcd.io/etcd/server/v3" { print $2 }' "$upstream")"

{
  cat <<EOF
module microenforcer.dev/test/infra/kube

go 1.26.0

// The binaries build.sh builds; tidy keeps what they need.
tool (
	go.etcd.io/etcd/server/v3
	k8s.io/kubernetes/cmd/kube-apiserver
	k8s.io/kubernetes/cmd/kube-controller-manager
	k8s.io/kubernetes/cmd/kube-scheduler
	k8s.io/kubernetes/cmd/kubectl
	k8s.io/kubernetes/cmd/kubelet
)

require (
	go.etcd.io/etcd/server/v3 $etcd
	k8s.io/kubernetes $kube
)

replace (
EOF
  awk -v v="$staging" '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" { printf "\t%s => %s %s\n", $1, $1, v }' "$upstream" | sort -u
  echo ")"
} >"$here/go.mod"

# Plain tidy works for v1.36.3; if the proxy ever refuses a test-only module, use -e.
(cd "$here" && go mod tidy)
echo "go.mod now at k8s.io/kubernetes $kube, staging $staging, etcd $etcd"
