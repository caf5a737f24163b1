#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# arm64.sh SOURCE_ROOT CROSS_BUILD TEST [ARGS...]: cross-build the agent
# alone for arm64 (cross/aarch64-linux-gnu.ini, -Dbroker=false -Dcli=false
# -Dtests=auto: the agent, the fake TVM runtime and the test kernels, no
# check) into CROSS_BUILD, then run TEST (test-arm64-agent) with
# NPUFARM_ARM64_BUILD and NPUFARM_QEMU set, its exit status ours.
#
# Skipped (an empty TAP plan with SKIP) without the tools: crossbuild-essential-arm64,
# qemu-user (or qemu-user-static), libjansson-dev:arm64, libssl-dev:arm64,
# libsystemd-dev:arm64, pkgconf:arm64, libevent-2.1-7:arm64 (or
# libevent-dev:arm64; tests/run.sh installs them).  A failing cross build
# fails.
set -u
src=$1 cross=$2
shift 2
triplet=aarch64-linux-gnu
# Skipped as a whole: an empty TAP plan, status 0 (meson's TAP protocol).
skip() {
	echo "1..0 # SKIP $1"
	exit 0
}
command -v $triplet-gcc >/dev/null 2>&1 ||
	skip "no $triplet-gcc (crossbuild-essential-arm64)"
command -v $triplet-pkg-config >/dev/null 2>&1 ||
	skip "no $triplet-pkg-config (pkgconf:arm64)"
qemu=$(command -v qemu-aarch64 || command -v qemu-aarch64-static) ||
	skip "no qemu-aarch64 (qemu-user)"
for pc in jansson libcrypto libsystemd; do
	$triplet-pkg-config --exists $pc || skip "no $pc for arm64 ($pc -dev:arm64)"
done
pcpath=
if ! $triplet-pkg-config --exists libevent; then
	# Debian 12: libevent-dev:arm64 would replace the native one.
	pcpath=$("$src/cross/debian12-libevent.sh" $triplet "$cross-pc" 2>&1) ||
		skip "$pcpath"
fi

log=$cross.log
if [ ! -f "$cross/build.ninja" ]; then
	rm -rf "$cross"
	if ! meson setup "$cross" "$src" \
		--cross-file "$src/cross/aarch64-linux-gnu.ini" \
		-Dbroker=false -Dcli=false -Dtests=auto \
		${pcpath:+-Dpkg_config_path=$pcpath} >"$log" 2>&1; then
		echo "Bail out! meson setup of the arm64 build failed:"
		sed 's/^/# /' "$log"
		exit 1
	fi
fi
if ! ninja -C "$cross" -j"${NPUFARM_JOBS:-2}" >>"$log" 2>&1; then
	echo "Bail out! the arm64 build failed:"
	tail -n 40 "$log" | sed 's/^/# /'
	exit 1
fi
NPUFARM_ARM64_BUILD=$cross NPUFARM_QEMU=$qemu exec "$@"
