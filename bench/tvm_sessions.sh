#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Real TVM sessions through every topology, against a direct session in the
# same run: TVM's own RPC server reached directly (the baseline), TVM's own
# RPC proxy, the broker's proxy (a server dialled in with --through-proxy),
# a server registered by PUT that the broker dials (--relay-boards all), and
# an npufarm agent serving the peer's own libtvm_runtime.so.  Each round
# runs one real TVM client per topology, alternating; the table has medians
# and their ratio to the direct session.
#
#   bench/tvm_sessions.sh BUILD_DIR PEER_DIR [ROUNDS [MIB]]
#   e.g. bench/tvm_sessions.sh build /opt/tvm-peer-026 3 32
#
# PEER_DIR is a TVM peer built by shared/tvm-peer/build.sh (its ENV.sh).
set -u
build=${1:?usage: bench/tvm_sessions.sh BUILD_DIR PEER_DIR [ROUNDS [MIB]]}
peer=${2:?usage: bench/tvm_sessions.sh BUILD_DIR PEER_DIR [ROUNDS [MIB]]}
rounds=${3:-3}
mib=${4:-32}
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$build" && pwd)
broker=$build/broker/npufarm-broker
agent=$build/agent/npufarm-agent
# shellcheck disable=SC1091
. "$peer/ENV.sh" || exit 1
kit=$here/../../shared/tvm-peer/kernels
[ -d "$kit" ] || kit=${NPUFARM_TVM_KERNELS:?set NPUFARM_TVM_KERNELS to shared/tvm-peer/kernels}
case $TVM_PEER_VERSION in
0.1*) ksrc=$kit/kernels_v014.c ;;
*) ksrc=$kit/kernels_ffi.c ;;
esac
tmp=$(mktemp -d "${TMPDIR:-/tmp}/npufarm-tvmbench.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do
		kill -- -"$p" 2>/dev/null || kill "$p" 2>/dev/null
	done
	wait 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
gcc -O2 -shared -fPIC -o "$tmp/k.so" "$ksrc" || exit 1

port() { # a free loopback port
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
spawn() { # run "$@" in its own process group, logging to $tmp/$1.log
	local name=$1
	shift
	setsid "$@" >"$tmp/$name.log" 2>&1 &
	pids+=($!)
}
wait_port() {
	for _ in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	echo "tvm_sessions.sh: nothing listens on $1; see $tmp" >&2
	return 1
}

# TVM's server, directly: the baseline.
p_direct=$(port)
spawn direct python3 -m tvm.exec.rpc_server --host 127.0.0.1 \
	--port "$p_direct" --port-end $((p_direct + 1)) --key bench
# TVM's own proxy, with a server behind it.
p_tproxy=$(port)
spawn tproxy python3 -m tvm.exec.rpc_proxy --host 127.0.0.1 \
	--port "$p_tproxy" --port-end $((p_tproxy + 1))
wait_port "$p_tproxy" || exit 1
spawn tproxy-srv python3 -m tvm.exec.rpc_server --through-proxy \
	--host 127.0.0.1 --port "$p_tproxy" --key bench
# The broker: proxy boards, PUT boards it dials, and an agent.
farm=$(port)
spawn broker "$broker" --listen "127.0.0.1:$farm" --http 127.0.0.1:0 \
	--db "$tmp/ledger.db" --relay-boards all --unknown-key-grace 0
wait_port "$farm" || exit 1
spawn bproxy-srv python3 -m tvm.exec.rpc_server --through-proxy \
	--host 127.0.0.1 --port "$farm" --key bproxy
p_put=$(port)
spawn bput-srv python3 -m tvm.exec.rpc_server --host 127.0.0.1 \
	--port "$p_put" --port-end $((p_put + 1)) --tracker "127.0.0.1:$farm" \
	--key bput
spawn agent "$agent" --broker "127.0.0.1:$farm" --key bagent \
	--name bench-agent --workdir "$tmp/agent" \
	--tvm-runtime "$TVM_LIBRARY_PATH/libtvm_runtime.so"
wait_port "$p_direct" || exit 1
sleep 3 # the servers register

topos="direct tvm-proxy broker-proxy broker-put agent"
run_one() { # topology -> one JSON line (or nothing)
	local c=$here/tvm_session_client.py
	case $1 in
	direct) timeout 300 python3 "$c" direct 127.0.0.1 "$p_direct" bench "$tmp/k.so" --mib "$mib" ;;
	tvm-proxy) timeout 300 python3 "$c" direct 127.0.0.1 "$p_tproxy" bench "$tmp/k.so" --mib "$mib" ;;
	broker-proxy) timeout 300 python3 "$c" tracker 127.0.0.1 "$farm" bproxy "$tmp/k.so" --mib "$mib" ;;
	broker-put) timeout 300 python3 "$c" tracker 127.0.0.1 "$farm" bput "$tmp/k.so" --mib "$mib" ;;
	agent) timeout 300 python3 "$c" tracker 127.0.0.1 "$farm" bagent "$tmp/k.so" --mib "$mib" ;;
	esac 2>>"$tmp/client.log" | tail -1
}
for r in $(seq "$rounds"); do
	for t in $topos; do
		line=$(run_one "$t")
		[ -n "$line" ] && echo "$t $line" >>"$tmp/results"
	done
	echo "tvm_sessions.sh: round $r of $rounds done" >&2
done

python3 - "$tmp/results" "$TVM_PEER_VERSION" "$mib" "$topos" <<'EOF'
import json, statistics, sys
path, version, mib, topos = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split()
rows = {}
try:
    for line in open(path):
        t, js = line.split(" ", 1)
        rows.setdefault(t, []).append(json.loads(js))
except FileNotFoundError:
    pass
def med(t, k):
    v = [r[k] for r in rows.get(t, [])]
    return statistics.median(v) if v else None
print(f"TVM v{version}, {mib} MiB each way, medians of {max((len(v) for v in rows.values()), default=0)} rounds; ratio to the direct session in ()")
print()
print("| topology | set-up (REQUEST -> first call) | upload MiB/s | download MiB/s | small calls/s |")
print("|---|---|---|---|---|")
base = {k: med("direct", k) for k in ("setup_s", "up_mib_s", "down_mib_s", "calls_per_s")}
for t in topos:
    if t not in rows:
        print(f"| {t} | failed | | | |")
        continue
    cells = []
    for k, fmt in (("setup_s", "{:.1f} ms"), ("up_mib_s", "{:.0f}"), ("down_mib_s", "{:.0f}"), ("calls_per_s", "{:.0f}")):
        v = med(t, k)
        shown = fmt.format(v * 1000 if k == "setup_s" else v)
        if base[k]:
            shown += f" ({v / base[k]:.2f}x)"
        cells.append(shown)
    print(f"| {t} | " + " | ".join(cells) + " |")
EOF
