"""The LLM stage: render prompts per row and criterion, ask the model, account for every attempt.

A fixed pool of ``concurrency`` workers pulls (row, criterion, repeat) items from one iterator, so
at most ``concurrency`` requests are in flight (the pool is the semaphore, without a task per row
waiting on one) and rows are read lazily in order. Each item: render (sandboxed) -> cache lookup ->
rate limits -> attempts with retries -> costs -> cache store -> ``on_result``.

Stops: every budget (experiment, suite, ...) and a caller's ``should_stop`` are checked before an
item is taken and again right before every request goes out (retries included), so once a stop is
known the only requests still to come back are the ones already in flight, at most one per
worker. A row budget is the one soft stop: no new row starts, the rows already started finish.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import random
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator, Mapping
from decimal import Decimal
from typing import Any, Final

from elspeth.llm._cache import ResponseCache, cache_key
from elspeth.llm._client import ChatClient
from elspeth.llm._errors import LLMConfigurationError, PromptRenderError
from elspeth.llm._pricing import Budget, BudgetDecision, PricingTable
from elspeth.llm._prompts import PromptPack
from elspeth.llm._ratelimit import RateLimiter
from elspeth.llm._retry import RetryPolicy
from elspeth.llm._types import (
    RETRYABLE,
    AttemptFailure,
    AttemptRecord,
    ChatRequest,
    Completion,
    ErrorKind,
    Message,
    Outcome,
    RowResult,
    StageSummary,
)
from elspeth.security import SecurityLevel

_log = logging.getLogger("elspeth.llm")

OnResult = Callable[[RowResult], Awaitable[None] | None]
DoneKey = tuple[int, str] | tuple[int, str, int]
ShouldStop = Callable[[], bool]

#: ``StageSummary.stopped_by`` when ``should_stop`` ended the run.
EARLY_STOP: Final = "early stop"

#: Completion budget assumed for the tokens-per-minute estimate when parameters set none.
DEFAULT_COMPLETION_ESTIMATE: Final = 256
_ZERO: Final = Decimal(0)


@dataclasses.dataclass(frozen=True, slots=True)
class _Item:
    row: int
    data: Mapping[str, Any]
    criterion: str
    repeat: int


class _Run:
    """The state of one :meth:`LLMStage.run`: the work iterator, totals and the stop flags.

    ``stop_reason`` set: no new item is taken. ``halted`` (every stop but a row budget): no
    request starts either, first attempt or retry; items taken but not sent are dropped."""

    def __init__(
        self,
        items: Iterator[_Item],
        level: SecurityLevel,
        done: frozenset[tuple[int, str, int]],
        *,
        budgets: tuple[Budget, ...],
        on_result: OnResult | None,
        should_stop: ShouldStop | None,
    ) -> None:
        self.items = items
        self.level = level
        self.done = done
        self.budgets = budgets
        self.on_result = on_result
        self.should_stop = should_stop
        self.summary = StageSummary()
        self.last_row = -1
        self.stop_reason: str | None = None
        self.stopped_by: str | None = None
        self.decision: BudgetDecision | None = None
        self.requested = False
        self.halted = False
        self.work_left = False
        self.callback_failed = False

    def next_item(self) -> _Item | None:
        if self.stop_reason is not None or self.callback_failed or not self.may_dispatch():
            return None
        for item in self.items:
            if (item.row, item.criterion, item.repeat) in self.done:
                self.summary.skipped += 1
                continue
            if item.row != self.last_row:
                for budget in self.budgets:
                    reason = budget.rows_reached(self.summary.rows_started)
                    if reason is not None:
                        decided = budget.decided(
                            "rows", self.summary.cost, self.summary.rows_started
                        )
                        self.stop(reason, budget.label, work_left=True, halt=False, decided=decided)
                        return None
                self.summary.rows_started += 1
                self.last_row = item.row
            return item
        return None

    def may_dispatch(self) -> bool:
        """Right before a request goes out: false once a stop that ends all spending is known
        (a budget's cost, or ``should_stop``)."""
        if self.halted:
            return False
        if self.should_stop is not None and self.should_stop():
            self.requested = self.stop_reason is None
            self.stop("early stop requested", EARLY_STOP, work_left=True, halt=True)
            return False
        self.check_cost()
        return not self.halted

    def check_cost(self) -> None:
        for budget in self.budgets:
            reason = budget.cost_reached(self.summary.cost)
            if reason is not None:
                decided = budget.decided("cost", self.summary.cost, self.summary.rows_started)
                self.stop(reason, budget.label, work_left=False, halt=True, decided=decided)
                return

    def stop(
        self,
        reason: str,
        stopped_by: str,
        *,
        work_left: bool,
        halt: bool,
        decided: BudgetDecision | None = None,
    ) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
            self.stopped_by = stopped_by
            self.decision = decided
            _log.warning("LLM stage stopping: %s; requests in flight may finish", reason)
        self.work_left = self.work_left or work_left
        self.halted = self.halted or halt

    def abandon(self, attempts: Collection[AttemptRecord]) -> None:
        """An item taken before a stop whose next request was not sent: not done, no result."""
        self.work_left = True
        if attempts:
            self.summary.abandoned += 1
            self.summary.attempts += len(attempts)
            self.summary.retries += len(attempts) - 1

    def has_unstarted_work(self) -> bool:
        return any((i.row, i.criterion, i.repeat) not in self.done for i in self.items)

    def record(self, result: RowResult) -> None:
        summary = self.summary
        summary.results += 1
        summary.ok += result.outcome is Outcome.OK
        summary.errors += result.outcome is Outcome.ERROR
        summary.cached += result.cached
        summary.attempts += len(result.attempts)
        summary.retries += max(0, len(result.attempts) - 1)
        summary.prompt_tokens += result.prompt_tokens
        summary.completion_tokens += result.completion_tokens
        summary.cost += result.cost
        self.check_cost()


class LLMStage:
    """Ask ``client`` every criterion of ``prompts`` for every row.

    ``repeats`` asks each (row, criterion) that many times (repeat index 0..repeats-1, part of the
    cache key and of the mock's answer). ``rate_limiter`` may be shared between stages that share
    an endpoint. ``budget`` is one :class:`Budget` or several (an experiment's and a suite's): the
    first one reached stops the run. ``rng`` drives the backoff jitter (pass a seeded one in tests).
    """

    def __init__(
        self,
        client: ChatClient,
        prompts: PromptPack,
        *,
        concurrency: int = 8,
        rate_limiter: RateLimiter | None = None,
        retry_policy: RetryPolicy | None = None,
        cache: ResponseCache | None = None,
        pricing: PricingTable | None = None,
        budget: Budget | Iterable[Budget] | None = None,
        repeats: int = 1,
        rng: random.Random | None = None,
    ) -> None:
        for name, value in (("concurrency", concurrency), ("repeats", repeats)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise LLMConfigurationError(f"{name} must be an integer >= 1, not {value!r}")
        self.client = client
        self.prompts = prompts
        self.concurrency = concurrency
        self.rate_limiter = rate_limiter
        self.retry_policy = retry_policy or RetryPolicy()
        self.cache = cache
        self.pricing = pricing or PricingTable()
        self.budgets: tuple[Budget, ...] = (
            () if budget is None else (budget,) if isinstance(budget, Budget) else tuple(budget)
        )
        self.repeats = repeats
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        model = client.identity.model
        for limit in self.budgets:
            if limit.max_cost is not None and self.pricing.price_for(model) is None:
                raise LLMConfigurationError(
                    f"{limit.label}.max_cost is set but the pricing table has no price for "
                    f"model {model!r}"
                )
        parameters = client.identity.parameters
        self._completion_estimate = int(
            parameters.get("max_tokens")
            or parameters.get("max_completion_tokens")
            or DEFAULT_COMPLETION_ESTIMATE
        )

    async def run(
        self,
        rows: Iterable[Mapping[str, Any]],
        *,
        level: SecurityLevel,
        on_result: OnResult | None = None,
        done: Collection[DoneKey] = (),
        columns: Collection[str] | None = None,
        should_stop: ShouldStop | None = None,
    ) -> StageSummary:
        """Process ``rows`` (ordinal = position) at classification ``level``.

        Each result goes to ``on_result`` (sync or async) as it completes, in completion order;
        without a callback results are collected in ``summary.collected``. ``done`` lists
        ``(row, criterion)`` or ``(row, criterion, repeat)`` keys to skip (resume). With
        ``columns``, templates are checked against them before the first row is read.
        ``should_stop`` (e.g. ``event.is_set``; it may be set from another thread) is asked
        before every request: once it is true no request starts, the ones in flight finish and
        are reported, and the summary says ``stopped_by="early stop"`` (not partial).
        An exception from ``on_result`` stops every worker and propagates.
        """
        if not isinstance(level, SecurityLevel):
            raise LLMConfigurationError(f"level must be a SecurityLevel, not {level!r}")
        if columns is not None:
            self.prompts.check_fields(columns)
        started = time.perf_counter()
        run = _Run(
            self._items(rows),
            level,
            frozenset((key[0], key[1], key[2] if len(key) == 3 else 0) for key in done),
            budgets=self.budgets,
            on_result=on_result,
            should_stop=should_stop,
        )
        await self.client.open(self.concurrency)
        workers = [asyncio.create_task(self._worker(run)) for _ in range(self.concurrency)]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise
        summary = run.summary
        summary.stop_reason = run.stop_reason
        summary.budget_stop = run.decision
        # A requested stop is the caller's decision, not a shortfall: never partial (and its
        # remaining rows are not read just to say so).
        summary.partial = (
            run.stop_reason is not None
            and not run.requested
            and (run.work_left or run.has_unstarted_work())
        )
        # Named only when it stopped something: a budget reached by the last answer did not.
        summary.stopped_by = run.stopped_by if summary.partial or run.requested else None
        summary.cache_misreads = 0 if self.cache is None else self.cache.misreads
        summary.elapsed_s = time.perf_counter() - started
        return summary

    def run_sync(
        self,
        rows: Iterable[Mapping[str, Any]],
        *,
        level: SecurityLevel,
        on_result: OnResult | None = None,
        done: Collection[DoneKey] = (),
        columns: Collection[str] | None = None,
        should_stop: ShouldStop | None = None,
    ) -> StageSummary:
        """:meth:`run` on a fresh event loop; closes the client's connections at the end."""

        async def main() -> StageSummary:
            try:
                return await self.run(
                    rows,
                    level=level,
                    on_result=on_result,
                    done=done,
                    columns=columns,
                    should_stop=should_stop,
                )
            finally:
                await self.client.aclose()

        return asyncio.run(main())

    def _items(self, rows: Iterable[Mapping[str, Any]]) -> Iterator[_Item]:
        criteria = self.prompts.criteria
        for ordinal, row in enumerate(rows):
            for criterion in criteria:
                for repeat in range(self.repeats):
                    yield _Item(ordinal, row, criterion, repeat)

    async def _worker(self, run: _Run) -> None:
        while (item := run.next_item()) is not None:
            result = await self._process(item, run)
            if result is None:
                continue
            run.record(result)
            if run.on_result is None:
                run.summary.collected.append(result)
                continue
            if run.callback_failed:
                return  # a failed callback is never called again; the run is ending
            try:
                outcome = run.on_result(result)
                if inspect.isawaitable(outcome):
                    await outcome
            except BaseException:
                run.callback_failed = True
                raise

    async def _process(self, item: _Item, run: _Run) -> RowResult | None:
        started = time.perf_counter()
        try:
            messages = self.prompts.render(item.criterion, item.data)
        except PromptRenderError as exc:
            return self._error(item, ErrorKind.PROMPT_RENDER, str(exc), (), started)
        request = ChatRequest(messages, item.repeat)
        key = None
        if self.cache is not None:
            key = cache_key(self.client.identity, request, run.level)
            hit = self.cache.get(key, run.level)
            if hit is not None:
                return self._ok(item, hit, (), _ZERO, started, cached=True)
        attempts: list[AttemptRecord] = []
        estimate = self._estimate_tokens(messages)
        for number in range(1, self.retry_policy.max_retries + 2):
            if not await self._may_send(run, estimate):
                run.abandon(attempts)  # taken before the stop, this request never sent
                return None
            attempt_started = time.perf_counter()
            try:
                completion = await self.client.complete(request)
            except AttemptFailure as failure:
                if self.rate_limiter is not None:
                    self.rate_limiter.settle(estimate, 0)
                delay = self._retry_delay(failure, number)
                attempts.append(
                    AttemptRecord(
                        number,
                        failure.kind.value,
                        failure.status,
                        time.perf_counter() - attempt_started,
                        delay,
                    )
                )
                if delay is None:
                    return self._error(
                        item, failure.kind, self._give_up(failure, number), attempts, started
                    )
                _log.info(
                    "row %d criterion %s attempt %d failed (%s); retrying in %.2f s",
                    item.row,
                    item.criterion,
                    number,
                    failure.detail,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            attempts.append(
                AttemptRecord(
                    number,
                    Outcome.OK.value,
                    completion.status,
                    time.perf_counter() - attempt_started,
                )
            )
            break
        else:  # pragma: no cover - the loop returns or breaks on its last attempt
            raise AssertionError("retry loop ended without an outcome")
        total_tokens = completion.prompt_tokens + completion.completion_tokens
        if self.rate_limiter is not None:
            self.rate_limiter.settle(estimate, total_tokens)
        if key is not None and self.cache is not None:
            self.cache.put(key, run.level, completion)
        cost = self.pricing.cost(
            self.client.identity.model, completion.prompt_tokens, completion.completion_tokens
        )
        return self._ok(item, completion, attempts, cost, started, cached=False)

    async def _may_send(self, run: _Run, estimate: int) -> bool:
        """Pass the rate limits; false (nothing charged) if a stop is known before or after."""
        if not run.may_dispatch():
            return False
        if self.rate_limiter is not None:
            await self.rate_limiter.acquire(estimate)
            if not run.may_dispatch():  # the stop came while waiting for the limiter
                self.rate_limiter.settle(estimate, 0)
                return False
        return True

    def _retry_delay(self, failure: AttemptFailure, number: int) -> float | None:
        if failure.kind not in RETRYABLE or number > self.retry_policy.max_retries:
            return None
        return self.retry_policy.delay(number, failure.retry_after, self._rng)

    @staticmethod
    def _give_up(failure: AttemptFailure, number: int) -> str:
        if failure.kind in RETRYABLE and number > 1:
            return f"gave up after {number} attempts; last: {failure.detail}"
        return failure.detail

    def _estimate_tokens(self, messages: tuple[Message, ...]) -> int:
        if self.rate_limiter is None or self.rate_limiter.tokens is None:
            return 0
        characters = sum(len(message.get("content", "")) for message in messages)
        return characters // 4 + self._completion_estimate

    @staticmethod
    def _ok(
        item: _Item,
        completion: Completion,
        attempts: Iterable[AttemptRecord],
        cost: Decimal,
        started: float,
        *,
        cached: bool,
    ) -> RowResult:
        return RowResult(
            item.row,
            item.criterion,
            item.repeat,
            Outcome.OK,
            completion.text,
            None,
            None,
            tuple(attempts),
            completion.prompt_tokens,
            completion.completion_tokens,
            cost,
            cached,
            time.perf_counter() - started,
        )

    @staticmethod
    def _error(
        item: _Item,
        kind: ErrorKind,
        message: str,
        attempts: Iterable[AttemptRecord],
        started: float,
    ) -> RowResult:
        return RowResult(
            item.row,
            item.criterion,
            item.repeat,
            Outcome.ERROR,
            None,
            kind,
            message,
            tuple(attempts),
            0,
            0,
            _ZERO,
            False,
            time.perf_counter() - started,
        )
