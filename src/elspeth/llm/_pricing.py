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
    """Limits that stop a run cleanly: no new request starts once one is reached.

    ``max_cost`` is checked after each answer, so in-flight requests can take the total a little
    past it; ``max_rows`` counts rows this run starts (skipped, already-done rows do not count).
    On resume, pass what is left of the budget.
    """

    max_cost: Decimal | None = None
    max_rows: int | None = None

    def __post_init__(self) -> None:
        if self.max_cost is not None:
            object.__setattr__(self, "max_cost", _decimal(self.max_cost, "budget.max_cost"))
        if self.max_rows is not None and (
            isinstance(self.max_rows, bool)
            or not isinstance(self.max_rows, int)
            or self.max_rows < 0
        ):
            raise LLMConfigurationError(
                f"budget.max_rows must be an integer >= 0, not {self.max_rows!r}"
            )
