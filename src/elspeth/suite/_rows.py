"""Row execution: the rows an experiment's model stage asks about, chunk by chunk, and each
chunk's way through the row plugins once every answer for it is in.

A chunk whose answers are all in becomes a derived frame (its rows plus the answer columns)
and goes through the judges and the row plugin steps in a background thread while the model
answers later chunks. A row plugin of kind ``early_stop`` that marks a row stops the asking.
"""

from __future__ import annotations

import bisect
import concurrent.futures
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import pandas as pd

from elspeth.audit import EarlyStop, PluginStep, SealVerified
from elspeth.llm import Outcome, RowResult
from elspeth.orchestrator import PluginRuntime
from elspeth.plugins import PluginKind
from elspeth.security import SecureDataFrame, SecurityLevel
from elspeth.suite._audit import AuditLog
from elspeth.suite._checkpoint import Answer, CheckpointWriter
from elspeth.suite._judge import JudgeRun
from elspeth.suite._outcome import ErrorTally
from elspeth.suite._plan import ExperimentSteps
from elspeth.suite._progress import Progress
from elspeth.suite._setup import ROW_COLUMN

AnswerKey = tuple[int, str, int]
"""(row ordinal, criterion, repeat)."""


@dataclass(frozen=True)
class _Chunk:
    """One chunk of one experiment: its origin frame and every answer for its rows."""

    index: int
    first_row: int
    frame: SecureDataFrame
    results: Mapping[AnswerKey, RowResult | Answer]


class ChunkedRows:
    """Which answers each chunk has, and the background thread that turns a chunk with every
    answer into a frame and runs it through the row plugins."""

    def __init__(
        self,
        steps: ExperimentSteps,
        *,
        runtime: PluginRuntime,
        audit: AuditLog,
        progress: Progress,
        chunks: Sequence[SecureDataFrame],
        criteria: Sequence[str],
        model_clearance: SecurityLevel,
        priced: bool,
        restored: Mapping[AnswerKey, Answer],
        writer: CheckpointWriter,
        judges: Sequence[JudgeRun] = (),
        tally: ErrorTally | None = None,
    ) -> None:
        self.steps = steps
        self.experiment = steps.experiment
        self._runtime = runtime
        self._audit = audit
        self.chunks = chunks
        self.criteria = criteria
        self.writer = writer
        self.offsets = _offsets(chunks)
        self.stop = threading.Event()
        self.tally = tally if tally is not None else ErrorTally()
        self._judges = judges
        self._clearance = model_clearance
        self._priced = priced
        per_row = len(criteria) * self.experiment.repeats
        self._expected = [
            (self.offsets[i + 1] - self.offsets[i]) * per_row for i in range(len(chunks))
        ]
        self._answers: list[dict[AnswerKey, RowResult | Answer]] = [{} for _ in chunks]
        for key, answer in restored.items():
            self._answers[_chunk_of(self.offsets, key[0])][key] = answer
            self.tally.attempted.add(key[0])
        self._lock = threading.Lock()
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="row-stages")
        self._futures: dict[int, concurrent.futures.Future[SecureDataFrame]] = {}
        self._failure: BaseException | None = None
        self._task = progress.start(self.experiment.name, self.offsets[-1] * per_row)
        self._task.advance(len(restored))
        for index in range(len(chunks)):
            if len(self._answers[index]) >= self._expected[index]:
                self._finish_chunk(index)

    def rows(self) -> Iterator[dict[str, Any]]:
        """Rows for the model, chunk by chunk, each chunk's seal checked first."""
        for index, chunk in enumerate(self.chunks):
            if self.stop.is_set():
                return
            audit_id = chunk.verify_for(self._clearance)
            self._audit.record(
                SealVerified(
                    experiment=self.experiment.name, chunk=index, component="llm", audit_id=audit_id
                )
            )
            ordinals = range(self.offsets[index], self.offsets[index + 1])
            records = chunk.data.to_dict(orient="records")
            if all(isinstance(column, str) for column in chunk.data.columns):
                # Each record is a new dict: adding the ordinal to it gives what the copy
                # below would, without copying it (once per row).
                for ordinal, record in zip(ordinals, records, strict=True):
                    record[ROW_COLUMN] = ordinal
                    yield cast("dict[str, Any]", record)
                continue
            for ordinal, record in zip(ordinals, records, strict=True):
                yield {**{str(k): v for k, v in record.items()}, ROW_COLUMN: ordinal}

    def on_result(self, result: RowResult) -> None:
        # No price: the cost is unknown, never 0.
        self._audit.record(result.audit_event(self.experiment.name, priced=self._priced))
        self.tally.add(result)
        if result.outcome is Outcome.OK and result.text is not None:
            self.writer.append(
                Answer(
                    result.row,
                    result.criterion,
                    result.repeat,
                    result.text,
                    result.prompt_tokens,
                    result.completion_tokens,
                    result.cost,
                )
            )
        self._task.advance(1, cost=result.cost, error=result.outcome is not Outcome.OK)
        self._raise_row_stage_failure()
        index = _chunk_of(self.offsets, result.row)
        with self._lock:
            self._answers[index][result.key] = result
            complete = len(self._answers[index]) >= self._expected[index]
        if complete:
            self._finish_chunk(index)

    def finished_frames(self) -> list[SecureDataFrame]:
        return [self._futures[index].result() for index in sorted(self._futures)]

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._task.close()
        self.writer.close()

    def _finish_chunk(self, index: int) -> None:
        chunk = _Chunk(index, self.offsets[index], self.chunks[index], self._answers[index])
        future = self._pool.submit(self._through_row_plugins, chunk)
        future.add_done_callback(self._note_failure)
        self._futures[index] = future

    def _through_row_plugins(self, chunk: _Chunk) -> SecureDataFrame:
        name, index = self.experiment.name, chunk.index
        answered = _with_answers(
            chunk.frame.data, chunk.results, self.criteria, self.experiment.repeats, chunk.first_row
        )
        if not self._priced:  # unknown, never 0
            for criterion in self.criteria:
                answered[f"{criterion}_cost"] = float("nan")
        frame = self.steps.llm.expect(chunk.frame.with_new_data(answered))
        for judge in self._judges:
            frame = judge.grade(frame, index)
        for step in self.steps.row_plugins:
            result = step.run(self._runtime, [frame], f"{name}:{index}")
            self._audit.record(
                PluginStep(
                    experiment=name, chunk=index, plugin=step.instance, skipped=result.skipped
                )
            )
            frame = result.frames[0]
            if not result.skipped:  # a frame passed through unchanged must also be at its level
                step.expect(frame)
            marked = _early_stop_marks(frame) if step.kind is PluginKind.EARLY_STOP else 0
            if marked:
                self._audit.record(
                    EarlyStop(
                        experiment=name,
                        chunk=index,
                        plugin=step.instance,
                        rows=frame.shape[0],
                        rows_marked=marked,
                    )
                )
                self.stop.set()
        return frame

    def _note_failure(self, future: concurrent.futures.Future[SecureDataFrame]) -> None:
        if not future.cancelled() and future.exception() is not None and self._failure is None:
            self._failure = future.exception()

    def _raise_row_stage_failure(self) -> None:
        """Stop asking the model once a row stage failed: the run fails anyway."""
        if self._failure is not None:
            raise self._failure


def _offsets(chunks: Sequence[SecureDataFrame]) -> list[int]:
    offsets = [0]
    for chunk in chunks:
        offsets.append(offsets[-1] + chunk.shape[0])
    return offsets


def _chunk_of(offsets: Sequence[int], row: int) -> int:
    """The chunk holding ``row``; ``offsets`` are the chunks' first rows and the total."""
    if not 0 <= row < offsets[-1]:
        raise IndexError(f"row {row} is outside the loaded data")
    return bisect.bisect_right(offsets, row) - 1


def _with_answers(
    data: pd.DataFrame,
    results: Mapping[AnswerKey, RowResult | Answer],
    criteria: Sequence[str],
    repeats: int,
    first_row: int,
) -> pd.DataFrame:
    """The chunk's rows plus ``_row`` and, per criterion, the answer and what it cost:
    ``<c>_response``, ``<c>_outcome``, ``<c>_prompt_tokens``, ``<c>_completion_tokens``,
    ``<c>_cost`` and ``<c>_latency_ms`` (unknown for an answer restored from a checkpoint)."""
    frame = data.reset_index(drop=True)
    ordinals = list(range(first_row, first_row + len(frame)))
    pieces = []
    for repeat in range(repeats):
        block = frame.copy()
        block.insert(0, ROW_COLUMN, ordinals)
        if repeats > 1:
            block.insert(1, "_repeat", repeat)
        for criterion in criteria:
            answers = [_answer_columns(results.get((row, criterion, repeat))) for row in ordinals]
            texts, outcomes, prompt, completion, cost, latency = zip(*answers, strict=True)
            block[f"{criterion}_response"] = pd.Series(texts, dtype="str")
            block[f"{criterion}_outcome"] = list(outcomes)
            block[f"{criterion}_prompt_tokens"] = pd.array(prompt, dtype="Int64")
            block[f"{criterion}_completion_tokens"] = pd.array(completion, dtype="Int64")
            block[f"{criterion}_cost"] = pd.array(cost, dtype="float64")
            block[f"{criterion}_latency_ms"] = pd.array(latency, dtype="float64")
        pieces.append(block)
    return pd.concat(pieces, ignore_index=True) if len(pieces) > 1 else pieces[0]


def _answer_columns(
    result: RowResult | Answer | None,
) -> tuple[str | None, str, int | None, int | None, float | None, float | None]:
    """(text, outcome, prompt tokens, completion tokens, cost, latency in ms) of one answer.
    Tokens belong to an answer; an error still cost what it cost and took its time."""
    if result is None:
        return (None, Outcome.ERROR.value, None, None, None, None)
    tokens: tuple[int | None, int | None] = (result.prompt_tokens, result.completion_tokens)
    if isinstance(result, Answer):  # restored from a checkpoint: its latency is not kept
        return (result.text, Outcome.OK.value, *tokens, float(result.cost), None)
    answered = result.outcome is Outcome.OK
    if not answered:
        tokens = (None, None)
    text = result.text if answered else None
    return (text, result.outcome.value, *tokens, float(result.cost), result.latency_s * 1000)


def _early_stop_marks(frame: SecureDataFrame) -> int:
    """How many rows of ``frame`` ask for an early stop."""
    data = frame.data
    if "_early_stop" not in data.columns:
        return 0
    return int(data["_early_stop"].fillna(False).astype(bool).sum())
