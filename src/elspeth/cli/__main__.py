"""``python -m elspeth.cli``: the orchestrator's command line."""

from __future__ import annotations

import sys

from elspeth.cli import main

sys.exit(main())
