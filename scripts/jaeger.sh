#!/usr/bin/env bash
# Build (or reuse) Jaeger (v2, the OpenTelemetry-collector-based `jaeger` program) from the Go
# module proxy, pinned in tools/jaeger/go.mod. The data-path tests send traces to it as a real
# OTLP backend and read them back through its query API. Prints the binary's path on stdout.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/go-tool.sh"
go_tool jaeger "$root/tools/jaeger" github.com/jaegertracing/jaeger/cmd/jaeger \
  "${JAEGER_CACHE:-$HOME/.cache/monitoring-operator/jaeger}" "-s -w"
