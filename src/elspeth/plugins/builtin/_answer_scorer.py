"""``answer_scorer``: one deterministic scorer (``_scoring``) applied to an answer column.

Adds ``<output>_value`` (nullable float), ``<output>_outcome`` (``pass``, ``fail`` or ``error``)
and ``<output>_explanation`` (text). A null answer or reference is an ``error`` row, never a
failure of the call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final, Literal

import pydantic

from elspeth.plugins._api import FrameProxy, Plugin, PluginContext, PluginKind
from elspeth.plugins.builtin import _scoring
from elspeth.plugins.builtin._columns import require_columns
from elspeth.security import SecurityLevel

ScorerName = Literal[
    "exact",
    "includes",
    "pattern",
    "numeric",
    "choice",
    "json_field",
    "token_f1",
    "bleu",
    "chrf",
    "rouge",
]

NORMALISED: Final = frozenset({"exact", "includes", "choice", "json_field", "token_f1"})
"""Scorers that compare normalised text and so take the normalisation flags."""
NORMALISATION_FLAGS: Final = ("case", "whitespace", "punctuation", "articles")
ONLY_FOR: Final[dict[str, tuple[str, ...]]] = {
    "regex": ("pattern",),
    "abs_tol": ("numeric",),
    "rel_tol": ("numeric",),
    "choices": ("choice",),
    "field": ("json_field",),
    "threshold": ("token_f1", "bleu", "chrf", "rouge"),
    "rouge_type": ("rouge",),
    "use_stemmer": ("rouge",),
}
"""Parameter -> the scorers that use it; another scorer refuses it unless it is left at its
default (so the parameters ``describe`` resolves validate again)."""
OUTPUT_SUFFIXES: Final = ("_value", "_outcome", "_explanation")

_RowScorer = Callable[[str, Any], _scoring.Score]


class AnswerScorerParameters(pydantic.BaseModel):
    """``reference`` is required except by ``pattern``; ``output`` defaults to the scorer's name.
    A parameter a scorer does not use is refused (unless left at its default) rather than
    ignored."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    scorer: ScorerName
    answer: str = pydantic.Field(min_length=1, description="column holding the answer")
    reference: str | None = pydantic.Field(
        default=None, min_length=1, description="column holding the reference answer"
    )
    output: str = pydantic.Field(min_length=1, description="prefix of the columns written")
    case: bool = True
    whitespace: bool = True
    punctuation: bool = True
    articles: bool = True
    regex: str | None = None
    abs_tol: float = pydantic.Field(default=0.0, ge=0, allow_inf_nan=False)
    rel_tol: float = pydantic.Field(default=0.0, ge=0, allow_inf_nan=False)
    choices: list[str] | None = pydantic.Field(default=None, min_length=1, max_length=26)
    field: str | None = None
    threshold: float = pydantic.Field(default=0.5, ge=0, le=1)
    rouge_type: _scoring.RougeType = "rougeL"
    use_stemmer: bool = False

    @pydantic.model_validator(mode="before")
    @classmethod
    def _default_output(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("scorer"), str):
            return {"output": data["scorer"], **data}
        return data

    @pydantic.field_validator("regex")
    @classmethod
    def _compiles(cls, regex: str | None) -> str | None:
        if regex is not None:
            _scoring.compile_pattern(regex)
        return regex

    @pydantic.model_validator(mode="after")
    def _consistent(self) -> AnswerScorerParameters:
        scorer = self.scorer
        for name, users in ONLY_FOR.items():
            if scorer not in users and self._changed(name):
                raise ValueError(f"{name} is used only by {_scorers(users)}, not by {scorer}")
        required = {"regex": self.regex, "choices": self.choices, "field": self.field}
        for name, value in required.items():
            if scorer in ONLY_FOR[name] and value is None:
                raise ValueError(f"the {scorer} scorer requires {name}")
        if scorer not in NORMALISED:
            flags = [name for name in NORMALISATION_FLAGS if self._changed(name)]
            if flags:
                raise ValueError(f"{flags[0]} (normalisation) is not used by the {scorer} scorer")
        if (scorer == "pattern") != (self.reference is None):
            raise ValueError(
                "reference is not used by the pattern scorer"
                if scorer == "pattern"
                else f"the {scorer} scorer requires reference"
            )
        if self.field is not None and not all(self.field.split(".")):
            raise ValueError(f"field {self.field!r} has an empty path segment")
        inputs = {self.answer, self.reference}
        for column in self.output_columns:
            if column in inputs:
                raise ValueError(f"output {self.output!r} would overwrite input column {column!r}")
        return self

    def _changed(self, name: str) -> bool:
        """Whether ``name`` differs from its default (so resolved parameters validate again)."""
        return bool(getattr(self, name) != type(self).model_fields[name].default)

    @property
    def output_columns(self) -> list[str]:
        return [self.output + suffix for suffix in OUTPUT_SUFFIXES]

    @property
    def normalisation(self) -> _scoring.Normalisation:
        return _scoring.Normalisation(
            case=self.case,
            whitespace=self.whitespace,
            punctuation=self.punctuation,
            articles=self.articles,
        )


def _scorers(names: Sequence[str]) -> str:
    """``the numeric scorer``, ``the token_f1, bleu, chrf and rouge scorers``."""
    if len(names) == 1:
        return f"the {names[0]} scorer"
    return f"the {', '.join(names[:-1])} and {names[-1]} scorers"


def row_scorer(parameters: AnswerScorerParameters) -> _RowScorer:
    """The configured scorer as ``(answer, reference) -> Score``; a regex is compiled once."""
    norm = parameters.normalisation
    if parameters.scorer == "pattern":
        compiled = _scoring.compile_pattern(parameters.regex or "")
        return lambda answer, _: _scoring.pattern(answer, compiled)
    abs_tol, rel_tol, threshold = parameters.abs_tol, parameters.rel_tol, parameters.threshold
    choices, field = list(parameters.choices or ()), parameters.field or ""
    rouge_type, use_stemmer = parameters.rouge_type, parameters.use_stemmer
    scorers: dict[str, _RowScorer] = {
        "exact": lambda answer, reference: _scoring.exact(answer, str(reference), norm),
        "includes": lambda answer, reference: _scoring.includes(answer, str(reference), norm),
        "numeric": lambda answer, reference: _scoring.numeric(
            answer, reference, abs_tol=abs_tol, rel_tol=rel_tol
        ),
        "choice": lambda answer, reference: _scoring.choice(answer, str(reference), choices, norm),
        "json_field": lambda answer, reference: _scoring.json_field(answer, field, reference, norm),
        "token_f1": lambda answer, reference: _scoring.token_f1(
            answer, str(reference), threshold=threshold, normalisation=norm
        ),
        "bleu": lambda answer, reference: _scoring.bleu(
            answer, str(reference), threshold=threshold
        ),
        "chrf": lambda answer, reference: _scoring.chrf(
            answer, str(reference), threshold=threshold
        ),
        "rouge": lambda answer, reference: _scoring.rouge(
            answer,
            str(reference),
            rouge_type=rouge_type,
            use_stemmer=use_stemmer,
            threshold=threshold,
        ),
    }
    return scorers[parameters.scorer]


def _is_null(value: Any) -> bool:
    import pandas as pd

    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # array-like cells are values, not nulls
        return False


def python_value(value: Any) -> Any:
    """A cell as a plain Python value (numpy scalars unwrapped)."""
    return value.item() if hasattr(value, "item") and callable(value.item) else value


def unscorable_pair(answer: Any, reference: Any) -> _scoring.Score | None:
    """The error a null answer or reference makes, else None."""
    if _is_null(answer):
        return _scoring.Score(None, "error", "no answer")
    if _is_null(reference):
        return _scoring.Score(None, "error", "no reference")
    return None


def score_cell(scorer: _RowScorer, answer: Any, reference: Any) -> _scoring.Score:
    """One row's score; a null answer or reference is an error, never an exception."""
    error = unscorable_pair(answer, reference)
    if error is not None:
        return error
    reference = python_value(reference)
    if not isinstance(reference, (str, int, float, bool)):
        reference = str(reference)
    return scorer(str(python_value(answer)), reference)


def score_columns(
    scores: Sequence[_scoring.Score], names: Sequence[str], index: Any
) -> dict[str, Any]:
    """The value, outcome and explanation columns (named ``names``) of ``scores``."""
    import pandas as pd

    value, outcome, explanation = names
    return {
        value: pd.Series([s.value for s in scores], index=index, dtype="Float64"),
        outcome: pd.Series([s.outcome for s in scores], index=index, dtype=object),
        explanation: pd.Series([s.explanation for s in scores], index=index, dtype=object),
    }


class AnswerScorer(Plugin):
    """Scores each row's answer with one scorer; see docs/plugins.md, "Answer scorers"."""

    name = "answer_scorer"
    kind = PluginKind.ROW_PLUGIN
    clearance = SecurityLevel.SECRET
    Parameters = AnswerScorerParameters

    def run(self, proxies: Sequence[FrameProxy], context: PluginContext) -> None:
        parameters: AnswerScorerParameters = self.parameters  # type: ignore[assignment]
        (proxy,) = proxies
        view = proxy.get_view()
        data = view.data
        inputs = [parameters.answer, *([parameters.reference] if parameters.reference else [])]
        require_columns(data, inputs, "answer_scorer input")
        answers = data[parameters.answer].tolist()
        references = (
            data[parameters.reference].tolist() if parameters.reference else [""] * len(answers)
        )
        scorer = row_scorer(parameters)
        scores = [score_cell(scorer, a, r) for a, r in zip(answers, references, strict=True)]
        columns = score_columns(scores, parameters.output_columns, data.index)
        proxy.replace_data(data.assign(**columns), view.version)
