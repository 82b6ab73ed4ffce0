#!/usr/bin/env bash
# Tests of the chart's monitoring: the Grafana dashboard and the PrometheusRule.
#   - both render only when enabled (grafanaDashboard.enabled, prometheusRule.enabled), the dashboard ConfigMap with
#     the Grafana sidecar's label, and the dashboard is valid JSON with the panels the docs describe;
#   - `promtool check rules` and `promtool test rules` (deploy/test/monitoring/alerts-test.yaml: every alert fires
#     on synthetic series that should fire it, and not on those that should not);
#   - every metric a dashboard or alert query names is exported by a running operator: with $KUBECONFIG naming a
#     reachable cluster, it starts the real podtask binary ($PODTASK_BIN, default target/debug/podtask) on one
#     namespace, runs a PodTask, scrapes /metrics and checks each query's metric names against the scrape.
#
#   [HELM=helm] [KUBECONFIG=...] [PODTASK_BIN=...] deploy/test/monitoring-test.sh
#
# promtool comes from Debian's prometheus package, installed when missing (as root). Prints "N passed, M failed".
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
chart="$repo/deploy/helm/podtask"
# shellcheck source=deploy/find-helm.sh
. "$repo/deploy/find-helm.sh"
KUBECTL="${KUBECTL:-kubectl}"
PY="${PYTHON:-python3}"
PODTASK_BIN="${PODTASK_BIN:-$repo/target/debug/podtask}"
# shellcheck source=deploy/test/lib.sh
. "$repo/deploy/test/lib.sh"   # $tmp, ok, bad, $passed, $failed (its EXIT trap is replaced by cleanup below)
k() { "$KUBECTL" --request-timeout=30s "$@"; }

if ! command -v promtool >/dev/null 2>&1; then
  echo "monitoring-test: installing promtool (Debian package prometheus)" >&2
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; } >&2
  fi
  command -v promtool >/dev/null 2>&1 || { echo "monitoring-test: promtool is needed (apt-get install prometheus)" >&2; exit 2; }
fi

# ------------------------------------------------------------------ render
render() { "$HELM" template podtask "$chart" --namespace podtask-system "$@"; }
kinds() { "$PY" -c 'import sys, yaml; print(" ".join(sorted(d["kind"] for d in yaml.safe_load_all(sys.stdin) if d)))'; }
if render | kinds | grep -qE 'PrometheusRule|ConfigMap'; then
  bad "the defaults render a dashboard or a PrometheusRule (both must be off by default)"
else
  ok "off by default: no dashboard ConfigMap, no PrometheusRule"
fi
if ! render --set grafanaDashboard.enabled=true --set prometheusRule.enabled=true >"$tmp/monitoring.yaml" 2>"$tmp/err"; then
  bad "render with grafanaDashboard and prometheusRule enabled"; cat "$tmp/err"
fi
if out=$("$PY" - "$tmp/monitoring.yaml" "$tmp/rules.yaml" <<'PYEOF'
import json, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
cm = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "podtask-dashboard"]
rule = [d for d in docs if d["kind"] == "PrometheusRule"]
assert len(cm) == 1 and len(rule) == 1, "one dashboard ConfigMap and one PrometheusRule"
assert cm[0]["metadata"]["labels"].get("grafana_dashboard") == "1", "the sidecar's label grafana_dashboard: \"1\""
assert rule[0]["apiVersion"] == "monitoring.coreos.com/v1"
dash = json.loads(cm[0]["data"]["podtask.json"])
titles = [p["title"] for p in dash["panels"]]
want = ["Tasks by phase", "Outcomes by reason", "Deadline enforcement lag", "Image-pull waits by class",
        "API writes by kind", "Reconciles and reconcile errors", "Leader", "API outages"]
missing = [t for t in want if t not in titles]
assert not missing, f"panels missing: {missing}"
assert all(t["datasource"]["uid"] == "${datasource}" for p in dash["panels"] for t in p["targets"])
alerts = [r["alert"] for g in rule[0]["spec"]["groups"] for r in g["rules"]]
want = ["PodtaskDeadlinesLate", "PodtaskApiServerUnavailable", "PodtaskNoLeader", "PodtaskReconcileErrors",
        "PodtaskEventsDropped"]
assert sorted(alerts) == sorted(want), alerts
yaml.safe_dump(rule[0]["spec"], open(sys.argv[2], "w"), sort_keys=False)
print(f"{len(titles)} panels, {len(alerts)} alerts")
PYEOF
); then ok "enabled: dashboard ConfigMap labelled grafana_dashboard=1 and a PrometheusRule ($out)"; else bad "rendered monitoring"; echo "$out"; fi

# ------------------------------------------------------------------ promtool
if out=$(promtool check rules "$tmp/rules.yaml" 2>&1); then ok "promtool check rules: $(echo "$out" | grep -m1 -o 'SUCCESS.*')"; else bad "promtool check rules"; echo "$out"; fi
cp "$here/monitoring/alerts-test.yaml" "$tmp/alerts-test.yaml"
if out=$(cd "$tmp" && promtool test rules alerts-test.yaml 2>&1); then ok "promtool test rules: every alert on synthetic series"; else bad "promtool test rules"; echo "$out"; fi
# The test must be able to fail: with a threshold moved, the expectations no longer hold.
"$PY" - "$tmp/rules.yaml" "$tmp/rules-mut.yaml" <<'PYEOF'
import sys, yaml
spec = yaml.safe_load(open(sys.argv[1]))
for g in spec["groups"]:
    for r in g["rules"]:
        r["expr"] = r["expr"].replace('le="5.0"', 'le="10.0"').replace("> 0.1", "> 0.5").replace("< 1", "< 0")
yaml.safe_dump(spec, open(sys.argv[2], "w"), sort_keys=False)
PYEOF
sed 's/rules.yaml/rules-mut.yaml/' "$tmp/alerts-test.yaml" >"$tmp/alerts-test-mut.yaml"
if (cd "$tmp" && promtool test rules alerts-test-mut.yaml >/dev/null 2>&1); then
  bad "promtool test rules passes on rules with other thresholds (the test cannot fail)"
else
  ok "promtool test rules fails on rules with other thresholds"
fi

# ------------------------------------------------------------------ the queries name real metrics
if out=$("$PY" "$here/monitoring/promql_names.py" --self-test 2>&1); then ok "PromQL name extraction: $out"; else bad "PromQL name extraction"; echo "$out"; fi
op_pid="" ns="podtask-monitoring-$$"
cleanup() {
  # only the operator this script started, still a child of this shell
  if [ -n "$op_pid" ] && kill -0 "$op_pid" 2>/dev/null; then kill -TERM "$op_pid"; wait "$op_pid" 2>/dev/null; fi
  [ -n "${cluster:-}" ] && k delete namespace "$ns" --ignore-not-found --wait=false >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT
if [ -n "${KUBECONFIG:-}" ] && [ -x "$PODTASK_BIN" ] && k version >/dev/null 2>&1; then
  cluster=1
  port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  k create namespace "$ns" >/dev/null
  "$PODTASK_BIN" crd | k apply --server-side -f - >/dev/null && "$PODTASK_BIN" crd wait >/dev/null
  "$PODTASK_BIN" run --namespaces "$ns" --http-addr "127.0.0.1:$port" --log-level warn >"$tmp/operator.log" 2>&1 &
  op_pid=$!
  k apply -n "$ns" -f "$repo/examples/hello.yaml" >/dev/null
  if k -n "$ns" wait --for=condition=Complete pt/hello --timeout=120s >/dev/null &&
    "$PY" -c 'import sys, urllib.request; open(sys.argv[2], "wb").write(urllib.request.urlopen(sys.argv[1], timeout=5).read())' \
      "http://127.0.0.1:$port/metrics" "$tmp/metrics.txt"; then
    if out=$("$PY" "$here/monitoring/promql_names.py" "$tmp/monitoring.yaml" --metrics "$tmp/metrics.txt" 2>&1); then
      ok "every dashboard and alert query names a metric the running operator exports: $out"
    else
      bad "queries name metrics the operator does not export"; echo "$out"
    fi
    # and the check can fail: a query naming a metric that does not exist
    sed 's/podtask_api_unavailable/podtask_api_unavailable_seconds/' "$tmp/monitoring.yaml" >"$tmp/monitoring-mut.yaml"
    if "$PY" "$here/monitoring/promql_names.py" "$tmp/monitoring-mut.yaml" --metrics "$tmp/metrics.txt" >"$tmp/mut.out" 2>&1; then
      bad "the query check accepted a metric that does not exist"
    else
      ok "the query check rejects a metric that does not exist ($(grep -m1 FAIL "$tmp/mut.out" | cut -c7-90)...)"
    fi
  else
    bad "a PodTask on the running operator, then a scrape of /metrics"; tail -n 20 "$tmp/operator.log"
  fi
else
  echo "skip - queries against a running operator's /metrics (KUBECONFIG unset, cluster unreachable or no $PODTASK_BIN)"
fi

echo "${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]
