"""The argument parser every subcommand uses: a usage error is exit status 2 and one message."""

from __future__ import annotations

import argparse
from typing import NoReturn


class UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    """Usage errors come back as :class:`UsageError` (exit status 2), not SystemExit."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.format_usage()}{self.prog}: error: {message}")
