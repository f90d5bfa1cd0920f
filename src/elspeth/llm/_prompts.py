"""Prompt packs: a system prompt and one user prompt per criterion, rendered in a Jinja2 sandbox.

Templates come from settings files, which are trusted less than code: they render in an
``ImmutableSandboxedEnvironment`` (no dunder or private attributes, no mutating calls) with
``StrictUndefined`` (a missing value is an error naming it, never an empty string sent to a paid
model). :meth:`PromptPack.missing_fields` checks every template against the dataset's columns
before any row is read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, Final

import jinja2
import jinja2.meta
import jinja2.sandbox
from jinja2.exceptions import SecurityError

from elspeth.llm._errors import PromptRenderError, TemplateError
from elspeth.llm._types import Message

#: Names every template may use besides the row's columns and the pack's constants.
RESERVED_VARIABLES: Final = frozenset({"row", "criterion"})

_ENVIRONMENT: Final = jinja2.sandbox.ImmutableSandboxedEnvironment(
    undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False
)


@dataclasses.dataclass(frozen=True, slots=True)
class CriterionPrompt:
    """One criterion: its user prompt and, optionally, a system prompt replacing the pack's."""

    name: str
    user: str
    system: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class MissingField:
    """A variable a template uses that is neither a column, a constant nor reserved."""

    template: str
    field: str

    def describe(self) -> str:
        return f"template {self.template} uses field {self.field!r}, which the data does not have"


@dataclasses.dataclass(frozen=True, slots=True)
class _Compiled:
    name: str
    source: str
    template: jinja2.Template

    def render(self, context: Mapping[str, Any]) -> str:
        try:
            return self.template.render(context)
        except (jinja2.UndefinedError, SecurityError) as exc:
            # These messages name variables, attributes and types, never values.
            raise PromptRenderError(f"template {self.name}: {exc.message}") from None
        except Exception as exc:  # noqa: BLE001 - any template failure is this row's error
            raise PromptRenderError(
                f"template {self.name} failed with {type(exc).__name__}"
            ) from None


class PromptPack:
    """Templates for every criterion of one experiment.

    ``criteria`` maps criterion names to a user template (or is a sequence of
    :class:`CriterionPrompt`); ``system`` is the default system template; ``constants`` are extra
    values every template can use. Every template compiles here, and all syntax errors are
    reported together, naming template and line.
    """

    def __init__(
        self,
        criteria: Mapping[str, str] | Iterable[CriterionPrompt],
        *,
        system: str | None = None,
        constants: Mapping[str, Any] | None = None,
        name: str = "prompts",
    ) -> None:
        prompts = (
            [CriterionPrompt(key, value) for key, value in criteria.items()]
            if isinstance(criteria, Mapping)
            else list(criteria)
        )
        if not prompts:
            raise TemplateError(f"{name}: at least one criterion prompt is required")
        duplicates = sorted(
            {p.name for p in prompts if [q.name for q in prompts].count(p.name) > 1}
        )
        if duplicates:
            raise TemplateError(f"{name}: criterion names repeat: {', '.join(duplicates)}")
        self.name = name
        self.constants: Mapping[str, Any] = dict(constants or {})
        problems: list[str] = []
        default_system = self._compile(f"{name}.system", system, problems)
        self._criteria: dict[str, tuple[_Compiled | None, _Compiled]] = {}
        for prompt in prompts:
            prefix = f"{name}.criteria.{prompt.name}"
            own_system = self._compile(f"{prefix}.system", prompt.system, problems)
            user = self._compile(f"{prefix}.user", prompt.user, problems)
            if user is not None:
                self._criteria[prompt.name] = (own_system or default_system, user)
        if problems:
            raise TemplateError("prompt templates do not compile:\n  - " + "\n  - ".join(problems))

    @staticmethod
    def _compile(label: str, source: str | None, problems: list[str]) -> _Compiled | None:
        if source is None:
            return None
        if not isinstance(source, str):
            problems.append(f"{label}: must be a string, not {type(source).__name__}")
            return None
        try:
            return _Compiled(label, source, _ENVIRONMENT.from_string(source))
        except jinja2.TemplateSyntaxError as exc:
            problems.append(f"{label}, line {exc.lineno}: {exc.message}")
            return None

    @property
    def criteria(self) -> tuple[str, ...]:
        return tuple(self._criteria)

    def _templates(self) -> Iterable[_Compiled]:
        seen: set[str] = set()
        for pair in self._criteria.values():
            for compiled in pair:
                if compiled is not None and compiled.name not in seen:
                    seen.add(compiled.name)
                    yield compiled

    def referenced_fields(self) -> dict[str, frozenset[str]]:
        """Each template's free variables (what it needs from the row and constants)."""
        return {
            compiled.name: frozenset(
                jinja2.meta.find_undeclared_variables(_ENVIRONMENT.parse(compiled.source))
            )
            for compiled in self._templates()
        }

    def missing_fields(self, columns: Iterable[str]) -> list[MissingField]:
        """Variables no template can get from ``columns``; check before reading any data.

        ``row["name"]`` lookups are not visible statically; StrictUndefined catches them per row.
        """
        available = set(columns) | set(self.constants) | RESERVED_VARIABLES
        return [
            MissingField(template, variable)
            for template, variables in self.referenced_fields().items()
            for variable in sorted(variables - available)
        ]

    def check_fields(self, columns: Iterable[str]) -> None:
        """Raise :class:`TemplateError` listing every missing field, or return."""
        missing = self.missing_fields(columns)
        if missing:
            raise TemplateError(
                "prompt templates use fields the dataset lacks:\n  - "
                + "\n  - ".join(item.describe() for item in missing)
            )

    def render(self, criterion: str, row: Mapping[str, Any]) -> tuple[Message, ...]:
        """The chat messages for one row and criterion; :class:`PromptRenderError` on failure."""
        system, user = self._criteria[criterion]
        context = {**self.constants, **row, "row": row, "criterion": criterion}
        try:
            user_message = {"role": "user", "content": user.render(context)}
            if system is None:
                return (user_message,)
            return ({"role": "system", "content": system.render(context)}, user_message)
        except PromptRenderError as error:
            # Column names are the datasource's schema, not content: they show what the
            # template could have used.
            columns = ", ".join(sorted(str(key) for key in row if not str(key).startswith("_")))
            raise PromptRenderError(f"{error}; the row's columns are: {columns}") from None
