#!/bin/bash
# supervisord event listener (root): turns process lifecycle events into the container's fate.
#   orchestrator EXITED, STOPPED   -> the job is over: stop supervisord (the entrypoint then exits
#   or FATAL                          (STOPPED: `supervisorctl stop orchestrator`, the CLI stopped)
#                                     with the status the orchestrator wrapper recorded)
#   sidecar-daemon FATAL           -> the daemon failed for good: record it and stop supervisord
#                                     (the entrypoint exits 1; runs fail closed meanwhile)
# supervisord's event protocol: write READY, read a header line and a payload of `len` bytes,
# answer RESULT 2 OK. Messages go to stderr (lifecycle-stderr.log); stdout is the protocol.
set -euo pipefail

readonly LIFECYCLE_DIR=/run/elspeth-lifecycle

log() { echo "lifecycle: $*" >&2; }

field() {
    # field NAME "key:value key:value ..." -> value
    local name="$1" token
    for token in $2; do
        if [ "${token%%:*}" = "$name" ]; then
            echo "${token#*:}"
            return
        fi
    done
}

stop_supervisord() {
    log "$1; stopping supervisord"
    kill -TERM "$PPID"
}

handle() {
    local event="$1" process="$2" expected="$3"
    case "$event:$process" in
        PROCESS_STATE_EXITED:orchestrator | PROCESS_STATE_STOPPED:orchestrator \
            | PROCESS_STATE_FATAL:orchestrator)
            stop_supervisord "orchestrator ended ($event)"
            ;;
        PROCESS_STATE_FATAL:sidecar-daemon)
            : >"$LIFECYCLE_DIR/sidecar-daemon-failed"
            stop_supervisord "sidecar daemon failed for good"
            ;;
        PROCESS_STATE_EXITED:sidecar-daemon)
            log "sidecar daemon exited (expected=$expected); supervisord restarts it, and runs" \
                "in progress fail closed (the daemon's boot id changes)"
            ;;
    esac
}

while true; do
    printf 'READY\n'
    IFS= read -r header
    length="$(field len "$header")"
    event="$(field eventname "$header")"
    IFS= read -r -N "$length" payload
    handle "$event" "$(field processname "$payload")" "$(field expected "$payload")"
    printf 'RESULT 2\nOK'
done
