#!/usr/bin/env bash
# Local, real Kubernetes control plane for podtask tests.
#
#   hack/cluster.sh build        build + cache kube-apiserver, kube-controller-manager,
#                                kube-scheduler, kubectl, etcd, kwok, helm (Go module proxy)
#   hack/cluster.sh up           build if needed, start etcd/apiserver/kcm/scheduler/kwok,
#                                create kwok nodes, write $STATE/kubeconfig (idempotent)
#   hack/cluster.sh down         stop everything started by `up`, wipe etcd data (idempotent)
#   hack/cluster.sh restart      down + up
#   hack/cluster.sh restart-kwok restart only kwok (reload hack/kwok/*.yaml stages)
#   hack/cluster.sh kill NAME    SIGKILL one component (fault tests); `up` starts it again
#   hack/cluster.sh restart-kcm  restart only kube-controller-manager (new PODTASK_KCM_EXTRA_ARGS)
#   hack/cluster.sh stop-kcm     stop only kube-controller-manager
#   hack/cluster.sh status       show component/pid/health state
#   hack/cluster.sh kubeconfig   print the kubeconfig path
#   hack/cluster.sh env          print `export ...` lines (KUBECONFIG, PATH)
#   hack/cluster.sh bin-dirs     print the binary directories (one a line)
#
# See hack/README.md for versions, ports, timings and the kwok scenario annotations.
set -euo pipefail

HACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# ---------------------------------------------------------------- configuration
K8S_VERSION=${PODTASK_K8S_VERSION:-v1.36.4}
ETCD_VERSION=${PODTASK_ETCD_VERSION:-v3.6.16}
KWOK_VERSION=${PODTASK_KWOK_VERSION:-v0.8.0}
HELM_VERSION=${PODTASK_HELM_VERSION:-v3.22.0}

CACHE=${PODTASK_CACHE:-$HOME/.cache/podtask}
STATE=${PODTASK_CLUSTER_DIR:-$CACHE/cluster}

ETCD_PORT=${PODTASK_ETCD_PORT:-32379}
ETCD_PEER_PORT=${PODTASK_ETCD_PEER_PORT:-32380}
APISERVER_PORT=${PODTASK_APISERVER_PORT:-36443}
KCM_PORT=${PODTASK_KCM_PORT:-30257}
SCHEDULER_PORT=${PODTASK_SCHEDULER_PORT:-30259}
KWOK_PORT=${PODTASK_KWOK_PORT:-30247}
KWOK_NODES=${PODTASK_KWOK_NODES:-2}
KWOK_CONFIGS=${PODTASK_KWOK_CONFIGS:-$HACK_DIR/kwok/node-stages.yaml,$HACK_DIR/kwok/stages.yaml}
SERVICE_CIDR=10.96.0.0/16
POD_CIDR=10.244.0.0/16

K8S_BIN=$CACHE/k8s/$K8S_VERSION/bin
ETCD_BIN=$CACHE/etcd/$ETCD_VERSION/bin
KWOK_BIN=$CACHE/kwok/$KWOK_VERSION/bin
HELM_BIN=$CACHE/helm/$HELM_VERSION/bin

PKI=$STATE/pki
LOGS=$STATE/logs
PIDS=$STATE/pids
KUBECONFIG_PATH=$STATE/kubeconfig

# extra flags per component (space separated), e.g. PODTASK_APISERVER_EXTRA_ARGS=--feature-gates=Foo=true
read -r -a ETCD_EXTRA <<<"${PODTASK_ETCD_EXTRA_ARGS:-}"
read -r -a APISERVER_EXTRA <<<"${PODTASK_APISERVER_EXTRA_ARGS:-}"
read -r -a KCM_EXTRA <<<"${PODTASK_KCM_EXTRA_ARGS:-}"
read -r -a SCHEDULER_EXTRA <<<"${PODTASK_SCHEDULER_EXTRA_ARGS:-}"
read -r -a KWOK_EXTRA <<<"${PODTASK_KWOK_EXTRA_ARGS:-}"

COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)

export CGO_ENABLED=0
export GOFLAGS="${PODTASK_GOFLAGS:--buildvcs=false -p=2}"
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}
# the Go build cache stays at its default (~/.cache/go-build) so rebuilds only relink.

START_TS=$(date +%s)

# ---------------------------------------------------------------- helpers
log() { printf '[cluster %4ss] %s\n' "$(($(date +%s) - START_TS))" "$*" >&2; }
die() {
	printf '[cluster] ERROR: %s\n' "$*" >&2
	exit 1
}
# fail_step STEP LOGFILE MESSAGE: readable failure naming the step, with the log tail
fail_step() {
	local step=$1 logfile=$2
	shift 2
	printf '\n[cluster] ERROR in step "%s": %s\n' "$step" "$*" >&2
	if [[ -n $logfile && -f $logfile ]]; then
		printf '[cluster] ---- last 40 lines of %s ----\n' "$logfile" >&2
		tail -n 40 "$logfile" >&2 || true
		printf '[cluster] ---- end of %s ----\n' "$logfile" >&2
	fi
	exit 1
}

need_cmd() { command -v "$1" >/dev/null 2>&1 || die "'$1' is required but not on PATH"; }

# run_build NAME LOGFILE CMD...: run a (long) build, printing progress every 30s.
run_build() {
	local name=$1 logfile=$2
	shift 2
	local t0 pid rc last
	t0=$(date +%s)
	log "build $name: started (log: $logfile)"
	"$@" >"$logfile" 2>&1 &
	pid=$!
	while kill -0 "$pid" 2>/dev/null; do
		local i
		for ((i = 0; i < 30; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 1
		done
		if kill -0 "$pid" 2>/dev/null; then
			last=$(tail -n 1 "$logfile" 2>/dev/null | cut -c1-100)
			log "build $name: $(($(date +%s) - t0))s elapsed, $(wc -l <"$logfile") log lines, last: ${last:-<none>}"
		fi
	done
	rc=0
	wait "$pid" || rc=$?
	if ((rc != 0)); then
		fail_step "build $name" "$logfile" "build failed (exit $rc)"
	fi
	log "build $name: done in $(($(date +%s) - t0))s"
}

# go_mod_path MODULE@VERSION: download a module, print the path of its go.mod
go_mod_path() {
	local out
	out=$(go mod download -json "$1") || die "go mod download $1 failed: $out"
	sed -n 's/.*"GoMod": "\(.*\)",*$/\1/p' <<<"$out"
}

# ---------------------------------------------------------------- build
build_k8s() {
	local dir=$CACHE/k8s/$K8S_VERSION
	local bins=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
	if [[ -f $dir/bin/.complete ]]; then
		log "k8s $K8S_VERSION: cached in $dir/bin"
		return 0
	fi
	need_cmd go
	mkdir -p "$dir/src" "$dir/bin"
	local gomod staging_version minor
	gomod=$(go_mod_path "k8s.io/kubernetes@$K8S_VERSION")
	[[ -f $gomod ]] || die "could not download k8s.io/kubernetes@$K8S_VERSION"
	staging_version=v0.${K8S_VERSION#v1.}
	minor=${K8S_VERSION#v1.}
	minor=${minor%%.*}
	# throw-away module: require k8s.io/kubernetes, replace every staging module
	# (listed as `k8s.io/x => ./staging/...` in its go.mod) by its published version.
	{
		printf 'module podtask.local/k8s-build\n\ngo 1.26.0\n\nrequire k8s.io/kubernetes %s\n\n' "$K8S_VERSION"
		sed -n 's#^[[:space:]]*\(k8s.io/[^[:space:]]*\)[[:space:]]*=>[[:space:]]*\./staging/.*#replace \1 => \1 '"$staging_version"'#p' "$gomod"
	} >"$dir/src/go.mod"
	local n
	n=$(grep -c '^replace' "$dir/src/go.mod" || true)
	((n > 20)) || die "only $n staging replaces generated from $gomod; the go.mod format changed?"
	log "k8s $K8S_VERSION: throw-away module with $n staging replaces -> $staging_version"
	cat >"$dir/src/tools.go" <<'EOF'
//go:build tools

// Package tools only pins the commands we build.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
EOF
	(cd "$dir/src" && go mod tidy) >"$dir/tidy.log" 2>&1 || fail_step "k8s go mod tidy" "$dir/tidy.log" "resolving modules failed"
	local pkg=k8s.io/component-base/version
	local ldflags="-s -w -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
	local targets=()
	local b
	for b in "${bins[@]}"; do targets+=("k8s.io/kubernetes/cmd/$b"); done
	# shellcheck disable=SC2016 # $1.. expand in the inner bash
	run_build "kubernetes $K8S_VERSION" "$dir/build.log" \
		bash -c 'cd "$1" && shift && exec go build -v -trimpath -ldflags "$@"' _ "$dir/src" "$ldflags" -o "$dir/bin/" "${targets[@]}"
	for b in "${bins[@]}"; do [[ -x $dir/bin/$b ]] || die "missing $dir/bin/$b after build"; done
	touch "$dir/bin/.complete"
}

build_etcd() {
	local dir=$CACHE/etcd/$ETCD_VERSION
	if [[ -f $dir/bin/.complete ]]; then
		log "etcd $ETCD_VERSION: cached in $dir/bin"
		return 0
	fi
	need_cmd go
	mkdir -p "$dir/src" "$dir/bin"
	# go.etcd.io/etcd/server/v3 replaces api/client/pkg with ../ paths; in a
	# throw-away module those resolve to the published modules at the same tag.
	printf 'module podtask.local/etcd-build\n\ngo 1.26.0\n' >"$dir/src/go.mod"
	cat >"$dir/src/tools.go" <<'EOF'
//go:build tools

// Package tools only pins the commands we build.
package tools

import _ "go.etcd.io/etcd/server/v3"
EOF
	(cd "$dir/src" && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" \
		"go.etcd.io/etcd/api/v3@$ETCD_VERSION" "go.etcd.io/etcd/client/v3@$ETCD_VERSION" \
		"go.etcd.io/etcd/client/pkg/v3@$ETCD_VERSION" "go.etcd.io/etcd/pkg/v3@$ETCD_VERSION" &&
		go mod tidy) >"$dir/tidy.log" 2>&1 || fail_step "etcd go get" "$dir/tidy.log" "resolving modules failed"
	# shellcheck disable=SC2016 # $1.. expand in the inner bash
	run_build "etcd $ETCD_VERSION" "$dir/build.log" \
		bash -c 'cd "$1" && exec go build -v -trimpath -ldflags "-s -w" -o "$2/etcd" go.etcd.io/etcd/server/v3' _ "$dir/src" "$dir/bin"
	touch "$dir/bin/.complete"
}

# go_install_cached NAME VERSION BINARY PACKAGE [LDFLAGS]: `go install` a module whose go.mod has no replace
# directives into $CACHE/NAME/VERSION/bin, once.
go_install_cached() {
	local name=$1 version=$2 binary=$3 package=$4 ldflags="-s -w ${5:-}"
	local dir=$CACHE/$name/$version
	if [[ -f $dir/bin/.complete ]]; then
		log "$name $version: cached in $dir/bin"
		return 0
	fi
	need_cmd go
	mkdir -p "$dir/bin"
	run_build "$name $version" "$dir/build.log" \
		env GOBIN="$dir/bin" go install -v -trimpath -ldflags "$ldflags" "$package@$version"
	[[ -x $dir/bin/$binary ]] || die "missing $dir/bin/$binary after build"
	touch "$dir/bin/.complete"
}

build_kwok() {
	go_install_cached kwok "$KWOK_VERSION" kwok sigs.k8s.io/kwok/cmd/kwok
}

build_helm() {
	go_install_cached helm "$HELM_VERSION" helm helm.sh/helm/v3/cmd/helm \
		"-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
}

cmd_build() {
	local t0
	t0=$(date +%s)
	build_k8s
	build_etcd
	build_kwok
	if [[ ${PODTASK_SKIP_HELM:-} != 1 ]]; then build_helm; fi
	log "build: all binaries ready in $(($(date +%s) - t0))s"
}

binaries_built() {
	[[ -f $K8S_BIN/.complete && -f $ETCD_BIN/.complete && -f $KWOK_BIN/.complete ]] &&
		{ [[ ${PODTASK_SKIP_HELM:-} == 1 ]] || [[ -f $HELM_BIN/.complete ]]; }
}

# ---------------------------------------------------------------- pki
gen_pki() {
	need_cmd openssl
	mkdir -p "$PKI"
	if [[ -f $PKI/.complete ]]; then return 0; fi
	log "pki: generating CA, serving, client and service-account keys in $PKI"
	local p=$PKI
	(
		set -e
		cd "$p"
		openssl genrsa -out ca.key 2048
		openssl req -x509 -new -nodes -key ca.key -sha256 -days 3650 -subj "/CN=podtask-local-ca" -out ca.crt
		# apiserver serving cert
		cat >apiserver.ext <<EOF
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
EOF
		openssl genrsa -out apiserver.key 2048
		openssl req -new -key apiserver.key -subj "/CN=kube-apiserver" -out apiserver.csr
		openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -sha256 -extfile apiserver.ext -out apiserver.crt
		# client certs: NAME CN O
		cat >client.ext <<EOF
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth
EOF
		while read -r name cn org; do
			openssl genrsa -out "$name.key" 2048
			if [[ $org == - ]]; then subj="/CN=$cn"; else subj="/O=$org/CN=$cn"; fi
			openssl req -new -key "$name.key" -subj "$subj" -out "$name.csr"
			openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -sha256 -extfile client.ext -out "$name.crt"
		done <<EOF
admin kubernetes-admin system:masters
kube-controller-manager system:kube-controller-manager -
kube-scheduler system:kube-scheduler -
kwok kwok-controller system:masters
apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
EOF
		# service-account token signing key pair
		openssl genrsa -out sa.key 2048
		openssl rsa -in sa.key -pubout -out sa.pub
		rm -f ./*.csr ./*.srl
	) >"$LOGS/pki.log" 2>&1 || fail_step "pki" "$LOGS/pki.log" "openssl failed"
	touch "$PKI/.complete"
}

b64() { base64 -w0 <"$1"; }

# write_kubeconfig FILE USER
write_kubeconfig() {
	local file=$1 user=$2 tmp
	tmp=$(mktemp "$file.XXXXXX")
	cat >"$tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: podtask
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $(b64 "$PKI/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(b64 "$PKI/$user.crt")
    client-key-data: $(b64 "$PKI/$user.key")
contexts:
- name: podtask
  context:
    cluster: podtask
    user: $user
    namespace: default
current-context: podtask
EOF
	chmod 600 "$tmp"
	mv "$tmp" "$file"
}

# ---------------------------------------------------------------- processes
pid_of() {
	local f=$PIDS/$1.pid pid
	[[ -f $f ]] || return 1
	pid=$(cat "$f")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	# guard against pid reuse: the process must be the binary we started
	local exe
	exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
	[[ ${exe##*/} == "$1" || ${exe##*/} == "$1 (deleted)" ]] || return 1
	echo "$pid"
}

is_running() { pid_of "$1" >/dev/null; }

port_in_use() {
	# true when something listens on 127.0.0.1:$1
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# start_component NAME PORT BINARY ARGS...
start_component() {
	local name=$1 port=$2 bin=$3
	shift 3
	if is_running "$name"; then
		log "$name: already running (pid $(pid_of "$name"))"
		return 0
	fi
	if port_in_use "$port"; then
		fail_step "start $name" "" "port 127.0.0.1:$port is already in use by another process; set PODTASK_*_PORT (see hack/README.md) or stop it"
	fi
	[[ -x $bin ]] || fail_step "start $name" "" "binary $bin missing (run hack/cluster.sh build)"
	# keep the previous run's log next to the new one
	if [[ -s $LOGS/$name.log ]]; then mv -f "$LOGS/$name.log" "$LOGS/$name.prev.log"; fi
	{
		printf '==== %s starting %s\n' "$(date -u +%FT%TZ)" "$name"
		printf '%q ' "$bin" "$@"
		printf '\n'
	} >>"$LOGS/$name.log"
	# setsid: own session, so the caller's process group/terminal going away
	# does not take the cluster down with it.
	setsid "$bin" "$@" >>"$LOGS/$name.log" 2>&1 </dev/null 9>&- &
	local pid=$! i exe
	echo "$pid" >"$PIDS/$name.pid"
	# until setsid has exec'd the binary, /proc/$pid/exe names bash or setsid, and pid_of (which checks the binary,
	# against pid reuse) would call a component that is starting "exited": wait for the exec (or the exit)
	for i in $(seq 100); do
		exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
		[[ ${exe##*/} == "$name" ]] || ! kill -0 "$pid" 2>/dev/null && break
		sleep 0.05
	done
	log "$name: started pid $! (log $LOGS/$name.log)"
}

# wait_ready NAME TIMEOUT CMD...: poll CMD until it succeeds; fail with log tail.
wait_ready() {
	local name=$1 timeout=$2
	shift 2
	local t0 now
	t0=$(date +%s)
	while true; do
		if "$@" >/dev/null 2>&1; then
			log "$name: ready ($(($(date +%s) - t0))s)"
			return 0
		fi
		if ! is_running "$name"; then
			fail_step "wait for $name" "$LOGS/$name.log" "$name exited before becoming ready"
		fi
		now=$(date +%s)
		if ((now - t0 > timeout)); then
			fail_step "wait for $name" "$LOGS/$name.log" "$name not ready after ${timeout}s (check: $*)"
		fi
		sleep 0.3
	done
}

curl_ok() {
	# curl_ok URL [curl args...]: success only on HTTP 200 with body "ok"
	local url=$1
	shift
	local body
	body=$(curl -sS --max-time 3 "$@" "$url") || return 1
	[[ $body == ok* ]]
}

kubectl_() { "$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG_PATH" "$@"; }

start_etcd() {
	mkdir -p "$STATE/etcd"
	start_component etcd "$ETCD_PORT" "$ETCD_BIN/etcd" \
		--name=podtask \
		--data-dir="$STATE/etcd" \
		--listen-client-urls="http://127.0.0.1:$ETCD_PORT" \
		--advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
		--listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
		--initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
		--initial-cluster="podtask=http://127.0.0.1:$ETCD_PEER_PORT" \
		--initial-cluster-state=new \
		--unsafe-no-fsync=true \
		--quota-backend-bytes=4294967296 \
		--log-level=warn \
		${ETCD_EXTRA[@]+"${ETCD_EXTRA[@]}"}
	wait_ready etcd 60 curl_ok "http://127.0.0.1:$ETCD_PORT/readyz"
}

start_apiserver() {
	start_component kube-apiserver "$APISERVER_PORT" "$K8S_BIN/kube-apiserver" \
		--etcd-servers="http://127.0.0.1:$ETCD_PORT" \
		--bind-address=127.0.0.1 \
		--advertise-address=127.0.0.1 \
		--secure-port="$APISERVER_PORT" \
		--tls-cert-file="$PKI/apiserver.crt" \
		--tls-private-key-file="$PKI/apiserver.key" \
		--client-ca-file="$PKI/ca.crt" \
		--kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" \
		--kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
		--service-account-issuer=https://kubernetes.default.svc.cluster.local \
		--service-account-key-file="$PKI/sa.pub" \
		--service-account-signing-key-file="$PKI/sa.key" \
		--authorization-mode=Node,RBAC \
		--service-cluster-ip-range="$SERVICE_CIDR" \
		--allow-privileged=true \
		--profiling=false \
		--v=1 \
		${APISERVER_EXTRA[@]+"${APISERVER_EXTRA[@]}"}
	wait_ready kube-apiserver 120 curl_ok "https://127.0.0.1:$APISERVER_PORT/readyz" \
		--cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key"
}

start_controller_manager() {
	start_component kube-controller-manager "$KCM_PORT" "$K8S_BIN/kube-controller-manager" \
		--kubeconfig="$STATE/kube-controller-manager.kubeconfig" \
		--authentication-kubeconfig="$STATE/kube-controller-manager.kubeconfig" \
		--authorization-kubeconfig="$STATE/kube-controller-manager.kubeconfig" \
		--bind-address=127.0.0.1 \
		--secure-port="$KCM_PORT" \
		--leader-elect=false \
		--use-service-account-credentials=true \
		--service-account-private-key-file="$PKI/sa.key" \
		--root-ca-file="$PKI/ca.crt" \
		--cluster-signing-cert-file="$PKI/ca.crt" \
		--cluster-signing-key-file="$PKI/ca.key" \
		--service-cluster-ip-range="$SERVICE_CIDR" \
		--controllers='*' \
		--profiling=false \
		--v=1 \
		${KCM_EXTRA[@]+"${KCM_EXTRA[@]}"}
	wait_ready kube-controller-manager 90 curl_ok "https://127.0.0.1:$KCM_PORT/healthz" -k
}

start_scheduler() {
	start_component kube-scheduler "$SCHEDULER_PORT" "$K8S_BIN/kube-scheduler" \
		--kubeconfig="$STATE/kube-scheduler.kubeconfig" \
		--authentication-kubeconfig="$STATE/kube-scheduler.kubeconfig" \
		--authorization-kubeconfig="$STATE/kube-scheduler.kubeconfig" \
		--bind-address=127.0.0.1 \
		--secure-port="$SCHEDULER_PORT" \
		--leader-elect=false \
		--profiling=false \
		--v=1 \
		${SCHEDULER_EXTRA[@]+"${SCHEDULER_EXTRA[@]}"}
	wait_ready kube-scheduler 90 curl_ok "https://127.0.0.1:$SCHEDULER_PORT/readyz" -k
}

start_kwok() {
	local cfgs=() c
	IFS=, read -r -a cfgs <<<"$KWOK_CONFIGS"
	local args=()
	for c in "${cfgs[@]}"; do
		[[ -f $c ]] || fail_step "start kwok" "" "kwok config $c not found"
		args+=("--config=$c")
	done
	# kwok also reads ~/.kwok/kwok.yaml when it exists: give it its own HOME.
	mkdir -p "$STATE/kwok-home"
	HOME=$STATE/kwok-home start_component kwok "$KWOK_PORT" "$KWOK_BIN/kwok" \
		--kubeconfig="$STATE/kwok.kubeconfig" \
		"${args[@]}" \
		--manage-all-nodes=false \
		--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
		--node-ip=10.0.0.1 \
		--node-port="$KWOK_PORT" \
		--server-address="127.0.0.1:$KWOK_PORT" \
		--cidr="$POD_CIDR" \
		--node-lease-duration-seconds=40 \
		${KWOK_EXTRA[@]+"${KWOK_EXTRA[@]}"}
	wait_ready kwok 60 curl_ok "http://127.0.0.1:$KWOK_PORT/healthz"
}

create_nodes() {
	local i name manifest=""
	((KWOK_NODES > 0)) || return 0 # PODTASK_KWOK_NODES=0: a cluster for real nodes only
	for ((i = 0; i < KWOK_NODES; i++)); do
		name=kwok-node-$i
		manifest+="---
apiVersion: v1
kind: Node
metadata:
  name: $name
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: \"0\"
  labels:
    type: kwok
    kubernetes.io/arch: amd64
    kubernetes.io/os: linux
    kubernetes.io/hostname: $name
    node-role.kubernetes.io/agent: \"\"
spec: {}
status:
  allocatable:
    cpu: \"1000\"
    memory: 1Ti
    pods: \"1000\"
    ephemeral-storage: 1Ti
  capacity:
    cpu: \"1000\"
    memory: 1Ti
    pods: \"1000\"
    ephemeral-storage: 1Ti
"
	done
	kubectl_ apply -f - <<<"$manifest" >>"$LOGS/nodes.log" 2>&1 ||
		fail_step "create kwok nodes" "$LOGS/nodes.log" "kubectl apply of the Node objects failed"
	local t0
	t0=$(date +%s)
	for ((i = 0; i < KWOK_NODES; i++)); do
		until [[ $(kubectl_ get node "kwok-node-$i" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>>"$LOGS/nodes.log") == True ]]; do
			if (($(date +%s) - t0 > 60)); then
				fail_step "wait for kwok nodes Ready" "$LOGS/kwok.log" "node kwok-node-$i not Ready after 60s"
			fi
			sleep 0.3
		done
	done
	log "nodes: $KWOK_NODES kwok node(s) Ready"
}

wait_default_sa() {
	local t0
	t0=$(date +%s)
	until kubectl_ -n default get serviceaccount default >/dev/null 2>&1; do
		if (($(date +%s) - t0 > 60)); then
			fail_step "wait for serviceaccount default/default" "$LOGS/kube-controller-manager.log" "the controller-manager did not create it within 60s"
		fi
		sleep 0.3
	done
	log "serviceaccount default/default exists"
}

healthy() {
	local c
	for c in "${COMPONENTS[@]}"; do is_running "$c" || return 1; done
	[[ -f $KUBECONFIG_PATH ]] || return 1
	curl_ok "http://127.0.0.1:$ETCD_PORT/readyz" &&
		curl_ok "https://127.0.0.1:$APISERVER_PORT/readyz" --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" &&
		curl_ok "https://127.0.0.1:$KCM_PORT/healthz" -k &&
		curl_ok "https://127.0.0.1:$SCHEDULER_PORT/readyz" -k &&
		curl_ok "http://127.0.0.1:$KWOK_PORT/healthz"
}

write_env_file() {
	cat >"$STATE/env" <<EOF
# generated by hack/cluster.sh up
export KUBECONFIG=$KUBECONFIG_PATH
export PATH=$K8S_BIN:$HELM_BIN:$KWOK_BIN:$ETCD_BIN:\$PATH
export PODTASK_APISERVER=https://127.0.0.1:$APISERVER_PORT
EOF
	cat >"$STATE/ports" <<EOF
etcd=$ETCD_PORT
etcd-peer=$ETCD_PEER_PORT
kube-apiserver=$APISERVER_PORT
kube-controller-manager=$KCM_PORT
kube-scheduler=$SCHEDULER_PORT
kwok=$KWOK_PORT
EOF
}

cmd_up() {
	local t0
	t0=$(date +%s)
	need_cmd curl
	mkdir -p "$STATE" "$LOGS" "$PIDS"
	if healthy; then
		log "up: cluster already up and healthy"
		print_env
		return 0
	fi
	binaries_built || cmd_build
	gen_pki
	write_kubeconfig "$KUBECONFIG_PATH" admin
	write_kubeconfig "$STATE/kube-controller-manager.kubeconfig" kube-controller-manager
	write_kubeconfig "$STATE/kube-scheduler.kubeconfig" kube-scheduler
	write_kubeconfig "$STATE/kwok.kubeconfig" kwok
	start_etcd
	start_apiserver
	start_controller_manager
	start_scheduler
	start_kwok
	create_nodes
	wait_default_sa
	write_env_file
	log "up: cluster ready in $(($(date +%s) - t0))s"
	print_env
}

print_env() {
	cat <<EOF
export KUBECONFIG=$KUBECONFIG_PATH
export PATH=$K8S_BIN:$HELM_BIN:\$PATH
EOF
}

stop_component() {
	local name=$1 pid i
	if ! pid=$(pid_of "$name"); then
		rm -f "$PIDS/$name.pid"
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "$name: still alive after TERM, sending KILL"
		kill -KILL "$pid" 2>/dev/null || true
		sleep 0.2
	fi
	rm -f "$PIDS/$name.pid"
	log "$name: stopped (pid $pid)"
}

cmd_down() {
	# TERM everything at once (reverse start order), then KILL whatever is left after 5s.
	local i c pid pids=() names=()
	for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
		c=${COMPONENTS[i]}
		if pid=$(pid_of "$c"); then
			kill -TERM "$pid" 2>/dev/null || true
			pids+=("$pid")
			names+=("$c")
		fi
		rm -f "$PIDS/$c.pid"
	done
	for ((i = 0; i < 50; i++)); do
		local alive=0
		for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
		((alive)) || break
		sleep 0.1
	done
	for i in "${!pids[@]}"; do
		if kill -0 "${pids[i]}" 2>/dev/null; then
			log "${names[i]}: still alive 5s after TERM, sending KILL"
			kill -KILL "${pids[i]}" 2>/dev/null || true
		fi
		log "${names[i]}: stopped (pid ${pids[i]})"
	done
	rm -rf "$STATE/etcd"
	log "down: stopped; etcd data removed (pki, logs and kubeconfig kept in $STATE)"
}

cmd_status() {
	local c pid rc=0
	printf '%-25s %-8s %s\n' COMPONENT PID STATE
	for c in "${COMPONENTS[@]}"; do
		if pid=$(pid_of "$c"); then
			printf '%-25s %-8s %s\n' "$c" "$pid" running
		else
			printf '%-25s %-8s %s\n' "$c" - stopped
			rc=1
		fi
	done
	if healthy; then echo "healthy: yes"; else
		echo "healthy: no"
		rc=1
	fi
	echo "kubeconfig: $KUBECONFIG_PATH"
	[[ -f $STATE/ports ]] && sed 's/^/port /' "$STATE/ports"
	return $rc
}

usage() {
	sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

# lock: serialize up/down/restart between concurrent callers (several test runs may share a cluster)
lock_state() {
	mkdir -p "$STATE"
	if command -v flock >/dev/null 2>&1; then
		exec 9>"$STATE/.lock"
		if ! flock -n 9; then
			log "waiting for another hack/cluster.sh holding $STATE/.lock"
			flock -w 600 9 || die "timed out waiting for $STATE/.lock"
		fi
	fi
}

main() {
	local cmd=${1:-}
	case $cmd in
	up | down | restart | restart-kwok | kill | restart-kcm | stop-kcm) lock_state ;;
	esac
	case $cmd in
	build) cmd_build ;;
	up) cmd_up ;;
	down) cmd_down ;;
	restart)
		cmd_down
		cmd_up
		;;
	restart-kwok)
		# reload hack/kwok/*.yaml without touching the rest of the cluster
		stop_component kwok
		cmd_up
		;;
	kill)
		# pid_of checks /proc/<pid>/exe, so only the component this script started is signalled
		local pid
		pid=$(pid_of "${2:?usage: hack/cluster.sh kill COMPONENT}") || die "${2} is not running"
		kill -KILL "$pid"
		rm -f "$PIDS/$2.pid"
		log "$2: killed (pid $pid)"
		;;
	stop-kcm)
		# the benchmark's controller-only run: Jobs created while no Job controller runs (restart-kcm starts it)
		stop_component kube-controller-manager
		;;
	restart-kcm)
		# new PODTASK_KCM_EXTRA_ARGS (e.g. --kube-api-qps) without touching the rest of the cluster
		stop_component kube-controller-manager
		cmd_up
		;;
	status) cmd_status ;;
	kubeconfig) echo "$KUBECONFIG_PATH" ;;
	env) print_env ;;
	bin-dirs) printf '%s\n' "$K8S_BIN" "$HELM_BIN" "$KWOK_BIN" "$ETCD_BIN" ;;
	-h | --help | help) usage ;;
	*)
		usage >&2
		exit 2
		;;
	esac
}

main "$@"
exit
