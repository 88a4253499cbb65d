#!/usr/bin/env bash
# Refresh the chart's copies of the deploy/ files it renders (CRD, alert rules, dashboard):
# charts/monitoring-operator/files/<path> is a byte-identical copy of deploy/<path>, checked by
# tests/helm.rs. Run after regenerating deploy/crd.yaml or editing the rules or the dashboard.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
files=$root/charts/monitoring-operator/files
for f in crd.yaml prometheus/monitoring-operator.rules.yaml grafana/monitoring-services-overview.json; do
  mkdir -p "$(dirname "$files/$f")"
  cp "$root/deploy/$f" "$files/$f"
done
