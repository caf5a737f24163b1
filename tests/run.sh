#!/bin/sh
# Build and run the whole test suite, twice: a -Werror build in build/ and
# an AddressSanitizer + UndefinedBehaviorSanitizer build in build-asan/; and
# build the tree with clang and -Werror in build-clang/.
# Then every libFuzzer harness (tests/fuzz) for NPUFARM_FUZZ_SECONDS (30)
# each, in build-fuzz/ (clang); a crash, leak or sanitizer report fails.
# Works on a fresh Debian 12 machine as root: installs what is missing.
set -eu
cd "$(dirname "$0")/.."

# The packaging and arm64 tests (tests/pkg, tests/cross) need the Debian
# packaging tools, the arm64 cross toolchain, qemu-user and the arm64
# libraries the agent links (multiarch).  Not libevent-dev:arm64: Debian
# 12's is not co-installable with the native one (cross/debian12-libevent.sh
# stands in for it).
pkgs="meson ninja-build pkg-config gcc libevent-dev libjansson-dev
libsqlite3-dev check libdlpack-dev libssl-dev sqlite3 chromium libjs-chart.js
clang libclang-rt-14-dev
libsystemd-dev systemd build-essential dpkg-dev debhelper lintian
bash-completion file crossbuild-essential-arm64 qemu-user pkgconf:arm64
libjansson-dev:arm64 libssl-dev:arm64 libsystemd-dev:arm64
libevent-2.1-7:arm64"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
if [ -n "$missing" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "tests/run.sh: missing packages:$missing (run as root)" >&2
		exit 1
	fi
	case $missing in
	*:arm64*)
		dpkg --print-foreign-architectures | grep -qx arm64 ||
			dpkg --add-architecture arm64
		;;
	esac
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing
fi

jobs=${NPUFARM_JOBS:-2}
# Installed above, so the dashboard's browser test must not skip.
export NPUFARM_REQUIRE_CHROMIUM=1
[ -d build ] || meson setup build
[ -d build-asan ] || meson setup build-asan -Db_sanitize=address,undefined \
	-Db_lundef=false

status=0
ninja -C build -j"$jobs"
meson test -C build --print-errorlogs --num-processes "$jobs" || status=1
ninja -C build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	meson test -C build-asan --print-errorlogs --num-processes "$jobs" ||
	status=1
# Warning-free under clang too (-Werror): built, not run a third time.
[ -d build-clang ] || CC=clang meson setup build-clang --werror
ninja -C build-clang -j"$jobs" || status=1
[ -d build-fuzz ] || CC=clang meson setup build-fuzz -Dfuzz=true \
	-Dtests=disabled -Db_sanitize=address,undefined -Db_lundef=false
ninja -C build-fuzz -j"$jobs" || status=1
./tests/fuzz/run.sh build-fuzz "${NPUFARM_FUZZ_SECONDS:-30}" || status=1
exit $status
