# shellcheck shell=bash disable=SC2154  # $tmp, $chart, $HELM, $PY, ok/bad come from chart-test.sh
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
# The release namespace enforces the "restricted" Pod Security Standard, as the README recommends: the API server
# then warns about any Deployment whose pods it would refuse.
k label namespace "$rel_ns" pod-security.kubernetes.io/enforce=restricted pod-security.kubernetes.io/warn=restricted \
  --overwrite >/dev/null || bad "label $rel_ns restricted"

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

# Control first: a rendering that breaks "restricted" must draw the warning, or the dry-runs below prove nothing.
# (Pod Security admission reads namespace labels from a cache: retry until it has seen the label.)
"$HELM" template "$rel" "$chart" --namespace "$rel_ns" --set securityContext.allowPrivilegeEscalation=true \
  --show-only templates/deployment.yaml >"$tmp/bad-psa.yaml"
psa_seen=false
for _ in $(seq 20); do
  if k apply --dry-run=server -f "$tmp/bad-psa.yaml" 2>&1 | grep -q 'violate PodSecurity "restricted'; then psa_seen=true; break; fi
  sleep 0.5
done
if $psa_seen; then
  ok "control: allowPrivilegeEscalation=true draws the restricted Pod Security warning"
else
  bad "control: no Pod Security warning for allowPrivilegeEscalation=true (is PodSecurity admission on?)"
fi

crd_chart="$chart/crds/podtasks.podtask.dev.yaml"
if [ -f "$crd_chart" ]; then
  # The API server's warnings (e.g. an unknown `format`) count as failures: users would see them on every apply.
  if out=$(k apply --server-side --force-conflicts --field-manager=podtask-chart-test --dry-run=server -f "$crd_chart" 2>&1) && ! grep -q '^Warning' <<<"$out"; then
    ok "server dry-run: CRD, no warnings"
  else
    bad "server dry-run: CRD"; echo "$out"
  fi
fi

for mode in cluster namespaced; do
  args=(--set serviceMonitor.enabled=true)
  [ "$mode" = namespaced ] && args+=(--set "watchNamespaces={$team_ns}")
  if "$HELM" template "$rel" "$chart" --namespace "$rel_ns" "${args[@]}" >"$tmp/srv-$mode.yaml" 2>"$tmp/srv.err"; then
    filter "$tmp/srv-$mode.yaml" "$tmp/srv-$mode.f.yaml" ""
    if out=$(k apply --dry-run=server --validate=strict -f "$tmp/srv-$mode.f.yaml" 2>&1) && ! grep -q '^Warning' <<<"$out"; then
      ok "server dry-run: $mode mode, restricted Pod Security, no warnings ($(echo "$out" | wc -l) objects)"
    else
      bad "server dry-run: $mode mode"; echo "$out"
    fi
  else
    bad "render for the cluster ($mode)"; cat "$tmp/srv.err"
  fi
done

if k get crd podtasks.podtask.dev >/dev/null 2>&1; then
  # The exact sample that NOTES.txt tells users to paste (chart-test.sh extracted it into $tmp/pasted.yaml).
  if [ -s "$tmp/pasted.yaml" ]; then
    if out=$(k apply -n "$team_ns" --dry-run=server --validate=strict -f "$tmp/pasted.yaml" 2>&1) && ! grep -q '^Warning' <<<"$out"; then
      ok "server dry-run: the NOTES.txt sample PodTask is accepted by the CRD"
    else
      bad "server dry-run: the NOTES.txt sample PodTask"; echo "$out"
    fi
  else
    bad "no NOTES.txt sample to dry-run"
  fi
else
  echo "skip - sample PodTask dry-run (CRD podtasks.podtask.dev not installed in the cluster)"
fi

# Real RBAC: apply only the ServiceAccount and RBAC objects, then ask the API server (SubjectAccessReview, which
# needs no CRD to be installed) what the operator's ServiceAccount may and may not do.
# can WANT(yes|no) VERB GROUP RESOURCE[/SUBRESOURCE] NAMESPACE [NAME]
can() {
  local want="$1" verb="$2" group="$3" res="$4" ns="$5" name="${6:-}" sub=""
  case "$res" in */*) sub="${res#*/}"; res="${res%%/*}" ;; esac
  local got
  got=$("$PY" - "$sa" "$verb" "$group" "$res" "$sub" "$ns" "$name" <<'EOF' | k create -f - -o jsonpath='{.status.allowed}' 2>&1
import json, sys
user, verb, group, res, sub, ns, name = sys.argv[1:]
attrs = {"verb": verb, "group": group, "resource": res}
if sub: attrs["subresource"] = sub
if ns: attrs["namespace"] = ns
if name: attrs["name"] = name
print(json.dumps({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                  "spec": {"user": user, "groups": ["system:serviceaccounts", "system:authenticated"],
                           "resourceAttributes": attrs}}))
EOF
)
  case "$got" in true) got=yes ;; false | "") got=no ;; esac
  local where="cluster-wide"
  [ -n "$ns" ] && where="in $ns"
  local what="$verb ${group:-core}/$res${sub:+/$sub}${name:+ $name} $where"
  if [ "$got" = "$want" ]; then ok "[$mode] can $what: $got"; else bad "[$mode] can $what: $got, want $want"; fi
}

for mode in namespaced cluster; do
  filter "$tmp/srv-$mode.yaml" "$tmp/rbac-$mode.yaml" "ServiceAccount,Role,RoleBinding,ClusterRole,ClusterRoleBinding"
  if ! out=$(k apply -f "$tmp/rbac-$mode.yaml" 2>&1); then
    bad "[$mode] apply ServiceAccount + RBAC"; echo "$out"; continue
  fi
  ok "[$mode] applied ServiceAccount + RBAC for the access checks"
  sa="system:serviceaccount:$rel_ns:$rel-podtask"
  lease="$rel-podtask"
  if [ "$mode" = namespaced ]; then yes_ns=("$team_ns"); no_ns=("$other_ns" "$rel_ns"); else yes_ns=("$team_ns" "$other_ns"); no_ns=(); fi
  for ns in "${yes_ns[@]}"; do
    for v in create delete get list patch watch; do can yes "$v" "" pods "$ns"; done
    for v in update deletecollection; do can no "$v" "" pods "$ns"; done
    can no create "" pods/exec "$ns"
    can no get "" pods/log "$ns"
    for v in get list watch delete; do can yes "$v" podtask.dev podtasks "$ns"; done
    for v in create update patch; do can no "$v" podtask.dev podtasks "$ns"; done
    can yes update podtask.dev podtasks/status "$ns"
    can no patch podtask.dev podtasks/status "$ns"
    can no update podtask.dev podtasks/finalizers "$ns"
    for v in create patch; do can no "$v" "" events "$ns"; can yes "$v" events.k8s.io events "$ns"; done
    can no delete "" events "$ns"
    for v in get list; do can no "$v" "" secrets "$ns"; can no "$v" "" configmaps "$ns"; done
    can no create apps deployments "$ns"
    can no create batch jobs "$ns"
    can no get coordination.k8s.io leases "$ns"
  done
  for ns in "${no_ns[@]}"; do
    can no create "" pods "$ns"
    can no get podtask.dev podtasks "$ns"
  done
  if [ "$mode" = namespaced ]; then
    can no list "" pods ""
    can no list podtask.dev podtasks ""
  else
    can yes list "" pods ""
    can yes watch podtask.dev podtasks ""
  fi
  # Leader election, as the operator's startup self-check asks (no name) and as it then uses it (with the name).
  for v in create get patch; do can yes "$v" coordination.k8s.io leases "$rel_ns"; done
  for v in get patch; do can yes "$v" coordination.k8s.io leases "$rel_ns" "$lease"; done
  can no update coordination.k8s.io leases "$rel_ns" "$lease"
  can no delete coordination.k8s.io leases "$rel_ns" "$lease"
  can no list coordination.k8s.io leases ""
  can no get "" secrets "$rel_ns"
  # No access to CRDs at all: the startup check lists podtasks instead (404 = CRD missing).
  can no get apiextensions.k8s.io customresourcedefinitions "" podtasks.podtask.dev
  can no list apiextensions.k8s.io customresourcedefinitions ""
  can no update apiextensions.k8s.io customresourcedefinitions "" podtasks.podtask.dev
  can no get "" secrets ""
  can no list "" nodes ""
  k delete -f "$tmp/rbac-$mode.yaml" --ignore-not-found >/dev/null 2>&1
done
