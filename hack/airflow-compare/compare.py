"""Run each shape of dags/compare.py as KubernetesPodOperator and as PodTaskOperator with `airflow dags test`,
and print what happened: the Airflow outcome, how long the task took, the reason Airflow logged, and whether a pod
was left behind. Environment: as hack/airflow-e2e.sh sets it (KUBECONFIG, AIRFLOW_HOME, the namespace)."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

from kubernetes import client, config

NS = os.environ.get("PODTASK_AIRFLOW_NAMESPACE", "podtask-airflow")
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
LOGS = Path(os.environ.get("PODTASK_AIRFLOW_LOGS", "/tmp"))
DATE = "2026-01-01T00:00:00+00:00"
LABEL = "compare-capacity"
#: the exceptions the task raised, as Python prints them ("module.Class: message")
EXCEPTION = re.compile(r"^[\w.]*?(\w+(?:Exception|Error|Timeout)): (.+)$", re.MULTILINE)


def main(shapes: list[str]) -> None:
    config.load_kube_config()
    core = client.CoreV1Api()
    rows = []
    for shape in shapes:
        for op in ("kpo", "podtask"):
            rows.append(run_one(core, shape, op))
    print("\n| shape | operator | Airflow outcome | task duration | first pod → task end | exception raised |", end="")
    print(" pods left |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


def run_one(core: client.CoreV1Api, shape: str, op: str) -> list[str]:
    dag = f"cmp_{shape}_{op}"
    log = LOGS / f"compare-{dag}.log"
    done = threading.Event()
    first_pod: list[datetime] = []
    watcher = threading.Thread(target=watch_first_pod, args=(core, dag, first_pod, done))
    watcher.start()
    timer = None
    if shape == "capacity_later":
        set_capacity(core, False)
        timer = threading.Thread(target=capacity_after_first_pod, args=(core, dag, 25, done))
        timer.start()
    try:
        with log.open("w") as out:
            subprocess.run([AIRFLOW, "dags", "test", dag, DATE], stdout=out, stderr=subprocess.STDOUT, timeout=600)
    finally:
        done.set()
        watcher.join()
        if timer:
            timer.join()
    state, start, end = ti(dag)
    duration = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds() if end else float("nan")
    # from the first pod's creation (API time, whole seconds) to the task's end: the part Airflow's own task
    # start-up (parsing, the task runner; seconds on a busy host) does not blur
    from_pod = float("nan")
    if end and first_pod:
        ended = datetime.fromisoformat(end).replace(tzinfo=first_pod[0].tzinfo)
        from_pod = (ended - first_pod[0]).total_seconds()
    left = [p for p in pods(core, dag) if not p.metadata.deletion_timestamp]
    time.sleep(10)
    later = [
        p for p in pods(core, dag) if not p.metadata.deletion_timestamp and p.status.phase in ("Pending", "Running")
    ]
    text = log.read_text(errors="replace")
    raised = [f"{cls}: {msg}" for cls, msg in EXCEPTION.findall(text) if not msg.startswith("Traceback")]
    reason = raised[0][:160].replace("|", "/") if raised else ""
    print(
        f"MEASURE airflow-compare {shape} {op} {state} {duration:.1f} s from_first_pod={from_pod:.1f} s "
        f"pods_left={len(left)} running_10s_later={len(later)}"
    )
    left_text = "none"
    if left:
        left_text = f"{len(left)} ({', '.join(sorted({p.status.phase for p in left}))})"
        if later:
            left_text += f", {len(later)} still running 10 s later"
    for p in pods(core, dag):
        core.delete_namespaced_pod(p.metadata.name, NS, grace_period_seconds=0)
    if shape == "capacity_later":
        set_capacity(core, None)
    return [
        shape,
        "KubernetesPodOperator" if op == "kpo" else "PodTaskOperator",
        state or "?",
        f"{duration:.1f} s",
        f"{from_pod:.0f} s",
        reason,
        left_text,
    ]


def watch_first_pod(core: client.CoreV1Api, dag: str, found: list[datetime], done: threading.Event) -> None:
    while not done.is_set() and not found:
        created = [p.metadata.creation_timestamp for p in pods(core, dag)]
        if created:
            found.append(min(created))
        done.wait(0.2)


def ti(dag: str) -> tuple[str | None, str | None, str | None]:
    with sqlite3.connect(Path(os.environ["AIRFLOW_HOME"]) / "airflow.db") as conn:
        row = conn.execute(
            "select state, start_date, end_date from task_instance where dag_id=? order by start_date desc", (dag,)
        ).fetchone()
    return row or (None, None, None)


def pods(core: client.CoreV1Api, dag: str) -> list:
    return core.list_namespaced_pod(NS, label_selector=f"dag_id={dag}").items


def capacity_after_first_pod(core: client.CoreV1Api, dag: str, seconds: float, done: threading.Event) -> None:
    """Make room `seconds` after the DAG's first pod was created (as an autoscaler adding a node would)."""
    while not done.is_set():
        first = min((p.metadata.creation_timestamp for p in pods(core, dag)), default=None)
        if first is not None:
            wait = seconds - (datetime.now(first.tzinfo) - first).total_seconds()
            if not done.wait(max(wait, 0)):
                set_capacity(core, True)
            return
        done.wait(0.2)


def set_capacity(core: client.CoreV1Api, free: bool | None) -> None:
    """Label the first kwok node (free=True), or none (False); None removes the label again."""
    for i, node in enumerate(core.list_node(label_selector="type=kwok").items):
        value = "free" if free and i == 0 else None
        core.patch_node(node.metadata.name, {"metadata": {"labels": {LABEL: value}}})


if __name__ == "__main__":
    main(sys.argv[1:] or ["succeed", "deadline", "rate_limited_pull", "capacity_later", "invalid_image", "exit_code"])
