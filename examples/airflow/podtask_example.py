"""PodTaskOperator next to the KubernetesPodOperator it replaces: the same arguments, podtask's guarantees.

Install the provider (pip install ./integrations/airflow) where the DAG runs, and podtask in the cluster.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, task
from kubernetes.client import models as k8s

from podtask_airflow.operators import PodTaskOperator

with DAG(
    "podtask_example",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["podtask"],
) as dag:
    # Was: KubernetesPodOperator(task_id="extract", ...). Only the class changed.
    extract = PodTaskOperator(
        task_id="extract",
        namespace="data",
        image="python:3.13-slim",
        cmds=["python", "-c"],
        # the XCom is written where KubernetesPodOperator's containers write it; podtask hands it over as the
        # container's termination message (at most 1 KiB), so there is no sidecar
        arguments=["import json; json.dump({'rows': 1234}, open('/airflow/xcom/return.json', 'w'))"],
        do_xcom_push=True,
        container_resources=k8s.V1ResourceRequirements(
            requests={"cpu": "250m", "memory": "256Mi"}, limits={"memory": "512Mi"}
        ),
        # enforced by podtask as an absolute deadline, also while the task is deferred
        execution_timeout=timedelta(minutes=30),
        # time to get the pod started (scheduling, image pulls); a rate-limited pull is waited out, and retried
        startup_timeout_seconds=600,
    )

    @task
    def report(summary: dict) -> None:
        print(f"extracted {summary['rows']} rows")

    report(extract.output)

    # podtask's own arguments: retry non-zero exits too, treat exit code 75 as "try again later", skip on 99
    load = PodTaskOperator(
        task_id="load",
        namespace="data",
        image="ghcr.io/example/loader:2.1",
        arguments=["--date", "{{ ds }}"],
        env_vars={"TARGET": "warehouse"},
        skip_on_exit_code=99,
        retry={"limit": 3, "reasons": ["PodFailed", "ImagePullTimeout", "Unschedulable", "Evicted", "PodLost"]},
        pod_failure_policy={
            "rules": [{"action": "RetryWithoutCounting", "onExitCodes": {"operator": "In", "values": [75]}}]
        },
        on_finish_action="delete_succeeded_pod",  # keep failed pods for a look (cleanup="DeleteSucceeded")
        execution_timeout=timedelta(hours=1),
    )
    extract >> load
