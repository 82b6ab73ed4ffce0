"""DAGs the end-to-end tests run against a local control plane whose nodes are simulated by kwok: each pod's
behaviour is chosen by its kwok.podtask.dev/* annotations (see hack/README.md)."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import DAG, task

from podtask_airflow.operators import PodTaskOperator

NAMESPACE = os.environ.get("PODTASK_AIRFLOW_NAMESPACE", "podtask-airflow")


def kwok(scenario: str, **knobs: str) -> dict[str, str]:
    return {
        "kwok.podtask.dev/scenario": scenario,
        **{f"kwok.podtask.dev/{k.replace('_', '-')}": v for k, v in knobs.items()},
    }


common = {"namespace": NAMESPACE, "image": "busybox:1.37", "poll_interval": 0.5, "startup_timeout_seconds": 30}

with DAG("podtask_e2e", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    xcom = PodTaskOperator(
        task_id="xcom",
        cmds=["sh", "-c", "echo '{\"rows\": 3}' > /airflow/xcom/return.json"],
        do_xcom_push=True,
        annotations=kwok("succeed", run_for="1s", message='{"rows": 3}'),
        **common,
    )

    @task
    def check_xcom(value: dict) -> None:
        if value != {"rows": 3}:
            raise ValueError(f"unexpected XCom {value!r}")

    check_xcom(xcom.output)

    PodTaskOperator(
        task_id="xcom_sync",
        deferrable=False,
        do_xcom_push=True,
        annotations=kwok("succeed", run_for="1s", message="done"),
        **common,
    )
    PodTaskOperator(
        task_id="fail",
        annotations=kwok("fail", run_for="1s", exit_code="3", message="boom: out of cheese"),
        **common,
    )
    PodTaskOperator(
        task_id="timeout",
        execution_timeout=timedelta(seconds=20),
        annotations=kwok("run-forever"),
        **common,
    )
    PodTaskOperator(
        task_id="timeout_sync",
        deferrable=False,
        execution_timeout=timedelta(seconds=20),
        annotations=kwok("run-forever"),
        **common,
    )
    PodTaskOperator(
        task_id="skip",
        skip_on_exit_code=42,
        annotations=kwok("fail", run_for="1s", exit_code="42"),
        **common,
    )

# killed while deferred, then run again for the same try
with DAG("podtask_e2e_resume", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    PodTaskOperator(
        task_id="long",
        execution_timeout=timedelta(minutes=3),
        annotations=kwok("succeed", run_for="20s", message='"resumed"'),
        do_xcom_push=True,
        **common,
    )
