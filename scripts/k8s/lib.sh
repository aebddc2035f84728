# Shared settings and helpers of the Kubernetes testbed scripts (sourced by
# up.sh and down.sh, never run). Every path, port and name the testbed uses is
# here, so up.sh creates exactly what down.sh removes.
#
# Layout (all of it removed by down.sh except the binary cache $BASE/v*/):
#   $BASE/$KV/bin      kube-apiserver, kube-scheduler, kubelet (build.sh)
#   $STATE             PKI, configs, kubeconfigs, etcd data, containerd and
#                      kubelet roots, pod logs, pid files
#   $LOGS              one log per process
#   $BASE/env          KUBECONFIG=... and CORRAL_K8S_CONTAINERD=... lines
#   $RUN               containerd socket and state, CNI IPAM state
# Network: 127.0.0.1 ports 6443 (API), 12379/12380 (etcd), 10259 (scheduler),
# 10248 (kubelet healthz); the node IP $NODE_IP on bridge $NODE_BR (kubelet
# :10250); pods on $POD_CIDR behind bridge $POD_BR. Nothing else.

KV=${CORRAL_K8S_VERSION:-v1.34.4}
BASE=${CORRAL_K8S_CACHE:-/var/tmp/corral-k8s}
BINDIR=$BASE/$KV/bin
STATE=$BASE/state
LOGS=$BASE/logs
PIDS=$STATE/pids
PKI=$STATE/pki
CONF=$STATE/conf
ENV_FILE=$BASE/env
RUN=/run/corral-k8s
SOCK=$RUN/containerd.sock
LOCK=$BASE/.lock

NODE=corral-node
NODE_BR=corralk0
NODE_IP=10.245.0.1
POD_BR=corralk1
POD_CIDR=10.244.0.0/24
POD_GW=10.244.0.1
SERVICE_CIDR=10.96.0.0/16
API_PORT=6443
ETCD_CLIENT=http://127.0.0.1:12379
ETCD_PEER=http://127.0.0.1:12380
PAUSE_IMAGE=registry.k8s.io/pause:3.10
SANDBOX_IMAGE=corral-sandbox:minimal
AGENT_IMAGE=corral-agent:latest

ADMIN_KUBECONFIG=$CONF/admin.kubeconfig
# Host paths the kubelet, libcni and containerd hard-code outside our dirs.
# up.sh notes in $STATE/created-dirs which of them it created; down.sh
# removes our entries from all of them and those dirs, once empty.
HOST_DIRS=(/var/lib/kubelet /var/lib/cni /var/log/containers /run/containerd)

T0=${T0:-$(date +%s%N)}
# log prints a line stamped with the seconds since the script started.
log() { local ms=$(( ($(date +%s%N) - T0) / 1000000 )); printf '[k8s %3d.%03ds] %s\n' $((ms / 1000)) $((ms % 1000)) "$*"; }
die() { echo "k8s testbed: $*" >&2; exit 1; }

ctr_k8s() { ctr -a "$SOCK" -n k8s.io "$@"; }
# kubectl: the machine's, else the one build.sh built into the cache.
kubectl_bin() { command -v kubectl 2>/dev/null || echo "$BINDIR/kubectl"; }
kc() { "$(kubectl_bin)" --kubeconfig "$ADMIN_KUBECONFIG" "$@"; }

# pid_of NAME prints the pid of a component this testbed started and that is
# still alive (its pid file exists and /proc/PID/exe is the component's
# binary), and fails otherwise; so a recycled pid is never taken for ours.
pid_of() {
  local f=$PIDS/$1.pid pid exe
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
  [ "$(basename "${exe% (deleted)}")" = "$1" ] || return 1
  echo "$pid"
}
