#!/usr/bin/env bash
# One command from a fresh clone to podtask running the examples on a local, real control plane:
#   hack/demo.sh          build (the first time: the Go control plane, then cargo), start the cluster, install the
#                         CRD, start the operator, apply examples/ into namespace podtask-demo, and watch
#                         them reach their outcomes.
#   hack/demo.sh stop     stop the operator and the cluster.
# The operator keeps running after the demo (logs: ~/.cache/podtask/cluster/logs/podtask.log), so you can
# `kubectl apply` your own PodTasks in that namespace: `source hack/test-env.sh` sets KUBECONFIG and PATH.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
state=${PODTASK_CLUSTER_DIR:-$HOME/.cache/podtask/cluster}
pidfile=$state/pids/podtask.pid
ns=${PODTASK_DEMO_NAMESPACE:-podtask-demo}

stop_operator() {
	if [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
		kill -TERM "$(cat "$pidfile")" && echo "stopped the operator"
	fi
	rm -f "$pidfile"
}

if [[ ${1:-} == stop ]]; then
	stop_operator
	hack/cluster.sh down
	exit 0
fi

echo "--- building podtask"
cargo build --quiet --bin podtask
echo "--- starting the local control plane (the first run builds it from the Go module proxy: about 13 min on 2 cores)"
# shellcheck source=/dev/null
source hack/test-env.sh

echo "--- installing the CRD"
target/debug/podtask crd | kubectl apply --server-side -f - >/dev/null
target/debug/podtask crd wait

echo "--- starting the operator"
stop_operator
mkdir -p "$state/logs" "$state/pids"
nohup target/debug/podtask run --namespaces "$ns" --http-addr 127.0.0.1:18080 --default-startup-timeout 1m \
	--min-rate-limit-backoff 10s >"$state/logs/podtask.log" 2>&1 &
echo $! >"$pidfile"
for _ in $(seq 50); do
	curl -fsS 127.0.0.1:18080/readyz >/dev/null 2>&1 && break
	sleep 0.2
done
curl -fsS 127.0.0.1:18080/readyz >/dev/null || { echo "operator did not become ready:"; tail -20 "$state/logs/podtask.log"; exit 1; }

echo "--- applying examples/ into namespace $ns"
kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
for _ in $(seq 50); do kubectl -n "$ns" get serviceaccount default >/dev/null 2>&1 && break; sleep 0.2; done
kubectl -n "$ns" delete podtasks --all --wait=true >/dev/null 2>&1 || true
kubectl -n "$ns" apply -f examples/

echo "--- watching (until every task has finished, at most 90s)"
for _ in $(seq 90); do
	clear 2>/dev/null || true
	kubectl -n "$ns" get podtasks
	pending=$(kubectl -n "$ns" get podtasks -o jsonpath='{range .items[*]}{.status.phase}{"\n"}{end}' | grep -cvE '^(Succeeded|Failed)$' || true)
	((pending == 0)) && break
	sleep 1
done
echo
kubectl -n "$ns" get podtasks -o custom-columns='NAME:.metadata.name,PHASE:.status.phase,REASON:.status.reason,MESSAGE:.status.message'
echo
echo "operator log: $state/logs/podtask.log   metrics: curl 127.0.0.1:18080/metrics   stop: hack/demo.sh stop"
