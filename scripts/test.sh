#!/usr/bin/env bash
# Run the whole test suite: unit and render tests, then integration tests against a real
# kube-apiserver + etcd + kube-controller-manager that the tests start on loopback.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$root"
KUBETESTENV_BIN=$("$root/scripts/kubetestenv.sh")
export KUBETESTENV_BIN
# Jaeger: the real trace store the trace tests send to (tests/traces.rs, tests/telemetry.rs).
JAEGER_BIN=$("$root/scripts/jaeger.sh")
export JAEGER_BIN
# Helm: the chart tests lint, render and install charts/monitoring-operator (tests/helm.rs).
HELM_BIN=$("$root/scripts/helm.sh")
export HELM_BIN
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --locked "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "total: %d passed, %d failed\n", p, f }' "$log"
exit "$rc"
