#!/usr/bin/env python3
"""What one status write costs the API server: a PodTask's against a Job's, on a running local cluster.

    python3 hack/bench/status_writes.py [--seconds 20] [--objects 200] podtask|job

Creates OBJECTS PodTasks (or suspended Jobs, which no controller touches) with the same one-container pod template
in the namespace `status-writes`, then, from 4 threads for SECONDS, reads each object and writes its status back
(a report of the kind podtask writes: phase, message, times, one condition; for a Job, active and startTime). It
prints the writes completed and the CPU kube-apiserver and etcd used meanwhile (from /proc, pids checked against
their executables). The API server is saturated, so compare writes per run in the same conditions, and
alternate the kinds. For a profile, start the cluster with PODTASK_APISERVER_EXTRA_ARGS=--profiling=true and
fetch `kubectl get --raw "/debug/pprof/profile?seconds=15"` while this runs.

PODTASK_CLUSTER_DIR selects the cluster (default ~/.cache/podtask/cluster, hack/cluster.sh's). The objects are
left in place for the next run; `kubectl delete namespace status-writes` removes them.
"""

import argparse
import http.client
import json
import os
import ssl
import threading
import time

STATE = os.environ.get("PODTASK_CLUSTER_DIR", os.path.expanduser("~/.cache/podtask/cluster"))
NS = "status-writes"
THREADS = 4
MERGE = "application/merge-patch+json"


def port():
    with open(os.path.join(STATE, "ports")) as f:
        ports = dict(line.strip().split("=", 1) for line in f if "=" in line)
    return int(ports["kube-apiserver"])


def connect(ctx, p):
    return http.client.HTTPSConnection("127.0.0.1", p, context=ctx, timeout=30)


def call(conn, method, path, body=None, content_type="application/json"):
    conn.request(method, path, body=None if body is None else json.dumps(body),
                 headers={"Content-Type": content_type})
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, (json.loads(data) if data else None)


def cpu_ticks(name):
    """utime + stime of a control-plane component, from hack/cluster.sh's pid file checked against /proc."""
    with open(os.path.join(STATE, "pids", name + ".pid")) as f:
        pid = f.read().strip()
    exe = os.path.basename(os.readlink(f"/proc/{pid}/exe")).removesuffix(" (deleted)")
    if exe != name:
        raise SystemExit(f"pid {pid} of {name} is now {exe}")
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


TEMPLATE = {
    "metadata": {"annotations": {"kwok.podtask.dev/run-for": "3s"}},
    "spec": {"restartPolicy": "Never",
             "containers": [{"name": "main", "image": "busybox:1.36", "command": ["sh", "-c", "echo hello"]}]},
}


def kind_of(name):
    if name == "podtask":
        base = f"/apis/podtask.dev/v1alpha1/namespaces/{NS}/podtasks"

        def new(i):
            return {"apiVersion": "podtask.dev/v1alpha1", "kind": "PodTask", "metadata": {"name": f"w{i}"},
                    "spec": {"executionTimeout": "10m", "template": TEMPLATE}}

        def status(i, k):
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1_800_000_000 + k))
            return {"phase": "Running", "reason": "Running", "message": f"pod w{i}-abcde-1 runs ({k})",
                    "attempt": 1, "podName": f"w{i}-abcde-1", "startTime": now,
                    "deadline": "2030-01-01T00:00:00Z", "observedGeneration": 1,
                    "conditions": [{"type": "Running", "status": "True", "reason": "Running", "message": "runs",
                                    "lastTransitionTime": now, "observedGeneration": 1}]}
    else:
        base = f"/apis/batch/v1/namespaces/{NS}/jobs"

        def new(i):
            return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": f"w{i}"},
                    "spec": {"suspend": True, "template": TEMPLATE}}

        def status(i, k):
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1_800_000_000 + k))
            return {"active": 1, "ready": k % 2, "startTime": now, "terminating": 0}
    return base, new, status


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=["podtask", "job"])
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--objects", type=int, default=200)
    ap.add_argument("--patch", action="store_true",
                    help="write status as a JSON merge patch (with the read's resourceVersion) instead of a PUT")
    args = ap.parse_args()
    pki = os.path.join(STATE, "pki")
    ctx = ssl.create_default_context(cafile=os.path.join(pki, "ca.crt"))
    ctx.load_cert_chain(os.path.join(pki, "admin.crt"), os.path.join(pki, "admin.key"))
    p = port()
    base, new, status = kind_of(args.kind)
    conn = connect(ctx, p)
    code, _ = call(conn, "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                        "metadata": {"name": NS}})
    assert code in (201, 409), f"namespace: {code}"
    for i in range(args.objects):
        code, body = call(conn, "POST", base, new(i))
        assert code in (201, 409), f"create w{i}: {code} {body and body.get('message')}"
    writes = [0] * THREADS
    stop = time.monotonic() + args.seconds

    def work(t):
        c, k = connect(ctx, p), t * 1_000_000
        while time.monotonic() < stop:
            for i in range(t, args.objects, THREADS):
                code, obj = call(c, "GET", f"{base}/w{i}")
                if args.patch:
                    body = {"metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
                            "status": status(i, k)}
                    code, _ = call(c, "PATCH", f"{base}/w{i}/status", body, MERGE)
                else:
                    obj["status"] = status(i, k)
                    code, _ = call(c, "PUT", f"{base}/w{i}/status", obj)
                k += 1
                writes[t] += code == 200
                if time.monotonic() >= stop:
                    break

    before = cpu_ticks("kube-apiserver"), cpu_ticks("etcd")
    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after = cpu_ticks("kube-apiserver"), cpu_ticks("etcd")
    tick_ms = 1000 / os.sysconf("SC_CLK_TCK")
    api_ms, etcd_ms = ((a - b) * tick_ms for a, b in zip(after, before))
    total = sum(writes)
    print(f"{args.kind}: {total} status writes in {args.seconds:.0f} s ({total / args.seconds:.0f}/s); "
          f"kube-apiserver {api_ms:.0f} ms CPU, etcd {etcd_ms:.0f} ms "
          f"({(api_ms + etcd_ms) / max(total, 1):.2f} ms per read and write)")


if __name__ == "__main__":
    main()
