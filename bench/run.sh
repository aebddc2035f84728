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
# (default 100), FARM_JOBS (default 200), SKIP_DOCKER=1 to leave Docker out,
# BENCHMARKS_FILE (default BENCHMARKS.md) to write elsewhere.
set -uo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
BIN=${BIN:-bin}
OUT=${BENCH_OUT:-bench/out}
BENCHTIME=${BENCHTIME:-1s}
SESSIONS=${SESSIONS:-10,100,1000}
DOCKER_SESSIONS=${DOCKER_SESSIONS:-100}
FARM_JOBS=${FARM_JOBS:-200}
MD=${BENCHMARKS_FILE:-BENCHMARKS.md}

if [ ! -x "$BIN/corral" ] || [ ! -x "$BIN/corral-agent" ]; then
	echo "bench/run.sh: $BIN/corral and $BIN/corral-agent are needed: run make build first" >&2
	exit 2
fi
rm -rf "$OUT"
mkdir -p "$OUT"
export PATH="$PWD/$BIN:$PATH" # the local runtime finds corral-agent on PATH
# Sandbox shells source ~/.bashrc; measure Corral, not the host's rc files
# (pyenv init alone adds ~1 s per shell here): HOME is an empty directory,
# with Go's caches pinned where they are.
export GOCACHE=$($GO env GOCACHE) GOMODCACHE=$($GO env GOMODCACHE) GOPATH=$($GO env GOPATH)
BENCH_HOME=$(mktemp -d)
trap 'rm -rf "$BENCH_HOME"' EXIT
export HOME=$BENCH_HOME
cmds="$OUT/commands.txt"
echo "# HOME=<empty temporary directory> for every command below; PATH starts with $BIN" >"$cmds"
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

# 1. Go benchmarks: the runs the notes name (<!-- bench: DIR FLAGS -->),
#    then every other package with Benchmark functions at -benchtime $BENCHTIME.
#    FLAGS go to go test as written, build flags included (the engine's
#    codec-call count runs with -tags corralcount, see bench/notes/30-engine.md).
gobench() { # output-file dir flags...
	local out=$1 dir=$2
	shift 2
	local cmd="$GO test -run '^\$' $* -timeout 40m $dir"
	echo "$cmd" >>"$cmds"
	echo "== $cmd" >&2
	if ! eval "$cmd" >"$out" 2>&1 </dev/null; then
		echo "bench/run.sh: $cmd failed (see $out)" >&2
		status=1
	fi
}
planned=" "
i=0
while IFS=$'\t' read -r dir flags; do
	[ -n "$dir" ] || continue
	i=$((i + 1))
	gobench "$OUT/gotest-$(echo "${dir#./}" | tr / _)-$i.txt" "$dir" "$flags"
	planned="$planned${dir#./} "
done < <($GO run ./bench/cmd/mkbench -notes bench/notes -plan)
for dir in $(grep -rl --exclude-dir=testdata --exclude-dir=.git --include='*_test.go' '^func Benchmark' . | xargs -n1 dirname | sort -u); do
	case "$planned" in *" ${dir#./} "*) continue ;; esac
	gobench "$OUT/gotest-$(echo "${dir#./}" | tr / _).txt" "./${dir#./}" -bench . -benchtime "$BENCHTIME"
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
scenario cluster cluster --nodes 3 --kills 20 --actions 500 --jobs "$FARM_JOBS" --concurrency 16

# 3. Render.
echo "$GO run ./bench/cmd/mkbench -in $OUT -notes bench/notes -o $MD" >>"$cmds"
if ! $GO run ./bench/cmd/mkbench -in "$OUT" -notes bench/notes -o "$MD"; then
	exit 1
fi
echo "$MD regenerated from $OUT" >&2
exit $status
