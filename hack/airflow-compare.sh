#!/usr/bin/env bash
# KubernetesPodOperator (apache-airflow-providers-cncf-kubernetes, the version hack/airflow-venv.sh installs) and
# PodTaskOperator side by side on the local kwok cluster, the same task shapes (hack/airflow-compare/dags), each
# run with `airflow dags test`; prints a table for docs/airflow.md and MEASURE lines.
#   hack/airflow-compare.sh [SHAPE...]    # default: all shapes; about 5 minutes
# Starts the local control plane if needed (hack/test-env.sh) and the podtask operator (as hack/airflow-e2e.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=/dev/null
source hack/test-env.sh
exec hack/airflow-e2e.sh --compare "$@"
