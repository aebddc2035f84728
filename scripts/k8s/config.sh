#!/bin/bash
# Writes the testbed's configuration into $STATE/conf from lib.sh's settings:
# the separate containerd's config, the bridge CNI network, the kubelet's
# KubeletConfiguration and the kubeconfigs (admin, kubelet, scheduler) with
# the certs of pki.sh embedded. Rewritten on every up: the files are derived,
# so a changed setting in lib.sh takes effect on the next restart.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
mkdir -p "$CONF/cni" "$STATE/pod-logs"

# This VM's root lacks CAP_SYS_RESOURCE: runc cannot set the pause
# container's oom_score_adj of -998 ("can't get final child's PID from pipe:
# EOF"), hence restrict_oom_score_adj. The host is cgroup v1 without systemd
# as PID 1: cgroupfs (SystemdCgroup = false). Network namespaces live under
# our own state dir, so down.sh finds every one of them there.
cat > "$CONF/containerd.toml" <<TOML
version = 2
root = "$STATE/containerd"
state = "$RUN/containerd"
oom_score = 0
[grpc]
  address = "$SOCK"
[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "$PAUSE_IMAGE"
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    enable_selinux = false
    restrict_oom_score_adj = true
    netns_mounts_under_state_dir = true
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "$CONF/cni"
      max_conf_num = 1
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          SystemdCgroup = false
          Root = "$RUN/runc"
  [plugins."io.containerd.internal.v1.opt"]
    path = "$STATE/containerd-opt"
TOML

# Pods on $POD_CIDR behind $POD_BR (up.sh creates it with the gateway
# address); no masquerade: pods reach the host only, never beyond it.
cat > "$CONF/cni/10-corral.conflist" <<JSON
{
  "cniVersion": "0.4.0",
  "name": "corral-k8s",
  "plugins": [
    {"type": "bridge", "bridge": "$POD_BR", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$POD_GW"}]],
              "dataDir": "$RUN/cni-ipam"}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON

# cgroupfs + failCgroupV1=false: cgroup v1 host. Node IP on a local bridge
# (the kubelet rejects a loopback node IP). Image GC only at a nearly full
# disk: the imported images cannot be pulled again.
cat > "$CONF/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
healthzBindAddress: 127.0.0.1
healthzPort: 10248
readOnlyPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: AlwaysAllow}
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
cgroupDriver: cgroupfs
failCgroupV1: false
containerRuntimeEndpoint: unix://$SOCK
clusterDomain: cluster.local
clusterDNS: []
resolvConf: ""
failSwapOn: false
staticPodPath: ""
registerNode: true
maxPods: 110
serializeImagePulls: false
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%"
  imagefs.available: "1%"
  nodefs.inodesFree: "1%"
cgroupsPerQOS: true
enforceNodeAllocatable: ["pods"]
podLogsDir: $STATE/pod-logs
YAML

b64() { base64 -w0 < "$1"; }
# kubeconfig NAME USER CERT: a kubeconfig for the API server on loopback.
kubeconfig() {
  cat > "$CONF/$1.kubeconfig" <<YAML
apiVersion: v1
kind: Config
clusters:
- name: corral-k8s
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority-data: $(b64 "$PKI/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $(b64 "$PKI/$3.crt")
    client-key-data: $(b64 "$PKI/$3.key")
contexts:
- name: corral-k8s
  context: {cluster: corral-k8s, user: $2, namespace: default}
current-context: corral-k8s
YAML
  chmod 600 "$CONF/$1.kubeconfig"
}
kubeconfig admin corral-admin admin
kubeconfig kubelet "system:node:$NODE" kubelet
kubeconfig kube-scheduler system:kube-scheduler kube-scheduler
