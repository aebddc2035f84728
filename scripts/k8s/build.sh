#!/bin/bash
# Builds the Kubernetes binaries the testbed runs (kube-apiserver,
# kube-scheduler, kubelet) from the Go module proxy: k8s.io/kubernetes as a
# dependency of a scratch module, its staging modules replaced by their
# published versions. The binaries are cached in $CORRAL_K8S_CACHE/$KV/bin,
# outside the clone and keyed by version, so a second run is instant.
#
# Usage: scripts/k8s/build.sh            (builds what is missing)
set -euo pipefail
KV=${CORRAL_K8S_VERSION:-v1.34.4}
STAGING_V=v0${KV#v1}   # v1.34.4 -> v0.34.4
CACHE=${CORRAL_K8S_CACHE:-/var/tmp/corral-k8s}/$KV
BINS=(kube-apiserver kube-scheduler kubelet)
# kubectl comes with this kind of machine; where it does not, build it too.
command -v kubectl >/dev/null 2>&1 || BINS+=(kubectl)
mkdir -p "$CACHE/bin" "$CACHE/build"

missing=()
for b in "${BINS[@]}"; do [ -x "$CACHE/bin/$b" ] || missing+=("$b"); done
if [ ${#missing[@]} -eq 0 ]; then echo "k8s binaries $KV cached in $CACHE/bin"; exit 0; fi

cd "$CACHE/build"
if [ ! -f go.sum ]; then
  staging="api apiextensions-apiserver apimachinery apiserver cli-runtime client-go
    cloud-provider cluster-bootstrap code-generator component-base component-helpers
    controller-manager cri-api cri-client csi-translation-lib dynamic-resource-allocation
    endpointslice externaljwt kms kube-aggregator kube-controller-manager kube-proxy
    kube-scheduler kubectl kubelet metrics mount-utils pod-security-admission"
  {
    echo "module corral-k8s-testbed-build"
    echo
    echo "go 1.24.0"
    echo
    echo "godebug default=go1.24"
    echo
    echo "require k8s.io/kubernetes $KV"
    echo
    echo "replace ("
    for m in $staging; do echo "	k8s.io/$m => k8s.io/$m $STAGING_V"; done
    echo ")"
  } > go.mod
  printf 'package tools\n\nimport (\n\t_ "k8s.io/kubernetes/cmd/kube-apiserver/app"\n\t_ "k8s.io/kubernetes/cmd/kube-scheduler/app"\n\t_ "k8s.io/kubernetes/cmd/kubelet/app"\n)\n' > tools.go
  echo "== resolving modules for k8s.io/kubernetes $KV"
  GOFLAGS=-mod=mod go mod tidy
fi

MINOR=${KV#v1.}; MINOR=${MINOR%%.*}
LD="-s -w -X k8s.io/component-base/version.gitVersion=$KV -X k8s.io/component-base/version.gitMajor=1
 -X k8s.io/component-base/version.gitMinor=$MINOR -X k8s.io/component-base/version.gitTreeState=clean
 -X k8s.io/component-base/version.buildDate=2026-01-01T00:00:00Z"
for b in "${missing[@]}"; do
  echo "== building $b $KV (the first build takes minutes on 2 cores)"; s=$(date +%s)
  CGO_ENABLED=0 go build -mod=mod -trimpath -ldflags "$LD" -o "$CACHE/bin/$b.tmp" "k8s.io/kubernetes/cmd/$b"
  mv "$CACHE/bin/$b.tmp" "$CACHE/bin/$b"
  echo "== $b built in $(( $(date +%s) - s ))s"
done
