#!/usr/bin/env bash
# README command 1: install Elspeth into .venv and run the main job on the embedded default.
set -euo pipefail
# shellcheck source=scripts/_venv.sh
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
ensure_venv ""
exec "$VENV/bin/python" -m elspeth.cli "$@"
