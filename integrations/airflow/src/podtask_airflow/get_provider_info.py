"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from podtask_airflow import __version__


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-podtask",
        "name": "podtask",
        "description": "Runs Airflow tasks as podtask PodTasks (absolute deadlines, startup timeouts, "
        "image-pull trouble retried, pods deleted when done).",
        "versions": [__version__],
        "operators": [
            {"integration-name": "podtask", "python-modules": ["podtask_airflow.operators"]},
        ],
        "triggers": [
            {"integration-name": "podtask", "python-modules": ["podtask_airflow.triggers"]},
        ],
    }
