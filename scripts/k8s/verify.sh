#!/bin/bash
# The testbed's own check, run by up.sh before it prints KUBECONFIG: a pod of
# corral-sandbox:minimal is scheduled by kube-scheduler, runs `echo ok` on the
# node (pause sandbox, bridge CNI, service-account token volume) and ends
# Succeeded; its log must read back "ok"; it is then deleted and must be
# gone. Any failure prints the pod's state and events and exits 1.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
POD=corral-k8s-verify-$$

fail() {
  echo "k8s testbed: verification FAILED: $*" >&2
  kc -n default get pod "$POD" -o wide >&2 || true
  kc -n default describe pod "$POD" 2>/dev/null | tail -25 >&2 || true
  kc -n default delete pod "$POD" --grace-period=0 --force --wait=false >/dev/null 2>&1 || true
  exit 1
}

kc apply -f - >/dev/null <<YAML || fail "could not create pod $POD"
apiVersion: v1
kind: Pod
metadata:
  name: $POD
  namespace: default
  labels: {app: corral-k8s-verify}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: echo
    image: $SANDBOX_IMAGE
    imagePullPolicy: Never
    command: ["/bin/sh", "-c", "echo ok"]
YAML

phase() { kc -n default get pod "$POD" -o 'jsonpath={.status.phase}' 2>/dev/null; }
end=$(( $(date +%s) + 90 ))
while :; do
  p=$(phase || true)
  case "$p" in
    Succeeded) break ;;
    Failed) fail "pod $POD ended Failed" ;;
  esac
  # A container stuck on one of these will not get better: fail now.
  why=$(kc -n default get pod "$POD" -o 'jsonpath={.status.containerStatuses[0].state.waiting.reason}' 2>/dev/null || true)
  case "$why" in
    ErrImageNeverPull|ErrImagePull|ImagePullBackOff|InvalidImageName|CreateContainerError|CreateContainerConfigError|RunContainerError)
      fail "pod $POD cannot start: $why" ;;
  esac
  [ "$(date +%s)" -lt "$end" ] || fail "pod $POD not Succeeded within 90 s (phase '${p:-none}')"
  sleep 0.2
done
node=$(kc -n default get pod "$POD" -o 'jsonpath={.spec.nodeName}')
[ "$node" = "$NODE" ] || fail "pod $POD ran on node '$node', want $NODE"
out=$(kc -n default logs "$POD" 2>&1) || fail "reading the log of $POD: $out"
[ "$out" = ok ] || fail "log of $POD is '$out', want 'ok'"
kc -n default delete pod "$POD" --grace-period=1 --timeout=60s >/dev/null || fail "deleting pod $POD"
if kc -n default get pod "$POD" >/dev/null 2>&1; then fail "pod $POD still exists after delete"; fi
log "verified: pod of $SANDBOX_IMAGE scheduled on $NODE, ran 'echo ok', Succeeded, log read back, deleted"
