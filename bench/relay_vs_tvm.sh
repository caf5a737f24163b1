#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# The relay's CPU per byte against TVM's own RPC proxy (issue 15), in one
# run: the real TVM client (bench/tvm_setup.py) uploads and downloads
# MIB MiB (default 64; each one RPC packet, as TVM sends them) through
#
#   tvm       TVM's rpc_proxy (registered with TVM's rpc_tracker), an
#             rpc_server --through-proxy behind it;
#   npufarm   npufarm-broker's farm port, an rpc_server --through-proxy
#             behind it;
#   before    optionally a second broker binary (--before PATH, e.g. one
#             built from an older commit), the same way;
#
# alternating, ROUNDS rounds of three transfers each way, and prints the
# medians: throughput and the CPU the proxy process spent per transfer
# (all threads and children, the scheduler's ns account), with ratios to
# TVM's proxy, and the loopback stream of this host measured in the same
# run (npufarm-bench-loopback) as the physical limit.
#
#   bench/relay_vs_tvm.sh BUILD_DIR PEER_DIR [--rounds N] [--mib N]
#       [--before BROKER_BINARY]
#   e.g. bench/relay_vs_tvm.sh build /opt/tvm-peer-014 --rounds 5
#
# PEER_DIR is a built TVM peer (its ENV.sh).  Timings are for reading,
# never for pass/fail; exit 1 when a transfer failed.
set -u
usage="usage: bench/relay_vs_tvm.sh BUILD_DIR PEER_DIR [--rounds N] [--mib N] [--before BROKER]"
build=${1:?$usage}
peer=${2:?$usage}
shift 2
rounds=5
mib=64
before=
while [ $# -gt 0 ]; do
	case $1 in
	--rounds) rounds=$2; shift 2 ;;
	--mib) mib=$2; shift 2 ;;
	--before) before=$2; shift 2 ;;
	*) echo "$usage" >&2; exit 2 ;;
	esac
done
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$build" && pwd)
broker=$build/broker/npufarm-broker
loopbench=$build/bench/npufarm-bench-loopback
[ -f "$peer/ENV.sh" ] || { echo "relay_vs_tvm.sh: $peer has no ENV.sh" >&2; exit 1; }
for exe in "$broker" "$loopbench" ${before:+"$before"}; do
	[ -x "$exe" ] || { echo "relay_vs_tvm.sh: $exe is not built" >&2; exit 1; }
done
tmp=$(mktemp -d "${TMPDIR:-/tmp}/npufarm-relayvs.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do
		kill -- -"$p" 2>/dev/null || kill "$p" 2>/dev/null
	done
	wait 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

port() { # a loopback port that was free a moment ago
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
spawn() { # NAME CMD...: in its own process group, logging to $tmp/NAME.log
	local name=$1
	shift
	setsid "$@" >"$tmp/$name.log" 2>&1 &
	pids+=($!)
}
tvm() { # NAME ARGS...: python3 ARGS with the peer's environment
	local name=$1
	shift
	spawn "$name" bash -c '. "$0/ENV.sh" >/dev/null 2>&1; exec python3 "$@"' \
		"$peer" "$@"
}
wait_port() {
	for _ in $(seq 300); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	echo "relay_vs_tvm.sh: nothing listens on $1; see $tmp" >&2
	exit 1
}
# start_broker NAME BINARY: a broker with an rpc_server dialled in as
# board key NAME; sets the variable NAME_farm and NAME_pid.
start_broker() {
	local name=$1 bin=$2 farm
	farm=$(port)
	spawn "broker-$name" "$bin" --listen "127.0.0.1:$farm" \
		--http 127.0.0.1:0 --db "$tmp/$name.db"
	eval "${name}_pid=${pids[-1]}"
	wait_port "$farm"
	tvm "srv-$name" -m tvm.exec.rpc_server --host 127.0.0.1 \
		--port "$farm" --through-proxy --key "$name"
	eval "${name}_farm=127.0.0.1:$farm"
}

echo "relay_vs_tvm.sh: loopback limit" >&2
"$loopbench" >"$tmp/limits" || exit 1
tport=$(port)
tvm tracker -m tvm.exec.rpc_tracker --host 127.0.0.1 --port "$tport" \
	--port-end $((tport + 1))
wait_port "$tport"
pport=$(port)
wport=$(port)
tvm proxy -m tvm.exec.rpc_proxy --host 127.0.0.1 --port "$pport" \
	--port-end $((pport + 1)) --web-port "$wport" \
	--tracker "127.0.0.1:$tport"
# shellcheck disable=SC2034 # both read as ${!pid_var} and ${!farm_var}
tvm_pid=${pids[-1]}
# shellcheck disable=SC2034
tvm_farm=127.0.0.1:$tport
wait_port "$pport"
tvm srv-tvm -m tvm.exec.rpc_server --host 127.0.0.1 --port "$pport" \
	--through-proxy --key tvm
start_broker npufarm "$broker"
targets="tvm npufarm"
if [ -n "$before" ]; then
	start_broker before "$before"
	targets="tvm before npufarm"
fi
sleep 3 # every server has imported tvm and registered

for r in $(seq "$rounds"); do
	for t in $targets; do
		farm_var=${t}_farm
		pid_var=${t}_pid
		if ! timeout 300 bash -c \
			'. "$0/ENV.sh" >/dev/null 2>&1; exec python3 "$@"' "$peer" \
			"$here/tvm_setup.py" --tracker "${!farm_var}" --key "$t" \
			--rounds 1 --transfer-mib "$mib" --cpu-pid "${!pid_var}" \
			>"$tmp/out" 2>>"$tmp/client.log"; then
			echo "relay_vs_tvm.sh: round $r, $t failed:" >&2
			tail -n 5 "$tmp/client.log" >&2
			exit 1
		fi
		sed -n "s/^transfer /$t /p" "$tmp/out" >>"$tmp/results"
	done
	echo "relay_vs_tvm.sh: round $r of $rounds done" >&2
done

python3 - "$tmp/results" "$tmp/limits" "$mib" "$rounds" "$targets" \
	"$(bash -c '. "$0/ENV.sh" >/dev/null 2>&1; echo "$TVM_PEER_VERSION"' "$peer")" <<'EOF'
import re, statistics, sys
path, limits, mib, rounds, targets, version = sys.argv[1:7]
targets = targets.split()
vals = {}
for line in open(path):
    t, rest = line.split(" ", 1)
    for k, v in re.findall(r"(\w+)=([-0-9.]+)", rest):
        vals.setdefault(t, {}).setdefault(k, []).append(float(v))
loop = "?"
for line in open(limits):
    if line.startswith("| loopback stream"):
        loop = line.split("|")[2].strip()
names = {"tvm": "TVM %s rpc_proxy" % version, "npufarm": "npufarm-broker",
         "before": "npufarm-broker (before)"}
print("%s MiB each way as one RPC packet, the real TVM v%s client, "
      "medians of %s alternating rounds (3 transfers each)" % (mib, version, rounds))
print()
print("| figure | " + " | ".join(names[t] for t in targets) + " | "
      + " | ".join("%s / TVM" % names[t] for t in targets if t != "tvm")
      + " | limit (same run) |")
print("|---" * (1 + len(targets) + len(targets) - 1 + 1) + "|")
rows = (("upload", "up_mibs", "MiB/s", loop), ("download", "down_mibs", "MiB/s", loop),
        ("proxy CPU per %s MiB upload" % mib, "up_cpu_ms", "ms", "-"),
        ("proxy CPU per %s MiB download" % mib, "down_cpu_ms", "ms", "-"))
for label, k, unit, lim in rows:
    m = {t: statistics.median(vals[t][k]) for t in targets}
    cells = ["%.1f %s" % (m[t], unit) for t in targets]
    ratios = ["%.3f" % (m[t] / m["tvm"]) if m["tvm"] > 0 else "-"
              for t in targets if t != "tvm"]
    print("| %s | %s | %s | %s |" % (label, " | ".join(cells), " | ".join(ratios),
                                     "loopback stream %s" % lim if lim != "-" else "-"))
EOF
