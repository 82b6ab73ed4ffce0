#!/usr/bin/env bash
# Build and cache what the real node needs beyond the control plane (hack/cluster.sh build):
# kubelet, containerd (+ shim, ctr), crane, and the fault-injecting registry proxy hack/faultproxy.
# Each lands in ~/.cache/podtask/<tool>/<version>/bin and is skipped when bin/.complete exists.
set -euo pipefail
HACK=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=hack/realnode/lib.sh
source "$HACK/realnode/lib.sh"

export CGO_ENABLED=0 GOTOOLCHAIN=${GOTOOLCHAIN:-local}
export GOFLAGS="${PODTASK_GOFLAGS:--buildvcs=false -p=2}"

# cached NAME VERSION CMD...: run CMD (which writes into $out/bin) once per NAME/VERSION.
cached() {
	local name=$1 version=$2
	shift 2
	out=$CACHE/$name/$version
	if [[ -f $out/bin/.complete ]]; then say "$name $version: cached"; return 0; fi
	mkdir -p "$out/bin"
	local t0=$SECONDS
	say "$name $version: building (log $out/build.log)"
	("$@") >"$out/build.log" 2>&1 || { tail -30 "$out/build.log" >&2; die "$name build failed"; }
	touch "$out/bin/.complete"
	say "$name $version: built in $((SECONDS - t0))s"
}

kubelet() {
	# The throw-away module of hack/cluster.sh (staging modules replaced by their published versions),
	# with kubelet as the only command.
	local src=$CACHE/k8s/$K8S_VERSION/src
	[[ -f $src/go.mod ]] || die "run hack/cluster.sh build first ($src/go.mod missing)"
	mkdir -p "$out/src"
	cp "$src/go.mod" "$src/go.sum" "$out/src/"
	printf '//go:build tools\n\npackage tools\n\nimport _ "k8s.io/kubernetes/cmd/kubelet"\n' >"$out/src/tools.go"
	local v=k8s.io/component-base/version minor=${K8S_VERSION#v1.}
	cd "$out/src" && go mod tidy &&
		go build -trimpath -o "$out/bin/kubelet" -ldflags "-s -w -X $v.gitVersion=$K8S_VERSION -X $v.gitMajor=1 -X $v.gitMinor=${minor%%.*}" k8s.io/kubernetes/cmd/kubelet
}

containerd() {
	GOBIN=$out/bin go install -trimpath -ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION" \
		-tags "no_btrfs no_devmapper no_zfs" \
		"github.com/containerd/containerd/v2/cmd/"{containerd,containerd-shim-runc-v2,ctr}"@$CONTAINERD_VERSION"
}

crane() { GOBIN=$out/bin go install -trimpath -ldflags "-s -w" "github.com/google/go-containerregistry/cmd/crane@$CRANE_VERSION"; }

faultproxy() { cd "$HACK/faultproxy" && go build -trimpath -o "$out/bin/faultproxy" .; }

cached kubelet "$K8S_VERSION" kubelet
cached containerd "$CONTAINERD_VERSION" containerd
cached crane "$CRANE_VERSION" crane
# the proxy is keyed by the hash of its source, so an edit rebuilds it
[[ -f $HACK/faultproxy/go.mod ]] && cached faultproxy "$FAULTPROXY_VERSION" faultproxy
