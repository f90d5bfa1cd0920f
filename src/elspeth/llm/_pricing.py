"""Token prices per model and the run's budget limits."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from elspeth.llm._errors import LLMConfigurationError

_THOUSAND: Final = Decimal(1000)


def _decimal(value: Any, label: str) -> Decimal:
    """Money from settings: strings, ints or floats (through their shortest repr), never NaN."""
    if isinstance(value, bool):
        raise LLMConfigurationError(f"{label} must be a number, not {value!r}")
    try:
        number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        raise LLMConfigurationError(f"{label} must be a number, not {value!r}") from None
    if not number.is_finite() or number < 0:
        raise LLMConfigurationError(f"{label} must be a finite number >= 0, not {value!r}")
    return number


@dataclasses.dataclass(frozen=True, slots=True)
class ModelPrice:
    """Price per 1,000 prompt tokens and per 1,000 completion tokens."""

    prompt_per_1k: Decimal
    completion_per_1k: Decimal

    def cost(self, prompt_tokens: int, completion_tokens: int) -> Decimal:
        return (
            self.prompt_per_1k * prompt_tokens + self.completion_per_1k * completion_tokens
        ) / _THOUSAND


class PricingTable:
    """Prices by model name. A model without a price costs nothing here (and cannot have a
    cost budget: :class:`LLMStage` refuses that combination)."""

    def __init__(self, prices: Mapping[str, ModelPrice] | None = None) -> None:
        self._prices = dict(prices or {})

    @classmethod
    def from_mapping(cls, table: Mapping[str, Mapping[str, Any]]) -> PricingTable:
        """From settings: ``{model: {prompt_per_1k: ..., completion_per_1k: ...}}``."""
        prices: dict[str, ModelPrice] = {}
        for model, entry in table.items():
            if not isinstance(entry, Mapping):
                raise LLMConfigurationError(f"pricing.{model} must be a mapping")
            unknown = sorted(set(entry) - {"prompt_per_1k", "completion_per_1k"})
            if unknown:
                raise LLMConfigurationError(
                    f"pricing.{model}: unknown key(s) {', '.join(unknown)}; "
                    "expected prompt_per_1k and completion_per_1k"
                )
            missing = sorted({"prompt_per_1k", "completion_per_1k"} - set(entry))
            if missing:
                raise LLMConfigurationError(f"pricing.{model}: missing {', '.join(missing)}")
            prices[model] = ModelPrice(
                _decimal(entry["prompt_per_1k"], f"pricing.{model}.prompt_per_1k"),
                _decimal(entry["completion_per_1k"], f"pricing.{model}.completion_per_1k"),
            )
        return cls(prices)

    def price_for(self, model: str) -> ModelPrice | None:
        return self._prices.get(model)

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> Decimal:
        price = self._prices.get(model)
        return Decimal(0) if price is None else price.cost(prompt_tokens, completion_tokens)


@dataclasses.dataclass(frozen=True, slots=True)
class Budget:
    """A limit that stops a run cleanly: once it is reached no new request starts.

    ``max_cost`` is checked after each answer (and before the first request), so in-flight
    requests can take the total a little past it; ``max_rows`` counts rows this run starts
    (skipped, already-done rows do not count): once a row would start past it, no new row
    starts, while the rows already started finish. ``spent`` and ``rows_used`` are what was
    already used against the limit elsewhere (earlier experiments of a suite, or the run being
    resumed): the limit holds for the total. ``scope`` names the budget in the stop reason and in
    :attr:`StageSummary.stopped_by` (e.g. ``"suite budget"``).
    """

    max_cost: Decimal | None = None
    max_rows: int | None = None
    scope: str | None = None
    spent: Decimal = Decimal(0)
    rows_used: int = 0

    def __post_init__(self) -> None:
        if self.max_cost is not None:
            object.__setattr__(self, "max_cost", _decimal(self.max_cost, "budget.max_cost"))
        object.__setattr__(self, "spent", _decimal(self.spent, "budget.spent"))
        for name in ("max_rows", "rows_used"):
            value = getattr(self, name)
            if value is None and name == "max_rows":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise LLMConfigurationError(f"budget.{name} must be an integer >= 0, not {value!r}")

    @property
    def label(self) -> str:
        """What stopped a run when this budget did: its ``scope``, or ``"budget"``."""
        return self.scope or "budget"

    def cost_reached(self, cost: Decimal) -> str | None:
        """The stop reason once ``cost`` (spent by this run) reaches the limit, else None."""
        if self.max_cost is None or self.spent + cost < self.max_cost:
            return None
        return self._reason(f"cost budget of {self.max_cost} reached (spent {self.spent + cost})")

    def rows_reached(self, rows_started: int) -> str | None:
        """The stop reason when no further row may start after ``rows_started``, else None."""
        if self.max_rows is None or self.rows_used + rows_started < self.max_rows:
            return None
        return self._reason(f"row budget of {self.max_rows} reached")

    def _reason(self, text: str) -> str:
        return text if self.scope is None else f"{self.scope}: {text}"

    def decided(self, limit: str, cost: Decimal, rows_started: int) -> BudgetDecision:
        """This budget's stop on ``limit`` (``cost`` or ``rows``), with what had been used
        against it (its ``spent`` and ``rows_used`` included), for the audit log."""
        return BudgetDecision(
            self.label, limit, self.max_cost, self.max_rows, self.spent + cost,
            self.rows_used + rows_started,
        )  # fmt: skip


@dataclasses.dataclass(frozen=True, slots=True)
class BudgetDecision:
    """A budget that stopped a stage: which limit, and the numbers it decided on."""

    scope: str
    limit: str
    max_cost: Decimal | None
    max_rows: int | None
    spent: Decimal
    rows: int
