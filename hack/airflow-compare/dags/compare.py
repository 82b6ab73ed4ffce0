"""The same task shapes as KubernetesPodOperator and as PodTaskOperator, on a kwok cluster (pods behave as their
kwok.podtask.dev/* annotations say, see hack/README.md). One DAG per (shape, operator): cmp_<shape>_<kpo|podtask>.
hack/airflow-compare.sh runs each with `airflow dags test` and tabulates the outcomes."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import DAG

from podtask_airflow.operators import PodTaskOperator

NAMESPACE = os.environ.get("PODTASK_AIRFLOW_NAMESPACE", "podtask-airflow")


def kwok(scenario: str, **knobs: str) -> dict[str, str]:
    annotations = {f"kwok.podtask.dev/{k.replace('_', '-')}": v for k, v in knobs.items()}
    return {"kwok.podtask.dev/scenario": scenario, **annotations}


#: shape -> arguments both operators take (deferrable, as KubernetesPodOperator users set it for long tasks)
SHAPES: dict[str, dict] = {
    # baseline: a 2 s task
    "succeed": {"annotations": kwok("succeed", run_for="2s")},
    # execution_timeout while deferred: a task that would run forever, 60 s budget
    "deadline": {"annotations": kwok("run-forever"), "execution_timeout": timedelta(seconds=60)},
    # a rate-limited image pull (429 toomanyrequests) for 8 s, then the pod runs 2 s
    "rate_limited_pull": {"annotations": kwok("pull-rate-limited", pull_for="8s", run_for="2s")},
    # no room in the cluster until 25 s after the first pod was created (then the script labels a node
    # compare-capacity=free, as an autoscaler adds one); startup timeout 15 s
    "capacity_later": {
        "annotations": kwok("succeed", run_for="2s"),
        "node_selector": {"compare-capacity": "free"},
        "startup_timeout_seconds": 15,
    },
    # an image name that can never work
    "invalid_image": {"annotations": kwok("invalid-image")},
    # the container exits 3 with a message
    "exit_code": {"annotations": kwok("fail", run_for="2s", exit_code="3", message="boom: out of cheese")},
}

for shape, args in SHAPES.items():
    common = {"namespace": NAMESPACE, "image": "busybox:1.37", "deferrable": True, "poll_interval": 1, **args}
    with DAG(f"cmp_{shape}_kpo", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as kpo_dag:
        # kwok serves no container logs: don't ask KubernetesPodOperator to wait for them
        KubernetesPodOperator(task_id="task", name=f"cmp-{shape}", get_logs=False, **common)
    with DAG(f"cmp_{shape}_podtask", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as pt_dag:
        PodTaskOperator(task_id="task", retry={"limit": 2, "backoff": {"initial": "5s"}}, **common)
    globals()[kpo_dag.dag_id] = kpo_dag
    globals()[pt_dag.dag_id] = pt_dag
