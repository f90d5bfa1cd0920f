"""Model-graded judges: a second model grades each answer, in the orchestrator's LLM stage.

A judge is a step of the plan like the model's own (``<experiment>/judge:<name>``), cleared
with its model's clearance, so a judge cleared below the data is refused before anything is
read. It runs per chunk, once every answer of the chunk is in, before the row plugins: the
chunk's seal is checked for the judge's clearance, its answered rows are graded through an
:class:`~elspeth.llm.LLMStage` (the experiment's concurrency and retries, the response cache,
prices and the judge's own budget), and the grades become columns of the derived frame.

Columns, prefixed by the judge's name: ``_reply`` (the judge's text), ``_grade`` (the label
or number it gave), ``_value``, ``_outcome`` (``pass``, ``fail`` or ``error``),
``_explanation`` (its reasoning, or why there is no grade), ``_prompt_tokens``,
``_completion_tokens`` and ``_cost``. A row with no answer is not sent (``error``, "no answer
to grade"); a reply without a grade in the declared form is an ``error`` with the reason,
never a 0. Both count as the row's errors against ``max_error_rate``; rows the judge's budget
left ungraded do not (the budget stop makes the run ``stopped``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import pandas as pd

from elspeth.audit import JudgeDone, JudgeResult, SealVerified
from elspeth.config import Experiment, JudgeSettings, PairwiseJudgeSettings, Suite
from elspeth.llm import (
    Budget,
    Grade,
    LLMStage,
    Outcome,
    PricingTable,
    ResponseCache,
    RetryPolicy,
    RowResult,
    StageSummary,
    create_client,
)
from elspeth.llm._grades import ERROR, PASS, error_grade
from elspeth.security import SecureDataFrame, SecurityLevel
from elspeth.suite._audit import AuditLog
from elspeth.suite._outcome import ErrorTally
from elspeth.suite._plan import JudgeStep
from elspeth.suite._progress import Progress
from elspeth.suite._setup import ROW_COLUMN
from elspeth.suite._validate import judge_pack, judge_reference

NO_ANSWER: Final = "no answer to grade (the model's answer is an error)"
JUDGE_BUDGET: Final = "judge budget"


@dataclass
class JudgeTotals:
    """What one judge did over one experiment: its calls, grades and cost, apart from
    generation's."""

    rows: int = 0
    calls: int = 0
    cached: int = 0
    retries: int = 0
    passed: int = 0
    failed: int = 0
    malformed: int = 0
    call_errors: int = 0
    unanswered: int = 0
    ungraded: int = 0
    """Rows left ungraded by the judge's budget."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: Decimal = Decimal(0)
    cost_unknown: bool = False
    stop_reason: str | None = None

    @property
    def partial(self) -> bool:
        return self.ungraded > 0

    def count(self, result: RowResult, grade: Grade) -> None:
        self.calls += 1
        self.cached += result.cached
        self.prompt_tokens += result.prompt_tokens
        self.completion_tokens += result.completion_tokens
        self.cost += result.cost
        if result.outcome is not Outcome.OK:
            self.call_errors += 1
        elif grade.outcome == ERROR:
            self.malformed += 1
        elif grade.outcome == PASS:
            self.passed += 1
        else:
            self.failed += 1

    def as_dict(self) -> dict[str, Any]:
        fields = {k: v for k, v in self.__dict__.items() if k != "cost_unknown"}
        fields["cost"] = None if self.cost_unknown else str(self.cost)
        fields["partial"] = self.partial
        return fields


@dataclass(frozen=True)
class Graded:
    """One row's grade: the judge's reply (``None`` when none was asked), the grade read from
    it, and the call's result."""

    reply: str | None
    grade: Grade
    result: RowResult | None


def not_graded(reason: str) -> Graded:
    return Graded(None, error_grade(reason), None)


OnGrade = Callable[[int, Graded], None]
"""Called with each asked context's position and its grade, as it completes."""


class JudgeCalls:
    """What every judge does with its model: seal checks for its clearance, calls through an
    :class:`LLMStage` with the judge's own budget, grades read from the replies, and each call
    recorded in the audit log and the totals. One per judge and experiment (or variant)."""

    def __init__(
        self,
        suite: Suite,
        settings: JudgeSettings | PairwiseJudgeSettings,
        *,
        name: str,
        table: str,
        experiment: Experiment,
        component: str,
        audit: AuditLog,
        cache_dir: Path,
    ) -> None:
        models = suite.settings
        self.name = name
        self.settings = settings
        self.experiment = experiment
        self.component = component
        self.audit = audit
        self.model = models.models[settings.model]
        self._client = create_client(self.model.type, self.model.options())
        self.pack = judge_pack(suite, name, table)
        self._pricing = PricingTable.from_mapping(
            {key: price.model_dump() for key, price in models.pricing.items()}
        )
        self._cache = ResponseCache(cache_dir) if models.defaults.cache else None
        self.totals = JudgeTotals(cost_unknown=self.model.price_name not in models.pricing)

    def verify(self, frame: SecureDataFrame, chunk: int) -> None:
        """``frame``'s seal and level, checked for the judge's clearance before it reads rows."""
        audit_id = frame.verify_for(self.model.clearance)
        self.audit.record(
            SealVerified(
                experiment=self.experiment.name,
                chunk=chunk,
                component=self.component,
                audit_id=audit_id,
            )
        )

    def ask(
        self,
        contexts: Sequence[Mapping[str, Any]],
        *,
        level: SecurityLevel,
        rows: Sequence[tuple[int, int]],
        on_grade: OnGrade,
    ) -> StageSummary:
        """Grade each context (``rows[i]`` is context i's (row, repeat) for the audit log)."""

        def on_result(result: RowResult) -> None:
            if result.outcome is Outcome.OK and result.text is not None:
                grade = self.settings.grade.read(result.text)
            else:
                grade = error_grade(f"judge call failed: {result.error_message or 'error'}")
            row, repeat = rows[result.row]
            base = result.audit_event(self.experiment.name, priced=not self.totals.cost_unknown)
            # The stage counts contexts by position; the audit names the run's row.
            fields = {**base.fields(), "attempts": base.attempts, "row": row, "repeat": repeat}
            self.audit.record(
                JudgeResult(
                    **fields, judge=self.name, grade=grade.outcome, grade_error=grade.reason
                )
            )
            self.totals.count(result, grade)
            on_grade(result.row, Graded(result.text, grade, result))

        budget = self.settings.budget
        stage = LLMStage(
            self._client,
            self.pack,
            concurrency=self.experiment.concurrency,
            retry_policy=RetryPolicy(max_retries=self.experiment.max_retries),
            cache=self._cache,
            pricing=self._pricing,
            budget=Budget(
                max_cost=budget.max_cost,
                max_rows=budget.max_rows,
                scope=f"{JUDGE_BUDGET} {self.name}",
                spent=self.totals.cost,
                rows_used=self.totals.calls,
            ),
        )
        summary = stage.run_sync(contexts, level=level, on_result=on_result)
        self.totals.retries += summary.retries
        if summary.stop_reason is not None:
            self.totals.stop_reason = summary.stop_reason
        return summary

    def finish(self, experiment: str) -> None:
        """Record the judge's totals."""
        self.audit.record(
            JudgeDone(experiment=experiment, judge=self.name, **self.totals.as_dict())
        )

    def cost_column(self, graded: Sequence[Graded]) -> pd.api.extensions.ExtensionArray:
        return pd.array(
            [
                float("nan")
                if self.totals.cost_unknown or g.result is None
                else float(g.result.cost)
                for g in graded
            ],
            dtype="float64",
        )


def grade_columns(prefix: str, graded: Sequence[Graded], calls: JudgeCalls) -> dict[str, Any]:
    """The judge's columns for ``graded`` rows, named ``<prefix>_reply`` ... ``<prefix>_cost``."""
    results = [g.result for g in graded]
    return {
        f"{prefix}_reply": pd.Series([g.reply for g in graded], dtype="str"),
        f"{prefix}_grade": pd.Series([g.grade.grade for g in graded], dtype="str"),
        f"{prefix}_value": pd.array([g.grade.value for g in graded], dtype="float64"),
        f"{prefix}_outcome": [g.grade.outcome for g in graded],
        f"{prefix}_explanation": pd.Series([g.grade.explanation for g in graded], dtype="str"),
        f"{prefix}_prompt_tokens": pd.array(
            [None if r is None else r.prompt_tokens for r in results], dtype="Int64"
        ),
        f"{prefix}_completion_tokens": pd.array(
            [None if r is None else r.completion_tokens for r in results], dtype="Int64"
        ),
        f"{prefix}_cost": calls.cost_column(graded),
    }


def has_answer(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and pd.isna(value))


def records_of(data: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {str(key): value for key, value in record.items()}
        for record in data.to_dict(orient="records")
    ]


def row_and_repeat(record: Mapping[str, Any]) -> tuple[int, int]:
    return int(record[ROW_COLUMN]), int(record.get("_repeat", 0))


def references_of(suite: Suite, reference: str | None, record: Mapping[str, Any]) -> dict[str, Any]:
    """The rubric's ``reference`` and ``references`` for one row."""
    targets = suite.settings.datasource.target
    return {
        "reference": None if reference is None else record.get(reference),
        "references": {name: record.get(name) for name in targets},
    }


class JudgeRun:
    """One judge over one experiment's chunks. Called from the row-stages thread only (one
    chunk at a time), so its totals need no lock; the tally's updates are single set and
    counter operations, safe beside the model stage's."""

    def __init__(
        self,
        step: JudgeStep,
        *,
        suite: Suite,
        experiment: Experiment,
        audit: AuditLog,
        cache_dir: Path,
        tally: ErrorTally,
        progress: Progress,
        rows: int,
    ) -> None:
        self.step = step
        self.suite = suite
        self.tally = tally
        # One progress bar for the judge over the whole experiment (``rows`` with repeats).
        self._task = progress.start(f"{experiment.name} judge {step.judge}", rows)
        self.calls = JudgeCalls(
            suite,
            step.settings,
            name=step.judge,
            table="judges",
            experiment=experiment,
            component=step.component,
            audit=audit,
            cache_dir=cache_dir,
        )
        self._reference = judge_reference(suite, step.judge)

    @property
    def name(self) -> str:
        return self.step.judge

    @property
    def totals(self) -> JudgeTotals:
        return self.calls.totals

    def grade(self, frame: SecureDataFrame, chunk: int) -> SecureDataFrame:
        """``frame`` with this judge's columns, at the level the plan predicted."""
        self.calls.verify(frame, chunk)
        records = records_of(frame.data)
        answer_column = self.step.settings.answer
        asked = [i for i, record in enumerate(records) if has_answer(record.get(answer_column))]
        contexts = [
            {
                **records[i],
                "answer": records[i][answer_column],
                **references_of(self.suite, self._reference, records[i]),
            }
            for i in asked
        ]
        graded: dict[int, Graded] = {}
        task = self._task

        def on_grade(position: int, done: Graded) -> None:
            graded[asked[position]] = done
            row, _ = row_and_repeat(records[asked[position]])
            if done.grade.outcome == ERROR:
                kind = "judge_error" if done.reply is None else "judge_malformed_grade"
                self.tally.add_error(row, f"judge:{self.name}", kind, done.grade.reason or kind)
            cost = Decimal(0) if done.result is None else done.result.cost
            task.advance(1, cost=cost, error=done.grade.outcome == ERROR)

        summary = self.calls.ask(
            contexts,
            level=self.step.incoming,
            rows=[row_and_repeat(records[i]) for i in asked],
            on_grade=on_grade,
        )
        task.advance(len(records) - len(asked), error=True)
        ungraded = f"not graded: {summary.stop_reason or 'the judge stopped'}"
        sent = set(asked)
        columns = [
            graded[i] if i in graded else not_graded(ungraded if i in sent else NO_ANSWER)
            for i in range(len(records))
        ]
        totals = self.totals
        totals.rows += len(records)
        totals.unanswered += len(records) - len(sent)
        totals.ungraded += len(sent) - len(graded)
        data = frame.data.copy()
        for column, values in grade_columns(self.name, columns, self.calls).items():
            data[column] = values
        return self.step.expect(frame.with_new_data(data))

    def finish(self) -> None:
        self._task.close()
        self.calls.finish(self.calls.experiment.name)
