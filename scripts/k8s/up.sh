#!/bin/bash
# make k8s-up: brings up a real single-node Kubernetes on this machine and
# prints KUBECONFIG=PATH as its last line. Idempotent: what runs is kept
# (a second run takes seconds), what is missing is built or started.
#
#   etcd (Debian etcd-server, loopback) -> containerd (Debian, a separate
#   instance with CRI on $SOCK) -> kube-apiserver -> kube-scheduler ->
#   kubelet (binaries from build.sh, cached outside the clone by version)
#
# There is no controller-manager: up.sh creates what it would for namespace
# default (ServiceAccount default, ConfigMap kube-root-ca.crt); no garbage
# collector, no namespace deletion, no quota usage accounting, no token
# controller. No kube-proxy or DNS: pods reach the host only; the host
# reaches pods at their IP on $POD_CIDR. Images come from the local Docker
# (images.sh); pods must use imagePullPolicy Never or IfNotPresent.
#
# Processes run detached (setsid, pid files in $PIDS), logs in $LOGS; down.sh
# removes it all but the binary cache. Settings: lib.sh.
set -euo pipefail
T0=$(date +%s%N); export T0
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
. "$HERE/lib.sh"

[ "$(id -u)" -eq 0 ] || die "must run as root (it starts containerd and the kubelet, creates bridges and cgroups)"
mkdir -p "$BASE"
exec 9>"$LOCK"
flock -w 600 9 || die "another k8s-up or k8s-down holds $LOCK for over 10 minutes"

# A testbed whose processes all died (the machine's session ended, say)
# leaves mounts, cgroups and pods of the old run behind: clear it first.
if compgen -G "$PIDS/*.pid" >/dev/null; then
  alive_any=
  for c in etcd containerd kube-apiserver kube-scheduler kubelet; do pid_of "$c" >/dev/null && alive_any=1; done
  if [ -z "$alive_any" ]; then
    log "the previous testbed's processes are all gone: removing what is left of it"
    CORRAL_K8S_LOCKED=1 "$HERE/down.sh"
  fi
fi
mkdir -p "$STATE" "$LOGS" "$PIDS" "$RUN"

# 1. tools: Debian packages via scripts/test-deps; kubectl comes with this
#    kind of machine (else build.sh builds it into the cache).
need=(etcd containerd ctr runc openssl iptables ip docker /usr/lib/cni/bridge /usr/lib/cni/host-local /usr/lib/cni/portmap /usr/lib/cni/loopback)
for c in "${need[@]}"; do
  command -v "$c" >/dev/null 2>&1 || { log "missing $c: installing the test packages"; "$ROOT/scripts/test-deps"; break; }
done
for c in "${need[@]}"; do command -v "$c" >/dev/null 2>&1 || die "$c not found after scripts/test-deps"; done

# 2. binaries (cached: instant when present; cold, 12 to 25 minutes on 2
#    cores depending on what else runs).
"$HERE/build.sh"
for b in kube-apiserver kube-scheduler kubelet; do [ -x "$BINDIR/$b" ] || die "$BINDIR/$b missing after build.sh"; done
[ -x "$(kubectl_bin)" ] || die "no kubectl on PATH and none built in $BINDIR"

# 3. PKI, configs, kubeconfigs, bridges; which hard-coded host dirs we create.
if [ ! -f "$STATE/created-dirs" ]; then
  for d in "${HOST_DIRS[@]}"; do [ -e "$d" ] || echo "$d"; done > "$STATE/created-dirs"
fi
"$HERE/pki.sh"
"$HERE/config.sh"
ensure_bridge() { # NAME ADDR/LEN
  ip link show "$1" >/dev/null 2>&1 || ip link add "$1" type bridge
  ip addr replace "$2" dev "$1"
  ip link set "$1" up
}
ensure_bridge "$NODE_BR" "$NODE_IP/32"
ensure_bridge "$POD_BR" "$POD_GW/${POD_CIDR#*/}"

# start NAME CMD...: runs CMD detached (own session, so it outlives make)
# unless this testbed's NAME already runs.
start() {
  local name=$1; shift
  if pid=$(pid_of "$name"); then log "$name already running (pid $pid)"; return 0; fi
  echo "=== $(date -u +%FT%TZ) start: $*" >> "$LOGS/$name.log"
  # 9>&-: the lock's fd must not live on in the daemons, or k8s-down would
  # wait for it forever.
  setsid "$@" >> "$LOGS/$name.log" 2>&1 < /dev/null 9>&- &
  echo $! > "$PIDS/$name.pid"
  log "started $name (pid $!)"
}
# alive NAME: the process of NAME's pid file exists and is no zombie.
alive() {
  local p; p=$(cat "$PIDS/$1.pid" 2>/dev/null) && [ -n "$p" ] && [ -d "/proc/$p" ] \
    && ! grep -q '^State:[[:space:]]*Z' "/proc/$p/status" 2>/dev/null
}
# await NAME SECONDS CHECK...: waits for CHECK; if NAME dies or the deadline
# passes, shows the end of its log and fails.
await() {
  local name=$1 secs=$2; shift 2
  local end=$(( $(date +%s) + secs ))
  until "$@" >/dev/null 2>&1; do
    if ! alive "$name"; then
      tail -30 "$LOGS/$name.log" >&2; die "$name exited (log: $LOGS/$name.log)"
    fi
    [ "$(date +%s)" -lt "$end" ] || { tail -30 "$LOGS/$name.log" >&2; die "$name not ready within ${secs}s (log: $LOGS/$name.log)"; }
    sleep 0.2
  done
  log "$name ready"
}

# 4. etcd and containerd.
start etcd etcd --name corral --data-dir "$STATE/etcd" \
  --listen-client-urls "$ETCD_CLIENT" --advertise-client-urls "$ETCD_CLIENT" \
  --listen-peer-urls "$ETCD_PEER" --initial-advertise-peer-urls "$ETCD_PEER" \
  --initial-cluster "corral=$ETCD_PEER"
start containerd containerd --config "$CONF/containerd.toml"
await etcd 60 curl -sf "$ETCD_CLIENT/health"
await containerd 60 ctr -a "$SOCK" version

# 5. images, in the background while the control plane starts.
"$HERE/images.sh" &
images_pid=$!

# 6. kube-apiserver. TaintNodesByCondition is off: it taints a new node
#    not-ready and only the (absent) node lifecycle controller removes it.
start kube-apiserver "$BINDIR/kube-apiserver" \
  --etcd-servers="$ETCD_CLIENT" \
  --bind-address=127.0.0.1 --secure-port="$API_PORT" --advertise-address=127.0.0.1 \
  --endpoint-reconciler-type=none \
  --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
  --client-ca-file="$PKI/ca.crt" \
  --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
  --kubelet-certificate-authority="$PKI/ca.crt" --kubelet-preferred-address-types=InternalIP,Hostname \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
  --service-cluster-ip-range="$SERVICE_CIDR" \
  --authorization-mode=Node,RBAC --anonymous-auth=false \
  --enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,NodeRestriction,DefaultTolerationSeconds,ResourceQuota,Priority,RuntimeClass \
  --disable-admission-plugins=TaintNodesByCondition \
  --allow-privileged=true --enable-priority-and-fairness=false --profiling=false --v=1
await kube-apiserver 120 kc get --raw /readyz

# 7. what the controller-manager would create in namespace default.
kc apply -f - >/dev/null <<YAML
apiVersion: v1
kind: ServiceAccount
metadata: {name: default, namespace: default}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: kube-root-ca.crt, namespace: default}
data:
  ca.crt: |
$(sed 's/^/    /' "$PKI/ca.crt")
YAML

# 8. kube-scheduler (no authentication/authorization kubeconfig: only its
#    /healthz is used, and without a front proxy CA they log errors
#    endlessly) and kubelet.
start kube-scheduler "$BINDIR/kube-scheduler" \
  --kubeconfig="$CONF/kube-scheduler.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port=10259 --leader-elect=false --profiling=false --v=1
start kubelet "$BINDIR/kubelet" \
  --config="$CONF/kubelet.yaml" --kubeconfig="$CONF/kubelet.kubeconfig" \
  --hostname-override="$NODE" --node-ip="$NODE_IP" --root-dir="$STATE/kubelet" --v=1
await kube-scheduler 60 curl -sfk https://127.0.0.1:10259/healthz
node_ready() { [ "$(kc get node "$NODE" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}')" = True ]; }
await kubelet 120 node_ready

wait "$images_pid" || die "importing the images failed (output above)"

# 9. the testbed's own check, then the env file and the KUBECONFIG line.
"$HERE/verify.sh"
printf 'KUBECONFIG=%s\nCORRAL_K8S_CONTAINERD=%s\n' "$ADMIN_KUBECONFIG" "$SOCK" > "$ENV_FILE.tmp"
mv "$ENV_FILE.tmp" "$ENV_FILE"
log "cluster up: node $NODE Ready, env in $ENV_FILE, logs in $LOGS"
echo "KUBECONFIG=$ADMIN_KUBECONFIG"
