#!/usr/bin/env bash
# Builds the test collector from the Go modules pinned in go.mod/go.sum and prints the
# binary's path. Idempotent: a binary for the pinned version is reused as is; Go's own
# build and module caches (left at their defaults) make a rebuild on a warm machine cheap.
# To move to another release train, change every collector module in go.mod together, then
# `go mod tidy -e`: plain tidy stops on a test-only dependency of fileexporter
# (otlpencodingextension) that the module proxy here refuses with 403.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PATH="/usr/local/go/bin:$PATH"

version="$(awk '$1 == "go.opentelemetry.io/collector/otelcol" { sub(/^v/, "", $2); print $2 }' "$here/go.mod")"
if [[ -z "$version" ]]; then
  echo "build.sh: cannot read the otelcol version from $here/go.mod" >&2
  exit 1
fi

out="$here/../build/otelcol-$version/otelcol"
if [[ ! -x "$out" ]]; then
  mkdir -p "$(dirname "$out")"
  # Build to a temporary name so an interrupted build never leaves a half-written binary.
  (cd "$here" && go build -mod=readonly -buildvcs=false -trimpath \
    -ldflags "-s -w -X main.version=$version" -o "$out.tmp" .)
  mv "$out.tmp" "$out"
fi
echo "$(cd "$(dirname "$out")" && pwd)/otelcol"
