#!/usr/bin/env python3
"""Measure podtask next to the Kubernetes Job controller on the local cluster (hack/cluster.sh); print JSON.

Called by hack/bench/run.sh, which starts the cluster (with an audit log) and builds the operator. Every phase runs in
a fresh namespace; the operator is started per phase (so its CPU time and peak RSS belong to that phase) and watches
only that namespace. API requests are counted from the kube-apiserver audit log, by client.
"""

import argparse
import concurrent.futures as cf
import http.client
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
# the cluster hack/bench/run.sh starts (run.sh --keep leaves it up for running this script by hand)
STATE = os.environ.get("PODTASK_CLUSTER_DIR", os.path.expanduser("~/.cache/podtask/cluster-bench"))
PORT = int(os.environ.get("PODTASK_APISERVER_PORT", "56443"))
AUDIT = os.path.join(STATE, "logs", "audit.log")
UA = "podtask-bench"
CLK_TCK = os.sysconf("SC_CLK_TCK")
WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


class Kube:
    """A minimal API client: one keep-alive HTTPS connection per thread, admin client certificate."""

    def __init__(self):
        self.ctx = ssl.create_default_context(cafile=os.path.join(STATE, "pki", "ca.crt"))
        self.ctx.load_cert_chain(os.path.join(STATE, "pki", "admin.crt"), os.path.join(STATE, "pki", "admin.key"))
        self.local = threading.local()

    def _conn(self, fresh=False):
        if fresh or getattr(self.local, "conn", None) is None:
            self.local.conn = http.client.HTTPSConnection("127.0.0.1", PORT, context=self.ctx, timeout=120)
        return self.local.conn

    def req(self, method, path, body=None, ctype="application/json", ok=(200, 201, 202, 404, 409)):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"User-Agent": UA, "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = ctype
        for attempt in range(5):
            try:
                c = self._conn(fresh=attempt > 0)
                c.request(method, path, body=data, headers=headers)
                r = c.getresponse()
                raw = r.read()
                if r.status == 429 or r.status >= 500:
                    time.sleep(0.2 * (attempt + 1))
                    continue
                if r.status not in ok:
                    raise RuntimeError(f"{method} {path}: HTTP {r.status}: {raw[:300]!r}")
                return r.status, (json.loads(raw) if raw else None)
            except (OSError, http.client.HTTPException):
                time.sleep(0.2 * (attempt + 1))
        raise RuntimeError(f"{method} {path}: no answer after 5 attempts")

    def watch(self, path, on_event, stop):
        """Stream watch events of `path` to on_event(type, obj, t) until stop is set (reconnects at the last rv)."""

        def loop():
            rv = ""
            while not stop.is_set():
                c = http.client.HTTPSConnection("127.0.0.1", PORT, context=self.ctx, timeout=5)
                q = {"watch": "true", "allowWatchBookmarks": "true", "timeoutSeconds": "3600"}
                if rv:
                    q["resourceVersion"] = rv
                try:
                    c.request("GET", f"{path}?{urllib.parse.urlencode(q)}", headers={"User-Agent": UA})
                    r = c.getresponse()
                    while not stop.is_set():
                        try:
                            line = r.readline()
                        except TimeoutError:
                            continue
                        if not line:
                            break
                        ev = json.loads(line)
                        obj = ev["object"]
                        rv = obj.get("metadata", {}).get("resourceVersion", rv)
                        if ev["type"] == "ERROR":
                            rv = ""
                            break
                        if ev["type"] != "BOOKMARK":
                            on_event(ev["type"], obj, time.time())
                except (OSError, http.client.HTTPException, ValueError):
                    time.sleep(0.2)
                finally:
                    c.close()

        th = threading.Thread(target=loop, daemon=True)
        th.start()
        return th


K = None  # the client, set in main


def parallel(fn, items, workers):
    with cf.ThreadPoolExecutor(workers) as ex:
        list(ex.map(fn, items))


# ---------------------------------------------------------------- objects
def template(scenario, extra_ann=None, grace=None):
    ann = {"kwok.podtask.dev/run-for": "1s"}
    if scenario != "succeed":
        ann["kwok.podtask.dev/scenario"] = scenario
    ann.update(extra_ann or {})
    spec = {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox:1.36"}]}
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    return {"metadata": {"annotations": ann, "labels": {"app": "bench"}}, "spec": spec}


def podtask(name, scenario="succeed", deadline=None, ann=None):
    # deadline tests: grace 0, so that the pod is stopped at the deadline itself (with a grace period podtask stops
    # it that much earlier, to have it gone by the deadline)
    spec = {"template": template(scenario, ann, grace=0 if deadline else None)}
    if deadline:
        spec["deadline"] = deadline
    return {"apiVersion": "podtask.dev/v1alpha1", "kind": "PodTask", "metadata": {"name": name}, "spec": spec}


def job(name, scenario="succeed"):
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"backoffLimit": 2, "template": template(scenario)},
    }


def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def coll(kind, ns):
    return {
        "podtask": f"/apis/podtask.dev/v1alpha1/namespaces/{ns}/podtasks",
        "job": f"/apis/batch/v1/namespaces/{ns}/jobs",
        "pod": f"/api/v1/namespaces/{ns}/pods",
    }[kind]


def bare_pod(name):
    """The pod a task of `podtask(name)` or `job(name)` runs, created by a client of its own (the floor below any
    controller: the scheduler and kwok move it all the same)."""
    pod = template("succeed")
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, **pod["metadata"]}, "spec": pod["spec"]}


def is_done(kind, obj):
    st = obj.get("status") or {}
    if kind in ("pod", "podtask"):
        return st.get("phase") in ("Succeeded", "Failed")
    return any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True" for c in st.get("conditions") or [])


# ---------------------------------------------------------------- namespaces, processes
_ns_seq = [0]


def new_namespace(tag):
    _ns_seq[0] += 1
    ns = f"bench-{tag}-{os.getpid()}-{_ns_seq[0]}"
    K.req("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
    for _ in range(100):
        if K.req("GET", f"/api/v1/namespaces/{ns}/serviceaccounts/default")[0] == 200:
            return ns
        time.sleep(0.2)
    raise RuntimeError(f"no default ServiceAccount in {ns}")


def drop_namespace(ns, wait=True):
    """Delete everything in ns server-side (pods at once), then the namespace; wait until it is gone."""
    for path in (coll("podtask", ns) + "?propagationPolicy=Orphan", coll("job", ns) + "?propagationPolicy=Orphan",
                 coll("pod", ns) + "?gracePeriodSeconds=0"):
        try:
            K.req("DELETE", path)
        except RuntimeError as e:
            # thousands of objects can outlast the API server's request timeout: the namespace's deletion finishes
            log(f"{e}; leaving the rest to the namespace's deletion")
    K.req("DELETE", f"/api/v1/namespaces/{ns}")
    for _ in range(600 if wait else 0):
        if K.req("GET", f"/api/v1/namespaces/{ns}")[0] == 404:
            return
        time.sleep(0.5)


def proc_stat(pid):
    """(cpu seconds, VmHWM KiB, VmRSS KiB) of a process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
    mem = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmHWM", "VmRSS"):
                mem[k] = int(v.split()[0])
    return cpu, mem.get("VmHWM", 0), mem.get("VmRSS", 0)


def component_pid(name):
    """pid of a cluster component, only if /proc/<pid>/exe is that binary (a pid file alone is not trusted)."""
    try:
        pid = int(open(os.path.join(STATE, "pids", f"{name}.pid")).read().strip())
        if os.path.basename(os.readlink(f"/proc/{pid}/exe")).split(" ")[0] == name:
            return pid
    except (OSError, ValueError):
        pass
    return None


COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


def settle(limit_s=180, idle_cores=0.3, calm_s=3):
    """Wait until the cluster's components are idle (together below idle_cores for calm_s seconds in a row): the
    last run's aftermath (the garbage collector and kwok finishing with its deleted objects) must not share the
    machine with the next run. Returns the seconds waited."""
    def cpu():
        return sum(proc_stat(pid)[0] for pid in map(component_pid, COMPONENTS) if pid)
    start, last, calm = time.time(), cpu(), 0
    while calm < calm_s and time.time() - start < limit_s:
        time.sleep(1)
        now = cpu()
        calm = calm + 1 if now - last < idle_cores else 0
        last = now
    return time.time() - start


class Operator:
    def __init__(self, ns, args):
        self.port = 21000 + os.getpid() % 20000
        self.logf = open(os.path.join(ROOT, "target", f"bench-operator-{ns}.log"), "w")
        env = dict(os.environ, KUBECONFIG=os.path.join(STATE, "kubeconfig"))
        cmd = [os.path.join(ROOT, "target", "release", "podtask"), "run", "--namespaces", ns,
               "--http-addr", f"127.0.0.1:{self.port}",
               "--log-level", os.environ.get("BENCH_OPERATOR_LOG_LEVEL", "warn")] + args
        # e.g. BENCH_OPERATOR_WRAPPER="heaptrack -o target/bench/heap" (CPU/RSS figures then belong to the wrapper)
        cmd = os.environ.get("BENCH_OPERATOR_WRAPPER", "").split() + cmd
        # its own process group: stop() ends a wrapper's children too
        self.p = subprocess.Popen(cmd, stdout=self.logf, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.max_connections, self._sampling = 0, threading.Event()
        for _ in range(150):
            if self.get("/readyz") is not None:
                threading.Thread(target=self._sample_connections, daemon=True).start()
                return
            if self.p.poll() is not None:
                raise RuntimeError(f"operator exited with {self.p.returncode}; see {self.logf.name}")
            time.sleep(0.2)
        raise RuntimeError("operator not ready in 30s")

    def get(self, path):
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            c.request("GET", path)
            r = c.getresponse()
            return r.read().decode() if r.status == 200 else None
        except OSError:
            return None

    def pid(self):
        """The operator's own pid: under a wrapper, its descendant running the podtask binary."""
        exe = os.path.join(ROOT, "target", "release", "podtask")
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                if os.readlink(f"/proc/{d}/exe") != exe:
                    continue
                pid = int(d)
                while pid > 1:
                    if pid == self.p.pid:
                        return int(d)
                    with open(f"/proc/{pid}/stat") as f:
                        pid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError):
                continue
        return self.p.pid

    def stat(self):
        return proc_stat(self.pid())

    def _sample_connections(self):
        """The most TCP connections to the API server the operator held at once (sampled every 0.5 s)."""
        pid = self.pid()
        while not self._sampling.wait(0.5):
            try:
                self.max_connections = max(self.max_connections, api_connections(pid))
            except OSError:
                return

    def stop(self):
        self._sampling.set()
        os.kill(self.pid(), signal.SIGTERM)
        # Wait for the process we started to exit without reaping it: until it is reaped its pid, the id of its
        # process group, cannot be reused, so the group signal below reaches only what a wrapper left running.
        done = lambda flags=0: os.waitid(os.P_PID, self.p.pid, os.WEXITED | os.WNOWAIT | flags)
        for _ in range(600):
            if done(os.WNOHANG):
                break
            time.sleep(0.2)
        else:
            self.p.kill()
            done()
        try:
            os.killpg(self.p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        self.p.wait()
        self.logf.close()


def api_connections(pid):
    """Established TCP connections from process `pid` to the API server's port."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                cols = line.split()
                if int(cols[2].rsplit(":", 1)[1], 16) == PORT and cols[3] == "01" and cols[9] in inodes:
                    n += 1
    return n


def metric_lines(text, name):
    for line in text.splitlines():
        if line.startswith(name):
            yield line


def histogram(text, name):
    """Cumulative buckets [(le, count)] of a Prometheus histogram."""
    out = []
    for line in metric_lines(text, name + "_bucket"):
        le = line.split('le="', 1)[1].split('"', 1)[0]
        out.append((float("inf") if le == "+Inf" else float(le), float(line.rsplit(" ", 1)[1])))
    return sorted(out)


def hist_quantile(buckets, q):
    """Linear interpolation inside the bucket, like PromQL's histogram_quantile."""
    total = buckets[-1][1] if buckets else 0
    if total == 0:
        return None
    rank, prev_le, prev_c = q * total, 0.0, 0.0
    for le, c in buckets:
        if c >= rank:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * ((rank - prev_c) / (c - prev_c) if c > prev_c else 1)
        prev_le, prev_c = le, c
    return prev_le


# ---------------------------------------------------------------- audit log
def audit_offset():
    try:
        return os.path.getsize(AUDIT)
    except OSError:
        return 0


def client_of(ev):
    user = ev.get("user", {}).get("username", "")
    ua = ev.get("userAgent", "")
    if ua.startswith(UA):
        return "bench-client"
    if user.endswith(":job-controller"):
        return "job-controller"
    if user == "kubernetes-admin":
        return "podtask"
    if user == "kwok-controller":
        return "kwok"
    if user == "system:kube-scheduler":
        return "scheduler"
    return "other"


def audit_counts(start, end_wait=2.0):
    """Requests since byte offset `start`, {client: {"verb resource[/sub]": n}} (audit batches flush within ~1 s)."""
    time.sleep(end_wait)
    out = {}
    with open(AUDIT, "rb") as f:
        f.seek(start)
        for raw in f:
            try:
                ev = json.loads(raw)
            except ValueError:
                continue
            if ev.get("stage") != "ResponseComplete":
                continue
            ref = ev.get("objectRef") or {}
            res = ref.get("resource", ev.get("requestURI", "?").split("?")[0])
            if ref.get("subresource"):
                res += "/" + ref["subresource"]
            key = f"{ev.get('verb')} {res}"
            code = (ev.get("responseStatus") or {}).get("code", 200)
            if code >= 300:
                key += f" ({code})"
            c = out.setdefault(client_of(ev), {})
            c[key] = c.get(key, 0) + 1
    return out


# asked of the API server but stored nowhere, or not per task: an operator's start-up RBAC check, leader election
NOT_TASK_WRITES = ("selfsubjectaccessreviews", "leases")


def writes(counts, exclude_events=False):
    return sum(n for k, n in counts.items() if k.split()[0] in WRITE_VERBS and k.split()[1] not in NOT_TASK_WRITES
               and not (exclude_events and k.split()[1] == "events"))


# ---------------------------------------------------------------- load beside the cluster
class Load:
    """`n` processes that only spin (each a CPU core's worth of demand at nice 0) beside the cluster while a run
    lasts: the loaded variant of a run. Started and stopped by this script only (it holds their Popen objects)."""

    def __init__(self, n):
        self.procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]

    def stop(self):
        for p in self.procs:
            p.kill()
            p.wait()


# ---------------------------------------------------------------- phases
def create_all(objs, kind, ns, workers):
    path = coll(kind, ns)
    parallel(lambda o: K.req("POST", path, o), objs, workers)


def throughput(kind, n, args, label):
    """N one-pod tasks (kind podtask or job) whose pods run 1 s: time to all pods created and to all done."""
    ns = new_namespace(kind)
    op = Operator(ns, args.operator_args) if kind == "podtask" else None
    kcm = component_pid("kube-controller-manager")
    kcm0 = proc_stat(kcm)[0] if kcm else None
    # where the machine's CPU goes: the API server, etcd and kwok serve both controllers
    shared = {c: component_pid(c) for c in ("kube-apiserver", "etcd", "kwok")}
    shared0 = {c: proc_stat(pid)[0] for c, pid in shared.items() if pid}
    pods_seen, done, lock, stop = {}, {}, threading.Lock(), threading.Event()

    def on_pod(typ, obj, t):
        with lock:
            pods_seen.setdefault(obj["metadata"]["uid"], t)

    def on_obj(typ, obj, t):
        if is_done(kind, obj):
            with lock:
                done.setdefault(obj["metadata"]["name"], t)

    K.watch(coll("pod", ns), on_pod, stop)
    K.watch(coll(kind, ns), on_obj, stop)
    time.sleep(0.5)
    a0 = audit_offset()
    t0 = time.time()
    make = podtask if kind == "podtask" else job
    create_all([make(f"t-{i}") for i in range(n)], kind, ns, args.workers)
    t_submitted = time.time() - t0
    deadline = time.time() + max(180, n * 0.6)
    while len(done) < n and time.time() < deadline:
        time.sleep(0.2)
    t_done = max(done.values()) - t0 if len(done) >= n else None
    # let the operator's trailing pod deletes land before counting requests
    if kind == "podtask":
        for _ in range(100):
            if not K.req("GET", coll("pod", ns) + "?limit=1")[1]["items"]:
                break
            time.sleep(0.2)
    stop.set()
    shared_cpu = {c: round(proc_stat(shared[c])[0] - t, 1) for c, t in shared0.items()
                  if component_pid(c) == shared[c]}
    counts = audit_counts(a0)
    res = {
        "kind": kind, "label": label, "n": n, "submitted_s": t_submitted,
        "pods_created_s": (max(pods_seen.values()) - t0) if len(pods_seen) >= n else None,
        "pods_seen": len(pods_seen), "done": len(done), "done_s": t_done,
        "tasks_per_s": n / t_done if t_done else None, "requests": counts, "component_cpu_s": shared_cpu,
    }
    if kind == "podtask":
        cpu, hwm, rss = op.stat()
        res.update(cpu_s=cpu, peak_rss_kib=hwm, rss_kib=rss, api_connections_max=op.max_connections)
        metrics = op.get("/metrics") or ""
        with open(os.path.join(ROOT, "target", "bench", f"operator-metrics-{ns}.txt"), "w") as f:
            f.write(metrics)
        res["operator_metrics_file"] = f"target/bench/operator-metrics-{ns}.txt"
        res["operator_writes_metric"] = sum(float(l.rsplit(" ", 1)[1]) for l in metric_lines(metrics, "podtask_api_writes_total"))
        op.stop()
        ctl = "podtask"
    else:
        if kcm and kcm0 is not None and component_pid("kube-controller-manager") == kcm:
            res["kcm_cpu_s"] = proc_stat(kcm)[0] - kcm0
        ctl = "job-controller"
    res["writes_per_task"] = writes(counts.get(ctl, {})) / n
    res["writes_per_task_no_events"] = writes(counts.get(ctl, {}), exclude_events=True) / n
    log(f"{label}: n={n} pods_created={res['pods_created_s']} done={t_done} rate={res['tasks_per_s']} "
        f"writes/task={res['writes_per_task']:.2f} ({res['writes_per_task_no_events']:.2f} without events)"
        + (f" api_connections_max={res['api_connections_max']}" if kind == "podtask" else "")
        + f" cpu_s={shared_cpu}" + (f" kcm_cpu_s={res.get('kcm_cpu_s')}" if kind == "job" else ""))
    drop_namespace(ns)
    return res


def controller_only(kind, n, args, label):
    """N tasks created while their controller is stopped, then the controller started: seconds from its start to all
    done (the controller's own pace, apart from the creation client's). Kind "pod": no controller, the N pods created
    by the bench's client at the start, done once they have run (what no controller can go below on this cluster)."""
    ns = new_namespace(kind + "-ctl")
    done, lock, stop = {}, threading.Lock(), threading.Event()

    def on_obj(typ, obj, t):
        if is_done(kind, obj):
            with lock:
                done.setdefault(obj["metadata"]["name"], t)

    if kind == "job":
        subprocess.run([os.path.join(ROOT, "hack", "cluster.sh"), "stop-kcm"], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    if kind != "pod":
        make = podtask if kind == "podtask" else job
        create_all([make(f"t-{i}") for i in range(n)], kind, ns, args.workers)
    K.watch(coll(kind, ns), on_obj, stop)
    time.sleep(2)
    shared = {c: component_pid(c) for c in ("kube-apiserver", "etcd", "kwok")}
    shared0 = {c: proc_stat(pid)[0] for c, pid in shared.items() if pid}
    a0 = audit_offset()
    t0 = time.time()
    op = None
    if kind == "podtask":
        op = Operator(ns, args.operator_args)
    elif kind == "pod":
        create_all([bare_pod(f"t-{i}") for i in range(n)], kind, ns, args.workers)
    else:
        os.environ["PODTASK_KCM_EXTRA_ARGS"] = "--kube-api-qps=1000 --kube-api-burst=1000 --concurrent-job-syncs=50"
        subprocess.run([os.path.join(ROOT, "hack", "cluster.sh"), "restart-kcm"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: len(done) >= n, max(180, n * 0.6))
    t_done = max(done.values()) - t0 if len(done) >= n else None
    if kind == "podtask":
        wait_until(lambda: not K.req("GET", coll("pod", ns) + "?limit=1")[1]["items"], 20, step=0.2)
    stop.set()
    shared_cpu = {c: round(proc_stat(shared[c])[0] - t, 1) for c, t in shared0.items()
                  if component_pid(c) == shared[c]}
    counts = audit_counts(a0)
    res = {"kind": kind, "label": label, "n": n, "done": len(done), "done_s": t_done,
           "tasks_per_s": n / t_done if t_done else None, "requests": counts, "component_cpu_s": shared_cpu}
    if op:
        cpu, hwm, rss = op.stat()
        res.update(cpu_s=cpu, peak_rss_kib=hwm)
        op.stop()
    ctl = {"podtask": "podtask", "job": "job-controller", "pod": "bench-client"}[kind]
    res["writes_per_task"] = writes(counts.get(ctl, {})) / n
    res["writes_per_task_no_events"] = writes(counts.get(ctl, {}), exclude_events=True) / n
    log(f"controller-only {label}: n={n} done={t_done} rate={res['tasks_per_s']} cpu_s={shared_cpu}")
    drop_namespace(ns)
    return res


def wait_until(pred, timeout, step=0.25):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(step)
    return False


def running_tasks(kind, n, ns, make, args, timeout, op=None):
    """Create n tasks whose pods run forever; wait until all pods are Running (or the operator, if given, exits)."""
    running, lock, stop = set(), threading.Lock(), threading.Event()

    def on_pod(typ, obj, t):
        with lock:
            if typ == "DELETED":
                running.discard(obj["metadata"]["uid"])
            elif (obj.get("status") or {}).get("phase") == "Running":
                running.add(obj["metadata"]["uid"])

    K.watch(coll("pod", ns), on_pod, stop)
    t0 = time.time()
    create_all([make(i) for i in range(n)], kind, ns, args.workers)
    ok = wait_until(lambda: len(running) >= n or (op is not None and op.p.poll() is not None), timeout)
    if op is not None and op.p.poll() is not None:
        raise RuntimeError(f"the operator exited with {op.p.returncode} while {len(running)} of {n} pods were Running;"
                           f" see {op.logf.name}")
    t = time.time() - t0
    return stop, running, (t if ok else None)


def deadline_burst(n, args):
    """n running tasks share one absolute deadline: seconds from it to 50/99/100 % marked DeadlineExceeded; and the
    same pod deletes + status writes done by a bare client (args.workers parallel requests) on n other tasks."""
    ann = {"kwok.podtask.dev/ignore-active-deadline": "true"}
    lead = max(30, n * 0.08)
    # --- the operator
    ns = new_namespace("burst")
    op = Operator(ns, args.operator_args)
    dl = int(time.time() + lead + 1)
    marked, lock = {}, threading.Lock()

    def on_task(typ, obj, t):
        st = obj.get("status") or {}
        if st.get("reason") == "DeadlineExceeded":
            with lock:
                marked.setdefault(obj["metadata"]["name"], t)

    stop_t = threading.Event()
    K.watch(coll("podtask", ns), on_task, stop_t)
    stop, running, t_run = running_tasks("podtask", n, ns, lambda i: podtask(f"t-{i}", "run-forever", rfc3339(dl), ann),
                                         args, lead)
    ready_before = time.time() < dl
    a0 = audit_offset()
    wait_until(lambda: len(marked) >= n, 120 + n * 0.2)
    stop.set(), stop_t.set()
    lags = sorted(t - dl for t in marked.values())
    metrics = op.get("/metrics") or ""
    cpu, hwm, _ = op.stat()
    counts = audit_counts(a0)
    op.stop()
    drop_namespace(ns)

    def pct(q):
        return lags[min(len(lags) - 1, max(0, int(round(q * len(lags))) - 1))] if len(lags) >= n else None

    res = {"n": n, "running_before_deadline": ready_before and t_run is not None, "marked": len(lags),
           "p50_s": pct(0.5), "p99_s": pct(0.99), "p100_s": pct(1.0), "cpu_s": cpu, "peak_rss_kib": hwm,
           "operator_lag_p99_s": hist_quantile(histogram(metrics, "podtask_deadline_enforcement_lag_seconds"), 0.99),
           "requests": counts}
    # --- the bare client: same objects, no operator; at the deadline it deletes each pod and writes each status
    ns = new_namespace("floor")
    create_all([podtask(f"t-{i}", "run-forever", None, ann) for i in range(n)], "podtask", ns, args.workers)
    # pods for them, as the operator would have made (the bare client only needs something to delete)
    pod = template("run-forever", ann, grace=0)
    stop, running, t_run2 = running_tasks("pod", n, ns, lambda i: {
        "apiVersion": "v1", "kind": "Pod", "metadata": dict(pod["metadata"], name=f"t-{i}-1"), "spec": pod["spec"]},
        args, lead)
    stop.set()
    status = {"status": {"phase": "Failed", "reason": "DeadlineExceeded", "message": "deadline passed"}}

    def enforce(i):
        K.req("DELETE", coll("pod", ns) + f"/t-{i}-1", {"kind": "DeleteOptions", "apiVersion": "v1",
                                                        "gracePeriodSeconds": 0})
        K.req("PATCH", coll("podtask", ns) + f"/t-{i}/status", status, ctype="application/merge-patch+json")

    t0 = time.time()
    parallel(enforce, range(n), args.workers)
    res["floor_s"] = time.time() - t0
    drop_namespace(ns)
    res["ratio_to_floor"] = res["p100_s"] / res["floor_s"] if res["p100_s"] is not None else None
    log(f"burst n={n}: p50={res['p50_s']} p99={res['p99_s']} p100={res['p100_s']} floor={res['floor_s']:.2f}")
    return res


def spread_deadlines(n, args, spread_s):
    """n live tasks whose deadlines fall uniformly over spread_s seconds: lag from the operator's histogram."""
    ann = {"kwok.podtask.dev/ignore-active-deadline": "true"}
    ns = new_namespace("spread")
    op = Operator(ns, args.operator_args)
    lead = max(30, n * 0.08)
    first = time.time() + lead
    marked, lock, stop_t = {}, threading.Lock(), threading.Event()
    dls = {f"t-{i}": int(first + spread_s * i / n) + 1 for i in range(n)}

    def on_task(typ, obj, t):
        if (obj.get("status") or {}).get("reason") == "DeadlineExceeded":
            with lock:
                marked.setdefault(obj["metadata"]["name"], t)

    K.watch(coll("podtask", ns), on_task, stop_t)
    stop, running, t_run = running_tasks("podtask", n, ns,
                                         lambda i: podtask(f"t-{i}", "run-forever", rfc3339(dls[f"t-{i}"]), ann), args, lead)
    live_at_first = t_run is not None and time.time() < first
    wait_until(lambda: len(marked) >= n, spread_s + lead + 60, step=1)
    stop.set(), stop_t.set()
    metrics = op.get("/metrics") or ""
    cpu, hwm, _ = op.stat()
    op.stop()
    drop_namespace(ns)
    b = histogram(metrics, "podtask_deadline_enforcement_lag_seconds")
    lags = sorted(t - dls[k] for k, t in marked.items())
    res = {"n": n, "spread_s": spread_s, "all_live_before_first_deadline": live_at_first, "marked": len(lags),
           "hist_p50_s": hist_quantile(b, 0.5), "hist_p99_s": hist_quantile(b, 0.99), "hist_buckets": b,
           "status_p50_s": lags[len(lags) // 2] if lags else None,
           "status_p99_s": lags[int(len(lags) * 0.99) - 1] if lags else None, "cpu_s": cpu, "peak_rss_kib": hwm}
    log(f"spread n={n}: hist p50={res['hist_p50_s']} p99={res['hist_p99_s']} status p99={res['status_p99_s']}")
    return res


def scale_point(n, args):
    """n PodTasks whose pods keep running: operator RSS and CPU once all are Running and settled."""
    ns = new_namespace("scale")
    # Memory is the question here, not startup: on a busy machine kwok and the scheduler need many minutes to start
    # thousands of pods, and the default 5-minute startup timeout would turn that wait into retries.
    op = Operator(ns, args.operator_args + ["--default-startup-timeout=2h"])
    stop, running, t_run = running_tasks("podtask", n, ns, lambda i: podtask(f"t-{i}", "run-forever"), args,
                                         120 + n * 0.3, op)
    stop.set()
    ok = wait_until(lambda: _tasks_running(op) >= n, 60, step=1)
    time.sleep(5)
    cpu, hwm, rss = op.stat()
    op.stop()
    res = {"n": n, "all_running_s": t_run, "status_running": ok, "cpu_s": cpu, "peak_rss_kib": hwm, "rss_kib": rss,
           "api_connections_max": op.max_connections}
    log(f"scale n={n}: running in {t_run} s, rss={rss} KiB peak={hwm} KiB cpu={cpu:.1f} s,"
        f" at most {op.max_connections} API connections; operator stopped,"
        f" deleting the namespace")
    drop_namespace(ns)
    return res


def _tasks_running(op):
    for line in metric_lines(op.get("/metrics") or "", "podtask_tasks{"):
        if 'phase="Running"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0


def set_kcm(budget):
    """Restart kube-controller-manager at its defaults or with podtask's (unthrottled) API budget."""
    if "PODTASK_CLUSTER_DIR" not in os.environ or "PODTASK_KCM_PORT" not in os.environ:
        # cluster.sh would otherwise act on the default cluster
        raise SystemExit("Job phases restart kube-controller-manager: run them through hack/bench/run.sh")
    extra = "--kube-api-qps=1000 --kube-api-burst=1000 --concurrent-job-syncs=50" if budget == "equal" else ""
    if os.environ.get("PODTASK_KCM_EXTRA_ARGS", "") == extra and component_pid("kube-controller-manager"):
        return
    os.environ["PODTASK_KCM_EXTRA_ARGS"] = extra
    subprocess.run([os.path.join(ROOT, "hack", "cluster.sh"), "restart-kcm"], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    time.sleep(3)  # informers sync


def main():
    global K
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", type=int, nargs="+", default=[1000])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--burst", type=int, default=1000)
    p.add_argument("--spread", type=int, default=1000)
    p.add_argument("--spread-seconds", type=int, default=180)
    p.add_argument("--scale", type=int, nargs="*", default=[100, 1000, 5000, 10000])
    p.add_argument("--workers", type=int, default=16)
    p.add_argument("--phases", default="throughput,controller,burst,spread,scale")
    p.add_argument("--load", type=int, default=1,
                   help="spinning processes beside the cluster in the loaded variant of throughput runs")
    p.add_argument("--variants", default="quiet,loaded")
    p.add_argument("--operator-args", default="")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    args.operator_args = args.operator_args.split()
    K = Kube()
    phases = args.phases.split(",")
    out = {"started": rfc3339(time.time()), "args": vars(args), "nproc": os.cpu_count(),
           "loadavg_start": os.getloadavg(), "throughput": [], "controller": [], "burst": None, "spread": None,
           "scale": []}

    def save():
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)

    variants = args.variants.split(",")
    if "throughput" in phases:
        for variant in variants:
            for n in args.sizes:
                for r in range(args.repeats):
                    # alternate: Job (defaults), PodTask, Job (equal budget), PodTask; the next repeat starts the other way
                    order = [("job", "defaults"), ("podtask", "podtask"), ("job", "equal"), ("podtask", "podtask")]
                    if r % 2:
                        order = order[::-1]
                    # BENCH_KINDS=podtask: podtask's runs only (to look into its own requests, say)
                    kinds = os.environ.get("BENCH_KINDS", "job,podtask").split(",")
                    # ("job-equal": the Job controller at the equal budget only)
                    order = [o for o in order if o[0] in kinds or f"{o[0]}-{o[1]}" in kinds]
                    for kind, label in order:
                        if kind == "job":
                            set_kcm(label)
                        waited = settle()
                        load = Load(args.load if variant == "loaded" else 0)
                        try:
                            res = throughput(kind, n, args, "job-" + label if kind == "job" else label)
                        finally:
                            load.stop()
                        res["repeat"], res["settled_after_s"], res["variant"] = r, waited, variant
                        out["throughput"].append(res)
                        save()
        set_kcm("defaults")
    if "controller" in phases:
        # the Job controller at the equal budget, podtask, and again the other way round; quiet, then loaded
        for variant in variants:
            for r in range(args.repeats):
                kinds = os.environ.get("BENCH_KINDS", "job,podtask").split(",")
                order = [("job", "job-equal"), ("podtask", "podtask"), ("pod", "pods-alone")]
                order = [o for o in order if o[0] in kinds or o[1] in kinds or o[0] == "pod"]
                for kind, label in (order if r % 2 == 0 else order[::-1]):
                    settle()
                    load = Load(args.load if variant == "loaded" else 0)
                    try:
                        res = controller_only(kind, args.sizes[0], args, label)
                    finally:
                        load.stop()
                    res["repeat"], res["variant"] = r, variant
                    out["controller"].append(res)
                    save()
        set_kcm("defaults")
    if "burst" in phases and args.burst:
        settle()
        out["burst"] = deadline_burst(args.burst, args)
        save()
    if "spread" in phases and args.spread:
        settle()
        out["spread"] = spread_deadlines(args.spread, args, args.spread_seconds)
        save()
    if "scale" in phases:
        for n in args.scale:
            out["scale"].append(scale_point(n, args))
            save()
    out["loadavg_end"] = os.getloadavg()
    out["finished"] = rfc3339(time.time())
    save()


if __name__ == "__main__":
    main()
