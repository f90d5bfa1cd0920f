"""``python -I -m elspeth.orchestrator.worker_process``: run one plugin worker."""

from __future__ import annotations

import sys

from elspeth.orchestrator.worker_process._main import main

if __name__ == "__main__":
    sys.exit(main())
