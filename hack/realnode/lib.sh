# shellcheck shell=bash disable=SC2034 # the settings are used by the scripts that source this file
# Shared settings of the real-node scripts (sourced).
K8S_VERSION=${PODTASK_K8S_VERSION:-v1.36.4}
CONTAINERD_VERSION=${PODTASK_CONTAINERD_VERSION:-v2.4.2}
CRANE_VERSION=${PODTASK_CRANE_VERSION:-v0.22.1}
CACHE=${PODTASK_CACHE:-$HOME/.cache/podtask}
REALNODE_HACK=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FAULTPROXY_VERSION=$(cat "$REALNODE_HACK/../faultproxy/"*.go "$REALNODE_HACK/../faultproxy/go.mod" 2>/dev/null | sha256sum | cut -c1-12)

say() { printf '[realnode %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }
# quiet CMD...: run CMD, show its output only when it fails
quiet() {
	local out
	out=$("$@" 2>&1) || { echo "$out" >&2; return 1; }
}

PAUSE_REPO=podtask-test/pause:1
BUSYBOX_REPO=podtask-test/busybox:1
crane_bin() { echo "$CACHE/crane/$CRANE_VERSION/bin/crane"; }

# push_dir DIR REF [crane mutate flags...]: push DIR as the only layer of a linux/amd64 image (no base
# image) owned by root, with deterministic timestamps.
push_dir() {
	local dir=$1 ref=$2
	shift 2
	local tar
	tar=$(mktemp --suffix=.tar)
	tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$dir" -cf "$tar" .
	quiet "$(crane_bin)" append --insecure -f "$tar" -t "$ref"
	quiet "$(crane_bin)" mutate --insecure --set-platform linux/amd64 "$@" -t "$ref" "$ref"
	rm -f "$tar"
	say "pushed $ref"
}

# ---- the real-node test bed: its own control plane (hack/cluster.sh, other ports and state), node state
export PODTASK_CLUSTER_DIR=${PODTASK_REALNODE_CLUSTER_DIR:-$CACHE/cluster-realnode}
export PODTASK_ETCD_PORT=42379 PODTASK_ETCD_PEER_PORT=42380 PODTASK_APISERVER_PORT=46443
export PODTASK_KCM_PORT=40257 PODTASK_SCHEDULER_PORT=40259 PODTASK_KWOK_PORT=40247
export PODTASK_KWOK_NODES=0
export PODTASK_APISERVER_EXTRA_ARGS="--kubelet-preferred-address-types=InternalIP,Hostname"
NODE_DIR=${PODTASK_REALNODE_DIR:-$CACHE/realnode}
NODE_NAME=realnode-0
BRIDGE=podtask0
POD_CIDR=10.88.0.0/16
NODE_IP=10.88.0.1
SERVICE_IP=10.96.0.1
BRIDGE_MAC=02:70:6f:64:00:01
REGISTRY=127.0.0.1:5000     # crane registry serve
FAULT_REGISTRY=127.0.0.1:5001 # hack/faultproxy in front of it
KUBELET_PORT=40250
KUBELET_HEALTHZ_PORT=40248
CGROUP_ROOT=/podtask-realnode
EGRESS_CHAIN=PODTASK-REALNODE-EGRESS
CONTAINERD_SOCK=$NODE_DIR/containerd/containerd.sock
KUBELET_BIN=$CACHE/kubelet/$K8S_VERSION/bin/kubelet
CONTAINERD_BIN=$CACHE/containerd/$CONTAINERD_VERSION/bin
KUBECTL=$CACHE/k8s/$K8S_VERSION/bin/kubectl
ctr_() { "$CONTAINERD_BIN/ctr" --address "$CONTAINERD_SOCK" -n k8s.io "$@"; }

# ---- processes: a pid file holds "pid exe starttime"; a process is ours only while all three match.
start_time() { awk '{print $22}' "/proc/$1/stat" 2>/dev/null; }
start_bg() { # NAME BIN ARGS...
	local name=$1 bin=$2
	shift 2
	mkdir -p "$NODE_DIR/pids" "$NODE_DIR/logs"
	if owned_pid "$name" >/dev/null; then say "$name: already running"; return 0; fi
	echo "---- $(date -u +%FT%TZ) start" >>"$NODE_DIR/logs/$name.log"
	setsid "$bin" "$@" >>"$NODE_DIR/logs/$name.log" 2>&1 </dev/null &
	local pid=$!
	sleep 0.05
	echo "$pid $(readlink -f "$bin") $(start_time "$pid")" >"$NODE_DIR/pids/$name"
	say "$name: started pid $pid (log $NODE_DIR/logs/$name.log)"
}
owned_pid() { # NAME: print the pid when the recorded process still runs
	local f=$NODE_DIR/pids/$1 pid exe st
	[[ -f $f ]] || return 1
	read -r pid exe st <"$f"
	[[ $pid =~ ^[0-9]+$ && $(readlink "/proc/$pid/exe" 2>/dev/null) == "$exe" && $(start_time "$pid") == "$st" ]] || return 1
	echo "$pid"
}
stop_bg() { # NAME: TERM, KILL after 10 s
	local pid i
	if pid=$(owned_pid "$1"); then
		kill -TERM "$pid"
		for ((i = 0; i < 100; i++)); do owned_pid "$1" >/dev/null || break; sleep 0.1; done
		if owned_pid "$1" >/dev/null; then kill -KILL "$pid"; fi
		say "$1: stopped (pid $pid)"
	fi
	rm -f "$NODE_DIR/pids/$1"
}
wait_for() { # WHAT SECONDS CMD...
	local what=$1 limit=$2 t0=$SECONDS
	shift 2
	until "$@" >/dev/null 2>&1; do
		((SECONDS - t0 < limit)) || die "$what not ready after ${limit}s"
		sleep 0.2
	done
	say "$what: ready in $((SECONDS - t0))s"
}
OPERATOR_NS=podtask-system

# the node's two daemons (up.sh, and node.sh for restarts)
start_containerd() {
	PATH=$CONTAINERD_BIN:$PATH start_bg containerd "$CONTAINERD_BIN/containerd" --config "$NODE_DIR/containerd/config.toml"
	wait_for containerd 30 ctr_ version
}
start_kubelet() {
	start_bg kubelet "$KUBELET_BIN" --config="$NODE_DIR/kubelet/config.yaml" --kubeconfig="$NODE_DIR/kubelet/kubeconfig" \
		--root-dir="$NODE_DIR/kubelet/root" --cert-dir="$NODE_DIR/kubelet/pki" \
		--hostname-override="$NODE_NAME" --node-ip="$NODE_IP" --v=2
}
