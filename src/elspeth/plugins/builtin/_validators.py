"""``json_schema_validator`` and ``regex_validator``: a verdict and a short reason per row.

Both add ``<output>`` (nullable boolean) and ``<output>_reason`` (text, null when valid). A row is
not checked (verdict null) when its source is null or its LLM outcome is ``error``. Reasons are
built from the configuration (schema keywords, property names the schema declares, the mode) and
never quote the value being checked.
"""

from __future__ import annotations

import abc
import json
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal

import pydantic

from elspeth.plugins._api import FrameProxy, Plugin, PluginContext, PluginKind
from elspeth.plugins.builtin._columns import ERROR_OUTCOME, OUTCOME_SUFFIX, require_columns
from elspeth.security import SecurityLevel

if TYPE_CHECKING:
    import jsonschema

RESPONSE_SUFFIX: Final = "_response"
MISSING_REASON: Final = "missing"
ERROR_REASON: Final = "outcome error"


class ValidatorParameters(pydantic.BaseModel):
    """What every validator takes. ``output`` defaults to ``<source>_valid``; ``outcome`` (the
    column whose ``error`` rows are not checked) defaults to ``<c>_outcome`` when ``source`` is
    ``<c>_response``, the suite runner's LLM columns; give ``outcome: null`` to check every row."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    source: str = pydantic.Field(min_length=1, description="column holding the text to check")
    output: str = pydantic.Field(min_length=1, description="boolean column written")
    outcome: str | None = pydantic.Field(
        default=None, description="column of LLM outcomes; rows with 'error' are not checked"
    )

    @pydantic.model_validator(mode="before")
    @classmethod
    def _derived_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("source"), str):
            return data
        source: str = data["source"]
        defaults: dict[str, Any] = {"output": f"{source}_valid"}
        if source.endswith(RESPONSE_SUFFIX):
            defaults["outcome"] = source.removesuffix(RESPONSE_SUFFIX) + OUTCOME_SUFFIX
        return {**defaults, **data}

    @pydantic.model_validator(mode="after")
    def _distinct_columns(self) -> ValidatorParameters:
        if self.output in (self.source, self.outcome):
            raise ValueError(f"output {self.output!r} would overwrite an input column")
        return self

    @property
    def reason_column(self) -> str:
        return f"{self.output}_reason"


class _ColumnValidator(Plugin):
    """Runs :meth:`reasons` over the rows that can be checked and writes verdict and reason."""

    kind = PluginKind.VALIDATOR
    clearance = SecurityLevel.SECRET
    Parameters: ClassVar[type[pydantic.BaseModel]] = ValidatorParameters

    @abc.abstractmethod
    def reasons(self, texts: Sequence[str]) -> list[str | None]:
        """Per text: why it is invalid, or None when it is valid."""

    def run(self, proxies: Sequence[FrameProxy], context: PluginContext) -> None:
        import numpy as np
        import pandas as pd

        parameters: ValidatorParameters = self.parameters  # type: ignore[assignment]
        (proxy,) = proxies
        view = proxy.get_view()
        data = view.data
        inputs = [parameters.source, *([parameters.outcome] if parameters.outcome else [])]
        require_columns(data, inputs, "validator input")
        source = data[parameters.source]
        missing = source.isna().to_numpy()
        errored = (
            data[parameters.outcome].eq(ERROR_OUTCOME).fillna(False).to_numpy(dtype=bool)
            if parameters.outcome
            else np.zeros(len(data), dtype=bool)
        )
        checked = ~missing & ~errored
        reason = pd.Series(None, index=data.index, dtype=object)
        reason[missing] = MISSING_REASON
        reason[errored & ~missing] = ERROR_REASON
        reason[checked] = self.reasons([str(text) for text in source[checked]])
        valid = pd.Series(pd.NA, index=data.index, dtype="boolean")
        valid[checked] = reason[checked].isna().to_numpy()
        columns = {parameters.output: valid, parameters.reason_column: reason}
        proxy.replace_data(data.assign(**columns), view.version)


class JsonSchemaParameters(ValidatorParameters):
    """``schema`` is a JSON Schema object, itself checked against its metaschema here."""

    json_schema: dict[str, Any] = pydantic.Field(
        alias="schema", description="JSON Schema the parsed text must satisfy"
    )
    model_config = pydantic.ConfigDict(
        extra="forbid", frozen=True, validate_by_name=True, serialize_by_alias=True
    )

    @pydantic.field_validator("json_schema")
    @classmethod
    def _valid_schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
        import jsonschema

        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except jsonschema.SchemaError as error:
            where = "/".join(str(part) for part in error.absolute_path) or "(top level)"
            raise ValueError(f"not a valid JSON Schema at {where}: {error.message}") from None
        return schema


_KEYWORD_REASONS: Final[dict[str, Callable[[Any], str]]] = {
    "type": lambda v: f"must be of type {v!r}",
    "enum": lambda v: "must be one of the allowed values",
    "const": lambda v: "must equal the schema's constant",
    "minimum": lambda v: f"must be >= {v}",
    "maximum": lambda v: f"must be <= {v}",
    "exclusiveMinimum": lambda v: f"must be > {v}",
    "exclusiveMaximum": lambda v: f"must be < {v}",
    "multipleOf": lambda v: f"must be a multiple of {v}",
    "minLength": lambda v: f"must have at least {v} characters",
    "maxLength": lambda v: f"must have at most {v} characters",
    "pattern": lambda v: f"must match {v!r}",
    "minItems": lambda v: f"must have at least {v} items",
    "maxItems": lambda v: f"must have at most {v} items",
    "uniqueItems": lambda v: "items must be unique",
    "minProperties": lambda v: f"must have at least {v} properties",
    "maxProperties": lambda v: f"must have at most {v} properties",
    "additionalProperties": lambda v: "has properties the schema does not allow",
}
"""Schema keyword -> reason, from the keyword's value in the schema (never the data)."""


def schema_reason(error: jsonschema.ValidationError) -> str:
    """A short reason for ``error`` that names schema locations and keywords, never values."""
    keyword = str(error.validator)
    if keyword == "required":
        present = error.instance if isinstance(error.instance, dict) else {}
        required: list[str] = error.validator_value  # type: ignore[assignment]
        absent = next((name for name in required if name not in present), None)
        problem = f"{absent!r} is a required property"
    else:
        describe = _KEYWORD_REASONS.get(keyword)
        problem = describe(error.validator_value) if describe else f"fails {keyword!r}"
    where = schema_location(list(error.absolute_schema_path)[:-1])
    return f"schema: {where}: {problem}" if where else f"schema: {problem}"


def schema_location(schema_path: Sequence[str | int]) -> str:
    """A dotted location from a path into the schema: ``properties.a.items`` -> ``a.items``."""
    parts: list[str] = []
    position = 0
    while position < len(schema_path):
        part = schema_path[position]
        if part == "properties" and position + 1 < len(schema_path):
            part = schema_path[position + 1]
            position += 1
        parts.append(str(part))
        position += 1
    return ".".join(parts)


class JsonSchemaValidator(_ColumnValidator):
    """Parses each text as JSON and checks it against ``schema``."""

    name = "json_schema_validator"
    Parameters = JsonSchemaParameters

    def reasons(self, texts: Sequence[str]) -> list[str | None]:
        import jsonschema

        parameters: JsonSchemaParameters = self.parameters  # type: ignore[assignment]
        schema = parameters.json_schema
        checker = jsonschema.validators.validator_for(schema)(schema)
        return [_json_reason(checker, text) for text in texts]


def _json_reason(checker: jsonschema.protocols.Validator, text: str) -> str | None:
    import jsonschema

    try:
        document = json.loads(text)
    except ValueError:
        return "invalid JSON"
    error = jsonschema.exceptions.best_match(checker.iter_errors(document))
    return schema_reason(error) if error is not None else None


class RegexParameters(ValidatorParameters):
    """``pattern`` is compiled here, so a bad regex is a configuration error."""

    pattern: str = pydantic.Field(min_length=1, description="Python regular expression")
    mode: Literal["match", "search", "fullmatch"] = "search"
    ignore_case: bool = False

    @pydantic.field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as error:
            raise ValueError(f"{pattern!r} is not a valid regex: {error}") from None
        return pattern


REGEX_REASONS: Final = {
    "match": "does not match the pattern at the start",
    "search": "pattern not found",
    "fullmatch": "does not match the pattern as a whole",
}


class RegexValidator(_ColumnValidator):
    """Checks each text with Python's ``re`` (``match``, ``search`` or ``fullmatch``)."""

    name = "regex_validator"
    Parameters = RegexParameters

    def reasons(self, texts: Sequence[str]) -> list[str | None]:
        parameters: RegexParameters = self.parameters  # type: ignore[assignment]
        compiled = re.compile(parameters.pattern, re.IGNORECASE if parameters.ignore_case else 0)
        method = getattr(compiled, parameters.mode)
        failure = REGEX_REASONS[parameters.mode]
        return [None if method(text) else failure for text in texts]
