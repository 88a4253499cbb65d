#!/usr/bin/env bash
# Build (or reuse) Helm (v4) from the Go module proxy, pinned in tools/helm/go.mod. The chart
# tests (tests/helm.rs) lint, render and install charts/monitoring-operator with it. Prints
# the binary's path on stdout.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
src=$root/tools/helm
helm_version=$(awk '$1 == "helm.sh/helm/v4" && $2 ~ /^v4\./ {print $2; exit}' "$src/go.mod")
[ -n "$helm_version" ] || { echo "cannot find the helm.sh/helm/v4 version in $src/go.mod" >&2; exit 1; }
source "$root/scripts/go-tool.sh"
go_tool helm "$src" helm.sh/helm/v4/cmd/helm "${HELM_CACHE:-$HOME/.cache/monitoring-operator/helm}" \
  "-s -w -X helm.sh/helm/v4/internal/version.version=$helm_version -X helm.sh/helm/v4/internal/version.gitTreeState=clean"
