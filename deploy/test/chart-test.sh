#!/usr/bin/env bash
# Tests of the podtask Helm chart: lint, render in every mode, assert RBAC / Pod Security / wiring, check that
# values.schema.json rejects bad values, and (only when $KUBECONFIG names a reachable cluster) a server-side dry
# run of the rendered manifests plus a real RBAC check with `kubectl auth can-i`.
#
#   HELM=/path/to/helm deploy/test/chart-test.sh        # default: helm on PATH, else ~/.cache/podtask/helm/*/bin/helm
#   KUBECONFIG=~/.kube/config deploy/test/chart-test.sh   # adds the cluster checks
#
# Prints "N passed, M failed" at the end and exits non-zero when anything failed.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
chart="$repo/deploy/helm/podtask"
# shellcheck source=deploy/find-helm.sh
. "$repo/deploy/find-helm.sh"   # $HELM, else helm on PATH, else hack/cluster.sh's build
KUBECTL="${KUBECTL:-kubectl}"
PY="${PYTHON:-python3}"
# shellcheck source=deploy/test/lib.sh
. "$repo/deploy/test/lib.sh"   # $tmp, ok, bad, $passed, $failed

if ! command -v "$HELM" >/dev/null 2>&1; then
  echo "chart-test: helm not found (set HELM=/path/to/helm)" >&2
  exit 2
fi
if ! "$PY" -c 'import yaml' 2>/dev/null; then
  echo "chart-test: installing PyYAML" >&2
  "$PY" -m pip install --quiet pyyaml >&2 || { echo "chart-test: PyYAML is needed" >&2; exit 2; }
fi
echo "chart-test: $("$HELM" version --short 2>/dev/null || "$HELM" version)"

# ------------------------------------------------------------------ lint
if out=$("$HELM" lint --strict "$chart" 2>&1); then ok "helm lint --strict"; else bad "helm lint --strict"; echo "$out"; fi
if out=$("$HELM" lint --strict "$chart" --set grafanaDashboard.enabled=true --set prometheusRule.enabled=true 2>&1); then
  ok "helm lint --strict (dashboard, alerts)"
else
  bad "helm lint --strict (dashboard, alerts)"; echo "$out"
fi
if out=$("$HELM" lint --strict "$chart" --set 'watchNamespaces={team-a,team-b}' --set serviceMonitor.enabled=true 2>&1); then
  ok "helm lint --strict (namespaced, serviceMonitor)"
else
  bad "helm lint --strict (namespaced, serviceMonitor)"; echo "$out"
fi

# ------------------------------------------------------------------ render + assert
# render NAME CHECK_ARGS -- HELM_ARGS...: helm template into $tmp/NAME.yaml, then check_rendered.py on it.
render() {
  local name="$1" check_args="$2"
  shift 3
  if ! "$HELM" template podtask "$chart" --namespace podtask-system "$@" >"$tmp/$name.yaml" 2>"$tmp/$name.err"; then
    bad "render $name"; cat "$tmp/$name.err"; return
  fi
  # shellcheck disable=SC2086
  if out=$("$PY" "$here/check_rendered.py" --file "$tmp/$name.yaml" $check_args 2>&1); then
    ok "render $name: $out"
  else
    bad "render $name"; echo "$out"
  fi
}

render cluster "--mode cluster" --
render cluster-monitor "--mode cluster --service-monitor true" -- --set serviceMonitor.enabled=true
render namespaced "--mode namespaced --namespaces team-a,team-b" -- --set 'watchNamespaces={team-a,team-b}'
render namespaced-monitor "--mode namespaced --namespaces team-a --service-monitor true" -- \
  --set 'watchNamespaces={team-a}' --set serviceMonitor.enabled=true
render single "--mode cluster --replicas 1 --leader-elect false" -- --set replicaCount=1 --set leaderElection.enabled=false
render single-leader "--mode cluster --replicas 1" -- --set replicaCount=1
render finalizers "--mode namespaced --namespaces team-a --finalizers true" -- \
  --set 'watchNamespaces={team-a}' --set rbac.ownerReferencesPermissionEnforcement=true
render monitoring "--mode cluster --service-monitor true --monitoring true" -- --set serviceMonitor.enabled=true \
  --set grafanaDashboard.enabled=true --set prometheusRule.enabled=true
render monitoring-namespaced "--mode namespaced --namespaces team-a --monitoring true" -- --set 'watchNamespaces={team-a}' \
  --set grafanaDashboard.enabled=true --set prometheusRule.enabled=true
render three "--mode cluster --replicas 3" -- --set replicaCount=3 --set topologySpread.enabled=true

# The checker itself must catch a broken rendering (a test that cannot fail is a defect).
mutate() {
  local name="$1" expr="$2" check_args="$3"
  "$PY" - "$tmp/cluster.yaml" "$tmp/mut-$name.yaml" "$expr" <<'EOF'
import sys, yaml
src, dst, expr = sys.argv[1:]
docs = [d for d in yaml.safe_load_all(open(src)) if d]
for d in docs:
    exec(expr, {"d": d})
yaml.safe_dump_all(docs, open(dst, "w"))
EOF
  # shellcheck disable=SC2086
  if "$PY" "$here/check_rendered.py" --file "$tmp/mut-$name.yaml" $check_args >"$tmp/mut-$name.out" 2>&1; then
    bad "checker accepted a broken rendering: $name"
  else
    ok "checker rejects: $name ($(grep -m1 FAIL "$tmp/mut-$name.out" | sed 's/^ *FAIL: //'))"
  fi
}
if [ -s "$tmp/cluster.yaml" ]; then
  mutate wildcard-verb 'if d["kind"]=="ClusterRole": d["rules"][0]["verbs"]=["*"]' "--mode cluster"
  mutate secrets 'if d["kind"]=="ClusterRole" and "crd" not in d["metadata"]["name"]: d["rules"].append({"apiGroups":[""],"resources":["secrets"],"verbs":["get"]})' "--mode cluster"
  mutate extra-pod-verb 'if d["kind"]=="ClusterRole" and "crd" not in d["metadata"]["name"]: d["rules"][0]["verbs"].append("update")' "--mode cluster"
  mutate missing-status-verb 'if d["kind"]=="ClusterRole" and "crd" not in d["metadata"]["name"]: d["rules"][2]["verbs"]=["patch"]' "--mode cluster"
  mutate crd-access 'if d["kind"]=="ClusterRole": d["rules"].append({"apiGroups":["apiextensions.k8s.io"],"resources":["customresourcedefinitions"],"verbs":["get"]})' "--mode cluster"
  mutate lease-cluster-wide 'if d["kind"]=="ClusterRole" and "crd" not in d["metadata"]["name"]: d["rules"].append({"apiGroups":["coordination.k8s.io"],"resources":["leases"],"verbs":["get"]})' "--mode cluster"
  mutate root 'if d["kind"]=="Deployment": d["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsUser"]=0' "--mode cluster"
  mutate escalation 'if d["kind"]=="Deployment": d["spec"]["template"]["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"]=True' "--mode cluster"
  mutate writable-root 'if d["kind"]=="Deployment": d["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"]=False' "--mode cluster"
  mutate caps 'if d["kind"]=="Deployment": d["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilities"]={"drop":["NET_RAW"]}' "--mode cluster"
  mutate no-seccomp 'if d["kind"]=="Deployment": d["spec"]["template"]["spec"]["securityContext"].pop("seccompProfile"); d["kind"]=="Deployment" and d["spec"]["template"]["spec"]["containers"][0]["securityContext"].pop("seccompProfile")' "--mode cluster"
  mutate one-replica 'if d["kind"]=="Deployment": d["spec"]["replicas"]=1' "--mode cluster"
  mutate no-leader-elect 'if d["kind"]=="Deployment": d["spec"]["template"]["spec"]["containers"][0]["args"].remove("--leader-elect")' "--mode cluster"
  mutate dashboard-on 'if d["kind"]=="Service": d.update({"kind": "PrometheusRule"})' "--mode cluster"
  mutate wrong-probe 'if d["kind"]=="Deployment": d["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"]="/healthz"' "--mode cluster"
fi

# ------------------------------------------------------------------ values.schema.json rejects bad values
reject() { # reject WHAT EXPECTED-ERROR-SUBSTRING HELM-ARGS...: rendering must fail, for the expected reason.
  local what="$1" expect="$2"; shift 2
  if "$HELM" template podtask "$chart" "$@" >/dev/null 2>"$tmp/reject.err"; then
    bad "accepted invalid values: $what"
  elif grep -qF -- "$expect" "$tmp/reject.err"; then
    ok "rejects $what ($(grep -F -m1 -- "$expect" "$tmp/reject.err" | sed 's/^[- ]*//' | cut -c1-100))"
  else
    bad "rejects $what, but not for the expected reason '$expect':"; cat "$tmp/reject.err"
  fi
}
reject "logFormat=xml" "at '/operator/logFormat'" --set operator.logFormat=xml
reject "logLevel=verbose" "at '/operator/logLevel'" --set operator.logLevel=verbose
reject "logLevel filter with a bad level" "at '/operator/logLevel'" --set 'operator.logLevel=podtask=loud'
reject "duration '5 minutes'" "at '/operator/defaultStartupTimeout'" --set-string 'operator.defaultStartupTimeout=5 minutes'
reject "duration 5" "at '/operator/configErrorGrace'" --set-string operator.configErrorGrace=5
reject "duration 1d" "at '/operator/minRateLimitBackoff'" --set operator.minRateLimitBackoff=1d
reject "duration 1.5h" "at '/operator/defaultStartupTimeout'" --set-string operator.defaultStartupTimeout=1.5h
reject "leaseDuration 15" "at '/leaderElection/leaseDuration'" --set-string leaderElection.leaseDuration=15
reject "concurrency 0" "at '/operator/concurrency'" --set operator.concurrency=0
reject "concurrency as string" "at '/operator/concurrency'" --set-string operator.concurrency=eight
reject "replicaCount -1" "at '/replicaCount'" --set replicaCount=-1
reject "unknown top-level key" "additional properties 'replicas' not allowed" --set replicas=2
reject "unknown nested key (typo)" "additional properties 'logformat' not allowed" --set operator.logformat=json
reject "watchNamespaces not DNS labels" "at '/watchNamespaces/0'" --set 'watchNamespaces={Team_A}'
reject "watchNamespaces as a string" "at '/watchNamespaces'" --set-string watchNamespaces=team-a
reject "duplicate watchNamespaces" "at '/watchNamespaces'" --set 'watchNamespaces={a,a}'
reject "pullPolicy Sometimes" "at '/image/pullPolicy'" --set image.pullPolicy=Sometimes
reject "podAntiAffinity maybe" "at '/podAntiAffinity'" --set podAntiAffinity=maybe
reject "http.port 70000" "at '/http/port'" --set http.port=70000
reject "serviceMonitor.interval 30" "at '/serviceMonitor/interval'" --set-string serviceMonitor.interval=30
reject "2 replicas without leader election" "needs leaderElection.enabled=true" --set leaderElection.enabled=false
reject "ServiceMonitor without Service" "needs service.enabled=true" --set serviceMonitor.enabled=true --set service.enabled=false
reject "reconcileErrorRatio 2" "at '/prometheusRule/reconcileErrorRatio'" --set prometheusRule.reconcileErrorRatio=2
reject "apiOutageFor 2 minutes" "at '/prometheusRule/apiOutageFor'" --set-string 'prometheusRule.apiOutageFor=2 minutes'
reject "selector with a brace" "does not match pattern '^[^{}]*$'" --set-string 'prometheusRule.selector=job="x"}'
reject "grafanaDashboard.enable (typo)" "additional properties 'enable' not allowed" --set grafanaDashboard.enable=true
reject "serviceAccount.create=false without a name" "serviceAccount.name is required" --set serviceAccount.create=false
if "$HELM" template podtask "$chart" --set 'operator.logLevel=info\,podtask=debug\,kube=warn' 2>&1 | grep -qF -- '--log-level=info,podtask=debug,kube=warn'; then
  ok "accepts a log filter (info,podtask=debug,kube=warn)"
else
  bad "rejects a valid log filter"
fi
for good in 90s 5m 1h30m 250ms 1h2m3s; do
  if "$HELM" template podtask "$chart" --set-string "operator.defaultStartupTimeout=$good" >/dev/null 2>&1; then
    ok "accepts duration $good"
  else
    bad "rejects valid duration $good"
  fi
done

# ------------------------------------------------------------------ CRD, NOTES, docs
crd_chart="$chart/crds/podtasks.podtask.dev.yaml"
if [ -f "$crd_chart" ]; then
  if "$HELM" template podtask "$chart" --include-crds >"$tmp/with-crds.yaml" &&
    "$PY" -c 'import sys, yaml; sys.exit(not any(d and d["kind"] == "CustomResourceDefinition" and d["metadata"]["name"] == "podtasks.podtask.dev" for d in yaml.safe_load_all(open(sys.argv[1]))))' "$tmp/with-crds.yaml"; then
    ok "--include-crds renders the PodTask CRD"
  else
    bad "--include-crds does not render the PodTask CRD"
  fi
else
  echo "skip - $crd_chart not there yet (run deploy/sync-generated.sh)"
fi

# NOTES.txt: `helm template` does not render it and `helm install --dry-run` wants a cluster, so render it from a
# scratch copy of the chart in which NOTES.txt is wrapped in a ConfigMap.
render_notes() { # render_notes OUT HELM-ARGS...
  local out="$1"; shift
  rm -rf "$tmp/notes-chart" && cp -r "$chart" "$tmp/notes-chart"
  { echo '{{- define "podtask.test.notes" -}}'; cat "$chart/templates/NOTES.txt"; echo '{{- end }}'; } >"$tmp/notes-chart/templates/_notes.tpl"
  rm "$tmp/notes-chart/templates/NOTES.txt"
  printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: {{ include "podtask.test.notes" . | quote }}\n' \
    >"$tmp/notes-chart/templates/notes.yaml"
  "$HELM" template podtask "$tmp/notes-chart" --namespace podtask-system --show-only templates/notes.yaml "$@" |
    "$PY" -c 'import sys, yaml; print(yaml.safe_load(sys.stdin)["data"]["notes"])' >"$out"
}
notes_has() { # notes_has FILE FIXED-STRING...: every string is in FILE
  local f="$1"; shift
  for p in "$@"; do grep -qF -- "$p" "$f" || { echo "NOTES lacks: $p"; return 1; }; done
}
if render_notes "$tmp/notes.txt" && notes_has "$tmp/notes.txt" \
  "kubectl apply -n default -f -" "kind: PodTask" "kubectl -n default get pt -w" \
  "kubectl -n default wait --for=condition=Complete pt/hello" "all namespaces" \
  "rollout status deployment/podtask" "get lease podtask"; then
  ok "NOTES.txt (cluster mode): apply a PodTask, get pt -w, wait --for=condition=Complete"
else
  bad "NOTES.txt (cluster mode)"; cat "$tmp/notes.txt"
fi
if render_notes "$tmp/notes-ns.txt" --set 'watchNamespaces={team-a,team-b}' && notes_has "$tmp/notes-ns.txt" \
  "It watches PodTasks in: team-a, team-b." "kubectl apply -n team-a -f -" "kubectl -n team-a get pt -w" \
  "kubectl -n team-a wait --for=condition=Complete pt/hello"; then
  ok "NOTES.txt (namespaced mode) points at a watched namespace"
else
  bad "NOTES.txt (namespaced mode)"; cat "$tmp/notes-ns.txt"
fi
# The sample in NOTES.txt, pasted into a shell as it is (kubectl replaced by a file), is a PodTask.
# shellcheck disable=SC2016  # "$1" is for the pasted script, not for this one
sed -n "/^cat <<'YAML'/,/^YAML\$/p" "$tmp/notes.txt" | sed 's/| kubectl apply -n default -f -$/>"$1"/' >"$tmp/paste.sh"
if bash "$tmp/paste.sh" "$tmp/pasted.yaml" && "$PY" - "$tmp/pasted.yaml" <<'EOF'
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
assert doc["apiVersion"] == "podtask.dev/v1alpha1" and doc["kind"] == "PodTask", doc
assert doc["metadata"]["name"] == "hello", doc
assert doc["spec"]["template"]["spec"]["containers"][0]["image"], doc
assert "restartPolicy" not in doc["spec"]["template"]["spec"]
EOF
then ok "NOTES.txt sample pastes into a shell and is a PodTask"; else bad "NOTES.txt sample does not paste/parse"; fi
# Every value in values.yaml is documented in README.md's table, and every table row is a real value.
if out=$("$PY" - "$chart" <<'EOF'
import sys, re, yaml, json
chart = sys.argv[1]
values = yaml.safe_load(open(f"{chart}/values.yaml"))
schema = json.load(open(f"{chart}/values.schema.json"))
readme = open(f"{chart}/README.md").read().split("\n## Values\n", 1)[1]
def leaves(v, prefix=""):
    if isinstance(v, dict) and v and prefix.rstrip(".") not in FREE:
        for k, x in v.items():
            yield from leaves(x, f"{prefix}{k}.")
    else:
        yield prefix.rstrip(".")
FREE = {"podSecurityContext", "securityContext", "resources", "updateStrategy", "affinity", "commonLabels",
        "podAnnotations", "podLabels", "nodeSelector", "global", "grafanaDashboard.labels"}
keys = set(leaves(values))
rows = set(re.findall(r"^\| `([^`]+)` \|", readme, re.M))
missing = sorted(keys - rows)
extra = sorted(rows - keys)
def in_schema(key):
    node = schema
    for part in key.split("."):
        node = node.get("properties", {}).get(part)
        if node is None:
            return False
    return True
unschema = sorted(k for k in keys if not in_schema(k))
if missing or extra or unschema:
    print("undocumented:", missing, "documented but not a value:", extra, "not in schema:", unschema)
    sys.exit(1)
print(f"{len(keys)} values documented and in the schema")
EOF
); then ok "README values table: $out"; else bad "README values table"; echo "$out"; fi

# ------------------------------------------------------------------ plain manifests are the chart's output
if [ -f "$repo/deploy/manifests/podtask.yaml" ]; then
  if HELM="$HELM" bash "$repo/deploy/render-manifests.sh" --check >"$tmp/manifests.out" 2>&1; then
    ok "deploy/manifests/podtask.yaml is up to date with the chart"
  else
    bad "deploy/manifests/podtask.yaml drifted from the chart (run deploy/render-manifests.sh)"; cat "$tmp/manifests.out"
  fi
fi

# ------------------------------------------------------------------ against a real cluster (optional)
if [ -n "${KUBECONFIG:-}" ] && command -v "$KUBECTL" >/dev/null 2>&1 && "$KUBECTL" version --request-timeout=5s >/dev/null 2>&1; then
  echo "chart-test: cluster reachable through KUBECONFIG=$KUBECONFIG"
  # shellcheck source=deploy/test/chart-cluster-checks.sh
  . "$here/chart-cluster-checks.sh"
else
  echo "skip - cluster checks (KUBECONFIG unset or cluster unreachable)"
fi

echo "${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]
