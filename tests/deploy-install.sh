#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# `meson install --destdir` into a temporary dir: the units and example
# configs land where deploy/meson.build says, with every @var@ filled in;
# the broker accepts its example config (--check-config); the agent's
# example is valid JSON with only the agent's flag names as keys; and
# `systemd-analyze verify` passes on both units when it exists (it is not
# in every container: then that step says so and the rest still runs).
#
# Usage: deploy-install.sh BUILD_ROOT PREFIX BINDIR SYSCONFDIR UNITDIR EXAMPLEDIR
# (absolute paths as meson computed them).  TAP on stdout.
set -u
build=$1 prefix=$2 bindir=$3 sysconfdir=$4 unitdir=$5 exampledir=$6
n=0
failed=0

ok() {
	n=$((n + 1))
	echo "ok $n - $1"
}

not_ok() {
	n=$((n + 1))
	failed=$((failed + 1))
	echo "not ok $n - $1"
	[ -z "${2:-}" ] || printf '%s\n' "$2" | sed 's/^/# /'
}

check() {
	desc=$1
	shift
	if out=$("$@" 2>&1); then
		ok "$desc"
	else
		not_ok "$desc" "$out"
	fi
}

dest=$(mktemp -d /tmp/npufarm-install-XXXXXX)
trap 'rm -rf "$dest"' EXIT

check "meson install --destdir" \
	meson install -C "$build" --destdir "$dest" --no-rebuild --quiet

broker_unit=$dest$unitdir/npufarm-broker.service
agent_unit=$dest$unitdir/npufarm-agent@.service
for f in "$dest$bindir/npufarm-broker" "$dest$bindir/npufarm-agent" \
	"$broker_unit" "$agent_unit" "$dest$exampledir/broker.json.example" \
	"$dest$exampledir/agent.json.example"; do
	check "installed ${f#"$dest"}" test -s "$f"
done

check "no @var@ left in the units" \
	sh -c "! grep -n '@[a-z_]*@' '$broker_unit' '$agent_unit'"
check "units run the installed binaries and read $sysconfdir/npufarm" \
	sh -c "grep -qx 'ExecStart=$bindir/npufarm-broker --config $sysconfdir/npufarm/broker.json' '$broker_unit' &&
	grep -q '^ExecStart=$bindir/npufarm-agent --config $sysconfdir/npufarm/agent-%i.json --name %i ' '$agent_unit'"

# The example names token files where systemd puts credentials; flags
# point those at stand-ins (flags win), the rest is the example's.
for t in agent api admin; do
	printf '%s-token-for-test\n' "$t" >"$dest/$t.token"
done
check "the broker accepts its example config" \
	"$dest$bindir/npufarm-broker" --check-config \
	--config "$dest$exampledir/broker.json.example" \
	--agent-token-file "$dest/agent.token" \
	--api-token-file "$dest/api.token" \
	--admin-token-file "$dest/admin.token"
check "the example's token files are checked" \
	sh -c "! '$dest$bindir/npufarm-broker' --check-config \
	--config '$dest$exampledir/broker.json.example' 2>&1 | grep -q OK"

# The agent's --config keys are its flag names with '_' for '-', plus
# "tags" (an object).  An agent that reads --config loads it for real:
# the file is read before the flags, so --help exits 0 only if it loaded.
check "the agent example uses only the agent's settings" \
	python3 -c '
import json, sys
keys = set(json.load(open(sys.argv[1])))
known = {"broker", "key", "name", "tags", "tvm_runtime", "workdir",
         "max_session", "reset_cmd", "health_cmd", "hook_timeout",
         "health_interval", "quarantine_after", "token_file"}
assert keys <= known, "unknown keys: %s" % sorted(keys - known)
assert {"broker", "key"} <= keys, "broker and key are required"
' "$dest$exampledir/agent.json.example"
if "$dest$bindir/npufarm-agent" --help 2>&1 | grep -q -- --config; then
	check "the agent loads its example config" \
		"$dest$bindir/npufarm-agent" \
		--config "$dest$exampledir/agent.json.example" --help
else
	ok "the agent loads its example config # SKIP no --config yet"
fi

# systemd-analyze verify checks that ExecStart= binaries exist, so the
# units are verified from copies that point into the destdir (the only
# change); a template is verified through an instance of it.  (--root
# would also look for /bin/kill and the system's targets in the destdir.)
if command -v systemd-analyze >/dev/null 2>&1; then
	mkdir "$dest/verify"
	sed "s|$bindir/|$dest$bindir/|g" "$broker_unit" \
		>"$dest/verify/npufarm-broker.service"
	sed "s|$bindir/|$dest$bindir/|g" "$agent_unit" \
		>"$dest/verify/npufarm-agent@board-1.service"
	# It exits 0 after "Unknown key" and bad values: any output fails.
	if out=$(systemd-analyze verify --man=no \
		"$dest/verify/npufarm-broker.service" \
		"$dest/verify/npufarm-agent@board-1.service" 2>&1) &&
		[ -z "$out" ]; then
		ok "systemd-analyze verify (both units)"
	else
		not_ok "systemd-analyze verify (both units)" "$out"
	fi
else
	ok "systemd-analyze verify # SKIP systemd-analyze not installed"
fi
echo "1..$n"
[ "$failed" -eq 0 ]
