#!/usr/bin/env bash
# The fault suite (tests/faults): a mixed load of PodTasks on its own local control plane while the operator, the
# API server and etcd are killed, watches expire and the API throttles podtask; an invariant checker watches
# everything for the whole run.
#
#   hack/faults.sh [--long] [--keep] [-- CARGO_TEST_ARGS...]
#       --long   the long version (hundreds of tasks, >= 50 random operator kills); default: the short CI version
#       --keep   leave the fault cluster running afterwards
#
# The cluster is separate from the e2e one (state in ~/.cache/podtask/cluster-faults, its own ports; override with
# the PODTASK_* variables of hack/cluster.sh): the suite kills its components. Its kube-apiserver writes an audit
# log of pod creates (hack/faults/audit-policy.yaml) and runs without a watch cache, so etcd compaction expires
# watches (410 Gone).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

long=0 keep=0
while (($#)); do
	case $1 in
	--long) long=1 ;;
	--keep) keep=1 ;;
	--) shift; break ;;
	-h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done

export PODTASK_CLUSTER_DIR=${PODTASK_CLUSTER_DIR:-$HOME/.cache/podtask/cluster-faults}
export PODTASK_ETCD_PORT=${PODTASK_ETCD_PORT:-62379} PODTASK_ETCD_PEER_PORT=${PODTASK_ETCD_PEER_PORT:-62380}
export PODTASK_APISERVER_PORT=${PODTASK_APISERVER_PORT:-61443} PODTASK_KCM_PORT=${PODTASK_KCM_PORT:-60257}
export PODTASK_SCHEDULER_PORT=${PODTASK_SCHEDULER_PORT:-60259} PODTASK_KWOK_PORT=${PODTASK_KWOK_PORT:-60247}
audit=$PODTASK_CLUSTER_DIR/logs/audit.log
export PODTASK_APISERVER_EXTRA_ARGS="--watch-cache=false --audit-policy-file=$PWD/hack/faults/audit-policy.yaml --audit-log-path=$audit --audit-log-maxsize=0 ${PODTASK_APISERVER_EXTRA_ARGS:-}"
export PODTASK_FAULTS_AUDIT_LOG=$audit PODTASK_FAULTS_LONG=$long

mkdir -p "$PODTASK_CLUSTER_DIR/logs"
: >"$audit"
hack/cluster.sh up >/dev/null
# shellcheck source=/dev/null
source hack/test-env.sh
if ((!keep)); then trap 'hack/cluster.sh down >/dev/null 2>&1 || true' EXIT; fi

cargo test --features faults --test faults -- --nocapture --test-threads=1 "$@"
