#!/bin/bash
# Puts the images the testbed needs into the cluster's containerd
# (namespace k8s.io): there is no registry to pull from, so each is built
# locally with Docker and moved over with `docker save | ctr images import`.
#   registry.k8s.io/pause:3.10  the sandbox image: scripts/k8s/pause, static,
#                               FROM scratch (imported once)
#   corral-sandbox:minimal      `corral image build --minimal` (rebuilt when
#                               out of date, re-imported when Docker's changed)
#   corral-agent:latest         FROM scratch, the static corral-agent at
#                               /corral-agent (rebuilt and re-imported on every
#                               run: it changes with the tree)
# Needs bin/corral and bin/corral-agent (make build) and containerd up.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
IMGSTATE=$STATE/images
mkdir -p "$IMGSTATE"
export DOCKER_BUILDKIT=0 # no buildx on this kind of machine; the classic builder is enough for FROM scratch

# (the list is read whole first: grep -q closing the pipe early would fail
# the pipeline under pipefail)
in_containerd() { local refs; refs=$(ctr_k8s images ls -q) && grep -qxE "(docker\.io/library/)?$1" <<<"$refs"; }
docker_id() { docker image inspect --format '{{.Id}}' "$1" 2>/dev/null; }

# import IMG [always]: copies IMG from Docker unless containerd already has
# the same Docker image id.
import() {
  local img=$1 id stamp
  id=$(docker_id "$img") || die "image $img is not in Docker (images.sh builds it first: see its log above)"
  stamp=$IMGSTATE/$(echo "$img" | tr '/:' '__').id
  if [ "${2:-}" != always ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$id" ] && in_containerd "$img"; then
    return 0
  fi
  docker save "$img" | ctr_k8s images import - >/dev/null \
    || die "importing $img into containerd at $SOCK failed (see above)"
  echo "$id" > "$stamp"
  log "imported $img (${id:7:12})"
}

# scratch_image TAG BINARY ENTRY: a FROM-scratch image holding BINARY at
# /ENTRY, built from a temporary context.
scratch_image() {
  local tag=$1 bin=$2 entry=$3 ctx
  ctx=$(mktemp -d)
  cp "$bin" "$ctx/$entry"
  printf 'FROM scratch\nCOPY %s /%s\nENTRYPOINT ["/%s"]\n' "$entry" "$entry" "$entry" > "$ctx/Dockerfile"
  local out
  out=$(docker build -q -t "$tag" "$ctx" 2>&1) || { echo "$out" >&2; rm -rf "$ctx"; die "docker build of $tag failed"; }
  rm -rf "$ctx"
}

# pause: built once; the Go build is cached anyway.
if ! in_containerd "$PAUSE_IMAGE"; then
  if ! docker_id "$PAUSE_IMAGE" >/dev/null; then
    tmp=$(mktemp -d)
    (cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$tmp/pause" ./scripts/k8s/pause) \
      || die "building scripts/k8s/pause failed (Go at /usr/local/go/bin?)"
    scratch_image "$PAUSE_IMAGE" "$tmp/pause" pause
    rm -rf "$tmp"
  fi
  import "$PAUSE_IMAGE" always
fi

# corral-sandbox:minimal: the workload image of the tests.
[ -x "$ROOT/bin/corral" ] && [ -x "$ROOT/bin/corral-agent" ] \
  || die "bin/corral or bin/corral-agent missing: run \`make build\` first (make k8s-up does)"
# (corral image build knows when its image is up to date: 0.2 s then.)
"$ROOT/bin/corral" image build --minimal >/dev/null || die "\`bin/corral image build --minimal\` failed"
import "$SANDBOX_IMAGE"

# corral-agent:latest, always rebuilt from bin/corral-agent.
if "$ROOT/bin/corral" image build --help 2>&1 | grep -q -- '--agent'; then
  "$ROOT/bin/corral" image build --agent >/dev/null || die "\`bin/corral image build --agent\` failed"
else
  scratch_image "$AGENT_IMAGE" "$ROOT/bin/corral-agent" corral-agent
fi
import "$AGENT_IMAGE" always
