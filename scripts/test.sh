#!/usr/bin/env bash
# Run the whole test suite: unit and render tests, then integration tests against a real
# kube-apiserver + etcd + kube-controller-manager that the tests start on loopback.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$root"
KUBETESTENV_BIN=$("$root/scripts/kubetestenv.sh")
export KUBETESTENV_BIN
cargo test --locked "$@"
