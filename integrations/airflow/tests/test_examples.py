"""The example DAGs in examples/airflow import, and each PodTaskOperator in them maps to a valid PodTask."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from airflow.sdk import DAG

from podtask_airflow.mapping import TaskKey, build_podtask
from podtask_airflow.operators import PodTaskOperator

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "airflow"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.py")), ids=lambda p: p.name)
def test_example_dag_builds_podtasks(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dags = [v for v in vars(module).values() if isinstance(v, DAG)]
    assert dags, f"{path.name} defines no DAG"
    operators = [t for d in dags for t in d.tasks if isinstance(t, PodTaskOperator)]
    assert operators, f"{path.name} uses no PodTaskOperator"
    for op in operators:
        body = build_podtask(op.build_args(), TaskKey(op.dag_id, op.task_id, "manual__x", -1, 1), None)
        assert body["spec"]["template"]["spec"]["containers"][0]["image"]
