#!/usr/bin/env bash
# Check the kwok scenario stages (hack/kwok/stages.yaml) and the control plane basics against
# the running local cluster: creates one pod per scenario in a fresh namespace, records every
# status transition, and compares the final state with the expectation.
#
#   hack/verify-scenarios.sh            (cluster must be up: hack/cluster.sh up)
#   KEEP_NS=1 hack/verify-scenarios.sh  keep the namespace for inspection
#
# Output: a transition log per pod (time since creation | phase | pod reason | container state)
# and PASS/FAIL lines. Exit status 1 if any expectation failed.
set -euo pipefail
HACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KUBECONFIG=$("$HACK_DIR/cluster.sh" kubeconfig)
export KUBECONFIG
K8S_BIN=$("$HACK_DIR/cluster.sh" bin-dirs | sed -n 1p)
k() { "$K8S_BIN/kubectl" "$@"; }

NS=podtask-verify-$(date +%s)
FAILS=0
k create namespace "$NS" >/dev/null
cleanup() { if [[ ${KEEP_NS:-} != 1 ]]; then k delete namespace "$NS" --wait=false >/dev/null 2>&1 || true; fi; }
trap cleanup EXIT

# the controller-manager must create the default ServiceAccount (admission needs it for pods)
for ((i = 0; i < 100; i++)); do k -n "$NS" get sa default >/dev/null 2>&1 && break; sleep 0.1; done
k -n "$NS" get sa default >/dev/null || { echo "FAIL default ServiceAccount missing in $NS"; exit 1; }

now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
stamp() { local ms=$(($(now_ms) - T0)); printf '%3d.%01ds' $((ms / 1000)) $((ms % 1000 / 100)); }
LOG=$(mktemp)
T0=$(now_ms)
# every watch event of every pod, time-stamped (seconds since the watch started)
JSONPATH='{.metadata.name}{"|"}{.status.phase}{"|"}{.status.reason}{"|"}{.metadata.deletionTimestamp}{"|"}{.status.containerStatuses[*].state}{"\n"}'
(
	declare -A last
	timeout 15 "$K8S_BIN/kubectl" -n "$NS" get pods --watch -o jsonpath="$JSONPATH" 2>/dev/null | while IFS= read -r line; do
		name=${line%%|*}
		rest=${line#*|}
		if [[ ${last[$name]:-} != "$rest" ]]; then
			last[$name]=$rest
			printf '%s %-22s %s\n' "$(stamp)" "$name" "$rest" >>"$LOG"
		fi
	done
) &
WATCH_PID=$!
sleep 0.5

# pod NAME ANNOTATIONS(json object) [EXTRA_SPEC_JSON]
pod() {
	local name=$1 ann=$2 extra=${3:-}
	k -n "$NS" apply -f - >/dev/null <<EOF
{"apiVersion":"v1","kind":"Pod","metadata":{"name":"$name","annotations":$ann},
 "spec":{"restartPolicy":"Never","terminationGracePeriodSeconds":30,
  "containers":[{"name":"main","image":"example.com/podtask/$name:1"}]${extra:+,$extra}}}
EOF
}

pod succeed-default '{}'
pod succeed '{"kwok.podtask.dev/scenario":"succeed","kwok.podtask.dev/run-for":"2s"}'
pod fail '{"kwok.podtask.dev/scenario":"fail","kwok.podtask.dev/run-for":"1500ms","kwok.podtask.dev/exit-code":"3","kwok.podtask.dev/message":"boom: out of cheese"}'
pod fail-default '{"kwok.podtask.dev/scenario":"fail"}'
pod run-forever '{"kwok.podtask.dev/scenario":"run-forever"}'
pod pull-rate-limited '{"kwok.podtask.dev/scenario":"pull-rate-limited","kwok.podtask.dev/pull-for":"3s","kwok.podtask.dev/run-for":"2s"}'
pod pull-never '{"kwok.podtask.dev/scenario":"pull-never"}'
pod pull-backoff-never '{"kwok.podtask.dev/scenario":"pull-backoff-never"}'
pod invalid-image '{"kwok.podtask.dev/scenario":"invalid-image"}'
pod config-error '{"kwok.podtask.dev/scenario":"config-error"}'
pod evict '{"kwok.podtask.dev/scenario":"evict","kwok.podtask.dev/run-for":"2s"}'
pod deadline-running '{"kwok.podtask.dev/scenario":"run-forever"}' '"activeDeadlineSeconds":3'
pod deadline-pull '{"kwok.podtask.dev/scenario":"pull-never"}' '"activeDeadlineSeconds":3'
pod deadline-not-reached '{"kwok.podtask.dev/run-for":"2s"}' '"activeDeadlineSeconds":30'
pod init-containers '{"kwok.podtask.dev/run-for":"2s"}' '"initContainers":[{"name":"init","image":"example.com/init:1"}]'
pod unschedulable '{}' '"nodeSelector":{"podtask.dev/no-such-node":"x"}'
pod delete-me '{"kwok.podtask.dev/scenario":"run-forever"}'
k -n "$NS" apply -f - >/dev/null <<EOF
{"apiVersion":"v1","kind":"Pod","metadata":{"name":"delete-finalizer","finalizers":["podtask.dev/test"],
 "annotations":{"kwok.podtask.dev/scenario":"run-forever"}},
 "spec":{"restartPolicy":"Never","containers":[{"name":"main","image":"x"}]}}
EOF
k -n "$NS" apply -f - >/dev/null <<EOF
{"apiVersion":"v1","kind":"Pod","metadata":{"name":"delete-keep-finalizer","finalizers":["podtask.dev/test"],
 "annotations":{"kwok.podtask.dev/scenario":"run-forever","kwok.podtask.dev/keep-finalizers":"true"}},
 "spec":{"restartPolicy":"Never","containers":[{"name":"main","image":"x"}]}}
EOF
# garbage collector: a pod owned by a ConfigMap goes away when the ConfigMap is deleted
k -n "$NS" create configmap owner >/dev/null
uid=$(k -n "$NS" get configmap owner -o jsonpath='{.metadata.uid}')
k -n "$NS" apply -f - >/dev/null <<EOF
{"apiVersion":"v1","kind":"Pod","metadata":{"name":"gc-owned","annotations":{"kwok.podtask.dev/scenario":"run-forever"},
 "ownerReferences":[{"apiVersion":"v1","kind":"ConfigMap","name":"owner","uid":"$uid"}]},
 "spec":{"restartPolicy":"Never","containers":[{"name":"main","image":"x"}]}}
EOF

sleep $((4 - ($(now_ms) - T0) / 1000 > 0 ? 4 - ($(now_ms) - T0) / 1000 : 0))
k -n "$NS" delete pod delete-me delete-finalizer delete-keep-finalizer --wait=false >/dev/null
k -n "$NS" delete configmap owner --wait=false >/dev/null
printf '%s %-22s %s\n' "$(stamp)" "(action)" "deleted pods delete-me, delete-finalizer, delete-keep-finalizer and configmap owner" >>"$LOG"
wait "$WATCH_PID" || true # the watch ends after 15s
while (($(now_ms) - T0 < 15000)); do sleep 0.5; done
sort -s -k2,2 "$LOG" | awk '{ if ($2 != prev) print ""; prev = $2; print }'
echo

# expect NAME JSONPATH WANT (substring match on the final value)
expect() {
	local name=$1 path=$2 want=$3 got
	got=$(k -n "$NS" get pod "$name" -o jsonpath="$path" 2>&1 || true)
	if [[ $got == *"$want"* ]]; then
		printf 'PASS %-22s %s ~ %s\n' "$name" "$path" "$want"
	else
		printf 'FAIL %-22s %s: want ~%q got %q\n' "$name" "$path" "$want" "$got"
		FAILS=$((FAILS + 1))
	fi
}
gone() {
	if k -n "$NS" get pod "$1" >/dev/null 2>&1; then
		printf 'FAIL %-22s still exists\n' "$1"
		FAILS=$((FAILS + 1))
	else printf 'PASS %-22s deleted\n' "$1"; fi
}
CS='{.status.containerStatuses[0].state}'
expect succeed-default '{.status.phase}' Succeeded
expect succeed-default "$CS" '"exitCode":0,'
expect succeed '{.status.phase}' Succeeded
expect succeed "$CS" '"reason":"Completed"'
expect fail '{.status.phase}' Failed
expect fail "$CS" '"exitCode":3,'
expect fail "$CS" '"message":"boom: out of cheese"'
expect fail-default "$CS" '"exitCode":1,'
expect run-forever '{.status.phase}' Running
expect run-forever '{.status.conditions[?(@.type=="Ready")].status}' True
expect pull-rate-limited '{.status.phase}' Succeeded
expect pull-never '{.status.phase}' Pending
expect pull-never "$CS" '"reason":"ImagePullBackOff"'
expect pull-never "$CS" 'toomanyrequests: You have reached your pull rate limit'
expect pull-backoff-never "$CS" '"reason":"ImagePullBackOff"'
expect pull-backoff-never "$CS" 'Back-off pulling image'
expect invalid-image '{.status.phase}' Pending
expect invalid-image "$CS" '"reason":"InvalidImageName"'
expect invalid-image "$CS" "couldn't parse image name"
expect config-error "$CS" '"reason":"CreateContainerConfigError"'
expect config-error "$CS" 'secret \"missing\" not found'
expect evict '{.status.phase}/{.status.reason}/{.status.message}' 'Failed/Evicted/The node was low on resource: memory.'
expect deadline-running '{.status.phase}/{.status.reason}' 'Failed/DeadlineExceeded'
expect deadline-pull '{.status.phase}/{.status.reason}' 'Failed/DeadlineExceeded'
expect deadline-not-reached '{.status.phase}' Succeeded
expect init-containers '{.status.phase}' Succeeded
expect init-containers '{.status.initContainerStatuses[0].state.terminated.reason}' Completed
expect unschedulable '{.status.phase}' Pending
expect unschedulable '{.status.conditions[?(@.type=="PodScheduled")].reason}' Unschedulable
gone delete-me
gone delete-finalizer
gone gc-owned
expect delete-keep-finalizer '{.metadata.deletionTimestamp}' 20
k -n "$NS" patch pod delete-keep-finalizer --type=json -p '[{"op":"remove","path":"/metadata/finalizers"}]' >/dev/null
sleep 1
gone delete-keep-finalizer
rm -f "$LOG"
if ((FAILS)); then
	echo "$FAILS expectation(s) failed"
	exit 1
fi
echo "all scenario expectations passed"
