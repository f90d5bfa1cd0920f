"""Suite settings: the YAML schema, its loader, and the JSON Schema for editors.

``load_suite(path)`` returns a validated :class:`Suite` or raises :class:`SettingsError` listing
every problem with its file, line and key — before any data is read or any model is called.
"""

from __future__ import annotations

from elspeth.config._errors import SettingsError, SettingsProblem
from elspeth.config._load import Experiment, Suite, budget_remaining, load_suite
from elspeth.config._models import (
    BudgetSettings,
    Defaults,
    ExperimentSettings,
    JudgeSettings,
    ModelSettings,
    PairwiseJudgeSettings,
    PluginSettings,
    PromptPackSettings,
    RateLimitSettings,
    SidecarSettings,
    SuiteSettings,
    WorkerSettings,
)


def settings_json_schema() -> dict[str, object]:
    """The JSON Schema of the settings file, for editors (``elspeth schema``)."""
    return SuiteSettings.model_json_schema()


__all__ = [
    "BudgetSettings",
    "Defaults",
    "Experiment",
    "ExperimentSettings",
    "JudgeSettings",
    "ModelSettings",
    "PairwiseJudgeSettings",
    "PluginSettings",
    "PromptPackSettings",
    "RateLimitSettings",
    "SettingsError",
    "SettingsProblem",
    "SidecarSettings",
    "Suite",
    "SuiteSettings",
    "WorkerSettings",
    "budget_remaining",
    "load_suite",
    "settings_json_schema",
]
