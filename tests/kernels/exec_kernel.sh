#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# An exec-runner candidate for test-runners: the task's entry ($1) picks a
# behaviour.  It reports as docs/kernel-abi.md says: {"costs": [...]} or
# {"error": "..."} on stdout, failures on stderr and in the exit status.
set -u
mode=${1:-ok}

costs() {
	# one cost per repeat, as the runner asks
	i=0 sep= out=
	while [ "$i" -lt "$NPUFARM_REPEAT" ]; do
		out="$out${sep}0.00$((i + 1))"
		sep=,
		i=$((i + 1))
	done
	printf '{"costs": [%s], "number": %s}\n' "$out" "$NPUFARM_NUMBER"
}

case $mode in
ok)
	echo "measuring $NPUFARM_ARTIFACT" >&2
	costs
	;;
env)
	# Everything the runner put in the environment, as an error message.
	printf '{"error": "%s %s %s %s %s %s %s %s %s"}\n' "$NPUFARM_NUMBER" \
	    "$NPUFARM_REPEAT" "$NPUFARM_MIN_REPEAT_MS" "$NPUFARM_COOLDOWN_MS" \
	    "$NPUFARM_TIMEOUT_MS" "$NPUFARM_ENTRY" "$NPUFARM_TASK_NAME" \
	    "$([ "$PWD" = "$NPUFARM_WORKDIR" ] && [ "$TMPDIR" = "$PWD" ] &&
	    echo inworkdir)" "$(echo "$NPUFARM_ARGS" | sed 's/"/\\"/g')"
	;;
error)
	echo "compiling candidate" >&2
	echo '{"error": "vendor compiler: unsupported tile 48"}'
	exit 1
	;;
segv)
	echo "about to crash" >&2
	kill -SEGV $$
	;;
exit3)
	echo "first line" >&2
	echo "something went wrong" >&2
	exit 3
	;;
stderr-flood)
	i=0
	while [ $i -lt 2000 ]; do
		echo "noise line $i" >&2
		i=$((i + 1))
	done
	echo "the last line" >&2
	exit 3
	;;
garbage)
	echo "hello, not json"
	;;
bad-costs)
	echo '{"costs": [0.1, -1]}'
	;;
flood)
	head -c 100000 /dev/zero | tr '\0' 'x'
	;;
hang)
	sleep 1000
	;;
background)
	# A child left behind, holding stdout and stderr: the result must not
	# wait for it, and the agent's reap must kill it.
	sleep 1000 &
	echo $! >"$NPUFARM_PIDFILE"
	costs
	;;
*)
	echo "unknown mode $mode" >&2
	exit 2
	;;
esac
