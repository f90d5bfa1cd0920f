"""Which class writes each kind of suite-level sink."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from elspeth.bundle import BundleConfig, BundleSink
from elspeth.reports import REPORT_SINKS
from elspeth.sinks import ReportSink, ReportSinkSettings

SUITE_SINKS: Final[Mapping[type[ReportSinkSettings], type[ReportSink]]] = {
    **REPORT_SINKS,
    BundleConfig: BundleSink,
}
"""Settings type → the sink that writes it: the readable reports and the signed bundle."""


def open_report_sink(config: ReportSinkSettings) -> ReportSink:
    """The suite-level sink for ``config`` (one of the ``reports`` of a suite)."""
    return SUITE_SINKS[type(config)](config)
