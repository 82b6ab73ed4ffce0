#!/usr/bin/env bash
# Throughput and write-amplification benchmark on the local control plane (not part of the test suite):
#   hack/bench.sh [N]   creates N PodTasks (default 200) whose pods run 1s, with one operator watching a fresh
#                       namespace, and reports the time until all succeeded and the API writes per task.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
n=${1:-200}
cargo build --quiet --release --bin podtask
# shellcheck source=/dev/null
source hack/test-env.sh
target/release/podtask crd | kubectl apply --server-side --force-conflicts -f - >/dev/null
target/release/podtask crd wait
ns=podtask-bench-$$
kubectl create namespace "$ns" >/dev/null
for _ in $(seq 50); do kubectl -n "$ns" get serviceaccount default >/dev/null 2>&1 && break; sleep 0.2; done
port=$((20000 + RANDOM % 20000))
target/release/podtask run --namespaces "$ns" --http-addr "127.0.0.1:$port" --log-level warn >"target/bench-$ns.log" 2>&1 &
op=$!
trap 'kill $op 2>/dev/null; kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1 || true' EXIT
for _ in $(seq 50); do curl -fsS "127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.2; done

manifests=$(mktemp)
for i in $(seq "$n"); do
	cat <<YAML
---
apiVersion: podtask.dev/v1alpha1
kind: PodTask
metadata: {name: bench-$i}
spec:
  executionTimeout: 10m
  template:
    metadata: {annotations: {kwok.podtask.dev/run-for: "1s"}}
    spec: {containers: [{name: main, image: busybox}]}
YAML
done >"$manifests"
start=$(date +%s.%N)
kubectl -n "$ns" apply -f "$manifests" >/dev/null
applied=$(date +%s.%N)
while :; do
	done_n=$(kubectl -n "$ns" get podtasks -o jsonpath='{range .items[*]}{.status.phase}{"\n"}{end}' | grep -c '^Succeeded$' || true)
	((done_n >= n)) && break
	sleep 1
done
end=$(date +%s.%N)
metrics=$(curl -fsS "127.0.0.1:$port/metrics")
writes=$(echo "$metrics" | awk '/^podtask_api_writes_total/ {s += $2} END {print s}')
reconciles=$(echo "$metrics" | awk '/^podtask_reconciles_total/ {print $2}')
left=$(kubectl -n "$ns" get pods --no-headers 2>/dev/null | wc -l)
printf 'tasks=%d apply_s=%.1f all_succeeded_s=%.1f api_writes=%d (%.2f per task) reconciles=%d pods_left=%d\n' \
	"$n" "$(echo "$applied - $start" | bc)" "$(echo "$end - $start" | bc)" "$writes" "$(echo "$writes / $n" | bc -l)" "$reconciles" "$left"
