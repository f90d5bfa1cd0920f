"""``score_delta``: how a variant's scores differ from the baseline's, overall and row by row."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
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
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

SUMMARY_COLUMNS: Final = (
    "column",
    "baseline_count",
    "baseline_mean",
    "variant_count",
    "variant_mean",
    "delta",
    "paired_rows",
    "mean_paired_difference",
    "paired_standard_error",
    "paired_t",
)


class ScoreDeltaParameters(pydantic.BaseModel):
    """``columns`` to compare; rows pair up by ``key`` (a column or a list, default ``_row``)."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    columns: list[str] = pydantic.Field(min_length=1, description="numeric score columns")
    key: list[str] = pydantic.Field(
        default_factory=lambda: ["_row"], min_length=1, description="columns that pair rows"
    )

    _lists = pydantic.field_validator("columns", "key", mode="before")(as_column_list)

    @pydantic.field_validator("columns", "key")
    @classmethod
    def _distinct(cls, names: list[str], info: pydantic.ValidationInfo) -> list[str]:
        return distinct_names(names, str(info.field_name))

    @pydantic.model_validator(mode="after")
    def _key_is_not_compared(self) -> ScoreDeltaParameters:
        overlap = set(self.key) & set(self.columns)
        if overlap:
            raise ValueError(f"{sorted(overlap)} cannot be both a key and a compared column")
        return self


@dataclass(frozen=True, slots=True)
class PairedEstimate:
    """The mean of paired differences (variant - baseline), its standard error and t statistic
    (``rows - 1`` degrees of freedom). NaN where undefined: no pairs, one pair, or no spread."""

    rows: int
    mean: float
    standard_error: float
    t: float


class ScoreDelta(Plugin):
    """Proxies: baseline first, variant second. The summary is written through the first."""

    name = "score_delta"
    kind = PluginKind.BASELINE_COMPARISON
    clearance = SecurityLevel.SECRET
    Parameters = ScoreDeltaParameters

    def run(self, proxies: Sequence[FrameProxy], context: PluginContext) -> None:
        parameters: ScoreDeltaParameters = self.parameters  # type: ignore[assignment]
        baseline, variant = (proxy.get_view() for proxy in proxies)
        wanted = [*parameters.key, *parameters.columns]
        require_columns(baseline.data, wanted, "baseline")
        require_columns(variant.data, wanted, "variant")
        summary = compare_frames(
            baseline.data[wanted], variant.data[wanted], parameters.columns, parameters.key
        )
        proxies[0].replace_data(summary, baseline.version)


def compare_frames(
    baseline: pd.DataFrame, variant: pd.DataFrame, columns: Sequence[str], key: Sequence[str]
) -> pd.DataFrame:
    """One row per column. Means use every score; pairs use the mean score per key on each side
    (repeats collapse to one value), keeping keys scored on both sides."""
    import pandas as pd

    scores = {
        side: frame.assign(**{c: numeric(frame[c]) for c in columns})
        for side, frame in (("baseline", baseline), ("variant", variant))
    }
    per_key = {
        side: frame.groupby(list(key), dropna=True)[list(columns)].mean()
        for side, frame in scores.items()
    }
    rows: list[dict[str, Any]] = []
    for column in columns:
        base, var = scores["baseline"][column], scores["variant"][column]
        both = pd.concat(
            [per_key["baseline"][column], per_key["variant"][column]], axis=1, join="inner"
        ).dropna()
        estimate = paired_difference(both.iloc[:, 0].to_numpy(), both.iloc[:, 1].to_numpy())
        rows.append(
            {
                "column": column,
                "baseline_count": int(base.count()),
                "baseline_mean": float(base.mean()),
                "variant_count": int(var.count()),
                "variant_mean": float(var.mean()),
                "delta": float(var.mean() - base.mean()),
                "paired_rows": estimate.rows,
                "mean_paired_difference": estimate.mean,
                "paired_standard_error": estimate.standard_error,
                "paired_t": estimate.t,
            }
        )
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def paired_difference(
    baseline: npt.NDArray[np.floating[Any]], variant: npt.NDArray[np.floating[Any]]
) -> PairedEstimate:
    """The paired estimate over aligned arrays without NaN."""
    differences = variant - baseline
    rows = len(differences)
    if rows == 0:
        return PairedEstimate(0, math.nan, math.nan, math.nan)
    mean = float(differences.mean())
    if rows == 1:
        return PairedEstimate(1, mean, math.nan, math.nan)
    standard_error = float(differences.std(ddof=1)) / math.sqrt(rows)
    t = mean / standard_error if standard_error > 0 else math.nan
    return PairedEstimate(rows, mean, standard_error, t)
