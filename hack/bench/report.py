#!/usr/bin/env python3
"""Turn hack/bench/bench.py's JSON into Markdown tables (stdout) and a chart: report.py RESULTS.json CHART.svg"""

import json
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
matplotlib.rcParams["svg.hashsalt"] = "podtask"  # stable ids: the same results give the same file
import matplotlib.pyplot as plt  # noqa: E402

CTL = {"podtask": "podtask", "job-defaults": "job-controller", "job-equal": "job-controller", "pods-alone": "bench-client"}
NAMES = {"job-defaults": "Job controller, defaults", "job-equal": "Job controller, equal budget", "podtask": "podtask",
         "pods-alone": "no controller: the pods alone"}


def f(x, fmt="{:.1f}"):
    return "–" if x is None else fmt.format(x)


def verbs(run):
    """'create pods 1.00, patch podtasks/status 2.00, ...' per task, writes only, for the run's controller."""
    c = run["requests"].get(CTL[run["label"]], {})
    w = sorted((k, n) for k, n in c.items() if k.split()[0] in ("create", "update", "patch", "delete", "deletecollection"))
    return ", ".join(f"{k} {n / run['n']:.2f}" for k, n in w)


def events(run):
    c = run["requests"].get(CTL[run["label"]], {})
    return sum(n for k, n in c.items() if k.split()[0] in ("create", "update", "patch") and k.split()[1] == "events") / run["n"]


def reads(run):
    c = run["requests"].get(CTL[run["label"]], {})
    return sum(n for k, n in c.items() if k.split()[0] in ("get", "list", "watch")) / run["n"]


def main():
    res = json.load(open(sys.argv[1]))
    chart = sys.argv[2]

    def server_cpu(r):
        c = r.get("component_cpu_s") or {}
        return c["kube-apiserver"] + c.get("etcd", 0) if "kube-apiserver" in c else None
    tp = res["throughput"]
    out = []
    p = out.append
    p(f"Run {res['started']} – {res.get('finished', '(unfinished)')}, {res['nproc']} CPUs, load average "
      f"{res['loadavg_start'][0]:.1f} at start, {res.get('loadavg_end', [0])[0]:.1f} at the end.\n")
    if tp:
        p("### Throughput (one-pod tasks, pods run 1 s)\n")
        p("| N | machine | # | controller | all pods created (s) | all done (s) | tasks/s | writes/task (w/o events) | "
          "events/task | reads/task | controller CPU (s) | API server + etcd CPU (s) | per task (ms) | "
          "operator peak RSS (MiB) |")
        p("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in tp:
            cpu = server_cpu(r)
            p(f"| {r['n']} | {r.get('variant', 'quiet')} | {r['repeat'] + 1} | {NAMES[r['label']]} | "
              f"{f(r['pods_created_s'])} | {f(r['done_s'])} | "
              f"{f(r['tasks_per_s'])} | {r['writes_per_task']:.2f} ({r['writes_per_task_no_events']:.2f}) | "
              f"{events(r):.2f} | {reads(r):.2f} | {f(r.get('cpu_s', r.get('kcm_cpu_s')))} | {f(cpu)} | "
              f"{f(cpu * 1000 / r['n'] if cpu else None)} | "
              f"{f(r['peak_rss_kib'] / 1024 if 'peak_rss_kib' in r else None)} |")
        p("\nWrites per task by verb and resource, as the API server's audit log counts them (last repeat):\n")
        last = {}
        for r in tp:
            last[(r["n"], r["label"])] = r
        for (n, label), r in sorted(last.items()):
            p(f"- N={n}, {NAMES[label]}: {verbs(r)}")
        p("\n### Ratios (podtask ÷ Job controller, completion rate, pairs of neighbouring runs)\n")
        p("| N | machine | vs defaults | vs equal budget |")
        p("|---|---|---|---|")
        for (n, variant) in sorted({(r["n"], r.get("variant", "quiet")) for r in tp}):
            rs = [r for r in tp if r["n"] == n and r.get("variant", "quiet") == variant]
            row = []
            for label in ("job-defaults", "job-equal"):
                ratios = []
                for rep in sorted({r["repeat"] for r in rs}):
                    pt = [r["tasks_per_s"] for r in rs if r["repeat"] == rep and r["label"] == "podtask" and r["tasks_per_s"]]
                    jb = [r["tasks_per_s"] for r in rs if r["repeat"] == rep and r["label"] == label and r["tasks_per_s"]]
                    if pt and jb:
                        ratios.append(statistics.mean(pt) / jb[0])
                row.append(", ".join(f"{x:.2f}×" for x in ratios) or "–")
            p(f"| {n} | {variant} | {row[0]} | {row[1]} |")
        p("\n### API server + etcd CPU per task (podtask ÷ Job controller at the equal budget, neighbouring runs)\n")
        p("| N | machine | podtask (ms/task) | Job controller (ms/task) | ratio |")
        p("|---|---|---|---|---|")
        for (n, variant, rep) in sorted({(r["n"], r.get("variant", "quiet"), r["repeat"]) for r in tp}):
            rs = [r for r in tp if (r["n"], r.get("variant", "quiet"), r["repeat"]) == (n, variant, rep)]
            pt = [server_cpu(r) * 1000 / n for r in rs if r["label"] == "podtask" and server_cpu(r)]
            jb = [server_cpu(r) * 1000 / n for r in rs if r["label"] == "job-equal" and server_cpu(r)]
            if pt and jb:
                p(f"| {n} | {variant} | {statistics.mean(pt):.1f} | {jb[0]:.1f} | {statistics.mean(pt) / jb[0]:.2f}× |")
    ctl = res.get("controller") or []
    if ctl:
        p("\n### The controller's own pace (N tasks created while the controller is stopped, then started)\n")
        p("The pods alone: no controller, the bench's client creates the N pods at the start; the most any "
          "controller could reach on this cluster.\n")
        p("| N | machine | # | controller | start → all done (s) | tasks/s | writes/task (w/o events) | "
          "API server + etcd CPU (s) | rate ÷ Job controller's |")
        p("|---|---|---|---|---|---|---|---|---|")
        for r in ctl:
            twin = [o for o in ctl if o["label"] == "job-equal" and o["repeat"] == r["repeat"]
                    and o.get("variant") == r.get("variant") and o["tasks_per_s"]]
            ratio = (r["tasks_per_s"] / twin[0]["tasks_per_s"] if r["label"] != "job-equal" and twin
                     and r["tasks_per_s"] else None)
            p(f"| {r['n']} | {r.get('variant', 'quiet')} | {r['repeat'] + 1} | {NAMES[r['label']]} | {f(r['done_s'])} | "
              f"{f(r['tasks_per_s'])} | {r['writes_per_task']:.2f} ({r['writes_per_task_no_events']:.2f}) | "
              f"{f(server_cpu(r))} | {f(ratio, '{:.2f}×')} |")
    b = res.get("burst")
    if b:
        p("\n### Shared deadline burst\n")
        p("| running tasks | 50 % marked (s) | 99 % (s) | 100 % (s) | bare client, same deletes + status writes (s) | "
          "100 % ÷ bare client |")
        p("|---|---|---|---|---|---|")
        p(f"| {b['n']} | {f(b['p50_s'], '{:.2f}')} | {f(b['p99_s'], '{:.2f}')} | {f(b['p100_s'], '{:.2f}')} | "
          f"{b['floor_s']:.2f} | {f(b['ratio_to_floor'], '{:.2f}×')} |")
    s = res.get("spread")
    if s:
        p("\n### Spread deadlines\n")
        p("| live tasks | deadlines over (s) | lag p50 (s, histogram) | lag p99 (s, histogram) | "
          "marked in status p50 / p99 (s) |")
        p("|---|---|---|---|---|")
        p(f"| {s['n']} | {s['spread_s']} | {f(s['hist_p50_s'], '{:.2f}')} | {f(s['hist_p99_s'], '{:.2f}')} | "
          f"{f(s['status_p50_s'], '{:.2f}')} / {f(s['status_p99_s'], '{:.2f}')} |")
    sc = res.get("scale") or []
    if sc:
        p("\n### Scale: tasks whose pods keep running\n")
        p("| PodTasks | all pods Running after (s) | operator RSS (MiB) | peak RSS (MiB) | operator CPU (s) |")
        p("|---|---|---|---|---|")
        for r in sc:
            p(f"| {r['n']} | {f(r['all_running_s'])} | {r['rss_kib'] / 1024:.1f} | {r['peak_rss_kib'] / 1024:.1f} | "
              f"{r['cpu_s']:.1f} |")
    print("\n".join(out))

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    ax = axes[0]
    sizes = sorted({r["n"] for r in tp})
    for i, label in enumerate(("job-defaults", "job-equal", "podtask")):
        ys = [statistics.mean([r["tasks_per_s"] for r in tp if r["n"] == n and r["label"] == label and r["tasks_per_s"]]
                              or [0]) for n in sizes]
        ax.bar([k + (i - 1) * 0.27 for k in range(len(sizes))], ys, 0.27, label=NAMES[label])
    ax.set_xticks(range(len(sizes)), [f"N={n}" for n in sizes])
    ax.set_ylabel("tasks completed per second")
    ax.set_title("Completion rate (higher is better)")
    ax.legend(fontsize=8, loc="upper left")
    ax = axes[1]
    if b:
        names = ["podtask 50 %", "podtask 99 %", "podtask 100 %", "bare client"]
        vals = [b["p50_s"] or 0, b["p99_s"] or 0, b["p100_s"] or 0, b["floor_s"]]
        ax.bar(names, vals, color=["C2", "C2", "C2", "C7"])
        ax.set_ylabel("seconds after the deadline")
        ax.set_title(f"{b['n']} tasks sharing one deadline")
        ax.tick_params(axis="x", labelsize=8)
    ax = axes[2]
    if sc:
        ax.plot([r["n"] for r in sc], [r["peak_rss_kib"] / 1024 for r in sc], "o-", label="peak RSS")
        ax.axhline(64, color="C3", ls="--", lw=1, label="64 MiB")
        ax.set_xscale("log")
        ax.set_xlabel("PodTasks with running pods")
        ax.set_ylabel("MiB")
        ax.set_title("Operator memory")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(chart, metadata={"Date": None})


if __name__ == "__main__":
    main()
