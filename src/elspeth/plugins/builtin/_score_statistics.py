"""``score_statistics``: count, missing, mean, spread and quartiles of score columns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import pydantic

from elspeth.plugins._api import FrameProxy, Plugin, PluginContext, PluginKind
from elspeth.plugins.builtin._columns import (
    as_column_list,
    distinct_names,
    numeric,
    require_columns,
)
from elspeth.security import SecurityLevel

if TYPE_CHECKING:
    import pandas as pd

STATISTICS: Final = ("count", "missing", "mean", "std", "min", "p25", "median", "p75", "max")
"""The summary's statistic columns, in order, after any group columns and ``column``."""


class ScoreStatisticsParameters(pydantic.BaseModel):
    """``columns`` to summarise; ``group_by`` (a column or a list) splits the summary."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    columns: list[str] = pydantic.Field(min_length=1, description="numeric score columns")
    group_by: list[str] = pydantic.Field(default_factory=list, description="columns to group by")

    _lists = pydantic.field_validator("columns", "group_by", mode="before")(as_column_list)

    @pydantic.field_validator("columns", "group_by")
    @classmethod
    def _distinct(cls, names: list[str], info: pydantic.ValidationInfo) -> list[str]:
        return distinct_names(names, str(info.field_name))

    @pydantic.model_validator(mode="after")
    def _no_clashes(self) -> ScoreStatisticsParameters:
        clashes = set(self.group_by) & {*self.columns, "column", *STATISTICS}
        if clashes:
            raise ValueError(
                f"group_by {sorted(clashes)} would clash with a summarised column "
                "or a column of the summary"
            )
        return self


class ScoreStatistics(Plugin):
    """One summary frame over every chunk it is given: a row per column (and group)."""

    name = "score_statistics"
    kind = PluginKind.AGGREGATOR
    clearance = SecurityLevel.SECRET
    Parameters = ScoreStatisticsParameters

    def run(self, proxies: Sequence[FrameProxy], context: PluginContext) -> None:
        import pandas as pd

        parameters: ScoreStatisticsParameters = self.parameters  # type: ignore[assignment]
        wanted = [*parameters.group_by, *parameters.columns]
        views = [proxy.get_view() for proxy in proxies]
        for view in views:
            require_columns(view.data, wanted, "score_statistics")
        data = pd.concat([view.data[wanted] for view in views], ignore_index=True)
        proxies[0].replace_data(
            summarise_frame(data, parameters.columns, parameters.group_by), views[0].version
        )


def summarise_frame(
    data: pd.DataFrame, columns: Sequence[str], group_by: Sequence[str]
) -> pd.DataFrame:
    """The summary of ``columns``, one row per (group, column); groups include a null key."""
    import pandas as pd

    rows: list[dict[str, Any]] = []
    if group_by:
        for key, group in data.groupby(list(group_by), dropna=False, sort=True):
            labels = dict(zip(group_by, key, strict=True))
            rows.extend({**labels, "column": c, **summarise(group[c])} for c in columns)
    else:
        rows.extend({"column": c, **summarise(data[c])} for c in columns)
    return pd.DataFrame(rows, columns=[*group_by, "column", *STATISTICS])


def summarise(values: pd.Series[Any]) -> dict[str, float | int]:
    """Statistics of one column; nulls and non-numbers count as missing. The standard deviation
    is the sample one (NaN below two values); quartiles interpolate linearly."""
    scores = numeric(values).dropna()
    quartiles = scores.quantile([0.25, 0.5, 0.75]).tolist() if len(scores) else [float("nan")] * 3
    return {
        "count": len(scores),
        "missing": len(values) - len(scores),
        "mean": float(scores.mean()),
        "std": float(scores.std(ddof=1)),
        "min": float(scores.min()),
        "p25": quartiles[0],
        "median": quartiles[1],
        "p75": quartiles[2],
        "max": float(scores.max()),
    }
