#!/usr/bin/env bash
# Build (or reuse) the kubetestenv binary: a real kube-apiserver, kube-controller-manager,
# embedded etcd and kubectl, built from the upstream Go modules (tools/kubetestenv).
# The binary is cached outside the repository, keyed by everything that goes into it, so a
# warm machine pays nothing. Prints the binary's path on stdout; progress goes to stderr.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
src=$root/tools/kubetestenv
kube_version=$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v1\./ {print $2; exit}' "$src/go.mod")
[ -n "$kube_version" ] || { echo "cannot find the k8s.io/kubernetes version in $src/go.mod" >&2; exit 1; }
minor=$(echo "$kube_version" | cut -d. -f2)
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$kube_version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/client-go/pkg/version.gitVersion=$kube_version -X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z"
key=$( { cat "$src/go.mod" "$src/go.sum" "$src"/*.go; go version; echo "$ldflags"; } | sha256sum | cut -c1-16)
cache=${KUBETESTENV_CACHE:-$HOME/.cache/kubetestenv}
bin=$cache/$key/kubetestenv
if [ ! -x "$bin" ]; then
  echo "building kubetestenv $kube_version (cold: ~10-25 min on 2 cores; cached afterwards in $cache/$key)" >&2
  mkdir -p "$cache/$key"
  start=$(date +%s)
  (
    cd "$src"
    export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false
    go mod download >&2
    go build -trimpath -ldflags "$ldflags" -o "$bin.tmp" .
  )
  mv "$bin.tmp" "$bin"
  echo "built kubetestenv in $(( $(date +%s) - start ))s" >&2
fi
echo "$bin"
