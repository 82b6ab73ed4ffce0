#!/usr/bin/env bash
# Install the Debian packages the real node uses, when missing: runc, CNI plugins, iptables, conntrack, socat,
# a static busybox (the test image), gcc + static libc (the pause image).
set -euo pipefail
# shellcheck source=hack/realnode/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
declare -A need=([runc]=runc [/usr/lib/cni/bridge]=containernetworking-plugins [iptables]=iptables
	[conntrack]=conntrack [socat]=socat [/bin/busybox]=busybox-static [gcc]=gcc [/usr/lib/x86_64-linux-gnu/libc.a]=libc6-dev)
missing=()
for what in "${!need[@]}"; do
	if [[ $what == /* ]]; then [[ -e $what ]] || missing+=("${need[$what]}"); else command -v "$what" >/dev/null || missing+=("${need[$what]}"); fi
done
((${#missing[@]} == 0)) && exit 0
say "installing Debian packages: ${missing[*]}"
quiet apt-get install -y --no-install-recommends "${missing[@]}" ||
	{ quiet apt-get update && quiet apt-get install -y --no-install-recommends "${missing[@]}"; }
