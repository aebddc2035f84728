#!/bin/bash
# make k8s-down: removes everything up.sh created: pods, processes (by pid
# file), containerd tasks and containers, their shims, mounts and network
# namespaces, the two bridges, the kubelet's and CNI portmap's iptables
# chains, the kubepods cgroups, the state, logs and env file. Keeps only the
# binary cache ($BASE/v*/). Idempotent: a second run finds nothing to do.
set -uo pipefail
T0=$(date +%s%N); export T0
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
[ "$(id -u)" -eq 0 ] || die "must run as root"
mkdir -p "$BASE"
if [ -z "${CORRAL_K8S_LOCKED:-}" ]; then # up.sh, holding the lock, calls us with it set
  exec 9>"$LOCK"
  flock -w 600 9 || die "another k8s-up or k8s-down holds $LOCK for over 10 minutes"
fi

# stop NAME [SECS]: SIGTERM to this testbed's NAME, SIGKILL after SECS
# (default 15).
stop() {
  local pid i secs=${2:-15}
  pid=$(pid_of "$1") || { rm -f "$PIDS/$1.pid"; return 0; }
  kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < secs * 10; i++)); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
  if [ -d "/proc/$pid" ]; then kill -KILL "$pid" 2>/dev/null; log "$1 (pid $pid) killed after $secs s"; fi
  rm -f "$PIDS/$1.pid"
  log "stopped $1"
}

# 1. pods, through the kubelet, while the whole cluster still runs.
if pid_of kube-apiserver >/dev/null && pid_of kubelet >/dev/null; then
  kc delete pods --all -A --grace-period=1 --timeout=60s >/dev/null 2>&1 \
    && log "pods deleted" || log "deleting pods did not finish; killing their containers instead"
fi

# 2. the control plane and kubelet, then whatever containers are left.
# The API server drains long-running requests (watches, port-forwards,
# exec streams of clients still connected) for up to a minute; its state goes
# with etcd's anyway, so it gets 3 s.
stop kubelet
stop kube-scheduler
stop kube-apiserver 3
if pid_of containerd >/dev/null; then
  for t in $(ctr_k8s tasks ls -q 2>/dev/null); do ctr_k8s tasks kill -s KILL "$t" >/dev/null 2>&1; done
  for t in $(ctr_k8s tasks ls -q 2>/dev/null); do
    for ((i = 0; i < 50; i++)); do ctr_k8s tasks delete -f "$t" >/dev/null 2>&1 && break; sleep 0.1; done
  done
  for c in $(ctr_k8s containers ls -q 2>/dev/null); do ctr_k8s containers delete "$c" >/dev/null 2>&1; done
fi
stop containerd
stop etcd

# 3. shims of our containerd that outlived it (each names our socket).
for p in /proc/[0-9]*; do
  tr '\0' ' ' 2>/dev/null < "$p/cmdline" | grep -q -- "-address $SOCK " || continue
  kill -KILL "${p#/proc/}" 2>/dev/null && log "killed leftover shim ${p#/proc/}"
done

# ...and pod processes that outlived their shims (a killed containerd or
# shim re-parents them to init): whatever is left in the kubepods cgroups.
for f in $(find /sys/fs/cgroup/pids/kubepods /sys/fs/cgroup/memory/kubepods -name cgroup.procs 2>/dev/null); do
  for pid in $(cat "$f" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null && log "killed leftover pod process $pid"; done
done

# 4. mounts (kubelet volumes, overlay rootfs, sandbox shm, netns) under our
#    dirs, deepest first; then the bridges (the pods' veths went with their
#    network namespaces).
awk -v s="$STATE" -v r="$RUN" '{ if (index($2, s) == 1 || index($2, r) == 1) print $2 }' /proc/mounts \
  | sort -r | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
for br in "$POD_BR" "$NODE_BR"; do
  if ip link show "$br" >/dev/null 2>&1; then
    for v in $(ip -o link show master "$br" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do ip link delete "$v" 2>/dev/null; done
    ip link delete "$br" && log "deleted bridge $br"
  fi
done

# 5. iptables: the kubelet's KUBE-* chains (KUBE-FIREWALL jumped to from
#    INPUT/OUTPUT, KUBE-IPTABLES-HINT, KUBE-KUBELET-CANARY, ...) and the
#    portmap plugin's CNI-HOSTPORT-*/CNI-DN-* chains, in every table.
for ipt in iptables ip6tables; do
  command -v "$ipt" >/dev/null || continue
  for tb in filter nat mangle raw; do
    rules=$("$ipt" -t "$tb" -S 2>/dev/null) || continue
    echo "$rules" | grep -E '^-A [A-Z]+ .*-j (KUBE-|CNI-HOSTPORT-|CNI-DN-)' | grep -vE '^-A (KUBE-|CNI-)' \
      | while read -r rule; do eval "$ipt -t $tb -D ${rule#-A }" 2>/dev/null; done
    chains=$(echo "$rules" | awk '/^-N (KUBE-|CNI-HOSTPORT-|CNI-DN-)/ {print $2}')
    for ch in $chains; do "$ipt" -t "$tb" -F "$ch" 2>/dev/null; done
    for ch in $chains; do "$ipt" -t "$tb" -X "$ch" 2>/dev/null && log "removed $ipt -t $tb chain $ch"; done
  done
done

# 6. the kubelet's cgroupfs hierarchy (empty once the pods' processes died).
for d in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/*/kubepods.slice; do
  [ -d "$d" ] || continue
  # a killed process leaves its cgroup a moment later: retry for 5 s
  for ((i = 0; i < 50; i++)); do
    find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
    [ -d "$d" ] || break
    sleep 0.1
  done
  [ -d "$d" ] && log "WARNING: cgroup $d not removed (a process still in it?)"
done

# 7. our entries in the host paths the kubelet and libcni hard-code: the
#    device-plugin socket, /var/log/containers links into our pod logs,
#    libcni's result cache of our network (and the loopback entries of the
#    same containers); then the dirs up.sh created, if now empty.
rm -f /var/lib/kubelet/device-plugins/kubelet.sock
find /var/log/containers -maxdepth 1 -type l -lname "$STATE/*" -delete 2>/dev/null
for f in /var/lib/cni/results/corral-k8s-*; do
  [ -e "$f" ] || continue
  id=${f#/var/lib/cni/results/corral-k8s-}; id=${id%-*}
  rm -f "$f" "/var/lib/cni/results/cni-loopback-$id-lo"
done
if [ -f "$STATE/created-dirs" ]; then
  while read -r d; do [ -d "$d" ] && find "$d" -depth -type d -empty -delete 2>/dev/null; done < "$STATE/created-dirs"
fi

# 8. state, unless a mount is left under it (rm -rf would then reach into
#    whatever is mounted there). The binary cache $BASE/v*/ stays.
left=$(awk -v s="$STATE" -v r="$RUN" '{ if (index($2, s) == 1 || index($2, r) == 1) print $2 }' /proc/mounts)
[ -z "$left" ] || die "mounts still under $STATE or $RUN, not removing them: $left"
rm -rf "$STATE" "$LOGS" "$ENV_FILE" "$RUN"
log "testbed down"
