#!/usr/bin/env bash
# Builds the test cluster DNS (CoreDNS with the plugins main.go names) from the Go modules
# pinned in go.mod/go.sum and prints the binary's path. Idempotent: a binary for the pinned
# version is reused as is; Go's own build and module caches (left at their defaults) make a
# rebuild on a warm machine cheap. Built at the lowest CPU priority: the machine is shared.
# To move to another release: `go get github.com/coredns/coredns@vX.Y.Z && go mod tidy`.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PATH="/usr/local/go/bin:$PATH"

version="$(awk '($1 == "github.com/coredns/coredns" && $2 ~ /^v/) { v = $2 } ($1 == "require" && $2 == "github.com/coredns/coredns") { v = $3 } END { sub(/^v/, "", v); print v }' "$here/go.mod")"
if [[ -z "$version" ]]; then
  echo "build.sh: cannot read the coredns version from $here/go.mod" >&2
  exit 1
fi

out="$here/../build/coredns-$version/coredns"
if [[ ! -x "$out" ]]; then
  mkdir -p "$(dirname "$out")"
  # Build to a temporary name so an interrupted build never leaves a half-written binary.
  (cd "$here" && CGO_ENABLED=0 nice -n 19 go build -mod=readonly -buildvcs=false -trimpath \
    -ldflags "-s -w" -o "$out.tmp" .)
  mv "$out.tmp" "$out"
fi
echo "$(cd "$(dirname "$out")" && pwd)/coredns"
