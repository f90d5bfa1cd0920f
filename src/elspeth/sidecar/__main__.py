"""``python -m elspeth.sidecar --config FILE``: run the sidecar daemon."""

from __future__ import annotations

import sys

from elspeth.sidecar._daemon._main import main

if __name__ == "__main__":
    sys.exit(main())
