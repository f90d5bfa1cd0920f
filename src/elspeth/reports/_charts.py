"""Charts for the HTML report, drawn offline with matplotlib into SVG markup to inline.

Nothing here needs a display, a font file or the network: figures are
:class:`matplotlib.figure.Figure` objects (never pyplot's global figure registry), text is drawn
as paths, and the SVG carries no date, so the same report gives the same bytes. matplotlib is
imported on first use, so importing :mod:`elspeth.reports` stays light. Unless the user set
``MPLCONFIGDIR``, matplotlib's directory (it holds only the font list cache, no data) is the
per-user ``$XDG_CACHE_HOME/elspeth/matplotlib`` (else ``~/.cache/elspeth/matplotlib``, 0700):
the font cache is built once per user, not once per run. Only if that cannot be used is it a
private temporary directory, removed when the process ends.

Each chart comes with a text alternative and a caption. A chart whose columns are absent is left
out with a short note; missing data is never an error.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import io
import os
import re
import shutil
import stat
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd

from elspeth.reports._content import ReportContent, display_text

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from elspeth.sinks import ComparisonReport

SCORE_SUFFIX: Final = "_score"
COST_SUFFIX: Final = "_cost"
LATENCY_SUFFIX: Final = "_latency_ms"
DELTA_COLUMNS: Final = ("criterion", "difference", "ci_low", "ci_high")
DISCRETE_SCORE_LIMIT: Final = 12
"""Up to this many distinct score values, scores are bars per value; beyond, a histogram."""

_STYLE: Final[Mapping[str, Any]] = {
    "svg.fonttype": "path",
    "svg.hashsalt": "elspeth-report",
    "font.family": "DejaVu Sans",  # ships with matplotlib, so no system font is needed
    "font.size": 9.0,
    "text.parse_math": False,  # a '$' in a label is text, not TeX
    "text.usetex": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 10.0,
    "legend.frameon": False,
    "legend.fontsize": 8.0,
}
_STYLE_LOCK: Final = threading.Lock()
_SVG_METADATA: Final = {"Date": None, "Creator": None, "Format": None, "Type": None}
_WIDTH_INCHES: Final = 7.0
_HEIGHT_INCHES: Final = 3.0
_ROW_HEIGHT_INCHES: Final = 0.32
_LABEL_CHARACTERS: Final = 40
"""Longer names are cut in the drawing; the text alternative and the tables hold them whole."""
_ID = re.compile(r'\bid="')
_REFERENCE = re.compile(r'(href="#|url\(#)')


@dataclass(frozen=True)
class Chart:
    """One chart: ``svg`` is markup to inline; ``description`` its text alternative."""

    key: str
    title: str
    description: str
    caption: str
    svg: str


@dataclass(frozen=True)
class ChartGroup:
    """The charts of one kind, and a note for each chart that could not be drawn."""

    charts: tuple[Chart, ...]
    notes: tuple[str, ...]


@dataclass(frozen=True)
class ReportCharts:
    score_distributions: ChartGroup
    baseline_deltas: ChartGroup
    cost_and_latency: ChartGroup


def report_charts(content: ReportContent) -> ReportCharts:
    """Every chart the report's data allows."""
    matplotlib = _matplotlib()
    drawer = _Drawer(list(content.results))
    # The style applies through matplotlib's process-wide rcParams: one report at a time.
    with _STYLE_LOCK, matplotlib.style.context(["default", dict(_STYLE)]):
        return ReportCharts(
            score_distributions=_score_distributions(drawer, content),
            baseline_deltas=_baseline_deltas(drawer, content),
            cost_and_latency=ChartGroup(
                *_merge(_costs(drawer, content), _latencies(drawer, content))
            ),
        )


@functools.cache
def _matplotlib() -> ModuleType:
    if "matplotlib" not in sys.modules and not os.environ.get("MPLCONFIGDIR"):
        os.environ["MPLCONFIGDIR"] = str(_user_cache_directory() or _private_config_directory())
    import matplotlib
    import matplotlib.style

    return matplotlib


def _user_cache_path() -> Path | None:
    """``$XDG_CACHE_HOME/elspeth/matplotlib``, else ``~/.cache/elspeth/matplotlib``."""
    base = os.environ.get("XDG_CACHE_HOME")
    if base and os.path.isabs(base):
        return Path(base) / "elspeth" / "matplotlib"
    try:
        return Path.home() / ".cache" / "elspeth" / "matplotlib"
    except RuntimeError:  # no home directory
        return None


def _user_cache_directory() -> Path | None:
    """The per-user directory, made 0700 if missing; ``None`` if it cannot be used: not a real
    directory of this user's (a link, another owner) or not writable."""
    directory = _user_cache_path()
    if directory is None:
        return None
    try:
        directory.parent.parent.mkdir(parents=True, exist_ok=True)
        for level in (directory.parent, directory):
            with contextlib.suppress(FileExistsError):
                os.mkdir(level, 0o700)
        info = os.lstat(directory)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            return None
        if stat.S_IMODE(info.st_mode) & 0o077:
            os.chmod(directory, 0o700)  # a real directory of ours (lstat above)
    except OSError:
        return None
    return directory if os.access(directory, os.W_OK | os.X_OK) else None


def _private_config_directory() -> Path:
    from elspeth.sidecar._client._standalone import make_owned_directory

    # With an owner marker: a later standalone run removes it if this process is killed.
    directory = make_owned_directory("elspeth-matplotlib-")
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return directory


class _Drawer:
    """Makes figures and turns them into SVG markup whose ids are unique on the page."""

    def __init__(self, experiments: Sequence[str]) -> None:
        from matplotlib import colormaps

        self._palette = [colormaps["tab10"](i) for i in range(10)]
        self._experiments = list(experiments)
        self._count = 0

    def experiment_colour(self, experiment: str) -> Any:
        index = self._experiments.index(experiment) if experiment in self._experiments else 0
        return self._palette[index % len(self._palette)]

    def series_colour(self, position: int) -> Any:
        return self._palette[position % len(self._palette)]

    def figure(self, height: float = _HEIGHT_INCHES) -> tuple[Figure, Axes]:
        from matplotlib.figure import Figure

        figure = Figure(figsize=(_WIDTH_INCHES, height), layout="constrained")
        return figure, figure.add_subplot()

    def chart(self, figure: Figure, title: str, description: str, caption: str) -> Chart:
        self._count += 1
        key = f"chart{self._count}"
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", metadata=_SVG_METADATA)
        markup = buffer.getvalue()
        # The XML declaration and doctype are for a standalone file, not inline markup.
        markup = markup[markup.index("<svg") :]
        # Glyph and clip-path ids repeat from one figure to the next; ids must be unique on a page.
        markup = _ID.sub(f'id="{key}-', markup)
        markup = _REFERENCE.sub(lambda match: f"{match.group(1)}{key}-", markup)
        return Chart(key, title, description, caption, markup)


def _numeric(data: pd.DataFrame, column: str) -> pd.Series | None:
    """The column as floats without missing values, or None when absent or not numeric."""
    if column not in data:
        return None
    values = data[column]
    if not pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
        return None
    return values.dropna().astype(float)


def _score_distributions(drawer: _Drawer, content: ReportContent) -> ChartGroup:
    charts: list[Chart] = []
    notes: list[str] = []
    for criterion in content.criteria:
        column = f"{criterion}{SCORE_SUFFIX}"
        scores: dict[str, pd.Series] = {}
        absent: list[str] = []
        for experiment, data in content.results.items():
            values = _numeric(data, column)
            if values is None or values.empty:
                absent.append(experiment)
            else:
                scores[experiment] = values
        if not scores:
            notes.append(f"{criterion}: no experiment has numeric {column} values; not charted.")
            continue
        missing_note = (
            f" Not shown: {', '.join(absent)} (no numeric {column} values)." if absent else ""
        )
        figure, axes = drawer.figure()
        _draw_distribution(drawer, axes, scores)
        axes.set_title(f"{_short(criterion)} scores")
        axes.set_xlabel(_short(column))
        axes.set_ylabel("share of scored rows")
        _legend_beside(axes)
        summary = "; ".join(
            f"{experiment}: {len(values)} scored rows, mean {display_text(values.mean())}, "
            f"median {display_text(values.median())}"
            for experiment, values in scores.items()
        )
        charts.append(
            drawer.chart(
                figure,
                title=f"{criterion} scores by experiment",
                description=f"Distribution of {column} by experiment. {summary}.{missing_note}",
                caption=(
                    f"Share of scored rows at each {criterion} score, by experiment. Rows without "
                    f"a score, such as errors, are not counted.{missing_note}"
                ),
            )
        )
    return ChartGroup(tuple(charts), tuple(notes))


def _draw_distribution(drawer: _Drawer, axes: Axes, scores: Mapping[str, pd.Series]) -> None:
    every_value = np.concatenate([values.to_numpy() for values in scores.values()])
    distinct = np.unique(every_value)
    if len(distinct) <= DISCRETE_SCORE_LIMIT:
        positions = np.arange(len(distinct))
        width = 0.8 / len(scores)
        for offset, (experiment, values) in enumerate(scores.items()):
            shares = values.value_counts(normalize=True).reindex(distinct, fill_value=0.0)
            axes.bar(
                positions - 0.4 + width * (offset + 0.5),
                shares.to_numpy(),
                width=width,
                label=_short(experiment),
                color=drawer.experiment_colour(experiment),
            )
        axes.set_xticks(positions, [display_text(value) for value in distinct])
        return
    edges = np.histogram_bin_edges(every_value, bins=min(20, max(5, len(distinct) // 4)))
    for experiment, values in scores.items():
        axes.hist(
            values.to_numpy(),
            bins=edges.tolist(),
            weights=np.full(len(values), 1.0 / len(values)),
            histtype="step",
            linewidth=1.5,
            label=_short(experiment),
            color=drawer.experiment_colour(experiment),
        )


@dataclass(frozen=True)
class _Delta:
    variant: str
    criterion: str
    difference: float
    low: float
    high: float


def _baseline_deltas(drawer: _Drawer, content: ReportContent) -> ChartGroup:
    charts: list[Chart] = []
    notes: list[str] = []
    by_instance: dict[str, list[ComparisonReport]] = {}
    for comparison in content.comparisons:
        by_instance.setdefault(comparison.comparison, []).append(comparison)
    if not by_instance:
        notes.append("No baseline comparisons in this run; nothing to chart.")
    for instance, comparisons in by_instance.items():
        deltas: list[_Delta] = []
        for comparison in comparisons:
            data = comparison.frame.data
            missing = [column for column in DELTA_COLUMNS if column not in data]
            if missing:
                notes.append(
                    f"{instance} ({comparison.variant}): no {', '.join(missing)} "
                    f"column{'s' if len(missing) > 1 else ''}; not charted."
                )
                continue
            deltas.extend(_deltas(comparison.variant, data))
        if not deltas:
            continue
        figure, axes = drawer.figure(max(1.6, 0.9 + _ROW_HEIGHT_INCHES * len(deltas)))
        positions = np.arange(len(deltas))[::-1]
        for position, delta in zip(positions, deltas, strict=True):
            interval = [
                [max(0.0, delta.difference - delta.low)],
                [max(0.0, delta.high - delta.difference)],
            ]
            axes.errorbar(
                [delta.difference],
                [position],
                xerr=interval if np.isfinite(interval).all() else None,
                fmt="o",
                capsize=3,
                color=drawer.experiment_colour(delta.variant),
            )
        axes.axvline(0.0, color="#6b7280", linestyle="--", linewidth=1)
        axes.set_yticks(positions, [_short(f"{d.variant} · {d.criterion}") for d in deltas])
        axes.set_xlabel("estimated difference (variant minus baseline)")
        axes.set_title(f"{_short(instance)}: differences from the baseline")
        baseline = comparisons[0].baseline
        described = "; ".join(
            f"{d.variant} {d.criterion}: {d.difference:+.3g} "
            f"(interval {display_text(d.low)} to {display_text(d.high)})"
            for d in deltas
        )
        charts.append(
            drawer.chart(
                figure,
                title=f"{instance}: differences from the baseline {baseline}",
                description=(
                    f"Estimated difference of each variant from the baseline {baseline}, per "
                    f"criterion (the comparison test's own estimate), with its confidence "
                    f"interval. {described}."
                ),
                caption=(
                    f"{instance}: each point is the comparison test's estimate of a variant's "
                    f"difference from the baseline experiment ({baseline}) for one criterion: a "
                    "difference of means for t tests, a Hodges-Lehmann shift for rank tests; the "
                    "bar spans the test's own confidence interval (ci_low to ci_high). The "
                    "dashed line marks no difference."
                ),
            )
        )
    return ChartGroup(tuple(charts), tuple(notes))


def _deltas(variant: str, data: pd.DataFrame) -> Iterator[_Delta]:
    numbers = {
        column: pd.to_numeric(data[column], errors="coerce").astype(float)
        for column in DELTA_COLUMNS[1:]
    }
    if "estimate" in data:
        # The interval belongs to the test's own estimate (a Hodges-Lehmann shift for the rank
        # tests), which is not always the difference of means.
        numbers["difference"] = pd.to_numeric(data["estimate"], errors="coerce").astype(float)
    for position in range(len(data)):
        difference = numbers["difference"].iloc[position]
        if np.isnan(difference):
            continue
        yield _Delta(
            variant,
            display_text(data["criterion"].iloc[position]),
            float(difference),
            float(numbers["ci_low"].iloc[position]),
            float(numbers["ci_high"].iloc[position]),
        )


def _costs(drawer: _Drawer, content: ReportContent) -> ChartGroup:
    # Per experiment: the cost of each criterion's calls, or the run's total when the rows carry
    # no cost columns.
    segments: dict[str, dict[str, float]] = {}
    run_totals = dict(zip(content.summary["experiment"], content.summary["cost"], strict=True))
    for experiment, data in content.results.items():
        per_criterion = {
            criterion: float(values.sum())
            for criterion in content.criteria
            if (values := _numeric(data, f"{criterion}{COST_SUFFIX}")) is not None
        }
        if per_criterion:
            segments[experiment] = per_criterion
            continue
        total = run_totals.get(experiment)
        if total is not None:
            segments[experiment] = {"run total": float(total)}
    if not segments:
        return ChartGroup(
            (), ("Cost: no cost columns and no cost in the run summary; not charted.",)
        )
    labels = list(dict.fromkeys(label for parts in segments.values() for label in parts))
    figure, axes = drawer.figure()
    positions = np.arange(len(segments))
    bottoms = np.zeros(len(segments))
    for index, label in enumerate(labels):
        heights = np.array([parts.get(label, 0.0) for parts in segments.values()])
        axes.bar(
            positions,
            heights,
            bottom=bottoms,
            label=_short(label),
            color=drawer.series_colour(index),
        )
        bottoms += heights
    axes.set_xticks(positions, [_short(name) for name in segments])
    axes.set_ylabel("cost")
    axes.set_title("Cost per experiment")
    _legend_beside(axes)
    described = "; ".join(
        f"{experiment} {display_text(sum(parts.values()))} ("
        + ", ".join(f"{label} {display_text(value)}" for label, value in parts.items())
        + ")"
        for experiment, parts in segments.items()
    )
    absent = [experiment for experiment in content.results if experiment not in segments]
    missing_note = f" Not shown: {', '.join(absent)} (no cost recorded)." if absent else ""
    chart = drawer.chart(
        figure,
        title="Cost per experiment",
        description=f"Cost per experiment, by criterion: {described}.{missing_note}",
        caption=(
            "Model cost per experiment, stacked by criterion from the rows' cost columns (or the "
            "run summary's total), in the currency of the pricing settings." + missing_note
        ),
    )
    return ChartGroup((chart,), ())


def _latencies(drawer: _Drawer, content: ReportContent) -> ChartGroup:
    percentiles: dict[str, dict[str, tuple[float, float]]] = {}
    for experiment, data in content.results.items():
        for criterion in content.criteria:
            values = _numeric(data, f"{criterion}{LATENCY_SUFFIX}")
            if values is not None and not values.empty:
                percentiles.setdefault(experiment, {})[criterion] = (
                    float(values.quantile(0.5)),
                    float(values.quantile(0.95)),
                )
    if not percentiles:
        return ChartGroup(
            (), (f"Latency: no numeric <criterion>{LATENCY_SUFFIX} columns; not charted.",)
        )
    criteria = [c for c in content.criteria if any(c in parts for parts in percentiles.values())]
    figure, axes = drawer.figure()
    positions = np.arange(len(percentiles))
    width = 0.8 / len(criteria)
    for index, criterion in enumerate(criteria):
        offsets = positions - 0.4 + width * (index + 0.5)
        medians = [parts.get(criterion, (np.nan, np.nan))[0] for parts in percentiles.values()]
        tails = [parts.get(criterion, (np.nan, np.nan))[1] for parts in percentiles.values()]
        colour = drawer.series_colour(index)
        axes.bar(offsets, medians, width=width, label=_short(f"{criterion} p50"), color=colour)
        axes.scatter(offsets, tails, marker="_", s=160, color="#111827", zorder=3)
    axes.scatter([], [], marker="_", s=160, color="#111827", label="p95")
    axes.set_xticks(positions, [_short(name) for name in percentiles])
    axes.set_ylabel("latency (ms)")
    axes.set_title("Latency per experiment")
    _legend_beside(axes)
    described = "; ".join(
        f"{experiment} {criterion} {display_text(p50)} / {display_text(p95)}"
        for experiment, parts in percentiles.items()
        for criterion, (p50, p95) in parts.items()
    )
    absent = [experiment for experiment in content.results if experiment not in percentiles]
    missing_note = f" Not shown: {', '.join(absent)} (no latency recorded)." if absent else ""
    chart = drawer.chart(
        figure,
        title="Latency per experiment",
        description=(
            f"Model call latency per experiment and criterion, median / 95th percentile in "
            f"milliseconds: {described}.{missing_note}"
        ),
        caption=(
            "Median latency of the model calls per experiment and criterion (bars), with the "
            "95th percentile (black marks), in milliseconds." + missing_note
        ),
    )
    return ChartGroup((chart,), ())


def _short(label: str) -> str:
    return label if len(label) <= _LABEL_CHARACTERS else label[: _LABEL_CHARACTERS - 1] + "…"


def _legend_beside(axes: Axes) -> None:
    # Beside the plot, never over a bar; the constrained layout makes room for it.
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def _merge(*groups: ChartGroup) -> tuple[tuple[Chart, ...], tuple[str, ...]]:
    return (
        tuple(chart for group in groups for chart in group.charts),
        tuple(note for group in groups for note in group.notes),
    )
