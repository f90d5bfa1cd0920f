"""Pairwise judges: a model chooses between a variant's answer and the baseline's on each row.

A pairwise judge is a step of the plan (``compare/pairwise:<judge>:<variant>``) reading both
experiments' rows, cleared with its model's clearance. Rows pair by ``_row`` (and
``_repeat``). Which answer the rubric shows first (``answer_a``) is drawn per row from the
judge's ``seed``, and recorded: a judge that favours a position cannot favour one experiment.
On a ``swap_sample`` share of the rows, drawn the same way, the judge is asked again with the
order swapped; how often the two verdicts agree measures its position bias.

The reply's grade is ``A``, ``B`` or ``TIE``; it becomes the variant's ``win``, ``loss`` or
``tie`` (an ``error`` with the reason when the reply has none). Two frames result: one row per
pair (``pairwise-<judge>`` rows), and a summary whose win rate excludes ties and errors and
carries a Wilson interval, with the tie rate, the position consistency and the error count.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import pandas as pd
import scipy.stats

from elspeth.config import Suite
from elspeth.llm._grades import ERROR
from elspeth.outcome import RunStatus
from elspeth.security import SecureDataFrame
from elspeth.sinks import ComparisonReport
from elspeth.suite._judge import (
    NO_ANSWER,
    Graded,
    JudgeCalls,
    has_answer,
    not_graded,
    records_of,
    references_of,
    row_and_repeat,
)
from elspeth.suite._outcome import RunOutcome, RunStoppedError
from elspeth.suite._outputs import OutputWriter
from elspeth.suite._plan import PairwiseSteps
from elspeth.suite._validate import judge_reference

WIN: Final = "win"
TIE: Final = "tie"
LOSS: Final = "loss"
CONFIDENCE: Final = 0.95
VARIANT_FIRST: Final = "variant_first"
BASELINE_FIRST: Final = "baseline_first"


@dataclass(frozen=True)
class _Ask:
    """One request: the pair's index, and whether the variant's answer is shown first."""

    pair: int
    variant_first: bool
    swapped: bool


@dataclass(frozen=True)
class PairwiseResult:
    """What one pairwise judge of one variant produced: its report, the files written, and
    whether its budget left pairs unjudged or replies gave no verdict."""

    report: ComparisonReport
    written: list[str]
    errors: int
    stop_reason: str | None


def verdict_of(graded: Graded, variant_first: bool) -> str:
    """The variant's ``win``, ``tie`` or ``loss`` from a grade of ``A``, ``B`` or ``TIE``."""
    label = graded.grade.grade
    if graded.grade.outcome == ERROR or label is None:
        return ERROR
    if label.upper() == "TIE":
        return TIE
    first_won = label.upper() == "A"
    return WIN if first_won == variant_first else LOSS


def win_rate(wins: int, losses: int) -> tuple[float | None, float | None, float | None]:
    """Wins over decided pairs (ties and errors left out), with its Wilson interval."""
    decided = wins + losses
    if decided == 0:
        return None, None, None
    interval = scipy.stats.binomtest(wins, decided).proportion_ci(CONFIDENCE, method="wilson")
    return wins / decided, float(interval.low), float(interval.high)


@dataclass
class _Plan:
    """What to ask: every pair (its row and repeat, and whether both answers exist), and the
    requests with their rubric contexts."""

    pairs: list[tuple[int, int]]
    answered: list[bool]
    asks: list[_Ask]
    contexts: list[dict[str, Any]]


def _plan_asks(
    suite: Suite, steps: PairwiseSteps, baseline: SecureDataFrame, variant: SecureDataFrame
) -> _Plan:
    settings = steps.judge.settings
    answer = settings.answer
    reference = judge_reference(suite, steps.judge.judge, "pairwise_judges")
    baseline_rows = {row_and_repeat(record): record for record in records_of(baseline.data)}
    plan = _Plan([], [], [], [])
    for record in records_of(variant.data):
        key = row_and_repeat(record)
        other = baseline_rows.get(key)
        plan.pairs.append(key)
        both = other is not None and has_answer(record.get(answer)) and has_answer(other[answer])
        plan.answered.append(both)
        if other is None or not both:
            continue
        # Seeded per row, so a rerun (and a resumed run) shows each pair the same way.
        draw = random.Random(f"{settings.seed}:{key[0]}:{key[1]}")  # noqa: S311 - not secret
        variant_first = draw.random() < 0.5
        orders = [variant_first]
        if draw.random() < settings.swap_sample:
            orders.append(not variant_first)
        for swapped, shown_first in enumerate(orders):
            pair = (record[answer], other[answer])
            shown = pair if shown_first else pair[::-1]
            plan.asks.append(_Ask(len(plan.pairs) - 1, shown_first, bool(swapped)))
            plan.contexts.append(
                {
                    **record,
                    "answer_a": shown[0],
                    "answer_b": shown[1],
                    **references_of(suite, reference, record),
                }
            )
    return plan


def _verdicts(plan: _Plan, graded: Mapping[int, Graded], ungraded: Graded) -> list[dict[str, Any]]:
    """One row per pair: the order shown, the verdict, and the swapped verdict if asked."""
    first = {ask.pair: (i, ask) for i, ask in enumerate(plan.asks) if not ask.swapped}
    second = {ask.pair: (i, ask) for i, ask in enumerate(plan.asks) if ask.swapped}
    table = []
    for pair, (row, repeat) in enumerate(plan.pairs):
        order: str | None = None
        if not plan.answered[pair]:
            done, verdict = not_graded(NO_ANSWER), ERROR
        else:
            position, ask = first[pair]
            done = graded.get(position, ungraded)
            order = VARIANT_FIRST if ask.variant_first else BASELINE_FIRST
            verdict = verdict_of(done, ask.variant_first)
        swapped_verdict: str | None = None
        if pair in second:
            position, ask = second[pair]
            swapped_verdict = verdict_of(graded.get(position, ungraded), ask.variant_first)
        decided = swapped_verdict is not None and ERROR not in (verdict, swapped_verdict)
        table.append(
            {
                "_row": row,
                "_repeat": repeat,
                "order": order,
                "verdict": verdict,
                "explanation": done.grade.explanation,
                "reply": done.reply,
                "swapped_verdict": swapped_verdict,
                "consistent": verdict == swapped_verdict if decided else None,
            }
        )
    return table


def run_pairwise(
    suite: Suite,
    steps: PairwiseSteps,
    results: Mapping[str, SecureDataFrame],
    *,
    calls: JudgeCalls,
    outputs: OutputWriter,
) -> PairwiseResult:
    """Judge ``steps.variant`` against the baseline over their result frames, write both
    frames through the comparison sinks, and record the judge's totals."""
    step = steps.judge
    baseline, variant = results[steps.baseline], results[steps.variant]
    for index, frame in enumerate((baseline, variant)):
        calls.verify(frame, index)
    plan = _plan_asks(suite, steps, baseline, variant)
    graded: dict[int, Graded] = {}
    summary = calls.ask(
        plan.contexts,
        level=step.incoming,
        rows=[plan.pairs[ask.pair] for ask in plan.asks],
        on_grade=graded.__setitem__,
    )
    ungraded = not_graded(f"not judged: {summary.stop_reason or 'the judge stopped'}")
    table = _verdicts(plan, graded, ungraded)
    calls.totals.rows += len(plan.pairs)
    calls.totals.unanswered += plan.answered.count(False)
    calls.totals.ungraded += len(plan.asks) - len(graded)
    calls.finish(steps.variant)
    rows = step.expect(SecureDataFrame.derive_from([baseline, variant], _rows_frame(table)))
    overview = step.expect(
        SecureDataFrame.derive_from([rows], _summary_frame(step.judge, steps, table))
    )
    stem = f"compare__pairwise-{step.judge}__{steps.variant}"
    written = [
        outputs.write_frames(sink, name, [frame]).path.name
        for sink in steps.sinks
        for name, frame in ((stem, overview), (f"{stem}__rows", rows))
    ]
    report = ComparisonReport(f"pairwise:{step.judge}", steps.baseline, steps.variant, overview)
    errors = sum(row["verdict"] == ERROR for row in table)
    return PairwiseResult(report, written, errors, summary.stop_reason if summary.partial else None)


def _rows_frame(table: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    columns = ["_row", "_repeat", "order", "verdict", "explanation", "reply"]
    columns += ["swapped_verdict", "consistent"]
    data = pd.DataFrame(list(table), columns=columns)
    data["_row"] = data["_row"].astype("int64")
    data["_repeat"] = data["_repeat"].astype("int64")
    for column in ("order", "verdict", "explanation", "reply", "swapped_verdict"):
        data[column] = data[column].astype("str").where(data[column].notna(), None)
    data["consistent"] = data["consistent"].astype("boolean")
    return data


def _summary_frame(
    judge: str, steps: PairwiseSteps, table: Sequence[Mapping[str, Any]]
) -> pd.DataFrame:
    verdicts = [row["verdict"] for row in table]
    wins, ties, losses = (verdicts.count(v) for v in (WIN, TIE, LOSS))
    errors = verdicts.count(ERROR)
    swapped = [row for row in table if row["consistent"] is not None]
    consistent = sum(bool(row["consistent"]) for row in swapped)
    rate, low, high = win_rate(wins, losses)
    judged = wins + ties + losses
    consistency = consistent / len(swapped) if swapped else None
    described = (
        f"win rate {rate:.2f} (Wilson {CONFIDENCE:.0%} interval {low:.2f} to {high:.2f}, "
        "ties left out)"
        if rate is not None and low is not None and high is not None
        else "no win rate (no pair was won or lost)"
    )
    verdict = (
        f"pairwise:{judge}: {steps.variant} against {steps.baseline}: {wins} wins, {ties} ties, "
        f"{losses} losses over {judged} judged pairs; {described}; position consistency "
        + (f"{consistent} of {len(swapped)} swapped pairs" if swapped else "not measured")
        + (f"; {errors} pairs with no verdict" if errors else "")
    )
    return pd.DataFrame(
        [
            {
                "criterion": f"pairwise:{judge}",
                "pairs": len(table),
                "wins": wins,
                "ties": ties,
                "losses": losses,
                "errors": errors,
                "win_rate": rate,
                "win_rate_ci_low": low,
                "win_rate_ci_high": high,
                "confidence": CONFIDENCE,
                "tie_rate": ties / judged if judged else None,
                "swapped_pairs": len(swapped),
                "position_consistency": consistency,
                "verdict": verdict,
            }
        ]
    ).astype(
        {
            "win_rate": "float64",
            "win_rate_ci_low": "float64",
            "win_rate_ci_high": "float64",
            "tie_rate": "float64",
            "position_consistency": "float64",
        }
    )


def with_pairwise(outcome: RunOutcome, judged: PairwiseResult) -> RunOutcome:
    """A pairwise judge stopped by its budget stops the run; pairs with no verdict make a
    complete run complete with errors."""
    if judged.stop_reason is not None:
        raise RunStoppedError(
            f"{judged.report.comparison} of {judged.report.variant} stopped: {judged.stop_reason}"
        )
    if judged.errors and outcome.status is RunStatus.COMPLETE:
        reason = f"{judged.report.comparison}: {judged.errors} pairs with no verdict"
        return dataclasses.replace(outcome, status=RunStatus.COMPLETE_WITH_ERRORS, reason=reason)
    return outcome
