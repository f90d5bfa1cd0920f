"""The viewer's one error type: what the operator or the page asked for cannot be served."""

from __future__ import annotations

from elspeth.errors import ElspethError


class ViewError(ElspethError):
    """A run that cannot be shown (naming the file) or a request that is not valid (naming the
    parameter and the value); the server answers it as a 400 with this message."""
