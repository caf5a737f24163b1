#!/bin/sh
# Run every libFuzzer harness of a -Dfuzz=true build for SECONDS each,
# starting from the seed corpora in tests/fuzz/corpus (copied: the run's
# new inputs stay in WORK, the tree is not touched).  Exits non-zero on the
# first harness that crashes, leaks or trips a sanitizer, leaving the
# reproducer in WORK.  Usage: tests/fuzz/run.sh BUILD_DIR [SECONDS] [NAME...]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: run.sh BUILD_DIR [SECONDS] [NAME...]}
secs=${2:-30}
[ $# -ge 2 ] && shift 2 || shift $#
names=${*:-$(ls "$here/corpus")}
work=${FUZZ_WORK:-$build/fuzz-work}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
status=0
for name in $names; do
	exe="$build/tests/fuzz/fuzz-$name"
	[ -x "$exe" ] || { echo "fuzz: $exe missing" >&2; exit 1; }
	mkdir -p "$work/$name/corpus" "$work/$name/crashes" "$work/$name/tmp"
	cp "$here/corpus/$name/"* "$work/$name/corpus/"
	echo "fuzz: $name for $secs s"
	if TMPDIR="$work/$name/tmp" "$exe" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
	    -max_len=65536 -print_final_stats=1 \
	    -artifact_prefix="$work/$name/crashes/" \
	    "$work/$name/corpus" >"$work/$name/log" 2>&1; then
		grep -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' \
		    "$work/$name/log" | tail -2 | sed "s/^/fuzz: $name: /"
	else
		echo "fuzz: $name FAILED; reproducer in $work/$name/crashes:" >&2
		tail -60 "$work/$name/log" >&2
		status=1
	fi
	rm -rf "$work/$name/tmp" # the harness's ledgers, caches, ...
done
exit $status
