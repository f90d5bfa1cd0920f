"""Typed failures of the sidecar client and daemon; every one names what to check or change.

The client's errors hang below :class:`~elspeth.security.AuthorityError` (the daemon cannot be
trusted or reached) or :class:`~elspeth.security.SealError` (the daemon checked and said no), so
callers of the seal-authority interface need not know a sidecar is involved.
"""

from __future__ import annotations

from elspeth.errors import ConfigurationError
from elspeth.security._errors import AuthorityError, SealError


class SidecarConfigError(ConfigurationError):
    """The daemon's configuration is invalid; the message names the file, key and value."""


class KeyFileError(AuthorityError, ConfigurationError):
    """A key file is missing, has the wrong size or is readable or writable by the wrong users.

    The message names the file and the command that fixes it; it never shows key material.
    """


class DaemonUnavailableError(AuthorityError):
    """The daemon cannot be reached, stopped answering in time, or closed the connection."""


class DaemonProtocolError(AuthorityError):
    """The peer broke the protocol or failed authentication: a wrong session key or an impostor."""


class DaemonRestartedError(AuthorityError):
    """The daemon's boot id changed: every seal it issued before is void. Fatal for the run."""


class RequestRefusedError(AuthorityError):
    """The daemon authenticated the request and refused it (unknown grant, level, limit...)."""

    def __init__(self, code: str, message: str, audit_id: int) -> None:
        super().__init__(f"sidecar refused ({code}, audit id {audit_id}): {message}")
        self.code = code
        self.audit_id = audit_id


class SealRejectedError(SealError):
    """The daemon checked a seal and it does not match its live registration."""

    def __init__(self, code: str, message: str, audit_id: int) -> None:
        super().__init__(f"seal rejected ({code}, audit id {audit_id}): {message}")
        self.code = code
        self.audit_id = audit_id


class CheckpointMismatchError(SealRejectedError):
    """A checkpoint record's MAC does not verify under the daemon's checkpoint key."""
