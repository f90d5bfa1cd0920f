# shellcheck shell=bash
# Shared by demo.sh and test.sh: make (or reuse) the project's virtualenv in .venv and install the
# package from the lock file. Sourced, not run. Usage: ensure_venv [extras]
# (extras: "", "test" or "test,semantic"; see local_semantic_extra)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ELSPETH_VENV:-$ROOT/.venv}"
PYTHON_FOR_VENV="${PYTHON:-python3}"

make_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        echo "elspeth: creating virtualenv $VENV" >&2
        if ! "$PYTHON_FOR_VENV" -m venv "$VENV"; then
            echo "elspeth: '$PYTHON_FOR_VENV -m venv' failed; on Debian install python3-venv" >&2
            exit 1
        fi
    fi
}

ensure_venv() {
    local extra="${1:-}"
    local spec="$ROOT"
    [ -n "$extra" ] && spec="${ROOT}[$extra]"
    make_venv
    # Reinstall only when the lock, the project metadata or the requested extras changed.
    local have reusable=false
    have="$(cat "$(install_stamp)" 2>/dev/null || true)"
    [ "$have" = "$(lock_digest) $extra" ] && reusable=true
    # A venv installed with the test extras also serves the plain demo.
    if [ -z "$extra" ]; then
        case "$have" in "$(lock_digest) test"*) reusable=true ;; esac
    fi
    if [ "$reusable" = false ]; then
        echo "elspeth: installing dependencies from constraints.txt into $VENV" >&2
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
            -c "$ROOT/constraints.txt" -e "$spec"
        mark_installed "$extra"
    fi
}

# local_semantic_extra EXTRAS: EXTRAS plus ",semantic" when pip finds a CPU build of the locked
# torch on this machine's disk (its find-links), as on the project's CI machines; else EXTRAS.
# PyPI's own torch wheel for Linux is a CUDA build of several GB, which a test run must not fetch.
local_semantic_extra() {
    local pin found
    pin="$(grep -m1 '^torch==' "$ROOT/constraints.txt")"
    found="$("$VENV/bin/python" -m pip install --dry-run --no-deps --no-index "$pin" 2>/dev/null \
        || true)"
    if grep -q -e '+cpu' <<< "$found"; then
        echo "$1,semantic"
    else
        echo "elspeth: no CPU build of $pin on this machine: the semantic scorer's tests skip" >&2
        echo "$1"
    fi
}

install_stamp() { echo "$VENV/.elspeth-install-stamp"; }
lock_digest() { cat "$ROOT/constraints.txt" "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1; }

# mark_installed [extra]: record that $VENV holds this tree's locked dependencies (and the extra).
# The dev image calls it for the venv it installed itself, so the README's commands reuse it.
mark_installed() {
    echo "$(lock_digest) ${1:-}" > "$(install_stamp)"
}
