#!/usr/bin/env bash
# The host side of the real node, and its undoing:
#   host.sh prepare   save what the node changes (sysctls, which shared dirs exist), create the pod bridge,
#                     drop pod egress to anything but local addresses, create the kubelet's cgroup root
#   host.sh restore   undo all of it (run after every process of the node is gone)
set -euo pipefail
# shellcheck source=hack/realnode/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SYSCTLS=(vm.overcommit_memory kernel.panic kernel.panic_on_oops net.ipv4.ip_forward)
SHARED_DIRS=(/var/log/pods /var/log/containers /var/lib/kubelet /var/lib/cni /run/containerd /etc/cni /opt/cni)
KUBELET_CHAINS=(KUBE-FIREWALL KUBE-KUBELET-CANARY KUBE-IPTABLES-HINT)
SAVED=$NODE_DIR/host-saved
cgroup_dirs() { for c in /sys/fs/cgroup/*/; do [[ -L ${c%/} || $c == */unified/ ]] || echo "$c${CGROUP_ROOT#/}"; done; }

prepare() {
	mkdir -p "$NODE_DIR"
	if [[ ! -f $SAVED/.complete ]]; then # save once: a second prepare must not save our own changes
		mkdir -p "$SAVED"
		for s in "${SYSCTLS[@]}"; do echo "$s=$(sysctl -n "$s")"; done >"$SAVED/sysctls"
		for d in "${SHARED_DIRS[@]}"; do [[ -e $d ]] && echo "$d"; done >"$SAVED/existing-dirs" || true
		for t in filter nat mangle; do iptables -t "$t" -S | sed -n "s/^-N //p" | sed "s/^/$t /"; done >"$SAVED/chains"
		touch "$SAVED/.complete"
	fi
	# the pod network: a bridge owning the gateway address (the node IP) and the service IP, which a relay answers
	ip link show "$BRIDGE" >/dev/null 2>&1 || ip link add "$BRIDGE" type bridge
	# A bridge whose address was never set takes the lowest of its ports' addresses, and changes it when that pod
	# goes: every other pod's ARP entry for the gateway then points nowhere, and pods and host stop reaching each
	# other for as long as it takes to expire (a liveness probe's worth). A fixed (locally administered) address.
	ip link set "$BRIDGE" address "$BRIDGE_MAC"
	ip addr replace "$NODE_IP/16" dev "$BRIDGE"
	ip addr replace "$SERVICE_IP/32" dev "$BRIDGE"
	ip link set "$BRIDGE" up
	# nothing from the pod network is forwarded anywhere but the pod network
	iptables -N "$EGRESS_CHAIN" 2>/dev/null || iptables -F "$EGRESS_CHAIN"
	iptables -A "$EGRESS_CHAIN" -d "$POD_CIDR" -j RETURN
	iptables -A "$EGRESS_CHAIN" -j DROP
	iptables -C FORWARD -s "$POD_CIDR" -j "$EGRESS_CHAIN" 2>/dev/null || iptables -I FORWARD 1 -s "$POD_CIDR" -j "$EGRESS_CHAIN"
	local d
	for d in $(cgroup_dirs); do mkdir -p "$d"; done
	say "host: bridge $BRIDGE ($NODE_IP, $SERVICE_IP), egress chain $EGRESS_CHAIN, cgroup root $CGROUP_ROOT"
}

# rm_cgroup DIR: remove a cgroup tree depth-first (only empty cgroups can go)
rm_cgroup() { [[ -d $1 ]] && find "$1" -depth -type d -exec rmdir {} + 2>/dev/null; [[ ! -d $1 ]]; }

# drop_chain TOOL TABLE CHAIN: delete the rules jumping to CHAIN, then CHAIN itself
drop_chain() {
	local rule
	"$1" -t "$2" -S 2>/dev/null | { grep -E -- "-j $3( |\$)" || true; } | sed 's/^-A/-D/' | while read -r rule; do
		# shellcheck disable=SC2086 # a listed rule is a list of words
		"$1" -t "$2" $rule
	done
	if "$1" -t "$2" -F "$3" 2>/dev/null; then "$1" -t "$2" -X "$3"; fi
}

restore() {
	local d t c m
	# every hierarchy, the unified one included (runc creates the pods' cgroups there too)
	for d in /sys/fs/cgroup/*/"${CGROUP_ROOT#/}"; do
		[[ -d $d ]] || continue
		rm_cgroup "$d" || say "WARNING: could not remove cgroup $d (processes left?)"
	done
	# mounts the node made (container rootfs, shm, netns, secrets volumes), deepest first
	for m in $(findmnt -rn -o TARGET | grep -E "^($NODE_DIR|/run/containerd|/var/lib/kubelet)/" | sort -r); do
		umount -l "$m" || say "WARNING: umount $m failed"
	done
	ip link show "$BRIDGE" >/dev/null 2>&1 && ip link del "$BRIDGE"
	iptables -D FORWARD -s "$POD_CIDR" -j "$EGRESS_CHAIN" 2>/dev/null || true
	iptables -F "$EGRESS_CHAIN" 2>/dev/null && iptables -X "$EGRESS_CHAIN"
	[[ -f $SAVED/.complete ]] || { say "host: nothing saved, nothing else to restore"; return 0; }
	# the kubelet's own chains, unless they existed before
	for t in filter nat mangle; do
		for c in "${KUBELET_CHAINS[@]}"; do
			grep -qx "$t $c" "$SAVED/chains" && continue
			for tool in iptables ip6tables; do drop_chain "$tool" "$t" "$c"; done
		done
	done
	sysctl -q -p "$SAVED/sysctls"
	for d in "${SHARED_DIRS[@]}"; do
		grep -qx "$d" "$SAVED/existing-dirs" || rm -rf "$d"
	done
	rm -rf "$SAVED"
	say "host: restored (sysctls, iptables chains, bridge, cgroups, mounts, $(IFS=' '; echo "${SHARED_DIRS[*]}"))"
}

case ${1:-} in
prepare) prepare ;;
restore) restore ;;
*) echo "usage: $0 prepare|restore" >&2; exit 2 ;;
esac
