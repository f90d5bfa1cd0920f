# shellcheck shell=bash
# Shared by demo.sh and test.sh: make (or reuse) the project's virtualenv in .venv and install the
# package from the lock file. Sourced, not run. Usage: ensure_venv [extra]   (extra: "test" or "")
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ELSPETH_VENV:-$ROOT/.venv}"
PYTHON_FOR_VENV="${PYTHON:-python3}"

ensure_venv() {
    local extra="${1:-}"
    local spec="$ROOT"
    [ -n "$extra" ] && spec="${ROOT}[$extra]"
    if [ ! -x "$VENV/bin/python" ]; then
        echo "elspeth: creating virtualenv $VENV" >&2
        if ! "$PYTHON_FOR_VENV" -m venv "$VENV"; then
            echo "elspeth: '$PYTHON_FOR_VENV -m venv' failed; on Debian install python3-venv" >&2
            exit 1
        fi
    fi
    # Reinstall only when the lock, the project metadata or the requested extra changed.
    local have
    have="$(cat "$(install_stamp)" 2>/dev/null || true)"
    # A venv installed with the test extra also serves the plain demo.
    if [ "$have" != "$(lock_digest) $extra" ] \
        && { [ -n "$extra" ] || [ "$have" != "$(lock_digest) test" ]; }; then
        echo "elspeth: installing dependencies from constraints.txt into $VENV" >&2
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
            -c "$ROOT/constraints.txt" -e "$spec"
        mark_installed "$extra"
    fi
}

install_stamp() { echo "$VENV/.elspeth-install-stamp"; }
lock_digest() { cat "$ROOT/constraints.txt" "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1; }

# mark_installed [extra]: record that $VENV holds this tree's locked dependencies (and the extra).
# The dev image calls it for the venv it installed itself, so the README's commands reuse it.
mark_installed() {
    echo "$(lock_digest) ${1:-}" > "$(install_stamp)"
}
