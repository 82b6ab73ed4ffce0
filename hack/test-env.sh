#!/usr/bin/env bash
# Run a command against the local podtask control plane.
#
#   hack/test-env.sh [--down-after] [--] CMD [ARGS...]
#       runs `hack/cluster.sh up` (builds on first use; no-op when already up), exports
#       KUBECONFIG and puts kubectl/helm (and kwok/etcd) on PATH, then runs CMD.
#       --down-after: stop the cluster when CMD exits (exit status of CMD is kept).
#   source hack/test-env.sh
#       same, in the current shell (no command): brings the cluster up and exports the env.
#
# Environment: see hack/cluster.sh / hack/README.md (PODTASK_CACHE, PODTASK_CLUSTER_DIR, ports).
_podtask_hack=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# _podtask_env: bring the cluster up, export KUBECONFIG and PATH (works without `set -e`).
_podtask_env() {
	"$_podtask_hack/cluster.sh" up >&2 || return 1
	local d dirs
	dirs=$("$_podtask_hack/cluster.sh" bin-dirs) || return 1
	for d in $dirs; do
		case ":$PATH:" in *":$d:"*) ;; *) PATH=$d:$PATH ;; esac
	done
	KUBECONFIG=$("$_podtask_hack/cluster.sh" kubeconfig) || return 1
	export PATH KUBECONFIG
}

if [[ ${BASH_SOURCE[0]} != "$0" ]]; then
	# sourced: leave the caller's shell options alone
	_podtask_env && echo "KUBECONFIG=$KUBECONFIG" >&2
	return
fi

set -euo pipefail

down_after=0
while (($#)); do
	case $1 in
	--down-after) down_after=1 ;;
	--) shift; break ;;
	-h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) break ;;
	esac
	shift
done
(($#)) || { echo "usage: hack/test-env.sh [--down-after] [--] CMD [ARGS...]" >&2; exit 2; }

_podtask_env
if ((down_after)); then
	rc=0
	"$@" || rc=$?
	"$_podtask_hack/cluster.sh" down >&2 || true
	exit "$rc"
fi
exec "$@"
