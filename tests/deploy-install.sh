#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# `meson install --destdir` into a temporary dir: the units, example
# configs, the reset-hook drop-in and hook, man pages, bash completion,
# <npufarm/kernel.h> and npufarm-kernel.pc land where meson.build says,
# with every @var@ filled in; the broker accepts its example config
# (--check-config) and takes token files from the unit's credentials; the
# agent's example is valid JSON with only the agent's flag names as keys;
# a kernel compiles against the installed header through pkg-config; and
# `systemd-analyze verify` passes on both units, also with the drop-in,
# when it exists (it is not in every container: then that step says so
# and the rest still runs).
#
# Usage: deploy-install.sh BUILD_ROOT PREFIX BINDIR SYSCONFDIR UNITDIR
#        DOCDIR HOOKDIR COMPLETIONDIR MANDIR INCLUDEDIR DATADIR CC
# (absolute paths as meson computed them).  TAP on stdout.
set -u
build=$1 prefix=$2 bindir=$3 sysconfdir=$4 unitdir=$5 docdir=$6
hookdir=$7 completiondir=$8 mandir=$9
shift 9
includedir=$1 datadir=$2 cc=$3
broker_examples=$docdir/npufarm-broker/examples
agent_examples=$docdir/npufarm-agent/examples
. "$(dirname "$0")/tap.sh"

dest=$(mktemp -d /tmp/npufarm-install-XXXXXX)
trap 'rm -rf "$dest"' EXIT

check "meson install --destdir" \
	meson install -C "$build" --destdir "$dest" --no-rebuild --quiet

broker_unit=$dest$unitdir/npufarm-broker.service
agent_unit=$dest$unitdir/npufarm-agent@.service
for f in "$dest$bindir/npufarm-broker" "$dest$bindir/npufarm-agent" \
	"$dest$bindir/npufarm" "$broker_unit" "$agent_unit" \
	"$dest$broker_examples/broker.json.example" \
	"$dest$agent_examples/agent.json.example" \
	"$dest$agent_examples/reset-hook.conf" \
	"$dest$hookdir/npu-reset-sysfs" \
	"$dest$mandir/man8/npufarm-broker.8" \
	"$dest$mandir/man8/npufarm-agent.8" "$dest$mandir/man1/npufarm.1" \
	"$dest$completiondir/npufarm" "$dest$completiondir/npufarm-broker" \
	"$dest$completiondir/npufarm-agent" \
	"$dest$includedir/npufarm/kernel.h" \
	"$dest$datadir/pkgconfig/npufarm-kernel.pc"; do
	check "installed ${f#"$dest"}" test -s "$f"
done
check "the reset hook is executable" test -x "$dest$hookdir/npu-reset-sysfs"

check "no @var@ left in the units" \
	sh -c "! grep -n '@[a-z_]*@' '$broker_unit' '$agent_unit'"
check "units run the installed binaries, the agent with $sysconfdir/npufarm" \
	sh -c "grep -qx 'ExecStart=$bindir/npufarm-broker' '$broker_unit' &&
	grep -q '^ExecStart=$bindir/npufarm-agent --config $sysconfdir/npufarm/agent-%i.json --name %i ' '$agent_unit'"
# Token files are optional credentials (relative: searched in the
# credential store, skipped when missing), never a fixed path.
check "units load tokens as optional credentials" \
	sh -c "grep -qx 'LoadCredential=agent-token:npufarm-agent.token' '$broker_unit' &&
	grep -qx 'LoadCredential=admin-token:npufarm-admin.token' '$broker_unit' &&
	grep -qx 'LoadCredential=agent-token:npufarm-agent.token' '$agent_unit' &&
	! grep -n 'LoadCredential=[a-z-]*:/' '$broker_unit' '$agent_unit'"

check "the broker accepts its example config" \
	"$dest$bindir/npufarm-broker" --check-config \
	--config "$dest$broker_examples/broker.json.example"
# The credentials a unit passes: the broker uses them (an empty token is
# refused, naming the credential's file), and starts without them.
mkdir "$dest/creds"
: >"$dest/creds/api-token"
if out=$(CREDENTIALS_DIRECTORY=$dest/creds "$dest$bindir/npufarm-broker" \
	--check-config 2>&1); then
	not_ok "the broker reads the api-token credential" "$out"
else
	case $out in
	*"$dest/creds/api-token"*) ok "the broker reads the api-token credential" ;;
	*) not_ok "the broker reads the api-token credential" "$out" ;;
	esac
fi
for t in agent api admin; do
	printf '%s-token-for-test\n' "$t" >"$dest/creds/$t-token"
done
chmod 0600 "$dest"/creds/*
check "the broker starts with credentials" \
	env CREDENTIALS_DIRECTORY="$dest/creds" "$dest$bindir/npufarm-broker" \
	--check-config
check "the broker starts without credentials" \
	env CREDENTIALS_DIRECTORY="$dest/nothing" \
	"$dest$bindir/npufarm-broker" --check-config

# A kernel author's build: the installed header through pkg-config.
if command -v pkg-config >/dev/null 2>&1; then
	check "a kernel compiles against the installed <npufarm/kernel.h>" \
	    sh -c "export PKG_CONFIG_PATH='$dest$datadir/pkgconfig' \
	    PKG_CONFIG_SYSROOT_DIR='$dest' &&
	    $cc -shared -fPIC -Werror -DMATMUL_TILE=16 -o '$dest/k.so' \
	    \$(pkg-config --cflags npufarm-kernel) \
	    '$(dirname "$0")/kernels/matmul.c'"
else
	ok "a kernel compiles against the installed header # SKIP no pkg-config"
fi

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
' "$dest$agent_examples/agent.json.example"
if "$dest$bindir/npufarm-agent" --help 2>&1 | grep -q -- --config; then
	check "the agent loads its example config" \
		"$dest$bindir/npufarm-agent" \
		--config "$dest$agent_examples/agent.json.example" --help
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
	# The drop-in's settings, as systemd would merge them.
	cat "$dest/verify/npufarm-agent@board-1.service" \
		"$dest$agent_examples/reset-hook.conf" \
		>"$dest/verify/npufarm-agent@board-2.service"
	# It exits 0 after "Unknown key" and bad values: any output fails.
	if out=$(systemd-analyze verify --man=no \
		"$dest/verify/npufarm-broker.service" \
		"$dest/verify/npufarm-agent@board-1.service" \
		"$dest/verify/npufarm-agent@board-2.service" 2>&1) &&
		[ -z "$out" ]; then
		ok "systemd-analyze verify (both units, and the drop-in)"
	else
		not_ok "systemd-analyze verify (both units, and the drop-in)" "$out"
	fi
else
	ok "systemd-analyze verify # SKIP systemd-analyze not installed"
fi
tap_done
