#!/usr/bin/env bash
# Faults of the node's own daemons, for the real-node tests (only the processes up.sh started, pid-checked):
#   node.sh freeze             SIGSTOP the kubelet (it stops talking to the API server; containers run on)
#   node.sh thaw               SIGCONT it
#   node.sh restart-kubelet    stop the kubelet (TERM) and start it again with the same flags
#   node.sh restart-containerd stop containerd (TERM; the containers live on in their shims) and start it again
set -euo pipefail
# shellcheck source=hack/realnode/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
pid() { owned_pid "$1" || die "$1 is not running (or not the process up.sh started)"; }
case ${1:-} in
freeze) kill -STOP "$(pid kubelet)"; say "kubelet frozen" ;;
thaw) kill -CONT "$(pid kubelet)"; say "kubelet thawed" ;;
restart-kubelet) pid kubelet >/dev/null; stop_bg kubelet; start_kubelet ;;
restart-containerd) pid containerd >/dev/null; stop_bg containerd; start_containerd ;;
*) echo "usage: $0 freeze|thaw|restart-kubelet|restart-containerd" >&2; exit 2 ;;
esac
