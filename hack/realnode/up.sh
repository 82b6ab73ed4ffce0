#!/usr/bin/env bash
# Start the real node beside its own local control plane (idempotent):
#   control plane (hack/cluster.sh, own ports/state, no kwok nodes) → host prepared (egress dropped first)
#   → registry (crane) + fault proxy + service-IP relay → images → containerd → kubelet → node Ready.
# Prints the KUBECONFIG to use. Undo with hack/realnode/down.sh.
set -euo pipefail
HACK=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=hack/realnode/lib.sh
source "$HACK/realnode/lib.sh"
t0=$SECONDS

"$HACK/realnode/deps.sh"
"$HACK/cluster.sh" build >&2
"$HACK/realnode/build.sh"
"$HACK/cluster.sh" up >/dev/null
"$HACK/realnode/host.sh" prepare
"$HACK/realnode/config.sh"
export KUBECONFIG=$PODTASK_CLUSTER_DIR/kubeconfig

mkdir -p "$NODE_DIR/registry"
start_bg registry "$(crane_bin)" registry serve --address "$REGISTRY" --disk "$NODE_DIR/registry"
wait_for registry 20 curl -sf "http://$REGISTRY/v2/"
start_bg faultproxy "$CACHE/faultproxy/$FAULTPROXY_VERSION/bin/faultproxy" -listen "$FAULT_REGISTRY" -upstream "http://$REGISTRY"
wait_for faultproxy 20 curl -sf "http://$FAULT_REGISTRY/v2/"
# pods reach the API server at the kubernetes Service IP, as in a real cluster (there is no kube-proxy)
start_bg relay "$(command -v socat)" "TCP-LISTEN:443,bind=$SERVICE_IP,reuseaddr,fork" "TCP:127.0.0.1:$PODTASK_APISERVER_PORT"
"$(crane_bin)" digest --insecure "$REGISTRY/$BUSYBOX_REPO" >/dev/null 2>&1 || "$HACK/realnode/images.sh" "$REGISTRY"

start_containerd
start_kubelet
wait_for "node $NODE_NAME Ready" 90 bash -c "[[ \$('$KUBECTL' get node $NODE_NAME -o 'jsonpath={.status.conditions[?(@.type==\"Ready\")].status}') == True ]]"
say "up in $((SECONDS - t0))s; export KUBECONFIG=$KUBECONFIG"
echo "export KUBECONFIG=$KUBECONFIG PATH=$CACHE/k8s/$K8S_VERSION/bin:$CACHE/helm/${PODTASK_HELM_VERSION:-v3.22.0}/bin:\$PATH"
