#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# npufarm quickstart: one command from a fresh Debian 12 machine (as root)
# to a working demo.
#
#   deploy/quickstart.sh
#
#  1. installs the build dependencies that are missing (apt-get update
#     first, and only when something is missing);
#  2. builds build/ (meson setup if needed, then ninja -j2);
#  3. runs a demo on loopback: npufarm-broker with its ledger in
#     build/demo/npufarm.db; three npufarm-agents simulating NPU boards;
#     a handful of real candidate kernels compiled against
#     <npufarm/kernel.h> (a blocked matmul at five tile sizes, plus one
#     that hangs, one that crashes, one that reports an error, and one that
#     is fast because it skips work: every matmul is checked against a
#     reference, so that one is caught as `wrong`),
#     submitted as one tuning job with `npufarm submit`, followed with
#     `npufarm wait` (progress, classified results, the winner); then
#     simulated TVM boards and AutoTVM-style requests (tvm-sim) on the same
#     broker, `npufarm status`, and the sqlite3 commands to inspect it all;
#  4. stops everything it started, also on error or Ctrl-C.
#
# Environment: NPUFARM_BUILD (default build), NPUFARM_DEMO_DIR (default
# $NPUFARM_BUILD/demo; wiped at start).
set -eu

cd "$(dirname "$0")/.."
build=${NPUFARM_BUILD:-build}
demo=${NPUFARM_DEMO_DIR:-$build/demo}
pids=

say() {
	printf '\n==> %s\n' "$*"
}

die() {
	printf 'quickstart: %s\n' "$*" >&2
	exit 1
}

cleanup() {
	status=$?
	for pid in $pids; do
		kill -TERM "$pid" 2>/dev/null || :
	done
	for pid in $pids; do
		wait "$pid" 2>/dev/null || :
	done
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 1. dependencies --------------------------------------------------------
packages="meson ninja-build pkg-config gcc libevent-dev libjansson-dev
libsqlite3-dev check libdlpack-dev libssl-dev sqlite3 libjs-chart.js"
missing=
for p in $packages; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
		grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done
if [ -n "$missing" ]; then
	say "installing:$missing"
	[ "$(id -u)" -eq 0 ] || die "run as root to install:$missing"
	apt-get update
	# shellcheck disable=SC2086 # one word per package
	DEBIAN_FRONTEND=noninteractive apt-get install -y \
		--no-install-recommends $missing
fi

# --- 2. build ---------------------------------------------------------------
say "building $build/"
if [ ! -f "$build/build.ninja" ]; then
	meson setup "$build"
fi
ninja -C "$build" -j2

broker=$build/broker/npufarm-broker
agent=$build/agent/npufarm-agent
sim=$build/bench/tvm-sim
cli=$build/cli/npufarm
for exe in "$broker" "$agent" "$sim" "$cli"; do
	[ -x "$exe" ] || die "$exe was not built"
done

# --- 3. demo ----------------------------------------------------------------
rm -rf "$demo"
mkdir -p "$demo"
say "starting npufarm-broker (ledger $demo/npufarm.db)"
"$broker" --listen 127.0.0.1:0 --http 127.0.0.1:0 --db "$demo/npufarm.db" \
	--data-dir "$demo/data" --ready-file "$demo/ready.json" \
	2>"$demo/broker.log" &
broker_pid=$!
pids="$broker_pid"
tries=0
while [ ! -s "$demo/ready.json" ]; do
	if ! kill -0 "$broker_pid" 2>/dev/null || [ "$tries" -ge 100 ]; then
		cat "$demo/broker.log" >&2
		die "the broker did not become ready"
	fi
	tries=$((tries + 1))
	sleep 0.1
done
farm=$(sed -n 's/.*"farm": *\[ *"\([^"]*\)".*/\1/p' "$demo/ready.json")
http=$(sed -n 's/.*"http": *"\([^"]*\)".*/\1/p' "$demo/ready.json")
echo "farm port (TVM tracker protocol): $farm"
echo "HTTP API: http://$http"

export NPUFARM_BROKER="http://$http"

say "starting 3 npufarm-agents: boards sim-npu-0..2 of key npu-sim"
for i in 0 1 2; do
	"$agent" --broker "$farm" --key npu-sim --name "sim-npu-$i" \
		--workdir "$demo/agent-$i" --tag rack=demo \
		2>"$demo/agent-$i.log" &
	pids="$! $pids"
done

say "compiling candidate kernels against include/npufarm/kernel.h"
kdir=$demo/kernels
mkdir -p "$kdir"
cc=${CC:-cc}
for tile in 4 8 16 32 64; do
	"$cc" -O2 -shared -fPIC -Iinclude -DMATMUL_TILE=$tile \
		-o "$kdir/matmul_t$tile.so" tests/kernels/matmul.c
done
for k in hang crash error wrong; do
	"$cc" -O2 -shared -fPIC -Iinclude -o "$kdir/$k.so" "tests/kernels/$k.c"
done
ls "$kdir"

# One job: the matmul tiles on 192x192 float32 matrices, three repeats of
# at least 20 ms each, each checked against tile 4 as the reference; the
# fast wrong matmul, checked the same way; and the three bad candidates,
# the hang with a 2 s run timeout.
mm_task() {
	printf '{"runner":"kernel","artifact_file":"kernels/%s.so",' "$1"
	printf '"entry":"matmul","name":"%s","args":[' "$2"
	printf '{"dtype":"float32","shape":[192,192],"fill":{"random":1}},'
	printf '{"dtype":"float32","shape":[192,192],"fill":{"random":2}},'
	printf '{"dtype":"float32","shape":[192,192]}],'
	printf '"measurement":{"number":1,"repeat":3,"min_repeat_ms":20},'
	printf '"check":{"ref_file":"kernels/matmul_t4.so","rtol":1e-4},'
	printf '"timeout":30}'
}
{
	printf '{"key":"npu-sim","user":"demo","queue_timeout":60,"tasks":['
	for tile in 4 8 16 32 64; do
		mm_task "matmul_t$tile" "matmul tile=$tile"
		printf ','
	done
	mm_task wrong "matmul, fast and wrong"
	printf ','
	printf '{"runner":"kernel","artifact_file":"kernels/hang.so",'
	printf '"name":"hangs","timeout":2},'
	printf '{"runner":"kernel","artifact_file":"kernels/crash.so",'
	printf '"name":"crashes"},'
	printf '{"runner":"kernel","artifact_file":"kernels/error.so",'
	printf '"name":"reports an error"}]}\n'
} >"$demo/job.json"

say "npufarm submit $demo/job.json"
job=$("$cli" submit "$demo/job.json")
echo "job $job"

say "npufarm wait $job"
# Its exit status says whether every task ended ok; here four must not.
"$cli" wait "$job" || :
caught=$(sqlite3 "$demo/npufarm.db" "SELECT count(*) FROM tasks
    WHERE job_id = $job AND outcome = 'wrong'")
[ "$caught" = 1 ] || die "the fast wrong matmul was not caught"
echo "the fast wrong matmul was caught by its check: outcome 'wrong'"


say "simulated TVM boards (tvm-sim) and AutoTVM-style requests"
# Sessions of 400 ms; boards poll the tracker every 250 ms (TVM: 2 s).
"$sim" boards --tracker "$farm" --key rk3588 --count 3 --session-ms 400 \
	--poll-ms 250 --port-base 9090 >"$demo/boards-rk3588.log" 2>&1 &
pids="$! $pids"
sleep 0.5
"$sim" tune --tracker "$farm" --key rk3588 --requests 5 --timeout-ms 15000

say "npufarm status"
"$cli" status

say "the ledger: sqlite3 $demo/npufarm.db"
q1="SELECT idx, name, outcome, board, number, costs, detail
    FROM task_results WHERE job_id = $job ORDER BY idx;"
q2="SELECT id, key, name, kind, state FROM boards ORDER BY id;"
q3="SELECT id, key, board, wait_s, held_s, outcome FROM lease_times
    ORDER BY id DESC LIMIT 5;"
q4="SELECT board, runs, failures, failure_rate, wrong FROM failure_rates;"
for q in "$q1" "$q2" "$q3" "$q4"; do
	printf 'sqlite3 -header -column %s "%s"\n' "$demo/npufarm.db" \
		"$(echo "$q" | tr -s ' \n' ' ')"
	sqlite3 -header -column "$demo/npufarm.db" "$q"
	echo
done
echo "more in docs/ledger.md; the CLI offline: $cli history --db $demo/npufarm.db"

# --- 4. stop ----------------------------------------------------------------
say "stopping"
for pid in $pids; do
	kill -TERM "$pid"
	status=0
	wait "$pid" || status=$?
	if [ "$pid" = "$broker_pid" ] && [ "$status" -ne 0 ]; then
		tail -n 20 "$demo/broker.log" >&2
		die "npufarm-broker exited with status $status on SIGTERM"
	fi
done
pids=
echo "done; the ledger stays in $demo/npufarm.db"
