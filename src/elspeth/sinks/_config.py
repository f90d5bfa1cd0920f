"""Sink settings: one pydantic model per format, told apart by ``type``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from elspeth.datasources import ConfiguredLevel, TextEncoding
from elspeth.security import ComponentSpec


class _SinkSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    clearance: ConfiguredLevel

    def component_spec(self, name: str) -> ComponentSpec:
        """This sink as the clearance plan sees it (``PipelineSpec.linear`` adds its input)."""
        return ComponentSpec(name=name, kind="sink", clearance=self.clearance)


class CsvSinkConfig(_SinkSettings):
    """CSV with a ``# classification: LEVEL`` first line; formula injection neutralised."""

    type: Literal["csv"] = "csv"
    encoding: TextEncoding = "utf-8"
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    neutralise_formulas: bool = Field(
        default=True,
        description="Prefix text cells starting with = + - @ tab or CR with an apostrophe.",
    )


class JsonlSinkConfig(_SinkSettings):
    """JSON lines, the first of them a header record naming the classification."""

    type: Literal["jsonl"] = "jsonl"


class ParquetSinkConfig(_SinkSettings):
    """Parquet with ``elspeth.classification`` in the file's key-value metadata."""

    type: Literal["parquet"] = "parquet"
    compression: Literal["zstd", "snappy", "gzip", "none"] = "zstd"


SinkConfig = Annotated[
    CsvSinkConfig | JsonlSinkConfig | ParquetSinkConfig, Field(discriminator="type")
]
"""Any sink's settings; ``type`` selects the format."""
