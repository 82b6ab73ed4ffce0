"""End to end: real Airflow (`airflow dags test`, which runs deferred tasks and their triggers in one process) and
the real podtask operator against a local control plane whose kubelets are kwok. Run by hack/airflow-e2e.sh, which
provides the cluster (KUBECONFIG), the operator, AIRFLOW_HOME and the namespace."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from kubernetes import client, config

from podtask_airflow.mapping import GROUP, PLURAL, VERSION, TaskKey, parse_time, podtask_name

NS = os.environ.get("PODTASK_AIRFLOW_NAMESPACE", "podtask-airflow")
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
RUN_DATE = "2026-01-01T00:00:00+00:00"
RESUME_DATE = "2026-01-02T00:00:00+00:00"
LOGS = Path(os.environ.get("PODTASK_AIRFLOW_LOGS", "/tmp"))


def measure(name: str, value: float, unit: str = "s") -> None:
    print(f"MEASURE airflow {name} {value:.2f} {unit}")


@pytest.fixture(scope="session")
def kube():
    config.load_kube_config()
    return client.CustomObjectsApi(), client.CoreV1Api()


def podtask(kube, dag: str, task: str, run_id: str, try_number: int = 1) -> dict | None:
    name = podtask_name(TaskKey(dag, task, run_id, -1, try_number))
    try:
        return kube[0].get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, name)
    except client.ApiException as e:
        if e.status == 404:
            return None
        raise


def pods_of(kube, pt: dict) -> list:
    return kube[1].list_namespaced_pod(NS, label_selector=f"podtask.dev/task-uid={pt['metadata']['uid']}").items


def db() -> sqlite3.Connection:
    return sqlite3.connect(Path(os.environ["AIRFLOW_HOME"]) / "airflow.db")


def last_run_id(dag_id: str) -> str | None:
    """The run `airflow dags test` made (its run id holds the time it started)."""
    with db() as conn:
        row = conn.execute("select run_id from dag_run where dag_id=? order by id desc limit 1", (dag_id,)).fetchone()
    return row[0] if row else None


def ti_rows(dag_id: str, run_id: str) -> dict[str, tuple]:
    with db() as conn:
        rows = conn.execute(
            "select task_id, state, try_number, start_date, end_date from task_instance where dag_id=? and run_id=?",
            (dag_id, run_id),
        ).fetchall()
    return {r[0]: r[1:] for r in rows}


def run(args: list[str], log: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    with log.open("w") as out:
        return subprocess.run([AIRFLOW, *args], stdout=out, stderr=subprocess.STDOUT, timeout=timeout, check=False)


@pytest.fixture(scope="session")
def dag_run():
    """`airflow dags test podtask_e2e` once; every test below reads what it left."""
    log = LOGS / "airflow-dags-test.log"
    start = time.monotonic()
    run(["dags", "test", "podtask_e2e", RUN_DATE], log)
    measure("dags-test-podtask_e2e", time.monotonic() - start)
    run_id = last_run_id("podtask_e2e")
    return log.read_text(errors="replace"), ti_rows("podtask_e2e", run_id), run_id


def test_success_with_an_xcom_read_by_the_next_task(dag_run, kube):
    _, tis, run_id = dag_run
    assert tis["xcom"][0] == "success", tis
    assert tis["check_xcom"][0] == "success", tis  # it raises unless the XCom is {"rows": 3}
    pt = podtask(kube, "podtask_e2e", "xcom", run_id)
    assert pt["status"]["phase"] == "Succeeded"
    assert pods_of(kube, pt) == []  # podtask deleted the pod when it was done


def test_synchronous_mode_succeeds_too(dag_run):
    _, tis, _ = dag_run
    assert tis["xcom_sync"][0] == "success", tis


def test_non_zero_exit_fails_the_task_with_podtasks_reason_and_message(dag_run, kube):
    log, tis, run_id = dag_run
    assert tis["fail"][0] == "failed", tis
    pt = podtask(kube, "podtask_e2e", "fail", run_id)
    assert pt["status"]["reason"] == "PodFailed"
    assert pt["status"]["exitCode"] == 3
    # the failure Airflow records names podtask's reason, and the container's last output is in the task log
    assert f"PodTask {pt['metadata']['name']} failed: PodFailed" in log
    assert "boom: out of cheese" in log


def test_execution_timeout_ends_the_task_as_timed_out_at_the_deadline_with_the_pod_gone(dag_run, kube):
    log, tis, run_id = dag_run
    for task in ("timeout", "timeout_sync"):
        state, _, start, end = tis[task]
        assert state == "failed", tis
        pt = podtask(kube, "podtask_e2e", task, run_id)
        assert pt is not None, task  # kept as the record of the try
        assert pt["status"]["reason"] == "DeadlineExceeded", pt["status"]
        deadline = parse_time(pt["spec"]["deadline"])
        started = datetime.fromisoformat(start).replace(tzinfo=timezone.utc)
        # start + execution_timeout, in whole seconds rounded down
        assert 19 < (deadline - started).total_seconds() <= 20, (deadline, started)
        # the pod ran and was stopped (not a deadline that passed before anything started)
        assert [a.get("podName") for a in pt["status"]["attempts"]] == [pt["status"]["podName"]], pt["status"]
        # podtask stops the pod so that it is gone by the deadline (grace period included)
        completed = parse_time(pt["status"]["completionTime"])
        assert abs((completed - deadline).total_seconds()) <= 3, (completed, deadline)
        ended = datetime.fromisoformat(end).replace(tzinfo=timezone.utc)
        measure(f"{task}-task-end-minus-deadline", (ended - deadline).total_seconds())
        assert pods_of(kube, pt) == []
    assert "AirflowTaskTimeout" in log
    assert "DeadlineExceeded" in log


def test_skip_exit_code_skips(dag_run, kube):
    _, tis, run_id = dag_run
    assert tis["skip"][0] == "skipped", tis
    pt = podtask(kube, "podtask_e2e", "skip", run_id)
    assert pt["status"]["exitCode"] == 42
    assert pt["status"]["attempt"] == 1  # the skip code ends the PodTask at once, never retried


def test_killed_while_deferred_and_run_again_for_the_same_try_adopts_the_same_podtask(kube):
    first_log = LOGS / "airflow-resume-1.log"
    with first_log.open("w") as out:
        proc = subprocess.Popen(
            [AIRFLOW, "dags", "test", "podtask_e2e_resume", RESUME_DATE],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        first = run_id = None
        for _ in range(240):
            run_id = run_id or last_run_id("podtask_e2e_resume")
            first = podtask(kube, "podtask_e2e_resume", "long", run_id) if run_id else None
            deferred = "running trigger in line" in first_log.read_text(errors="replace")
            if deferred and first and (first.get("status") or {}).get("phase") == "Running":
                break
            assert proc.poll() is None, first_log.read_text(errors="replace")[-3000:]
            time.sleep(0.5)
        else:
            pytest.fail("the task never deferred with its pod running:\n" + first_log.read_text()[-3000:])
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole `dags test` process group: task, trigger, everything
        proc.wait()
    assert tis_state(run_id, "long") not in ("success", "failed")
    time.sleep(3)  # the pod runs on meanwhile, as it would while a worker is replaced

    second_log = LOGS / "airflow-resume-2.log"
    start = time.monotonic()
    result = run(["tasks", "test", "podtask_e2e_resume", "long", run_id], second_log)
    measure("resume-rerun", time.monotonic() - start)
    text = second_log.read_text(errors="replace")
    assert result.returncode == 0, text[-3000:]
    assert f"adopting PodTask {NS}/{first['metadata']['name']}" in text

    after = podtask(kube, "podtask_e2e_resume", "long", run_id)
    assert after["metadata"]["uid"] == first["metadata"]["uid"]  # the same PodTask ...
    assert after["spec"]["deadline"] == first["spec"]["deadline"]  # ... with the same deadline
    assert after["status"]["deadline"] == first["status"]["deadline"]
    assert after["status"]["phase"] == "Succeeded"
    assert after["status"]["attempt"] == 1  # ... and one pod
    assert [a["podName"] for a in after["status"].get("attempts", [])] == [first["status"]["podName"]]
    assert tis_state(run_id, "long") == "success"


def tis_state(run_id: str, task: str) -> str | None:
    row = ti_rows("podtask_e2e_resume", run_id).get(task)
    return row[0] if row else None
