#!/usr/bin/env bash
# Builds helm 3 and helm 4 from the Go modules pinned in v3/go.mod and v4/go.mod (one
# module each: their Kubernetes client libraries differ) and prints the directory holding
# `helm3` and `helm4`. Idempotent: binaries for the pinned versions are reused as they are;
# Go's own build and module caches (left at their defaults) make a rebuild on a warm
# machine cheap. To move to another release: `go get -tool helm.sh/helm/vN/cmd/helm@vX.Y.Z`
# in that directory.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PATH="/usr/local/go/bin:$PATH"

module_version() { # module_version DIR MODULE
  awk -v m="$2" '$1 == m && $2 ~ /^v/ { print $2; exit }' "$here/$1/go.mod"
}
v3="$(module_version v3 helm.sh/helm/v3)"
v4="$(module_version v4 helm.sh/helm/v4)"
if [[ -z "$v3" || -z "$v4" ]]; then
  echo "build.sh: cannot read the helm versions from $here/v3/go.mod and $here/v4/go.mod" >&2
  exit 1
fi

out="$here/../build/helm-${v3#v}-${v4#v}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

build() { # build NAME MAJOR VERSION [LDFLAGS]
  [[ -x "$out/$1" ]] && return
  # As upstream's Makefile: static, the version stamped in (else `helm version` says v3.22/v4.3
  # with "unreleased" metadata). Built to a temporary name so an interrupted build never
  # leaves a half-written binary.
  local pkg="helm.sh/helm/$2/internal/version"
  (cd "$here/$2" && CGO_ENABLED=0 go build -mod=readonly -buildvcs=false -trimpath \
    -ldflags "-s -w -X $pkg.version=$3 -X $pkg.metadata= -X $pkg.gitTreeState=clean ${4:-}" \
    -o "$out/$1.tmp" "helm.sh/helm/$2/cmd/helm")
  mv "$out/$1.tmp" "$out/$1"
}
# Helm 3 takes the Kubernetes version `helm template` and `lint` assume from ldflags (its
# Makefile derives it from client-go: v0.37.x is Kubernetes 1.37); without them it assumes
# 1.20. Helm 4 reads it from its client-go module at run time.
client_go_minor="$(awk '$1 == "k8s.io/client-go" { split($2, v, "."); print v[2]; exit }' "$here/v3/go.mod")"
k8s_v3=""
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  k8s_v3+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$client_go_minor"
done
build helm3 v3 "$v3" "$k8s_v3"
build helm4 v4 "$v4"

echo "$out"
