#!/usr/bin/env bash
# The operator's main job on a local control plane:
#   build everything → start kube-apiserver + etcd + kube-controller-manager on loopback →
#   install the CRD → run the operator → apply the seed's basic example (section 4.1) →
#   print `kubectl get ms` and the rendered Vector config.
# Everything keeps running afterwards so you can explore with kubectl (the script prints how).
#   scripts/demo.sh          start (or restart) the demo
#   scripts/demo.sh stop     stop it
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$root"
demo=$root/.demo
mkdir -p "$demo"

stop() {
  for p in operator controlplane; do
    if [ -f "$demo/$p.pid" ]; then
      kill "$(cat "$demo/$p.pid")" 2>/dev/null || true
      rm -f "$demo/$p.pid"
    fi
  done
}
if [ "${1:-}" = "stop" ]; then stop; echo "demo stopped"; exit 0; fi
stop

kubetestenv=$("$root/scripts/kubetestenv.sh")
echo "== building the operator" >&2
cargo build --locked --quiet
operator=$CARGO_TARGET_DIR/debug/monitoring-operator

# A kubectl of the same minor as the server, for the commands below and for you.
mkdir -p "$demo/bin"
printf '#!/bin/sh\nexec %q kubectl "$@"\n' "$kubetestenv" > "$demo/bin/kubectl"
chmod +x "$demo/bin/kubectl"
export PATH=$demo/bin:$PATH KUBECONFIG=$demo/state/kubeconfig

echo "== starting the control plane" >&2
rm -rf "$demo/state"
"$kubetestenv" up --dir "$demo/state" --keep --ignore-stdin > "$demo/controlplane.out" 2> "$demo/controlplane.log" < /dev/null &
echo $! > "$demo/controlplane.pid"
for _ in $(seq 1 120); do
  grep -q '^READY' "$demo/controlplane.out" 2>/dev/null && break
  kill -0 "$(cat "$demo/controlplane.pid")" 2>/dev/null || { cat "$demo/controlplane.log" >&2; exit 1; }
  sleep 1
done
grep -q '^READY' "$demo/controlplane.out" || { echo "control plane did not start; see $demo/controlplane.log" >&2; exit 1; }

echo "== installing the CRD" >&2
"$operator" crd | kubectl apply --server-side -f - >&2
kubectl wait --for=condition=Established --timeout=60s crd/monitoringservices.e6data.io >&2

echo "== running the operator (log: .demo/operator.log)" >&2
"$operator" run > "$demo/operator.log" 2>&1 &
echo $! > "$demo/operator.pid"

echo "== applying the seed's basic example (examples/seed/seed-4.1-0.yaml)" >&2
kubectl create namespace workspace-prod >&2
kubectl apply -f examples/seed/seed-4.1-0.yaml >&2
for _ in $(seq 1 60); do
  [ -n "$(kubectl get ms monitoring -n workspace-prod -o jsonpath='{.status.phase}')" ] && break
  sleep 1
done

echo
kubectl get ms -A
echo
echo "--- ConfigMap monitoring-vector-logs-config, vector.yaml (the rendered Vector config):"
kubectl get cm monitoring-vector-logs-config -n workspace-prod -o jsonpath='{.data.vector\.yaml}'
echo "(useClusterRole: false: the pod_logs source is written on each node by the discovery sidecar"
echo " from the ConfigMap's discovery.json; see README, 'Deviations')"
cat <<MSG

The control plane and the operator keep running. To explore:
  export KUBECONFIG=$KUBECONFIG PATH=$demo/bin:\$PATH
  kubectl get ms,ds,cm,sa,role,rolebinding -n workspace-prod
  kubectl get ms monitoring -n workspace-prod -o yaml
  curl -s localhost:8080/metrics | grep monitoringservices_    # the operator's status metrics
There are no Nodes (no kubelet): collectors stay Creating until Nodes exist and pods are ready.
Stop everything with: scripts/demo.sh stop
MSG
