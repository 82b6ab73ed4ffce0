#!/usr/bin/env python3
"""Draw the dashboard's panels from Prometheus: dashboard_preview.py PROM_URL START END DASHBOARD.json OUT.png

Each panel's targets are evaluated with Prometheus' query_range API over [START, END] ($namespace and $job set to
the scraped operator's labels, $__rate_interval to 30s) and drawn in the dashboard's grid layout. This is not a
Grafana rendering, and the picture says so.
"""

import json
import sys
import urllib.parse
import urllib.request
from datetime import datetime, timezone

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def query_range(url, expr, start, end, step=2):
    q = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{url}/api/v1/query_range?{q}", timeout=30) as r:
        body = json.load(r)
    if body["status"] != "success":
        raise SystemExit(f"{expr}: {body}")
    return body["data"]["result"]


def legend(fmt, metric):
    out = fmt
    for k, v in metric.items():
        out = out.replace("{{" + k + "}}", v)
    return out


def main(url, start, end, dashboard, out):
    start, end = int(start), int(end)
    dash = json.load(open(dashboard))
    subst = {'namespace=~"$namespace"': 'namespace=~"podtask-system"', 'job=~"$job"': 'job=~"podtask"',
             "$__rate_interval": "30s"}
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in dash["panels"])
    fig = plt.figure(figsize=(16, rows * 0.42 + 1.2))
    grid = fig.add_gridspec(rows, 24, hspace=1.6, wspace=1.2)
    for p in dash["panels"]:
        g = p["gridPos"]
        ax = fig.add_subplot(grid[g["y"]:g["y"] + g["h"] - 1, g["x"]:g["x"] + g["w"]])
        drawn = 0
        for t in p["targets"]:
            expr = t["expr"]
            for a, b in subst.items():
                expr = expr.replace(a, b)
            for series in query_range(url, expr, start, end):
                xs = [(float(v[0]) - start) / 60 for v in series["values"]]
                ys = [float(v[1]) if v[1] not in ("NaN", "+Inf", "-Inf") else float("nan") for v in series["values"]]
                ax.plot(xs, ys, linewidth=1.3, label=legend(t.get("legendFormat", ""), series["metric"]))
                drawn += 1
        ax.set_title(p["title"], fontsize=10, loc="left")
        unit = p.get("fieldConfig", {}).get("defaults", {}).get("unit")
        ax.set_ylabel({"s": "seconds", "ops": "per second"}.get(unit, ""), fontsize=8)
        ax.set_xlabel("minutes", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if drawn:
            ax.legend(fontsize=7, loc="upper left", ncol=2, frameon=False)
        else:
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", color="grey")
    when = datetime.fromtimestamp(start, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    fig.suptitle("podtask dashboard panels: each panel's PromQL, evaluated by a real Prometheus scraping a real "
                 f"operator running examples/ ({when}, {round((end - start) / 60)} min, 1 s scrapes).\n"
                 "Drawn with matplotlib from the query results: not a Grafana screenshot.", fontsize=10)
    fig.savefig(out, dpi=80, bbox_inches="tight")


if __name__ == "__main__":
    main(*sys.argv[1:])
