#!/usr/bin/env python3
"""Where a benchmark run's time and writes go, per task, from the kube-apiserver audit log.

    python3 hack/bench/timeline.py [--audit PATH] NAMESPACE

For each PodTask of one throughput run (its namespace is in the benchmark's log), the requests that touched it and
its pod, in order: the scheduler's binding (a create's audit record has no name, so times count from the binding), kwok's status patches (start, then finish), the
status writes podtask made, its pod delete. It prints the median and p90 of each step's time after the binding,
and where each of podtask's status writes but the last (the end) fell: before the pod started, while it ran (kwok had patched it started
but not finished), or after kwok had already finished it (podtask was behind). The audit policy logs metadata only,
so a write's content is inferred from where it fell.
"""

import argparse
import json
import os
import re
import statistics
import sys
from datetime import datetime

STATE = os.environ.get("PODTASK_CLUSTER_DIR", os.path.expanduser("~/.cache/podtask/cluster-bench"))
POD_NAME = re.compile(r"^(?P<task>.+)-[a-z0-9]{1,5}-(?P<attempt>\d+)$")


def ts(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def actor(ev):
    user = ev.get("user", {}).get("username", "")
    return {"kubernetes-admin": "podtask", "kwok-controller": "kwok", "system:kube-scheduler": "scheduler"}.get(
        user, "other")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("namespace")
    p.add_argument("--audit", default=os.path.join(STATE, "logs", "audit.log"))
    a = p.parse_args()
    tasks = {}
    with open(a.audit, "rb") as f:
        for raw in f:
            try:
                ev = json.loads(raw)
            except ValueError:
                continue
            ref = ev.get("objectRef") or {}
            if ev.get("stage") != "ResponseComplete" or ref.get("namespace") != a.namespace:
                continue
            if (ev.get("responseStatus") or {}).get("code", 200) >= 300:
                continue
            res, sub, name, verb = ref.get("resource"), ref.get("subresource", ""), ref.get("name"), ev.get("verb")
            who, t = actor(ev), ts(ev["stageTimestamp"])
            if res == "pods" and name:
                m = POD_NAME.match(name)
                if not m:
                    continue
                step = {("scheduler", "create", "binding"): "bound",
                        ("kwok", "patch", "status"): "kwok", ("podtask", "delete", ""): "delete"}.get((who, verb, sub))
                if step:
                    tasks.setdefault(m["task"], []).append((t, step))
            elif res == "podtasks" and name and who == "podtask" and verb in ("patch", "update") and sub == "status":
                tasks.setdefault(name, []).append((t, "status"))
    report(tasks)


def report(tasks):
    steps, where = {}, {"before start": 0, "while running": 0, "after finish": 0, "after delete": 0}
    per_task = []
    for name, evs in tasks.items():
        evs.sort()
        t0 = next((t for t, s in evs if s == "bound"), None)
        kwok = [t for t, s in evs if s == "kwok"]
        if t0 is None or len(kwok) < 2:
            continue
        start, finish = kwok[0], kwok[-1]
        delete = next((t for t, s in evs if s == "delete"), None)
        first_status = next((t for t, s in evs if s == "status"), None)
        for label, t in (("first status", first_status), ("kwok start", start), ("kwok finish", finish),
                         ("delete", delete)):
            if t is not None:
                steps.setdefault(label, []).append(t - t0)
        statuses = [t for t, s in evs if s == "status"]
        per_task.append(len(statuses))
        for t in statuses[:-1]:  # the last is the task's end
            if delete is not None and t > delete:
                where["after delete"] += 1
            elif t > finish:
                where["after finish"] += 1
            elif t > start:
                where["while running"] += 1
            else:
                where["before start"] += 1
        steps.setdefault("running (kwok finish - start)", []).append(finish - start)
    if not per_task:
        sys.exit("no complete task timelines in the audit log for that namespace")
    print(f"{len(per_task)} tasks; status writes per task: mean {statistics.mean(per_task):.2f}")
    print("seconds after the pod was bound (median / p90):")
    for label, xs in steps.items():
        xs.sort()
        print(f"  {label:32} {statistics.median(xs):6.2f} / {xs[int(len(xs) * 0.9)]:6.2f}")
    print("podtask's status writes before its last, by when they landed:")
    for k, v in where.items():
        print(f"  {k:16} {v}")


if __name__ == "__main__":
    main()
