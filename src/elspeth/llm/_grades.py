"""Reading a judge model's grade out of its reply.

A judge's reply is model output: it may be anything. :meth:`GradeScale.read` turns it into a
:class:`Grade` whose outcome is ``pass``, ``fail`` or ``error``; a reply that does not give a
grade in the declared form is an ``error`` with the reason, never a value of 0. Three forms:

- ``labels``: a line ``GRADE: <label>`` (the last such line counts; lines that disagree are an
  error), each label worth a value, e.g. CORRECT 1, PARTIAL 0.5, INCORRECT 0;
- ``scale``: a line ``GRADE: <number>`` on the declared ``min``..``max`` (``4/5`` reads as 4);
- ``json``: the reply is one JSON object (a fenced code block around it is allowed) whose
  ``field`` holds a label or a number on the scale, and ``explanation_field`` the reasoning.

An error's ``reason`` is built from fixed parts and the scale's own labels, never from the
reply, so it can go to the audit log; the reply itself stays in the result frame.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

PASS: Final = "pass"  # noqa: S105 - an outcome, not a password
FAIL: Final = "fail"
ERROR: Final = "error"

DEFAULT_LABELS: Final = {"CORRECT": 1.0, "PARTIAL": 0.5, "INCORRECT": 0.0}

_GRADE_LINE: Final = re.compile(
    r"^[ \t*_#>`-]*GRADE[ \t*_`]*:(?P<grade>[^\n]*)$", re.IGNORECASE | re.MULTILINE
)
"""A grade line; linear in the reply (no nested or adjacent repeats that could backtrack)."""
_DECORATION: Final = " \t\r*_`"
"""Around a grade (Markdown emphasis, code); a full stop is stripped only at the end, so
``.5`` stays a half."""
_NUMBER: Final = re.compile(r"^[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:\s*/\s*\d+(?:\.\d*)?)?$")

Label = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")]
Value = Annotated[float, Field(allow_inf_nan=False)]


@dataclass(frozen=True, slots=True)
class Grade:
    """One reply read: the grade as given (a label in the scale's spelling, or the number's
    text), its value, the outcome, and the judge's explanation; for an ``error``, ``reason``."""

    grade: str | None
    value: float | None
    outcome: str
    explanation: str
    reason: str | None = None


def _unfenced(reply: str) -> str:
    """The reply without a Markdown code fence around it (```json ... ```), which models add."""
    text = reply.strip()
    if text.startswith("```") and text.endswith("```") and "\n" in text:
        return text[text.index("\n") + 1 : -3]
    return text


def _token(text: str) -> str:
    """A grade line's grade without its decoration or a sentence's full stop."""
    return text.strip(_DECORATION).rstrip(".").strip(_DECORATION)


def error_grade(reason: str) -> Grade:
    """No grade, for ``reason`` (which is also the explanation)."""
    return Grade(None, None, ERROR, reason, reason)


class GradeScale(BaseModel):
    """How a judge states its grade, and from what value a grade passes.

    ``pass_at`` defaults to the best label's value (``labels``) or the middle of the scale
    (``scale``); a grade passes when its value is at least ``pass_at``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["labels", "scale", "json"] = "labels"
    labels: dict[Label, Value] | None = Field(
        default=None, description="label -> value; labels format default CORRECT/PARTIAL/INCORRECT"
    )
    min: Value | None = Field(default=None, description="lowest grade on a numeric scale")
    max: Value | None = Field(default=None, description="highest grade on a numeric scale")
    field: str = Field(default="grade", min_length=1, description="json: the grade's key")
    explanation_field: str = Field(
        default="explanation", min_length=1, description="json: the reasoning's key"
    )
    pass_at: Value | None = None

    @model_validator(mode="after")
    def _consistent(self) -> GradeScale:
        numeric = self.min is not None or self.max is not None
        if numeric and (self.min is None or self.max is None or self.min >= self.max):
            raise ValueError("a numeric scale needs both min and max, with min < max")
        if self.format == "scale" and not numeric:
            raise ValueError("format scale needs min and max")
        if self.format == "scale" and self.labels is not None:
            raise ValueError("format scale takes min and max, not labels")
        if self.format == "labels" and numeric:
            raise ValueError("format labels takes labels, not min and max (use format scale)")
        if self.format == "json" and numeric and self.labels is not None:
            raise ValueError("format json takes labels or min and max, not both")
        if self.labels is not None:
            if not self.labels:
                raise ValueError("labels must name at least one label")
            folded = [label.upper() for label in self.labels]
            repeated = sorted({label for label in folded if folded.count(label) > 1})
            if repeated:
                raise ValueError(f"labels repeat (case is ignored): {', '.join(repeated)}")
        if self.pass_at is not None:
            values = list(self.label_values.values()) if self.label_values else []
            low, high = (min(values), max(values)) if values else (self.min, self.max)
            assert low is not None
            assert high is not None
            if not low <= self.pass_at <= high:
                raise ValueError(
                    f"pass_at {self.pass_at:g} is outside the grades' values ({low:g} to "
                    f"{high:g}): no grade could pass, or every grade would"
                )
        return self

    @property
    def label_values(self) -> dict[str, float] | None:
        """The labels and their values, or ``None`` when the grade is a number."""
        if self.labels is not None:
            return dict(self.labels)
        if self.format == "labels" or (self.format == "json" and self.min is None):
            return dict(DEFAULT_LABELS)
        return None

    @property
    def passing_value(self) -> float:
        if self.pass_at is not None:
            return self.pass_at
        labels = self.label_values
        if labels is not None:
            return max(labels.values())
        assert self.min is not None  # the validator saw to it
        assert self.max is not None
        return (self.min + self.max) / 2

    def describe(self) -> str:
        """``one of CORRECT, PARTIAL, INCORRECT`` or ``a number from 1 to 5``."""
        labels = self.label_values
        if labels is not None:
            return "one of " + ", ".join(labels)
        return f"a number from {self.min:g} to {self.max:g}"

    def read(self, reply: str) -> Grade:
        """The grade ``reply`` gives, or an ``error`` saying why it gives none."""
        if self.format == "json":
            return self._read_json(reply)
        found = [_token(match.group("grade")) for match in _GRADE_LINE.finditer(reply)]
        if not found:
            return error_grade(
                f"malformed grade: the reply has no 'GRADE:' line ({self.describe()})"
            )
        distinct = {self._agreement_key(token) for token in found}
        if len(distinct) > 1:
            return error_grade(f"malformed grade: the reply gives {len(distinct)} different grades")
        explanation = _GRADE_LINE.sub("", reply).strip()
        return self._graded(found[-1], explanation)

    def _read_json(self, reply: str) -> Grade:
        try:
            document: Any = json.loads(_unfenced(reply))
        except (ValueError, RecursionError):  # RecursionError: deeply nested arrays
            return error_grade("malformed grade: the reply is not a JSON object")
        if not isinstance(document, dict):
            return error_grade("malformed grade: the reply is not a JSON object")
        if self.field not in document:
            return error_grade(f"malformed grade: the reply's JSON has no {self.field!r} key")
        explanation = document.get(self.explanation_field, "")
        text = explanation if isinstance(explanation, str) else json.dumps(explanation)
        grade = document[self.field]
        if isinstance(grade, bool) or not isinstance(grade, str | int | float):
            return error_grade(f"malformed grade: {self.field!r} is not {self.describe()}")
        return self._graded(str(grade), text)

    def _graded(self, token: str, explanation: str) -> Grade:
        labels = self.label_values
        if labels is not None:
            by_fold = {label.upper(): (label, value) for label, value in labels.items()}
            named = by_fold.get(token.upper())
            if named is None:
                return error_grade(f"malformed grade: the grade is not {self.describe()}")
            label, value = named
            return Grade(label, value, self._outcome(value), explanation)
        if not _NUMBER.match(token):
            return error_grade(f"malformed grade: the grade is not {self.describe()}")
        numerator, _, denominator = token.partition("/")
        value = float(numerator)
        assert self.min is not None
        assert self.max is not None
        if denominator and float(denominator) != self.max:
            # "3/10" on a 1..5 scale is not a 3 on it.
            return error_grade(
                f"malformed grade: the grade is not out of {self.max:g} ({self.describe()})"
            )
        if not math.isfinite(value) or not self.min <= value <= self.max:
            return error_grade(
                f"malformed grade: the grade is outside the scale ({self.describe()})"
            )
        return Grade(f"{value:g}", value, self._outcome(value), explanation)

    def _agreement_key(self, token: str) -> str | tuple[float, float | None]:
        """What two grade lines must share to agree: the label case-folded, or on a numeric
        scale the number and its total (``4``, ``4.0`` and ``4/5`` on 1..5 are one grade)."""
        if self.label_values is None and _NUMBER.match(token):
            numerator, _, denominator = token.partition("/")
            return float(numerator), float(denominator) if denominator else self.max
        return token.upper()

    def _outcome(self, value: float) -> str:
        return PASS if value >= self.passing_value else FAIL
