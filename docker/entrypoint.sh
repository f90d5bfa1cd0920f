#!/bin/bash
# Container entrypoint. As root it prepares the three-user layout and the session key, then runs
# supervisord (no arguments: the sidecar daemon and, in job mode, the orchestrator) or the given
# command (`docker run elspeth:latest id sidecar`) after the same preparation.
#
# Session key (32 raw bytes, /run/sidecar/.session, 0640 sidecar:sidecar), first that applies:
#   ELSPETH_SIDECAR_SESSION_KEY_FILE  a file (mounted secret): base64 of 32 bytes, or 32 raw bytes
#   ELSPETH_SIDECAR_SESSION_KEY       base64 that decodes to 32 bytes, or exactly 32 raw bytes
#   an existing /run/sidecar/.session (a restarted container keeps its key)
#   32 fresh random bytes
# Anything else stops the container with a message (never the key itself). Once the key is in its
# file, the entrypoint starts itself again without either variable, so no process it starts (and
# not PID 1's own /proc/1/environ) ever carries them.
#
# A given command runs under tini when the entrypoint is PID 1: the kernel hands every orphan in
# the container to PID 1, and a command that is no init (pytest, the CLI) never reaps them, so
# their zombies would count against their uid's RLIMIT_NPROC for the container's life (a worker's
# killed descendants, under the workers' small limit). tini reaps them and passes signals and the
# command's exit status on. supervisord's mode needs none: this script stays PID 1 and reaps.
#
# Exit status with supervisord: 2 when /etc/elspeth/sidecar.toml is invalid (checked as the
# daemon's user before supervisord starts, in either mode); job mode (ORCHESTRATOR_ARGS set) exits
# with the run's status; service mode exits 0 when stopped; 1 when the sidecar daemon failed for
# good, the orchestrator ended without a status, or the preparation failed.
set -euo pipefail

readonly SIDECAR_RUN_DIR=/run/sidecar
readonly SESSION_KEY="$SIDECAR_RUN_DIR/.session"
readonly SESSION_KEY_BYTES=32
readonly KEY_VARIABLE=ELSPETH_SIDECAR_SESSION_KEY
readonly KEY_FILE_VARIABLE=ELSPETH_SIDECAR_SESSION_KEY_FILE
readonly SIDECAR_STATE_DIRS=(/var/lib/elspeth-sidecar /var/log/elspeth-sidecar)
readonly WORKER_SCRATCH_DIR=/var/lib/elspeth-workers
readonly SUPERVISORD_CONF=/etc/supervisor/supervisord.conf
readonly SIDECAR_CONFIG=/etc/elspeth/sidecar.toml
readonly EXIT_CONFIGURATION=2
readonly SUPERVISOR_LOG_DIR=/var/log/supervisor
readonly SUPERVISOR_RUN_DIR=/run/supervisor
# supervisord echoes its own log to stdout (nodaemon); the programs' logs are streamed from here.
readonly STREAMED_LOGS=(sidecar-stdout.log sidecar-stderr.log orchestrator-stdout.log
    orchestrator-stderr.log lifecycle-stderr.log)
readonly SUPERVISOR_LOGS=(supervisord.log "${STREAMED_LOGS[@]}")
# Verdicts of the lifecycle listener (root only) and the orchestrator's exit status (appuser's).
readonly LIFECYCLE_DIR=/run/elspeth-lifecycle
readonly ORCHESTRATOR_STATUS_DIR=/run/elspeth-orchestrator
declare -rA EXPECTED_UIDS=([appuser]=1000 [sidecar]=1001 [appplugin]=1002)

note() { echo "entrypoint: $*" >&2; }
die() {
    echo "entrypoint: error: $*" >&2
    exit 1
}

check_users() {
    local name uid
    for name in appuser sidecar appplugin; do
        uid="$(id -u "$name" 2>/dev/null)" || die "user '$name' does not exist in this image"
        [ "$uid" = "${EXPECTED_UIDS[$name]}" ] \
            || die "user '$name' has uid $uid, expected ${EXPECTED_UIDS[$name]}"
    done
    if ! id -nG appuser | tr ' ' '\n' | grep -qx sidecar; then
        note "adding appuser to group sidecar (it reads the session key through the group)"
        usermod -a -G sidecar appuser
    fi
}

prepare_directories() {
    install -d -m 0750 -o sidecar -g sidecar "$SIDECAR_RUN_DIR"
    local dir
    for dir in "${SIDECAR_STATE_DIRS[@]}"; do
        install -d -m 0700 -o sidecar -g sidecar "$dir"
    done
    # A checkpoint key on a volume keeps its owner only if the uid matches; re-assert it.
    if [ -e /var/lib/elspeth-sidecar/checkpoint.key ]; then
        chown sidecar:sidecar /var/lib/elspeth-sidecar/checkpoint.key
        chmod 0600 /var/lib/elspeth-sidecar/checkpoint.key
    fi
    install -d -m 0700 -o appplugin -g appplugin "$WORKER_SCRATCH_DIR"
}

byte_count() { stat -c %s "$1"; }

# install_session_key CANDIDATE_FILE SOURCE: base64 of 32 bytes, else exactly 32 raw bytes.
install_session_key() {
    local candidate="$1" source="$2"
    local staged form as_base64="is not valid base64"
    staged="$(mktemp "$SIDECAR_RUN_DIR/.session.XXXXXX")"
    if base64 -d <"$candidate" >"$staged" 2>/dev/null; then
        as_base64="decodes as base64 to $(byte_count "$staged") bytes"
    fi
    if [ "$as_base64" = "decodes as base64 to $SESSION_KEY_BYTES bytes" ]; then
        form=base64
    elif [ "$(byte_count "$candidate")" = "$SESSION_KEY_BYTES" ]; then
        cp "$candidate" "$staged"
        form=raw
    else
        rm -f "$staged"
        die "$source must be base64 that decodes to exactly $SESSION_KEY_BYTES bytes, or exactly" \
            "$SESSION_KEY_BYTES raw bytes; it holds $(byte_count "$candidate") bytes and" \
            "$as_base64 (make one with: head -c 32 /dev/urandom | base64 -w 0)"
    fi
    chown sidecar:sidecar "$staged"
    chmod 0640 "$staged"
    mv -f "$staged" "$SESSION_KEY"
    note "session key installed from $source ($form)"
}

session_key_from_environment() {
    if [ -v "$KEY_FILE_VARIABLE" ] && [ -v "$KEY_VARIABLE" ]; then
        die "set only one of $KEY_FILE_VARIABLE and $KEY_VARIABLE"
    fi
    if [ -v "$KEY_FILE_VARIABLE" ]; then
        local path="${!KEY_FILE_VARIABLE}"
        [ -f "$path" ] && [ -r "$path" ] \
            || die "$KEY_FILE_VARIABLE=$path: not a readable file (mount the secret there)"
        install_session_key "$path" "$KEY_FILE_VARIABLE ($path)"
    else
        value_file="$(mktemp "$SIDECAR_RUN_DIR/.value.XXXXXX")"
        trap 'rm -f "$value_file"' EXIT
        # printf is a builtin: the value never appears in any process's argument list.
        printf '%s' "${!KEY_VARIABLE}" >"$value_file"
        install_session_key "$value_file" "$KEY_VARIABLE"
        rm -f "$value_file"
        trap - EXIT
    fi
}

ensure_session_key() {
    if [ -f "$SESSION_KEY" ]; then
        [ "$(byte_count "$SESSION_KEY")" = "$SESSION_KEY_BYTES" ] \
            || die "$SESSION_KEY holds $(byte_count "$SESSION_KEY") bytes, not" \
                "$SESSION_KEY_BYTES; remove it or provide $KEY_FILE_VARIABLE"
        chown sidecar:sidecar "$SESSION_KEY"
        chmod 0640 "$SESSION_KEY"
        note "session key: keeping $SESSION_KEY"
        return
    fi
    local staged
    staged="$(mktemp "$SIDECAR_RUN_DIR/.session.XXXXXX")"
    head -c "$SESSION_KEY_BYTES" /dev/urandom >"$staged"
    chown sidecar:sidecar "$staged"
    chmod 0640 "$staged"
    mv -f "$staged" "$SESSION_KEY"
    note "session key: generated $SESSION_KEY"
}

prepare_supervisor() {
    install -d -m 0700 -o root -g root "$SUPERVISOR_LOG_DIR" "$SUPERVISOR_RUN_DIR"
    local log
    for log in "${SUPERVISOR_LOGS[@]}"; do
        # Each start streams its own lines to the container log; the previous start's are kept.
        if [ -s "$SUPERVISOR_LOG_DIR/$log" ]; then
            mv -f "$SUPERVISOR_LOG_DIR/$log" "$SUPERVISOR_LOG_DIR/$log.previous"
        fi
        install -m 0600 -o root -g root /dev/null "$SUPERVISOR_LOG_DIR/$log"
    done
    rm -rf "$LIFECYCLE_DIR" "$ORCHESTRATOR_STATUS_DIR"
    install -d -m 0700 -o root -g root "$LIFECYCLE_DIR"
    install -d -m 0700 -o appuser -g appuser "$ORCHESTRATOR_STATUS_DIR"
}

value_file=""
supervisor_pid=""
stop_requested=""
# shellcheck disable=SC2329  # run by the TERM/INT trap
forward_stop() {
    stop_requested=1
    if [ -n "$supervisor_pid" ]; then
        kill -TERM "$supervisor_pid" 2>/dev/null || true
    fi
}

# check_sidecar_config: the daemon's config, loaded as the daemon will load it (and as its user).
# Without this, an invalid file would race: the daemon failing for good (exit 1) against the
# orchestrator's readiness wait reading the same file (exit 2).
check_sidecar_config() {
    if ! runuser -u sidecar -- /usr/local/bin/elspeth-sidecar-wait --check-config \
        --config "$SIDECAR_CONFIG"; then
        echo "entrypoint: error: $SIDECAR_CONFIG is invalid (above); nothing was started" >&2
        exit "$EXIT_CONFIGURATION"
    fi
}

run_supervisord() {
    check_sidecar_config
    prepare_supervisor
    local mode=service
    if [ -n "${ORCHESTRATOR_ARGS:-}" ]; then
        mode=job
    fi
    export ELSPETH_ORCHESTRATOR_AUTOSTART
    ELSPETH_ORCHESTRATOR_AUTOSTART="$([ "$mode" = job ] && echo true || echo false)"
    note "starting supervisord ($mode mode)"
    trap forward_stop TERM INT
    supervisord --nodaemon --configuration "$SUPERVISORD_CONF" &
    supervisor_pid=$!
    (cd "$SUPERVISOR_LOG_DIR" && exec tail -q -n +1 -F --pid="$supervisor_pid" \
        "${STREAMED_LOGS[@]}") &
    local tail_pid=$! status=0
    # wait returns early when a trapped signal arrives; wait again until supervisord is gone.
    while kill -0 "$supervisor_pid" 2>/dev/null; do
        wait "$supervisor_pid" || true
    done
    wait "$supervisor_pid" || status=$?
    wait "$tail_pid" || true
    exit_status "$mode" "$status"
}

exit_status() {
    local mode="$1" supervisord_status="$2" run_status
    if [ -e "$LIFECYCLE_DIR/sidecar-daemon-failed" ]; then
        note "the sidecar daemon failed for good; see $SUPERVISOR_LOG_DIR/sidecar-stderr.log"
        exit 1
    fi
    if [ "$mode" = job ]; then
        run_status="$(cat "$ORCHESTRATOR_STATUS_DIR/status" 2>/dev/null || true)"
        if [[ "$run_status" =~ ^[0-9]+$ ]]; then
            note "job finished with status $run_status"
            exit "$run_status"
        fi
        note "the orchestrator ended without reporting a status; see" \
            "$SUPERVISOR_LOG_DIR/orchestrator-stderr.log"
        exit 1
    fi
    if [ -n "$stop_requested" ]; then
        exit 0
    fi
    exit "$supervisord_status"
}

# run_command COMMAND...: exec it without the key variables, under tini when this is PID 1.
run_command() {
    local init=()
    if [ "$$" = 1 ]; then
        init=(/usr/bin/tini --)
    fi
    exec env -u "$KEY_VARIABLE" -u "$KEY_FILE_VARIABLE" "${init[@]}" "$@"
}

main() {
    if [ "$(id -u)" != 0 ]; then
        # Only root can prepare users, keys and supervisord (the dev image runs as appuser).
        [ "$#" -gt 0 ] || die "supervisord mode needs root (docker run --user root ...)"
        run_command "$@"
    fi
    check_users
    prepare_directories
    if [ -v "$KEY_FILE_VARIABLE" ] || [ -v "$KEY_VARIABLE" ]; then
        session_key_from_environment
        exec env -u "$KEY_VARIABLE" -u "$KEY_FILE_VARIABLE" "$0" "$@"
    fi
    ensure_session_key
    if [ "$#" -gt 0 ]; then
        run_command "$@"
    fi
    run_supervisord
}

main "$@"
