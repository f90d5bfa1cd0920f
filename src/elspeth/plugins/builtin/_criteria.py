"""What ``score_summary`` and ``score_comparison`` share: criteria, their score columns, spread.

Both plugins work per LLM criterion of the suite runner, whose columns are named after the
criterion (``<c>_outcome``, ``<c>_cost``, ...), and both decide before calling scipy whether a
sample has any spread: a t statistic or interval without spread is undefined, and rounding makes
scipy see a tiny spread where there is none (three scores of 0.1 have a variance of 3e-34, and a
t statistic of 1e15 against three of 0.2).
"""

from __future__ import annotations

import contextlib
import string
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any, Final

import pydantic

from elspeth.plugins.builtin._columns import as_column_list, distinct_names

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

CRITERION_FIELD: Final = "criterion"
DEFAULT_SCORE_COLUMN: Final = "{criterion}_score"
RELATIVE_TOLERANCE: Final = 1e-9
ABSOLUTE_TOLERANCE: Final = 1e-12
"""Values this close (``numpy.isclose``) are equal: far below any score's resolution, far above
the last-bit differences of means computed in another order."""


class CriteriaParameters(pydantic.BaseModel):
    """``criteria`` (a name or a list); ``score_column`` names each criterion's score column
    through the placeholder ``{criterion}``; ``confidence`` is the level of every interval."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    criteria: list[Annotated[str, pydantic.Field(min_length=1)]] = pydantic.Field(
        min_length=1, description="LLM criteria of the suite runner, e.g. 'clarity'"
    )
    score_column: str = pydantic.Field(
        default=DEFAULT_SCORE_COLUMN,
        description="score column of a criterion; '{criterion}' stands for its name",
    )
    confidence: float = pydantic.Field(
        default=0.95, gt=0, lt=1, description="confidence level of the intervals"
    )

    _lists = pydantic.field_validator("criteria", mode="before")(as_column_list)

    @pydantic.field_validator("criteria")
    @classmethod
    def _distinct(cls, names: list[str]) -> list[str]:
        return distinct_names(names, "criteria")

    @pydantic.field_validator("score_column")
    @classmethod
    def _template(cls, template: str) -> str:
        problem = f"{template!r} must contain {{{CRITERION_FIELD}}} and no other placeholder"
        try:
            fields = [
                (name, spec, conversion)
                for _, name, spec, conversion in string.Formatter().parse(template)
                if name is not None
            ]
        except ValueError as error:
            raise ValueError(f"{problem} ({error})") from None
        if not fields or any(field != (CRITERION_FIELD, "", None) for field in fields):
            raise ValueError(problem)
        return template

    def score_column_of(self, criterion: str) -> str:
        return self.score_column.format(criterion=criterion)

    @property
    def score_columns(self) -> list[str]:
        return [self.score_column_of(criterion) for criterion in self.criteria]


def all_equal(values: npt.NDArray[np.floating[Any]], to: float | None = None) -> bool:
    """Whether every value equals ``to`` (default: the first value) up to rounding; true for no
    values."""
    import numpy as np

    if not len(values):
        return True
    target = values[0] if to is None else to
    return bool(np.allclose(values, target, rtol=RELATIVE_TOLERANCE, atol=ABSOLUTE_TOLERANCE))


@contextlib.contextmanager
def degenerate_samples_allowed() -> Iterator[None]:
    """Silence the RuntimeWarnings scipy raises on samples that are legitimate for the test at
    hand but would be degenerate for its moment calculations (e.g. the constant sides a rank test
    or Cliff's delta may compare): what such a sample reports has been decided before the call,
    and the warning text would only add noise to the worker's log."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield
