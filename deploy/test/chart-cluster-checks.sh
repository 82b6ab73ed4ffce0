# Sourced by chart-test.sh when $KUBECONFIG names a reachable cluster. Uses its ok/bad/render helpers and $tmp.
#
# 1. `kubectl apply --dry-run=server` of the chart's output in both modes (and of the CRD), in namespaces it
#    creates for the run.
# 2. Applies only the ServiceAccount and RBAC objects for real (namespaced mode, unique names) and asks the API
#    server with `kubectl auth can-i --as=<the operator's ServiceAccount>` what the operator may and may not do.
# Everything it created is deleted at the end (namespaces and the labelled cluster-scoped RBAC objects).

suffix="$(date +%s)-$$"
rel="ptct-${suffix: -8}"
rel_ns="podtask-ct-${suffix: -8}"
team_ns="${rel_ns}-a"
other_ns="${rel_ns}-b"
k() { "$KUBECTL" --request-timeout=30s "$@"; }

cluster_cleanup() {
  k delete clusterrole,clusterrolebinding -l "app.kubernetes.io/instance=$rel" --ignore-not-found >/dev/null 2>&1
  k delete namespace "$rel_ns" "$team_ns" "$other_ns" --ignore-not-found --wait=false >/dev/null 2>&1
}
trap 'cluster_cleanup; rm -rf "$tmp"' EXIT

for ns in "$rel_ns" "$team_ns" "$other_ns"; do
  k create namespace "$ns" --dry-run=client -o yaml | k apply -f - >/dev/null || bad "create namespace $ns"
done

# Keep only objects the cluster can take (ServiceMonitor needs the Prometheus Operator CRDs).
have_sm=false
k get crd servicemonitors.monitoring.coreos.com >/dev/null 2>&1 && have_sm=true
filter() { # filter IN OUT KINDS(comma-separated, empty=all)
  "$PY" - "$1" "$2" "$3" "$have_sm" <<'EOF'
import sys, yaml
src, dst, kinds, have_sm = sys.argv[1:]
kinds = set(filter(None, kinds.split(",")))
docs = [d for d in yaml.safe_load_all(open(src)) if d]
docs = [d for d in docs if (not kinds or d["kind"] in kinds) and (d["kind"] != "ServiceMonitor" or have_sm == "true")]
yaml.safe_dump_all(docs, open(dst, "w"))
EOF
}

crd_chart="$chart/crds/podtasks.podtask.dev.yaml"
if [ -f "$crd_chart" ]; then
  if out=$(k apply --dry-run=server -f "$crd_chart" 2>&1); then ok "server dry-run: CRD ($out)"; else bad "server dry-run: CRD"; echo "$out"; fi
fi

for mode in cluster namespaced; do
  args=(--set serviceMonitor.enabled=true)
  [ "$mode" = namespaced ] && args+=(--set "watchNamespaces={$team_ns}")
  if "$HELM" template "$rel" "$chart" --namespace "$rel_ns" "${args[@]}" >"$tmp/srv-$mode.yaml" 2>"$tmp/srv.err"; then
    filter "$tmp/srv-$mode.yaml" "$tmp/srv-$mode.f.yaml" ""
    if out=$(k apply --dry-run=server -f "$tmp/srv-$mode.f.yaml" 2>&1); then
      ok "server dry-run: $mode mode ($(echo "$out" | wc -l) objects)"
    else
      bad "server dry-run: $mode mode"; echo "$out"
    fi
  else
    bad "render for the cluster ($mode)"; cat "$tmp/srv.err"
  fi
done

if k get crd podtasks.podtask.dev >/dev/null 2>&1; then
  sample="$tmp/sample.yaml"
  cat >"$sample" <<EOF
apiVersion: podtask.dev/v1alpha1
kind: PodTask
metadata:
  name: hello
  namespace: $team_ns
spec:
  executionTimeout: 10m
  template:
    spec:
      containers:
        - name: main
          image: busybox:1.36
          command: ["sh", "-c", "echo hello"]
EOF
  if out=$(k apply --dry-run=server -f "$sample" 2>&1); then ok "server dry-run: the NOTES.txt sample PodTask"; else bad "server dry-run: sample PodTask"; echo "$out"; fi
else
  echo "skip - sample PodTask dry-run (CRD podtasks.podtask.dev not installed in the cluster)"
fi

# Real RBAC, namespaced mode: what the operator's ServiceAccount can and cannot do.
filter "$tmp/srv-namespaced.yaml" "$tmp/rbac.yaml" "ServiceAccount,Role,RoleBinding,ClusterRole,ClusterRoleBinding"
if out=$(k apply -f "$tmp/rbac.yaml" 2>&1); then
  ok "applied ServiceAccount + RBAC (namespaced mode) for can-i checks"
  sa="system:serviceaccount:$rel_ns:$rel-podtask"
  lease="$rel-podtask"
  can() { # can yes|no VERB RESOURCE [NAMESPACE] [extra kubectl args]
    local want="$1" verb="$2" res="$3" ns="$4"
    shift 4
    local nsargs=()
    [ -n "$ns" ] && nsargs=(-n "$ns")
    local got
    got=$(k auth can-i "$verb" "$res" --as="$sa" "${nsargs[@]}" "$@" 2>/dev/null | tr -d '\r' | head -1)
    [ -z "$got" ] && got=no
    if [ "$got" = "$want" ]; then ok "can-i $verb $res ${ns:+-n $ns} $* = $got"; else bad "can-i $verb $res ${ns:+-n $ns} $* = $got, want $want"; fi
  }
  for v in create delete get list watch; do can yes "$v" pods "$team_ns"; done
  can no patch pods "$team_ns"
  can no update pods "$team_ns"
  can no create pods "$other_ns"
  can no list pods "" --all-namespaces
  for v in get list watch delete; do can yes "$v" podtasks.podtask.dev "$team_ns"; done
  can no create podtasks.podtask.dev "$team_ns"
  can no update podtasks.podtask.dev "$team_ns"
  can yes patch podtasks.podtask.dev "$team_ns" --subresource=status
  can yes update podtasks.podtask.dev "$team_ns" --subresource=status
  can no get podtasks.podtask.dev "$other_ns"
  for v in create patch; do can yes "$v" events "$team_ns"; can yes "$v" events.events.k8s.io "$team_ns"; done
  can no delete events "$team_ns"
  for v in get update patch; do can yes "$v" "leases.coordination.k8s.io/$lease" "$rel_ns"; done
  can yes create leases.coordination.k8s.io "$rel_ns"
  can no get leases.coordination.k8s.io/someone-else "$rel_ns"
  can no get leases.coordination.k8s.io "$team_ns"
  can no delete "leases.coordination.k8s.io/$lease" "$rel_ns"
  can yes get customresourcedefinitions.apiextensions.k8s.io/podtasks.podtask.dev ""
  can no get customresourcedefinitions.apiextensions.k8s.io/other.example.com ""
  can no list customresourcedefinitions.apiextensions.k8s.io ""
  for ns in "$team_ns" "$rel_ns"; do
    can no get secrets "$ns"
    can no list secrets "$ns"
    can no get configmaps "$ns"
  done
  can no create deployments.apps "$team_ns"
else
  bad "apply ServiceAccount + RBAC"; echo "$out"
fi
