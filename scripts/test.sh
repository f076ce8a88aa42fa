#!/usr/bin/env bash
# Every test, as `make test` runs them: two pytest runs side by side.
#
# The real-Asterisk tier and the soak run in one process, one test after the other: the
# test bed has fixed ports, and the soak measures a process that nothing else loads. Every
# other test runs in a second process meanwhile. The live tier mostly waits on real calls,
# so the two overlap well; its output follows the other run's when both are done.
# Arguments are passed to both runs. The exit status is non-zero if either run failed.
set -uo pipefail
cd "$(dirname "$0")/.."

SERIAL="asterisk or soak"
live_log=$(mktemp)
live=""
trap 'rm -f "$live_log"; [ -n "$live" ] && kill "$live" 2>/dev/null' EXIT

.venv/bin/python -m pytest -m "$SERIAL" "$@" >"$live_log" 2>&1 &
live=$!
.venv/bin/python -m pytest -m "not ($SERIAL)" "$@"
rest=$?
wait "$live"
live_rc=$?
live=""

echo
echo "======== the real-Asterisk tier and the soak (run beside the tests above) ========"
cat "$live_log"
echo "tests without the test bed: exit $rest; real-Asterisk tier and soak: exit $live_rc"
[ "$rest" -eq 0 ] && [ "$live_rc" -eq 0 ]
