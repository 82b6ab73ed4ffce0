#!/usr/bin/env bash
# Benchmark: podtask next to the Kubernetes Job controller, on a dedicated local cluster (see docs/performance.md).
#   hack/bench/run.sh [--quick] [--keep] [N...]
#     N...     throughput sizes (default 1000); --quick: 100 tasks, one repeat, small burst/spread/scale points
#     --keep   leave the benchmark cluster running afterwards
# Writes target/bench/results.json, target/bench/table.md and docs/performance.svg (target/bench/performance.svg
# when BENCH_PHASES, BENCH_KINDS or BENCH_VARIANTS make it a partial run).
# Extra settings: BENCH_REPEATS, BENCH_SCALE ("100 1000 5000 10000"), BENCH_PHASES, BENCH_OPERATOR_ARGS (default: the
# Job controller's "equal" budget, --kube-api-qps=1000 --kube-api-burst=1000).
# BENCH_OPERATOR_LOG_LEVEL (default warn), BENCH_OPERATOR_WRAPPER (e.g. "heaptrack -o target/bench/heap"),
# BENCH_KINDS (default job,podtask; "podtask" skips the Job runs), BENCH_APISERVER_ARGS (more kube-apiserver flags, e.g.
# "--profiling=true" for a CPU profile: kubectl get --raw "/debug/pprof/profile?seconds=20"),
# BENCH_VARIANTS (default "quiet,loaded": every throughput and controller-only run also with BENCH_LOAD spinning
# processes beside the cluster, default 1, a CPU core's worth of demand).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
quick=0 keep=0 sizes=()
for a in "$@"; do
	case $a in
	--quick) quick=1 ;;
	--keep) keep=1 ;;
	*) sizes+=("$a") ;;
	esac
done
# its own cluster, next to the default one (hack/README.md: ports)
export PODTASK_CLUSTER_DIR=${PODTASK_CLUSTER_DIR:-$HOME/.cache/podtask/cluster-bench}
export PODTASK_ETCD_PORT=${PODTASK_ETCD_PORT:-52379} PODTASK_ETCD_PEER_PORT=${PODTASK_ETCD_PEER_PORT:-52380}
export PODTASK_APISERVER_PORT=${PODTASK_APISERVER_PORT:-56443} PODTASK_KCM_PORT=${PODTASK_KCM_PORT:-50257}
export PODTASK_SCHEDULER_PORT=${PODTASK_SCHEDULER_PORT:-50259} PODTASK_KWOK_PORT=${PODTASK_KWOK_PORT:-50247}
export PODTASK_KWOK_NODES=12 # 12,000 pod slots
# the simulation must not be the bottleneck: an unthrottled scheduler, and an audit log to count requests per client
export PODTASK_SCHEDULER_EXTRA_ARGS="--kube-api-qps=5000 --kube-api-burst=5000"
# and kwok moving 64 pods through their stages at once rather than 4 (hack/bench/kwok-config.yaml)
export PODTASK_KWOK_CONFIGS=$PWD/hack/kwok/node-stages.yaml,$PWD/hack/kwok/stages.yaml,$PWD/hack/bench/kwok-config.yaml
export PODTASK_APISERVER_EXTRA_ARGS="--audit-policy-file=$PWD/hack/bench/audit-policy.yaml --audit-log-path=$PODTASK_CLUSTER_DIR/logs/audit.log --audit-log-maxsize=0 --audit-log-mode=batch --audit-log-batch-max-wait=1s ${BENCH_APISERVER_ARGS:-}"
export PODTASK_KCM_EXTRA_ARGS=""
if ((quick)); then
	args=(--sizes "${sizes[@]:-100}" --repeats "${BENCH_REPEATS:-1}" --burst 100 --spread 100 --spread-seconds 30 --scale ${BENCH_SCALE:-100 300})
else
	args=(--sizes "${sizes[@]:-1000}" --repeats "${BENCH_REPEATS:-2}" --burst 1000 --spread 1000 --spread-seconds 180 --scale ${BENCH_SCALE:-100 1000 5000 10000})
fi
cargo build --quiet --release --bin podtask
mkdir -p target/bench
hack/cluster.sh down >/dev/null 2>&1
rm -f "$PODTASK_CLUSTER_DIR"/logs/audit*.log # one file, never rotated: a run's counts read it from an offset
hack/cluster.sh up >/dev/null
((keep)) || trap 'hack/cluster.sh down >/dev/null 2>&1' EXIT
export KUBECONFIG=$PODTASK_CLUSTER_DIR/kubeconfig
target/release/podtask crd | "$(hack/cluster.sh bin-dirs | head -1)/kubectl" apply --server-side -f - >/dev/null
target/release/podtask crd wait >/dev/null
python3 hack/bench/bench.py "${args[@]}" --phases "${BENCH_PHASES:-throughput,controller,burst,spread,scale}" \
	--variants "${BENCH_VARIANTS:-quiet,loaded}" --load "${BENCH_LOAD:-1}" \
	--operator-args "${BENCH_OPERATOR_ARGS---kube-api-qps=1000 --kube-api-burst=1000}" --out target/bench/results.json
# the chart needs matplotlib: a virtualenv of its own under ~/.cache/podtask (the system Python is left alone)
venv=$HOME/.cache/podtask/bench-venv
[[ -x $venv/bin/python ]] && "$venv/bin/python" -c 'import matplotlib' 2>/dev/null ||
	{ python3 -m venv "$venv" && "$venv/bin/pip" install --quiet 'matplotlib>=3.8,<4'; }
# a partial run (some phases, some kinds) charts into target/bench: docs/performance.svg shows full runs only
chart=docs/performance.svg
[[ -n ${BENCH_PHASES:-}${BENCH_KINDS:-}${BENCH_VARIANTS:-} ]] && chart=target/bench/performance.svg
"$venv/bin/python" hack/bench/report.py target/bench/results.json "$chart" >target/bench/table.md
cat target/bench/table.md
