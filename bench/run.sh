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
#
# Last comes npufarm and TVM side by side (issue 15): the same load
# generators against npufarm-broker and, when NPUFARM_TVM_PEER names a
# built TVM peer (../shared/tvm-peer/; its ENV.sh is sourced with bash),
# against TVM's own tracker, proxy and rpc_server, alternating, plus the
# real TVM client's session set-up and the loopback limits.  Without a peer
# the TVM column says "not measured".
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
loopbench=$build/bench/npufarm-bench-loopback
setup_py=$(dirname "$0")/tvm_setup.py
tvmpeer=${NPUFARM_TVM_PEER:-}
if [ -n "$tvmpeer" ] && [ ! -f "$tvmpeer/ENV.sh" ]; then
	echo "run.sh: NPUFARM_TVM_PEER=$tvmpeer has no ENV.sh" >&2
	exit 1
fi
probe=$build/tests/kernels/libprobe.so
fakertm=$build/tests/fake_tvm/libtvm_runtime.so
for exe in "$broker" "$bench" "$relay" "$agent" "$agentbench" "$jobsbench" \
	"$ledgerbench" "$loopbench"; do
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
tpids=
# kill_tree PID: PID and its descendants (TVM's Python tools run their
# work in tvm.exec.popen_worker children).
kill_tree() {
	for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do
		kill_tree "$c"
	done
	kill "$1" 2>/dev/null || :
}
cleanup() {
	for p in $tpids; do
		kill_tree "$p"
	done
	for p in $jpids $apid $spid $pid $tpids; do
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

# run_relay: one broker, the relay phase, rows in $tmp/relay_rows: 1 MiB
# copy packets, then 64 MiB ones (one packet each way, as TVM's upload
# and download send them), with the broker's CPU per 64 MiB.
run_relay() {
	start_broker relay
	echo "run.sh: phase relay against $farm (pid $pid)" >&2
	# shellcheck disable=SC2086 # NPUFARM_RELAY_ARGS holds several words
	if ! "$relay" --farm "$farm" --pid "$pid" ${NPUFARM_RELAY_ARGS:-} \
		>"$tmp/relay_rows" ||
		! "$relay" --farm "$farm" --pid "$pid" --chunk-kib 65536 \
			--rounds 200 ${NPUFARM_RELAY_ARGS:-} |
		grep '^| relay' >>"$tmp/relay_rows"; then
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

# ---- npufarm and TVM side by side ------------------------------------

# tvm_start LOG ARGS...: python3 ARGS in the background with the TVM peer's
# environment; sets tpid (the python process) and adds it to tpids.
tvm_start() {
	log=$1
	shift
	bash -c '. "$0/ENV.sh" >/dev/null 2>&1; exec python3 "$@"' \
		"$tvmpeer" "$@" >"$log" 2>&1 &
	tpid=$!
	tpids="$tpids $tpid"
}

# tvm_stop PID: the process and its children, reaped.
tvm_stop() {
	kill_tree "$1"
	wait "$1" 2>/dev/null || :
	tpids=$(echo "$tpids" | sed "s/ $1\b//")
}

# free_port: a loopback port that was free a moment ago.
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_port PORT: until something accepts on 127.0.0.1:PORT (30 s).
wait_port() {
	tries=0
	until bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; do
		tries=$((tries + 1))
		if [ "$tries" -ge 300 ]; then
			echo "run.sh: nothing listens on port $1" >&2
			exit 1
		fi
		sleep 0.1
	done
}

# start_tvm_tracker NAME: TVM's rpc_tracker on a free port; sets ttpid (the
# process started), tworker (its popen_worker child, where the tracker
# loop runs: CPU and RSS are read there) and tfarm.
start_tvm_tracker() {
	tport=$(free_port)
	tvm_start "$tmp/side/tvm-tracker-$1.log" -m tvm.exec.rpc_tracker \
		--host 127.0.0.1 --port "$tport" --port-end "$((tport + 1))"
	ttpid=$tpid
	wait_port "$tport"
	tworker=$(ps -o pid= --ppid "$ttpid" | head -n 1 | tr -d ' ')
	tfarm=127.0.0.1:$tport
}

# tree_rss_kib PID: VmRSS of PID and its descendants, summed.
tree_rss_kib() {
	kib=$(sed -n 's/^VmRSS:[^0-9]*\([0-9]*\).*/\1/p' "/proc/$1/status" \
		2>/dev/null || :)
	kib=${kib:-0}
	for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do
		kib=$((kib + $(tree_rss_kib "$c")))
	done
	echo "$kib"
}

# side_bench OUT ARGS...: npufarm-bench-tracker rows into $tmp/side/OUT.
side_bench() {
	out=$1
	shift
	if ! "$bench" "$@" >"$tmp/side/$out" 2>>"$tmp/side/bench.log"; then
		echo "run.sh: side-by-side $out failed:" >&2
		tail -n 5 "$tmp/side/bench.log" >&2
		exit 1
	fi
}

# run_side_tracker [bench options]: lease cycles with the load generator's
# delayed ACK on and off, then 10k idle boards (delayed ACK off: TVM's
# tracker splits its replies, and SUMMARY should measure its work, not the
# stall, which the cycle rows show); npufarm and TVM alternating.
run_side_tracker() {
	for ack in on off; do
		flag=
		[ "$ack" = off ] && flag=--no-delayed-ack
		start_broker "side-cycles-$ack"
		echo "run.sh: side by side: cycles, delayed ACK $ack, npufarm" >&2
		# shellcheck disable=SC2086 # $flag: zero or one word
		side_bench "np-cycles-$ack" --tracker "$farm" --pid "$pid" \
			--phase cycles $flag "$@"
		stop_broker "side-cycles-$ack"
		[ -n "$tvmpeer" ] || continue
		start_tvm_tracker "cycles-$ack"
		echo "run.sh: side by side: cycles, delayed ACK $ack, TVM" >&2
		# shellcheck disable=SC2086 # $flag: zero or one word
		side_bench "tvm-cycles-$ack" --tracker "$tfarm" \
			--pid "$tworker" --phase cycles $flag "$@"
		tvm_stop "$ttpid"
	done
	start_broker side-idle
	echo "run.sh: side by side: idle boards, npufarm" >&2
	side_bench np-idle --tracker "$farm" --pid "$pid" --phase idle \
		--no-delayed-ack "$@"
	stop_broker side-idle
	if [ -n "$tvmpeer" ]; then
		start_tvm_tracker idle
		echo "run.sh: side by side: idle boards, TVM" >&2
		side_bench tvm-idle --tracker "$tfarm" --pid "$tworker" \
			--phase idle --no-delayed-ack "$@"
		tvm_stop "$ttpid"
	fi
}

# setup_time NAME ARGS...: the real client's REQUEST -> first call (median
# ms) into $tmp/side/setup-NAME; "failed" when it could not run or took
# over 90 s (a board that never comes up leaves a REQUEST waiting).
setup_time() {
	name=$1
	shift
	if timeout 90 bash -c \
		'. "$0/ENV.sh" >/dev/null 2>&1; exec python3 "$@"' \
		"$tvmpeer" "$setup_py" --rounds 15 "$@" \
		>"$tmp/side/setup-$name.out" 2>"$tmp/side/setup-$name.log"; then
		sed -n 's/.*median=\([0-9.]*\).*/\1/p' \
			"$tmp/side/setup-$name.out" >"$tmp/side/setup-$name"
	else
		echo "run.sh: session set-up $name failed:" >&2
		tail -n 3 "$tmp/side/setup-$name.log" >&2
		echo failed >"$tmp/side/setup-$name"
	fi
}

# run_side_sessions: TVM's rpc_server registered by PUT and through a
# proxy, behind npufarm-broker and behind TVM's tracker and proxy; a
# direct connect as the baseline (before and after, to show drift); 64 MiB
# up and down through each proxy (and the CPU the proxy spent on it); the
# board-side idle RSS of rpc_server and of npufarm-agent.  Needs the peer.
run_side_sessions() {
	start_broker side-sessions
	fport=${farm##*:}
	sport=$(free_port)
	tvm_start "$tmp/side/np-put.log" -m tvm.exec.rpc_server \
		--host 127.0.0.1 --port "$sport" --port-end "$((sport + 1))" \
		--tracker "$farm" --key np-put
	nput=$tpid
	tvm_start "$tmp/side/np-proxy.log" -m tvm.exec.rpc_server \
		--host 127.0.0.1 --port "$fport" --through-proxy --key np-proxy
	nproxy=$tpid
	start_tvm_tracker sessions
	pport=$(free_port)
	wport=$(free_port)
	tvm_start "$tmp/side/tvm-proxy.log" -m tvm.exec.rpc_proxy \
		--host 127.0.0.1 --port "$pport" --port-end "$((pport + 1))" \
		--web-port "$wport" --tracker "$tfarm"
	tproxy=$tpid
	wait_port "$pport"
	sport2=$(free_port)
	tvm_start "$tmp/side/tvm-put.log" -m tvm.exec.rpc_server \
		--host 127.0.0.1 --port "$sport2" --port-end "$((sport2 + 1))" \
		--tracker "$tfarm" --key tvm-put
	tput=$tpid
	tvm_start "$tmp/side/tvm-proxied.log" -m tvm.exec.rpc_server \
		--host 127.0.0.1 --port "$pport" --through-proxy \
		--key tvm-proxy
	tproxied=$tpid
	dport=$(free_port)
	tvm_start "$tmp/side/direct.log" -m tvm.exec.rpc_server \
		--host 127.0.0.1 --port "$dport" --port-end "$((dport + 1))"
	direct=$tpid
	# npufarm-agent on the peer's own runtime.
	rt=$(bash -c '. "$0/ENV.sh" >/dev/null 2>&1; echo "$TVM_LIBRARY_PATH"' \
		"$tvmpeer")/libtvm_runtime.so
	"$agent" --broker "$farm" --key np-agent --name side-agent \
		--tvm-runtime "$rt" --workdir "$tmp/side/agent-work" \
		2>"$tmp/side/agent.log" &
	apid=$!
	wait_port "$dport"
	sleep 2 # settle: every server has imported tvm and registered
	echo "run.sh: side by side: board-side idle RSS" >&2
	tree_rss_kib "$direct" >"$tmp/side/rss-rpc-server"
	tree_rss_kib "$apid" >"$tmp/side/rss-agent"
	echo "run.sh: side by side: session set-up with the real client" >&2
	setup_time direct --direct "127.0.0.1:$dport"
	setup_time np-put --tracker "$farm" --key np-put
	setup_time tvm-put --tracker "$tfarm" --key tvm-put
	setup_time np-proxy --tracker "$farm" --key np-proxy
	setup_time tvm-proxy --tracker "$tfarm" --key tvm-proxy
	setup_time np-agent --tracker "$farm" --key np-agent
	setup_time direct2 --direct "127.0.0.1:$dport"
	echo "run.sh: side by side: 64 MiB up and down with the real client" >&2
	setup_time xfer-direct --direct "127.0.0.1:$dport" --rounds 1 \
		--transfer-mib 64
	setup_time xfer-np --tracker "$farm" --key np-proxy --rounds 1 \
		--transfer-mib 64 --cpu-pid "$pid"
	setup_time xfer-tvm --tracker "$tfarm" --key tvm-proxy --rounds 1 \
		--transfer-mib 64 --cpu-pid "$tproxy"
	kill "$apid"
	wait "$apid" || echo "run.sh: the agent did not exit 0" >&2
	apid=
	for p in $direct $tproxied $tput $tproxy $nproxy $nput; do
		tvm_stop "$p"
	done
	tvm_stop "$ttpid"
	stop_broker side-sessions
}

# run_side [bench options]: everything above plus the loopback limits.
run_side() {
	mkdir "$tmp/side"
	"$loopbench" >"$tmp/side/limits"
	run_side_tracker "$@"
	[ -z "$tvmpeer" ] || run_side_sessions
}

: >"$tmp/rows"
run_phase cycles "$@"
run_phase idle "$@"
run_relay
run_agent
run_jobs
run_side "$@"

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

# ---- the side-by-side table -------------------------------------------

# col FILE METRIC N: the number that starts column N (3: the value, 4: the
# baseline) of the row of FILE whose metric starts with METRIC; "" if none.
col() {
	[ -f "$1" ] || return 0
	awk -F'|' -v m="$2" -v n="$3" '
		{ k = $2; sub(/^ +/, "", k) }
		index(k, m) == 1 { v = $n; sub(/^ +/, "", v); split(v, w, " ")
			print w[1]; exit }' "$1"
}
val() { col "$1" "$2" 3; }
# name FILE METRIC: the whole metric text of that row.
name() {
	[ -f "$1" ] || return 0
	awk -F'|' -v m="$2" '
		{ k = $2; sub(/^ +/, "", k); sub(/ +$/, "", k) }
		index(k, m) == 1 { print k; exit }' "$1"
}
base() { col "$1" "$2" 4; }
# side_row FIGURE TVM NPUFARM UNIT BASELINE: one row, with npufarm / TVM.
side_row() {
	t=$2
	n=$3
	ratio=-
	case "$t" in
	'' | failed) t="not measured" ;;
	*)
		case "$n" in
		'' | failed) ;;
		*) ratio=$(awk -v a="$n" -v b="$t" \
			'BEGIN { if (b > 0) printf "%.3g", a / b }') ;;
		esac
		t="$t${4:+ $4}"
		;;
	esac
	case "$n" in
	'' | failed) n="not measured" ;;
	*) n="$n${4:+ $4}" ;;
	esac
	echo "| $1 | $t | $n | $ratio | $5 |"
}
# xfer NAME KEY: KEY=value from the transfer line of session run NAME.
xfer() {
	f=$side/setup-$1.out
	[ ! -f "$f" ] || sed -n "s/^transfer.* $2=\([-0-9.]*\).*/\1/p" "$f"
}
# file_or_empty FILE: its first line, or nothing.
file_or_empty() {
	[ ! -f "$1" ] || head -n 1 "$1"
}

side=$tmp/side
if [ -n "$tvmpeer" ]; then
	peer_note="TVM $(bash -c '. "$0/ENV.sh" >/dev/null 2>&1; echo "$TVM_PEER_VERSION"' "$tvmpeer") from $tvmpeer"
else
	peer_note="No TVM peer (set NPUFARM_TVM_PEER=DIR to measure one)"
fi
cat <<EOF

### npufarm and TVM side by side

$peer_note.  The same load generators against TVM's Python tracker (CPU
and RSS of its popen_worker process, where the tracker runs), proxy and
rpc_server and against npufarm-broker, alternating, in this run; session
set-up is the real TVM client (bench/tvm_setup.py, median of 15).
npufarm / TVM above 1 means more for npufarm: better for cycles/s, worse
for everything else.

| figure | TVM | npufarm | npufarm / TVM | baseline (same run) |
|---|---|---|---|---|
EOF
for ack in on off; do
	f=$side/np-cycles-$ack
	g=$side/tvm-cycles-$ack
	side_row "$(name "$f" 'lease cycles/s'), load generator's delayed ACK $ack" \
		"$(val "$g" 'lease cycles/s')" "$(val "$f" 'lease cycles/s')" \
		"" "$(base "$f" 'lease cycles/s') echo cycles/s"
	side_row "tracker CPU per lease cycle, delayed ACK $ack" \
		"$(val "$g" 'tracker CPU per lease')" \
		"$(val "$f" 'tracker CPU per lease')" us \
		"$(base "$f" 'tracker CPU per lease') us echo CPU per round trip"
	side_row "grant latency p50, 16 clients, delayed ACK $ack" \
		"$(val "$g" 'grant latency p50 (16')" \
		"$(val "$f" 'grant latency p50 (16')" us \
		"$(base "$f" 'grant latency p50 (16') us echo"
	side_row "grant latency p50, 1 client, delayed ACK $ack" \
		"$(val "$g" 'grant latency p50 (1 ')" \
		"$(val "$f" 'grant latency p50 (1 ')" us \
		"$(base "$f" 'grant latency p50 (1 ') us echo"
done
side_row "$(name "$side/np-idle" 'tracker RSS')" \
	"$(val "$side/tvm-idle" 'tracker RSS')" \
	"$(val "$side/np-idle" 'tracker RSS')" MB \
	"$(base "$side/np-idle" 'tracker RSS') MB npufarm with none"
side_row "$(name "$side/np-idle" 'SUMMARY p50'), delayed ACK off" \
	"$(val "$side/tvm-idle" 'SUMMARY p50')" \
	"$(val "$side/np-idle" 'SUMMARY p50')" ms \
	"$(base "$side/np-idle" 'SUMMARY p50') ms echo of the same bytes"
sd=$(file_or_empty "$side/setup-direct")
sd2=$(file_or_empty "$side/setup-direct2")
side_row "session set-up, REQUEST -> first call, rpc_server registered by PUT" \
	"$(file_or_empty "$side/setup-tvm-put")" \
	"$(file_or_empty "$side/setup-np-put")" ms \
	"${sd:-not measured} / ${sd2:-not measured} ms direct connect (first / last)"
side_row "session set-up, REQUEST -> first call, rpc_server --through-proxy" \
	"$(file_or_empty "$side/setup-tvm-proxy")" \
	"$(file_or_empty "$side/setup-np-proxy")" ms \
	"${sd:-not measured} / ${sd2:-not measured} ms direct connect (first / last)"
side_row "64 MiB upload, real client to rpc_server through the proxy (TVM's proxy vs the farm port)" \
	"$(xfer xfer-tvm up_mibs)" "$(xfer xfer-np up_mibs)" MiB/s \
	"$(xfer xfer-direct up_mibs) MiB/s direct"
side_row "64 MiB download, the same" \
	"$(xfer xfer-tvm down_mibs)" "$(xfer xfer-np down_mibs)" MiB/s \
	"$(xfer xfer-direct down_mibs) MiB/s direct"
side_row "proxy CPU per 64 MiB upload (TVM's rpc_proxy and children vs npufarm-broker)" \
	"$(xfer xfer-tvm up_cpu_ms)" "$(xfer xfer-np up_cpu_ms)" ms "-"
side_row "proxy CPU per 64 MiB download" \
	"$(xfer xfer-tvm down_cpu_ms)" "$(xfer xfer-np down_cpu_ms)" ms "-"
rrss=$(file_or_empty "$side/rss-rpc-server")
[ -z "$rrss" ] || rrss=$(awk -v k="$rrss" 'BEGIN { printf "%.1f", k / 1024 }')
side_row "session set-up, REQUEST -> first call, npufarm-agent on the peer's runtime (TVM: rpc_server by PUT)" \
	"$(file_or_empty "$side/setup-tvm-put")" \
	"$(file_or_empty "$side/setup-np-agent")" ms \
	"${sd:-not measured} / ${sd2:-not measured} ms direct connect (first / last)"
arss=$(file_or_empty "$side/rss-agent")
[ -z "$arss" ] || arss=$(awk -v k="$arss" 'BEGIN { printf "%.1f", k / 1024 }')
[ -n "$arss" ] || arss=$(val "$tmp/agent_rows" 'agent resident memory, idle')
side_row "board-side idle RSS (rpc_server and its children; npufarm-agent)" \
	"$rrss" "$arss" MB \
	"$(base "$tmp/agent_rows" 'agent resident memory, idle') MB sleep(1)"
echo "| physical limit: loopback stream, one TCP connection | - | - | - | $(val "$side/limits" "loopback stream") MiB/s |"
echo "| physical limit: one loopback round trip, p50 | - | - | - | $(val "$side/limits" "loopback round trip, 1") us |"
