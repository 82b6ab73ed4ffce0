#!/usr/bin/env bash
# The Airflow provider (integrations/airflow) end to end, against the cluster in KUBECONFIG (hack/test.sh's, or
# `source hack/test-env.sh` first):
#   1. ruff (lint, format) and the provider's unit tests (pytest)
#   2. the CRD, a namespace, and the real podtask operator watching it
#   3. integrations/airflow/e2e: `airflow dags test` / `airflow tasks test` runs of the DAGs in e2e/dags
#   hack/airflow-e2e.sh --compare [SHAPE...]: steps 2 and 3 for hack/airflow-compare.sh instead (no lint, no tests)
# Airflow lives in a virtual environment cached under ~/.cache/podtask/airflow (hack/airflow-venv.sh); logs and
# AIRFLOW_HOME go to target/airflow-e2e/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
: "${KUBECONFIG:?set KUBECONFIG (source hack/test-env.sh)}"
started=$SECONDS
ns=${PODTASK_AIRFLOW_NAMESPACE:-podtask-airflow}
work=$PWD/target/airflow-e2e
compare=0
if [[ ${1:-} == --compare ]]; then compare=1; shift; fi
dags=$PWD/integrations/airflow/e2e/dags
((compare == 0)) || { dags=$PWD/hack/airflow-compare/dags; work=$PWD/target/airflow-compare; }

venv=$(hack/airflow-venv.sh)
echo "airflow venv ready after $((SECONDS - started))s: $venv"

if ((compare == 0)); then
	echo "--- lint and unit tests"
	"$venv/bin/ruff" check --config integrations/airflow/pyproject.toml integrations/airflow examples/airflow hack/airflow-compare
	"$venv/bin/ruff" format --check --config integrations/airflow/pyproject.toml integrations/airflow examples/airflow \
		hack/airflow-compare
	(cd integrations/airflow && AIRFLOW_HOME=$work-unit "$venv/bin/pytest" -p no:cacheprovider tests)
fi

echo "--- operator"
cargo build --quiet --features e2e --bin podtask
target/debug/podtask crd | kubectl apply --server-side -f - >/dev/null
target/debug/podtask crd wait
kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n "$ns" delete podtasks --all --wait=true >/dev/null
for _ in $(seq 50); do kubectl -n "$ns" get serviceaccount default >/dev/null 2>&1 && break; sleep 0.2; done
rm -rf "$work" && mkdir -p "$work"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
target/debug/podtask run --namespaces "$ns" --http-addr "127.0.0.1:$port" --default-startup-timeout 30s \
	--min-rate-limit-backoff 1s >"$work/podtask.log" 2>&1 &
operator=$!
trap 'kill -TERM "$operator" 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -fsS "127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
curl -fsS "127.0.0.1:$port/readyz" >/dev/null || { tail -20 "$work/podtask.log"; exit 1; }

echo "--- Airflow DAGs"
export AIRFLOW_HOME=$work/home AIRFLOW__CORE__LOAD_EXAMPLES=False \
	AIRFLOW__CORE__DAGS_FOLDER=$dags PODTASK_AIRFLOW_NAMESPACE=$ns \
	PODTASK_AIRFLOW_LOGS=$work
mkdir -p "$AIRFLOW_HOME"
# a migrated metadata database, made once per venv and copied
if [[ ! -f $venv/airflow-db/airflow.db ]]; then
	mkdir -p "$venv/airflow-db"
	AIRFLOW_HOME=$venv/airflow-db "$venv/bin/airflow" db migrate >"$work/db-migrate.log" 2>&1 ||
		{ tail -30 "$work/db-migrate.log"; exit 1; }
fi
cp "$venv/airflow-db/airflow.db" "$AIRFLOW_HOME/airflow.db"
if ((compare)); then
	"$venv/bin/python" hack/airflow-compare/compare.py "$@"
	exit
fi
"$venv/bin/pytest" -p no:cacheprovider -s -v integrations/airflow/e2e
echo "--- airflow end to end passed in $((SECONDS - started))s"
