#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# The Debian packages, built and used as an operator would: a copy of the
# tree built with `dpkg-buildpackage -us -uc -b` (nocheck: the suite runs
# elsewhere), lintian-clean at warning level, the agent package depending
# only on what the agent links; then installed into this machine with
# apt-get, and a broker, an agent and a tuning job run from the installed
# files only (/usr/bin, the installed kernel header through
# `pkg-config npufarm-kernel` and its installed example), the units
# verified in place, man pages and completion found.  With the arm64
# cross tools, the board's package too: `dpkg-buildpackage -aarm64
# -Pnocheck,pkg.npufarm.agentonly -B`, installed in place of the native
# agent, run under qemu-aarch64 against the installed broker with a
# kernel cross-built from the installed example.  Then all purged.
#
# Usage: test-debs.sh SOURCE_ROOT WORK_DIR.  TAP on stdout.  Skipped (an
# empty TAP plan with SKIP) when not root or without dpkg-buildpackage,
# debhelper, lintian (tests/run.sh installs them), or when npufarm
# packages are already installed here: the test never replaces an
# operator's packages.
set -u
src=$1 work=$2
. "$(dirname "$0")/../tap.sh"

# A TAP test skips as a whole with an empty plan and status 0 (meson's
# TAP protocol counts it as skipped; a non-zero status would be an error).
skip_all() {
	echo "1..0 # SKIP $1"
	exit 0
}

pkgs="npufarm-broker npufarm-agent npufarm libnpufarm-kernel-dev"
[ "$(id -u)" = 0 ] || skip_all "needs root (installs the packages)"
[ -z "${NPUFARM_IN_PACKAGE_BUILD:-}" ] ||
	skip_all "inside a package build (debian/rules): no packages in packages"
for t in dpkg-buildpackage dh lintian apt-get; do
	command -v "$t" >/dev/null 2>&1 || skip_all "$t not installed"
done
for p in $pkgs; do
	if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q installed; then
		skip_all "$p is already installed on this machine (apt-get purge it to run this test)"
	fi
done

version=$(sed -n '1s/^npufarm (\([^)]*\)).*/\1/p' "$src/debian/changelog")
rm -rf "$work"
mkdir -p "$work/npufarm-$version" "$work/run"
installed=0
pids=
cleanup() {
	for pid in $pids; do
		kill -TERM "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	[ "$installed" = 0 ] || purge >/dev/null 2>&1
}
# Whatever of ours is installed, any architecture (apt-get purge NAME
# means the native one only).
purge() {
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 \
	    purge -y -q $(dpkg-query -W -f='${db:Status-Abbrev} ${binary:Package}\n' \
	    $pkgs 2>/dev/null | sed -n 's/^.i *//p')
}
trap cleanup EXIT

# --- build ---------------------------------------------------------------
# The tree as git has it (tracked and new files, not the build dirs).
if [ -d "$src/.git" ] || [ -f "$src/.git" ]; then
	(cd "$src" && git ls-files -co --exclude-standard -z |
	    xargs -0 tar cf -) | tar xf - -C "$work/npufarm-$version"
else
	(cd "$src" && tar cf - --exclude='./build*' --exclude='./obj-*' .) |
	    tar xf - -C "$work/npufarm-$version"
fi
start=$(date +%s)
if (cd "$work/npufarm-$version" &&
	DEB_BUILD_OPTIONS="nocheck parallel=2" dpkg-buildpackage -us -uc -b \
	-Pnocheck) >"$work/build.log" 2>&1; then
	ok "dpkg-buildpackage -us -uc -b ($(($(date +%s) - start)) s)"
else
	not_ok "dpkg-buildpackage -us -uc -b" "$(cat "$work/build.log")"
	echo "1..$n"
	exit 1
fi
changes=$(ls "$work"/npufarm_"$version"_*.changes)
for p in $pkgs; do
	check "built $p" sh -c "ls '$work'/${p}_${version}_*.deb"
done
# What Debian's own packages pass: no error or warning (info and
# pedantic tags are advice).
check "lintian: no errors or warnings" \
	lintian --fail-on error,warning "$changes"

# The native package file of $1 (arch-specific or all).
arch=$(dpkg --print-architecture)
deb() {
	ls "$work"/"$1"_"$version"_"$arch".deb "$work"/"$1"_"$version"_all.deb \
	    2>/dev/null
}
agent_deps=$(dpkg-deb -f "$(deb npufarm-agent)" Depends)
echo "# npufarm-agent Depends: $agent_deps"
check "npufarm-agent depends on neither sqlite nor check" \
	sh -c "! echo '$agent_deps' | grep -E 'sqlite|check'"
check "the binaries are stripped (debug symbols in -dbgsym)" \
	sh -c "dpkg-deb --fsys-tarfile '$(deb npufarm-agent)' |
	tar xOf - ./usr/bin/npufarm-agent >'$work/agent.bin' &&
	! readelf -S '$work/agent.bin' | grep -q '\.debug_info' &&
	ls '$work'/npufarm-agent-dbgsym_*.deb"
for p in $pkgs; do
	echo "# $(basename "$(deb "$p")"): $(stat -c %s "$(deb "$p")") bytes"
done

# --- the agent for arm64 boards ------------------------------------------
# dpkg-buildpackage -aarm64 with the agent-only profile, as for a board.
# Debian 12's libevent-dev:arm64 cannot be installed beside the native
# one (not Multi-Arch: same): when it is the only unmet build dependency,
# build with -d and cross/debian12-libevent.sh's stand-in .pc instead.
arm64_deb=
arm64_why=
if ! command -v aarch64-linux-gnu-gcc >/dev/null 2>&1; then
	arm64_why="no aarch64-linux-gnu-gcc (crossbuild-essential-arm64)"
elif ! command -v qemu-aarch64 >/dev/null 2>&1; then
	arm64_why="no qemu-aarch64 (qemu-user)"
fi
if [ -z "$arm64_why" ]; then
	profiles=nocheck,pkg.npufarm.agentonly
	unmet=$(cd "$work/npufarm-$version" &&
	    dpkg-checkbuilddeps -aarm64 -P"$profiles" 2>&1 |
	    sed -n 's/.*Unmet build dependencies: //p')
	flags= pcpath=
	case $unmet in
	"") ;;
	"libevent-dev (>= 2.1)")
		flags=-d
		pcpath=$("$src/cross/debian12-libevent.sh" aarch64-linux-gnu \
		    "$work/arm64-pc") || arm64_why="$pcpath"
		;;
	*) arm64_why="unmet arm64 build dependencies: $unmet" ;;
	esac
fi
if [ -z "$arm64_why" ]; then
	rm -f "$work"/npufarm-agent_*_arm64.deb
	start=$(date +%s)
	if (cd "$work/npufarm-$version" &&
	    PKG_CONFIG_PATH=$pcpath DEB_BUILD_OPTIONS="nocheck parallel=2" \
	    dpkg-buildpackage -aarm64 -P"$profiles" -B $flags -us -uc) \
	    >"$work/build-arm64.log" 2>&1; then
		ok "dpkg-buildpackage -aarm64 -P$profiles -B $flags ($(($(date +%s) - start)) s)"
		arm64_deb=$(ls "$work"/npufarm-agent_"$version"_arm64.deb)
		check "lintian (arm64): no errors or warnings" \
		    lintian --fail-on error,warning \
		    "$work/npufarm_${version}_arm64.changes"
		check "the arm64 package holds an arm64 agent" \
		    sh -c "dpkg-deb -f '$arm64_deb' Architecture | grep -qx arm64 &&
		    dpkg-deb --fsys-tarfile '$arm64_deb' |
		    tar xOf - ./usr/bin/npufarm-agent >'$work/agent-arm64.bin' &&
		    file '$work/agent-arm64.bin' | grep -q 'ARM aarch64'"
		echo "# $(basename "$arm64_deb"): $(stat -c %s "$arm64_deb") bytes"
	else
		not_ok "dpkg-buildpackage -aarm64" "$(cat "$work/build-arm64.log")"
	fi
else
	ok "dpkg-buildpackage -aarm64 # SKIP $arm64_why"
fi

# --- install -------------------------------------------------------------
debs=
for p in $pkgs; do
	debs="$debs $(deb "$p")"
done
installed=1
if out=$(DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 \
	install -y -q --no-install-recommends $debs 2>&1); then
	ok "apt-get install the four packages"
else
	not_ok "apt-get install the four packages" "$out"
	echo "Bail out! nothing to run"
	exit 1
fi
for f in /usr/bin/npufarm-broker /usr/bin/npufarm-agent /usr/bin/npufarm \
	/usr/lib/systemd/system/npufarm-broker.service \
	/usr/lib/systemd/system/npufarm-agent@.service \
	/usr/libexec/npufarm/npu-reset-sysfs \
	/usr/share/doc/npufarm-agent/examples/reset-hook.conf \
	/usr/share/doc/npufarm-broker/examples/broker.json.example \
	/usr/include/npufarm/kernel.h /usr/share/pkgconfig/npufarm-kernel.pc; do
	check "installed $f" test -s "$f"
done
check "man pages: npufarm(1), npufarm-broker(8), npufarm-agent(8)" \
	sh -c 'ls /usr/share/man/man1/npufarm.1.gz \
	/usr/share/man/man8/npufarm-broker.8.gz \
	/usr/share/man/man8/npufarm-agent.8.gz &&
	if command -v man >/dev/null; then man -w npufarm-agent; fi'
check "bash completion loads for the three commands" \
	bash -c '. /usr/share/bash-completion/bash_completion &&
	for c in npufarm npufarm-broker npufarm-agent; do
		__load_completion $c && complete -p $c || exit 1; done'
if command -v systemd-analyze >/dev/null 2>&1; then
	check "systemd-analyze verify the installed units" \
	    sh -c 'out=$(systemd-analyze verify --man=no \
	    npufarm-broker.service npufarm-agent@board-1.service 2>&1);
	    echo "$out"; [ -z "$out" ]'
fi

# --- run from the installed files ----------------------------------------
run=$work/run
/usr/bin/npufarm-broker --listen 127.0.0.1:0 --http 127.0.0.1:0 \
	--db "$run/npufarm.db" --ready-file "$run/ready.json" \
	2>"$run/broker.log" &
broker_pid=$!
pids="$broker_pid"
i=0
while [ ! -s "$run/ready.json" ] && [ "$i" -lt 100 ] &&
	kill -0 "$broker_pid" 2>/dev/null; do
	i=$((i + 1))
	sleep 0.1
done
farm=$(sed -n 's/.*"farm": *\[ *"\([^"]*\)".*/\1/p' "$run/ready.json")
http=$(sed -n 's/.*"http": *"\([^"]*\)".*/\1/p' "$run/ready.json")
if [ -n "$farm" ] && [ -n "$http" ]; then
	ok "the installed broker is ready ($farm, http $http)"
else
	not_ok "the installed broker is ready" "$(cat "$run/broker.log")"
fi
/usr/bin/npufarm-agent --broker "$farm" --key pkgtest --name pkg-board-1 \
	--workdir "$run/agent" 2>"$run/agent.log" &
pids="$! $pids"

# A kernel author's build: the installed example, header and .pc only.
mkdir "$run/kernel"
cp /usr/share/doc/libnpufarm-kernel-dev/examples/Makefile \
	/usr/share/doc/libnpufarm-kernel-dev/examples/matmul.c "$run/kernel/"
check "the example kernel builds with pkg-config npufarm-kernel" \
	make -C "$run/kernel" CFLAGS="-O2 -Werror"
export NPUFARM_BROKER="http://$http"
# A job of KEY with the matmul kernel in DIR; waits for it, then checks
# the ledger: its one task ok, on board BOARD.
run_job() {
	key=$1 dir=$2 board=$3
	cat >"$dir/job.json" <<JOB
{"key": "$key", "user": "pkg", "queue_timeout": 60, "tasks": [
 {"runner": "kernel", "artifact_file": "matmul_t16.so",
  "entry": "matmul", "name": "tile=16", "timeout": 30,
  "args": [{"dtype": "float32", "shape": [64, 64], "fill": {"random": 1}},
           {"dtype": "float32", "shape": [64, 64], "fill": {"random": 2}},
           {"dtype": "float32", "shape": [64, 64]}],
  "measurement": {"number": 2, "repeat": 2}}]}
JOB
	job=$(/usr/bin/npufarm submit "$dir/job.json" 2>"$dir/submit.err")
	if [ -z "$job" ]; then
		not_ok "npufarm submit ($key)" \
		    "$(cat "$dir/submit.err" "$run/broker.log")"
		return
	fi
	ok "npufarm submit (key $key, job $job)"
	check "npufarm wait: the task ran on $board, ok" \
	    /usr/bin/npufarm --timeout 60 wait "$job"
	check "the ledger has the task ok on $board" \
	    sh -c "sqlite3 '$run/npufarm.db' \"SELECT outcome || ' ' || board
	    FROM task_results WHERE job_id = $job\" | grep -qx 'ok $board'"
}
run_job pkgtest "$run/kernel" pkg-board-1
check "npufarm status shows the board" \
	sh -c "/usr/bin/npufarm status | grep pkg-board-1"

# An arm64 board: the arm64 package installed (replacing the native one),
# its agent under qemu, and a kernel cross-built from the installed
# example with the arm64 pkg-config (the .pc is arch-independent).
if [ -n "$arm64_deb" ]; then
	check "apt-get install the arm64 npufarm-agent" \
	    env DEBIAN_FRONTEND=noninteractive apt-get \
	    -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends \
	    "$arm64_deb"
	check "npufarm-agent:arm64 is installed" \
	    sh -c "dpkg-query -W -f='\${Architecture}' npufarm-agent |
	    grep -qx arm64 && file -L /usr/bin/npufarm-agent |
	    grep -q 'ARM aarch64'"
	qemu-aarch64 /usr/bin/npufarm-agent --broker "$farm" --key pkgarm \
	    --name pkg-arm64-1 --workdir "$run/agent-arm64" \
	    2>"$run/agent-arm64.log" &
	pids="$! $pids"
	mkdir "$run/kernel-arm64"
	cp "$run/kernel/Makefile" "$run/kernel/matmul.c" "$run/kernel-arm64/"
	check "the example kernel cross-builds for arm64" \
	    sh -c "make -C '$run/kernel-arm64' CC=aarch64-linux-gnu-gcc \
	    PKG_CONFIG=aarch64-linux-gnu-pkg-config CFLAGS='-O2 -Werror' &&
	    file '$run/kernel-arm64/matmul_t16.so' | grep -q 'ARM aarch64'"
	run_job pkgarm "$run/kernel-arm64" pkg-arm64-1
fi
kill -TERM "$broker_pid"
if wait "$broker_pid"; then
	ok "the installed broker stops cleanly on SIGTERM"
else
	not_ok "the installed broker stops cleanly on SIGTERM" \
	    "$(cat "$run/broker.log")"
fi
pids=${pids% "$broker_pid"}

# --- purge ---------------------------------------------------------------
for pid in $pids; do
	kill -TERM "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
done
pids=
installed=0
check "apt-get purge the packages" purge
check "purged: no npufarm package left" \
	sh -c "! dpkg-query -W -f='\${db:Status-Abbrev} \${binary:Package}\n' \
	$pkgs 2>/dev/null | grep '^.i'"
check "purged: nothing left in /usr/bin" \
	sh -c '! ls /usr/bin/npufarm*'
tap_done
