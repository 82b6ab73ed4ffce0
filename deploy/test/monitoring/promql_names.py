#!/usr/bin/env python3
"""Check the chart's dashboard and alert queries against the metrics podtask really exports.

    promql_names.py RENDERED.yaml --metrics METRICS.txt   every metric a query names must be in the scrape
    promql_names.py RENDERED.yaml --list                  print each query's metric names
    promql_names.py --self-test                           the name extraction on known expressions

RENDERED.yaml is `helm template` output with grafanaDashboard and prometheusRule enabled; METRICS.txt is a scrape
of a running operator's /metrics. Names are read out of each PromQL expression by removing string literals, label
matchers, ranges and label lists, and keeping the identifiers that are neither calls nor keywords. A `le="..."`
matcher on a histogram bucket must name a bucket the scrape has.
"""

import json
import re
import sys

import yaml

KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
            "inf", "nan", "atan2"}


def metric_names(expr):
    e = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    e = re.sub(r"\{[^{}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"(?<![\w:.$])([a-zA-Z_:][\w:]*)\s*(\()?", e):
        if m.group(2) or m.group(1).lower() in KEYWORDS:
            continue
        names.add(m.group(1))
    return names


def bucket_bounds(expr):
    """(metric, le) for each le matcher on a selector."""
    return [(m.group(1), le) for m in re.finditer(r"([a-zA-Z_:][\w:]*)\{([^{}]*)\}", expr)
            for le in re.findall(r'\ble\s*=\s*"([^"]*)"', m.group(2))]


def queries(rendered):
    """(where, expr) for every dashboard target and every rule in a rendered chart."""
    out = []
    for doc in yaml.safe_load_all(open(rendered)):
        if not doc:
            continue
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"].endswith("-dashboard"):
            for file, text in doc["data"].items():
                dash = json.loads(text)
                for p in dash["panels"]:
                    for t in p.get("targets", []):
                        out.append((f"{file}: panel '{p['title']}' {t['refId']}", t["expr"]))
                for v in dash.get("templating", {}).get("list", []):
                    if v.get("type") == "query":
                        q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
                        inner = re.match(r"label_values\((.*),\s*\w+\)$", q)
                        out.append((f"{file}: variable {v['name']}", inner.group(1) if inner else q))
        elif doc["kind"] == "PrometheusRule":
            for g in doc["spec"]["groups"]:
                for r in g["rules"]:
                    out.append((f"rule {r.get('alert') or r.get('record')}", r["expr"]))
    return out


def exported(metrics_text):
    """Sample names a scrape has or declares (a family with no samples yet still has its # TYPE line)."""
    names, buckets = set(), {}
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""],
                "summary": ["_sum", "_count", ""], "info": ["_info"], "unknown": [""]}
    for line in metrics_text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(None, 3)
            names.update(name + s for s in suffixes.get(kind, [""]))
        elif line and not line.startswith("#"):
            name = re.match(r"[a-zA-Z_:][\w:]*", line).group(0)
            names.add(name)
            le = re.search(r'\ble="([^"]*)"', line)
            if le:
                buckets.setdefault(name, set()).add(le.group(1))
    return names, buckets


def self_test():
    cases = {
        'sum by (phase) (podtask_tasks{namespace=~"$ns", job=~"a|b"})': {"podtask_tasks"},
        'histogram_quantile(0.99, sum by (le) (rate(x_bucket{le="5.0"}[$__rate_interval])))': {"x_bucket"},
        "(sum(podtask_leader{a=\"b\"}) or vector(0)) < 1": {"podtask_leader"},
        "sum by (kind) (rate(e_total[10m])) / ignoring (kind) group_left sum(rate(r_total[10m])) > 0.1": {"e_total", "r_total"},
        "max(max_over_time(up[1m] offset 5m)) > 1e3 and on(job) bool absent(nope)": {"up", "nope"},
        "label_values(podtask_leader, namespace)": {"podtask_leader", "namespace"},
    }
    bad = 0
    for expr, want in cases.items():
        got = metric_names(expr)
        if got != want:
            print(f"FAIL: {expr!r}: got {sorted(got)}, want {sorted(want)}")
            bad += 1
    if bucket_bounds('a_bucket{job="x", le="5.0"} - b_count') != [("a_bucket", "5.0")]:
        print("FAIL: bucket_bounds")
        bad += 1
    print(f"{len(cases) + 1 - bad} passed, {bad} failed")
    return bad == 0


def main(argv):
    if argv[:1] == ["--self-test"]:
        return 0 if self_test() else 1
    rendered = argv[0]
    qs = queries(rendered)
    if argv[1:2] == ["--list"]:
        for where, expr in qs:
            print(f"{where}: {sorted(metric_names(expr))}")
        return 0
    assert argv[1] == "--metrics", __doc__
    names, buckets = exported(open(argv[2]).read())
    problems = []
    for where, expr in qs:
        for n in sorted(metric_names(expr) - names):
            problems.append(f"{where} names {n}, which the operator does not export")
        for metric, le in bucket_bounds(expr):
            if metric in buckets and le not in buckets[metric]:
                problems.append(f"{where}: {metric} has no bucket le=\"{le}\" (it has {sorted(buckets[metric])})")
    for p in problems:
        print("FAIL:", p)
    used = set().union(*(metric_names(e) for _, e in qs))
    print(f"{len(qs)} queries name {len(used)} metrics; the operator exports {len(names)} sample names; "
          f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
