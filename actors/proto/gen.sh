#!/bin/sh
# Regenerates corral.pb.go from corral.proto. Needs protoc (Debian package
# protobuf-compiler) and installs the pinned protoc-gen-go.
set -eu
cd "$(dirname "$0")"
GOBIN="${GOBIN:-$(go env GOPATH)/bin}"
if ! command -v protoc >/dev/null 2>&1; then
	echo "protoc not found: install it with 'apt-get install -y protobuf-compiler'" >&2
	exit 1
fi
GOBIN="$GOBIN" go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PATH="$GOBIN:$PATH" protoc --go_out=. --go_opt=paths=source_relative corral.proto
