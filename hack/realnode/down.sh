#!/usr/bin/env bash
# Stop the real node and its control plane, and undo every change made to the host (hack/realnode/host.sh).
# Only processes recorded by up.sh whose executable and start time still match are signalled.
set -euo pipefail
HACK=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=hack/realnode/lib.sh
source "$HACK/realnode/lib.sh"

# a kubelet left frozen by a test (node.sh freeze) would not act on TERM
if pid=$(owned_pid kubelet); then kill -CONT "$pid"; fi
stop_bg kubelet
# the containers outlive containerd (each has its shim): kill them through containerd while it runs
if owned_pid containerd >/dev/null; then
	for t in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true; done
	sleep 1
	for t in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks rm -f "$t" >/dev/null 2>&1 || true; done
	for c in $(ctr_ containers ls -q 2>/dev/null); do ctr_ containers rm "$c" >/dev/null 2>&1 || true; done
fi
stop_bg containerd
# shims left behind (containerd killed hard): only ours, by executable path
for p in $(pgrep -f containerd-shim-runc-v2 || true); do
	if [[ $(readlink "/proc/$p/exe") == "$CONTAINERD_BIN/containerd-shim-runc-v2" ]]; then kill -KILL "$p"; fi
done
stop_bg relay
stop_bg faultproxy
stop_bg registry
"$HACK/realnode/host.sh" restore
"$HACK/cluster.sh" down >/dev/null 2>&1
rm -rf "$NODE_DIR/kubelet/root" "$NODE_DIR/containerd/root" "$NODE_DIR/containerd/state" "$NODE_DIR/cni/ipam"
say "down: node, registry, control plane stopped; host restored"
