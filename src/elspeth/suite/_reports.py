"""Which class writes each kind of suite-level sink."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from elspeth.bundle import BundleConfig
from elspeth.reports import REPORT_SINKS
from elspeth.sinks import ReportSink, ReportSinkSettings

SUITE_SINKS: Final[Mapping[type[ReportSinkSettings], type[ReportSink]]] = REPORT_SINKS
"""Settings type → the sink that writes it: the readable reports (the signed bundle's sink is
looked up only when a suite has one, so a run without a bundle never imports its signing code)."""


def open_report_sink(config: ReportSinkSettings) -> ReportSink:
    """The suite-level sink for ``config`` (one of the ``reports`` of a suite)."""
    if isinstance(config, BundleConfig):
        from elspeth.bundle import BundleSink

        return BundleSink(config)
    return SUITE_SINKS[type(config)](config)
