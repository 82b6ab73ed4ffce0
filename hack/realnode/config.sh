#!/usr/bin/env bash
# Write the node's configuration into $NODE_DIR: containerd config + registry hosts, CNI, kubelet config,
# kubelet client certificate (CN=system:node:<node>, O=system:nodes, signed by the control plane's CA).
set -euo pipefail
# shellcheck source=hack/realnode/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
pki=$PODTASK_CLUSTER_DIR/pki
[[ -f $pki/ca.key ]] || die "no control-plane CA in $pki (start the control plane first)"
mkdir -p "$NODE_DIR"/{containerd,cni/net.d,cni/ipam,kubelet,pki}

# containerd 2 (config version 3). restrict_oom_score_adj: these machines lack CAP_SYS_RESOURCE, and runc
# cannot lower a container's oom_score_adj without it. Registries over plain HTTP via certs.d hosts.toml.
cat >"$NODE_DIR/containerd/config.toml" <<TOML
version = 3
root = "$NODE_DIR/containerd/root"
state = "$NODE_DIR/containerd/state"
[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = "$CONTAINERD_SOCK.ttrpc"
[debug]
  address = "$CONTAINERD_SOCK.debug"
[metrics]
  address = ""
[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "$NODE_DIR/cni/net.d"
[plugins.'io.containerd.cri.v1.images']
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "$REGISTRY/$PAUSE_REPO"
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = "$NODE_DIR/containerd/certs.d"
[plugins.'io.containerd.nri.v1.nri']
  disable = true
TOML
for host in "$REGISTRY" "$FAULT_REGISTRY"; do
	mkdir -p "$NODE_DIR/containerd/certs.d/$host"
	printf 'server = "http://%s"\n\n[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n' "$host" "$host" \
		>"$NODE_DIR/containerd/certs.d/$host/hosts.toml"
done

# a bridge with host-local IPAM; no ipMasq/portmap, so CNI adds no iptables rules
cat >"$NODE_DIR/cni/net.d/10-podtask.conflist" <<JSON
{"cniVersion": "1.0.0", "name": "podtask-realnode", "plugins": [
  {"type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "dataDir": "$NODE_DIR/cni/ipam", "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]],
            "routes": [{"dst": "0.0.0.0/0"}]}}]}
JSON

cat >"$NODE_DIR/kubelet/config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
cgroupRoot: $CGROUP_ROOT
failCgroupV1: false
failSwapOn: false
serializeImagePulls: false
# no kubelet-side pull limit (default 5 per second, burst 10): the tests pull from a registry that fails on demand,
# many at once, and must see the registry's own answer, not the kubelet's "pull QPS exceeded"
registryPullQPS: 0
resolvConf: ""
clusterDomain: cluster.local
maxPods: 50
evictionHard: {memory.available: 50Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
nodeStatusReportFrequency: 10s
YAML

if [[ ! -f $NODE_DIR/pki/node.crt ]]; then
	openssl req -new -newkey rsa:2048 -nodes -keyout "$NODE_DIR/pki/node.key" -subj "/O=system:nodes/CN=system:node:$NODE_NAME" \
		-out "$NODE_DIR/pki/node.csr" 2>/dev/null
	openssl x509 -req -in "$NODE_DIR/pki/node.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 365 \
		-extfile <(printf 'extendedKeyUsage=clientAuth\n') -out "$NODE_DIR/pki/node.crt" 2>/dev/null
fi
"$KUBECTL" config set-cluster local --server="https://127.0.0.1:$PODTASK_APISERVER_PORT" --certificate-authority="$pki/ca.crt" \
	--embed-certs --kubeconfig="$NODE_DIR/kubelet/kubeconfig" >/dev/null
"$KUBECTL" config set-credentials node --client-certificate="$NODE_DIR/pki/node.crt" --client-key="$NODE_DIR/pki/node.key" \
	--embed-certs --kubeconfig="$NODE_DIR/kubelet/kubeconfig" >/dev/null
"$KUBECTL" config set-context node --cluster=local --user=node --kubeconfig="$NODE_DIR/kubelet/kubeconfig" >/dev/null
"$KUBECTL" config use-context node --kubeconfig="$NODE_DIR/kubelet/kubeconfig" >/dev/null
say "config written to $NODE_DIR"
