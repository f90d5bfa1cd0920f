"""``threshold_early_stop``: marks the row at which enough scores have crossed a threshold.

The plugin API has no channel for a decision (a call answers only ok or failed), so the decision
travels in the data: a boolean ``_early_stop`` column, true on the row where the condition first
holds. The suite runner stops the experiment after the chunk in which any ``_early_stop`` is true.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, Literal

import pydantic

from elspeth.plugins._api import FrameProxy, Plugin, PluginContext, PluginKind
from elspeth.plugins.builtin._columns import numeric, require_columns
from elspeth.security import SecurityLevel

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

EARLY_STOP_COLUMN: Final = "_early_stop"
PAST_THRESHOLD: Final = {"above": operator.gt, "below": operator.lt}
"""Direction -> whether a score lies past the threshold (strictly)."""


class ThresholdEarlyStopParameters(pydantic.BaseModel):
    """Stop once at least ``min_rows`` scores have been seen and at least ``fraction`` of the
    scores so far lie strictly ``above`` (or ``below``) ``threshold``."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    column: str = pydantic.Field(min_length=1, description="numeric score column")
    threshold: float = pydantic.Field(allow_inf_nan=False)
    direction: Literal["above", "below"]
    fraction: float = pydantic.Field(gt=0, le=1, description="share of scores past the threshold")
    min_rows: int = pydantic.Field(default=1, ge=1, description="scores needed before deciding")


class ThresholdEarlyStop(Plugin):
    """Adds (or ORs into) ``_early_stop``; nothing else in the frame changes."""

    name = "threshold_early_stop"
    kind = PluginKind.EARLY_STOP
    clearance = SecurityLevel.SECRET
    Parameters = ThresholdEarlyStopParameters

    def run(self, proxies: Sequence[FrameProxy], context: PluginContext) -> None:
        import numpy as np

        parameters: ThresholdEarlyStopParameters = self.parameters  # type: ignore[assignment]
        (proxy,) = proxies
        view = proxy.get_view()
        data = view.data
        require_columns(data, [parameters.column], "threshold_early_stop")
        stop = np.zeros(len(data), dtype=bool)
        row = first_stop_row(numeric(data[parameters.column]).to_numpy(), parameters)
        if row is not None:
            stop[row] = True
        if EARLY_STOP_COLUMN in data.columns:
            stop |= data[EARLY_STOP_COLUMN].fillna(False).to_numpy(dtype=bool)
        proxy.replace_data(data.assign(**{EARLY_STOP_COLUMN: stop}), view.version)


def first_stop_row(
    scores: npt.NDArray[np.floating[Any]], rule: ThresholdEarlyStopParameters
) -> int | None:
    """Position of the first score at which ``rule`` holds over the scores up to it (NaN scores
    are not counted), or None."""
    import numpy as np

    seen = ~np.isnan(scores)
    past = seen & PAST_THRESHOLD[rule.direction](scores, rule.threshold)
    counted = np.cumsum(seen)
    crossed = np.cumsum(past)
    with np.errstate(divide="ignore", invalid="ignore"):
        holds = seen & (counted >= rule.min_rows) & (crossed / counted >= rule.fraction)
    return int(np.argmax(holds)) if holds.any() else None
