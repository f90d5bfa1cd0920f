"""Trusted sinks: CSV, JSONL and Parquet outputs, and the run manifest.

A sink runs in the orchestrator. Before writing it re-checks every frame's clearance and seal
with the seal authority; it writes atomically into a private file marked with the data's
classification (or, for a bundle's member, into memory, after the same check). No writer is
exported: :class:`Sink` and :class:`ReportSink` are the only ways from frames to output bytes, and
a :class:`Release` comes only from the release check. :class:`RunManifest` records a run's
artifacts and whether the run completed. See ``docs/datasources-and-sinks.md``.
"""

from __future__ import annotations

from elspeth.sinks._artifact import WrittenArtifact, WrittenMember
from elspeth.sinks._config import CsvSinkConfig, JsonlSinkConfig, ParquetSinkConfig, SinkConfig
from elspeth.sinks._errors import SinkError
from elspeth.sinks._files import PRIVATE_DIRECTORY_MODE, PRIVATE_FILE_MODE, TEMPORARY_SUFFIX
from elspeth.sinks._formats import FORMULA_GUARD, FORMULA_PREFIXES, neutralise_formula
from elspeth.sinks._manifest import (
    MANIFEST_FORMAT,
    MANIFEST_NAME,
    RunManifest,
    verify_run,
)
from elspeth.sinks._report import (
    ComparisonReport,
    ExperimentReport,
    PluginRecord,
    Release,
    ReportSink,
    ReportSinkSettings,
    SuiteReport,
)
from elspeth.sinks._sink import Sink, open_sink

__all__ = [
    "FORMULA_GUARD",
    "FORMULA_PREFIXES",
    "MANIFEST_FORMAT",
    "MANIFEST_NAME",
    "PRIVATE_DIRECTORY_MODE",
    "PRIVATE_FILE_MODE",
    "TEMPORARY_SUFFIX",
    "ComparisonReport",
    "CsvSinkConfig",
    "ExperimentReport",
    "JsonlSinkConfig",
    "ParquetSinkConfig",
    "PluginRecord",
    "Release",
    "ReportSink",
    "ReportSinkSettings",
    "RunManifest",
    "Sink",
    "SinkConfig",
    "SinkError",
    "SuiteReport",
    "WrittenArtifact",
    "WrittenMember",
    "neutralise_formula",
    "open_sink",
    "verify_run",
]
