#!/usr/bin/env bash
# README command 2: install the test dependencies into .venv, then lint, type-check and run every
# test tier this machine can run (root and container tiers skip with a reason when not root).
set -euo pipefail
# shellcheck source=scripts/_venv.sh
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
if [ "$(id -u)" = 0 ]; then
    bash "$ROOT/scripts/system-deps.sh"
fi
make_venv
ensure_venv "$(local_semantic_extra test)"
cd "$ROOT"
echo "== ruff" >&2
"$VENV/bin/ruff" check src tests bench scripts
"$VENV/bin/ruff" format --check src tests bench scripts
echo "== mypy" >&2
"$VENV/bin/mypy"
echo "== pytest" >&2
exec "$VENV/bin/python" -m pytest "$@"
