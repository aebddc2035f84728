#!/bin/bash
# Writes the testbed's PKI with openssl into $STATE/pki: a CA, the API
# server's serving cert, its client cert for the kubelet, the kubelet's
# serving and client certs (Node authorizer identity), the scheduler's and
# an admin's (system:masters) client certs, and the service-account key pair.
# Idempotent: a cert that exists is kept. ECDSA P-256 keys: generated in
# milliseconds where RSA takes seconds on 2 cores.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
mkdir -p "$PKI"; cd "$PKI"

key() { [ -f "$1.key" ] || openssl ecparam -name prime256v1 -genkey -noout -out "$1.key" 2>/dev/null; }

if [ ! -f ca.crt ]; then
  key ca
  openssl req -x509 -new -key ca.key -out ca.crt -days 3650 -subj "/CN=corral-k8s-ca" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi

# cert NAME CN ORG USAGE [SAN]: USAGE is serverAuth, clientAuth or both.
cert() {
  local n=$1 cn=$2 org=$3 usage=$4 san=${5:-}
  [ -f "$n.crt" ] && return 0
  key "$n"
  openssl req -new -key "$n.key" -out "$n.csr" -subj "/CN=$cn${org:+/O=$org}" 2>/dev/null
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$usage"
    [ -z "$san" ] || echo "subjectAltName=$san"
  } > "$n.ext"
  openssl x509 -req -in "$n.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
    -out "$n.crt" -days 3650 -extfile "$n.ext" 2>/dev/null
  rm -f "$n.csr" "$n.ext"
}

cert apiserver kube-apiserver "" serverAuth \
  "IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters clientAuth
cert admin corral-admin system:masters clientAuth
cert kube-scheduler system:kube-scheduler "" clientAuth
cert kubelet "system:node:$NODE" system:nodes clientAuth
cert kubelet-serving "system:node:$NODE" system:nodes serverAuth "IP:$NODE_IP,IP:127.0.0.1,DNS:$NODE,DNS:localhost"
if [ ! -f sa.pub ]; then
  key sa
  openssl ec -in sa.key -pubout -out sa.pub 2>/dev/null
fi
