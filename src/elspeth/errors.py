"""The root of every exception Elspeth raises on purpose.

Catch :class:`ElspethError` to handle anything the product reports; the security core's own
hierarchy (:mod:`elspeth.security`) hangs below it, so a caller can tell "your configuration is
wrong" from "a security rule refused" from "the seal authority failed" without parsing messages.
This module imports nothing, so every process (including a sandboxed worker) can load it.
"""

from __future__ import annotations


class ElspethError(Exception):
    """Base class for every error Elspeth raises deliberately."""


class ConfigurationError(ElspethError):
    """A settings file, option or parameter is invalid; the message names what to change."""
