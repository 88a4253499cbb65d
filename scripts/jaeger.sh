#!/usr/bin/env bash
# Build (or reuse) Jaeger (v2, the OpenTelemetry-collector-based `jaeger` program) from the Go
# module proxy, pinned in tools/jaeger/go.mod. The data-path tests send traces to it as a real
# OTLP backend and read them back through its query API. Cached outside the repository, keyed by
# go.mod, go.sum and the Go version. Prints the binary's path on stdout; progress goes to stderr.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
src=$root/tools/jaeger
key=$( { cat "$src/go.mod" "$src/go.sum"; go version; } | sha256sum | cut -c1-16)
cache=${JAEGER_CACHE:-$HOME/.cache/monitoring-operator/jaeger}
bin=$cache/$key/jaeger
if [ ! -x "$bin" ]; then
  echo "building jaeger (cold: several minutes on 2 cores; cached afterwards in $cache/$key)" >&2
  mkdir -p "$cache/$key"
  start=$(date +%s)
  (
    cd "$src"
    export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false
    go mod download >&2
    go build -trimpath -ldflags "-s -w" -o "$bin.tmp" github.com/jaegertracing/jaeger/cmd/jaeger
  )
  mv "$bin.tmp" "$bin"
  echo "built jaeger in $(( $(date +%s) - start ))s" >&2
fi
echo "$bin"
