#!/usr/bin/env bash
# Print the path of a virtual environment with Airflow, the cncf-kubernetes provider, the podtask provider
# (editable, from integrations/airflow), pytest and ruff. Created on first use under ~/.cache/podtask/airflow/,
# keyed by the versions below and the Python version; reused when present (the provider is installed editable, so
# changes to its code need no reinstall).
#   hack/airflow-venv.sh            # prints the venv's path (creates it if missing)
# Versions: PODTASK_AIRFLOW_VERSION (3.3.2), PODTASK_CNCF_K8S_VERSION (10.25.0), PODTASK_PYTHON (python3).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
airflow=${PODTASK_AIRFLOW_VERSION:-3.3.2}
cncf=${PODTASK_CNCF_K8S_VERSION:-10.25.0}
python=${PODTASK_PYTHON:-python3}
pyver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
cache=${PODTASK_CACHE:-$HOME/.cache/podtask}
venv=$cache/airflow/af$airflow-k8s$cncf-py$pyver
mkdir -p "$cache/airflow"
exec 9>"$cache/airflow/.lock"
flock 9
if [[ ! -f $venv/.complete ]]; then
	rm -rf "$venv"
	echo "airflow-venv: creating $venv (first use: a few minutes)" >&2
	"$python" -m venv "$venv"
	"$venv/bin/pip" install --quiet --upgrade pip >&2
	"$venv/bin/pip" install --quiet "apache-airflow==$airflow" "apache-airflow-providers-cncf-kubernetes==$cncf" \
		pytest ruff >&2
	touch "$venv/.complete"
fi
# the provider itself, editable; cheap when already installed from this checkout
if [[ $("$venv/bin/python" -c 'import podtask_airflow, os; print(os.path.dirname(podtask_airflow.__file__))' 2>/dev/null) != "$root/integrations/airflow/src/podtask_airflow" ]]; then
	"$venv/bin/pip" install --quiet --no-deps -e "$root/integrations/airflow" >&2
fi
echo "$venv"
