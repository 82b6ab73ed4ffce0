#!/usr/bin/env bash
# The fault suite (tests/faults): a mixed load of PodTasks on its own local control plane while the operator, the
# API server and etcd are killed, watches expire and the API throttles podtask; an invariant checker watches
# everything for the whole run, and every fault must have had its effect (a new process, 410s in podtask's
# watches, 429s to podtask). Then API outages of every kind (kube-apiserver killed, SIGSTOPped, cut off by iptables;
# etcd killed) with deadlines passing inside them: the worst delay of their enforcement after the API's return.
#
#   hack/faults.sh [--long] [--keep] [-- CARGO_TEST_ARGS...]
#       --long   the long version (hundreds of tasks, >= 50 random operator kills, 24 outages with 1, 10 and
#                100 tasks); default: the short CI version (4 outages of 10 tasks)
#       --keep   leave the fault cluster running afterwards
#   PODTASK_FAULTS_OUTAGES=etcd,stop (any of kill, stop, drop, etcd) runs only the outage rounds of those kinds,
#   PODTASK_FAULTS_TASKS=100 (or 1,10) only those with that many tasks,
#   PODTASK_FAULTS_SEED replays a run's fault order.
#
# The cluster is separate from the e2e one (state in ~/.cache/podtask/cluster-faults, ports 61443 for the API server
# and 6xxxx for the rest; see below): the suite kills its components. Its kube-apiserver writes an audit
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
	-h | --help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done

# Never the e2e cluster's settings: the fault cluster has its own (PODTASK_FAULTS_CLUSTER_DIR, PODTASK_FAULTS_PORTS
# = "etcd etcd-peer apiserver controller-manager scheduler kwok").
export PODTASK_CLUSTER_DIR=${PODTASK_FAULTS_CLUSTER_DIR:-$HOME/.cache/podtask/cluster-faults}
read -r PODTASK_ETCD_PORT PODTASK_ETCD_PEER_PORT PODTASK_APISERVER_PORT PODTASK_KCM_PORT PODTASK_SCHEDULER_PORT \
	PODTASK_KWOK_PORT <<<"${PODTASK_FAULTS_PORTS:-62379 62380 61443 60257 60259 60247}"
export PODTASK_ETCD_PORT PODTASK_ETCD_PEER_PORT PODTASK_APISERVER_PORT PODTASK_KCM_PORT PODTASK_SCHEDULER_PORT PODTASK_KWOK_PORT
audit=$PODTASK_CLUSTER_DIR/logs/audit.log
export PODTASK_APISERVER_EXTRA_ARGS="--watch-cache=false --audit-policy-file=$PWD/hack/faults/audit-policy.yaml --audit-log-path=$audit --audit-log-maxsize=0"
export PODTASK_FAULTS_AUDIT_LOG=$audit PODTASK_FAULTS_LONG=$long

mkdir -p "$PODTASK_CLUSTER_DIR/logs"
# The drop rounds need iptables (Debian's package, as the real-node tier installs it), when missing.
if ! command -v iptables >/dev/null; then
	echo "faults: installing Debian's iptables (the outage test's network drops)"
	apt-get install -y --no-install-recommends iptables >/dev/null 2>&1 ||
		{ apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends iptables >/dev/null; }
fi
# a run starts from empty etcd data, whatever an interrupted run left behind (down stops only our own processes)
hack/cluster.sh down >/dev/null 2>&1 || true
# The outage test drops the API server's packets with iptables and removes its rules itself, also when it fails;
# should the test process die outright, they are removed here.
drop_rules_removed() {
	local dir
	for dir in --dport --sport; do
		while iptables -w -D INPUT -i lo -p tcp "$dir" "$PODTASK_APISERVER_PORT" -j DROP 2>/dev/null; do :; done
	done
}
if ((!keep)); then
	trap 'drop_rules_removed; hack/cluster.sh down >/dev/null 2>&1 || true' EXIT
else
	trap drop_rules_removed EXIT
fi
# after the trap: a cluster that fails to come up is stopped too
hack/cluster.sh up >/dev/null
# shellcheck source=/dev/null
source hack/test-env.sh

# The operator runs as users run it: the release build (the image's binary; CI's real-node step has built it).
cargo build --quiet --release --locked --bin podtask
export PODTASK_FAULTS_BIN=$PWD/target/release/podtask
cargo test --features faults --test faults -- --nocapture --test-threads=1 "$@"
