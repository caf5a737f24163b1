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
#     build/demo/npufarm.db, five simulated TVM boards under two keys
#     (tvm-sim boards), a few AutoTVM-style requests (tvm-sim tune), then
#     `npufarm status` and `npufarm leases`, and rows of the ledger via
#     sqlite3;
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
libsqlite3-dev check libdlpack-dev libssl-dev sqlite3"
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
sim=$build/bench/tvm-sim
cli=$build/cli/npufarm
for exe in "$broker" "$sim"; do
	[ -x "$exe" ] || die "$exe was not built"
done

# --- 3. demo ----------------------------------------------------------------
rm -rf "$demo"
mkdir -p "$demo"
say "starting npufarm-broker (ledger $demo/npufarm.db)"
"$broker" --listen 127.0.0.1:0 --http 127.0.0.1:0 --db "$demo/npufarm.db" \
	--ready-file "$demo/ready.json" 2>"$demo/broker.log" &
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

say "registering simulated TVM boards: 3 x rk3588, 2 x jetson"
# Sessions of 400 ms; boards poll the tracker every 250 ms (TVM: 2 s).
"$sim" boards --tracker "$farm" --key rk3588 --count 3 --session-ms 400 \
	--poll-ms 250 --port-base 9090 >"$demo/boards-rk3588.log" 2>&1 &
pids="$! $pids"
"$sim" boards --tracker "$farm" --key jetson --count 2 --session-ms 400 \
	--poll-ms 250 --port-base 9190 >"$demo/boards-jetson.log" 2>&1 &
pids="$! $pids"
sleep 1

say "tuning: 5 requests for rk3588, 3 for jetson (one connection each)"
"$sim" tune --tracker "$farm" --key rk3588 --requests 5 --timeout-ms 15000
"$sim" tune --tracker "$farm" --key jetson --requests 3 --priority 2 \
	--timeout-ms 15000

if [ -x "$cli" ]; then
	say "npufarm status"
	NPUFARM_BROKER=http://$http "$cli" status
	say "npufarm leases"
	NPUFARM_BROKER=http://$http "$cli" leases
else
	say "$cli not built; skipping the CLI"
fi

say "the ledger, read with sqlite3 $demo/npufarm.db"
sqlite3 -header -column "$demo/npufarm.db" \
	'SELECT id, key, name, state FROM boards ORDER BY id LIMIT 5;'
echo
sqlite3 -header -column "$demo/npufarm.db" \
	'SELECT id, key, matchkey, (granted_us - requested_us) / 1000 AS wait_ms,
	        (released_us - granted_us) / 1000 AS held_ms
	 FROM leases ORDER BY id DESC LIMIT 5;'

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
