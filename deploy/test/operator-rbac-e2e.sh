#!/usr/bin/env bash
# End-to-end proof that the chart's RBAC is enough for the real operator, and no more is needed:
# runs the podtask binary *as the chart's ServiceAccount* (a kubeconfig holding only that account's token) against
# a real cluster, in namespaced mode and in cluster-wide mode, and checks that
#   - its startup self-check (CRD present, SelfSubjectAccessReviews) passes and /readyz answers 200,
#   - it takes the leader-election Lease in the release namespace,
#   - a PodTask runs to Succeeded (pod created, status written, Events recorded, finished pod deleted),
#   - ttlAfterFinished deletes the PodTask,
#   - a PodTask outside the watched namespaces is left alone (namespaced mode),
#   - nothing in its log says "forbidden".
#
#   KUBECONFIG=... [PODTASK_BIN=target/debug/podtask] [HELM=helm] deploy/test/operator-rbac-e2e.sh
#
# Needs cluster-admin in $KUBECONFIG (it installs the CRD with server-side apply and leaves it; everything else it
# creates is deleted at the end) and nodes that run pods (the hack/ cluster's kwok nodes do: the default scenario
# succeeds after about a second). Prints "N passed, M failed".
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
chart="$repo/deploy/helm/podtask"
# shellcheck source=deploy/find-helm.sh
. "$repo/deploy/find-helm.sh"
KUBECTL="${KUBECTL:-kubectl}"
PY="${PYTHON:-python3}"
if [ -z "${PODTASK_BIN:-}" ]; then
  for b in "$repo/target/release/podtask" "$repo/target/debug/podtask"; do [ -x "$b" ] && PODTASK_BIN="$b" && break; done
fi
# shellcheck source=deploy/test/lib.sh
. "$repo/deploy/test/lib.sh"   # $tmp, ok, bad, $passed, $failed (its EXIT trap is replaced by cleanup below)
k() { "$KUBECTL" --request-timeout=30s "$@"; }

[ -n "${KUBECONFIG:-}" ] || { echo "operator-rbac-e2e: set KUBECONFIG to a test cluster" >&2; exit 2; }
[ -x "${PODTASK_BIN:-}" ] || { echo "operator-rbac-e2e: no podtask binary (cargo build, or set PODTASK_BIN)" >&2; exit 2; }
k version >/dev/null 2>&1 || { echo "operator-rbac-e2e: cluster unreachable through $KUBECONFIG" >&2; exit 2; }

suffix="$(date +%s | tail -c 6)$$"
rel="pte2e-${suffix: -8}"
rel_ns="podtask-e2e-${suffix: -8}"
team_ns="$rel_ns-a"
other_ns="$rel_ns-b"
op_pid=""
stop_operator() {
  if [ -n "$op_pid" ] && kill -0 "$op_pid" 2>/dev/null; then
    kill -TERM "$op_pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$op_pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$op_pid" 2>/dev/null
  fi
  op_pid=""
}
cleanup() {
  stop_operator
  k delete clusterrole,clusterrolebinding -l "app.kubernetes.io/instance=$rel" --ignore-not-found >/dev/null 2>&1
  k delete namespace "$rel_ns" "$team_ns" "$other_ns" --ignore-not-found --wait=false >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT

echo "operator-rbac-e2e: $("$PODTASK_BIN" version 2>&1 | head -1), release $rel in $rel_ns"
for ns in "$rel_ns" "$team_ns" "$other_ns"; do k create namespace "$ns" >/dev/null || bad "create namespace $ns"; done
for ns in "$team_ns" "$other_ns"; do
  for _ in $(seq 100); do k -n "$ns" get sa default >/dev/null 2>&1 && break; sleep 0.1; done
done
if out=$(k apply --server-side --force-conflicts -f "$chart/crds/podtasks.podtask.dev.yaml" 2>&1) \
  && "$PODTASK_BIN" crd wait; then
  ok "CRD installed from the chart"
else
  bad "install CRD"; echo "$out"
fi

# A kubeconfig that authenticates as the ServiceAccount and nothing else.
sa_kubeconfig() { # sa_kubeconfig SA OUT
  local token server ca
  token=$(k -n "$rel_ns" create token "$1" --duration=30m) || return 1
  server=$(k config view --raw --minify -o jsonpath='{.clusters[0].cluster.server}')
  ca=$(k config view --raw --minify --flatten -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')
  cat >"$2" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: c
    cluster:
      server: $server
      certificate-authority-data: $ca
users:
  - name: sa
    user:
      token: $token
contexts:
  - name: sa
    context: {cluster: c, user: sa}
current-context: sa
EOF
}

task() { # task NAMESPACE NAME [TTL]
  cat <<EOF
apiVersion: podtask.dev/v1alpha1
kind: PodTask
metadata:
  name: $2
  namespace: $1
spec:
  executionTimeout: 5m
  startupTimeout: 1m
${3:+  ttlAfterFinished: $3}
  template:
    spec:
      containers:
        - name: main
          image: busybox:1.36
          command: ["sh", "-c", "echo hello"]
EOF
}

wait_for() { # wait_for SECONDS CMD...: until CMD succeeds
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do [ $SECONDS -ge $deadline ] && return 1; sleep 0.5; done
}
phase_is() { [ "$(k -n "$1" get pt "$2" -o jsonpath='{.status.phase}' 2>/dev/null)" = "$3" ]; }
gone() { ! k -n "$1" get pt "$2" >/dev/null 2>&1; }
http_ok() { "$PY" -c 'import sys, urllib.request; sys.exit(urllib.request.urlopen(sys.argv[1], timeout=2).status != 200)' "$1"; }

for mode in namespaced cluster; do
  args=()
  [ "$mode" = namespaced ] && args=(--set "watchNamespaces={$team_ns}")
  "$HELM" template "$rel" "$chart" --namespace "$rel_ns" "${args[@]}" >"$tmp/$mode.yaml" || { bad "[$mode] render"; continue; }
  "$PY" - "$tmp/$mode.yaml" "$tmp/$mode-rbac.yaml" "$tmp/$mode-args" <<'EOF'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
keep = [d for d in docs if d["kind"] in ("ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")]
yaml.safe_dump_all(keep, open(sys.argv[2], "w"))
dep = next(d for d in docs if d["kind"] == "Deployment")
# The operator's arguments exactly as the chart renders them (one per line).
open(sys.argv[3], "w").write("\n".join(dep["spec"]["template"]["spec"]["containers"][0]["args"]) + "\n")
EOF
  if ! out=$(k apply -f "$tmp/$mode-rbac.yaml" 2>&1); then bad "[$mode] apply RBAC"; echo "$out"; continue; fi
  sa_kubeconfig "$rel-podtask" "$tmp/sa-$mode.kubeconfig" || { bad "[$mode] token for the ServiceAccount"; continue; }
  # Sanity: the ServiceAccount's kubeconfig really is that account, with no more than the chart grants.
  if KUBECONFIG="$tmp/sa-$mode.kubeconfig" k get secrets -n "$rel_ns" >/dev/null 2>&1; then
    bad "[$mode] the ServiceAccount can read Secrets"
  else
    ok "[$mode] the ServiceAccount kubeconfig is that account (Secrets forbidden)"
  fi

  # Run the binary with the chart's own arguments, only the listen address moved to loopback.
  port=$((20000 + RANDOM % 20000))
  mapfile -t op_args <"$tmp/$mode-args"
  op_args=("${op_args[@]/#--http-addr=*/--http-addr=127.0.0.1:$port}")
  op_args=("${op_args[@]/\$(POD_NAMESPACE)/$rel_ns}")
  KUBECONFIG="$tmp/sa-$mode.kubeconfig" POD_NAME="$rel-op-$mode" POD_NAMESPACE="$rel_ns" \
    "$PODTASK_BIN" "${op_args[@]}" >"$tmp/op-$mode.log" 2>&1 &
  op_pid=$!
  if wait_for 120 http_ok "http://127.0.0.1:$port/readyz" && kill -0 "$op_pid" 2>/dev/null; then
    ok "[$mode] operator passed its startup checks as the ServiceAccount; /readyz 200"
  else
    bad "[$mode] operator did not become ready within 120s"
    echo "  /readyz: $("$PY" -c 'import sys, urllib.request
try: print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())
except Exception as e: print(e)' "http://127.0.0.1:$port/readyz")"
    echo "  load: $(cat /proc/loadavg)"; echo "  PodTasks in the cluster: $(k get pt -A --no-headers 2>/dev/null | wc -l)"
    tail -20 "$tmp/op-$mode.log"; stop_operator; continue
  fi
  holder() { [ "$(k -n "$rel_ns" get lease "$rel-podtask" -o jsonpath='{.spec.holderIdentity}' 2>/dev/null)" = "$rel-op-$mode" ]; }
  if wait_for 60 holder; then ok "[$mode] holds Lease $rel_ns/$rel-podtask"; else bad "[$mode] lease not taken"; fi

  name="hello-$mode"
  task "$team_ns" "$name" | k apply -f - >/dev/null
  if wait_for 90 phase_is "$team_ns" "$name" Succeeded; then
    ok "[$mode] PodTask $team_ns/$name Succeeded"
  else
    bad "[$mode] PodTask $team_ns/$name: phase '$(k -n "$team_ns" get pt "$name" -o jsonpath='{.status.phase} {.status.reason} {.status.message}')'"
  fi
  if k wait -n "$team_ns" --for=condition=Complete "pt/$name" --timeout=5s >/dev/null 2>&1; then
    ok "[$mode] kubectl wait --for=condition=Complete"
  else
    bad "[$mode] condition Complete not True"
  fi
  evs=$(k -n "$team_ns" get events --field-selector "involvedObject.name=$name,involvedObject.kind=PodTask" -o name 2>/dev/null | wc -l)
  if [ "$evs" -gt 0 ]; then ok "[$mode] $evs Event(s) recorded on the PodTask"; else bad "[$mode] no Events on the PodTask"; fi
  pods_left() { [ -z "$(k -n "$team_ns" get pods -o name 2>/dev/null)" ]; }
  if wait_for 30 pods_left; then ok "[$mode] finished pod deleted (cleanup: Delete)"; else bad "[$mode] pods left: $(k -n "$team_ns" get pods -o name)"; fi

  task "$team_ns" "ttl-$mode" 1s | k apply -f - >/dev/null
  if wait_for 90 gone "$team_ns" "ttl-$mode"; then ok "[$mode] ttlAfterFinished deleted the PodTask"; else bad "[$mode] ttl-$mode not deleted"; fi

  if [ "$mode" = namespaced ]; then
    task "$other_ns" outside | k apply -f - >/dev/null
    sleep 5
    if [ -z "$(k -n "$other_ns" get pt outside -o jsonpath='{.status.phase}')" ] && [ -z "$(k -n "$other_ns" get pods -o name)" ]; then
      ok "[$mode] PodTask outside the watched namespace left alone"
    else
      bad "[$mode] operator touched $other_ns"
    fi
  fi

  if grep -qi 'forbidden' "$tmp/op-$mode.log"; then
    bad "[$mode] operator log mentions forbidden:"; grep -i forbidden "$tmp/op-$mode.log" | head -5
  else
    ok "[$mode] no 'forbidden' in the operator's log ($(wc -l <"$tmp/op-$mode.log") lines)"
  fi
  stop_operator
  k delete pt --all -n "$team_ns" --wait=false >/dev/null 2>&1
  k delete pt --all -n "$other_ns" --wait=false >/dev/null 2>&1
  k delete -f "$tmp/$mode-rbac.yaml" --ignore-not-found >/dev/null 2>&1
  k -n "$rel_ns" delete lease "$rel-podtask" --ignore-not-found >/dev/null 2>&1
done

echo "${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]
