"""Datasource settings: one pydantic model per kind, told apart by ``type``.

Every datasource declares the ``classification`` of its data and its own ``clearance``; both are
required (there is no default level) and parsed with :meth:`SecurityLevel.parse`.
"""

from __future__ import annotations

import codecs
import enum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    SecretStr,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from elspeth.security import ComponentSpec, SecurityLevel

ConfiguredLevel = Annotated[
    SecurityLevel,
    PlainValidator(SecurityLevel.parse),
    PlainSerializer(lambda level: level.name, return_type=str),
    WithJsonSchema({"type": "string", "enum": [level.name for level in SecurityLevel]}),
]
"""A security level in settings: any spelling :meth:`SecurityLevel.parse` accepts, no default."""


class ColumnType(enum.StrEnum):
    """The types a datasource can be told to expect in a column."""

    STRING = "string"
    INTEGER = "integer"
    FLOAT = "float"
    BOOLEAN = "boolean"
    DATETIME = "datetime"


class ExtraColumns(enum.StrEnum):
    """What to do with a column the data has but ``columns`` does not declare."""

    ERROR = "error"
    DROP = "drop"
    KEEP = "keep"


class _DatasourceSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    classification: ConfiguredLevel
    clearance: ConfiguredLevel
    columns: dict[str, ColumnType] | None = Field(
        default=None,
        description="Expected columns and their types, in order; checked on every row.",
    )
    extra_columns: ExtraColumns = ExtraColumns.ERROR
    target: tuple[str, ...] = Field(
        default=(),
        description="Reference-answer column(s): they reach scorers, judges and reports, and a "
        "prompt only if its template names them. One name or a list.",
    )

    @field_validator("target", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("target", mode="after")
    @classmethod
    def _targets_are_columns(cls, target: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        repeated = sorted({name for name in target if target.count(name) > 1})
        if repeated:
            raise ValueError(f"target names {', '.join(repeated)} more than once")
        # ``columns`` is declared before ``target``, so it is validated first.
        columns = info.data.get("columns")
        if columns is not None:
            unknown = [name for name in target if name not in columns]
            if unknown:
                raise ValueError(
                    f"target column(s) {', '.join(map(repr, unknown))} are not among the "
                    f"declared columns: {', '.join(columns)}"
                )
        return target

    def component_spec(self, name: str) -> ComponentSpec:
        """This datasource as the clearance plan sees it."""
        return ComponentSpec(
            name=name,
            kind="datasource",
            clearance=self.clearance,
            classification=self.classification,
        )


def _known_encoding(value: str) -> str:
    try:
        codecs.lookup(value)
    except LookupError:
        raise ValueError(f"unknown text encoding {value!r}") from None
    return value


TextEncoding = Annotated[str, AfterValidator(_known_encoding)]
"""The name of a text encoding Python knows (``utf-8``, ``cp1252``, ``latin-1``...)."""


class _FileSettings(_DatasourceSettings):
    path: Path


class CsvDatasourceConfig(_FileSettings):
    """A CSV file with a header line; an Elspeth classification banner first is skipped."""

    type: Literal["csv"] = "csv"
    encoding: TextEncoding = "utf-8"
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    quotechar: str = Field(default='"', min_length=1, max_length=1)
    null_values: tuple[str, ...] = Field(
        default=("",), description="Cell texts read as missing values."
    )


class JsonlDatasourceConfig(_FileSettings):
    """One JSON object per line; an Elspeth header record first is skipped."""

    type: Literal["jsonl"] = "jsonl"
    encoding: TextEncoding = "utf-8"


class ParquetDatasourceConfig(_FileSettings):
    """A Parquet file; its ``elspeth.classification`` metadata is checked when present."""

    type: Literal["parquet"] = "parquet"


class SqlDatasourceConfig(_DatasourceSettings):
    """Rows from any SQLAlchemy URL, by ``query`` or by ``table`` (exactly one of them)."""

    type: Literal["sql"] = "sql"
    url: SecretStr
    query: str | None = None
    table: str | None = None
    parameters: dict[str, str | int | float | bool | None] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _query_or_table(self) -> SqlDatasourceConfig:
        if (self.query is None) == (self.table is None):
            raise ValueError("give exactly one of 'query' or 'table'")
        if self.table is not None and self.parameters:
            raise ValueError("'parameters' apply to a 'query', not to a 'table'")
        return self


DatasourceConfig = Annotated[
    CsvDatasourceConfig | JsonlDatasourceConfig | ParquetDatasourceConfig | SqlDatasourceConfig,
    Field(discriminator="type"),
]
"""Any datasource's settings; ``type`` selects the kind."""

FILE_SUFFIXES: dict[str, type[_FileSettings]] = {
    ".csv": CsvDatasourceConfig,
    ".jsonl": JsonlDatasourceConfig,
    ".ndjson": JsonlDatasourceConfig,
    ".parquet": ParquetDatasourceConfig,
    ".pq": ParquetDatasourceConfig,
}
"""File suffixes :func:`~elspeth.datasources.file_datasource_config` recognises."""
