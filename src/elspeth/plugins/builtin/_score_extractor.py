"""``score_extractor``: a numeric score pulled out of a text column by regex or JSON field."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import pydantic

from elspeth.plugins._api import FrameProxy, Plugin, PluginContext, PluginKind
from elspeth.plugins.builtin._columns import require_columns
from elspeth.security import SecurityLevel


class ScoreExtractorParameters(pydantic.BaseModel):
    """Exactly one of ``pattern`` (a regex with one capture group) or ``json_field`` (a dotted
    path into a JSON object, e.g. ``scores.overall``)."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    source: str = pydantic.Field(min_length=1, description="column holding the text")
    output: str = pydantic.Field(min_length=1, description="column the scores are written to")
    pattern: str | None = None
    json_field: str | None = None
    ignore_case: bool = False

    @pydantic.model_validator(mode="after")
    def _one_method(self) -> ScoreExtractorParameters:
        if (self.pattern is None) == (self.json_field is None):
            raise ValueError("give exactly one of 'pattern' and 'json_field'")
        if self.pattern is not None:
            try:
                groups = re.compile(self.pattern).groups
            except re.error as error:
                raise ValueError(
                    f"pattern {self.pattern!r} is not a valid regex: {error}"
                ) from None
            if groups != 1:
                raise ValueError(
                    f"pattern {self.pattern!r} must have exactly one capture group, has {groups}"
                )
        if self.json_field is not None and not all(self.json_field.split(".")):
            raise ValueError(f"json_field {self.json_field!r} has an empty path segment")
        return self


class ScoreExtractor(Plugin):
    """Adds ``output``: the number found in ``source`` (NaN where none is found)."""

    name = "score_extractor"
    kind = PluginKind.ROW_PLUGIN
    clearance = SecurityLevel.SECRET
    Parameters = ScoreExtractorParameters

    def run(self, proxies: Sequence[FrameProxy], context: PluginContext) -> None:
        import pandas as pd

        parameters: ScoreExtractorParameters = self.parameters  # type: ignore[assignment]
        (proxy,) = proxies
        view = proxy.get_view()
        data = view.data
        require_columns(data, [parameters.source], "source")
        text = data[parameters.source].astype("str")
        if parameters.pattern is not None:
            flags = re.IGNORECASE if parameters.ignore_case else 0
            found = text.str.extract(parameters.pattern, flags=flags, expand=False)
        else:
            path = parameters.json_field.split(".")  # type: ignore[union-attr]
            found = pd.Series([_json_path(value, path) for value in text], index=data.index)
        scores = pd.to_numeric(found, errors="coerce").astype("float64")
        proxy.replace_data(data.assign(**{parameters.output: scores}), view.version)


def _json_path(text: str, path: Sequence[str]) -> Any:
    try:
        value: Any = json.loads(text)
    except (TypeError, ValueError):
        return None
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value if isinstance(value, (int, float, str)) and not isinstance(value, bool) else None
