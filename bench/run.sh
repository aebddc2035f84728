#!/usr/bin/env bash
# Regenerates BENCHMARKS.md from measurements (make bench):
#   1. every Go Benchmark function in the repository (go test -bench),
#   2. every `corral bench` scenario (--json), each with its same-run baseline,
#   3. bench/cmd/mkbench renders BENCHMARKS.md from those outputs, the prose
#      in bench/notes/*.md, the machine, the date and the commands below.
# A failing benchmark or scenario is recorded in BENCHMARKS.md, not hidden;
# the script then exits non-zero.
#
# Environment: BIN (default bin, must hold corral and corral-agent),
# BENCH_OUT (default bench/out), BENCHTIME (go test -benchtime, default 1s),
# SESSIONS (local scaling curve, default 10,100,1000), DOCKER_SESSIONS
# (default 100), FARM_JOBS (default 200), SKIP_DOCKER=1 to leave Docker out.
set -uo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
BIN=${BIN:-bin}
OUT=${BENCH_OUT:-bench/out}
BENCHTIME=${BENCHTIME:-1s}
SESSIONS=${SESSIONS:-10,100,1000}
DOCKER_SESSIONS=${DOCKER_SESSIONS:-100}
FARM_JOBS=${FARM_JOBS:-200}

if [ ! -x "$BIN/corral" ] || [ ! -x "$BIN/corral-agent" ]; then
	echo "bench/run.sh: $BIN/corral and $BIN/corral-agent are needed: run make build first" >&2
	exit 2
fi
rm -rf "$OUT"
mkdir -p "$OUT"
export PATH="$PWD/$BIN:$PATH" # the local runtime finds corral-agent on PATH
cmds="$OUT/commands.txt"
status=0

# Docker scenarios need a reachable engine and a sandbox image.
docker_ok=0
image=""
if [ "${SKIP_DOCKER:-0}" != 1 ] && docker info >/dev/null 2>&1; then
	for img in corral-sandbox:latest corral-sandbox:minimal; do
		if docker image inspect "$img" >/dev/null 2>&1; then image=$img; docker_ok=1; break; fi
	done
	[ "$docker_ok" = 1 ] || echo "bench/run.sh: no corral-sandbox image (make image); Docker scenarios skipped" >&2
fi

# 1. Go benchmarks, one output file per package.
for dir in $(grep -rl --exclude-dir=testdata --exclude-dir=.git --include='*_test.go' '^func Benchmark' . | xargs -n1 dirname | sort -u); do
	pkg="corral/${dir#./}"
	slug=$(echo "${dir#./}" | tr / _)
	echo "$GO test -run '^\$' -bench . -benchtime $BENCHTIME -timeout 30m ./${dir#./}" >>"$cmds"
	echo "== go test -bench ./${dir#./}" >&2
	if ! $GO test -run '^$' -bench . -benchtime "$BENCHTIME" -timeout 30m "./${dir#./}" >"$OUT/gotest-$slug.txt" 2>&1; then
		echo "bench/run.sh: benchmarks of $pkg failed (see $OUT/gotest-$slug.txt)" >&2
		status=1
	fi
done

# 2. corral bench scenarios.
scenario() { # name, then corral bench arguments
	local name=$1
	shift
	echo "corral bench $* --json" >>"$cmds"
	echo "== corral bench $*" >&2
	if ! "$BIN/corral" bench "$@" --json >"$OUT/scenario-$name.jsonl" 2>"$OUT/scenario-$name.err"; then
		echo "bench/run.sh: corral bench $* failed: $(tail -n1 "$OUT/scenario-$name.err")" >&2
		status=1
	fi
}
scenario events events
scenario roundtrip roundtrip
if [ "$docker_ok" = 1 ]; then
	scenario start start --backends local,docker --image "$image"
else
	scenario start start --backends local
fi
scenario sessions sessions --runtime local --sessions "$SESSIONS" --actions 20
if [ "$docker_ok" = 1 ]; then
	scenario sessions-docker sessions --runtime docker --image "$image" --sessions "$DOCKER_SESSIONS" --actions 20
fi
scenario farm farm --runtime local --jobs "$FARM_JOBS" --concurrency 16

# 3. Render.
echo "$GO run ./bench/cmd/mkbench -in $OUT -notes bench/notes -o BENCHMARKS.md" >>"$cmds"
if ! $GO run ./bench/cmd/mkbench -in "$OUT" -notes bench/notes -o BENCHMARKS.md; then
	exit 1
fi
echo "BENCHMARKS.md regenerated from $OUT" >&2
exit $status
