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
# verified in place, man pages and completion found; then purged.
#
# Usage: test-debs.sh SOURCE_ROOT WORK_DIR.  TAP on stdout.  Exit 77
# (skipped) when not root or without dpkg-buildpackage/debhelper/lintian
# (tests/run.sh installs them), or when npufarm packages are already
# installed here: the test never replaces an operator's packages.
set -u
src=$1 work=$2
. "$(dirname "$0")/../tap.sh"

skip_all() {
	echo "1..0 # SKIP $1"
	exit 77
}

pkgs="npufarm-broker npufarm-agent npufarm libnpufarm-kernel-dev"
[ "$(id -u)" = 0 ] || skip_all "needs root (installs the packages)"
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
	[ "$installed" = 0 ] ||
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 \
		    purge -y -q $pkgs >/dev/null 2>&1
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

deb() {
	ls "$work"/"$1"_"$version"_*.deb
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

# --- install -------------------------------------------------------------
debs=
for p in $pkgs; do
	debs="$debs $(deb "$p")"
done
installed=1
check "apt-get install the four packages" \
	env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 \
	install -y -q --no-install-recommends $debs
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
cat >"$run/job.json" <<JOB
{"key": "pkgtest", "user": "pkg", "queue_timeout": 60, "tasks": [
 {"runner": "kernel", "artifact_file": "kernel/matmul_t16.so",
  "entry": "matmul", "name": "tile=16", "timeout": 30,
  "args": [{"dtype": "float32", "shape": [64, 64], "fill": {"random": 1}},
           {"dtype": "float32", "shape": [64, 64], "fill": {"random": 2}},
           {"dtype": "float32", "shape": [64, 64]}],
  "measurement": {"number": 2, "repeat": 2}}]}
JOB
export NPUFARM_BROKER="http://$http"
job=$(/usr/bin/npufarm submit "$run/job.json" 2>"$run/submit.err")
if [ -n "$job" ]; then
	ok "npufarm submit (job $job)"
	check "npufarm wait: the task ran on the installed agent, ok" \
	    /usr/bin/npufarm --timeout 60 wait "$job"
	check "npufarm status shows the board" \
	    sh -c "/usr/bin/npufarm status | grep pkg-board-1"
else
	not_ok "npufarm submit" "$(cat "$run/submit.err" "$run/broker.log")"
fi
kill -TERM "$broker_pid"
if wait "$broker_pid"; then
	ok "the installed broker stops cleanly on SIGTERM"
else
	not_ok "the installed broker stops cleanly on SIGTERM" \
	    "$(cat "$run/broker.log")"
fi
pids=${pids% "$broker_pid"}
check "the ledger recorded the task as ok" \
	sh -c "sqlite3 '$run/npufarm.db' \
	\"SELECT outcome FROM task_results WHERE job_id = $job\" | grep -qx ok"

# --- purge ---------------------------------------------------------------
for pid in $pids; do
	kill -TERM "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
done
pids=
installed=0
check "apt-get purge the four packages" \
	env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 \
	purge -y -q $pkgs
check "purged: nothing left in /usr/bin" \
	sh -c '! ls /usr/bin/npufarm*'
tap_done
