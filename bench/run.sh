#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# Benchmark driver: runs npufarm-bench-tracker against a fresh
# npufarm-broker (ledger on, in a temp dir) for each phase and prints one
# markdown table, then npufarm-bench-relay against another fresh broker and
# prints a second table, then npufarm-bench-agent against a broker and one
# agent on the fake TVM runtime for a third.  Builds nothing.
#
#   bench/run.sh BUILD_DIR [npufarm-bench-tracker options...]
#   e.g. bench/run.sh build --seconds 5
#
# Every phase always runs, each against its own broker (so no --phase).
#
# TMPDIR chooses where the ledger lives (its fsyncs are part of the cost);
# NPUFARM_BROKER_ARGS adds broker options, e.g. "--ledger-sync normal";
# NPUFARM_RELAY_ARGS adds npufarm-bench-relay options, e.g. "--repeat 5".
set -eu

usage="usage: bench/run.sh BUILD_DIR [npufarm-bench-tracker options...]"
build=${1:?$usage}
shift
broker=$build/broker/npufarm-broker
bench=$build/bench/npufarm-bench-tracker
relay=$build/bench/npufarm-bench-relay
agent=$build/agent/npufarm-agent
agentbench=$build/bench/npufarm-bench-agent
jobsbench=$build/bench/npufarm-bench-jobs
ledgerbench=$build/bench/npufarm-bench-ledger
probe=$build/tests/kernels/libprobe.so
fakertm=$build/tests/fake_tvm/libtvm_runtime.so
for exe in "$broker" "$bench" "$relay" "$agent" "$agentbench" "$jobsbench" \
	"$ledgerbench"; do
	if [ ! -x "$exe" ]; then
		echo "run.sh: $exe is not built; run: ninja -C $build" >&2
		exit 1
	fi
done
for f in "$fakertm" "$probe"; do
	if [ ! -f "$f" ]; then
		echo "run.sh: $f is not built (tests are off?)" >&2
		exit 1
	fi
done

# One socket per idle board (10000 by default) on each side, plus slack.
# shellcheck disable=SC3045 # dash, bash and busybox sh all have ulimit -n
{
	hard=$(ulimit -Hn)
	if [ "$hard" = unlimited ] || [ "$hard" -gt 20100 ]; then
		hard=20100
	fi
	ulimit -n "$hard"
} 2>/dev/null || echo "run.sh: warning: cannot raise the fd limit" >&2

tmp=$(mktemp -d "${TMPDIR:-/tmp}/npufarm-bench.XXXXXX")
pid=
apid=
spid=
jpids=
cleanup() {
	for p in $jpids $apid $spid $pid; do
		kill "$p" 2>/dev/null || :
		wait "$p" 2>/dev/null || :
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_broker NAME: a broker on ephemeral loopback ports; sets pid, farm.
start_broker() {
	dir=$tmp/$1
	mkdir "$dir"
	# shellcheck disable=SC2086 # NPUFARM_BROKER_ARGS holds several words
	"$broker" --listen 127.0.0.1:0 --http 127.0.0.1:0 \
		--db "$dir/ledger.db" --ready-file "$dir/ready.json" \
		--max-connections 20000 ${NPUFARM_BROKER_ARGS:-} \
		2>"$dir/broker.log" &
	pid=$!
	tries=0
	while [ ! -s "$dir/ready.json" ]; do
		if ! kill -0 "$pid" 2>/dev/null || [ "$tries" -ge 100 ]; then
			echo "run.sh: broker did not become ready:" >&2
			cat "$dir/broker.log" >&2
			exit 1
		fi
		tries=$((tries + 1))
		sleep 0.1
	done
	farm=$(sed -n 's/.*"farm": *\[ *"\([^"]*\)".*/\1/p' "$dir/ready.json")
}

# stop_broker NAME: SIGTERM, and complain unless it exits 0.
stop_broker() {
	kill -TERM "$pid"
	status=0
	wait "$pid" || status=$?
	pid=
	if [ "$status" -ne 0 ]; then
		echo "run.sh: broker exited with status $status on SIGTERM" >&2
		tail -n 20 "$tmp/$1/broker.log" >&2
	fi
}

# run_phase NAME [options]: one broker, one phase, rows added to $tmp/rows.
run_phase() {
	name=$1
	shift
	start_broker "$name"
	echo "run.sh: phase $name against $farm (pid $pid)" >&2
	if ! "$bench" --tracker "$farm" --pid "$pid" --phase "$name" "$@" \
		>>"$tmp/rows"; then
		echo "run.sh: phase $name failed; broker log tail:" >&2
		tail -n 20 "$tmp/$name/broker.log" >&2
		exit 1
	fi
	stop_broker "$name"
}

# run_relay: one broker, the relay phase, rows in $tmp/relay_rows.
run_relay() {
	start_broker relay
	echo "run.sh: phase relay against $farm (pid $pid)" >&2
	# shellcheck disable=SC2086 # NPUFARM_RELAY_ARGS holds several words
	if ! "$relay" --farm "$farm" ${NPUFARM_RELAY_ARGS:-} \
		>"$tmp/relay_rows"; then
		echo "run.sh: phase relay failed; broker log tail:" >&2
		tail -n 20 "$tmp/relay/broker.log" >&2
		exit 1
	fi
	stop_broker relay
}

# run_jobs: one broker, four agents, a job of trivial kernels; then the
# ledger's commit throughput on its own.  Rows in $tmp/jobs_rows.
run_jobs() {
	start_broker jobs
	for i in 0 1 2 3; do
		"$agent" --broker "$farm" --key bench --name "bench-$i" \
			--workdir "$tmp/jobs/work-$i" 2>"$tmp/jobs/agent-$i.log" &
		jpids="$! $jpids"
	done
	http=$(sed -n 's/.*"http": *"\([^"]*\)".*/\1/p' "$tmp/jobs/ready.json")
	sleep 1
	echo "run.sh: phase jobs against http://$http" >&2
	if ! "$jobsbench" --http "$http" --kernel "$probe" --key bench \
		>"$tmp/jobs_rows"; then
		echo "run.sh: phase jobs failed; broker log tail:" >&2
		tail -n 20 "$tmp/jobs/broker.log" >&2
		exit 1
	fi
	# shellcheck disable=SC2086 # one word per pid
	kill $jpids
	for p in $jpids; do
		wait "$p" || echo "run.sh: an agent did not exit 0" >&2
	done
	jpids=
	stop_broker jobs
	"$ledgerbench" --dir "${TMPDIR:-/tmp}" >>"$tmp/jobs_rows"
}

# run_agent: one broker, one agent on the fake TVM runtime, rows in
# $tmp/agent_rows.  sleep(1) is the memory baseline.
run_agent() {
	start_broker agent
	sleep 600 &
	spid=$!
	"$agent" --broker "$farm" --key rk3588 --name bench-agent \
		--tvm-runtime "$fakertm" --workdir "$tmp/agent/work" -vv \
		2>"$tmp/agent/agent.log" &
	apid=$!
	tries=0
	until grep -q 'offered as session' "$tmp/agent/agent.log"; do
		if ! kill -0 "$apid" 2>/dev/null || [ "$tries" -ge 100 ]; then
			echo "run.sh: the agent did not offer its board:" >&2
			cat "$tmp/agent/agent.log" >&2
			exit 1
		fi
		tries=$((tries + 1))
		sleep 0.1
	done
	sleep 0.5 # settle: the first offer's allocations are done
	echo "run.sh: phase agent against $farm (agent pid $apid)" >&2
	if ! "$agentbench" --farm "$farm" --agent-pid "$apid" \
		--baseline-pid "$spid" --runtime "$fakertm" \
		>"$tmp/agent_rows" 2>"$tmp/agent/bench.log"; then
		echo "run.sh: phase agent failed; agent log tail:" >&2
		tail -n 20 "$tmp/agent/agent.log" >&2
		exit 1
	fi
	kill "$apid" "$spid"
	wait "$apid" || echo "run.sh: the agent did not exit 0" >&2
	wait "$spid" 2>/dev/null || :
	apid=
	spid=
	stop_broker agent
}

: >"$tmp/rows"
run_phase cycles "$@"
run_phase idle "$@"
run_relay
run_agent
run_jobs

cat <<EOF
### npufarm-broker tracker benchmark

$(uname -srm), $(nproc) CPUs, $(date -u '+%Y-%m-%d %H:%M UTC'), ledger in ${TMPDIR:-/tmp}${NPUFARM_BROKER_ARGS:+, broker options: $NPUFARM_BROKER_ARGS}

| metric | npufarm-broker | baseline (same run) | ratio | target |
|---|---|---|---|---|
EOF
cat "$tmp/rows"

cat <<EOF

### npufarm-broker TVM RPC relay benchmark

The same fake board and client (bench/tvmrpc*.c) relayed by the broker
and, as the baseline, on a direct loopback connection, alternating in one run.

| metric | through broker | direct (same run) | ratio | target |
|---|---|---|---|---|
EOF
cat "$tmp/relay_rows"

cat <<EOF

### npufarm-agent footprint and timeout turnaround

One agent serving TVM sessions on the fake runtime (tests/fake_tvm) through
the broker; baselines measured in the same run.

| metric | npufarm-agent | baseline (same run) | ratio | target |
|---|---|---|---|---|
EOF
cat "$tmp/agent_rows"

cat <<EOF

### Native jobs and the ledger

Four agents on this host run one job of trivial kernels end to end
(upload, submit, fan-out, results committed); the ledger's group commit
against plain sqlite committing each result on its own.

| metric | npufarm | baseline (same run) | ratio | target |
|---|---|---|---|---|
EOF
cat "$tmp/jobs_rows"
