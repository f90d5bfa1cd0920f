#!/bin/bash
# supervisord's `orchestrator` program (appuser): wait until the sidecar daemon answers (bounded,
# fail closed), run `python -m elspeth.cli $ORCHESTRATOR_ARGS` from /workspace, pass TERM and INT
# on to it, and record its exit status for the entrypoint, which exits with it (supervisord itself
# does not pass it on).
set -uo pipefail

readonly STATUS_FILE=/run/elspeth-orchestrator/status
readonly READY_TIMEOUT="${ELSPETH_SIDECAR_READY_TIMEOUT:-30}"

record() {
    echo "$1" >"$STATUS_FILE.partial" && mv -f "$STATUS_FILE.partial" "$STATUS_FILE"
    exit "$1"
}

umask 077
/usr/local/bin/elspeth-sidecar-wait --timeout "$READY_TIMEOUT" || record "$?"

# ORCHESTRATOR_ARGS is split on whitespace like a command line without quotes; no globbing.
read -r -a arguments <<<"${ORCHESTRATOR_ARGS:-}"
echo "orchestrator: python -m elspeth.cli ${arguments[*]}" >&2
python -m elspeth.cli "${arguments[@]}" &
readonly cli=$!
# `supervisorctl stop orchestrator` and `podman stop` signal this wrapper; bash runs a trap only
# between commands, so the CLI runs in the background and the signal is passed on: the CLI then
# stops its workers, records the run as stopped and exits 130, which is recorded below.
trap 'kill -TERM "$cli" 2>/dev/null' TERM INT
status=0
wait "$cli" || status=$?
# A trap interrupts `wait`; wait again until the CLI itself has ended, for its own status.
while kill -0 "$cli" 2>/dev/null; do
    status=0
    wait "$cli" || status=$?
done
record "$status"
