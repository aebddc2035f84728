#!/usr/bin/env bash
# Runs every Fuzz function in the repository for $1 (default 30s) each
# (make fuzz). New crashers land in the package's testdata/fuzz/FuzzXxx/, as
# go test writes them: commit them with the fix so `go test` replays them.
set -uo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
TIME=${1:-30s}
status=0
n=0
while IFS=: read -r file name; do
	dir=$(dirname "$file")
	n=$((n + 1))
	echo "== $name in ./$dir for $TIME" >&2
	# -run '^$' skips the unit tests; -fuzz needs a pattern matching one target.
	if ! $GO test -run '^$' -fuzz "^${name}\$" -fuzztime "$TIME" "./$dir"; then
		echo "fuzz.sh: $name in ./$dir found a failure (see its testdata/fuzz/$name/)" >&2
		status=1
	fi
done < <(grep -rHo --exclude-dir=testdata --exclude-dir=.git --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' . | sed 's#^\./##; s#:func #:#' | sort -u)
if [ "$n" = 0 ]; then
	echo "fuzz.sh: no Fuzz functions found" >&2
	exit 1
fi
echo "fuzz.sh: ran $n fuzzers for $TIME each" >&2
exit $status
