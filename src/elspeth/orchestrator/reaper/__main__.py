"""``python -I -m elspeth.orchestrator.reaper PGID DIR`` (or ``watch PGID DIR LIMIT``)."""

from __future__ import annotations

import sys

from elspeth.orchestrator.reaper._main import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
