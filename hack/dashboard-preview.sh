#!/usr/bin/env bash
# Draws docs/dashboard.png: the Grafana dashboard's panels (deploy/helm/podtask/dashboards/podtask.json), each
# panel's own PromQL evaluated by a real Prometheus (Debian's prometheus package) that scrapes a real podtask
# operator every second while it runs examples/ on the local control plane; drawn with matplotlib, not by Grafana.
#   hack/dashboard-preview.sh [--minutes N]     (default 4; uses the cluster of hack/test-env.sh, started if needed)
# Extra settings: PREVIEW_OPERATOR_PORT (default 18081), PREVIEW_PROMETHEUS_PORT (default 18090).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
minutes=4
[[ ${1:-} == --minutes ]] && minutes=$2
op_port=${PREVIEW_OPERATOR_PORT:-18081} prom_port=${PREVIEW_PROMETHEUS_PORT:-18090}
command -v prometheus >/dev/null || { echo "needs Prometheus: apt-get install prometheus" >&2; exit 2; }
venv=$HOME/.cache/podtask/bench-venv # the benchmark chart's virtualenv: matplotlib, the system Python left alone
[[ -x $venv/bin/python ]] && "$venv/bin/python" -c 'import matplotlib' 2>/dev/null ||
	{ python3 -m venv "$venv" && "$venv/bin/pip" install --quiet 'matplotlib>=3.8,<4'; }
cargo build --quiet --bin podtask
# shellcheck source=/dev/null
source hack/test-env.sh
target/debug/podtask crd | kubectl apply --server-side -f - >/dev/null && target/debug/podtask crd wait >/dev/null

work=$(mktemp -d)
op_pid="" prom_pid=""
cleanup() {
	# only the processes this script started, still its children
	for p in $op_pid $prom_pid; do kill -0 "$p" 2>/dev/null && kill -TERM "$p" && wait "$p" 2>/dev/null; done
	for i in 1 2 3; do kubectl delete namespace "podtask-preview-$i" --ignore-not-found --wait=false >/dev/null 2>&1; done
	rm -rf "$work"
}
trap cleanup EXIT
namespaces=podtask-preview-1,podtask-preview-2,podtask-preview-3
target/debug/podtask run --namespaces "$namespaces" --http-addr "127.0.0.1:$op_port" --log-level warn \
	--default-startup-timeout 1m --min-rate-limit-backoff 10s >"$work/operator.log" 2>&1 &
op_pid=$!
cat >"$work/prometheus.yml" <<YAML
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: podtask
    static_configs:
      - targets: ["127.0.0.1:$op_port"]
        labels: {namespace: podtask-system, pod: podtask-0}
YAML
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
	--web.listen-address="127.0.0.1:$prom_port" >"$work/prometheus.log" 2>&1 &
prom_pid=$!
start=$(date +%s)
# three rounds of the examples, a minute apart, so the panels have a shape
for i in 1 2 3; do
	kubectl create namespace "podtask-preview-$i" >/dev/null
	for _ in $(seq 50); do kubectl -n "podtask-preview-$i" get serviceaccount default >/dev/null 2>&1 && break; sleep 0.2; done
	kubectl -n "podtask-preview-$i" apply -f examples/ >/dev/null
	sleep 60
done
sleep $((minutes * 60 - ($(date +%s) - start)))
kubectl get pt -A -l '!nothing' 2>/dev/null | grep preview || true
"$venv/bin/python" hack/dashboard_preview.py "http://127.0.0.1:$prom_port" "$start" "$(date +%s)" \
	deploy/helm/podtask/dashboards/podtask.json docs/dashboard.png
