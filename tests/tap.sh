# SPDX-License-Identifier: Apache-2.0
# TAP helpers for the shell tests (sourced): ok, not_ok DESC [DETAIL],
# check DESC CMD... (ok if CMD exits 0, else not ok with its output), and
# tap_done (the plan; exit status 0 only if nothing failed).
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
	[ -z "${2:-}" ] || printf '%s\n' "$2" | tail -n 40 | sed 's/^/# /'
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

tap_done() {
	echo "1..$n"
	[ "$failed" -eq 0 ]
}
